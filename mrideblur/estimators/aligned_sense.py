r"""Aligned-SENSE: joint estimation of the image and every shot's rigid motion, with coil refinement.

The data-consistency cost of the multi-shot model (:mod:`mrideblur.physics.multishot_torch`),

.. math:: f(x, \theta) = \frac{\sum_s \|M_s F S T(\theta_s) x - y_s\|^2}{\|y\|^2}
                         + \lambda \frac{\|x\|^2}{\|x_0\|^2},

is minimised **jointly** over the image ``x`` and all shots' ``theta`` (shot 0 fixed at zero)
by L-BFGS with a strong-Wolfe line search, gradients by torch autograd through the Fourier
shears.  Alternating an image step and a motion step (the classical aligned-SENSE of
Cordero-Grande et al., MRM 2016) lets the image absorb the motion and crawls; coupled updates
converge in a few hundred cost evaluations (measured, see
``benchmarks/motion.md``).

Coarse to fine: the cost is first minimised on the central ``1/4`` then ``1/2`` of k-space
(a low-resolution image; translations scaled to that grid, rotations unchanged), each level
starting from the previous one's motion and its zero-padded image.

Coils: maps estimated from motion-corrupted calibration lines carry the motion into every
later step.  The start is ESPIRiT on those lines, or the smoothed motion-free coil images of the
data (:func:`refine_sens` at zero motion) where ESPIRiT's maps explain the data far worse
(:func:`_check_initial_maps`, 2D and 3D).  With ``coils="joint"`` the maps are then re-fitted
under the exact model for the current image and motion (polynomial maps fixed in the scanner
frame, :func:`fit_coil_coeffs`): on slices by one last L-BFGS over image and motion with the
maps' coefficients solved at every step (:mod:`.coil_motion_varpro`), on volumes by a
JSENSE-style alternation of coil fits and motion refinements.

Slices end with a full-resolution search of every shot over rotation and any translation
(:func:`~mrideblur.estimators.shot_search.rescue_shots`): a shot that owns no line of the coarse
levels, or that the joint coil fit left in the pose of the others, is moved when its own lines
say so clearly; the last stage then runs again from there and its result is kept when it fits
the data better.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..physics.cg import conjugate_gradient
from ..physics.coils import PolynomialCoilModel, coil_carriers, normalize_sens, winding_carriers
from ..physics.fourier import fft, ifft
from ..physics.multishot_torch import MultiShotSenseTorch
from ..physics.motion import rigid2d_batch
from ..physics.shots import count_shots
from .base import CancelFn, ProgressFn, Result, one_of, positive_int
from .coil_motion_varpro import SeparableDesign2D, coil_design_solve, joint_motion_coils_lbfgs
from .mri_common import KSpaceOptions, initial_sens, mri_report, residuals
from .kspace_grid import crop_slices as _crop_slices
from .kspace_grid import rebase_motion, reference_shot
from .kspace_grid import resample_image as _resample_image
from .kspace_grid import subsample_maps as _subsample_maps
from .sense import sense_recon
from .shot_search import offset_grid, offset_grid3d, rescue_shots, search_shot_motion

__all__ = ["AlignedSenseOptions", "Level", "coil_images", "fit_coil_coeffs", "joint_motion_lbfgs", "refine_sens", "run"]


@dataclass
class Level:
    """One resolution level: the central part of k-space kept, and L-BFGS iterations there;
    ``search``: first move each shot to the best offset of :data:`SEARCH_GRID` (2D) or
    :data:`SEARCH_GRID_3D` (:func:`~mrideblur.estimators.shot_search.search_shot_motion`)."""

    fraction: float
    iterations: int
    search: bool = False


def joint_motion_lbfgs(
    kspace: np.ndarray,
    shot_index: np.ndarray,
    sens: np.ndarray,
    motion0: np.ndarray | None = None,
    image0: np.ndarray | None = None,
    levels: tuple[Level, ...] = (Level(0.25, 60), Level(0.5, 40), Level(1.0, 30)),
    lam: float = 1e-4,
    motion_tol: float = 2e-3,
    device: str = "cpu",
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    step_offset: int = 0,
    total_steps: int | None = None,
    init_cg: int = 0,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Minimise the data-consistency cost jointly over image and motion, coarse to fine.

    Parameters
    ----------
    kspace : (coils, ky, kx) or (coils, kz, ky, kx) complex
    shot_index : (ky,) or (kz, ky) int
    sens : like ``kspace`` (image grid), complex
        Coil maps used (fixed here).
    motion0 : (nshot, 3|6), optional
        Initial motion (degrees, pixels of the full grid); zeros by default.
    image0 : image, optional
        Initial image (any grid; resampled in k-space). Default ``A(motion0)^H y`` at the first
        level. Leave it out when the coil maps changed since it was computed: maps that carry
        a different phase need a different image.
    levels : sequence of Level
        Fraction of k-space kept and L-BFGS iterations per level.
    lam : float
        Weight of the small Tikhonov term (relative, see the module docstring).
    motion_tol : float
        A level ends early once no motion parameter moved more than this (degrees, pixels of
        the full grid) and the cost by less than 1e-4 (relative) over 5 iterations (checked
        after 30).
    device : str
        torch device, ``"cpu"`` or ``"cuda"``.
    progress, cancel
        Reported / polled every 5 L-BFGS iterations.
    init_cg : int
        Without ``image0``, start from ``init_cg`` CG-SENSE iterations under ``motion0``
        instead of ``A^H y`` (then the L-BFGS iterations go to the motion, not to re-solving the
        image; worth it when ``motion0`` is already close, e.g. after new coil maps).

    Returns
    -------
    image : complex64 full-resolution image (from the last level), in the frame of the
        reference shot (the one owning the k-space centre in 2D; reconstruct with ``motion``
        for the frame of shot 0)
    motion : (nshot, 3|6) float64, relative to shot 0 (``motion[0] == 0``)
    history : dict with per-level cost traces, evaluations and seconds
    """
    y_full = np.asarray(kspace)
    nd = y_full.ndim - 1
    si_full = np.asarray(shot_index)
    nshot = int(si_full.max()) + 1
    npar = 3 if nd == 2 else 6
    theta = np.zeros((nshot, npar)) if motion0 is None else np.array(motion0, dtype=np.float64)
    theta[0] = 0
    # Shot 0 may hold only the edge of k-space (sequential orderings): estimate in the frame of
    # the shot that owns the centre, and report relative to shot 0 at the end (2D).
    ref = reference_shot(si_full) if nd == 2 else 0
    theta = rebase_motion(theta, ref) if ref else theta
    free = np.array([s for s in range(nshot) if s != ref])
    full_shape = y_full.shape[1:]
    x_prev = None if image0 is None else np.asarray(image0)
    hist: dict = {"levels": [], "cancelled": False}
    total = total_steps or sum(lv.iterations for lv in levels)
    step = step_offset
    dev = torch.device(device)
    rdt, cdt = torch.float32, torch.complex64
    theta_start = theta.copy()  # the start of the first level, kept for the second start of a search level
    for lv in levels:
        t0 = time.perf_counter()
        sl, shape = _crop_slices(full_shape, lv.fraction)
        y = y_full[(slice(None),) + sl]
        si = si_full[sl[:-1]] if nd == 2 else si_full[sl[0], sl[1]]
        S = _subsample_maps(sens, shape)
        scale = np.array([1.0] * (npar - nd) + [m / n for m, n in zip(shape, full_shape)])
        model = MultiShotSenseTorch(si, nd, device=dev, dtype=cdt, nshot=nshot)
        yt = torch.as_tensor(y, device=dev).to(cdt)
        St = torch.as_tensor(S, device=dev).to(cdt)
        sc = torch.as_tensor(scale, device=dev, dtype=rdt)
        ynorm = float((yt.abs() ** 2).sum())
        # 2D: the residual on each shot's own lines (no scatter into k-space and back)
        predict, target = (model.forward_rows, model.data_rows(yt).contiguous()) if nd == 2 else (model, yt)

        def first_image(th: np.ndarray) -> np.ndarray:
            # A(theta)^H y (or a few CG steps): the SENSE solution for full sampling and
            # normalised maps, and consistent with the maps' phase
            return _cg_image(model, yt, torch.as_tensor(th, device=dev, dtype=rdt) * sc, St, init_cg).cpu().numpy()

        def fit(theta: np.ndarray, x0: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[float], int, float]:
            """L-BFGS on this level from ``(theta, x0)``: motion, image, cost trace, evaluations,
            final relative data misfit ``||A x - y||^2 / ||y||^2``."""
            nonlocal step
            xnorm = float(np.sum(np.abs(x0) ** 2)) + 1e-30
            xv = torch.view_as_real(torch.as_tensor(x0, device=dev).to(cdt)).clone().requires_grad_(True)
            tv = torch.as_tensor(theta[free], device=dev, dtype=rdt).clone().requires_grad_(True)
            idx = torch.as_tensor(np.argsort(np.concatenate([[ref], free])), device=dev)
            zero = torch.zeros((1, npar), device=dev, dtype=rdt)
            opt = torch.optim.LBFGS([xv, tv], lr=1.0, max_iter=5, history_size=30, line_search_fn="strong_wolfe",
                                    tolerance_grad=1e-10, tolerance_change=1e-14)
            trace: list[float] = []
            nevals = [0]

            def closure() -> torch.Tensor:
                opt.zero_grad()
                th = torch.cat([zero, tv], 0)[idx] * sc
                r = torch.view_as_real(predict(torch.view_as_complex(xv), th, St) - target)
                loss = (r**2).sum() / ynorm + lam * (xv**2).sum() / xnorm
                loss.backward()
                nevals[0] += 1
                return loss

            done = 0
            prev = tv.detach().clone()
            while done < lv.iterations:
                loss = opt.step(closure)
                done += 5
                step += 5
                trace.append(float(loss.detach()))
                if progress is not None:
                    progress(min(step, total), total, f"aligned-SENSE {shape[-1]}px: cost {trace[-1]:.4g}")
                if cancel is not None and cancel():
                    hist["cancelled"] = True
                    break
                moved = float((tv.detach() - prev).abs().max()) if tv.numel() else 0.0
                prev = tv.detach().clone()
                settled = len(trace) > 1 and trace[-2] - trace[-1] < 1e-4 * trace[-1]
                if done >= 30 and moved < motion_tol and settled:  # motion and cost both settled
                    break
                if len(trace) > 2 and abs(trace[-2] - trace[-1]) < 1e-7 * max(trace[-1], 1e-30):
                    break
            with torch.no_grad():  # at the point L-BFGS kept (its last evaluation may be a line-search trial)
                th = torch.cat([zero, tv], 0)[idx] * sc
                misfit = float(((predict(torch.view_as_complex(xv), th, St) - target).abs() ** 2).sum()) / ynorm
            out = np.zeros((nshot, npar))
            out[free] = tv.detach().cpu().double().numpy()
            return _fill_unseen(out, si, ref), torch.view_as_complex(xv.detach()).cpu().numpy(), trace, nevals[0], misfit

        x0 = first_image(theta) if x_prev is None else (x_prev if x_prev.shape == shape else _resample_image(x_prev, shape))
        info: dict = {"shape": shape}
        if lv.search:
            # Two starts: (a) the coarser level's motion with every shot moved to its best grid
            # offset, which reaches large motion; (b) the first level's start on this grid, which
            # undersampled data (R = 2: 1-2 lines per shot in a 24-pixel centre) can need. (a)
            # goes on only when it ends the level with clearly less misfit (SEARCH_MARGIN).
            ts = time.perf_counter()
            th_lv, xs, moved = search_shot_motion(
                model, yt, torch.as_tensor(x0, device=dev).to(cdt),
                torch.as_tensor(theta, device=dev, dtype=rdt) * sc, St, SEARCH_GRID if nd == 2 else SEARCH_GRID_3D,
                fixed=ref, cancel=cancel)
            theta = (th_lv / sc).double().cpu().numpy()
            if moved.any():  # the image had adapted to the old motion: re-solve it under the new one
                x0 = _cg_image(model, yt, th_lv, St, SEARCH_CG, xs).cpu().numpy()
            info["searched"] = {"moved": np.flatnonzero(moved).tolist(), "seconds": time.perf_counter() - ts}
            theta, x_prev, trace, nevals, misfit = fit(theta, x0)
            if not hist["cancelled"]:
                th_b, x_b, trace_b, nevals_b, misfit_b = fit(theta_start, first_image(theta_start))
                info["misfit_of_starts"] = {"coarser level + search": misfit, "first start": misfit_b}
                nevals += nevals_b
                searched_wins = misfit < (SEARCH_MARGIN if nd == 2 else SEARCH_MARGIN_3D) * misfit_b
                if not searched_wins:
                    theta, x_prev, trace = th_b, x_b, trace_b
                info["kept_start"] = "coarser level + search" if searched_wins else "first start"
        else:
            theta, x_prev, trace, nevals, _ = fit(theta, x0)
        info.update({"cost": trace, "evaluations": nevals, "seconds": time.perf_counter() - t0})
        hist["levels"].append(info)
        if hist["cancelled"]:
            break
    if x_prev.shape != full_shape:
        x_prev = _resample_image(x_prev, full_shape)
    hist["reference_shot"] = ref
    if ref:  # back to the frame of shot 0; the image is then in the reference shot's frame
        theta = rebase_motion(theta, 0)
    return x_prev.astype(np.complex64), theta, hist


