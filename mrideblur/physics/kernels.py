"""Blur kernels (point-spread functions) and their validation.

Every kernel is a 2D ``float64`` array of odd size ``(ky, kx)``, non-negative and summing to
one, with its nominal centre at index ``(ky // 2, kx // 2)``.  A kernel ``k`` acts on an image
``x`` by convolution, ``y = k * x`` (see :func:`mrideblur.physics.blur`).
"""

from __future__ import annotations

import numpy as np

from .arrays import real_array

__all__ = [
    "validate_kernel",
    "gaussian_kernel",
    "disk_kernel",
    "linear_motion_kernel",
    "camera_shake_kernel",
    "center_kernel",
]


def validate_kernel(kernel: np.ndarray, name: str = "kernel", normalize: bool = True) -> np.ndarray:
    """Check a blur kernel and return it as a normalised ``float64`` copy.

    Parameters
    ----------
    kernel : (ky, kx) array_like
        Candidate kernel; both sizes must be odd.
    name : str
        Name used in error messages (the argument or file the kernel came from).
    normalize : bool
        Divide by the sum so the result sums to one. With ``False`` a sum away from one
        (relative 1e-6) is an error.

    Returns
    -------
    (ky, kx) float64 ndarray, non-negative, ``sum == 1``.

    Raises
    ------
    ValueError
        Not 2D, an even size, NaN/infinite entries, negative entries, or all zeros.
    """
    k = real_array(kernel, name, 2, "kernel (ky, kx)", copy=True)
    if k.shape[0] % 2 == 0 or k.shape[1] % 2 == 0:
        raise ValueError(f"{name}: expected odd kernel sizes so the centre is a pixel, got {k.shape}")
    if np.any(k < 0):
        raise ValueError(f"{name}: expected non-negative entries, minimum is {k.min():.3g}")
    s = k.sum()
    if s <= 0:
        raise ValueError(f"{name}: all entries are zero; a kernel must sum to 1")
    if not normalize and abs(s - 1.0) > 1e-6:
        raise ValueError(f"{name}: expected entries summing to 1, got {s:.6g}")
    return k / s


def _odd(n: float) -> int:
    n = int(np.ceil(n))
    return n if n % 2 == 1 else n + 1


def gaussian_kernel(sigma: float, size: int | None = None) -> np.ndarray:
    """Isotropic Gaussian kernel ``k(d) ~ exp(-|d|^2 / (2 sigma^2))``.

    Parameters
    ----------
    sigma : float
        Standard deviation in pixels (> 0).
    size : int, optional
        Odd kernel size; default ``2 * ceil(3 sigma) + 1``.

    Returns
    -------
    (size, size) float64 kernel summing to one.
    """
    if not sigma > 0:
        raise ValueError(f"sigma: expected > 0, got {sigma}")
    size = _odd(2 * np.ceil(3 * sigma) + 1) if size is None else int(size)
    if size % 2 == 0:
        raise ValueError(f"size: expected an odd integer, got {size}")
    r = np.arange(size) - size // 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2.0 * sigma**2))
    return g / g.sum()


