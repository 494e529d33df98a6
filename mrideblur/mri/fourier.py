"""The one Fourier transform of the project (CONVENTIONS.md): centred and orthonormal.

``F x = fftshift(fftn(ifftshift(x), norm="ortho"))`` over the last ``ndim`` axes; k-space index
``N // 2`` is DC and the image centre is ``N // 2``. This is what ``sigpy.fft(x, center=True)``
computes. Numpy (through ``scipy.fft``: single precision stays single, all cores) and torch
versions give the same numbers; every other module calls these.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft

__all__ = ["fft", "ifft", "fft_torch", "ifft_torch"]


def _axes(ndim: int) -> tuple[int, ...]:
    if ndim < 1:
        raise ValueError(f"ndim: expected >= 1, got {ndim}")
    return tuple(range(-ndim, 0))


def fft(x: np.ndarray, ndim: int = 2) -> np.ndarray:
    """Centred orthonormal DFT over the last ``ndim`` axes (image -> k-space)."""
    ax = _axes(ndim)
    return np.fft.fftshift(sfft.fftn(np.fft.ifftshift(x, axes=ax), axes=ax, norm="ortho", workers=-1), axes=ax)


def ifft(k: np.ndarray, ndim: int = 2) -> np.ndarray:
    """Inverse of :func:`fft` (its adjoint: the transform is unitary)."""
    ax = _axes(ndim)
    return np.fft.fftshift(sfft.ifftn(np.fft.ifftshift(k, axes=ax), axes=ax, norm="ortho", workers=-1), axes=ax)


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
