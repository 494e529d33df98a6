"""The multi-shot model: adjointness, sigpy and torch vs the definition, gradients, composition, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import sigpy as sp
import torch

from mrideblur.mri import MultiShotSense, MultiShotSenseTorch, make_shot_index, simulate_sens
from mrideblur.physics.fourier import fft
from mrideblur.physics import multishot_torch, rows2d


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


def _definition(sens, si, theta, x, y):
    """``sum_s M_s F S T(theta_s) x`` and its adjoint written with numpy shears, full FFTs and
    masks: the reference the models are checked against."""
    from mrideblur.physics.fourier import ifft
    from mrideblur.physics.motion import rigid2d, rigid3d
    from mrideblur.physics.shots import count_shots, shot_masks

    nd = x.ndim
    rigid = rigid2d if nd == 2 else rigid3d
    masks = shot_masks(si, count_shots(si))[..., None]
    fwd = sum(fft(sens * rigid(x, theta[s]), nd) * masks[s] for s in range(len(masks)))
    adj = sum(rigid(np.sum(np.conj(sens) * ifft(y * masks[s], nd), axis=0), theta[s], adjoint=True)
              for s in range(len(masks)))
    return fwd, adj


@pytest.mark.parametrize("shape, nshot, accel", [((32, 28), 8, 1), ((33, 30), 5, 2), ((8, 10, 12), 3, 1)])
@pytest.mark.parametrize("cdtype, tol", [(np.complex64, 1e-5), (np.complex128, 1e-12)])
@pytest.mark.parametrize("loop_above", [0, 1 << 60])
def test_torch_model_and_sigpy_linop_match_the_definition(shape, nshot, accel, cdtype, tol, loop_above, monkeypatch):
    """Forward and adjoint of the torch model (2D: per-shot DFT rows, shot by shot or batched;
    3D: per-shot k-space rows) and of the sigpy ``Linop`` that runs it on numpy arrays equal the
    plain definition, also with unequal shots and lines not acquired."""
    monkeypatch.setattr(rows2d, "_LOOP_ABOVE", loop_above)
    sens, si, theta, x, y = _setup(shape, nshot, dtype=cdtype, accel=accel)
    ref_f, ref_a = _definition(sens.astype(np.complex128), si, theta, x.astype(np.complex128),
                               y.astype(np.complex128))
    A = MultiShotSense(sens, si, theta)
    tdt = torch.complex64 if cdtype == np.complex64 else torch.complex128
    T = MultiShotSenseTorch(si, len(shape), dtype=tdt)
    th = torch.from_numpy(theta).to(torch.float32 if cdtype == np.complex64 else torch.float64)
    fwd = T(torch.from_numpy(x), th, torch.from_numpy(sens)).numpy()
    adj = T.adjoint(torch.from_numpy(y), th, torch.from_numpy(sens)).numpy()
    for got_f, got_a in [(fwd, adj), (A(x), A.H(y))]:
        assert np.linalg.norm(got_f - ref_f) / np.linalg.norm(ref_f) < tol
        assert np.linalg.norm(got_a - ref_a) / np.linalg.norm(ref_a) < tol


def test_residual_on_shot_rows_equals_the_kspace_residual():
    """2D: ``forward_rows - data_rows`` holds the same residual as ``forward - y`` on the acquired
    lines (R = 2, unequal shots), and the same norm."""
    sens, si, theta, x, y = _setup((33, 30), 5, dtype=np.complex128, accel=2)
    T = MultiShotSenseTorch(si, 2, dtype=torch.complex128)
    args = (torch.from_numpy(x), torch.from_numpy(theta), torch.from_numpy(sens))
    yt = torch.from_numpy(y) * torch.from_numpy((si >= 0)[:, None])
    rows = T.forward_rows(*args) - T.data_rows(yt)
    full = T(*args) - yt
    assert abs(float((rows.abs() ** 2).sum()) / float((full.abs() ** 2).sum()) - 1) < 1e-12
    assert torch.allclose(T.data_rows(full), rows, atol=1e-12)


@pytest.mark.parametrize("loop_above", [0, 1 << 60])
def test_torch_gradients_match_finite_differences(loop_above, monkeypatch):
    """d/dtheta, d/dS and d/dx of ||A(theta, S) x - y||^2 against central differences (float64),
    through both paths of the coil rows (shot by shot, batched)."""
    monkeypatch.setattr(rows2d, "_LOOP_ABOVE", loop_above)
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
    # and d/dx (the image), through the shot-by-shot coil rows (physics.rows2d)
    xg = xt.clone().requires_grad_(True)
    (T(xg, th.detach(), st.detach()) - y).abs().pow(2).sum().backward()
    for unit, part in [(1.0, "real"), (1j, "imag")]:
        e = torch.zeros_like(xt)
        e[iy, ix] = h * unit
        fd = ((T(xt + e, th.detach(), st.detach()) - y).abs().pow(2).sum()
              - (T(xt - e, th.detach(), st.detach()) - y).abs().pow(2).sum()) / (2 * h)
        assert abs(fd.item() - getattr(xg.grad[iy, ix], part).item()) < 1e-5 * max(abs(fd.item()), 1.0)


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


@pytest.mark.parametrize("ordering", ["interleaved", "sequential", "checkered", "centre-out", "random"])
@pytest.mark.parametrize("accel", [1, 2])
def test_3d_shot_rows_equal_the_masked_fft_definition(ordering, accel):
    """3D: each shot on its own k-space rows (physics.rows3d) gives the numbers of the plain
    definition ``sum_s M_s F S T(theta_s) x`` (numpy shears, full FFT, mask), for every
    ordering, numpy and torch models, and the adjoint passes the inner-product test."""
    from mrideblur.physics.motion import rigid3d
    from mrideblur.physics.shots import shot_masks

    shape, nshot = (12, 16, 10), 8
    rng = np.random.default_rng(3)
    sens = simulate_sens(shape, 3, "loop", seed=1).astype(np.complex128)
    si = make_shot_index(shape[:2], nshot, ordering, accel=accel, acs=4, seed=2)
    theta = np.c_[rng.uniform(-3, 3, (nshot, 3)), rng.uniform(-3, 3, (nshot, 3))]
    theta[0] = 0
    x = rng.normal(size=shape) + 1j * rng.normal(size=shape)
    y = rng.normal(size=sens.shape) + 1j * rng.normal(size=sens.shape)
    masks = shot_masks(si, nshot)[..., None]
    ref = sum(fft(sens * rigid3d(x, theta[s]), 3) * masks[s] for s in range(nshot))
    A = MultiShotSense(sens, si, theta)
    np.testing.assert_allclose(A(x), ref, atol=1e-12 * np.abs(ref).max())
    T = MultiShotSenseTorch(si, 3, dtype=torch.complex128)
    fwd = T(torch.from_numpy(x), torch.from_numpy(theta), torch.from_numpy(sens)).numpy()
    np.testing.assert_allclose(fwd, ref, atol=1e-12 * np.abs(ref).max())
    lhs, rhs = np.vdot(A(x), y), np.vdot(x, A.H(y))
    assert abs(lhs - rhs) / abs(lhs) < 1e-12
    # one shot on its own points, many maps at once (the coil design): the same numbers
    s = nshot - 1
    pts = T.shot_points3d(torch.from_numpy(x), torch.from_numpy(theta[s]), torch.from_numpy(sens), s, chunk=2)
    own = torch.from_numpy(ref * masks[s])
    np.testing.assert_allclose(pts.numpy(), T.shot_point_data(own, s).numpy(), atol=1e-12 * np.abs(ref).max())
    assert pts.shape[1] * pts.shape[2] == int((si == s).sum()) * shape[-1]


def test_3d_plan_reduces_the_axis_with_fewer_rows():
    """Interleaved shots own a few ky rows, linear ones a few kz planes, random ones need the FFT."""
    from mrideblur.physics.fourier import shot_dft_plan3d

    for ordering, axes, full in [("interleaved", {1}, False), ("sequential", {0}, False),
                                 ("checkered", {0, 1}, False), ("random", None, True)]:
        si = make_shot_index((32, 32), 16, ordering, seed=0)
        plans = shot_dft_plan3d(si, 16)
        assert all(p.E is None for p in plans) == full, ordering
        if not full:
            assert {p.axis for p in plans} <= axes, ordering
            assert max(len(p.rows) for p in plans) <= 8, ordering
            for s, p in enumerate(plans):  # the rows and mask describe exactly the shot's points
                own = np.zeros_like(si, dtype=bool)
                if p.axis == 0:
                    own[p.rows, :] = p.mask
                else:
                    own[:, p.rows] = p.mask
                np.testing.assert_array_equal(own, si == s)


@pytest.mark.parametrize("checkpoint_bytes", [0, 1 << 62])
def test_3d_gradients_match_finite_differences(checkpoint_bytes, monkeypatch):
    """3D model (shot rows with an analytic backward): d/dtheta, d/dS and d/dx of
    ``||A x - y||^2`` against central differences (float64), with every shot recomputed in the
    backward pass (the path of large volumes) and without."""
    monkeypatch.setattr(multishot_torch, "CHECKPOINT_BYTES", checkpoint_bytes)
    shape, nshot = (8, 12, 10), 4
    sens, _, theta, x, _ = _setup(shape, nshot, ncoil=3, dtype=np.complex128)
    si = make_shot_index(shape[:2], nshot, "interleaved")
    T = MultiShotSenseTorch(si, 3, dtype=torch.complex128)
    xt, st0 = torch.from_numpy(x), torch.from_numpy(sens)
    y = T(xt, torch.from_numpy(theta * 0.5), st0).detach()

    def loss(xx, th, s):
        return (T(xx, th, s) - y).abs().pow(2).sum()

    xg, th, st = xt.clone().requires_grad_(True), torch.from_numpy(theta).requires_grad_(True), st0.clone().requires_grad_(True)
    loss(xg, th, st).backward()
    h = 1e-5
    for s, p in [(1, 0), (2, 4), (3, 2)]:
        e = torch.zeros_like(th)
        e[s, p] = h
        fd = (loss(xt, th.detach() + e, st0) - loss(xt, th.detach() - e, st0)) / (2 * h)
        assert abs(fd.item() - th.grad[s, p].item()) <= 1e-5 * max(abs(fd.item()), 1.0)
    for t, g, idx in [(st0, st.grad, (1, 3, 5, 7)), (xt, xg.grad, (3, 5, 7))]:
        for unit, part in [(1.0, "real"), (1j, "imag")]:
            e = torch.zeros_like(t)
            e[idx] = h * unit
            args_p = (xt + e, th.detach(), st0) if t is xt else (xt, th.detach(), st0 + e)
            args_m = (xt - e, th.detach(), st0) if t is xt else (xt, th.detach(), st0 - e)
            fd = (loss(*args_p) - loss(*args_m)) / (2 * h)
            assert abs(fd.item() - getattr(g[idx], part).item()) < 1e-5 * max(abs(fd.item()), 1.0)
