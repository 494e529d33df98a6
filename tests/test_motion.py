"""Rigid motion by Fourier shears (mrideblur.physics.motion / motion_torch) against ground truth.

Sign convention by moving a band-limited blob, exactness (rot90, np.roll, inverse), unitarity
and adjointness, composition rules, numpy == torch, gradients vs finite differences and
gradcheck, the sigpy Linop, and input validation.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import sigpy as sp
import torch

from mrideblur.physics.fourier import fft, fft_torch, ifft
from mrideblur.physics.motion import (
    build_plan,
    RigidMotion,
    rigid2d,
    rigid2d_batch,
    rigid3d,
    rigid3d_batch,
    rotate2d,
    rotation_matrix3d,
    translate,
)
from mrideblur.physics.motion_torch import rigid2d_torch, rigid3d_torch


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """The arrays here are tiny: one thread avoids waiting on a busy machine's second core."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ------------------------------------------------------------------------------------------
# helpers: ground truth written from docs/conventions.md, independently of the module
# ------------------------------------------------------------------------------------------
def offsets(shape: tuple[int, ...]) -> list[np.ndarray]:
    """Offsets from the centre N // 2 on every axis, broadcast to ``shape``."""
    return list(np.meshgrid(*[np.arange(n) - n // 2 for n in shape], indexing="ij"))


def blob(shape: tuple[int, ...], centre: tuple[float, ...], sigma: float = 1.6) -> np.ndarray:
    """A smooth Gaussian at ``centre`` (offsets from N // 2): band-limited to ~1e-6."""
    r2 = sum((g - c) ** 2 for g, c in zip(offsets(shape), centre))
    return np.exp(-r2 / (2 * sigma**2)).astype(np.complex128)


def centroid(y: np.ndarray) -> np.ndarray:
    w = np.abs(y) ** 2
    return np.array([np.sum(w * g) / np.sum(w) for g in offsets(y.shape)])


def moved_2d(d: tuple[float, float], theta: tuple[float, float, float]) -> np.ndarray:
    """docs/conventions.md: (dy, dx) -> (dy cos p - dx sin p + ty, dy sin p + dx cos p + tx)."""
    p = math.radians(theta[0])
    dy, dx = d
    return np.array([dy * math.cos(p) - dx * math.sin(p) + theta[1],
                     dy * math.sin(p) + dx * math.cos(p) + theta[2]])


def r_z(deg: float) -> np.ndarray:
    """On (dz, dy, dx): the 2D rotation of every slice, dy' = dy c - dx s, dx' = dy s + dx c."""
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def r_y(deg: float) -> np.ndarray:
    """Turns +z toward +x: dz' = dz c - dx s, dx' = dz s + dx c."""
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])


def r_x(deg: float) -> np.ndarray:
    """Turns +y toward +z: dy' = dy c - dz s, dz' = dy s + dz c."""
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])


