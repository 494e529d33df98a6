"""Image quality figures shared by image deblurring and MRI motion correction.

- :func:`psnr`, :func:`ssim`: against a ground truth, optionally with the project's MRI
  convention (magnitudes, least-squares scale of the estimate onto the truth inside the object
  mask, peak ``max |truth|``);
- :func:`ssd_upto_shift`, :func:`error_ratio`: the blind-deblurring evaluation of Levin et al.
  (2009), which forgives the whole-pixel shift a blind estimate is only defined up to;
- :func:`kernel_similarity`: the normalised cross-correlation of two kernels maximised over
  shifts (Hu & Yang 2012);
- :func:`reliability`: does a per-pixel standard-deviation map mean what it says (calibration
  of an uncertainty against the actual error)?

Images are 2D (or any equal-shape) arrays ``(ny, nx)``; errors are in squared intensity units,
PSNR in dB.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from .physics.arrays import real_array

__all__ = ["psnr", "ssim", "ssd_upto_shift", "error_ratio", "kernel_similarity", "fit_scale_magnitudes",
           "reliability"]


def _as_pair(estimate: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    e = np.asarray(estimate)
    t = np.asarray(truth)
    if e.shape != t.shape:
        raise ValueError(f"estimate and truth: shapes differ, estimate {e.shape} vs truth {t.shape}")
    if e.size == 0:
        raise ValueError(f"estimate and truth: empty arrays {e.shape}")
    for name, a in (("estimate", e), ("truth", t)):
        if not np.issubdtype(a.dtype, np.number):
            raise ValueError(f"{name}: expected a numeric array, got dtype {a.dtype}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name}: contains NaN or infinite values")
    return e, t


def _object_mask(t: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The pixels of the MRI scale fit: ``mask``, or ``t > 0.05 max t`` (``t = |truth|``)."""
    if mask is None:
        m = t > 0.05 * t.max()
    else:
        m = np.asarray(mask, dtype=bool)
        if m.shape != t.shape:
            raise ValueError(f"mask: shape {m.shape} differs from truth {t.shape}")
    if not np.any(m):
        raise ValueError("mask: selects no pixels (is truth all zero?)")
    return m


def fit_scale_magnitudes(
    estimate: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    r"""Magnitudes of estimate and truth, the estimate scaled onto the truth by least squares.

    With ``e = |estimate|``, ``t = |truth|`` and the object mask ``m`` (default
    ``t > 0.05 max t``):

    .. math:: a = \frac{\sum_{m} e\,t}{\sum_{m} e^2}, \qquad \text{returns } (a e,\ t,\ a).

    This is the project's MRI scoring convention; it removes a global scale and phase, which
    no reconstruction can determine.

    Parameters
    ----------
    estimate, truth : array_like, same shape, real or complex
    mask : bool array_like of the same shape, optional
        Pixels used for the fit.

    Returns
    -------
    scaled_estimate, truth_magnitude : float64 ndarrays of the input shape
    a : float
        The scale (1 when the estimate is zero on the mask, where no scale is defined).
    """
    e, t = _as_pair(estimate, truth)
    e = np.abs(e).astype(np.float64)
    t = np.abs(t).astype(np.float64)
    m = _object_mask(t, mask)
    den = float(np.sum(e[m] ** 2))
    a = float(np.sum(e[m] * t[m]) / den) if den > 0 else 1.0
    return a * e, t, a


def reliability(std: np.ndarray, estimate: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None,
                nbins: int = 10) -> dict:
    r"""Calibration of a per-pixel standard deviation against the actual error.

    The estimate is scaled onto the truth as :func:`fit_scale_magnitudes` does (``a |e|``) and
    the std map by the same ``a``; inside the object mask ``m``, with ``err = a |e| - |t|``:

    .. math:: \text{ratio} = \frac{\sqrt{\operatorname{mean}_m (a\,\sigma)^2}}
              {\sqrt{\operatorname{mean}_m \text{err}^2}}, \qquad
              \text{cover2} = \operatorname{mean}_m \big[ |\text{err}| \le 2 a \sigma \big]

    (1 and about 0.95 for a map that is exactly the error's std and Gaussian errors), and the
    reliability diagram: pixels sorted by their std into ``nbins`` equally populated bins, the
    RMS std against the RMS error of each bin (on the diagonal when calibrated).

    Parameters
    ----------
    std : (ny, nx) float array
        Per-pixel standard deviation, in the estimate's units.
    estimate, truth : (ny, nx) arrays, real or complex
    mask : bool array, optional
        Default ``|truth| > 0.05 max |truth|``.
    nbins : int

    Returns
    -------
    dict: ``ratio``, ``cover2`` (floats), ``bin_std``, ``bin_rmse`` (float arrays ``(nbins,)``,
    truth units).
    """
    e, t, a = fit_scale_magnitudes(estimate, truth, mask)
    u = a * np.asarray(std, dtype=np.float64)
    if u.shape != t.shape:
        raise ValueError(f"std: shape {u.shape} differs from truth {t.shape}")
    m = _object_mask(t, mask)
    err, um = (e - t)[m], u[m]
    order = np.argsort(um, kind="stable")
    bins = np.array_split(order, max(1, min(int(nbins), order.size)))
    return {"ratio": float(np.sqrt(np.mean(um**2)) / max(float(np.sqrt(np.mean(err**2))), 1e-30)),
            "cover2": float(np.mean(np.abs(err) <= 2.0 * um)),
            "bin_std": np.array([np.sqrt(np.mean(um[b] ** 2)) for b in bins]),
            "bin_rmse": np.array([np.sqrt(np.mean(err[b] ** 2)) for b in bins])}


def psnr(estimate: np.ndarray, truth: np.ndarray, data_range: float | None = None, fit_scale: bool = False,
         mask: np.ndarray | None = None) -> float:
    r"""Peak signal-to-noise ratio in dB, ``10 log10(peak^2 / MSE)``.

    Parameters
    ----------
    estimate, truth : array_like, same shape
        Real arrays, or complex ones with ``fit_scale=True``.
    data_range : float, optional
        The peak. Default: ``max(truth) - min(truth)``, or ``max |truth|`` with ``fit_scale``.
    fit_scale : bool
        Use the project's MRI convention: magnitudes, the estimate scaled by the least-squares
        factor ``a = <|e|, |t|>_mask / <|e|, |e|>_mask`` (:func:`fit_scale_magnitudes`),
        peak ``max |truth|``; the MSE ``mean((a |e| - |t|)^2)`` is over the whole image.
    mask : bool array_like, optional
        With ``fit_scale``: the pixels the scale is fitted on (default
        ``|truth| > 0.05 max |truth|``). Not used otherwise (giving one is an error).

    Returns
    -------
    float
        PSNR in dB; ``inf`` when the images agree exactly.

    Raises
    ------
    ValueError
        Shapes differ (both are named), non-finite values, complex input without
        ``fit_scale``, a mask without ``fit_scale``, or a non-positive peak.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.array([[0.0, 1.0], [0.5, 0.25]])
    >>> round(psnr(t + 0.1, t), 6)   # MSE 0.01, range 1
    20.0
    """
    e, t, peak = _prepare(estimate, truth, data_range, fit_scale, mask)
    mse = float(np.mean((e - t) ** 2))
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(peak**2 / mse))


