"""The safeguards every k-space correction passes through (mrideblur.estimators.safeguards):
a shot the model cannot explain is found and re-filled; a correction that fits the data worse
than none is not returned."""

from __future__ import annotations

import numpy as np
import pytest

from mrideblur.estimators.base import Result
from mrideblur.estimators.mri_common import residuals
from mrideblur.estimators.safeguards import drop_shots, safeguard, shot_residual_energy
from mrideblur.estimators.sense import sense_recon
from mrideblur.io.anatomy import mni_slice
from mrideblur.metrics import psnr
from mrideblur.mri import simulate

N = 64


def _oracle(kspace, case, motion=None):
    """A Result as an estimator would return it, here with the true coils and the given motion."""
    motion = case.truth["motion"] if motion is None else motion
    sens = case.truth["sens"]
    image = sense_recon(kspace, case.shot_index, sens, motion, max_iter=30)
    total, per_shot = residuals(kspace, case.shot_index, sens, motion, image)
    return Result(image=image, motion=np.array(motion), sens=sens,
                  report={"data_misfit": total, "residual_per_shot": per_shot})


@pytest.fixture(scope="module")
def cases():
    """A 16-shot interleaved scan, and the same scan with shot 11 seeing a neighbouring slice
    (through-plane motion: data no in-plane motion can explain)."""
    case = simulate(mni_slice("sagittal", 0.5, N), ncoil=8, nshot=16, ordering="interleaved", seed=2)
    other = simulate(mni_slice("sagittal", 0.56, N), ncoil=8, nshot=16, ordering="interleaved", seed=2)
    bad = case.kspace.copy()
    lines = case.shot_index == 11
    bad[:, lines, :] = other.kspace[:, lines, :]
    return case, bad


def test_drop_shots_renumbers_the_rest_and_keeps_their_motion():
    si = np.array([0, 1, 2, 3, -1, 0, 1, 2, 3])
    motion = np.arange(12.0).reshape(4, 3)
    si2, m2 = drop_shots(si, motion, [1])
    np.testing.assert_array_equal(si2, [0, -1, 1, 2, -1, 0, -1, 1, 2])
    np.testing.assert_array_equal(m2, motion[[0, 2, 3]])


def test_an_inconsistent_shot_is_rejected_and_the_image_improves(cases):
    case, bad = cases
    truth = case.truth["image"]
    energy = shot_residual_energy(bad, case.shot_index, case.truth["sens"], case.truth["motion"],
                                  _oracle(bad, case).image)
    assert int(np.argmax(energy)) == 11 and energy[11] > 5 * np.percentile(energy, 25)
    kept = safeguard(bad, case.shot_index, _oracle(bad, case), "aligned-sense", reject_shots=False)
    fixed = safeguard(bad, case.shot_index, _oracle(bad, case), "aligned-sense")
    assert fixed.report["data_fit"]["rejected_shots"] == [11]
    assert fixed.report["residual_per_shot"][11] is None and fixed.report["data_fit"]["improved"]
    gain = psnr(fixed.image, truth, fit_scale=True) - psnr(kept.image, truth, fit_scale=True)
    assert gain > 2.0, gain
    assert fixed.motion.shape == (16, 3)  # every shot's estimate is still reported


def test_the_estimators_own_resolve_replaces_cg_sense_after_a_rejection(cases):
    """An estimator with its own image model (JSMoCo: the prior) re-solves through ``resolve``:
    it gets the shot map without the rejected shot and the kept shots' motion, and its image and
    uncertainty are what the safeguard returns."""
    case, bad = cases
    calls = []

    def resolve(si, motion, x0):
        calls.append((si.copy(), motion.copy()))
        img = sense_recon(bad, si, case.truth["sens"], motion, max_iter=30, x0=x0)
        return img, np.full(img.shape, 0.5, np.float32)

    fixed = safeguard(bad, case.shot_index, _oracle(bad, case), "jsmoco", resolve=resolve)
    assert fixed.report["data_fit"]["rejected_shots"] == [11]
    assert len(calls) == 1 and not np.any(calls[0][0] == 15) and np.all(calls[0][0][case.shot_index == 11] == -1)
    np.testing.assert_array_equal(calls[0][1], np.delete(case.truth["motion"], 11, axis=0))
    assert np.all(fixed.uncertainty == 0.5)
    cg = safeguard(bad, case.shot_index, _oracle(bad, case), "aligned-sense")
    assert np.abs(np.abs(fixed.image) - np.abs(cg.image)).max() < 1e-3 * np.abs(cg.image).max()


