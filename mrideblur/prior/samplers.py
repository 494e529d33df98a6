"""Samplers for the diffusion prior: unconditional, and posterior with data consistency for any
linear physics (:mod:`mrideblur.physics.operators`).

Unconditional
-------------
- :func:`sample_pc` -- Song et al. 2021's predictor-corrector sampler for the VE SDE: on each
  noise level a Langevin corrector step (step size from a signal-to-noise ratio ``snr``) then a
  reverse-diffusion predictor step ``x += (s_i^2 - s_{i+1}^2) score + sqrt(s_i^2 - s_{i+1}^2) z``;
  a final Tweedie denoising. ``steps * (1 + corrector_steps)`` network calls.
- :func:`sample_fast` -- DDIM for the VE SDE (Song, Meng & Ermon 2021, in the EDM form):
  ``x_next = D + sqrt(s_next^2 - c^2) (x - D) / s + c z`` with ``c = eta s_next sqrt(1 - s_next^2/s^2)``
  on a Karras schedule; ``eta = 0`` is the deterministic probability-flow ODE (Euler). One
  network call per step: 10-30 steps instead of hundreds.

Posterior (``y = A x + n``)
---------------------------
:func:`posterior_sample`, two methods:

- ``"diffpir"`` (Zhu et al. 2023, DiffPIR; the default, few steps): on each level
  ``x0 = D(x, s)``; data consistency ``x0' = argmin |A x - y|^2 / sigma_y^2 + |x - x0|^2 / (s^2 / lam)``
  by a few conjugate-gradient steps on ``(A^H A + mu) x = A^H y + mu x0``, ``mu = lam sigma_y^2 / s^2``
  (with noiseless data ``mu = 0`` and CG started at ``x0``: a projection onto the data that
  keeps ``x0`` in the null space of ``A``); then re-noise to the next level mixing the
  estimated noise ``(x - x0') / s`` and fresh noise (``zeta``).
- ``"pc"`` (annealed Langevin with the likelihood, Jalal et al. 2021 -- the scheme JSMoCo
  (Levac et al. 2023) uses): the PC sampler above with the posterior score
  ``score(x, s) + A^H (y - A x) / (sigma_y^2 + s^2 L)``, ``L`` an estimate of ``|A|^2``;
  then the same final data-consistency solve.

Both start from a least-squares estimate re-noised to ``sigma_start`` (the SDE's ``sigma_max``
by default; a smaller value refines a good estimate with fewer steps), work on the prior's scale
(``y`` divided by ``scale``: the 99.9th percentile of the least-squares image's magnitude
unless given) and return the image on the data's scale. A ``callback(i, sigma, x0)`` runs after
every step with the current clean estimate (data scale): JSMoCo updates its motion parameters
there, and the next step uses the updated physics. Everything is seeded: same seed, same result.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from ..physics.operators import cg_normal
from ..hooks import ProgressFn
from ..threads import with_threads
from .score import ScorePrior

__all__ = ["sample_pc", "sample_fast", "posterior_sample", "estimate_norm"]



def _noise(shape: tuple[int, ...], gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """Real standard normal noise drawn on the CPU generator (device-independent results)."""
    return torch.randn(shape, generator=gen).to(device)


def _cnoise(shape: tuple[int, ...], gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """Complex noise with standard normal real and imaginary parts."""
    return torch.view_as_complex(_noise(tuple(shape) + (2,), gen, device).contiguous())


def _denoise(prior: ScorePrior, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``D(x, sigma)`` for complex (n, H, W) torch on the prior's device."""
    x2 = torch.view_as_real(x).permute(0, 3, 1, 2).contiguous()
    d2 = prior.denoise_channels(x2, sigma)
    return torch.view_as_complex(d2.permute(0, 2, 3, 1).contiguous())


def _norms(x: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(torch.sum(torch.abs(x) ** 2, dim=tuple(range(1, x.ndim))))


def _out(x: torch.Tensor, output: str):
    if output == "numpy":
        return x.detach().cpu().numpy().astype(np.complex64)
    if output == "torch":
        return x
    raise ValueError(f"output: expected 'numpy' or 'torch', got {output!r}")


def _start(prior: ScorePrior, shape, steps: int, schedule: str, seed: int
           ) -> tuple[torch.Generator, list[float], torch.Tensor]:
    """Seeded generator, the noise levels and pure noise at the first level: ``(gen, sigmas, x)``."""
    n, h, w = _shape(shape)
    gen = torch.Generator().manual_seed(int(seed))
    sig = prior.sde.sigmas(steps, schedule).tolist()
    return gen, sig, sig[0] * _cnoise((n, h, w), gen, prior.device)


def _shape(shape) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) == 2:
        shape = (1,) + shape
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape: expected (H, W) or (n, H, W), got {shape}")
    return shape


