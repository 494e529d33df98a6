"""Training pairs for the learned deblurring networks: built-in photographs blurred on the fly.

Photographs: scikit-image's bundled images listed in :data:`TRAIN_PHOTOS` (grey by luminance,
or one random colour channel, in [0, 1]).  The photographs of the package's deblurring
benchmarks (``benchmarks/images.py``: camera, astronaut, moon, coins) are never used, so the
benchmarks measure images the networks have not seen.

Each pair (:meth:`BlurPairs.batch`): a random photograph, scaled by a random factor in
``scale_range``, randomly flipped and turned by a multiple of 90 degrees, cropped to
``crop + m - 1`` pixels for an ``m x m`` camera-shake kernel drawn from a bank
(:func:`mrideblur.physics.kernels.camera_shake_kernel`, odd sizes in ``kernel_sizes``), blurred
with ``boundary="valid"`` — a real camera's blur, nothing assumed beyond the frame — plus white
noise of a random level in ``noise_range``; with ``reblur > 0`` that share of the pairs takes
the bank kernel re-scaled and turned (:func:`mrideblur.learn.reblur.interpolate_kernel`, ID-Blau's
re-blurring augmentation).  The target is the sharp crop aligned with the blurred ``crop x crop``
observation.  All randomness comes from the generator passed in, so a
training run is reproducible and resumable.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, signal

from ..io.images import LUMA
from ..physics.kernels import camera_shake_kernel
from .reblur import interpolate_kernel

__all__ = ["BENCHMARK_PHOTOS", "TRAIN_PHOTOS", "BlurPairs", "kernel_bank", "training_photos"]

#: scikit-image photographs the learned deblurring networks are trained on.
TRAIN_PHOTOS = ("chelsea", "coffee", "rocket", "clock", "brick", "grass", "gravel", "hubble_deep_field",
                "immunohistochemistry", "retina", "stereo_motorcycle", "page", "text", "cell")
#: Photographs kept out of training: the package's deblurring benchmarks use them.
BENCHMARK_PHOTOS = ("camera", "astronaut", "moon", "coins")


def training_photos(names: tuple[str, ...] = TRAIN_PHOTOS) -> list[np.ndarray]:
    """The photographs as float32 arrays: ``(ny, nx)`` grey images, and for colour files also
    their three channels (each a plausible grey image of the same scene)."""
    import skimage.data

    out = []
    for name in names:
        if name in BENCHMARK_PHOTOS:
            raise ValueError(f"{name}: a benchmark photograph; it must not be trained on")
        raw = getattr(skimage.data, name)()
        raw = raw[0] if isinstance(raw, tuple) else raw  # stereo pairs: the left view
        a = np.asarray(raw, dtype=np.float64)
        a = a / 255.0 if a.max() > 1 else a
        if a.ndim == 3:
            out.append((a[..., :3] @ LUMA).astype(np.float32))
            out.extend(a[..., c].astype(np.float32) for c in range(3))
        else:
            out.append(a.astype(np.float32))
    return out


def kernel_bank(sizes: tuple[int, ...], count: int, seed: int) -> list[np.ndarray]:
    """``count`` camera-shake kernels, sizes cycling through ``sizes`` (odd), seeds from ``seed``."""
    rng = np.random.default_rng(seed)
    return [camera_shake_kernel(int(sizes[i % len(sizes)]), seed=int(rng.integers(2**31)))
            for i in range(count)]


class BlurPairs:
    """An endless stream of (blurred, sharp) crops (module notes).

    Parameters
    ----------
    crop : int
        Side of the blurred observation and of its target, pixels.
    kernel_sizes : tuple of int
        Odd kernel sizes of the bank.
    noise_range : (float, float)
        Range of the noise standard deviation (image units, [0, 1] images).
    scale_range : (float, float)
        Range of the photograph's random rescaling.
    bank_size : int
        Number of kernels in the bank.
    seed : int
        Seeds the kernel bank.
    photos : list of arrays, optional
        Instead of :func:`training_photos` (tests).
    reblur : float
        Share of pairs whose kernel is re-scaled (path magnitude 0.25-1) and turned (any angle).
    """

    def __init__(self, crop: int = 96, kernel_sizes: tuple[int, ...] = (15, 17, 19, 21, 23, 25),
                 noise_range: tuple[float, float] = (0.005, 0.02), scale_range: tuple[float, float] = (0.5, 1.0),
                 bank_size: int = 512, seed: int = 0, photos: list[np.ndarray] | None = None,
                 reblur: float = 0.0) -> None:
        if not 0.0 <= reblur <= 1.0:
            raise ValueError(f"reblur: expected a share in [0, 1], got {reblur}")
        self.reblur = float(reblur)
        self.crop = int(crop)
        self.noise_range = tuple(float(v) for v in noise_range)
        self.scale_range = tuple(float(v) for v in scale_range)
        self.kernels = kernel_bank(tuple(kernel_sizes), bank_size, seed)
        self.photos = training_photos() if photos is None else photos
        need = self.crop + max(kernel_sizes) - 1
        small = min(min(p.shape) for p in self.photos)
        if small < need:
            raise ValueError(f"photos: the smallest is {small} px, below the {need} px a crop needs")

    def pair(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One ``(blurred (crop, crop), sharp (crop, crop), kernel)`` triple, float32."""
        img = self.photos[int(rng.integers(len(self.photos)))]
        k = self.kernels[int(rng.integers(len(self.kernels)))]
        if self.reblur > 0 and rng.uniform() < self.reblur:  # drawn only then: runs without it are unchanged
            k = interpolate_kernel(k, float(rng.uniform(0.25, 1.0)), float(rng.uniform(-180.0, 180.0)))
        m = k.shape[0]
        n = self.crop + m - 1
        s = float(rng.uniform(*self.scale_range))
        # cut a window a little larger than needed, then rescale it (cheaper than the whole photo)
        win = min(int(np.ceil(n / s)) + 2, min(img.shape))
        s = max(s, (n + 0.5) / win)  # a small photograph is shrunk less
        y0 = int(rng.integers(0, img.shape[0] - win + 1))
        x0 = int(rng.integers(0, img.shape[1] - win + 1))
        patch = ndimage.zoom(img[y0 : y0 + win, x0 : x0 + win].astype(np.float64), s, order=1)[:n, :n]
        patch = np.rot90(patch, int(rng.integers(4)))
        if rng.integers(2):
            patch = patch[:, ::-1]
        patch = np.ascontiguousarray(patch)
        blurred = signal.fftconvolve(patch, k, mode="valid")
        blurred = blurred + rng.normal(0.0, rng.uniform(*self.noise_range), blurred.shape)
        h = m // 2
        sharp = patch[h : h + self.crop, h : h + self.crop]
        return blurred.astype(np.float32), sharp.astype(np.float32), k.astype(np.float32)

    def batch(self, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(blurred, sharp)``, each ``(size, 1, crop, crop)`` float32."""
        pairs = [self.pair(rng) for _ in range(size)]
        return (np.stack([p[0] for p in pairs])[:, None], np.stack([p[1] for p in pairs])[:, None])
