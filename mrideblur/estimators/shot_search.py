"""Per-shot grid search of rigid motion: a way out of the wrong basin for shots that moved far.

A local optimiser (the L-BFGS of aligned-SENSE) follows the data-consistency cost downhill from
its start; a shot turned 10-20 degrees away from the others may settle in a wrong basin, and the
image, estimated jointly, adapts to the wrong motion (measured: 128x128, 16 interleaved shots,
random motion up to +-10 deg / +-6.7 px, true coils: three shots 5-13 degrees off after the
coarse-to-fine L-BFGS, and with that image the true motion of those shots fits their lines
worse than the wrong one).

The search visits the shots one at a time (Gauss-Seidel).  For shot ``s`` it reconstructs the
image from all *other* shots' lines (leave one out: ``x_{-s}`` by CG on
``A^H W_s A x = A^H W_s y``, ``W_s`` dropping shot ``s``'s lines, started from the current
image), so the shot's own wrong motion does not shape its reference, then tries every offset
``delta`` of a grid around its motion,

.. math:: r_s(\\delta) = \\| M_s F S T(\\theta_s + \\delta) x_{-s} - y_s \\|^2 ,

and keeps the best (``delta = 0`` on ties).  The next shot sees the update.  Two sweeps let a
shot whose neighbours were wrong in the first be placed in the second.  The local optimiser
then refines from the result.
"""

from __future__ import annotations

import numpy as np
import torch

from ..physics.cg import conjugate_gradient
from ..physics.multishot_torch import MultiShotSenseTorch
from .base import CancelFn
from .kspace_grid import rebase_motion

__all__ = ["offset_grid", "offset_grid3d", "rescue_shots", "search_shot_motion", "shot_misfit_ratio", "xcorr_shot_search"]

#: Candidates evaluated per batch (memory: ``batch * coils * ny * nx`` complex values).
BATCH = 128


def offset_grid(max_rot: float, rot_step: float, max_trans: float, trans_step: float) -> np.ndarray:
    """Offsets ``(rot_deg, ty, tx)`` on a regular grid, the zero offset first.

    Parameters
    ----------
    max_rot, rot_step : float
        Rotation offsets ``-max_rot .. max_rot`` (degrees) in steps of ``rot_step``.
    max_trans, trans_step : float
        Translation offsets on both axes (pixels of the grid the search runs on).

    Returns
    -------
    (n, 3) float64 array.
    """
    rots = np.arange(-max_rot, max_rot + 1e-9, rot_step) if max_rot > 0 else np.zeros(1)
    ts = np.arange(-max_trans, max_trans + 1e-9, trans_step) if max_trans > 0 else np.zeros(1)
    grid = np.stack(np.meshgrid(rots, ts, ts, indexing="ij"), -1).reshape(-1, 3)
    order = np.argsort(np.abs(grid).sum(1), kind="stable")  # zero first: ties keep the start
    return grid[order]


def offset_grid3d(rots: tuple[float, ...], shifts: tuple[float, ...]) -> np.ndarray:
    """6-DOF offsets ``(rz, ry, rx, tz, ty, tx)``: every combination of ``rots`` (degrees) on the
    three rotation axes and ``shifts`` (voxels of the search grid) on the three translation axes,
    the zero offset first.

    Returns
    -------
    (len(rots)**3 * len(shifts)**3, 6) float64 array.
    """
    axes = [np.asarray(rots, float)] * 3 + [np.asarray(shifts, float)] * 3
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 6)
    order = np.argsort(np.abs(grid).sum(1), kind="stable")
    return grid[order]