def _langevin(x: torch.Tensor, grad: torch.Tensor, snr: float, gen: torch.Generator) -> torch.Tensor:
    """One Langevin step with Song et al.'s step size ``2 (snr |z| / |grad|)^2``."""
    z = _cnoise(x.shape, gen, x.device)
    zn = _norms(torch.view_as_real(z))
    gn = torch.clamp(_norms(torch.view_as_real(grad)), min=1e-12)
    eps = (2 * (snr * zn / gn) ** 2).reshape(-1, 1, 1)
    return x + eps * grad + torch.sqrt(2 * eps) * z


@with_threads
def sample_pc(prior: ScorePrior, shape, steps: int = 200, corrector_steps: int = 1, snr: float = 0.16,
              seed: int = 0, schedule: str = "geometric", output: str = "numpy",
              progress: ProgressFn | None = None):
    """Unconditional predictor-corrector sampling (reverse diffusion + Langevin).

    Parameters
    ----------
    prior : ScorePrior
    shape : (H, W) or (n, H, W)
    steps : int
        Noise levels (predictor steps).
    corrector_steps : int
        Langevin steps per level.
    snr : float
        Corrector signal-to-noise ratio.
    seed : int
    schedule : {"geometric", "karras"}
    output : {"numpy", "torch"}
    progress : callable ``(step, total, message)``, optional

    Returns
    -------
    (n, H, W) complex64 samples (on the prior's scale, max ``|x|`` ~ 1).
    """
    gen, sig, x = _start(prior, shape, steps, schedule, seed)
    with torch.no_grad():
        for i, s in enumerate(sig):
            s_next = sig[i + 1] if i + 1 < len(sig) else 0.0
            for _ in range(corrector_steps):
                x = _langevin(x, (_denoise(prior, x, s) - x) / s**2, snr, gen)
            g2 = s**2 - s_next**2
            x = x + g2 * (_denoise(prior, x, s) - x) / s**2
            if s_next > 0:
                x = x + math.sqrt(g2) * _cnoise(x.shape, gen, prior.device)
            if progress is not None:
                progress(i + 1, len(sig), "pc sampler")
        x = _denoise(prior, x, sig[-1])
    return _out(x, output)


@with_threads
def sample_fast(prior: ScorePrior, shape, steps: int = 20, eta: float = 0.0, seed: int = 0,
                schedule: str = "karras", output: str = "numpy", progress: ProgressFn | None = None):
    """Unconditional DDIM-style sampling: one network call per step (module docstring).

    Parameters
    ----------
    eta : float
        0 = deterministic (probability-flow ODE), 1 = as much fresh noise as ancestral sampling.

    Other parameters and the result as :func:`sample_pc`.
    """
    gen, sig, x = _start(prior, shape, steps, schedule, seed)
    with torch.no_grad():
        for i, s in enumerate(sig):
            d = _denoise(prior, x, s)
            if i + 1 == len(sig):
                x = d
            else:
                x = _ddim_step(x, d, s, sig[i + 1], eta, gen)
            if progress is not None:
                progress(i + 1, len(sig), "fast sampler")
    return _out(x, output)


def _ddim_step(x: torch.Tensor, d: torch.Tensor, s: float, s_next: float, eta: float,
               gen: torch.Generator) -> torch.Tensor:
    c = eta * s_next * math.sqrt(max(1 - s_next**2 / s**2, 0.0))
    x = d + math.sqrt(max(s_next**2 - c**2, 0.0)) * (x - d) / s
    if c > 0:
        x = x + c * _cnoise(x.shape, gen, x.device)
    return x


