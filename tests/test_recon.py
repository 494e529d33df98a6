"""Known-motion SENSE (the oracle) and coil calibration, scored as docs/conventions.md says."""

from __future__ import annotations

import numpy as np
import pytest

from mrideblur.io.anatomy import mni_slice
from mrideblur.metrics import psnr
from mrideblur.mri import PolynomialCoilModel, estimate_sens, normalize_sens, sense_recon, simulate, simulate_sens


def _case(size=96, nshot=8, ncoil=8, motion="random", seed=0, **kw):
    return simulate(mni_slice("axial", 0.55, size), ncoil=ncoil, nshot=nshot, motion=motion, noise=0.01, seed=seed, **kw)


def test_oracle_beats_uncorrected_by_far():
    case = _case()
    oracle = sense_recon(case.kspace, case.shot_index, case.truth["sens"], case.truth["motion"], max_iter=25)
    none = sense_recon(case.kspace, case.shot_index, case.truth["sens"], None, max_iter=25)
    p_or = psnr(oracle, case.truth["image"], fit_scale=True)
    p_no = psnr(none, case.truth["image"], fit_scale=True)
    assert p_or > 35
    assert p_no < 28
    assert p_or > p_no + 10


def test_stack_progress_and_cancel():
    a, b = _case(size=48, seed=1), _case(size=48, seed=2)
    b.shot_index = a.shot_index
    k = np.stack([a.kspace, b.kspace])
    sens = np.stack([a.truth["sens"], b.truth["sens"]])
    calls = []
    out = sense_recon(k, a.shot_index, sens, None, max_iter=5, progress=lambda s, t, m: calls.append((s, t)))
    assert out.shape == (2, 48, 48) and out.dtype == np.complex64
    assert calls[-1] == (10, 10)
    stopped = sense_recon(k[0], a.shot_index, sens[0], None, max_iter=50, cancel=lambda: True)
    assert stopped.shape == (48, 48)


def test_warm_start_continues_cg():
    """A warm start from 10 iterations, run 10 more, equals 20 cold iterations' residual level,
    and is far better than 10 cold ones; a wrong-shaped start is refused."""
    case = _case(size=64)
    args = (case.kspace, case.shot_index, case.truth["sens"], case.truth["motion"])
    x10 = sense_recon(*args, max_iter=10)
    x20 = sense_recon(*args, max_iter=20)
    warm = sense_recon(*args, max_iter=10, x0=x10)
    from mrideblur.mri import MultiShotSense

    A = MultiShotSense(case.truth["sens"], case.shot_index, case.truth["motion"])
    res = lambda x: np.linalg.norm(A.N(x) - A.H(case.kspace))  # noqa: E731
    assert res(warm) < 0.5 * res(x10)
    assert res(warm) < 3 * res(x20)
    with pytest.raises(ValueError, match="x0"):
        sense_recon(*args, max_iter=5, x0=np.zeros((8, 8), np.complex64))


def test_tikhonov_shrinks():
    case = _case(size=48)
    x0 = sense_recon(case.kspace, case.shot_index, case.truth["sens"], max_iter=10)
    x1 = sense_recon(case.kspace, case.shot_index, case.truth["sens"], lam=1.0, max_iter=10)
    assert np.linalg.norm(x1) < 0.7 * np.linalg.norm(x0)


@pytest.mark.parametrize(
    "args, match",
    [
        (dict(kspace=np.zeros((8, 8))), "kspace"),
        (dict(kspace=np.full((2, 8, 8), np.nan, np.complex64)), "kspace.*NaN"),
        (dict(sens=np.ones((3, 8, 8), np.complex64)), "sens"),
        (dict(shot_index=np.zeros(7, int)), "shot_index"),
        (dict(motion=np.zeros((5, 3))), "motion"),
        (dict(lam=-1.0), "lam"),
    ],
)
def test_bad_input(args, match):
    kw = dict(kspace=np.ones((2, 8, 8), np.complex64), shot_index=np.arange(8) % 2, sens=np.ones((2, 8, 8), np.complex64))
    kw.update(args)
    with pytest.raises(ValueError, match=match):
        sense_recon(**kw)


def test_espirit_and_jsense_maps_support_sense():
    case = _case(size=48, ncoil=6, motion="none", seed=3)
    for method in ("espirit", "jsense"):
        sens = estimate_sens(case.kspace, method=method, calib_width=20)
        assert sens.shape == case.kspace.shape
        x = sense_recon(case.kspace, case.shot_index, sens, max_iter=20)
        assert psnr(x, case.truth["image"], fit_scale=True) > 30, method


