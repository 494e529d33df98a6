r"""Joint image, motion and coil maps by variable projection (the coils eliminated exactly).

With polynomial coil maps fixed in the scanner frame, ``S_c = sum_b a_cb phi_b``
(:class:`~mrideblur.physics.coils.PolynomialCoilModel`), the multi-shot data are linear in the
coefficients ``a``:

.. math:: y_c = \sum_b a_{cb}\, D_b(x, \theta), \qquad
          D_b(x, \theta) = \sum_s M_s F (\phi_b\, T(\theta_s) x),

so the coils can be solved for at every evaluation and the cost minimised over the image and
the motion only (variable projection, Golub and Pereyra 1973):

.. math:: f(x, \theta) = \min_a \frac{\|\sum_b a_b D_b(x, \theta) - y\|^2}{\|y\|^2}.

``a*`` is the least-squares solution (one design matrix for all coils, float64 normal
equations); by the envelope theorem the gradient of ``f`` is the partial gradient at ``a*``, so
autograd runs through the model with ``a*`` held fixed.  L-BFGS (strong-Wolfe line search)
then moves the image and every shot's motion together while the maps follow exactly.

Why: alternating coil fits and motion steps crawls where the coil maps and the translations
trade against each other.  A 96x96 MNI152 slice, 16 birdcage coils, R = 2 (oracle 40.5 dB):
six coil rounds left the translations 0.175 px RMS off (33.2 dB; twelve more rounds 33.26);
joint L-BFGS over (x, theta, a) reached 37.3 dB after 300 iterations and 39.8 after 900; this
projection reached 40.5 after 400 and stopped there (2026-12-07).  There is no penalty on
``||x||``: ``f`` is unchanged by ``x -> c x`` (``a -> a / c``), so a penalty only shrinks the image
and grows the maps — with ``1e-4 ||x||^2 / ||x_0||^2`` the same case needed 1400 iterations,
with ``1e-2`` the motion did not move (measured).

Slices use it as aligned-SENSE's coil stage, and again after the full-resolution shot search
(:mod:`.shot_search`) when that moved a shot.  Volumes work (tested) but aligned-SENSE keeps the
alternation there: it converges too slowly.  Each evaluation applies the model once per basis
function (35 at degree 4, 84 at degree 6, against 8 coils; since the design is built shot by
shot, ~1 s per evaluation at 48^3, degree 4, one thread on a shared machine).  Put in place of
the coil rounds on the 48^3 cases of ``benchmarks/volume3d.py`` (coils estimated, 2026-12-07):
MNI152 200 iterations 37.48 dB (rounds 37.07, oracle 40.71; rotation RMSE 0.51 against 0.35),
Colin27 150 iterations 31.67 dB (rounds 32.71), the cost still falling and the motion still
moving 0.3-1.2 deg / voxel per 25 iterations when they stopped.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..physics.coils import PolynomialCoilModel
from ..physics.fourier import ifft_torch, shot_dft_rows
from ..physics.motion_torch import rigid2d_torch
from ..physics.multishot_torch import MultiShotSenseTorch
from ..physics.shots import count_shots
from .base import CancelFn, ProgressFn
from .kspace_grid import rebase_motion

__all__ = ["SeparableDesign2D", "coil_design_solve", "joint_motion_coils_lbfgs"]

#: Blocks of 25 L-BFGS iterations over which the motion must have settled to stop, and by how
#: much at most (degrees / pixels).  0.02 was tried (2026-12-07): on six 192 px cases (MNI152,
#: Colin27, INIA19, Shepp-Logan; R = 1 and 2) the stage took 150-750 iterations instead of
#: 150-800 (an R = 2 drift case 275 instead of 775) with the image -0.13 to +0.12 dB, but on the
#: +-3 deg MNI cases of benchmarks/orderings.py it ended 0.3 and 0.5 dB lower (42.49 -> 42.19
#: with 350 -> 175 iterations): the motion still moves 0.01-0.02 per 25 iterations while it
#: sharpens the image, so 0.01 stays.
WINDOW = 4
MOTION_TOL = 0.01
#: Basis functions per model application when building the design (volumes; memory).
DESIGN_CHUNK = 12


def coil_design_solve(model: MultiShotSenseTorch, x: torch.Tensor, theta: torch.Tensor, basis: torch.Tensor,
                      target: torch.Tensor, acquired: torch.Tensor | None = None) -> torch.Tensor:
    """Least-squares coil coefficients ``a`` (coils, nbasis) for image ``x`` and motion ``theta``.

    Solves ``min_a ||sum_b a_cb D_b - y_c||^2`` through the normal equations ``(D^H D) a = D^H y``
    summed in complex128 (a ridge of ``1e-10`` of the mean diagonal keeps it solvable for a
    basis function the image does not reach).  Slices hold ``D`` whole (nbasis x acquired
    samples, complex128); volumes build it one shot at a time (the shot's volume moved once, the
    basis applied ``DESIGN_CHUNK`` functions at a time on the shot's own samples,
    :meth:`~mrideblur.physics.multishot_torch.MultiShotSenseTorch.shot_points3d`) and sum the
    normal equations over shots.  No gradients.

    Parameters
    ----------
    model : MultiShotSenseTorch
    x : (ny, nx) or (nz, ny, nx) complex tensor, frame of shot 0
    theta : (nshot, 3|6) real tensor (degrees, pixels)
    basis : (nbasis,) + image shape, complex tensor
    target : 2D: ``model.data_rows(y)`` (nshot, coils, nmax, kx); 3D: ``y[:, acquired]``
        (coils, samples)
    acquired : (kz, ky) bool tensor, 3D only
    """
    nb = basis.shape[0]
    with torch.no_grad():
        if x.dim() == 2:
            D = model.forward_rows(x, theta, basis)  # (nshot, nb, nmax, kx)
            Dm = D.transpose(0, 1).reshape(nb, -1).to(torch.complex128)
            Ym = target.transpose(0, 1).reshape(target.shape[1], -1).to(torch.complex128)
            gram, rhs = Dm.conj() @ Dm.T, Dm.conj() @ Ym.T
        else:  # shot by shot (the samples of different shots are disjoint): each shot's volume
            # moved once, the basis applied DESIGN_CHUNK maps at a time on its own points only
            nc, nx = target.shape[0], x.shape[-1]
            y = torch.zeros((nc,) + tuple(acquired.shape) + (nx,), dtype=target.dtype, device=x.device)
            y[:, acquired] = target.reshape(nc, -1, nx)
            gram = torch.zeros((nb, nb), dtype=torch.complex128, device=x.device)
            rhs = torch.zeros((nb, nc), dtype=torch.complex128, device=x.device)
            for s in range(model.nshot):
                ys = model.shot_point_data(y, s).reshape(nc, -1)
                if ys.shape[1] == 0:
                    continue
                g = model.shot_points3d(x, theta[s], basis, s, DESIGN_CHUNK).reshape(nb, -1).to(torch.complex128)
                gram += g.conj() @ g.T
                rhs += g.conj() @ ys.to(torch.complex128).T
        a = _solve_normal(gram, rhs)
    return a.to(x.dtype)


class SeparableDesign2D:
    r"""The normal equations of the 2D coil fit from the separable form of the basis.

    The basis functions are fixed combinations of products ``P_i(y) Q_j(x)`` of Legendre
    polynomials (:attr:`~mrideblur.physics.coils.PolynomialCoilModel.factors`).  For shot ``s``
    with DFT rows ``E_s`` along ``ky``, ``E_s (P_i Q_j m_s) = (E_s diag(P_i) m_s) diag(Q_j)``:
    ``Q_j`` acts along ``x`` and commutes with the ``ky`` rows, and the ``kx`` FFT is unitary, so
    it drops out of every inner product.  With ``W_{s,i} = E_s diag(P_i) m_s`` (``degree + 1``
    small matrix products per shot instead of one per basis function),

    .. math:: G_{(ij),(i'j')} = \sum_x Q_j(x) Q_{j'}(x) \sum_{s,r} \overline{W_{s,i}(r,x)} W_{s,i'}(r,x),
              \qquad b_{(ij),c} = \sum_x Q_j(x) \sum_{s,r} \overline{W_{s,i}(r,x)}\, \tilde y_{s,c}(r, x)

    (``tilde y``: the measured rows brought back to ``x`` by the inverse FFT, once), and the
    basis' equations follow as ``T G T^T``, ``T b`` (``T = to_basis``).  Same solution as
    :func:`coil_design_solve` to rounding; at 192x192, 16 shots, degree 6 (28 functions) the
    design costs 7 instead of 28 products per shot and no FFT.

    Coil carriers ``e_c(y, x) = u_c(y) v_c(x)`` (:class:`~mrideblur.physics.coils.PolynomialCoilModel`
    with ``carriers``) keep the form: ``v_c`` has modulus 1, so it leaves the Gram alone and
    demodulates coil ``c``'s ``tilde y`` once; ``u_c`` joins the ``ky`` rows,
    ``E_s diag(u_c)``.  Coils with the same ``ky`` carrier share ``W`` and ``G``; the cost grows
    with the number of distinct ``ky`` carriers.

    Parameters
    ----------
    model : MultiShotSenseTorch (2D)
    coil_model : PolynomialCoilModel on the image grid
    target : (nshot, coils, nmax, kx) complex tensor, ``model.data_rows(y)``
    """

    def __init__(self, model: MultiShotSenseTorch, coil_model: PolynomialCoilModel, target: torch.Tensor):
        if model.ndim != 2:
            raise ValueError("SeparableDesign2D: a 2D model is needed")
        dev, cdt = model.device, model.dtype
        nshot, nc, nmax, nx = target.shape
        P, Q = coil_model.factors
        E, _ = shot_dft_rows(model.shot_index, model.nshot)                  # (nshot, nmax, ny)
        ky = np.zeros(nc, dtype=np.int64) if coil_model.carriers is None else coil_model.carriers[:, 0]
        #: distinct ky carriers, and each coil's group
        self.ky, self.group = np.unique(ky, return_inverse=True)
        uy = coil_model.carrier_phase(0)
        EP = []
        for g in range(len(self.ky)):
            Eg = E if uy is None else E * uy[int(np.flatnonzero(self.group == g)[0])][None, None, :]
            EP.append(Eg[:, None] * P.T[None, :, None, :])
        self.EP = torch.as_tensor(np.stack(EP), device=dev).to(cdt)        # (groups, nshot, d+1, nmax, ny)
        pi, pj = coil_model.powers[:, 0], coil_model.powers[:, 1]
        self.pi = torch.as_tensor(pi, device=dev)
        self.QQ = torch.as_tensor(Q[:, pj], device=dev).to(torch.complex128)  # (nx, nbasis)
        self.T = torch.as_tensor(coil_model.to_basis, device=dev).to(torch.complex128)
        tt = ifft_torch(target, 1).to(torch.complex128)                      # back to x
        vx = coil_model.carrier_phase(1)
        if vx is not None:  # demodulate each coil's x carrier
            tt = tt * torch.as_tensor(vx.conj(), device=dev)[None, :, None, :]
        self.tt = tt.permute(3, 1, 0, 2).reshape(nx, nc, nshot * nmax)
        self.coils = [torch.as_tensor(np.flatnonzero(self.group == g), device=dev) for g in range(len(self.ky))]

    def normal_equations(self, x: torch.Tensor, theta: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(gram (groups, nbasis, nbasis), rhs (nbasis, coils))`` in the orthonormal basis,
        complex128, for image ``x (ny, nx)`` (frame of shot 0) and motion ``theta (nshot, 3)``;
        or, with ``theta=None``, for the moved images ``x = T(theta_s) x`` ``(nshot, ny, nx)``
        themselves.  ``gram[g]`` serves the coils of ``ky``-carrier group ``g``
        (:attr:`group`; one group without carriers)."""
        with torch.no_grad():
            moved = rigid2d_torch(x, theta) if theta is not None else x        # (nshot, ny, nx)
            ng, nshot, nf, nmax, ny = self.EP.shape
            nx = moved.shape[-1]
            grams = []
            rhs = torch.zeros((self.T.shape[0], self.tt.shape[1]), dtype=torch.complex128, device=moved.device)
            for g in range(ng):                                                # one product per shot:
                W = (self.EP[g].reshape(nshot, nf * nmax, ny) @ moved).reshape(nshot, nf, nmax, nx)
                Wp = W.permute(3, 1, 0, 2).reshape(nx, nf, nshot * nmax).to(torch.complex128).conj()
                H = Wp @ Wp.conj().transpose(1, 2)                             # (nx, d+1, d+1)
                K = Wp @ self.tt[:, self.coils[g]].transpose(1, 2)             # (nx, d+1, coils in g)
                Hb = H[:, self.pi][:, :, self.pi]                              # (nx, nb, nb)
                grams.append(self.T @ torch.einsum("xa,xb,xab->ab", self.QQ, self.QQ, Hb) @ self.T.T)
                rhs[:, self.coils[g]] = self.T @ torch.einsum("xa,xac->ac", self.QQ, K[:, self.pi])
            return torch.stack(grams), rhs

    def solve(self, x: torch.Tensor, theta: torch.Tensor | None = None,
              dtype: torch.dtype | None = None) -> torch.Tensor:
        """Least-squares coefficients ``(coils, nbasis)`` (``dtype``, default that of ``x``), as
        :func:`coil_design_solve` (``theta=None``: ``x`` are the moved images, as in
        :meth:`normal_equations`)."""
        gram, rhs = self.normal_equations(x, theta)
        if gram.shape[0] == 1:
            return _solve_normal(gram[0], rhs).to(dtype or x.dtype)
        a = torch.zeros((rhs.shape[1], rhs.shape[0]), dtype=torch.complex128, device=rhs.device)
        for g, coils in enumerate(self.coils):
            a[coils] = _solve_normal(gram[g], rhs[:, coils])
        return a.to(dtype or x.dtype)


