"""Quality figures: hand computations, the MRI scale convention, Levin's error ratio."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data, transform
from skimage.metrics import structural_similarity

from mrideblur.physics.kernels import camera_shake_kernel, linear_motion_kernel
from mrideblur.metrics import (
    error_ratio,
    fit_scale_magnitudes,
    kernel_similarity,
    psnr,
    reliability,
    ssd_upto_shift,
    ssim,
)


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    x = data.camera().astype(np.float64) / 255.0
    return transform.resize(x, (96, 96), anti_aliasing=True)


@pytest.fixture(scope="module")
def noisy(truth: np.ndarray) -> np.ndarray:
    return truth + np.random.default_rng(0).normal(0.0, 0.03, truth.shape)


def test_psnr_hand_computation() -> None:
    t = np.array([[0.0, 2.0], [1.0, 4.0]])
    e = np.array([[0.5, 2.0], [1.0, 3.0]])
    mse = (0.25 + 1.0) / 4
    assert psnr(e, t) == pytest.approx(10 * np.log10(4.0**2 / mse))  # range 4 - 0
    assert psnr(e, t, data_range=1.0) == pytest.approx(10 * np.log10(1.0 / mse))
    assert psnr(t, t) == float("inf")


def test_psnr_matches_skimage(truth: np.ndarray, noisy: np.ndarray) -> None:
    from skimage.metrics import peak_signal_noise_ratio

    expected = peak_signal_noise_ratio(truth, noisy, data_range=float(np.ptp(truth)))
    assert psnr(noisy, truth) == pytest.approx(expected, rel=1e-12)


def test_fit_scale_hand_computation() -> None:
    t = np.array([[0.0, 0.02, 1.0], [0.5, 0.8, 0.01]])  # 0.02 and 0.01 are outside the mask
    e = np.array([[0.3, 0.5, 2.2], [0.9, 1.7, 0.4]])
    m = np.abs(t) > 0.05
    a = (e[m] * t[m]).sum() / (e[m] ** 2).sum()
    mse = np.mean((a * e - t) ** 2)  # over the whole image
    assert psnr(e, t, fit_scale=True) == pytest.approx(10 * np.log10(1.0 / mse))
    scaled, mag, a_fit = fit_scale_magnitudes(e, t)
    assert a_fit == pytest.approx(a)
    np.testing.assert_allclose(scaled, a * e)


def test_fit_scale_invariant_to_scale_and_phase(truth: np.ndarray, noisy: np.ndarray) -> None:
    ref = psnr(noisy, truth, fit_scale=True)
    for factor in (0.01, 3.7, -2.0, 5.0 * np.exp(1j * 0.9)):
        assert psnr(factor * noisy, truth, fit_scale=True) == pytest.approx(ref, rel=1e-10)
    # the truth may be complex too: magnitudes are compared
    assert psnr(noisy, truth * np.exp(-0.4j), fit_scale=True) == pytest.approx(ref, rel=1e-10)
    # and SSIM the same way
    s = ssim(noisy, truth, fit_scale=True)
    assert ssim(2.5j * noisy, truth, fit_scale=True) == pytest.approx(s, rel=1e-10)
    # without fit_scale a scale is an error
    assert psnr(3.7 * noisy, truth) < ref - 10


def test_fit_scale_peak_is_max_magnitude(truth: np.ndarray, noisy: np.ndarray) -> None:
    # the peak is max |truth| (not max - min), the MSE is over the whole image
    scaled, t, _ = fit_scale_magnitudes(noisy, truth)
    mse = np.mean((scaled - t) ** 2)
    assert psnr(noisy, truth, fit_scale=True) == pytest.approx(10 * np.log10(t.max() ** 2 / mse))


def test_fit_scale_custom_mask() -> None:
    t = np.array([[1.0, 2.0], [3.0, 4.0]])
    e = np.array([[1.0, 2.0], [3.0, 40.0]])
    mask = np.array([[True, True], [True, False]])  # fit on the three good pixels: a = 1
    _, _, a = fit_scale_magnitudes(e, t, mask)
    assert a == pytest.approx(1.0)
    assert psnr(e, t, fit_scale=True, mask=mask) == pytest.approx(10 * np.log10(16.0 / (36.0**2 / 4)))


def test_ssim_matches_skimage(truth: np.ndarray, noisy: np.ndarray) -> None:
    expected = structural_similarity(noisy, truth, data_range=float(np.ptp(truth)))
    assert ssim(noisy, truth) == pytest.approx(expected)
    assert ssim(truth, truth) == pytest.approx(1.0)
    scaled, t, _ = fit_scale_magnitudes(noisy, truth)
    assert ssim(noisy, truth, fit_scale=True) == pytest.approx(
        structural_similarity(scaled, t, data_range=float(t.max()))
    )


@pytest.mark.parametrize("func", [psnr, ssim])
def test_shape_mismatch_names_both_shapes(func) -> None:
    with pytest.raises(ValueError, match=r"\(8, 9\).*\(8, 8\)"):
        func(np.ones((8, 9)), np.ones((8, 8)))


def test_bad_metric_inputs() -> None:
    t = np.ones((8, 8))
    with pytest.raises(ValueError, match="estimate"):
        psnr(np.full((8, 8), np.nan), t)
    with pytest.raises(ValueError, match="fit_scale"):
        psnr(t * 1j, t)
    with pytest.raises(ValueError, match="mask"):
        psnr(t, t, mask=t > 0)
    with pytest.raises(ValueError, match="data_range"):
        psnr(t * 0.5, t)  # a constant truth has zero range


def test_ssd_upto_shift_finds_a_known_shift(truth: np.ndarray) -> None:
    est = np.roll(truth, (2, -3), axis=(0, 1))  # est[i + 2, j - 3] = truth[i, j]
    ssd, shift = ssd_upto_shift(est, truth, max_shift=4, return_shift=True)
    assert shift == (2, -3)
    assert ssd == pytest.approx(0.0, abs=1e-20)
    # beyond the search range the shift cannot be undone
    assert ssd_upto_shift(np.roll(truth, 6, axis=1), truth, max_shift=4) > 1.0


def test_ssd_upto_shift_hand_computation(truth: np.ndarray) -> None:
    s = 3
    est = truth + 0.1
    # a constant offset: every shift compares (96 - 2 s)^2 pixels; shift 0 gives 0.1^2 each
    assert ssd_upto_shift(est, truth, max_shift=s) <= (96 - 2 * s) ** 2 * 0.01 + 1e-9
    assert ssd_upto_shift(est, truth, max_shift=0) == pytest.approx(96**2 * 0.01)


def test_error_ratio(truth: np.ndarray, noisy: np.ndarray) -> None:
    assert error_ratio(noisy, noisy, truth) == pytest.approx(1.0)
    worse = truth + 2.0 * (noisy - truth)
    assert error_ratio(worse, noisy, truth) == pytest.approx(4.0, rel=0.05)
    assert error_ratio(noisy, worse, truth) < 1.0
    # a shifted copy of the good estimate costs nothing
    assert error_ratio(np.roll(noisy, (1, 2), axis=(0, 1)), noisy, truth) == pytest.approx(1.0, rel=0.05)
    assert error_ratio(truth, truth, truth) == 1.0


def test_kernel_similarity_shift_invariant() -> None:
    k = camera_shake_kernel(15, seed=0, extent=0.5)
    shifted = np.roll(k, (2, -1), axis=(0, 1))
    assert shifted.sum() == pytest.approx(1.0)
    assert kernel_similarity(shifted, k) == pytest.approx(1.0, abs=1e-12)
    assert kernel_similarity(k, k) == pytest.approx(1.0, abs=1e-12)
    # scale does not matter, different sizes are zero-padded
    big = np.zeros((25, 21))
    big[5:20, 3:18] = 3.0 * k
    assert kernel_similarity(big, k) == pytest.approx(1.0, abs=1e-12)


def test_kernel_similarity_delta_vs_motion() -> None:
    delta = np.zeros((15, 15))
    delta[7, 7] = 1.0
    line = linear_motion_kernel(15, 0, size=17)
    s = kernel_similarity(delta, line)
    assert s < 0.9
    assert s == pytest.approx(line.max() / np.linalg.norm(line), rel=1e-9)  # best overlap
    assert kernel_similarity(line, delta) == pytest.approx(s)
    # two different camera shakes are less alike than a kernel and itself
    assert kernel_similarity(camera_shake_kernel(15, seed=1), camera_shake_kernel(15, seed=2)) < 0.9


def test_kernel_similarity_rejects_bad_kernels() -> None:
    with pytest.raises(ValueError, match="k_est"):
        kernel_similarity(np.zeros((3, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="k_true"):
        kernel_similarity(np.ones((3, 3)), np.ones(3))


def test_reliability_of_the_true_std_is_calibrated_and_of_half_of_it_is_not():
    rng = np.random.default_rng(0)
    truth = np.ones((128, 128))
    std = np.linspace(0.01, 0.1, 128)[None, :].repeat(128, 0)  # known per-pixel error std
    est = truth + std * rng.standard_normal(truth.shape)
    good = reliability(std, est, truth)
    assert abs(good["ratio"] - 1.0) < 0.03
    assert abs(good["cover2"] - 0.954) < 0.01
    # equally populated bins along the std: each bin's RMS error matches its RMS std
    np.testing.assert_allclose(good["bin_rmse"], good["bin_std"], rtol=0.08)
    half = reliability(std / 2, est, truth)
    assert abs(half["ratio"] - 0.5) < 0.02
    assert abs(half["cover2"] - 0.683) < 0.015
    # the estimate's scale does not matter: the std is scaled with it
    scaled = reliability(3 * std, 3 * est, truth)
    assert abs(scaled["ratio"] - good["ratio"]) < 0.02


def test_reliability_rejects_a_std_of_another_shape():
    with pytest.raises(ValueError, match="std: shape"):
        reliability(np.ones((4, 4)), np.ones((5, 5)), np.ones((5, 5)))
