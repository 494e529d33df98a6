r"""Torch twin of :mod:`mrideblur.physics.motion`: rigid motion of every shot, differentiable.

``rigid2d_torch(x, thetas)`` computes ``T(theta_s) x`` for all shots at once with the same
sequence of 1D Fourier shifts as the numpy module (see its docstring for the math and the sign
convention of docs/conventions.md): rotation by three shears per plane, exact quarter turns for
angles beyond 45 degrees, then the translation, merged into the last shear where it shares its
axis. Gradients flow to ``x`` and to ``thetas`` (through ``tan(r/2)``, ``sin(r)`` and the phase
ramps); the quarter-turn count is piecewise constant and carries no gradient.

Speed: no Python loop over shots; every step is batched over ``(nshot, ...)``. The first 1D FFT is
taken once for all shots (the image is shared). Each step is a custom autograd function
(:class:`_Shift`) with an analytic backward, so autograd keeps only the step's spectrum and, in 2D,
its phase (recomputed in backward for volumes) instead of the graph of the phase computation;
without a gradient the steps run as plain FFTs with the phase multiplied in place. Full-size phase
ramps are the product of two small tables (:func:`_phase`); the 1D grids are cached per length,
device and dtype. Phase arguments are formed in float64 (float32 on devices without float64, e.g.
MPS), reduced to ``[-1/2, 1/2]`` cycles, then cast to the working precision, so complex64 results
match numpy to ~1e-6 relative. All tensors live on ``x``'s device; ``thetas`` is copied to the host
once per call (validation and the quarter-turn counts).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch

from .motion import _NAMES, build_plan

__all__ = ["rigid2d_torch", "rigid3d_torch"]


def _phase_real_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


def _real(cdtype: torch.dtype) -> torch.dtype:
    return torch.float64 if cdtype == torch.complex128 else torch.float32


@functools.lru_cache(maxsize=128)
def _vec(n: int, kind: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Cached 1D grids: ``"f"``: ``fftfreq(n)`` = ``k / n`` for the centred frequency set in FFT
    order; ``"d"``: centred offsets ``i - n // 2``; ``"i"``: ``0 .. n-1``."""
    if kind == "f":
        return torch.fft.fftfreq(n, dtype=dtype, device=device)
    v = torch.arange(n, dtype=dtype, device=device)
    return v - (n // 2) if kind == "d" else v


@functools.lru_cache(maxsize=128)
def _grid(spatial: tuple[int, ...], axis: int, coord: int | None, device: torch.device,
          dtype: torch.dtype) -> torch.Tensor:
    """``k_axis / N_axis`` times the centred offsets along ``coord`` (or 1): the derivative of the
    phase argument (in cycles) with respect to the shift coefficient;
    shape ``(1, *spatial-with-ones)``."""
    nd = len(spatial)
    shape = [1] * nd
    shape[axis] = spatial[axis]
    g = _vec(spatial[axis], "f", device, dtype).reshape(shape)
    if coord is not None:
        shape = [1] * nd
        shape[coord] = spatial[coord]
        g = g * _vec(spatial[coord], "d", device, dtype).reshape(shape)
    return g.unsqueeze(0)


@functools.lru_cache(maxsize=64)
def _split(n: int) -> int:
    """Table length ``L`` for ``i = L h + l``: a divisor of ``n`` near ``sqrt(n)`` when there is
    one (no padding), else ``ceil(sqrt(n))``."""
    r = math.isqrt(n)
    for ell in range(r, max(1, r // 2) - 1, -1):
        if ell >= 1 and n % ell == 0 and (ell > 1 or n == 1):
            return ell
    return r + (r * r < n)


def _expi(cyc: torch.Tensor, cdtype: torch.dtype) -> torch.Tensor:
    """``exp(-2 pi i cyc)``: argument reduced to ``[-1/2, 1/2]`` cycles in the precision of
    ``cyc`` (float64), then cos/sin in the working precision."""
    cyc = cyc - torch.round(cyc)
    ang = (cyc * (-2.0 * math.pi)).to(_real(cdtype))
    return torch.complex(torch.cos(ang), torch.sin(ang))


def _phase(vals: tuple[torch.Tensor, ...], coords: tuple[int | None, ...], axis: int,
           spatial: tuple[int, ...], nbatch: int, cdtype: torch.dtype) -> torch.Tensor:
    """The phase ramp of one shift step, ``exp(-2 pi i k_axis/N_axis * sum_j vals_j d_{c_j})``,
    as a complex tensor broadcastable to ``(nshot, *batch, *spatial)``.

    A coordinate term ``u_s d_c k/N`` spans ``(nshot, N_c, N_axis)``, as large as a 2D image per
    shot. It is built from two small tables: with ``i = L h + l`` (``L ~ sqrt(N_c)``),
    ``exp(-2 pi i u d f) = exp(-2 pi i u f L h) * exp(-2 pi i u f (l - N_c//2))``, so the
    full-size work is one complex product instead of a float64 trig pipeline. Constant terms
    (translations) are folded into the second table.
    """
    nd = len(spatial)
    na = spatial[axis]
    dev = vals[0].device
    pdt = vals[0].dtype
    nshot = vals[0].shape[0]
    f = _vec(na, "f", dev, pdt)
    const = None
    per_coord: dict[int, torch.Tensor] = {}
    for c, v in zip(coords, vals):
        if c is None:
            const = v if const is None else const + v
        else:
            per_coord[c] = per_coord[c] + v if c in per_coord else v
    cconst = None if const is None else const[:, None, None] * f  # (nshot, 1, na) cycles
    phase = None
    for c, u in per_coord.items():
        nc = spatial[c]
        ell = _split(nc)
        hh = -(-nc // ell)
        uf = u[:, None, None] * f                                   # (nshot, 1, na)
        ca = uf * (_vec(hh, "i", dev, pdt) * ell)[:, None]          # (nshot, hh, na)
        cb = uf * (_vec(ell, "i", dev, pdt) - (nc // 2))[:, None]   # (nshot, ell, na)
        if cconst is not None:
            cb = cb + cconst
            cconst = None
        a, b = _expi(ca, cdtype), _expi(cb, cdtype)
        if c < axis:   # layout (nshot, nc, na)
            p = (a[:, :, None, :] * b[:, None, :, :]).reshape(nshot, hh * ell, na)[:, :nc]
        else:          # layout (nshot, na, nc)
            a, b = a.transpose(1, 2), b.transpose(1, 2)
            p = (a[:, :, :, None] * b[:, :, None, :]).reshape(nshot, na, hh * ell)[:, :, :nc]
        shape = [1] * nd
        shape[c], shape[axis] = nc, na
        p = p.reshape([nshot] + shape)
        phase = p if phase is None else phase * p
    if cconst is not None:
        shape = [1] * nd
        shape[axis] = na
        p = _expi(cconst, cdtype).reshape([nshot] + shape)
        phase = p if phase is None else phase * p
    assert phase is not None
    return phase.reshape(phase.shape[:1] + (1,) * nbatch + phase.shape[1:])


#: 2D phases of at most this many elements (shots x ny x nx) are kept from the forward pass for
#: the backward pass instead of recomputed.  Not in 3D: a volume's phase per step and shot would
#: double the memory autograd holds (8 steps x 32 shots x 16 MB more at 128^3).
_KEEP_PHASE = 1 << 22


class _Shift(torch.autograd.Function):
    """One step ``y -> F_a^{-1} (P * F_a y)``: every line along axis ``a`` shifted by
    ``sum_j vals_j[s] d_{c_j}`` pixels (1D DFT ``F_a`` along ``a``, unnormalised, with
    ``F_a^{-1} = F_a^H / N_a``; phase ``P`` from :func:`_phase`). The step is unitary.

    Backward (torch's convention ``g = 2 dL/d conj(out)`` for a real loss ``L``), with
    ``Q = conj(P) * F_a g``:

    * ``grad_y = F_a^{-1} Q`` (the adjoint; summed over shots when ``y`` is shared by all
      shots);
    * ``grad_u[s] = (2 pi / N_a) sum (k/N_a) d_c Im(conj(Q) F_a y)`` over all but the shot axis,
      since ``d out / d u = F_a^{-1}(-2 pi i (k/N_a) d_c P F_a y)`` and
      ``sum conj(g) F_a^{-1} w = sum conj(F_a g) w / N_a``.
    """

    @staticmethod
    def forward(ctx: Any, y: torch.Tensor, spec: tuple, *vals: torch.Tensor) -> torch.Tensor:
        axis, coords, spatial, nbatch = spec
        p = _phase(vals, coords, axis, spatial, nbatch, y.dtype)
        yk = torch.fft.fft(y, dim=axis)
        out = torch.fft.ifft(yk * p, dim=axis)
        keep = len(spatial) == 2 and p.numel() <= _KEEP_PHASE  # else recomputed in backward
        ctx.save_for_backward(yk, p if keep else None, *vals)
        ctx.spec = spec
        ctx.vdtypes = [v.dtype for v in vals]
        return out

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple:
        yk, p, *vals = ctx.saved_tensors
        axis, coords, spatial, nbatch = ctx.spec
        if p is None:
            p = _phase(tuple(vals), coords, axis, spatial, nbatch, yk.dtype)
        nd = len(spatial)
        q = torch.fft.fft(g, dim=axis) * p.conj()
        gy = None
        if ctx.needs_input_grad[0]:
            qs = q.sum(0, keepdim=True) if yk.shape[0] == 1 and q.shape[0] != 1 else q
            gy = torch.fft.ifft(qs, dim=axis)
        gvals: list[torch.Tensor | None] = [None] * len(coords)
        if any(ctx.needs_input_grad[2:]):
            w = (q.conj() * yk).imag
            if nbatch:
                w = w.sum(dim=tuple(range(1, 1 + nbatch)))          # (nshot, *spatial)
            done: dict[int | None, torch.Tensor] = {}
            for j, c in enumerate(coords):
                if not ctx.needs_input_grad[2 + j]:
                    continue
                if c not in done:
                    gr = _grid(spatial, axis, c, w.device, w.dtype)
                    ones = tuple(1 + i for i in range(nd) if gr.shape[1 + i] == 1)
                    wr = w.sum(dim=ones, keepdim=True) if ones else w
                    done[c] = (2.0 * math.pi / spatial[axis]) * (wr * gr).flatten(1).sum(1)
                gvals[j] = done[c].to(ctx.vdtypes[j])
        return (gy, None, *gvals)


def _rigid_torch(x: torch.Tensor, thetas: torch.Tensor, nd: int, adjoint: bool,
                 per_shot: bool) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() < nd:
        raise ValueError(f"x: expected a tensor (..., {'nz, ' if nd == 3 else ''}ny, nx), "
                         f"got {getattr(x, 'shape', type(x))}")
    npar = 3 if nd == 2 else 6
    if (not isinstance(thetas, torch.Tensor) or thetas.dim() != 2 or thetas.shape[1] != npar
            or thetas.shape[0] < 1 or thetas.is_complex()):
        raise ValueError(f"theta: thetas must be a real tensor of shape (nshot, {npar}) "
                         f"{_NAMES[nd]} (degrees, pixels), got "
                         f"{tuple(thetas.shape) if isinstance(thetas, torch.Tensor) else thetas!r}")
    host = thetas.detach().to("cpu", torch.float64).numpy()   # one sync: checks + quarter turns
    if not np.all(np.isfinite(host)):
        raise ValueError(f"theta: thetas of shape (nshot, {npar}) must be finite, "
                         f"got {host.tolist()}")
    nshot = host.shape[0]
    if per_shot and (x.dim() < nd + 1 or x.shape[0] != nshot):
        raise ValueError(f"x: per_shot=True needs x of shape (nshot={nshot}, ..., spatial), "
                         f"got {tuple(x.shape)}")
    if not x.is_complex():
        x = x.to(torch.complex128 if x.dtype == torch.float64 else torch.complex64)
    device = x.device
    pdt = _phase_real_dtype(device)
    th = thetas.to(device=device, dtype=pdt)
    nrot = 1 if nd == 2 else 3
    rot = [th[:, j] for j in range(nrot)]
    trans = [th[:, nrot + i] for i in range(nd)]
    ops = build_plan(
        nd, rot, trans, host[:, :nrot], host[:, nrot:], adjoint, torch.tan, torch.sin,
        lambda v: torch.as_tensor(v, dtype=pdt, device=device),
        skip_zero=not thetas.requires_grad,
    )
    y = x if per_shot else x.unsqueeze(0)
    nbatch = y.dim() - 1 - nd
    spatial = tuple(y.shape[-nd:])
    grad = torch.is_grad_enabled() and (x.requires_grad or thetas.requires_grad)
    for ax, terms in ops:
        coords = tuple(c for c, _ in terms)
        vals = tuple(v for _, v in terms)
        if grad:
            y = _Shift.apply(y, (ax, coords, spatial, nbatch), *vals)
        else:  # same numbers without the autograd bookkeeping: the phase multiplies in place
            y = torch.fft.fft(y, dim=ax)
            ph = _phase(vals, coords, ax, spatial, nbatch, y.dtype)
            y = y.mul_(ph) if y.shape[0] == ph.shape[0] else y * ph  # shared image: one spectrum for all shots
            y = torch.fft.ifft(y, dim=ax)
    if not ops:
        y = y.expand((nshot,) + tuple(y.shape[1:])).clone()
    # torch's FFT along an inner axis returns permuted strides: a volume whose last step ran along
    # z would reach the coil products strided (the 3D forward model took 7 s instead of 3)
    return y.contiguous()


def rigid2d_torch(x: torch.Tensor, thetas: torch.Tensor, adjoint: bool = False,
                  per_shot: bool = False) -> torch.Tensor:
    """``T(theta_s) x`` for every shot; the torch twin of
    :func:`~mrideblur.physics.motion.rigid2d_batch`.

    Parameters
    ----------
    x : (..., ny, nx) complex64 or complex128 tensor (real is promoted), any device;
        with ``per_shot=True``, ``(nshot, ..., ny, nx)`` and shot ``s`` moves ``x[s]``.
    thetas : (nshot, 3) real tensor ``(rot_deg, ty, tx)`` per shot (degrees, pixels);
        ``requires_grad`` is supported.
    adjoint : apply ``T^H = T^{-1}`` (inverse motion) instead.
    per_shot : see ``x``. ``rigid2d_torch(y, thetas, adjoint=True, per_shot=True).sum(0)`` is the
        adjoint of ``x -> rigid2d_torch(x, thetas)``.

    Returns
    -------
    (nshot, ..., ny, nx) tensor, dtype of ``x``, on ``x``'s device; differentiable in ``x`` and
    ``thetas``.
    """
    return _rigid_torch(x, thetas, 2, adjoint, per_shot)


def rigid3d_torch(x: torch.Tensor, thetas: torch.Tensor, adjoint: bool = False,
                  per_shot: bool = False) -> torch.Tensor:
    """3D twin of :func:`rigid2d_torch`: ``x (..., nz, ny, nx)``, ``thetas (nshot, 6) =
    (rz_deg, ry_deg, rx_deg, tz, ty, tx)`` -> ``(nshot, ..., nz, ny, nx)``; rotations about z,
    y, x in that order (``R = R_x R_y R_z``, :func:`~mrideblur.physics.motion.rotation_matrix3d`),
    then the translation in voxels."""
    return _rigid_torch(x, thetas, 3, adjoint, per_shot)

