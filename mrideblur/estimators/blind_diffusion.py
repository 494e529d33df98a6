r"""Blind deconvolution with the diffusion prior: the kernel is estimated while the diffusion
posterior sampler explores the image ("one prior, two physics").

This is ``blind_deconvolve(..., method="diffusion")`` (:mod:`mrideblur.estimators.blind_vb`, which adds
the patch and the final non-blind deconvolution); this module holds the model, the kernel step
and the loop.  It imports torch; ``blind.py`` imports
it only when the method is asked for.

Model
-----
``y = M (k * x) + n``: ``x`` the scene on a latent canvas, ``k`` an ``m x m`` kernel
(non-negative, sums to one, centred at ``(m // 2, m // 2)``), ``*`` circular convolution on the
canvas, ``M`` keeps the observed pixels, ``n`` white Gaussian noise of std ``sigma_y``.  For
``boundary="valid"`` and ``"taper"`` the canvas is larger than ``y`` by at least ``m - 1``
pixels per axis and ``y`` sits at offset ``m // 2``, so every observed pixel sees a whole kernel
footprint inside the canvas and the wrap never reaches the data (the "valid" convolution of a
real sensor, as in the VB model); the unobserved band is filled in by the prior.  For
``boundary="periodic"`` the canvas is ``y``'s grid and ``M = I``.

Estimator (posterior-averaged family)
-------------------------------------
The image is explored by :func:`mrideblur.prior.samplers.posterior_sample` (DiffPIR) with a
:class:`MaskedConvolution` physics and the shipped MRI diffusion prior, ``nsamples`` chains at
once, starting from a kernel ``k_0`` (by default the delta: no blur).  The sampler's
``callback`` runs after every step with the noise level ``s`` (prior units, image scaled to
``max ~ 1``) and the chains' current clean estimates ``x0^(c)`` (data consistency applied).  On
every ``kernel_every``-th step with ``s`` in ``kernel_sigma`` the kernel is refitted to the
*re-noised and denoised* posterior mean

.. math:: \bar x = \frac{1}{n} \sum_c \mathrm{Re}\, D\big(x_0^{(c)} + s z^{(c)},\ s\big),
          \qquad z^{(c)} \text{ real standard normal},

in the gradient domain (Fergus et al. 2006; Levin et al. 2011):

.. math:: \tilde k = \arg\min_{k \ge 0,\ \sum k = 1}
          \tfrac12 \sum_{d \in \{x, y\}} \| M_d (k * \partial_d \bar x - \partial_d y) \|^2
          + \tfrac{\gamma}{2} \|k\|^2,

``partial_d`` the forward difference along ``d``, ``M_d`` the differences whose two pixels were
observed (convolution commutes with differences, so ``partial_d y = k * partial_d x +
partial_d n``; differences whiten the image spectrum and condition the normal equations far
better than intensities), ``gamma = l2`` times the diagonal of the normal matrix.  The
constrained least squares is solved by FISTA (accelerated projected gradient, step ``1 / L``,
``L = max_f sum_d |U_d(f)|^2 + gamma``) warm-started at the current kernel, each iterate
projected onto the simplex (Duchi et al. 2008).  Entries below ``kernel_threshold`` times the
maximum are zeroed (as VB does at the end of each scale), the update is damped,
``k <- (1 - kernel_step) k + kernel_step k~``, re-centred by whole pixels
(:func:`mrideblur.physics.kernels.center_kernel`) and written into the physics in place, so the
next sampler step uses it (the sampler re-evaluates ``A^H y`` after every callback; with an
``A^H y`` frozen at the starting kernel the data-consistency step mixes two kernels and the
estimate fails: from the delta, error ratios 3.5-235 on five cases against 1.1-2.1 with the
same settings).

Why the re-noised denoised image and not ``x0`` itself: ``x0`` has just been made consistent
with the data under the current kernel, so refitting the kernel to it returns that kernel —
every kernel is a fixed point of that alternation (from the delta the kernel did not move at
all, kept as ``kernel_image="x0"`` to show it).  Re-noising ``x0`` to the current level and
denoising it replaces what the data under a wrong kernel left in ``x0`` (ringing, doubled edges)
by what the prior believes, and that pulls the kernel; at high noise levels the denoiser keeps
only the large structures (the brain outline), so the kernel is fitted coarse to fine in
frequency as the noise level falls.  (Denoising ``x0`` without re-noising it over-smooths a
clean input: under the true kernel, fits to it had errors 0.2-0.3 at ``s`` = 0.2-0.5 against
0.13-0.15 for the re-noised image, which reaches 0.02-0.06 below ``s`` = 0.05.  The noise is real
because the data are: complex noise gave clearly worse kernels, geometric-mean error ratio
1.8-1.9 against 1.25-1.5 on the five tuning cases.)

The prior is the MNI152-only weights (``mri_prior_mni152.pt``), not the package's default
mixture weights: on the benchmark's ten MRI cases the mixture gave median error ratios 1.96 /
2.32 (two seeds) and 1.79 from a VB start, against 1.54 / 1.68 and 1.46 with the MNI152-only
weights — also on the Colin27 and INIA19 cases — and better only on the photograph (4.00 against
4.73) (benchmarks/blind_diffusion.md and blind_diffusion_mixtureprior.md, 2026-12-07).

Measured with them (benchmarks/blind_diffusion.md: ten held-out slices of MNI152, Colin27 and
INIA19, 96 and 128 px, camera-shake and straight motion kernels of 9-17 px, 1% noise; tuned on
five other MNI152 cases): from the delta the kernel error falls from ~0.95 to 0.035-0.35; median
error ratio 1.54 and 1.68 (two seeds) against 1.79 for VB and 2.23 for MAP, worst 5.1 against
7.7 for VB (a Colin27 case), in well under half VB's time.  On a photograph (outside the prior's
training data) it is worse than VB (4.6-4.7 against 4.0).  ``init="vb"`` (a cheap VB estimate)
is an alternative start of about the same quality (median 1.46, worst 5.2).  The sampler's own posterior-mean image (one chain, 40 steps) was below the
hyper-Laplacian deconvolution with the same kernel in 19 of 21 MRI runs (median 0.7 dB), which
is why :func:`~mrideblur.deblur.blind_deconvolve` returns the latter by default and keeps the
sampler's image in ``history["sample"]``.

Cost: ``steps * nsamples`` UNet calls for the sampler plus ``nsamples`` per kernel fit (about
50 ms each at 128 x 128 on one CPU thread), a few ms per FISTA fit, and the VB start if asked.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import fft as sfft
from scipy import signal

from ..physics.operators import MaskedConvolution
from ..physics.blur import check_image
from ..physics.kernels import center_kernel, gaussian_kernel, validate_kernel
from .base import CancelFn, Cancelled, ProgressFn, Result, check_cancel, positive_int
from .blind_common import BlindOptions, final_image, prepare
from .blind_vb import VBOptions
from .blind_vb import run as vb_run

__all__ = ["INIT_KERNELS", "KERNEL_IMAGES", "BlindDiffusionOptions", "blind_deconvolve_diffusion", "explaining_kernel",
           "fit_kernel", "project_simplex", "run"]

#: Named starting kernels (an ``(m, m)`` array is accepted too).
INIT_KERNELS = ("delta", "gaussian", "vb")
#: Which image the kernel is fitted to: the re-noised and denoised estimate, or ``x0`` itself.
KERNEL_IMAGES = ("renoised", "x0")
#: Iterations per scale and starts of the VB start (cheap: VB's own defaults are 40 and 3).
VB_START = {"n_iter": 10, "n_starts": 1}


# ----------------------------------------------------------------------------------------------
# The kernel step
# ----------------------------------------------------------------------------------------------


def project_simplex(v: np.ndarray) -> np.ndarray:
    r"""Euclidean projection onto ``{k : k >= 0, sum k = 1}`` (Duchi et al., ICML 2008).

    ``k = max(v - tau, 0)`` with the ``tau`` that makes the result sum to one (sort-based, exact).

    Parameters
    ----------
    v : array_like, any shape

    Returns
    -------
    float64 array of ``v``'s shape.
    """
    v = np.asarray(v, dtype=np.float64)
    u = np.sort(v.ravel())[::-1]
    css = np.cumsum(u) - 1.0
    rho = np.nonzero(u - css / np.arange(1, u.size + 1) > 0)[0][-1]
    return np.maximum(v - css[rho] / (rho + 1.0), 0.0)


def _diff(x: np.ndarray, axis: int) -> np.ndarray:
    """Circular forward difference ``x[p + e_axis] - x[p]``."""
    return np.roll(x, -1, axis=axis) - x


def _diff_masks(mask: np.ndarray) -> list[np.ndarray]:
    """Differences along x (axis 1) and y (axis 0) with both pixels observed (none across the
    canvas edge)."""
    out = []
    for axis in (1, 0):
        m = mask * np.roll(mask, -1, axis=axis)
        if axis == 1:
            m[:, -1] = 0
        else:
            m[-1, :] = 0
        out.append(m)
    return out


def fit_kernel(image: np.ndarray, observed: np.ndarray, mask: np.ndarray, kernel: np.ndarray,
               l2: float = 1e-3, iters: int = 60) -> np.ndarray:
    r"""Least-squares kernel in the gradient domain on the simplex, by FISTA.

    .. math:: \min_{k \ge 0,\ \sum k = 1} \frac{1}{2n} \sum_{i=1}^{n} \sum_{d \in \{x, y\}}
              \|M_d(k * \partial_d x_i - \partial_d y)\|^2 + \frac{\gamma}{2}\|k\|^2,
              \qquad \gamma = \mathrm{l2} \cdot \frac1n \sum_{i, d} \|M_d \partial_d x_i\|^2.

    Parameters
    ----------
    image : (H, W) or (n, H, W) float array
        Image estimate(s) ``x_i`` on the canvas, intensity units; several images give the
        average of their objectives.
    observed : (H, W) float array
        The data ``y`` on the canvas (anything where not observed).
    mask : (H, W) 0/1 array
        Observed pixels ``M``.
    kernel : (m, m) array, m odd
        Starting kernel, centred at ``(m // 2, m // 2)``; ``m`` must be below ``H`` and ``W``.
    l2 : float
        Weight of ``||k||^2`` relative to the diagonal of the normal matrix (>= 0).
    iters : int
        FISTA iterations.

    Returns
    -------
    (m, m) float64 kernel, non-negative, summing to one (not re-centred).
    """
    imgs = np.asarray(image, dtype=np.float64)
    if imgs.ndim == 2:
        imgs = imgs[None]
    nimg, h, w = imgs.shape
    m = kernel.shape[0]
    c = m // 2
    dmasks = _diff_masks(np.asarray(mask, dtype=np.float64))
    g = [dm * _diff(observed, ax) for dm, ax in zip(dmasks, (1, 0))]
    du = [_diff(imgs, ax + 1) for ax in (1, 0)]
    uf = [sfft.rfft2(u, axes=(-2, -1)) for u in du]
    gamma = float(l2) * sum(float(np.sum(dm * u**2)) for dm, u in zip(dmasks, du)) / nimg
    lip = float(sum(np.abs(u) ** 2 for u in uf).sum(axis=0).max()) / nimg + gamma
    k = project_simplex(kernel)
    if lip <= 0:  # a constant image carries no information on the kernel
        return k

    def grad(kk: np.ndarray) -> np.ndarray:
        pad = np.zeros((h, w))
        pad[:m, :m] = kk
        kf = sfft.rfft2(np.roll(pad, (-c, -c), axis=(0, 1)))
        acc = 0.0
        for u, gi, dm in zip(uf, g, dmasks):
            r = dm * sfft.irfft2(u * kf, s=(h, w), axes=(-2, -1)) - gi
            acc = acc + (np.conj(u) * sfft.rfft2(r, axes=(-2, -1))).sum(axis=0)
        corr = np.roll(sfft.irfft2(acc / nimg, s=(h, w)), (c, c), axis=(0, 1))[:m, :m]
        return corr + gamma * kk

    z, t = k.copy(), 1.0
    for _ in range(int(iters)):
        k_new = project_simplex(z - grad(z) / lip)
        t_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
        z = k_new + ((t - 1.0) / t_new) * (k_new - k)
        k, t = k_new, t_new
    return k


def explaining_kernel(image: np.ndarray, observed: np.ndarray, size: int, iters: int = 100
                      ) -> tuple[np.ndarray, float]:
    """The ``size x size`` kernel that best explains ``observed`` from a sharp estimate ``image``
    (both ``(H, W)``, same grid), and how well it does.

    :func:`fit_kernel` from a delta on the pixels whose whole footprint lies in the image (mask
    ``M``); the misfit is ``||M (k * image - observed)|| / sqrt(|M|)`` in image units — compare it
    with the noise level.  Used by the methods that make an image first and read the blur off it.

    Returns
    -------
    (kernel, misfit)
    """
    h = size // 2
    mask = np.zeros(observed.shape)
    mask[h:-h, h:-h] = 1.0
    delta = np.zeros((size, size))
    delta[h, h] = 1.0
    kernel = fit_kernel(image, observed, mask, delta, iters=iters)
    model = signal.fftconvolve(image, kernel, mode="same")
    return kernel, float(np.sqrt(np.sum(mask * (model - observed) ** 2) / mask.sum()))


# ----------------------------------------------------------------------------------------------
# Canvas and start
# ----------------------------------------------------------------------------------------------


def _canvas(y: np.ndarray, m: int, boundary: str, multiple: int = 8):
    """``(observed, mask, start, scene)``: ``y`` on the sampler's canvas (zero outside), the
    mask of observed pixels, the starting image (``y`` mirrored into the unobserved band) and
    the slices of the canvas that form the output."""
    ny, nx = y.shape
    if boundary == "periodic":
        return y.copy(), np.ones_like(y), y.copy(), (slice(0, ny), slice(0, nx))
    h = m // 2
    H = int(math.ceil((ny + m - 1) / multiple) * multiple)
    W = int(math.ceil((nx + m - 1) / multiple) * multiple)
    obs = np.zeros((H, W))
    mask = np.zeros((H, W))
    obs[h : h + ny, h : h + nx] = y
    mask[h : h + ny, h : h + nx] = 1.0
    start = np.pad(y, ((h, H - ny - h), (h, W - nx - h)), mode="symmetric")
    if boundary == "valid":  # the whole scene, (ny + m - 1, nx + m - 1)
        scene = (slice(0, ny + m - 1), slice(0, nx + m - 1))
    else:  # taper: the scene continues beyond y; return y's field of view
        scene = (slice(h, h + ny), slice(h, h + nx))
    return obs, mask, start, scene


def _check_init(init, m: int):
    """The named start, or the validated ``(m, m)`` kernel."""
    if isinstance(init, str):
        if init not in INIT_KERNELS:
            raise ValueError(f"init: expected one of {INIT_KERNELS} or an (m, m) kernel, got {init!r}")
        return init
    k = validate_kernel(init, "init")
    if k.shape != (m, m):
        raise ValueError(f"init: expected a kernel of shape {(m, m)} (kernel_size), got {k.shape}")
    return k


def _initial_kernel(init, y: np.ndarray, m: int, seed: int, boundary: str, noise_sigma: float | None,
                    vb_params: dict, progress: ProgressFn | None, cancel) -> tuple[np.ndarray, dict]:
    """The starting kernel and what to record about it (``init_seconds``, ``cancelled``)."""
    t0 = time.perf_counter()
    if not isinstance(init, str):
        return init, {"init_seconds": 0.0}
    if init == "delta":
        k = np.zeros((m, m))
        k[m // 2, m // 2] = 1.0
        return k, {"init_seconds": 0.0}
    if init == "gaussian":
        return gaussian_kernel(m / 8.0, size=m), {"init_seconds": 0.0}
    def vb_progress(step: int, total: int, msg: str) -> None:
        if progress is not None:
            progress(step, total, f"VB start: {msg}")

    options = VBOptions.from_kwargs("vb", **{**VB_START, **vb_params, "seed": seed, "patch": None,
                                             "noise_sigma": noise_sigma,
                                             "boundary": boundary if boundary != "periodic" else "taper"})
    res = vb_run(y, m, options, progress=vb_progress, cancel=cancel)
    return res.kernel, {"init_seconds": time.perf_counter() - t0, "cancelled": res.history["cancelled"]}


def _load_prior(score_prior):
    from ..prior import ScorePrior

    if score_prior is None:  # the MNI152-only weights: measured better here than the package default
        from ..prior.score import MNI152_WEIGHTS

        return ScorePrior.load(MNI152_WEIGHTS)
    if isinstance(score_prior, ScorePrior):
        return score_prior
    return ScorePrior.load(score_prior)


# ----------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------


def blind_deconvolve_diffusion(
    blurred: np.ndarray,
    kernel_size: int,
    seed: int = 0,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    *,
    init: str | np.ndarray = "delta",
    steps: int = 40,
    nsamples: int = 1,
    kernel_every: int = 1,
    kernel_sigma: tuple[float, float] = (0.05, 1.0),
    kernel_image: str = "renoised",
    kernel_step: float = 0.5,
    kernel_threshold: float = 0.05,
    kernel_iters: int = 60,
    l2: float = 1e-3,
    lam: float = 1.0,
    vb_params: dict | None = None,
    noise_sigma: float | None = None,
    score_prior=None,
    boundary: str = "taper",
    true_kernel: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    r"""Estimate the blur kernel and the sharp image with the diffusion prior (module docstring).

    Parameters
    ----------
    blurred : (ny, nx) array
        Blurred, noisy image ``y``: real, linear intensities, any unit.
    kernel_size : int
        Odd size ``m`` of the kernel in pixels (>= 3, at most half the image's smaller side).
    seed : int
        Seeds the VB start, the sampler and the re-noising of the kernel step: the same seed
        gives the same result.
    progress : callable(step, total, message), optional
        Called during the VB start (its own steps) and after every sampler step
        (``total = steps``).
    cancel : callable() -> bool, optional
        Polled during the VB start and after every sampler step; when it returns True the
        estimate stops and the current kernel and image are returned
        (``history["cancelled"] = True``).
    init : {"delta", "gaussian", "vb"} or (m, m) array
        Starting kernel: the delta (no blur), a Gaussian of std ``m / 8`` pixels, a cheap
        Variational Bayes estimate (``VB_START``: one start, 10 iterations per scale;
        ``vb_params`` overrides), or the given kernel.
    steps : int
        Sampler steps (noise levels, >= 2).
    nsamples : int
        Chains sampled together (>= 1); the kernel is fitted to their mean, the image returned
        is their mean.
    kernel_every : int
        Refit the kernel on every ``kernel_every``-th step inside ``kernel_sigma`` (>= 1).
    kernel_sigma : (float, float)
        Noise levels ``(low, high)`` (prior units, the image scaled to ~1) between which the
        kernel is refitted; below ``low`` the image settles under the final kernel.
    kernel_image : {"renoised", "x0"}
        Fit to ``D(x0 + s z, s)`` (default) or to ``x0`` itself (a fixed point: kept for
        comparison).
    kernel_step : float
        Damping of each update, in (0, 1] (1 = take the fit).
    kernel_threshold : float
        Zero fitted entries below this fraction of the maximum, in [0, 1).
    kernel_iters : int
        FISTA iterations per fit (>= 1).
    l2 : float
        Relative weight of ``||k||^2`` in the fit (>= 0, :func:`fit_kernel`).
    lam : float
        Weight of the prior in the sampler's data-consistency step (> 0,
        :func:`~mrideblur.prior.samplers.posterior_sample`).
    vb_params : dict, optional
        Keyword arguments of the VB start (``n_iter``, ``n_starts``, ...).
    noise_sigma : float, optional
        Noise std of ``y`` (intensity units); estimated from ``y`` if not given.
    score_prior : ScorePrior or path, optional
        The diffusion prior; default the MNI152-only weights (module notes).
    boundary : {"taper", "periodic", "valid"}
        As in :func:`mrideblur.deblur.deconvolve`.
    true_kernel : (m, m) array, optional
        For evaluation: ``history["kernel_error"]`` then holds ``||k - k_true||_2`` for the
        start and after every fit.

    Returns
    -------
    image : (ny, nx) float64, or (ny + m - 1, nx + m - 1) for ``boundary="valid"``
        Mean over the chains of the sampler's final image, intensity units of ``y``.
    kernel : (m, m) float64
        Non-negative, sums to one, centred by its centre of mass.
    history : dict
        ``init``, ``init_kernel``, ``init_seconds``, ``kernels`` and ``fit_steps`` (after every
        fit), ``kernel_change`` (L1 change per fit), ``noise_sigma_input``, ``scale`` (data
        units per prior unit), ``residual`` (``||A x - y||`` per chain), ``seconds``,
        ``cancelled``; ``kernel_error`` with ``true_kernel``.

    Raises
    ------
    ValueError
        Bad image (not 2D, NaN/inf, all zero), even or too large ``kernel_size``, an unknown
        ``init``, ``kernel_image`` or ``boundary``, a kernel ``init`` of the wrong shape, or a
        parameter out of range (the message names it).
    """
    from ..prior.samplers import posterior_sample
    from .nonblind import BOUNDARY_MODES, estimate_noise_sigma

    t0 = time.perf_counter()
    y = check_image(blurred, "blurred")
    if int(kernel_size) != kernel_size or kernel_size < 3 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size: expected an odd integer >= 3, got {kernel_size}")
    m = int(kernel_size)
    if 2 * m > min(y.shape):
        raise ValueError(f"kernel_size: {m} is too large for the image {y.shape} (need at least twice the kernel size)")
    if boundary not in BOUNDARY_MODES:
        raise ValueError(f"boundary: expected one of {BOUNDARY_MODES}, got {boundary!r}")
    for name, v, lo in (("steps", steps, 2), ("nsamples", nsamples, 1), ("kernel_every", kernel_every, 1),
                        ("kernel_iters", kernel_iters, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name}: expected an integer >= {lo}, got {v!r}")
    if kernel_image not in KERNEL_IMAGES:
        raise ValueError(f"kernel_image: expected one of {KERNEL_IMAGES}, got {kernel_image!r}")
    try:
        s_lo, s_hi = (float(v) for v in kernel_sigma)
    except (TypeError, ValueError):
        raise ValueError(f"kernel_sigma: expected (low, high), got {kernel_sigma!r}") from None
    if not 0 <= s_lo <= s_hi:
        raise ValueError(f"kernel_sigma: expected 0 <= low <= high, got {kernel_sigma!r}")
    if not 0 < kernel_step <= 1:
        raise ValueError(f"kernel_step: expected a value in (0, 1], got {kernel_step}")
    if not 0 <= kernel_threshold < 1:
        raise ValueError(f"kernel_threshold: expected a value in [0, 1), got {kernel_threshold}")
    if not l2 >= 0:
        raise ValueError(f"l2: expected >= 0, got {l2}")
    if not lam > 0:
        raise ValueError(f"lam: expected > 0, got {lam}")
    if noise_sigma is not None and not noise_sigma >= 0:
        raise ValueError(f"noise_sigma: expected >= 0, got {noise_sigma}")
    scale = float(np.quantile(np.abs(y), 0.999))
    if not scale > 0:
        raise ValueError("blurred: the image is zero; there is nothing to deblur")
    init = _check_init(init, m)
    k_true = None if true_kernel is None else validate_kernel(true_kernel, "true_kernel")
    if k_true is not None and k_true.shape != (m, m):
        raise ValueError(f"true_kernel: expected shape {(m, m)}, got {k_true.shape}")
    prior = _load_prior(score_prior)

    sigma_y = estimate_noise_sigma(y) if noise_sigma is None else float(noise_sigma)
    k0, init_info = _initial_kernel(init, y, m, seed, boundary, noise_sigma, vb_params or {}, progress, cancel)
    k0 = center_kernel(k0)
    obs, mask, start, scene = _canvas(y, m, boundary)
    physics = MaskedConvolution(k0, obs.shape, None if boundary == "periodic" else mask, noise_sigma=sigma_y)
    hist: dict = {"method": "diffusion", "init": init if isinstance(init, str) else "kernel", "init_kernel": k0,
                  "kernels": [], "fit_steps": [], "kernel_change": [], "noise_sigma_input": sigma_y,
                  "scale": scale, "cancelled": bool(init_info.pop("cancelled", False)), **init_info}
    if k_true is not None:
        hist["kernel_error"] = [float(np.linalg.norm(k0 - k_true))]
    state = {"kernel": k0, "x": None, "in_range": 0}
    if hist["cancelled"]:
        hist["seconds"] = time.perf_counter() - t0
        return np.ascontiguousarray(start[scene]), k0, hist

    kgen = torch.Generator().manual_seed(int(seed) + 1)

    def callback(i: int, sigma: float, x0: torch.Tensor) -> None:
        state["x"] = x0.real.mean(dim=0).double().cpu().numpy()
        if s_lo <= sigma <= s_hi:
            if state["in_range"] % kernel_every == 0:
                _kernel_step(i, sigma, x0)
            state["in_range"] += 1
        if progress is not None:
            progress(i + 1, steps, f"diffusion step {i + 1}/{steps} (sigma {sigma:.3g})")
        check_cancel(cancel)

    def _kernel_step(i: int, sigma: float, x0: torch.Tensor) -> None:
        if kernel_image == "renoised":
            z = torch.randn(x0.shape, generator=kgen).to(x0.device)  # real noise (module docstring)
            xk = prior.denoise(x0 / scale + sigma * z, sigma).real.mean(dim=0).double().cpu().numpy() * scale
        else:
            xk = state["x"]
        k = fit_kernel(xk, obs, mask, state["kernel"], l2=l2, iters=kernel_iters)
        if kernel_threshold > 0:
            k = np.where(k >= kernel_threshold * k.max(), k, 0.0)
            k /= k.sum()
        k = center_kernel((1.0 - kernel_step) * state["kernel"] + kernel_step * k)
        hist["kernel_change"].append(float(np.abs(k - state["kernel"]).sum()))
        hist["kernels"].append(k)
        hist["fit_steps"].append(i)
        if k_true is not None:
            hist["kernel_error"].append(float(np.linalg.norm(k - k_true)))
        state["kernel"] = k
        physics.update_parameters(kernel=k)

    try:
        x, info = posterior_sample(prior, physics, obs.astype(np.complex64), steps=steps, noise_sigma=sigma_y,
                                   n_samples=nsamples, seed=seed, x_init=start.astype(np.complex64), scale=scale,
                                   lam=lam, callback=callback, return_info=True)
        image = np.asarray(x).real.mean(axis=0)
        hist["residual"] = np.asarray(info["residual"], dtype=float).tolist()
    except Cancelled:
        hist["cancelled"] = True
        image = state["x"]
    hist["seconds"] = time.perf_counter() - t0
    return np.ascontiguousarray(image[scene], dtype=np.float64), state["kernel"], hist


# ----------------------------------------------------------------------------------------------
# The catalogue's view: options and run
# ----------------------------------------------------------------------------------------------


@dataclass
class BlindDiffusionOptions(BlindOptions):
    """Options of ``blind_deconvolve(method="diffusion")``, besides those of every blind method
    (:class:`~mrideblur.estimators.blind_common.BlindOptions`; ``nonblind`` defaults to the
    hyper-Laplacian deconvolution, which was above the sampler's own posterior mean in 19 of 21
    benchmark runs on MRI slices by a median 0.7 dB; the sampler's image is kept in
    ``history["sample"]``).

    Attributes
    ----------
    init : {"delta", "gaussian", "vb"} or (m, m) array
        Starting kernel (see :func:`blind_deconvolve_diffusion`).
    steps : int
        Sampler steps (>= 2); about ``steps * nsamples`` UNet calls (50 ms each at 128 x 128 on
        one CPU thread).
    nsamples : int
        Chains sampled together; the kernel is fitted to their mean.
    score_prior : ScorePrior or path, optional
        The diffusion prior (default the MNI152-only weights, module notes).
    n_iter, n_starts : int, optional
        Iterations per scale and starts of the VB start (``init="vb"`` only).
    """

    init: Any = "delta"
    steps: int = 40
    nsamples: int = 1
    score_prior: Any = None
    n_iter: int | None = None
    n_starts: int | None = None

    def validate(self) -> None:
        super().validate()
        vb = {k: v for k, v in (("n_iter", self.n_iter), ("n_starts", self.n_starts)) if v is not None}
        if vb and not (isinstance(self.init, str) and self.init == "vb"):
            raise ValueError(f"{next(iter(vb))}: method='diffusion' uses it only for its VB start (init='vb')")
        self.steps = positive_int("steps", self.steps, 2)
        self.nsamples = positive_int("nsamples", self.nsamples)


def run(blurred: np.ndarray, kernel_size: int, options: BlindDiffusionOptions, progress: ProgressFn | None = None,
        cancel: CancelFn | None = None) -> Result:
    """``blind_deconvolve(method="diffusion")``: the kernel estimated on the patch by
    :func:`blind_deconvolve_diffusion`, then the whole image deconvolved with it.

    Returns a :class:`~mrideblur.estimators.base.Result` with ``image`` (like the input;
    scene-sized for ``boundary="valid"``), ``kernel`` ``(kernel_size, kernel_size)`` and
    ``history`` (that of :func:`blind_deconvolve_diffusion` plus ``patch``, ``nonblind`` and
    ``sample``, the sampler's posterior-mean image of the patch).
    """
    t0 = time.perf_counter()
    y, yp, patch, kernel_size = prepare(blurred, kernel_size, options)
    vb_params = {k: v for k, v in (("n_iter", options.n_iter), ("n_starts", options.n_starts)) if v is not None}
    whole = yp.shape == y.shape
    sample, kernel, hist = blind_deconvolve_diffusion(
        yp, kernel_size, options.seed, progress, cancel, init=options.init, steps=options.steps,
        nsamples=options.nsamples, vb_params=vb_params, noise_sigma=options.noise_sigma,
        score_prior=options.score_prior, boundary=options.boundary if whole else "taper")
    hist.update({"patch": patch, "sample": sample, "nonblind": options.nonblind})
    image = final_image(y, kernel, options)
    if progress is not None:
        progress(1, 1, "done")
    hist["seconds"] = time.perf_counter() - t0
    report = {"method": "diffusion", "parameters": options.as_dict(), "seconds": hist["seconds"],
              "cancelled": hist["cancelled"]}
    return Result(image=image, kernel=kernel, history=hist, report=report)