def smooth_random(shape: tuple[int, ...], seed: int, frac: float = 0.3) -> np.ndarray:
    """Random complex images (..., ny, nx) band-limited to |k| < frac * N / 2 on both axes."""
    k = crandn(shape, seed)
    ky, kx = (np.abs(np.arange(n) - n // 2) < frac * n / 2 for n in shape[-2:])
    return ifft(k * ky[:, None] * kx[None, :], 2)


def crandn(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def inner(a: np.ndarray, b: np.ndarray) -> complex:
    return complex(np.vdot(a.ravel(), b.ravel()))


# ------------------------------------------------------------------------------------------
# sign convention
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [48, 49])
@pytest.mark.parametrize("theta", [(0.0, 2.3, -3.7), (20.0, 0.0, 0.0), (-33.0, 0.0, 0.0),
                                   (17.0, -1.5, 2.25), (120.0, 1.0, -2.0), (-160.0, 0.5, 0.5)])
def test_blob_lands_where_the_convention_says_2d(n: int, theta: tuple) -> None:
    d = (6.0, -4.0)
    y = rigid2d(blob((n, n), d), theta)
    np.testing.assert_allclose(centroid(y), moved_2d(d, theta), atol=0.05)


def test_positive_rotation_turns_plus_y_toward_plus_x() -> None:
    # the explicit formula of docs/conventions.md, in array indices: content at +iy moves toward +ix
    y = rotate2d(blob((40, 40), (8.0, 0.0)), 90.0)
    np.testing.assert_allclose(centroid(y), [0.0, 8.0], atol=0.01)


@pytest.mark.parametrize(
    "theta",
    [(25.0, 0, 0, 0, 0, 0), (0, 25.0, 0, 0, 0, 0), (0, 0, 25.0, 0, 0, 0),
     (0, 0, 0, 1.5, -2.0, 2.5), (20.0, -15.0, 30.0, 1.0, -1.5, 0.5), (100.0, 0, -95.0, 0, 0, 0)],
)
def test_blob_lands_where_the_convention_says_3d(theta: tuple) -> None:
    d = np.array([3.0, -4.0, 5.0])
    shape = (30, 32, 31)
    y = rigid3d(blob(shape, tuple(d)), theta)
    rot = r_x(theta[2]) @ r_y(theta[1]) @ r_z(theta[0])      # z applied first
    want = rot @ d + np.array(theta[3:])
    np.testing.assert_allclose(centroid(y), want, atol=0.05)
    np.testing.assert_allclose(rotation_matrix3d(*theta[:3]), rot, atol=1e-15)


# ------------------------------------------------------------------------------------------
# exactness, inverse, unitarity
# ------------------------------------------------------------------------------------------
def test_rot90_equals_np_rot90_odd_n() -> None:
    x = smooth_random((2, 33, 33), 1)
    np.testing.assert_allclose(rotate2d(x, 90.0), np.rot90(x, 1, axes=(-2, -1)), atol=1e-12)
    np.testing.assert_allclose(rotate2d(x, -90.0), np.rot90(x, -1, axes=(-2, -1)), atol=1e-12)
    np.testing.assert_allclose(rotate2d(x, 180.0), np.rot90(x, 2, axes=(-2, -1)), atol=1e-12)
    # any image, not only band-limited ones: quarter turns are exact permutations
    r = crandn((33, 33), 2)
    np.testing.assert_allclose(rotate2d(r, 90.0), np.rot90(r), atol=1e-12)


def test_rot90_even_n_turns_about_n_over_2() -> None:
    r = crandn((32, 32), 3)
    np.testing.assert_allclose(rotate2d(r, 90.0), np.roll(np.rot90(r), 1, axis=0), atol=1e-12)


@pytest.mark.parametrize("n", [40, 41])
def test_integer_translation_is_roll(n: int) -> None:
    r = crandn((3, n, n + 2), 4)
    want = np.roll(r, (3, -5), axis=(-2, -1))
    np.testing.assert_allclose(translate(r, (3, -5)), want, atol=1e-12)
    np.testing.assert_allclose(rigid2d(r, (0.0, 3.0, -5.0)), want, atol=1e-12)
    v = crandn((10, 11, 12), 5)
    np.testing.assert_allclose(rigid3d(v, (0, 0, 0, -2, 1, 4)),
                               np.roll(v, (-2, 1, 4), axis=(0, 1, 2)), atol=1e-12)


@pytest.mark.parametrize("p", [7.5, -30.0, 45.0])
def test_rotate_then_rotate_back(p: float) -> None:
    r = crandn((36, 35), 6)   # any image: the small-angle shears are exactly inverse
    np.testing.assert_allclose(rotate2d(rotate2d(r, p), -p), r, atol=1e-12)


def test_rotation_is_close_to_exact_for_bandlimited_content() -> None:
    # two rotations by 20 equal one by 40 for a band-limited object well inside the FOV
    x = blob((48, 48), (5.0, -3.0), 2.0) + 0.5 * blob((48, 48), (-6.0, 2.0), 2.5)
    np.testing.assert_allclose(rotate2d(rotate2d(x, 20.0), 20.0), rotate2d(x, 40.0),
                               atol=1e-6)


@pytest.mark.parametrize("theta", [(12.0, 1.3, -0.7), (131.0, -2.2, 0.4)])
def test_unitary_and_adjoint_2d(theta: tuple) -> None:
    x, y = crandn((2, 30, 27), 7), crandn((2, 30, 27), 8)
    tx = rigid2d(x, theta)
    assert abs(np.linalg.norm(tx) - np.linalg.norm(x)) < 1e-10 * np.linalg.norm(x)
    assert abs(inner(tx, y) - inner(x, rigid2d(y, theta, adjoint=True))) < 1e-10
    np.testing.assert_allclose(rigid2d(tx, theta, adjoint=True), x, atol=1e-12)


@pytest.mark.parametrize("theta", [(12.0, -8.0, 5.0, 1.3, -0.7, 0.2),
                                   (100.0, 60.0, -140.0, 0.5, 0.0, -1.0)])
def test_unitary_and_adjoint_3d(theta: tuple) -> None:
    x, y = crandn((10, 12, 11), 9), crandn((10, 12, 11), 10)
    tx = rigid3d(x, theta)
    assert abs(np.linalg.norm(tx) - np.linalg.norm(x)) < 1e-10 * np.linalg.norm(x)
    assert abs(inner(tx, y) - inner(x, rigid3d(y, theta, adjoint=True))) < 1e-10
    np.testing.assert_allclose(rigid3d(tx, theta, adjoint=True), x, atol=1e-12)


def test_batch_adjoint_with_per_shot() -> None:
    th = np.array([[0, 0, 0], [5.0, 1.0, -2.0], [-70.0, 0.3, 0.1]])
    x, ys = crandn((16, 18), 11), crandn((3, 16, 18), 12)
    lhs = inner(rigid2d_batch(x, th), ys)
    rhs = inner(x, rigid2d_batch(ys, th, adjoint=True, per_shot=True).sum(0))
    assert abs(lhs - rhs) < 1e-10


# ------------------------------------------------------------------------------------------
# composition
# ------------------------------------------------------------------------------------------
def test_rigid2d_is_rotate_then_translate() -> None:
    # each part on its own is exact on any image
    x = crandn((2, 26, 30), 13)
    np.testing.assert_allclose(rigid2d(x, (23.0, 0, 0)), rotate2d(x, 23.0), atol=1e-12)
    np.testing.assert_allclose(rigid2d(x, (0, 1.7, -2.4)), translate(x, (1.7, -2.4)), atol=1e-12)
    # together, the translation rides on the shears (three 1D steps): the same operator for
    # band-limited content well inside the grid, and not an identity for white noise
    yy, xx = np.mgrid[:64, :64] - 32.0
    smooth = np.exp(-(yy / 7) ** 2 - ((xx - 3) / 5) ** 2) * np.exp(1j * 0.05 * xx)
    for theta in ((23.0, 1.7, -2.4), (-8.0, -3.3, 0.6), (97.0, 0.4, 2.2)):
        want = translate(rotate2d(smooth, theta[0]), theta[1:])
        assert np.linalg.norm(rigid2d(smooth, theta) - want) < 1e-6 * np.linalg.norm(want)
    theta = (23.0, 1.7, -2.4)
    assert np.linalg.norm(rigid2d(x, theta) - translate(rotate2d(x, 23.0), theta[1:])) > 0.1 * np.linalg.norm(x)


def test_motion_costs_three_1d_steps_in_2d_and_eight_in_3d() -> None:
    rng = np.random.default_rng(0)
    for nd, npl, nsteps in ((2, 1, 3), (3, 3, 8)):  # 3D: planes 1 and 2 meet along x
        rot, tr = rng.uniform(-20, 20, (4, npl)), rng.uniform(-3, 3, (4, nd))
        ops = build_plan(nd, list(rot.T), list(tr.T), rot, tr, False, np.tan, np.sin, np.asarray, False)
        assert len(ops) == nsteps
        assert len(build_plan(nd, list(rot.T), list(tr.T), rot, tr, True, np.tan, np.sin, np.asarray, False)) == nsteps


def test_3d_rz_only_is_2d_on_every_slice() -> None:
    v = crandn((5, 20, 22), 14)
    got = rigid3d(v, (17.0, 0, 0, 0, 1.5, -0.5))
    np.testing.assert_allclose(got, rigid2d(v, (17.0, 1.5, -0.5)), atol=1e-12)


def test_batch_equals_loop() -> None:
    th = np.array([[0, 0, 0], [3.0, 0.5, -1.0], [-50.0, 2.0, 0.0], [179.0, 0, 1]])
    x = crandn((2, 20, 21), 15)
    got = rigid2d_batch(x, th)
    assert got.shape == (4, 2, 20, 21)
    for s in range(4):
        np.testing.assert_allclose(got[s], rigid2d(x, th[s]), atol=1e-12)
    th3 = np.array([[0, 0, 0, 0, 0, 0], [5, -4, 3, 0.5, 1, -1], [95, 10, 0, 0, 0, 0]])
    v = crandn((8, 9, 10), 16)
    got = rigid3d_batch(v, th3)
    for s in range(3):
        np.testing.assert_allclose(got[s], rigid3d(v, th3[s]), atol=1e-12)


# ------------------------------------------------------------------------------------------
# torch twin
# ------------------------------------------------------------------------------------------
TH2 = np.array([[0, 0, 0], [4.0, 1.2, -0.8], [-37.0, -2.0, 0.5], [100.0, 0, 0.3],
                [-175.0, 0.7, 0]])
TH3 = np.array([[0, 0, 0, 0, 0, 0], [4.0, -3.0, 2.0, 0.5, -1.0, 1.5],
                [-100.0, 50.0, 170.0, 0, 0.2, 0]])


def test_torch_matches_numpy_complex128() -> None:
    x = crandn((3, 24, 25), 17)
    want = rigid2d_batch(x, TH2)
    got = rigid2d_torch(torch.from_numpy(x), torch.from_numpy(TH2))
    assert got.dtype == torch.complex128 and got.shape == (5, 3, 24, 25)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-10)
    got = rigid2d_torch(torch.from_numpy(x), torch.from_numpy(TH2), adjoint=True)
    np.testing.assert_allclose(got.numpy(), rigid2d_batch(x, TH2, adjoint=True), atol=1e-10)
    v = crandn((9, 10, 11), 18)
    got = rigid3d_torch(torch.from_numpy(v), torch.from_numpy(TH3))
    np.testing.assert_allclose(got.numpy(), rigid3d_batch(v, TH3), atol=1e-10)
    ys = crandn((3, 9, 10, 11), 19)
    got = rigid3d_torch(torch.from_numpy(ys), torch.from_numpy(TH3), adjoint=True,
                        per_shot=True)
    np.testing.assert_allclose(got.numpy(), rigid3d_batch(ys, TH3, True, True), atol=1e-10)


def test_torch_matches_numpy_complex64() -> None:
    x = crandn((2, 64, 60), 20).astype(np.complex64)
    want = rigid2d_batch(x.astype(np.complex128), TH2)
    got = rigid2d_torch(torch.from_numpy(x), torch.from_numpy(TH2).float())
    assert got.dtype == torch.complex64
    rel = np.linalg.norm(got.numpy() - want) / np.linalg.norm(want)
    assert rel < 1e-5
    v = crandn((12, 14, 16), 21).astype(np.complex64)
    want = rigid3d_batch(v.astype(np.complex128), TH3)
    got = rigid3d_torch(torch.from_numpy(v), torch.from_numpy(TH3).float()).numpy()
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-5


def test_torch_batched_equals_loop() -> None:
    x = torch.from_numpy(crandn((20, 22), 22))
    th = torch.from_numpy(TH2)
    got = rigid2d_torch(x, th)
    for s in range(th.shape[0]):
        one = rigid2d_torch(x, th[s:s + 1])[0]
        torch.testing.assert_close(got[s], one, atol=1e-12, rtol=0)


def _loss_2d(thetas: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
             mask: torch.Tensor) -> torch.Tensor:
    k = fft_torch(rigid2d_torch(x, thetas), 2)           # (nshot, ky, kx)
    return ((mask * k - y).abs() ** 2).sum()


def test_gradient_wrt_theta_matches_finite_differences_2d() -> None:
    n = 24
    x = torch.from_numpy(blob((n, n), (3.0, -2.0), 2.0) + 0.7 * blob((n, n), (-4.0, 3.0), 1.5))
    true = torch.tensor([[0.0, 0, 0], [3.0, 0.4, -0.6], [-2.0, -0.3, 0.8]], dtype=torch.float64)
    mask = torch.zeros(3, n, n, dtype=torch.float64)
    for s in range(3):
        mask[s, s::3, :] = 1.0                               # interleaved shots
    y = (mask * fft_torch(rigid2d_torch(x, true), 2)).detach()
    th0 = torch.tensor([[0.5, -0.1, 0.2], [1.0, 0.1, -0.1], [-0.5, 0.2, 0.3]],
                       dtype=torch.float64)
    th = th0.clone().requires_grad_()
    loss = _loss_2d(th, x, y, mask)
    (grad,) = torch.autograd.grad(loss, th)
    h = 1e-5
    fd = torch.zeros_like(th0)
    for i in range(3):
        for j in range(3):
            e = torch.zeros_like(th0)
            e[i, j] = h
            fd[i, j] = (_loss_2d(th0 + e, x, y, mask) - _loss_2d(th0 - e, x, y, mask)) / (2 * h)
    assert torch.all(fd.abs() > 1e-4)                       # every entry is informative
    assert torch.all((grad - fd).abs() <= 1e-4 * fd.abs()), (grad, fd)


def test_gradient_wrt_theta_matches_finite_differences_3d() -> None:
    shape = (10, 12, 11)
    x = torch.from_numpy(blob(shape, (1.0, -2.0, 1.5), 1.8))
    th0 = torch.tensor([[2.0, -3.0, 4.0, 0.3, -0.2, 0.4], [60.0, 10.0, -5.0, 0, 0.1, 0]],
                       dtype=torch.float64)
    w = torch.from_numpy(crandn((2,) + shape, 23))

    def loss(th: torch.Tensor) -> torch.Tensor:
        return (fft_torch(rigid3d_torch(x, th), 3) * w).real.sum()

    th = th0.clone().requires_grad_()
    (grad,) = torch.autograd.grad(loss(th), th)
    h = 1e-5
    fd = torch.zeros_like(th0)
    for i in range(2):
        for j in range(6):
            e = torch.zeros_like(th0)
            e[i, j] = h
            fd[i, j] = (loss(th0 + e) - loss(th0 - e)) / (2 * h)
    assert torch.all(fd.abs() > 1e-4)
    assert torch.all((grad - fd).abs() <= 1e-4 * fd.abs()), (grad, fd)


def test_gradcheck_wrt_x_and_theta() -> None:
    # fast_mode: compares J u and v^H J for random u, v instead of the full Jacobian
    check = functools.partial(torch.autograd.gradcheck, fast_mode=True)
    x = torch.from_numpy(crandn((2, 6, 7), 24)).requires_grad_()
    th = torch.tensor([[0.0, 0.0, 0.0], [10.0, 0.3, -0.4], [95.0, -0.2, 0.1]],
                      dtype=torch.float64, requires_grad=True)
    assert check(lambda a, t: rigid2d_torch(a, t), (x, th))
    assert check(lambda a, t: rigid2d_torch(a, t, adjoint=True), (x, th))
    ys = torch.from_numpy(crandn((3, 6, 7), 25)).requires_grad_()
    assert check(lambda a, t: rigid2d_torch(a, t, per_shot=True), (ys, th))
    v = torch.from_numpy(crandn((4, 5, 6), 26)).requires_grad_()
    th3 = torch.tensor([[5.0, -7.0, 9.0, 0.2, -0.1, 0.3]], dtype=torch.float64,
                       requires_grad=True)
    assert check(lambda a, t: rigid3d_torch(a, t), (v, th3))
    # the full Jacobian once, on the smallest case
    assert torch.autograd.gradcheck(lambda a, t: rigid2d_torch(a, t),
                                    (x[0, :4, :5].detach().requires_grad_(), th[1:]))


def test_gradient_flows_at_zero_motion() -> None:
    # shot 0 has zero motion by convention; its parameters still get a gradient
    x = torch.from_numpy(blob((16, 16), (2.0, -3.0)))
    th = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    w = torch.from_numpy(crandn((1, 16, 16), 27))
    (rigid2d_torch(x, th) * w).real.sum().backward()
    assert th.grad is not None and torch.all(th.grad.abs() > 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_torch_on_cuda_matches_cpu() -> None:
    x = torch.from_numpy(crandn((2, 40, 36), 28)).to(torch.complex64)
    th = torch.from_numpy(TH2).float().requires_grad_()
    cpu = rigid2d_torch(x, th)
    gpu = rigid2d_torch(x.cuda(), th.detach().cuda().requires_grad_())
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------------------------------
# sigpy Linop
# ------------------------------------------------------------------------------------------
def test_sigpy_linop_composes_and_is_unitary() -> None:
    shape = (3, 20, 18)                                     # e.g. coils, ny, nx
    theta = (14.0, 1.1, -0.6)
    m = RigidMotion(shape, theta)
    a = sp.linop.FFT(shape, axes=(-2, -1)) * m
    x, y = crandn(shape, 29), crandn(shape, 30)
    np.testing.assert_allclose(a * x, fft(rigid2d(x, theta), 2), atol=1e-12)
    assert abs(inner(a * x, y) - inner(x, a.H * y)) < 1e-10
    np.testing.assert_allclose(m.H * (m * x), x, atol=1e-12)
    np.testing.assert_allclose(m.H * x, rigid2d(x, theta, adjoint=True), atol=1e-12)
    np.testing.assert_allclose(m.N * x, x, atol=1e-12)
    m3 = RigidMotion((8, 9, 10), (10.0, -5.0, 20.0, 0.5, 0.0, -0.5))
    v = crandn((8, 9, 10), 31)
    np.testing.assert_allclose(m3.H * (m3 * v), v, atol=1e-12)
    np.testing.assert_allclose(m3 * v, rigid3d(v, (10.0, -5.0, 20.0, 0.5, 0.0, -0.5)),
                               atol=1e-12)


# ------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [(1.0, 2.0), (1.0, 2.0, 3.0, 4.0), (np.nan, 0, 0),
                                 (0, np.inf, 0), [[1.0, 2.0, 3.0]]])
