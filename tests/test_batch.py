"""mrideblur batch: Dask tasks per slice, resuming a killed run, failed rows, NIfTI round trip."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from mrideblur.batch import SUMMARY_COLUMNS, BatchOptions, run_batch
from mrideblur.cli import main
from mrideblur.io import write_nifti
from mrideblur.io.anatomy import mni_slice
from mrideblur.io.case import write_case
from mrideblur.physics.simulate import simulate

N = 48
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """In-process runs: one torch thread (spinning threads crawl on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _volume(nslice: int, seed: int) -> np.ndarray:
    """A small (x, y, z) volume of MNI axial slices with a little rigid motion in each."""
    rng = np.random.default_rng(seed)
    slices = []
    for i in range(nslice):
        img = mni_slice("axial", 0.45 + 0.04 * i, N)
        k = np.fft.fft2(img)
        half = np.zeros_like(k)
        half[N // 2 :] = k[N // 2 :] * np.exp(-2j * np.pi * rng.uniform(1, 2) * np.fft.fftfreq(N))[None]
        half[: N // 2] = k[: N // 2]
        slices.append(np.abs(np.fft.ifft2(half)))
    return np.stack(slices, axis=2)


def _affine() -> np.ndarray:
    c, s = np.cos(0.3), np.sin(0.3)
    return np.array([[0.9 * c, -0.9 * s, 0.0, -20.5], [0.9 * s, 0.9 * c, 0.0, 11.0], [0.0, 0.0, 3.0, 42.0],
                     [0.0, 0.0, 0.0, 1.0]])


def _read_summary(out: Path) -> list[dict[str, str]]:
    with open(out / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and list(rows[0]) == list(SUMMARY_COLUMNS)
    return rows


def _visible_files(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_file())


def _batch_cmd(src: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "mrideblur.cli", "batch", str(src), "--method", "autofocus", "--pe-axis", "1",
            "--shots", "8", "--ordering", "sequential", "--max-iter", "15", "--workers", "2", "--out", str(out),
            "--motion-model", "per-shot", "--quiet"]  # the fast estimator: this tests the batch machinery


def test_killed_batch_resumes_where_it_stopped(tmp_path):
    """Four studies (one slice, then three of three slices) on 2 workers; the run is killed
    (process group, SIGKILL) once the first study is finished; the rerun skips it, reuses the
    finished slices of the others, and every output exists exactly once, complete."""
    src = tmp_path / "in"
    src.mkdir()
    for i, n in enumerate((1, 3, 3, 3)):
        write_nifti(src / f"s{i}.nii.gz", _volume(n, i), _affine())
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(_batch_cmd(src, out), cwd=tmp_path, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while not list(out.glob("*/report.json")):
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "no study finished in 240 s"
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = {p.parent.name for p in out.glob("*/report.json")}
    # whatever the kill interrupted, every visible file is complete
    for p in _visible_files(out):
        if p.name.startswith("."):
            continue
        if p.suffix == ".gz":
            nib.load(p).get_fdata()
        elif p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".npz":
            np.load(p).files
    rerun = subprocess.run(_batch_cmd(src, out), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    rows = {r["study"]: r for r in _read_summary(out)}
    assert sorted(rows) == ["s0", "s1", "s2", "s3"]
    for name, row in rows.items():
        assert row["status"] == ("skipped" if name in finished else "done"), row
        assert row["error"] == "" and float(row["seconds"]) > 0
    assert len(finished) < 4, "the kill came too late to test resuming"
    for i, n in enumerate((1, 3, 3, 3)):
        files = sorted(p.name for p in (out / f"s{i}").iterdir())
        assert files == ["corrected.nii.gz", "motion.csv", "report.json"], files  # no parts, no temporaries
        img = nib.load(out / f"s{i}" / "corrected.nii.gz")
        assert img.shape == (N, N, n)
        np.testing.assert_allclose(img.affine, _affine(), atol=1e-5)
        motion = np.loadtxt(out / f"s{i}" / "motion.csv", delimiter=",", skiprows=1)
        assert motion.shape == (8 * n, 5)  # slice, shot, rot_deg, ty, tx
    assert [p for p in out.rglob(".*")] == []


def test_bad_inputs_fail_their_rows_on_a_given_scheduler(tmp_path):
    """A manifest run on a scheduler given by address (an in-process LocalCluster here): a
    NIfTI with a truth gets PSNR figures; a truncated NIfTI, a non-NIfTI, a missing file and a
    k-space file (wrong method) each fail their own row with a message naming the file."""
    from dask.distributed import LocalCluster

    good = _volume(2, 0)
    write_nifti(tmp_path / "good.nii.gz", good, _affine())
    write_nifti(tmp_path / "truth.nii.gz", np.stack([mni_slice("axial", 0.45 + 0.04 * i, N) for i in range(2)], 2),
                _affine())
    write_nifti(tmp_path / "cut.nii.gz", _volume(2, 1), _affine())
    data = (tmp_path / "cut.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.nii.gz").write_bytes(b"not a volume")
    write_case(tmp_path / "raw.h5", simulate(mni_slice("axial", 0.5, N), ncoil=2, nshot=4, seed=0))
    (tmp_path / "list.csv").write_text("input,truth,pe_axis\ngood.nii.gz,truth.nii.gz,1\ncut.nii.gz,,1\n"
                                       "junk.nii.gz,,1\nmissing.nii.gz,,1\nraw.h5,,\n")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        rows = run_batch(tmp_path / "list.csv", tmp_path / "out", BatchOptions(method="autofocus", shots=8, ordering="interleaved", max_iter=10,
                                                                                motion_model="per-shot"),
                         scheduler=cluster.scheduler_address, progress=False)
    by = {r["study"]: r for r in rows}
    assert [r["study"] for r in _read_summary(tmp_path / "out")] == ["good", "cut", "junk", "missing", "raw"]
    assert by["good"]["status"] == "done" and by["good"]["psnr_corrected_db"] and by["good"]["psnr_uncorrected_db"]
    for name in ("cut", "junk", "missing", "raw"):
        assert by[name]["status"] == "failed", by[name]
        assert f"{name}." in by[name]["error"], by[name]["error"]
    assert "k-space method" in by["raw"]["error"]
    assert nib.load(tmp_path / "out" / "good" / "corrected.nii.gz").shape == good.shape


def test_kspace_stack_is_reassembled_with_psnr(tmp_path):
    """A two-slice case stack (aligned-SENSE, one task per slice) becomes one image.nii.gz,
    one motion.csv with a slice column and PSNR figures against the stored truth."""
    from mrideblur.io.case import Case

    parts = [simulate(mni_slice("axial", p, N), ncoil=4, nshot=4, motion="random", max_rot=2, max_trans=2, seed=i)
             for i, p in enumerate((0.5, 0.6))]
    stack = Case(kspace=np.stack([c.kspace for c in parts]), shot_index=parts[0].shot_index, kind="stack",
                 truth={"image": np.stack([c.truth["image"] for c in parts])}, voxel_size_mm=(1.0, 1.0, 3.0))
    (tmp_path / "in").mkdir()
    write_case(tmp_path / "in" / "stack.h5", stack)
    rows = run_batch(tmp_path / "in", tmp_path / "out", BatchOptions(method="aligned-sense", coils="espirit", max_iter=5),
                     workers=1, progress=False)
    (row,) = rows
    assert row["status"] == "done", row
    assert float(row["psnr_corrected_db"]) > 0 and float(row["psnr_uncorrected_db"]) > 0
    folder = tmp_path / "out" / "stack"
    assert nib.load(folder / "image.nii.gz").shape == (N, N, 2)
    assert (folder / "motion.csv").read_text().splitlines()[0].startswith("slice,shot,rot_deg")
    report = json.loads((folder / "report.json").read_text())
    assert report["slices"] == 2 and len(report["seconds_per_slice"]) == 2
    # finished: a rerun skips it without starting a cluster
    again = run_batch(tmp_path / "in", tmp_path / "out", BatchOptions(method="aligned-sense"), progress=False)
    assert again[0]["status"] == "skipped" and again[0]["psnr_corrected_db"] == row["psnr_corrected_db"]


@pytest.mark.parametrize("ndim", [2, 3])
def test_nifti_correct_round_trip_keeps_affine_and_header(tmp_path, capsys, ndim):
    vol = _volume(2, 3)
    data = vol[:, :, 0] if ndim == 2 else vol
    hdr = nib.Nifti1Header()
    hdr["descrip"] = b"mrideblur round trip"
    hdr.set_xyzt_units("mm", "sec")
    src = tmp_path / "study.nii.gz"
    img = nib.Nifti1Image(data.astype(np.float32), _affine(), header=hdr)
    img.set_sform(_affine(), code=2)
    img.set_qform(_affine(), code=1)
    nib.save(img, src)
    out = tmp_path / "fixed"
    argv = ["correct", str(src), "--method", "autofocus", "--pe-axis", "1", "--shots", "8", "--ordering",
            "sequential", "--max-iter", "10", "--out", str(out), "--quiet"]
    assert main(argv) == 0, capsys.readouterr().err
    res = nib.load(out / "corrected.nii.gz")
    assert res.shape == data.shape
    np.testing.assert_allclose(res.affine, _affine(), atol=1e-5)
    assert int(res.header["sform_code"]) == 2 and int(res.header["qform_code"]) == 1
    assert res.header["descrip"].tobytes().rstrip(b"\0") == b"mrideblur round trip"
    assert res.header.get_xyzt_units() == ("mm", "sec")
    assert np.corrcoef(res.get_fdata().ravel(), data.ravel())[0, 1] > 0.9
    report = json.loads((out / "report.json").read_text())
    assert report["method"] == "autofocus" and report["slices"] == (1 if ndim == 2 else 2)
    # each slice says whether the step autofocus changed it, and why
    flags = [r["corrected"] for r in report["slice_reports"]]
    assert report["slices_corrected"] == sum(flags) and len(report["slices_unchanged"]) == len(flags) - sum(flags)
    assert all(r["reason"] for r in report["slice_reports"])
    assert sorted(p.name for p in out.iterdir()) == ["corrected.nii.gz", "motion.csv", "report.json"]


def test_cli_errors_are_one_line(tmp_path, capsys):
    write_nifti(tmp_path / "v.nii.gz", _volume(1, 0), _affine())
    assert main(["correct", str(tmp_path / "v.nii.gz"), "--method", "autofocus", "--out", str(tmp_path / "o")]) == 2
    assert "--pe-axis" in capsys.readouterr().err
    assert main(["batch", str(tmp_path / "nowhere"), "--method", "autofocus", "--out", str(tmp_path / "o")]) == 2
    assert "nowhere" in capsys.readouterr().err
    (tmp_path / "m.csv").write_text("path\nv.nii.gz\n")
    assert main(["batch", str(tmp_path / "m.csv"), "--method", "autofocus", "--out", str(tmp_path / "o")]) == 2
    assert "'input' column" in capsys.readouterr().err
    (tmp_path / "raw.h5").write_bytes(b"")  # the motion-table misuse is found before the file is read
    assert main(["correct", str(tmp_path / "raw.h5"), "--motion-csv", str(tmp_path / "m.csv"), "--out",
                 str(tmp_path / "o")]) == 2
    assert "--motion-csv" in capsys.readouterr().err
    # a NIfTI image does not record its shot pattern: both must be given, none is assumed
    base = ["correct", str(tmp_path / "v.nii.gz"), "--method", "autofocus", "--pe-axis", "0", "--out", str(tmp_path / "o3")]
    assert main(base + ["--shots", "8"]) == 2
    err = capsys.readouterr().err
    assert "give --ordering (" in err and "NIfTI image does not record" in err
    assert not (tmp_path / "o3").exists()


def test_motion_tables_that_do_not_fit_the_study_are_refused_before_any_work(tmp_path, capsys, monkeypatch):
    """Shots missing, a slice missing, no slice column for a volume, a bad number: each is one
    line naming the table, before a single task runs."""
    from mrideblur.batch import command

    ran = []
    monkeypatch.setattr(command, "run_task", lambda *a, **k: ran.append(a) or {"ok": False, "error": "ran"})
    write_nifti(tmp_path / "vol.nii.gz", _volume(2, 0), _affine())
    write_nifti(tmp_path / "img.nii.gz", _volume(1, 0)[:, :, 0], _affine())
    rows = {"no_slice.csv": "shot,rot_deg,ty,tx\n" + "".join(f"{s},0,0,0\n" for s in range(8)),
            "one_slice.csv": "slice,shot,rot_deg,ty,tx\n" + "".join(f"0,{s},0,0,0\n" for s in range(8)),
            "short.csv": "slice,shot,rot_deg,ty,tx\n" + "".join(f"{i},{s},0,0,0\n" for i in (0, 1) for s in range(7)),
            "nan.csv": "shot,rot_deg,ty,tx\n" + "".join(f"{s},0,{'x' if s == 3 else 0},0\n" for s in range(8))}
    for name, text in rows.items():
        (tmp_path / name).write_text(text)
    cases = [("vol.nii.gz", "no_slice.csv", "no 'slice' column"), ("vol.nii.gz", "one_slice.csv", "slice(s) [1]"),
             ("vol.nii.gz", "short.csv", "shots [7] are missing"), ("img.nii.gz", "nan.csv", "line 5")]
    for study, table, expected in cases:
        argv = ["correct", str(tmp_path / study), "--method", "autofocus", "--pe-axis", "0", "--shots", "8",
                "--ordering", "sequential", "--motion-csv", str(tmp_path / table), "--out", str(tmp_path / "o")]
        assert main(argv) == 2, table
        err = capsys.readouterr().err.strip()
        assert expected in err and table in err and "\n" not in err, err
    assert ran == []
    # the matching table for the 2D image is accepted (and then runs)
    assert main(["correct", str(tmp_path / "img.nii.gz"), "--method", "autofocus", "--pe-axis", "0", "--shots", "8",
                 "--ordering", "sequential", "--motion-csv", str(tmp_path / "no_slice.csv"), "--out",
                 str(tmp_path / "o")]) == 2
    assert ran and "ran" in capsys.readouterr().err


def test_bad_inputs_are_refused_before_the_numerical_libraries_load(tmp_path):
    """A missing file and a text file named .nii.gz fail with one line, without importing torch or
    sigpy (that import is what took 14-19 s on a busy machine)."""
    import subprocess
    import sys

    (tmp_path / "text.nii.gz").write_text("not an image")
    code = ("import sys; from mrideblur.cli import main; rc = main(sys.argv[1:]); "
            "print(rc, 'torch' in sys.modules, 'sigpy' in sys.modules)")
    for argv in (["correct", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "o")],
                 ["correct", str(tmp_path / "text.nii.gz"), "--method", "autofocus", "--pe-axis", "0", "--shots", "8",
                  "--ordering", "sequential", "--out", str(tmp_path / "o")],
                 ["deblur", str(tmp_path / "text.nii.gz"), "--method", "wiener", "--out", str(tmp_path / "o")],
                 ["simulate", str(tmp_path / "text.nii.gz"), "--out", str(tmp_path / "c.h5")]):
        proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
        assert proc.stdout.split() == ["2", "False", "False"], (argv, proc.stdout, proc.stderr)
        assert proc.stderr.count("\n") == 1 and "mrideblur: error:" in proc.stderr, proc.stderr


def test_nifti_with_a_known_motion_table_is_corrected_under_the_magnitude_model(tmp_path):
    """`correct study.nii.gz --method autofocus --motion-csv motion.csv`: a two-slice magnitude
    volume from the plain ndimage simulator (sequential step motion), corrected with the true
    motion table, gains PSNR in both slices; the output motion.csv has the file's slice indices;
    a table missing a shot fails with the file and the slice named."""
    from mrideblur.io.results import read_motion_csv, write_motion_csv
    from mrideblur.metrics import psnr
    from mrideblur.estimators.aligned_sense import reference_shot
    from mrideblur.physics.shots import make_shot_index
    from mrideblur.physics.simulate import motion_track
    from mrideblur.physics.simulate_simple import corrupt_image, move_ndimage

    si = make_shot_index(N, 8, "sequential")
    ref = reference_shot(si)
    motions = [motion_track(8, "step", 3.0, 3.0, seed=s) for s in (0, 1)]
    imgs = [mni_slice("axial", 0.45 + 0.05 * i, N) for i in range(2)]
    vol = np.stack([np.abs(corrupt_image(im, si, mo, 0.01, i)) for i, (im, mo) in enumerate(zip(imgs, motions))], 2)
    truth = [move_ndimage(im, *mo[ref]) for im, mo in zip(imgs, motions)]
    write_nifti(tmp_path / "study.nii.gz", vol, _affine())
    write_motion_csv(tmp_path / "motion.csv", np.stack(motions), slice_ids=[0, 1])
    assert np.allclose(read_motion_csv(tmp_path / "motion.csv", 8)[1], motions[1], atol=1e-5)
    argv = ["correct", str(tmp_path / "study.nii.gz"), "--method", "autofocus", "--pe-axis", "0", "--shots", "8",
            "--ordering", "sequential", "--motion-csv", str(tmp_path / "motion.csv"), "--out", str(tmp_path / "o"),
            "--quiet"]
    assert main(argv) == 0
    out = nib.load(tmp_path / "o" / "corrected.nii.gz").get_fdata()
    for i in range(2):
        gain = psnr(out[:, :, i], truth[i], fit_scale=True) - psnr(vol[:, :, i], truth[i], fit_scale=True)
        assert gain > 4, (i, gain)
    assert np.allclose(read_motion_csv(tmp_path / "o" / "motion.csv", 8)[1], motions[1], atol=1e-5)
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["slice_reports"][0]["method"] == "magnitude-model"
    bad = tmp_path / "bad.csv"
    bad.write_text("".join(line for line in (tmp_path / "motion.csv").read_text().splitlines(True) if not line.startswith("1,3,")))
    argv[argv.index(str(tmp_path / "motion.csv"))] = str(bad)
    argv[argv.index(str(tmp_path / "o"))] = str(tmp_path / "o2")
    assert main(argv) == 2


def test_summary_row_warns_when_the_data_fit_did_not_improve(tmp_path):
    from mrideblur.batch import Study
    from mrideblur.batch.assemble import summary_row

    good = {"uncorrected": 0.05, "corrected": 0.02, "improved": True}
    bad = {"uncorrected": 0.0412, "corrected": 0.0437, "improved": False}
    report = {"slice_indices": [3, 4], "data_fit": {"improved": False, "slices_not_improved": [4]}, "seconds": 2.0,
              "slice_reports": [{"data_fit": good}, {"data_fit": bad}]}
    row = summary_row(Study(id="s", input=tmp_path / "s.h5", ntasks=2), "done", report, tmp_path)
    assert "did not improve the data fit" in row["warning"] and "slice 4" in row["warning"]
    assert "0.0412" in row["warning"] and "0.0437" in row["warning"] and "slice 3" not in row["warning"]
    report["slice_reports"][1]["data_fit"] = good
    report["data_fit"] = {"improved": True, "slices_not_improved": []}
    assert summary_row(Study(id="s", input=tmp_path / "s.h5", ntasks=2), "done", report, tmp_path)["warning"] == ""


def test_coil_choices_are_the_estimators():
    from mrideblur.batch import COILS
    from mrideblur.estimators.aligned_sense import COIL_OPTIONS

    assert set(COILS) == set(COIL_OPTIONS)
