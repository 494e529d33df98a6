"""The physics interface the diffusion samplers use for data consistency, two small generic
operators, and a batched conjugate-gradient solver.

Interface (duck-typed; deepinv's ``LinearPhysics`` has the same shape)
---------------------------------------------------------------------
A *physics* is any object with

- ``A(x)``: ``x`` a torch complex tensor ``(n, H, W)`` -- ``n`` images sampled together --
  returning the measurements ``(n, *m)`` (any shape ``m``, complex or real);
- ``A_adjoint(y)``: ``(n, *m) -> (n, H, W)``, the adjoint of ``A`` for the real inner product
  ``Re <A x, y> = Re <x, A^H y>`` (for complex ``A`` this is the usual conjugate transpose);
- optionally ``noise_sigma``: standard deviation of the measurement noise in each real channel
  (real and imaginary parts), in the units of ``y``.

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

import torch

__all__ = ["LinearPhysics", "MaskedFourier", "Convolution", "fft2c", "ifft2c", "cg_normal"]


def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2D DFT over the last two axes (docs/conventions.md)."""
    return torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(x, dim=(-2, -1)), norm="ortho"), dim=(-2, -1))


def ifft2c(k: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`fft2c`."""
    return torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(k, dim=(-2, -1)), norm="ortho"), dim=(-2, -1))


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
        return self.mask.to(x.device) * fft2c(x)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return ifft2c(self.mask.to(y.device) * y)


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


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample real inner product ``Re <a, b>`` over all axes but the first, shape (n,)."""
    return torch.real(torch.sum(torch.conj(a) * b, dim=tuple(range(1, a.ndim))))


def cg_normal(physics, b: torch.Tensor, mu: torch.Tensor | float = 0.0, x0: torch.Tensor | None = None,
              iters: int = 10, tol: float = 1e-6) -> torch.Tensor:
    """Solve ``(A^H A + mu I) x = b`` by conjugate gradients, separately for each of the ``n``
    images in ``b`` ``(n, H, W)`` (``mu`` a float or ``(n,)``), starting from ``x0``.

    With ``mu = 0`` and ``x0`` a prior estimate, the iterates stay in ``x0 + range(A^H)``: CG then
    fits the data while keeping ``x0``'s component in the null space of ``A``.
    """
    n = b.shape[0]
    mu_t = torch.as_tensor(mu, dtype=torch.float32, device=b.device).reshape(-1).expand(n)
    shape = (n,) + (1,) * (b.ndim - 1)
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - (physics.normal(x) + mu_t.reshape(shape) * x)
    p = r.clone()
    rr = _dot(r, r)
    stop = tol**2 * torch.clamp(_dot(b, b), min=1e-30)
    for _ in range(iters):
        if bool(torch.all(rr <= stop)):
            break
        ap = physics.normal(p) + mu_t.reshape(shape) * p
        alpha = rr / torch.clamp(_dot(p, ap), min=1e-30)
        alpha = torch.where(rr <= stop, torch.zeros_like(alpha), alpha)
        x = x + alpha.reshape(shape) * p
        r = r - alpha.reshape(shape) * ap
        rr_new = _dot(r, r)
        p = r + (rr_new / torch.clamp(rr, min=1e-30)).reshape(shape) * p
        rr = rr_new
    return x
