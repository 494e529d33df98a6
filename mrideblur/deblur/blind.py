r"""Blind deconvolution: estimate the kernel ``k`` and the sharp image ``x`` from ``y = k * x + n``.

The model is Fergus et al., "Removing camera shake from a single photograph" (SIGGRAPH 2006):

- it works on image *gradients*, ``g = D y`` with ``D`` the horizontal and vertical first
  differences; since convolution commutes with ``D``, ``g = k * u + n`` with ``u = D x``;
- likelihood ``p(g | k, u) = N(g; k * u, 1/beta)`` (``beta`` the noise precision, estimated);
- image prior ``p(u) = prod_l sum_c pi_c N(u_l; 0, v_c)`` — a zero-mean Gaussian mixture
  fitted to natural-image gradients (:class:`~mrideblur.deblur.priors.GradientMixturePrior`);
- kernel prior ``p(k) = prod_j sum_d pi_d lambda_d exp(-lambda_d k_j)``, ``k_j >= 0`` (sparse,
  positive; :class:`~mrideblur.deblur.priors.KernelExponentialPrior`);
- the blur is "valid" convolution: every observed gradient sees a latent gradient image that is
  ``kernel_size - 1`` pixels larger, so borders need no assumption (no wrap-around).

``method="vb"`` is mean-field Variational Bayes (ensemble learning, Miskin & MacKay 2000):
``q(u, z, k) = prod_l N(u_l; mu_l, s_l^2) prod_l q(z_l) prod_j q(k_j)`` with ``q(k_j)`` a
Gaussian rectified at zero.  The fixed point of the fully factorised ``q(u)`` has
``s_l^2 = 1 / (beta <diag K^T K>_l + <w_l>)`` and means that minimise a quadratic,
``(beta <K>^T <K> + diag(beta c + <w>)) mu = beta <K>^T g``, solved jointly by conjugate gradients
(the coordinate-wise updates of ensemble learning converge to the same point, only slower).
The kernel entries are updated coordinate-wise, each from
``<||g - U k||^2> = const - 2 b^T k + k^T (M^T M + diag(sum s^2)) k``: the posterior variance of
the image enters the kernel update, which is what stops VB from collapsing to the delta kernel
(Levin et al., "Understanding and evaluating blind deconvolution algorithms", CVPR 2009/2011).

``method="map"`` is the same model solved for point estimates (``s^2 = 0``, ``q(k)`` a point):
the naive joint MAP that drifts towards the no-blur (delta) kernel — kept to show that failure.

Both run coarse to fine: from a 3x3 kernel on a downsampled image, growing by ``sqrt(2)`` per
scale to ``kernel_size``; the final image comes from a non-blind deconvolution with the
estimated kernel (hyper-Laplacian by default).

``method="diffusion"`` swaps the gradient prior for the MRI diffusion prior: the kernel (from the
delta by default) is refitted by least squares in the gradient domain while the diffusion
posterior sampler explores the image (:mod:`mrideblur.deblur.blind_diffusion`); the final image
is again a non-blind deconvolution with the estimated kernel, the sampler's own image is kept in
the history.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import skimage.transform
from skimage.restoration import estimate_sigma
from scipy import fft as sfft
from scipy import signal
from scipy.special import erfcx

from .blur import check_image
from .kernels import center_kernel
from .nonblind import deconvolve
from .priors import GRADIENT_PRIOR, KERNEL_PRIOR, GradientMixturePrior, KernelExponentialPrior

__all__ = ["BlindResult", "blind_deconvolve", "BLIND_METHODS"]

BLIND_METHODS = ("vb", "map", "diffusion")
#: Kernel entries below this fraction of the maximum are set to zero at the end of each scale.
KERNEL_THRESHOLD = 0.1
#: Amplitude of the uniform jitter added to the 3x3 starting kernel (of mass 3) per start.
START_JITTER = 0.5
ProgressFn = Callable[[int, int, str], None]


@dataclass
class BlindResult:
    """Result of :func:`blind_deconvolve`.

    Attributes
    ----------
    image : (ny, nx) float64
        Deblurred image (non-blind deconvolution of the whole input with ``kernel``); larger,
        ``(ny + ky - 1, nx + kx - 1)``, when ``boundary="valid"``.
    kernel : (kernel_size, kernel_size) float64
        Estimated kernel (posterior mean for VB), non-negative, sums to one, centred by its
        centre of mass.
    history : dict
        ``scales`` (kernel size per scale), ``kernels`` (estimate at the end of each scale),
        ``iterations`` (per scale), ``noise_sigma`` and ``kernel_change`` (per iteration, all
        scales), ``patch`` used for inference, ``seconds``, ``cancelled``.  For
        ``method="diffusion"`` those of
        :func:`~mrideblur.deblur.blind_diffusion.blind_deconvolve_diffusion` (``kernels`` and
        ``kernel_change`` per kernel fit) plus ``patch``, ``nonblind`` and ``sample``: the
        sampler's posterior-mean image of the patch (scene-sized as ``image`` for
        ``boundary="valid"``).
    """

    image: np.ndarray
    kernel: np.ndarray
    history: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# Valid convolution on a latent grid, by FFT
# ----------------------------------------------------------------------------------------------


class _ValidConv:
    """``u (L) -> k * u`` restricted to the valid outputs ``(H, W)``, ``L = (H + m - 1, W + m - 1)``."""

    def __init__(self, obs_shape: tuple[int, int], m: int):
        self.obs_shape = obs_shape
        self.m = m
        self.lat_shape = (obs_shape[0] + m - 1, obs_shape[1] + m - 1)
        self.fshape = tuple(sfft.next_fast_len(n, real=True) for n in self.lat_shape)
        self.kf = None

    def set_kernel(self, k: np.ndarray) -> None:
        self.kf = sfft.rfft2(k, s=self.fshape)

    def forward(self, u: np.ndarray) -> np.ndarray:
        c = sfft.irfft2(sfft.rfft2(u, s=self.fshape) * self.kf, s=self.fshape)
        m, (h, w) = self.m, self.obs_shape
        return np.ascontiguousarray(c[m - 1 : m - 1 + h, m - 1 : m - 1 + w])

    def adjoint(self, r: np.ndarray) -> np.ndarray:
        m = self.m
        pad = np.zeros(self.fshape)
        pad[m - 1 : m - 1 + r.shape[0], m - 1 : m - 1 + r.shape[1]] = r
        c = sfft.irfft2(sfft.rfft2(pad) * np.conj(self.kf), s=self.fshape)
        return np.ascontiguousarray(c[: self.lat_shape[0], : self.lat_shape[1]])

    def coverage(self, kvals: np.ndarray) -> np.ndarray:
        """``sum_j kvals_j [latent l feeds valid output through tap j]`` on the latent grid."""
        return signal.fftconvolve(np.ones(self.obs_shape), kvals[::-1, ::-1], mode="full")

    def correlate_obs(self, u: np.ndarray, r: np.ndarray) -> np.ndarray:
        """``b_t = sum_p r_p u_{p + m - 1 - t}``: the kernel-shaped correlation, shape (m, m)."""
        c = signal.fftconvolve(u, r[::-1, ::-1], mode="valid")  # c[s] = sum_p u[p + s] r[p]
        return c[::-1, ::-1]


def _autocorr_matrix(u: np.ndarray, m: int) -> np.ndarray:
    """``A[t, t'] = sum_l u_l u_{l + t - t'}``: the Gram matrix of the full convolution
    ``k -> k * u`` (zero outside ``u``), from the autocorrelation of ``u`` by FFT.

    Shape ``(m*m, m*m)``, taps in row-major order.
    """
    fs = tuple(sfft.next_fast_len(n + m, real=True) for n in u.shape)
    uf = sfft.rfft2(u, s=fs)
    r = sfft.irfft2(np.abs(uf) ** 2, s=fs)
    ty, tx = np.divmod(np.arange(m * m), m)
    dy = (ty[None, :] - ty[:, None]) % fs[0]
    dx = (tx[None, :] - tx[:, None]) % fs[1]
    return r[dy, dx]


def _rectified_moments(mean: np.ndarray, prec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and second moments of ``N(mean, 1/prec)`` truncated to ``[0, inf)``."""
    s = 1.0 / np.sqrt(prec)
    a = mean / s
    ratio = math.sqrt(2.0 / math.pi) / erfcx(-a / math.sqrt(2.0))  # phi(a) / Phi(a)
    e1 = mean + s * ratio
    e2 = mean * e1 + s * s
    e1 = np.maximum(e1, 0.0)
    return e1, np.maximum(e2, e1 * e1)


