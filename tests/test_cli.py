"""The ``mrideblur`` command line, run in-process through :func:`mrideblur.cli.main`."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import mrideblur
from mrideblur import cli
from mrideblur.cli import ProgressBar, main, summarize_history
from mrideblur.deblur import blur, gaussian_kernel
from mrideblur.io import read_image, read_nifti, write_array, write_image
from mrideblur.metrics import psnr


def _scene(n: int = 48) -> np.ndarray:
    """A piecewise-constant test scene in [0.1, 0.9] (edges in both directions)."""
    yy, xx = np.mgrid[:n, :n]
    x = 0.1 + 0.5 * ((xx // 8 + yy // 8) % 2)
    x += 0.3 * ((xx - n / 2) ** 2 + (yy - n / 2) ** 2 < (n / 4) ** 2)
    return x


@pytest.fixture
def case(tmp_path: Path) -> dict:
    """A blurred 48 x 48 PNG, its sharp scene and the Gaussian kernel as .npy and .png."""
    sharp = _scene()
    kernel = gaussian_kernel(1.2, size=7)
    blurred = blur(sharp, kernel, noise_sigma=0.002, seed=0)
    png = write_image(tmp_path / "blurred.png", blurred, bit_depth=16)
    return {
        "sharp": sharp,
        "blurred": read_image(png),
        "kernel": kernel,
        "png": png,
        "kernel_npy": write_array(tmp_path / "k.npy", kernel),
        "kernel_png": write_image(tmp_path / "k.png", kernel / kernel.max(), bit_depth=16),
    }


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def test_version(capsys):
    assert main(["--version"]) == 0
    assert mrideblur.__version__ in capsys.readouterr().out


def test_no_command_is_usage_error(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().err


def test_nonblind_png_writes_outputs_and_report(tmp_path, case, capsys):
    out = tmp_path / "out"
    code = main(["deblur", str(case["png"]), "--method", "wiener", "--kernel", str(case["kernel_npy"]),
                 "--out", str(out), "--param", "noise_sigma=0.002"])
    assert code == 0
    for name in ("deblurred.png", "deblurred.npy", "kernel.png", "kernel.npy", "report.json"):
        assert (out / name).is_file(), name
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left

    deblurred = np.load(out / "deblurred.npy")
    assert deblurred.shape == case["blurred"].shape
    inner = (slice(6, -6), slice(6, -6))
    gain = psnr(deblurred[inner], case["sharp"][inner]) - psnr(case["blurred"][inner], case["sharp"][inner])
    assert gain > 3.0
    np.testing.assert_allclose(np.load(out / "kernel.npy"), case["kernel"])
    assert read_image(out / "kernel.png").max() == 1.0  # scaled to its maximum

    report = _report(out)
    assert report["command"] == "deblur"
    assert report["method"] == "wiener" and report["blind"] is False
    assert report["input"] == str(case["png"].resolve())
    assert report["input_kind"] == "image" and report["input_shape"] == [48, 48]
    assert report["kernel_size"] == [7, 7]
    assert report["kernel_file"] == str(case["kernel_npy"].resolve())
    assert report["parameters"]["noise_sigma"] == 0.002
    assert report["mrideblur_version"] == mrideblur.__version__
    assert report["seconds"] >= 0 and len(report["slices"]) == 1
    assert "report.json" in capsys.readouterr().out


def test_kernel_from_png_and_valid_boundary(tmp_path, case):
    out = tmp_path / "out"
    code = main(["deblur", str(case["png"]), "--method", "tikhonov", "--kernel", str(case["kernel_png"]),
                 "--boundary", "valid", "--out", str(out), "--quiet"])
    assert code == 0
    np.testing.assert_allclose(np.load(out / "kernel.npy"), case["kernel"], atol=1e-4)
    assert np.load(out / "deblurred.npy").shape == (48 + 6, 48 + 6)  # the whole scene
    assert _report(out)["parameters"]["boundary"] == "valid"


def test_npy_input_keeps_intensity_unit(tmp_path, case):
    src = write_array(tmp_path / "in.npy", case["blurred"] * 1000.0)
    out = tmp_path / "out"
    assert main(["deblur", str(src), "--method", "wiener", "--kernel", str(case["kernel_npy"]),
                 "--out", str(out), "--quiet"]) == 0
    deblurred = np.load(out / "deblurred.npy")
    assert 500 < deblurred.max() < 1500  # same unit as the input, not [0, 1]
    assert _report(out)["intensity_scale"] == pytest.approx(np.abs(case["blurred"]).max() * 1000.0)


def test_nonblind_without_kernel_is_clear_error(tmp_path, case, capsys):
    code = main(["deblur", str(case["png"]), "--method", "wiener", "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("mrideblur: error:") and "--kernel" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_blind_with_kernel_is_error(tmp_path, case, capsys):
    assert main(["deblur", str(case["png"]), "--method", "vb", "--kernel", str(case["kernel_npy"]),
                 "--out", str(tmp_path / "o")]) == 2
    assert "--kernel" in capsys.readouterr().err


def test_missing_input_names_the_file(tmp_path, capsys):
    missing = tmp_path / "nope.png"
    code = main(["deblur", str(missing), "--method", "map", "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("mrideblur: error:") and str(missing) in err
    assert "Traceback" not in err


def test_corrupted_input_and_kernel(tmp_path, case, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    assert main(["deblur", str(bad), "--method", "map", "--out", str(tmp_path / "o")]) == 2
    assert str(bad) in capsys.readouterr().err

    even = write_array(tmp_path / "even.npy", np.ones((4, 4)))
    assert main(["deblur", str(case["png"]), "--method", "wiener", "--kernel", str(even),
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(even) in err and "odd" in err


def test_library_value_error_is_one_line(tmp_path, case, capsys):
    code = main(["deblur", str(case["png"]), "--method", "wiener", "--kernel", str(case["kernel_npy"]),
                 "--param", "nsr=-1", "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mrideblur: error:") and "nsr" in err and "\n" not in err


def test_unknown_blind_parameter(tmp_path, case, capsys):
    assert main(["deblur", str(case["png"]), "--method", "map", "--param", "bogus=1",
                 "--out", str(tmp_path / "o")]) == 2
    assert "bogus" in capsys.readouterr().err


def test_even_kernel_size_is_usage_error(tmp_path, case, capsys):
    assert main(["deblur", str(case["png"]), "--kernel-size", "8", "--out", str(tmp_path / "o")]) == 2
    assert "odd" in capsys.readouterr().err


def _volume(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A 40 x 3 x 40 NIfTI volume (slices along axis 1), one of them empty, in scanner units."""
    kernel = gaussian_kernel(1.0, size=5)
    slices = [blur(_scene(40) * (1 + 0.2 * i), kernel, noise_sigma=0.002, seed=i) for i in range(3)]
    vol = np.stack(slices, axis=1) * 800.0
    vol[:, 2, :] = 0.0
    affine = np.array([[0.0, 0.0, 0.8, -20.0], [0.9, 0.0, 0.0, 10.0], [0.0, 2.5, 0.0, 4.0], [0, 0, 0, 1]])
    header = nib.Nifti1Header()
    header["descrip"] = b"cli test volume"
    header.set_xyzt_units("mm")
    path = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(vol.astype(np.float32), affine, header), path)
    return path, affine, kernel


