"""A self-contained tour of image deblurring on a built-in photograph.

:func:`run_demo` blurs scikit-image's *camera* photograph with a random camera-shake kernel the
way a sensor records it (``boundary="valid"``: only pixels whose whole blur footprint lies in
the scene) plus 1 % white noise, then restores it five ways:

- the inverse filter with the true kernel (the noise explodes),
- the Wiener filter and the hyper-Laplacian prior with the true kernel (non-blind),
- blind MAP, the naive joint point estimate of image and kernel (known to drift towards the
  delta kernel, Levin et al. 2009),
- blind Variational Bayes (Fergus et al. 2006), which averages over the image while it
  estimates the kernel.

It writes one figure with every result titled by its PSNR, the true and estimated kernels, and
``demo_report.json`` with the numbers, plus ``blurred.png`` and ``true_kernel.npy`` to try
``mrideblur deblur`` on.

How the images are compared
---------------------------
The blurred image is ``(n - k + 1)`` pixels wide and its pixel ``(i, j)`` sits at
``(i + k // 2, j + k // 2)`` of the sharp image, so every comparison is made on that *region*:
the sharp image's central ``(n - k + 1)`` square, and each estimate's central square of the same
size (an estimate of the whole scene, as the non-blind ``boundary="valid"`` solvers return, is
cropped by ``k // 2`` on each side; one of the blurred image's size is taken as it is).  A blind
estimate is only defined up to a translation — the kernel may sit a pixel off centre and the
image then moves the other way — so each estimate is scored at the whole-pixel shift within
``+-MAX_SHIFT`` pixels that gives the highest PSNR (the same search for every method; the
non-blind ones pick shift 0), on the region less ``MAX_SHIFT`` pixels at each side.  PSNR is
:func:`mrideblur.metrics.psnr` with the sharp image as the truth and peak 1.  Every
deconvolution, blind ones included, uses ``boundary="valid"``, the model the data were made
with.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .estimators.base import ProgressFn
from .io import write_array, write_image, write_json

__all__ = ["run_demo", "demo_image", "aligned_psnr", "MAX_SHIFT", "NOISE_SIGMA"]

#: Noise standard deviation on the [0, 1] image ("1 % noise").
NOISE_SIGMA = 0.01
#: Largest whole-pixel shift searched when lining an estimate up with the truth.
MAX_SHIFT = 2
#: Seeds of the kernel, the noise and the blind estimators.
KERNEL_SEED = 3
NOISE_SEED = 0
BLIND_SEED = 0
#: (image size, kernel size) in pixels for the full and the quick demo.
FULL_SETUP = (256, 15)
QUICK_SETUP = (96, 9)


def demo_image(size: int = 256) -> np.ndarray:
    """The scikit-image *camera* photograph in [0, 1], reduced to ``size x size``.

    The 512 x 512 original is averaged over ``f x f`` blocks, ``f = 512 // size``, and the
    central ``size x size`` part of the result kept (``256``: the whole picture at half
    resolution).

    Parameters
    ----------
    size : int
        Side in pixels, 16 .. 512.

    Returns
    -------
    (size, size) float64 ndarray, values in [0, 1].
    """
    import skimage.data

    if not 16 <= size <= 512:
        raise ValueError(f"size: expected 16 .. 512 pixels, got {size}")
    img = skimage.data.camera().astype(np.float64) / 255.0
    factor = 512 // size
    n = 512 // factor
    img = img[: n * factor, : n * factor].reshape(n, factor, n, factor).mean(axis=(1, 3))
    y0 = (n - size) // 2
    return np.ascontiguousarray(img[y0 : y0 + size, y0 : y0 + size])


def _center(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Central ``shape`` part of ``image`` (shape must not exceed the image)."""
    y0 = (image.shape[0] - shape[0]) // 2
    x0 = (image.shape[1] - shape[1]) // 2
    return image[y0 : y0 + shape[0], x0 : x0 + shape[1]]


def aligned_psnr(
    sharp: np.ndarray, estimate: np.ndarray, region: tuple[int, int], max_shift: int = MAX_SHIFT
) -> tuple[float, tuple[int, int]]:
    """PSNR of ``estimate`` against ``sharp`` on the central ``region``, best whole-pixel shift.

    Parameters
    ----------
    sharp : (n, n) array
        The truth.
    estimate : (m, m) array, ``m >= region``
        An estimate of the scene (whole scene or only the region); its central ``region``
        part is compared.
    region : (ry, rx)
        Size of the compared region, centred in both arrays.
    max_shift : int
        Shifts ``-max_shift .. max_shift`` pixels along y and x are tried; the compared
        window is the region less ``max_shift`` pixels per side. ``sharp`` must extend at
        least ``max_shift`` pixels beyond ``region`` on every side.

    Returns
    -------
    psnr : float
        In dB, from :func:`mrideblur.metrics.psnr` with peak 1 (the [0, 1] intensity range).
    shift : (dy, dx)
        The shift of the truth window that scored best.
    """
    from .metrics import psnr

    m = int(max_shift)
    est = _center(np.asarray(estimate, dtype=np.float64), region)
    est = est[m : region[0] - m, m : region[1] - m]
    oy = (sharp.shape[0] - region[0]) // 2 + m
    ox = (sharp.shape[1] - region[1]) // 2 + m
    best = (-np.inf, (0, 0))
    for dy in range(-m, m + 1):
        for dx in range(-m, m + 1):
            ref = sharp[oy + dy : oy + dy + est.shape[0], ox + dx : ox + dx + est.shape[1]]
            score = float(psnr(est, ref, data_range=1.0))
            if score > best[0]:
                best = (score, (dy, dx))
    return best


