"""The public entry points: thin calls over the catalogue.

- :func:`deconvolve` — image deblurring with a known kernel;
- :func:`blind_deconvolve` — image deblurring with an unknown kernel;
- :func:`deconvolve_nonuniform` — image deblurring with a known spatially varying blur;
- :func:`deblur_nonuniform` — image deblurring with an unknown spatially varying blur;
- :func:`correct` — rigid motion in multi-shot, multi-coil k-space;
- :func:`correct_magnitude_image` — rigid motion in a magnitude image (NIfTI) without raw data.

Each one checks its input, looks the method up in :mod:`mrideblur.estimators.catalogue`, builds
that method's options dataclass from the keyword arguments (an unknown option is an error that
lists the method's options) and calls its run function.  Users reach them as
:func:`mrideblur.deblur.deconvolve`, :func:`mrideblur.deblur.blind_deconvolve` and
:func:`mrideblur.mri.correct`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..physics.blur import check_colour_image
from ..physics.multishot import check_sens
from ..physics.shots import validate_shot_index
from ..threads import with_threads
from .base import CancelFn, ProgressFn, Result
from .blind_common import blind_colour, overshoot_check
from .catalogue import find
from .safeguards import safeguard
from .sense import check_kspace

__all__ = ["blind_deconvolve", "correct", "correct_magnitude_image", "deblur_nonuniform", "deconvolve",
           "deconvolve_nonuniform"]


@with_threads
def deconvolve(blurred: np.ndarray, kernel: np.ndarray, method: str = "wiener", *, boundary: str | None = None,
               **params: Any) -> np.ndarray:
    """Deconvolve an image blurred by a known kernel: estimate ``x`` from ``y = k * x + n``.

    Parameters
    ----------
    blurred : (ny, nx) or (ny, nx, 3) array_like
        Observed image ``y``, real and finite, any intensity unit; a colour image (channels
        last) is deconvolved channel by channel with the same kernel.
    kernel : (m, m) array_like
        Blur kernel ``k`` (odd sizes, non-negative; normalised to sum 1).
    method : str
        A non-blind method of the catalogue: ``"inverse"``, ``"wiener"``, ``"tikhonov"``,
        ``"hyper-laplacian"``, ``"richardson-lucy"``, ``"diffusion"``
        (:func:`mrideblur.estimators.nonblind.deconvolve` documents each model).
    boundary : {"taper", "periodic", "valid"}, optional
        How a non-periodic image is made to look periodic (``"valid"`` returns the whole scene,
        larger than the input by the kernel size minus one); default the method's (``"taper"``).
    **params
        The method's options (e.g. ``nsr`` for Wiener, ``lam`` and ``alpha`` for hyper-Laplacian).

    Returns
    -------
    (ny, nx) float64 image (``(ny + m - 1, nx + m - 1)`` for ``boundary="valid"``); ``(..., 3)``
    for a colour input.
    """
    entry = find("deconvolve", method)
    if boundary is not None:
        params["boundary"] = boundary
    run, options = entry.run_function(), entry.make_options(**params)
    if np.ndim(blurred) == 3:  # colour, or a clear error naming the expected shapes
        rgb = check_colour_image(blurred, "blurred")
        return np.stack([run(rgb[..., c], kernel, options) for c in range(3)], axis=-1)
    return run(blurred, kernel, options)


@with_threads
def deconvolve_nonuniform(blurred: np.ndarray, operator: Any, method: str = "hyper-laplacian", **params: Any
                          ) -> np.ndarray:
    """Deconvolve a known spatially varying blur: estimate ``x`` from ``y = A x + n``.

    Parameters
    ----------
    blurred : (ny, nx) or (ny, nx, 3) array_like
        Observed image ``y`` on the operator's output grid; colour channel by channel.
    operator : sigpy Linop
        The blur ``A`` with its adjoint: :class:`mrideblur.physics.nonuniform.PoseBlur` (a camera
        path of in-plane poses), :class:`~mrideblur.physics.nonuniform.KernelField` (a grid of
        local kernels) or any real 2D ``Linop``.
    method : {"hyper-laplacian", "tikhonov"}
        :mod:`mrideblur.estimators.nonblind_nonuniform` (IRLS + CG, or CG).
    **params
        The method's options (``lam``, ``alpha``, ``outer``, ``cg_iters``).

    Returns
    -------
    float64 image on ``operator.ishape`` (``+ (3,)`` for colour).
    """
    entry = find("deconvolve-nonuniform", method)
    run, options = entry.run_function(), entry.make_options(**params)
    if np.ndim(blurred) == 3:
        rgb = check_colour_image(blurred, "blurred")
        return np.stack([run(rgb[..., c], operator, options) for c in range(3)], axis=-1)
    return run(blurred, operator, options)


@with_threads
def deblur_nonuniform(blurred: np.ndarray, method: str = "kernel-field", progress: ProgressFn | None = None,
                      cancel: CancelFn | None = None, **options: Any) -> Result:
    """Estimate a spatially varying blur and the sharp image: ``y(q) = sum_d k_q(d) x(q - d) + n``.

    Parameters
    ----------
    blurred : (ny, nx) or (ny, nx, 3) array
        Blurred image, intensities in [0, 1], grey or colour (one blur field for all channels).
    method : {"kernel-field"}
        A field of linear motion kernels from a patch classifier, smoothed by a Markov random
        field, then a non-uniform deconvolution (Sun et al. 2015;
        :mod:`mrideblur.estimators.kernel_field`).
    progress, cancel : callables, optional
    **options
        The method's options (``grid``, ``stride``, ``beta``, ``weights``, ``lam``, ``alpha``).

    Returns
    -------
    Result
        ``image`` shaped like ``blurred``, ``kernel`` the field ``(gy, gx, m, m)``, ``history``
        (per-node classes and confidence; ``overshoot`` and, for a ringing result, ``warning``
        as for :func:`blind_deconvolve`).
    """
    entry = find("deblur-nonuniform", method)
    res = entry.run_function()(blurred, entry.make_options(**options), progress, cancel)
    return overshoot_check(res, blurred)


@with_threads
def blind_deconvolve(blurred: np.ndarray, kernel_size: int, method: str = "vb", seed: int = 0,
                     progress: ProgressFn | None = None, cancel: CancelFn | None = None, **options: Any) -> Result:
    """Estimate the blur kernel ``k`` and the sharp image ``x`` from ``y = k * x + n``.

    Parameters
    ----------
    blurred : (ny, nx) or (ny, nx, 3) array
        Blurred, noisy image, linear intensities, grey or colour (channels last): one kernel
        blurs all three channels; it is estimated on the luminance and each channel
        deconvolved with it (:func:`mrideblur.estimators.blind_common.blind_colour`).
    kernel_size : int
        Odd size (pixels, >= 3) of the kernel to estimate, a little larger than the blur.
    method : {"vb", "map", "diffusion", "neural-filter", "residual-prior", "srn"}
        Variational Bayes after Fergus et al. 2006 (:mod:`mrideblur.estimators.blind_vb`), the
        naive joint MAP of the same model, kernel refits along a diffusion posterior sweep
        (:mod:`mrideblur.estimators.blind_diffusion`), per-patch deconvolution filters predicted
        by a network, then a kernel fit and a non-blind deconvolution (Chakrabarti 2016,
        :mod:`mrideblur.estimators.neural_filter`), VB's kernel refined by deep image and residual
        priors with an ensemble uncertainty (Tang et al. 2023,
        :mod:`mrideblur.estimators.residual_prior`; ``res.uncertainty``), or the scale-recurrent network end to end
        (:mod:`mrideblur.estimators.deblur_network`; a kernel fitted to its image).
    seed : int
        Seeds every random choice: the same seed gives the same result.
    progress : callable(step, total, message), optional
    cancel : callable() -> bool, optional
        Polled every iteration; True stops and returns the current estimate
        (``history["cancelled"]``).
    **options
        The method's options (:class:`~mrideblur.estimators.blind_vb.VBOptions`,
        :class:`~mrideblur.estimators.blind_diffusion.BlindDiffusionOptions`): ``patch``,
        ``max_patch``, ``noise_sigma``, ``nonblind``, ``nonblind_params``, ``boundary``, ...

    Returns
    -------
    Result
        ``image`` (shaped like ``blurred``), ``kernel`` ``(kernel_size, kernel_size)`` and
        ``history``, which always holds ``overshoot`` (the share of deblurred pixels outside the
        input's intensity range) and, when that share says the image rings — the kernel does not
        explain the blur and the result is likely worse than the input — a ``warning`` (also
        issued as a Python warning; :func:`mrideblur.estimators.blind_common.overshoot_check`).
    """
    entry = find("blind-deconvolve", method)
    run, opts = entry.run_function(), entry.make_options(seed=seed, **options)
    if np.ndim(blurred) == 3 and not entry.colour:  # colour (checked there); a network takes it itself
        res = blind_colour(run, blurred, kernel_size, opts, progress, cancel)
    else:
        res = run(blurred, kernel_size, opts, progress, cancel)
    return overshoot_check(res, blurred)  # never a worse image silently


def _correct_one(y: np.ndarray, si: np.ndarray, sens: np.ndarray | None, method: str, options,
                 progress: ProgressFn | None, cancel: CancelFn | None, safeguards: dict[str, bool]) -> Result:
    entry = find("kspace", method)
    res = entry.run_function()(y, si, sens, options, progress, cancel)
    resolver = entry.resolve_function()  # the estimator's own image after a shot rejection
    resolve = None if resolver is None else (
        lambda kept_si, kept_motion, x0: resolver(y, kept_si, res.sens, kept_motion, x0, options))
    return safeguard(y, si, res, method, stacklevel=4, resolve=resolve, **safeguards)  # never a worse image silently


@with_threads
def correct(kspace: np.ndarray, shot_index: np.ndarray, method: str = "aligned-sense", sens: np.ndarray | None = None,
            *, stack: bool | None = None, reject_shots: bool = True, keep_uncorrected: bool = True,
            progress: ProgressFn | None = None, cancel: CancelFn | None = None, **options: Any) -> Result:
    """Correct rigid motion in multi-shot, multi-coil k-space: ``y_s = M_s F S T(theta_s) x + n``.

    Parameters
    ----------
    kspace : (coils, ky, kx), (coils, kz, ky, kx) or (slices, coils, ky, kx) complex
        Measured k-space, zeros on lines not acquired (docs/conventions.md).
    shot_index : (ky,) or (kz, ky) int
        Shot of every phase-encode line, ``-1`` not acquired.
    method : {"none", "aligned-sense", "jsmoco"}
        A k-space method of the catalogue: SENSE without correction, aligned-SENSE
        (:mod:`mrideblur.estimators.aligned_sense`) or JSMoCo (:mod:`mrideblur.estimators.jsmoco`).
    sens : complex array, optional
        Known coil maps, shaped like ``kspace`` without the k axes (per slice for a stack);
        estimated when not given.
    stack : bool, optional
        Force a 4D ``kspace`` to be read as a stack of slices (default: 4D with a 1D shot map is
        a stack, with a 2D ``(kz, ky)`` map a 3D volume).  Slices are corrected one by one, each
        with its own motion.
    reject_shots : bool
        Drop shots whose residual stays far above the noise floor after the correction (their
        lines are re-filled by SENSE from the others; :mod:`mrideblur.estimators.safeguards`).
    keep_uncorrected : bool
        When the correction does not lower the data misfit, return the uncorrected image (and
        zero motion; the estimate goes to ``report["rejected_motion"]``).
    progress : callable(step, total, message), optional
    cancel : callable() -> bool, optional
        Polled about every 5 iterations; True stops at once and returns the current estimate
        (``report["cancelled"] = True``).
    **options
        The method's options: ``coils`` ("joint"/"espirit"), ``max_iter``, ``calib_width``,
        ``device``, ``seed`` (:class:`~mrideblur.estimators.aligned_sense.AlignedSenseOptions`);
        JSMoCo adds ``nsamples``, ``sampler``, ``prior``, ``init``, ``steps``, ...
        (:class:`~mrideblur.estimators.jsmoco.JSMoCoOptions`).

    Returns
    -------
    Result
        ``image`` complex64, ``motion`` ``(nshot, 3)`` ``[rot_deg, ty, tx]`` (``(nshot, 6)`` in 3D,
        ``(slices, nshot, 3)`` for a stack; degrees and pixels, shot 0 zero), ``sens``,
        ``uncertainty`` (JSMoCo with ``nsamples > 1``), ``uncorrected`` (SENSE with the same maps
        and no motion) and ``report`` with ``residual_per_shot`` and ``data_fit`` — the relative
        data misfit corrected against uncorrected, the rejected shots and each shot's residual
        energy against the noise floor; when the correction does not lower the misfit,
        ``data_fit["improved"]`` is False, a ``RuntimeWarning`` says so and (by default) the
        uncorrected image is returned.
    """
    entry = find("kspace", method)
    opts = entry.make_options(**options)
    guards = {"reject_shots": bool(reject_shots), "keep_uncorrected": bool(keep_uncorrected)}
    y = check_kspace(kspace)
    si = np.asarray(shot_index)
    if stack is None:
        stack = y.ndim == 4 and si.ndim == 1
    if not stack:
        si = validate_shot_index(si, y.shape[1:-1])
        if sens is not None:
            sens = check_sens(sens, y.shape)
        return _correct_one(y, si, sens, method, opts, progress, cancel, guards)
    if y.ndim != 4:
        raise ValueError(f"kspace: a stack must be (slices, coils, ky, kx), got shape {y.shape}")
    si = validate_shot_index(si, (y.shape[-2],))
    if sens is not None:
        sens = check_sens(sens, y.shape)
    results = []
    n = y.shape[0]
    for i in range(n):
        sub = None if progress is None else (lambda s, t, m, i=i: progress(i * t + s, n * t, f"slice {i + 1}/{n}: {m}"))
        results.append(_correct_one(y[i], si, None if sens is None else sens[i], method, opts, sub, cancel, guards))
        if results[-1].cancelled:
            break
    report = dict(results[0].report)
    report["slices"] = [r.report for r in results]
    report["cancelled"] = any(r.cancelled for r in results)
    fits = [r.report["data_fit"]["improved"] for r in results]
    report["data_fit"] = {"improved": None if method == "none" else all(fits), "slices_not_improved":
                          [i for i, f in enumerate(fits) if f is False],
                          "slices_with_rejected_shots": [i for i, r in enumerate(results)
                                                         if r.report["data_fit"].get("rejected_shots")]}
    unc = [r.uncertainty for r in results]
    return Result(image=np.stack([r.image for r in results]), motion=np.stack([r.motion for r in results]),
                  sens=np.stack([r.sens for r in results]), report=report, history=report.get("history", {}),
                  uncertainty=None if any(u is None for u in unc) else np.stack(unc),
                  uncorrected=np.stack([r.uncorrected for r in results]))


@with_threads
def correct_magnitude_image(image: np.ndarray, shot_index: np.ndarray, method: str = "step-autofocus",
                            motion: np.ndarray | None = None, progress: ProgressFn | None = None,
                            cancel: CancelFn | None = None, **options: Any) -> Result:
    """Correct rigid motion in one magnitude image (a NIfTI slice) without raw k-space.

    Parameters
    ----------
    image : (ny, nx) float
        Magnitude image, phase-encode axis first (axis 0).
    shot_index : (ny,) int
        Shot of every phase-encode line (docs/conventions.md).
    method : {"step-autofocus", "per-shot-autofocus", "known-motion"}
        One move searched globally under the modulus model
        (:mod:`mrideblur.estimators.autofocus_step`), free per-shot motion by gradient entropy
        (:mod:`mrideblur.estimators.autofocus`), or the modulus-model reconstruction with a known
        motion table (:mod:`mrideblur.estimators.autofocus_magnitude`).  Giving ``motion``
        selects ``"known-motion"``.
    motion : (nshot, 3) float, optional
        A known motion table ``[rot_deg, ty, tx]`` (degrees, pixels; ty along axis 0).
    **options
        The method's options.

    Returns
    -------
    Result with the corrected image, the motion and the report.
    """
    if motion is not None:
        method = "known-motion"
    elif method == "known-motion":
        raise ValueError("motion: method 'known-motion' needs the motion table, (nshot, 3) [rot_deg, ty, tx]")
    entry = find("magnitude", method)
    return entry.run_function()(image, shot_index, motion, entry.make_options(**options), progress, cancel)
