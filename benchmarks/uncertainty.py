"""Does JSMoCo's uncertainty map rank its errors — and how well could any per-pixel map do?

Issue 6 asks for Spearman(per-pixel std, |error|) >= 0.3 inside the object. A single scan's
error at a pixel is one draw from that pixel's error distribution, so even a perfect map — the
true expected error magnitude at every pixel — ranks it only as well as those magnitudes differ
across the object. This benchmark measures both, on the same simulated scan with K independent
noise realisations (same anatomy, motion, coils, noise level; ``simulate(noise=0)`` plus fresh
complex Gaussian noise of the simulator's level on the acquired lines):

* **JSMoCo, own std**: ``correct(method="jsmoco", nsamples=N)`` as a user runs it (aligned-SENSE
  start, coils and motion estimated, fast sampler): the posterior std over the chains against
  the absolute error of their mean, per realisation (median over the K).
* **reference map** (no uncertainty map can be expected to beat it): for realisation k, the
  per-pixel RMS error of the same estimator over the other K-1 realisations — its true expected
  error magnitude at every pixel, bias included — against realisation k's absolute error (median
  over k). Measured for JSMoCo and for CG-SENSE with the true motion and coils (30 iterations
  from zero, the motion benchmark's oracle). With K-1 samples the map is itself noisy, so this
  somewhat underestimates what the exact map would reach.

Errors are of the magnitude after a least-squares scale inside the object (mask: truth above 5%
of its maximum), as in the motion benchmark.

Run: ``python benchmarks/uncertainty.py [--realisations K] [--samples N] [--threads T] [--quick]``
(writes ``benchmarks/uncertainty.md``; about 15-20 minutes per case on one core).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mrideblur import __version__  # noqa: E402
from mrideblur.io.anatomy import mni_slice  # noqa: E402
from mrideblur.metrics import psnr  # noqa: E402
from mrideblur.mri import sense_recon, simulate  # noqa: E402
from mrideblur.mri import correct  # noqa: E402
from mrideblur.prior import ScorePrior  # noqa: E402

CASES = [
    dict(plane="sagittal", motion="drift", accel=2, noise=0.01, seed=102),
    dict(plane="axial", motion="random", accel=1, noise=0.01, seed=100),
    dict(plane="coronal", motion="step", accel=2, noise=0.01, seed=101),
]


def _rho(u: np.ndarray, e: np.ndarray, mask: np.ndarray) -> float:
    return float(spearmanr(u[mask], e[mask]).statistic)


def run_case(c: dict, size: int, k: int, nsamples: int, prior: ScorePrior) -> dict:
    kw = dict(ncoil=8, nshot=16, ordering="interleaved", accel=c["accel"], acs=24, motion=c["motion"], seed=c["seed"])
    image = mni_slice(c["plane"], 0.5, size)
    noisy, clean = simulate(image, noise=c["noise"], **kw), simulate(image, noise=0.0, **kw)
    if not np.allclose(noisy.truth["motion"], clean.truth["motion"]):
        raise RuntimeError("simulate(noise=0) drew a different motion: cannot make noise realisations")
    si, tm, ts = noisy.shot_index, noisy.truth["motion"], noisy.truth["sens"]
    acq = (si >= 0)[None, :, None]
    noise = (noisy.kspace - clean.kspace)[:, si >= 0]
    sigma = float(noise.std() / np.sqrt(2))
    t = np.abs(noisy.truth["image"])
    mask = t > 0.05 * t.max()

    def err(img: np.ndarray) -> np.ndarray:
        m = np.abs(img)
        return np.abs(m * (m[mask] @ t[mask]) / (m[mask] @ m[mask]) - t)

    rng = np.random.default_rng(c["seed"])
    e_cg, e_js, own, psnrs, secs = [], [], [], [], []
    for i in range(k):
        y = noisy.kspace if i == 0 else clean.kspace + acq * sigma * (
            rng.standard_normal(clean.kspace.shape) + 1j * rng.standard_normal(clean.kspace.shape))
        e_cg.append(err(sense_recon(y, si, ts, tm, max_iter=30)))
        t0 = time.perf_counter()
        out = correct(y, si, "jsmoco", nsamples=nsamples, prior=prior, seed=i)
        secs.append(time.perf_counter() - t0)
        e_js.append(err(out.image))
        own.append(_rho(out.uncertainty, e_js[-1], mask))
        psnrs.append(psnr(out.image, noisy.truth["image"], fit_scale=True))
        print(f"  realisation {i + 1}/{k}: JSMoCo PSNR {psnrs[-1]:.2f} own rho {own[-1]:.3f}", flush=True)

    def reference(errors: list[np.ndarray]) -> float:
        e = np.stack(errors)
        return float(np.median([_rho(np.sqrt((np.delete(e, i, 0) ** 2).mean(0)), e[i], mask) for i in range(k)]))

    return dict(case=f"{c['plane']} {c['motion']}, R={c['accel']}, noise {100 * c['noise']:g}%",
                own=float(np.median(own)), own_range=(min(own), max(own)), ref_js=reference(e_js),
                ref_cg=reference(e_cg), psnr=float(np.median(psnrs)), seconds=float(np.median(secs)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--realisations", type=int, default=5)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--quick", action="store_true", help="96x96, 3 realisations, first case only")
    args = ap.parse_args()
    if args.threads:
        from mrideblur.threads import set_threads

        set_threads(args.threads)  # the entry points run with mrideblur's choice (default 1)
    size, k, cases = (96, 3, CASES[:1]) if args.quick else (192, args.realisations, CASES)
    prior = ScorePrior.default()
    rows = []
    out = Path(__file__).with_name("uncertainty_quick.md" if args.quick else "uncertainty.md")
    command = "python benchmarks/uncertainty.py" + " ".join([""] + sys.argv[1:])
    for c in cases:
        print(c, flush=True)
        rows.append(run_case(c, size, k, args.samples, prior))
        lines = [
            "# Uncertainty: does the std map rank the errors?", "",
            f"Command: `{command}`; {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
            f"{os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}; mrideblur {__version__}. "
            f"{size}x{size}, 8 coils, 16 interleaved shots, 24 ACS lines, {k} noise realisations per case, "
            f"{args.samples} posterior samples. Spearman correlation inside the object (see the module docstring).", "",
            "| case | JSMoCo: own std (median, range) | reference map for JSMoCo | reference map for CG-SENSE "
            "(true motion, coils) | JSMoCo PSNR dB (median) | seconds per run (median) |",
            "|---|---|---|---|---|---|",
        ]
        lines += [f"| {r['case']} | {r['own']:.3f} ({r['own_range'][0]:.3f} to {r['own_range'][1]:.3f}) | "
                  f"{r['ref_js']:.3f} | {r['ref_cg']:.3f} | {r['psnr']:.2f} | {r['seconds']:.0f} |" for r in rows]
        lines += ["", f"{len(rows)} of {len(cases)} cases done.", ""]
        out.write_text("\n".join(lines))
        print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
