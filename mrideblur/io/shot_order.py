"""Shot orderings: which shot acquired each of the acquired phase-encode lines.

One rule for the simulator (:func:`mrideblur.physics.shots.make_shot_index`) and for the readers
of files that do not store the shot of each line (NIfTI, fastMRI, ISMRMRD without a counter),
so a scan simulated with an ordering and a file read with the same assumed ordering get the
same shot map.  Shot maps are defined in docs/conventions.md: an int array over the phase-encode
grid, ``(ky,)`` in 2D or ``(kz, ky)`` in 3D, ``-1`` where a line was not acquired.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SHOT_ORDERINGS", "ORDERINGS", "assign_shots", "checker_factors"]

#: Orderings a reader can assume for a file (deterministic, so they describe a real sequence).
SHOT_ORDERINGS = ("interleaved", "sequential", "centre-out", "checkered")
#: Every ordering, with the seeded ``"random"`` one of the simulator.
ORDERINGS = SHOT_ORDERINGS + ("random",)


def checker_factors(nshot: int) -> tuple[int, int]:
    """``(pz, py)`` with ``pz * py = nshot`` and ``pz <= py`` as close as possible (the most
    square factorisation): the period of the checkered ordering along ``kz`` and ``ky``."""
    pz = max(d for d in range(1, int(np.sqrt(nshot)) + 1) if nshot % d == 0)
    return pz, nshot // pz


def _rank_along(acq: np.ndarray, axis: int) -> np.ndarray:
    """For each acquired point, its position among the acquired points of its own row along
    ``axis`` (0, 1, 2, ... in index order)."""
    return np.cumsum(acq, axis=axis) - 1


def assign_shots(acquired: np.ndarray, nshot: int, ordering: str = "interleaved", seed: int | None = None) -> np.ndarray:
    """Split the acquired phase-encode lines among ``nshot`` shots by an ordering.

    ``L`` acquired lines, taken in raster order (``ky`` in 2D; ``kz`` slowest in 3D):

    - ``"interleaved"``: the ``i``-th acquired line goes to shot ``i % nshot`` — every shot
      samples the whole of k-space coarsely (the usual multi-shot TSE / segmented EPI order);
    - ``"sequential"`` (in 3D also called linear): consecutive blocks, line ``i`` to shot
      ``i * nshot // L`` — each shot covers one band of k-space and the centre falls in the
      middle shots;
    - ``"centre-out"``: the lines sorted by their distance from the k-space centre (2D:
      ``|ky - N // 2|``, the negative side first on ties; 3D: the elliptical radius
      ``((kz - Nz//2) / Nz)^2 + ((ky - Ny//2) / Ny)^2``), then consecutive blocks — shot 0 owns the
      centre and each later shot a ring further out (a centric view order split into shots);
    - ``"checkered"`` (3D only): with ``pz * py = nshot`` the most square factorisation
      (:func:`checker_factors`), the point that is the ``a``-th acquired one of its ``kz`` column
      and the ``b``-th of its ``ky`` row goes to shot ``(a % pz) * py + (b % py)`` — every shot a
      regular sub-lattice spread over the whole ``(kz, ky)`` plane (distributed sampling);
    - ``"random"``: a seeded random permutation of the lines, then consecutive blocks.

    Parameters
    ----------
    acquired : (ky,) or (kz, ky) bool array
        True where the line was acquired.
    nshot : int
        Number of shots, ``1 .. acquired.sum()``.
    ordering : one of :data:`ORDERINGS`
    seed : int, optional
        Seed of the ``"random"`` ordering.

    Returns
    -------
    shot_index : int32 array, the shape of ``acquired``; -1 where not acquired.

    Raises
    ------
    ValueError
        Unknown ordering, ``"checkered"`` on a 2D map, or ``nshot`` outside
        ``1 .. number of acquired lines``.
    """
    acq = np.asarray(acquired, dtype=bool)
    if ordering not in ORDERINGS:
        raise ValueError(f"ordering: expected one of {ORDERINGS}, got {ordering!r}")
    lines = np.flatnonzero(acq.ravel())
    if isinstance(nshot, bool) or int(nshot) != nshot or not 1 <= int(nshot) <= len(lines):
        raise ValueError(f"shots: expected an integer 1 .. {len(lines)} (the acquired lines), got {nshot!r}")
    nshot = int(nshot)
    out = np.full(acq.size, -1, dtype=np.int32)
    if ordering == "interleaved":
        out[lines] = np.arange(len(lines)) % nshot
    elif ordering == "checkered":
        if acq.ndim != 2:
            raise ValueError(f"ordering: 'checkered' spreads shots over a (kz, ky) grid; this shot map has shape "
                             f"{acq.shape} — use 'interleaved' for a 2D scan")
        pz, py = checker_factors(nshot)
        shots = (_rank_along(acq, 0) % pz) * py + (_rank_along(acq, 1) % py)
        out[lines] = shots.ravel()[lines]
        if np.unique(out[lines]).size != nshot:
            raise ValueError(f"shots: {nshot} shots as a {pz} x {py} checkerboard leave some shot without a line "
                             f"on this {acq.shape} sampling pattern; use fewer shots or another ordering")
    else:
        if ordering == "random":
            lines = np.random.default_rng(seed).permutation(lines)
        elif ordering == "centre-out":
            idx = np.indices(acq.shape).reshape(acq.ndim, -1)[:, lines]
            centre = np.array([n // 2 for n in acq.shape])[:, None]
            d = idx - centre
            if acq.ndim == 1:
                radius = np.abs(d[0]).astype(np.float64)
            else:
                radius = np.sum((d / np.array(acq.shape)[:, None]) ** 2, axis=0)
            # distance first, then the negative side (lower raster index) first
            lines = lines[np.lexsort((lines, radius))]
        out[lines] = (np.arange(len(lines)) * nshot) // len(lines)
    return out.reshape(acq.shape)