def run_demo(
    out_dir: str | os.PathLike[str],
    quick: bool = False,
    progress: ProgressFn | None = None,
) -> dict[str, Path]:
    """Blur a photograph, deblur it five ways, and write a comparison figure and report.

    Parameters
    ----------
    out_dir : str or path-like
        Output directory (created).
    quick : bool
        A ``96 x 96`` image with a 9-pixel kernel (a few seconds, for tests) instead of
        ``256 x 256`` with a 15-pixel kernel (about a minute or two on two cores, nearly all
        of it in the two blind estimators).
    progress : callable ``progress(step, total, message)``, optional
        Called before each stage (``total`` stages) and, with the same step, with the blind
        estimators' own progress in ``message``.

    Returns
    -------
    dict of str to Path
        ``"figure"`` (``demo.png``), ``"report"`` (``demo_report.json``), ``"blurred"``
        (``blurred.png``, 8 bit) and ``"true_kernel"`` (``true_kernel.npy``), and the MRI
        motion-correction outputs in ``mri/`` (:func:`run_mri_demo`, keys ``"mri_*"``).

    Notes
    -----
    See the module docstring for how estimates are lined up with the truth before scoring.
    """
    from .deblur import blind_deconvolve, blur, camera_shake_kernel, deconvolve
    from .metrics import kernel_similarity

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    size, ksize = QUICK_SETUP if quick else FULL_SETUP
    stages = ["blur", "inverse", "wiener", "hyper-laplacian", "blind MAP", "blind VB", "figure"]
    total = len(stages)

    def report_stage(i: int, extra: str = "") -> None:
        if progress is not None:
            progress(i, total, stages[i] + (f": {extra}" if extra else ""))

    def inner(i: int) -> ProgressFn:
        return lambda step, n, message: report_stage(i, f"{message} ({step}/{n})" if message else f"{step}/{n}")

    report_stage(0)
    sharp = demo_image(size)
    k_true = camera_shake_kernel(ksize, seed=KERNEL_SEED)
    blurred = blur(sharp, k_true, noise_sigma=NOISE_SIGMA, seed=NOISE_SEED, boundary="valid")
    region = blurred.shape

    images: dict[str, np.ndarray] = {"sharp": sharp, "blurred": blurred}
    kernels: dict[str, np.ndarray] = {"true": k_true}
    seconds: dict[str, float] = {}
    for i, method in enumerate(("inverse", "wiener", "hyper-laplacian"), start=1):
        report_stage(i)
        t0 = time.perf_counter()
        images[method] = deconvolve(blurred, k_true, method=method, boundary="valid")
        seconds[method] = time.perf_counter() - t0
    histories: dict[str, Any] = {}
    for i, method in ((4, "map"), (5, "vb")):
        report_stage(i)
        t0 = time.perf_counter()
        res = blind_deconvolve(
            blurred, ksize, method=method, seed=BLIND_SEED, progress=inner(i), boundary="valid"
        )
        seconds[method] = time.perf_counter() - t0
        images[method] = np.asarray(res.image)
        kernels[method] = np.asarray(res.kernel)
        histories[method] = {
            key: res.history[key] for key in ("scales", "iterations", "patch") if key in res.history
        }

    scores = {name: aligned_psnr(sharp, img, region) for name, img in images.items() if name != "sharp"}
    psnr_db = {name: s[0] for name, s in scores.items()}
    shifts = {name: list(s[1]) for name, s in scores.items()}
    ksim = {name: float(kernel_similarity(kernels[name], k_true)) for name in ("map", "vb")}

    report_stage(6)
    paths = {
        "figure": out / "demo.png",
        "report": out / "demo_report.json",
        "blurred": out / "blurred.png",
        "true_kernel": out / "true_kernel.npy",
    }
    _write_figure(paths["figure"], sharp, images, kernels, psnr_db, ksim, region)
    write_image(paths["blurred"], blurred)
    write_array(paths["true_kernel"], k_true)
    write_json(
        paths["report"],
        {
            "mrideblur_version": __version__,
            "image": "skimage.data.camera",
            "image_shape": sharp.shape,
            "blurred_shape": blurred.shape,
            "kernel": {"generator": "camera_shake_kernel", "size": ksize, "seed": KERNEL_SEED},
            "noise_sigma": NOISE_SIGMA,
            "noise_seed": NOISE_SEED,
            "blind_seed": BLIND_SEED,
            "comparison": {
                "region": region,
                "max_shift": MAX_SHIFT,
                "how": "central region of the blurred image's size in the sharp image and in each "
                "estimate, best whole-pixel shift within +-max_shift, window trimmed by max_shift",
            },
            "psnr_db": psnr_db,
            "best_shift": shifts,
            "kernel_similarity": ksim,
            "seconds": seconds,
            "blind_history": histories,
        },
    )
    paths.update(run_mri_demo(out / "mri", quick=quick, progress=progress))
    if progress is not None:
        progress(total, total, "done")
    return paths


