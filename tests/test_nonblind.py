"""Non-blind deconvolution: PSNR against the sharp ground truth, exactness, boundaries, errors."""

from __future__ import annotations

import time

import numpy as np
import pytest
from skimage import data, transform

from mrideblur.physics.blur import blur, psf2otf
from mrideblur.physics.kernels import camera_shake_kernel, gaussian_kernel
from mrideblur.estimators.nonblind import (
    METHODS,
    deconvolve,
    estimate_noise_sigma,
    solve_lp_shrinkage,
)
from mrideblur.metrics import psnr

NOISE = 0.01  # 1 % of the [0, 1] range


def _gray(name: str, size: int = 256) -> np.ndarray:
    a = getattr(data, name)()
    if a.ndim == 3:
        a = a[..., 1]  # green channel of a colour image
    a = a.astype(np.float64) / 255.0
    return transform.resize(a, (size, size), anti_aliasing=True)


CASES = {
    "camera": ("camera", 0),
    "astronaut": ("astronaut", 1),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request: pytest.FixtureRequest) -> dict:
    name, seed = CASES[request.param]
    x = _gray(name)
    k = camera_shake_kernel(15, seed=seed)
    y = blur(x, k, noise_sigma=NOISE, seed=100 + seed)
    return {"x": x, "k": k, "y": y, "psnr_blurred": psnr(y, x)}


#: The classical solvers (the diffusion prior has its own test below: it takes seconds, not ms).
CLASSICAL = tuple(m for m in METHODS if m != "diffusion")


@pytest.fixture(scope="module")
def restored(case: dict) -> dict[str, float]:
    """PSNR (dB) of every classical method with its defaults on the case."""
    return {m: psnr(deconvolve(case["y"], case["k"], m), case["x"]) for m in CLASSICAL}


def test_wiener_beats_inverse_by_10db(case: dict, restored: dict[str, float]) -> None:
    assert restored["wiener"] >= restored["inverse"] + 10.0
    assert restored["inverse"] < case["psnr_blurred"]  # the inverse filter explodes on noise
    assert restored["wiener"] > case["psnr_blurred"]


@pytest.mark.parametrize("method", ["tikhonov", "hyper-laplacian"])
def test_regularised_methods_gain_2db(case: dict, restored: dict[str, float], method: str) -> None:
    assert restored[method] >= case["psnr_blurred"] + 2.0


def test_hyper_laplacian_beats_tikhonov(restored: dict[str, float]) -> None:
    assert restored["hyper-laplacian"] > restored["tikhonov"] + 0.5


def test_richardson_lucy_improves(case: dict, restored: dict[str, float]) -> None:
    assert restored["richardson-lucy"] > case["psnr_blurred"] + 1.0


def test_wiener_with_known_noise_matches_estimated(case: dict) -> None:
    auto = psnr(deconvolve(case["y"], case["k"], "wiener"), case["x"])
    known = psnr(deconvolve(case["y"], case["k"], "wiener", noise_sigma=NOISE), case["x"])
    assert abs(auto - known) < 0.5
    # a given nsr is used as is: a far too small one behaves like the inverse filter
    tiny = psnr(deconvolve(case["y"], case["k"], "wiener", nsr=1e-6), case["x"])
    assert tiny < auto - 5.0


def test_noise_free_inverse_periodic_is_exact() -> None:
    x = _gray("camera")
    k = camera_shake_kernel(15, seed=0)
    y = blur(x, k, boundary="periodic")
    est = deconvolve(y, k, "inverse", boundary="periodic")
    assert est.dtype == np.float64 and est.shape == x.shape
    assert psnr(est, x) > 40.0


@pytest.mark.parametrize("method", ["wiener", "tikhonov", "hyper-laplacian"])
def test_periodic_regularised_methods_are_near_exact_without_noise(method: str) -> None:
    x = _gray("camera", 128)
    k = gaussian_kernel(1.0)
    y = blur(x, k, boundary="periodic")
    params = {"wiener": {"nsr": 1e-6}, "tikhonov": {"lam": 1e-6}, "hyper-laplacian": {"lam": 1e6}}
    assert psnr(deconvolve(y, k, method, boundary="periodic", **params[method]), x) > 38.0


