"""Input checks shared by the physics: a real array of the expected rank, or a clear error."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["real_array"]


def real_array(value: Any, name: str, ndim: int = 2, what: str = "array", copy: bool = False) -> np.ndarray:
    """``value`` as a finite float64 array of rank ``ndim``; a ``ValueError`` naming ``name`` otherwise.

    ``what`` names the expected thing in the message (``"image (ny, nx)"``, ``"kernel (ky, kx)"``).
    """
    try:
        a = np.array(value, dtype=np.float64) if copy else np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: expected a {ndim}D array of real numbers ({exc})") from None
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}D {what}, got {a.ndim} dimension(s) {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains {int(np.count_nonzero(~np.isfinite(a)))} NaN or infinite value(s)")
    return a
