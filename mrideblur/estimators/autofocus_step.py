r"""Autofocus on a **magnitude** image with a one-step motion model.

A magnitude image (what a NIfTI study holds) is, for an object ``x`` that is real before the
modulus and one coil of ones (:mod:`mrideblur.estimators.autofocus_magnitude`),

.. math::

    m = \big| F^H \big( M_A F x + M_B F\, T(\theta)\, x \big) \big| + n,

when the subject moved once during the scan: the shots before the move and those after it each
see one pose. ``M_B`` holds the phase-encode lines of the shots on the far side of the move from
the *reference shot* (the one owning the k-space centre, whose frame the result is in), ``M_A``
the other acquired lines, ``T(theta)`` the rigid motion ``theta = (rot_deg, ty, tx)`` between
the two poses, ``F`` the centred orthonormal DFT (docs/conventions.md).

For any one motion the modulus model fits the data exactly (as many real unknowns as data), so
only a prior on ``x`` can rank motions. With free per-shot motion the priors we measured rank
some wrong motions above the true one (:mod:`mrideblur.estimators.autofocus`, module notes). With four
unknowns (the step shot ``b`` and ``theta``) the same prior does rank them: the objective of
:func:`mrideblur.estimators.autofocus_magnitude.correct_magnitude`, minimised over ``x``,

.. math::

    J(b, \theta) = \min_x \sum \big(\sqrt{|A_{b,\theta} x|^2 + \epsilon} - m/s\big)^2
        + \lambda_{TV} \mathrm{TV}_\delta(x) + \lambda_1 \sum \sqrt{x^2 + \eta}
        + \nu \sum \min(x, 0)^2,

was lowest at the grid point next to the true motion on every development case (three MNI
planes, 96x96, 16 sequential shots), with a basin about one pixel / one degree wide and zero
motion a local minimum. It is searched globally, in three stages:

1. for every step shot ``b``, a translation grid (``trans_step`` pixels over ``+-max_trans``)
   at a few rotations (``coarse_rot_step`` degrees apart: 0 and +-2 for ``max_rot = 3``; with
   rotation 0 alone a 3-degree move was missed), each ``J`` from L-BFGS on ``x`` (``n_iter``
   iterations from ``x = m / s``, candidates solved as one batch);
2. for the ``top_steps`` best ``b``: a rotation grid (``rot_step`` degrees over ``+-max_rot``)
   times the best translation +- one grid step;
3. for the two best of stage 2, Powell's method on ``theta`` (``x`` re-solved from the stage-2
   solution at every evaluation).

The motion with the lowest ``J`` is kept when it beats zero motion; the image is then
:func:`~mrideblur.estimators.autofocus_magnitude.correct_magnitude` with that motion. Measured on
images from a simulator that shares no code with this one: ``benchmarks/autofocus.md``.

Limits: one move per scan (a drift or several moves are fitted by the best single step);
motion larger than ``max_rot`` / ``max_trans`` is not searched; the search costs about
``(nshot - 1) * 3 * (2 max_trans + 1)^2`` inner solves (about 4 minutes for a 96x96 image with
16 shots on one CPU thread, ``benchmarks/autofocus.md``; it grows with the pixel count).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import itertools
import time
from collections.abc import Callable

import numpy as np
import torch
from scipy.optimize import minimize

from .. import __version__
from .aligned_sense import rebase_motion, reference_shot
from .autofocus_magnitude import (
    check_magnitude_image,
    correct_magnitude,
    magnitude_scale,
    modulus_objective,
)
from .base import CancelFn, Cancelled, Options, ProgressFn, Result, check_cancel
from ..physics.fourier import fft_torch, ifft_torch
from ..physics.motion_torch import rigid2d_torch
from ..physics.shots import count_shots, validate_shot_index

__all__ = ["StepAutofocusOptions", "run", "step_autofocus", "step_motion", "step_objective"]

#: Most pixels solved in one batch (candidates x ny x nx): bounds memory (~1 GB at this size).
BATCH_PIXELS = 2_000_000




def _line_masks(si: np.ndarray, b: int, ref: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(M_A, M_B)`` (each ``(ny,)`` float): ``M_B`` the lines of the shots on the far side of a
    move before shot ``b`` from the reference shot."""
    far = (si >= b) if b > ref else ((si < b) & (si >= 0))
    mb = far.astype(np.float32)
    ma = ((si >= 0) & ~far).astype(np.float32)
    return torch.as_tensor(ma, device=device), torch.as_tensor(mb, device=device)