@torch.no_grad()
def search_shot_motion(model: MultiShotSenseTorch, y: torch.Tensor, x: torch.Tensor, theta: torch.Tensor,
                       sens: torch.Tensor, offsets: np.ndarray, fixed: int | None = None, sweeps: int = 2,
                       cg_iters: int = 10, cancel: CancelFn | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Move each shot to the grid offset that best explains its lines against the others' image.

    Parameters
    ----------
    model : MultiShotSenseTorch
        The 2D or 3D model on the search grid.
    y : (coils, [kz,] ky, kx) complex tensor
        Data on the search grid.
    x : ([nz,] ny, nx) complex tensor
        Current image (a start for the leave-one-out CG).
    theta : (nshot, 3|6) real tensor
        Current motion in the units of the search grid (degrees, pixels of this grid).
    sens : (coils, [nz,] ny, nx) complex tensor
    offsets : (n, 3|6) array
        Candidate offsets (:func:`offset_grid`, :func:`offset_grid3d`), the zero offset first.
    fixed : int, optional
        A shot that keeps its motion (the reference frame).
    sweeps : int
        Passes over the shots at most (a pass that moves no shot ends the search).
    cg_iters : int
        CG iterations of each leave-one-out image.
    cancel : callable, optional
        Polled after every shot; the search stops early when it returns True.

    Returns
    -------
    theta : (nshot, 3|6) tensor, the new motion
    image : ([nz,] ny, nx) tensor, the last leave-one-out image (a start for what follows)
    moved : (nshot,) bool, the shots whose motion changed
    """
    si = torch.as_tensor(model.shot_index, device=y.device)
    off = torch.as_tensor(np.asarray(offsets), dtype=theta.dtype, device=theta.device)
    theta = theta.clone()
    moved = np.zeros(model.nshot, bool)
    owned = [bool((model.shot_index == s).any()) for s in range(model.nshot)]
    for _ in range(sweeps):
        moved_now = False
        for s in range(model.nshot):
            if s == fixed or not owned[s]:
                continue
            w = (si != s).to(y.real.dtype)[None, ..., None]

            def normal(v: torch.Tensor) -> torch.Tensor:
                return model.adjoint(model(v, theta, sens) * w, theta, sens)

            x = conjugate_gradient(normal, model.adjoint(y * w, theta, sens), x, max_iter=cg_iters)
            res = model.shot_residuals(x, theta[s] + off, sens, s, y, batch=BATCH)
            best = int(torch.argmin(res))
            if best != 0 and res[best] < res[0]:
                theta[s] = theta[s] + off[best]
                moved[s] = moved_now = True
            if cancel is not None and cancel():
                return theta, x, moved
        if not moved_now:  # a sweep that moved nothing: the next would see the same images
            break
    return theta, x, moved


#: Rotation offsets (degrees) of the full-resolution search, :func:`rescue_shots`.
RESCUE_ROTATIONS = np.arange(-20.0, 20.0 + 1e-9, 1.0)
#: Proposals scored exactly per shot, the residual ratio a move needs, and sweeps at most.
#: On the random-ordering +-10 case of benchmarks/orderings.py (seed 114: four shots 9 deg or
#: 25-30 px off after the coarse-to-fine passes and the joint coil fit) the first sweep moved
#: three shots (exact residual ratios 0.16, 0.50, 0.27), the second the fourth (0.84: it had
#: needed the others in place), the third none; every shot then within 0.65 deg / px of the truth.
RESCUE_TOP = 8
RESCUE_ACCEPT = 0.85
RESCUE_SWEEPS = 3
#: The search runs only when some shot's misfit per line exceeds this multiple of the median
#: shot's (:func:`shot_misfit_ratio`): a shot left far off stands out.  Measured on 12 of the 16
#: cases of benchmarks/orderings.py (interleaved and random +-3, every +-10) with estimated and
#: true coils (2026-12-07, 24 runs): in the 3 runs where the search moved a shot the largest ratio
#: was 2.09-4.27; sequential / centre-out runs 1.9-2.9 (searched, nothing moved); on the 12 runs
#: where every shot was already right at most 1.09, and there the search moved nothing and cost
#: 9-12 s of a 20-70 s correction.
RESCUE_GATE = 1.25


@torch.no_grad()
def xcorr_shot_search(model: MultiShotSenseTorch, y: torch.Tensor, x: torch.Tensor, theta: torch.Tensor,
                      sens: torch.Tensor, rotations: np.ndarray = RESCUE_ROTATIONS, fixed: int | None = None,
                      cg_iters: int = 10, top: int = RESCUE_TOP, accept: float = RESCUE_ACCEPT,
                      cancel: CancelFn | None = None
                      ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    r"""Full-resolution search of every shot over rotation and *any* integer translation (2D).

    For shot ``s``: the leave-one-out image ``x_{-s}`` (as :func:`search_shot_motion`), then for
    every rotation offset ``r`` the shot's predicted lines ``P_c = M_s F S_c T(rot_s + r, t_s) x_{-s}``
    and their cross-correlation with the measured lines over every translation offset ``delta``
    at once (one inverse FFT of ``Q = sum_c conj(P_c) y_c`` placed on the k-space grid):

    .. math:: C(\delta) = \mathrm{Re} \sum_k Q(k)\, e^{2\pi i k\cdot\delta / N},

    the score of ``y_c = P_c e^{-2 pi i k.delta/N}``, exact for uniform coil maps (the maps stay
    in the scanner frame while the object moves: for real maps it proposes).  The ``top`` best
    (rotation, translation) proposals are scored by the shot's exact residual
    ``||M_s F S T(theta) x_{-s} - y_s||^2``, and the shot moves to the best one when it is
    below ``accept`` times the residual at its current motion: a clear win, not the small
    differences of a band's ambiguous translation (docs/limits.md).

    What it reaches that the coarse grid search cannot: a shot with no line in the coarse
    levels' centre of k-space, or one translated many pixels off (a random-ordering case left
    shots 25-30 px and 9 deg off after the coarse-to-fine passes).

    Parameters
    ----------
    model : MultiShotSenseTorch, 2D, full resolution
    y : (coils, ky, kx) complex tensor
    x : (ny, nx) complex tensor, a start for the leave-one-out CG
    theta : (nshot, 3) real tensor (degrees, pixels), in the frame of ``fixed``
    sens : (coils, ny, nx) complex tensor
    rotations : (nrot,) rotation offsets in degrees (include 0)
    fixed : int, optional
        The reference shot, not searched.
    cg_iters, top, accept
        See above.
    cancel : callable, optional

    Returns
    -------
    theta : (nshot, 3) tensor, the new motion
    moved : (nshot,) bool
    gain : (nshot,) float, exact residual after / before per shot (1 where not moved)
    """
    if model.ndim != 2:
        raise ValueError("xcorr_shot_search: implemented for 2D models")
    ny, nx = y.shape[-2:]
    si = torch.as_tensor(model.shot_index, device=y.device)
    rot = torch.as_tensor(np.asarray(rotations, float), dtype=theta.dtype, device=theta.device)
    theta = theta.clone()
    moved = np.zeros(model.nshot, bool)
    gain = np.ones(model.nshot)
    for s in range(model.nshot):
        lines = np.flatnonzero(model.shot_index == s)
        if s == fixed or lines.size == 0:
            continue
        w = (si != s).to(y.real.dtype)[None, ..., None]

        def normal(v: torch.Tensor) -> torch.Tensor:
            return model.adjoint(model(v, theta, sens) * w, theta, sens)

        x = conjugate_gradient(normal, model.adjoint(y * w, theta, sens), x, max_iter=cg_iters)
        cand = theta[s].repeat(len(rot), 1)
        cand[:, 0] = cand[:, 0] + rot
        data = model.shot_data(y, s)[:, : lines.size]  # (coils, L, kx)
        scores = []
        for i in range(0, len(rot), BATCH // 4):
            pred = model.shot_lines(x, cand[i:i + BATCH // 4], sens, s)[:, :, : lines.size]  # (K, coils, L, kx)
            q = torch.zeros((pred.shape[0], ny, nx), dtype=pred.dtype, device=pred.device)
            q[:, torch.as_tensor(lines, device=pred.device)] = (pred.conj() * data[None]).sum(1)
            scores.append(torch.fft.ifft2(torch.fft.ifftshift(q, dim=(-2, -1))).real)
        score = torch.cat(scores).reshape(len(rot), -1)
        best = torch.topk(score.reshape(-1), min(top, score.numel())).indices
        props = []
        for b in best.tolist():
            r, d = divmod(b, ny * nx)
            dy, dx = divmod(d, nx)
            dy, dx = (dy + ny // 2) % ny - ny // 2, (dx + nx // 2) % nx - nx // 2  # wrap to [-N/2, N/2)
            props.append(cand[r] + torch.as_tensor([0.0, dy, dx], dtype=theta.dtype, device=theta.device))
        trial = torch.stack([theta[s]] + props)
        res = model.shot_residuals(x, trial, sens, s, y)
        k = int(torch.argmin(res))
        if k != 0 and res[k] < accept * res[0]:
            theta[s] = trial[k]
            moved[s] = True
            gain[s] = float(res[k] / res[0])
        if cancel is not None and cancel():
            break
    return theta, moved, gain




def rescue_shots(kspace: np.ndarray, shot_index: np.ndarray, sens: np.ndarray, motion: np.ndarray, reference: int,
                 device: str = "cpu", cancel: CancelFn | None = None) -> tuple[np.ndarray, dict]:
    """Sweeps of :func:`xcorr_shot_search` over every shot of a slice until none moves, when some
    shot fits its lines markedly worse than the others (:data:`RESCUE_GATE`).

    Parameters
    ----------
    kspace : (coils, ky, kx) complex
    shot_index : (ky,) int
    sens : (coils, ny, nx) complex
        Coil maps, normalised (``sum_c |S_c|^2 = 1``).  Unnormalised maps fitted jointly with
        the image carry a smooth factor ``f`` that the image carries as ``1 / f``; that cancels
        for shots in one pose but not for a shot far from them, whose true motion then fits its
        lines worse than a wrong one near the others (measured on the case above: residual 14.3
        at the truth against 13.9 with the unnormalised maps; 3.7 against 5.6 normalised).
    motion : (nshot, 3) float, relative to shot 0 (degrees, pixels)
    reference : int
        The shot held fixed (the frame of the search).
    device : str
    cancel : callable, optional

    Returns
    -------
    motion : (nshot, 3) float64, relative to shot 0
    info : dict: ``sweeps`` (moved shots and residual ratios per sweep), ``moved`` (any shot),
        ``shot_misfit_ratio`` (per shot, before the search) and ``skipped`` (why, when no search ran)
    """
    dev = torch.device(device)
    y = torch.as_tensor(np.asarray(kspace), device=dev).to(torch.complex64)
    S = torch.as_tensor(np.asarray(sens), device=dev).to(torch.complex64)
    model = MultiShotSenseTorch(np.asarray(shot_index), 2, device=dev, nshot=np.asarray(motion).shape[0])
    th = torch.as_tensor(rebase_motion(motion, reference), device=dev, dtype=torch.float32)
    with torch.no_grad():
        x = conjugate_gradient(lambda v: model.adjoint(model(v, th, S), th, S), model.adjoint(y, th, S), None,
                               max_iter=30)
        ratio = shot_misfit_ratio(model, y, x, th, S)
    if not np.nanmax(ratio) > RESCUE_GATE:
        return np.asarray(motion, dtype=np.float64).copy(), {
            "sweeps": [], "moved": False, "shot_misfit_ratio": ratio.round(3).tolist(),
            "skipped": f"every shot fits its lines within {RESCUE_GATE:g}x the median shot's misfit"}
    sweeps, any_moved = [], False
    for _ in range(RESCUE_SWEEPS):
        th, moved, gain = xcorr_shot_search(model, y, x, th, S, fixed=reference, cancel=cancel)
        sweeps.append({"moved": np.flatnonzero(moved).tolist(), "residual_ratio": gain[moved].round(3).tolist()})
        any_moved = any_moved or bool(moved.any())
        if not moved.any() or (cancel is not None and cancel()):
            break
    out = th.double().cpu().numpy()
    return rebase_motion(out, 0), {"sweeps": sweeps, "moved": any_moved, "shot_misfit_ratio": ratio.round(3).tolist()}


def shot_misfit_ratio(model: MultiShotSenseTorch, y: torch.Tensor, x: torch.Tensor, theta: torch.Tensor,
                      sens: torch.Tensor) -> np.ndarray:
    """Each shot's misfit per line, ``||M_s (F S T(theta_s) x - y)||^2 / L_s``, over the median of
    the shots' (2D; ``nan`` for a shot with no line).  Near 1 where every shot fits as well as
    the others (noise); a shot whose motion is wrong stands out."""
    with torch.no_grad():
        r = (model.forward_rows(x, theta, sens) - model.data_rows(y)).abs().pow(2).sum((1, 2, 3)).double().cpu().numpy()
    lines = np.array([np.count_nonzero(model.shot_index == s) for s in range(model.nshot)], float)
    per = np.where(lines > 0, r / np.maximum(lines, 1), np.nan)
    return per / np.nanmedian(per)
