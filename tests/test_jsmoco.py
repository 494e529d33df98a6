"""JSMoCo: the MRI physics wrapper of the sampler, the noise estimate, and end-to-end numbers
against ground truth on small simulated slices (the shipped prior; held-out anatomy planes)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mrideblur.io.anatomy import mni_slice
from mrideblur.metrics import psnr
from mrideblur.mri import simulate
from mrideblur.mri import correct
from mrideblur.estimators.jsmoco import JSMoCoOptions, estimate_noise_sigma, jsmoco
from mrideblur.physics.multishot_torch import MotionSensePhysics
from mrideblur.prior import ScorePrior


@pytest.fixture(scope="module")
def small_case():
    return simulate(mni_slice("coronal", 0.5, 64), ncoil=4, nshot=8, ordering="interleaved", accel=2, acs=16,
                    motion="random", max_rot=2.0, max_trans=2.0, noise=0.02, seed=3)


def test_physics_is_the_adjoint_pair_of_the_model(small_case):
    case = small_case
    rng = np.random.default_rng(0)
    phys = MotionSensePhysics(case.shot_index, case.truth["sens"], case.truth["motion"])
    x = torch.as_tensor(rng.normal(size=(2, 64, 64)) + 1j * rng.normal(size=(2, 64, 64))).to(torch.complex64)
    y = torch.as_tensor(rng.normal(size=(2,) + case.kspace.shape) + 0j).to(torch.complex64)
    y = y * torch.as_tensor((case.shot_index >= 0)[:, None])
    lhs = torch.vdot(phys.A(x).flatten(), y.flatten())
    rhs = torch.vdot(x.flatten(), phys.A_adjoint(y).flatten())
    assert abs(complex(lhs) - complex(rhs)) < 1e-4 * abs(complex(lhs))


def test_noise_estimate_from_the_residual(small_case):
    case = small_case
    sigma = case.attrs["noise_sigma"] / np.sqrt(2)  # per real channel
    rng = np.random.default_rng(1)
    acquired = (case.shot_index >= 0)[:, None]
    noise = (rng.normal(0, sigma, case.kspace.shape) + 1j * rng.normal(0, sigma, case.kspace.shape)) * acquired
    # the residual of a least-squares fit keeps a (1 - p/m) share of the noise energy
    m = acquired.sum() * 64 * 4
    keep = 1 - 64 * 64 / m
    est = estimate_noise_sigma(case.kspace, case.shot_index, noise * np.sqrt(keep))
    assert est == pytest.approx(sigma, rel=0.05)


@pytest.fixture(scope="module")
def runs(small_case):
    case = small_case
    kw = dict(coils="joint", max_iter=40, seed=0)
    aligned = correct(case.kspace, case.shot_index, "aligned-sense", **kw)
    js = correct(case.kspace, case.shot_index, "jsmoco", nsamples=2, **kw)
    return aligned, js


def _rmse(motion, truth):
    e = motion - truth
    return np.sqrt(np.mean(e[:, 0] ** 2)), np.sqrt(np.mean(e[:, 1:] ** 2))


def test_jsmoco_beats_aligned_sense_on_an_accelerated_case(small_case, runs):
    aligned, js = runs
    truth = small_case.truth["image"]
    p_al = psnr(aligned.image, truth, fit_scale=True)
    p_js = psnr(js.image, truth, fit_scale=True)
    assert p_js > p_al + 1.0, (p_js, p_al)
    rot_al, tr_al = _rmse(aligned.motion, small_case.truth["motion"])
    rot_js, tr_js = _rmse(js.motion, small_case.truth["motion"])
    assert rot_js < rot_al + 0.05 and tr_js < tr_al + 0.05, (rot_js, rot_al, tr_js, tr_al)


def test_jsmoco_uncertainty_and_report(small_case, runs):
    _, js = runs
    assert js.uncertainty is not None and js.uncertainty.shape == (64, 64)
    assert np.all(js.uncertainty >= 0) and js.uncertainty.max() > 0
    rep = js.report
    assert rep["method"] == "jsmoco" and rep["parameters"]["nsamples"] == 2
    assert rep["history"]["jsmoco"]["coil_updates"] >= 1
    assert js.motion[0].tolist() == [0.0, 0.0, 0.0]


def test_same_seed_same_result(small_case, runs):
    aligned, _ = runs
    case = small_case
    opts = JSMoCoOptions(steps=6, nsamples=2)
    prior = ScorePrior.default()
    a, b, c = (jsmoco(case.kspace, case.shot_index, aligned.sens, aligned.motion, aligned.image, prior, opts, seed=s)
               for s in (5, 5, 6))
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["motion"], b["motion"])
    assert not np.array_equal(a["image"], c["image"])


def test_bad_jsmoco_options(small_case):
    with pytest.raises(ValueError, match="sampler"):
        correct(small_case.kspace, small_case.shot_index, "jsmoco", sampler="ddpm")
    with pytest.raises(ValueError, match="nsamples"):
        correct(small_case.kspace, small_case.shot_index, "jsmoco", nsamples=0)
    with pytest.raises(ValueError, match="motion_image"):
        JSMoCoOptions(motion_image="clean").validate()


def test_cli_jsmoco_writes_uncertainty(tmp_path, small_case):
    import nibabel as nib

    from mrideblur.cli import main
    from mrideblur.io.case import write_case

    src = tmp_path / "case.h5"
    write_case(src, small_case)
    out = tmp_path / "out"
    code = main(["correct", str(src), "--method", "jsmoco", "--nsamples", "2", "--max-iter", "10", "--quiet",
                 "--out", str(out)])
    assert code == 0
    for name in ("recon.h5", "image.nii.gz", "uncertainty.nii.gz", "motion.csv", "report.json", "report.png"):
        assert (out / name).is_file(), name
    cal = json.loads((out / "report.json").read_text())["uncertainty_calibration"]  # the case has a truth
    assert cal["ratio"] > 0 and 0 < cal["cover2"] <= 1
    unc = nib.load(out / "uncertainty.nii.gz")
    np.testing.assert_allclose(unc.affine, nib.load(out / "image.nii.gz").affine)
    assert unc.shape == (64, 64) and float(np.asarray(unc.dataobj).max()) > 0


def test_motion_step_moves_from_a_nearly_right_start(small_case):
    """JSMoCo's motion step refines motion that is already close (its gradient is tiny there:
    the cost is normalised by ||y||^2) — with the true image it must cut the error."""
    from mrideblur.estimators.jsmoco import _motion_step
    from mrideblur.physics.motion import rigid2d

    case = small_case
    tm = case.truth["motion"]
    start = tm + np.random.default_rng(2).normal(0, 0.003, tm.shape)
    start[0] = 0
    # the truth in the shot-0 frame on this grid, noise-free data of the same model
    phys = MotionSensePhysics(case.shot_index, case.truth["sens"], tm)
    x = torch.as_tensor(rigid2d(case.truth["image"], np.zeros(3))).to(torch.complex64)
    y = phys.model(x, phys.theta, phys.sens).detach()
    phys.update_parameters(theta=start)
    _motion_step(phys, y, x, iters=20)
    before = np.sqrt(np.mean((start - tm) ** 2))
    after = np.sqrt(np.mean((phys.theta.double().numpy() - tm) ** 2))
    assert after < 0.3 * before, (before, after)


def test_uncertainty_is_the_chains_std_with_pooled_variance(small_case):
    """``std_pool=0``: the per-pixel std of the chains' magnitudes; ``std_pool=s``: the square
    root of their variance smoothed by a Gaussian of ``s`` pixels (same seed, same chains);
    ``std_scale`` multiplies either."""
    from scipy import ndimage

    case = small_case
    prior = ScorePrior.default()
    from mrideblur.mri import sense_recon

    x0 = sense_recon(case.kspace, case.shot_index, case.truth["sens"], case.truth["motion"], max_iter=10)
    kw = dict(seed=4, estimate_coils=False)
    base = dict(nsamples=3, steps=4, motion_every=0, coil_every=0)
    raw = jsmoco(case.kspace, case.shot_index, case.truth["sens"], case.truth["motion"], x0, prior,
                 JSMoCoOptions(std_pool=0, std_scale=1.0, **base), **kw)
    pooled = jsmoco(case.kspace, case.shot_index, case.truth["sens"], case.truth["motion"], x0, prior,
                    JSMoCoOptions(std_pool=1.5, std_scale=2.5, **base), **kw)
    np.testing.assert_allclose(raw["samples"], pooled["samples"], atol=1e-6)
    var = np.abs(raw["samples"]).astype(np.float64).var(0, ddof=1)
    np.testing.assert_allclose(raw["uncertainty"], np.sqrt(var), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(pooled["uncertainty"],
                               2.5 * np.sqrt(ndimage.gaussian_filter(var, 1.5, mode="nearest")), rtol=1e-4, atol=1e-7)
    assert pooled["uncertainty"].std() / 2.5 < raw["uncertainty"].std()
    with pytest.raises(ValueError, match="std_scale"):
        JSMoCoOptions(std_scale=0.0).validate()
