"""Slices from a simulator that is not the package's: coil arrays whose phase winds, per source.

The criterion of "scans it has never seen" for k-space motion correction: 192x192 slices,
8 coils of another geometry than the package's, 16 interleaved shots, random motion up to
+-3 deg / +-3 px (shot 0 at rest), 1% noise, 24 calibration lines, coils not given, R = 1 and 2.

The simulator shares no code with mrideblur's model.  Each shot's image is moved with
``scipy.ndimage.affine_transform`` (cubic splines, zeros outside) by the rotation of
docs/conventions.md written out from its text; the coils are Gaussian blobs (width 0.25-0.4 of
the field of view) on a ring of radius 0.45, each with a linear phase of up to +-3 cycles per
field of view along each axis and a random offset (maps normalised to ``sum_c |S_c|^2 = 1``);
the object carries a smooth random phase; the noise is complex Gaussian with sigma 1% of the
brightest coil-image pixel; the Fourier transform is numpy's, centred and orthonormal.

Sources (one slice each, one seed per case): the MNI152 template, Colin27 (single subject), the
INIA19 macaque template and sigpy's Shepp-Logan phantom. The default prior was trained on other
slices of the first three (the slices here lie in the held-out band
:data:`mrideblur.prior.data.HELD_OUT`), never on Shepp-Logan; ``--prior`` with the MNI152-only
weights (``mri_prior_mni152.pt``) makes Colin27 and INIA19 unseen subjects (table
``foreign2d_prior_mni152.md``). All four were used while developing the estimators, so none is
a held-out test of those.

A second table varies the acquisition on Colin27 at R = 2 (aligned-SENSE only): arrays of 4, 16
and 32 such coils, 12 or 32 calibration lines, 3% noise.

Rows per case: uncorrected (``correct(..., "none")``: coils estimated, no motion), aligned-SENSE
and JSMoCo as a user runs them (``correct(kspace, shot_index, method)``, defaults, coils
estimated), and the oracle (CG-SENSE, true motion and coils, 30 iterations).  PSNR as
docs/conventions.md (magnitudes, object mask, least-squares scale), motion RMSE over shots.

Run: ``python benchmarks/foreign2d.py [--workers 2] [--tables sources,arrays] [--only mni152,colin27] [--accel 1,2]``
(one torch thread per case; writes ``benchmarks/foreign2d.md`` and the rows to
``benchmarks/foreign2d.jsonl``; ``--report-only`` rewrites the table from the jsonl).
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mrideblur import __version__  # noqa: E402
from mrideblur.io.anatomy import shepp_logan, template_slice  # noqa: E402
from mrideblur.metrics import psnr  # noqa: E402
from mrideblur.mri import correct, make_shot_index, sense_recon  # noqa: E402

HERE = Path(__file__).resolve().parent
SOURCES = (("mni152", "axial", "other slices in the prior's data"),
           ("colin27", "coronal", "other slices in the prior's data"),
           ("inia19", "axial", "other slices in the prior's data"), ("shepp-logan", "", "not in the prior's data"))
METHODS = ("uncorrected", "aligned-sense", "jsmoco", "oracle")
#: The arrays table: (coils, calibration lines, noise).
ARRAY_CASES = ((4, 24, 0.01), (16, 24, 0.01), (32, 24, 0.01), (8, 12, 0.01), (8, 32, 0.01), (8, 24, 0.03))


def image_of(name: str, plane: str, n: int) -> np.ndarray:
    if name == "shepp-logan":
        return shepp_logan(n)
    return template_slice(name, plane, 0.5, n)


def move(img: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Content at offset ``d = (dy, dx)`` from the centre ``N // 2`` lands at ``R d + t`` with
    ``R = [[cos p, -sin p], [sin p, cos p]]``, ``p = radians(theta[0])``, ``t = theta[1:]``."""
    p = np.radians(theta[0])
    R = np.array([[np.cos(p), -np.sin(p)], [np.sin(p), np.cos(p)]])
    c = np.array(img.shape, float) // 2
    Rinv = R.T  # output o takes the input at R^-1 (o - c - t) + c
    offset = c - Rinv @ (c + np.asarray(theta[1:], float))

    def one(v: np.ndarray) -> np.ndarray:
        return ndimage.affine_transform(v, Rinv, offset=offset, order=3, mode="constant")

    return one(img.real) + 1j * one(img.imag)


