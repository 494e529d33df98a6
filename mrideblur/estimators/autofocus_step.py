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

is lowest near the true move on development cases (MNI152 and Colin27 slices, 64 to 192
pixels, 16 sequential shots; ``lambda_TV`` = :data:`SEARCH_TV_WEIGHT`, lighter than the
reconstruction's, which would favour the smooth double image of zero motion), but in a narrow
basin: about +-0.5 to 1 px in translation and +-1.5 deg in rotation at 192x192, with zero motion
a local minimum, so a local search from zero does not find it. It is searched globally:

1. **candidates**: every step shot whose far side holds at least ``min_band`` of the acquired
   lines, one of each mirror pair. For a real object a move of the lines ``B`` and the same move
   of their mirror ``-B`` give the same magnitude image (``|z| = |conj z|`` and
   ``conj(F u)(k) = F u(-k)`` for real ``u``), so half of the shots need no search;
2. **coarse grid, per shot at its own level**: the magnitude image cropped to the central
   k-space (:func:`lowres_magnitude`) of the smallest size, at least :data:`MIN_LEVEL` lines,
   that shows :data:`VISIBLE_LINES` of the shot's moved lines (:func:`search_size`): a move in
   the centre of k-space is searched on 64 lines, one at the edge at full size. Rotations
   ``rot_step`` apart, translations ``trans_step`` (full-size pixels) apart over the box, each
   ``J`` from ``n_iter`` L-BFGS iterations on ``x``, all candidates of a shot as one batch;
3. **full resolution**, for the ``top_steps`` shots with the largest decrease of ``J`` from zero
   motion: a local grid (half steps) around the coarse best, then L-BFGS on ``x`` and ``theta``
   together (``refine_iter`` iterations);
4. **neighbours and mirrors**: the move found is scored, from the input alike, with the step one
   shot earlier and later and with its mirror shots (the mirror scores close to, not the same
   as, the move itself: the unpaired edge line and the priors break the tie), and the lowest
   kept.

The **confidence** of the result is ``J_0 - J``, the decrease of the objective from zero motion
(``J`` summed over pixels of the image scaled to unit peak). Below ``min_gain`` the input is
returned unchanged and the report says why. Measured in development (MNI152, Colin27): at most
0.03 on still 64x64 scans and 0.10 on still 192x192 ones; 0.28 to 2.4 where the move found was
right; 0.17 for a wrong move (a move in the outer shots, which are not searched, fitted by a
move at another shot: 2.6 dB worse than the input) and 0.27 for a poor one. The bar, 0.3 at 192x192 and
scaled with ``sqrt(ny nx)`` to other sizes (as the still scans' values scale), keeps the wrong
one out. Above it the image is
:func:`~mrideblur.estimators.autofocus_magnitude.correct_magnitude` with that motion. Measured on
images from a simulator that shares no code with this one, per anatomy (one held out) and
matrix size: ``benchmarks/autofocus_step.md``.

Limits: one move per scan (a drift or several moves are fitted by the best single step); moves
of fewer than ``min_band`` of the lines (the outer shots of a sequential scan: they cost under
about 1 dB, development measurement at 192x192) are not searched; motion larger than
``max_rot`` / ``max_trans`` is not searched; the magnitude image cannot tell a move of lines
from the same move of their mirror, so ``step_shot`` may be the mirror of the simulator's (the
report lists ``mirror_shots``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import itertools
import time
from collections.abc import Callable

import numpy as np
import torch

from .. import __version__
from .aligned_sense import rebase_motion, reference_shot
from .autofocus_magnitude import (
    check_magnitude_image,
    correct_magnitude,
    magnitude_scale,
    modulus_objective,
)
from .base import CancelFn, Cancelled, Options, ProgressFn, Result, check_cancel
from ..physics.fourier import fft, fft_torch, ifft, ifft_torch
from ..physics.motion_torch import rigid2d_torch
from ..physics.shots import count_shots, validate_shot_index

__all__ = ["StepAutofocusOptions", "lowres_magnitude", "run", "search_size", "step_autofocus", "step_candidates", "step_motion",
           "step_objective"]

#: ``lambda_TV`` of the search objective ``J``. Lower than the reconstruction's
#: (:data:`~mrideblur.estimators.autofocus_magnitude.TV_WEIGHT`): a heavier total variation
#: favours the smooth double image of zero motion over the true move.
SEARCH_TV_WEIGHT = 0.003

#: Smallest search level (phase-encode lines) and the moved lines it must show.
MIN_LEVEL = 64
VISIBLE_LINES = 16

#: Default ``min_gain``: the confidence a move needs (see :class:`StepAutofocusOptions`).
MIN_GAIN = 0.3

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
    return modulus_objective(_forward(x, theta, ma, mb), x, m, tv_weight=SEARCH_TV_WEIGHT)[0]


def _solve(m: torch.Tensor, theta: torch.Tensor, ma: torch.Tensor, mb: torch.Tensor, n_iter: int,
           x0: torch.Tensor | None = None, tick: Callable[[], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``J`` and ``x`` for a batch of motions ``theta (K, 3)``: L-BFGS on the sum of the
    candidates' objectives (they are independent) from ``x0`` (default ``m``)."""
    start = m if x0 is None else x0
    x = start.expand(theta.shape[0], *m.shape).clone().requires_grad_(True)
    _lbfgs([x], lambda: _objective(x, m, theta, ma, mb).sum(), n_iter, tick)
    with torch.no_grad():
        return _objective(x, m, theta, ma, mb), x.detach()


def _lbfgs(params: list[torch.Tensor], f: Callable[[], torch.Tensor], n_iter: int,
           tick: Callable[[], None] | None = None) -> None:
    """Minimise ``f()`` over ``params`` in place: L-BFGS with a strong-Wolfe line search."""
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=n_iter, max_eval=int(1.25 * n_iter), history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-14)

    def closure() -> torch.Tensor:
        if tick is not None:
            tick()
        opt.zero_grad()
        v = f()
        v.backward()
        return v

    opt.step(closure)


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


def _far_lines(si: np.ndarray, b: int, ref: int) -> np.ndarray:
    """Boolean ``(ny,)``: the lines on the far side of a move before shot ``b`` from ``ref``."""
    return (si >= b) if b > ref else ((si < b) & (si >= 0))


def _mirror(lines: np.ndarray) -> np.ndarray:
    """The line set ``ky -> -ky`` (centred k-space: index ``i -> 2 (ny // 2) - i``; the unpaired
    edge line of an even ``ny`` maps to nothing)."""
    ny = lines.shape[0]
    j = 2 * (ny // 2) - np.arange(ny)
    out = np.zeros_like(lines)
    ok = (j >= 0) & (j < ny)
    out[ok] = lines[j[ok]]
    return out


def _mirrored(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether line set ``b`` is (nearly) the mirror of ``a``: they differ by at most one line
    plus a tenth of the larger set (shot boundaries need not be symmetric about ``ky = 0``)."""
    mir = _mirror(a)
    return int((mir ^ b).sum()) <= 1 + 0.1 * max(int(mir.sum()), int(b.sum()))


def step_candidates(si: np.ndarray, ref: int, min_band: float) -> list[int]:
    """Step shots worth searching: the far side holds at least ``min_band`` of the acquired lines
    (and not all of them), and no candidate already listed moves the mirror of its lines.

    For a real object a move of the lines ``B`` and a move of their mirror ``-B`` by the same
    ``theta`` give the same magnitude image (``|z| = |conj z|`` and ``conj F u (k) = F u(-k)``):
    only one of each mirror pair is searched (halves a sequential search).
    """
    acquired = int((si >= 0).sum())
    kept: list[tuple[int, np.ndarray]] = []
    for b in sorted(range(1, count_shots(si)), key=lambda b: (b < ref, abs(b - ref))):
        far = _far_lines(si, b, ref)
        if not min_band * acquired <= far.sum() < acquired:
            continue
        if any(_mirrored(far, k) for _, k in kept):
            continue
        kept.append((b, far))
    return sorted(b for b, _ in kept)


def search_size(far: np.ndarray, ny: int, min_size: int = MIN_LEVEL, visible: int = VISIBLE_LINES) -> int:
    """The smallest level (phase-encode lines, a multiple of 16, at least ``min_size``, at most
    ``ny``) whose central k-space crop holds ``visible`` lines of ``far``."""
    c = ny // 2
    dist = np.sort(np.abs(np.flatnonzero(far) - c))
    need = dist[min(visible, len(dist)) - 1] + 1 if len(dist) else ny
    size = max(min_size, int(np.ceil(2 * need / 16) * 16))
    return int(min(ny, size))


def lowres_magnitude(m: np.ndarray, si: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The magnitude image at ``size`` phase-encode lines: the central k-space crop of ``F m``
    (readout cropped by the same factor, so pixels stay square), back to a magnitude image.

    Returns ``(m_low (size, nx_low), si_low (size,), factor)``, ``factor = size / ny`` (pixels
    scale by it). ``m`` itself when ``size == ny``.
    """
    ny, nx = m.shape
    if size >= ny:
        return m, si, 1.0
    f = size / ny
    sx = max(8, int(round(nx * f / 2)) * 2)
    y0, x0 = ny // 2 - size // 2, nx // 2 - sx // 2
    k = fft(m.astype(np.complex128))[y0:y0 + size, x0:x0 + sx]
    return np.abs(ifft(k)) * np.sqrt(size * sx / (ny * nx)), si[y0:y0 + size], f


def _joint_refine(m: torch.Tensor, theta0: np.ndarray, x0: torch.Tensor, ma: torch.Tensor, mb: torch.Tensor,
                  n_iter: int, tick: Callable[[], None] | None = None) -> tuple[float, np.ndarray]:
    """L-BFGS on the image and the move together, from a grid point: ``(J, theta)``."""
    x = x0.clone()[None].requires_grad_(True)
    th = torch.as_tensor(np.asarray(theta0, dtype=np.float32)[None], device=m.device).clone().requires_grad_(True)
    _lbfgs([x, th], lambda: _objective(x, m, th, ma, mb).sum(), n_iter, tick)
    with torch.no_grad():
        return float(_objective(x, m, th, ma, mb)[0]), th.detach().cpu().numpy()[0].astype(np.float64)


@dataclass
class StepAutofocusOptions(Options):
    """Options of the step autofocus: the search box, its grids, the inner solves and the
    confidence a correction needs.

    Attributes
    ----------
    max_rot, max_trans : float
        Search range, degrees and pixels (each of ``rot, ty, tx`` within +-).
    rot_step, trans_step : float
        Grid spacing of stage 1 (degrees, pixels of the full image); the true move's basin is
        about +-1.5 deg and +-0.5..1 px wide (measured at 192x192), so coarser translation grids
        miss it.
    min_band : float
        Least fraction of the acquired lines a move must displace to be searched (moves of
        fewer lines cost under about 1 dB: benchmarks/autofocus.md).
    top_steps : int
        Step shots carried from stage 1 to the full-resolution stages.
    n_iter : int
        L-BFGS iterations of each stage-1 inner solve (stage 2 uses 1.5x).
    refine_iter : int
        L-BFGS iterations of the joint image-and-move refinement (stage 3).
    min_gain : float
        Least decrease of ``J`` from zero motion to the move found, ``J_0 - J`` (``J`` in units
        of squared intensity of an image scaled to unit peak, summed over pixels), for the image
        to be corrected, for a 192x192 image; the bar scales with ``sqrt(ny nx) / 192`` (the
        spurious decrease on still scans does: 0.03 at 64x64, 0.10 at 192x192). Below it the
        input comes back unchanged. Measured: module notes.
    correct_iter : int
        ``max_iter`` of the final :func:`correct_magnitude`.
    device : str
        torch device (``"cpu"``, ``"cuda"``).
    seed : int
        Recorded for reproducibility; the search is deterministic.
    """

    max_rot: float = 3.0
    max_trans: float = 3.0
    rot_step: float = 2.0
    trans_step: float = 1.0
    min_band: float = 0.25
    top_steps: int = 2
    n_iter: int = 40
    refine_iter: int = 60
    min_gain: float = MIN_GAIN
    correct_iter: int = 150
    device: str = "cpu"
    seed: int = 0


def _grid(max_v: float, step: float) -> np.ndarray:
    k = int(np.ceil(max_v / step - 1e-9))
    return np.unique(np.clip(np.arange(-k, k + 1) * step, -max_v, max_v))


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
        k-space centre), same intensity scale as the input — the input itself when no move was
        found with confidence; ``motion`` ``(nshot, 3)`` ``rot_deg, ty, tx`` relative to shot 0;
        ``sens`` ``(1, ny, nx)`` ones; ``report``: ``method`` (``"step-autofocus"``),
        ``parameters``, ``reference_shot``, ``step_shot`` (first shot after the move, or None),
        ``mirror_shots`` (step shots whose moved lines mirror the found ones: a magnitude image
        cannot tell them apart), ``theta_reference`` (the move in the reference shot's frame),
        ``objective`` (``zero``, ``best``), ``gain`` (``J_0 - J``), ``gain_bar`` (the bar at this
        size), ``corrected``,
        ``reason``, ``stages`` (per step shot and stage: level size, best ``J`` and move),
        ``seconds``, ``cancelled``, ``versions``, ``correction`` (the report of
        :func:`correct_magnitude`).

    Raises
    ------
    ValueError
        Not a finite real 2D image of at least 8x8 pixels, an all-zero image, a shot map that
        does not fit axis 0 or has fewer than two shots, non-positive ranges or steps.
    """
    o = options if options is not None else StepAutofocusOptions.from_kwargs("step-autofocus", **kwargs)
    m_np = check_magnitude_image(image, "use mrideblur.estimators.autofocus.autofocus")
    si = validate_shot_index(shot_index, (m_np.shape[0],))
    nshot = count_shots(si)
    if nshot < 2:
        raise ValueError(f"shot_index: a step needs at least two shots, got {nshot}")
    for name, v in (("max_rot", o.max_rot), ("max_trans", o.max_trans), ("rot_step", o.rot_step),
                    ("trans_step", o.trans_step)):
        if not np.isfinite(v) or v <= 0:
            raise ValueError(f"{name}: expected a finite value > 0, got {v}")
    if not 0 <= o.min_band < 1 or not np.isfinite(o.min_gain) or o.min_gain < 0:
        raise ValueError(f"min_band, min_gain: expected 0 <= min_band < 1 and min_gain >= 0, got {o.min_band}, "
                         f"{o.min_gain}")
    for name, v in (("top_steps", o.top_steps), ("n_iter", o.n_iter), ("refine_iter", o.refine_iter),
                    ("correct_iter", o.correct_iter)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {v}")
    t_start = time.perf_counter()
    dev = torch.device(o.device)
    m_full_np = m_np.astype(np.float64)
    m = torch.as_tensor(m_full_np / magnitude_scale(m_full_np), dtype=torch.float32, device=dev)
    ny = m_np.shape[0]
    ref = reference_shot(si)
    steps = step_candidates(si, ref, o.min_band)
    trans, rots = _grid(o.max_trans, o.trans_step), _grid(o.max_rot, o.rot_step)
    grid = np.array([[r, ty, tx] for r, ty, tx in itertools.product(rots, trans, trans)])
    if not np.any(np.all(grid == 0, axis=1)):
        grid = np.vstack([np.zeros(3), grid])
    i_zero = int(np.flatnonzero(np.all(grid == 0, axis=1))[0])
    local = np.array([[r, ty, tx] for r in (-o.rot_step / 2, 0, o.rot_step / 2)
                      for ty in (-o.trans_step / 2, 0, o.trans_step / 2)
                      for tx in (-o.trans_step / 2, 0, o.trans_step / 2)])
    n_b = min(int(o.top_steps), len(steps))
    total = (len(steps) + n_b) * int(1.2 * o.n_iter) + n_b * int(1.5 * o.n_iter * 1.2 + 1.25 * o.refine_iter) \
        + 3 * int(1.2 * o.refine_iter) + 1
    done = 0

    def tick(msg: str) -> Callable[[], None]:
        def f() -> None:
            nonlocal done
            check_cancel(cancel)
            done += 1
            if progress is not None:
                progress(min(done, total - 1), total, msg)
        return f

    stages: dict[str, list] = {"coarse_grid": [], "local_grid": [], "refine": [], "neighbours": []}
    cancelled = False
    f_zero = float("nan")
    best: tuple[float, int, np.ndarray] | None = None
    try:
        stage_a = []
        for b in steps:
            far = _far_lines(si, b, ref)
            size = search_size(far, ny)
            ml_np, sil, fac = lowres_magnitude(m_full_np, si, size)
            ml = torch.as_tensor(ml_np / magnitude_scale(ml_np), dtype=torch.float32, device=dev)
            ma, mb = _line_masks(sil, b, ref, dev)
            g = torch.as_tensor(grid * [1.0, fac, fac], dtype=torch.float32, device=dev)
            fs = []
            for i in range(0, len(g), max(1, BATCH_PIXELS // int(ml.numel()))):
                fs.append(_solve(ml, g[i:i + max(1, BATCH_PIXELS // int(ml.numel()))], ma, mb, int(o.n_iter),
                                 tick=tick(f"step autofocus: step at shot {b}, {size} lines"))[0])
            f = torch.cat(fs).cpu().numpy()
            i = int(np.argmin(f))
            gain = float((f[i_zero] - f[i]) / abs(f[i_zero]))
            stage_a.append((gain, b, grid[i]))
            stages["coarse_grid"].append({"step_shot": b, "size": size, "gain": gain, "theta": grid[i].tolist()})
        stage_a.sort(key=lambda r: -r[0])
        for _, b, th in stage_a[:n_b]:
            ma, mb = _line_masks(si, b, ref, dev)
            cand = np.vstack([np.zeros(3), th + local])
            f, xs = _solve_chunked(m, torch.as_tensor(cand, dtype=torch.float32, device=dev), ma, mb,
                                   int(1.5 * o.n_iter), tick(f"step autofocus: full resolution, step at shot {b}"))
            f = f.cpu().numpy()
            if not np.isfinite(f_zero):
                f_zero = float(f[0])
            i = 1 + int(np.argmin(f[1:]))
            stages["local_grid"].append({"step_shot": b, "objective": float(f[i]), "theta": cand[i].tolist()})
            fr, thr = _joint_refine(m, cand[i], xs[i], ma, mb, int(o.refine_iter),
                                    tick(f"step autofocus: refining the move at shot {b}"))
            if not (np.all(np.abs(thr[1:]) <= o.max_trans + 1) and abs(thr[0]) <= o.max_rot + 1) or not fr < f[i]:
                fr, thr = float(f[i]), cand[i]  # the refinement left the box or did not help
            stages["refine"].append({"step_shot": b, "objective": fr, "theta": [float(v) for v in thr]})
            if best is None or fr < best[0]:
                best = (fr, b, thr)
        if best is not None:
            # the grid stages may lock on the right move one shot off, and a move of the mirrored
            # lines scores alike but not the same (the unpaired edge line, the priors): compare
            # the neighbours and the mirrors at the move found, each solved alike from the input
            b0, th0 = best[1], best[2]
            stages["neighbours"] = []
            far0 = _far_lines(si, b0, ref)
            mirror_b = [b for b in range(1, nshot) if b != b0 and _mirrored(far0, _far_lines(si, b, ref))]
            for b in sorted({b0 - 1, b0, b0 + 1, *mirror_b}):
                far = _far_lines(si, b, ref) if 1 <= b < nshot else None
                if far is None or not 0 < far.sum() < int((si >= 0).sum()):
                    continue
                ma, mb = _line_masks(si, b, ref, dev)
                f, _ = _solve(m, torch.as_tensor(th0[None], dtype=torch.float32, device=dev), ma, mb,
                              int(o.refine_iter), tick=tick(f"step autofocus: the move at shot {b} or its neighbours"))
                stages["neighbours"].append({"step_shot": b, "objective": float(f[0])})
            nb = min(stages["neighbours"], key=lambda r: r["objective"])
            if nb["step_shot"] != b0:
                best = (min(best[0], nb["objective"]), int(nb["step_shot"]), th0)
    except Cancelled:
        cancelled = True
    gain = float(f_zero - best[0]) if best is not None and np.isfinite(f_zero) else 0.0
    bar = float(o.min_gain) * np.sqrt(m_np.size) / 192.0  # the bar of a 192x192 image, scaled
    moved = best is not None and not cancelled and gain >= bar
    if cancelled:
        reason = "cancelled: the input is returned unchanged"
    elif best is None:
        reason = "no step shot moves enough lines to be searched (min_band)"
    elif not moved:
        reason = (f"no move found with confidence: the best move lowers J by {gain:.3f} from zero motion, below "
                  f"min_gain {o.min_gain:.3f}; the input is returned unchanged")
    else:
        reason = f"a move at shot {best[1]} lowers J by {gain:.3f} from zero motion (bar {bar:.3f})"
    corr_report = None
    if moved:
        assert best is not None
        motion = step_motion(nshot, best[1], best[2], ref)
        res = correct_magnitude(m_np, si, motion, max_iter=o.correct_iter, device=o.device,
                                progress=(lambda i, n, msg: progress(total - 1, total, msg)) if progress else None,
                                cancel=cancel)
        image_out, corr_report = res.image, res.report
        cancelled = cancelled or bool(corr_report.get("cancelled"))
    else:
        motion = np.zeros((nshot, 3))
        image_out = m_np.astype(np.float32)
    if progress is not None:
        progress(total, total, "step autofocus: done")
    mirrors: list[int] = []
    if moved:
        assert best is not None
        far = _far_lines(si, best[1], ref)
        mirrors = [b for b in range(1, nshot) if b != best[1] and _mirrored(far, _far_lines(si, b, ref))]
    report = {
        "method": "step-autofocus",
        "parameters": {"model": "|F^H (M_A F x + M_B F T(theta) x)|, x real, one move", **o.as_dict(),
                       "search_tv_weight": SEARCH_TV_WEIGHT},
        "reference_shot": int(ref),
        "step_shot": int(best[1]) if moved else None,
        "mirror_shots": mirrors,
        "theta_reference": [float(v) for v in best[2]] if moved else None,
        "objective": {"zero": f_zero, "best": float(best[0]) if best is not None else None},
        "gain": gain,
        "gain_bar": bar,
        "corrected": bool(moved),
        "reason": reason,
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
