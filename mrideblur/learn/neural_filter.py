r"""A network that predicts a deconvolution filter per patch, after Chakrabarti, "A neural
approach to blind motion deblurring" (ECCV 2016), sized for a CPU.

For each ``P x P`` blurred patch ``y_p`` (``P = patch``, 64 by default) the network reads a
multi-resolution Fourier description of the patch and outputs the complex DFT coefficients
``G[f]`` of a ``P x P`` deconvolution filter; the restored patch is

    x_p = mean(y_p) + IDFT( G . DFT( w . (y_p - mean(y_p)) ) ),

of which the central ``P/2 x P/2`` pixels are kept (``w`` tapers the outer quarter of the patch
to zero so the circular convolution does not wrap edges into the centre).  ``G`` is predicted
as ``1 + network output`` (the identity filter at initialisation) with ``G[0] = 1``: a blur
kernel sums to one, so the filter keeps the mean.

Input features (the paper's band decomposition): the patch, mean removed and divided by its
standard deviation (the filter is linear, so its prediction should not depend on contrast), is
windowed (Hann) at three sizes — ``P``, ``P/2``, ``P/4`` pixels, centred — and of each window's
DFT only one band of frequencies is kept: ``max(|f_y|, |f_x|) <= 1/8`` cycles/pixel from the
largest window, ``(1/8, 1/4]`` from the middle one and ``(1/4, 1/2]`` from the smallest — low
frequencies need a long window to be resolved, high ones are local.  Real and imaginary parts
of the kept coefficients (half plane) form the input vector (720 numbers at ``P = 64``).

Network: ``layers`` fully connected hidden layers of ``hidden`` units (ReLU), then a linear map
to the ``P x (P/2 + 1)`` complex coefficients of ``G`` (real and imaginary parts).  The paper's
is larger (hidden layers of 2048 units, 65 px patches); this one has 2.2 M parameters.

Loss (:func:`neural_filter_loss`): mean squared error of the restored central ``P/2 x P/2``
pixels against the sharp ones.  Whole images (:func:`filter_image`): overlapping patches at a
stride of ``P/4``, their central outputs blended with a raised-cosine weight.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .blur_data import BlurPairs

__all__ = ["NeuralFilter", "NeuralFilterConfig", "NeuralFilterPatches", "filter_image", "neural_filter_loss"]


@dataclass
class NeuralFilterConfig:
    """Network shape.

    Attributes
    ----------
    patch : int
        Side ``P`` of the input patch (pixels, a multiple of 8); the output is its central
        ``P/2 x P/2``.
    hidden : int
        Units of each hidden layer.
    layers : int
        Hidden layers.
    """

    patch: int = 64
    hidden: int = 384
    layers: int = 3

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "NeuralFilterConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def _hann(n: int) -> torch.Tensor:
    w = torch.hann_window(n, periodic=False, dtype=torch.float64) if n > 1 else torch.ones(1, dtype=torch.float64)
    return torch.outer(w, w)


def _band(n: int, lo: float, hi: float) -> torch.Tensor:
    """Mask of the half-plane DFT bins (``rfft2`` layout, ``n x (n//2+1)``) with
    ``lo < max(|fy|, |fx|) <= hi`` (cycles/pixel; ``lo < 0`` includes DC)."""
    fy = torch.fft.fftfreq(n, dtype=torch.float64)[:, None].abs()
    fx = torch.fft.rfftfreq(n, dtype=torch.float64)[None, :]
    cheb = torch.maximum(fy, fx)
    return (cheb > lo) & (cheb <= hi + 1e-9)


def _taper(n: int) -> torch.Tensor:
    """1 on the central half of the patch, a raised cosine to 0 over each outer quarter."""
    q = n // 4
    ramp = 0.5 - 0.5 * torch.cos(torch.pi * (torch.arange(q, dtype=torch.float64) + 0.5) / q)
    w = torch.ones(n, dtype=torch.float64)
    w[:q] = ramp
    w[n - q :] = ramp.flip(0)
    return torch.outer(w, w)


class NeuralFilter(nn.Module):
    """Patch-wise deconvolution-filter predictor (module notes).

    ``forward(patches)`` takes ``(batch, 1, P, P)`` blurred patches and returns the restored
    central ``(batch, 1, P/2, P/2)`` pixels; :meth:`filters` returns the predicted ``G``.
    """

    def __init__(self, config: NeuralFilterConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or NeuralFilterConfig()
        p = cfg.patch
        if p % 8 or p < 16:
            raise ValueError(f"patch: expected a multiple of 8 >= 16, got {p}")
        self.sizes = (p, p // 2, p // 4)
        bands = ((-1.0, 0.125), (0.125, 0.25), (0.25, 0.5))
        for i, (s, (lo, hi)) in enumerate(zip(self.sizes, bands)):
            self.register_buffer(f"win{i}", _hann(s).float(), persistent=False)
            self.register_buffer(f"band{i}", _band(s, lo, hi), persistent=False)
        self.register_buffer("taper", _taper(p).float(), persistent=False)
        nin = 2 * sum(int(getattr(self, f"band{i}").sum()) for i in range(3))
        nout = 2 * p * (p // 2 + 1)
        dims = [nin] + [cfg.hidden] * cfg.layers
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.head = nn.Linear(cfg.hidden, nout)
        nn.init.zeros_(self.head.weight)  # start at the identity filter
        nn.init.zeros_(self.head.bias)

    def features(self, patches: torch.Tensor) -> torch.Tensor:
        """The band features ``(batch, nin)`` of ``(batch, 1, P, P)`` patches (module notes)."""
        x = patches[:, 0]
        x = x - x.mean(dim=(-2, -1), keepdim=True)
        x = x / (x.std(dim=(-2, -1), keepdim=True) + 1e-3)
        p = self.config.patch
        feats = []
        for i, s in enumerate(self.sizes):
            o = (p - s) // 2
            spec = torch.fft.rfft2(x[:, o : o + s, o : o + s] * getattr(self, f"win{i}")) / s
            kept = spec[:, getattr(self, f"band{i}")]
            feats += [kept.real, kept.imag]
        return torch.cat(feats, dim=1)

    def filters(self, patches: torch.Tensor) -> torch.Tensor:
        """Predicted filters ``G``, complex ``(batch, P, P/2 + 1)`` (``rfft2`` layout)."""
        h = self.features(patches)
        for layer in self.hidden:
            h = F.relu(layer(h))
        out = self.head(h)
        p = self.config.patch
        re, im = out.view(-1, 2, p, p // 2 + 1).unbind(1)
        g = torch.complex(1.0 + re, im)
        dc = torch.zeros_like(re)
        dc[:, 0, 0] = 1.0
        keep = 1.0 - dc
        return torch.complex(g.real * keep + dc, g.imag * keep)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        p = self.config.patch
        if patches.shape[-2:] != (p, p):
            raise ValueError(f"patches: expected (batch, 1, {p}, {p}), got {tuple(patches.shape)}")
        mean = patches.mean(dim=(-2, -1), keepdim=True)
        spec = torch.fft.rfft2((patches[:, 0] - mean[:, 0]) * self.taper)
        out = torch.fft.irfft2(self.filters(patches) * spec, s=(p, p))[:, None] + mean
        q = p // 4
        return out[..., q : p - q, q : p - q]


def neural_filter_loss(restored: torch.Tensor, sharp: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the restored centres against the sharp ones."""
    return F.mse_loss(restored, sharp)


class NeuralFilterPatches:
    """Training pairs: ``P x P`` blurred patches (:class:`BlurPairs`, valid camera-shake blur)
    and their sharp central ``P/2 x P/2`` pixels."""

    def __init__(self, patch: int, **pairs) -> None:
        self.patch = int(patch)
        self.pairs = BlurPairs(crop=self.patch, **pairs)

    def batch(self, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(blurred (size, 1, P, P), sharp centres (size, 1, P/2, P/2))``, float32."""
        blurred, sharp = self.pairs.batch(size, rng)
        q = self.patch // 4
        return blurred, np.ascontiguousarray(sharp[..., q : self.patch - q, q : self.patch - q])


@torch.no_grad()
def filter_image(model: NeuralFilter, image: np.ndarray, device: str | torch.device = "cpu",
                 chunk: int = 256) -> np.ndarray:
    """Restore a grey ``(ny, nx)`` image patch by patch (stride ``P/4``, central outputs blended
    with a raised-cosine weight; the image mirrored by ``P/2`` px at its borders first).

    Returns float64 of the input's shape.
    """
    x = np.asarray(image, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"image: expected a grey (ny, nx) array, got shape {x.shape}")
    p = model.config.patch
    c, q, stride = p // 2, p // 4, p // 4
    ny, nx = x.shape
    # pad so that the central outputs tile [0, ny) x [0, nx) with whole strides
    ty, tx = -(-max(ny - c, 0) // stride) * stride + c, -(-max(nx - c, 0) // stride) * stride + c
    pad = ((q, q + ty - ny), (q, q + tx - nx))
    mode = "reflect" if min(ny, nx) > q + max(ty - ny, tx - nx) else "edge"
    xp = np.pad(x, pad, mode=mode).astype(np.float32)
    starts = [(i, j) for i in range(0, ty - c + 1, stride) for j in range(0, tx - c + 1, stride)]
    ramp = np.sin(np.pi * (np.arange(c) + 0.5) / c) ** 2
    weight = np.outer(ramp, ramp) + 1e-6
    acc = np.zeros((ty, tx))
    norm = np.zeros((ty, tx))
    model.eval()
    for k in range(0, len(starts), chunk):
        block = starts[k : k + chunk]
        batch = np.stack([xp[i : i + p, j : j + p] for i, j in block])[:, None]
        out = model(torch.from_numpy(batch).to(device))[:, 0].cpu().numpy().astype(np.float64)
        for (i, j), o in zip(block, out):
            acc[i : i + c, j : j + c] += weight * o
            norm[i : i + c, j : j + c] += weight
    return (acc / norm)[:ny, :nx]
