r"""One shot of the 3D multi-shot model on its own k-space points only (torch).

.. math:: k_s = M_s F S T(\theta_s) x, \qquad F = F_x F_{y} F_{z}

A shot of a 3D scan owns a set of ``(kz, ky)`` points. Along the phase-encode axis where it
touches only ``K`` rows (:func:`~mrideblur.physics.fourier.shot_dft_plan3d`: a few ``ky`` rows for
interleaved shots, a few ``kz`` planes for linear ones), the centred DFT is the product with
those rows, ``E_s (K, N)``; the coil images shrink ``N / K`` times before the FFTs along the
other two axes, and the shot's points are added into the k-space array in place. The adjoint
runs the same steps backwards: ``T^H S^H E_s^H F^H M_s``.

The coil product and the row product, ``E_s (S_c m)`` for every coil ``c``, run coil by coil in
chunks that fit in the CPU cache (the full ``(coils, nz, ny, nx)`` product would cross memory
twice per shot), inside one autograd function whose backward is the adjoint (so autograd keeps
the moved volume ``m``, not the coil images).
"""

from __future__ import annotations

from typing import Any

import torch

from .fourier import ShotRows3D, fft_torch, ifft_torch

__all__ = ["ShotRowsTorch", "add_shot_rows", "shot_adjoint3d", "shot_forward3d", "shot_rows3d"]

#: coil images per chunk: about this many voxels (2**21 complex64 = 16 MB)
CHUNK_VOXELS = 1 << 21


class ShotRowsTorch:
    """A :class:`~mrideblur.physics.fourier.ShotRows3D` on a torch device: ``E``, ``E^H``, rows
    and mask as tensors shaped for the ``(coils, nz, ny, nx)`` layout."""

    def __init__(self, plan: ShotRows3D, device: torch.device, dtype: torch.dtype):
        rdt = torch.float64 if dtype == torch.complex128 else torch.float32
        self.axis = plan.axis
        self.dim = 1 + plan.axis                    # dimension of (coils, nz, ny, nx) reduced
        self.rows = torch.as_tensor(plan.rows, device=device, dtype=torch.long)
        self.full = plan.E is None
        self.E = None if plan.E is None else torch.as_tensor(plan.E, device=device).to(dtype)
        self.EH = None if self.E is None else self.E.conj().T.contiguous()
        self.ET = None if self.E is None else self.E.T.contiguous()
        self.mask = torch.as_tensor(plan.mask, device=device).to(rdt)[..., None]  # (.., .., 1) over kx
        # FFT axes left after the row product: (ky, kx) for kz rows, (kz, kx) for ky rows
        self.other = (-2, -1) if plan.axis == 0 else (-3, -1)