def estimate_norm(physics, shape: tuple[int, int, int], device: torch.device, iters: int = 15,
                  seed: int = 0) -> float:
    """Power-iteration estimate of ``|A|^2`` (largest eigenvalue of ``A^H A``) on images of
    ``shape`` ``(n, H, W)`` (only the first image is used)."""
    gen = torch.Generator().manual_seed(seed)
    v = _cnoise((1,) + tuple(shape[1:]), gen, device)
    lam = 1.0
    for _ in range(iters):
        v = v / torch.clamp(_norms(v).reshape(-1, 1, 1), min=1e-30)
        u = physics.A_adjoint(physics.A(v))
        lam = float(_norms(u)[0])
        v = u
    return lam


def _as_torch(y, device: torch.device) -> tuple[torch.Tensor, bool]:
    if torch.is_tensor(y):
        return y.to(device), True
    y = np.asarray(y)
    if not np.all(np.isfinite(y)):
        raise ValueError("y: has NaN or infinite values")
    return torch.from_numpy(np.ascontiguousarray(y.astype(np.complex64) if np.iscomplexobj(y)
                                                 else y.astype(np.float32))).to(device), False


#: What the callback of :func:`posterior_sample` may be given (``callback_image``).
CALLBACK_IMAGES = ("consistent", "denoised")