def test_tikhonov_solves_its_normal_equations() -> None:
    """k^T (k * x - y) + lam D^T D x = 0 at the Tikhonov estimate (periodic boundary)."""
    rng = np.random.default_rng(0)
    y = rng.normal(size=(40, 48))
    k = camera_shake_kernel(7, seed=3)
    lam = 0.05
    x = deconvolve(y, k, "tikhonov", boundary="periodic", lam=lam)
    otf = psf2otf(k, y.shape)

    def conv(a: np.ndarray, h: np.ndarray) -> np.ndarray:
        return np.real(np.fft.ifft2(np.fft.fft2(a) * h))

    def dtd(a: np.ndarray) -> np.ndarray:  # D^T D x with periodic forward differences
        lap = 0.0 * a
        for axis in (0, 1):
            d = np.roll(a, -1, axis=axis) - a
            lap = lap + (np.roll(d, 1, axis=axis) - d)
        return lap

    residual = conv(conv(x, otf) - y, np.conj(otf)) + lam * dtd(x)
    assert np.abs(residual).max() < 1e-10


def test_valid_boundary_returns_the_scene(case: dict) -> None:
    x, k = case["x"], case["k"]
    y = blur(x, k, noise_sigma=NOISE, seed=7, boundary="valid")
    hy, hx = k.shape[0] // 2, k.shape[1] // 2
    assert y.shape == (x.shape[0] - 2 * hy, x.shape[1] - 2 * hx)
    interior = x[hy:-hy, hx:-hx]  # the scene pixels y lines up with
    blurred_db = psnr(y, interior)
    for method in ("wiener", "tikhonov", "hyper-laplacian", "richardson-lucy"):
        est = deconvolve(y, k, method, boundary="valid")
        assert est.shape == x.shape, method
        gain = psnr(est[hy:-hy, hx:-hx], interior, data_range=1.0) - blurred_db
        assert gain > 1.5, method
    # the whole scene, extrapolated band included, is still better than the blurred data
    est = deconvolve(y, k, "hyper-laplacian", boundary="valid")
    assert psnr(est, x, data_range=1.0) > blurred_db


def test_taper_beats_periodic_on_a_non_periodic_image(case: dict) -> None:
    x, k, y = case["x"], case["k"], case["y"]
    taper = psnr(deconvolve(y, k, "tikhonov", boundary="taper"), x)
    periodic = psnr(deconvolve(y, k, "tikhonov", boundary="periodic"), x)
    assert taper > periodic + 1.0


def test_output_is_float64_and_deterministic(case: dict) -> None:
    for method in CLASSICAL:
        a = deconvolve(case["y"].astype(np.float32), case["k"], method)
        b = deconvolve(case["y"].astype(np.float32), case["k"], method)
        assert a.dtype == np.float64 and a.shape == case["y"].shape, method
        np.testing.assert_array_equal(a, b)


def test_richardson_lucy_handles_negative_data() -> None:
    x = _gray("camera", 128) - 0.5  # half the image is negative
    k = gaussian_kernel(1.5)
    y = blur(x, k, noise_sigma=0.005, seed=1)
    est = deconvolve(y, k, "richardson-lucy", num_iter=20)
    assert np.all(np.isfinite(est))
    assert psnr(est, x) > psnr(y, x) + 1.0


def test_hyper_laplacian_512_is_fast() -> None:
    x = data.camera().astype(np.float64) / 255.0
    k = camera_shake_kernel(25, seed=0)
    y = blur(x, k, noise_sigma=NOISE, seed=0)
    deconvolve(y[:64, :64], k, "hyper-laplacian")  # warm up the FFT plans and imports
    t0 = time.perf_counter()
    est = deconvolve(y, k, "hyper-laplacian")
    elapsed = time.perf_counter() - t0
    assert est.shape == (512, 512)
    assert elapsed < 2.0


@pytest.mark.parametrize("alpha", [0.5, 2.0 / 3.0, 0.8])
@pytest.mark.parametrize("beta", [1.0, 8.0, 181.0])
def test_lp_shrinkage_is_the_minimiser(alpha: float, beta: float) -> None:
    v = np.linspace(-2.0, 2.0, 401)
    w = solve_lp_shrinkage(v, beta, alpha)
    grid = np.linspace(-2.5, 2.5, 20001)
    cost = np.abs(grid)[None, :] ** alpha + 0.5 * beta * (grid[None, :] - v[:, None]) ** 2
    best = cost.min(axis=1)
    ours = np.abs(w) ** alpha + 0.5 * beta * (w - v) ** 2
    assert np.all(ours <= best + 1e-9)  # at least as good as a fine brute-force search
    assert np.all(np.abs(w) <= np.abs(v)) and np.all(w * v >= 0)  # shrinks towards zero


