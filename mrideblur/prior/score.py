"""The diffusion prior as an object: load weights, denoise, score.

>>> from mrideblur.prior import ScorePrior
>>> prior = ScorePrior.default()                  # weights shipped in the package
>>> prior = ScorePrior.load("runs/prior/")        # or a training checkpoint / exported weights
>>> xd = prior.denoise(x, 0.05)                   # x: (H, W) or (n, H, W) complex, numpy or torch
>>> s = prior.score(x, 0.05)                      # grad log p_sigma(x) = (D(x, sigma) - x) / sigma^2

Conventions
-----------
- Images are complex (``(H, W)`` or ``(n, H, W)``), numpy or torch; the network sees the real
  and imaginary parts as two channels. Real input is treated as complex with zero imaginary
  part and the real part of the result is returned.
- Scale: the prior was trained on slices scaled to ``max |x| = 1`` (see
  :mod:`mrideblur.prior.data`); scale your image the same way (``x / max|x|``, or the 99.9th
  percentile of a noisy estimate) and scale the result back.
- ``sigma`` is the standard deviation of the Gaussian noise in each real channel (so a complex
  pixel has ``E|n|^2 = 2 sigma^2``), a float or one value per image; the network was trained
  for ``sigma`` in ``[sde.sigma_min, sde.sigma_max]`` (0.005 .. 1 by default).
- Output type follows the input: numpy in, numpy (complex64) out; torch in, torch out on the
  input's device. Computation runs on the prior's ``device`` (``"cpu"`` or ``"cuda"``). A torch
  input that requires grad keeps the graph (for DPS-style guidance); otherwise no graph is built.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .sde import VESDE
from .train import read_prior_file
from .unet import Denoiser, UNetConfig

__all__ = ["MNI152_WEIGHTS", "ScorePrior", "SHIPPED_WEIGHTS"]

#: The default weights shipped inside the package: the MNI152-only weights fine-tuned on the
#: training mixture (see weights/mri_prior_mixture.json for how they were made). The MNI152-only
#: weights, the default until 2026-12-07, ship beside them as weights/mri_prior_mni152.pt.
SHIPPED_WEIGHTS = Path(__file__).resolve().parent / "weights" / "mri_prior_mixture.pt"
#: The MNI152-only weights; blind deblurring with the prior keeps them as its default
#: (:mod:`mrideblur.estimators.blind_diffusion`: lower kernel error ratios on MNI152, Colin27 and
#: INIA19 slices than the mixture's, benchmarks/blind_diffusion.md).
MNI152_WEIGHTS = SHIPPED_WEIGHTS.with_name("mri_prior_mni152.pt")


class ScorePrior:
    """A trained denoiser ``D(x, sigma)`` and its noise schedule (module docstring).

    Parameters
    ----------
    denoiser : Denoiser
    sde : VESDE
    device : str or torch.device
    info : dict
        Provenance (training data, steps, seconds) when loaded from a file.
    """

    def __init__(self, denoiser: Denoiser, sde: VESDE | None = None, device: str | torch.device = "cpu",
                 info: dict | None = None) -> None:
        self.device = torch.device(device)
        self.net = denoiser.to(self.device).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.sde = sde or VESDE()
        self.info = dict(info or {})

    # ---------------------------------------------------------------------------- loading

    @classmethod
    def default(cls, device: str | torch.device = "cpu") -> "ScorePrior":
        """The prior shipped with the package (:data:`SHIPPED_WEIGHTS`)."""
        if not SHIPPED_WEIGHTS.is_file():
            raise ValueError(f"{SHIPPED_WEIGHTS}: the shipped prior weights are missing from this installation")
        return cls.load(SHIPPED_WEIGHTS, device=device)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu", ema: bool = True) -> "ScorePrior":
        """Load exported weights (``train-prior --export``, the shipped file) or a training
        checkpoint (file, or the ``--out`` folder holding ``checkpoint.pt``).

        Parameters
        ----------
        ema : bool
            From a training checkpoint, take the EMA weights (default) or the raw ones.
        """
        f = read_prior_file(path, ema)
        den = Denoiser(UNetConfig.from_dict(f["unet"]))
        den.load_state_dict(f["state"])
        info = {**f["info"], "path": str(f["path"])}
        return cls(den, VESDE.from_dict(f["sde"]), device=device, info=info)

    def to(self, device: str | torch.device) -> "ScorePrior":
        """Move to ``device`` (in place); returns ``self``."""
        self.device = torch.device(device)
        self.net.to(self.device)
        return self

    # ---------------------------------------------------------------------------- evaluation

    def denoise_channels(self, x2: torch.Tensor, sigma: torch.Tensor | float, batch_size: int = 16) -> torch.Tensor:
        """``D(x, sigma)`` on real ``(n, 2, H, W)`` tensors on the prior's device (no conversion)."""
        n = x2.shape[0]
        sig = torch.as_tensor(sigma, dtype=x2.dtype, device=x2.device).reshape(-1).expand(n)
        if torch.any(sig <= 0):
            raise ValueError("sigma: expected > 0")
        with torch.set_grad_enabled(x2.requires_grad):
            outs = [self.net(x2[i:i + batch_size], sig[i:i + batch_size]) for i in range(0, n, batch_size)]
        return torch.cat(outs) if len(outs) > 1 else outs[0]

    def denoise(self, x, sigma, batch_size: int = 16):
        """MMSE estimate ``E[x0 | x]`` of the clean image under the prior, ``x = x0 + sigma z``.

        Parameters
        ----------
        x : (H, W) or (n, H, W), complex (or real) numpy array or torch tensor
        sigma : float, or (n,) array / tensor
            Noise standard deviation per real channel (> 0).
        batch_size : int
            Images per network call.

        Returns
        -------
        Same shape and kind as ``x`` (numpy complex64 / torch complex64; real for real input).
        """
        x2, back = self._to_channels(x)
        sig = self._sigma(sigma, x2.shape[0])
        return back(self.denoise_channels(x2, sig, batch_size))

    def score(self, x, sigma, batch_size: int = 16):
        """``grad_x log p_sigma(x) = (D(x, sigma) - x) / sigma^2`` (Tweedie), same kind as ``x``.

        For a complex image the score is returned as one complex array: real part = derivative
        with respect to the real part, imaginary part = with respect to the imaginary part.
        """
        x2, back = self._to_channels(x)
        sig = self._sigma(sigma, x2.shape[0])
        d = self.denoise_channels(x2, sig, batch_size)
        return back((d - x2) / sig[:, None, None, None] ** 2)

    # ---------------------------------------------------------------------------- helpers

    def _sigma(self, sigma, n: int) -> torch.Tensor:
        s = torch.as_tensor(np.asarray(sigma, dtype=np.float32) if not torch.is_tensor(sigma) else sigma)
        s = s.to(device=self.device, dtype=torch.float32).reshape(-1)
        if s.numel() == 1:
            s = s.expand(n)
        if s.numel() != n:
            raise ValueError(f"sigma: expected a float or {n} values, got {s.numel()}")
        if torch.any(~torch.isfinite(s)) or torch.any(s <= 0):
            raise ValueError("sigma: expected finite values > 0")
        return s

    def _to_channels(self, x):
        """``x`` -> real (n, 2, H, W) float32 on the prior's device, and the inverse conversion."""
        is_torch = torch.is_tensor(x)
        t = x if is_torch else torch.from_numpy(np.ascontiguousarray(x))
        if t.ndim not in (2, 3):
            raise ValueError(f"x: expected an image (H, W) or a stack (n, H, W), got shape {tuple(t.shape)}")
        single = t.ndim == 2
        real_in = not t.is_complex()
        if not is_torch and not np.all(np.isfinite(x)):
            raise ValueError("x: has NaN or infinite values")
        src_device = t.device
        t = t.to(self.device)
        t = t.to(torch.complex64) if t.is_complex() else t.to(torch.float32).to(torch.complex64)
        if single:
            t = t[None]
        x2 = torch.view_as_real(t).permute(0, 3, 1, 2)
        if not (is_torch and x.requires_grad):
            x2 = x2.contiguous()

        def back(y2: torch.Tensor):
            z = torch.view_as_complex(y2.permute(0, 2, 3, 1).contiguous())
            if single:
                z = z[0]
            if real_in:
                z = z.real
            if is_torch:
                return z.to(src_device)
            return z.detach().cpu().numpy()

        return x2, back

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.net.parameters())
        return (f"ScorePrior({n} parameters, VE sigma {self.sde.sigma_min}..{self.sde.sigma_max}, "
                f"device={self.device}, steps={self.info.get('steps')})")
