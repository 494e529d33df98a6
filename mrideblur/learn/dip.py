"""Untrained generator networks for deep-image-prior fitting (Ulyanov et al. 2018), sized for a CPU.

A deep image prior is a network ``G_theta`` whose output, fitted to one image from a fixed random
input ``z``, reproduces structure before noise: its architecture is the prior and nothing is
learned from other images.  :class:`SkipGenerator` is the usual encoder-decoder with skip
connections, small (three levels of ``channels`` features, 3x3 convolutions, bilinear
upsampling): ``(1, c_in, ny, nx) -> (1, c_out, ny, nx)`` for sides that are multiples of 4.
:func:`generator_input` draws the fixed input from a seed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SkipGenerator", "generator_input"]


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, padding_mode="reflect"),
                         nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))


class SkipGenerator(nn.Module):
    """Encoder-decoder with skip connections for deep-prior fitting (module notes).

    Parameters
    ----------
    c_in, c_out : int
        Channels of the random input and of the output.
    channels : int
        Features at every level.
    skip : int
        Features of each skip connection.
    zero_out : bool
        Start with a zero output (the last layer's weights at zero): for a correction added to
        a starting image, or a residual that starts at nothing.
    """

    def __init__(self, c_in: int = 8, c_out: int = 1, channels: int = 32, skip: int = 4,
                 zero_out: bool = False) -> None:
        super().__init__()
        c = channels
        self.down = nn.ModuleList([nn.Sequential(_block(c_in, c, 2), _block(c, c)),
                                   nn.Sequential(_block(c, c, 2), _block(c, c))])
        self.skips = nn.ModuleList([_block(c_in, skip), _block(c, skip)])
        self.up = nn.ModuleList([nn.Sequential(_block(c + skip, c), _block(c, c)),
                                 nn.Sequential(_block(c + skip, c), _block(c, c))])
        self.out = nn.Conv2d(c, c_out, 1)
        if zero_out:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.shape[-1] % 4 or z.shape[-2] % 4:
            raise ValueError(f"input sides {tuple(z.shape[-2:])} must be multiples of 4")
        feats = [z]
        h = z
        for down in self.down:
            h = down(h)
            feats.append(h)
        for level in (1, 0):
            h = F.interpolate(h, size=feats[level].shape[-2:], mode="bilinear", align_corners=False)
            h = self.up[1 - level](torch.cat([h, self.skips[level](feats[level])], 1))
        return self.out(h)


def generator_input(channels: int, ny: int, nx: int, seed: int, scale: float = 0.1) -> torch.Tensor:
    """The fixed random input ``z`` ``(1, channels, ny, nx)``: uniform noise times ``scale``,
    drawn from ``seed`` (reproducible on any device)."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.rand((1, channels, ny, nx), generator=g) * scale