def test_estimate_noise_sigma() -> None:
    rng = np.random.default_rng(4)
    x = _gray("camera")
    k = camera_shake_kernel(15, seed=0)
    # the blurred image leaks a little into the finest wavelet band: ~+15 % at 0.5 % noise
    for sigma, rel in ((0.005, 0.2), (0.01, 0.1), (0.02, 0.05)):
        y = blur(x, k) + rng.normal(0.0, sigma, x.shape)
        assert estimate_noise_sigma(y) == pytest.approx(sigma, rel=rel)
    assert estimate_noise_sigma(rng.normal(0.0, 0.03, (200, 200))) == pytest.approx(0.03, rel=0.03)


def test_bad_method_and_boundary_raise() -> None:
    y = np.ones((32, 32))
    k = gaussian_kernel(1.0)
    with pytest.raises(ValueError, match="method") as info:
        deconvolve(y, k, "lucy-richardson")
    for m in METHODS:
        assert m in str(info.value)
    with pytest.raises(ValueError, match="boundary"):
        deconvolve(y, k, boundary="symmetric")


@pytest.mark.parametrize(
    "method, params, name",
    [
        ("wiener", {"lam": 0.1}, "lam"),
        ("tikhonov", {"eps": 0.1}, "eps"),
        ("inverse", {"eps": 0.0}, "eps"),
        ("tikhonov", {"lam": -1.0}, "lam"),
        ("hyper-laplacian", {"alpha": 0.4}, "alpha"),
        ("hyper-laplacian", {"alpha": 1.0}, "alpha"),
        ("hyper-laplacian", {"lam": 0.0}, "lam"),
        ("wiener", {"nsr": 0.1, "noise_sigma": 0.01}, "nsr"),
        ("wiener", {"nsr": -1.0}, "nsr"),
        ("richardson-lucy", {"num_iter": 0}, "num_iter"),
        ("richardson-lucy", {"num_iter": 2.5}, "num_iter"),
        ("tikhonov", {"lam": "strong"}, "lam"),
        ("hyper-laplacian", {"beta_max": float("nan")}, "beta_max"),
    ],
)
def test_bad_parameters_raise_naming_them(method: str, params: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        deconvolve(np.ones((32, 32)), gaussian_kernel(1.0), method, **params)


@pytest.mark.parametrize(
    "blurred, kernel, name",
    [
        (np.full((16, 16), np.nan), np.ones((3, 3)), "blurred"),
        (np.ones(16), np.ones((3, 3)), "blurred"),
        (np.ones((8, 8)), np.ones((9, 9)), "kernel"),
        (np.ones((16, 16)), np.ones((3, 4)), "kernel"),
        (np.ones((16, 16)), -np.ones((3, 3)), "kernel"),
    ],
    ids=["nan", "1d", "kernel-too-large", "kernel-even", "kernel-negative"],
)
def test_bad_inputs_raise_naming_them(blurred: np.ndarray, kernel: np.ndarray, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        deconvolve(blurred, kernel)


def test_diffusion_prior_deblurs_an_mri_slice():
    """One prior, two physics: the MRI diffusion prior with the blur as physics beats the input."""
    from mrideblur.io.anatomy import mni_slice
    from mrideblur.metrics import psnr

    x = np.abs(mni_slice("coronal", 0.55, 64))
    x /= x.max()
    k = camera_shake_kernel(7, seed=2)
    y = blur(x, k, boundary="periodic") + 0.01 * np.random.default_rng(0).normal(size=x.shape)
    out = deconvolve(y, k, "diffusion", boundary="periodic", steps=12)
    again = deconvolve(y, k, "diffusion", boundary="periodic", steps=12)
    assert out.shape == x.shape
    assert psnr(out, x) > psnr(y, x) + 2.0
    np.testing.assert_array_equal(out, again)