def _supersample_grid(size: int, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel sample offsets (dy, dx) of every pixel, ``factor x factor`` per pixel."""
    sub = (np.arange(factor) + 0.5) / factor - 0.5
    r = np.arange(size) - size // 2
    fine = (r[:, None] + sub[None, :]).ravel()
    return np.meshgrid(fine, fine, indexing="ij")


def _bin(fine: np.ndarray, size: int, factor: int) -> np.ndarray:
    return fine.reshape(size, factor, size, factor).mean(axis=(1, 3))


def disk_kernel(radius: float, size: int | None = None) -> np.ndarray:
    """Uniform disk (out-of-focus) kernel of the given radius, anti-aliased.

    Parameters
    ----------
    radius : float
        Radius in pixels (> 0).
    size : int, optional
        Odd kernel size; default ``2 * ceil(radius) + 1``.

    Returns
    -------
    (size, size) float64 kernel summing to one.
    """
    if not radius > 0:
        raise ValueError(f"radius: expected > 0, got {radius}")
    size = _odd(2 * np.ceil(radius) + 1) if size is None else int(size)
    if size % 2 == 0:
        raise ValueError(f"size: expected an odd integer, got {size}")
    f = 8
    yy, xx = _supersample_grid(size, f)
    k = _bin((yy**2 + xx**2 <= radius**2).astype(float), size, f)
    if k.sum() == 0:  # radius below a pixel: a delta
        k[size // 2, size // 2] = 1.0
    return k / k.sum()


def linear_motion_kernel(length: float, angle_deg: float = 0.0, size: int | None = None) -> np.ndarray:
    """Uniform linear motion blur along a segment through the centre.

    Parameters
    ----------
    length : float
        Segment length in pixels (> 0).
    angle_deg : float
        Direction of the motion in degrees; 0 is along +x, positive turns +x towards +y
        (the sign convention of the MRI rotations in docs/conventions.md).
    size : int, optional
        Odd kernel size; default the smallest that holds the segment.

    Returns
    -------
    (size, size) float64 kernel summing to one.
    """
    if not length > 0:
        raise ValueError(f"length: expected > 0, got {length}")
    size = _odd(length + 2) if size is None else int(size)
    if size % 2 == 0:
        raise ValueError(f"size: expected an odd integer, got {size}")
    a = np.deg2rad(angle_deg)
    n = max(int(np.ceil(length * 16)), 2)
    t = np.linspace(-length / 2, length / 2, n)
    return _render_trajectory(t * np.sin(a), t * np.cos(a), size)


def _render_trajectory(py: np.ndarray, px: np.ndarray, size: int) -> np.ndarray:
    """Splat equally weighted points ``(py, px)`` (pixels from centre) bilinearly."""
    c = size // 2
    y = py + c
    x = px + c
    y0 = np.floor(y).astype(int)
    x0 = np.floor(x).astype(int)
    fy = y - y0
    fx = x - x0
    k = np.zeros((size, size))
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            yi, xi = y0 + dy, x0 + dx
            ok = (yi >= 0) & (yi < size) & (xi >= 0) & (xi < size)
            np.add.at(k, (yi[ok], xi[ok]), (wy * wx)[ok])
    return k / k.sum()


def camera_shake_kernel(
    size: int = 25,
    seed: int | None = None,
    n_steps: int = 64,
    anxiety: float = 0.1,
    extent: float = 0.8,
) -> np.ndarray:
    """A random camera-shake kernel: a sub-pixel trajectory of a shaking hand.

    The trajectory is a random walk with inertia, a sudden jerk now and then and a pull back
    towards the start (after Boracchi & Foi, "Modeling the performance of image restoration
    from motion blur", IEEE TIP 2012).  It is scaled so its longest side spans ``extent * size``
    pixels, centred on its centre of mass and rendered by bilinear splatting (so it has real
    sub-pixel structure, like kernels measured from photographs).

    Parameters
    ----------
    size : int
        Odd kernel size in pixels (>= 3).
    seed : int, optional
        Seed of the generator; the same seed gives the same kernel.
    n_steps : int
        Number of trajectory samples.
    anxiety : float
        Strength of the random acceleration and of the sudden jerks (0..1).
    extent : float
        Fraction of ``size`` covered by the trajectory's longest side (0..1].

    Returns
    -------
    (size, size) float64 kernel summing to one.
    """
    size = int(size)
    if size < 3 or size % 2 == 0:
        raise ValueError(f"size: expected an odd integer >= 3, got {size}")
    if not 0 < extent <= 1:
        raise ValueError(f"extent: expected a value in (0, 1], got {extent}")
    rng = np.random.default_rng(seed)
    v = np.exp(1j * rng.uniform(0, 2 * np.pi))  # initial unit velocity
    pos = np.zeros(n_steps, dtype=complex)
    for t in range(1, n_steps):
        shake = anxiety * (rng.normal() + 1j * rng.normal())
        jerk = 0.0
        if rng.uniform() < 0.05 * anxiety * 10:
            jerk = 2 * anxiety * np.exp(1j * rng.uniform(0, 2 * np.pi)) * abs(v)
        centripetal = -0.05 * pos[t - 1] / max(n_steps, 1)
        v = v + shake + jerk + centripetal
        v = v / max(abs(v), 1e-12)  # constant speed: the shape, not the pace, is random
        pos[t] = pos[t - 1] + v
    # Upsample the walk so the rendered path is continuous at any scale.
    tt = np.linspace(0, n_steps - 1, n_steps * 8)
    path = np.interp(tt, np.arange(n_steps), pos.real) + 1j * np.interp(tt, np.arange(n_steps), pos.imag)
    span = max(np.ptp(path.real), np.ptp(path.imag), 1e-9)
    path = path * (extent * (size - 1) / span)
    path -= path.mean()
    return _render_trajectory(path.imag, path.real, size)


def center_kernel(kernel: np.ndarray) -> np.ndarray:
    """Shift a kernel by whole pixels so its centre of mass is nearest the middle pixel.

    Blind estimates are only defined up to a shift (the image shifts the other way); centring
    them makes the deconvolved image line up with the blurred one.

    Parameters
    ----------
    kernel : (ky, kx) array
        Non-negative kernel.

    Returns
    -------
    (ky, kx) float64 kernel; mass shifted out of the support is dropped and the rest
    renormalised.
    """
    k = np.asarray(kernel, dtype=np.float64)
    s = k.sum()
    if s <= 0:
        return k.copy()
    iy, ix = np.indices(k.shape)
    cy = int(np.round((iy * k).sum() / s)) - k.shape[0] // 2
    cx = int(np.round((ix * k).sum() / s)) - k.shape[1] // 2
    out = np.zeros_like(k)
    ys = slice(max(cy, 0), k.shape[0] + min(cy, 0))
    xs = slice(max(cx, 0), k.shape[1] + min(cx, 0))
    yd = slice(max(-cy, 0), k.shape[0] + min(-cy, 0))
    xd = slice(max(-cx, 0), k.shape[1] + min(-cx, 0))
    out[yd, xd] = k[ys, xs]
    return out / out.sum()
