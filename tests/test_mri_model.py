"""The multi-shot model: adjointness, sigpy vs torch, gradients, composition, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import sigpy as sp
import torch

from mrideblur.mri import MultiShotSense, MultiShotSenseTorch, make_shot_index, simulate_sens
from mrideblur.physics.fourier import fft


def _setup(shape, nshot, ncoil=4, seed=0, dtype=np.complex64, accel=1):
    rng = np.random.default_rng(seed)
    nd = len(shape)
    sens = simulate_sens(shape, ncoil, "loop", seed=seed).astype(dtype)
    si = make_shot_index(shape[0] if nd == 2 else shape[:-1], nshot, accel=accel, acs=6 if accel > 1 else 0)
    theta = rng.uniform(-4, 4, (nshot, 3 if nd == 2 else 6))
    theta[0] = 0
    x = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(dtype)
    y = (rng.normal(size=sens.shape) + 1j * rng.normal(size=sens.shape)).astype(dtype)
    return sens, si, theta, x, y


@pytest.mark.parametrize("shape, nshot", [((32, 28), 8), ((33, 30), 5), ((10, 12, 14), 4)])
def test_adjoint(shape, nshot):
    sens, si, theta, x, y = _setup(shape, nshot)
    A = MultiShotSense(sens, si, theta)
    lhs = np.vdot(A(x), y)
    rhs = np.vdot(x, A.H(y))
    assert abs(lhs - rhs) / abs(lhs) < 1e-5


def test_no_motion_is_masked_fft_of_coil_images():
    sens, si, _, x, _ = _setup((24, 20), 4)
    si[::5] = -1
    A = MultiShotSense(sens, si)
    expected = fft(sens * x, 2) * (si >= 0)[:, None]
    np.testing.assert_allclose(A(x), expected, rtol=1e-5, atol=1e-6)


def test_each_shot_owns_its_lines():
    """A shot's motion only changes that shot's lines."""
    sens, si, theta, x, _ = _setup((32, 32), 4)
    base = MultiShotSense(sens, si, theta)(x)
    theta2 = theta.copy()
    theta2[2] += [5.0, 1.0, -2.0]
    moved = MultiShotSense(sens, si, theta2)(x)
    changed = np.abs(moved - base).max(axis=(0, 2)) > 1e-6
    np.testing.assert_array_equal(changed, si == 2)


@pytest.mark.parametrize("shape, nshot, accel", [((32, 28), 8, 1), ((33, 30), 5, 2), ((8, 10, 12), 3, 1)])
@pytest.mark.parametrize("cdtype, tol", [(np.complex64, 1e-5), (np.complex128, 1e-12)])
def test_torch_twin_matches_sigpy(shape, nshot, accel, cdtype, tol):
    """Forward and adjoint of the torch model (2D: per-shot DFT rows) equal the numpy model,
    also with unequal shots and lines not acquired."""
    sens, si, theta, x, y = _setup(shape, nshot, dtype=cdtype, accel=accel)
    A = MultiShotSense(sens, si, theta)
    tdt = torch.complex64 if cdtype == np.complex64 else torch.complex128
    T = MultiShotSenseTorch(si, len(shape), dtype=tdt)
    th = torch.from_numpy(theta).to(torch.float32 if cdtype == np.complex64 else torch.float64)
    fwd = T(torch.from_numpy(x), th, torch.from_numpy(sens)).numpy()
    adj = T.adjoint(torch.from_numpy(y), th, torch.from_numpy(sens)).numpy()
    ref_f, ref_a = A(x), A.H(y)
    assert np.linalg.norm(fwd - ref_f) / np.linalg.norm(ref_f) < tol
    assert np.linalg.norm(adj - ref_a) / np.linalg.norm(ref_a) < tol


def test_torch_gradients_match_finite_differences():
    """d/dtheta and d/dS of ||A(theta, S) x - y||^2 against central differences (float64)."""
    sens, si, theta, x, _ = _setup((24, 24), 4, dtype=np.complex128)
    T = MultiShotSenseTorch(si, 2, dtype=torch.complex128)
    xt = torch.from_numpy(x)
    y = T(xt, torch.from_numpy(theta * 0.5), torch.from_numpy(sens)).detach()

    def loss(th, s):
        return (T(xt, th, s) - y).abs().pow(2).sum()

    th = torch.from_numpy(theta).requires_grad_(True)
    st = torch.from_numpy(sens).requires_grad_(True)
    loss(th, st).backward()
    h = 1e-5
    for s, p in [(1, 0), (2, 1), (3, 2)]:
        e = torch.zeros_like(th)
        e[s, p] = h
        fd = (loss(th.detach() + e, st.detach()) - loss(th.detach() - e, st.detach())) / (2 * h)
        assert abs(fd.item() - th.grad[s, p].item()) <= 1e-5 * max(abs(fd.item()), 1.0)
    # complex gradient: dL/dRe + i dL/dIm == torch's grad for a real loss of a complex input
    c, iy, ix = 1, 5, 7
    e = torch.zeros_like(st)
    e[c, iy, ix] = h
    fd_re = (loss(th.detach(), st.detach() + e) - loss(th.detach(), st.detach() - e)) / (2 * h)
    fd_im = (loss(th.detach(), st.detach() + 1j * e) - loss(th.detach(), st.detach() - 1j * e)) / (2 * h)
    g = st.grad[c, iy, ix]
    assert abs(fd_re.item() - g.real.item()) < 1e-5 * max(abs(fd_re.item()), 1.0)
    assert abs(fd_im.item() - g.imag.item()) < 1e-5 * max(abs(fd_im.item()), 1.0)


def test_composes_with_sigpy_solvers():
    """sigpy's least-squares App recovers x from noiseless data through our Linop."""
    sens, si, theta, x, _ = _setup((24, 24), 4, ncoil=6)
    A = MultiShotSense(sens, si, theta)
    y = A(x)
    xhat = sp.app.LinearLeastSquares(A, y, max_iter=60, show_pbar=False).run()
    assert np.linalg.norm(xhat - x) / np.linalg.norm(x) < 1e-3
    # and composes with other Linops
    chain = sp.linop.Multiply(y.shape, np.ones(y.shape, np.complex64)) * A
    np.testing.assert_allclose(chain(x), y, rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sens": np.zeros((4, 8)), "shot_index": np.zeros(8, int)}, "sens"),
        ({"sens": np.ones((4, 8, 8), np.complex64), "shot_index": np.zeros(7, int)}, "shot_index"),
        ({"sens": np.ones((4, 8, 8), np.complex64), "shot_index": np.full(8, -2)}, "shot_index"),
        ({"sens": np.ones((4, 8, 8), np.complex64), "shot_index": np.array([0, 2] * 4)}, "shot_index.*missing"),
        ({"sens": np.ones((4, 8, 8), np.complex64), "shot_index": np.array([0, 1] * 4), "motion": np.zeros((3, 3))}, "motion"),
        ({"sens": np.ones((4, 8, 8), np.complex64), "shot_index": np.array([0, 1] * 4), "motion": np.full((2, 3), np.nan)}, "motion"),
    ],
)
def test_bad_input_names_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiShotSense(**kwargs)


