r"""Blind deblurring with per-patch deconvolution filters predicted by a network, after
Chakrabarti, "A neural approach to blind motion deblurring" (ECCV 2016): ``method="neural-filter"``.

Three stages, as in the paper:

1. **Network**: on the inference patch ``y_p`` (``BlindOptions.patch``; ``"auto"`` the window
   with the most gradient energy), every overlapping ``P x P`` window is restored by the
   deconvolution filter the network predicts for it
   (:class:`mrideblur.learn.neural_filter.NeuralFilter`, trained by
   ``mrideblur train-deblur --network neural-filter``) and the central outputs are blended
   (:func:`mrideblur.learn.neural_filter.filter_image`): an estimate ``x_p`` of the sharp patch.
2. **Kernel**: the ``m x m`` kernel that best explains the blurred patch from that estimate, least
   squares on image gradients over the simplex
   (:func:`mrideblur.estimators.blind_diffusion.fit_kernel`), on the pixels whose whole footprint
   lies in the patch::

       k = argmin_{k >= 0, sum k = 1}  sum_d ||M (k * d x_p - d y_p)||^2 + gamma ||k||^2

3. **Image**: non-blind deconvolution of the whole image with ``k``
   (:func:`mrideblur.estimators.blind_common.final_image`; hyper-Laplacian by default, where the
   paper used EPLL) — ``final="deconvolve"``, the paper's pipeline and the default.  With
   ``final="network"`` the image is the network's own (stage 1 on the whole image), and ``k`` is
   only a reading of the blur it removed.  Which is better depends on how sharp the network's
   image is: stage 2 needs it sharp enough to pin the kernel down, otherwise it fits a partial
   kernel and stage 3 rings (``benchmarks/deblur_learned.md`` has both).

Colour images: the kernel from the luminance, as
:func:`mrideblur.estimators.blind_common.blind_colour` does; each channel then deconvolved with it
(or filtered by the network, ``final="network"``).  ``history["residual"]`` is
``||M (k * x_p - y_p)|| / sqrt(|M|)`` in image units, beside ``history["noise_sigma"]``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..learn.neural_filter import filter_image
from ..learn.train_deblur import load_deblur_network, shipped_weights
from ..physics.blur import check_colour_image, luminance
from .base import CancelFn, ProgressFn, Result, positive_int
from .blind_common import BlindOptions, final_image, noise_sigma_estimate, prepare
from .blind_diffusion import explaining_kernel

__all__ = ["NeuralFilterOptions", "run"]


@dataclass
class NeuralFilterOptions(BlindOptions):
    """Options of ``method="neural-filter"`` (plus those of
    :class:`~mrideblur.estimators.blind_common.BlindOptions`).

    Attributes
    ----------
    weights : str, Path or None
        Exported weights or a training checkpoint of a ``neural-filter`` network; ``None``: the
        shipped ones (:func:`mrideblur.learn.train_deblur.shipped_weights`).
    device : str
        ``"cpu"`` or ``"cuda"``.
    fit_iters : int
        FISTA iterations of the kernel fit.
    final : {"deconvolve", "network"}
        The returned image: non-blind deconvolution with the fitted kernel (the paper's), or the
        network's own image.
    """

    weights: Any = None
    device: str = "cpu"
    fit_iters: int = 150
    final: str = "deconvolve"

    def validate(self) -> None:
        super().validate()
        self.fit_iters = positive_int("fit_iters", self.fit_iters)
        if self.final not in ("deconvolve", "network"):
            raise ValueError(f"final: expected 'deconvolve' or 'network', got {self.final!r}")


def run(blurred: np.ndarray, kernel_size: int, options: NeuralFilterOptions, progress: ProgressFn | None = None,
        cancel: CancelFn | None = None) -> Result:
    """Estimate a ``kernel_size`` kernel and the sharp image from a grey ``(ny, nx)`` or colour
    ``(ny, nx, 3)`` image (module notes; colour: the kernel from the luminance, each channel
    deconvolved with it or, with ``final="network"``, filtered by the network).

    Returns
    -------
    Result
        ``image`` shaped like ``blurred`` (``boundary="valid"``: larger by ``kernel_size - 1``), ``kernel``
        ``(kernel_size, kernel_size)``, ``history`` with ``patch``, ``weights``, ``steps``
        (training steps of the weights), ``residual``, ``noise_sigma``, ``seconds``,
        ``cancelled``.
    """
    t0 = time.perf_counter()
    colour = np.ndim(blurred) == 3
    rgb = check_colour_image(blurred, "blurred") if colour else None
    y, yp, patch, m = prepare(luminance(rgb) if colour else blurred, kernel_size, options)
    channels = [rgb[..., c] for c in range(3)] if colour else [y]
    net, info = load_deblur_network(options.weights if options.weights is not None else shipped_weights("neural-filter"),
                                    device=options.device)
    if info.get("network", "neural-filter") != "neural-filter" or not hasattr(net, "filters"):
        raise ValueError(f"weights: {info.get('path')} holds a {type(net).__name__}, not a neural-filter network")
    if progress is not None:
        progress(0, 3, "neural-filter: network")
    xp = filter_image(net, yp, options.device)
    history: dict[str, Any] = {"patch": patch, "weights": info.get("path"), "steps": info.get("steps"),
                               "noise_sigma": float(noise_sigma_estimate(yp)), "cancelled": False}
    h = m // 2
    delta = np.zeros((m, m))
    delta[h, h] = 1.0
    if cancel is not None and cancel():
        history.update(cancelled=True, seconds=time.perf_counter() - t0)
        image = np.stack([final_image(c, delta, options) for c in channels], axis=-1)
        return Result(image=image if colour else image[..., 0], kernel=delta, history=history,
                      report={"method": "neural-filter", "parameters": options.as_dict()})
    if progress is not None:
        progress(1, 3, "neural-filter: kernel fit")
    kernel, history["residual"] = explaining_kernel(xp, yp, m, options.fit_iters)
    if progress is not None:
        progress(2, 3, f"neural-filter: final image ({options.final})")
    if options.final == "deconvolve":
        image = np.stack([final_image(c, kernel, options) for c in channels], axis=-1)
    else:
        whole = patch == (0, 0, y.shape[0], y.shape[1]) and not colour
        image = np.stack([xp if whole else filter_image(net, c, options.device) for c in channels], axis=-1)
        if options.boundary == "valid":  # the scene: the observation with an edge-padded margin
            image = np.pad(image, ((m // 2, m // 2), (m // 2, m // 2), (0, 0)), mode="edge")
    image = image if colour else image[..., 0]
    if progress is not None:
        progress(3, 3, "neural-filter: done")
    history["seconds"] = time.perf_counter() - t0
    return Result(image=image, kernel=kernel, history=history,
                  report={"method": "neural-filter", "parameters": options.as_dict(), "seconds": history["seconds"]})
