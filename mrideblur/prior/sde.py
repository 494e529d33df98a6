"""The variance-exploding (VE) SDE noise schedule of Song et al. 2021 and its discretisations.

Forward process: ``dx = sqrt(d[sigma^2(t)]/dt) dw`` on ``t in [0, 1]``, so that
``x_t = x_0 + sigma(t) z`` with the geometric schedule

    sigma(t) = sigma_min * (sigma_max / sigma_min) ** t.

``sigma`` is the standard deviation of the Gaussian noise in each real channel: for a complex
image, its real and imaginary parts each get ``sigma`` (``E|n|^2 = 2 sigma^2`` per pixel).
The defaults (0.005 .. 1) are relative to images scaled so that ``max |x| = 1``: at
``sigma_min`` the noise is far below any structure, and at ``sigma_max`` it is about three times
the typical pixel value -- enough for posterior sampling, which starts from an estimate
(zero-filled, adjoint) re-noised to ``sigma_max`` rather than from pure noise (as DiffPIR and
score-MRI do). An unconditional sample from ``N(0, sigma_max^2)`` still works but its
large-scale layout is only loosely constrained.

Training draws ``t ~ U(0, 1)``, i.e. ``log sigma`` uniform (:meth:`VESDE.sample_sigma`).
Sampling uses a decreasing list of noise levels (:meth:`VESDE.sigmas`): the geometric one of the
SDE, or Karras et al.'s ``rho``-schedule which spends more steps at small ``sigma``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["VESDE"]


@dataclass(frozen=True)
class VESDE:
    """Variance-exploding SDE with a geometric noise schedule (see the module docstring).

    Attributes
    ----------
    sigma_min, sigma_max : float
        Noise standard deviations at ``t = 0`` and ``t = 1`` (per real channel).
    """

    sigma_min: float = 0.005
    sigma_max: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"VESDE: expected 0 < sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}")

    def sigma(self, t: torch.Tensor | float) -> torch.Tensor:
        """``sigma(t)`` for ``t`` in [0, 1] (tensor or float)."""
        t = torch.as_tensor(t, dtype=torch.float64 if isinstance(t, float) else None)
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def t_of_sigma(self, sigma: torch.Tensor | float) -> torch.Tensor:
        """Inverse of :meth:`sigma`."""
        sigma = torch.as_tensor(sigma)
        return torch.log(sigma / self.sigma_min) / math.log(self.sigma_max / self.sigma_min)

    def g2(self, t: torch.Tensor | float) -> torch.Tensor:
        """Squared diffusion coefficient ``d sigma^2 / dt = 2 sigma^2 log(sigma_max/sigma_min)``."""
        return 2 * self.sigma(t) ** 2 * math.log(self.sigma_max / self.sigma_min)

    def sample_sigma(self, n: int, generator: torch.Generator | None = None,
                     device: torch.device | str | None = None) -> torch.Tensor:
        """``n`` training noise levels, ``t ~ U(0, 1)`` (log-uniform ``sigma``), float32."""
        t = torch.rand(n, generator=generator, device=device)
        return self.sigma(t).float()

    def sigmas(self, n: int, schedule: str = "geometric", rho: float = 7.0,
               sigma_max: float | None = None, sigma_min: float | None = None) -> torch.Tensor:
        """``n`` decreasing noise levels from ``sigma_max`` to ``sigma_min`` (float64).

        Parameters
        ----------
        n : int
            Number of levels (>= 2).
        schedule : {"geometric", "karras"}
            ``"geometric"``: equal steps in ``log sigma`` (the SDE's own uniform ``t`` grid).
            ``"karras"``: ``(smax^(1/rho) + i/(n-1) (smin^(1/rho) - smax^(1/rho)))^rho``,
            denser at small noise (Karras et al. 2022); better for few steps.
        sigma_max, sigma_min : float, optional
            Start / end elsewhere than the SDE's range (e.g. start a posterior sampler at a
            smaller noise level from a good initial estimate).
        """
        if n < 2:
            raise ValueError(f"n: expected >= 2 noise levels, got {n}")
        hi = self.sigma_max if sigma_max is None else float(sigma_max)
        lo = self.sigma_min if sigma_min is None else float(sigma_min)
        if not 0 < lo <= hi:
            raise ValueError(f"sigmas: expected 0 < sigma_min <= sigma_max, got {lo}, {hi}")
        i = torch.linspace(0, 1, n, dtype=torch.float64)
        if schedule == "geometric":
            return hi * (lo / hi) ** i
        if schedule == "karras":
            return (hi ** (1 / rho) + i * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
        raise ValueError(f"schedule: expected 'geometric' or 'karras', got {schedule!r}")

    def to_dict(self) -> dict:
        return {"type": "VE", "sigma_min": self.sigma_min, "sigma_max": self.sigma_max}

    @classmethod
    def from_dict(cls, d: dict) -> "VESDE":
        return cls(float(d.get("sigma_min", 0.005)), float(d.get("sigma_max", 1.0)))
