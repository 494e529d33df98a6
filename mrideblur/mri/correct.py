"""``correct()``: one call from raw multi-shot k-space to a motion-corrected image.

Methods
-------
``"none"``
    SENSE with coil maps estimated from the (motion-corrupted) calibration lines, no motion.
``"aligned-sense"``
    Joint image + motion estimation (:func:`mrideblur.mri.align.joint_motion_lbfgs`) coarse to
    fine, then CG-SENSE with the estimated motion.  ``coils="espirit"`` keeps the ESPIRiT maps of
    the corrupted data; ``coils="joint"`` re-estimates the maps from motion-corrected coil images
    and refines the motion with them (:func:`mrideblur.mri.align.refine_sens`).

Stacks of 2D slices are corrected slice by slice (each slice its own motion).
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import __version__
from .align import Level, fit_coil_coeffs, joint_motion_lbfgs, refine_sens
from .coils import PolynomialCoilModel, estimate_sens, normalize_sens
from .model import MultiShotSense, check_sens
from .recon import check_kspace, sense_recon
from .shots import count_shots, validate_shot_index

__all__ = ["Result", "correct", "METHODS", "COIL_OPTIONS"]

METHODS = ("none", "aligned-sense", "jsmoco")
SAMPLERS = ("fast", "pc")
INITS = ("aligned-sense", "espirit")
COIL_OPTIONS = ("espirit", "joint")
#: Rounds of coil re-estimation + motion refinement for ``coils="joint"`` (at most), and the
#: largest motion change (degrees / pixels) below which they stop.  Most cases stop after 2-3
#: rounds; hard ones crawl (a random R = 2 case: 2.2, 1.0, 0.4, 0.12, ... degrees or pixels per
#: round, 32.5 dB after 3 rounds, 34.3 after 6, 35.1 after 8, oracle 36.7), hence up to 6.
MAX_COIL_ROUNDS = 6
#: Total degree of the polynomial coil model of ``coils="joint"`` (28 functions per coil in 2D;
#: MNI maps of the simulator fit to 0.1% inside the head) and (image, coils) alternations per round.
COIL_DEGREE = 6
COIL_INNER = 2
#: CG-SENSE iterations of the coil step's warm-started solves (the start is the estimate of the
#: previous stage under nearly the same model).  The final image is NOT warm-started: CG from
#: zero stopped at 30 iterations is the regularised solution (like the oracle's); continuing
#: from the joint estimate amplifies noise where the maps are weak (-2 to -4 dB, measured).
COIL_WARM_CG = 8
#: Smallest image side (pixels) of a coarse-to-fine level.
MIN_LEVEL_SIZE = 48
COIL_ROUND_TOL = 0.02
ProgressFn = Callable[[int, int, str], None]


@dataclass
class Result:
    """What :func:`correct` returns.

    Attributes
    ----------
    image : complex64 ``(ny, nx)``, ``(nz, ny, nx)`` or ``(slices, ny, nx)``
    motion : float64 ``(nshot, 3)`` ``[rot_deg, ty, tx]`` (``(nshot, 6)`` in 3D,
        ``(slices, nshot, 3)`` for a stack); shot 0 is zero; pixels and degrees (CONVENTIONS.md)
    sens : complex64 coil maps used, shaped like one k-space volume (per slice for a stack)
    report : dict
        ``method``, ``parameters``, ``residual_per_shot`` (relative data-consistency residual
        ``||M_s (A x - y)|| / ||M_s y||`` per shot), ``history`` (cost traces per level and
        round), ``seconds`` (per stage), ``versions``, ``cancelled``.
    uncertainty : float32 like ``image``, or None
        ``method="jsmoco"`` with ``nsamples > 1``: standard deviation of the magnitude over the
        posterior samples (image units), the variance pooled over a 1.5-pixel Gaussian window
        (:class:`mrideblur.mri.jsmoco.JSMoCoOptions` ``std_pool``).
    """

    image: np.ndarray
    motion: np.ndarray
    sens: np.ndarray
    report: dict = field(default_factory=dict)
    uncertainty: np.ndarray | None = None


def _residual_per_shot(kspace, shot_index, sens, motion, image) -> list[float]:
    A = MultiShotSense(sens, shot_index, motion)
    r = A(image) - kspace
    out = []
    for s in range(count_shots(shot_index)):
        m = (shot_index == s)[..., None]
        out.append(float(np.linalg.norm(r * m) / max(np.linalg.norm(kspace * m), 1e-30)))
    return out


def correct(
    kspace: np.ndarray,
    shot_index: np.ndarray,
    method: str = "aligned-sense",
    sens: np.ndarray | None = None,
    coils: str = "joint",
    max_iter: int = 150,
    calib_width: int = 24,
    device: str = "cpu",
    seed: int = 0,
    progress: ProgressFn | None = None,
    cancel: Callable[[], bool] | None = None,
    stack: bool | None = None,
    nsamples: int = 1,
    sampler: str = "fast",
    prior=None,
    init: str = "aligned-sense",
) -> Result:
    """Correct rigid motion in multi-shot, multi-coil k-space.

    Parameters
    ----------
    kspace : (coils, ky, kx), (coils, kz, ky, kx) or (slices, coils, ky, kx) complex
        Measured k-space, zeros on lines not acquired.
    shot_index : (ky,) or (kz, ky) int
        Shot of every phase-encode line, ``-1`` not acquired (CONVENTIONS.md).
    method : {"none", "aligned-sense"}
    sens : complex array, optional
        Known coil maps (then ``coils`` is ignored); shaped like ``kspace`` (per slice for a stack).
    coils : {"espirit", "joint"}
        Coil maps from ESPIRiT on the corrupted calibration lines, or re-estimated jointly with
        the motion.
    max_iter : int
        L-BFGS iterations at the coarsest level (the finer level gets 4/5 of it, each coil
        refinement round 3/5, at full resolution).
    calib_width : int
        Width of the fully sampled k-space centre used for coil calibration (lines).
    device : str
        torch device for the motion estimation (``"cpu"`` or ``"cuda"``).
    seed : int
        Recorded for reproducibility; the estimator itself is deterministic.
    progress : callable(step, total, message), optional
    cancel : callable() -> bool, optional
        Polled about every 5 iterations; True stops at once and returns the current estimate
        (``report["cancelled"] = True``).
    stack : bool, optional
        Force a 4D ``kspace`` to be read as a stack of slices (default: 4D with a 1D shot map is
        a stack, with a 2D ``(kz, ky)`` map a 3D volume).
    nsamples : int
        ``method="jsmoco"``: posterior samples; > 1 also returns ``Result.uncertainty``.
    sampler : {"fast", "pc"}
        ``method="jsmoco"``: DiffPIR (one network call per step) or predictor-corrector.
    prior : mrideblur.prior.ScorePrior or path, optional
        ``method="jsmoco"``: the diffusion prior; default the weights shipped with the package.
    init : {"aligned-sense", "espirit"}
        ``method="jsmoco"``: start from the aligned-SENSE result, or from zero motion and the
        ESPIRiT maps of the corrupted data.

    Returns
    -------
    Result
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    if coils not in COIL_OPTIONS:
        raise ValueError(f"coils: expected one of {COIL_OPTIONS}, got {coils!r}")
    if method == "jsmoco":
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler: expected one of {SAMPLERS}, got {sampler!r}")
        if init not in INITS:
            raise ValueError(f"init: expected one of {INITS}, got {init!r}")
        if int(nsamples) != nsamples or nsamples < 1:
            raise ValueError(f"nsamples: expected an integer >= 1, got {nsamples}")
        from ..prior import ScorePrior

        prior = ScorePrior.default(device) if prior is None else (
            prior if isinstance(prior, ScorePrior) else ScorePrior.load(prior, device=device))
    if int(max_iter) != max_iter or max_iter < 5:
        raise ValueError(f"max_iter: expected an integer >= 5, got {max_iter}")
    jsm = dict(nsamples=int(nsamples), sampler=sampler, prior=prior, init=init) if method == "jsmoco" else None
    y = check_kspace(kspace)
    si = np.asarray(shot_index)
    if stack is None:
        stack = y.ndim == 4 and si.ndim == 1
    if stack:
        return _correct_stack(y, si, method, sens, coils, max_iter, calib_width, device, seed, progress, cancel,
                              jsm)
    si = validate_shot_index(si, y.shape[1:-1])
    if sens is not None:
        sens = check_sens(sens, y.shape)
    return _correct_one(y, si, method, sens, coils, max_iter, calib_width, device, seed, progress, cancel, jsm)


