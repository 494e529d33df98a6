"""The per-shot motion search: it brings shots that are far off back near their motion and
leaves shots that are right alone."""

from __future__ import annotations

import numpy as np
import torch

from mrideblur.estimators.shot_search import offset_grid, search_shot_motion
from mrideblur.io.anatomy import shepp_logan
from mrideblur.mri import MultiShotSenseTorch, simulate


def test_offset_grid_starts_at_zero_and_spans_the_range():
    g = offset_grid(10.0, 2.5, 2.0, 1.0)
    assert g.shape == (9 * 5 * 5, 3) and not g[0].any()
    assert g[:, 0].min() == -10 and g[:, 0].max() == 10 and np.abs(g[:, 1:]).max() == 2
    assert len(np.unique(g, axis=0)) == len(g)


def test_search_recovers_shots_turned_far_from_their_motion():
    """Two shots started 12.5 and -15 degrees (and 2 px) away from their true motion: the
    leave-one-out search puts them back within the grid's step; the others stay."""
    case = simulate(shepp_logan(64), ncoil=8, nshot=8, motion="random", max_rot=5, max_trans=3, noise=0.01,
                    seed=2)
    tm = case.truth["motion"]
    start = tm.copy()
    start[3] += (12.5, 2.0, 0.0)
    start[6] += (-15.0, 0.0, -2.0)
    model = MultiShotSenseTorch(case.shot_index, 2)
    y = torch.as_tensor(case.kspace)
    S = torch.as_tensor(case.truth["sens"]).to(torch.complex64)
    x0 = model.adjoint(y, torch.as_tensor(start, dtype=torch.float32), S)
    grid = offset_grid(20.0, 2.5, 2.0, 1.0)
    theta, image, moved = search_shot_motion(model, y, x0, torch.as_tensor(start, dtype=torch.float32), S, grid,
                                             fixed=0)
    err = np.abs(theta.numpy() - tm)
    assert moved[[3, 6]].all() and not moved[[0, 1, 2, 4, 5, 7]].any()
    assert err[:, 0].max() <= 1.25 + 1e-6 and err[:, 1:].max() <= 0.5 + 1e-6
    assert image.shape == (64, 64)


def test_aligned_sense_schedule_starts_at_24_pixels_and_searches_the_next_level():
    from mrideblur.estimators.aligned_sense import motion_levels

    lv = motion_levels(192, 60, 48)
    assert [round(v.fraction * 192) for v in lv] == [24, 48, 96, 192]
    assert [v.search for v in lv] == [False, True, False, False]
    assert [v.iterations for v in lv] == [60, 60, 48, 24]
    small = motion_levels(32, 60, 48)
    assert [round(v.fraction * 32) for v in small] == [24, 32, 32] and [v.search for v in small] == [False, True, False]
    tiny = motion_levels(24, 60, 48)  # no level coarser than the image itself: no search either
    assert all(v.fraction == 1.0 and not v.search for v in tiny)
    vol = motion_levels(48, 60, 48, ndim=3)  # 3D: the search is a second pass over the 24^3 level
    assert [round(v.fraction * 48) for v in vol] == [24, 24, 48, 48] and [v.search for v in vol] == [False, True, False, False]


def test_offset_grid3d_covers_every_combination_zero_first():
    from mrideblur.estimators.shot_search import offset_grid3d

    g = offset_grid3d((-4.0, 0.0, 4.0), (-1.0, 0.0, 1.0))
    assert g.shape == (729, 6) and not g[0].any() and len(np.unique(g, axis=0)) == 729
    assert set(np.unique(g[:, :3])) == {-4.0, 0.0, 4.0} and set(np.unique(g[:, 3:])) == {-1.0, 0.0, 1.0}


def test_3d_search_puts_back_a_shot_turned_about_two_axes_and_shifted():
    """3D: a shot started 4 degrees off about z and x and a voxel off along y is moved back to
    its true motion by the leave-one-out search (the grid holds the exact offset); the others stay."""
    from mrideblur.estimators.shot_search import offset_grid3d
    from mrideblur.io.anatomy import template_volume

    case = simulate(template_volume("mni152", 24), ncoil=4, nshot=4, motion="random", max_rot=2, max_trans=1,
                    noise=0.01, acs=0, seed=3)
    tm = case.truth["motion"]
    start = tm.copy()
    start[2] += (4.0, 0.0, -4.0, 0.0, 1.0, 0.0)
    model = MultiShotSenseTorch(case.shot_index, 3)
    y = torch.as_tensor(case.kspace).to(torch.complex64)
    S = torch.as_tensor(case.truth["sens"]).to(torch.complex64)
    th0 = torch.as_tensor(start, dtype=torch.float32)
    theta, image, moved = search_shot_motion(model, y, model.adjoint(y, th0, S), th0, S,
                                             offset_grid3d((-4.0, 0.0, 4.0), (-1.0, 0.0, 1.0)), fixed=0)
    assert moved[2] and not moved[[0, 1, 3]].any()
    assert np.abs(theta.numpy() - tm).max() < 1e-4 and image.shape == (24, 24, 24)


