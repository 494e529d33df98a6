"""JSMoCo where the prior matters: R = 2, 3, 4, and whether its uncertainty can be trusted.

Cases (192x192, 8 birdcage coils, 16 interleaved shots, regular undersampling along ky with
24 fully sampled centre lines, motion up to +-3 deg / +-3 px, 1% noise, coils not given) on
three sources: the MNI152 template (development), Colin27 (a single-subject head with scalp)
and the INIA19 macaque brain (no constant here was set on them). Each case is the volume's
centre slice, inside the band :data:`mrideblur.prior.data.HELD_OUT` that no prior was trained
on; the default prior's training mixture holds other slices of Colin27 and INIA19, the
MNI152-only weights (``--jsmoco '{"prior": ".../mri_prior_mni152.pt"}'``) none.

Rows per case (scores as docs/conventions.md: PSNR after a least-squares scale inside the
object mask, motion RMSE over shots, wall seconds on one thread):

* **uncorrected**: ESPIRiT maps, no motion;
* **aligned-SENSE**: ``correct(method="aligned-sense")``, coils estimated;
* **JSMoCo**: the sweep started from that result, 4 chains (seconds include the start);
* **oracle**: CG-SENSE with the true motion and coils, 30 iterations (no prior: a weak
  reference at R >= 3);
* **prior oracle**: the same sampler with the true motion and coils held fixed, started from
  the oracle image — what the prior gives when motion and coils are known, so the gap due to
  estimating them shows.

Uncertainty columns (JSMoCo and prior oracle; inside the object mask, magnitude after the same
least-squares scale as the PSNR):

* ``std/RMSE``: RMS of the per-pixel std over the RMS error — 1 when the map means what it says;
* ``|e| <= 2 std``: share of pixels whose error is within two std (95% for Gaussian errors);
* ``patch rho``: Spearman correlation between the mean std and the RMS error of the 8x8
  patches lying inside the object;
* with ``--realisations K > 1``: ``reference rho``, the same correlation reached by a map
  derived from the truth — each patch's RMS error over the other K - 1 noise realisations of
  the same scan (same anatomy, motion, coils; fresh noise on the acquired samples) — the most a
  map can be expected to rank; ``own rho`` is then the median over the realisations.

Run: ``python benchmarks/acceleration.py [--only I,J] [--realisations K] [--threads T]
[--out MD] [--report-only]`` (writes ``benchmarks/acceleration.md`` and its raw rows
``acceleration.jsonl``; a rerun skips the cases already there). About 4 minutes per case and
realisation on one thread.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mrideblur import __version__  # noqa: E402
from mrideblur.estimators.jsmoco import JSMoCoOptions, jsmoco  # noqa: E402
from mrideblur.io.anatomy import template_slice  # noqa: E402
from mrideblur.metrics import fit_scale_magnitudes, psnr, reliability  # noqa: E402
from mrideblur.mri import correct, sense_recon, simulate  # noqa: E402
from mrideblur.prior import ScorePrior  # noqa: E402
from mrideblur.threads import get_threads  # noqa: E402

CASES = [
    dict(source="mni152", plane="axial", accel=2, motion="random", seed=31),
    dict(source="mni152", plane="coronal", accel=3, motion="drift", seed=32),
    dict(source="mni152", plane="axial", accel=4, motion="random", seed=7),
    dict(source="colin27", plane="axial", accel=2, motion="drift", seed=33),
    dict(source="colin27", plane="sagittal", accel=3, motion="step", seed=34),
    dict(source="colin27", plane="coronal", accel=4, motion="drift", seed=8),
    dict(source="inia19", plane="axial", accel=2, motion="step", seed=35),
    dict(source="inia19", plane="coronal", accel=3, motion="random", seed=36),
    dict(source="inia19", plane="sagittal", accel=4, motion="random", seed=37),
]
PATCH = 8
NCHAINS = 4


def _key(c: dict) -> str:
    return f"{c['source']}/{c['plane']}/R{c['accel']}/{c['motion']}/seed{c['seed']}"


def _patches(z: np.ndarray) -> np.ndarray:
    n0, n1 = (z.shape[0] // PATCH) * PATCH, (z.shape[1] // PATCH) * PATCH
    return z[:n0, :n1].reshape(n0 // PATCH, PATCH, n1 // PATCH, PATCH).transpose(0, 2, 1, 3).reshape(-1, PATCH * PATCH)


def calibration(image: np.ndarray, std: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> dict:
    """How well a std map ``std`` describes the error of ``image`` inside ``mask`` (see the
    module doc): :func:`mrideblur.metrics.reliability` plus the patch ranking and the
    percentiles of ``|e| / std``."""
    rel = reliability(std, image, truth, mask)
    e, t, a = fit_scale_magnitudes(image, truth, mask)
    err, u = e - t, a * np.asarray(std, dtype=np.float64)
    inside = _patches(mask).all(1)
    pe = np.sqrt((_patches(err) ** 2).mean(1))[inside]
    ps = _patches(u).mean(1)[inside]
    return {"ratio": rel["ratio"], "cover2": rel["cover2"],
            "patch_rho": float(spearmanr(ps, pe).statistic),
            # |e| / std at every percent: the coverage of any multiple of the map, read off later
            "z_percentiles": np.percentile(np.abs(err[mask]) / np.maximum(u[mask], 1e-30), np.arange(1, 100)).tolist(),
            "patch_err": pe.tolist()}


def run_case(c: dict, realisations: int, prior: ScorePrior, options: dict) -> list[dict]:
    image = template_slice(c["source"], c["plane"], 0.5, 192)
    kw = dict(ncoil=8, nshot=16, ordering="interleaved", accel=c["accel"], acs=24, motion=c["motion"], seed=c["seed"])
    noisy = simulate(image, noise=0.01, **kw)
    clean = simulate(image, noise=0.0, **kw) if realisations > 1 else None
    si, tm, ts = noisy.shot_index, noisy.truth["motion"], noisy.truth["sens"]
    truth = noisy.truth["image"]
    mask = np.abs(truth) > 0.05 * np.abs(truth).max()
    acq = (si >= 0)[None, :, None]
    sigma = float((noisy.kspace - clean.kspace)[:, si >= 0].std() / np.sqrt(2)) if clean is not None else 0.0
    rng = np.random.default_rng(c["seed"])
    rows: list[dict] = []
    std_scale = JSMoCoOptions(**options).std_scale

    def score(k: int, name: str, img: np.ndarray, motion: np.ndarray, seconds: float, std=None) -> None:
        e = motion - tm
        row = dict(key=_key(c), realisation=k, method=name, psnr=psnr(img, truth, fit_scale=True),
                   rot=float(np.sqrt(np.mean(e[:, 0] ** 2))), trans=float(np.sqrt(np.mean(e[:, 1:] ** 2))),
                   seconds=seconds)
        if std is not None:
            row.update(calibration(img, std, truth, mask), std_scale=std_scale)
        rows.append(row)
        print({k2: (round(v, 3) if isinstance(v, float) else v) for k2, v in row.items() if k2 not in ("patch_err", "z_percentiles")}, flush=True)

    for k in range(realisations):
        y = noisy.kspace if k == 0 else clean.kspace + acq * sigma * (
            rng.standard_normal(clean.kspace.shape) + 1j * rng.standard_normal(clean.kspace.shape)).astype(np.complex64)
        t = time.perf_counter()
        none = correct(y, si, "none")
        score(k, "uncorrected", none.image, none.motion, time.perf_counter() - t)
        t = time.perf_counter()
        r = correct(y, si, "aligned-sense")
        start = time.perf_counter() - t
        score(k, "aligned-SENSE", r.image, r.motion, start)
        t = time.perf_counter()
        out = jsmoco(y, si, r.sens, r.motion, r.image, prior, JSMoCoOptions(nsamples=NCHAINS, **options), seed=c["seed"] + k)
        score(k, "JSMoCo", out["image"], out["motion"], start + time.perf_counter() - t, out["uncertainty"])
        t = time.perf_counter()
        oracle = sense_recon(y, si, ts, tm, max_iter=30)
        score(k, "oracle (CG-SENSE, true motion and coils)", oracle, tm, time.perf_counter() - t)
        t = time.perf_counter()
        po = jsmoco(y, si, ts, tm, oracle, prior,
                    JSMoCoOptions(nsamples=NCHAINS, motion_every=0, coil_every=0, **options),
                    estimate_coils=False, seed=c["seed"] + k)
        score(k, "prior oracle (true motion and coils)", po["image"], tm, time.perf_counter() - t, po["uncertainty"])
    if realisations > 1:  # truth-derived reference: each patch's RMS error over the other realisations
        for m in ("JSMoCo", "prior oracle (true motion and coils)"):
            rs = [r for r in rows if r["method"] == m]
            pe = np.array([r["patch_err"] for r in rs])
            for i, r in enumerate(rs):
                ref = np.sqrt((np.delete(pe, i, 0) ** 2).mean(0))
                r["reference_rho"] = float(spearmanr(ref, pe[i]).statistic)
    for r in rows:
        r.pop("patch_err", None)
    return rows


def rescaled(row: dict, std_scale: float) -> dict:
    """A row's calibration figures for the map times ``std_scale / row["std_scale"]`` (the map
    is multiplied by a constant, so the ratio scales with it and the coverage is read off the
    stored percentiles of ``|e| / std``)."""
    if "ratio" not in row:
        return row
    f = std_scale / row.get("std_scale", 1.0)
    z = np.asarray(row["z_percentiles"])
    return dict(row, ratio=row["ratio"] * f, cover2=coverage(z, 2.0 * f))


def coverage(z_percentiles: np.ndarray, k: float) -> float:
    """Share of pixels with ``|e| / std <= k``, interpolated in the stored percentiles (1..99)."""
    return float(np.interp(k, z_percentiles, np.arange(1, 100) / 100.0, left=0.0, right=1.0))


def reliability_figure(rows: list[dict], std_scale: float, path: Path) -> None:
    """Observed share of pixels within ``k`` std against the Gaussian expectation ``2 Phi(k) - 1``,
    one line per JSMoCo case (on the diagonal when calibrated)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from scipy.stats import norm

    fig = Figure(figsize=(5.2, 5.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ks = np.linspace(0.05, 3.5, 60)
    ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1, label="calibrated")
    for r in rows:
        if r["method"] != "JSMoCo" or r["realisation"] != 0:
            continue
        f = std_scale / r.get("std_scale", 1.0)
        z = np.asarray(r["z_percentiles"])
        src = r["key"].split("/")[0]
        ax.plot(2 * norm.cdf(ks) - 1, [coverage(z, k * f) for k in ks], lw=1.2,
                color={"mni152": "C0", "colin27": "C1", "inia19": "C2"}.get(src, "C3"),
                ls={"R2": "-", "R3": "--", "R4": ":"}.get(r["key"].split("/")[2], "-"), label=r["key"])
    ax.set_xlabel("expected share within k std (Gaussian)")
    ax.set_ylabel("observed share within k std")
    ax.set_title(f"JSMoCo uncertainty, std_scale {std_scale:g}")
    ax.legend(fontsize=6, loc="lower right")
    fig.savefig(path, dpi=110)


def _fmt(v: float | None, f: str = ".2f") -> str:
    return "" if v is None or not np.isfinite(v) else format(v, f)


def write_markdown(rows: list[dict], out: Path, command: str, options: dict, note: str = "") -> None:
    std_scale = JSMoCoOptions(**options).std_scale
    measured = sorted({r.get("std_scale", 1.0) for r in rows if "ratio" in r})
    rows = [rescaled(r, std_scale) for r in rows]
    figure = out.with_name(out.stem + "_reliability.png")
    reliability_figure(rows, std_scale, figure)
    keys = list(dict.fromkeys(r["key"] for r in rows))
    nreal = max((r["realisation"] for r in rows), default=0) + 1
    lines = [
        "# JSMoCo at R = 2, 3, 4: accuracy and calibration", "",
        f"Command: `{command}`; last updated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"{os.cpu_count()} CPU cores, threads per run {get_threads()}; mrideblur {__version__}; "
        f"{len(keys)} of {len(CASES)} cases, {nreal} noise realisation(s) each. JSMoCo: {NCHAINS} chains, options "
        f"{options or 'the defaults'}, uncertainty std_scale {std_scale:g} (rows measured with {measured}: "
        "the scale multiplies the map, so the ratio and the coverage are recomputed from the stored figures). "
        f"Raw rows: `{out.with_suffix('.jsonl').name}`; reliability plot: `{figure.name}`."
        + (f" {note}" if note else ""), "",
        "192x192, 8 coils, 16 interleaved shots, 24 ACS lines, motion up to +-3 deg / px, 1% noise, coils "
        "estimated. MNI152 is the development source; no constant was set on Colin27 or INIA19. Every case is "
        "the volume's centre slice, in the band no prior was trained on (the default prior's mixture holds other "
        "slices of all three subjects). Definitions of the columns: the module docstring of `benchmarks/acceleration.py`.", "",
        "## Per case (first realisation)", "",
        "| case | method | PSNR dB | rot RMSE deg | trans RMSE px | std/RMSE | abs(e) <= 2 std | patch rho | "
        "reference rho | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k in keys:
        for r in [r for r in rows if r["key"] == k and r["realisation"] == 0]:
            own = [q.get("patch_rho") for q in rows if q["key"] == k and q["method"] == r["method"]]
            ref = [q.get("reference_rho") for q in rows if q["key"] == k and q["method"] == r["method"]]
            own_m = float(np.median(own)) if own[0] is not None else None
            ref_m = float(np.median(ref)) if ref[0] is not None else None
            lines.append(f"| {k} | {r['method']} | {r['psnr']:.2f} | {r['rot']:.3f} | {r['trans']:.3f} | "
                         f"{_fmt(r.get('ratio'))} | {_fmt(r.get('cover2'), '.3f')} | {_fmt(own_m)} | {_fmt(ref_m)} | "
                         f"{r['seconds']:.0f} |")
    lines += ["", "## Summary per acceleration (median over cases, first realisation)", "",
              "| R | JSMoCo - aligned-SENSE dB | JSMoCo - oracle dB | JSMoCo - prior oracle dB | "
              "JSMoCo rot / trans RMSE | std/RMSE | abs(e) <= 2 std | JSMoCo seconds |",
              "|---|---|---|---|---|---|---|---|"]
    for accel in sorted({int(k.split("/")[2][1:]) for k in keys}):
        ks = [k for k in keys if f"/R{accel}/" in k]

        def get(k: str, m: str) -> dict:
            return next(r for r in rows if r["key"] == k and r["realisation"] == 0 and r["method"].startswith(m))

        d = {name: [get(k, "JSMoCo")["psnr"] - get(k, m)["psnr"] for k in ks]
             for name, m in (("a", "aligned"), ("o", "oracle"), ("p", "prior oracle"))}
        js = [get(k, "JSMoCo") for k in ks]
        lines.append(f"| {accel} | {np.median(d['a']):.2f} (min {min(d['a']):.2f}) | {np.median(d['o']):.2f} "
                     f"(min {min(d['o']):.2f}) | {np.median(d['p']):.2f} (min {min(d['p']):.2f}) | "
                     f"{np.median([r['rot'] for r in js]):.3f} / {np.median([r['trans'] for r in js]):.3f} | "
                     f"{np.median([r['ratio'] for r in js]):.2f} | {np.median([r['cover2'] for r in js]):.3f} | "
                     f"{np.median([r['seconds'] for r in js]):.0f} |")
    out.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=None, help="comma-separated case indices (0-8)")
    ap.add_argument("--realisations", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="torch / scipy.fft / BLAS threads")
    ap.add_argument("--jsmoco", default="{}", help="JSON of JSMoCoOptions fields for the JSMoCo rows")
    ap.add_argument("--out", default=None, help="markdown to write (raw rows beside it as .jsonl)")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--note", default="", help="a sentence for the header (e.g. how the runs shared the machine)")
    args = ap.parse_args()
    from mrideblur.threads import set_threads

    set_threads(args.threads)
    options = json.loads(args.jsmoco)
    out = Path(args.out) if args.out else Path(__file__).with_name("acceleration.md")
    raw = out.with_suffix(".jsonl")
    rows = [json.loads(line) for line in raw.read_text().splitlines() if line.strip()] if raw.exists() else []
    argv = sys.argv[1:]
    if "--note" in argv:  # the note is in the header already
        i = argv.index("--note")
        argv = argv[:i] + argv[i + 2:]
    command = " ".join(["python benchmarks/acceleration.py"] + [shlex.quote(a) for a in argv if a != "--report-only"])
    if not args.report_only:
        cases = [CASES[int(i)] for i in args.only.split(",")] if args.only else CASES
        # a "prior" in --jsmoco picks the weights for JSMoCo and the prior oracle (default: the shipped ones)
        prior = ScorePrior.load(options.pop("prior")) if "prior" in options else ScorePrior.default()
        for c in cases:
            if any(r["key"] == _key(c) for r in rows):
                print(f"{_key(c)}: already in {raw.name}, skipped")
                continue
            new = run_case(c, args.realisations, prior, options)
            rows = [r for r in rows if r["key"] != _key(c)] + new
            raw.write_text("".join(json.dumps(r) + "\n" for r in rows))
            write_markdown(rows, out, command, options, args.note)
    write_markdown(rows, out, command, options, args.note)


if __name__ == "__main__":
    main()
