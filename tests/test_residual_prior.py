"""Tang et al.'s deep residual prior (``method="residual-prior"``): the semi-blind fit with a
given or VB-estimated kernel, its ensemble uncertainty, colour, cancellation and option checks."""

from __future__ import annotations

import numpy as np
import pytest

from mrideblur.deblur import blind_deconvolve, blur, camera_shake_kernel, deconvolve
from mrideblur.learn.reblur import interpolate_kernel
from mrideblur.metrics import psnr

M = 11


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    from skimage import data

    return data.brick()[30 : 30 + 96 + M - 1, 50 : 50 + 96 + M - 1] / 255.0


def _score(img: np.ndarray, sharp: np.ndarray) -> float:
    h = M // 2 + 6
    return psnr(img[h:-h, h:-h], sharp[h:-h, h:-h], data_range=1)


def test_the_fit_improves_on_plain_deconvolution_with_a_wrong_or_right_kernel(scene, one_torch_thread):
    """The paper's setting: the kernel given is off (the true path scaled by 0.7 and turned by
    15 degrees); the residual absorbs part of what it cannot explain, and the fit beats plain
    hyper-Laplacian deconvolution with the same kernel — and with the true kernel it does not lose
    either (measured 2026-12-08: +0.13 and +0.30 dB here); the ensemble gives a non-trivial
    uncertainty."""
    k = camera_shake_kernel(M, seed=3)
    y = blur(scene, k, noise_sigma=0.01, seed=1, boundary="valid")
    wrong = interpolate_kernel(k, 0.7, 15.0)
    res = blind_deconvolve(y, M, method="residual-prior", kernel=wrong, boundary="valid", iters=150, samples=2)
    assert res.image.shape == res.uncertainty.shape == scene.shape
    assert res.history["residual_map"].shape == y.shape
    np.testing.assert_allclose(res.kernel, wrong / wrong.sum())
    plain = deconvolve(y, wrong, "hyper-laplacian", boundary="valid")
    assert _score(res.image, scene) > _score(plain, scene) + 0.05
    assert np.all(res.uncertainty >= 0) and res.uncertainty.max() > 0
    assert len(res.history["loss"]) == 2 and res.history["loss"][0][-1] < res.history["loss"][0][0]
    right = blind_deconvolve(y, M, method="residual-prior", kernel=k, boundary="valid", iters=150, samples=2)
    assert _score(right.image, scene) > _score(deconvolve(y, k, "hyper-laplacian", boundary="valid"), scene)


def test_the_blind_route_estimates_the_kernel_by_vb_and_handles_colour(scene, one_torch_thread):
    k = camera_shake_kernel(7, seed=2)
    rgb = np.stack([scene, scene[::-1], scene.T], -1)[: 80 + 6, : 80 + 6]
    y = blur(rgb, k, noise_sigma=0.01, seed=0, boundary="valid")
    res = blind_deconvolve(y, 7, method="residual-prior", iters=20, samples=1,
                           vb_params={"n_starts": 1, "n_iter": 10})
    assert res.image.shape == y.shape and res.uncertainty.shape == y.shape
    assert res.kernel.shape == (7, 7) and "vb" in res.history and "overshoot" in res.history
    sharp = rgb[3:-3, 3:-3]
    assert psnr(res.image[8:-8, 8:-8], sharp[8:-8, 8:-8], data_range=1) > psnr(y[8:-8, 8:-8], sharp[8:-8, 8:-8],
                                                                               data_range=1)


def test_cancel_and_bad_options(scene, one_torch_thread):
    k = camera_shake_kernel(M, seed=3)
    y = blur(scene, k, noise_sigma=0.01, seed=1, boundary="valid")
    res = blind_deconvolve(y, M, method="residual-prior", kernel=k, cancel=lambda: True)
    assert res.cancelled and res.image.shape == y.shape
    with pytest.raises(ValueError, match="samples"):
        blind_deconvolve(y, M, method="residual-prior", kernel=k, samples=0)
    with pytest.raises(ValueError, match="kernel"):
        blind_deconvolve(y, M, method="residual-prior", kernel=np.ones((5, 5)))
    with pytest.raises(ValueError, match="gradient_scale"):
        blind_deconvolve(y, M, method="residual-prior", kernel=k, gradient_scale=0)


def test_command_line_semi_blind_run_writes_the_uncertainty(scene, tmp_path, capsys, one_torch_thread):
    """``mrideblur deblur --method residual-prior --kernel K.npy``: the given kernel is the start
    (semi-blind), the uncertainty map is written beside the image, the other blind methods still
    refuse --kernel."""
    import json

    from mrideblur.cli import main
    from mrideblur.io import read_image, write_array

    k = camera_shake_kernel(M, seed=3)
    y = blur(scene[:70, :70], k, noise_sigma=0.01, seed=1, boundary="valid")
    write_array(tmp_path / "y.npy", y)
    write_array(tmp_path / "k.npy", interpolate_kernel(k, 0.8, 10.0))
    out = tmp_path / "out"
    assert main(["deblur", str(tmp_path / "y.npy"), "--method", "residual-prior", "--kernel", str(tmp_path / "k.npy"),
                 "--param", "iters=5", "--param", "samples=2", "--out", str(out), "--quiet"]) == 0
    spread = read_image(out / "uncertainty.npy")
    assert spread.shape == y.shape and spread.max() > 0
    report = json.loads((out / "report.json").read_text())
    assert report["blind"] and report["outputs"]["uncertainty"] == "uncertainty.npy"
    np.testing.assert_allclose(read_image(out / "kernel.npy"), interpolate_kernel(k, 0.8, 10.0), atol=1e-12)
    assert "semi-blind" in capsys.readouterr().out
    assert main(["deblur", str(tmp_path / "y.npy"), "--method", "vb", "--kernel", str(tmp_path / "k.npy"),
                 "--out", str(tmp_path / "o2")]) == 2
    assert "or to residual-prior" in capsys.readouterr().err
