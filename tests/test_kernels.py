"""Kernel generators: shape, normalisation, geometry, seeding and validation."""

from __future__ import annotations

import numpy as np
import pytest

from mrideblur.physics.kernels import (
    camera_shake_kernel,
    center_kernel,
    disk_kernel,
    gaussian_kernel,
    linear_motion_kernel,
    validate_kernel,
)

GENERATED = [
    ("gaussian", lambda: gaussian_kernel(1.5)),
    ("gaussian-size", lambda: gaussian_kernel(0.7, size=9)),
    ("disk", lambda: disk_kernel(3.2)),
    ("disk-subpixel", lambda: disk_kernel(0.2)),
    ("line-0", lambda: linear_motion_kernel(9, 0)),
    ("line-33", lambda: linear_motion_kernel(12.5, 33)),
    ("shake", lambda: camera_shake_kernel(15, seed=0)),
    ("shake-big", lambda: camera_shake_kernel(31, seed=7)),
]


@pytest.mark.parametrize("name,make", GENERATED, ids=[g[0] for g in GENERATED])
def test_generated_kernels_are_valid(name: str, make) -> None:
    k = make()
    assert k.ndim == 2
    assert k.shape[0] % 2 == 1 and k.shape[1] % 2 == 1
    assert k.dtype == np.float64
    assert np.all(k >= 0)
    assert k.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_array_equal(validate_kernel(k), k / k.sum())


def test_gaussian_default_size_and_width() -> None:
    sigma = 2.0
    k = gaussian_kernel(sigma)
    assert k.shape == (13, 13)  # 2 * ceil(3 sigma) + 1
    r = np.arange(13) - 6
    var_x = float((k.sum(axis=0) * r**2).sum())
    assert var_x == pytest.approx(sigma**2, rel=0.02)  # truncation at 3 sigma loses ~1 %
    np.testing.assert_allclose(k, k.T)


def test_disk_radius_and_area() -> None:
    k = disk_kernel(4.0)
    assert k.shape == (9, 9)
    # Uniform inside: the centre value is 1 / (pi r^2) up to anti-aliasing of the rim.
    assert k[4, 4] == pytest.approx(1.0 / (np.pi * 16.0), rel=0.05)
    assert k[0, 0] == 0.0


def test_camera_shake_is_seeded() -> None:
    a = camera_shake_kernel(21, seed=3)
    b = camera_shake_kernel(21, seed=3)
    c = camera_shake_kernel(21, seed=4)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).sum() > 0.5  # different seeds: substantially different trajectories


@pytest.mark.parametrize("seed", range(6))
def test_camera_shake_spans_the_support(seed: int) -> None:
    size = 25
    k = camera_shake_kernel(size, seed=seed)
    rows, cols = np.nonzero(k > 1e-3 * k.max())
    span = max(np.ptp(rows), np.ptp(cols)) + 1
    assert span >= 0.6 * size  # extent 0.8 of the size on the longer side by construction
    # a path, not a blob: it covers only a minority of the support
    assert np.count_nonzero(k) < 0.5 * size * size
    # centred on its centre of mass
    iy, ix = np.indices(k.shape)
    assert abs((iy * k).sum() - size // 2) < 1.0
    assert abs((ix * k).sum() - size // 2) < 1.0


def test_linear_motion_directions() -> None:
    k0 = linear_motion_kernel(9, 0)
    c = k0.shape[0] // 2
    assert k0[c].sum() == pytest.approx(1.0)  # horizontal: all mass on the centre row
    assert np.count_nonzero(k0[c] > 0) >= 9

    k90 = linear_motion_kernel(9, 90)
    c = k90.shape[0] // 2
    assert k90[:, c].sum() == pytest.approx(1.0, abs=1e-9)  # vertical: the centre column

    # Positive angle turns +x toward +y (rows): at 45 degrees the mass is on row == col
    # (spread by at most a pixel by the bilinear splatting).
    for angle, sign in ((45, 1), (-45, -1)):
        k = linear_motion_kernel(11, angle)
        iy, ix = np.indices(k.shape) - k.shape[0] // 2
        assert k[np.abs(iy - sign * ix) <= 1].sum() > 0.99
        corr = (k * iy * ix).sum() / np.sqrt((k * iy**2).sum() * (k * ix**2).sum())
        assert sign * corr > 0.95


def test_linear_motion_length() -> None:
    k = linear_motion_kernel(15, 0)
    row = k[k.shape[0] // 2]
    x = np.arange(k.shape[1]) - k.shape[1] // 2
    # uniform segment of length L: variance L^2 / 12 (+ 1/6 from the bilinear splat)
    assert float((row * x**2).sum()) == pytest.approx(15**2 / 12, rel=0.05)


@pytest.mark.parametrize(
    "bad, fragment",
    [
        (np.array([[0.0, np.nan, 0.0], [0, 1, 0], [0, 0, 0]]), "NaN"),
        (np.array([[0.0, -0.1, 0.0], [0, 1, 0], [0, 0, 0]]), "negative"),
        (np.zeros((3, 3)), "zero"),
        (np.ones((4, 3)), "odd"),
        (np.ones((3, 3, 3)), "2D"),
        (np.ones(5), "2D"),
    ],
    ids=["nan", "negative", "all-zero", "even", "3d", "1d"],
)
def test_validate_kernel_rejects(bad: np.ndarray, fragment: str) -> None:
    with pytest.raises(ValueError, match="psf") as info:
        validate_kernel(bad, name="psf")
    assert fragment in str(info.value)
    with pytest.raises(ValueError, match="kernel"):
        validate_kernel(bad)


def test_validate_kernel_normalize_flag() -> None:
    k = np.ones((3, 3))
    np.testing.assert_allclose(validate_kernel(k), k / 9)
    with pytest.raises(ValueError, match="kernel"):
        validate_kernel(k, normalize=False)


def test_generator_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="sigma"):
        gaussian_kernel(0.0)
    with pytest.raises(ValueError, match="radius"):
        disk_kernel(-1.0)
    with pytest.raises(ValueError, match="length"):
        linear_motion_kernel(0.0)
    with pytest.raises(ValueError, match="size"):
        camera_shake_kernel(10)
    with pytest.raises(ValueError, match="size"):
        gaussian_kernel(1.0, size=8)


def test_center_kernel_moves_delta_to_middle() -> None:
    k = np.zeros((7, 7))
    k[1, 5] = 1.0
    c = center_kernel(k)
    expected = np.zeros((7, 7))
    expected[3, 3] = 1.0
    np.testing.assert_array_equal(c, expected)


def test_center_kernel_keeps_a_centred_kernel() -> None:
    k = camera_shake_kernel(21, seed=2, extent=0.5)
    np.testing.assert_allclose(center_kernel(k), k)
    # a copy shifted by (-2, +1) pixels comes back to the original
    shifted = np.zeros_like(k)
    shifted[:-2, 1:] = k[2:, :-1]
    assert shifted.sum() == pytest.approx(1.0, abs=1e-9)  # nothing was cut off
    np.testing.assert_allclose(center_kernel(shifted), k, atol=1e-12)
