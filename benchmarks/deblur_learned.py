"""The learned deblurring methods on the deblurring benchmark's photographs (never trained on).

Set and scoring: exactly those of ``benchmarks/deblur.py`` — the four benchmark photographs
(camera, astronaut, moon, coins; ``benchmarks/images.py``, kept out of every training set by
:data:`mrideblur.learn.blur_data.BENCHMARK_PHOTOS`), 256 x 256 observations of a ``valid`` blur
by four camera-shake kernels of 15-25 px, 1% noise; PSNR and SSIM on the interior at the best
whole-pixel shift within +-3 px.  A network returns the observation-sized image, edge-padded to
scene size like the blurred input (only the interior is scored); ``neural-filter`` and
``residual-prior`` run with ``boundary="valid"`` and return the scene (``--network-image`` adds
``neural-filter`` rows with ``final="network"``: the network's own image, edge-padded).  ``ER`` is Levin et al.'s
error ratio of the method's kernel (for ``srn`` the one fitted to its image; hyper-Laplacian
deconvolution with it against the true kernel).

Each weights file is one row group (``--weights name=path``, several allowed: a run's
checkpoints along training); the network, and so the method (``srn`` or ``neural-filter``), is
read from the file.  ``--residual-prior`` adds ``method="residual-prior"`` (blind VB's kernel,
then the deep residual prior; untrained, about 90 s per case).  VB's figures on the same cases
are in ``benchmarks/deblur.md``.

Run from the repository root: ``python benchmarks/deblur_learned.py --weights srn=PATH
neural-filter=PATH --residual-prior`` (writes ``benchmarks/deblur_learned.md``).
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
from mrideblur.deblur import blind_deconvolve, blur, camera_shake_kernel, deconvolve  # noqa: E402
from mrideblur.learn.train_deblur import load_deblur_network  # noqa: E402
from mrideblur.metrics import error_ratio, kernel_similarity  # noqa: E402
from mrideblur.threads import set_threads  # noqa: E402

from benchmarks.deblur import KERNELS, MAX_SHIFT, NOISE_SIGMA, SIZE, interior, scores  # noqa: E402
from benchmarks.images import benchmark_images  # noqa: E402


def network_of(path: str) -> str:
    """The network a weights file or checkpoint holds (``srn``, ``neural-filter``, ...)."""
    info = load_deblur_network(path)[1]
    return info.get("network") or info["train_config"]["network"]


def run_method(y: np.ndarray, ks: int, method: str, path: str | None):
    """The method's result and its estimate on the scene (observation edge-padded for srn)."""
    if method == "srn":
        res = blind_deconvolve(y, ks, method="srn", weights=path)
        return res, np.pad(res.image, ks // 2, mode="edge")
    extra = {"weights": path} if path is not None else {}
    if method == "neural-filter (network image)":
        method, extra["final"] = "neural-filter", "network"
    res = blind_deconvolve(y, ks, method=method, boundary="valid", patch=None, **extra)
    return res, res.image


def method_rows(weights: list[tuple[str, str]], residual_prior: bool, network_image: bool) -> list[tuple]:
    """``(label, method, weights path)`` of every row group."""
    rows = []
    for label, path in weights:
        rows.append((label, network_of(path), path))
        if network_image and rows[-1][1] == "neural-filter":
            rows.append((f"{label} (network image)", "neural-filter (network image)", path))
    if residual_prior:
        rows.append(("residual-prior", "residual-prior", None))
    return rows


def run(weights: list[tuple[str, str]], residual_prior: bool = False, network_image: bool = False) -> list[dict]:
    methods = method_rows(weights, residual_prior, network_image)
    rows = []
    for ks, kseed in KERNELS:
        images = benchmark_images(SIZE + ks - 1)
        k_true = camera_shake_kernel(ks, seed=kseed)
        for ii, (name, x) in enumerate(images.items()):
            y = blur(x, k_true, noise_sigma=NOISE_SIGMA, seed=100 * ii + kseed, boundary="valid")
            x_hl_true = deconvolve(y, k_true, "hyper-laplacian", boundary="valid")
            base = {"image": name, "ks": ks, "kseed": kseed}
            sc = scores(np.pad(y, ks // 2, mode="edge"), x, ks)
            rows.append({**base, "method": "blurred", **sc, "seconds": 0.0})
            p_blur = sc["psnr"]
            for label, method, path in methods:
                t0 = time.perf_counter()
                res, scene = run_method(y, ks, method, path)
                dt = time.perf_counter() - t0
                sc = scores(scene, x, ks)
                x_fit = deconvolve(y, res.kernel, "hyper-laplacian", boundary="valid")
                sc["er"] = error_ratio(interior(x_fit, ks), interior(x_hl_true, ks), interior(x, ks), MAX_SHIFT)
                sc["ksim"] = kernel_similarity(res.kernel, k_true)
                if res.uncertainty is not None:
                    sc["unc"] = float(np.mean(interior(res.uncertainty, ks)))
                rows.append({**base, "method": label, **sc, "seconds": dt})
                print(f"{name} {ks}/{kseed} {label}: {sc['psnr'] - p_blur:+.2f} dB", flush=True)
    return rows


def write(rows: list[dict], weights: list[tuple[str, str]], residual_prior: bool, network_image: bool, out: Path,
          command: str, wall: float) -> None:
    lines = ["# Learned deblurring on the deblurring benchmark", "",
             f"- Command: `{command}`",
             f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; mrideblur "
             f"{mrideblur.__version__}; {os.cpu_count()} CPU cores, one thread; total {wall:.0f} s",
             "- Set and scoring: those of `benchmarks/deblur.py` (16 cases: camera, astronaut, moon, coins x four "
             "camera-shake kernels of 15-25 px, valid blur, 1% noise); see the module docstring. VB on the same "
             "cases: median gain +4.03 dB (`benchmarks/deblur.md`).", "",
             "| row | method | training steps (CPU hours) | median gain over blurred (dB) | min / max gain | "
             "median PSNR | median SSIM | median ER of the kernel | median s |",
             "|---|---|---|---|---|---|---|---|---|"]
    blurred = {(r["image"], r["ks"], r["kseed"]): r for r in rows if r["method"] == "blurred"}
    labels = [(label, method, None if path is None else load_deblur_network(path)[1])
              for label, method, path in method_rows(weights, residual_prior, network_image)]
    for label, method, info in labels:
        sel = [r for r in rows if r["method"] == label]
        gains = [r["psnr"] - blurred[(r["image"], r["ks"], r["kseed"])]["psnr"] for r in sel]
        trained = ("untrained (fitted per image)" if info is None
                   else f"{info.get('steps')} ({float(info.get('seconds', 0)) / 3600:.1f})")
        lines.append(f"| {label} | {method} | {trained} | "
                     f"{np.median(gains):+.2f} | {min(gains):+.2f} / {max(gains):+.2f} | "
                     f"{np.median([r['psnr'] for r in sel]):.2f} | {np.median([r['ssim'] for r in sel]):.3f} | "
                     f"{np.median([r['er'] for r in sel]):.2f} | {np.median([r['seconds'] for r in sel]):.1f} |")
    unc = [r for r in rows if "unc" in r]
    if unc:
        lines += ["", f"residual-prior's ensemble standard deviation (`res.uncertainty`), mean over the interior: "
                  f"median {np.median([r['unc'] for r in unc]):.4f} (image units; noise 0.01)."]
    lines += ["", "## Per case (gain over blurred, dB)", "",
              "| image | kernel | blurred PSNR | " + " | ".join(label for label, _, _ in labels) + " |",
              "|---|---|---|" + "---|" * len(labels)]
    for key, b in blurred.items():
        cells = [f"{next(r['psnr'] for r in rows if r['method'] == label and (r['image'], r['ks'], r['kseed']) == key) - b['psnr']:+.2f}"
                 for label, _, _ in labels]
        lines.append(f"| {key[0]} | {key[1]} px, seed {key[2]} | {b['psnr']:.2f} | " + " | ".join(cells) + " |")
    out.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", nargs="*", default=[], help="name=path pairs (exported weights or checkpoints)")
    ap.add_argument("--residual-prior", action="store_true", help="also method='residual-prior' (about 90 s a case)")
    ap.add_argument("--network-image", action="store_true",
                    help="for neural-filter weights, also a row with final='network' (the network's own image)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "deblur_learned.md")
    args = ap.parse_args()
    set_threads(1)
    weights = [tuple(w.split("=", 1)) for w in args.weights]
    t0 = time.perf_counter()
    rows = run(weights, args.residual_prior, args.network_image)
    command = "python benchmarks/deblur_learned.py " + " ".join(sys.argv[1:])
    write(rows, weights, args.residual_prior, args.network_image, args.out, command, time.perf_counter() - t0)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
