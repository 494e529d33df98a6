"""Training data for the diffusion prior: MNI152 slices (built in) or slices prepared by
``data_scripts/make_slices.py`` (MNI or fastMRI), augmented and cropped on the fly.

Complex images and phase
------------------------
MR images are complex: coil combination, B0 inhomogeneity and the receive chain leave a smooth,
spatially varying phase, and the global phase is arbitrary. The prior must therefore not assume
a real (or even real-positive) image: JSMoCo and SENSE estimate complex images, and a prior that
pulled them towards the real axis would bias the reconstruction. So:

- the network sees two channels, real and imaginary (not magnitude and phase, whose wrap and
  undefined phase in the background are hard to denoise);
- every built-in training slice (the MNI152 template is a real magnitude image) gets a random
  **smooth background phase** (:func:`smooth_phase`, a degree-2 polynomial up to pi, as part of
  :func:`augment`) and a uniform random **global phase** ``exp(i phi)``; the learned density is
  thus (close to) invariant to the global phase and covers the smooth phases of real scans;
- user slices that are already complex (fastMRI with ESPIRiT combination) keep their phase and
  only get the global phase rotation, flips and crops; real ones are augmented like the MNI ones.

Scaling convention: every slice is scaled so that its largest magnitude is 1 (:func:`normalize`)
before cropping, so crops keep the whole-slice scale; :class:`mrideblur.prior.ScorePrior` expects
images on that scale.

Held-out split
--------------
Of the built-in MNI152 slices, those whose position along the normal axis lies in
:data:`HELD_OUT` (fraction of the volume, the same band in each of the three planes) are never
used for training (:func:`builtin_base_slices` with ``split="train"``); the tests measure the
shipped weights' denoising on them (and on Shepp-Logan, which no training set contains). The
band holds the README's example slice ``mni_slice("axial", 0.55, 192)``.

:func:`augment` and its helpers were moved here from ``data_scripts/make_slices.py`` (which now
imports them) so that training from an installed package needs no script.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from scipy import ndimage

from mrideblur.io.anatomy import PLANES, mni_slice, mni_volume

__all__ = [
    "HELD_OUT",
    "TrainingData",
    "augment",
    "brain_fraction",
    "builtin_base_slices",
    "is_held_out",
    "load_slices",
    "mni_candidates",
    "normalize",
    "random_crop",
    "smooth_phase",
]

#: Fraction band (of the volume along each plane's normal) of MNI152 slices held out of training.
HELD_OUT = (0.50, 0.60)


def normalize(x: np.ndarray) -> np.ndarray:
    """``x / max|x|`` as complex64.

    Raises
    ------
    ValueError
        When ``x`` is all zero or not finite (nothing to normalise).
    """
    peak = float(np.max(np.abs(x))) if np.size(x) else 0.0
    if not np.isfinite(peak) or peak <= 0:
        raise ValueError(f"slice is empty or not finite (max magnitude {peak})")
    return (np.asarray(x) / peak).astype(np.complex64)



def brain_fraction(vol: np.ndarray, axis: int, level: float = 0.1) -> np.ndarray:
    """Fraction of each slice normal to ``axis`` with intensity above ``level``."""
    other = tuple(a for a in range(vol.ndim) if a != axis)
    return np.mean(vol > level, axis=other)


def mni_candidates(min_brain: float = 0.15, level: float = 0.1, step: int = 1,
                   planes: tuple[str, ...] = PLANES) -> list[tuple[str, int]]:
    """``(plane, index)`` of the MNI152 slices with enough brain.

    Parameters
    ----------
    min_brain : float
        Least fraction of the native slice above ``level`` (template intensities in [0, 1]).
    level : float
        Intensity that counts as brain.
    step : int
        Keep every ``step``-th slice along each axis (1 = all).
    planes : tuple of str
        Subset of ``("axial", "coronal", "sagittal")`` (normal axes z, y, x).

    Returns
    -------
    list of (plane, index), planes in the order given, indices increasing.
    """
    if step < 1:
        raise ValueError(f"step: expected >= 1, got {step}")
    bad = [p for p in planes if p not in PLANES]
    if bad or not planes:
        raise ValueError(f"planes: expected a non-empty subset of {PLANES}, got {planes!r}")
    vol, _ = mni_volume()
    out = []
    for plane in planes:
        ax = PLANES.index(plane)
        frac = brain_fraction(vol, ax, level)
        out += [(plane, int(i)) for i in np.flatnonzero(frac >= min_brain) if i % step == 0]
    return out



def smooth_phase(shape: tuple[int, int], rng: np.random.Generator, max_amplitude: float = np.pi,
                 degree: int = 2) -> np.ndarray:
    """A random smooth background phase: a polynomial of total degree ``degree`` in ``[-1, 1]^2``.

    Random normal coefficients, scaled so the largest ``|phase|`` over the image is a uniform
    draw in ``[0, max_amplitude]``. By Markov's inequality for polynomials the phase changes by
    at most ``degree**2 * max_amplitude * 2 / (n - 1)`` radians between neighbouring pixels
    (0.2 rad at ``n = 128``, degree 2, amplitude pi): smooth, as coil and B0 phases are.
    """
    yy, xx = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    phase = np.zeros(shape)
    for dy in range(degree + 1):
        for dx in range(degree + 1 - dy):
            phase += rng.normal() * yy**dy * xx**dx
    peak = np.abs(phase).max()
    return rng.uniform(0, max_amplitude) * phase / max(peak, 1e-12)


def _smooth_field(shape: tuple[int, int], rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise scaled to a largest magnitude of 1."""
    f = ndimage.gaussian_filter(rng.normal(size=shape), sigma, mode="reflect")
    return f / max(np.abs(f).max(), 1e-12)


