"""Re-blurring augmentation after ID-Blau (Wu et al., CVPR 2024), for synthetic camera shake.

ID-Blau makes new training pairs from a sharp image by re-blurring it along blur fields
interpolated between "no blur" and the observed one — the same path travelled for a shorter
time, or turned — so a network sees the continuum of blur strengths and directions rather than
a few.  With synthetic camera shake the blur is known, so the interpolation is exact up to
resampling: a kernel ``k`` is the time-density of a camera path ``p(t)``; the path scaled by a
magnitude ``a`` and turned by an angle ``phi`` has the kernel

    k_{a, phi}(d) = a^-2 k(R_phi^-1 d / a),

rendered here by resampling ``k`` (linear interpolation, renormalised to sum 1, re-centred on
its centre of mass; the size stays ``m x m``, odd).  ID-Blau renders its re-blurred images
with a diffusion model because its blur fields come from real video; here they are rendered by
the blur itself (:func:`mrideblur.physics.blur.blur`, valid), which is exact.

:func:`reblur_augment` is public (``mrideblur.deblur.reblur_augment``);
:class:`mrideblur.learn.blur_data.BlurPairs` draws a share ``reblur`` of its training pairs
this way.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..physics.blur import blur, check_image
from ..physics.kernels import center_kernel, validate_kernel

__all__ = ["interpolate_kernel", "reblur_augment"]


def interpolate_kernel(kernel: np.ndarray, magnitude: float, angle_deg: float = 0.0) -> np.ndarray:
    """The blur of the same camera path scaled by ``magnitude`` and turned by ``angle_deg``.

    Parameters
    ----------
    kernel : (m, m) array
        A blur kernel (non-negative, odd size; normalised to sum 1).
    magnitude : float
        Path scale in (0, 1]: 1 keeps the blur's extent, towards 0 the blur shrinks to a point.
    angle_deg : float
        Rotation of the path, degrees (docs/conventions.md's sense: +x turns towards -y).

    Returns
    -------
    (m, m) float64 kernel, non-negative, summing to 1, centred on its centre of mass.
    """
    k = validate_kernel(kernel)
    if not 0 < magnitude <= 1:
        raise ValueError(f"magnitude: expected a number in (0, 1], got {magnitude}")
    m = k.shape[0]
    c = (m - 1) / 2.0
    p = np.deg2rad(angle_deg)
    # output pixel d (from the centre) reads the input at R^-1 d / a
    inv = np.array([[np.cos(p), np.sin(p)], [-np.sin(p), np.cos(p)]]) / magnitude
    offset = np.array([c, c]) - inv @ np.array([c, c])
    out = ndimage.affine_transform(k, inv, offset=offset, order=1, mode="constant", cval=0.0)
    out = np.maximum(out, 0.0)
    if out.sum() <= 0:  # a path shrunk below one pixel: a point
        out = np.zeros_like(k)
        out[m // 2, m // 2] = 1.0
    return center_kernel(out / out.sum())


def reblur_augment(sharp: np.ndarray, kernel: np.ndarray, count: int = 4, seed: int = 0,
                   magnitude_range: tuple[float, float] = (0.25, 1.0), angle_range: tuple[float, float] = (-180.0, 180.0),
                   noise_sigma: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """New blurred versions of ``sharp`` along blurs interpolated from ``kernel``.

    Parameters
    ----------
    sharp : (ny, nx) array
        The sharp scene (``ny, nx`` at least the kernel size).
    kernel : (m, m) array
        The blur to interpolate from (:func:`interpolate_kernel`).
    count : int
        Number of new pairs.
    seed : int
        Seeds the magnitudes, angles and noise.
    magnitude_range, angle_range : (float, float)
        Uniform ranges of the path scale and turn (degrees).
    noise_sigma : float
        White noise added to each new blurred image (image units).

    Returns
    -------
    blurred : (count, ny - m + 1, nx - m + 1) float64
        ``valid`` blurs of ``sharp`` (a real camera's observation).
    kernels : (count, m, m) float64
        The interpolated kernels used.
    """
    x = check_image(sharp, "sharp")
    k = validate_kernel(kernel)
    if count < 1:
        raise ValueError(f"count: expected at least 1, got {count}")
    lo, hi = (float(v) for v in magnitude_range)
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"magnitude_range: expected 0 < low <= high <= 1, got {magnitude_range}")
    rng = np.random.default_rng(seed)
    kernels = np.array([interpolate_kernel(k, float(rng.uniform(lo, hi)), float(rng.uniform(*angle_range)))
                        for _ in range(count)])
    blurred = np.array([blur(x, kk, noise_sigma=noise_sigma, seed=int(rng.integers(2**31)), boundary="valid")
                        for kk in kernels])
    return blurred, kernels
