r"""Correct a motion-corrupted **magnitude** image when the per-shot motion is known.

A magnitude image (what a NIfTI study holds) is the modulus of the corrupted complex image. For
an object that is real before the modulus (the usual MR assumption behind homodyne and partial
Fourier; exact for magnitude images simulated from real objects), with one coil of ones,

.. math::

    m = \Big|\sum_s F^H M_s F\, T(\theta_s)\, x\Big| + n = |A(\theta) x| + n,
    \qquad x \in \mathbb{R}^{n_y \times n_x},

with ``F`` the centred orthonormal DFT, ``M_s`` the phase-encode lines of shot ``s`` and
``T(theta_s)`` its rigid motion (docs/conventions.md). Treating ``F m`` as k-space, as the
line-by-line correction of :mod:`mrideblur.estimators.autofocus` does, is wrong for a magnitude image:
line ``k`` of ``F m`` holds about the average of the shots that acquired ``k`` and ``-k``. The
model above keeps the modulus where it belongs and un-mixes them. :func:`correct_magnitude`
estimates ``x`` by

.. math::

    \hat x = \arg\min_x \sum_{\text{pixels}} \big(\sqrt{|A x|^2 + \epsilon} - m / s\big)^2
        + \lambda_{TV}\, \mathrm{TV}_\delta(x) + \lambda_1 \sum \sqrt{x^2 + \eta}
        + \nu \sum \min(x, 0)^2,

``s`` the 99.5th percentile of ``m`` (so the weights are per pixel of an image of unit peak),
``TV_delta`` the isotropic total variation smoothed by ``delta = 1e-3``, ``epsilon = 1e-8``,
``eta = 1e-6``, ``nu = 10`` (a soft ``x >= 0``); the result is ``s max(x, 0)``.

The count of unknowns equals the count of data (``ny nx`` real values each), so the priors
(non-negativity, a sparse object on a dark background, total variation) pick the solution, and
the problem is non-convex: ``x -> |A x|`` has local minima, especially when strong ghosts
(interleaved orderings) have to be moved off the background. L-BFGS runs from ``x = m / s``
with the final weights, and from two continuations that start with a larger ``lambda_1`` (10x
and 30x, stepped down by about 3x per stage to the final value); the start with the lowest
final objective is kept. Measured on the foreign simulator of ``benchmarks/autofocus.py``
(96x96, 16 shots, 1% noise), with the true motion: see ``benchmarks/autofocus.md``.

What it does not do: estimate the motion. In that model every motion fits the data exactly
(as many unknowns as data), so the motion is decided by the priors alone; the objective is
lowest at the true motion along the line from zero to it, but in a basin about a quarter of
the motion wide, with zero motion a local minimum, and with free per-shot motion the searches
end at wrong motions that score better than the true one (:mod:`mrideblur.estimators.autofocus`,
"What an image can and cannot give back"). With one move per scan the same objective does
rank the true motion first: :mod:`mrideblur.estimators.autofocus_step` searches it globally.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import time
from collections.abc import Callable

import numpy as np
import torch

from .. import __version__
from .aligned_sense import rebase_motion, reference_shot
from .base import CancelFn, Cancelled, Options, ProgressFn, Result, check_cancel
from ..physics.fourier import fft_torch, ifft_torch
from ..physics.motion_torch import rigid2d_torch
from ..physics.shots import count_shots, validate_shot_index

__all__ = ["L1_WEIGHT", "TV_WEIGHT", "MagnitudeOptions", "correct_magnitude", "run", "magnitude_forward"]

#: Weight of the total variation (per pixel of an image scaled to unit peak).
TV_WEIGHT = 0.01
#: Weight of the (smoothed) l1 norm of the object: a dark background.
L1_WEIGHT = 0.01
#: Weight of the penalty on negative values.
NEGATIVE_WEIGHT = 10.0
#: Start values of ``l1_weight`` as multiples of the final one: 1 (no continuation), then two
#: continuations stepped down by ~3x per stage.
CONTINUATIONS = ((1.0,), (10.0, 3.0, 1.0), (30.0, 10.0, 3.0, 1.0))
_EPS_MOD = 1e-8
_EPS_L1 = 1e-6
_EPS_TV = 1e-3




def magnitude_forward(x: torch.Tensor, theta: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``A(theta) x = sum_s F^H M_s F T(theta_s) x`` (complex, before the modulus).

    Parameters
    ----------
    x : (ny, nx) real or complex tensor
    theta : (nshot, 3) real tensor, ``rot_deg, ty, tx`` (degrees, pixels) per shot
    masks : (nshot, ny) real tensor, 1 on the lines of each shot

    Returns
    -------
    (ny, nx) complex tensor, differentiable in ``x`` and ``theta``.
    """
    return ifft_torch((fft_torch(rigid2d_torch(x, theta), 2) * masks[:, :, None]).sum(0), 2)