def _solve_normal(gram: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """``a (coils, nbasis)`` from ``gram a^T = rhs`` with a ridge of ``1e-10`` of the mean diagonal."""
    nb = gram.shape[0]
    ridge = 1e-10 * float(gram.diagonal().real.mean()) + 1e-30
    return torch.linalg.solve(gram + ridge * torch.eye(nb, dtype=gram.dtype, device=gram.device), rhs).T


def joint_motion_coils_lbfgs(
    kspace: np.ndarray,
    shot_index: np.ndarray,
    image: np.ndarray,
    motion: np.ndarray,
    coil_model: PolynomialCoilModel,
    max_iter: int = 500,
    motion_tol: float = MOTION_TOL,
    device: str = "cpu",
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    step_offset: int = 0,
    total_steps: int | None = None,
    reference: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Minimise ``f(x, theta) = min_a ||A(x, theta, S(a)) - y||^2 / ||y||^2`` at full resolution.

    Parameters
    ----------
    kspace : (coils, ky, kx) or (coils, kz, ky, kx) complex
    shot_index : (ky,) or (kz, ky) int, -1 for lines not acquired
    image : image grid, complex
        Start, in the frame of shot ``reference`` (any scaling and phase: the maps follow).
    motion : (nshot, 3) or (nshot, 6) float
        Start (degrees, pixels), relative to shot 0.
    coil_model : PolynomialCoilModel on the image grid
    max_iter : int
        L-BFGS iterations at most (checked in blocks of 25).
    motion_tol : float
        Stop once no motion parameter moved more than this (degrees, pixels) over the last
        ``WINDOW`` blocks of 25 iterations.
    device : str
        torch device.
    progress, cancel
        Reported / polled after every block.
    step_offset, total_steps
        Where this stage's steps sit on the caller's progress bar.
    reference : int
        The shot held fixed (2D; volumes hold shot 0): the one that owns the k-space centre
        (:func:`~mrideblur.estimators.kspace_grid.reference_shot`) is the best-determined frame,
        and the one the coarse-to-fine passes estimated in.  Started with shot 0 alone 1.5 deg /
        0.6 px off (48 px, 8 sequential shots, noise-free), 400 iterations holding the centre
        shot end 0.04 deg from the truth; holding shot 0, 0.9 deg (the other seven shots and the
        image must turn together to meet it; 1200 iterations: 0.02).

    Returns
    -------
    image : complex64, frame of shot ``reference`` (scaled against the maps ``coil_model.maps(coeffs)``)
    motion : (nshot, 3|6) float64, relative to shot 0 (``motion[0] == 0``)
    coeffs : (coils, nbasis) complex128, the maps' coefficients at the end
    history : dict: ``cost`` and largest ``motion_change`` per block, ``iterations``, ``evaluations``, ``seconds``, ``cancelled``
    """
    t0 = time.perf_counter()
    y = np.asarray(kspace)
    si = np.asarray(shot_index)
    nd = y.ndim - 1
    nshot = count_shots(si)
    npar = 3 if nd == 2 else 6
    dev = torch.device(device)
    cdt = torch.complex64
    model = MultiShotSenseTorch(si, nd, device=dev, dtype=cdt, nshot=nshot)
    if nd == 3 and coil_model.carriers is not None:
        raise ValueError("coil_model: coil carriers are supported on slices only")
    basis = torch.as_tensor(coil_model.basis, device=dev).to(cdt)
    carrier = coil_model.carrier_maps()
    carrier = None if carrier is None else torch.as_tensor(carrier, device=dev).to(cdt)

    def maps_of(a: torch.Tensor) -> torch.Tensor:
        m = torch.tensordot(a, basis, dims=([1], [0]))
        return m if carrier is None else m * carrier
    yt = torch.as_tensor(y, device=dev).to(cdt)
    if nd == 2:
        target, acquired = model.data_rows(yt).contiguous(), None
    else:
        acquired = torch.as_tensor(si >= 0, device=dev)
        target = yt[:, acquired, :].reshape(y.shape[0], -1)
    ynorm = float((target.abs() ** 2).sum()) + 1e-30
    design = SeparableDesign2D(model, coil_model, target) if nd == 2 else None

    def solve_coils(x: torch.Tensor, th: torch.Tensor) -> torch.Tensor:
        if design is not None:
            return design.solve(x, th)
        return coil_design_solve(model, x, th, basis, target, acquired)

    xv = torch.view_as_real(torch.as_tensor(np.asarray(image), device=dev).to(cdt)).clone().requires_grad_(True)
    ref = reference if nd == 2 else 0
    theta0 = np.asarray(motion, dtype=np.float64)
    theta0 = rebase_motion(theta0, ref)
    free = np.array([s for s in range(nshot) if s != ref], dtype=np.int64)
    tv = torch.as_tensor(theta0[free], device=dev, dtype=torch.float32).clone().requires_grad_(True)
    zero = torch.zeros((1, npar), device=dev, dtype=torch.float32)
    order = torch.as_tensor(np.argsort(np.concatenate([[ref], free])), device=dev)
    state: dict = {"evaluations": 0}

    def predict(x: torch.Tensor, th: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        if nd == 2:
            return model.forward_rows(x, th, maps)
        return model.forward(x, th, maps)[:, acquired, :].reshape(maps.shape[0], -1)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        x, th = torch.view_as_complex(xv), torch.cat([zero, tv], 0)[order]
        if design is not None:  # one motion pass serves the coil solve and the prediction
            moved = rigid2d_torch(x, th)
            a = design.solve(moved.detach())
            pred = model.rows_of_moved(moved, maps_of(a))
        else:
            a = solve_coils(x.detach(), th.detach())
            pred = predict(x, th, maps_of(a))
        state["a"] = a
        loss = torch.view_as_real(pred - target).pow(2).sum() / ynorm
        loss.backward()
        state["evaluations"] += 1
        return loss

    opt = torch.optim.LBFGS([xv, tv], lr=1.0, max_iter=25, history_size=30, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-12, tolerance_change=1e-15)
    trace: list[float] = []
    changes: list[float] = []
    snapshots = [tv.detach().clone()]
    done, cancelled = 0, False
    total = total_steps or max_iter
    while done < max_iter:
        prev = tv.detach().clone()
        loss = opt.step(closure)
        done += 25
        trace.append(float(loss.detach()))
        if progress is not None:
            progress(min(step_offset + done, total), total, f"motion + coils: cost {trace[-1]:.4g}")
        if cancel is not None and cancel():
            cancelled = True
            break
        moved = float((tv.detach() - prev).abs().max()) if tv.numel() else 0.0
        changes.append(moved)
        snapshots.append(tv.detach().clone())
        # settled: the motion's net change over the last WINDOW blocks (a few thousandths of a
        # degree / pixel of jitter per block go on for hundreds of iterations at 192 px while the
        # image keeps fitting noise; a drift along the maps-translation valley accumulates)
        if len(snapshots) > WINDOW and float((snapshots[-1] - snapshots[-1 - WINDOW]).abs().max()) < motion_tol:
            break
    with torch.no_grad():  # the maps of the point L-BFGS kept (its last evaluation may be a trial)
        x, th = torch.view_as_complex(xv.detach()), torch.cat([zero, tv.detach()], 0)[order]
        a = solve_coils(x, th)
    out = np.zeros((nshot, npar))
    out[free] = tv.detach().cpu().double().numpy()
    out = rebase_motion(out, 0)
    history = {"cost": trace, "motion_change": changes, "iterations": done, "evaluations": state["evaluations"],
               "seconds": time.perf_counter() - t0, "cancelled": cancelled}
    return (x.cpu().numpy().astype(np.complex64), out, a.cpu().numpy().astype(np.complex128), history)
