"""The learned deblurring pieces: training pairs, the scale-recurrent network, the shared
training loop (exact resume), weights export and loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import signal

from mrideblur.learn.blur_data import BENCHMARK_PHOTOS, TRAIN_PHOTOS, BlurPairs, training_photos
from mrideblur.learn.srn import SRN, SRNConfig, deblur_image, srn_loss
from mrideblur.learn.train_deblur import TrainDeblurConfig, export_deblur_weights, load_deblur_network, train

TINY = SRNConfig(channels=(4, 6, 8), blocks=1, nscale=2)


@pytest.fixture(scope="module")
def pairs() -> BlurPairs:
    rng = np.random.default_rng(0)
    photos = [rng.uniform(size=(90, 110)).astype(np.float32), rng.uniform(size=(80, 80)).astype(np.float32)]
    return BlurPairs(crop=32, kernel_sizes=(5, 7), noise_range=(0.0, 0.0), bank_size=8, photos=photos)


def test_pairs_are_a_valid_blur_of_the_aligned_sharp_crop(pairs):
    rng = np.random.default_rng(1)
    for _ in range(5):
        blurred, sharp, k = pairs.pair(rng)
        assert blurred.shape == sharp.shape == (32, 32)
        h = k.shape[0] // 2
        same = signal.fftconvolve(sharp.astype(np.float64), k, mode="same")
        np.testing.assert_allclose(blurred[h:-h, h:-h], same[h:-h, h:-h], atol=1e-5)  # aligned, no shift
    b, s = pairs.batch(3, np.random.default_rng(2))
    assert b.shape == s.shape == (3, 1, 32, 32) and b.dtype == np.float32


def test_training_photos_leave_the_benchmark_photographs_out():
    assert not set(TRAIN_PHOTOS) & set(BENCHMARK_PHOTOS)
    with pytest.raises(ValueError, match="benchmark"):
        training_photos(("camera",))
    grey_and_channels = training_photos(("coffee",))
    assert len(grey_and_channels) == 4 and all(p.ndim == 2 and 0 <= p.min() and p.max() <= 1 for p in grey_and_channels)


def test_srn_runs_coarse_to_fine_and_pads_any_image():
    net = SRN(TINY)
    outs = net(torch.zeros(2, 1, 32, 48))
    assert [tuple(o.shape[-2:]) for o in outs] == [(16, 24), (32, 48)]
    np.testing.assert_allclose(outs[-1].detach().numpy(), net(torch.zeros(2, 1, 32, 48))[-1].detach().numpy())
    with pytest.raises(ValueError, match="multiples of 8"):
        net(torch.zeros(1, 1, 30, 32))
    assert float(srn_loss([torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 8, 8)], torch.ones(1, 1, 8, 8))) == 1.0
    img = np.random.default_rng(0).uniform(size=(37, 29))
    assert deblur_image(net, img).shape == (37, 29)
    assert deblur_image(net, np.stack([img] * 3, -1)).shape == (37, 29, 3)


def test_training_resumes_exactly_and_exported_weights_reproduce_the_ema(tmp_path, pairs, one_torch_thread):
    cfg = TrainDeblurConfig(net=TINY.to_dict(), crop=32, batch=2, kernel_sizes=(5, 7), steps=4,
                            checkpoint_every=2, warmup=1, lr=1e-3)
    straight = train(cfg, tmp_path / "a", progress=False, data=pairs)
    train(cfg, tmp_path / "b", progress=False, data=pairs, stop_after=2)
    resumed = train(cfg, tmp_path / "b", resume=True, progress=False, data=pairs)
    assert straight["step"] == resumed["step"] == 4
    for k in straight["model"]:
        torch.testing.assert_close(straight["model"][k], resumed["model"][k], rtol=0, atol=0)
    assert [h["loss"] for h in straight["history"]] == pytest.approx([h["loss"] for h in resumed["history"]])
    path = export_deblur_weights(tmp_path / "a", tmp_path / "w.pt", info={"command": "test"})
    net, info = load_deblur_network(path)
    assert info["steps"] == 4 and info["network"] == "srn" and info["command"] == "test"
    ema = SRN(TINY)
    ema.load_state_dict(straight["ema"])
    x = torch.from_numpy(pairs.batch(1, np.random.default_rng(5))[0])
    with torch.no_grad():
        torch.testing.assert_close(net(x)[-1], ema.eval()(x)[-1], rtol=0, atol=2e-3)  # float16 storage
    with pytest.raises(ValueError, match="not a mrideblur deblurring"):
        torch.save({"x": 1}, tmp_path / "junk.pt")
        load_deblur_network(tmp_path / "junk.pt")


def test_train_deblur_command_checkpoints_exports_and_refuses_to_overwrite(tmp_path, capsys, one_torch_thread):
    from mrideblur.cli import main

    args = ["train-deblur", "--steps", "1", "--crop", "32", "--batch", "2", "--out", str(tmp_path / "run"),
            "--export", str(tmp_path / "srn.pt"), "--quiet"]
    assert main(args) == 0
    assert (tmp_path / "run" / "checkpoint.pt").is_file() and (tmp_path / "srn.json").is_file()
    assert load_deblur_network(tmp_path / "srn.pt")[1]["steps"] == 1
    assert main(args) == 2 and "--resume" in capsys.readouterr().err
    assert main(args[:2] + ["2"] + args[3:] + ["--resume"]) == 0
    assert load_deblur_network(tmp_path / "srn.pt")[1]["steps"] == 2
    assert "resuming" in capsys.readouterr().err
    (tmp_path / "srn.pt").unlink()
    assert main(args[:2] + ["2"] + args[3:] + ["--resume"]) == 0  # nothing left to train: export only
    assert "already at step 2" in capsys.readouterr().out and (tmp_path / "srn.pt").is_file()


def test_srn_method_deblurs_colour_and_fits_the_kernel_it_removed(tmp_path, pairs, one_torch_thread):
    """Through blind_deconvolve with a (barely trained) network: shapes, colour channel by
    channel, and the fitted kernel of an identity-like network is close to a delta; the real
    figures of the shipped weights are in benchmarks/deblur.md."""
    from mrideblur.deblur import blind_deconvolve

    cfg = TrainDeblurConfig(net=TINY.to_dict(), crop=32, batch=2, kernel_sizes=(5, 7), steps=1)
    train(cfg, tmp_path / "run", progress=False, data=pairs)
    rng = np.random.default_rng(3)
    rgb = rng.uniform(size=(40, 48, 3))
    res = blind_deconvolve(rgb, 7, method="srn", weights=str(tmp_path / "run"))
    assert res.image.shape == rgb.shape and res.kernel.shape == (7, 7)
    assert res.kernel.min() >= 0 and res.kernel.sum() == pytest.approx(1.0)
    assert res.history["steps"] == 1 and res.history["residual"] >= 0
    net = load_deblur_network(tmp_path / "run")[0]
    np.testing.assert_allclose(res.image[..., 1], deblur_image(net, rgb[..., 1]), atol=1e-6)
    with pytest.raises(ValueError, match="kernel_size"):
        blind_deconvolve(rgb[:10, :10], 7, method="srn", weights=str(tmp_path / "run"))


def test_interpolated_kernels_are_the_path_scaled_and_turned():
    from mrideblur.deblur import camera_shake_kernel, linear_motion_kernel
    from mrideblur.learn.reblur import interpolate_kernel
    from mrideblur.metrics import kernel_similarity

    k = camera_shake_kernel(21, seed=5)
    assert kernel_similarity(interpolate_kernel(k, 1.0, 0.0), k) > 0.99
    line = linear_motion_kernel(15, 0.0, size=21)
    turned = interpolate_kernel(line, 1.0, 90.0)
    assert kernel_similarity(turned, linear_motion_kernel(15, 90.0, size=21)) > 0.9
    half = interpolate_kernel(line, 0.5)
    extent = lambda kk: np.ptp(np.nonzero(kk.sum(axis=0) > 1e-3)[0]) + 1  # noqa: E731
    assert extent(half) == pytest.approx(extent(line) / 2, abs=1.5)
    point = interpolate_kernel(k, 0.01)
    assert point.max() > 0.5 and point.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="magnitude"):
        interpolate_kernel(k, 1.5)


def test_reblur_augment_renders_valid_blurs_reproducibly():
    from mrideblur.deblur import blur, camera_shake_kernel, reblur_augment

    x = np.random.default_rng(0).uniform(size=(60, 64))
    k = camera_shake_kernel(9, seed=1)
    blurred, kernels = reblur_augment(x, k, count=3, seed=4, noise_sigma=0.0)
    assert blurred.shape == (3, 52, 56) and kernels.shape == (3, 9, 9)
    np.testing.assert_allclose(blurred[1], blur(x, kernels[1], boundary="valid"), atol=1e-12)
    again, _ = reblur_augment(x, k, count=3, seed=4, noise_sigma=0.0)
    np.testing.assert_array_equal(blurred, again)
    assert not np.allclose(kernels[0], kernels[1])
    pairs = BlurPairs(crop=32, kernel_sizes=(7,), noise_range=(0.0, 0.0), bank_size=2,
                      photos=[np.random.default_rng(1).uniform(size=(80, 80)).astype(np.float32)], reblur=1.0)
    b, s, kk = pairs.pair(np.random.default_rng(2))
    assert not any(np.allclose(kk, bank) for bank in pairs.kernels)  # every pair re-blurred
    h = kk.shape[0] // 2
    np.testing.assert_allclose(b[h:-h, h:-h], signal.fftconvolve(s.astype(np.float64), kk, mode="same")[h:-h, h:-h],
                               atol=1e-5)


def test_motion_classes_patches_and_the_kernel_field_method(tmp_path, one_torch_thread):
    """The classifier's classes and training patches, and deblur_nonuniform's wiring with a barely
    trained classifier (its accuracy is measured in benchmarks/deblur_nonuniform.md)."""
    from mrideblur.deblur import deblur_nonuniform, linear_motion_kernel
    from mrideblur.learn.motion_cnn import KERNEL_SIZE, MOTION_CLASSES, MotionCNNConfig, MotionPatches, class_kernel

    assert MOTION_CLASSES[0] == (1, 0.0) and len(MOTION_CLASSES) == 1 + 15 * 12
    assert class_kernel(0)[KERNEL_SIZE // 2, KERNEL_SIZE // 2] == 1.0
    i = MOTION_CLASSES.index((9, 45.0))
    np.testing.assert_allclose(class_kernel(i), linear_motion_kernel(9.0, 45.0, size=KERNEL_SIZE))
    rng = np.random.default_rng(0)
    photos = [rng.uniform(size=(120, 120)).astype(np.float32)]
    patches = MotionPatches(patch=16, photos=photos)
    x, labels = patches.batch(5, rng)
    assert x.shape == (5, 1, 16, 16) and labels.dtype == np.int64 and labels.max() < len(MOTION_CLASSES)
    cfg = TrainDeblurConfig(network="motion-cnn", net=MotionCNNConfig(channels=(4, 4, 4, 4), patch=16).to_dict(),
                            batch=4, steps=1)
    train(cfg, tmp_path / "cnn", progress=False, data=patches)
    rgb = rng.uniform(size=(48, 56, 3))
    res = deblur_nonuniform(rgb, grid=(2, 3), stride=8, weights=str(tmp_path / "cnn"))
    assert res.image.shape == rgb.shape and res.kernel.shape == (2, 3, KERNEL_SIZE, KERNEL_SIZE)
    assert res.history["classes"].shape == (2, 3) and np.all(res.history["confidence"] <= 1)
    stopped = deblur_nonuniform(rgb[..., 0], weights=str(tmp_path / "cnn"), cancel=lambda: True)
    assert stopped.cancelled and np.array_equal(stopped.image, rgb[..., 0])
    with pytest.raises(ValueError, match="grid"):
        deblur_nonuniform(rgb, grid=(0, 2), weights=str(tmp_path / "cnn"))


def test_shipped_kernel_field_deblurs_a_steadily_rolling_camera(one_torch_thread):
    """The shipped classifier end to end: a steady roll about a pivot 250 px above a 256x256 crop
    of *coffee* (blur about 7-20 px, 1% noise) gains 1.7 dB (measured 2026-12-08; coffee is one of
    the classifier's training photographs, so this checks the pipeline, not generalisation:
    benchmarks/deblur_nonuniform.md does that)."""
    from skimage import data

    from mrideblur.deblur import PoseBlur, blur_nonuniform, deblur_nonuniform, roll_sweep
    from mrideblur.metrics import psnr

    x = data.coffee().mean(-1)[100:356, 200:456] / 255.0
    y = blur_nonuniform(x, PoseBlur(x.shape, roll_sweep(32, 1.5), centre=(-250.0, 127.5)), 0.01, seed=0)
    res = deblur_nonuniform(y)
    inner = (slice(16, -16), slice(16, -16))
    gain = psnr(res.image[inner], x[inner], data_range=1) - psnr(y[inner], x[inner], data_range=1)
    assert gain > 1.0, gain
    assert res.history["lengths"][0].mean() < res.history["lengths"][-1].mean()  # longer far from the pivot


def test_shipped_srn_deblurs_camera_shake_in_colour(one_torch_thread):
    """The shipped SRN weights end to end on a colour crop of *chelsea* (one of its training
    photographs: this checks the wiring and the weights, benchmarks/deblur_learned.md measures
    unseen photographs), a 19-px shake, valid blur, 1% noise."""
    from skimage import data

    from mrideblur.deblur import blind_deconvolve, blur, camera_shake_kernel
    from mrideblur.metrics import psnr

    k = camera_shake_kernel(19, seed=12)
    x = data.chelsea()[20 : 20 + 160 + 18, 150 : 150 + 160 + 18] / 255.0
    y = blur(x, k, noise_sigma=0.01, seed=1, boundary="valid")
    res = blind_deconvolve(y, 19, method="srn")
    assert res.image.shape == y.shape and res.history["steps"] >= 8843
    h = 9
    sharp = x[h:-h, h:-h]
    inner = (slice(10, -10), slice(10, -10))
    gain = psnr(res.image[inner], sharp[inner], data_range=1) - psnr(y[inner], sharp[inner], data_range=1)
    assert gain > 0.5, gain
