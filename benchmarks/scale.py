"""Whole studies at scale: ``mrideblur batch`` throughput against workers, peak memory of a
256x256x176 32-coil study processed slice by slice, and the cost carried to a fastMRI-brain-sized
set on an N-worker Dask cluster.

Every measurement runs :func:`mrideblur.batch.run_batch`, the code behind ``mrideblur batch``
(LocalCluster of single-threaded worker processes, one task per slice), on case files made
here with :func:`mrideblur.physics.simulate` (MNI152 slices at different heights, interleaved shots,
random motion up to 3 deg / 3 px, 1% noise). Ground truth is left out of the files, so the
figures are the method's own cost (with a truth the batch also reconstructs the uncorrected
image for the PSNR columns).

Parts (``--parts``, default all):

- ``throughput``: 8 slices (``--size`` 96, 8 coils, 16 shots) with 1 and 2 workers, for
  aligned-SENSE and, when :data:`mrideblur.mri.METHODS` has it, JSMoCo (on
  ``--jsmoco-slices`` of them). Slices per minute = slices / wall time of the whole batch,
  cluster start-up included.
- ``fastmri``: one 320x320 slice with 16 coils (the size of a fastMRI brain slice after the
  readout crop) on 1 worker: seconds per slice, carried to the fastMRI brain set.
- ``memory``: a 256x256x176 study with 32 coils (2.9 GB of k-space, written slice by slice,
  never held whole) processed by 2 workers: ``--memory-slices`` slices with the method
  ``none`` (ESPIRiT + SENSE) and ``--memory-aligned-slices`` with aligned-SENSE. Peak RSS is
  sampled every 0.2 s over the batch process and all its descendants (the sum, and the
  largest single process), next to each worker's own high-water mark
  (``getrusage(RUSAGE_SELF).ru_maxrss``, ``peak_rss_mb`` in the summary).

Run: ``python benchmarks/scale.py`` (writes ``benchmarks/scale.md``; about an hour on a
2-core machine) or ``--quick`` (smaller sizes, same code, writes ``benchmarks/scale_quick.md``).
The CPU is shared with other work on the development machine: the load average is recorded
before and after every part, and timings taken under load are pessimistic for the speed-up.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mrideblur.batch import BatchOptions, run_batch  # noqa: E402

MEMORY_LIMIT_GB = 8.0
#: fastMRI brain (Zbontar et al., arXiv:1811.08839, 2020 revision): 6,970 multi-coil volumes
#: (train 4,469, validation 1,378, test 558, challenge 565), about 16 slices each.
FASTMRI_BRAIN_VOLUMES = 6970
FASTMRI_SLICES_PER_VOLUME = 16


def _load() -> str:
    return ", ".join(f"{v:.1f}" for v in os.getloadavg())


class TreeRSS:
    """Sample the resident memory of this process and all its descendants every 0.2 s."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self.peak_total = 0
        self.peak_single = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        me = self._psutil.Process()
        procs = [me] + me.children(recursive=True)
        total = 0
        for p in procs:
            try:
                rss = p.memory_info().rss
            except (self._psutil.NoSuchProcess, self._psutil.AccessDenied):
                continue
            total += rss
            self.peak_single = max(self.peak_single, rss)
        self.peak_total = max(self.peak_total, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(0.2)

    def __enter__(self) -> TreeRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def _write_stack(path: Path, nslice: int, size: int, ncoil: int, nshot: int, distinct: int, seed: int) -> None:
    """A case file ``(slices, coils, ky, kx)`` written slice by slice (``distinct`` simulated
    slices cycled), in the case format of docs/conventions.md, without ground truth."""
    import h5py

    from mrideblur import __version__
    from mrideblur.io.anatomy import mni_slice
    from mrideblur.mri import simulate

    cases = [simulate(mni_slice("axial", 0.40 + 0.25 * i / max(distinct - 1, 1), size), ncoil=ncoil, nshot=nshot,
                      ordering="interleaved", motion="random", max_rot=3.0, max_trans=3.0, noise=0.01, seed=seed + i)
             for i in range(distinct)]
    tmp = path.with_suffix(".tmp.h5")
    with h5py.File(tmp, "w") as f:
        ks = f.create_dataset("kspace", shape=(nslice, ncoil, size, size), dtype=np.complex64,
                              chunks=(1, ncoil, size, size))
        for i in range(nslice):
            ks[i] = cases[i % distinct].kspace
        f.create_dataset("shot_index", data=cases[0].shot_index.astype(np.int32))
        f.attrs["layout"] = "stack"
        f.attrs["mrideblur_version"] = __version__
        f.attrs["voxel_size_mm"] = np.array([1.0, 1.0, 1.0])
    os.replace(tmp, path)


def _batch(src: Path, out: Path, options: BatchOptions, workers: int) -> dict[str, Any]:
    """One fresh batch run; wall time, the summary row, per-slice seconds, memory."""
    if out.exists():
        shutil.rmtree(out)
    load0 = _load()
    with TreeRSS() as mem:
        t0 = time.perf_counter()
        rows = run_batch(src, out, options, workers=workers, progress=False)
        wall = time.perf_counter() - t0
    (row,) = rows
    if row["status"] != "done":
        raise RuntimeError(f"batch failed: {row}")
    report = json.loads((out / row["study"] / "report.json").read_text())
    n = int(row["slices"])
    return {"wall": wall, "slices": n, "per_slice": report["seconds_per_slice"],
            "spm": 60.0 * n / wall, "worker_peak_mb": report["peak_rss_mb"],
            "tree_peak_gb": mem.peak_total / 1e9, "single_peak_gb": mem.peak_single / 1e9,
            "load_before": load0, "load_after": _load()}


_CONTROL = """
import json, sys, time
from dataclasses import asdict
from mrideblur.batch import BatchOptions, run_task
spec = {"study": "control", "kind": "case", "input": sys.argv[1], "index": int(sys.argv[2]), "meta": {"layout": "stack"},
        "options": asdict(BatchOptions(method="aligned-sense", coils="espirit")), "truth": None, "part": sys.argv[3]}
r = run_task(spec)
print(json.dumps({"seconds": r["seconds"], "ok": r["ok"]}))
"""


def _control(path: Path, work: Path) -> dict[str, float]:
    """What this machine allows at the moment: one slice task in one plain process, then two
    at once in two plain processes (no Dask). ``ceiling = 2 t_alone / t_together``."""
    import subprocess

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}

    def start(i: int) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", _CONTROL, str(path), str(i), str(work / f"control{i}.npz")],
                                stdout=subprocess.PIPE, text=True, env=env)

    def seconds(proc: subprocess.Popen) -> float:
        out, _ = proc.communicate()
        return float(json.loads(out.strip().splitlines()[-1])["seconds"])

    alone = seconds(start(0))
    procs = [start(1), start(2)]
    together = float(np.mean([seconds(p) for p in procs]))
    return {"alone": alone, "together": together, "ceiling": 2 * alone / together}


