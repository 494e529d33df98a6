r"""Simulate motion-corrupted multi-shot, multi-coil k-space from any image or volume.

For every shot ``s``: ``y_s = M_s C F_fine S_fine T_fine(theta_s) x_fine + n`` where

- ``x_fine`` is the object on a grid ``oversample`` times finer than the reconstruction grid,
  interpolated from the input image by cubic splines, with a smooth random background phase;
- ``T_fine`` moves it rigidly with cubic-spline interpolation (``scipy.ndimage``), in the
  units of docs/conventions.md scaled to the fine grid;
- ``S_fine`` are analytic coil maps evaluated on the fine grid;
- ``F_fine`` is the centred orthonormal FFT of the fine grid and ``C`` keeps its central
  ``(ny, nx)`` block (times ``oversample**(-ndim/2)``, so intensities match);
- ``M_s`` keeps the lines of shot ``s``; ``n`` is complex Gaussian noise.

**Inverse crime.**  The estimators model motion by Fourier shears on the coarse grid; the
simulator moves a finer, non-band-limited object with spline interpolation and crops k-space.
So an estimator cannot win by reproducing the simulator's own interpolation, and the truth is
what an ideal scanner would see: the k-space crop of the unmoved fine object
(``truth/image``), with the coil maps sampled on the coarse grid (``truth/sens``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..io.case import Case
from .coils import simulate_sens
from .fourier import fft, ifft
from .shots import count_shots, make_shot_index

__all__ = ["MOTION_KINDS", "motion_track", "rotation_matrix", "simulate"]

MOTION_KINDS = ("random", "step", "drift", "periodic", "none")


def rotation_matrix(angles_deg: np.ndarray) -> np.ndarray:
    """Rotation acting on offsets in index order: ``(dy, dx)`` in 2D, ``(dz, dy, dx)`` in 3D.

    2D (docs/conventions.md): ``(dy, dx) -> (dy cos p - dx sin p, dy sin p + dx cos p)``.
    3D ``(rz, ry, rx)``: the matrix ``[[cos, -sin], [sin, cos]]`` on the offset pairs
    ``(dy, dx)`` about z (as in 2D), ``(dz, dx)`` about y and ``(dy, dz)`` about x, applied z
    first: ``R = R_x R_y R_z`` (the sense documented in :mod:`mrideblur.physics.motion`; written
    again here so the simulator shares no code with the estimators' motion operator).
    """
    a = np.deg2rad(np.atleast_1d(np.asarray(angles_deg, dtype=float)))

    def plane(n: int, i: int, j: int, p: float) -> np.ndarray:
        r = np.eye(n)
        c, s = np.cos(p), np.sin(p)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        return r

    if a.size == 1:
        return plane(2, 0, 1, a[0])
    if a.size == 3:
        return plane(3, 1, 0, a[2]) @ plane(3, 0, 2, a[1]) @ plane(3, 1, 2, a[0])
    raise ValueError(f"angles_deg: expected 1 (2D) or 3 (3D) angles, got {a.size}")


def motion_track(
    nshot: int,
    kind: str = "random",
    max_rot: float = 3.0,
    max_trans: float = 3.0,
    ndim: int = 2,
    seed: int | None = None,
) -> np.ndarray:
    """A rigid motion track, relative to shot 0 (``motion[0] == 0``).

    Parameters
    ----------
    nshot : int
    kind : {"random", "step", "drift", "periodic", "none"}
        ``random``: independent uniform values per shot; ``step``: still, then a sudden move at
        a random shot in the middle half of the scan; ``drift``: linear from zero to a random
        end point; ``periodic``: a sinusoid of 1-3 cycles (breathing-like); ``none``: zeros.
    max_rot : float
        Largest rotation in degrees (each rotation parameter).
    max_trans : float
        Largest translation in pixels (each axis).
    ndim : {2, 3}
    seed : int, optional

    Returns
    -------
    (nshot, 3) ``[rot_deg, ty, tx]`` or (nshot, 6) ``[rz, ry, rx, tz, ty, tx]``.
    """
    if kind not in MOTION_KINDS:
        raise ValueError(f"kind: expected one of {MOTION_KINDS}, got {kind!r}")
    if ndim not in (2, 3):
        raise ValueError(f"ndim: expected 2 or 3, got {ndim}")
    rng = np.random.default_rng(seed)
    nrot = 1 if ndim == 2 else 3
    scale = np.array([max_rot] * nrot + [max_trans] * ndim)
    npar = len(scale)
    t = np.arange(nshot) / max(nshot - 1, 1)
    if kind == "none":
        m = np.zeros((nshot, npar))
    elif kind == "random":
        m = rng.uniform(-1, 1, (nshot, npar)) * scale
    elif kind == "step":
        at = rng.integers(max(nshot // 4, 1), max(3 * nshot // 4, 2))
        jump = rng.uniform(0.5, 1.0, npar) * rng.choice([-1, 1], npar) * scale
        m = (np.arange(nshot)[:, None] >= at) * jump
    elif kind == "drift":
        end = rng.uniform(0.5, 1.0, npar) * rng.choice([-1, 1], npar) * scale
        m = t[:, None] * end
    else:
        cycles = rng.uniform(1, 3)
        phase = rng.uniform(0, 2 * np.pi, npar)
        amp = rng.uniform(0.5, 1.0, npar) * scale
        m = amp * np.sin(2 * np.pi * cycles * t[:, None] + phase)
    m = m - m[0]
    return np.clip(m, -scale, scale) if kind in ("random", "periodic") else m


def _smooth_phase(shape: tuple[int, ...], rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """A random smooth phase map: a low-order polynomial (degree <= 2) of the coordinates."""
    grids = list(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    terms = [np.ones(shape)] + grids + [g * h for i, g in enumerate(grids) for h in grids[i:]]
    coef = rng.normal(0, 1, len(terms))
    phase = sum(c * t for c, t in zip(coef, terms))
    phase -= phase.mean()
    return amplitude * phase / max(np.abs(phase).max(), 1e-12)


def _move_fine(x: np.ndarray, theta: np.ndarray, factor: int) -> np.ndarray:
    """Rigid motion of a fine-grid object by cubic splines: ``(T x)(R d + t) = x(d)``."""
    nd = x.ndim
    R = rotation_matrix(theta[: 1 if nd == 2 else 3])
    t = np.asarray(theta[1 if nd == 2 else 3 :], float) * factor
    c = np.array([n // 2 for n in x.shape], float)
    # output voxel r takes the input at d = R^T (r - c - t) + c
    Rt = R.T
    offset = c - Rt @ (c + t)
    out = ndimage.affine_transform(x.real, Rt, offset=offset, order=3, mode="constant")
    if np.iscomplexobj(x):
        out = out + 1j * ndimage.affine_transform(x.imag, Rt, offset=offset, order=3, mode="constant")
    return out


def _upsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Cubic-spline interpolation to a grid ``factor`` times finer; fine ``factor*i`` = coarse ``i``
    (so the centres ``N // 2`` and ``factor * N // 2`` coincide)."""
    fine_shape = tuple(factor * n for n in image.shape)
    coords = np.meshgrid(*[np.arange(n) / factor for n in fine_shape], indexing="ij")
    return ndimage.map_coordinates(image, coords, order=3, mode="constant")


def _crop_center(k: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    sl = [slice(None)] * (k.ndim - len(shape))
    for nf, n in zip(k.shape[-len(shape) :], shape):
        start = nf // 2 - n // 2
        sl.append(slice(start, start + n))
    return k[tuple(sl)]


def simulate(
    image: np.ndarray,
    ncoil: int = 8,
    nshot: int = 16,
    ordering: str = "interleaved",
    accel: int = 1,
    acs: int = 24,
    motion: str | np.ndarray = "random",
    max_rot: float = 3.0,
    max_trans: float = 3.0,
    noise: float = 0.01,
    coil_model: str = "birdcage",
    phase: float = np.pi / 2,
    oversample: int = 2,
    seed: int = 0,
) -> Case:
    """Make a motion-corrupted multi-shot, multi-coil scan of an image or volume.

    Parameters
    ----------
    image : (ny, nx) or (nz, ny, nx) array
        The object (magnitude or complex) on the reconstruction grid; it is interpolated to a
        grid ``oversample`` times finer for the simulation.
    ncoil, nshot : int
    ordering : {"interleaved", "sequential", "centre-out", "checkered", "random"}
        Shot ordering (:func:`mrideblur.physics.shots.make_shot_index`).
    accel : int
        Acceleration R outside the ``acs`` fully sampled centre lines.
    acs : int
        Width of the fully sampled centre (lines).
    motion : {"random", "step", "drift", "periodic", "none"} or (nshot, 3|6) array
        Motion track kind (:func:`motion_track`) or an explicit table (relative to shot 0).
    max_rot, max_trans : float
        Largest rotation (degrees) and translation (pixels of the reconstruction grid).
    noise : float
        Noise standard deviation as a fraction of the brightest coil-image pixel
        ``max_c,r |S_c x|``; complex Gaussian with ``E|n|^2 = sigma^2`` on acquired samples.
    coil_model : {"birdcage", "loop"}
    phase : float
        Peak amplitude in radians of the smooth background phase (0: a real object).
    oversample : int
        Simulation grid refinement (>= 1; 1 reproduces the inverse crime and is only for tests).
    seed : int
        Seeds the motion, the phase, the shot ordering, the coil ring and the noise.

    Returns
    -------
    Case
        ``kspace`` (coils, ky, kx) / (coils, kz, ky, kx) complex64, ``shot_index``, and
        ``truth``: ``image`` (the k-space crop of the unmoved fine object, complex64, peak
        magnitude about 1), ``motion`` (nshot, 3|6), ``sens`` (coils, ...) complex64;
        ``attrs`` hold every simulation parameter and ``noise_sigma`` (absolute).
    """
    x = np.asarray(image)
    if x.ndim not in (2, 3):
        raise ValueError(f"image: expected (ny, nx) or (nz, ny, nx), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("image: contains NaN or infinite values")
    if int(oversample) != oversample or oversample < 1:
        raise ValueError(f"oversample: expected an integer >= 1, got {oversample}")
    nd = x.ndim
    shape = x.shape
    rng = np.random.default_rng(seed)
    peak = np.abs(x).max()
    x = x / peak if peak > 0 else x
    pe_shape = shape[:-1] if nd == 3 else shape[0]
    shot_index = make_shot_index(pe_shape, nshot, ordering, accel=accel, acs=acs, seed=int(rng.integers(2**31)))
    nshot = count_shots(shot_index)
    if isinstance(motion, str):
        theta = motion_track(nshot, motion, max_rot, max_trans, ndim=nd, seed=int(rng.integers(2**31)))
    else:
        theta = np.asarray(motion, dtype=float)
        if theta.shape != (nshot, 3 if nd == 2 else 6):
            raise ValueError(f"motion: expected shape ({nshot}, {3 if nd == 2 else 6}), got {theta.shape}")
    f = int(oversample)
    fine = _upsample(x.real, f) + (1j * _upsample(x.imag, f) if np.iscomplexobj(x) else 0)
    fine_shape = fine.shape
    if phase:
        fine = fine * np.exp(1j * _smooth_phase(fine_shape, rng, phase))
    coil_seed = int(rng.integers(2**31))
    sens_fine = simulate_sens(fine_shape, ncoil, coil_model, seed=coil_seed)
    sens = sens_fine[(slice(None),) + (slice(None, None, f),) * nd]
    scale = f ** (-nd / 2)
    truth = ifft(_crop_center(fft(fine, nd), shape) * scale, nd)
    masks = [shot_index == s for s in range(nshot)]
    kspace = np.zeros((ncoil,) + shape, dtype=np.complex128)
    for s in range(nshot):
        moved = _move_fine(fine, theta[s], f) if np.any(theta[s]) else fine
        k = _crop_center(fft(sens_fine * moved, nd), shape) * scale
        kspace += k * masks[s][..., None]
    sigma = noise * np.abs(sens * truth).max()
    acquired = (shot_index >= 0)[..., None]
    n = rng.normal(0, sigma / np.sqrt(2), kspace.shape) + 1j * rng.normal(0, sigma / np.sqrt(2), kspace.shape)
    kspace = (kspace + n * acquired).astype(np.complex64)
    params = dict(simulator="mrideblur.physics.simulate", ncoil=ncoil, nshot=nshot, ordering=ordering,
                  accel=accel, acs=acs, motion=motion if isinstance(motion, str) else "table",
                  max_rot=max_rot, max_trans=max_trans, noise=noise, noise_sigma=float(sigma),
                  coil_model=coil_model, phase=float(phase), oversample=f, seed=seed)
    return Case(kspace=kspace, shot_index=shot_index, kind="2d" if nd == 2 else "3d",
                truth={"image": truth.astype(np.complex64), "motion": theta, "sens": sens.astype(np.complex64)},
                attrs=params)
