"""Chakrabarti's neural deconvolution filters (``method="neural-filter"``): the filter applied
per patch, the whole-image blending, learning a deconvolution filter, and the blind method."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import signal

from mrideblur.learn.blur_data import BlurPairs
from mrideblur.learn.neural_filter import (NeuralFilter, NeuralFilterConfig, NeuralFilterPatches, filter_image,
                                           neural_filter_loss)
from mrideblur.learn.train_deblur import TrainDeblurConfig, load_deblur_network, train

SMALL = NeuralFilterConfig(patch=32, hidden=32, layers=1)


def _photos(seed: int = 0, n: int = 3, size: int = 120) -> list[np.ndarray]:
    """Piecewise-smooth random images (blurred blobs plus edges): structured like photographs."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = signal.fftconvolve(rng.uniform(size=(size, size)), np.ones((5, 5)) / 25, mode="same")
        img += 0.5 * (np.add.outer(np.arange(size), rng.integers(-40, 40) * np.arange(size) / 40) % 40 > 20)
        out.append(((img - img.min()) / np.ptp(img)).astype(np.float32))
    return out


def test_an_untrained_network_is_the_identity_filter_on_patches_and_images():
    net = NeuralFilter(SMALL)
    patches = torch.from_numpy(np.random.default_rng(0).uniform(size=(3, 1, 32, 32)).astype(np.float32))
    out = net(patches)
    assert out.shape == (3, 1, 16, 16)
    np.testing.assert_allclose(out.detach().numpy(), patches[..., 8:24, 8:24].numpy(), atol=1e-5)
    g = net.filters(patches)
    assert g.shape == (3, 32, 17) and torch.all(g[:, 0, 0] == 1)
    for shape in ((37, 29), (16, 70), (5, 5)):  # any size, borders mirrored
        img = np.random.default_rng(1).uniform(size=shape)
        np.testing.assert_allclose(filter_image(net, img), img, atol=1e-5)
    with pytest.raises(ValueError, match="patches"):
        net(torch.zeros(1, 1, 30, 30))
    with pytest.raises(ValueError, match="multiple of 8"):
        NeuralFilter(NeuralFilterConfig(patch=36))


def test_the_predicted_filter_multiplies_the_tapered_patch_spectrum():
    """A network whose output layer encodes a fixed filter ``G`` restores every patch as
    ``mean + IDFT(G . DFT(taper (p - mean)))`` — checked against numpy on the central pixels."""
    net = NeuralFilter(SMALL)
    rng = np.random.default_rng(2)
    gre, gim = rng.normal(size=(32, 17)), rng.normal(size=(32, 17))
    with torch.no_grad():
        net.head.bias.copy_(torch.from_numpy(np.concatenate([gre.ravel(), gim.ravel()]).astype(np.float32)))
    p = rng.uniform(size=(32, 32))
    out = net(torch.from_numpy(p.astype(np.float32))[None, None])[0, 0].detach().numpy()
    g = (1 + gre) + 1j * gim
    g[0, 0] = 1.0
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(8) + 0.5) / 8)
    w = np.concatenate([ramp, np.ones(16), ramp[::-1]])
    ref = p.mean() + np.fft.irfft2(g * np.fft.rfft2(np.outer(w, w) * (p - p.mean())), s=(32, 32))
    np.testing.assert_allclose(out, ref[8:24, 8:24], atol=1e-4)


def test_training_learns_a_deconvolution_filter_for_one_blur(tmp_path, one_torch_thread):
    """One 5x5 box blur, noise-free: the optimal filter is the same for every patch, which the
    network (bias of its output layer) learns — restored centres beat the blurred ones by > 3 dB
    on patches it never saw (measured 2026-12-08: 5.8 dB after 300 steps)."""
    photos = _photos()
    data = NeuralFilterPatches(32, kernel_sizes=(5,), noise_range=(0.0, 0.0), scale_range=(1.0, 1.0),
                               bank_size=1, photos=photos)
    box = np.ones((5, 5)) / 25
    data.pairs.kernels = [box]
    cfg = TrainDeblurConfig(network="neural-filter", net=SMALL.to_dict(), batch=16, steps=300, lr=3e-3, warmup=10,
                            checkpoint_every=300)
    train(cfg, tmp_path / "nf", progress=False, data=data)
    net, info = load_deblur_network(tmp_path / "nf")
    assert info["steps"] == 300
    test = NeuralFilterPatches(32, kernel_sizes=(5,), noise_range=(0.0, 0.0), scale_range=(1.0, 1.0), bank_size=1,
                               photos=_photos(seed=9))
    test.pairs.kernels = [box]
    blurred, sharp = test.batch(32, np.random.default_rng(5))
    with torch.no_grad():
        err = float(neural_filter_loss(net(torch.from_numpy(blurred)), torch.from_numpy(sharp)))
    base = float(np.mean((blurred[..., 8:24, 8:24] - sharp) ** 2))
    assert 10 * np.log10(base / err) > 3.0, (base, err)


