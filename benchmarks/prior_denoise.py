"""The diffusion prior as a denoiser, per source: which weights generalise beyond their data.

For every source (a held-out slice per plane), size (128, 192 px) and noise level (sigma 0.05 and
0.1 of the largest magnitude, complex Gaussian), the slice gets a random smooth background
phase (:func:`mrideblur.prior.data.smooth_phase`) and a global phase, and is denoised by

- total variation tuned with the truth: vectorial (real and imaginary coupled) Chambolle TV of
  scikit-image, the weight picked from a log grid by the PSNR against the truth;
- each set of prior weights given: the one-step posterior mean ``D(y, sigma)`` (Tweedie).

PSNR as docs/conventions.md (magnitudes, least-squares scale). Sources: the MNI152 template,
Colin27, INIA19 and synthetic contrasts from the MNI152 tissue maps (all at the held-out band
:data:`mrideblur.prior.data.HELD_OUT`, never trained on), and sigpy's Shepp-Logan (never in any
training set). A weights file whose training config names its sources marks the sources it
left out (``left out`` column): those rows say how the prior does on data it has never seen.

Run: ``python benchmarks/prior_denoise.py --weights mni152-only=mrideblur/prior/weights/mri_prior_mni152.pt
default=mrideblur/prior/weights/mri_prior_mixture.pt new=/path/new.pt`` (one torch thread; writes ``benchmarks/prior_denoise.md`` and ``.jsonl``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mrideblur import __version__  # noqa: E402
from mrideblur.io.anatomy import shepp_logan, template_slice  # noqa: E402
from mrideblur.metrics import psnr  # noqa: E402
from mrideblur.prior import ScorePrior  # noqa: E402
from mrideblur.prior.data import HELD_OUT, smooth_phase  # noqa: E402
from mrideblur.prior.mixture import MIXTURE_SOURCES, synthetic_head  # noqa: E402

HERE = Path(__file__).resolve().parent
SOURCES = MIXTURE_SOURCES + ("shepp-logan",)
PLANES = ("axial", "coronal", "sagittal")
TV_WEIGHTS = np.geomspace(0.005, 0.5, 15)


def test_slice(source: str, plane: str, size: int, seed: int) -> np.ndarray:
    """A held-out magnitude slice of ``source`` (band centre), float64 with max 1."""
    pos = sum(HELD_OUT) / 2
    if source == "shepp-logan":
        m = shepp_logan(size)
    elif source == "synthetic":
        maps = [template_slice(t, plane, pos, size) for t in ("mni152-gm", "mni152-wm", "mni152-csf")]
        m = synthetic_head(*maps, np.random.default_rng([10_000 + seed, PLANES.index(plane), size]))
    else:
        m = template_slice(source, plane, pos, size)
    return np.abs(m) / max(np.abs(m).max(), 1e-12)


def tv_oracle(noisy: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Best PSNR of vectorial TV over :data:`TV_WEIGHTS` (truth-tuned) and its weight."""
    from skimage.restoration import denoise_tv_chambolle

    stack = np.stack([noisy.real, noisy.imag], axis=-1)
    best = (-np.inf, 0.0)
    for w in TV_WEIGHTS:
        d = denoise_tv_chambolle(stack, weight=float(w), channel_axis=-1)
        best = max(best, (psnr(d[..., 0] + 1j * d[..., 1], truth, fit_scale=True), float(w)))
    return best


def left_out(prior: ScorePrior) -> set[str]:
    """Sources a prior's training config did not include (MNI152-only weights: all but MNI152)."""
    cfg = prior.info.get("train_config", {}) or {}
    if cfg.get("data"):
        return set()
    used = set(cfg.get("sources") or ("mni152",))
    return {s for s in SOURCES if s not in used}


def run(weights: dict[str, str], sizes: list[int], sigmas: list[float], sources: list[str]) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    priors = {name: ScorePrior.load(path) for name, path in weights.items()}
    rows = []
    for source in sources:
        planes = ("axial",) if source == "shepp-logan" else PLANES
        for plane in planes:
            for size in sizes:
                m = test_slice(source, plane, size, 0)
                for sigma in sigmas:
                    rng = np.random.default_rng([int(1000 * sigma), size, PLANES.index(plane), SOURCES.index(source)])
                    x = m * np.exp(1j * (smooth_phase(m.shape, rng) + rng.uniform(0, 2 * np.pi)))
                    noisy = x + sigma * (rng.standard_normal(x.shape) + 1j * rng.standard_normal(x.shape))
                    row = {"source": source, "plane": plane, "size": size, "sigma": sigma,
                           "noisy": psnr(noisy, x, fit_scale=True)}
                    t = time.perf_counter()
                    row["tv"], row["tv_weight"] = tv_oracle(noisy, x)
                    row["tv_seconds"] = time.perf_counter() - t
                    for name, prior in priors.items():
                        t = time.perf_counter()
                        den = prior.denoise(noisy.astype(np.complex64), sigma)
                        row[name] = psnr(den, x, fit_scale=True)
                        row[name + "_seconds"] = time.perf_counter() - t
                        row[name + "_left_out"] = source in left_out(prior)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    return rows


