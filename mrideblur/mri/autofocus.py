r"""Autofocus: per-shot rigid motion from a single image, without raw k-space.

A NIfTI study holds images, not the scanner's k-space. Autofocus (Atkinson et al., "Automatic
correction of motion artifacts in magnetic resonance images using an entropy focus
criterion", IEEE TMI 1997) forms k-space from the image, ``k = F image``, assigns its
phase-encode lines (axis -2) to shots with an assumed ordering, and searches the per-shot
motion ``theta`` whose correction gives the sharpest image: the one with the lowest
**gradient entropy** (``H = -sum p log p`` with ``p = |grad x| / sum |grad x|``; motion
ghosts and double edges spread the gradient and raise ``H``).

Two data models
---------------
``data="complex"``
    The image is the complex reconstruction of the corrupted scan (``image = F^H y``). Then
    ``k`` *is* the measured k-space and line ``j`` was acquired by shot ``s(j)``: the corrected
    image is ``x(theta) = sum_s T(theta_s)^H F^H M_s k`` (the adjoint of the single-coil
    model ``y_s = M_s F T(theta_s) x``; exact for translations).
``data="magnitude"``
    A magnitude image has lost the phase. For a real object ``x`` and a corruption ``c =
    sum_s F^H M_s F T(theta_s) x`` the stored image is ``|c| ~ Re(c)`` wherever the object is
    brighter than its ghosts, and ``F Re(c)`` at line ``k`` is the *average* of the shots that
    acquired ``k`` and ``-k``: the model keeps the symmetric weights
    ``W_s(k) = (M_s(k) + M_s(-k)) / 2`` and the corrected image is ``Re(sum_s T(theta_s)^H
    F^H W_s F image)``. What a magnitude image cannot give back: where the two shots of a
    line pair moved differently their data are averaged, and no choice of motion un-mixes
    them exactly (the README section on NIfTI studies gives the measured limits).

Estimation
----------
All shots' motion is optimised jointly by L-BFGS (torch autograd through the Fourier shears of
:mod:`mrideblur.mri.motion_torch`), coarse to fine on the central quarter, half and all of
k-space (translations scaled to each grid). The frame is that of the *reference shot*, the one
owning the k-space centre: it fixes what the image looks like (and a corrected NIfTI stays
registered with its source); motion is reported relative to shot 0 as CONVENTIONS.md asks.
Shots that own no line of a coarse level keep the motion of the nearest shot that does until a
finer level sees them.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch

from .. import __version__
from .align import rebase_motion, reference_shot
from .correct import Result
from .fourier import fft
from .shots import count_shots, validate_shot_index

__all__ = ["autofocus", "gradient_entropy", "DATA_MODELS", "shot_weights"]

DATA_MODELS = ("auto", "complex", "magnitude")
#: Smallest image side (pixels) of a coarse-to-fine level (as in aligned-SENSE).
MIN_LEVEL_SIZE = 48
ProgressFn = Callable[[int, int, str], None]


class _Cancelled(Exception):
    pass


def gradient_entropy(image: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Gradient entropy of a real 2D image ``(ny, nx)`` (a torch scalar, differentiable).

    ``g = sqrt(dy^2 + dx^2 + (eps max|x|)^2)`` from forward differences, ``p = g / sum g``,
    ``H = -sum p log p`` (nats). Invariant to the image's scale; lower is sharper.
    """
    scale = image.detach().abs().max().clamp_min(1e-30)
    x = image / scale
    gy = x[1:, :-1] - x[:-1, :-1]
    gx = x[:-1, 1:] - x[:-1, :-1]
    g = torch.sqrt(gy * gy + gx * gx + eps * eps)
    p = g / g.sum()
    return -(p * torch.log(p)).sum()