def _tv(x: torch.Tensor) -> torch.Tensor:
    gy = x[..., 1:, :-1] - x[..., :-1, :-1]
    gx = x[..., :-1, 1:] - x[..., :-1, :-1]
    return torch.sqrt(gy * gy + gx * gx + _EPS_TV * _EPS_TV).sum((-2, -1))


def modulus_objective(a: torch.Tensor, x: torch.Tensor, m: torch.Tensor, tv_weight: float = TV_WEIGHT,
                      l1_weight: float = L1_WEIGHT) -> tuple[torch.Tensor, torch.Tensor]:
    """The objective of the module notes and its data term, given ``a = A x`` (complex) for the
    real image ``x`` and the scaled magnitude ``m``; summed over the last two axes, so a batch
    ``(K, ny, nx)`` of candidates gives ``(K,)`` values."""
    data = ((torch.sqrt(a.real**2 + a.imag**2 + _EPS_MOD) - m) ** 2).sum((-2, -1))
    prior = (tv_weight * _tv(x) + l1_weight * torch.sqrt(x * x + _EPS_L1).sum((-2, -1))
             + NEGATIVE_WEIGHT * (torch.relu(-x) ** 2).sum((-2, -1)))
    return data + prior, data


def _objective(x: torch.Tensor, m: torch.Tensor, theta: torch.Tensor, masks: torch.Tensor, tv_weight: float,
               l1_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    return modulus_objective(magnitude_forward(x, theta, masks), x, m, tv_weight, l1_weight)


def _lbfgs_stage(x0: torch.Tensor, m: torch.Tensor, theta: torch.Tensor, masks: torch.Tensor, tv_weight: float,
                 l1_weight: float, n_it: int, tick: Callable[[torch.Tensor], None], evals: list[int]) -> torch.Tensor:
    """L-BFGS on the objective from ``x0`` (``n_it`` iterations); returns the new ``x``
    (detached). ``tick(f)`` runs at every evaluation (it may raise :class:`Cancelled`, which is
    re-raised carrying the current ``x``); ``evals[0]`` counts evaluations."""
    x = x0.detach().clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=n_it, max_eval=int(1.5 * n_it), history_size=30,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-14)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        f, _ = _objective(x, m, theta, masks, tv_weight, l1_weight)
        tick(f.detach())
        f.backward()
        evals[0] += 1
        return f

    try:
        opt.step(closure)
    except Cancelled:
        raise Cancelled(x.detach()) from None
    return x.detach()


def check_magnitude_image(image: np.ndarray, complex_hint: str) -> np.ndarray:
    """The image as an array, or ``ValueError`` unless it is a finite real 2D image of at least
    8x8 pixels (``complex_hint`` says what to use for a complex one)."""
    m = np.asarray(image)
    if m.ndim != 2 or min(m.shape) < 8:
        raise ValueError(f"image: expected a 2D image (ny, nx) of at least 8x8 pixels, got shape {m.shape}")
    if np.iscomplexobj(m):
        raise ValueError(f"image: expected a real (magnitude) image, got complex values; for a complex image "
                         f"{complex_hint}")
    if not np.issubdtype(m.dtype, np.number) or not np.all(np.isfinite(m)):
        raise ValueError("image: expected finite numeric values (NaN, infinite or non-numeric found)")
    return m


