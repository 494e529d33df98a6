"""The physics interface the diffusion samplers use for data consistency, two small generic
operators, and the batched normal-equations solve :func:`cg_normal` (by :mod:`.cg`).

Interface (duck-typed; deepinv's ``LinearPhysics`` has the same shape)
---------------------------------------------------------------------
A *physics* is any object with

- ``A(x)``: ``x`` a torch complex tensor ``(n, H, W)`` -- ``n`` images sampled together --
  returning the measurements ``(n, *m)`` (any shape ``m``, complex or real);
- ``A_adjoint(y)``: ``(n, *m) -> (n, H, W)``, the adjoint of ``A`` for the real inner product
  ``Re <A x, y> = Re <x, A^H y>`` (for complex ``A`` this is the usual conjugate transpose);
- optionally ``noise_sigma``: standard deviation of the measurement noise in each real channel
  (real and imaginary parts), in the units of ``y``;
- ``update_parameters(**params)``: the one way to change the physics' unknown parameters
  between calls (a blur kernel: ``kernel=``; motion and coils: ``theta=``, ``sens=``) — what a
  blind estimator's parameter step calls.

``A`` must be linear in ``x``; it may change between calls (JSMoCo updates the motion of its
MRI operator between sampler steps, see ``callback`` in :func:`mrideblur.prior.samplers.posterior_sample`).
It must work on whatever device ``x`` is on. Operators written for one image at a time can be
wrapped: ``LinearPhysics(A=f, A_adjoint=fh, batched=False)`` loops over ``n``.

The samplers know nothing else about the physics: the same prior reconstructs undersampled
k-space (:class:`MaskedFourier`), deblurs (:class:`Convolution`) or, with the MRI model's
torch operators, corrects motion.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .cg import conjugate_gradient
from .fourier import fft_torch, ifft_torch

__all__ = ["LinearPhysics", "MaskedFourier", "Convolution", "MaskedConvolution", "cg_normal"]


class LinearPhysics:
    """A linear forward model from two callables (see the module docstring for the contract).

    Parameters
    ----------
    A, A_adjoint : callable
        Forward operator and its adjoint on torch tensors.
    noise_sigma : float
        Measurement noise per real channel (0 = noiseless).
    batched : bool
        ``True``: the callables take ``(n, H, W)``; ``False``: one image ``(H, W)`` at a time
        (this class loops and stacks).
    """

    def __init__(self, A: Callable | None = None, A_adjoint: Callable | None = None,
                 noise_sigma: float = 0.0, batched: bool = True) -> None:
        self._A = A
        self._AH = A_adjoint
        self.noise_sigma = float(noise_sigma)
        self.batched = batched

    def _apply(self, f: Callable, x: torch.Tensor) -> torch.Tensor:
        if f is None:
            raise NotImplementedError("this physics has no such operator")
        return f(x) if self.batched else torch.stack([f(xi) for xi in x])

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return self._apply(self._A, x)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self._apply(self._AH, y)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``A^H A x``."""
        return self.A_adjoint(self.A(x))

    #: Names of the unknown parameters :meth:`update_parameters` accepts.
    parameters: tuple[str, ...] = ()

    def update_parameters(self, **params) -> None:
        """Replace unknown parameters (names from :attr:`parameters`); ``A`` stays linear in ``x``."""
        for name, value in params.items():
            if name not in self.parameters:
                raise ValueError(f"{name}: not a parameter of {type(self).__name__} "
                                 f"(its parameters: {', '.join(self.parameters) or 'none'})")
            if value is not None:
                self._set(name, value)

    def _set(self, name: str, value) -> None:
        raise NotImplementedError


class MaskedFourier(LinearPhysics):
    """Undersampled single-coil k-space: ``A x = mask * F x`` (centred orthonormal DFT).

    Parameters
    ----------
    mask : (H, W) array or tensor
        1 where k-space is sampled, 0 elsewhere (real weights also work).
    noise_sigma : float
    """

    def __init__(self, mask, noise_sigma: float = 0.0) -> None:
        super().__init__(noise_sigma=noise_sigma)
        self.mask = torch.as_tensor(mask).to(torch.float32)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return self.mask.to(x.device) * fft_torch(x)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return ifft_torch(self.mask.to(y.device) * y)