def ssim(estimate: np.ndarray, truth: np.ndarray, data_range: float | None = None, fit_scale: bool = False,
         mask: np.ndarray | None = None) -> float:
    """Structural similarity (Wang et al. 2004) by :func:`skimage.metrics.structural_similarity`.

    Parameters
    ----------
    estimate, truth : array_like, same 2D shape (at least 7 x 7)
    data_range : float, optional
        ``L`` in the SSIM constants ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``. Default:
        ``max(truth) - min(truth)``, or ``max |truth|`` with ``fit_scale``.
    fit_scale : bool
        Same scaled magnitudes as :func:`psnr` (the project's MRI convention).
    mask : bool array_like, optional
        With ``fit_scale``: pixels of the scale fit. Not used otherwise.

    Returns
    -------
    float
        Mean SSIM in [-1, 1]; 1 for identical images.
    """
    from skimage.metrics import structural_similarity

    e, t, peak = _prepare(estimate, truth, data_range, fit_scale, mask)
    if min(e.shape) < 7:
        raise ValueError(f"estimate and truth: SSIM needs images of at least 7 x 7, got {e.shape}")
    return float(structural_similarity(e, t, data_range=peak))


def _prepare(
    estimate: np.ndarray,
    truth: np.ndarray,
    data_range: float | None,
    fit_scale: bool,
    mask: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, float]:
    if fit_scale:
        e, t, _ = fit_scale_magnitudes(estimate, truth, mask)
        peak = float(t.max()) if data_range is None else float(data_range)
    else:
        if mask is not None:
            raise ValueError("mask: only used with fit_scale=True (it selects the pixels of the scale fit)")
        e, t = _as_pair(estimate, truth)
        if np.iscomplexobj(e) or np.iscomplexobj(t):
            raise ValueError("estimate and truth: complex input needs fit_scale=True (compares magnitudes)")
        e = e.astype(np.float64)
        t = t.astype(np.float64)
        peak = float(t.max() - t.min()) if data_range is None else float(data_range)
    if not (np.isfinite(peak) and peak > 0):
        raise ValueError(f"data_range: expected a peak > 0, got {peak}")
    return e, t, peak


