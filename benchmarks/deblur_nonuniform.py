"""Spatially varying blur: a camera that rolls about a point outside the frame.

Set: the four benchmark photographs (``benchmarks/images.py``: camera, astronaut, moon, coins),
256 x 256 central crops, blurred by :class:`mrideblur.physics.nonuniform.PoseBlur` about a pivot
``dist`` pixels above the top edge, so the blur grows from the top of the frame to the bottom —
plus 1% white noise.  Three camera paths per photograph (:data:`PATHS`): two constant-rate rolls
(:func:`~mrideblur.physics.nonuniform.roll_sweep`: arcs of uniform density) and one shaking
path (:func:`~mrideblur.physics.nonuniform.roll_path`: a smooth random walk of roll and shift,
curved local kernels).

Methods:

* blurred (no deblurring);
* blind VB, one kernel for the whole image (``blind_deconvolve(y, 31, method="vb")``, its
  defaults) — the model the issue says ends below the blurred input here;
* kernel field (Sun et al. 2015): ``deblur_nonuniform(y, method="kernel-field")``, its defaults
  (``--weights`` picks the classifier's weights; default the shipped ones);
* one true kernel: the hyper-Laplacian deconvolution with the true local kernel of the image
  centre (the best a single kernel can know);
* kernel field, true: ``deconvolve_nonuniform`` with a 5 x 5 :class:`KernelField` of the true
  local kernels — what a perfect kernel-field estimator would reach;
* true operator: ``deconvolve_nonuniform`` with the ``PoseBlur`` itself (an oracle).

Scores: PSNR (dB, data range 1) on the image without a 16-pixel border, no shift search (the
paths are zero-mean, so the sharp image is the view from the mean pose); the blur length per
case is the longest displacement at the top and bottom centre of the frame.

Run from the repository root: ``python benchmarks/deblur_nonuniform.py`` (writes
``benchmarks/deblur_nonuniform.md``; about 5 min on one thread, most of it VB).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import mrideblur  # noqa: E402
from mrideblur.deblur import (  # noqa: E402
    KernelField,
    PoseBlur,
    blind_deconvolve,
    blur_nonuniform,
    deblur_nonuniform,
    deconvolve,
    deconvolve_nonuniform,
    roll_path,
    roll_sweep,
)
from mrideblur.metrics import psnr  # noqa: E402
from mrideblur.threads import set_threads  # noqa: E402

from benchmarks.images import benchmark_images  # noqa: E402

SIZE = 256
NOISE = 0.01
BORDER = 16
#: (label, max_rot degrees, max_shift px or None for a constant-rate roll, pivot distance above
#: the top edge px, path seed)
PATHS = (("steady roll +-1.5 deg, pivot 250 px above", 1.5, None, 250.0, 0),
         ("steady roll +-1 deg, pivot 400 px above", 1.0, None, 400.0, 0),
         ("shaking roll 1 deg + shift 2 px, pivot 400 px above", 1.0, 2.0, 400.0, 7))
METHODS = ("blurred", "blind VB (one kernel)", "kernel field (Sun et al.)", "one true kernel (centre)",
           "kernel field, true (5x5)", "true operator")


def run_case(x: np.ndarray, path: tuple, seed: int, weights: str | None) -> dict:
    label, rot, shift, dist, pseed = path
    poses = roll_sweep(32, rot) if shift is None else roll_path(32, rot, shift, seed=pseed)
    op = PoseBlur(x.shape, poses, centre=(-dist, (SIZE - 1) / 2))
    y = blur_nonuniform(x, op, NOISE, seed=seed)
    inner = (slice(BORDER, -BORDER), slice(BORDER, -BORDER))
    score = {}
    seconds = {}

    def keep(name: str, est: np.ndarray, t0: float) -> None:
        score[name] = psnr(est[inner], x[inner], data_range=1.0)
        seconds[name] = time.perf_counter() - t0

    t0 = time.perf_counter()
    keep("blurred", y, t0)
    t0 = time.perf_counter()
    keep("blind VB (one kernel)", blind_deconvolve(y, 31, method="vb").image, t0)
    t0 = time.perf_counter()
    keep("kernel field (Sun et al.)", deblur_nonuniform(y, method="kernel-field", weights=weights).image, t0)
    t0 = time.perf_counter()
    keep("one true kernel (centre)", deconvolve(y, op.local_kernel(((SIZE - 1) / 2, (SIZE - 1) / 2), 51),
                                                "hyper-laplacian"), t0)
    t0 = time.perf_counter()
    keep("kernel field, true (5x5)", deconvolve_nonuniform(y, KernelField(x.shape, op.local_kernels((5, 5), 51))), t0)
    t0 = time.perf_counter()
    keep("true operator", deconvolve_nonuniform(y, op), t0)
    lengths = (op.blur_length((0, SIZE / 2)), op.blur_length((SIZE - 1, SIZE / 2)))
    return {"path": label, "psnr": score, "seconds": seconds, "lengths": lengths}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "deblur_nonuniform.md")
    ap.add_argument("--weights", default=None, help="the kernel-field classifier's weights (default: shipped)")
    args = ap.parse_args()
    set_threads(1)
    t0 = time.perf_counter()
    rows = []
    for ii, (name, x) in enumerate(benchmark_images(SIZE).items()):
        for pi, path in enumerate(PATHS):
            r = run_case(x, path, seed=10 * ii + pi, weights=args.weights)
            r["image"] = name
            rows.append(r)
            print(name, path[0], {k: round(v, 2) for k, v in r["psnr"].items()}, flush=True)
    lines = ["# Spatially varying blur: a camera rolling about a point outside the frame", "",
             "- Command: `python benchmarks/deblur_nonuniform.py" + "".join(f" {a}" for a in sys.argv[1:]) + "`",
             f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; mrideblur "
             f"{mrideblur.__version__}; {os.cpu_count()} CPU cores, one thread; total {time.perf_counter() - t0:.0f} s",
             "- Set, methods and scoring: the module docstring (four benchmark photographs, 256 x 256, three camera "
             "paths, 1% noise; PSNR without a 16-px border).", "",
             "## Gain over the blurred input (dB), median over the twelve cases (min / max)", "",
             "| method | median gain | min / max | median s |", "|---|---|---|---|"]
    for m in METHODS[1:]:
        g = [r["psnr"][m] - r["psnr"]["blurred"] for r in rows]
        lines.append(f"| {m} | {np.median(g):+.2f} | {min(g):+.2f} / {max(g):+.2f} | "
                     f"{np.median([r['seconds'][m] for r in rows]):.1f} |")
    lines += ["", "## Per case (PSNR, dB)", "",
              "| image | path | blur length top / bottom (px) | " + " | ".join(METHODS) + " |",
              "|---|---|---|" + "---|" * len(METHODS)]
    for r in rows:
        lines.append(f"| {r['image']} | {r['path']} | {r['lengths'][0]:.1f} / {r['lengths'][1]:.1f} | "
                     + " | ".join(f"{r['psnr'][m]:.2f}" for m in METHODS) + " |")
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
