"""Score-based diffusion prior for complex MR images (and any complex or real 2D image).

Pieces, each in its own module:

- :mod:`~mrideblur.prior.unet` -- the network: a small, fully convolutional DDPM/NCSN++-style
  UNet (no attention) with EDM preconditioning, :class:`Denoiser` ``D(x, sigma)``;
- :mod:`~mrideblur.prior.sde` -- the variance-exploding SDE noise schedule :class:`VESDE`;
- :mod:`~mrideblur.prior.score` -- :class:`ScorePrior`: load the shipped weights or a
  checkpoint, ``denoise`` / ``score`` complex images (numpy or torch);
- :mod:`~mrideblur.prior.samplers` -- unconditional predictor-corrector and fast (Heun /
  DDIM-style) samplers, and posterior samplers with data consistency for any linear physics;
- :mod:`~mrideblur.physics.operators` -- the physics interface the samplers use (``A``,
  ``A_adjoint``) and small generic operators (masked Fourier sampling, convolution);
- :mod:`~mrideblur.prior.data` -- training slices, augmentation (random smooth phase), the
  held-out split; :mod:`~mrideblur.prior.train` -- denoising score matching with EMA,
  checkpoints and exact resume; :mod:`mrideblur.cli.train_prior` -- ``mrideblur train-prior`` (a shell).

Complex images are handled as two real channels (real, imaginary); the training slices carry a
random smooth phase and a random global phase, so the prior does not assume real images (see
:mod:`mrideblur.prior.data`). Images are expected on the scale ``max |x| ~ 1``.

Why not deepinv: its import pulls in torchvision, which breaks next to the pinned CPU torch
build; the pieces needed here (an NCSN++/DDPM UNet, the VE SDE, DPS/DiffPIR-style data
consistency) are small, so they are written here after deepinv's design
(``deepinv.models.DiffUNet``/``NCSNpp``, ``deepinv.sampling.VarianceExplodingDiffusion``,
``DiffPIR``, ``DPS``) with a physics interface of the same shape (``A``, ``A_adjoint``).

Submodules are imported on first use, so ``import mrideblur.prior.data`` does not load torch.
"""

from __future__ import annotations

import importlib

__all__ = [
    "Denoiser",
    "UNet",
    "UNetConfig",
    "VESDE",
    "ScorePrior",
    "sample_pc",
    "sample_fast",
    "posterior_sample",
    "train",
    "TrainConfig",
]

_WHERE = {
    "Denoiser": "unet",
    "UNet": "unet",
    "UNetConfig": "unet",
    "VESDE": "sde",
    "ScorePrior": "score",
    "sample_pc": "samplers",
    "sample_fast": "samplers",
    "posterior_sample": "samplers",
    "train": "train",
    "TrainConfig": "train",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
