"""Simulator: motion tracks, shot maps, noise, and agreement with the (independent) model."""

from __future__ import annotations

import numpy as np
import pytest

from mrideblur.io.anatomy import mni_slice, shepp_logan
from mrideblur.mri import MultiShotSense, make_shot_index, motion_track, shot_masks, simulate, validate_shot_index


@pytest.mark.parametrize("kind", ["random", "step", "drift", "periodic", "none"])
@pytest.mark.parametrize("ndim", [2, 3])
def test_motion_tracks(kind, ndim):
    m = motion_track(12, kind, max_rot=3, max_trans=2, ndim=ndim, seed=4)
    assert m.shape == (12, 3 if ndim == 2 else 6)
    assert np.all(m[0] == 0)
    nrot = 1 if ndim == 2 else 3
    assert np.all(np.abs(m[:, :nrot]) <= 3 + 1e-9) or kind in ("step", "drift")
    np.testing.assert_array_equal(m, motion_track(12, kind, 3, 2, ndim=ndim, seed=4))
    if kind == "step":
        jumps = np.flatnonzero(np.any(np.diff(m, axis=0) != 0, axis=1))
        assert len(jumps) == 1
    if kind == "drift":
        assert np.all(np.diff(np.sign(np.diff(m, axis=0)), axis=0) == 0)
    if kind == "none":
        assert not m.any()


