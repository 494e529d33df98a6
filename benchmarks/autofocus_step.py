"""The step autofocus of magnitude images, per anatomy and matrix size, on a simulator that is not
the package's.

Simulator (the plain one of :mod:`mrideblur.physics.simulate_simple`, which shares no code with
the estimators): every shot sees the object moved by ``scipy.ndimage.rotate`` then ``.shift``
(cubic splines), keeps its k-space lines, 1% complex Gaussian noise is added in k-space, and the
modulus of the inverse FFT is the magnitude image a NIfTI file would hold. Sequential ordering,
16 shots, one move before a shot drawn from 2..14 by ``rot, ty, tx`` each uniform in +-3 deg /
px; *still* cases have no move. Truth: the object in the frame of the shot owning the k-space
centre; *motion-free*: the same simulation without the move.

Anatomies: the MNI152 template and the Colin27 single-subject head (development), and the
INIA19 macaque brain, kept out of the design of the search and of its confidence bar (it was
seen once, in a comparison of reconstruction TV weights with the true motion, next to MNI and
Colin27). Matrix sizes 96, 192 (the main set), 256.

Columns: PSNR (dB, the project's convention, scale fitted) of the input, of the step autofocus
and of the motion-free image; *recovered* = (output - input) / (motion-free - input), the share
of the PSNR lost to motion won back (undefined for still scans, whose column *change* is the
output minus the input); *step shot*: the first shot after the move found and, in brackets, the
simulator's (a magnitude image cannot tell a move of lines ``B`` from the same move of the
mirrored lines ``-B``: a found shot that is the true one's mirror counts as found); *gain*: the
confidence ``J_0 - J`` (the image is corrected when it is >= ``min_gain``); *seconds*: wall time
of one slice with one torch thread, two slices running at once on the two cores.

Run: ``python benchmarks/autofocus_step.py --workers 2`` (writes ``benchmarks/autofocus_step.md``
and ``.jsonl``; ``--quick``: 96x96 only).
"""

from __future__ import annotations

import argparse
import datetime
import json
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

from mrideblur.estimators.aligned_sense import rebase_motion, reference_shot  # noqa: E402
from mrideblur.estimators.autofocus_step import StepAutofocusOptions, _far_lines, _mirrored, step_autofocus  # noqa: E402
from mrideblur.io.anatomy import template_slice  # noqa: E402
from mrideblur.metrics import psnr  # noqa: E402
from mrideblur.physics.shots import make_shot_index  # noqa: E402
from mrideblur.physics.simulate_simple import corrupt_image, move_ndimage  # noqa: E402

NSHOT = 16
ANATOMIES = {"mni152": ("axial", "coronal"), "colin27": ("axial", "sagittal"), "inia19": ("axial", "sagittal")}
HELD_OUT = {"inia19"}


def jobs(quick: bool) -> list[tuple]:
    out = []
    sizes = {96: 1} if quick else {192: 2, 96: 1, 256: 1}
    seed = 100
    for n, per in sizes.items():
        for name, planes in ANATOMIES.items():
            for plane in planes if n == 192 else planes[:1]:
                for _ in range(per):
                    seed += 1
                    out.append((name, plane, n, seed, False))
            if n == 192 or quick:
                seed += 1
                out.append((name, planes[0], n, seed, True))
    return out


def run_case(job: tuple) -> dict:
    name, plane, n, seed, still = job
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    si = make_shot_index(n, NSHOT, "sequential")
    ref = reference_shot(si)
    img = template_slice(name, plane, 0.55 if plane == "axial" else 0.5, n)
    b = int(rng.integers(2, NSHOT - 1))
    theta = rng.uniform(-3, 3, 3) * (0 if still else 1)
    motion = np.zeros((NSHOT, 3))
    motion[b:] = theta
    mag = np.abs(corrupt_image(img, si, motion, 0.01, seed))
    truth = move_ndimage(img, *motion[ref])
    clean = np.abs(corrupt_image(truth, si, 0 * motion, 0.01, seed))
    t0 = time.perf_counter()
    res = step_autofocus(mag, si)
    sec = time.perf_counter() - t0
    p_in, p_out, p_clean = (psnr(v, truth, fit_scale=True) for v in (mag, res.image, clean))
    rep = res.report
    found = rep["step_shot"]
    hit = found is not None and not still and (found == b or _mirrored(_far_lines(si, found, ref), _far_lines(si, b, ref)))
    th_ref = rebase_motion(motion, ref)
    true_ref = th_ref[b] if b > ref else th_ref[0]
    row = dict(anatomy=name, plane=plane, size=n, seed=seed, still=still, true_shot=None if still else b,
               found_shot=found, found=bool(hit), theta_true=true_ref.tolist(), theta_found=rep["theta_reference"],
               p_in=p_in, p_out=p_out, p_clean=p_clean, change=p_out - p_in,
               recovered=None if still else (p_out - p_in) / (p_clean - p_in), gain=rep["gain"],
               corrected=rep["corrected"], seconds=sec)
    print(json.dumps(row), flush=True)
    return row