def test_neural_filter_method_fits_a_kernel_and_handles_colour(tmp_path, one_torch_thread):
    """Through blind_deconvolve with an (untrained: identity) network: the kernel fitted to an
    unfiltered image is about a delta, grey and colour shapes, the wrong kind of weights refused."""
    from mrideblur.deblur import blind_deconvolve

    data = NeuralFilterPatches(32, kernel_sizes=(5,), noise_range=(0.0, 0.0), bank_size=1, photos=_photos())
    cfg = TrainDeblurConfig(network="neural-filter", net=SMALL.to_dict(), batch=2, steps=1, lr=1e-9)
    train(cfg, tmp_path / "nf", progress=False, data=data)
    img = _photos(seed=4, n=1, size=64)[0].astype(np.float64)
    res = blind_deconvolve(img, 7, method="neural-filter", weights=str(tmp_path / "nf"), patch=None)
    assert res.image.shape == img.shape and res.kernel.shape == (7, 7)
    assert res.kernel[3, 3] > 0.8 and res.kernel.sum() == pytest.approx(1.0)
    assert res.history["steps"] == 1 and res.history["residual"] < 0.01
    own = blind_deconvolve(img, 7, method="neural-filter", weights=str(tmp_path / "nf"), final="network")
    np.testing.assert_allclose(own.image, img, atol=1e-5)  # the (identity) network's image itself
    scene = blind_deconvolve(img, 7, method="neural-filter", weights=str(tmp_path / "nf"), final="network",
                             boundary="valid")
    assert scene.image.shape == (70, 70)
    rgb = np.stack([img, img[::-1], img.T], -1)
    assert blind_deconvolve(rgb, 7, method="neural-filter", weights=str(tmp_path / "nf"), patch=None).image.shape == rgb.shape
    np.testing.assert_allclose(blind_deconvolve(rgb, 7, method="neural-filter", weights=str(tmp_path / "nf"),
                                                final="network").image, rgb, atol=1e-5)
    pairs = BlurPairs(crop=32, kernel_sizes=(5,), noise_range=(0.0, 0.0), bank_size=2, photos=_photos())
    from mrideblur.learn.srn import SRNConfig

    train(TrainDeblurConfig(net=SRNConfig(channels=(4, 6, 8), blocks=1, nscale=2).to_dict(), crop=32, batch=2,
                            steps=1), tmp_path / "srn", progress=False, data=pairs)
    with pytest.raises(ValueError, match="not a neural-filter"):
        blind_deconvolve(img, 7, method="neural-filter", weights=str(tmp_path / "srn"))
    with pytest.raises(ValueError, match="final"):
        blind_deconvolve(img, 7, method="neural-filter", weights=str(tmp_path / "nf"), final="both")
    with pytest.raises(ValueError, match="fit_iters"):
        blind_deconvolve(img, 7, method="neural-filter", weights=str(tmp_path / "nf"), fit_iters=0)


def test_shipped_neural_filter_sharpens_camera_shake_and_fits_a_kernel(one_torch_thread):
    """The shipped weights end to end on a colour crop of *chelsea* (a training photograph: this
    checks the wiring and the weights; benchmarks/deblur_learned.md measures unseen ones), a 19-px
    shake, valid blur, 1% noise: the network's own image is sharper than the input (measured
    2026-12-08: +1.7 dB; the paper's pipeline -0.1 dB here), and the pipeline returns a kernel on
    the simplex and an image of the input's shape."""
    from skimage import data

    from mrideblur.deblur import blind_deconvolve, blur, camera_shake_kernel
    from mrideblur.metrics import psnr

    k = camera_shake_kernel(19, seed=12)
    x = data.chelsea()[20 : 20 + 160 + 18, 150 : 150 + 160 + 18] / 255.0
    y = blur(x, k, noise_sigma=0.01, seed=1, boundary="valid")
    sharp = x[9:-9, 9:-9]
    inner = (slice(10, -10), slice(10, -10))
    own = blind_deconvolve(y, 19, method="neural-filter", final="network")
    assert own.image.shape == y.shape and own.history["steps"] >= 60000
    gain = psnr(own.image[inner], sharp[inner], data_range=1) - psnr(y[inner], sharp[inner], data_range=1)
    assert gain > 0.5, gain
    res = blind_deconvolve(y, 19, method="neural-filter")
    assert res.image.shape == y.shape and res.kernel.shape == (19, 19)
    assert res.kernel.min() >= 0 and res.kernel.sum() == pytest.approx(1.0)
