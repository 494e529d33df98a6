"""Seconds per 192x192, 8-coil, 16-shot slice: aligned-SENSE (joint coils) and JSMoCo (fast sampler,
1 and 4 samples), with a stated number of CPU threads, and the machine's load while it ran.

The motion benchmark (``benchmarks/motion.py``) records seconds too, but it runs for hours next to
other work; this one is short enough to run on a quiet machine, which is what the speed goals
(60 s per slice for aligned-SENSE, 5 min for JSMoCo's fast sampler, 2 CPU cores) are about.
Same simulated case as the motion benchmark's first case (MNI axial, random motion, R = 1).

Run: ``python benchmarks/speed.py [--threads 2] [--repeats 1] [--accel 1]`` (writes ``benchmarks/speed.md``;
about 5 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mrideblur import __version__  # noqa: E402
from mrideblur.io.anatomy import mni_slice  # noqa: E402
from mrideblur.metrics import psnr  # noqa: E402
from mrideblur.mri import simulate  # noqa: E402
from mrideblur.mri import correct  # noqa: E402
from mrideblur.estimators.jsmoco import JSMoCoOptions, jsmoco  # noqa: E402
from mrideblur.prior import ScorePrior  # noqa: E402
from mrideblur.threads import set_threads  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--accel", type=int, default=1)
    args = ap.parse_args()
    set_threads(args.threads)
    case = simulate(mni_slice("axial", 0.5, 192), ncoil=8, nshot=16, ordering="interleaved", accel=args.accel,
                    acs=24, motion="random", noise=0.01, seed=0)
    truth = case.truth["image"]
    prior = ScorePrior.default()
    load0 = os.getloadavg()
    rows = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        r = correct(case.kspace, case.shot_index, "aligned-sense", coils="joint")
        ta = time.perf_counter() - t
        rows.append(("aligned-SENSE, coils=joint", ta, psnr(r.image, truth, fit_scale=True)))
        for n in (1, 4):
            t = time.perf_counter()
            out = jsmoco(case.kspace, case.shot_index, r.sens, r.motion, r.image, prior, JSMoCoOptions(nsamples=n))
            tj = time.perf_counter() - t
            rows.append((f"JSMoCo fast sampler, {n} sample(s), incl. the aligned-SENSE start", ta + tj,
                         psnr(out["image"], truth, fit_scale=True)))
    load1 = os.getloadavg()
    lines = ["# Speed per slice", "",
             f"Command: `python benchmarks/speed.py --threads {args.threads} --repeats {args.repeats} --accel {args.accel}`; "
             f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} CPU cores "
             f"({platform.processor() or platform.machine()}), torch {torch.__version__} with {args.threads} thread(s); "
             f"mrideblur {__version__}; load average before {load0[0]:.1f}, after {load1[0]:.1f} (1 min).", "",
             f"192x192, 8 coils, 16 interleaved shots, R = {args.accel}, random motion up to 3 deg / 3 px, 1% noise.", "",
             "| method | seconds | PSNR dB |", "|---|---|---|"]
    lines += [f"| {m} | {s:.1f} | {p:.2f} |" for m, s, p in rows]
    out = Path(__file__).with_name("speed.md")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
