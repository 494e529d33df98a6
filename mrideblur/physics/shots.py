"""Shot maps: which phase-encode lines each shot of a multi-shot scan acquired.

A shot map (``shot_index``, docs/conventions.md) is an int array over the phase-encode lines,
``(ky,)`` in 2D or ``(kz, ky)`` in 3D: line ``j`` was acquired by shot ``shot_index[j]``, and
``-1`` marks a line that was not acquired.  Shots are numbered ``0 .. nshot - 1``.
"""

from __future__ import annotations

import numpy as np

from ..io.shot_order import ORDERINGS, assign_shots

__all__ = ["ORDERINGS", "make_shot_index", "shot_masks", "validate_shot_index", "count_shots"]


def make_shot_index(
    shape: int | tuple[int, ...],
    nshot: int,
    ordering: str = "interleaved",
    accel: int = 1,
    acs: int = 0,
    seed: int | None = None,
) -> np.ndarray:
    """Build a shot map for a Cartesian multi-shot acquisition.

    Acquired lines: every ``accel``-th line (counted from the centre line, so DC is always
    acquired) plus a fully sampled centre block of ``acs`` lines (autocalibration).  In 3D the
    same rule applies on both phase-encode axes, with the ACS block a square.  The acquired
    lines are then split among shots by :func:`mrideblur.io.shot_order.assign_shots` (the rule
    the file readers assume too): ``"interleaved"``, ``"sequential"`` (3D: linear),
    ``"centre-out"``, ``"checkered"`` (3D only) or ``"random"``.

    Parameters
    ----------
    shape : int or (kz, ky)
        Number of phase-encode lines (2D) or the phase-encode grid (3D).
    nshot : int
        Number of shots (>= 1, at most the number of acquired lines).
    ordering : {"interleaved", "sequential", "centre-out", "checkered", "random"}
    accel : int
        Acceleration factor R outside the ACS block (>= 1).
    acs : int
        Width of the fully sampled centre in lines (0 for none).
    seed : int, optional
        Seed of the ``"random"`` ordering.

    Returns
    -------
    shot_index : int32 array, shape ``(ky,)`` or ``(kz, ky)``.
    """
    shape = (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)
    if len(shape) not in (1, 2) or min(shape) < 1:
        raise ValueError(f"shape: expected a line count or (kz, ky), got {shape}")
    if ordering not in ORDERINGS:
        raise ValueError(f"ordering: expected one of {ORDERINGS}, got {ordering!r}")
    if int(accel) != accel or accel < 1:
        raise ValueError(f"accel: expected an integer >= 1, got {accel}")
    if acs < 0:
        raise ValueError(f"acs: expected >= 0, got {acs}")
    keep = np.ones(shape, dtype=bool)
    for ax, n in enumerate(shape):
        idx = np.arange(n) - n // 2
        line = (idx % accel == 0) | (np.abs(idx + 0.5 * (acs % 2 == 0)) < acs / 2.0)
        keep &= np.expand_dims(line, tuple(a for a in range(len(shape)) if a != ax))
    nlines = int(keep.sum())
    if not 1 <= nshot <= nlines:
        raise ValueError(f"nshot: expected 1 .. {nlines} (the acquired lines), got {nshot}")
    return assign_shots(keep, nshot, ordering, seed=seed)


def count_shots(shot_index: np.ndarray) -> int:
    """``max(shot_index) + 1`` (0 when nothing was acquired)."""
    return int(np.max(shot_index)) + 1 if np.size(shot_index) else 0


def validate_shot_index(shot_index: np.ndarray, pe_shape: tuple[int, ...], where: str = "shot_index") -> np.ndarray:
    """Check a shot map against the phase-encode shape of the k-space it describes.

    Parameters
    ----------
    shot_index : array_like of int
    pe_shape : (ky,) or (kz, ky)
        Expected shape.
    where : str
        Prefix of error messages (a file and dataset name, or an argument name).

    Returns
    -------
    int32 array of shape ``pe_shape``.

    Raises
    ------
    ValueError
        Wrong shape, non-integer values, values below -1, no acquired line, or shot numbers
        with gaps (every shot ``0 .. nshot - 1`` must own at least one line).
    """
    s = np.asarray(shot_index)
    if s.shape != tuple(pe_shape):
        raise ValueError(f"{where}: expected shape {tuple(pe_shape)} (the phase-encode axes of kspace), got {s.shape}")
    if s.dtype.kind not in "iu":
        if s.dtype.kind == "f" and np.all(np.isfinite(s)) and np.all(s == np.round(s)):
            s = s.astype(np.int64)
        else:
            raise ValueError(f"{where}: expected integers, got dtype {s.dtype}")
    if np.any(s < -1):
        raise ValueError(f"{where}: values below -1 (-1 marks a line not acquired): min {s.min()}")
    nshot = count_shots(s)
    if nshot == 0:
        raise ValueError(f"{where}: no acquired line (all -1)")
    missing = np.setdiff1d(np.arange(nshot), np.unique(s[s >= 0]))
    if missing.size:
        raise ValueError(f"{where}: shots must be numbered 0 .. {nshot - 1} without gaps; missing {missing.tolist()[:10]}")
    return s.astype(np.int32)


def shot_masks(shot_index: np.ndarray, nshot: int | None = None) -> np.ndarray:
    """Boolean masks ``M_s`` of each shot over the phase-encode grid.

    Returns
    -------
    (nshot, ky) or (nshot, kz, ky) bool array; ``masks[s, j]`` is True when line ``j`` belongs
    to shot ``s``.
    """
    s = np.asarray(shot_index)
    n = count_shots(s) if nshot is None else int(nshot)
    return s[None] == np.arange(n).reshape((n,) + (1,) * s.ndim)