def _correct_stack(y, si, method, sens, coils, max_iter, calib_width, device, seed, progress, cancel, jsm) -> Result:
    if y.ndim != 4:
        raise ValueError(f"kspace: a stack must be (slices, coils, ky, kx), got shape {y.shape}")
    si = validate_shot_index(si, (y.shape[-2],))
    if sens is not None:
        sens = check_sens(sens, y.shape)
    results = []
    n = y.shape[0]
    for i in range(n):
        sub = None if progress is None else (lambda s, t, m, i=i: progress(i * t + s, n * t, f"slice {i + 1}/{n}: {m}"))
        results.append(_correct_one(y[i], si, method, None if sens is None else sens[i], coils, max_iter,
                                    calib_width, device, seed, sub, cancel, jsm))
        if results[-1].report.get("cancelled"):
            break
    report = dict(results[0].report)
    report["slices"] = [r.report for r in results]
    report["cancelled"] = any(r.report.get("cancelled") for r in results)
    unc = [r.uncertainty for r in results]
    return Result(np.stack([r.image for r in results]), np.stack([r.motion for r in results]),
                  np.stack([r.sens for r in results]), report,
                  None if any(u is None for u in unc) else np.stack(unc))


def _coil_step(y: np.ndarray, si: np.ndarray, sens: np.ndarray, motion: np.ndarray, calib_width: int,
               image: np.ndarray | None = None) -> np.ndarray:
    """Re-estimate the coil maps for fixed motion: alternate a SENSE image and the exact
    polynomial coil fit (2D), or the approximate coil-image maps (3D).  ``image`` (the current
    estimate under ``sens`` and ``motion``, frame of shot 0) warm-starts the SENSE solves."""
    if y.ndim != 3:
        return refine_sens(y, si, motion, calib_width=calib_width)
    model = PolynomialCoilModel(y.shape[1:], COIL_DEGREE)
    x = image
    for _ in range(COIL_INNER):
        x = sense_recon(y, si, sens, motion, max_iter=20 if x is None else COIL_WARM_CG, x0=x)
        sens = normalize_sens(model.maps(fit_coil_coeffs(y, si, x, motion, model)))
    return sens