def _methods() -> list[str]:
    from mrideblur.mri import METHODS

    return [m for m in ("aligned-sense", "jsmoco") if m in METHODS]


def part_throughput(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    src = work / "throughput"
    src.mkdir(parents=True, exist_ok=True)
    _write_stack(src / "stack8.h5", 8, args.size, 8, 16, distinct=8, seed=100)
    res: dict[str, Any] = {"size": args.size, "coils": 8, "shots": 16, "runs": {}}
    print("throughput: control, plain processes ...", flush=True)
    res["control_before"] = _control(src / "stack8.h5", work)
    for method in _methods():
        slices = None if method == "aligned-sense" else f"0:{args.jsmoco_slices}"
        for workers in (1, 2):
            opts = BatchOptions(method=method, coils="espirit", slices=slices)
            print(f"throughput: {method}, {workers} worker(s) ...", flush=True)
            r = _batch(src, work / f"out_{method}_{workers}", opts, workers)
            res["runs"][f"{method}/{workers}"] = r
            print(f"  {r['spm']:.2f} slices/min, wall {r['wall']:.0f} s, load {r['load_before']} -> {r['load_after']}",
                  flush=True)
    res["control_after"] = _control(src / "stack8.h5", work)
    return res


def part_fastmri(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    src = work / "fastmri"
    src.mkdir(parents=True, exist_ok=True)
    size, coils = (args.fastmri_size, 16)
    _write_stack(src / "slice.h5", 1, size, coils, 16, distinct=1, seed=200)
    print("fastmri-size slice: aligned-sense, 1 worker ...", flush=True)
    r = _batch(src, work / "out_fastmri", BatchOptions(method="aligned-sense", coils="espirit"), 1)
    print(f"  {r['per_slice'][0]:.0f} s per slice", flush=True)
    return {"size": size, "coils": coils, "run": r}


def part_memory(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    src = work / "memory"
    src.mkdir(parents=True, exist_ok=True)
    n, size, coils = args.memory_study
    path = src / "study.h5"
    t0 = time.perf_counter()
    _write_stack(path, n, size, coils, 16, distinct=4, seed=300)
    made = time.perf_counter() - t0
    res: dict[str, Any] = {"shape": [n, coils, size, size], "file_gb": path.stat().st_size / 1e9, "made_s": made,
                           "runs": {}}
    for method, count in (("none", args.memory_slices), ("aligned-sense", args.memory_aligned_slices)):
        if count <= 0:
            continue
        print(f"memory: {method} on {count} slices, 2 workers ...", flush=True)
        r = _batch(src, work / f"out_memory_{method}", BatchOptions(method=method, coils="espirit",
                                                                    slices=f"0:{count}"), 2)
        res["runs"][method] = r
        print(f"  peak tree {r['tree_peak_gb']:.2f} GB, largest process {r['single_peak_gb']:.2f} GB, "
              f"{np.mean(r['per_slice']):.0f} s per slice", flush=True)
    return res


def _fmt_s(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def write_markdown(path: Path, args: argparse.Namespace, results: dict[str, Any], started: str) -> None:
    import dask
    import torch

    from mrideblur import __version__

    lines = [f"# Whole studies at scale ({'quick' if args.quick else 'full'} mode)", ""]
    cmd = "python benchmarks/scale.py" + (" --quick" if args.quick else "")
    lines += [f"- Command: `{cmd}`" + (f" (then `--parts {args.parts} --keep` to rerun that part alone)"
                                         if args.keep else ""),
              f"- Date: {started} UTC (last run)",
              f"- CPU: {platform.processor() or platform.machine()}; {os.cpu_count()} logical CPUs; shared with other "
              f"work (load averages before -> after each run below)",
              f"- mrideblur {__version__}, Python {platform.python_version()}, numpy {np.__version__}, torch "
              f"{torch.__version__}, dask {dask.__version__}",
              f"- GPU: {'none here (torch.cuda.is_available() is False)' if not torch.cuda.is_available() else torch.cuda.get_device_name(0)}",
              "- Every run is `mrideblur.batch.run_batch` (what `mrideblur batch` runs): a LocalCluster of "
              "single-threaded worker processes, one task per slice, simulated MNI152 slices with interleaved "
              "shots, random motion up to 3 deg / 3 px, 1% noise, no ground truth in the files; `--coils espirit`.",
              ""]
    tp = results.get("throughput")
    if tp:
        lines += ["## Slices per minute against workers", "",
                  f"8 slices of {tp['size']}x{tp['size']}, {tp['coils']} coils, {tp['shots']} shots (JSMoCo: the "
                  f"first {args.jsmoco_slices}). Wall time of the whole batch, cluster start-up and worker imports "
                  "included; *per slice* is the mean compute time of one task inside its worker.", "",
                  "| method | workers | slices | wall | slices / min | per slice | speed-up | load before -> after |",
                  "|---|---|---|---|---|---|---|---|"]
        for method in _methods():
            one = tp["runs"].get(f"{method}/1")
            for w in (1, 2):
                r = tp["runs"].get(f"{method}/{w}")
                if r is None:
                    continue
                sp = f"{r['spm'] / one['spm']:.2f}x" if one else ""
                lines.append(f"| {method} | {w} | {r['slices']} | {_fmt_s(r['wall'])} | {r['spm']:.2f} | "
                             f"{np.mean(r['per_slice']):.1f} s | {sp} | {r['load_before']} -> {r['load_after']} |")
        cb, ca = tp.get("control_before"), tp.get("control_after")
        if cb and ca:
            lines += ["", "What the machine allowed: the same aligned-SENSE slice task in one plain Python process "
                      "(no Dask), then two at once in two processes: "
                      f"{cb['alone']:.1f} s alone, {cb['together']:.1f} s each together before the runs "
                      f"(attainable speed-up {cb['ceiling']:.2f}x); {ca['alone']:.1f} s and {ca['together']:.1f} s after "
                      f"({ca['ceiling']:.2f}x). Two workers cannot beat that ceiling: when the other core is busy with "
                      "other work, a second worker only shares the first one's core."]
        if "jsmoco" not in _methods():
            lines += ["", "JSMoCo: not in `mrideblur.mri.METHODS` when this ran; rerun the script once it is."]
        lines += ["", "GPU: no GPU was lent to this task, so no `--device cuda` row; the command is the same with "
                  "`--device cuda --workers 1` per GPU.", ""]
    fm = results.get("fastmri")
    if fm:
        t = fm["run"]["per_slice"][0]
        nsl = FASTMRI_BRAIN_VOLUMES * FASTMRI_SLICES_PER_VOLUME
        eff = None
        if tp and "aligned-sense/1" in tp["runs"] and "aligned-sense/2" in tp["runs"]:
            speedup = tp["runs"]["aligned-sense/2"]["spm"] / tp["runs"]["aligned-sense/1"]["spm"]
            ceilings = [c["ceiling"] for c in (tp.get("control_before"), tp.get("control_after")) if c]
            # Dask's own efficiency: its 2-worker speed-up against what two plain processes got
            eff = speedup / float(np.mean(ceilings)) if ceilings else speedup / 2
        eff_used = min(eff, 1.0) if eff else 1.0
        lines += ["## Carried to a fastMRI-brain-sized set", "",
                  f"Measured: one {fm['size']}x{fm['size']} slice with {fm['coils']} coils, aligned-SENSE, one "
                  f"single-threaded worker: **{t:.0f} s per slice** (load {fm['run']['load_before']} -> "
                  f"{fm['run']['load_after']}). fastMRI brain: {FASTMRI_BRAIN_VOLUMES:,} multi-coil volumes x about "
                  f"{FASTMRI_SLICES_PER_VOLUME} slices = {nsl:,} slices (Zbontar et al. 2020; coil counts and "
                  "matrix sizes vary, 320x320 after the readout crop is typical). Hours = slices x seconds per "
                  f"slice / (workers x efficiency), efficiency {eff_used:.2f} per worker "
                  + ("(measured here: the 2-worker speed-up over the speed-up two plain processes reached at the "
                     "same time, i.e. what Dask itself costs; on dedicated cores)" if eff else "(assumed)")
                  + "; one worker = one CPU core and about the memory below. The per-slice time was measured on "
                  "the shared machine under the load shown and is pessimistic.", "",
                  "| workers (cores) | hours | days |", "|---|---|---|"]
        for w in (1, 16, 64, 256, 1024):
            h = nsl * t / (w * eff_used) / 3600
            lines.append(f"| {w} | {h:,.0f} | {h / 24:,.1f} |")
        lines += ["", "The command (workers and scheduler started with `dask scheduler` / `dask worker "
                  "tcp://HOST:8786 --nthreads 1 --nworkers N` on nodes that see `/data` at the same path):", "",
                  "```bash",
                  "mrideblur batch /data/fastmri/multicoil_brain --method aligned-sense --coils espirit \\",
                  "    --shots 16 --ordering interleaved --scheduler tcp://HOST:8786 --out /data/fastmri_corrected",
                  "```", "",
                  "fastMRI files do not store the shot order: `--shots/--ordering` are what the reader assumes. "
                  "A rerun of the same command after an interruption skips every finished slice.", ""]
    mm = results.get("memory")
    if mm:
        n, c, ny, nx = mm["shape"]
        lines += ["## Memory: a 256x256x176, 32-coil study slice by slice", "",
                  f"The study file holds k-space `({n}, {c}, {ny}, {nx})` complex64, {mm['file_gb']:.2f} GB (written "
                  f"slice by slice in {mm['made_s']:.0f} s). Two workers; each task reads one slice. *Tree peak* is "
                  "the largest sum of resident memory over the batch process and all its descendants (client, "
                  "scheduler, nannies, workers), sampled every 0.2 s; *largest process* the largest single one; "
                  f"*worker high-water* the largest `ru_maxrss` any worker reported. Limit {MEMORY_LIMIT_GB:.0f} GB.", "",
                  "| method | slices processed | per slice | tree peak | largest process | worker high-water | vs limit |",
                  "|---|---|---|---|---|---|---|"]
        for method, r in mm["runs"].items():
            ok = "ok" if r["tree_peak_gb"] < MEMORY_LIMIT_GB else "OVER"
            lines.append(f"| {method} | {r['slices']} of {n} | {np.mean(r['per_slice']):.0f} s | "
                         f"{r['tree_peak_gb']:.2f} GB | {r['single_peak_gb']:.2f} GB | {r['worker_peak_mb'] / 1e3:.2f} GB | "
                         f"{100 * r['tree_peak_gb'] / MEMORY_LIMIT_GB:.0f}% {ok} |")
        lines += ["", f"Tasks hold one slice each, so the peak does not grow with the number of slices: the "
                  f"client keeps only the finished slices' images ({n} x {ny}x{nx} complex64 = "
                  f"{n * ny * nx * 8 / 1e6:.0f} MB for the whole study) while it reassembles them. Not all {n} slices "
                  "were run here (on 2 shared cores a slice costs the time above); the whole study is the same "
                  "tasks repeated.", ""]
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes, writes benchmarks/scale_quick.md")
    p.add_argument("--parts", default="throughput,fastmri,memory")
    p.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one, removed)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--keep", action="store_true",
                   help="with --work: keep the results.json there of parts not rerun (rerun one part alone)")
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.jsmoco_slices, args.fastmri_size = 48, 2, 96
        args.memory_study, args.memory_slices, args.memory_aligned_slices = (16, 64, 8), 4, 2
    else:
        args.size, args.jsmoco_slices, args.fastmri_size = 96, 2, 320
        args.memory_study, args.memory_slices, args.memory_aligned_slices = (176, 256, 32), 8, 2
    out = args.out or REPO / "benchmarks" / ("scale_quick.md" if args.quick else "scale.md")
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    work = args.work or Path(tempfile.mkdtemp(prefix="mrideblur_scale_"))
    results: dict[str, Any] = {}
    if args.keep and args.work is not None and (work / "results.json").is_file():
        results = json.loads((work / "results.json").read_text())
    try:
        for part in args.parts.split(","):
            results[part] = {"throughput": part_throughput, "fastmri": part_fastmri, "memory": part_memory}[part](work, args)
            (work / "results.json").write_text(json.dumps(results, default=float, indent=1))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    write_markdown(out, args, results, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