def test_nifti_slice_by_slice_keeps_affine_and_header(tmp_path):
    path, affine, kernel = _volume(tmp_path)
    knpy = write_array(tmp_path / "k.npy", kernel)
    out = tmp_path / "out"
    assert main(["deblur", str(path), "--method", "wiener", "--kernel", str(knpy), "--axis", "1",
                 "--out", str(out), "--quiet"]) == 0
    data, out_affine, header = read_nifti(out / "deblurred.nii.gz")
    src, _, _ = read_nifti(path)
    assert data.shape == src.shape
    np.testing.assert_allclose(out_affine, affine, atol=1e-6)
    assert header["descrip"].item() == b"cli test volume"
    assert header.get_xyzt_units()[0] == "mm"
    assert np.all(data[:, 2, :] == 0)  # the empty slice is passed through
    assert np.abs(data[:, 1, :]).max() > 100  # scanner units kept
    assert np.load(out / "kernel.npy").shape == (3, 5, 5)
    assert (out / "kernel.png").is_file() and not (out / "deblurred.png").exists()

    report = _report(out)
    assert report["input_kind"] == "nifti" and report["parameters"]["axis"] == 1
    assert [s["index"] for s in report["slices"]] == [0, 1, 2]
    assert report["slices"][2]["skipped"] == "constant slice"


