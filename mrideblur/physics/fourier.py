"""The one Fourier transform of the project (docs/conventions.md): centred and orthonormal.

``F x = fftshift(fftn(ifftshift(x), norm="ortho"))`` over the last ``ndim`` axes; k-space index
``N // 2`` is DC and the image centre is ``N // 2``. This is what ``sigpy.fft(x, center=True)``
computes. Numpy (through ``scipy.fft``: single precision stays single; its threads are
scipy's ``set_workers`` setting, which :func:`mrideblur.threads.using_threads` sets) and torch
versions give the same numbers; every other module calls these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

__all__ = ["fft", "ifft", "fft_torch", "ifft_torch", "shot_dft_rows", "shot_dft_plan3d", "ShotRows3D"]


def _axes(ndim: int) -> tuple[int, ...]:
    if ndim < 1:
        raise ValueError(f"ndim: expected >= 1, got {ndim}")
    return tuple(range(-ndim, 0))


def fft(x: np.ndarray, ndim: int = 2) -> np.ndarray:
    """Centred orthonormal DFT over the last ``ndim`` axes (image -> k-space)."""
    ax = _axes(ndim)
    return np.fft.fftshift(sfft.fftn(np.fft.ifftshift(x, axes=ax), axes=ax, norm="ortho"), axes=ax)


def ifft(k: np.ndarray, ndim: int = 2) -> np.ndarray:
    """Inverse of :func:`fft` (its adjoint: the transform is unitary)."""
    ax = _axes(ndim)
    return np.fft.fftshift(sfft.ifftn(np.fft.ifftshift(k, axes=ax), axes=ax, norm="ortho"), axes=ax)


def fft_torch(x, ndim: int = 2, dims: tuple[int, ...] | None = None):
    """:func:`fft` for torch tensors (differentiable, any device); ``dims`` picks the axes
    instead of the last ``ndim``."""
    import torch

    ax = _axes(ndim) if dims is None else tuple(dims)
    return torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(x, dim=ax), dim=ax, norm="ortho"), dim=ax)


def ifft_torch(k, ndim: int = 2, dims: tuple[int, ...] | None = None):
    """:func:`ifft` for torch tensors (differentiable, any device); ``dims`` as in :func:`fft_torch`."""
    import torch

    ax = _axes(ndim) if dims is None else tuple(dims)
    return torch.fft.fftshift(torch.fft.ifftn(torch.fft.ifftshift(k, dim=ax), dim=ax, norm="ortho"), dim=ax)


def shot_dft_rows(shot_index: np.ndarray, nshot: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the centred orthonormal DFT along ``ky`` that each shot acquires (2D models).

    ``F`` restricted to the lines of shot ``s`` is ``E_s F_x`` with
    ``E_s[i, j] = exp(-2 pi i (r_i - N//2)(j - N//2) / N) / sqrt(N)`` for the shot's lines
    ``r_i``: a small matrix product replaces a full FFT followed by a mask.

    Parameters
    ----------
    shot_index : (ky,) int
        Shot of every phase-encode line, ``-1`` not acquired.
    nshot : int

    Returns
    -------
    E : (nshot, nmax, ky) complex128
        Zero rows pad shots with fewer than ``nmax`` lines.
    rows : (nshot, nmax) int
        The ``ky`` line of every row of ``E``; padding rows point at ``ky`` (one past the end).
    """
    si = np.asarray(shot_index)
    n = si.shape[0]
    lines = [np.flatnonzero(si == s) for s in range(nshot)]
    nmax = max([1] + [len(r) for r in lines])
    E = np.zeros((nshot, nmax, n), dtype=np.complex128)
    rows = np.full((nshot, nmax), n)
    for s, r in enumerate(lines):
        E[s, : len(r)] = _dft_rows(r, n)
        rows[s, : len(r)] = r
    return E, rows


def _dft_rows(rows: np.ndarray, n: int) -> np.ndarray:
    """Rows ``r`` of the centred orthonormal DFT matrix of size ``n``: ``(len(rows), n)``."""
    j = np.arange(n) - n // 2
    return np.exp(-2j * np.pi * np.outer(np.asarray(rows) - n // 2, j) / n) / np.sqrt(n)


@dataclass(frozen=True)
class ShotRows3D:
    """How one shot of a 3D scan is transformed (:func:`shot_dft_plan3d`).

    Attributes
    ----------
    axis : 0 or 1
        Phase-encode axis reduced first (0: ``kz``, 1: ``ky``); the shot owns points on the
        ``rows`` of that axis only.
    rows : (K,) int
        Its ``kz`` (axis 0) or ``ky`` (axis 1) values.
    E : (K, N_axis) complex128 or None
        Those rows of the centred orthonormal DFT along ``axis``; ``None`` when the shot spreads
        over so many rows that a full FFT along the axis is cheaper.
    mask : bool
        Which points of the rows the shot owns: ``(K, ky)`` for axis 0, ``(kz, K)`` for axis 1,
        ``(kz, ky)`` when ``E`` is ``None``.
    """

    axis: int
    rows: np.ndarray
    E: np.ndarray | None
    mask: np.ndarray


def shot_dft_plan3d(shot_index: np.ndarray, nshot: int, max_fraction: float = 0.25) -> list[ShotRows3D]:
    """Per-shot plan of the 3D transform ``M_s F`` on ``(kz, ky)`` shot maps.

    A shot owns a set of ``(kz, ky)`` points. On the phase-encode axis where it touches fewer
    rows (``K``), the centred DFT is a product with those ``K`` rows,
    ``E (K, N) @ u`` (``K N`` operations per line instead of the whole FFT and a mask),
    which shrinks the data ``N / K`` times before the FFTs along the other two axes:
    interleaved shots own a few ``ky`` rows, linear (sequential) shots a few ``kz`` planes,
    checkered shots a sub-lattice of both. When ``K > max_fraction * N`` (random orderings)
    ``E`` is ``None`` and the shot takes the full 3D FFT.

    Parameters
    ----------
    shot_index : (kz, ky) int
        Shot of every phase-encode line (``-1`` not acquired).
    nshot : int
    max_fraction : float
        Largest ``K / N`` that still uses the DFT rows.

    Returns
    -------
    list of :class:`ShotRows3D`, one per shot ``0 .. nshot - 1``.
    """
    si = np.asarray(shot_index)
    if si.ndim != 2:
        raise ValueError(f"shot_index: expected a (kz, ky) shot map, got shape {si.shape}")
    plans = []
    for s in range(nshot):
        own = si == s
        zrows = np.flatnonzero(own.any(axis=1))
        yrows = np.flatnonzero(own.any(axis=0))
        axis = 0 if len(zrows) <= len(yrows) else 1
        rows = zrows if axis == 0 else yrows
        n = si.shape[axis]
        if len(rows) == 0 or len(rows) > max_fraction * n:
            plans.append(ShotRows3D(axis, np.arange(n), None, own))
            continue
        mask = own[rows, :] if axis == 0 else own[:, rows]
        plans.append(ShotRows3D(axis, rows, _dft_rows(rows, n), mask))
    return plans
