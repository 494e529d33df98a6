"""A self-contained tour of the package in two parts: photograph deblurring, then MRI motion correction.

:func:`run_demo` (``mrideblur demo``) runs both and returns their headline numbers, which
:func:`summary_lines` turns into the few lines the command prints.

Part 1, the photograph, blurs scikit-image's *camera* photograph with a random camera-shake
kernel the way a sensor records it (``boundary="valid"``: only pixels whose whole blur
footprint lies in the scene) plus 1 % white noise, then restores it five ways:

- the inverse filter with the true kernel (the noise explodes),
- the Wiener filter and the hyper-Laplacian prior with the true kernel (non-blind),
- blind MAP, the naive joint point estimate of image and kernel (known to drift towards the
  delta kernel, Levin et al. 2009),
- blind Variational Bayes (Fergus et al. 2006), which averages over the image while it
  estimates the kernel.

It writes one figure with every result titled by its PSNR, the true and estimated kernels, and
``demo_report.json`` with the numbers, plus ``blurred.png`` and ``true_kernel.npy`` to try
``mrideblur deblur`` on.

Part 2, the MRI scan (:func:`run_mri_demo`), simulates a 16-shot, 8-coil acquisition of an axial
MNI152 T1 slice (``128 x 128``) with random rigid motion between shots and 1 % noise, corrects
it with aligned-SENSE (motion and coil maps estimated jointly with the image), scores it
against the truth (PSNR, RMS motion error) and writes everything ``mrideblur correct`` writes
into ``mri/``, the report figure ``report.png`` included.

How the photograph's estimates are compared
---------------------------------------------
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

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .estimators.base import ProgressFn
from .io import write_array, write_image, write_json

__all__ = ["run_demo", "run_mri_demo", "summary_lines", "demo_image", "aligned_psnr", "MAX_SHIFT", "NOISE_SIGMA"]

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
) -> dict[str, Any]:
    """Run both parts of the demo: the photograph comparison, then the MRI motion correction.

    Part 1 blurs the *camera* photograph, deblurs it five ways and writes ``demo.png``,
    ``demo_report.json``, ``blurred.png`` and ``true_kernel.npy`` (module docstring); part 2,
    :func:`run_mri_demo`, simulates a motion-corrupted multi-shot scan of an MNI152 slice,
    corrects it with aligned-SENSE and writes ``mri/`` (``report.png``, ``report.json``,
    ``recon.h5``, ``image.nii.gz``, ``motion.csv``).

    Parameters
    ----------
    out_dir : str or path-like
        Output directory (created).
    quick : bool
        Small problems, for tests: a ``96 x 96`` photograph with a 9-pixel kernel and a
        ``64 x 64`` scan with 4 coils and 8 shots, instead of ``256 x 256`` with a 15-pixel
        kernel and ``128 x 128`` with 8 coils and 16 shots.  Measured with one thread on a
        2-core machine: about 20 s for the quick demo (``mrideblur demo --quick``, start-up
        included) and about 2 minutes for the full one (70 s for the photograph, nearly all of
        it in the two blind estimators, and 35 s for the MRI scan, nearly all in aligned-SENSE).
    progress : callable ``progress(step, total, message)``, optional
        Fed one stage at a time, each with its own ``step`` / ``total`` starting at 0 and
        ending at ``total`` when the stage ends normally (also when an estimator stopped
        before its announced total): ``blur``, ``inverse``, ``wiener``, ``hyper-laplacian``,
        ``blind MAP``, ``blind VB``, ``figure``, ``MRI simulation``, ``aligned-SENSE
        correction``.  If it has a ``stage(name)`` method (as
        :class:`mrideblur.shell.ProgressBar` has), that is called as each stage begins and
        ``message`` is the stage's own detail; otherwise ``message`` starts with the stage name.

    Returns
    -------
    dict of str
        The written files as Paths: ``"figure"`` (``demo.png``), ``"report"``
        (``demo_report.json``), ``"blurred"`` (``blurred.png``, 8 bit), ``"true_kernel"``
        (``true_kernel.npy``) and the MRI outputs in ``mri/`` (keys ``"mri_*"``, see
        :func:`run_mri_demo`); and ``"summary"``, a dict of the headline numbers for
        :func:`summary_lines`: ``"photo"`` (``psnr_db``: dB per method, ``kernel_similarity``
        of the blind kernels, ``seconds``, sizes), ``"mri"`` (``psnr_db`` uncorrected and
        corrected, ``motion_rmse`` in degrees and pixels, ``data_fit``, ``seconds``, sizes) and
        ``"out_dir"``.

    Notes
    -----
    See the module docstring for how estimates are lined up with the truth before scoring.
    """
    from .deblur import blind_deconvolve, blur, camera_shake_kernel, deconvolve
    from .metrics import kernel_similarity

    t_part = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    size, ksize = QUICK_SETUP if quick else FULL_SETUP

    with _stage(progress, "blur"):
        sharp = demo_image(size)
        k_true = camera_shake_kernel(ksize, seed=KERNEL_SEED)
        blurred = blur(sharp, k_true, noise_sigma=NOISE_SIGMA, seed=NOISE_SEED, boundary="valid")
    region = blurred.shape

    images: dict[str, np.ndarray] = {"sharp": sharp, "blurred": blurred}
    kernels: dict[str, np.ndarray] = {"true": k_true}
    seconds: dict[str, float] = {}
    for method in ("inverse", "wiener", "hyper-laplacian"):
        with _stage(progress, method):
            t0 = time.perf_counter()
            images[method] = deconvolve(blurred, k_true, method=method, boundary="valid")
            seconds[method] = time.perf_counter() - t0
    histories: dict[str, Any] = {}
    for method, name in (("map", "blind MAP"), ("vb", "blind VB")):
        with _stage(progress, name) as inner:
            t0 = time.perf_counter()
            res = blind_deconvolve(
                blurred, ksize, method=method, seed=BLIND_SEED, progress=inner, boundary="valid"
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

    paths: dict[str, Any] = {
        "figure": out / "demo.png",
        "report": out / "demo_report.json",
        "blurred": out / "blurred.png",
        "true_kernel": out / "true_kernel.npy",
    }
    with _stage(progress, "figure"):
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
    photo = {
        "image_shape": list(sharp.shape),
        "kernel_size": ksize,
        "region": list(region),
        "psnr_db": psnr_db,
        "kernel_similarity": ksim,
        "seconds": time.perf_counter() - t_part,
    }
    mri_paths, mri = _mri_part(out / "mri", quick, progress)
    paths.update(mri_paths)
    paths["summary"] = {"photo": photo, "mri": mri, "out_dir": str(out)}
    return paths


def run_mri_demo(out_dir: str | os.PathLike[str], quick: bool = False,
                 progress: ProgressFn | None = None) -> dict[str, Path]:
    """Simulate a motion-corrupted multi-shot scan of a built-in MNI152 slice, correct it with
    aligned-SENSE (coils estimated jointly) and write every output of ``mrideblur correct``.

    The scan: an axial MNI152 T1 slice, ``128 x 128``, 8 simulated coils, 16 interleaved shots,
    random rigid motion up to 3 deg / 3 px between shots, 1 % noise (``quick``: ``64 x 64``,
    4 coils, 8 shots).  aligned-SENSE runs at most 100 iterations (``quick``: 30).

    Parameters
    ----------
    out_dir : str or path-like
        Output directory (created).
    quick : bool
        The small scan.
    progress : callable ``progress(step, total, message)``, optional
        Two stages, ``MRI simulation`` and ``aligned-SENSE correction`` (see :func:`run_demo`).

    Returns
    -------
    dict of str to Path
        ``"mri_figure"`` (``report.png``: uncorrected, corrected, truth, motion and per-shot
        residuals), ``"mri_report"`` (``report.json``, with ``psnr_db`` and ``motion_rmse``
        against the truth) and the other outputs of
        :func:`mrideblur.io.results.write_correction_outputs`, prefixed ``mri_``.
    """
    return _mri_part(out_dir, quick, progress)[0]


def _mri_part(out_dir: str | os.PathLike[str], quick: bool,
              progress: ProgressFn | None) -> tuple[dict[str, Path], dict[str, Any]]:
    """:func:`run_mri_demo`'s work; also returns the summary numbers (see :func:`run_demo`)."""
    from .io.anatomy import mni_slice
    from .io.results import write_correction_outputs
    from .mri import correct, simulate
    from .plots import correction_figure
    from .shell import correction_scores

    t_part = time.perf_counter()
    size, ncoil, nshot, iters = (64, 4, 8, 30) if quick else (128, 8, 16, 100)
    with _stage(progress, "MRI simulation"):
        case = simulate(mni_slice("axial", 0.55, size), ncoil=ncoil, nshot=nshot, ordering="interleaved",
                        motion="random", noise=0.01, seed=7)
    truth, tm = case.truth["image"], case.truth["motion"]
    with _stage(progress, "aligned-SENSE correction") as inner:
        res = correct(case.kspace, case.shot_index, "aligned-sense", coils="joint", max_iter=iters, progress=inner)
        report = dict(res.report)
        report.update(correction_scores(res, truth, tm))
        fig = correction_figure(res.uncorrected, res.image, res.motion, report["residual_per_shot"],
                                truth_image=truth, truth_motion=tm, data_fit=report.get("data_fit"),
                                title=f"MNI152 slice, {nshot} shots, {ncoil} coils: aligned-SENSE "
                                f"{report['psnr_db']['uncorrected']:.1f} -> {report['psnr_db']['corrected']:.1f} dB")
        written = write_correction_outputs(out_dir, res.image, res.motion, res.sens, report, figure=fig)
    summary = {
        "image_shape": [size, size],
        "ncoil": ncoil,
        "nshot": nshot,
        "method": "aligned-sense",
        "psnr_db": report["psnr_db"],
        "motion_rmse": report["motion_rmse"],
        "data_fit": report.get("data_fit", {}),
        "seconds": time.perf_counter() - t_part,
    }
    return {f"mri_{k}": v for k, v in written.items()}, summary


