"""The score network: a small, fully convolutional UNet of the DDPM / NCSN++ family and the
noise-level preconditioning that turns it into a denoiser.

Layout (after Ho et al. 2020 "DDPM" and Song et al. 2021 "NCSN++", as in deepinv's
``DiffUNet`` / ``NCSNpp``, rewritten here -- see :mod:`mrideblur.prior`): a 3x3 input
convolution, then per resolution level ``num_res_blocks`` residual blocks (GroupNorm, SiLU,
3x3 convolutions, the noise embedding added as a per-channel scale and shift -- "FiLM"), a
stride-2 convolution down; two residual blocks at the bottom; the mirror image up (nearest
upsampling + 3x3 convolution) with the encoder's activations concatenated on the way; GroupNorm,
SiLU and a zero-initialised 3x3 output convolution. Residual sums are scaled by ``1/sqrt(2)``
(NCSN++'s ``skip_rescale``). There is **no self-attention**: every layer is a convolution or a
per-pixel operation, so the network runs on any image size that is a multiple of
``2**(levels-1)`` (:class:`Denoiser` pads other sizes) and behaves the same at 192x192 as on the
64x64 crops it was trained on (receptive field ~ 100 pixels, larger than any structure a
denoiser at ``sigma <= 1`` needs).

The noise level enters as Gaussian random Fourier features of ``log(sigma) / 4`` (NCSN++'s
``GaussianFourierProjection``; EDM's ``c_noise``) followed by a two-layer MLP.

:class:`Denoiser` wraps the UNet ``F`` with the preconditioning of Karras et al. 2022 ("EDM")::

    D(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, log(sigma) / 4)
    c_skip = sd^2 / (sigma^2 + sd^2),  c_out = sigma sd / sqrt(sigma^2 + sd^2),
    c_in = 1 / sqrt(sigma^2 + sd^2)

(``sd`` = ``sigma_data``, the per-channel standard deviation of the training images), so that
``F``'s input and target have unit variance at every noise level. ``D`` is the MMSE denoiser
``E[x0 | x0 + sigma z]``; the score of the noisy density is ``(D(x, sigma) - x) / sigma^2``
(Tweedie). Tensors here are real ``(batch, channels, H, W)``; complex images are two channels
(real, imaginary) -- :mod:`mrideblur.prior.score` converts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNetConfig", "UNet", "Denoiser"]


@dataclass
class UNetConfig:
    """Hyper-parameters of :class:`UNet` (stored in checkpoints; ``UNetConfig(**d)`` rebuilds).

    Attributes
    ----------
    in_channels : int
        2 for complex images (real, imaginary).
    channels : tuple of int
        Feature channels per resolution level (one level per entry; ``len - 1`` downsamplings).
    num_res_blocks : int
        Residual blocks per level on the way down (one more on the way up).
    emb_dim : int
        Width of the noise-level embedding.
    groups : int
        GroupNorm groups (must divide every entry of ``channels``).
    dropout : float
    sigma_data : float
        Per-channel standard deviation of the training images (EDM preconditioning).
    fourier_scale : float
        Standard deviation of the random Fourier frequencies of the noise embedding.
    """

    in_channels: int = 2
    channels: tuple[int, ...] = (16, 32, 48, 64)
    num_res_blocks: int = 1
    emb_dim: int = 64
    groups: int = 8
    dropout: float = 0.0
    sigma_data: float = 0.4
    fourier_scale: float = 4.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        d = dict(d)
        d["channels"] = tuple(d.get("channels", cls.channels))
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    @property
    def multiple(self) -> int:
        """Image sides must be multiples of this (``2**(levels-1)``)."""
        return 2 ** (len(self.channels) - 1)


class FourierEmbedding(nn.Module):
    """Random Fourier features ``[sin(2 pi w s), cos(2 pi w s)]`` of a scalar per sample."""

    def __init__(self, dim: int, scale: float) -> None:
        super().__init__()
        self.register_buffer("freqs", torch.randn(dim // 2) * scale)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        arg = 2 * math.pi * s[:, None] * self.freqs[None, :]
        return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, FiLM by the noise embedding, GroupNorm-SiLU-dropout-conv, + skip."""

    def __init__(self, cin: int, cout: int, emb_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.norm2 = nn.GroupNorm(min(groups, cout), cout)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)))
        return (self.skip(x) + h) / math.sqrt(2.0)


class UNet(nn.Module):
    """``F(x, c_noise)``: (B, C, H, W) real, (B,) -> (B, C, H, W); H, W multiples of
    ``config.multiple``."""

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        cfg = config or UNetConfig()
        self.config = cfg
        ch = list(cfg.channels)
        e = cfg.emb_dim
        self.embed = FourierEmbedding(e, cfg.fourier_scale)
        self.emb_mlp = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        self.conv_in = nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips = [ch[0]]
        c = ch[0]
        for lvl, cl in enumerate(ch):
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResBlock(c, cl, e, cfg.groups, cfg.dropout))
                c = cl
                skips.append(c)
            self.down.append(blocks)
            if lvl < len(ch) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid = nn.ModuleList([ResBlock(c, c, e, cfg.groups, cfg.dropout) for _ in range(2)])
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for lvl in reversed(range(len(ch))):
            blocks = nn.ModuleList()
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(ResBlock(c + skips.pop(), ch[lvl], e, cfg.groups, cfg.dropout))
                c = ch[lvl]
            self.up.append(blocks)
            if lvl > 0:
                self.upsample.append(nn.Conv2d(c, c, 3, padding=1))
        self.norm_out = nn.GroupNorm(min(cfg.groups, c), c)
        self.conv_out = nn.Conv2d(c, cfg.in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        emb = self.emb_mlp(self.embed(c_noise))
        h = self.conv_in(x)
        hs = [h]
        for lvl, blocks in enumerate(self.down):
            for blk in blocks:
                h = blk(h, emb)
                hs.append(h)
            if lvl < len(self.downsample):
                h = self.downsample[lvl](h)
                hs.append(h)
        for blk in self.mid:
            h = blk(h, emb)
        for i, blocks in enumerate(self.up):
            for blk in blocks:
                h = blk(torch.cat([h, hs.pop()], dim=1), emb)
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


class Denoiser(nn.Module):
    """EDM-preconditioned denoiser ``D(x, sigma)`` around a :class:`UNet` (see module docstring).

    ``forward(x, sigma)``: ``x`` (B, C, H, W) real, any H, W (reflect-padded to a multiple of
    ``config.multiple`` and cropped back); ``sigma`` a float or (B,) tensor, the standard
    deviation of the Gaussian noise in each real channel. Returns the denoised (B, C, H, W).
    """

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.net = UNet(config)
        self.config = self.net.config

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        b, _, h, w = x.shape
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
        if sigma.numel() == 1:
            sigma = sigma.expand(b)
        s = sigma[:, None, None, None]
        sd = self.config.sigma_data
        c_skip = sd**2 / (s**2 + sd**2)
        c_out = s * sd / torch.sqrt(s**2 + sd**2)
        c_in = 1 / torch.sqrt(s**2 + sd**2)
        m = self.config.multiple
        ph, pw = (-h) % m, (-w) % m
        xin = c_in * x
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            xin = F.pad(xin, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode=mode)
        out = self.net(xin, torch.log(sigma) / 4)
        if ph or pw:
            out = out[..., ph // 2: ph // 2 + h, pw // 2: pw // 2 + w]
        return c_skip * x + c_out * out