def test_nifti_bad_axis(tmp_path, capsys):
    path, _, _ = _volume(tmp_path)
    assert main(["deblur", str(path), "--method", "map", "--axis", "3", "--out", str(tmp_path / "o")]) == 2
    assert "--axis" in capsys.readouterr().err


def test_blind_map_few_iterations(tmp_path, case):
    """Wiring of a blind method: the estimated kernel and the history reach the outputs."""
    out = tmp_path / "out"
    code = main(["deblur", str(case["png"]), "--method", "map", "--kernel-size", "7", "--seed", "1",
                 "--param", "n_iter=3", "--patch", "0", "0", "40", "40", "--out", str(out)])
    assert code == 0
    k = np.load(out / "kernel.npy")
    assert k.shape == (7, 7) and k.sum() == pytest.approx(1.0) and k.min() >= 0
    report = _report(out)
    assert report["blind"] is True and report["kernel_size"] == [7, 7]
    assert report["parameters"] == {"seed": 1, "axis": None, "patch": [0, 0, 40, 40], "n_iter": 3}
    history = report["slices"][0]["history"]
    assert history["method"] == "map" and history["patch"] == [0, 0, 40, 40]


def test_blind_vb_recovers_kernel(tmp_path, case):
    from mrideblur.metrics import kernel_similarity

    out = tmp_path / "out"
    assert main(["deblur", str(case["png"]), "--method", "vb", "--kernel-size", "7", "--out", str(out)]) == 0
    assert kernel_similarity(np.load(out / "kernel.npy"), case["kernel"]) > 0.8


def test_progress_bar_without_tty(capsys):
    bar = ProgressBar(desc="t")
    for step in (1, 2, 3):
        bar(step, 3, f"step {step}")
    bar(1, 5, "next slice")  # restarts
    bar(5, 5)
    bar.close()
    assert "5/5" in capsys.readouterr().err
    quiet = ProgressBar(enabled=False)
    quiet(1, 2, "x")
    quiet.close()
    assert capsys.readouterr().err == ""


def test_summarize_history():
    hist = {
        "method": "vb",
        "scales": [3, 5, 7],
        "noise_sigma": list(np.linspace(0.1, 0.01, 20)),
        "kernels": [np.ones((3, 3)), np.ones((5, 5))],
        "cancelled": False,
        "seconds": np.float64(1.5),
    }
    s = summarize_history(hist)
    assert s["method"] == "vb" and s["scales"] == [3, 5, 7] and s["cancelled"] is False
    assert s["noise_sigma"]["n"] == 20 and s["noise_sigma"]["last"] == pytest.approx(0.01)
    assert s["kernels"] == "<list>"
    json.dumps(s, default=float)


def test_demo_command_wiring(tmp_path, monkeypatch, capsys):
    calls = {}

    def fake_run_demo(out_dir, quick=False, progress=None):
        calls.update(out_dir=Path(out_dir), quick=quick)
        progress(1, 2, "half")
        progress(2, 2, "done")
        return {"figure": Path(out_dir) / "demo.png"}

    import mrideblur.demo

    monkeypatch.setattr(mrideblur.demo, "run_demo", fake_run_demo)
    assert main(["demo", "--out", str(tmp_path / "d"), "--quick"]) == 0
    assert calls == {"out_dir": tmp_path / "d", "quick": True}
    assert f"output: {tmp_path / 'd'}" in capsys.readouterr().out


