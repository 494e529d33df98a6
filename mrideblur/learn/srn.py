"""A scale-recurrent deblurring network after Tao et al., "Scale-recurrent network for deep image
deblurring" (CVPR 2018), sized for a CPU.

The same encoder-decoder runs coarse to fine on ``nscale`` scales (factor 2 each).  At scale
``i`` its input is the blurred image at that scale next to the estimate of the previous,
coarser scale upsampled (at the coarsest scale, the blurred image itself), and a ConvLSTM at the
bottleneck carries a hidden state from scale to scale — the "scale recurrence"; the weights are
shared by all scales.  Encoder: three levels (``channels``, strides 1, 2, 2), each a 5x5
convolution and residual blocks of 3x3 convolutions (the paper's are 5x5: three times the cost
for a CPU); decoder: residual blocks and transposed convolutions with skip connections;
the output is added to the blurred input (the network predicts the correction).  Grey images
``(batch, 1, ny, nx)``; colour images go channel by channel (:func:`deblur_image`).

Loss (:func:`srn_loss`): mean squared error against the sharp image at every scale, the scales
weighted equally, as in the paper.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SRN", "SRNConfig", "deblur_image", "srn_loss"]


@dataclass
class SRNConfig:
    """Network shape.

    Attributes
    ----------
    channels : (int, int, int)
        Features of the three encoder levels.
    blocks : int
        Residual blocks per level, in the encoder and again in the decoder.
    nscale : int
        Scales of the coarse-to-fine recurrence (factor 2 each).
    """

    channels: tuple[int, int, int] = (24, 48, 64)
    blocks: int = 2
    nscale: int = 3

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SRNConfig":
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "channels" in d:
            d["channels"] = tuple(d["channels"])
        return cls(**d)

    @property
    def multiple(self) -> int:
        """Image sides must be multiples of this (two stride-2 levels at the coarsest scale)."""
        return 4 * 2 ** (self.nscale - 1)


class _ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(c, c, 3, padding=1)
        self.b = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(F.relu(self.a(x)))


class _ConvLSTM(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.gates = nn.Conv2d(2 * c, 4 * c, 3, padding=1)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        h, c = (torch.zeros_like(x), torch.zeros_like(x)) if state is None else state
        i, f, o, g = torch.chunk(self.gates(torch.cat([x, h], 1)), 4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)


class SRN(nn.Module):
    """Scale-recurrent encoder-decoder (module notes); ``forward`` returns the estimate at every
    scale, coarsest first, the last at the input's resolution."""

    def __init__(self, config: SRNConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or SRNConfig()
        c1, c2, c3 = cfg.channels
        nb = cfg.blocks
        self.in1 = nn.Conv2d(2, c1, 5, padding=2)
        self.enc1 = nn.Sequential(*[_ResBlock(c1) for _ in range(nb)])
        self.down2 = nn.Conv2d(c1, c2, 5, stride=2, padding=2)
        self.enc2 = nn.Sequential(*[_ResBlock(c2) for _ in range(nb)])
        self.down3 = nn.Conv2d(c2, c3, 5, stride=2, padding=2)
        self.enc3 = nn.Sequential(*[_ResBlock(c3) for _ in range(nb)])
        self.lstm = _ConvLSTM(c3)
        self.dec3 = nn.Sequential(*[_ResBlock(c3) for _ in range(nb)])
        self.up2 = nn.ConvTranspose2d(c3, c2, 4, stride=2, padding=1)
        self.dec2 = nn.Sequential(*[_ResBlock(c2) for _ in range(nb)])
        self.up1 = nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1)
        self.dec1 = nn.Sequential(*[_ResBlock(c1) for _ in range(nb)])
        self.out = nn.Conv2d(c1, 1, 5, padding=2)

    def _step(self, y: torch.Tensor, prev: torch.Tensor, state):
        e1 = self.enc1(F.relu(self.in1(torch.cat([y, prev], 1))))
        e2 = self.enc2(F.relu(self.down2(e1)))
        e3 = self.enc3(F.relu(self.down3(e2)))
        h, state = self.lstm(e3, state)
        d2 = self.dec2(F.relu(self.up2(self.dec3(h))) + e2)
        d1 = self.dec1(F.relu(self.up1(d2)) + e1)
        return y + self.out(d1), state

    def forward(self, y: torch.Tensor) -> list[torch.Tensor]:
        """``y`` ``(batch, 1, ny, nx)``, sides multiples of ``config.multiple``."""
        m = self.config.multiple
        if y.shape[-1] % m or y.shape[-2] % m:
            raise ValueError(f"image sides {tuple(y.shape[-2:])} must be multiples of {m} (pad first)")
        pyramid = [y]
        for _ in range(self.config.nscale - 1):
            pyramid.append(F.avg_pool2d(pyramid[-1], 2))
        outs: list[torch.Tensor] = []
        state = None
        prev = pyramid[-1]
        for level in reversed(range(self.config.nscale)):
            yi = pyramid[level]
            if outs:
                prev = F.interpolate(outs[-1], size=yi.shape[-2:], mode="bilinear", align_corners=False)
                state = tuple(F.interpolate(s, scale_factor=2, mode="bilinear", align_corners=False) for s in state)
            est, state = self._step(yi, prev, state)
            outs.append(est)
        return outs


def srn_loss(outs: list[torch.Tensor], sharp: torch.Tensor) -> torch.Tensor:
    """Mean squared error at every scale (the sharp image average-pooled to it), summed."""
    loss = outs[-1].new_zeros(())
    for est in outs:
        factor = sharp.shape[-1] // est.shape[-1]
        target = F.avg_pool2d(sharp, factor) if factor > 1 else sharp
        loss = loss + F.mse_loss(est, target)
    return loss


@torch.no_grad()
def deblur_image(model: SRN, image: np.ndarray, device: str | torch.device = "cpu") -> np.ndarray:
    """Run the network on a grey ``(ny, nx)`` or colour ``(ny, nx, 3)`` image (channel by channel).

    The image is padded by mirroring to a multiple of ``model.config.multiple`` (plus a margin of
    16 px, so the borders are not the network's edge) and cropped back.  Returns float64 of the
    input's shape.
    """
    x = np.asarray(image, dtype=np.float64)
    if x.ndim == 3:
        return np.stack([deblur_image(model, x[..., c], device) for c in range(x.shape[-1])], axis=-1)
    m = model.config.multiple
    margin = 16
    ny, nx = x.shape
    py, px = (-(ny + 2 * margin)) % m, (-(nx + 2 * margin)) % m
    pad = ((margin, margin + py), (margin, margin + px))
    xp = np.pad(x, pad, mode="reflect" if min(ny, nx) > margin else "edge")
    model.eval()
    t = torch.from_numpy(xp.astype(np.float32))[None, None].to(device)
    out = model(t)[-1][0, 0].cpu().numpy().astype(np.float64)
    return out[margin : margin + ny, margin : margin + nx]