def _fill_unseen(theta: np.ndarray, shot_index: np.ndarray, ref: int) -> np.ndarray:
    """Shots that own no line of a level got no gradient there: give them the motion of the
    nearest shot in time (shot number) that was seen, a start the next, finer level can refine
    (sequential orderings: the outer shots are only seen at full resolution; step and drift
    motion make neighbours in time alike)."""
    seen = np.zeros(len(theta), bool)
    seen[np.unique(shot_index[shot_index >= 0])] = True
    seen[ref] = True
    if seen.all() or not seen.any():
        return theta
    idx = np.flatnonzero(seen)
    out = theta.copy()
    for s in np.flatnonzero(~seen):
        out[s] = theta[idx[np.argmin(np.abs(idx - s))]]
    return out


def _cg_image(model: MultiShotSenseTorch, y: torch.Tensor, theta: torch.Tensor, sens: torch.Tensor,
              iters: int, x0: torch.Tensor | None = None) -> torch.Tensor:
    """``iters`` CG iterations on ``A^H A x = A^H y`` from ``x0`` (zero by default; ``A^H y``
    itself for 0 iterations), stopping early at ``||r|| <= 1e-6 ||A^H y||``; no gradients (a
    starting image only)."""
    with torch.no_grad():
        b = model.adjoint(y, theta, sens)
        if iters <= 0:
            return b
        return conjugate_gradient(lambda v: model.adjoint(model(v, theta, sens), theta, sens), b, x0,
                                  max_iter=iters, tol=1e-6)