def test_demo_quick_end_to_end(tmp_path, capsys):
    """The real quick demo (about 25 s): every method is scored, the figures written, the
    summary printed, and every stage's bar labelled and ended at 100 %."""
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    for label in ("blurred input", "inverse filter", "Wiener", "hyper-Laplacian", "blind MAP", "blind VB",
                  "uncorrected ->", "motion error", "data fit", f"output: {tmp_path}"):
        assert label in out, label
    assert str(tmp_path / "demo.png") not in out  # the directory, not every file
    for stage in ("blur", "inverse", "wiener", "hyper-laplacian", "blind MAP", "blind VB", "figure",
                  "MRI simulation", "aligned-SENSE correction"):
        assert f"demo: {stage}: 100%" in err, stage
    assert (tmp_path / "mri" / "report.png").is_file()
    report = json.loads((tmp_path / "demo_report.json").read_text())
    psnr_db = report["psnr_db"]
    assert set(psnr_db) == {"blurred", "inverse", "wiener", "hyper-laplacian", "map", "vb"}
    assert psnr_db["hyper-laplacian"] > psnr_db["blurred"] + 3
    assert psnr_db["inverse"] < psnr_db["wiener"]
    assert (tmp_path / "demo.png").stat().st_size > 10_000


def test_demo_alignment_finds_the_shift():
    from mrideblur.demo import aligned_psnr

    sharp = np.random.default_rng(0).uniform(size=(40, 40))
    region = (30, 30)
    moved = np.roll(sharp, (1, -2), axis=(0, 1))  # the estimate is the truth moved by (1, -2)
    score, shift = aligned_psnr(sharp, moved, region, max_shift=2)
    assert score == np.inf and shift == (-1, 2)
    inner = sharp[5:35, 5:35]  # an estimate of the region only is used as it is
    assert aligned_psnr(sharp, inner, region)[0] == np.inf


def test_method_lists_match_the_library():
    from mrideblur.deblur import BLIND_METHODS, METHODS

    assert set(cli.BLIND_METHODS) == set(BLIND_METHODS)
    assert set(cli.NONBLIND_METHODS) == set(METHODS)


def test_out_is_a_file(tmp_path, case, capsys):
    taken = tmp_path / "taken"
    taken.write_text("x")
    assert main(["deblur", str(case["png"]), "--method", "wiener", "--kernel", str(case["kernel_npy"]),
                 "--out", str(taken)]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert main(["demo", "--out", str(taken)]) == 2


def test_commands_registry_builds_every_subcommand():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"deblur", "demo"} <= set(sub.choices)


# --------------------------------------------------------------------------------------------
# simulate


def test_simulate_builtin_writes_a_valid_case(tmp_path):
    from mrideblur.io.case import read_case

    out = tmp_path / "case.h5"
    assert main(["simulate", "--builtin", "shepp", "--size", "48", "--coils", "4", "--shots", "6",
                 "--motion", "step", "--seed", "3", "--out", str(out)]) == 0
    case = read_case(out)
    assert case.kspace.shape == (4, 48, 48) and case.kspace.dtype == np.complex64
    assert case.nshot == 6
    assert case.truth["motion"].shape == (6, 3) and not case.truth["motion"][0].any()
    assert case.attrs["motion"] == "step" and case.attrs["seed"] == 3


def test_simulate_nifti_slice_keeps_voxel_size(tmp_path):
    import nibabel as nib

    from mrideblur.io.case import read_case

    vol = np.zeros((40, 36, 20), np.float32)
    vol[10:30, 8:28, :] = 1.0
    src = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.diag([1.5, 2.0, 3.0, 1.0])), src)
    out = tmp_path / "case.h5"
    assert main(["simulate", str(src), "--axis", "2", "--shots", "4", "--acs", "8", "--out", str(out), "--coils", "2"]) == 0
    case = read_case(out)
    assert case.kspace.shape == (2, 40, 36)
    assert case.voxel_size_mm == (1.5, 2.0)


