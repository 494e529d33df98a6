"""Coil arrays x acceleration: which starting maps aligned-SENSE takes, and what each is worth.

The coil maps of a motion-corrupted scan must be estimated from that scan.  aligned-SENSE starts
from ESPIRiT on the calibration lines, or from the smoothed coil images of the uncorrected data
where ESPIRiT's maps explain the data more than ``ESPIRIT_MISFIT_RATIO`` times worse at zero
motion (``mrideblur.estimators.aligned_sense._check_initial_maps``).  This benchmark measures,
per case, the two misfits and the start chosen, what each start is worth *under the true
motion* (CG-SENSE, 30 iterations: how good the maps are, apart from the motion search), the
oracle (true maps and motion) and what ``correct(kspace, shot_index)`` returns.

Cases (the package's simulator, :func:`mrideblur.physics.simulate.simulate`): 128x128 slices
(MNI152 coronal and Colin27 axial), 16 interleaved shots, random motion up to +-3 deg / +-3 px,
1% noise, 24 calibration lines, coils not given; arrays of 8 and 32 small loop coils (strongly
winding phase) and 8 and 16 birdcage coils; R = 1 and 2.  One seed per cell.

Columns: *ratio* = ESPIRiT's misfit / the coil images' misfit at zero motion (> 3: coil images
used); *ESPIRiT* / *coil images* / *oracle*: PSNR (dB) of CG-SENSE under the true motion with
those maps; *uncorrected*: the estimator's maps at zero motion; *corrected*: ``correct()``;
*gap*: oracle - corrected; *rot* / *trans*: motion RMSE (deg / px); *s*: the correction's wall
time on one thread (two cases run at once on the two cores).

Run: ``python benchmarks/coils.py [--workers 2] [--quick]`` (writes ``benchmarks/coils.md``;
``--quick``: the MNI152 cases at 96x96).
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mrideblur import __version__  # noqa: E402
from mrideblur.estimators.aligned_sense import ESPIRIT_MISFIT_RATIO  # noqa: E402
from mrideblur.io.anatomy import template_slice  # noqa: E402
from mrideblur.metrics import psnr  # noqa: E402
from mrideblur.mri import correct, estimate_sens, sense_recon, simulate  # noqa: E402

ARRAYS = (("loop", 8), ("loop", 32), ("birdcage", 8), ("birdcage", 16))
ANATOMIES = (("mni152", "coronal"), ("colin27", "axial"))


def jobs(quick: bool) -> list[tuple]:
    out, seed = [], 500
    for name, plane in ANATOMIES[:1] if quick else ANATOMIES:
        for model, ncoil in ARRAYS:
            for accel in (1, 2):
                seed += 1
                out.append((name, plane, 96 if quick else 128, model, ncoil, accel, seed))
    return out


def run_case(job: tuple) -> dict:
    import torch

    from mrideblur.estimators.aligned_sense import _check_initial_maps, refine_sens
    from mrideblur.physics.shots import count_shots

    name, plane, n, model, ncoil, accel, seed = job
    torch.set_num_threads(1)
    case = simulate(template_slice(name, plane, 0.5, n), ncoil=ncoil, nshot=16, ordering="interleaved",
                    accel=accel, acs=24, motion="random", noise=0.01, seed=seed, coil_model=model)
    y, si, truth = case.kspace, case.shot_index, case.truth["image"]
    tm, ts = case.truth["motion"], case.truth["sens"]

    def quality(maps: np.ndarray, motion: np.ndarray | None) -> float:
        return psnr(sense_recon(y, si, maps, motion, max_iter=30), truth, fit_scale=True)

    espirit = estimate_sens(y, "espirit", calib_width=24)
    maps, info = _check_initial_maps(y, si, espirit, 24)
    coil_images = refine_sens(y, si, np.zeros((count_shots(si), 3)), calib_width=24)  # the check's other start
    fit = info["misfit_at_zero_motion"]
    t = time.perf_counter()
    res = correct(y, si, "aligned-sense")
    seconds = time.perf_counter() - t
    err = res.motion - tm
    row = dict(anatomy=f"{name} {plane}", size=n, array=f"{ncoil} {model}", accel=accel, seed=seed,
               ratio=fit["espirit"] / fit["coil images"], used=info["used"],
               espirit=quality(espirit, tm), coil_images=quality(coil_images, tm), oracle=quality(ts, tm),
               uncorrected=quality(maps, None), corrected=psnr(res.image, truth, fit_scale=True),
               rot=float(np.sqrt(np.mean(err[:, 0] ** 2))), trans=float(np.sqrt(np.mean(err[:, 1:] ** 2))),
               seconds=seconds, kept=bool(res.report.get("data_fit", {}).get("kept_uncorrected")))
    print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    return row


def write_markdown(rows: list[dict], out: Path, command: str, started: str, load: tuple, total: float) -> None:
    lines = [
        "# Starting coil maps per coil array and acceleration", "",
        f"- Command: `{command}`",
        f"- Date: {started} UTC; mrideblur {__version__}; {os.cpu_count()} CPUs (load {load[0]:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after); one torch thread per case; Python {platform.python_version()}; "
        f"total {total / 60:.0f} min",
        f"- Cases, columns and the rule (coil images when the ratio > {ESPIRIT_MISFIT_RATIO:g}): the docstring of "
        "`benchmarks/coils.py`. PSNR in dB (docs/conventions.md).", "",
        "| anatomy | size | array | R | ratio | start used | ESPIRiT (true motion) | coil images (true motion) | "
        "oracle | uncorrected | corrected | gap | rot deg | trans px | s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['anatomy']} | {r['size']} | {r['array']} | {r['accel']} | {r['ratio']:.2f} | {r['used']} | "
            f"{r['espirit']:.2f} | {r['coil_images']:.2f} | {r['oracle']:.2f} | {r['uncorrected']:.2f} | "
            f"{r['corrected']:.2f}{' (kept uncorrected)' if r['kept'] else ''} | {r['oracle'] - r['corrected']:.2f} | "
            f"{r['rot']:.3f} | {r['trans']:.3f} | {r['seconds']:.0f} |")
    gaps = np.array([r["oracle"] - r["corrected"] for r in rows])
    lines += ["", f"Gap to the oracle: median {np.median(gaps):.2f} dB, worst {gaps.max():.2f} dB over {len(rows)} cases."]
    from mrideblur.io.atomic import atomic_open

    with atomic_open(out, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("coils.md"))
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    started = f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M}"
    load = os.getloadavg()
    t0 = time.time()
    todo = jobs(args.quick)
    if args.workers > 1:
        with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
            rows = pool.map(run_case, todo, chunksize=1)
    else:
        rows = [run_case(j) for j in todo]
    command = "python benchmarks/coils.py" + (f" --workers {args.workers}" if args.workers != 2 else "") \
        + (" --quick" if args.quick else "")
    write_markdown(rows, args.out, command, started, load, time.time() - t0)


if __name__ == "__main__":
    main()