def augment(x: np.ndarray, rng: np.random.Generator, max_rot: float = 10.0, elastic: float = 0.02,
            gamma: tuple[float, float] = (0.7, 1.4), shading: float = 0.2,
            max_phase: float = np.pi) -> np.ndarray:
    """One random augmentation of a square magnitude slice; returns a complex64 slice, max ``|.|`` 1.

    In order:

    1. flips: each axis with probability 1/2 (scan orientations vary; the project's fastMRI
       images are the transpose of fastMRI's own);
    2. a rotation by a uniform angle in ``[-max_rot, max_rot]`` degrees about the centre and an
       elastic deformation (a Gaussian-smoothed random displacement field, correlation length
       ``n / 8``, largest displacement ``elastic * n`` pixels), applied together as one cubic
       spline resampling (``scipy.ndimage.map_coordinates``, zero outside), clipped at 0;
    3. contrast: ``m -> m ** g`` with ``g`` uniform in ``gamma`` on the magnitude scaled to
       [0, 1], times a smooth intensity shading ``1 + shading * u(r)`` (``u`` a smooth random
       field in [-1, 1], like a receive-coil profile; a global scale would be undone by step 5);
    4. a smooth random background phase (:func:`smooth_phase`, degree 2, up to ``max_phase``);
    5. normalisation to a largest magnitude of 1.

    Parameters
    ----------
    x : (n, n) real or complex array
        The slice; only its magnitude is used.
    rng : numpy Generator
        Source of every random choice (the result is a function of ``x`` and the generator state).

    Returns
    -------
    (n, n) complex64 array.
    """
    m = np.abs(np.asarray(x, dtype=np.complex128 if np.iscomplexobj(x) else np.float64))
    if m.ndim != 2:
        raise ValueError(f"x: expected a 2D slice, got shape {m.shape}")
    m = m / max(m.max(), 1e-30)
    for ax in (0, 1):
        if rng.random() < 0.5:
            m = np.flip(m, axis=ax)
    ny, nx = m.shape
    p = np.deg2rad(rng.uniform(-max_rot, max_rot))
    cy, cx = ny // 2, nx // 2
    yy, xx = np.meshgrid(np.arange(ny) - cy, np.arange(nx) - cx, indexing="ij")
    # output pixel at offset r samples the input at R(-p) r, plus the elastic displacement
    src_y = np.cos(p) * yy + np.sin(p) * xx + cy
    src_x = -np.sin(p) * yy + np.cos(p) * xx + cx
    n = max(ny, nx)
    amp = elastic * n
    src_y = src_y + amp * _smooth_field(m.shape, rng, n / 8)
    src_x = src_x + amp * _smooth_field(m.shape, rng, n / 8)
    m = ndimage.map_coordinates(m, [src_y, src_x], order=3, mode="constant", cval=0.0)
    m = np.clip(m, 0, None)
    m = m / max(m.max(), 1e-30)
    m = m ** rng.uniform(*gamma)
    m = m * (1 + shading * _smooth_field(m.shape, rng, n / 4))
    z = m * np.exp(1j * smooth_phase(m.shape, rng, max_phase))
    return normalize(z)




def is_held_out(plane: str, index: int) -> bool:
    """Whether MNI152 slice ``index`` of ``plane`` lies in the held-out band :data:`HELD_OUT`."""
    if plane not in PLANES:
        raise ValueError(f"plane: expected one of {PLANES}, got {plane!r}")
    n = mni_volume()[0].shape[PLANES.index(plane)]
    f = index / (n - 1)
    return HELD_OUT[0] <= f < HELD_OUT[1]


