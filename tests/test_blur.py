"""The blur operator ``y = k * x + n`` and edge tapering, checked against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage, signal

from mrideblur.physics.blur import blur, check_image, edgetaper, psf2otf
from mrideblur.physics.kernels import camera_shake_kernel, gaussian_kernel


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = ndimage.gaussian_filter(rng.uniform(size=(48, 56)), 1.5)
    return (x - x.min()) / np.ptp(x)


@pytest.fixture(scope="module")
def kernel() -> np.ndarray:
    return camera_shake_kernel(9, seed=1)  # asymmetric: catches flipped or shifted kernels


@pytest.mark.parametrize("boundary", ["symmetric", "periodic"])
def test_delta_kernel_is_identity(image: np.ndarray, boundary: str) -> None:
    delta = np.zeros((5, 5))
    delta[2, 2] = 1.0
    np.testing.assert_allclose(blur(image, delta, boundary=boundary), image, atol=1e-12)


def test_delta_kernel_valid_crops(image: np.ndarray) -> None:
    delta = np.zeros((5, 3))
    delta[2, 1] = 1.0
    np.testing.assert_allclose(blur(image, delta, boundary="valid"), image[2:-2, 1:-1], atol=1e-12)


def test_periodic_matches_wrapped_convolution(image: np.ndarray, kernel: np.ndarray) -> None:
    expected = ndimage.convolve(image, kernel, mode="wrap")
    np.testing.assert_allclose(blur(image, kernel, boundary="periodic"), expected, atol=1e-12)


def test_periodic_matches_psf2otf(image: np.ndarray, kernel: np.ndarray) -> None:
    otf = psf2otf(kernel, image.shape)
    assert otf[0, 0] == pytest.approx(1.0)  # kernel sums to one
    direct = np.real(np.fft.ifft2(np.fft.fft2(image) * otf))
    np.testing.assert_allclose(blur(image, kernel, boundary="periodic"), direct, atol=1e-12)


def test_valid_matches_convolve2d(image: np.ndarray, kernel: np.ndarray) -> None:
    y = blur(image, kernel, boundary="valid")
    expected = signal.convolve2d(image, kernel, mode="valid")
    assert y.shape == (image.shape[0] - kernel.shape[0] + 1, image.shape[1] - kernel.shape[1] + 1)
    np.testing.assert_allclose(y, expected, atol=1e-12)


def test_symmetric_matches_reflected_convolution(image: np.ndarray, kernel: np.ndarray) -> None:
    y = blur(image, kernel, boundary="symmetric")
    assert y.shape == image.shape
    # numpy's "symmetric" padding is ndimage's "reflect" (the edge pixel is repeated)
    np.testing.assert_allclose(y, ndimage.convolve(image, kernel, mode="reflect"), atol=1e-12)


def test_blur_preserves_mean_and_smooths(image: np.ndarray) -> None:
    y = blur(image, gaussian_kernel(2.0), boundary="periodic")
    assert y.mean() == pytest.approx(image.mean(), abs=1e-12)
    assert np.abs(np.diff(y, axis=1)).mean() < 0.5 * np.abs(np.diff(image, axis=1)).mean()


def test_noise_is_seeded_with_requested_std() -> None:
    x = np.full((256, 256), 0.5)
    k = gaussian_kernel(1.0)
    a = blur(x, k, noise_sigma=0.02, seed=5)
    b = blur(x, k, noise_sigma=0.02, seed=5)
    c = blur(x, k, noise_sigma=0.02, seed=6)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    noise = a - blur(x, k)
    assert noise.std() == pytest.approx(0.02, rel=0.05)
    assert abs(noise.mean()) < 0.02 * 5 / 256  # 5 standard errors of the mean
    # white: neighbouring samples uncorrelated
    assert abs(np.corrcoef(noise[:, :-1].ravel(), noise[:, 1:].ravel())[0, 1]) < 0.03


def test_noise_free_by_default(image: np.ndarray, kernel: np.ndarray) -> None:
    np.testing.assert_array_equal(blur(image, kernel), blur(image, kernel, seed=123))


def test_edgetaper_keeps_centre_and_makes_border_continuous() -> None:
    # A ramp: maximally non-periodic, with jumps of 1 and 0.5 where it wraps. The taper blends
    # the border into the image's own circular blur, so the jump shrinks by the factor by which
    # the kernel smooths it (an isotropic kernel smooths both seams).
    kernel = gaussian_kernel(2.0)
    ny, nx = 40, 50
    x = np.add.outer(np.linspace(0, 1, ny), np.linspace(0, 0.5, nx))
    t = edgetaper(x, kernel)
    assert t.shape == x.shape
    ky, kx = kernel.shape
    np.testing.assert_array_equal(t[ky:-ky, kx:-kx], x[ky:-ky, kx:-kx])

    def seam(a: np.ndarray) -> float:  # mean jump across the periodic wrap, both axes
        return float(np.abs(a[0] - a[-1]).mean() + np.abs(a[:, 0] - a[:, -1]).mean())

    def step(a: np.ndarray) -> float:  # the largest neighbour difference inside, both axes
        return float(max(np.abs(np.diff(a, axis=0)).max(), np.abs(np.diff(a, axis=1)).max()))

    assert seam(x) == pytest.approx(1.5)
    assert seam(t) < 0.25 * seam(x)
    # no new edges are created: the wrapped image is as smooth as a blurred ramp
    wrapped = np.pad(t, 1, mode="wrap")
    assert step(wrapped) < 0.25 * step(np.pad(x, 1, mode="wrap"))


def test_edgetaper_pads(image: np.ndarray, kernel: np.ndarray) -> None:
    t = edgetaper(image, kernel, pad=(4, 6))
    assert t.shape == (image.shape[0] + 8, image.shape[1] + 12)
    ky, kx = kernel.shape
    np.testing.assert_array_equal(
        t[4 + ky : -4 - ky, 6 + kx : -6 - kx], image[ky:-ky, kx:-kx]
    )


def test_check_image_returns_float64() -> None:
    x = check_image(np.arange(12, dtype=np.uint8).reshape(3, 4), "img")
    assert x.dtype == np.float64 and x.shape == (3, 4)


@pytest.mark.parametrize(
    "make, kwargs, name",
    [
        (lambda: np.where(np.eye(16) > 0, np.nan, 0.5), {}, "image"),
        (lambda: np.ones(16), {}, "image"),
        (lambda: np.ones((4, 4, 4)), {}, "image"),
        (lambda: np.ones((2, 16)), {}, "image"),
        (lambda: np.ones((8, 8)), {"kernel": np.ones((9, 9))}, "kernel"),
        (lambda: np.ones((16, 16)), {"kernel": np.ones((4, 3))}, "kernel"),
        (lambda: np.ones((16, 16)), {"boundary": "reflect"}, "boundary"),
        (lambda: np.ones((16, 16)), {"noise_sigma": -0.1}, "noise_sigma"),
    ],
    ids=["nan-pixel", "1d", "3d", "too-small", "kernel-too-large", "kernel-even", "boundary", "sigma"],
)
def test_bad_inputs_name_the_argument(make, kwargs: dict, name: str) -> None:
    args = {"kernel": gaussian_kernel(1.0), **kwargs}
    with pytest.raises(ValueError, match=name):
        blur(make(), **args)


def test_edgetaper_rejects_bad_image() -> None:
    with pytest.raises(ValueError, match="image"):
        edgetaper(np.full((8, 8), np.inf), gaussian_kernel(1.0))