@pytest.mark.parametrize("shape, nshot, accel", [((32, 28), 8, 1), ((33, 30), 5, 2)])
def test_forward_matches_masked_fft_definition(shape, nshot, accel):
    """The per-shot DFT-row evaluation equals the definition ``sum_s M_s F S T(theta_s) x``
    written with full 2D FFTs and masks."""
    from mrideblur.physics.motion import rigid2d

    sens, si, theta, x, _ = _setup(shape, nshot, dtype=np.complex128, accel=accel)
    ref = sum(fft(sens * rigid2d(x, theta[s]), 2) * (si == s)[:, None] for s in range(nshot))
    got = MultiShotSense(sens, si, theta)(x)
    assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 1e-12


def test_shot_lines_are_the_shots_rows_of_the_forward_model():
    """``shot_lines`` under K candidate motions equals the full model's lines of that shot when
    the shot has that motion; ``shot_data`` picks the same rows of the measured k-space."""
    sens, si, theta, x, _ = _setup((33, 30), 5, dtype=np.complex128, accel=2)
    T = MultiShotSenseTorch(si, 2, dtype=torch.complex128)
    xs, S, th = torch.from_numpy(x), torch.from_numpy(sens), torch.from_numpy(theta)
    shot = 3
    cands = th[shot][None] + torch.tensor([[0.0, 0, 0], [5.0, -1.5, 2.0]], dtype=torch.float64)
    lines = T.shot_lines(xs, cands, S, shot)
    n = int((si == shot).sum())
    for k in range(2):
        th_k = th.clone()
        th_k[shot] = cands[k]
        full = T(xs, th_k, S)
        np.testing.assert_allclose(lines[k, :, :n].numpy(), full[:, si == shot].numpy(), atol=1e-10)
        np.testing.assert_allclose(T.shot_data(full, shot)[:, :n].numpy(), full[:, si == shot].numpy())
    assert not lines[:, :, n:].abs().any()  # padding rows