def test_shot_maps():
    s = make_shot_index(16, 4, "interleaved")
    np.testing.assert_array_equal(s, np.arange(16) % 4)
    s = make_shot_index(16, 4, "sequential")
    np.testing.assert_array_equal(s, np.arange(16) // 4)
    s = make_shot_index(64, 8, "interleaved", accel=2, acs=16)
    acquired = s >= 0
    assert acquired[24:40].all()  # fully sampled centre
    assert acquired[::2].all() and not acquired[1:24:2].any()
    r1, r2 = make_shot_index(32, 4, "random", seed=1), make_shot_index(32, 4, "random", seed=1)
    np.testing.assert_array_equal(r1, r2)
    assert sorted(np.bincount(r1)) == [8, 8, 8, 8]
    s3 = make_shot_index((8, 12), 6)
    assert s3.shape == (8, 12) and set(np.unique(s3)) == set(range(6))
    m = shot_masks(s3)
    assert m.shape == (6, 8, 12) and np.all(m.sum(0) == 1)


def test_centre_out_and_checkered_shot_maps():
    # centre-out: rings by |ky - N//2|, negative side first on ties, in equal blocks
    s = make_shot_index(8, 4, "centre-out")
    np.testing.assert_array_equal(s, [3, 2, 1, 0, 0, 1, 2, 3])
    s = make_shot_index(64, 8, "centre-out", accel=2, acs=16)
    d = np.abs(np.arange(64) - 32)
    acq = s >= 0
    assert np.all(np.diff([d[acq & (s == k)].max() for k in range(8)]) > 0)  # shot k owns a ring further out
    assert sorted(np.bincount(s[acq])) == [5] * 8
    # checkered: a 4 x 4 checkerboard of 16 shots over (kz, ky), every shot a regular sub-lattice
    s3 = make_shot_index((8, 12), 16, "checkered")
    kz, ky = np.indices((8, 12))
    np.testing.assert_array_equal(s3, (kz % 4) * 4 + ky % 4)
    s3 = make_shot_index((32, 32), 16, "checkered", accel=2, acs=8)
    acq = s3 >= 0
    assert np.all(np.bincount(s3[acq]) >= acq.sum() // 16 - 8)  # balanced under undersampling too
    for shot in range(16):  # every shot spans the whole plane
        z, y = np.nonzero(s3 == shot)
        assert np.ptp(z) >= 24 and np.ptp(y) >= 24
    with pytest.raises(ValueError, match="checkered.*2D"):
        make_shot_index(32, 4, "checkered")
    c3 = make_shot_index((9, 9), 4, "centre-out")
    assert c3[4, 4] == 0 and set(c3[[0, 0, 8, 8], [0, 8, 0, 8]]) == {3}  # corners last


@pytest.mark.parametrize("bad, match", [(np.zeros(5), "shape"), (np.array([0, 1, 3, 1]), "missing"), (np.array([0, -3, 1, 1]), "below -1"), (np.full(4, -1), "no acquired")])
def test_validate_shot_index(bad, match):
    with pytest.raises(ValueError, match=match):
        validate_shot_index(bad, (4,), "case.h5: dataset 'shot_index'")


def test_no_motion_no_oversampling_reproduces_the_model_exactly():
    img = shepp_logan(48)
    case = simulate(img, ncoil=4, nshot=6, motion="none", noise=0, phase=0.5, oversample=1, seed=2)
    A = MultiShotSense(case.truth["sens"], case.shot_index)
    np.testing.assert_allclose(case.kspace, A(case.truth["image"]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("ordering", ["interleaved", "sequential"])
def test_simulator_and_model_agree_on_motion_signs(ordering):
    """The simulator moves a finer object by splines, the model moves the truth by Fourier shears:
    they share no interpolator, yet agree closely — and clearly disagree with the sign flipped."""
    img = mni_slice("axial", 0.55, 96)
    case = simulate(img, ncoil=6, nshot=8, ordering=ordering, motion="random", max_rot=4, max_trans=3, noise=0, seed=7)
    th = case.truth["motion"]
    y = case.kspace

    def rel(theta):
        return np.linalg.norm(MultiShotSense(case.truth["sens"], case.shot_index, theta)(case.truth["image"]) - y) / np.linalg.norm(y)

    right = rel(th)
    assert right < 0.03
    for flip in ([-1, 1, 1], [1, -1, 1], [1, 1, -1], [1, -1, -1]):
        assert rel(th * flip) > 4 * right
    assert rel(th[:, [0, 2, 1]]) > 4 * right  # ty and tx swapped


def test_noise_level_and_seed():
    img = shepp_logan(48)
    a = simulate(img, ncoil=4, nshot=4, noise=0.05, seed=3)
    b = simulate(img, ncoil=4, nshot=4, noise=0.05, seed=3)
    clean = simulate(img, ncoil=4, nshot=4, noise=0.0, seed=3)
    np.testing.assert_array_equal(a.kspace, b.kspace)
    n = (a.kspace - clean.kspace)[:, a.shot_index >= 0]
    sigma = a.attrs["noise_sigma"]
    assert abs(np.sqrt(np.mean(np.abs(n) ** 2)) / sigma - 1) < 0.05
    assert np.all(a.kspace[:, a.shot_index < 0] == 0)


def test_3d_simulation_agrees_with_the_model():
    vol = shepp_logan((16, 20, 20))
    case = simulate(vol, ncoil=4, nshot=4, motion="random", max_rot=3, max_trans=1.5, noise=0, acs=4, seed=1)
    assert case.kspace.shape == (4, 16, 20, 20) and case.shot_index.shape == (16, 20)
    A = MultiShotSense(case.truth["sens"], case.shot_index, case.truth["motion"])
    err = np.linalg.norm(A(case.truth["image"]) - case.kspace) / np.linalg.norm(case.kspace)
    assert err < 0.15  # a small, non-band-limited volume: spline vs Fourier interpolation differ
    for axis in range(3):  # each rotation's sign
        flip = np.ones(6)
        flip[axis] = -1
        A0 = MultiShotSense(case.truth["sens"], case.shot_index, case.truth["motion"] * flip)
        assert np.linalg.norm(A0(case.truth["image"]) - case.kspace) / np.linalg.norm(case.kspace) > 2 * err


def test_bad_simulation_input():
    with pytest.raises(ValueError, match="image"):
        simulate(np.zeros(10))
    with pytest.raises(ValueError, match="image"):
        simulate(np.full((8, 8), np.nan))
    with pytest.raises(ValueError, match="motion"):
        simulate(np.ones((16, 16)), nshot=4, motion=np.zeros((3, 3)), acs=4)


@pytest.mark.parametrize("theta", [(3.0, 0.0, 0.0), (0.0, 2.5, -1.5), (-2.0, -1.0, 2.0)])
def test_plain_simulator_agrees_with_the_estimators_motion_but_not_its_code(theta):
    """mrideblur.physics.simulate_simple moves images with scipy.ndimage splines; the estimators use
    Fourier shears (mrideblur.physics.motion). Same docs/conventions.md signs: a smooth object moved both
    ways agrees to a few percent, while the two interpolators differ measurably."""
    from mrideblur.physics.motion import rigid2d
    from mrideblur.physics.simulate_simple import corrupt_image, move_ndimage

    n = 64
    yy, xx = np.mgrid[:n, :n] - n // 2
    blob = np.exp(-((yy - 6) ** 2 + (xx + 4) ** 2) / 40.0) + 0.5 * np.exp(-((yy + 8) ** 2 + (xx - 9) ** 2) / 20.0)
    a = move_ndimage(blob, *theta)
    b = np.real(rigid2d(blob, np.array(theta)))
    rel = np.linalg.norm(a - b) / np.linalg.norm(blob)
    assert rel < 0.05, rel
    assert rel > 1e-6  # not the same code path
    wrong = move_ndimage(blob, -theta[0], -theta[1], -theta[2])
    assert np.linalg.norm(wrong - b) > 5 * np.linalg.norm(a - b)
    si = make_shot_index(n, 4, "interleaved")
    img = corrupt_image(blob, si, np.zeros((4, 3)), 0.0, 0)
    np.testing.assert_allclose(img.real, blob, atol=1e-10)
