r"""The coil product and the per-shot DFT rows of the 2D multi-shot model, shot by shot (torch).

.. math:: r_{s,c} = E_s (S_c \odot m_s), \qquad m_s = T(\theta_s) x

``E_s`` ``(nmax, ny)`` holds the rows of the centred DFT along ``ky`` that shot ``s`` owns
(:func:`~mrideblur.physics.fourier.shot_dft_rows`). Written as one broadcast expression, the
product ``S_c m_s`` is a ``(shots, coils, ny, nx)`` array (38 MB at 192x192, 8 coils, 16 shots)
that crosses memory in the forward pass and again, with its gradient, in the backward pass; here
each shot's ``(coils, ny, nx)`` product is formed and reduced while it is in the CPU cache, inside
one autograd function whose backward is the adjoint

.. math:: \partial m_s = \sum_c \overline{S_c} \odot E_s^H g_{s,c}, \qquad
          \partial S_c = \sum_s \overline{m_s} \odot E_s^H g_{s,c}

(torch's convention for complex gradients: the adjoint of the linear map applied to the
incoming gradient). Autograd keeps ``m`` and ``S``, not the coil images.  Small problems
(below :data:`_LOOP_ABOVE` elements, e.g. the coarse levels of a coarse-to-fine estimate) and
GPUs take one batched product instead: there the per-shot calls cost more than the memory
traffic they save.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["coil_rows2d", "coil_rows2d_adjoint"]


#: Below this many elements of ``(shots, coils, ny, nx)`` (e.g. 16 x 8 x 48 x 48) one batched
#: product beats the loop over shots, whose per-shot calls then cost more than the memory it saves
#: (measured on 2 cores: 0.07 vs 0.23 ms at 24x24, equal at 48-96, 4.6 vs 13 ms at 192x192).
_LOOP_ABOVE = 1 << 19


def _small(nshot: int, sens: torch.Tensor) -> bool:
    return nshot * sens.numel() < _LOOP_ABOVE or sens.device.type != "cpu"


class _CoilRows2D(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, m: torch.Tensor, sens: torch.Tensor, E: torch.Tensor, EH: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(m, sens, EH)
        nshot, (nc, ny, nx), k = m.shape[0], sens.shape, E.shape[-2]
        if _small(nshot, sens):
            return E[:, None] @ (sens[None] * m[:, None])
        dt = torch.result_type(m, sens)
        out = torch.empty((nshot, nc, k, nx), dtype=dt, device=m.device)
        u = torch.empty((nc, ny, nx), dtype=dt, device=m.device)
        for s in range(nshot):
            torch.mul(sens, m[s], out=u)
            torch.matmul(E[s], u, out=out[s])
        return out

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple:
        m, sens, EH = ctx.saved_tensors
        gm, gs = _adjoint(g, sens, EH, m if ctx.needs_input_grad[1] else None, ctx.needs_input_grad[0])
        return gm, gs, None, None


def _adjoint(g: torch.Tensor, sens: torch.Tensor, EH: torch.Tensor, m: torch.Tensor | None,
             want_m: bool = True) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``sum_c conj(S_c) E_s^H g_{s,c}`` per shot (when ``want_m``) and, given ``m``,
    ``sum_s conj(m_s) E_s^H g_{s,c}`` per coil; one shot's ``(coils, ny, nx)`` at a time."""
    nshot = g.shape[0]
    if _small(nshot, sens):
        w = EH[:, None] @ g                                 # (shots, coils, ny, nx)
        return ((w * sens.conj()[None]).sum(1) if want_m else None,
                None if m is None else (w * m[:, None].conj()).sum(0))
    dt = torch.result_type(g, sens)
    w = torch.empty(sens.shape, dtype=dt, device=g.device)
    gm = torch.empty((nshot,) + tuple(sens.shape[1:]), dtype=dt, device=g.device) if want_m else None
    gs = None if m is None else torch.zeros(sens.shape, dtype=dt, device=g.device)
    sc = sens.conj().resolve_conj() if want_m else None
    for s in range(nshot):
        torch.matmul(EH[s], g[s], out=w)       # E_s^H g_{s,c}: (coils, ny, nx)
        if gm is not None:
            torch.sum(w * sc, 0, out=gm[s])
        if gs is not None:
            gs.addcmul_(w, m[s].conj())
    return gm, gs


def coil_rows2d(m: torch.Tensor, sens: torch.Tensor, E: torch.Tensor, EH: torch.Tensor) -> torch.Tensor:
    """``E_s (S_c m_s)`` for every shot ``s`` and coil ``c``, differentiable in ``m`` and ``sens``.

    Parameters
    ----------
    m : (nshot, ny, nx) complex tensor, the image moved by each shot's motion.
    sens : (coils, ny, nx) complex tensor, the coil maps.
    E, EH : (nshot, nmax, ny) and (nshot, ny, nmax): each shot's rows of the centred DFT along
        ``ky`` (zero rows past a shot's own lines) and their conjugate transposes.

    Returns
    -------
    (nshot, coils, nmax, nx) tensor: each shot's coil images transformed along ``ky`` on the
    shot's own rows (the ``kx`` FFT is the caller's).
    """
    return _CoilRows2D.apply(m, sens, E, EH)


def coil_rows2d_adjoint(g: torch.Tensor, sens: torch.Tensor, EH: torch.Tensor) -> torch.Tensor:
    """Adjoint of :func:`coil_rows2d` in ``m``: ``sum_c conj(S_c) E_s^H g_{s,c}`` for every shot.

    ``g (nshot, coils, nmax, nx)``, ``sens (coils, ny, nx)``, ``EH (nshot, ny, nmax)`` ->
    ``(nshot, ny, nx)``. Differentiable through plain torch operations when ``g`` or ``sens``
    requires a gradient, shot by shot otherwise.
    """
    if torch.is_grad_enabled() and (g.requires_grad or sens.requires_grad):
        return (sens.conj()[None] * (EH[:, None] @ g)).sum(1)
    return _adjoint(g, sens, EH, None)[0]