def test_simulate_missing_input_is_a_clear_error(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "nope.png"), "--out", str(tmp_path / "c.h5")]) == 2
    err = capsys.readouterr().err
    assert "nope.png" in err and "Traceback" not in err
    assert not (tmp_path / "c.h5").exists()


# --------------------------------------------------------------------------------------------
# correct


def test_correct_writes_every_output(tmp_path):
    import json

    import h5py
    import nibabel as nib

    case = tmp_path / "case.h5"
    assert main(["simulate", "--builtin", "mni", "--size", "64", "--shots", "4", "--coils", "6",
                 "--acs", "16", "--seed", "2", "--out", str(case)]) == 0
    out = tmp_path / "out"
    assert main(["correct", str(case), "--out", str(out), "--quiet", "--max-iter", "60"]) == 0
    for name in ("recon.h5", "image.nii.gz", "motion.csv", "report.json", "report.png"):
        assert (out / name).is_file(), name
    rep = json.loads((out / "report.json").read_text())
    assert rep["psnr_db"]["corrected"] > rep["psnr_db"]["uncorrected"] + 5
    lines = (out / "motion.csv").read_text().splitlines()
    assert lines[0] == "shot,rot_deg,ty,tx" and len(lines) == 5
    with h5py.File(out / "recon.h5") as f:
        assert f["image"].shape == (64, 64) and f["motion"].shape == (4, 3)
    assert nib.load(out / "image.nii.gz").shape == (64, 64)
    assert not list(out.glob("*.tmp*"))


def test_correct_rejects_nifti_and_missing_files(tmp_path, capsys):
    assert main(["correct", str(tmp_path / "x.nii.gz"), "--out", str(tmp_path / "o")]) == 2
    assert "x.nii.gz: no such file" in capsys.readouterr().err
    nib.save(nib.Nifti1Image(np.ones((16, 16), np.float32), np.eye(4)), tmp_path / "x.nii.gz")
    assert main(["correct", str(tmp_path / "x.nii.gz"), "--out", str(tmp_path / "o")]) == 2
    assert "k-space" in capsys.readouterr().err
    assert main(["correct", str(tmp_path / "none.h5"), "--out", str(tmp_path / "o")]) == 2
    assert "none.h5" in capsys.readouterr().err