def test_bad_theta_2d_raises(bad: object) -> None:
    x = np.zeros((8, 8), complex)
    with pytest.raises(ValueError, match="theta"):
        rigid2d(x, bad)
    with pytest.raises(ValueError, match="theta"):
        RigidMotion((8, 8), bad)


def test_bad_theta_other_entry_points_raise() -> None:
    x = np.zeros((8, 8, 8), complex)
    with pytest.raises(ValueError, match=r"theta.*\(6,\)"):
        rigid3d(x, (1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match=r"theta.*\(nshot, 3\)"):
        rigid2d_batch(x, np.zeros(3))
    with pytest.raises(ValueError, match="theta"):
        rigid3d_batch(x, np.full((2, 6), np.nan))
    with pytest.raises(ValueError, match="theta"):
        RigidMotion((8, 8, 8), (0.0,) * 5)
    xt = torch.zeros(8, 8, dtype=torch.complex64)
    with pytest.raises(ValueError, match=r"theta.*\(nshot, 3\)"):
        rigid2d_torch(xt, torch.zeros(3))
    with pytest.raises(ValueError, match="theta"):
        rigid2d_torch(xt, torch.tensor([[0.0, float("nan"), 0.0]]))
    with pytest.raises(ValueError, match=r"theta.*\(nshot, 6\)"):
        rigid3d_torch(torch.zeros(4, 4, 4), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="theta"):
        rotate2d(np.zeros((8, 8)), float("nan"))
