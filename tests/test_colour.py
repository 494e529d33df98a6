"""Colour photographs ``(ny, nx, 3)``: one kernel blurs the three channels (docs/deblurring.md).

The physics, the non-blind and blind entry points, the image files and the ``deblur`` command
take and return colour; the blind methods estimate the kernel on the luminance.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from skimage import data

from mrideblur.cli import main
from mrideblur.deblur import blind_deconvolve, blur, camera_shake_kernel, deconvolve, gaussian_kernel
from mrideblur.io import LUMA, read_image, write_array, write_image
from mrideblur.metrics import kernel_similarity, psnr
from mrideblur.physics.blur import luminance


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    """A 96x96 colour crop of scikit-image's astronaut (face and suit), values in [0, 1]."""
    return data.astronaut()[40:136, 180:276] / 255.0


def test_colour_blur_is_the_grey_blur_of_each_channel_and_commutes_with_luminance(rgb):
    k = camera_shake_kernel(9, seed=2)
    y = blur(rgb, k, boundary="valid")
    assert y.shape == (88, 88, 3)
    for c in range(3):
        np.testing.assert_allclose(y[..., c], blur(rgb[..., c], k, boundary="valid"), atol=1e-12)
    np.testing.assert_allclose(luminance(y), blur(luminance(rgb), k, boundary="valid"), atol=1e-12)
    noisy = blur(rgb, k, noise_sigma=0.01, seed=4)
    assert noisy.shape == rgb.shape
    assert np.std(noisy - blur(rgb, k)) == pytest.approx(0.01, rel=0.05)
    assert np.linalg.norm(LUMA) == pytest.approx(0.75, abs=0.001)  # noise of the luminance, per channel std 1


def test_colour_nonblind_deconvolution_restores_every_channel(rgb):
    k = gaussian_kernel(1.5)
    y = blur(rgb, k, noise_sigma=0.005, seed=0)
    x = deconvolve(y, k, method="hyper-laplacian")
    assert x.shape == rgb.shape
    for c in range(3):  # per channel against the truth, not just a shape
        assert psnr(x[..., c], rgb[..., c]) > psnr(y[..., c], rgb[..., c]) + 1.5


def test_colour_blind_vb_shares_one_kernel_estimated_on_the_luminance(rgb):
    y = blur(rgb, camera_shake_kernel(9, seed=5), noise_sigma=0.01, seed=1)
    opts = dict(n_iter=3, n_starts=1)
    res = blind_deconvolve(y, 11, method="vb", **opts)
    assert res.image.shape == rgb.shape and res.kernel.shape == (11, 11)
    assert "luminance" in res.history["colour"]
    grey = blind_deconvolve(luminance(y), 11, method="vb", **opts)
    np.testing.assert_allclose(res.kernel, grey.kernel, atol=1e-12)  # the same estimate, the same seed
    np.testing.assert_allclose(res.image[..., 1], deconvolve(y[..., 1], res.kernel, "hyper-laplacian"), atol=1e-12)


def test_colour_blind_vb_recovers_the_kernel_and_beats_the_blurred_input_in_every_channel():
    n, ks = 128, 11
    x = data.astronaut()[30 : 30 + n + ks - 1, 170 : 170 + n + ks - 1] / 255.0  # face, hair, badge
    k = camera_shake_kernel(ks, seed=5)
    y = blur(x, k, noise_sigma=0.01, seed=5, boundary="valid")
    res = blind_deconvolve(y, ks, method="vb", boundary="valid", patch=None)
    assert kernel_similarity(res.kernel, k) > 0.8  # 0.89 measured
    delta = np.pad([[1.0]], ks // 2)
    inner = (slice(ks, -ks), slice(ks, -ks))
    for c in range(3):  # 1.7-2.0 dB measured, against 1.5 asked of grey images in test_blind.py
        err = np.mean((res.image[..., c][inner] - x[..., c][inner]) ** 2)
        err_blurred = np.mean((deconvolve(y[..., c], delta, "hyper-laplacian", boundary="valid")[inner]
                               - x[..., c][inner]) ** 2)
        assert err < 0.75 * err_blurred, (c, 10 * np.log10(err_blurred / err))


def test_colour_bad_shapes_are_clear_errors(rgb):
    with pytest.raises(ValueError, match=r"blurred: .*\(ny, nx, 3\)"):
        deconvolve(np.ones((32, 32, 4)), gaussian_kernel(1.0))
    with pytest.raises(ValueError, match="blurred"):
        blind_deconvolve(np.full((32, 32, 3), np.nan), 5)


def test_colour_files_round_trip_and_grey_files_stay_grey(tmp_path, rgb):
    write_image(tmp_path / "c.png", rgb)
    back = read_image(tmp_path / "c.png", colour=True)
    assert back.shape == rgb.shape and np.abs(back - rgb).max() <= 0.5 / 255 + 1e-9
    np.testing.assert_allclose(read_image(tmp_path / "c.png"), back @ LUMA, atol=1e-12)  # grey by default
    write_image(tmp_path / "g.png", rgb[..., 0])
    assert read_image(tmp_path / "g.png", colour=True).shape == rgb.shape[:2]
    write_array(tmp_path / "c.npy", rgb)
    assert read_image(tmp_path / "c.npy", colour=True).shape == rgb.shape
    with pytest.raises(ValueError, match=r"c\.npy: expected a 2D array"):
        read_image(tmp_path / "c.npy")


def test_deblur_command_keeps_colour_unless_grey(tmp_path, rgb):
    k = gaussian_kernel(1.5)
    write_image(tmp_path / "blurred.png", np.clip(blur(rgb, k, noise_sigma=0.005, seed=0), 0, 1))
    write_array(tmp_path / "k.npy", k)
    assert main(["deblur", str(tmp_path / "blurred.png"), "--method", "wiener", "--kernel", str(tmp_path / "k.npy"),
                 "--out", str(tmp_path / "out"), "--quiet"]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["colour"] is True and report["output_shape"] == [96, 96, 3]
    x = read_image(tmp_path / "out" / "deblurred.png", colour=True)
    y = read_image(tmp_path / "blurred.png", colour=True)
    assert psnr(x, rgb) > psnr(y, rgb) + 1.0
    assert main(["deblur", str(tmp_path / "blurred.png"), "--method", "wiener", "--kernel", str(tmp_path / "k.npy"),
                 "--grey", "--out", str(tmp_path / "grey"), "--quiet"]) == 0
    assert json.loads((tmp_path / "grey" / "report.json").read_text())["output_shape"] == [96, 96]
