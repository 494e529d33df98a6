r"""Torch twin of the multi-shot model, differentiable in the image, the motion and the coils.

.. math:: A(\theta, S)\, x = \sum_s M_s F S T(\theta_s) x, \qquad
          A^H y = \sum_s T(\theta_s)^H S^H F^H M_s y

Same numbers as :class:`mrideblur.physics.multishot.MultiShotSense` (to float precision), batched over
shots, on whatever device the tensors live (``device="cuda"`` works when torch sees a GPU).
Gradients flow to ``x``, ``thetas`` (degrees, pixels) and ``sens`` through torch autograd.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.checkpoint import checkpoint

from ..memory import keep_freed_memory
from .fourier import fft_torch, ifft_torch, shot_dft_plan3d, shot_dft_rows
from .motion_torch import rigid2d_torch, rigid3d_torch
from .rows2d import coil_rows2d, coil_rows2d_adjoint
from .rows3d import ShotRowsTorch, add_shot_rows, shot_adjoint3d, shot_forward3d, shot_rows3d
from .operators import LinearPhysics
from .shots import count_shots, shot_masks, validate_shot_index

__all__ = ["MotionSensePhysics", "MultiShotSenseTorch", "as_tensor"]

#: 3D with gradients: above this many bytes of shear spectra held for the backward pass (about
#: 8 volumes per shot), each shot is recomputed in backward instead (``torch.utils.checkpoint``).
#: 128^3 with 32 shots: 4.3 GB of spectra, 12 -> 6 GB peak, 9 -> 14 s per forward + backward;
#: a 48^3 correction (110 MB) keeps its speed.
CHECKPOINT_BYTES = 1 << 31


def as_tensor(a, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> torch.Tensor:
    """numpy -> torch at the boundary (no copy on CPU when the dtype already matches)."""
    t = torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a, device=device)
    return t if dtype is None else t.to(dtype)


class MultiShotSenseTorch:
    """``A(theta, S)`` on torch tensors.

    Parameters
    ----------
    shot_index : (ky,) or (kz, ky) int array
        Shot of every phase-encode line (``-1`` not acquired).
    ndim : {2, 3}
        Image dimensionality.
    device : str or torch.device
    dtype : torch.complex64 or torch.complex128
    nshot : int, optional
        Number of shots when ``shot_index`` is a part of k-space in which some shots own no
        line (coarse-to-fine estimators); the shot map is then only checked for range.

    Notes
    -----
    ``forward(x, thetas, sens)``: ``x (ny, nx)`` complex, ``thetas (nshot, 3)`` real,
    ``sens (coils, ny, nx)`` complex -> ``(coils, ky, kx)``; in 2D also a batch of images
    ``x (b, ny, nx)`` -> ``(b, coils, ky, kx)`` (and back in ``adjoint``), sharing one motion
    pass (the shears' phases are computed once for all images).  Memory: one
    ``(nshot, coils, ny, nx)`` array in 2D; in 3D the shots are processed one at a time, and
    with gradients on large volumes each shot is recomputed in the backward pass
    (``torch.utils.checkpoint``, above :data:`CHECKPOINT_BYTES`): autograd then holds one
    shot's intermediates instead of every shot's (at 128^3, 16 coils and 32 shots, 6 GB
    instead of 12).

    In 2D each shot needs only its own phase-encode lines, so the ``ky`` transform is a small
    matrix product with the rows of the centred DFT that shot owns,
    ``k_s = F_x (E_s (S T(theta_s) x))`` with ``E_s`` ``(lines of s, ny)``, instead of a full 2D
    FFT of every shot and coil followed by a mask (3-4x fewer operations at 192x192 with 16
    shots; the numbers are the same to float precision).
    """

    def __init__(self, shot_index: np.ndarray, ndim: int = 2, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.complex64, nshot: int | None = None):
        si = np.asarray(shot_index)
        if ndim not in (2, 3):
            raise ValueError(f"ndim: expected 2 or 3, got {ndim}")
        self.ndim = ndim
        if nshot is None:
            self.shot_index = validate_shot_index(si, si.shape)
            self.nshot = count_shots(self.shot_index)
        else:
            if si.size and (si.min() < -1 or si.max() >= nshot):
                raise ValueError(f"shot_index: values must lie in -1 .. {nshot - 1}")
            self.shot_index = si.astype(np.int32)
            self.nshot = int(nshot)
        self.device = torch.device(device)
        self.dtype = dtype
        rdt = torch.float64 if dtype == torch.complex128 else torch.float32
        m = shot_masks(self.shot_index, self.nshot)[..., None]  # (nshot, [kz,] ky, 1)
        self.masks = torch.as_tensor(m, device=self.device).to(rdt)
        self.acquired = torch.as_tensor((self.shot_index >= 0)[..., None], device=self.device).to(rdt)
        self._rigid = rigid2d_torch if ndim == 2 else rigid3d_torch
        if ndim == 2:
            self._setup_rows(rdt)
        else:
            keep_freed_memory()  # volume-sized buffers come and go per shot (mrideblur.memory)
            self._plans3d = [ShotRowsTorch(p, self.device, dtype) for p in shot_dft_plan3d(self.shot_index, self.nshot)]

    def _setup_rows(self, rdt: torch.dtype) -> None:
        """Per-shot rows of the centred orthonormal DFT along ``ky`` (:func:`shot_dft_rows`)."""
        E, rows = shot_dft_rows(self.shot_index, self.nshot)
        self._E = torch.as_tensor(E, device=self.device).to(self.dtype)[:, None]  # (nshot, 1, nmax, ny)
        self._EH = self._E.conj().transpose(-1, -2).contiguous()
        self._rows = torch.as_tensor(rows.ravel(), device=self.device)
        self._nmax = rows.shape[1]

    def forward(self, x: torch.Tensor, thetas: torch.Tensor | None, sens: torch.Tensor) -> torch.Tensor:
        """``sum_s M_s F S T(theta_s) x``: image ``x`` -> k-space ``(coils, [kz,] ky, kx)``."""
        if thetas is None:
            return fft_torch(sens * x.unsqueeze(-self.ndim - 1), self.ndim) * self.acquired
        if self.ndim == 2:
            rows = self.forward_rows(x, thetas, sens)  # ([b,] nshot, coils, nmax, kx)
            nc, ny, nx = sens.shape[0], x.shape[-2], x.shape[-1]
            lead = tuple(rows.shape[:-4])
            flat = rows.transpose(-4, -3).reshape(lead + (nc, -1, nx))
            out = torch.zeros(lead + (nc, ny + 1, nx), dtype=flat.dtype, device=flat.device)
            return out.index_add(-2, self._rows, flat)[..., :ny, :]
        out = None
        grad = torch.is_grad_enabled() and (x.requires_grad or thetas.requires_grad or sens.requires_grad)
        # autograd would hold ~8 volume spectra per shot (the shears'): above CHECKPOINT_BYTES, keep
        # each shot's inputs only and recompute the shot in backward (1.5x the time at 128^3)
        light = grad and x.numel() * x.element_size() * 8 * self.nshot > CHECKPOINT_BYTES
        for s in range(self.nshot):  # 3D: one shot at a time, on its own k-space rows (rows3d)
            if light:
                rows = checkpoint(self._shot_rows, x, thetas[s : s + 1], sens, s, use_reentrant=False)
            else:
                rows = self._shot_rows(x, thetas[s : s + 1], sens, s)
            out = add_shot_rows(out, rows, self._plans3d[s], tuple(sens.shape))
        return out

    def _shot_rows(self, x: torch.Tensor, theta: torch.Tensor, sens: torch.Tensor, s: int) -> torch.Tensor:
        return shot_rows3d(self._rigid(x, theta)[0], sens, self._plans3d[s])

    def forward_rows(self, x: torch.Tensor, thetas: torch.Tensor, sens: torch.Tensor) -> torch.Tensor:
        """2D: the forward model on each shot's own lines, ``(nshot, coils, nmax, kx)``, the rows of
        shot ``s`` in the order of :meth:`data_rows` (rows past its own lines are zero).

        ``||forward_rows(x) - data_rows(y)||^2 = ||forward(x) - y||^2`` on the acquired lines,
        without scattering the lines into k-space (and gathering them back in the gradient).
        """
        if self.ndim != 2:
            raise ValueError("forward_rows: implemented for 2D models")
        return self.rows_of_moved(self._rigid(x, thetas), sens)  # one motion pass for all images

    def rows_of_moved(self, moved: torch.Tensor, sens: torch.Tensor) -> torch.Tensor:
        """2D: :meth:`forward_rows` from the moved images ``T(theta_s) x``, ``(nshot, [b,] ny, nx)``
        (for a caller that needs them for something else too)."""
        E, EH = self._E[:, 0], self._EH[:, 0]
        if moved.dim() == 4:
            return fft_torch(torch.stack([coil_rows2d(moved[:, i], sens, E, EH) for i in range(moved.shape[1])]), 1)
        return fft_torch(coil_rows2d(moved, sens, E, EH), 1)

    def data_rows(self, y: torch.Tensor) -> torch.Tensor:
        """2D: k-space ``(coils, ky, kx)`` -> every shot's measured lines ``(nshot, coils, nmax,
        kx)``, the layout of :meth:`forward_rows` (zero rows past a shot's own lines)."""
        nc, nx = y.shape[-3], y.shape[-1]
        pad = torch.cat([y, torch.zeros_like(y[..., :1, :])], -2)  # the dummy row ``ny`` reads zeros
        rows = pad[..., self._rows, :]
        return rows.reshape(tuple(y.shape[:-3]) + (nc, self.nshot, self._nmax, nx)).transpose(-4, -3)

    def shot_lines(self, x: torch.Tensor, thetas: torch.Tensor, sens: torch.Tensor, shot: int) -> torch.Tensor:
        """The lines of one shot under ``K`` candidate motions (2D): ``M_s F S T(theta_k) x``.

        ``x (ny, nx)``, ``thetas (K, 3)`` -> ``(K, coils, nmax, kx)``, the rows in the order of
        :meth:`shot_data` (rows past the shot's own lines are zero).
        """
        if self.ndim != 2:
            raise ValueError("shot_lines: implemented for 2D models")
        moved = self._rigid(x, thetas)  # (K, ny, nx)
        return fft_torch(self._E[shot] @ (sens[None] * moved[:, None]), 1)

    def shot_residuals(self, x: torch.Tensor, thetas: torch.Tensor, sens: torch.Tensor, shot: int,
                       y: torch.Tensor, batch: int = 64) -> torch.Tensor:
        """``||M_s F S T(theta_k) x - M_s y||^2`` for ``K`` candidate motions of one shot.

        ``x`` an image, ``thetas (K, 3|6)``, ``y`` the whole k-space -> ``(K,)`` real.  2D uses
        :meth:`shot_lines` (``batch`` candidates at a time); 3D moves the volume once per candidate
        and transforms only the shot's rows (``shot_forward3d``).
        """
        if self.ndim == 2:
            data = self.shot_data(y, shot)
            return torch.cat([((self.shot_lines(x, thetas[i:i + batch], sens, shot) - data[None]).abs() ** 2)
                              .sum((1, 2, 3)) for i in range(0, len(thetas), batch)])
        data = y * self.masks[shot][None]
        return torch.stack([((shot_forward3d(None, self._rigid(x, thetas[k:k + 1])[0], sens, self._plans3d[shot])
                              - data).abs() ** 2).sum() for k in range(len(thetas))])

    def shot_points3d(self, x: torch.Tensor, theta: torch.Tensor, maps: torch.Tensor, shot: int,
                      chunk: int = 12) -> torch.Tensor:
        """3D: ``M_s F (S_j T(theta) x)`` on the shot's own ``(kz, ky)`` points, for many maps
        ``S_j``: ``x (nz, ny, nx)``, ``theta (6,)``, ``maps (J, nz, ny, nx)`` -> ``(J, npts, kx)``,
        the points in the order of :meth:`shot_point_data`.  The volume is moved once and the
        maps applied ``chunk`` at a time (memory: ``chunk`` volumes)."""
        if self.ndim != 3:
            raise ValueError("shot_points3d: implemented for 3D models")
        p = self._plans3d[shot]
        keep = p.mask[..., 0] > 0
        moved = self._rigid(x, theta.reshape(1, -1))[0]
        return torch.cat([shot_rows3d(moved, maps[j:j + chunk], p)[:, keep] for j in range(0, maps.shape[0], chunk)])

    def shot_point_data(self, y: torch.Tensor, shot: int) -> torch.Tensor:
        """3D: the measured samples of one shot, ``(coils, npts, kx)``, matching :meth:`shot_points3d`."""
        p = self._plans3d[shot]
        keep = p.mask[..., 0] > 0
        return (y if p.full else y.index_select(p.dim, p.rows))[:, keep]

    def shot_data(self, y: torch.Tensor, shot: int) -> torch.Tensor:
        """The measured lines of one shot, ``(coils, nmax, kx)``, matching :meth:`shot_lines`."""
        return self.data_rows(y)[shot]

    def adjoint(self, y: torch.Tensor, thetas: torch.Tensor | None, sens: torch.Tensor) -> torch.Tensor:
        """``sum_s T(theta_s)^H S^H F^H M_s y``: k-space -> image."""
        if thetas is None:
            return (sens.conj() * ifft_torch(y * self.acquired, self.ndim)).sum(-self.ndim - 1)
        if self.ndim == 2:
            lines = ifft_torch(self.data_rows(y), 1)  # ([b,] nshot, coils, nmax, kx)
            if lines.dim() == 5:
                z = torch.stack([coil_rows2d_adjoint(li, sens, self._EH[:, 0]) for li in lines], 1)  # (nshot, b, ny, nx)
            else:
                z = coil_rows2d_adjoint(lines, sens, self._EH[:, 0])  # (nshot, ny, nx)
            return self._rigid(z, thetas, adjoint=True, per_shot=True).sum(0)
        out = None
        for s in range(self.nshot):
            z = shot_adjoint3d(y, sens, self._plans3d[s])
            r = self._rigid(z, thetas[s : s + 1], adjoint=True)[0]
            out = r if out is None else out + r
        return out

    __call__ = forward


class MotionSensePhysics(LinearPhysics):
    """The multi-shot model ``A(theta, S) x = sum_s M_s F S T(theta_s) x`` as a *physics* of
    :mod:`mrideblur.physics.operators` (``A``, ``A_adjoint`` on ``(n, ny, nx)`` complex tensors).

    ``theta`` ``(nshot, 3)`` (degrees, pixels) and ``sens`` ``(coils, ny, nx)`` are its unknown
    parameters, changed between sampler steps by ``update_parameters(theta=..., sens=...)``;
    ``A`` stays linear in ``x``.
    """

    def __init__(self, shot_index: np.ndarray, sens: np.ndarray, theta: np.ndarray, noise_sigma: float = 0.0,
                 device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model = MultiShotSenseTorch(shot_index, 2, device=self.device, nshot=len(theta))
        self.noise_sigma = float(noise_sigma)
        self.update_parameters(sens=sens, theta=theta)

    parameters = ("theta", "sens")

    def _set(self, name: str, value) -> None:
        if name == "sens":
            self.sens = torch.as_tensor(np.asarray(value), device=self.device).to(torch.complex64)
        else:
            self.theta = torch.as_tensor(np.asarray(value), device=self.device, dtype=torch.float32)

    def A(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, self.theta, self.sens)  # the batch of images in one model pass

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.model.adjoint(y, self.theta, self.sens)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        return self.A_adjoint(self.A(x))