def test_jsmoco_resolve_keeps_the_prior_on_the_kept_shots():
    """JSMoCo's re-solve (the posterior sweep with motion and maps fixed) on a scan missing a
    shot: closer to the truth than CG-SENSE on the same lines (the prior fills what the shot held)."""
    from mrideblur.estimators.jsmoco import JSMoCoOptions, resolve

    case = simulate(mni_slice("axial", 0.55, N), ncoil=8, nshot=8, ordering="interleaved", accel=2, acs=16, seed=5)
    si, motion = drop_shots(case.shot_index, case.truth["motion"], [3])
    cg = sense_recon(case.kspace, si, case.truth["sens"], motion, max_iter=30)
    img, unc = resolve(case.kspace, si, case.truth["sens"], motion, cg, JSMoCoOptions(steps=20))
    truth = case.truth["image"]
    assert img.shape == truth.shape and unc is None
    assert psnr(img, truth, fit_scale=True) > psnr(cg, truth, fit_scale=True) + 1.0


def test_a_clean_scan_loses_no_shot(cases):
    case, _ = cases
    res = safeguard(case.kspace, case.shot_index, _oracle(case.kspace, case), "aligned-sense")
    fit = res.report["data_fit"]
    assert fit["rejected_shots"] == [] and max(fit["shot_energy_vs_floor"]) < 2.0 and fit["improved"]


def test_a_correction_worse_than_none_returns_the_uncorrected_image(cases):
    case, _ = cases
    wrong = np.random.default_rng(0).uniform(-8, 8, case.truth["motion"].shape)
    wrong[0] = 0
    with pytest.warns(RuntimeWarning, match="uncorrected image is returned"):
        res = safeguard(case.kspace, case.shot_index, _oracle(case.kspace, case, wrong), "aligned-sense",
                        reject_shots=False)
    fit = res.report["data_fit"]
    assert fit["improved"] is False and fit["kept_uncorrected"] and fit["corrected"] > fit["uncorrected"]
    assert res.image is res.uncorrected and not np.any(res.motion)
    np.testing.assert_allclose(res.report["rejected_motion"], wrong)
    with pytest.warns(RuntimeWarning, match="likely wrong"):
        raw = safeguard(case.kspace, case.shot_index, _oracle(case.kspace, case, wrong), "aligned-sense",
                        reject_shots=False, keep_uncorrected=False)
    assert raw.image is not raw.uncorrected and np.any(raw.motion)


@pytest.mark.parametrize("ordering, outside", [("interleaved", 0), ("random", 0), ("sequential", 12),
                                               ("centre-out", 12)])
def test_shots_outside_the_centre_by_ordering(ordering, outside):
    """16 shots over 192 lines: sequential and centre-out orderings leave 12 shots without a line
    in the central 48; interleaved and random ones none; 3D linear maps likewise, checkered none."""
    from mrideblur.estimators.safeguards import shots_outside_centre
    from mrideblur.mri import make_shot_index

    assert len(shots_outside_centre(make_shot_index(192, 16, ordering, seed=1))) == outside
    if ordering in ("interleaved", "sequential"):
        si3 = make_shot_index((32, 32), 16, "checkered" if ordering == "interleaved" else "sequential")
        assert (len(shots_outside_centre(si3)) > 4) == (ordering == "sequential")


def test_a_sequential_correction_is_not_vouched_for(cases):
    """The data fit of a sequential scan improves under the true motion, and the report still says
    the fit cannot vouch for it (and warns); an interleaved one is vouched for, silently."""
    import warnings

    case = simulate(mni_slice("sagittal", 0.5, N), ncoil=8, nshot=16, ordering="sequential", seed=2)
    with pytest.warns(RuntimeWarning, match="cannot vouch"):
        res = safeguard(case.kspace, case.shot_index, _oracle(case.kspace, case), "aligned-sense", reject_shots=False)
    fit = res.report["data_fit"]
    assert fit["improved"] and fit["vouched"] is False and len(fit["shots_outside_centre"]) == 12
    good, _ = cases
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = safeguard(good.kspace, good.shot_index, _oracle(good.kspace, good), "aligned-sense", reject_shots=False)
    assert ok.report["data_fit"]["vouched"] is True and ok.report["data_fit"]["shots_outside_centre"] == []