class Convolution(LinearPhysics):
    """Circular convolution with a kernel centred at ``(kh // 2, kw // 2)``: ``A x = k * x``.

    Parameters
    ----------
    kernel : (kh, kw) array or tensor
        Real kernel (e.g. :func:`mrideblur.deblur.camera_shake_kernel`), smaller than the image.
    shape : (H, W)
        Image shape.
    noise_sigma : float
    """

    def __init__(self, kernel, shape: tuple[int, int], noise_sigma: float = 0.0) -> None:
        super().__init__(noise_sigma=noise_sigma)
        k = torch.as_tensor(kernel, dtype=torch.float64)
        kh, kw = k.shape
        h, w = shape
        if kh > h or kw > w:
            raise ValueError(f"kernel: {tuple(k.shape)} is larger than the image {tuple(shape)}")
        pad = torch.zeros(h, w, dtype=torch.float64)
        pad[:kh, :kw] = k
        pad = torch.roll(pad, shifts=(-(kh // 2), -(kw // 2)), dims=(0, 1))
        self.otf = torch.fft.fft2(pad).to(torch.complex64)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.ifft2(torch.fft.fft2(x) * self.otf.to(x.device))

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return torch.fft.ifft2(torch.fft.fft2(y) * self.otf.to(y.device).conj())


class MaskedConvolution(Convolution):
    """``A x = M (k * x)``: circular convolution on a canvas, then keep the observed pixels.

    Parameters
    ----------
    kernel : (kh, kw) array
        Real kernel centred at ``(kh // 2, kw // 2)``.
    shape : (H, W)
        Canvas shape.
    mask : (H, W) 0/1 array, optional
        Observed pixels ``M``; None for all.
    noise_sigma : float
        Noise std of the data (data units).

    The adjoint is ``A^H r = k^T * (M r)``; ``update_parameters(kernel=k)`` changes ``k`` in place
    between sampler steps (the physics' unknown parameter).
    """

    def __init__(self, kernel, shape: tuple[int, int], mask: np.ndarray | None = None,
                 noise_sigma: float = 0.0) -> None:
        super().__init__(kernel, shape, noise_sigma)
        self.shape = (int(shape[0]), int(shape[1]))
        self.mask = None if mask is None else torch.as_tensor(np.asarray(mask, dtype=np.float32))

    parameters = ("kernel",)

    def _set(self, name: str, kernel) -> None:
        self.otf = Convolution(kernel, self.shape).otf

    def A(self, x: torch.Tensor) -> torch.Tensor:
        out = super().A(x)
        return out if self.mask is None else out * self.mask.to(out.device)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if self.mask is not None:
            y = y * self.mask.to(y.device)
        return super().A_adjoint(y)


def cg_normal(physics, b: torch.Tensor, mu: torch.Tensor | float = 0.0, x0: torch.Tensor | None = None,
              iters: int = 10, tol: float = 1e-6) -> torch.Tensor:
    """Solve ``(A^H A + mu I) x = b`` by conjugate gradients, separately for each of the ``n``
    images in ``b`` ``(n, H, W)`` (``mu`` a float or ``(n,)``), starting from ``x0``: at most
    ``iters`` iterations, image ``i`` stopping at ``||r_i|| <= tol ||b_i||``
    (:func:`mrideblur.physics.cg.conjugate_gradient` with ``reduce_dims`` all axes but the first).

    With ``mu = 0`` and ``x0`` a prior estimate, the iterates stay in ``x0 + range(A^H)``: CG then
    fits the data while keeping ``x0``'s component in the null space of ``A``.
    """
    n = b.shape[0]
    mu_t = torch.as_tensor(mu, dtype=torch.float32, device=b.device).reshape(-1).expand(n)
    mu_b = mu_t.reshape((n,) + (1,) * (b.ndim - 1))
    return conjugate_gradient(lambda v: physics.normal(v) + mu_b * v, b, x0, max_iter=iters, tol=tol,
                              reduce_dims=tuple(range(1, b.ndim)))
