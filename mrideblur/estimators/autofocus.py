r"""Autofocus: per-shot rigid motion from a single image, without raw k-space.

A NIfTI study holds images, not the scanner's k-space. Autofocus (Atkinson et al., "Automatic
correction of motion artifacts in magnetic resonance images using an entropy focus
criterion", IEEE TMI 1997) forms single-coil k-space from the image, ``k = F image``, assigns
its phase-encode lines (axis -2) to shots by an assumed ordering, and searches the per-shot
motion ``theta`` whose correction gives the sharpest image, the one with the lowest
**gradient entropy** ``H = -sum p log p``, ``p = |grad x| / sum |grad x|`` (ghosts and double
edges spread the gradient and raise ``H``). The corrected image is the least-squares solution
of the single-coil model ``k_s = M_s F T(theta_s) x`` (:func:`mrideblur.estimators.sense.sense_recon`
with one coil of ones), whose first step is the adjoint ``sum_s T(theta_s)^H F^H M_s k`` used
inside the search.

What an image can and cannot give back
--------------------------------------
For a **complex** image (the phase of the reconstruction kept), ``F image`` *is* the measured
single-coil k-space and the model is exact: autofocus recovers the motion up to what the
metric can see. A **magnitude** image has lost the phase, and for a real object ``F |c|``
(``c`` the corrupted complex image) holds at line ``k`` about the *average* of what the shots
that acquired ``k`` and ``-k`` saw, since ``|c| ~ Re(c)`` where the object outshines its ghosts
and ``F Re(c)(k) = (C(k) + conj C(-k)) / 2``. Where those two shots moved differently their
data are mixed, and no per-shot motion applied line by line to ``F |c|`` un-mixes them: with
the *true* motion that correction changes a magnitude image by -0.7 dB (sequential step) and
+1.9 dB (interleaved random), medians of ``benchmarks/autofocus.md``.

The modulus belongs in the forward model instead: ``m = |sum_s F^H M_s F T(theta_s) x|`` with
``x`` real (:mod:`mrideblur.estimators.autofocus_magnitude`). With the *true* motion it does un-mix
the shots (:func:`~mrideblur.estimators.autofocus_magnitude.correct_magnitude`;
``benchmarks/autofocus.md``, 96x96, 16 shots, medians over four anatomies and four seeds):
+10.3 dB and 0.78 of the lost PSNR for sequential step motion (12/16 cases >= 0.5; the
Shepp-Logan phantom only 0.18-0.29), +21.7 dB and 0.96 for interleaved random motion (13/16),
about 20 s per image on one thread. A smooth object phase of up to 1.5 rad (moving with the
object) barely changes that (-0.3 and -0.6 dB on two 96x96 sequential-step cases), and
estimating a second-order polynomial phase as well gains about 0.2 dB, so ``x`` stays real.

What a magnitude image cannot give back is the motion. In the modulus model the data (``ny nx``
real values) are fitted exactly by some real ``x`` for *every* motion, so only priors on ``x``
can decide it, and the ones measured do not (96x96, 16 shots, sequential step, four anatomies):

* the objective (data + TV + l1 + ``x >= 0``, minimised over ``x``) is lowest at the true motion
  along the line from zero to it, but the basin is about a quarter of the motion wide and zero
  motion is a local minimum; setting one of ``rot, ty, tx`` to its true value alone raises it;
* joint L-BFGS over ``(x, theta)``, L-BFGS over ``theta`` with ``x`` re-solved at every step
  (with and without a support mask, three random starts, the temporal TV prior), and the
  gradient entropy of the re-solved ``x`` with implicit derivatives all end at zero motion or at
  wrong motion (rotation / translation RMSE 1-2.8 deg / 0.8-2.2 px, against 1.2-2.2 deg /
  0.9-1.8 px for zero motion), recovering -0.37 to +0.02 of the lost PSNR;
* with free per-shot motion some of those end points score *better* than the true motion does
  with the same inner solver (axial seed 0: gradient entropy 7.47 against 7.50, support-masked
  objective 1.32 against 1.38), so the fault is in the criterion, not only in the optimiser.

Fewer unknowns make the same prior decisive: with **one move per scan** (the step shot and
``rot, ty, tx``) the modulus model's objective, minimised over ``x``, ranks the true move
first, and a global grid search finds it — :func:`mrideblur.estimators.autofocus_step.step_autofocus`,
the NIfTI default (``benchmarks/autofocus.md``). This function still runs on a magnitude image
(the estimate is what free per-shot motion allows: a median of -0.13 / -0.00 of the lost PSNR
recovered, sequential / interleaved); where the motion comes from elsewhere (raw data of the
same scan, a navigator, a tracker), :func:`~mrideblur.estimators.autofocus_magnitude.correct_magnitude`
corrects a magnitude image with it.

Estimation
----------
All shots' motion is optimised jointly by L-BFGS (torch autograd through the Fourier shears
of :mod:`mrideblur.physics.motion_torch`), coarse to fine on the central quarter, half and all of
k-space (translations scaled to each grid). The frame is that of the *reference shot*, the one
owning the k-space centre: it fixes where the object is (so a corrected NIfTI stays registered
with its source); motion is reported relative to shot 0 as docs/conventions.md asks. Shots that own
no line of a coarse level take the motion of the nearest shot that does until a finer level
sees them. A last full-resolution stage scores least-squares images (three unrolled CG
iterations) instead of the adjoint, whose double-counted k-space overlaps make the entropy
prefer rotations about half the true ones. For sequential orderings a weak temporal
total-variation prior on the motion keeps the narrow centre band's shot, which fixes the frame,
from slipping against its neighbours (``temporal_tv``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import time

import numpy as np
import torch

from .. import __version__
from .aligned_sense import rebase_motion, reference_shot
from .base import CancelFn, Cancelled, Options, ProgressFn, Result, check_cancel
from ..physics.cg import conjugate_gradient
from ..physics.fourier import fft, fft_torch, ifft_torch
from ..physics.motion_torch import rigid2d_torch
from .sense import sense_recon
from ..physics.shots import count_shots, validate_shot_index

__all__ = ["AutofocusOptions", "autofocus", "run", "gradient_entropy", "is_sequential", "MIN_LEVEL_SIZE", "SEQUENTIAL_TV"]

#: Smallest image side (pixels) of a coarse-to-fine level (as in aligned-SENSE).
MIN_LEVEL_SIZE = 48
#: CG iterations of the final least-squares image.
FINAL_CG_ITERATIONS = 10
#: CG iterations of the least-squares image inside the last refinement stage.
REFINE_CG_ITERATIONS = 3
#: Weight of the temporal total variation of the motion for sequential orderings (entropy units
#: per degree or pixel of change between consecutive shots).
SEQUENTIAL_TV = 0.003




def gradient_entropy(image: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Gradient entropy of a real 2D image ``(ny, nx)`` (a differentiable torch scalar, nats).

    ``g = sqrt(dy^2 + dx^2 + (eps max|x|)^2)`` from forward differences, ``p = g / sum g``,
    ``H = -sum p log p``. Invariant to the image's scale; lower is sharper.
    """
    scale = image.detach().abs().max().clamp_min(1e-30)
    x = image / scale
    gy = x[1:, :-1] - x[:-1, :-1]
    gx = x[:-1, 1:] - x[:-1, :-1]
    g = torch.sqrt(gy * gy + gx * gx + eps * eps)
    p = g / g.sum()
    return -(p * torch.log(p)).sum()


