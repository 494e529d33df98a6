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

__all__ = ["search_shot_motion", "offset_grid", "offset_grid3d"]

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