def coil_images(kspace: np.ndarray, shot_index: np.ndarray, motion: np.ndarray, max_iter: int = 10) -> np.ndarray:
    """Motion-compensated image of every coil on its own (no coil maps).

    Solves ``min_z sum_c ||sum_s M_s F T(theta_s) z_c - y_c||^2`` by CG (all coils at once, as one
    system, though the coils are independent; at most ``max_iter`` iterations, stopping at
    ``||r|| <= 1e-6 ||A^H y||``).  With every line acquired the problem is well posed; with
    undersampling CG from zero gives the minimum-norm solution, consistent on the acquired lines.

    Returns
    -------
    (coils, ny, nx) complex64.
    """
    y = np.asarray(kspace)
    nd = y.ndim - 1
    si = np.asarray(shot_index)
    nshot = int(si.max()) + 1
    if nd == 3:  # the 3D model with a coil map of ones, one coil at a time (rows3d: fast, small)
        model = MultiShotSenseTorch(si, 3, nshot=nshot)
        th = torch.as_tensor(np.asarray(motion), dtype=torch.float32)
        one = torch.ones((1,) + y.shape[1:], dtype=torch.complex64)

        def fwd(z: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return np.stack([model.forward(torch.from_numpy(np.ascontiguousarray(zc, np.complex64)), th, one)[0].numpy()
                                 for zc in z])

        def adj(k: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return np.stack([model.adjoint(torch.from_numpy(np.ascontiguousarray(kc[None], np.complex64)), th, one).numpy()
                                 for kc in k])
    else:
        masks = np.stack([si == s for s in range(nshot)])[..., None][:, None]  # (nshot, 1, ky, 1)

        def fwd(z: np.ndarray) -> np.ndarray:
            return np.sum(fft(rigid2d_batch(z, motion), nd) * masks, axis=0)

        def adj(k: np.ndarray) -> np.ndarray:
            return rigid2d_batch(ifft(k[None] * masks, nd), motion, adjoint=True, per_shot=True).sum(0)

    z = conjugate_gradient(lambda v: adj(fwd(v)), adj(y), max_iter=max_iter, tol=1e-6)
    return z.astype(np.complex64)


def refine_sens(kspace: np.ndarray, shot_index: np.ndarray, motion: np.ndarray, calib_width: int = 24) -> np.ndarray:
    """Coil maps from motion-corrected coil images: smoothed, divided by their root-sum-of-squares.

    Every coil image ``z_c`` is reconstructed with the motion compensated (:func:`coil_images`),
    low-pass filtered with a Hann window over the central k-space that is fully sampled (at
    most a quarter of the matrix), and normalised, ``S_c = h * z_c / sqrt(sum_c |h * z_c|^2)``,
    so ``sum_c |S_c|^2 = 1``.  The maps carry the object's phase, which SENSE then leaves out of
    the image (the magnitude is unchanged).  On simulated MNI slices with the true motion these
    maps gave SENSE within 1 dB of the true maps, ESPIRiT (crop 0.95) on the same data 3-5 dB
    below (``benchmarks/motion.md``).

    Returns
    -------
    complex64 maps shaped like ``kspace``.
    """
    y = np.asarray(kspace)
    nd = y.ndim - 1
    z = coil_images(y, shot_index, motion)
    k = fft(z, nd)
    acquired = np.asarray(shot_index) >= 0
    window = np.ones(k.shape[1:])
    for ax, n in enumerate(k.shape[1:]):
        w = max(n // 4, 4)
        if ax < nd - 1:  # a phase-encode axis: stay inside the fully sampled centre
            line = acquired.any(axis=tuple(a for a in range(acquired.ndim) if a != ax)) if acquired.ndim > 1 else acquired
            c = n // 2
            full = 0
            while full < w and c - (full // 2 + 1) >= 0 and c + (full + 1) // 2 < n and line[c - (full + 1) // 2: c + (full + 2) // 2].all():
                full += 1
            w = max(min(w, full), min(calib_width, n))
        h = np.zeros(n)
        h[n // 2 - w // 2 : n // 2 - w // 2 + w] = np.hanning(w)
        shape = [1] * nd
        shape[ax] = n
        window = window * h.reshape(shape)
    return normalize_sens(ifft(k * window, nd))


def fit_coil_coeffs(
    kspace: np.ndarray, shot_index: np.ndarray, image: np.ndarray, motion: np.ndarray, coil_model: PolynomialCoilModel
) -> np.ndarray:
    """Smooth coil maps that best explain the data for a given image and motion (exact model).

    The coil maps stay in the scanner frame while the object moves, so with
    ``S_c = sum_b a_cb phi_b`` the data are linear in the coefficients,

    .. math:: y_c = \\sum_b a_{cb} G_b, \\qquad G_b = \\sum_s M_s F (\\phi_b \\, T(\\theta_s) x),

    and ``a`` is the least-squares solution, one design matrix for all coils (JSMoCo's coil
    step).  Unlike :func:`refine_sens` this needs no approximation of the coils moving with
    the head.  ``G_b`` is the multi-shot model applied to ``x`` with the basis functions in
    place of coil maps.  Slices never form it: the normal equations ``G^H G a = G^H y`` come from
    the separable form of the basis (:class:`~.coil_motion_varpro.SeparableDesign2D`, complex64
    products summed in complex128).  In 3D it is built by :class:`MultiShotSenseTorch` (a few basis
    functions at a time, held as complex64: ``nbasis`` x acquired samples, 37 MB per million
    samples at degree 6) and solved through the normal equations ``G^H G a = G^H y``, summed in
    float64 one slab of samples at a time.

    Parameters
    ----------
    kspace : (coils, ky, kx) or (coils, kz, ky, kx) complex
    shot_index : (ky,) or (kz, ky) int
    image : (ny, nx) or (nz, ny, nx) complex
        Current image (frame of shot 0).
    motion : (nshot, 3) or (nshot, 6) float, degrees / pixels
    coil_model : PolynomialCoilModel on the image grid

    Returns
    -------
    (coils, nbasis) complex128 coefficients; maps ``coil_model.maps(a)`` (not normalised).
    """
    y = np.asarray(kspace)
    si = np.asarray(shot_index)
    if y.ndim == 4:
        return _fit_coil_coeffs3d(y, si, image, motion, coil_model)
    if y.ndim != 3:
        raise ValueError(f"kspace: expected (coils, ky, kx) or (coils, kz, ky, kx), got {y.shape}")
    nshot = np.asarray(motion).shape[0]
    model = MultiShotSenseTorch(si, 2, nshot=nshot)
    target = model.data_rows(torch.as_tensor(np.ascontiguousarray(y, dtype=np.complex64)))
    design = SeparableDesign2D(model, coil_model, target)
    return design.solve(torch.as_tensor(np.ascontiguousarray(image, dtype=np.complex64)),
                        torch.as_tensor(np.asarray(motion), dtype=torch.float32), dtype=torch.complex128).numpy()


def _fit_coil_coeffs3d(y: np.ndarray, si: np.ndarray, image: np.ndarray, motion: np.ndarray,
                       coil_model: PolynomialCoilModel) -> np.ndarray:
    """:func:`fit_coil_coeffs` for volumes: the normal equations of
    :func:`~mrideblur.estimators.coil_motion_varpro.coil_design_solve`."""
    if coil_model.carriers is not None:
        raise ValueError("coil_model: coil carriers are supported on slices only")
    model = MultiShotSenseTorch(si, 3, nshot=count_shots(si))
    acq = torch.as_tensor(si >= 0)
    target = torch.as_tensor(np.ascontiguousarray(y, dtype=np.complex64))[:, acq, :].reshape(y.shape[0], -1)
    a = coil_design_solve(model, torch.as_tensor(np.ascontiguousarray(image, dtype=np.complex64)),
                          torch.as_tensor(np.asarray(motion), dtype=torch.float32),
                          torch.as_tensor(coil_model.basis.astype(np.complex64)), target, acq)
    return a.numpy().astype(np.complex128)


# ----------------------------------------------------------------------------------------------
# The estimator: coarse-to-fine joint motion, coil rounds, final CG-SENSE
# ----------------------------------------------------------------------------------------------

#: Rounds of coil re-estimation + motion refinement for ``coils="joint"`` (at most), and the
#: largest motion change (degrees / pixels) below which they stop.  Most cases stop after 2-3
#: rounds; hard ones crawl (a random R = 2 case: 2.2, 1.0, 0.4, 0.12, ... degrees or pixels per
#: round, 32.5 dB after 3 rounds, 34.3 after 6, 35.1 after 8, oracle 36.7), hence up to 6.
MAX_COIL_ROUNDS = 6
#: Slices: instead of those rounds, at most this many L-BFGS iterations over image and motion
#: with the polynomial maps solved for at every step (:mod:`.coil_motion_varpro`).  Measured
#: (2026-12-07): 225 on the 192 px speed case, 575-600 on 96 px R = 2 cases, and the cap on a
#: 96 px 32-loop R = 2 case that had settled by then (43.0 dB, oracle 42.9).
VARPRO_MAX_ITER = 800
COIL_ROUND_TOL = 0.02
#: Whole coarse-to-fine passes (with the per-shot search) after a coil step, for
#: ``coils="joint"`` with unknown maps, before the local rounds above; they go on while a pass
#: moves some shot by more than ``GLOBAL_PASS_TOL`` (degrees / pixels).  ESPIRiT maps of data
#: corrupted by large motion hold the motion near zero: an interleaved +-10 deg / +-10 px case
#: (192x192, 8 coils, 16 shots) ended 8.1 deg / 6.9 px RMS off after the first pass, and the
#: local rounds at full resolution cannot leave that basin; after a coil step and a second pass
#: it was 8.6 / 1.6, after a third 0.1 / 0.08 (measured).  Small motion stops after one extra pass.
#: Up to six: a 128x128 +-10 deg step case still moved 4.0 in its third pass (24.4 dB, oracle
#: 36.8) and stopped after six at 33.1 dB; four orderings-suite cases that used all three passes
#: ended within 0.1 dB of their three-pass result with the cap at eight (measured 2026-12-06).
#: 2D only: a 48^3 pass costs minutes, and a 3D correction is already 6-8 min (not measured there).
MAX_GLOBAL_PASSES = 6
GLOBAL_PASS_TOL = 0.5
#: Total degree of the polynomial coil model of ``coils="joint"`` (28 functions per coil in 2D;
#: MNI maps of the simulator fit to 0.1% inside the head) and (image, coils) alternations per round.
COIL_DEGREE = 6
COIL_INNER = 2
#: CG-SENSE iterations of the coil step's warm-started solves (the start is the estimate of the
#: previous stage under nearly the same model).  The final image is NOT warm-started: CG from
#: zero stopped at 30 iterations is the regularised solution (like the oracle's); continuing
#: from the joint estimate amplifies noise where the maps are weak (-2 to -4 dB, measured).
COIL_WARM_CG = 8
#: Image side (pixels) of the coarsest level, and of the second one.  At 24 pixels a shot turned
#: by 10 degrees and moved by 10 pixels of a 192 grid (1.25 coarse pixels) is inside the local
#: optimiser's reach; from 48 pixels it is not (the rotation of one shot, or of the whole
#: frame, locks 9 degrees off; measured).  A 24-pixel image pins the motion down only roughly,
#: so the 48-pixel level and the finer ones follow.
COARSEST_SIZE = 24
MIN_LEVEL_SIZE = 48
#: Offsets of the per-shot search at the start of the level after the coarsest (degrees, and
#: pixels of that level's grid): +-20 degrees in 2.5-degree steps, +-2 pixels in 1-pixel steps.
SEARCH_GRID = offset_grid(20.0, 2.5, 2.0, 1.0)
#: 3D: offsets of every rotation axis by -4, 0, 4 degrees and every translation axis by -1, 0, 1
#: voxels of the coarsest grid (729 candidates, at the coarsest level's second pass).
SEARCH_GRID_3D = offset_grid3d((-4.0, 0.0, 4.0), (-1.0, 0.0, 1.0))
#: CG iterations that re-solve the image after the search moved a shot.
SEARCH_CG = 10
#: The searched start goes on only when its misfit at the end of its level is below this
#: fraction of the plain start's.  Measured ratios: 0.09 where the search put back shots that
#: had locked 5-13 degrees off (128x128, true coils); 0.93 where it had moved shots of a +-3 deg
#: case 10-20 degrees the wrong way (64x64, 8 shots, ESPIRiT maps: 20.7 dB against 41.5);
#: above 1 at R = 2 (the suite's random case).
SEARCH_MARGIN = 0.5
#: Volumes: the searched start goes on whenever it ends the level with the lower misfit.  The
#: 2D margin guards against coarse levels that hold one or two lines per shot (R = 2); a 24^3
#: level of 16 interleaved shots holds 36 (kz, ky) lines per shot.  On the Colin27 case of
#: benchmarks/volume3d.py (coils estimated) the searched start ended at 0.86x the other's misfit
#: and was dropped under 0.5: 28.0 dB (rotation RMSE 3.6 deg); kept, 32.7 dB (2.7 deg).  The
#: other rows moved by less (coils estimated: MNI152 36.9 -> 37.1, INIA19 35.3 -> 34.4 dB; true
#: coils: MNI152 39.6 -> 38.9, Colin27 37.0 and INIA19 40.7 -> 40.8; 2026-12-06/07): the worst
#: gap to the oracle fell from 9.8 to 6.4 dB.
SEARCH_MARGIN_3D = 1.0
COIL_OPTIONS = ("espirit", "joint")
#: The starting maps (coils not given): ESPIRiT on motion-corrupted calibration lines can
#: fail outright with arrays of small loop coils — 13 dB under the *true* motion where the
#: smoothed coil images of the uncorrected data (:func:`refine_sens` at zero motion) give 35 dB
#: (32 loops, 128x128, +-3 deg / 3 px) — so the coil images are used when ESPIRiT's misfit at
#: zero motion exceeds theirs by this factor.  Measured ratios (2026-12-06, MNI slices, 16
#: interleaved shots): 4.7-5.1 with 8 or 32 loop coils, where the coil images' start then ends
#: 12.6-13.6 dB higher (25.0 -> 38.5, 25.5 -> 38.1, 26.0 -> 39.6 dB); 1.25-1.86 with 8 or 16
#: birdcage coils, where neither start wins everywhere (coil images +3.2 dB at 96 px, R = 2;
#: -1.3 and -3.7 dB at 128 px, R = 1); 1.0-1.2 for loop coils with 8 shots at 64-96 px, where
#: ESPIRiT's maps are still 10 dB worse under the true motion and the check misses them.
#: Volumes (48^3 MNI152 of benchmarks/volume3d.py, 8 Gaussian-blob coils, 16 shots, +-3 deg /
#: 3 voxels): ratio 4.4; under the true motion ESPIRiT's maps give 12.8 dB, the coil images
#: 30.2, three exact coil fits from them 37.0, the true maps 40.7 (2026-12-06).
ESPIRIT_MISFIT_RATIO = 3.0
INITIAL_MAPS_CG = 10


@dataclass
class AlignedSenseOptions(KSpaceOptions):
    """Options of ``correct(method="aligned-sense")`` besides those of every k-space estimator
    (:class:`~mrideblur.estimators.mri_common.KSpaceOptions`: ``calib_width``, ``device``, ``seed``).

    Attributes
    ----------
    coils : {"joint", "espirit"}
        Re-estimate the coil maps jointly with the motion (slices: image, motion and the exact
        polynomial maps together, at most ``VARPRO_MAX_ITER`` L-BFGS iterations; volumes: up to
        ``MAX_COIL_ROUNDS`` rounds of the exact coil fit and a motion refinement), or keep the
        ESPIRiT maps of the corrupted data.  Ignored when the maps are given.
    max_iter : int
        L-BFGS iterations at the coarsest level (the finer level gets 4/5 of it; each coil
        refinement round of a volume 3/5, at full resolution).
    """

    coils: str = "joint"
    max_iter: int = 150

    def validate(self) -> None:
        super().validate()
        one_of("coils", self.coils, COIL_OPTIONS)
        self.max_iter = positive_int("max_iter", self.max_iter, 5)


def _coil_step(y: np.ndarray, si: np.ndarray, sens: np.ndarray, motion: np.ndarray, model: PolynomialCoilModel,
               image: np.ndarray | None = None) -> np.ndarray:
    """Re-estimate the coil maps for fixed motion: alternate a SENSE image and the exact
    polynomial coil fit of ``model`` (:func:`fit_coil_coeffs`, 2D and 3D).  ``image`` (the
    current estimate under ``sens`` and ``motion``, frame of shot 0) warm-starts the SENSE solves."""
    x = image
    for _ in range(COIL_INNER):
        x = sense_recon(y, si, sens, motion, max_iter=20 if x is None else COIL_WARM_CG, x0=x)
        sens = normalize_sens(model.maps(fit_coil_coeffs(y, si, x, motion, model)))
    return sens


def _check_initial_maps(y: np.ndarray, si: np.ndarray, espirit: np.ndarray, calib_width: int
                        ) -> tuple[np.ndarray, dict]:
    """ESPIRiT's maps of the corrupted calibration lines, or smoothed coil images when those
    explain the data far better (slices and volumes).

    Both are judged at zero motion by the misfit ``||A x - y|| / ||y||`` of a short CG-SENSE
    (``INITIAL_MAPS_CG`` iterations); the coil images (:func:`refine_sens` with zero motion) win
    when ESPIRiT's misfit is more than ``ESPIRIT_MISFIT_RATIO`` times theirs.  Returns the maps
    and what was compared (the report's ``history["initial_maps"]``).
    """
    zero = np.zeros((count_shots(si), 3 if y.ndim == 3 else 6))
    smooth = refine_sens(y, si, zero, calib_width=calib_width)
    fit = {}
    for name, S in (("espirit", espirit), ("coil images", smooth)):
        x = sense_recon(y, si, S, zero, max_iter=INITIAL_MAPS_CG)
        fit[name] = residuals(y, si, S, zero, x)[0]
    use = "coil images" if fit["espirit"] > ESPIRIT_MISFIT_RATIO * fit["coil images"] else "espirit"
    info = {"misfit_at_zero_motion": fit, "used": use}
    if use == "coil images":
        return smooth, info
    # arrays whose phase winds: ESPIRiT's coil-0 phase convention breaks the motion model
    info["scanner_phase"] = bool(y.ndim == 3 and np.any(coil_carriers(smooth)))
    return (scanner_phase(espirit, smooth) if info["scanner_phase"] else espirit), info


def scanner_phase(maps: np.ndarray, reference: np.ndarray) -> np.ndarray:
    r"""``maps`` with the common phase of ``reference``: ``S_c e^{i p}``, ``p = arg sum_c R_c conj(S_c)``.

    ESPIRiT's maps are defined up to one phase per pixel, and sigpy fixes it by making the first
    coil's map real: every map then carries minus that coil's phase, and the image plus it.
    Without motion any common phase is equivalent; with motion it is not, because the maps stay
    in the scanner frame while the image (and the phase pushed onto it) moves.  Where the first
    coil's phase winds (a loop or an off-centre element, cycles across the field of view), and
    is ill-defined where that coil sees little, the moved phase no longer matches the data: the
    smoothed coil images of the data (:func:`refine_sens`, phase = each coil's own plus the
    object's smooth phase) give the reference.  Where the maps are zero (ESPIRiT's mask) they
    stay zero.  Used only for arrays whose phase winds (:func:`_check_initial_maps`): the
    object's phase it also gives the scanner-frame maps cost a birdcage case (benchmarks/speed.py)
    625 joint-stage iterations instead of 275 for +0.4 dB; keeping only the linear part of
    ``p`` lost the gain below on the foreign case (29.0 dB).  A foreign-simulator Shepp-Logan
    slice (192 px, 8 Gaussian-blob coils with up to 3 cycles of linear phase each, R = 1, coils
    estimated; benchmarks/foreign2d.py): 30.0 dB with sigpy's phase, 35.1 with this one (oracle 35.1).
    """
    z = np.sum(reference * np.conj(maps), axis=0)
    return (maps * np.exp(1j * np.angle(z))[None]).astype(maps.dtype)


def _monotone(progress: ProgressFn) -> ProgressFn:
    """``progress`` reporting the largest step so far against the first total: a level that
    overruns its share of steps (the search level's second start) or passes that end early
    (a smaller total) would otherwise move a shell's bar back, which restarts it."""
    state = {"step": 0, "total": None}

    def report(step: int, total: int, message: str = "") -> None:
        state["total"] = state["total"] or total
        state["step"] = min(max(state["step"], int(step)), state["total"])
        progress(state["step"], state["total"], message)

    return report


def motion_levels(n: int, coarse: int, fine: int, ndim: int = 2) -> tuple[Level, ...]:
    """The coarse-to-fine schedule for an image of side ``n`` pixels: ``COARSEST_SIZE`` pixels
    (``coarse`` iterations; left out when not coarser than the next), then a quarter of
    k-space but at least ``MIN_LEVEL_SIZE`` pixels (``coarse``), half of k-space (``fine``) and
    the full grid (``fine // 2``).

    The half-resolution motion is off by a few tenths of a degree with undersampling (R = 2),
    and shots that own no line of the central half (sequential orderings) are only seen at
    full resolution, hence the full level.

    2D: the per-shot search opens the level after the coarsest.  3D (``ndim=3``): it opens a
    second pass over the coarsest level instead, where a 6-DOF candidate costs about 2 ms
    (24^3, 8 coils; 48^3 is eight times that).
    """
    f1 = min(1.0, max(0.25, MIN_LEVEL_SIZE / n))
    f2 = min(1.0, max(0.5, 2 * f1))
    levels = (Level(f1, coarse), Level(f2, fine)) + ((Level(1.0, fine // 2),) if f2 < 1.0 else ())
    if COARSEST_SIZE / n < f1:
        if ndim == 3:
            c = COARSEST_SIZE / n
            return (Level(c, coarse), Level(c, coarse, search=True)) + levels
        levels = (Level(COARSEST_SIZE / n, coarse), Level(levels[0].fraction, coarse, search=True)) + levels[1:]
    return levels


def estimate_motion(y: np.ndarray, si: np.ndarray, sens: np.ndarray, options: AlignedSenseOptions,
                    estimate_coils: bool, progress: ProgressFn | None = None, cancel: CancelFn | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict, dict, bool]:
    """Coarse-to-fine joint motion, then the coil stage (slices: variable projection; volumes:
    coil rounds), then (slices) the full-resolution shot search; returns ``(image, motion, sens,
    history, seconds, cancelled)`` (the image is the joint estimate before the shot search, in
    the reference shot's frame, not the final CG-SENSE)."""
    max_iter, device = options.max_iter, options.device
    if progress is not None:  # one bar per slice: steps never go back, the first total stays
        progress = _monotone(progress)
    history: dict = {}
    seconds: dict = {}
    coarse, fine = max_iter, max(int(0.8 * max_iter), 5)
    refine = max(int(0.6 * max_iter), 5) if (options.coils == "joint" and estimate_coils) else 0
    levels = motion_levels(min(y.shape[1:]), coarse, fine, y.ndim - 1)
    fine = sum(lv.iterations for lv in levels) - coarse
    npass = 1 + (MAX_GLOBAL_PASSES if refine and y.ndim == 3 else 0)  # 2D slices (3D: time)
    total = npass * (coarse + fine) + ((VARPRO_MAX_ITER if y.ndim == 3 else MAX_COIL_ROUNDS * refine) if refine else 0)
    t = time.perf_counter()
    image, motion, h = joint_motion_lbfgs(y, si, sens, levels=levels, device=device, progress=progress,
                                          cancel=cancel, total_steps=total)
    history["round1"] = h
    cancelled = h["cancelled"]
    # the joint estimate's image is in the frame of shot 0 only when shot 0 is the reference
    frame0 = h["reference_shot"] == 0
    seconds["motion"] = time.perf_counter() - t

    def alternate(name: str, nmax: int, tol: float, lv: tuple[Level, ...], init_cg: int, offset: int) -> list[dict]:
        """Up to ``nmax`` rounds of a coil step and a motion estimate on levels ``lv`` (started at
        the current motion), until no shot moves more than ``tol``."""
        nonlocal image, motion, sens, cancelled
        out: list[dict] = []
        per = sum(level.iterations for level in lv)
        for r in range(nmax):
            if cancelled:
                break
            t = time.perf_counter()
            sens = _coil_step(y, si, sens, motion, coil_model, image if frame0 else None)
            seconds[f"{name}_{r + 1}_coils"] = time.perf_counter() - t
            t = time.perf_counter()
            image, new, h = joint_motion_lbfgs(y, si, sens, motion0=motion, levels=lv, device=device,
                                               progress=progress, cancel=cancel, init_cg=init_cg,
                                               step_offset=offset + r * per, total_steps=total)
            seconds[f"{name}_{r + 1}_motion"] = time.perf_counter() - t
            change = float(np.abs(new - motion).max())
            motion, cancelled = new, h["cancelled"]
            out.append({**h, "max_motion_change": change})
            if change < tol:
                break
        return out

    ref = history["round1"]["reference_shot"]

    def coil_stage(start: np.ndarray, maps: np.ndarray, x0: np.ndarray | None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        """Slices: :func:`joint_motion_coils_lbfgs` from ``start`` (the image: CG-SENSE under
        ``maps``, from ``x0``, in the reference shot's frame); ``(image, motion, normalised
        maps, history)``."""
        x = sense_recon(y, si, maps, rebase_motion(start, ref), max_iter=COIL_WARM_CG, x0=x0)
        img, mot, coeffs, h = joint_motion_coils_lbfgs(
            y, si, x, start, coil_model, max_iter=VARPRO_MAX_ITER, device=device, progress=progress,
            cancel=cancel, step_offset=offset, total_steps=total, reference=ref)
        return img, mot, normalize_sens(coil_model.maps(coeffs)), h

    # slices: each coil's winding phase rides on a carrier taken from the starting maps; in an
    # array that winds (some coil by two lines or more) down to one line
    coil_model = PolynomialCoilModel(y.shape[1:], COIL_DEGREE, winding_carriers(sens, COIL_DEGREE))
    if coil_model.carriers is not None:
        history["coil_carriers"] = coil_model.carriers.tolist()
    # whole passes first (a way out of the basin of the first maps), then local full-resolution rounds
    history["global_passes"] = alternate("global_pass", npass - 1, GLOBAL_PASS_TOL, levels, 0, coarse + fine)
    offset = (1 + len(history["global_passes"])) * (coarse + fine)
    if y.ndim == 3 and refine and not cancelled:
        # slices: image, motion and maps together, the maps solved for at every step
        t = time.perf_counter()
        # in the frame of the passes' reference shot, which stays fixed (the image is already there)
        image, motion, sens, h = coil_stage(motion, sens, image)
        cancelled = h["cancelled"]
        history["motion_and_coils"] = h
        seconds["motion_and_coils"] = time.perf_counter() - t
    else:
        history["coil_rounds"] = alternate("coil_round", MAX_COIL_ROUNDS if refine else 0, COIL_ROUND_TOL,
                                           (Level(1.0, refine),), 10, offset)
    if y.ndim == 3 and not cancelled:
        # slices: every shot searched again at full resolution over any translation; what moves
        # is refined by the last stage again, and kept when the data fit improves
        t = time.perf_counter()
        found, info = rescue_shots(y, si, sens, motion, ref, device, cancel)
        if info["moved"] and not (cancel is not None and cancel()):
            if "motion_and_coils" in history:
                _, new, new_sens, h = coil_stage(found, sens, None)
            else:
                _, new, h = joint_motion_lbfgs(y, si, sens, motion0=found, levels=(Level(1.0, coarse),),
                                               device=device, progress=progress, cancel=cancel, init_cg=10,
                                               step_offset=offset, total_steps=total)
                new_sens = sens
            cancelled = h["cancelled"]
            before, after = _misfit(y, si, sens, motion), _misfit(y, si, new_sens, new)
            info.update(refined=h, misfit_before=before, misfit_after=after, kept=bool(after < before))
            if after < before:
                motion, sens = new, new_sens
        history["shot_rescue"] = info
        seconds["shot_rescue"] = time.perf_counter() - t
    return image, motion, sens, history, seconds, cancelled


def _misfit(y: np.ndarray, si: np.ndarray, sens: np.ndarray, motion: np.ndarray) -> float:
    """Relative data misfit of CG-SENSE (30 iterations) under ``motion`` and ``sens``."""
    return residuals(y, si, sens, motion, sense_recon(y, si, sens, motion, max_iter=30))[0]


def start(kspace: np.ndarray, shot_index: np.ndarray, sens: np.ndarray | None, options: AlignedSenseOptions,
          progress: ProgressFn | None = None, cancel: CancelFn | None = None, estimate: bool = True
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict, dict, bool]:
    """Coil maps (given or ESPIRiT), the motion (:func:`estimate_motion`, or zero when not
    ``estimate``) and CG-SENSE with it (30 iterations from zero): ``(image, motion, sens, history,
    seconds, cancelled)``.  aligned-SENSE's result, and JSMoCo's start."""
    t0 = time.perf_counter()
    known = sens is not None
    sens = initial_sens(kspace, sens, options)
    history: dict = {}
    if not known:
        sens, history["initial_maps"] = _check_initial_maps(kspace, shot_index, sens, options.calib_width)
    seconds = {"coils": time.perf_counter() - t0}
    cancelled = False
    motion = np.zeros((count_shots(shot_index), 3 if kspace.ndim == 3 else 6))
    if estimate:
        _, motion, sens, found, sec, cancelled = estimate_motion(kspace, shot_index, sens, options, not known,
                                                                 progress, cancel)
        history.update(found)
        seconds.update(sec)
    t = time.perf_counter()
    image = sense_recon(kspace, shot_index, sens, motion, max_iter=30)
    seconds["sense"] = time.perf_counter() - t
    return image, motion, sens, history, seconds, cancelled


def run(kspace: np.ndarray, shot_index: np.ndarray, sens: np.ndarray | None, options: AlignedSenseOptions,
        progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> Result:
    """``correct(method="aligned-sense")`` on one slice ``(coils, ky, kx)`` or volume
    ``(coils, kz, ky, kx)``: joint image + motion L-BFGS coarse to fine, coil rounds
    (``coils="joint"`` with unknown maps), then CG-SENSE (30 iterations from zero) with the
    estimated motion.

    Returns a :class:`~mrideblur.estimators.base.Result`: complex64 image, motion ``(nshot, 3)``
    ``[rot_deg, ty, tx]`` (``(nshot, 6)`` in 3D; degrees, pixels, shot 0 zero), the coil maps
    used, and the report (``residual_per_shot``, ``history`` of every level and round,
    ``seconds`` per stage).
    """
    t0 = time.perf_counter()
    known = sens is not None
    image, motion, sens, history, seconds, cancelled = start(kspace, shot_index, sens, options, progress, cancel)
    seconds["total"] = time.perf_counter() - t0
    report = mri_report("aligned-sense", options, kspace, shot_index, sens, motion, image, history, seconds,
                        cancelled, coils="given" if known else options.coils)
    return Result(image=image, motion=motion, sens=np.asarray(sens, dtype=np.complex64), report=report,
                  history=history)
