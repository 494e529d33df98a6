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