def _chunk(nc: int, vox: int) -> int:
    return max(1, min(nc, CHUNK_VOXELS // max(vox, 1)))


def _reduce(m: torch.Tensor, sens: torch.Tensor, p: ShotRowsTorch) -> torch.Tensor:
    """``E_s (S_c m)`` for every coil: ``(coils, K, ny, nx)`` (kz rows) or ``(coils, nz, K, nx)``."""
    nc, (nz, ny, nx) = sens.shape[0], m.shape
    k = p.E.shape[0]
    dt = torch.result_type(m, sens)
    out = torch.empty((nc, k, ny, nx) if p.axis == 0 else (nc, nz, k, nx), dtype=dt, device=m.device)
    step = _chunk(nc, m.numel())
    u = torch.empty((step, nz, ny, nx), dtype=dt, device=m.device)
    for c0 in range(0, nc, step):
        n = min(step, nc - c0)
        torch.mul(sens[c0 : c0 + n], m, out=u[:n])
        if p.axis == 0:
            torch.matmul(p.E, u[:n].view(n, nz, ny * nx), out=out[c0 : c0 + n].view(n, k, ny * nx))
        else:
            torch.matmul(p.E, u[:n], out=out[c0 : c0 + n])
    return out


def _rows_to_volume(M: torch.Tensor, g: torch.Tensor, shape: tuple[int, ...], axis: int,
                    out: torch.Tensor | None = None) -> torch.Tensor:
    """``M (N, K)`` applied along the reduced axis of ``g`` (``(n, K, ny, nx)`` for kz rows,
    ``(n, nz, K, nx)`` for ky rows) -> ``(n, nz, ny, nx)``, into ``out`` when given."""
    nz, ny, nx = shape
    n = g.shape[0]
    if axis == 0:
        flat = None if out is None else out.view(n, nz, ny * nx)
        return torch.matmul(M, g.reshape(n, g.shape[1], ny * nx), out=flat).view(n, nz, ny, nx)
    return torch.matmul(M, g, out=out)


def _expand(g: torch.Tensor, sens: torch.Tensor, p: ShotRowsTorch) -> torch.Tensor:
    """Adjoint of :func:`_reduce`: ``sum_c conj(S_c) E_s^H g_c`` -> ``(nz, ny, nx)``.

    Accumulated as ``conj(sum_c S_c conj(E_s^H g_c))`` with ``conj(E^H g) = E^T conj(g)``: one
    fused multiply-add per coil, without a conjugated copy of the coil maps.
    """
    nc, shape = sens.shape[0], tuple(sens.shape[1:])
    gc = g.conj().resolve_conj()  # small: the shot's rows only
    acc = torch.zeros(shape, dtype=torch.result_type(g, sens), device=g.device)
    step = _chunk(nc, acc.numel())
    w = torch.empty((step,) + shape, dtype=acc.dtype, device=g.device)
    for c0 in range(0, nc, step):
        n = min(step, nc - c0)
        _rows_to_volume(p.ET, gc[c0 : c0 + n], shape, p.axis, out=w[:n])
        for j in range(n):
            acc.addcmul_(sens[c0 + j], w[j])
    return acc.conj_physical_()


class _CoilRows(torch.autograd.Function):
    """``m -> E_s (S m)`` with the adjoint as backward (gradients for ``m`` and ``sens``)."""

    @staticmethod
    def forward(ctx: Any, m: torch.Tensor, sens: torch.Tensor, p: ShotRowsTorch) -> torch.Tensor:
        ctx.p = p
        ctx.save_for_backward(m, sens)
        return _reduce(m, sens, p)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple:
        m, sens = ctx.saved_tensors
        p = ctx.p
        gm = _expand(g, sens, p) if ctx.needs_input_grad[0] else None
        gs = None
        if ctx.needs_input_grad[1]:  # d/dS of E (S m): (E^H g) conj(m)
            gs = _rows_to_volume(p.EH, g, tuple(m.shape), p.axis) * m.conj()
        return gm, gs, None


def shot_rows3d(m: torch.Tensor, sens: torch.Tensor, p: ShotRowsTorch) -> torch.Tensor:
    """``M_s F S m`` on the shot's own rows: ``(coils, K, ky, kx)`` or ``(coils, kz, K, kx)``
    (``(coils, kz, ky, kx)`` when the shot spans every row); :func:`add_shot_rows` puts it in
    k-space."""
    if p.full:
        return fft_torch(sens * m, 3) * p.mask
    return fft_torch(_CoilRows.apply(m, sens, p), dims=p.other) * p.mask


def add_shot_rows(out: torch.Tensor | None, rows: torch.Tensor, p: ShotRowsTorch,
                  shape: tuple[int, ...]) -> torch.Tensor:
    """Add the rows of :func:`shot_rows3d` into ``out`` ``(coils, kz, ky, kx)`` (in place; ``None``
    starts a new array of that ``shape``) and return it."""
    if p.full:
        return rows if out is None else out + rows
    if out is None:
        out = torch.zeros(shape, dtype=rows.dtype, device=rows.device)
    return out.index_add_(p.dim, p.rows, rows)  # in place is fine for autograd: nothing saves ``out``


def shot_forward3d(out: torch.Tensor | None, m: torch.Tensor, sens: torch.Tensor, p: ShotRowsTorch) -> torch.Tensor:
    """Add ``M_s F S m`` (``m = T(theta_s) x``, ``(nz, ny, nx)``) into ``out`` ``(coils, kz, ky, kx)``
    (in place; ``None`` starts a new array) and return it."""
    return add_shot_rows(out, shot_rows3d(m, sens, p), p, tuple(sens.shape))


def shot_adjoint3d(y: torch.Tensor, sens: torch.Tensor, p: ShotRowsTorch) -> torch.Tensor:
    """``S^H F^H M_s y``: the shot's points of ``y`` ``(coils, kz, ky, kx)`` -> ``(nz, ny, nx)``."""
    if p.full:
        return (sens.conj() * ifft_torch(y * p.mask, 3)).sum(0)
    g = ifft_torch(y.index_select(p.dim, p.rows) * p.mask, dims=p.other)
    if g.requires_grad or sens.requires_grad:  # autograd through the plain operations
        return (sens.conj() * _rows_to_volume(p.EH, g, tuple(sens.shape[1:]), p.axis)).sum(0)
    return _expand(g, sens, p)