def write_markdown(rows: list[dict], names: list[str], out: Path, command: str, when: str, note: str = "") -> None:
    lines = ["# The diffusion prior as a denoiser, per source", "",
             f"- Command: `{command}`", f"- Run: {when}"] + ([f"- Weights: {note}"] if note else []) + [
             "- One held-out slice per plane (band centre of mrideblur.prior.data.HELD_OUT), complex with a random "
             "smooth and global phase; PSNR in dB (docs/conventions.md); TV: vectorial Chambolle, weight tuned with "
             "the truth; prior: one-step posterior mean. `*` marks a source the weights never saw.", "",
             "## Gain over truth-tuned TV (dB), minimum / median over planes", "",
             "| source | size | sigma | noisy | TV | " + " | ".join(names) + " |",
             "|---|---|---|---|---|" + "---|" * len(names)]
    keys = sorted({(r["source"], r["size"], r["sigma"]) for r in rows},
                  key=lambda k: (SOURCES.index(k[0]), k[1], k[2]))
    worst = {n: np.inf for n in names}
    for key in keys:
        rs = [r for r in rows if (r["source"], r["size"], r["sigma"]) == key]
        cells = []
        for n in names:
            g = np.array([r[n] - r["tv"] for r in rs])
            if key[0] != "shepp-logan":  # the criterion is about anatomy; piecewise-constant phantoms are TV's
                worst[n] = min(worst[n], float(g.min()))
            star = "*" if rs[0].get(n + "_left_out") else ""
            cells.append(f"{g.min():+.2f} / {np.median(g):+.2f}{star}")
        lines.append(f"| {key[0]} | {key[1]} | {key[2]:.2f} | {np.median([r['noisy'] for r in rs]):.2f} | "
                     f"{np.median([r['tv'] for r in rs]):.2f} | " + " | ".join(cells) + " |")
    lines += ["", "Worst anatomical slice (Shepp-Logan aside), gain over TV: "
              + ", ".join(f"{n} {worst[n]:+.2f} dB" for n in names) + "."]
    lines += ["", "## Median PSNR (dB) per source, both sizes and noise levels", "",
              "| source | TV | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for source in SOURCES:
        rs = [r for r in rows if r["source"] == source]
        if rs:
            lines.append(f"| {source} | {np.median([r['tv'] for r in rs]):.2f} | "
                         + " | ".join(f"{np.median([r[n] for r in rs]):.2f}" for n in names) + " |")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", nargs="+", default=[f"{name}={HERE.parent / 'mrideblur/prior/weights' / f}" for name, f in
                             (("mni152-only", "mri_prior_mni152.pt"), ("default", "mri_prior_mixture.pt"))],
                    help="name=path pairs (exported weights or checkpoints)")
    ap.add_argument("--sizes", default="128,192")
    ap.add_argument("--sigmas", default="0.05,0.1")
    ap.add_argument("--sources", default=",".join(SOURCES))
    ap.add_argument("--out", type=Path, default=HERE / "prior_denoise.md")
    ap.add_argument("--note", default="", help="how the weights compared were made (written in the header)")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    weights = dict(w.split("=", 1) for w in args.weights)
    names = list(weights)
    jsonl = args.out.with_suffix(".jsonl")
    argv, rest = [], iter(sys.argv[1:])
    for a in rest:
        if a == "--note":
            next(rest, None)  # the note goes in the header, not the command
        elif a != "--report-only":
            argv.append(a)
    command = "python benchmarks/prior_denoise.py" + "".join(f" {a}" for a in argv)
    if not args.report_only:
        t0 = time.time()
        load0 = os.getloadavg()[0]
        rows = run(weights, [int(s) for s in args.sizes.split(",")], [float(s) for s in args.sigmas.split(",")],
                   args.sources.split(","))
        when = (f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; mrideblur {__version__}; "
                f"load average before {load0:.1f}; total {time.time() - t0:.0f} s")
        with open(jsonl, "w", encoding="utf-8") as fh:
            fh.write("".join(json.dumps({**r, "when": when}) + "\n" for r in rows))
    rows = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines() if line.strip()]
    write_markdown(rows, names, args.out, command, rows[0].get("when", ""), args.note)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