def coils(n: int, ncoil: int, rng: np.random.Generator, cycles: float = 3.0) -> np.ndarray:
    """Gaussian-blob coils on a ring, each with a linear phase of up to ``cycles`` per field of view."""
    yy, xx = (np.indices((n, n)).astype(float) - n // 2) / n
    off = rng.uniform(0, 2 * np.pi)
    maps = []
    for c in range(ncoil):
        a = off + 2 * np.pi * c / ncoil
        w = rng.uniform(0.25, 0.4)
        mag = np.exp(-((yy - 0.45 * np.sin(a)) ** 2 + (xx - 0.45 * np.cos(a)) ** 2) / (2 * w * w))
        ky, kx = rng.uniform(-cycles, cycles, 2)
        maps.append(mag * np.exp(2j * np.pi * (ky * yy + kx * xx) + 1j * rng.uniform(0, 2 * np.pi)))
    s = np.array(maps)
    return (s / np.sqrt((np.abs(s) ** 2).sum(0))).astype(np.complex64)


def simulate2d(name: str, plane: str, n: int, accel: int, seed: int, ncoil: int = 8, nshot: int = 16,
               max_motion: float = 3.0, noise: float = 0.01, acs: int = 24) -> dict:
    rng = np.random.default_rng(seed)
    img = image_of(name, plane, n).astype(float)
    img = img / img.max()
    yy, xx = (np.indices((n, n)).astype(float) - n // 2) / n
    phase = 0.8 * np.sin(np.pi * (rng.normal() * yy + rng.normal() * xx) + rng.uniform(0, 6))
    x = img * np.exp(1j * phase)
    sens = coils(n, ncoil, rng)
    si = make_shot_index(n, nshot, "interleaved", accel=accel, acs=acs)
    theta = rng.uniform(-max_motion, max_motion, (nshot, 3))
    theta[0] = 0
    y = np.zeros((ncoil, n, n), complex)
    for s in range(nshot):
        k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(sens * move(x, theta[s]), axes=(1, 2)), norm="ortho"), axes=(1, 2))
        y += k * (si == s)[None, :, None]
    sigma = noise * np.abs(sens * x).max()
    y += (rng.normal(0, sigma / np.sqrt(2), y.shape) + 1j * rng.normal(0, sigma / np.sqrt(2), y.shape)) * (si >= 0)[None, :, None]
    return dict(kspace=y.astype(np.complex64), shot_index=si, truth=x.astype(np.complex64), motion=theta, sens=sens)


def run_case(job: dict) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    c = simulate2d(job["name"], job["plane"], job["size"], job["accel"], job["seed"], ncoil=job["ncoil"],
                   acs=job["acs"], noise=job["noise"])
    rows = []
    for method in job["methods"]:
        t = time.perf_counter()
        note = ""
        if method == "oracle":
            img, mot = sense_recon(c["kspace"], c["shot_index"], c["sens"], c["motion"], max_iter=30), c["motion"]
        else:
            extra = {"prior": job["prior"]} if method == "jsmoco" and job.get("prior") else {}
            r = correct(c["kspace"], c["shot_index"], "none" if method == "uncorrected" else method, **extra)
            img, mot = r.image, r.motion
            fit = r.report.get("data_fit", {})
            note = "; ".join([s for s in ("kept uncorrected" if fit.get("kept_uncorrected") else "",
                                          f"rejected shots {fit['rejected_shots']}" if fit.get("rejected_shots") else "")
                              if s])
        e = mot - c["motion"]
        rows.append(dict(table=job["table"], source=job["name"] + (f" {job['plane']}" if job["plane"] else ""),
                         role=job["role"], size=job["size"], accel=job["accel"], seed=job["seed"], ncoil=job["ncoil"],
                         acs=job["acs"], noise=job["noise"], method=method, psnr=psnr(img, c["truth"], fit_scale=True),
                         rot=float(np.sqrt(np.mean(e[:, 0] ** 2))), trans=float(np.sqrt(np.mean(e[:, 1:] ** 2))),
                         seconds=time.perf_counter() - t, note=note,
                         prior=(job.get("prior") or "shipped") if method == "jsmoco" else None))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def jobs(size: int, accel: list[int], only: list[str], tables: list[str], prior: str | None = None) -> list[dict]:
    """The sources table (every source, R in ``accel``, 8 coils, ACS 24, 1% noise, all four
    methods) and the arrays table (Colin27 coronal, R = 2, aligned-SENSE only: 4, 16 and 32
    coils; 8 coils with 12 or 32 calibration lines; 8 coils with 3% noise)."""
    out = []
    seed = 700
    if "sources" in tables:
        for name, plane, role in SOURCES:
            for r in accel:
                seed += 1
                if not only or name in only:
                    out.append(dict(table="sources", name=name, plane=plane, size=size, accel=r, seed=seed,
                                    role=role if prior is None else f"JSMoCo prior {Path(prior).name}",
                                    ncoil=8, acs=24, noise=0.01, methods=METHODS, prior=prior))
    if "arrays" in tables:
        for i, (ncoil, acs, noise) in enumerate(ARRAY_CASES):
            out.append(dict(table="arrays", name="colin27", plane="coronal", role="not in the prior's data",
                            size=size, accel=2, seed=800 + i, ncoil=ncoil, acs=acs, noise=noise,
                            methods=("uncorrected", "aligned-sense", "oracle")))
    return out