def test_polynomial_coil_model_fits_smooth_maps():
    sens = simulate_sens((64, 64), 8, "birdcage")
    model = PolynomialCoilModel((64, 64), degree=6)
    coef = model.fit(sens)
    assert coef.shape == (8, model.nbasis) and model.nbasis == 28
    assert np.linalg.norm(model.maps(coef) - sens) / np.linalg.norm(sens) < 0.05
    import torch

    mt = model.maps_torch(torch.from_numpy(coef)).numpy()
    np.testing.assert_allclose(mt, model.maps(coef), rtol=1e-10, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("motion, seed", [("random", 0), ("step", 1), ("drift", 2)])
def test_oracle_on_the_reference_case(motion, seed):
    """192x192, 8 coils, 16 interleaved shots, motion up to 3 deg / 3 px, 1% noise:
    the oracle reaches >= 38 dB and the uncorrected SENSE stays <= 28 dB."""
    case = _case(size=192, nshot=16, motion=motion, seed=seed)
    oracle = sense_recon(case.kspace, case.shot_index, case.truth["sens"], case.truth["motion"], max_iter=30)
    none = sense_recon(case.kspace, case.shot_index, case.truth["sens"], None, max_iter=30)
    assert psnr(oracle, case.truth["image"], fit_scale=True) >= 38
    assert psnr(none, case.truth["image"], fit_scale=True) <= 28


@pytest.mark.parametrize("shape", [(32, 32), (16, 16, 16)])
def test_exact_coil_fit_recovers_polynomial_maps_under_motion(shape):
    """Noise-free data of polynomial maps fixed in the scanner frame and a moving object: the
    exact coil fit (2D: dense design matrix; 3D: model-built chunks and normal equations)
    returns the coefficients that made them."""
    from mrideblur.estimators.aligned_sense import fit_coil_coeffs
    from mrideblur.mri import MultiShotSense, make_shot_index

    rng = np.random.default_rng(0)
    nd = len(shape)
    model = PolynomialCoilModel(shape, degree=3)
    a = rng.normal(size=(4, model.nbasis)) + 1j * rng.normal(size=(4, model.nbasis))
    x = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)
    si = make_shot_index(shape[:-1] if nd == 3 else shape[0], 4, "interleaved")
    motion = rng.uniform(-2, 2, (4, 3 * (nd - 1)))
    motion[0] = 0
    y = MultiShotSense(model.maps(a).astype(np.complex64), si, motion)(x)
    got = fit_coil_coeffs(y, si, x, motion, model)
    assert np.linalg.norm(got - a) / np.linalg.norm(a) < 1e-4


def test_coil_carriers_find_each_coils_winding_phase():
    """Maps ``exp(2 pi i k_c . r / N) s_c(r)`` with smooth ``s_c``: :func:`coil_carriers` returns
    ``k_c`` (ky, kx) per coil, and 0 on an axis where the winding is under ``min_lines``."""
    from mrideblur.mri import coil_carriers

    n = 64
    yy, xx = np.meshgrid(np.arange(n) - n // 2, np.arange(n) - n // 2, indexing="ij")
    ks = [(3, -2), (0, 5), (-4, 1), (0, 0)]
    maps = []
    for c, (ky, kx) in enumerate(ks):
        blob = np.exp(-((yy - 10 * np.cos(c)) ** 2 + (xx - 10 * np.sin(c)) ** 2) / (2 * 18.0**2))
        maps.append(blob * np.exp(2j * np.pi * (ky * yy + kx * xx) / n + 1j * c))
    maps = normalize_sens(np.array(maps))
    found = coil_carriers(maps)
    assert found.tolist() == [[3, -2], [0, 5], [-4, 0], [0, 0]]
    assert coil_carriers(maps, min_lines=1).tolist()[2] == [-4, 1]
    assert not np.any(coil_carriers(simulate_sens((n, n), 8)))  # birdcage maps: no carrier
    # the rule both slice estimators use: one-line carriers only in an array that winds
    from mrideblur.physics.coils import winding_carriers

    assert winding_carriers(maps).tolist() == coil_carriers(maps, min_lines=1).tolist()
    one_line = normalize_sens(np.array([m * np.exp(-2j * np.pi * (k[0] * yy + k[1] * xx) / n)
                                        * np.exp(2j * np.pi * np.sign(k[0] + 0.5) * yy / n)
                                        for m, k in zip(maps, ks)]))
    assert not np.any(coil_carriers(one_line)) and winding_carriers(one_line) is None
    assert winding_carriers(simulate_sens((n, n), 8)) is None
    assert winding_carriers(np.ones((2, 8, 8, 8), complex)) is None  # volumes take no carriers