def _crop(n: int, frac: float) -> slice:
    m = n if frac >= 1 else min(n, max(int(round(n * frac)), 8))
    start = n // 2 - m // 2
    return slice(start, start + m)


def _levels(shape: tuple[int, int]) -> list[float]:
    f1 = min(1.0, max(0.25, MIN_LEVEL_SIZE / min(shape)))
    f2 = min(1.0, max(0.5, 2 * f1))
    return sorted({f1, f2, 1.0})


def _adjoint_image(k: torch.Tensor, masks: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``|sum_s T(theta_s)^H F^H (M_s k)|`` for ``k (ky, kx)``, ``masks (nshot, ky)``."""
    x = rigid2d_torch(ifft_torch(masks[:, :, None] * k[None], 2), theta, adjoint=True, per_shot=True).sum(0)
    return torch.sqrt(x.real**2 + x.imag**2 + 1e-20)


def _ls_image(k: torch.Tensor, masks: torch.Tensor, theta: torch.Tensor, n_iter: int) -> torch.Tensor:
    """``|x|`` after ``n_iter`` CG iterations on ``A^H A x = A^H k`` from ``x = A^H k``, with
    ``A = sum_s M_s F T(theta_s)`` (differentiable: the iterations are unrolled).

    Rotated shots leave gaps and overlaps in k-space; the adjoint counts the overlaps twice and
    its entropy prefers rotations smaller than the true ones (about half of them, measured on
    sequential step motion); a few CG iterations remove that bias.
    """

    def normal(x: torch.Tensor) -> torch.Tensor:
        y = fft_torch(rigid2d_torch(x, theta), 2) * masks[:, :, None]
        return rigid2d_torch(ifft_torch(y, 2), theta, adjoint=True, per_shot=True).sum(0)

    b = rigid2d_torch(ifft_torch(masks[:, :, None] * k[None], 2), theta, adjoint=True, per_shot=True).sum(0)
    x = conjugate_gradient(normal, b, b, max_iter=n_iter)
    return torch.sqrt(x.real**2 + x.imag**2 + 1e-20)


def is_sequential(shot_index: np.ndarray) -> bool:
    """Whether every shot's acquired lines are one contiguous block (a sequential ordering)."""
    si = np.asarray(shot_index)
    acquired = si[si >= 0]
    return bool(acquired.size) and int(np.count_nonzero(np.diff(acquired))) == count_shots(si) - 1


@dataclass
class AutofocusOptions(Options):
    """Options of the per-shot gradient-entropy autofocus.

    Attributes
    ----------
    max_iter : int
        L-BFGS iterations at the coarsest level (finer levels get 2/3 of it).
    temporal_tv : float, optional
        Weight of a total-variation prior on the motion between consecutive shots (motion is
        mostly piecewise constant in time), added to the entropy. Default
        :data:`SEQUENTIAL_TV` when every shot owns one contiguous band of k-space (sequential
        orderings: the centre shot's band is narrow and its own motion weakly seen, so without
        the prior the whole frame can slip by a pixel), else 0 (interleaved shots are each seen
        across k-space, and the prior would shrink independent motion).
    device : str
        torch device of the search (``"cpu"``, ``"cuda"``).
    seed : int
        Recorded for reproducibility; the estimator is deterministic.
    """

    max_iter: int = 60
    temporal_tv: float | None = None
    device: str = "cpu"
    seed: int = 0


def autofocus(image: np.ndarray, shot_index: np.ndarray, options: AutofocusOptions | None = None,
              progress: ProgressFn | None = None, cancel: CancelFn | None = None, **kwargs: Any) -> Result:
    """Estimate per-shot rigid motion from one image by gradient-entropy autofocus.

    Parameters
    ----------
    image : (ny, nx) real or complex array
        The motion-corrupted image; its phase-encode axis is axis 0 (``ky`` of
        docs/conventions.md), the readout axis 1. A complex image is the exact case; a magnitude
        image is handled the same way, with the limits of the module notes.
    shot_index : (ny,) int
        Shot of every phase-encode line (``-1``: not acquired), e.g.
        :func:`mrideblur.physics.shots.make_shot_index` with the assumed ordering.
    options : AutofocusOptions, optional
        The method's options (defaults when None); keyword arguments build it instead.
    progress : callable(step, total, message), optional
    cancel : callable() -> bool, optional
        Polled at every cost evaluation; True stops and returns the current estimate
        (``report["cancelled"] = True``).
    **kwargs
        Fields of the options, when ``options`` is not given.

    Returns
    -------
    Result
        ``image`` ``(ny, nx)``: float32 for a real input (the modulus), complex64 for a complex
        one, in the frame of the shot owning the k-space centre; ``motion`` ``(nshot, 3)``
        ``rot_deg, ty, tx`` (degrees, pixels) relative to shot 0; ``sens`` ``(1, ny, nx)``
        ones (single coil); ``report``: ``method``, ``parameters``, ``reference_shot``,
        ``metric`` (full-resolution gradient entropy of the input and of the result's adjoint
        image), ``history`` (entropy per evaluation and level), ``seconds``, ``cancelled``,
        ``versions``.

    Raises
    ------
    ValueError
        Not a finite 2D image of at least 8x8 pixels, ``max_iter < 1``, a shot map that does
        not fit the phase-encode axis.
    """
    o = options if options is not None else AutofocusOptions.from_kwargs("per-shot-autofocus", **kwargs)
    max_iter, temporal_tv, device, seed = o.max_iter, o.temporal_tv, o.device, o.seed
    x0 = np.asarray(image)
    if x0.ndim != 2 or min(x0.shape) < 8:
        raise ValueError(f"image: expected a 2D image (ny, nx) of at least 8x8 pixels, got shape {x0.shape}")
    if not np.issubdtype(x0.dtype, np.number) or not np.all(np.isfinite(x0)):
        raise ValueError("image: expected finite numeric values (NaN, infinite or non-numeric found)")
    if int(max_iter) != max_iter or max_iter < 1:
        raise ValueError(f"max_iter: expected an integer >= 1, got {max_iter}")
    si = validate_shot_index(shot_index, (x0.shape[0],))
    if temporal_tv is None:
        temporal_tv = SEQUENTIAL_TV if is_sequential(si) else 0.0
    if not np.isfinite(temporal_tv) or temporal_tv < 0:
        raise ValueError(f"temporal_tv: expected a finite weight >= 0, got {temporal_tv}")
    t_start = time.perf_counter()
    nshot = count_shots(si)
    ref = reference_shot(si)
    dev = torch.device(device)
    kfull = fft(x0.astype(np.complex128), 2)
    ny, nx = x0.shape
    masks_full = (si[None] == np.arange(nshot)[:, None]).astype(np.float32)
    theta = np.zeros((nshot, 3))  # in the reference shot's frame, pixels of the full grid
    levels = _levels((ny, nx)) + [1.0]  # the last full-resolution stage uses least-squares images
    iters = [int(max_iter)] + [max(1, (2 * int(max_iter)) // 3)] * (len(levels) - 2) + [max(1, int(max_iter) // 3)]
    total = sum(iters)
    history: dict = {"levels": []}
    step = 0
    cancelled = False
    for li, (frac, n_it) in enumerate(zip(levels, iters)):
        t0 = time.perf_counter()
        sy, sx = _crop(ny, frac), _crop(nx, frac)
        my, mx = sy.stop - sy.start, sx.stop - sx.start
        m_np = masks_full[:, sy]
        seen = m_np.sum(1) > 0
        free = seen.copy()
        free[ref] = False
        scale = np.array([1.0, my / ny, mx / nx])
        k = torch.as_tensor(kfull[sy, sx], device=dev).to(torch.complex64)
        masks = torch.as_tensor(m_np, device=dev)
        base = torch.as_tensor(theta * scale, device=dev, dtype=torch.float32)
        idx = torch.as_tensor(np.flatnonzero(free), device=dev)
        sc_t = torch.as_tensor(scale, device=dev, dtype=torch.float32)
        p = base[idx].clone().requires_grad_(True)
        trace: list[float] = []

        refine = li == len(levels) - 1

        def cost() -> torch.Tensor:
            th = base.index_put((idx,), p) if idx.numel() else base
            img = _ls_image(k, masks, th, REFINE_CG_ITERATIONS) if refine else _adjoint_image(k, masks, th)
            h = gradient_entropy(img)
            if temporal_tv > 0:  # smoothed |change| (0.1 deg / px wide) between consecutive shots
                d = (th[1:] - th[:-1]) / sc_t
                h = h + temporal_tv * torch.sqrt(d * d + 0.01).sum()
            return h

        if idx.numel():
            opt = torch.optim.LBFGS([p], lr=1.0, max_iter=n_it, max_eval=int(1.5 * n_it), history_size=20,
                                    line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

            def closure() -> torch.Tensor:
                nonlocal step
                check_cancel(cancel)
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
            except Cancelled:
                cancelled = True
            theta[free] = p.detach().cpu().double().numpy() / scale[None]
        # shots this level did not see: the motion of the nearest shot (in shot order) it saw
        seen_ids = np.flatnonzero(seen)
        for s in np.flatnonzero(~seen):
            theta[s] = theta[seen_ids[np.argmin(np.abs(seen_ids - s))]]
        history["levels"].append({"size": [my, mx], "least_squares": refine, "evaluations": len(trace), "entropy": trace,
                                  "seconds": time.perf_counter() - t0})
        step = sum(iters[: li + 1])
        if cancelled:
            break
    t0 = time.perf_counter()
    with torch.no_grad():
        kt = torch.as_tensor(kfull, device=dev).to(torch.complex64)
        mt = torch.as_tensor(masks_full, device=dev)
        h_before = float(gradient_entropy(_adjoint_image(kt, mt, torch.zeros((nshot, 3), device=dev))))
        h_after = float(gradient_entropy(_adjoint_image(kt, mt, torch.as_tensor(theta, device=dev, dtype=torch.float32))))
    # final image: least squares with one coil of ones (the adjoint is its first CG iterate)
    ones = np.ones((1, ny, nx), dtype=np.complex64)
    xc = sense_recon(kfull[None].astype(np.complex64), si, ones, theta, max_iter=FINAL_CG_ITERATIONS)
    out = xc.astype(np.complex64) if np.iscomplexobj(x0) else np.abs(xc).astype(np.float32)
    motion = rebase_motion(theta, 0) if ref else theta.copy()
    motion[0] = 0.0
    report = {
        "method": "autofocus",
        "parameters": {"metric": "gradient-entropy", "max_iter": int(max_iter), "temporal_tv": float(temporal_tv), "device": str(device), "seed": seed,
                       "levels": [float(f) for f in levels], "data": "complex" if np.iscomplexobj(x0) else "magnitude"},
        "reference_shot": int(ref),
        "metric": {"gradient_entropy_before": h_before, "gradient_entropy_after": h_after},
        "history": history,
        "seconds": {"search": t0 - t_start, "image": time.perf_counter() - t0, "total": time.perf_counter() - t_start},
        "cancelled": cancelled,
        "versions": {"mrideblur": __version__, "numpy": np.__version__, "torch": torch.__version__},
    }
    return Result(image=out, motion=motion, sens=ones, report=report)


def run(image: np.ndarray, shot_index: np.ndarray, motion: None, options: AutofocusOptions,
        progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> Result:
    """The catalogue's ``per-shot-autofocus``: :func:`autofocus` with ``options``."""
    if motion is not None:
        raise ValueError("motion: a motion search takes no motion table (method 'known-motion' does)")
    return autofocus(image, shot_index, options=options, progress=progress, cancel=cancel)
