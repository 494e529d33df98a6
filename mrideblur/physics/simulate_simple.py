"""A second, deliberately plain motion simulator, for checks that an estimator does not win by
sharing an interpolator with the data.

:func:`mrideblur.physics.simulate` moves a 2x finer object with its own splines and has coil maps;
this one moves the image on its own grid with ``scipy.ndimage.rotate`` and ``.shift`` (cubic
splines, rotation about the array centre ``(N - 1) / 2``, not the ``N // 2`` of the package's
Fourier shears: at 3 degrees that is a 0.03-pixel difference), takes each shot's phase-encode
lines of its centred FFT, adds complex Gaussian noise and returns the single-coil image. It
shares no interpolation code with :mod:`mrideblur.physics.motion`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .fourier import fft, ifft

__all__ = ["move_ndimage", "corrupt_image"]


def move_ndimage(x: np.ndarray, rot: float, ty: float, tx: float) -> np.ndarray:
    """Rotate by ``rot`` degrees, then translate by ``(ty, tx)`` pixels (docs/conventions.md signs),
    with cubic splines and zeros outside.

    Parameters
    ----------
    x : (ny, nx) real or complex array
    rot, ty, tx : float
        Degrees and pixels.

    Returns
    -------
    (ny, nx) array like ``x``.
    """
    if np.iscomplexobj(x):
        return move_ndimage(x.real, rot, ty, tx) + 1j * move_ndimage(x.imag, rot, ty, tx)
    y = ndimage.rotate(x, rot, reshape=False, order=3, mode="constant") if rot else x
    return ndimage.shift(y, (ty, tx), order=3, mode="constant") if (ty or tx) else y


def corrupt_image(image: np.ndarray, shot_index: np.ndarray, motion: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """Single-coil motion-corrupted image: ``ifft(sum_s M_s fft(T(theta_s) x) + n)``.

    Parameters
    ----------
    image : (ny, nx) array
        The object in the frame of shot 0.
    shot_index : (ny,) int
        Shot of every phase-encode line (axis 0), ``-1`` not acquired.
    motion : (nshot, 3) float
        ``[rot_deg, ty, tx]`` per shot.
    noise : float
        Noise standard deviation (complex, per sample) as a fraction of ``max |image|``.
    seed : int
        Seed of the noise.

    Returns
    -------
    (ny, nx) complex128 image.
    """
    si = np.asarray(shot_index)
    if si.shape != (image.shape[0],):
        raise ValueError(f"shot_index: expected shape ({image.shape[0]},) for an image {image.shape}, got {si.shape}")
    k = np.zeros(image.shape, complex)
    for s in range(motion.shape[0]):
        k += (si == s)[:, None] * fft(move_ndimage(image, *motion[s]))
    rng = np.random.default_rng(seed)
    sigma = noise * np.abs(image).max() / np.sqrt(2)
    k += rng.normal(0, sigma, k.shape) + 1j * rng.normal(0, sigma, k.shape)
    return ifft(k)