def test_fov_exit_counts_what_the_motion_moves_past_the_edge():
    """A block of the last 8 columns moved 4 px right loses half its energy; moved left, or a
    centred block turned by 90 degrees, none; a full field of view turned loses its corners; a
    volume's block moved past the last slice, half."""
    from mrideblur.estimators.safeguards import fov_exit

    x = np.zeros((64, 64))
    x[20:40, 56:64] = 1.0
    got = fov_exit(x, np.array([[0, 0, 0], [0, 0, 4], [0, 0, -4], [0, 3, 0]]))
    np.testing.assert_allclose(got, [0, 0.5, 0, 0], atol=1e-12)
    centred = np.zeros((64, 64))
    centred[24:40, 28:36] = 1.0
    assert fov_exit(centred, np.array([[90.0, 0, 0], [-30.0, 5, -5]])).max() == 0
    full = np.ones((64, 64))  # a field of view filled to the corners: a rotation turns them out
    assert 0.02 < fov_exit(full, np.array([[10.0, 0, 0]]))[0] < 0.3
    v = np.zeros((16, 32, 32))
    v[12:16, 8:24, 8:24] = 2.0
    np.testing.assert_allclose(fov_exit(v, np.array([[0, 0, 0, 2, 0, 0], [0, 0, 0, -2, 0, 0]])), [0.5, 0])
    with pytest.raises(ValueError, match="fov_exit"):
        fov_exit(x, np.zeros((3, 6)))


def test_motion_out_of_the_field_of_view_is_reported_and_warned(cases):
    """The same scan, the image shifted to touch the edge and a motion that pushes it over: the
    report carries each shot's share and a warning names the worst shot; the clean case none."""
    import warnings

    case, _ = cases
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clean = safeguard(case.kspace, case.shot_index, _oracle(case.kspace, case), "aligned-sense",
                          reject_shots=False)
    assert max(clean.report["data_fit"]["fov_exit"]) == 0
    res = _oracle(case.kspace, case)
    res.image = np.roll(res.image, 24, axis=-1)  # the head at the right edge ...
    motion = np.zeros_like(res.motion)
    motion[5] = (0, 0, 6)  # ... and shot 5 moving it 6 px further
    res.motion = motion
    with pytest.warns(RuntimeWarning, match=r"out of the field of view \(shot 5\)"):
        out = safeguard(case.kspace, case.shot_index, res, "aligned-sense", reject_shots=False, keep_uncorrected=False)
    exits = out.report["data_fit"]["fov_exit"]
    assert exits[5] > 0.005 and sum(e > 0 for e in exits) == 1


def test_the_shells_line_names_the_slices_whose_motion_leaves_the_field_of_view():
    """data_fit_warning (the CLI / batch / napari line): one image names the worst shot; a stack
    names its slices over the threshold, and says nothing when none is."""
    from mrideblur.shell import data_fit_warning

    one = {"data_fit": {"improved": True, "vouched": True, "fov_exit": [0.0, 0.012, 0.003]}}
    assert "1.2%" in data_fit_warning(one) and "shot 1" in data_fit_warning(one)
    stack = {"data_fit": {"improved": True},
             "slices": [{"data_fit": {"improved": True, "fov_exit": [0.0, 0.002]}},
                        {"data_fit": {"improved": True, "fov_exit": [0.0, 0.031]}},
                        {"data_fit": {"improved": True, "fov_exit": [0.0, 0.0]}}]}
    line = data_fit_warning(stack, slice_ids=[10, 11, 12])
    assert "1 of 3 slices" in line and "slice 11 3.1%" in line and "slice 10" not in line
    stack["slices"][1]["data_fit"]["fov_exit"] = [0.0, 0.001]
    assert data_fit_warning(stack) is None
