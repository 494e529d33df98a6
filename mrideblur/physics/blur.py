"""The blur operator ``y = k * x + n`` and the Fourier helpers the deconvolvers share.

Images are 2D ``float64`` arrays ``(ny, nx)``, intensities in any unit (the built-in data are
in [0, 1]); noise levels are in the same unit.  A colour image is ``(ny, nx, 3)`` (R, G, B last):
one camera shake blurs the three channels with the same kernel, ``y_c = k * x_c + n_c``.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from ..io.images import LUMA
from .arrays import real_array
from .kernels import validate_kernel

__all__ = ["blur", "check_colour_image", "check_image", "is_colour", "luminance", "psf2otf", "edgetaper",
           "BOUNDARIES"]

BOUNDARIES = ("symmetric", "periodic", "valid")


def check_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Return ``image`` as a finite 2D ``float64`` array or raise a ``ValueError`` naming it."""
    x = real_array(image, name, 2, "image (ny, nx)")
    if min(x.shape) < 3:
        raise ValueError(f"{name}: image {x.shape} is too small (need at least 3x3)")
    return x


def is_colour(image: np.ndarray) -> bool:
    """Whether ``image`` is shaped like a colour image ``(ny, nx, 3)``."""
    return np.ndim(image) == 3 and np.shape(image)[-1] == 3


def check_colour_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Return ``image`` as a finite ``(ny, nx, 3)`` ``float64`` array or raise a ``ValueError``
    naming it (an alpha channel, ``(ny, nx, 4)``, is refused: drop it first)."""
    x = real_array(image, name, 3, "colour image (ny, nx, 3) (or a 2D grey image)")
    if x.shape[-1] != 3:
        raise ValueError(f"{name}: expected a 2D grey image (ny, nx) or a colour image (ny, nx, 3) with the "
                         f"channels last, got shape {x.shape}")
    if min(x.shape[:2]) < 3:
        raise ValueError(f"{name}: image {x.shape} is too small (need at least 3x3)")
    return x


def luminance(image: np.ndarray) -> np.ndarray:
    """``0.2125 R + 0.7154 G + 0.0721 B`` (:data:`mrideblur.io.LUMA`) of a ``(ny, nx, 3)`` image;
    blurred by the same kernel, it obeys the same model ``Y = k * X + n_Y`` with
    ``std(n_Y) = |LUMA| std(n_c) ~ 0.75 std(n_c)`` for independent channel noise."""
    return np.asarray(image, dtype=np.float64) @ LUMA


def psf2otf(kernel: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Optical transfer function: the DFT of ``kernel`` zero-padded to ``shape`` and rolled so
    its centre pixel sits at index (0, 0).

    ``ifft2(psf2otf(k, x.shape) * fft2(x))`` is the periodic convolution ``k * x`` with the
    output aligned to the input.

    Parameters
    ----------
    kernel : (ky, kx) array
    shape : (ny, nx) with ``ny >= ky`` and ``nx >= kx``

    Returns
    -------
    (ny, nx) complex128 array.
    """
    k = np.asarray(kernel, dtype=np.float64)
    pad = np.zeros(shape)
    pad[: k.shape[0], : k.shape[1]] = k
    pad = np.roll(pad, (-(k.shape[0] // 2), -(k.shape[1] // 2)), axis=(0, 1))
    return np.fft.fft2(pad)


def blur(
    image: np.ndarray,
    kernel: np.ndarray,
    noise_sigma: float = 0.0,
    seed: int | None = None,
    boundary: str = "symmetric",
) -> np.ndarray:
    """Blur an image with a kernel and add white Gaussian noise: ``y = k * x + n``.

    Parameters
    ----------
    image : (ny, nx) or (ny, nx, 3) array
        Sharp image ``x``, grey or colour (each channel blurred by the same kernel, the noise
        independent per channel).
    kernel : (ky, kx) array
        Blur kernel ``k`` (validated and normalised to sum 1).
    noise_sigma : float
        Standard deviation of ``n`` in image intensity units (``0.01`` on a [0, 1] image is
        "1% noise").
    seed : int, optional
        Seed of the noise.
    boundary : {"symmetric", "periodic", "valid"}
        How the image continues beyond its border: mirrored, wrapped, or not at all —
        ``"valid"`` returns only the pixels whose whole blur footprint lies inside the image,
        shape ``(ny - ky + 1, nx - kx + 1)``; this is what a real camera records.

    Returns
    -------
    (ny, nx) or (ny, nx, 3) float64 array (smaller for ``"valid"``).
    """
    if is_colour(image):
        rgb = check_colour_image(image)
        y = np.stack([blur(rgb[..., c], kernel, boundary=boundary) for c in range(3)], axis=-1)
        if not noise_sigma >= 0:
            raise ValueError(f"noise_sigma: expected >= 0, got {noise_sigma}")
        return y + np.random.default_rng(seed).normal(0.0, noise_sigma, y.shape) if noise_sigma > 0 else y
    x = check_image(image)
    k = validate_kernel(kernel)
    if k.shape[0] > x.shape[0] or k.shape[1] > x.shape[1]:
        raise ValueError(f"kernel: size {k.shape} is larger than the image {x.shape}")
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary: expected one of {BOUNDARIES}, got {boundary!r}")
    if not noise_sigma >= 0:
        raise ValueError(f"noise_sigma: expected >= 0, got {noise_sigma}")
    if boundary == "periodic":
        y = np.real(np.fft.ifft2(np.fft.fft2(x) * psf2otf(k, x.shape)))
    else:
        if boundary == "symmetric":
            py, px = k.shape[0] // 2, k.shape[1] // 2
            x = np.pad(x, ((py, py), (px, px)), mode="symmetric")
        y = signal.fftconvolve(x, k, mode="valid")
    if noise_sigma > 0:
        y = y + np.random.default_rng(seed).normal(0.0, noise_sigma, y.shape)
    return y


def edgetaper(image: np.ndarray, kernel: np.ndarray, pad: int | tuple[int, int] = 0) -> np.ndarray:
    """Make an image look periodic to a Fourier deconvolver, so it does not ring at the borders.

    The image is first extended by ``pad`` pixels per side (mirrored), then blended towards its
    own periodic blur near the border with weights from the kernel's autocorrelation, in the
    manner of MATLAB's ``edgetaper``.  Deconvolve the result, then crop ``pad`` pixels.

    Parameters
    ----------
    image : (ny, nx) array
    kernel : (ky, kx) array
    pad : int or (int, int)
        Extension per side along y and x in pixels.

    Returns
    -------
    (ny + 2 pad_y, nx + 2 pad_x) float64 array.
    """
    x = check_image(image)
    k = validate_kernel(kernel)
    py, px = (pad, pad) if np.isscalar(pad) else pad
    if py or px:
        x = np.pad(x, ((py, py), (px, px)), mode="symmetric")
    weights = []
    for axis, n in enumerate(x.shape):
        proj = k.sum(axis=1 - axis)
        m = len(proj)
        ac = np.correlate(proj, proj, mode="full")[m - 1 :]  # lags 0 .. m-1
        ac = ac / ac[0]
        d = np.minimum(np.arange(n), np.arange(n)[::-1])  # distance to the nearest border
        # alpha(d) = 1 - autocorrelation(d): 0 on the border, 1 beyond the kernel's reach.
        weights.append(np.where(d < m, 1.0 - ac[np.minimum(d, m - 1)], 1.0))
    alpha = np.outer(weights[0], weights[1])
    blurred = np.real(np.fft.ifft2(np.fft.fft2(x) * psf2otf(k, x.shape)))
    return alpha * x + (1.0 - alpha) * blurred