def _gradients(y: np.ndarray) -> list[np.ndarray]:
    """Horizontal and vertical first differences on a common ``(ny - 1, nx - 1)`` grid."""
    return [y[:-1, 1:] - y[:-1, :-1], y[1:, :-1] - y[:-1, :-1]]


def _noise_sigma_estimate(y: np.ndarray) -> float:
    """Noise standard deviation of ``y`` from its finest wavelet coefficients (Donoho's MAD)."""
    return float(estimate_sigma(y))


def _pyramid_sizes(kernel_size: int, ratio: float = math.sqrt(2.0)) -> list[int]:
    sizes = [kernel_size]
    while sizes[-1] > 3:
        nxt = int(round(sizes[-1] / ratio))
        nxt = max(3, nxt if nxt % 2 == 1 else nxt - 1)
        if nxt >= sizes[-1]:
            nxt = sizes[-1] - 2
        sizes.append(nxt)
    return sizes[::-1]


def _auto_patch(y: np.ndarray, size: int) -> tuple[int, int, int, int]:
    """The ``size x size`` window with the most gradient energy (stride ``size // 8``)."""
    h, w = min(size, y.shape[0]), min(size, y.shape[1])
    if (h, w) == y.shape:
        return (0, 0, h, w)
    e = np.zeros_like(y)
    e[:-1, :-1] = sum(g**2 for g in _gradients(y))
    ii = np.pad(e.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    step = max(size // 8, 1)
    best, pos = -1.0, (0, 0)
    for y0 in range(0, y.shape[0] - h + 1, step):
        for x0 in range(0, y.shape[1] - w + 1, step):
            s = ii[y0 + h, x0 + w] - ii[y0, x0 + w] - ii[y0 + h, x0] + ii[y0, x0]
            if s > best:
                best, pos = s, (y0, x0)
    return (pos[0], pos[1], h, w)


# ----------------------------------------------------------------------------------------------
# One scale of the estimator
# ----------------------------------------------------------------------------------------------


class _Scale:
    """State of the estimator at one pyramid level: gradients, latent moments, kernel moments."""

    def __init__(
        self,
        y: np.ndarray,
        m: int,
        kernel: np.ndarray,
        mu: list[np.ndarray] | None,
        prior: GradientMixturePrior,
        kprior: KernelExponentialPrior,
        variational: bool,
        noise_floor: float,
    ):
        self.g = _gradients(y)
        self.m = m
        self.ops = [_ValidConv(gc.shape, m) for gc in self.g]
        self.prior, self.kprior = prior, kprior
        self.variational = variational
        self.n_obs = sum(gc.size for gc in self.g)
        self.noise_floor = noise_floor
        self.k1 = kernel.copy()  # <k>
        self.k2 = kernel**2  # <k^2>
        if mu is None:
            mu = [np.pad(gc, m // 2, mode="symmetric")[: op.lat_shape[0], : op.lat_shape[1]] for gc, op in zip(self.g, self.ops)]
        self.mu = [np.asarray(u, float) for u in mu]
        self.s2 = [np.zeros_like(u) for u in self.mu]
        self.beta = 1.0 / max(noise_floor, 0.1 * float(np.mean([np.std(gc) for gc in self.g]))) ** 2

    # -- image (latent gradient) update -------------------------------------------------------
    def update_image(self, cg_iter: int = 25) -> None:
        kvar = np.maximum(self.k2 - self.k1**2, 0.0)
        for ch, (gc, op) in enumerate(zip(self.g, self.ops)):
            op.set_kernel(self.k1)
            a = op.coverage(self.k2)  # diag <K^T K>
            c = op.coverage(kvar)  # extra weight from the kernel's variance
            e2 = self.mu[ch] ** 2 + self.s2[ch]
            w = self.prior.precision(e2)
            if self.variational:
                self.s2[ch] = 1.0 / (self.beta * a + w)
            diag = self.beta * c + w
            rhs = self.beta * op.adjoint(gc)
            self.mu[ch] = _cg(lambda v: self.beta * op.adjoint(op.forward(v)) + diag * v, rhs, self.mu[ch], 1.0 / (self.beta * a + diag), cg_iter)

    # -- kernel update ------------------------------------------------------------------------
    def update_kernel(self, sweeps: int = 2) -> float:
        """Mean-field (VB) or point (MAP) update of the kernel entries, coordinate by coordinate.

        The Gram matrix of the valid convolution depends on where each tap sits relative to the
        border; rather than forming it exactly (``O(N m^4)``), the observations are completed to
        the full convolution with the current prediction ``<k> * mu`` outside the valid window
        (an EM step for missing data, whose fixed point is the valid-only one), so the Gram matrix
        becomes the Toeplitz autocorrelation of ``mu``, computed by FFT.
        """
        m = self.m
        n = m * m
        A = np.zeros((n, n))
        b = np.zeros(n)
        for ch, (gc, op) in enumerate(zip(self.g, self.ops)):
            ext = signal.fftconvolve(self.mu[ch], self.k1, mode="full")
            ext[m - 1 : m - 1 + gc.shape[0], m - 1 : m - 1 + gc.shape[1]] = gc
            A += _autocorr_matrix(self.mu[ch], m)
            b += signal.fftconvolve(ext, self.mu[ch][::-1, ::-1], mode="valid").ravel()
            if self.variational:
                A[np.diag_indices(n)] += op.correlate_obs(self.s2[ch], np.ones(gc.shape)).ravel()
        k1 = self.k1.ravel().copy()
        k2 = self.k2.ravel().copy()
        old = k1.copy()
        beta = self.beta
        diagA = np.maximum(np.diag(A).copy(), 1e-12)
        for _ in range(sweeps):
            lam = self.kprior.expected_rate(k1)
            for j in range(n):
                rest = A[j] @ k1 - diagA[j] * k1[j]
                mean = (b[j] - rest - lam[j] / beta) / diagA[j]
                if self.variational:
                    e1, e2 = _rectified_moments(np.array([mean]), np.array([beta * diagA[j]]))
                    k1[j], k2[j] = e1[0], e2[0]
                else:
                    k1[j] = max(mean, 0.0)
                    k2[j] = k1[j] ** 2
        s = k1.sum()
        if s <= 0:  # degenerate: keep the previous kernel
            return 0.0
        # Fix the scale ambiguity k * u = (k / s) * (s u): the kernel sums to one.
        self.k1 = (k1 / s).reshape(m, m)
        self.k2 = (k2 / s**2).reshape(m, m)
        self.mu = [u * s for u in self.mu]
        self.s2 = [v * s * s for v in self.s2]
        return float(np.abs(self.k1.ravel() - old / max(old.sum(), 1e-12)).sum())

    def clean_kernel(self, rel: float) -> None:
        """Zero the entries below ``rel * max`` (noise the data cannot pin down) and renormalise."""
        keep = self.k1 >= rel * self.k1.max()
        s = self.k1[keep].sum()
        self.k1 = np.where(keep, self.k1, 0.0) / s
        self.k2 = np.where(keep, self.k2, 0.0) / s**2

    # -- noise update -------------------------------------------------------------------------
    def update_noise(self) -> float:
        kvar = np.maximum(self.k2 - self.k1**2, 0.0)
        err = 0.0
        for ch, (gc, op) in enumerate(zip(self.g, self.ops)):
            op.set_kernel(self.k1)
            err += float(np.sum((gc - op.forward(self.mu[ch])) ** 2))
            if self.variational:
                err += float(np.sum(op.coverage(self.k2) * self.s2[ch] + op.coverage(kvar) * self.mu[ch] ** 2))
        var = max(err / self.n_obs, self.noise_floor**2)
        self.beta = 1.0 / var
        return math.sqrt(var)


def _cg(op: Callable, rhs: np.ndarray, x0: np.ndarray, minv: np.ndarray, n_iter: int) -> np.ndarray:
    """Jacobi-preconditioned conjugate gradients for a symmetric positive definite ``op``.

    Inner products are elementwise sums, not BLAS calls: on these ~10^5-element arrays a
    threaded BLAS ``dot`` cost more than the FFTs on a busy 2-core machine (measured).
    """
    x = x0.copy()
    r = rhs - op(x)
    z = minv * r
    p = z.copy()
    rz = float(np.sum(r * z))
    stop = 1e-12 * float(np.sum(rhs * rhs)) + 1e-300
    for _ in range(n_iter):
        ap = op(p)
        alpha = rz / float(np.sum(p * ap))
        x += alpha * p
        r -= alpha * ap
        if float(np.sum(r * r)) < stop:
            break
        z = minv * r
        rz_new = float(np.sum(r * z))
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x


def _search(yp, kernel_size, sizes, variational, rng, n_iter, sigma_n, prior, kernel_prior, report, cancel):
    """One coarse-to-fine search from a jittered 3x3 start; returns the last scale's state and
    its history (``scales``, ``kernels``, ``iterations``, ``noise_sigma``, ``kernel_change``)."""
    k = np.array([[0.0, 0.5, 0.0], [0.5, 1.0, 0.5], [0.0, 0.5, 0.0]]) + START_JITTER * rng.uniform(size=(3, 3))
    k /= k.sum()
    hist: dict = {"scales": sizes, "kernels": [], "iterations": [], "noise_sigma": [], "kernel_change": [], "cancelled": False}
    step = 0
    mu = None
    state = None
    for si, m in enumerate(sizes):
        ratio = m / kernel_size
        ys = yp if m == kernel_size else skimage.transform.rescale(yp, ratio, anti_aliasing=True, order=1, mode="symmetric")
        if si > 0:
            k = skimage.transform.resize(state.k1, (m, m), order=1, mode="constant", anti_aliasing=False)
            k = np.maximum(k, 0)
            k /= k.sum()
            lat = [(ys.shape[0] - 1 + m - 1, ys.shape[1] - 1 + m - 1)] * 2
            up = sizes[si] / sizes[si - 1]
            mu = [skimage.transform.resize(u, sh, order=1, mode="edge") / up for u, sh in zip(state.mu, lat)]
        # Noise in gradients: differences double the variance; downsampling averages it down.
        floor = math.sqrt(2.0) * sigma_n * ratio
        state = _Scale(ys, m, k, mu, prior, kernel_prior, variational, floor)
        it = 0
        for it in range(n_iter):
            state.update_image()
            change = state.update_kernel()
            hist["noise_sigma"].append(state.update_noise())
            hist["kernel_change"].append(change)
            step += 1
            report(step, f"scale {si + 1}/{len(sizes)} ({m}x{m}) iteration {it + 1}/{n_iter}")
            if cancel is not None and cancel():
                hist["cancelled"] = True
                break
            if it >= 3 and change < 1e-4:
                break
        state.clean_kernel(KERNEL_THRESHOLD)
        hist["kernels"].append(state.k1.copy())
        hist["iterations"].append(it + 1)
        if hist["cancelled"]:
            break
    return state, hist


# ----------------------------------------------------------------------------------------------
# Public entry point
# ----------------------------------------------------------------------------------------------


def blind_deconvolve(
    blurred: np.ndarray,
    kernel_size: int,
    method: str = "vb",
    seed: int = 0,
    progress: ProgressFn | None = None,
    cancel: Callable[[], bool] | None = None,
    *,
    patch: tuple[int, int, int, int] | str | None = "auto",
    max_patch: int = 256,
    n_iter: int | None = None,
    n_starts: int | None = None,
    noise_sigma: float | None = None,
    prior: GradientMixturePrior = GRADIENT_PRIOR,
    kernel_prior: KernelExponentialPrior = KERNEL_PRIOR,
    nonblind: str | None = None,
    nonblind_params: dict | None = None,
    boundary: str = "taper",
    init: str | np.ndarray | None = None,
    steps: int | None = None,
    nsamples: int | None = None,
    score_prior=None,
) -> BlindResult:
    """Estimate the blur kernel of an image and deblur it (Fergus et al. 2006 model).

    Solves ``y = k * x + n`` for an unknown kernel ``k`` (non-negative, sums to one) in the
    gradient domain, coarse to fine; see the module docstring for the model and the updates.

    Parameters
    ----------
    blurred : (ny, nx) array
        Blurred, noisy image ``y``, linear intensities (undo any display gamma first).
    kernel_size : int
        Odd size of the kernel to estimate in pixels (>= 3), a little larger than the blur.
    method : {"vb", "map", "diffusion"}
        ``"vb"``: mean-field Variational Bayes (marginalises the image when estimating ``k``);
        ``"map"``: joint point estimate of image and kernel (known to drift to the delta kernel);
        ``"diffusion"``: kernel refitted along a diffusion posterior sweep of the MRI prior
        (:func:`mrideblur.deblur.blind_diffusion.blind_deconvolve_diffusion`, which has more
        options); needs torch, about ``steps * nsamples`` UNet calls (50 ms each at 128 x 128
        on one CPU thread).
    seed : int
        Seeds the random perturbations of the initial 3x3 kernels (one per start) and, for
        ``"diffusion"``, the sampler; everything else is deterministic, so the same seed gives
        the same result.
    progress : callable(step, total, message), optional
        Called after every iteration.
    cancel : callable() -> bool, optional
        Polled every iteration; when it returns True the search stops and the current kernel
        is used (``history["cancelled"] = True``).
    patch : "auto", None or (y0, x0, height, width)
        Region used to infer the kernel (Fergus et al. let the user pick one): ``"auto"``
        takes the ``max_patch``-sized window with the most gradient energy, ``None`` the whole
        image.  The final deconvolution always covers the whole image.  ``"diffusion"`` runs its
        sampler on the patch (its cost grows with the patch's area).
    max_patch : int
        Side of the ``"auto"`` patch in pixels.
    n_iter : int, optional
        Iterations per scale (image, kernel and noise updates each); default 40, and 10 for
        the VB start of ``"diffusion"`` (``init="vb"``).
    n_starts : int, optional
        Independent coarse-to-fine searches from differently jittered 3x3 kernels; the one with
        the smallest final data misfit (VB's expected residual at the finest scale) is kept.
        The search is non-convex and a single start lands in a poor optimum on some images;
        on six hard benchmark cases the smallest misfit picked the best of three starts every
        time (``history["start_misfits"]``).  Default 3 (1 for the VB start of
        ``"diffusion"``).
    noise_sigma : float, optional
        Noise standard deviation of ``y`` if known (intensity units); a robust estimate from
        the image otherwise.  It is the floor of the noise level that VB estimates.
    prior, kernel_prior
        Image-gradient and kernel priors.
    nonblind : str, optional
        Method of :func:`mrideblur.deblur.deconvolve` for the final image (default
        ``"hyper-laplacian"``, for ``"diffusion"`` too: its sampler's own posterior-mean image,
        kept in ``history["sample"]``, was below the hyper-Laplacian deconvolution with the same
        kernel in 19 of 21 benchmark runs on MRI slices, by a median 0.7 dB;
        ``nonblind="diffusion"`` reruns the sampler with the kernel fixed).
    nonblind_params : dict, optional
        Its parameters.
    boundary : {"taper", "periodic", "valid"}
        Boundary handling of the final deconvolution (see :func:`deconvolve`).
    init : {"delta", "gaussian", "vb"} or (kernel_size, kernel_size) array, optional
        ``"diffusion"`` only: the starting kernel (default ``"delta"``; ``"vb"`` a cheap VB
        estimate, whose iterations and starts ``n_iter`` and ``n_starts`` set).
    steps : int, optional
        ``"diffusion"`` only: sampler steps (default 40).
    nsamples : int, optional
        ``"diffusion"`` only: chains sampled together; the kernel is fitted to their mean
        (default 1).
    score_prior : ScorePrior or path, optional
        ``"diffusion"`` only: the diffusion prior (default the shipped weights).

    Returns
    -------
    BlindResult
        ``image``, ``kernel`` and ``history``.

    Raises
    ------
    ValueError
        Bad image (not 2D, NaN/inf), even or too small ``kernel_size``, kernel larger than
        the patch, unknown method, patch outside the image, or a ``"diffusion"`` option given
        to another method.
    """
    t0 = time.perf_counter()
    y = check_image(blurred, "blurred")
    if method not in BLIND_METHODS:
        raise ValueError(f"method: expected one of {BLIND_METHODS}, got {method!r}")
    if int(kernel_size) != kernel_size or kernel_size < 3 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size: expected an odd integer >= 3, got {kernel_size}")
    kernel_size = int(kernel_size)
    if patch == "auto":
        patch = _auto_patch(y, max_patch)
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
        raise ValueError(f"kernel_size: {kernel_size} is too large for the image/patch {yp.shape} (need at least twice the kernel size)")

    if method == "diffusion":
        return _blind_diffusion(y, yp, (y0, x0, ph, pw), kernel_size, seed, progress, cancel, t0,
                                n_iter=n_iter, n_starts=n_starts, noise_sigma=noise_sigma, nonblind=nonblind,
                                nonblind_params=nonblind_params, boundary=boundary, init=init, steps=steps,
                                nsamples=nsamples, score_prior=score_prior)
    for name, value in (("init", init), ("steps", steps), ("nsamples", nsamples), ("score_prior", score_prior)):
        if value is not None:
            raise ValueError(f"{name}: only method='diffusion' takes it, not {method!r}")
    n_iter = 40 if n_iter is None else n_iter
    n_starts = 3 if n_starts is None else n_starts
    nonblind = "hyper-laplacian" if nonblind is None else nonblind
    sigma_n = _noise_sigma_estimate(yp) if noise_sigma is None else float(noise_sigma)
    if int(n_starts) != n_starts or n_starts < 1:
        raise ValueError(f"n_starts: expected an integer >= 1, got {n_starts}")
    sizes = _pyramid_sizes(kernel_size)
    total = n_starts * len(sizes) * n_iter + 1
    starts = []
    for start in range(int(n_starts)):
        done = start * len(sizes) * n_iter

        def report(step: int, msg: str, start: int = start, done: int = done) -> None:
            if progress is not None:
                progress(done + step, total, f"start {start + 1}/{n_starts}: {msg}")

        starts.append(_search(yp, kernel_size, sizes, method == "vb", np.random.default_rng([seed, start]),
                              n_iter, sigma_n, prior, kernel_prior, report, cancel))
        if starts[-1][1]["cancelled"]:
            break
    # Keep the start whose final data misfit (the expected residual ||g - k * u||, i.e. the
    # likelihood term of the free energy at the finest scale) is smallest.
    misfits = [h["noise_sigma"][-1] if h["noise_sigma"] else np.inf for _, h in starts]
    best = int(np.argmin(misfits))
    state, hist = starts[best]
    hist.update({"method": method, "patch": (y0, x0, ph, pw), "noise_sigma_input": sigma_n,
                 "start_misfits": misfits, "chosen_start": best,
                 "cancelled": any(h["cancelled"] for _, h in starts)})
    kernel = state.k1
    if kernel.shape[0] != kernel_size:  # cancelled before the last scale
        kernel = skimage.transform.resize(kernel, (kernel_size, kernel_size), order=1)
        kernel = np.maximum(kernel, 0)
        kernel /= kernel.sum()
    kernel = center_kernel(kernel)
    params = {"boundary": boundary, **(nonblind_params or {})}
    image = deconvolve(y, kernel, method=nonblind, **params)
    if progress is not None:
        progress(total, total, "non-blind deconvolution done")
    hist["seconds"] = time.perf_counter() - t0
    return BlindResult(image=image, kernel=kernel, history=hist)


def _blind_diffusion(y, yp, patch, kernel_size, seed, progress, cancel, t0, *, n_iter, n_starts, noise_sigma,
                     nonblind, nonblind_params, boundary, init, steps, nsamples, score_prior) -> BlindResult:
    """``method="diffusion"``: the estimate on the patch, then the image (see blind_deconvolve)."""
    from .blind_diffusion import blind_deconvolve_diffusion
    from .nonblind import METHODS, _parse_params

    # Check the final deconvolution's options now, not after the sampler has run.
    if nonblind is not None and nonblind not in METHODS:
        raise ValueError(f"nonblind: expected one of {METHODS}, got {nonblind!r}")
    _parse_params(nonblind or "hyper-laplacian", dict(nonblind_params or {}))
    vb_params = {k: v for k, v in (("n_iter", n_iter), ("n_starts", n_starts)) if v is not None}
    if vb_params and not (isinstance(init, str) and init == "vb"):
        raise ValueError(f"{next(iter(vb_params))}: method='diffusion' uses it only for its VB start (init='vb')")
    opts = {k: v for k, v in (("init", init), ("steps", steps), ("nsamples", nsamples)) if v is not None}
    whole = yp.shape == y.shape
    sample, kernel, hist = blind_deconvolve_diffusion(
        yp, kernel_size, seed, progress, cancel, vb_params=vb_params, noise_sigma=noise_sigma,
        score_prior=score_prior, boundary=boundary if whole else "taper", **opts)
    hist.update({"patch": patch, "sample": sample, "nonblind": nonblind or "hyper-laplacian"})
    image = deconvolve(y, kernel, method=nonblind or "hyper-laplacian", boundary=boundary, **(nonblind_params or {}))
    if progress is not None:
        progress(1, 1, "done")
    hist["seconds"] = time.perf_counter() - t0
    return BlindResult(image=image, kernel=kernel, history=hist)