def magnitude_scale(m: np.ndarray) -> float:
    """The 99.5th percentile of ``m`` (its maximum if that is 0): the models run on ``m / s``,
    an image of about unit peak, so their weights are per pixel of such an image."""
    s = float(np.percentile(m, 99.5))
    if not s > 0:
        s = float(np.abs(m).max())
    if not s > 0:
        raise ValueError("image: all zero, nothing to correct")
    return s


@dataclass
class MagnitudeOptions(Options):
    """Options of the known-motion modulus-model reconstruction (the motion itself is an argument).

    Attributes
    ----------
    tv_weight, l1_weight : float
        ``lambda_TV`` and the final ``lambda_1`` of the module notes (per pixel of an image of
        unit peak).
    max_iter : int
        L-BFGS iterations of the final stage of each start (earlier continuation stages get
        half of it).
    device : str
        torch device (``"cpu"``, ``"cuda"``).
    """

    tv_weight: float = TV_WEIGHT
    l1_weight: float = L1_WEIGHT
    max_iter: int = 300
    device: str = "cpu"


def correct_magnitude(image: np.ndarray, shot_index: np.ndarray, motion: np.ndarray,
                      options: MagnitudeOptions | None = None, progress: ProgressFn | None = None,
                      cancel: CancelFn | None = None, **kwargs: Any) -> Result:
    """Undo known per-shot rigid motion in a magnitude image with the modulus forward model.

    Parameters
    ----------
    image : (ny, nx) real array
        The motion-corrupted magnitude image (phase-encode axis 0, readout axis 1). Negative
        values are allowed (they are data), complex input is refused: for a complex image the
        model is linear and :func:`mrideblur.estimators.sense.sense_recon` with one coil of ones is the
        exact correction.
    shot_index : (ny,) int
        Shot of every phase-encode line (``-1``: not acquired).
    motion : (nshot, 3) float
        ``rot_deg, ty, tx`` per shot (degrees, pixels), relative to shot 0 (docs/conventions.md), e.g.
        from a navigator, an external tracker or the raw-data estimate of the same scan.
    options : MagnitudeOptions, optional
        The method's options (defaults when None); keyword arguments build it instead.
    progress : callable(step, total, message), optional
    cancel : callable() -> bool, optional
        Polled at every objective evaluation; True stops and returns the best estimate so far
        (``report["cancelled"] = True``).
    **kwargs
        Fields of the options, when ``options`` is not given.

    Returns
    -------
    Result
        ``image`` ``(ny, nx)`` float32, ``>= 0``, in the frame of the shot owning the k-space
        centre (where :func:`mrideblur.estimators.autofocus.autofocus` reports too), same intensity
        scale as the input; ``motion`` the given motion (float64, shot 0 zero); ``sens``
        ``(1, ny, nx)`` ones; ``report``: ``method`` (``"magnitude-model"``), ``parameters``,
        ``reference_shot``, ``starts`` (per start: the ``l1_weight`` schedule, final objective,
        data term, evaluations), ``chosen_start``, ``relative_residual``
        (``|| |A x| - m || / ||m||`` of the result), ``seconds``, ``cancelled``, ``versions``.

    Raises
    ------
    ValueError
        Not a finite real 2D image of at least 8x8 pixels, an all-zero image, a shot map that
        does not fit axis 0, a motion table of the wrong shape or with non-finite values,
        negative or non-finite weights, ``max_iter < 1``.
    """
    o = options if options is not None else MagnitudeOptions.from_kwargs("known-motion", **kwargs)
    tv_weight, l1_weight, max_iter, device = o.tv_weight, o.l1_weight, o.max_iter, o.device
    m_np = check_magnitude_image(image, "the single-coil model is linear (use mrideblur.estimators.sense.sense_recon "
                                        "with one coil of ones)")
    si = validate_shot_index(shot_index, (m_np.shape[0],))
    nshot = count_shots(si)
    mo = np.asarray(motion, dtype=np.float64)
    if mo.shape != (nshot, 3) or not np.all(np.isfinite(mo)):
        raise ValueError(f"motion: expected finite values of shape ({nshot}, 3) (rot_deg, ty, tx per shot), got shape {mo.shape}")
    for name, w in (("tv_weight", tv_weight), ("l1_weight", l1_weight)):
        if not np.isfinite(w) or w < 0:
            raise ValueError(f"{name}: expected a finite weight >= 0, got {w}")
    if int(max_iter) != max_iter or max_iter < 1:
        raise ValueError(f"max_iter: expected an integer >= 1, got {max_iter}")
    scale = magnitude_scale(m_np)
    t_start = time.perf_counter()
    ref = reference_shot(si)
    dev = torch.device(device)
    m = torch.as_tensor(m_np / scale, dtype=torch.float32, device=dev)
    theta = torch.as_tensor(rebase_motion(mo, ref), dtype=torch.float32, device=dev)
    masks = torch.as_tensor((si[None] == np.arange(nshot)[:, None]).astype(np.float32), device=dev)
    stages = [(factors, [max(1, int(max_iter) // 2)] * (len(factors) - 1) + [int(max_iter)]) for factors in CONTINUATIONS]
    total = sum(sum(iters) for _, iters in stages)
    step = 0

    def tick(start: int, f: torch.Tensor) -> None:
        nonlocal step
        check_cancel(cancel)
        step += 1
        if progress is not None:
            progress(min(step, total), total, f"magnitude model, start {start + 1}/{len(stages)}: objective {float(f):.5g}")

    starts: list[dict] = []
    best: tuple[float, torch.Tensor, int] | None = None
    cancelled = False
    for i, (factors, iters) in enumerate(stages):
        x = m.clone()
        evals = [0]
        try:
            for factor, n_it in zip(factors, iters):
                x = _lbfgs_stage(x, m, theta, masks, tv_weight, l1_weight * factor, n_it, lambda f, i=i: tick(i, f), evals)
        except Cancelled as stop:
            cancelled = True
            x = stop.args[0] if stop.args else x
        with torch.no_grad():
            f, data = _objective(x, m, theta, masks, tv_weight, l1_weight)
        starts.append({"l1_weights": [l1_weight * f_ for f_ in factors], "objective": float(f), "data": float(data),
                       "evaluations": evals[0]})
        if best is None or float(f) < best[0]:
            best = (float(f), x, i)
        if cancelled:
            break
    assert best is not None
    x_best = best[1].clamp_min(0)
    with torch.no_grad():
        a = magnitude_forward(x_best, theta, masks)
        resid = float(torch.linalg.vector_norm(a.abs() - m) / torch.linalg.vector_norm(m))
    out = (x_best.cpu().numpy() * scale).astype(np.float32)
    motion_out = mo.copy()
    motion_out[0] = 0.0
    report = {
        "method": "magnitude-model",
        "parameters": {"model": "|sum_s F^H M_s F T(theta_s) x|, x real", "tv_weight": float(tv_weight),
                       "l1_weight": float(l1_weight), "negative_weight": NEGATIVE_WEIGHT, "max_iter": int(max_iter),
                       "continuations": [list(c) for c in CONTINUATIONS], "scale": scale, "device": str(device)},
        "reference_shot": int(ref),
        "starts": starts,
        "chosen_start": int(best[2]),
        "relative_residual": resid,
        "seconds": {"total": time.perf_counter() - t_start},
        "cancelled": cancelled,
        "versions": {"mrideblur": __version__, "numpy": np.__version__, "torch": torch.__version__},
    }
    return Result(image=out, motion=motion_out, sens=np.ones((1,) + m_np.shape, dtype=np.complex64), report=report)


def run(image: np.ndarray, shot_index: np.ndarray, motion: np.ndarray, options: MagnitudeOptions,
        progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> Result:
    """The catalogue's ``known-motion``: :func:`correct_magnitude` with the motion table
    ``(nshot, 3)`` ``[rot_deg, ty, tx]`` and ``options``."""
    return correct_magnitude(image, shot_index, motion, options=options, progress=progress, cancel=cancel)