def _sources_table(cases: dict) -> tuple[list[str], int]:
    lines = ["| source | role | R | uncorrected | aligned-SENSE | JSMoCo | oracle | aligned gap | JSMoCo gap | "
             "JSMoCo - aligned | rot / trans aligned | rot / trans JSMoCo | s aligned | s JSMoCo | notes |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    below = 0
    for (source, accel), m in sorted(cases.items()):
        if not all(k in m for k in METHODS):
            continue
        u, a, j, o = (m[k]["psnr"] for k in METHODS)
        below += sum(v < u for v in (a, j))
        notes = "; ".join(f"{k}: {m[k]['note']}" for k in ("aligned-sense", "jsmoco") if m[k]["note"])
        lines.append(f"| {source} | {m['oracle']['role']} | {accel} | {u:.2f} | {a:.2f} | {j:.2f} | {o:.2f} | "
                     f"{o - a:.2f} | {o - j:.2f} | {j - a:+.2f} | {m['aligned-sense']['rot']:.3f} / "
                     f"{m['aligned-sense']['trans']:.3f} | {m['jsmoco']['rot']:.3f} / {m['jsmoco']['trans']:.3f} | "
                     f"{m['aligned-sense']['seconds']:.0f} | {m['jsmoco']['seconds']:.0f} | {notes} |")
    return lines, below


def _arrays_table(cases: dict) -> tuple[list[str], int]:
    lines = ["| coils | calibration lines | noise | uncorrected | aligned-SENSE | oracle | gap | rot / trans | s | notes |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    below = 0
    for (ncoil, acs, noise), m in sorted(cases.items()):
        if not all(k in m for k in ("uncorrected", "aligned-sense", "oracle")):
            continue
        u, a, o = m["uncorrected"]["psnr"], m["aligned-sense"]["psnr"], m["oracle"]["psnr"]
        below += a < u
        lines.append(f"| {ncoil} | {acs} | {100 * noise:.0f}% | {u:.2f} | {a:.2f} | {o:.2f} | {o - a:.2f} | "
                     f"{m['aligned-sense']['rot']:.3f} / {m['aligned-sense']['trans']:.3f} | "
                     f"{m['aligned-sense']['seconds']:.0f} | {m['aligned-sense']['note']} |")
    return lines, below


def write_markdown(rows: list[dict], out: Path, command: str) -> None:
    sources: dict = {}
    arrays: dict = {}
    for r in rows:
        if r.get("table", "sources") == "sources":
            sources.setdefault((r["source"], r["accel"]), {})[r["method"]] = r
        else:
            arrays.setdefault((r["ncoil"], r["acs"], r["noise"]), {})[r["method"]] = r
    lines = [
        "# Slices from a foreign simulator: coils with winding phase, per source", "",
        f"- Command: `{command}`"] + [
        f"- Run ({', '.join(sorted({r.get('table', 'sources') for r in rows if r.get('when') == w}))} table): {w}"
        for w in sorted({r.get("when", "") for r in rows})] + [

        "- Simulator: Gaussian-blob coils with a linear phase of up to +-3 cycles per field of view each, "
        "16 interleaved shots, random motion up to +-3 deg / +-3 px, coils estimated, 192x192; moved with "
        "`scipy.ndimage.affine_transform` (the module docstring). PSNR in dB (docs/conventions.md); motion RMSE "
        "in degrees / pixels; seconds of one correction on one thread.", ""]
    below = 0
    if sources:
        t, b = _sources_table(sources)
        below += b
        lines += ["## Per source (8 coils, 24 calibration lines, 1% noise)", ""] + t + [""]
    if arrays:
        t, b = _arrays_table(arrays)
        below += b
        lines += ["## Coil arrays, calibration and noise (Colin27 coronal, R = 2, aligned-SENSE)", ""] + t + [""]
    lines += [f"Results below the uncorrected image: {below}."]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--only", default="", help="comma-separated sources of the sources table (default: all)")
    ap.add_argument("--accel", default="1,2", help="accelerations of the sources table")
    ap.add_argument("--tables", default="sources,arrays", help="sources, arrays or both")
    ap.add_argument("--out", type=Path, default=HERE / "foreign2d.md")
    ap.add_argument("--prior", default=None, help="JSMoCo's prior weights (default: the shipped ones)")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    jsonl = args.out.with_suffix(".jsonl")
    command = "python benchmarks/foreign2d.py" + "".join(f" {a}" for a in sys.argv[1:] if a != "--report-only")
    if not args.report_only:
        todo = jobs(args.size, [int(a) for a in args.accel.split(",")], [s for s in args.only.split(",") if s],
                    args.tables.split(","), args.prior)
        t0 = time.time()
        load0 = os.getloadavg()[0]
        with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
            rows = [r for case in pool.imap(run_case, todo) for r in case]
        when = (f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; mrideblur {__version__}; "
                f"{os.cpu_count()} CPU cores, {args.workers} case(s) at a time; load average before {load0:.1f}, "
                f"after {os.getloadavg()[0]:.1f}; total {time.time() - t0:.0f} s")
        with open(jsonl, "w", encoding="utf-8") as fh:
            fh.write("".join(json.dumps({**r, "when": when}) + "\n" for r in rows))
    rows = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines() if line.strip()]
    write_markdown(rows, args.out, command)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
