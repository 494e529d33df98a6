"""The one Fourier transform of the project (docs/conventions.md): centred and orthonormal.

``F x = fftshift(fftn(ifftshift(x), norm="ortho"))`` over the last ``ndim`` axes; k-space index
``N // 2`` is DC and the image centre is ``N // 2``. This is what ``sigpy.fft(x, center=True)``
computes. Numpy (through ``scipy.fft``: single precision stays single; its threads are
scipy's ``set_workers`` setting, which :func:`mrideblur.threads.using_threads` sets) and torch
versions give the same numbers; every other module calls these.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft

__all__ = ["fft", "ifft", "fft_torch", "ifft_torch", "shot_dft_rows"]


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


def fft_torch(x, ndim: int = 2):
    """:func:`fft` for torch tensors (differentiable, any device)."""
    import torch

    ax = _axes(ndim)
    return torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(x, dim=ax), dim=ax, norm="ortho"), dim=ax)


def ifft_torch(k, ndim: int = 2):
    """:func:`ifft` for torch tensors (differentiable, any device)."""
    import torch

    ax = _axes(ndim)
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
    j = np.arange(n) - n // 2
    E = np.zeros((nshot, nmax, n), dtype=np.complex128)
    rows = np.full((nshot, nmax), n)
    for s, r in enumerate(lines):
        E[s, : len(r)] = np.exp(-2j * np.pi * np.outer(r - n // 2, j) / n) / np.sqrt(n)
        rows[s, : len(r)] = r
    return E, rows