def builtin_base_slices(size: int = 128, scales: tuple[float, ...] = (1.0, 1.5), split: str = "train",
                        step: int = 1, min_brain: float = 0.15) -> list[np.ndarray]:
    """MNI152 T1 magnitude slices of the three planes, each resampled to ``round(size * s)`` for
    every ``s`` in ``scales`` (the brain at several pixel sizes), float32 in [0, 1].

    Parameters
    ----------
    size : int
        Base side length.
    scales : tuple of float
        Resampling factors relative to ``size``.
    split : {"train", "test", "all"}
        ``"train"``: slices outside :data:`HELD_OUT`; ``"test"``: inside; ``"all"``: both.
    step : int
        Every ``step``-th candidate slice along each axis (:func:`mni_candidates`).
    min_brain : float
        Least brain fraction of a slice (:func:`mni_candidates`).

    Returns
    -------
    list of (n, n) float32 arrays (sizes differ between scales).
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"split: expected 'train', 'test' or 'all', got {split!r}")
    vol, _ = mni_volume()
    out = []
    for plane, i in mni_candidates(min_brain=min_brain, step=step):
        held = is_held_out(plane, i)
        if (split == "train" and held) or (split == "test" and not held):
            continue
        pos = i / (vol.shape[PLANES.index(plane)] - 1)
        for s in scales:
            sl = mni_slice(plane, pos, size=int(round(size * s)))
            out.append((sl / max(sl.max(), 1e-12)).astype(np.float32))
    if not out:
        raise ValueError(f"MNI152: no {split} slice with {min_brain:.0%} brain")
    return out


def load_slices(path: str | Path) -> list[np.ndarray]:
    """Slices written by ``data_scripts/make_slices.py``: a ``.npz`` with ``images``
    ``(n, H, W)``, or a folder with ``index.csv`` and one ``.npy`` per slice (any folder of
    ``.npy`` files also works). Each returned slice is complex64, scaled to max ``|x| = 1``.
    """
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".npz":
        with np.load(p) as z:
            if "images" not in z:
                raise ValueError(f"{p}: no 'images' array (expected make_slices.py output)")
            images = list(z["images"])
    elif p.is_dir():
        idx = p / "index.csv"
        if idx.is_file():
            with open(idx, newline="") as fh:
                names = [row["file"] for row in csv.DictReader(fh)]
        else:
            names = sorted(q.name for q in p.glob("*.npy"))
        images = [np.load(p / n) for n in names]
    else:
        raise ValueError(f"{p}: not a .npz file or a folder of .npy slices")
    if not images:
        raise ValueError(f"{p}: holds no slices")
    out = []
    for k, im in enumerate(images):
        if np.ndim(im) != 2:
            raise ValueError(f"{p}: slice {k}: expected a 2D image, got shape {np.shape(im)}")
        out.append(normalize(im))
    return out


def random_crop(x: np.ndarray, crop: int, rng: np.random.Generator, tries: int = 4,
                min_peak: float = 0.05) -> np.ndarray:
    """A random ``crop x crop`` window of ``x`` (zero-padded when smaller); up to ``tries``
    draws to find one whose largest magnitude is at least ``min_peak`` (not all background)."""
    h, w = x.shape
    if h < crop or w < crop:
        ph, pw = max(crop - h, 0), max(crop - w, 0)
        x = np.pad(x, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))
        h, w = x.shape
    for _ in range(tries):
        y0 = int(rng.integers(0, h - crop + 1))
        x0 = int(rng.integers(0, w - crop + 1))
        c = x[y0:y0 + crop, x0:x0 + crop]
        if np.abs(c).max() >= min_peak:
            break
    return c


class TrainingData:
    """An endless, seeded stream of training batches.

    Each batch draws ``batch // crops_per_image`` slices uniformly, augments each once (full
    :func:`augment` for real slices, or flips only for complex ones that carry their own phase),
    rotates it by a uniform global phase, and takes ``crops_per_image`` random crops of
    ``crop x crop`` from it.

    Parameters
    ----------
    slices : list of 2D arrays
        Real magnitude or complex slices, scaled to max ``|x| = 1``.
    crop : int
        Side of the training crops.
    crops_per_image : int
        Crops taken from every augmented slice (amortises the augmentation).
    full_augment : bool, optional
        Force (``True``) or forbid (``False``) the full augmentation; default: for real slices.
    """

    def __init__(self, slices: list[np.ndarray], crop: int = 64, crops_per_image: int = 2,
                 full_augment: bool | None = None) -> None:
        if not slices:
            raise ValueError("slices: empty training set")
        if crop < 8:
            raise ValueError(f"crop: expected >= 8, got {crop}")
        self.slices = slices
        self.crop = int(crop)
        self.crops_per_image = max(int(crops_per_image), 1)
        self.full_augment = full_augment

    def __len__(self) -> int:
        return len(self.slices)

    def _one(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        full = self.full_augment if self.full_augment is not None else not np.iscomplexobj(x)
        if full:
            z = augment(x, rng)
        else:
            z = np.asarray(x, np.complex64)
            for ax in (0, 1):
                if rng.random() < 0.5:
                    z = np.flip(z, axis=ax)
        return z * np.complex64(np.exp(1j * rng.uniform(0, 2 * np.pi)))

    def batch(self, batch: int, rng: np.random.Generator) -> np.ndarray:
        """``(batch, 2, crop, crop)`` float32: real and imaginary channels."""
        out = np.empty((batch, 2, self.crop, self.crop), np.float32)
        k = 0
        while k < batch:
            z = self._one(self.slices[int(rng.integers(len(self.slices)))], rng)
            for _ in range(self.crops_per_image):
                if k == batch:
                    break
                c = random_crop(z, self.crop, rng)
                out[k, 0], out[k, 1] = c.real, c.imag
                k += 1
        return out