def _correct_one(y, si, method, sens, coils, max_iter, calib_width, device, seed, progress, cancel, jsm=None) -> Result:
    nd = y.ndim - 1
    t0 = time.perf_counter()
    seconds: dict[str, float] = {}
    history: dict = {}
    nshot = count_shots(si)
    npar = 3 if nd == 2 else 6
    known = sens is not None
    if not known:
        sens = estimate_sens(y, "espirit", calib_width=calib_width, device=device)
    seconds["coils"] = time.perf_counter() - t0
    motion = np.zeros((nshot, npar))
    cancelled = False
    frame0 = False
    if method == "jsmoco" and y.ndim != 3:
        raise ValueError(f"kspace: method 'jsmoco' is implemented for 2D slices and stacks, got a volume {y.shape}")
    if method == "aligned-sense" or (method == "jsmoco" and jsm["init"] == "aligned-sense"):
        coarse, fine = max_iter, max(int(0.8 * max_iter), 5)
        refine = max(int(0.6 * max_iter), 5) if (coils == "joint" and not known) else 0
        # Levels: a quarter then half of k-space, but never below MIN_LEVEL_SIZE pixels (a
        # 24-pixel image cannot pin a rotation down), then full resolution: the half-resolution
        # motion is off by a few tenths of a degree with undersampling (R = 2), and shots that
        # own no line of the central half (sequential orderings) are only seen there.
        f1 = min(1.0, max(0.25, MIN_LEVEL_SIZE / min(y.shape[1:])))
        f2 = min(1.0, max(0.5, 2 * f1))
        top = 1.0
        levels = (Level(f1, coarse), Level(f2, fine)) + ((Level(1.0, fine // 2),) if top > f2 else ())
        fine += fine // 2 if top > f2 else 0
        total = coarse + fine + MAX_COIL_ROUNDS * refine
        t = time.perf_counter()
        image, motion, h = joint_motion_lbfgs(y, si, sens, levels=levels,
                                              device=device, progress=progress, cancel=cancel, total_steps=total)
        history["round1"] = h
        cancelled = h["cancelled"]
        # the joint estimate's image is in the frame of shot 0 only when shot 0 is the reference
        frame0 = h["reference_shot"] == 0
        seconds["motion"] = time.perf_counter() - t
        rounds = []
        for r in range(MAX_COIL_ROUNDS if refine else 0):
            if cancelled:
                break
            t = time.perf_counter()
            sens = _coil_step(y, si, sens, motion, calib_width, image if frame0 else None)
            seconds[f"coil_refinement_{r + 1}"] = time.perf_counter() - t
            t = time.perf_counter()
            previous = motion
            image, motion, h = joint_motion_lbfgs(y, si, sens, motion0=motion, levels=(Level(top, refine),),
                                                  device=device, progress=progress, cancel=cancel, init_cg=10,
                                                  step_offset=coarse + fine + r * refine, total_steps=total)
            seconds[f"motion_refinement_{r + 1}"] = time.perf_counter() - t
            cancelled = h["cancelled"]
            change = float(np.abs(motion - previous).max())
            rounds.append({**h, "max_motion_change": change})
            if change < COIL_ROUND_TOL:
                break
        history["coil_rounds"] = rounds
    t = time.perf_counter()
    image = sense_recon(y, si, sens, None if method == "none" else motion, max_iter=30)
    seconds["sense"] = time.perf_counter() - t
    uncertainty = None
    parameters = {"coils": "given" if known else coils, "max_iter": max_iter, "calib_width": calib_width,
                  "device": device, "seed": seed}
    if method == "jsmoco" and not cancelled:
        from .jsmoco import JSMoCoOptions, jsmoco

        t = time.perf_counter()
        options = JSMoCoOptions(sampler=jsm["sampler"], nsamples=jsm["nsamples"])
        out = jsmoco(y, si, sens, motion, image, jsm["prior"], options, estimate_coils=not known, seed=seed,
                     device=device, progress=progress, cancel=cancel)
        image, motion, sens, uncertainty = out["image"], out["motion"], out["sens"], out["uncertainty"]
        cancelled = out["cancelled"]
        history["jsmoco"] = out["history"]
        seconds["jsmoco"] = time.perf_counter() - t
        parameters.update(init=jsm["init"], prior=jsm["prior"].info.get("command", "shipped"),
                          noise_sigma=out["noise_sigma"], **{k: v for k, v in vars(options).items()})
    seconds["total"] = time.perf_counter() - t0
    report = {
        "method": method,
        "parameters": parameters,
        "residual_per_shot": _residual_per_shot(y, si, sens, motion, image),
        "history": history,
        "seconds": seconds,
        "cancelled": cancelled,
        "versions": {"mrideblur": __version__, "numpy": np.__version__, "python": platform.python_version()},
    }
    return Result(image=image, motion=motion, sens=np.asarray(sens, dtype=np.complex64), report=report,
                  uncertainty=uncertainty)
