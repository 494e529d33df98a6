"""mrideblur.prior: the score network, training (loss, exact resume), the shipped weights
(denoising of held-out slices), samplers (data consistency, seeding) and the physics helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrideblur.io.anatomy import mni_slice, shepp_logan
from mrideblur.metrics import psnr
from mrideblur.physics.operators import Convolution, MaskedFourier
from mrideblur.prior import (Denoiser, ScorePrior, TrainConfig, UNetConfig, posterior_sample, sample_fast,
                             sample_pc)
from mrideblur.prior.data import (HELD_OUT, TrainingData, augment, builtin_base_slices, is_held_out,
                                  mni_candidates, smooth_phase)
from mrideblur.physics.operators import cg_normal
from mrideblur.prior.train import load_checkpoint, train

TINY = UNetConfig(channels=(8, 16), emb_dim=16, groups=4).to_dict()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def prior():
    return ScorePrior.default()


def _held_out_slice(plane: str, size: int, seed: int) -> np.ndarray:
    """A held-out MNI slice (middle of the HELD_OUT band) with a random smooth and global phase."""
    pos = sum(HELD_OUT) / 2
    m = mni_slice(plane, pos, size)
    rng = np.random.default_rng(seed)
    z = m / m.max() * np.exp(1j * (smooth_phase(m.shape, rng) + rng.uniform(0, 2 * np.pi)))
    return z.astype(np.complex64)


def _tiny_slices(n: int = 6, size: int = 24) -> list[np.ndarray]:
    yy, xx = np.mgrid[:size, :size] - size / 2
    out = []
    for k in range(n):
        r = size * (0.25 + 0.03 * k)
        out.append(((yy**2 / 1.3 + xx**2) < r**2).astype(np.float32) * (0.5 + 0.5 * (xx > k - 3)))
    return out


# ------------------------------------------------------------------------------ network


def test_unet_fully_convolutional_any_size():
    torch.manual_seed(0)
    d = Denoiser(UNetConfig(channels=(8, 16, 16), emb_dim=16, groups=4))
    for shape in [(2, 2, 32, 32), (1, 2, 48, 64), (1, 2, 37, 50)]:  # the last is padded inside
        x = torch.randn(shape)
        y = d(x, torch.full((shape[0],), 0.1))
        assert y.shape == x.shape and torch.all(torch.isfinite(y))
    # a zero-initialised output layer: at init D(x, sigma) = c_skip(sigma) x exactly
    sd = d.config.sigma_data
    x = torch.randn(1, 2, 32, 32)
    torch.testing.assert_close(d(x, 0.5), x * sd**2 / (0.25 + sd**2))


# ------------------------------------------------------------------------------ data


def test_held_out_split_and_training_stream():
    n = mni_candidates()
    held = [(p, i) for p, i in n if is_held_out(p, i)]
    assert 0 < len(held) < len(n) / 5
    train_sl = builtin_base_slices(32, (1.0,), split="train", step=12)
    test_sl = builtin_base_slices(32, (1.0,), split="test", step=12)
    assert len(train_sl) + len(test_sl) == len(mni_candidates(step=12)) and len(test_sl) > 0
    td = TrainingData(train_sl + [np.ones((20, 20), np.complex64)], crop=16, crops_per_image=2)
    a = td.batch(5, np.random.default_rng(3))
    b = td.batch(5, np.random.default_rng(3))
    assert a.shape == (5, 2, 16, 16) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.abs(a[:, 1]).max() > 0.01  # phase made the images complex
    z = augment(train_sl[0], np.random.default_rng(0))
    assert z.dtype == np.complex64 and np.abs(z).max() == pytest.approx(1.0, rel=1e-6)


# ------------------------------------------------------------------------------ training


def _tiny_config(**kw) -> TrainConfig:
    base = dict(data="tiny", crop=16, crops_per_image=2, batch=8, steps=6, lr=2e-3, warmup=1,
                checkpoint_every=100, seed=1, unet=TINY)
    base.update(kw)
    return TrainConfig(**base)


def test_training_loss_falls(tmp_path):
    """The running loss falls, and on a fixed held-back batch at fixed noise levels the trained
    EMA denoiser beats the untrained one (which returns c_skip x)."""
    from mrideblur.prior.train import dsm_loss

    losses = []
    cfg = _tiny_config(steps=80, lr=3e-3, ema_decay=0.9)
    slices = _tiny_slices()
    snap = train(cfg, tmp_path / "run", progress=False, data=TrainingData(slices, crop=16),
                 callback=lambda s, l: losses.append(l))
    assert len(losses) == 80 and np.mean(losses[-20:]) < 0.85 * np.mean(losses[:10])
    x0 = torch.from_numpy(TrainingData(slices, crop=16).batch(16, np.random.default_rng(99)))
    sigma = torch.tensor([0.02, 0.05, 0.1, 0.2] * 4)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(cfg.seed)
    net = Denoiser(UNetConfig.from_dict(cfg.unet))
    with torch.no_grad():
        before = float(dsm_loss(net, x0, sigma, noise))
        net.load_state_dict(snap["ema"])
        after = float(dsm_loss(net, x0, sigma, noise))
    assert after < 0.75 * before, (before, after)


def test_resume_continues_exactly(tmp_path):
    data = lambda: TrainingData(_tiny_slices(), crop=16)  # noqa: E731
    full = train(_tiny_config(), tmp_path / "a", progress=False, data=data())
    part = train(_tiny_config(), tmp_path / "b", progress=False, data=data(), stop_after=3)
    assert part["step"] == 3 and load_checkpoint(tmp_path / "b" / "checkpoint.pt")["step"] == 3
    resumed = train(_tiny_config(), tmp_path / "b", resume=True, progress=False, data=data())
    assert resumed["step"] == full["step"] == 6
    for key in ("model", "ema"):
        for k, v in full[key].items():
            torch.testing.assert_close(resumed[key][k], v, rtol=0, atol=0, msg=f"{key}.{k}")
    assert [h["step"] for h in resumed["history"]] == [3, 6]


def test_cli_train_resume_export_and_load(tmp_path):
    from mrideblur.cli import main

    np.savez(tmp_path / "sl.npz", images=np.stack(_tiny_slices(4, 24)).astype(np.complex64))
    args = ["train-prior", "--data", str(tmp_path / "sl.npz"), "--crop", "16", "--batch", "4",
            "--channels", "8", "16", "--checkpoint-every", "2", "--out", str(tmp_path / "run"), "--quiet"]
    assert main(args + ["--steps", "2"]) == 0
    assert main(args + ["--steps", "2"]) == 2  # exists, no --resume
    assert main(args + ["--steps", "4", "--resume", "--export", str(tmp_path / "w.pt")]) == 0
    ck = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert ck["step"] == 4 and (tmp_path / "run" / "loss.csv").read_text().count("\n") == 3
    p = ScorePrior.load(tmp_path / "w.pt")
    assert p.info["steps"] == 4 and (tmp_path / "w.json").is_file()
    x = np.ones((24, 24), np.complex64)
    np.testing.assert_allclose(p.denoise(x, 0.1), ScorePrior.load(tmp_path / "run").denoise(x, 0.1), atol=2e-3)


# ------------------------------------------------------------------------------ shipped prior


def test_shipped_prior_loads_and_converts_types(prior):
    assert prior.info.get("steps", 0) > 0 and prior.sde.sigma_max >= 1
    x = _held_out_slice("axial", 64, 0)
    d_np = prior.denoise(x, 0.1)
    d_t = prior.denoise(torch.from_numpy(x), torch.tensor(0.1))
    assert isinstance(d_np, np.ndarray) and d_np.dtype == np.complex64 and d_np.shape == x.shape
    assert torch.is_tensor(d_t)
    np.testing.assert_allclose(d_t.numpy(), d_np, atol=1e-5)
    s = prior.score(np.stack([x, x]), np.array([0.1, 0.2]))
    assert s.shape == (2, 64, 64)
    np.testing.assert_allclose(s[0], (d_np - x) / 0.01, rtol=1e-4, atol=1e-2)
    assert np.isrealobj(prior.denoise(np.abs(x), 0.1))
    with pytest.raises(ValueError, match="sigma"):
        prior.denoise(x, 0.0)


@pytest.mark.parametrize("name", ["axial", "coronal", "sagittal", "shepp"])
def test_shipped_prior_denoises_held_out_slices(prior, name):
    """Slices of the held-out band and Shepp-Logan, 128 px, complex with a random phase."""
    if name == "shepp":
        rng = np.random.default_rng(5)
        m = shepp_logan(128)
        x = (m / m.max() * np.exp(1j * smooth_phase(m.shape, rng))).astype(np.complex64)
    else:
        x = _held_out_slice(name, 128, 1)
    gains = {}
    for sigma in (0.05, 0.1):
        rng = np.random.default_rng(0)
        noisy = x + sigma * (rng.standard_normal(x.shape) + 1j * rng.standard_normal(x.shape))
        den = prior.denoise(noisy.astype(np.complex64), sigma)
        gains[sigma] = psnr(den, x, fit_scale=True) - psnr(noisy, x, fit_scale=True)
    floor = 4.0 if name == "shepp" else 8.0  # piecewise-constant Shepp-Logan is far from brains
    assert gains[0.1] > floor and gains[0.05] > floor - 1, gains


# ------------------------------------------------------------------------------ samplers


def _mask(n: int, frac: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros((n, n), bool)
    mask[rng.random(n) < frac] = True  # random phase-encode lines (rows)
    mask[n // 2 - n // 16: n // 2 + n // 16] = True  # fully sampled centre
    return mask


def test_posterior_sampler_data_consistent_and_better_than_zero_filled(prior):
    x = _held_out_slice("axial", 96, 2)
    noise = 0.01
    phys = MaskedFourier(_mask(96, 0.25, 0), noise_sigma=noise)
    m = int(phys.mask.sum())
    rng = np.random.default_rng(3)
    y = phys.A(torch.from_numpy(x)[None])[0].numpy()
    y = (y + noise * phys.mask.numpy() * (rng.standard_normal(y.shape) + 1j * rng.standard_normal(y.shape))).astype(np.complex64)
    zf = phys.A_adjoint(torch.from_numpy(y)[None])[0].numpy()
    rec, info = posterior_sample(prior, phys, y, steps=20, seed=0, return_info=True)
    expected = noise * np.sqrt(2 * m)  # |n| of the measured noise
    assert 0.3 * expected < info["residual"][0] < 1.5 * expected, (info["residual"], expected)
    p_rec, p_zf = psnr(rec, x, fit_scale=True), psnr(zf, x, fit_scale=True)
    assert p_rec > p_zf + 2, (p_rec, p_zf)
    # same seed, same result; another seed, another sample
    again = posterior_sample(prior, phys, y, steps=20, seed=0)
    np.testing.assert_array_equal(again, rec)
    other = posterior_sample(prior, phys, y, steps=20, seed=1)
    assert not np.array_equal(other, rec)


def test_pc_posterior_and_deblurring(prior):
    """The annealed-Langevin (pc) posterior on k-space, and the same prior deblurring an image."""
    x = _held_out_slice("coronal", 64, 3)
    phys = MaskedFourier(_mask(64, 0.3, 1), noise_sigma=0.01)
    y = phys.A(torch.from_numpy(x)[None])[0]
    zf = phys.A_adjoint(y[None])[0].numpy()
    rec = posterior_sample(prior, phys, y, steps=30, method="pc", seed=0)
    assert torch.is_tensor(rec) and rec.shape == (64, 64)
    assert psnr(rec.numpy(), x, fit_scale=True) > psnr(zf, x, fit_scale=True) + 1
    yy, xx = np.mgrid[-3:4, -3:4]
    k = np.exp(-(yy**2 + xx**2) / 4.0)
    blur = Convolution(k / k.sum(), (64, 64), noise_sigma=0.01)
    yb = blur.A(torch.from_numpy(x)[None])[0]
    yb = yb + 0.01 * torch.view_as_complex(torch.randn(64, 64, 2, generator=torch.Generator().manual_seed(0)))
    deb = posterior_sample(prior, blur, yb, steps=15, seed=0)
    assert psnr(deb.numpy(), x, fit_scale=True) > psnr(yb.numpy(), x, fit_scale=True) + 1


def test_posterior_sampler_follows_physics_changed_by_the_callback(prior):
    """A callback that replaces the physics' parameters (as JSMoCo's motion and coil steps do)
    must change the data term too: starting from a wrong blur and switching to the true one at
    the first step ends where the true blur from the start ends, and far from the wrong blur."""
    x = _held_out_slice("axial", 64, 4)
    yy, xx = np.mgrid[-3:4, -3:4]
    k_true = np.exp(-(yy**2 + xx**2) / 4.0)
    k_wrong = np.roll(k_true, 2, axis=1)
    true, wrong = Convolution(k_true / k_true.sum(), (64, 64), 0.01), Convolution(k_wrong / k_true.sum(), (64, 64), 0.01)
    y = true.A(torch.from_numpy(x)[None])[0]
    y = y + 0.01 * torch.view_as_complex(torch.randn(64, 64, 2, generator=torch.Generator().manual_seed(1)))
    phys = Convolution(k_wrong / k_true.sum(), (64, 64), 0.01)

    def switch(i, sigma, x0):
        phys.otf = true.otf

    kw = dict(steps=12, seed=0, sigma_start=0.3, x_init=wrong.A_adjoint(y[None])[0])
    switched = posterior_sample(prior, phys, y, callback=switch, **kw).numpy()
    reference = posterior_sample(prior, true, y, **kw).numpy()
    stale = posterior_sample(prior, wrong, y, **kw).numpy()
    assert psnr(switched, x, fit_scale=True) > psnr(stale, x, fit_scale=True) + 3
    assert abs(psnr(switched, x, fit_scale=True) - psnr(reference, x, fit_scale=True)) < 1.0


def test_callback_gets_the_consistent_or_the_denoised_estimate(prior):
    """``callback_image="consistent"`` hands the callback the estimate after the data-consistency
    solve, ``"denoised"`` the prior's estimate before it: the first fits the measured samples
    closer, the chains themselves are the same (the callback only looks)."""
    x = _held_out_slice("axial", 64, 5)
    phys = MaskedFourier(_mask(64, 0.3, 2), noise_sigma=0.01)
    y = phys.A(torch.from_numpy(x)[None])[0]
    seen: dict = {"consistent": [], "denoised": []}
    out = {}
    for which in seen:
        out[which] = posterior_sample(prior, phys, y, steps=6, seed=0, sigma_start=0.3, callback_image=which,
                                      callback=lambda i, s, x0, which=which: seen[which].append(x0.clone())).numpy()
    np.testing.assert_array_equal(out["consistent"], out["denoised"])
    for a, b in zip(seen["consistent"][:-1], seen["denoised"][:-1]):
        fit = [float((phys.A(v) - y[None]).abs().norm()) for v in (a, b)]
        assert fit[0] < 0.5 * fit[1], fit
    with pytest.raises(ValueError, match="callback_image"):
        posterior_sample(prior, phys, y, steps=2, callback_image="clean")


def test_unconditional_samplers_seeded(prior):
    a = sample_fast(prior, (2, 32, 32), steps=6, seed=4)
    b = sample_fast(prior, (2, 32, 32), steps=6, seed=4)
    c = sample_fast(prior, (2, 32, 32), steps=6, seed=5, eta=1.0)
    assert a.shape == (2, 32, 32) and a.dtype == np.complex64 and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    p = sample_pc(prior, (32, 32), steps=5, seed=4, output="torch")
    assert p.shape == (1, 32, 32) and torch.equal(p, sample_pc(prior, (32, 32), steps=5, seed=4, output="torch"))
    assert np.abs(a).max() < 3  # stays on the prior's scale


# ------------------------------------------------------------------------------ physics


@pytest.mark.parametrize("make", [lambda: MaskedFourier(_mask(32, 0.3, 2)),
                                  lambda: Convolution(np.random.default_rng(0).dirichlet(np.ones(35)).reshape(5, 7),
                                                      (32, 32))])
def test_physics_adjoint_and_cg(make):
    phys = make()
    g = torch.Generator().manual_seed(0)
    x = torch.view_as_complex(torch.randn(2, 32, 32, 2, generator=g, dtype=torch.float64)).to(torch.complex64)
    y = torch.view_as_complex(torch.randn(2, 32, 32, 2, generator=g, dtype=torch.float64)).to(torch.complex64)
    lhs = torch.sum(torch.conj(phys.A(x)) * y)
    rhs = torch.sum(torch.conj(x) * phys.A_adjoint(y))
    assert abs(complex(lhs - rhs)) < 1e-4 * abs(complex(lhs))
    b = phys.A_adjoint(phys.A(x)) + 0.5 * x
    sol = cg_normal(phys, b, 0.5, None, iters=60)
    torch.testing.assert_close(sol, x, rtol=1e-3, atol=1e-3)