def ssd_upto_shift(
    estimate: np.ndarray,
    truth: np.ndarray,
    max_shift: int = 5,
    return_shift: bool = False,
) -> float | tuple[float, tuple[int, int]]:
    r"""Sum of squared differences, minimised over whole-pixel shifts of the estimate.

    A blind deconvolution recovers the image only up to a shift (the kernel may shift the
    other way). After Levin et al., "Understanding and evaluating blind deconvolution
    algorithms", CVPR 2009 (``comp_upto_shift.m``), the truth is cropped by ``max_shift`` on
    every side so that every shift compares the same pixels:

    .. math:: \mathrm{SSD} = \min_{|s_y|, |s_x| \le S} \sum_{i, j \in \Omega}
              (\hat x_{i + s_y,\, j + s_x} - x_{i, j})^2,
              \qquad \Omega = [S, n_y - S) \times [S, n_x - S).

    (Levin et al. also search quarter-pixel shifts by interpolation; here shifts are whole
    pixels.)

    Parameters
    ----------
    estimate, truth : (ny, nx) array_like, real, same shape
    max_shift : int
        Largest shift ``S`` per axis in pixels, ``0 <= 2 S < min(ny, nx)``.
    return_shift : bool
        Also return the best shift.

    Returns
    -------
    ssd : float
        In squared intensity units.
    shift : (int, int), only with ``return_shift``
        ``(s_y, s_x)`` of the minimum: the estimate is the truth displaced by ``s``
        (``estimate[i + s_y, j + s_x] ~ truth[i, j]``).
    """
    e, t = _as_pair(estimate, truth)
    if e.ndim != 2 or np.iscomplexobj(e) or np.iscomplexobj(t):
        raise ValueError(f"estimate and truth: expected real 2D images, got shape {e.shape}")
    s = int(max_shift)
    if s < 0 or 2 * s >= min(e.shape):
        raise ValueError(f"max_shift: expected 0 <= 2 * max_shift < {min(e.shape)}, got {max_shift}")
    e = e.astype(np.float64)
    t = t.astype(np.float64)
    ny, nx = t.shape
    core = t[s : ny - s, s : nx - s]
    best = (np.inf, (0, 0))
    for sy in range(-s, s + 1):
        for sx in range(-s, s + 1):
            d = e[s + sy : ny - s + sy, s + sx : nx - s + sx] - core
            ssd = float(np.einsum("ij,ij->", d, d))
            if ssd < best[0]:
                best = (ssd, (sy, sx))
    return best if return_shift else best[0]


def error_ratio(
    deconv_estimated_kernel: np.ndarray,
    deconv_true_kernel: np.ndarray,
    truth: np.ndarray,
    max_shift: int = 5,
) -> float:
    r"""Levin et al. (2009) error ratio of a blind deblurring result.

    .. math:: r = \frac{\mathrm{SSD}(\hat x_{\hat k}, x)}{\mathrm{SSD}(\hat x_{k}, x)},

    both by :func:`ssd_upto_shift`, where ``x_hat_k_hat`` is deconvolved with the estimated
    kernel and ``x_hat_k`` with the true kernel by the same non-blind method. ``r = 1`` means
    the kernel estimate cost nothing; Levin et al. count ``r <= 2`` (or 3) as a success.

    Parameters
    ----------
    deconv_estimated_kernel, deconv_true_kernel, truth : (ny, nx) array_like, real, same shape
    max_shift : int
        As in :func:`ssd_upto_shift`.

    Returns
    -------
    float
        The ratio (``inf`` if the true-kernel deconvolution is exact and the other is not,
        1 if both are exact).
    """
    num = ssd_upto_shift(deconv_estimated_kernel, truth, max_shift)
    den = ssd_upto_shift(deconv_true_kernel, truth, max_shift)
    if den == 0:
        return 1.0 if num == 0 else float("inf")
    return float(num / den)


def kernel_similarity(k_est: np.ndarray, k_true: np.ndarray) -> float:
    r"""Kernel similarity of Hu & Yang ("Good regions to deblur", ECCV 2012).

    The normalised cross-correlation maximised over all relative shifts ``s``:

    .. math:: S(\hat k, k) = \max_s \frac{\sum_p \hat k(p)\, k(p + s)}{\|\hat k\|_2\, \|k\|_2}.

    Kernels of different sizes are compared as if the smaller were zero-padded (the full
    cross-correlation covers every overlap). By Cauchy-Schwarz ``S <= 1``, with equality
    exactly when one kernel is a positive multiple of a shifted copy of the other.

    Parameters
    ----------
    k_est, k_true : (ky, kx) array_like
        Finite real 2D kernels, not all zero (no normalisation or odd size needed).

    Returns
    -------
    float
        Similarity in [-1, 1] (in [0, 1] for non-negative kernels).
    """
    a = _as_kernel(k_est, "k_est")
    b = _as_kernel(k_true, "k_true")
    xc = signal.correlate(a, b, mode="full", method="direct" if a.size * b.size < 40000 else "fft")
    return float(min(xc.max() / (np.linalg.norm(a) * np.linalg.norm(b)), 1.0))


def _as_kernel(k: np.ndarray, name: str) -> np.ndarray:
    a = real_array(k, name, 2, "kernel")
    if not np.any(a):
        raise ValueError(f"{name}: all entries are zero")
    return a