def _stderr_of_correct(tmp_path, monkeypatch, capsys, fit: dict) -> list[str]:
    """``mrideblur correct --quiet`` on a small simulated case whose correction returns ``fit`` as
    ``report["data_fit"]``: the lines written to stderr."""
    import mrideblur.mri
    from mrideblur.mri import Result

    case = tmp_path / "case.h5"
    assert main(["simulate", "--builtin", "shepp", "--size", "32", "--shots", "4", "--coils", "2", "--acs", "8",
                 "--out", str(case)]) == 0

    def fake_correct(kspace, shot_index, method="aligned-sense", sens=None, **kw):
        image = np.ones(kspace.shape[-2:], np.complex64)
        return Result(image=image, motion=np.zeros((4, 3)), sens=np.ones(kspace.shape, np.complex64),
                      uncorrected=image, report={"residual_per_shot": [0.1] * 4, "data_fit": fit})

    monkeypatch.setattr(mrideblur.mri, "correct", fake_correct)
    capsys.readouterr()
    assert main(["correct", str(case), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    return capsys.readouterr().err.strip().splitlines()


def test_correct_says_when_the_data_fit_did_not_improve(tmp_path, monkeypatch, capsys):
    """One line on stderr, with both misfits, when report["data_fit"]["improved"] is False."""
    err = _stderr_of_correct(tmp_path, monkeypatch, capsys,
                             {"uncorrected": 0.0412, "corrected": 0.0437, "improved": False})
    assert len(err) == 1 and "did not improve the data fit" in err[0]
    assert "0.0412" in err[0] and "0.0437" in err[0]
    assert json.loads((tmp_path / "out" / "report.json").read_text())["data_fit"]["improved"] is False


def test_correct_says_when_the_data_fit_cannot_vouch_for_the_motion(tmp_path, monkeypatch, capsys):
    """A better fit on a scan whose shots mostly own no central line: one line on stderr saying
    the fit cannot vouch for the motion (report["data_fit"]["vouched"] False)."""
    err = _stderr_of_correct(tmp_path, monkeypatch, capsys,
                             {"uncorrected": 0.0412, "corrected": 0.0137, "improved": True, "vouched": False,
                              "shots_outside_centre": [0, 3]})
    assert len(err) == 1 and "cannot vouch" in err[0] and "2 shots" in err[0]


def test_correct_says_when_the_motion_leaves_the_field_of_view(tmp_path, monkeypatch, capsys):
    """A better fit whose motion moves 1.9% of the image out of the field of view in shot 2: one
    line on stderr naming the share and the shot; under the warning threshold, nothing."""
    err = _stderr_of_correct(tmp_path, monkeypatch, capsys,
                             {"uncorrected": 0.0412, "corrected": 0.0137, "improved": True, "vouched": True,
                              "fov_exit": [0.0, 0.001, 0.019, 0.0]})
    assert len(err) == 1 and "out of the field of view" in err[0] and "1.9%" in err[0] and "shot 2" in err[0]
    err = _stderr_of_correct(tmp_path, monkeypatch, capsys,
                             {"uncorrected": 0.0412, "corrected": 0.0137, "improved": True, "vouched": True,
                              "fov_exit": [0.0, 0.001, 0.004, 0.0]})
    assert err == []


def test_deblur_says_when_the_result_rings_beyond_the_input(tmp_path, case, monkeypatch, capsys):
    """The overshoot warning of blind_deconvolve reaches stderr and report.json (not a traceback)."""
    import mrideblur.deblur
    from mrideblur.estimators.base import Result

    def ringing(blurred, kernel_size, **kwargs):
        k = np.zeros((kernel_size, kernel_size))
        k[kernel_size // 2, kernel_size // 2] = 1.0
        return Result(image=np.asarray(blurred) * 5.0, kernel=k,
                      history={"overshoot": 0.3, "warning": "30.0% of the deblurred pixels lie outside ..."})

    monkeypatch.setattr(mrideblur.deblur, "blind_deconvolve", ringing)
    assert main(["deblur", str(case["png"]), "--method", "vb", "--kernel-size", "7", "--out", str(tmp_path / "o")]) == 0
    assert "mrideblur: warning: 30.0% of the deblurred pixels" in capsys.readouterr().err
    assert _report(tmp_path / "o")["slices"][0]["history"]["overshoot"] == 0.3


def test_deblur_kernel_field_writes_the_field(tmp_path, capsys):
    """--method kernel-field: the shipped classifier on a steadily rolling camera; the field of
    kernels reaches kernel.npy, the montage and the report; options of other methods are refused."""
    from mrideblur.deblur import PoseBlur, blur_nonuniform, roll_sweep
    from mrideblur.io.anatomy import photo

    x = photo("camera")[150:278, 150:278]
    y = np.clip(blur_nonuniform(x, PoseBlur(x.shape, roll_sweep(16, 1.5), centre=(-200.0, 63.5)), 0.01, seed=0), 0, 1)
    write_image(tmp_path / "rolled.png", y, bit_depth=16)
    out = tmp_path / "out"
    assert main(["deblur", str(tmp_path / "rolled.png"), "--method", "kernel-field", "--param", "grid=[3,3]",
                 "--out", str(out), "--quiet"]) == 0
    field = np.load(out / "kernel.npy")
    assert field.shape == (3, 3, 33, 33) and np.allclose(field.sum(axis=(2, 3)), 1.0)
    report = _report(out)
    assert report["blind"] is True and report["kernel_size"] == [3, 3, 33, 33]
    assert "field of 33-pixel kernels" in capsys.readouterr().out
    assert main(["deblur", str(tmp_path / "rolled.png"), "--method", "kernel-field", "--kernel-size", "9",
                 "--out", str(tmp_path / "o2")]) == 2
