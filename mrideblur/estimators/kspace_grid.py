"""Grids and frames shared by the k-space motion estimators: centred k-space crops (the
low-resolution levels), coil maps and images moved between those grids, and motion tables
re-expressed relative to another shot.

Conventions (docs/conventions.md): the centre of an axis of length ``N`` is index ``N // 2``;
motion ``(rot_deg, ty, tx)`` in degrees and pixels of the full grid moves the object,
``(T x)(R d + t) = x(d)``.
"""

from __future__ import annotations

import numpy as np

from ..physics.fourier import fft, ifft

__all__ = ["crop_slices", "subsample_maps", "resample_image", "rebase_motion", "reference_shot"]


def crop_slices(full: tuple[int, ...], frac: float) -> tuple[tuple[slice, ...], tuple[int, ...]]:
    """Centred crop of the last axes keeping ``frac`` of each (same factor on every axis)."""
    out, shape = [], []
    for n in full:
        m = max(int(round(n * frac)), 8) if frac < 1 else n
        m = min(m, n)
        start = n // 2 - m // 2
        out.append(slice(start, start + m))
        shape.append(m)
    return tuple(out), tuple(shape)


def subsample_maps(sens: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Coil maps on a coarser grid sharing the centre ``N // 2`` (smooth maps: point sampling)."""
    idx = []
    for n_full, n in zip(sens.shape[1:], shape):
        step = n_full / n
        idx.append(np.clip(np.round(n_full // 2 + (np.arange(n) - n // 2) * step).astype(int), 0, n_full - 1))
    return sens[(slice(None),) + np.ix_(*idx)]


def resample_image(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Change the grid by cropping or zero-padding centred k-space (no rescaling), the same
    operation that turns the measured k-space into each level's data — so an image stays
    consistent with the data of the level it is moved to."""
    nd = x.ndim
    k = fft(x, nd)
    out = np.zeros(shape, dtype=k.dtype)
    src, dst = [], []
    for n_in, n_out in zip(x.shape, shape):
        m = min(n_in, n_out)
        src.append(slice(n_in // 2 - m // 2, n_in // 2 - m // 2 + m))
        dst.append(slice(n_out // 2 - m // 2, n_out // 2 - m // 2 + m))
    out[tuple(dst)] = k[tuple(src)]
    return ifft(out, nd)


def rebase_motion(theta: np.ndarray, ref: int) -> np.ndarray:
    """Express 2D motion relative to shot ``ref`` instead: ``T(theta'_s) = T(theta_s) T(theta_ref)^-1``.

    With ``R`` the rotation matrix of docs/conventions.md acting on ``(dy, dx)``:
    ``p'_s = p_s - p_ref`` and ``t'_s = t_s - R(p'_s) t_ref``, so ``theta'_ref = 0``.  When shot
    ``ref`` is already at rest (``theta_ref == 0``) nothing changes: a copy is returned, in 2D and 3D.
    """
    th = np.asarray(theta, dtype=np.float64)
    if not np.any(th[ref]):
        return th.copy()
    if th.shape[-1] != 3:
        raise ValueError(f"theta: rebasing is implemented for 2D motion (nshot, 3), got {th.shape}")
    out = th.copy()
    out[:, 0] = th[:, 0] - th[ref, 0]
    p = np.deg2rad(out[:, 0])
    c, s_ = np.cos(p), np.sin(p)
    ty0, tx0 = th[ref, 1], th[ref, 2]
    out[:, 1] = th[:, 1] - (c * ty0 - s_ * tx0)
    out[:, 2] = th[:, 2] - (s_ * ty0 + c * tx0)
    out[ref] = 0.0
    return out


def reference_shot(shot_index: np.ndarray) -> int:
    """The shot that acquired the k-space centre (DC line): the best-determined frame."""
    si = np.asarray(shot_index)
    centre = si[tuple(n // 2 for n in si.shape)]
    if centre >= 0:
        return int(centre)
    counts = np.bincount(si[si >= 0].ravel())
    return int(np.argmax(counts))
