r"""Blind deblurring by a trained network, end to end (``method="srn"``: Tao et al. 2018).

The network (:class:`mrideblur.learn.srn.SRN`, trained by ``mrideblur train-deblur`` on blurred
built-in photographs) maps the blurred image ``y`` straight to the sharp estimate ``x``; a colour
image goes channel by channel.  It estimates no kernel, so one is fitted afterwards to explain
``y`` from ``x`` — least squares on image gradients over the simplex
(:func:`mrideblur.estimators.blind_diffusion.fit_kernel`), on the pixels whose whole footprint
the estimate covers::

    k = argmin_{k >= 0, sum k = 1}  sum_d ||M (k * d x - d y)||^2 + gamma ||k||^2

— a reading of what blur the network removed (and the kernel the shells write), not part of the
estimate.  ``history["residual"]`` is ``||M (k * x - y)|| / sqrt(|M|)``, in image units, next to
the noise level estimated from ``y`` (``history["noise_sigma"]``, VB's estimator): a residual
far above it says the network's image does not explain the data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..learn.srn import deblur_image
from ..learn.train_deblur import load_deblur_network, shipped_weights
from ..physics.blur import luminance
from .base import CancelFn, Options, ProgressFn, Result
from .blind_common import check_input, noise_sigma_estimate
from .blind_diffusion import explaining_kernel

__all__ = ["NetworkDeblurOptions", "run"]


@dataclass
class NetworkDeblurOptions(Options):
    """Options of an end-to-end deblurring network.

    Attributes
    ----------
    weights : str, Path or None
        Exported weights or a training checkpoint; ``None``: the shipped ones
        (:func:`mrideblur.learn.train_deblur.shipped_weights`).
    device : str
        ``"cpu"`` or ``"cuda"``.
    fit_iters : int
        FISTA iterations of the kernel fit.
    seed : int
        Unused by the network (deterministic); kept so every blind method takes ``seed``.
    """

    weights: Any = None
    device: str = "cpu"
    fit_iters: int = 100
    seed: int = 0
    method = "srn"


def run(blurred: np.ndarray, kernel_size: int, options: NetworkDeblurOptions, progress: ProgressFn | None = None,
        cancel: CancelFn | None = None) -> Result:
    """Deblur ``blurred`` (``(ny, nx)`` or ``(ny, nx, 3)``) with the network; fit a
    ``kernel_size`` kernel to the result (module notes).

    Returns
    -------
    Result
        ``image`` shaped like ``blurred``, ``kernel`` ``(kernel_size, kernel_size)``,
        ``history`` with ``weights``, ``steps`` (training steps of the weights), ``residual``,
        ``noise_sigma``, ``seconds``.
    """
    t0 = time.perf_counter()
    y, grey, m, colour = check_input(blurred, kernel_size)
    net, info = load_deblur_network(options.weights if options.weights is not None else shipped_weights(options.method),
                                    device=options.device)
    if progress is not None:
        progress(0, 2, f"{options.method}: network")
    x = deblur_image(net, y, options.device)
    if progress is not None:
        progress(1, 2, f"{options.method}: kernel fit")
    kernel, residual = explaining_kernel(luminance(x) if colour else x, grey, m, options.fit_iters)
    if progress is not None:
        progress(2, 2, f"{options.method}: done")
    history = {"weights": info.get("path"), "steps": info.get("steps"), "residual": residual,
               "noise_sigma": float(noise_sigma_estimate(grey)), "seconds": time.perf_counter() - t0, "cancelled": False}
    return Result(image=x, kernel=kernel, history=history,
                  report={"method": options.method, "parameters": options.as_dict(), "seconds": history["seconds"]})