def run_mri_demo(out_dir: str | os.PathLike[str], quick: bool = False,
                 progress: ProgressFn | None = None) -> dict[str, Path]:
    """Simulate a motion-corrupted multi-shot scan of a built-in MNI152 slice, correct it with
    aligned-SENSE (coils estimated jointly) and write every output of ``mrideblur correct``.

    ``128 x 128``, 8 coils, 16 interleaved shots, random motion up to 3 deg / 3 px, 1% noise
    (``quick``: ``64 x 64``, 4 coils, 8 shots). Returns ``"mri_figure"`` (``report.png``:
    uncorrected, corrected, truth, motion traces), ``"mri_report"`` and the other outputs.
    """
    from .io.anatomy import mni_slice
    from .io.results import write_correction_outputs
    from .mri import correct, simulate
    from .plots import correction_figure
    from .shell import correction_scores

    size, ncoil, nshot, iters = (64, 4, 8, 30) if quick else (128, 8, 16, 100)
    case = simulate(mni_slice("axial", 0.55, size), ncoil=ncoil, nshot=nshot, ordering="interleaved",
                    motion="random", noise=0.01, seed=7)
    truth, tm = case.truth["image"], case.truth["motion"]
    res = correct(case.kspace, case.shot_index, "aligned-sense", coils="joint", max_iter=iters, progress=progress)
    report = dict(res.report)
    report.update(correction_scores(res, truth, tm))
    fig = correction_figure(res.uncorrected, res.image, res.motion, report["residual_per_shot"], truth_image=truth,
                            truth_motion=tm, title=f"MNI152 slice, {nshot} shots, {ncoil} coils: aligned-SENSE "
                            f"{report['psnr_db']['uncorrected']:.1f} -> {report['psnr_db']['corrected']:.1f} dB")
    written = write_correction_outputs(out_dir, res.image, res.motion, res.sens, report, figure=fig)
    return {f"mri_{k}": v for k, v in written.items()}


_PANELS = (
    ("sharp", "sharp"),
    ("blurred", "blurred (1% noise)"),
    ("inverse", "inverse filter"),
    ("wiener", "Wiener"),
    ("hyper-laplacian", "hyper-Laplacian"),
    ("map", "blind MAP"),
    ("vb", "blind VB"),
)


def _write_figure(
    path: Path,
    sharp: np.ndarray,
    images: dict[str, np.ndarray],
    kernels: dict[str, np.ndarray],
    psnr_db: dict[str, float],
    ksim: dict[str, float],
    region: tuple[int, int],
) -> None:
    """Two rows of five panels: the seven images (on the compared region) and three kernels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .io import atomic_write

    fig = Figure(figsize=(15, 6.6), layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas, without touching pyplot's global backend
    axes = fig.subplots(2, 5)
    for ax, (name, title) in zip(axes.ravel(), _PANELS):
        ax.imshow(_center(images[name], region), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(title if name == "sharp" else f"{title}\n{psnr_db[name]:.2f} dB")
    kernel_titles = {"true": "true kernel", "map": "MAP kernel", "vb": "VB kernel"}
    for ax, name in zip(axes.ravel()[len(_PANELS) :], ("true", "map", "vb")):
        k = kernels[name]
        ax.imshow(k / k.max() if k.max() > 0 else k, cmap="magma", vmin=0.0, vmax=1.0, interpolation="nearest")
        sim = "" if name == "true" else f"\nsimilarity {ksim[name]:.2f}"
        ax.set_title(kernel_titles[name] + sim)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        f"camera {sharp.shape[0]}x{sharp.shape[1]}, camera-shake kernel {kernels['true'].shape[0]} px; "
        f"PSNR on the central {region[0]}x{region[1]} region (best shift within +-{MAX_SHIFT} px)"
    )
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
