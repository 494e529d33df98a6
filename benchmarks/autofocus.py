"""Autofocus on images made by a simulator that is not ours: what it recovers from complex and
from magnitude images.

The simulator (written here, sharing nothing with mrideblur's estimators or its own
simulator): each shot sees the image moved by ``scipy.ndimage.rotate`` then ``.shift`` (cubic
splines, rotation about the array centre ``(N - 1) / 2``), its FFT's lines of that shot are
kept, 1% complex Gaussian noise is added to k-space, and the inverse FFT gives the corrupted
**complex** image; its modulus is the **magnitude** image a NIfTI file would hold. Truth: the
object in the frame of the shot owning the k-space centre (the frame autofocus reports in);
*motion-free*: the same simulation without motion (noise only).

Cases: sequential ordering with a step (the issue's case: up to 3 deg / 3 px) and interleaved
ordering with random motion (up to 3 deg / 3 px per shot); 16 shots; MNI152 axial, coronal and
sagittal slices and Shepp-Logan; seeds 0-3; ``--size`` 96 (``--quick``: 64, seeds 0-1, 8 shots).

Columns: PSNR (dB, the project's convention) of the corrupted input, of autofocus, and of the
motion-free image; *recovered* = (autofocus - input) / (motion-free - input), the fraction of
the PSNR lost to motion that autofocus wins back; *true-motion fix* = the PSNR gain of the
line-by-line correction with the **true** motion (the adjoint of the single-coil model), an
upper bound for what any per-shot motion estimate can do with this model; motion RMSE against
the truth. Magnitude rows add *modulus model, true motion*: the PSNR gain, the recovered
fraction and the seconds of :func:`mrideblur.estimators.autofocus_magnitude.correct_magnitude` given the
**true** motion (the forward model ``|sum_s F^H M_s F T_s x|`` with ``x`` real): what a magnitude
image gives back once the motion is known, since autofocus cannot estimate it from one.

The step autofocus of magnitude images (one move per scan, searched globally) has its own
benchmark, per anatomy and matrix size: ``benchmarks/autofocus_step.py``.

Run: ``python benchmarks/autofocus.py --workers 2`` (writes ``benchmarks/autofocus.md``; about
15 minutes on 2 cores, one torch thread per worker).
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mrideblur.io.anatomy import mni_slice, shepp_logan  # noqa: E402
from mrideblur.metrics import psnr  # noqa: E402
from mrideblur.estimators.aligned_sense import rebase_motion, reference_shot  # noqa: E402
from mrideblur.estimators.autofocus import _adjoint_image, autofocus  # noqa: E402
from mrideblur.estimators.autofocus_magnitude import correct_magnitude  # noqa: E402
from mrideblur.physics.fourier import fft  # noqa: E402
from mrideblur.physics.shots import make_shot_index  # noqa: E402
from mrideblur.physics.simulate import motion_track  # noqa: E402
from mrideblur.physics.simulate_simple import corrupt_image, move_ndimage  # noqa: E402


def anatomy(name: str, n: int) -> np.ndarray:
    if name == "shepp":
        return shepp_logan(n)
    return mni_slice(name, 0.55 if name == "axial" else 0.5, n)


def run_case(job: tuple) -> list[dict]:
    """Both data kinds of one (ordering, motion kind, anatomy, seed) case; printed as it goes."""
    ordering, kind, name, seed, n, nshot = job
    torch.set_num_threads(1)
    si = make_shot_index(n, nshot, ordering)
    ref = reference_shot(si)
    masks = torch.as_tensor((si[None] == np.arange(nshot)[:, None]).astype(np.float32))
    img = anatomy(name, n)
    motion = motion_track(nshot, kind, 3.0, 3.0, seed=seed)
    c = corrupt_image(img, si, motion, 0.01, seed)
    truth = move_ndimage(img, *motion[ref])
    clean = corrupt_image(truth, si, 0 * motion, 0.01, seed)
    p_clean = psnr(clean, truth, fit_scale=True)
    theta = torch.as_tensor(rebase_motion(motion, ref), dtype=torch.float32)
    rows = []
    for data_kind, data in (("complex", c), ("magnitude", np.abs(c))):
        t0 = time.perf_counter()
        res = autofocus(data, si)
        sec = time.perf_counter() - t0
        p_in = psnr(data, truth, fit_scale=True)
        p_af = psnr(res.image, truth, fit_scale=True)
        k = torch.as_tensor(fft(data.astype(np.complex128))).to(torch.complex64)
        fix = psnr(_adjoint_image(k, masks, theta).numpy(), truth, fit_scale=True) - p_in
        err = res.motion - motion
        r = dict(ordering=ordering, kind=kind, anatomy=name, seed=seed, data=data_kind, p_in=p_in, p_af=p_af,
                 p_clean=p_clean, rec=(p_af - p_in) / (p_clean - p_in), fix=fix,
                 rot=float(np.sqrt(np.mean(err[:, 0] ** 2))), tr=float(np.sqrt(np.mean(err[:, 1:] ** 2))), sec=sec,
                 mod_fix=float("nan"), mod_rec=float("nan"), mod_sec=float("nan"))
        if data_kind == "magnitude":
            t0 = time.perf_counter()
            p_mod = psnr(correct_magnitude(data, si, motion).image, truth, fit_scale=True)
            r["mod_sec"] = time.perf_counter() - t0
            r["mod_fix"], r["mod_rec"] = p_mod - p_in, (p_mod - p_in) / (p_clean - p_in)
        rows.append(r)
        print(f"{ordering:11s} {name:8s} {seed} {data_kind:9s} in {p_in:5.2f} af {p_af:5.2f} clean "
              f"{p_clean:5.2f} rec {r['rec']:+.2f} fix {fix:+.2f} rot {r['rot']:.2f} tr {r['tr']:.2f} "
              f"{sec:.1f}s" + (f" | modulus model, true motion: {r['mod_fix']:+.2f} dB, rec {r['mod_rec']:+.2f}"
                               if data_kind == "magnitude" else ""),
              flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--workers", type=int, default=1, help="cases run in parallel processes (one torch thread each)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    n, nshot, seeds = (64, 8, (0, 1)) if args.quick else (96, 16, (0, 1, 2, 3))
    out = args.out or REPO / "benchmarks" / ("autofocus_quick.md" if args.quick else "autofocus.md")
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    load0 = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    jobs = [(ordering, kind, name, seed, n, nshot) for ordering, kind in (("sequential", "step"), ("interleaved", "random"))
            for name in ("axial", "coronal", "sagittal", "shepp") for seed in seeds]
    if args.workers > 1:
        with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
            rows = [r for rs in pool.imap(run_case, jobs) for r in rs]
    else:
        rows = [r for job in jobs for r in run_case(job)]
    load1 = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    lines = [f"# Autofocus on a foreign simulator ({'quick' if args.quick else 'full'} mode)", "",
             f"- Command: `python benchmarks/autofocus.py{' --quick' if args.quick else ''} --workers {args.workers}`",
             f"- Date: {started} UTC; {os.cpu_count()} CPUs shared with other work (load {load0} -> {load1}); "
             f"torch {torch.__version__}, 1 thread; Python {platform.python_version()}",
             f"- {n}x{n} images, {nshot} shots, 1% noise; simulator and columns: see the docstring of "
             "`benchmarks/autofocus.py`. *recovered* = share of the PSNR lost to motion won back.",
             "- *true-motion fix*: line-by-line correction of `F image` with the true motion. *modulus model, true "
             "motion*: `correct_magnitude` (forward model `|sum_s F^H M_s F T_s x|`, `x` real) given the true motion; "
             "magnitude rows only (autofocus cannot estimate the motion from a magnitude image).", "",
             "## Summary (median over anatomies and seeds)", "",
             "| ordering, motion | data | input PSNR | autofocus PSNR | motion-free | recovered (median) | cases >= 0.5 | "
             "true-motion fix | rot RMSE (deg) | trans RMSE (px) | seconds | modulus model, true motion: fix | "
             "recovered (median) | cases >= 0.5 | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for ordering in ("sequential", "interleaved"):
        for data_kind in ("complex", "magnitude"):
            sel = [r for r in rows if r["ordering"] == ordering and r["data"] == data_kind]
            med = lambda k: float(np.median([r[k] for r in sel]))  # noqa: E731
            mod = (f"{med('mod_fix'):+.2f} dB | {med('mod_rec'):+.2f} | {sum(r['mod_rec'] >= 0.5 for r in sel)}/{len(sel)} | "
                   f"{med('mod_sec'):.1f} |" if data_kind == "magnitude" else "- | - | - | - |")
            lines.append(f"| {ordering}, {sel[0]['kind']} | {data_kind} | {med('p_in'):.2f} | {med('p_af'):.2f} | "
                         f"{med('p_clean'):.2f} | {med('rec'):+.2f} | {sum(r['rec'] >= 0.5 for r in sel)}/{len(sel)} | "
                         f"{med('fix'):+.2f} dB | {med('rot'):.2f} | {med('tr'):.2f} | {med('sec'):.1f} | {mod}")
    lines += ["", "The step autofocus of magnitude images (one move per scan): "
              "[autofocus_step.md](autofocus_step.md)."]
    lines += ["", "## Every case", "",
              "| ordering | anatomy | seed | data | input | autofocus | motion-free | recovered | true-motion fix | "
              "rot RMSE | trans RMSE | modulus model, true motion: fix | recovered |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mag = r["data"] == "magnitude"
        mod = f"{r['mod_fix']:+.2f} | {r['mod_rec']:+.2f} |" if mag else "- | - |"
        lines.append(f"| {r['ordering']} | {r['anatomy']} | {r['seed']} | {r['data']} | {r['p_in']:.2f} | "
                     f"{r['p_af']:.2f} | {r['p_clean']:.2f} | {r['rec']:+.2f} | {r['fix']:+.2f} | {r['rot']:.2f} | "
                     f"{r['tr']:.2f} | {mod}")
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