@contextlib.contextmanager
def _stage(progress: ProgressFn | None, name: str) -> Iterator[ProgressFn]:
    """One stage as ``progress`` sees it (see :func:`run_demo`): yields the stage's own
    ``progress(step, total, message)`` and, when the block ends normally, reports the stage's
    last ``total`` as reached, so its bar ends at 100 % even if the estimator stopped early."""
    if progress is None:
        yield lambda step, total, message="": None
        return
    begin = getattr(progress, "stage", None)
    if callable(begin):
        begin(name)
    last: list[Any] = [1, ""]

    def report(step: int, total: int, message: str = "") -> None:
        last[:] = [total, message]
        if not callable(begin):
            message = f"{name}: {message}" if message else name
        progress(step, total, message)

    report(0, 1)
    yield report
    report(last[0], last[0], last[1])


_PART_NAMES = (
    ("blurred", "blurred input"),
    ("inverse", "inverse filter"),
    ("wiener", "Wiener"),
    ("hyper-laplacian", "hyper-Laplacian"),
    ("map", "blind MAP"),
    ("vb", "blind VB"),
)


def summary_lines(summary: Mapping[str, Any]) -> list[str]:
    """The demo's result in a few lines of text (what ``mrideblur demo`` prints).

    Parameters
    ----------
    summary : mapping
        ``run_demo(...)["summary"]``: ``"photo"``, ``"mri"`` and ``"out_dir"``, each optional
        (a part that is missing is left out).

    Returns
    -------
    list of str
        For the photograph: the PSNR (dB, on the compared region) of the blurred input and of
        every method, the blind kernels' similarity to the true kernel (1 = identical up to a
        shift) and the part's wall time; for the MRI scan: PSNR uncorrected -> corrected (dB),
        the RMS motion error (rotation in degrees, translation in pixels), whether the data fit
        improved (relative misfit ``||Ax - y|| / ||y||`` uncorrected -> corrected) and the wall
        time; then the output directory.
    """
    lines: list[str] = []
    photo = summary.get("photo")
    if photo:
        ny, nx = photo.get("image_shape", ("?", "?"))
        ry, rx = photo.get("region", ("?", "?"))
        lines.append(f"photograph: camera {ny}x{nx}, {photo.get('kernel_size', '?')}-pixel camera-shake kernel, "
                     f"{NOISE_SIGMA:.0%} noise ({photo.get('seconds', float('nan')):.0f} s)")
        lines.append(f"  PSNR on the central {ry}x{rx} region (higher is better):")
        psnr_db, ksim = photo.get("psnr_db", {}), photo.get("kernel_similarity", {})
        for key, label in _PART_NAMES:
            if key not in psnr_db:
                continue
            text = f"    {label:<16s} {psnr_db[key]:6.2f} dB"
            if key in ksim:
                text += f"   kernel similarity {ksim[key]:.2f}"
            lines.append(text)
    mri = summary.get("mri")
    if mri:
        ny, nx = mri.get("image_shape", ("?", "?"))
        lines.append(f"MRI: MNI152 slice {ny}x{nx}, {mri.get('nshot', '?')} shots, {mri.get('ncoil', '?')} coils, "
                     f"corrected with aligned-SENSE ({mri.get('seconds', float('nan')):.0f} s)")
        p = mri.get("psnr_db")
        if p:
            lines.append(f"  PSNR             {p['uncorrected']:.2f} dB uncorrected -> "
                         f"{p['corrected']:.2f} dB corrected")
        m = mri.get("motion_rmse")
        if m:
            lines.append(f"  motion error     RMS {m['rotation_deg']:.2f} deg rotation, "
                         f"{m['translation_px']:.2f} px translation")
        fit = mri.get("data_fit") or {}
        if fit.get("improved") is not None:
            text = f"  data fit         {'improved' if fit['improved'] else 'NOT improved'}"
            if "uncorrected" in fit and "corrected" in fit:
                text += f" (relative misfit {fit['uncorrected']:.4f} -> {fit['corrected']:.4f})"
            lines.append(text)
    if summary.get("out_dir") is not None:
        lines.append(f"output: {summary['out_dir']} (demo.png, demo_report.json, mri/report.png, mri/report.json, ...)")
    return lines


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
