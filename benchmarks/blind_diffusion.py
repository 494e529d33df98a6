"""Blind deblurring with the MRI diffusion prior against VB and MAP (Fergus et al. 2006 model).

Cases: held-out slices (the 0.50-0.60 band no prior was trained on) of MNI152, Colin27 and
INIA19 (subjects the MNI152-only weights, blind deblurring's default prior, never saw), magnitude,
scaled to max 1, ``96 + ks - 1`` square (one at ``128 + ks - 1``), blurred with
``boundary="valid"`` (the observation is 96 x 96, smaller than the scene) by a camera-shake or a
straight motion kernel, plus 1% white noise; and one photograph (scikit-image's *camera*) as a
case outside the prior's training distribution.

Methods: ``blind_deconvolve(y, ks, method, boundary="valid", patch=None, seed)`` with
``method="vb"`` and ``"map"`` (their defaults: 3 starts, 40 iterations per scale; seed 0) and
``"diffusion"`` from the delta (its default; seeds 0 and 1) and from a cheap VB start
(``init="vb"``, seed 0).

Scores: kernel L2 error ``||k_est - k_true||_2`` and Levin et al.'s error ratio (docs/conventions.md)
with the hyper-Laplacian deconvolver for both kernels, on the interior (``ks`` pixels cropped
from every side; up to a whole-pixel shift of +-5 px, :func:`mrideblur.metrics.error_ratio`).
PSNR (dB, peak 1) of the image each method returns (hyper-Laplacian deconvolution with its
kernel, the default for all three) on the same interior at the SSD-best shift within +-3 px; for
diffusion also that of the sampler's own posterior-mean image (``history["sample"]``).  Seconds
are wall time per call on one thread.

Run from the repository root: ``python benchmarks/blind_diffusion.py [--prior W.pt] [--out MD]``
(writes ``benchmarks/blind_diffusion.md``, ~3-8 min on one thread) or ``--quick`` (two cases,
prints).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import mrideblur  # noqa: E402
from mrideblur.deblur import blind_deconvolve, blur, camera_shake_kernel, deconvolve, linear_motion_kernel  # noqa: E402
from mrideblur.io.anatomy import mni_slice, photo, template_slice  # noqa: E402
from mrideblur.metrics import error_ratio, ssd_upto_shift  # noqa: E402
from mrideblur.prior import ScorePrior  # noqa: E402
from mrideblur.prior.score import MNI152_WEIGHTS  # noqa: E402

NOISE = 0.01
MAX_SHIFT = 3
#: (label, image, size, kernel_size, kernel, noise seed)
CASES = (
    ("axial 0.52, shake 13", ("mni", "axial", 0.52), 96, 13, ("shake", 21), 21),
    ("sagittal 0.55, line 9 px 60 deg", ("mni", "sagittal", 0.55), 96, 11, ("line", 9, 60.0), 5),
    ("coronal 0.58, shake 15", ("mni", "coronal", 0.58), 96, 15, ("shake", 33), 33),
    ("axial 0.56, shake 11", ("mni", "axial", 0.56), 96, 11, ("shake", 44), 44),
    ("coronal 0.51, line 11 px 135 deg", ("mni", "coronal", 0.51), 96, 13, ("line", 11, 135.0), 6),
    ("sagittal 0.53, shake 17", ("mni", "sagittal", 0.53), 96, 17, ("shake", 55), 55),
    ("axial 0.54, shake 15, 128 px", ("mni", "axial", 0.54), 128, 15, ("shake", 66), 66),
    ("colin27 coronal 0.55, shake 13", ("colin27", "coronal", 0.55), 96, 13, ("shake", 88), 88),
    ("colin27 sagittal 0.52, line 9 px 30 deg", ("colin27", "sagittal", 0.52), 96, 11, ("line", 9, 30.0), 89),
    ("inia19 axial 0.55, shake 11", ("inia19", "axial", 0.55), 96, 11, ("shake", 90), 90),
    ("photo camera, shake 13 (not MRI)", ("photo", "camera"), 96, 13, ("shake", 77), 77),
)
METHODS = (
    ("VB", dict(method="vb")),
    ("MAP", dict(method="map")),
    ("diffusion (delta start), seed 0", dict(method="diffusion")),
    ("diffusion (delta start), seed 1", dict(method="diffusion", seed=1)),
    ("diffusion (VB start)", dict(method="diffusion", init="vb")),
)


def make_case(image, size: int, ks: int, kernel, seed: int):
    n = size + ks - 1
    if image[0] == "mni":
        x = mni_slice(image[1], image[2], n)
    elif image[0] in ("colin27", "inia19"):
        x = template_slice(image[0], image[1], image[2], n)
    else:
        a = photo(image[1])
        y0, x0 = (a.shape[0] - n) // 2, (a.shape[1] - n) // 2
        x = a[y0 : y0 + n, x0 : x0 + n].astype(np.float64)
    x = x / x.max()
    if kernel[0] == "shake":
        k = camera_shake_kernel(ks, seed=kernel[1])
    else:
        k = linear_motion_kernel(kernel[1], kernel[2], size=ks)
    return x, k, blur(x, k, noise_sigma=NOISE, seed=seed, boundary="valid")


def psnr_up_to_shift(est: np.ndarray, x: np.ndarray, ks: int) -> float:
    inner = (slice(ks, -ks), slice(ks, -ks))
    ssd = ssd_upto_shift(est[inner], x[inner], MAX_SHIFT)
    n = (x.shape[0] - 2 * ks - 2 * MAX_SHIFT) * (x.shape[1] - 2 * ks - 2 * MAX_SHIFT)
    return float(10 * np.log10(1.0 / (ssd / n)))


LOADS: list[float] = []  # 1-minute load average, sampled before every case


def run(cases, methods, prior) -> list[dict]:
    rows = []
    for label, image, size, ks, kernel, seed in cases:
        LOADS.append(os.getloadavg()[0])
        x, k, y = make_case(image, size, ks, kernel, seed)
        inner = (slice(ks, -ks), slice(ks, -ks))
        ref = deconvolve(y, k, "hyper-laplacian", boundary="valid")
        blurred_er = error_ratio(np.pad(y, ks // 2, mode="edge")[inner], ref[inner], x[inner])
        rows.append({"case": label, "method": "blurred (no deblurring)", "kerr": float("nan"), "er": blurred_er,
                     "psnr": psnr_up_to_shift(np.pad(y, ks // 2, mode="edge"), x, ks), "seconds": 0.0})
        rows.append({"case": label, "method": "hyper-Laplacian, true kernel", "kerr": 0.0, "er": 1.0,
                     "psnr": psnr_up_to_shift(ref, x, ks), "seconds": 0.0})
        for name, kw in methods:
            extra = {"score_prior": prior} if kw["method"] == "diffusion" else {}
            t0 = time.perf_counter()
            r = blind_deconvolve(y, ks, boundary="valid", patch=None, **kw, **extra)
            dt = time.perf_counter() - t0
            est = deconvolve(y, r.kernel, "hyper-laplacian", boundary="valid")
            row = {"case": label, "method": name, "kerr": float(np.linalg.norm(r.kernel - k)),
                   "er": error_ratio(est[inner], ref[inner], x[inner]), "psnr": psnr_up_to_shift(r.image, x, ks),
                   "seconds": dt}
            if kw["method"] == "diffusion":
                row["kerr_start"] = float(np.linalg.norm(r.history["init_kernel"] - k))
                row["psnr_sample"] = psnr_up_to_shift(r.history["sample"], x, ks)
            rows.append(row)
            print(f"{label:36s} {name:32s} kerr {row['kerr']:.3f}  ER {row['er']:6.2f}  PSNR {row['psnr']:.2f}  "
                  f"{dt:5.1f} s", flush=True)
    return rows


def markdown(rows: list[dict], cases, methods, wall: float, command: str, prior: ScorePrior) -> str:
    names = ["blurred (no deblurring)", "hyper-Laplacian, true kernel"] + [m for m, _ in methods]
    mri = [c[0] for c in cases if c[1][0] != "photo"]
    out = ["# Blind deblurring with the MRI diffusion prior", "",
           f"- Command: `{command}` (from the repository root)",
           f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC (total wall time {wall / 60:.1f} min)",
           f"- Machine: {platform.machine()}, `os.cpu_count()` = {os.cpu_count()}, one thread "
           f"(OMP/MKL/torch); Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}",
           f"- 1-minute load average during the run (sampled per case): {min(LOADS):.1f}-{max(LOADS):.1f} on "
           f"{os.cpu_count()} cores (other work shared the machine: seconds are indicative, compare them "
           "within a case)",
           f"- mrideblur {mrideblur.__version__}; prior: {Path(prior.info.get('path', '?')).name} "
           f"(trained on: {prior.info.get('data', '?')}; {prior.info.get('steps', '?')} steps of its last run)", "",
           "Set and scoring: see the module docstring of `benchmarks/blind_diffusion.py`. In short: held-out "
           "MNI152, Colin27 and INIA19 slices, 96 x 96 observations (one 128 x 128) of a `valid` blur by camera-shake or straight "
           "motion kernels of 9-17 px with 1% noise, plus the *camera* photograph (outside the prior's "
           "training data). ER = Levin et al. error ratio, hyper-Laplacian deconvolution with the estimated vs "
           "the true kernel (same deconvolver). kerr = `||k_est - k_true||_2` (a delta start is ~0.95 away). "
           "PSNR of the image each method returns (hyper-Laplacian with its kernel), interior, best shift "
           "within ±3 px.", "",
           "## Summary over the MRI cases", "",
           "| method | median ER | geometric-mean ER | worst ER | ER <= 2 | median kerr | median PSNR (dB) | median s |",
           "|---|---|---|---|---|---|---|---|"]
    for name in names:
        sel = [r for r in rows if r["method"] == name and r["case"] in mri]
        er = np.array([r["er"] for r in sel])
        kerr = np.array([r["kerr"] for r in sel])
        kmed = f"{np.median(kerr):.3f}" if np.isfinite(kerr).all() else "—"
        out.append(f"| {name} | {np.median(er):.2f} | {np.exp(np.mean(np.log(er))):.2f} | {er.max():.2f} | "
                   f"{np.mean(er <= 2):.0%} | {kmed} | {np.median([r['psnr'] for r in sel]):.2f} | "
                   f"{np.median([r['seconds'] for r in sel]):.1f} |")
    out += ["", "Reading (computed from the rows below):", ""]
    vb = {r["case"]: r for r in rows if r["method"] == "VB"}
    for name in [m for m, kw in methods if kw["method"] == "diffusion"]:
        sel = [r for r in rows if r["method"] == name and r["case"] in mri]
        wins = sum(r["er"] < vb[r["case"]]["er"] for r in sel)
        speed = np.median([vb[r["case"]]["seconds"] / r["seconds"] for r in sel])
        gap = np.median([r["psnr"] - r["psnr_sample"] for r in sel])
        out.append(f"- {name}: lower ER than VB on {wins} of {len(sel)} MRI cases; kernel error "
                   f"{min(r['kerr_start'] for r in sel):.2f}-{max(r['kerr_start'] for r in sel):.2f} at the start, "
                   f"{min(r['kerr'] for r in sel):.3f}-{max(r['kerr'] for r in sel):.3f} at the end; "
                   f"median {speed:.1f}x faster than VB; the sampler's own image is a median {gap:.2f} dB "
                   "below the hyper-Laplacian one with the same kernel.")
    other = [c[0] for c in cases if c[1][0] != "mni"]
    for case in other:
        er = {r["method"]: r["er"] for r in rows if r["case"] == case}
        out.append(f"- {case}: ER " + ", ".join(f"{m} {er[m]:.2f}" for m, _ in methods)
                   + (" (the MRI prior outside its training distribution)." if "photo" in case else "."))
    out += ["", "## Per case", "", "| case | method | kerr (start -> end) | ER | PSNR (dB) | s |", "|---|---|---|---|---|---|"]
    for r in rows:
        kerr = "—" if not np.isfinite(r["kerr"]) else (
            f"{r['kerr_start']:.3f} -> {r['kerr']:.3f}" if "kerr_start" in r else f"{r['kerr']:.3f}")
        psnr = f"{r['psnr']:.2f}" + (f" (sampler {r['psnr_sample']:.2f})" if "psnr_sample" in r else "")
        out.append(f"| {r['case']} | {r['method']} | {kerr} | {r['er']:.2f} | {psnr} | {r['seconds']:.1f} |")
    out += ["", "For the diffusion rows the PSNR in brackets is that of the sampler's own posterior-mean "
            "image (`history[\"sample\"]`, one chain, 40 steps).", ""]
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two cases, VB and diffusion only; print, write nothing")
    ap.add_argument("--prior", default=None,
                    help="weights of the diffusion prior (default: the method's own, the MNI152-only weights)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "blind_diffusion.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    prior = ScorePrior.load(MNI152_WEIGHTS if args.prior is None else args.prior)
    cases = CASES[:2] if args.quick else CASES
    methods = [METHODS[0], METHODS[2]] if args.quick else METHODS
    t0 = time.perf_counter()
    rows = run(cases, methods, prior)
    command = "python benchmarks/blind_diffusion.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    md = markdown(rows, cases, methods, time.perf_counter() - t0, command, prior)
    if args.quick:
        print(md)
    else:
        path = args.out
        path.write_text(md)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
