"""The package's one conjugate-gradient solver, for numpy arrays and torch tensors alike.

Every linear solve of the package (CG-SENSE, the samplers' data-consistency steps, the blind
deconvolution's image update, the unrolled least-squares image of the autofocus search) goes
through :func:`conjugate_gradient`.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

__all__ = ["conjugate_gradient"]

#: Floor of the denominators ``<p, A p>`` and ``<r, z>`` (avoids 0/0 on an exactly solved system;
#: representable in float32).
_TINY = 1e-30


def _is_torch(a: Any) -> bool:
    return type(a).__module__.startswith("torch")


def _dot(a: Any, b: Any, dims: tuple[int, ...] | None) -> Any:
    """``Re <a, b>`` summed over ``dims`` (all axes for ``None``; kept as size-1 axes otherwise).

    Elementwise products and sums, not BLAS calls: on ~10^5-element arrays a threaded BLAS
    ``dot`` cost more than the FFTs on a busy 2-core machine (measured in the blind solver).
    """
    cplx = a.is_complex() if _is_torch(a) else np.iscomplexobj(a)
    prod = (a.conj() * b).real if cplx else a * b
    if dims is None:
        return prod.sum()
    if _is_torch(prod):
        return prod.sum(dim=dims, keepdim=True)
    return prod.sum(axis=dims, keepdims=True)


def conjugate_gradient(
    A: Callable[[Any], Any],
    b: Any,
    x0: Any = None,
    *,
    max_iter: int,
    tol: float = 0.0,
    M: Callable[[Any], Any] | None = None,
    reduce_dims: tuple[int, ...] | None = None,
    callback: Callable[[int, Any, Any], Any] | None = None,
) -> Any:
    r"""Solve ``A x = b`` by (preconditioned) conjugate gradients.

    ``A`` must be Hermitian positive definite, or positive semidefinite with ``b`` in its range
    (e.g. normal equations ``A^H A x = A^H y``: from ``x0 = 0`` CG then converges to the
    minimum-norm solution; from another ``x0`` the component of ``x0`` in the null space of ``A``
    is kept). With ``r_0 = b - A x_0``, ``z_0 = M r_0``, ``p_0 = z_0``, iteration ``k`` is

    .. math::

        \alpha_k = \frac{\mathrm{Re}\langle r_k, z_k\rangle}{\mathrm{Re}\langle p_k, A p_k\rangle},\quad
        x_{k+1} = x_k + \alpha_k p_k,\quad r_{k+1} = r_k - \alpha_k A p_k,

        z_{k+1} = M r_{k+1},\quad
        \beta_k = \frac{\mathrm{Re}\langle r_{k+1}, z_{k+1}\rangle}{\mathrm{Re}\langle r_k, z_k\rangle},\quad
        p_{k+1} = z_{k+1} + \beta_k p_k,

    with ``<a, b> = sum(conj(a) * b)`` and ``M = I`` without a preconditioner.

    Works on numpy arrays (and numpy-like arrays such as cupy's) and on torch tensors: only
    elementwise arithmetic, ``.conj()``, ``.real`` and ``.sum`` are used, and no operation is
    in place, so with tensors that require grad the result is differentiable (the iterations are
    unrolled; autograd goes through ``A``, ``b`` and ``x0``). The dtype is preserved (the
    scalars are reductions of the iterates, e.g. float32 for complex64), provided ``A`` and ``M``
    preserve it.

    Parameters
    ----------
    A : callable
        ``A(x)``, the linear operator, on arrays shaped like ``b``.
    b : array or tensor
        Right-hand side, real or complex, any shape.
    x0 : array or tensor shaped like ``b``, optional
        Start (a warm start); default zeros (then ``A(x0)`` is not evaluated). Not modified.
    max_iter : int
        Maximum number of iterations (applications of ``A``, not counting ``A(x0)``).
    tol : float
        Relative tolerance: stop when ``||r_k|| <= tol ||b||`` (checked before every iteration,
        including the first); ``0`` runs ``max_iter`` iterations unless the residual is exactly
        zero. With ``reduce_dims`` the test is per system, and the loop ends when every system
        has passed it (systems that passed take no further step, ``alpha = 0``).
    M : callable, optional
        Preconditioner ``M(r)`` ~ ``A^{-1} r``, Hermitian positive definite (e.g. Jacobi:
        ``lambda r: r / diag(A)``). The stopping test uses the unpreconditioned residual.
    reduce_dims : tuple of int, optional
        ``None``: ``b`` is one system (inner products over all axes). A tuple of axes: independent
        systems, one per index of the remaining axes (e.g. ``b (n, H, W)`` with
        ``reduce_dims=(1, 2)``: ``n`` systems, each with its own ``alpha``, ``beta`` and stop);
        ``A`` must then act on each system separately.
    callback : callable(i, x, residual_norm), optional
        Called after iteration ``i`` (1-based) with the iterate ``x_i`` and ``||r_i||`` (a
        0-d array/tensor, or one value per system with ``reduce_dims``, as size-1 axes). A true
        return value stops the iteration and returns ``x_i`` (e.g. a cancel button); an
        exception it raises propagates.

    Returns
    -------
    x : array or tensor shaped like ``b``
        The last iterate.

    Notes
    -----
    Iteration also stops (for a system, with ``reduce_dims``) when ``<p, A p> <= 0``, i.e. ``A``
    is not positive definite on the search direction (only rounding, for a valid ``A``).
    Denominators are floored at 1e-30.
    """
    dims = None if reduce_dims is None else tuple(reduce_dims)
    torch_like = _is_torch(b)
    if x0 is None:
        x = b.new_zeros(b.shape) if torch_like else np.zeros_like(b)
        r = b
    else:
        x = x0
        r = b - A(x)
    z = r if M is None else M(r)
    rz = _dot(r, z, dims)
    rr = rz if M is None else _dot(r, r, dims)
    stop = (tol * tol) * _dot(b, b, dims)
    p = z
    for i in range(max_iter):
        active = rr > stop
        if not bool(active.any()):
            break
        ap = A(p)
        pap = _dot(p, ap, dims)
        active = active & (pap > 0)
        if not bool(active.any()):
            break
        alpha = rz / pap.clip(min=_TINY)
        if dims is not None:
            alpha = alpha * active  # converged systems stay where they are
        x = x + alpha * p
        r = r - alpha * ap
        z = r if M is None else M(r)
        rz_new = _dot(r, z, dims)
        rr = rz_new if M is None else _dot(r, r, dims)
        p = z + (rz_new / rz.clip(min=_TINY)) * p
        rz = rz_new
        if callback is not None and callback(i + 1, x, rr**0.5):
            break
    if x is x0:  # no step taken: never hand back the caller's own array
        x = x0.clone() if torch_like else x0.copy()
    return x