def shot_weights(shot_index: np.ndarray, nshot: int, data: str) -> np.ndarray:
    """Weights ``(nshot, ky)`` of each shot on each k-space line of the single-coil model.

    ``"complex"``: the shot masks ``M_s``; ``"magnitude"``: ``(M_s(k) + M_s(-k)) / 2`` with
    ``-k`` the line mirrored about the centre ``ky // 2`` (modulo ``ky``: for even ``ky`` the
    edge line is its own mirror). Lines not acquired weigh 0.
    """
    si = np.asarray(shot_index)
    masks = (si[None] == np.arange(nshot)[:, None]).astype(np.float64)
    if data == "complex":
        return masks
    n = si.shape[0]
    mirror = (2 * (n // 2) - np.arange(n)) % n
    return 0.5 * (masks + masks[:, mirror])


def _crop(n: int, frac: float) -> slice:
    m = n if frac >= 1 else min(n, max(int(round(n * frac)), 8))
    start = n // 2 - m // 2
    return slice(start, start + m)


def _levels(shape: tuple[int, int]) -> list[float]:
    f1 = min(1.0, max(0.25, MIN_LEVEL_SIZE / min(shape)))
    f2 = min(1.0, max(0.5, 2 * f1))
    return sorted({f1, f2, 1.0})


def _correct_image(k: torch.Tensor, w: torch.Tensor, theta: torch.Tensor, data: str) -> torch.Tensor:
    """``sum_s T(theta_s)^H F^H (w_s k)`` -> real part (magnitude data) or modulus (complex)."""
    from .fourier import ifft_torch
    from .motion_torch import rigid2d_torch

    per_shot = ifft_torch(w[:, :, None] * k[None], 2)
    x = rigid2d_torch(per_shot, theta, adjoint=True, per_shot=True).sum(0)
    return x.real if data == "magnitude" else torch.sqrt(x.real**2 + x.imag**2 + 1e-20)


def autofocus(
    image: np.ndarray,
    shot_index: np.ndarray,
    data: str = "auto",
    max_iter: int = 60,
    device: str = "cpu",
    seed: int = 0,
    progress: ProgressFn | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Result:
    """Estimate per-shot rigid motion from one image by gradient-entropy autofocus.

    Parameters
    ----------
    image : (ny, nx) real or complex array
        The motion-corrupted image; its phase-encode axis is axis 0 (``ky`` of
        CONVENTIONS.md), the readout axis 1.
    shot_index : (ny,) int
        Shot of every phase-encode line (``-1``: not acquired), e.g.
        :func:`mrideblur.mri.shots.make_shot_index` with the assumed ordering.
    data : {"auto", "complex", "magnitude"}
        Data model (module notes); ``"auto"``: ``"complex"`` for a complex image, else
        ``"magnitude"``.
    max_iter : int
        L-BFGS iterations at the coarsest level (finer levels get 2/3 of it).
    device : str
        torch device (``"cpu"``, ``"cuda"``).
    seed : int
        Recorded for reproducibility; the estimator is deterministic.
    progress : callable(step, total, message), optional
    cancel : callable() -> bool, optional
        Polled at every cost evaluation; True stops and returns the current estimate
        (``report["cancelled"] = True``).

    Returns
    -------
    Result
        ``image`` ``(ny, nx)``: float32 (magnitude data) or complex64, in the frame of the shot
        owning the k-space centre; ``motion`` ``(nshot, 3)`` ``rot_deg, ty, tx`` (degrees,
        pixels) relative to shot 0; ``sens`` ``(1, ny, nx)`` ones (single coil); ``report``:
        ``method``, ``parameters``, ``reference_shot``, ``metric`` (gradient entropy before
        and after), ``history`` (cost trace per level), ``seconds``, ``cancelled``,
        ``versions``.

    Raises
    ------
    ValueError
        Wrong shapes, non-finite values, an unknown data model, a shot map that does not fit
        the phase-encode axis.
    """
    x0 = np.asarray(image)
    if x0.ndim != 2 or min(x0.shape) < 8:
        raise ValueError(f"image: expected a 2D image (ny, nx) of at least 8x8 pixels, got shape {x0.shape}")
    if not np.issubdtype(x0.dtype, np.number) or not np.all(np.isfinite(x0)):
        raise ValueError("image: expected finite numeric values (NaN, infinite or non-numeric found)")
    if data not in DATA_MODELS:
        raise ValueError(f"data: expected one of {DATA_MODELS}, got {data!r}")
    if int(max_iter) != max_iter or max_iter < 1:
        raise ValueError(f"max_iter: expected an integer >= 1, got {max_iter}")
    si = validate_shot_index(shot_index, (x0.shape[0],))
    if data == "auto":
        data = "complex" if np.iscomplexobj(x0) else "magnitude"
    t_start = time.perf_counter()
    nshot = count_shots(si)
    ref = reference_shot(si)
    dev = torch.device(device)
    kfull = fft(x0.astype(np.complex128), 2)
    ny, nx = x0.shape
    theta = np.zeros((nshot, 3))  # in the reference shot's frame, pixels of the full grid
    levels = _levels((ny, nx))
    iters = [max_iter] + [max(1, (2 * max_iter) // 3)] * (len(levels) - 1)
    total = sum(iters)
    history: dict = {"levels": []}
    step = 0
    cancelled = False
    h_before = h_after = float("nan")
    for frac, n_it in zip(levels, iters):
        t0 = time.perf_counter()
        sy, sx = _crop(ny, frac), _crop(nx, frac)
        my, mx = sy.stop - sy.start, sx.stop - sx.start
        w_np = shot_weights(si, nshot, data)[:, sy]
        seen = w_np.sum(1) > 0
        free = seen.copy()
        free[ref] = False
        scale = np.array([1.0, my / ny, mx / nx])
        k = torch.as_tensor(kfull[sy, sx], device=dev).to(torch.complex64)
        w = torch.as_tensor(w_np, device=dev, dtype=torch.float32)
        base = torch.as_tensor(theta * scale, device=dev, dtype=torch.float32)
        idx = torch.as_tensor(np.flatnonzero(free), device=dev)
        p = base[idx].clone().requires_grad_(True)
        trace: list[float] = []

        def cost() -> torch.Tensor:
            th = base.index_put((idx,), p) if idx.numel() else base
            return gradient_entropy(_correct_image(k, w, th, data))

        with torch.no_grad():
            trace.append(float(cost()))
        if frac == levels[0]:
            h_before = trace[0]
        if idx.numel():
            opt = torch.optim.LBFGS([p], lr=1.0, max_iter=n_it, max_eval=int(1.5 * n_it), history_size=20,
                                    line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

            def closure() -> torch.Tensor:
                nonlocal step
                if cancel is not None and cancel():
                    raise _Cancelled
                opt.zero_grad()
                c = cost()
                c.backward()
                trace.append(float(c.detach()))
                step += 1
                if progress is not None:
                    progress(min(step, total), total, f"autofocus {mx}px: entropy {trace[-1]:.5g}")
                return c

            try:
                opt.step(closure)
            except _Cancelled:
                cancelled = True
            theta[free] = p.detach().cpu().double().numpy() / scale
        # shots this level did not see: the motion of the nearest shot (in shot order) it saw
        seen_ids = np.flatnonzero(seen)
        for s in np.flatnonzero(~seen):
            theta[s] = theta[seen_ids[np.argmin(np.abs(seen_ids - s))]]
        history["levels"].append({"size": [my, mx], "evaluations": len(trace) - 1, "entropy": trace,
                                  "seconds": time.perf_counter() - t0})
        step = sum(iters[: len(history["levels"])])
        if cancelled:
            break
    k = torch.as_tensor(kfull, device=dev).to(torch.complex64)
    w = torch.as_tensor(shot_weights(si, nshot, data), device=dev, dtype=torch.float32)
    with torch.no_grad():
        th = torch.as_tensor(theta, device=dev, dtype=torch.float32)
        from .fourier import ifft_torch
        from .motion_torch import rigid2d_torch

        xc = rigid2d_torch(ifft_torch(w[:, :, None] * k[None], 2), th, adjoint=True, per_shot=True).sum(0)
        h_after = float(gradient_entropy(xc.real if data == "magnitude" else xc.abs()))
        xc = xc.cpu().numpy()
    if data == "complex":
        out = xc.astype(np.complex64)
    else:  # a magnitude image stays non-negative
        out = (np.clip(xc.real, 0, None) if np.all(x0.real >= 0) else xc.real).astype(np.float32)
    motion = rebase_motion(theta, 0) if ref else theta.copy()
    motion[0] = 0.0
    report = {
        "method": "autofocus",
        "parameters": {"data": data, "metric": "gradient-entropy", "max_iter": int(max_iter), "device": str(device),
                       "seed": seed, "levels": [float(f) for f in levels]},
        "reference_shot": int(ref),
        "metric": {"gradient_entropy_before": h_before, "gradient_entropy_after": h_after},
        "history": history,
        "seconds": {"total": time.perf_counter() - t_start},
        "cancelled": cancelled,
        "versions": {"mrideblur": __version__, "numpy": np.__version__, "torch": torch.__version__},
    }
    return Result(image=out, motion=motion, sens=np.ones((1, ny, nx), dtype=np.complex64), report=report)