def test_3d_shot_residuals_match_the_masked_forward_model():
    from mrideblur.io.anatomy import template_volume

    case = simulate(template_volume("mni152", 16), ncoil=2, nshot=4, motion="random", max_rot=2, max_trans=1,
                    noise=0.0, acs=0, seed=1)
    model = MultiShotSenseTorch(case.shot_index, 3, dtype=torch.complex128)
    y = torch.as_tensor(case.kspace).to(torch.complex128)
    S = torch.as_tensor(case.truth["sens"]).to(torch.complex128)
    x = torch.as_tensor(case.truth["image"]).to(torch.complex128)
    th = torch.as_tensor(case.truth["motion"] + 0.5, dtype=torch.float64)
    mask = torch.as_tensor(case.shot_index == 1)[None, :, :, None]
    expected = [float((((model(x, th[[0, 1, 2, 3]] * 0 + c, S)) - y) * mask).abs().pow(2).sum()) for c in th[:2]]
    got = model.shot_residuals(x, th[:2], S, 1, y)
    assert np.allclose(got.numpy(), expected, rtol=1e-10)


def test_xcorr_search_finds_any_translation_and_leaves_right_shots_alone():
    """Full-resolution search: shots started 8 deg / (20, -15) px, (0, -25) px and -6 deg from
    their motion (random ordering, 64x64, true coils) come back to it — far outside the coarse
    grid's +-2 px — and no other shot moves."""
    from mrideblur.estimators.shot_search import RESCUE_ROTATIONS, xcorr_shot_search

    case = simulate(shepp_logan(64), ncoil=8, nshot=8, ordering="random", motion="random", max_rot=5, max_trans=3,
                    noise=0.01, seed=4)
    tm = case.truth["motion"]
    start = tm.copy()
    start[3] += (8.0, 20.0, -15.0)
    start[5] += (0.0, -25.0, 0.0)
    start[6] += (-6.0, 0.0, 0.0)
    model = MultiShotSenseTorch(case.shot_index, 2)
    S = torch.as_tensor(case.truth["sens"]).to(torch.complex64)
    theta = torch.as_tensor(start, dtype=torch.float32)
    for _ in range(2):
        theta, moved, gain = xcorr_shot_search(model, torch.as_tensor(case.kspace), torch.zeros(64, 64, dtype=torch.complex64),
                                               theta, S, RESCUE_ROTATIONS, fixed=0)
        if not moved.any():
            break
    assert np.abs(theta.numpy() - tm).max() < 1e-3
    assert (gain <= 1).all()


def test_rescue_shots_reports_in_the_frame_of_shot_0():
    """Held at a reference shot other than 0 (the shot owning the centre line), a shot moved
    20 px along x is put back and the motion comes back relative to shot 0."""
    from mrideblur.estimators.kspace_grid import reference_shot
    from mrideblur.estimators.shot_search import rescue_shots

    case = simulate(shepp_logan(64), ncoil=8, nshot=8, ordering="random", motion="random", max_rot=3, max_trans=3,
                    noise=0.01, seed=6)
    tm = case.truth["motion"]
    start = tm.copy()
    start[2] += (0.0, 0.0, 20.0)
    ref = reference_shot(case.shot_index)
    assert ref not in (0, 2)
    got, info = rescue_shots(case.kspace, case.shot_index, case.truth["sens"], start, ref)
    assert info["moved"] and info["sweeps"][0]["moved"] == [2]
    assert np.abs(got - tm).max() < 1e-3 and not got[0].any()


def test_rescue_is_skipped_when_every_shot_fits_and_runs_when_one_stands_out():
    """At the true motion every shot's misfit per line is within the gate of the median's and no
    search runs (``skipped``); with one shot 20 px off, that shot's ratio is far above the gate,
    the search runs and puts it back."""
    from mrideblur.estimators.shot_search import RESCUE_GATE, rescue_shots

    case = simulate(shepp_logan(64), ncoil=8, nshot=8, ordering="random", motion="random", max_rot=3, max_trans=3,
                    noise=0.01, seed=6)
    tm = case.truth["motion"]
    got, info = rescue_shots(case.kspace, case.shot_index, case.truth["sens"], tm, 0)
    assert "skipped" in info and not info["moved"] and info["sweeps"] == []
    assert max(info["shot_misfit_ratio"]) < RESCUE_GATE
    assert np.array_equal(got, tm)
    start = tm.copy()
    start[4] += (0.0, 20.0, 0.0)
    got, info = rescue_shots(case.kspace, case.shot_index, case.truth["sens"], start, 0)
    assert int(np.argmax(info["shot_misfit_ratio"])) == 4 and max(info["shot_misfit_ratio"]) > 3 * RESCUE_GATE
    assert "skipped" not in info and info["moved"]
    assert np.abs(got - tm).max() < 1e-3
