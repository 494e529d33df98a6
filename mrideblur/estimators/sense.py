r"""Known-motion SENSE reconstruction: the oracle every motion estimator is compared against.

Solves, by conjugate gradients on the normal equations,

.. math:: \hat x = \arg\min_x \|A(\theta, S) x - y\|_2^2 + \lambda \|x\|_2^2,
          \qquad (A^H A + \lambda I)\, x = A^H y,

with ``A`` the multi-shot model of :class:`mrideblur.physics.multishot.MultiShotSense`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import sigpy as sp

from ..physics.cg import conjugate_gradient
from ..physics.multishot import MultiShotSense, check_motion, check_sens
from ..physics.shots import count_shots, validate_shot_index
from .base import CancelFn, ProgressFn, Result
from .mri_common import KSpaceOptions, initial_sens, mri_report

__all__ = ["NoCorrectionOptions", "check_kspace", "run_uncorrected", "sense_recon"]


def check_kspace(kspace: np.ndarray, where: str = "kspace", ndims: tuple[int, ...] = (3, 4)) -> np.ndarray:
    """Validate measured k-space: complex, finite, rank in ``ndims``; returns complex64/128."""
    k = np.asarray(kspace)
    if k.ndim not in ndims:
        raise ValueError(f"{where}: expected rank {' or '.join(map(str, ndims))} ((coils, ky, kx), (slices, coils, ky, kx) or (coils, kz, ky, kx)), got shape {k.shape}")
    if k.dtype.kind != "c":
        if k.dtype.kind in "fiu":
            k = k.astype(np.complex64)
        else:
            raise ValueError(f"{where}: expected complex values, got dtype {k.dtype}")
    if not np.all(np.isfinite(k)):
        raise ValueError(f"{where}: contains {int(np.count_nonzero(~np.isfinite(k)))} NaN or infinite value(s)")
    return k


def sense_recon(
    kspace: np.ndarray,
    shot_index: np.ndarray,
    sens: np.ndarray,
    motion: np.ndarray | None = None,
    lam: float = 0.0,
    max_iter: int = 50,
    tol: float = 1e-6,
    stack: bool | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    x0: np.ndarray | None = None,
) -> np.ndarray:
    """Reconstruct the image from multi-shot k-space with known coils and motion (CG-SENSE).

    Parameters
    ----------
    kspace : (coils, ky, kx), (coils, kz, ky, kx) or (slices, coils, ky, kx) complex
        Measured k-space, zeros on lines not acquired.
    shot_index : (ky,) or (kz, ky) int
        Shot of each phase-encode line (``-1``: not acquired).
    sens : (coils, ny, nx), (coils, nz, ny, nx) or (slices, coils, ny, nx) complex
        Coil sensitivities, normalised so ``sum_c |S_c|^2 = 1`` inside the object.
    motion : (nshot, 3) or (nshot, 6), optional
        Rigid motion per shot in degrees and pixels (docs/conventions.md); ``None`` means no motion.
        For a stack: ``(slices, nshot, 3)`` or one ``(nshot, 3)`` table for every slice.
    lam : float
        Tikhonov weight ``lambda`` (>= 0), in the units of ``A^H A`` (whose eigenvalues are
        at most 1 for normalised coils and full sampling).
    max_iter : int
        Maximum CG iterations.
    tol : float
        Stop when the residual norm falls below ``tol`` times its initial value.
    stack : bool, optional
        Treat a 4D ``kspace`` as a stack of 2D slices (True) or one 3D volume (False). By
        default decided from ``shot_index``: 2D ``(kz, ky)`` means 3D.
    progress : callable(step, total, message), optional
    cancel : callable() -> bool, optional
        Polled every iteration; True stops early and returns the current estimate.
    x0 : complex array shaped like the image, optional
        Starting image (a warm start, e.g. the previous estimate under nearly the same model);
        default zeros. Not available for stacks.

    Returns
    -------
    complex64 array ``(ny, nx)``, ``(nz, ny, nx)`` or ``(slices, ny, nx)``.
    """
    y = check_kspace(kspace)
    si = np.asarray(shot_index)
    if stack is None:
        stack = y.ndim == 4 and si.ndim == 1
    if not lam >= 0:
        raise ValueError(f"lam: expected >= 0, got {lam}")
    if stack:
        if y.ndim != 4:
            raise ValueError(f"kspace: a stack must be (slices, coils, ky, kx), got shape {y.shape}")
        if x0 is not None:
            raise ValueError("x0: a warm start is implemented for one slice or volume, not for a stack")
        sens = np.asarray(sens)
        if sens.ndim == 3:
            raise ValueError(f"sens: a stack needs maps per slice (slices, coils, ny, nx), got shape {sens.shape}")
        check_sens(sens, y.shape)
        nshot = count_shots(validate_shot_index(si, (y.shape[-2],)))
        mot = None if motion is None else np.asarray(motion, dtype=np.float64)
        if mot is not None and mot.ndim == 2:
            mot = np.broadcast_to(mot, (y.shape[0],) + mot.shape)
        out = []
        for i in range(y.shape[0]):
            m = None if mot is None else check_motion(mot[i], nshot, 2, f"motion[{i}]")
            sub = None if progress is None else (lambda s, t, msg, i=i: progress(i * t + s, y.shape[0] * t, f"slice {i + 1}/{y.shape[0]}: {msg}"))
            out.append(_cg(MultiShotSense(sens[i], si, m), y[i], lam, max_iter, tol, sub, cancel))
            if cancel is not None and cancel():
                break
        return np.stack(out)
    sens = check_sens(sens, y.shape)
    A = MultiShotSense(sens, si, motion)
    if x0 is not None and tuple(np.shape(x0)) != tuple(A.ishape):
        raise ValueError(f"x0: expected an image of shape {tuple(A.ishape)}, got {np.shape(x0)}")
    return _cg(A, y, lam, max_iter, tol, progress, cancel, x0)


def _cg(A: MultiShotSense, y: np.ndarray, lam: float, max_iter: int, tol: float, progress, cancel,
        x0: np.ndarray | None = None) -> np.ndarray:
    AHy = A.H(y)
    x = None if x0 is None else np.array(x0, dtype=AHy.dtype)  # None: from zero, A.N(0) not computed
    normal = A.N if lam == 0 else A.N + lam * sp.linop.Identity(A.ishape)
    done = [0]

    def callback(it: int, _x: np.ndarray, resid) -> bool:
        done[0] = it
        if progress is not None:
            progress(it, max_iter, f"CG iteration {it}, residual {float(resid):.3g}")
        return cancel is not None and bool(cancel())

    x = conjugate_gradient(normal, AHy, x, max_iter=max_iter, tol=tol, callback=callback)
    if progress is not None:
        progress(max_iter, max_iter, f"CG done after {done[0]} iteration(s)")
    return x.astype(np.complex64)


@dataclass
class NoCorrectionOptions(KSpaceOptions):
    """Options of ``correct(method="none")``: those of every k-space estimator
    (:class:`~mrideblur.estimators.mri_common.KSpaceOptions`) and ``max_iter``, the CG-SENSE
    iterations (30: the semi-convergence peak of CG-SENSE on 1%-noise data)."""

    max_iter: int = 30


def run_uncorrected(kspace: np.ndarray, shot_index: np.ndarray, sens: np.ndarray | None,
                    options: NoCorrectionOptions, progress: ProgressFn | None = None,
                    cancel: CancelFn | None = None) -> Result:
    """``correct(method="none")``: CG-SENSE ``min ||sum_s M_s F S x - y||`` with no motion.

    ``kspace`` is ``(coils, ky, kx)`` or ``(coils, kz, ky, kx)``; ``sens`` the known maps or None
    (then ESPIRiT maps of the corrupted calibration lines).  Returns a Result with the complex
    image, zero motion ``(nshot, 3)`` (``(nshot, 6)`` in 3D) and the maps used.
    """
    t0 = time.perf_counter()
    maps = initial_sens(kspace, sens, options)
    t = time.perf_counter()
    image = sense_recon(kspace, shot_index, maps, None, max_iter=options.max_iter)
    seconds = {"coils": t - t0, "sense": time.perf_counter() - t, "total": time.perf_counter() - t0}
    motion = np.zeros((count_shots(shot_index), 3 if kspace.ndim == 3 else 6))
    report = mri_report("none", options, kspace, shot_index, maps, None, image, {}, seconds, False,
                        coils="given" if sens is not None else "espirit")
    return Result(image=image, motion=motion, sens=np.asarray(maps, dtype=np.complex64), report=report,
                  history=report["history"])
