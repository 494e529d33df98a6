"""A patch classifier of linear motion blur, after Sun et al., "Learning a convolutional neural
network for non-uniform motion blur removal" (CVPR 2015), sized for a CPU.

Sun et al. observe that a local motion blur is close to a straight streak, and let a CNN tell,
for each image patch, which straight-line kernel blurred it: a classification over a discrete set
of lengths and directions (:data:`MOTION_CLASSES`; length 1 is no blur).  Their kernel field is
the per-patch answer smoothed by a Markov random field, then a non-uniform deconvolution
(:mod:`mrideblur.estimators.kernel_field`).

Network (:class:`MotionCNN`): four 3x3 convolution layers with ReLU and max-pooling on a
``(1, P, P)`` grey patch (``P = 32``), the patch's mean removed and its scale normalised, then a
linear layer to the class scores; trained with cross-entropy on patches of the training
photographs blurred by the class kernels (:class:`MotionPatches`) with the package's loop.
Sun et al. also rotate patches to multiply the direction classes; here the directions are
classes of their own (every 15 degrees).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import signal
from torch import nn

from ..physics.kernels import linear_motion_kernel
from .blur_data import training_photos

__all__ = ["KERNEL_SIZE", "MOTION_CLASSES", "MotionCNN", "MotionCNNConfig", "MotionPatches", "class_kernel",
           "motion_loss"]

#: (length px, angle degrees) of every class: no blur, then lengths 3-31 px every 2 px, each at
#: 12 directions (0, 15, ..., 165 degrees; a streak has no sign).
MOTION_CLASSES: tuple[tuple[int, float], ...] = ((1, 0.0),) + tuple(
    (length, float(angle)) for length in range(3, 32, 2) for angle in range(0, 180, 15))
#: Side of every class kernel (the longest streak fits).
KERNEL_SIZE = 33


def class_kernel(index: int, size: int = KERNEL_SIZE) -> np.ndarray:
    """The ``(size, size)`` kernel of class ``index`` of :data:`MOTION_CLASSES` (sum 1)."""
    length, angle = MOTION_CLASSES[index]
    if length <= 1:
        k = np.zeros((size, size))
        k[size // 2, size // 2] = 1.0
        return k
    return linear_motion_kernel(float(length), angle, size=size)


@dataclass
class MotionCNNConfig:
    """Network shape: ``channels`` of the four convolution layers, ``patch`` side in pixels."""

    channels: tuple[int, int, int, int] = (32, 48, 64, 96)
    patch: int = 32

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "MotionCNNConfig":
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "channels" in d:
            d["channels"] = tuple(d["channels"])
        return cls(**d)


class MotionCNN(nn.Module):
    """Class scores ``(batch, len(MOTION_CLASSES))`` of grey patches ``(batch, 1, P, P)``."""

    def __init__(self, config: MotionCNNConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or MotionCNNConfig()
        c = (1,) + tuple(cfg.channels)
        self.convs = nn.ModuleList(nn.Conv2d(c[i], c[i + 1], 3, padding=1) for i in range(4))
        side = cfg.patch // 8  # three poolings
        self.head = nn.Linear(c[-1] * side * side, len(MOTION_CLASSES))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        x = patches - patches.mean(dim=(-2, -1), keepdim=True)
        x = x / (x.std(dim=(-2, -1), keepdim=True) + 1e-3)
        for i, conv in enumerate(self.convs):
            x = F.relu(conv(x))
            if i < 3:
                x = F.max_pool2d(x, 2)
        return self.head(x.flatten(1))


def motion_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the class scores."""
    return F.cross_entropy(scores, labels)


class MotionPatches:
    """An endless stream of (blurred patch, class) pairs: a random training photograph region,
    rescaled by a random factor in [0.5, 1], blurred by a random class kernel (valid), white noise
    of a level in ``noise_range``; patches with almost no texture are redrawn (they carry no
    information on the blur).  ``photos`` replaces the built-in photographs (tests)."""

    def __init__(self, patch: int = 32, noise_range: tuple[float, float] = (0.005, 0.02),
                 photos: list[np.ndarray] | None = None) -> None:
        self.patch = int(patch)
        self.noise_range = tuple(float(v) for v in noise_range)
        self.photos = training_photos() if photos is None else photos
        self.kernels = [class_kernel(i) for i in range(len(MOTION_CLASSES))]

    def pair(self, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        n = self.patch + KERNEL_SIZE - 1
        label = int(rng.integers(len(MOTION_CLASSES)))
        for _ in range(20):
            img = self.photos[int(rng.integers(len(self.photos)))]
            step = 2 if rng.uniform() < 0.5 and min(img.shape) >= 2 * n + 2 else 1
            y0 = int(rng.integers(0, img.shape[0] - step * n + 1))
            x0 = int(rng.integers(0, img.shape[1] - step * n + 1))
            region = img[y0 : y0 + step * n : step, x0 : x0 + step * n : step].astype(np.float64)
            if region.std() > 0.03:
                break
        blurred = signal.fftconvolve(region, self.kernels[label], mode="valid")
        blurred = blurred + rng.normal(0.0, rng.uniform(*self.noise_range), blurred.shape)
        return blurred.astype(np.float32), label

    def batch(self, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(patches (size, 1, P, P) float32, labels (size,) int64)``."""
        pairs = [self.pair(rng) for _ in range(size)]
        return np.stack([p[0] for p in pairs])[:, None], np.array([p[1] for p in pairs], dtype=np.int64)