def _forward(x: torch.Tensor, theta: torch.Tensor, ma: torch.Tensor, mb: torch.Tensor) -> torch.Tensor:
    """``F^H (M_A F x + M_B F T(theta) x)`` for ``x (K, ny, nx)`` real, ``theta (K, 3)``."""
    xc = x.to(torch.complex64)
    k = fft_torch(xc, 2) * ma[:, None] + fft_torch(rigid2d_torch(xc, theta, per_shot=True), 2) * mb[:, None]
    return ifft_torch(k, 2)


def _objective(x: torch.Tensor, m: torch.Tensor, theta: torch.Tensor, ma: torch.Tensor, mb: torch.Tensor) -> torch.Tensor:
    """Per-candidate objective ``(K,)`` of the module notes (weights of correct_magnitude)."""
    return modulus_objective(_forward(x, theta, ma, mb), x, m)[0]


def _solve(m: torch.Tensor, theta: torch.Tensor, ma: torch.Tensor, mb: torch.Tensor, n_iter: int,
           x0: torch.Tensor | None = None, tick: Callable[[], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``J`` and ``x`` for a batch of motions ``theta (K, 3)``: L-BFGS on the sum of the
    candidates' objectives (they are independent) from ``x0`` (default ``m``)."""
    start = m if x0 is None else x0
    x = start.expand(theta.shape[0], *m.shape).clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=n_iter, max_eval=int(1.25 * n_iter), history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-14)

    def closure() -> torch.Tensor:
        if tick is not None:
            tick()
        opt.zero_grad()
        f = _objective(x, m, theta, ma, mb).sum()
        f.backward()
        return f

    opt.step(closure)
    with torch.no_grad():
        return _objective(x, m, theta, ma, mb), x.detach()


def _solve_chunked(m, theta, ma, mb, n_iter, tick=None):
    chunk = max(1, BATCH_PIXELS // int(m.numel()))
    fs, xs = [], []
    for i in range(0, theta.shape[0], chunk):
        f, x = _solve(m, theta[i:i + chunk], ma, mb, n_iter, tick=tick)
        fs.append(f)
        xs.append(x)
    return torch.cat(fs), torch.cat(xs)


def step_motion(nshot: int, step_shot: int, theta: np.ndarray, ref: int) -> np.ndarray:
    """Per-shot motion relative to shot 0 (docs/conventions.md) of a single move before shot
    ``step_shot`` by ``theta = (rot_deg, ty, tx)``, given in the frame of shot ``ref``.

    Returns
    -------
    (nshot, 3) float64, shot 0 zero.
    """
    s = np.arange(nshot)
    far = s >= step_shot if step_shot > ref else s < step_shot
    mref = np.zeros((nshot, 3))
    mref[far] = np.asarray(theta, dtype=np.float64)
    return rebase_motion(mref, 0)


def step_objective(image: np.ndarray, shot_index: np.ndarray, step_shot: int, theta, n_iter: int = 50,
                   device: str = "cpu") -> float:
    """``J(b, theta)`` of the module notes for one step shot and motion (image scaled by its
    99.5th percentile, as in the search): lower is more plausible.

    Parameters
    ----------
    image : (ny, nx) real array, the magnitude image
    shot_index : (ny,) int
    step_shot : int, the first shot after the move (``1 <= b < nshot``)
    theta : (3,) ``rot_deg, ty, tx`` from the reference shot's pose to the other pose
    n_iter : int, L-BFGS iterations on ``x``
    device : str
    """
    m_np = check_magnitude_image(image, "use mrideblur.estimators.autofocus.autofocus").astype(np.float64)
    si = validate_shot_index(shot_index, (m_np.shape[0],))
    dev = torch.device(device)
    m = torch.as_tensor(m_np / magnitude_scale(m_np), dtype=torch.float32, device=dev)
    ma, mb = _line_masks(si, int(step_shot), reference_shot(si), dev)
    th = torch.as_tensor(np.asarray(theta, dtype=np.float32).reshape(1, 3), device=dev)
    return float(_solve(m, th, ma, mb, n_iter)[0][0])


@dataclass
class StepAutofocusOptions(Options):
    """Options of the step autofocus: the search box, its grids and the inner solves.

    Attributes
    ----------
    max_rot, max_trans : float
        Search range, degrees and pixels (each of ``rot, ty, tx`` within +-).
    rot_step, trans_step : float
        Grid spacing of stages 1-2 (degrees, pixels); the true motion's basin is about one
        unit wide, so coarser grids can miss it.
    coarse_rot_step : float
        Spacing of stage 1's rotations (degrees), ``k * coarse_rot_step`` within ``+-max_rot``.
    top_steps : int
        Step shots carried from stage 1 to stage 2.
    n_iter : int
        L-BFGS iterations of each inner solve.
    refine_evals : int
        Most objective evaluations of each Powell refinement (stage 3).
    correct_iter : int
        ``max_iter`` of the final :func:`correct_magnitude`.
    device : str
        torch device (``"cpu"``, ``"cuda"``).
    seed : int
        Recorded for reproducibility; the search is deterministic.
    """

    max_rot: float = 3.0
    max_trans: float = 3.0
    rot_step: float = 1.0
    trans_step: float = 1.0
    coarse_rot_step: float = 2.0
    top_steps: int = 3
    n_iter: int = 50
    refine_evals: int = 80
    correct_iter: int = 300
    device: str = "cpu"
    seed: int = 0


def step_autofocus(image: np.ndarray, shot_index: np.ndarray, options: StepAutofocusOptions | None = None,
                   progress: ProgressFn | None = None, cancel: CancelFn | None = None, **kwargs: Any) -> Result:
    """Estimate a single rigid move from a magnitude image and undo it (module notes).

    Parameters
    ----------
    image : (ny, nx) real array
        The motion-corrupted magnitude image; phase-encode axis 0, readout axis 1.
    shot_index : (ny,) int
        Shot of every phase-encode line (``-1``: not acquired), in acquisition order, e.g.
        :func:`mrideblur.physics.shots.make_shot_index` with the assumed ordering.
    options : StepAutofocusOptions, optional
        The method's options (defaults when None); keyword arguments build it instead.
    progress : callable(step, total, message), optional
    cancel : callable() -> bool, optional
        Polled at every inner-solver evaluation; True stops the search and returns the input
        unchanged with zero motion (``report["cancelled"] = True``).
    **kwargs
        Fields of the options, when ``options`` is not given.

    Returns
    -------
    Result
        ``image`` ``(ny, nx)`` float32 in the frame of the reference shot (the one owning the
        k-space centre), same intensity scale as the input; ``motion`` ``(nshot, 3)``
        ``rot_deg, ty, tx`` relative to shot 0; ``sens`` ``(1, ny, nx)`` ones; ``report``:
        ``method`` (``"step-autofocus"``), ``parameters``, ``reference_shot``, ``step_shot``
        (first shot after the move, or None when no move beat zero motion), ``theta_reference``
        (the move in the reference shot's frame), ``objective`` (``zero``, ``best``),
        ``stages`` (best ``J`` per step shot and stage), ``seconds``, ``cancelled``,
        ``versions``, ``correction`` (the report of :func:`correct_magnitude`).

    Raises
    ------
    ValueError
        Not a finite real 2D image of at least 8x8 pixels, an all-zero image, a shot map that
        does not fit axis 0 or has fewer than two shots, non-positive ranges or steps.
    """
    o = options if options is not None else StepAutofocusOptions.from_kwargs("step-autofocus", **kwargs)
    max_rot, max_trans, rot_step, trans_step = o.max_rot, o.max_trans, o.rot_step, o.trans_step
    coarse_rot_step, top_steps, n_iter, refine_evals = o.coarse_rot_step, o.top_steps, o.n_iter, o.refine_evals
    correct_iter, device, seed = o.correct_iter, o.device, o.seed
    m_np = check_magnitude_image(image, "use mrideblur.estimators.autofocus.autofocus")
    si = validate_shot_index(shot_index, (m_np.shape[0],))
    nshot = count_shots(si)
    if nshot < 2:
        raise ValueError(f"shot_index: a step needs at least two shots, got {nshot}")
    for name, v in (("max_rot", max_rot), ("max_trans", max_trans), ("rot_step", rot_step), ("trans_step", trans_step),
                    ("coarse_rot_step", coarse_rot_step)):
        if not np.isfinite(v) or v <= 0:
            raise ValueError(f"{name}: expected a finite value > 0, got {v}")
    for name, v in (("top_steps", top_steps), ("n_iter", n_iter), ("refine_evals", refine_evals),
                    ("correct_iter", correct_iter)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {v}")
    t_start = time.perf_counter()
    scale = magnitude_scale(m_np.astype(np.float64))
    dev = torch.device(device)
    m = torch.as_tensor(m_np / scale, dtype=torch.float32, device=dev)
    ref = reference_shot(si)
    steps = [b for b in range(1, nshot) if 0 < float(_line_masks(si, b, ref, dev)[1].sum()) < int((si >= 0).sum())]
    trans = np.arange(-max_trans, max_trans + 1e-9, trans_step)
    rots = np.arange(-max_rot, max_rot + 1e-9, rot_step)
    k = int(np.floor(max_rot / coarse_rot_step + 1e-9))
    rots_a = coarse_rot_step * np.arange(-k, k + 1)
    grid_a = torch.as_tensor([[r, ty, tx] for r, ty, tx in itertools.product(rots_a, trans, trans)],
                             dtype=torch.float32, device=dev)
    n_b = 9 * len(rots)
    # progress in inner-solver evaluations (estimated: ~1.1 per L-BFGS iteration)
    chunk = max(1, BATCH_PIXELS // int(m.numel()))
    per_solve = int(1.1 * n_iter)
    total = (len(steps) * -(-len(grid_a) // chunk) + min(top_steps, len(steps)) * -(-n_b // chunk)) * per_solve \
        + 2 * refine_evals * int(0.8 * n_iter)
    done = 0

    def tick(msg: str) -> Callable[[], None]:
        def f() -> None:
            nonlocal done
            check_cancel(cancel)
            done += 1
            if progress is not None:
                progress(min(done, total - 1), total, msg)
        return f

    stages: dict[str, list] = {"coarse_grid": [], "rotation_grid": [], "refine": []}
    cancelled = False
    f_zero = float("nan")
    best: tuple[float, int, np.ndarray] | None = None
    try:
        stage_a = []
        for b in steps:
            ma, mb = _line_masks(si, b, ref, dev)
            f, _ = _solve_chunked(m, grid_a, ma, mb, n_iter, tick(f"step autofocus: coarse grid, step at shot {b}"))
            if not np.isfinite(f_zero):
                f_zero = float(f[(grid_a == 0).all(1)][0])
            i = int(torch.argmin(f))
            stage_a.append((float(f[i]), b, grid_a[i].cpu().numpy()))
            stages["coarse_grid"].append({"step_shot": b, "objective": float(f[i]),
                                               "theta": grid_a[i].cpu().tolist()})
        stage_a.sort(key=lambda r: r[0])
        stage_b = []
        for _, b, th in stage_a[:top_steps]:
            ma, mb = _line_masks(si, b, ref, dev)
            g = torch.as_tensor([[r, th[1] + dy, th[2] + dx] for r in rots for dy in (-trans_step, 0, trans_step)
                                 for dx in (-trans_step, 0, trans_step)], dtype=torch.float32, device=dev)
            f, xs = _solve_chunked(m, g, ma, mb, n_iter, tick(f"step autofocus: rotations, step at shot {b}"))
            i = int(torch.argmin(f))
            stage_b.append((float(f[i]), b, g[i].cpu().numpy(), xs[i]))
            stages["rotation_grid"].append({"step_shot": b, "objective": float(f[i]), "theta": g[i].cpu().tolist()})
        stage_b.sort(key=lambda r: r[0])
        for _, b, th, x0 in stage_b[:2]:
            ma, mb = _line_masks(si, b, ref, dev)
            t = tick(f"step autofocus: refining the move at shot {b}")

            def fun(p: np.ndarray, ma=ma, mb=mb, x0=x0, t=t) -> float:
                th_ = torch.as_tensor(np.asarray(p, dtype=np.float32)[None], device=dev)
                return float(_solve(m, th_, ma, mb, n_iter, x0=x0, tick=t)[0][0])

            r = minimize(fun, th.astype(np.float64), method="Powell",
                         options={"xtol": 0.02, "ftol": 1e-5, "maxfev": int(refine_evals)})
            stages["refine"].append({"step_shot": b, "objective": float(r.fun), "theta": [float(v) for v in r.x],
                                     "evaluations": int(r.nfev)})
            if best is None or r.fun < best[0]:
                best = (float(r.fun), b, np.asarray(r.x, dtype=np.float64))
    except Cancelled:
        cancelled = True
    moved = best is not None and best[0] < f_zero and not cancelled
    if moved:
        assert best is not None
        motion = step_motion(nshot, best[1], best[2], ref)
        res = correct_magnitude(m_np, si, motion, max_iter=correct_iter, device=device,
                                progress=(lambda i, n, msg: progress(total - 1, total, msg)) if progress else None,
                                cancel=cancel)
        image_out, corr_report = res.image, res.report
        cancelled = cancelled or bool(corr_report.get("cancelled"))
    else:
        motion = np.zeros((nshot, 3))
        image_out, corr_report = m_np.astype(np.float32), None
    if progress is not None:
        progress(total, total, "step autofocus: done")
    report = {
        "method": "step-autofocus",
        "parameters": {"model": "|F^H (M_A F x + M_B F T(theta) x)|, x real, one move", "max_rot": float(max_rot),
                       "max_trans": float(max_trans), "rot_step": float(rot_step), "trans_step": float(trans_step),
                       "coarse_rot_step": float(coarse_rot_step),
                       "top_steps": int(top_steps), "n_iter": int(n_iter), "refine_evals": int(refine_evals),
                       "correct_iter": int(correct_iter), "scale": scale, "device": str(device), "seed": int(seed)},
        "reference_shot": int(ref),
        "step_shot": int(best[1]) if moved else None,
        "theta_reference": [float(v) for v in best[2]] if moved else None,
        "objective": {"zero": f_zero, "best": float(best[0]) if best is not None else None},
        "stages": stages,
        "seconds": {"total": time.perf_counter() - t_start},
        "cancelled": cancelled,
        "correction": corr_report,
        "versions": {"mrideblur": __version__, "numpy": np.__version__, "torch": torch.__version__},
    }
    return Result(image=np.asarray(image_out, dtype=np.float32), motion=motion,
                  sens=np.ones((1,) + m_np.shape, dtype=np.complex64), report=report)


def run(image: np.ndarray, shot_index: np.ndarray, motion: None, options: StepAutofocusOptions,
        progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> Result:
    """The catalogue's ``step-autofocus``: :func:`step_autofocus` with ``options``."""
    if motion is not None:
        raise ValueError("motion: a motion search takes no motion table (method 'known-motion' does)")
    return step_autofocus(image, shot_index, options=options, progress=progress, cancel=cancel)