def still_changes(rows: list[dict]) -> str:
    return ", ".join(format(r["change"], "+.2f") for r in rows) or "-"


def _med(v: list[float]) -> str:
    return f"{np.median(v):+.2f}" if v else "-"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--workers", type=int, default=1, help="slices in parallel processes (one torch thread each)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    out = args.out or REPO / "benchmarks" / ("autofocus_step_quick.md" if args.quick else "autofocus_step.md")
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    load0 = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    todo = jobs(args.quick)
    if args.workers > 1:
        with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
            rows = list(pool.imap(run_case, todo))
    else:
        rows = [run_case(j) for j in todo]
    load1 = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    out.with_suffix(".jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    o = StepAutofocusOptions()
    lines = [f"# Step autofocus of magnitude images ({'quick' if args.quick else 'full'} mode)", "",
             f"- Command: `python benchmarks/autofocus_step.py{' --quick' if args.quick else ''} --workers {args.workers}`",
             f"- Date: {started} UTC; {os.cpu_count()} CPUs (load {load0} -> {load1}); torch {torch.__version__}, "
             f"1 thread per slice, {args.workers} slice(s) at once; Python {platform.python_version()}",
             f"- Defaults: n_iter {o.n_iter}, refine_iter {o.refine_iter}, min_gain {o.min_gain}, correct_iter "
             f"{o.correct_iter}, min_band {o.min_band}. Simulator, anatomies and columns: the docstring of "
             "`benchmarks/autofocus_step.py`; *held out*: not used to design the search or its confidence bar.", "",
             "## Summary", "",
             "| anatomy | size | moved cases | recovered (median) | cases >= 0.5 | worst change (dB) | step found | "
             "corrected | still: change (dB) | seconds (median) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for n in sorted({r["size"] for r in rows}):
        for name in ANATOMIES:
            sel = [r for r in rows if r["size"] == n and r["anatomy"] == name]
            if not sel:
                continue
            mv = [r for r in sel if not r["still"]]
            st = [r for r in sel if r["still"]]
            label = name + (" (held out)" if name in HELD_OUT else "")
            lines.append(f"| {label} | {n} | {len(mv)} | {_med([r['recovered'] for r in mv])} | "
                         f"{sum(r['recovered'] >= 0.5 for r in mv)}/{len(mv)} | "
                         f"{min((r['change'] for r in mv), default=float('nan')):+.2f} | "
                         f"{sum(r['found'] for r in mv)}/{len(mv)} | {sum(r['corrected'] for r in mv)}/{len(mv)} | "
                         f"{still_changes(st)} | "
                         f"{np.median([r['seconds'] for r in sel]):.0f} |")
        mv = [r for r in rows if r["size"] == n and not r["still"]]
        lines.append(f"| **all** | {n} | {len(mv)} | {_med([r['recovered'] for r in mv])} | "
                     f"{sum(r['recovered'] >= 0.5 for r in mv)}/{len(mv)} | "
                     f"{min((r['change'] for r in mv), default=float('nan')):+.2f} | {sum(r['found'] for r in mv)}/{len(mv)} | "
                     f"{sum(r['corrected'] for r in mv)}/{len(mv)} | | "
                     f"{np.median([r['seconds'] for r in rows if r['size'] == n]):.0f} |")
    lines += ["", "## Every case", "",
              "| anatomy | plane | size | seed | step shot (true) | move found (true), deg / px | input | output | "
              "motion-free | recovered | gain | corrected | seconds |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fmt = lambda t: "-" if t is None else "(" + ", ".join(f"{v:+.1f}" for v in t) + ")"  # noqa: E731
        lines.append(f"| {r['anatomy']} | {r['plane']} | {r['size']} | {r['seed']} | "
                     f"{r['found_shot'] if r['found_shot'] is not None else '-'} "
                     f"({r['true_shot'] if r['true_shot'] is not None else 'still'}) | "
                     f"{fmt(r['theta_found'])} {fmt(None if r['still'] else r['theta_true'])} | {r['p_in']:.2f} | "
                     f"{r['p_out']:.2f} | {r['p_clean']:.2f} | "
                     f"{'-' if r['recovered'] is None else format(r['recovered'], '+.2f')} | {r['gain']:.3f} | "
                     f"{'yes' if r['corrected'] else 'no'} | {r['seconds']:.0f} |")
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
