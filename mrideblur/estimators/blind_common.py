"""What the blind deconvolution estimators share: their options, the inference patch, the
input checks and the final non-blind deconvolution.

A blind estimator of :mod:`mrideblur.estimators.blind_vb` (VB, MAP) or
:mod:`mrideblur.estimators.blind_diffusion` estimates the kernel ``k`` of ``y = k * x + n`` on a
patch of the image (Fergus et al. let the user pick one; ``"auto"`` takes the window with the most
gradient energy), then deconvolves the whole image with that kernel by a non-blind method of
:mod:`mrideblur.estimators.nonblind`.  A colour image ``(ny, nx, 3)`` shares one kernel across
its channels: :func:`blind_colour` estimates it on the luminance and deconvolves each channel.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..io.images import LUMA
from ..physics.blur import check_colour_image, check_image, luminance
from .base import CancelFn, Options, ProgressFn, Result
from .nonblind import METHODS as NONBLIND_METHODS
from .nonblind import _parse_params, deconvolve

__all__ = ["OVERSHOOT_MARGIN", "OVERSHOOT_WARN", "BlindOptions", "blind_colour", "final_image", "gradients",
           "check_input", "noise_sigma_estimate", "overshoot", "overshoot_check", "prepare"]

#: Margin, as a share of the blurred image's intensity range, beyond which a pixel of the
#: deblurred image counts as outside the input's range (:func:`overshoot`).
OVERSHOOT_MARGIN = 0.05
#: Share of such pixels above which :func:`overshoot_check` warns.  Development measurement
#: (2026-12-08, blind VB with its defaults on the four benchmark photographs, 256 x 256, 1%
#: noise): under one camera-shake kernel of 15 or 25 px (valid blur, as benchmarks/deblur.py)
#: 0.07-1.2 % of pixels, every image better than its input but one (-0.5 dB, 0.11 %); under a
#: spatially varying blur one kernel cannot explain (benchmarks/deblur_nonuniform.py's rolling
#: camera) 0.9-24 %, every image worse than its input (-0.3 to -15.6 dB).  At 2 % the check flags
#: the six cases that lost 0.6-15.6 dB and none of the good ones; the two it misses lost 0.3 and
#: 0.5 dB.  The data misfit did not tell them apart (the final deconvolution fits the data either
#: way).
OVERSHOOT_WARN = 0.02


def gradients(y: np.ndarray) -> list[np.ndarray]:
    """Horizontal and vertical first differences on a common ``(ny - 1, nx - 1)`` grid."""
    return [y[:-1, 1:] - y[:-1, :-1], y[1:, :-1] - y[:-1, :-1]]


def auto_patch(y: np.ndarray, size: int) -> tuple[int, int, int, int]:
    """The ``size x size`` window of ``y`` with the most gradient energy (stride ``size // 8``),
    as ``(y0, x0, height, width)`` in pixels."""
    h, w = min(size, y.shape[0]), min(size, y.shape[1])
    if (h, w) == y.shape:
        return (0, 0, h, w)
    e = np.zeros_like(y)
    e[:-1, :-1] = sum(g**2 for g in gradients(y))
    ii = np.pad(e.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    step = max(size // 8, 1)
    best, pos = -1.0, (0, 0)
    for y0 in range(0, y.shape[0] - h + 1, step):
        for x0 in range(0, y.shape[1] - w + 1, step):
            s = ii[y0 + h, x0 + w] - ii[y0, x0 + w] - ii[y0 + h, x0] + ii[y0, x0]
            if s > best:
                best, pos = s, (y0, x0)
    return (pos[0], pos[1], h, w)


@dataclass
class BlindOptions(Options):
    """Options every blind deconvolution method takes.

    Attributes
    ----------
    seed : int
        Seeds every random choice (starting kernels, sampler); the same seed gives the same result.
    patch : "auto", None or (y0, x0, height, width)
        Region (pixels) used to infer the kernel: ``"auto"`` the ``max_patch``-sized window with
        the most gradient energy, ``None`` the whole image.  The final deconvolution always
        covers the whole image.
    max_patch : int
        Side of the ``"auto"`` patch in pixels.
    noise_sigma : float, optional
        Noise standard deviation of ``y`` (intensity units) if known; estimated otherwise.
    nonblind : str
        Method of :func:`mrideblur.deblur.deconvolve` for the final image.
    nonblind_params : dict, optional
        Its parameters.
    boundary : {"taper", "periodic", "valid"}
        Boundary handling of the final deconvolution.
    """

    seed: int = 0
    patch: Any = "auto"
    max_patch: int = 256
    noise_sigma: float | None = None
    nonblind: str = "hyper-laplacian"
    nonblind_params: dict | None = None
    boundary: str = "taper"

    def validate(self) -> None:
        if self.nonblind not in NONBLIND_METHODS:
            raise ValueError(f"nonblind: expected one of {NONBLIND_METHODS}, got {self.nonblind!r}")
        # check the final deconvolution's options now, not after the kernel search has run
        _parse_params(self.nonblind, dict(self.nonblind_params or {}))


def prepare(blurred: np.ndarray, kernel_size: int, options: BlindOptions
            ) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int], int]:
    """Check the input and cut the inference patch.

    Returns ``(y, yp, patch, kernel_size)``: the image as float64, the patch ``yp`` of it,
    ``patch = (y0, x0, height, width)`` and the kernel size as int.  Raises ``ValueError`` for a
    bad image, an even or too small kernel size, a patch outside the image, or a kernel larger
    than half the patch.
    """
    y = check_image(blurred, "blurred")
    if int(kernel_size) != kernel_size or kernel_size < 3 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size: expected an odd integer >= 3, got {kernel_size}")
    kernel_size = int(kernel_size)
    patch = options.patch
    if isinstance(patch, str) and patch == "auto":
        patch = auto_patch(y, options.max_patch)
    elif patch is None:
        patch = (0, 0, y.shape[0], y.shape[1])
    try:
        y0, x0, ph, pw = (int(v) for v in patch)
    except (TypeError, ValueError):
        raise ValueError(f"patch: expected 'auto', None or (y0, x0, height, width), got {patch!r}") from None
    if y0 < 0 or x0 < 0 or ph < 3 or pw < 3 or y0 + ph > y.shape[0] or x0 + pw > y.shape[1]:
        raise ValueError(f"patch: {patch} does not lie inside the image {y.shape}")
    yp = y[y0 : y0 + ph, x0 : x0 + pw]
    if 2 * kernel_size > min(yp.shape):
        raise ValueError(f"kernel_size: {kernel_size} is too large for the image/patch {yp.shape} "
                         "(need at least twice the kernel size)")
    return y, yp, (y0, x0, ph, pw), kernel_size


def check_input(blurred: np.ndarray, kernel_size: int) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Check a grey ``(ny, nx)`` or colour ``(ny, nx, 3)`` image and an odd kernel size for a
    method that works on the whole image.

    Returns ``(y, grey, m, colour)``: the image as float64, its luminance (itself when grey), the
    kernel size as int and whether it is colour.  ``ValueError`` for a bad image, an even or
    too small kernel size, or one larger than half the image.
    """
    colour = np.ndim(blurred) == 3
    y = check_colour_image(blurred, "blurred") if colour else check_image(blurred, "blurred")
    if int(kernel_size) != kernel_size or kernel_size < 3 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size: expected an odd integer >= 3, got {kernel_size}")
    m = int(kernel_size)
    grey = luminance(y) if colour else y
    if 2 * m > min(grey.shape):
        raise ValueError(f"kernel_size: {m} is too large for the image {grey.shape} (need at least twice the kernel size)")
    return y, grey, m, colour


def noise_sigma_estimate(y: np.ndarray) -> float:
    """Noise standard deviation of a grey image ``y`` (its units) from its finest wavelet
    coefficients (Donoho's median absolute deviation, :func:`skimage.restoration.estimate_sigma`)."""
    from skimage.restoration import estimate_sigma

    return float(estimate_sigma(np.asarray(y, dtype=np.float64)))


def final_image(y: np.ndarray, kernel: np.ndarray, options: BlindOptions) -> np.ndarray:
    """Non-blind deconvolution of the whole image with the estimated kernel."""
    return deconvolve(y, kernel, method=options.nonblind, boundary=options.boundary,
                      **(options.nonblind_params or {}))


def blind_colour(run: Callable[..., Result], blurred: np.ndarray, kernel_size: int, options: BlindOptions,
                 progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> Result:
    """Blind deconvolution of a colour image ``(ny, nx, 3)`` with one kernel for all channels.

    The kernel is estimated by ``run`` (a grey method's run function) on the luminance
    ``Y = LUMA . (R, G, B)``, which a shared kernel blurs like any channel (``Y = k * X + n_Y``;
    a known ``noise_sigma`` per channel becomes ``|LUMA| noise_sigma`` there); each channel is
    then deconvolved with that kernel by :func:`final_image`.

    Returns
    -------
    Result
        ``image`` ``(ny, nx, 3)``, ``kernel`` ``(m, m)``, the grey run's ``history`` plus
        ``history["colour"]`` saying how the channels were handled.
    """
    rgb = check_colour_image(blurred, "blurred")
    grey = options
    if options.noise_sigma is not None:
        grey = dataclasses.replace(options, noise_sigma=float(np.linalg.norm(LUMA)) * options.noise_sigma)
    res = run(luminance(rgb), kernel_size, grey, progress, cancel)
    image = np.stack([final_image(rgb[..., c], res.kernel, options) for c in range(3)], axis=-1)
    history = dict(res.history)
    history["colour"] = ("kernel estimated on the luminance 0.2125 R + 0.7154 G + 0.0721 B; each channel "
                         f"deconvolved with it ({options.nonblind})")
    return dataclasses.replace(res, image=image, history=history)


def overshoot(image: np.ndarray, blurred: np.ndarray, margin: float = OVERSHOOT_MARGIN) -> float:
    """Share of the pixels of a deblurred ``image`` outside the intensity range of ``blurred``
    widened by ``margin`` times that range on each side.

    A blur averages, so a sharp image's values lie about within the blurred one's range; a kernel
    that does not explain the blur leaves ringing that overshoots it.  An ``image`` larger than
    ``blurred`` (``boundary="valid"``) is compared on its central ``blurred``-sized part;
    colour images pixel by pixel over the channels.
    """
    x = np.asarray(image, dtype=np.float64)
    y = np.asarray(blurred, dtype=np.float64)
    dy, dx = (x.shape[0] - y.shape[0]) // 2, (x.shape[1] - y.shape[1]) // 2
    if dy > 0 or dx > 0:
        x = x[dy : dy + y.shape[0], dx : dx + y.shape[1]]
    lo, hi = float(y.min()), float(y.max())
    pad = margin * (hi - lo)
    return float(np.mean((x < lo - pad) | (x > hi + pad)))


def overshoot_check(result: Result, blurred: np.ndarray) -> Result:
    """Record :func:`overshoot` in ``result.history`` (``overshoot``) and, above
    :data:`OVERSHOOT_WARN`, a ``warning`` there and a Python warning: the deblurred image rings
    beyond the input's range, and is likely worse than the input (a blur the estimated kernel
    does not explain: spatially varying, too large for ``kernel_size``, or not a blur)."""
    import warnings

    share = overshoot(result.image, blurred)
    history = dict(result.history)
    history["overshoot"] = share
    if share > OVERSHOOT_WARN:
        history["warning"] = (f"{100 * share:.1f}% of the deblurred pixels lie outside the blurred image's intensity "
                              f"range (ringing): the estimated kernel likely does not explain the blur (spatially "
                              f"varying? larger than the kernel size?), and the result may be worse than the input")
        # overshoot_check <- blind_deconvolve / deblur_nonuniform <- threads.with_threads <- the caller
        warnings.warn(history["warning"], stacklevel=4)
    return dataclasses.replace(result, history=history)
