"""The package's one conjugate-gradient solver (mrideblur.physics.cg), on numpy and torch."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from mrideblur.physics.cg import conjugate_gradient


def _spd(n: int, rng: np.random.Generator, complex_: bool = False, cond: float = 50.0) -> np.ndarray:
    """A random Hermitian positive definite matrix with eigenvalues in [1, cond]."""
    z = rng.standard_normal((n, n)) + (1j * rng.standard_normal((n, n)) if complex_ else 0)
    q, _ = np.linalg.qr(z)
    return (q * np.geomspace(1.0, cond, n)) @ q.conj().T


def _rhs(n: int, rng: np.random.Generator, complex_: bool = False) -> np.ndarray:
    return rng.standard_normal(n) + (1j * rng.standard_normal(n) if complex_ else 0)


@pytest.mark.parametrize("complex_", [False, True], ids=["real-SPD", "complex-HPD"])
def test_matches_numpy_solve(complex_):
    rng = np.random.default_rng(0)
    a, b = _spd(30, rng, complex_), _rhs(30, rng, complex_)
    x = conjugate_gradient(lambda v: a @ v, b, max_iter=200, tol=1e-12)
    np.testing.assert_allclose(x, np.linalg.solve(a, b), rtol=1e-9, atol=1e-9)
    assert x.dtype == b.dtype
    # a warm start converges to the same solution, and the caller's start is left alone
    x0 = np.ones_like(b)
    xw = conjugate_gradient(lambda v: a @ v, b, x0, max_iter=200, tol=1e-12)
    np.testing.assert_allclose(xw, np.linalg.solve(a, b), rtol=1e-9, atol=1e-9)
    assert np.all(x0 == 1)


def test_torch_matches_numpy_and_keeps_single_precision():
    rng = np.random.default_rng(1)
    a, b = _spd(20, rng, True, cond=10.0), _rhs(20, rng, True)
    at, bt = torch.as_tensor(a, dtype=torch.complex64), torch.as_tensor(b, dtype=torch.complex64)
    x = conjugate_gradient(lambda v: at @ v, bt, max_iter=100, tol=1e-6)
    assert x.dtype == torch.complex64
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(a, b), rtol=1e-4, atol=1e-4)
    # numpy single precision stays single precision too (real and complex)
    xr = conjugate_gradient(lambda v: a.real.astype(np.float32) @ v, b.real.astype(np.float32), max_iter=5)
    xc = conjugate_gradient(lambda v: a.astype(np.complex64) @ v, b.astype(np.complex64), max_iter=5)
    assert xr.dtype == np.float32 and xc.dtype == np.complex64


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_batched_equals_separate_solves(backend):
    """``reduce_dims``: independent systems along the leading axis, each with its own steps and
    its own stop, equal to solving each system alone."""
    rng = np.random.default_rng(2)
    n, m = 4, 16
    mats = np.stack([_spd(m, rng, True, cond=c) for c in (2.0, 10.0, 100.0, 1000.0)])
    b = np.stack([_rhs(m, rng, True) for _ in range(n)])
    if backend == "torch":
        mats, b = torch.as_tensor(mats), torch.as_tensor(b)

    def batched(v):
        return (mats @ v[..., None])[..., 0]

    for tol, iters in [(0.0, 6), (1e-4, 200)]:
        x = conjugate_gradient(batched, b, max_iter=iters, tol=tol, reduce_dims=(1,))
        for i in range(n):
            xi = conjugate_gradient(lambda v, i=i: mats[i] @ v, b[i], max_iter=iters, tol=tol)
            np.testing.assert_allclose(np.asarray(x[i]), np.asarray(xi), rtol=1e-10, atol=1e-12)
    x = conjugate_gradient(batched, b, max_iter=200, tol=1e-12, reduce_dims=(1,))
    np.testing.assert_allclose(np.asarray(x), np.linalg.solve(np.asarray(mats), np.asarray(b)[..., None])[..., 0],
                               rtol=1e-8, atol=1e-8)


def test_batched_over_several_axes():
    """Systems ``(n, H, W)`` reduced over ``(1, 2)`` (as cg_normal uses it), with a per-system
    diagonal operator: each system converges to its own solution."""
    rng = np.random.default_rng(3)
    d = rng.uniform(1.0, 5.0, (3, 6, 5)).astype(np.float32)
    b = rng.standard_normal((3, 6, 5)).astype(np.float32)
    x = conjugate_gradient(lambda v: d * v, b, max_iter=60, tol=1e-6, reduce_dims=(1, 2))
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, b / d, rtol=1e-4, atol=1e-5)


def test_preconditioner_converges_faster_to_the_same_solution():
    rng = np.random.default_rng(4)
    scale = np.geomspace(1.0, 1e3, 40)
    a = _spd(40, rng, cond=5.0) * np.sqrt(np.outer(scale, scale))  # badly scaled rows and columns
    b = _rhs(40, rng)
    counts = {}
    for name, m in [("plain", None), ("jacobi", lambda r: r / np.diag(a))]:
        its = []
        x = conjugate_gradient(lambda v: a @ v, b, max_iter=500, tol=1e-10, M=m, callback=lambda i, x, r: its.append(i))
        np.testing.assert_allclose(x, np.linalg.solve(a, b), rtol=1e-6, atol=1e-8)
        counts[name] = len(its)
    assert counts["jacobi"] < counts["plain"] / 2


def test_tol_stops_early_and_callback():
    rng = np.random.default_rng(5)
    a, b = _spd(60, rng, cond=1e3), _rhs(60, rng)
    seen = []
    x = conjugate_gradient(lambda v: a @ v, b, max_iter=500, tol=1e-3,
                           callback=lambda i, x, r: seen.append((i, float(r))))
    its = [i for i, _ in seen]
    assert its == list(range(1, len(its) + 1)) and len(its) < 60
    bnorm = np.linalg.norm(b)
    assert seen[-1][1] <= 1e-3 * bnorm < seen[-2][1]  # stopped at the first iterate that passed
    assert np.linalg.norm(b - a @ x) == pytest.approx(seen[-1][1], rel=1e-6)
    # a start that already passes the test takes no step (and returns a copy)
    x0 = np.linalg.solve(a, b)
    calls = []
    xs = conjugate_gradient(lambda v: calls.append(1) or a @ v, b, x0, max_iter=10, tol=1e-6)
    assert len(calls) == 1 and xs is not x0 and np.array_equal(xs, x0)
    # a true callback return stops after that iteration; an exception propagates
    its = []
    conjugate_gradient(lambda v: a @ v, b, max_iter=50, callback=lambda i, x, r: its.append(i) or i == 3)
    assert its == [1, 2, 3]

    class Stop(Exception):
        pass

    def cancel(i, x, r):
        raise Stop

    with pytest.raises(Stop):
        conjugate_gradient(lambda v: a @ v, b, max_iter=50, callback=cancel)


def test_differentiable_in_torch():
    """Unrolled iterations: gradients w.r.t. the operator's parameters, ``b`` and ``x0`` (the
    autofocus search differentiates its least-squares image w.r.t. the motion)."""
    g = torch.Generator().manual_seed(0)
    n = 5

    def solve(lmat, b, x0):
        a = lmat @ lmat.mT.conj() + torch.eye(n, dtype=lmat.dtype)
        return conjugate_gradient(lambda v: a @ v, b, x0, max_iter=4)

    for dtype in (torch.float64, torch.complex128):
        lmat = torch.randn(n, n, generator=g, dtype=dtype).requires_grad_(True)
        b = torch.randn(n, generator=g, dtype=dtype).requires_grad_(True)
        x0 = torch.randn(n, generator=g, dtype=dtype).requires_grad_(True)
        assert torch.autograd.gradcheck(solve, (lmat, b, x0))
    # batched mode too
    mats = torch.randn(3, n, n, generator=g, dtype=torch.float64)
    spd = mats @ mats.mT + torch.eye(n, dtype=torch.float64)
    b = torch.randn(3, n, generator=g, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda b: conjugate_gradient(lambda v: (spd @ v[..., None])[..., 0], b, max_iter=3, reduce_dims=(1,)), (b,))


def test_no_other_cg_loop_in_the_package():
    """One place: no module but physics/cg.py holds a CG update or calls sigpy's CG."""
    root = Path(__file__).resolve().parents[1] / "mrideblur"
    pattern = re.compile(r"ConjugateGradient|^\s*p = [rz] \+ |rs_?new|rr_new|rz_new")
    offenders = [f"{p.relative_to(root)}:{i + 1}" for p in root.rglob("*.py") if p.name != "cg.py"
                 for i, line in enumerate(p.read_text().splitlines()) if pattern.search(line)]
    assert not offenders, offenders