@with_threads
def posterior_sample(prior: ScorePrior, physics, y, steps: int = 50, method: str = "diffpir",
                     noise_sigma: float | None = None, n_samples: int | None = None, seed: int = 0,
                     x_init=None, scale: float | None = None, sigma_start: float | None = None,
                     lam: float = 1.0, zeta: float = 0.3, dc_iters: int = 5, ls_iters: int = 30,
                     corrector_steps: int = 1, snr: float = 0.16, schedule: str | None = None,
                     callback: Callable[[int, float, torch.Tensor], None] | None = None,
                     callback_image: str = "consistent",
                     progress: ProgressFn | None = None, return_info: bool = False):
    """Sample the posterior ``p(x | y)`` of ``y = A x + n`` under the diffusion prior.

    Parameters
    ----------
    prior : ScorePrior
    physics : object with ``A``, ``A_adjoint`` (:mod:`mrideblur.physics.operators`)
        Applied to complex torch images ``(n, H, W)`` on the prior's device.
    y : array or tensor
        Measurements of one image: ``physics.A`` of an ``(1, H, W)`` image is ``(1, *y.shape)``.
    steps : int
        Noise levels (network calls: ``steps`` for diffpir, ``steps * (1 + corrector_steps)``
        for pc).
    method : {"diffpir", "pc"}
    noise_sigma : float, optional
        Noise std per real channel of ``y`` (data units); default ``physics.noise_sigma`` or 0.
    n_samples : int, optional
        ``None``: one sample, returned as ``(H, W)``; an integer: that many, ``(n, H, W)``.
    seed : int
    x_init : (H, W) array or tensor, optional
        Starting estimate (data units); default: least squares by CG from ``A^H y``.
    scale : float, optional
        Image scale (data units per prior unit); default: 99.9th percentile of ``|x_init|``.
    sigma_start : float, optional
        First noise level (prior units); default ``prior.sde.sigma_max``.
    lam : float
        Weight of the prior proxy in the data-consistency solve (diffpir).
    zeta : float
        Share of fresh noise when re-noising (diffpir; 0 = deterministic except the start).
    dc_iters : int
        CG iterations of each data-consistency solve.
    ls_iters : int
        CG iterations of the least-squares start.
    corrector_steps, snr : int, float
        Langevin corrector (pc).
    schedule : {"geometric", "karras"}, optional
        Default: karras for diffpir, geometric for pc.
    callback : callable ``(i, sigma, x0)``, optional
        After each step; ``x0`` the current clean estimate (n, H, W), data units. The physics may
        be updated inside it (e.g. new motion parameters).
    callback_image : {"consistent", "denoised"}
        Which clean estimate the callback gets from the diffpir sampler: the one after the
        data-consistency solve, or the prior's denoised estimate before it (the pc sampler's
        estimate is the denoised one at every step but the last).
    progress : callable ``(step, total, message)``, optional
    return_info : bool
        Also return a dict: ``scale``, ``x_init``, ``residual`` (final ``|A x - y|`` per sample),
        ``sigmas``.

    Notes
    -----
    With a ``callback`` the physics may change between steps, so ``A^H y`` is recomputed after
    every callback.

    Returns
    -------
    The image(s), numpy complex64 when ``y`` is numpy, torch when it is torch (the prior's
    device); ``(image, info)`` with ``return_info``.
    """
    if method not in ("diffpir", "pc"):
        raise ValueError(f"method: expected 'diffpir' or 'pc', got {method!r}")
    if callback_image not in CALLBACK_IMAGES:
        raise ValueError(f"callback_image: expected one of {CALLBACK_IMAGES}, got {callback_image!r}")
    if steps < 2:
        raise ValueError(f"steps: expected >= 2, got {steps}")
    dev = prior.device
    yt, y_torch = _as_torch(y, dev)
    yt = yt[None]
    n = 1 if n_samples is None else int(n_samples)
    if n < 1:
        raise ValueError(f"n_samples: expected >= 1, got {n}")
    if noise_sigma is None:
        noise_sigma = float(getattr(physics, "noise_sigma", 0.0) or 0.0)
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        aty = physics.A_adjoint(yt)
        if not aty.is_complex():
            aty = aty.to(torch.complex64)
        if x_init is None:
            x_ls = cg_normal(physics, aty, 0.0, None, ls_iters)
        else:
            x_ls, _ = _as_torch(x_init, dev)
            x_ls = x_ls.to(torch.complex64).reshape(aty.shape)
        if scale is None:
            scale = float(torch.quantile(torch.abs(x_ls).flatten().float(), 0.999))
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale: expected > 0, got {scale} (is y all zero?)")
        sy = noise_sigma / scale

        def data_term() -> torch.Tensor:
            a = physics.A_adjoint(yt)
            return (a if a.is_complex() else a.to(torch.complex64)).expand(n, *aty.shape[1:]) / scale

        aty_s = aty.expand(n, *aty.shape[1:]) / scale
        s0 = prior.sde.sigma_max if sigma_start is None else float(sigma_start)
        sched = schedule or ("karras" if method == "diffpir" else "geometric")
        sig = prior.sde.sigmas(steps, sched, sigma_max=s0).tolist()
        x = x_ls.expand(n, *x_ls.shape[1:]) / scale + sig[0] * _cnoise((n,) + tuple(x_ls.shape[1:]), gen, dev)
        L = estimate_norm(physics, x.shape, dev) if method == "pc" else 1.0
        x0 = x
        for i, s in enumerate(sig):
            s_next = sig[i + 1] if i + 1 < len(sig) else 0.0
            if method == "diffpir":
                d = _denoise(prior, x, s)
                mu = lam * sy**2 / s**2
                x0 = cg_normal(physics, aty_s + mu * d, mu, d, dc_iters)
                if s_next > 0:
                    eps = (x - x0) / s
                    x = x0 + s_next * (math.sqrt(1 - zeta) * eps + math.sqrt(zeta) * _cnoise(x.shape, gen, dev))
            else:
                gamma = sy**2 + s**2 * L

                def post_score(v: torch.Tensor, s=s, gamma=gamma) -> torch.Tensor:
                    return (_denoise(prior, v, s) - v) / s**2 + (aty_s - physics.A_adjoint(physics.A(v))) / gamma

                for _ in range(corrector_steps):
                    x = _langevin(x, post_score(x), snr, gen)
                g2 = s**2 - s_next**2
                x = x + g2 * post_score(x)
                if s_next > 0:
                    x = x + math.sqrt(g2) * _cnoise(x.shape, gen, dev)
                    x0 = _denoise(prior, x, s_next)
                else:
                    d = _denoise(prior, x, s)
                    mu = lam * sy**2 / s**2
                    x0 = cg_normal(physics, aty_s + mu * d, mu, d, dc_iters)
            if callback is not None:
                callback(i, s, (d if callback_image == "denoised" and method == "diffpir" else x0) * scale)
                aty_s = data_term()  # the physics may have changed
            if progress is not None:
                progress(i + 1, len(sig), f"posterior ({method})")
        xs = x0 * scale
        residual = _norms(physics.A(xs) - yt)
    out = xs if y_torch else xs.cpu().numpy().astype(np.complex64)
    if n_samples is None:
        out = out[0]
    if return_info:
        info = {"scale": scale, "x_init": x_ls[0] if y_torch else x_ls[0].cpu().numpy(),
                "residual": residual.cpu().numpy(), "sigmas": sig}
        return out, info
    return out
