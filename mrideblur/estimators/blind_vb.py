r"""Blind deconvolution: estimate the kernel ``k`` and the sharp image ``x`` from ``y = k * x + n``.

The model is Fergus et al., "Removing camera shake from a single photograph" (SIGGRAPH 2006):

- it works on image *gradients*, ``g = D y`` with ``D`` the horizontal and vertical first
  differences; since convolution commutes with ``D``, ``g = k * u + n`` with ``u = D x``;
- likelihood ``p(g | k, u) = N(g; k * u, 1/beta)`` (``beta`` the noise precision, estimated);
- image prior ``p(u) = prod_l sum_c pi_c N(u_l; 0, v_c)`` — a zero-mean Gaussian mixture
  fitted to natural-image gradients (:class:`~mrideblur.prior.gradient.GradientMixturePrior`);
- kernel prior ``p(k) = prod_j sum_d pi_d lambda_d exp(-lambda_d k_j)``, ``k_j >= 0`` (sparse,
  positive; :class:`~mrideblur.prior.gradient.KernelExponentialPrior`);
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
posterior sampler explores the image (:mod:`mrideblur.estimators.blind_diffusion`); the final image
is again a non-blind deconvolution with the estimated kernel, the sampler's own image is kept in
the history.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import skimage.transform
from scipy import fft as sfft
from scipy import signal
from scipy.special import erfcx

from ..physics.cg import conjugate_gradient
from ..physics.kernels import center_kernel
from ..prior.gradient import GRADIENT_PRIOR, KERNEL_PRIOR, GradientMixturePrior, KernelExponentialPrior
from .base import CancelFn, ProgressFn, Result, positive_int
from .blind_common import BlindOptions, final_image, gradients, noise_sigma_estimate, prepare

__all__ = ["MAPOptions", "VBOptions", "run"]

#: Kernel entries below this fraction of the maximum are set to zero at the end of each scale.
KERNEL_THRESHOLD = 0.1
#: Amplitude of the uniform jitter added to the 3x3 starting kernel (of mass 3) per start.
START_JITTER = 0.5


@dataclass
class VBOptions(BlindOptions):
    """Options of ``method="vb"`` (and of ``"map"``), besides those of every blind method
    (:class:`~mrideblur.estimators.blind_common.BlindOptions`).

    Attributes
    ----------
    n_iter : int
        Iterations per scale (image, kernel and noise updates each).
    n_starts : int
        Independent coarse-to-fine searches from differently jittered 3x3 kernels; the one with
        the smallest final data misfit (the expected residual at the finest scale) is kept.  The
        search is non-convex and a single start lands in a poor optimum on some images; on six
        hard benchmark cases the smallest misfit picked the best of three starts every time
        (``history["start_misfits"]``).
    prior, kernel_prior
        Image-gradient prior (:class:`~mrideblur.prior.gradient.GradientMixturePrior`) and kernel
        prior (:class:`~mrideblur.prior.gradient.KernelExponentialPrior`).
    """

    n_iter: int = 40
    n_starts: int = 3
    prior: Any = GRADIENT_PRIOR
    kernel_prior: Any = KERNEL_PRIOR
    variational = True  # class attribute: VB (True) or joint MAP (False)

    def validate(self) -> None:
        super().validate()
        self.n_iter = positive_int("n_iter", self.n_iter)
        self.n_starts = positive_int("n_starts", self.n_starts)


@dataclass
class MAPOptions(VBOptions):
    """Options of ``method="map"``: those of VB; the same model solved for point estimates."""

    variational = False


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

    def update_parameters(self, kernel: np.ndarray) -> None:
        """Replace the kernel ``(m, m)`` (the physics' unknown parameter)."""
        self.kf = sfft.rfft2(kernel, s=self.fshape)

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


def _pyramid_sizes(kernel_size: int, ratio: float = math.sqrt(2.0)) -> list[int]:
    sizes = [kernel_size]
    while sizes[-1] > 3:
        nxt = int(round(sizes[-1] / ratio))
        nxt = max(3, nxt if nxt % 2 == 1 else nxt - 1)
        if nxt >= sizes[-1]:
            nxt = sizes[-1] - 2
        sizes.append(nxt)
    return sizes[::-1]


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
        self.g = gradients(y)
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
            op.update_parameters(kernel=self.k1)
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
            op.update_parameters(kernel=self.k1)
            err += float(np.sum((gc - op.forward(self.mu[ch])) ** 2))
            if self.variational:
                err += float(np.sum(op.coverage(self.k2) * self.s2[ch] + op.coverage(kvar) * self.mu[ch] ** 2))
        var = max(err / self.n_obs, self.noise_floor**2)
        self.beta = 1.0 / var
        return math.sqrt(var)


def _cg(op: Callable, rhs: np.ndarray, x0: np.ndarray, minv: np.ndarray, n_iter: int) -> np.ndarray:
    """Jacobi-preconditioned conjugate gradients for a symmetric positive definite ``op``
    (:func:`mrideblur.physics.cg.conjugate_gradient`, preconditioner ``minv * r``): at most
    ``n_iter`` iterations from ``x0``, stopping at ``||r|| <= 1e-6 ||rhs||``."""
    return conjugate_gradient(op, rhs, x0, max_iter=n_iter, tol=1e-6, M=lambda r: minv * r)


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


def run(blurred: np.ndarray, kernel_size: int, options: VBOptions, progress: ProgressFn | None = None,
        cancel: CancelFn | None = None) -> Result:
    """Estimate the blur kernel of an image and deblur it: ``method="vb"`` or ``"map"``.

    Solves ``y = k * x + n`` for an unknown kernel ``k`` (non-negative, sums to one) in the
    gradient domain, coarse to fine; see the module docstring for the model and the updates.

    Parameters
    ----------
    blurred : (ny, nx) array
        Blurred, noisy image ``y``, linear intensities (undo any display gamma first).
    kernel_size : int
        Odd size of the kernel to estimate in pixels (>= 3), a little larger than the blur.
    options : VBOptions or MAPOptions
    progress : callable(step, total, message), optional
        Called after every iteration.
    cancel : callable() -> bool, optional
        Polled every iteration; when it returns True the search stops and the current kernel
        is used (``history["cancelled"] = True``).

    Returns
    -------
    Result
        ``image`` (the non-blind deconvolution of the whole input with ``kernel``; larger,
        ``(ny + ky - 1, nx + kx - 1)``, for ``boundary="valid"``), ``kernel``
        (``(kernel_size, kernel_size)``, posterior mean for VB, centred by its centre of mass)
        and ``history``: ``scales`` (kernel size per scale), ``kernels`` (estimate at the end of
        each scale), ``iterations``, ``noise_sigma`` and ``kernel_change`` (per iteration, all
        scales), ``patch``, ``start_misfits``, ``chosen_start``, ``seconds``, ``cancelled``.
    """
    t0 = time.perf_counter()
    y, yp, patch, kernel_size = prepare(blurred, kernel_size, options)
    method = "vb" if options.variational else "map"
    n_iter, n_starts, seed = options.n_iter, options.n_starts, options.seed
    sigma_n = noise_sigma_estimate(yp) if options.noise_sigma is None else float(options.noise_sigma)
    sizes = _pyramid_sizes(kernel_size)
    total = n_starts * len(sizes) * n_iter + 1
    starts = []
    for start in range(n_starts):
        done = start * len(sizes) * n_iter

        def report(step: int, msg: str, start: int = start, done: int = done) -> None:
            if progress is not None:
                progress(done + step, total, f"start {start + 1}/{n_starts}: {msg}")

        starts.append(_search(yp, kernel_size, sizes, options.variational, np.random.default_rng([seed, start]),
                              n_iter, sigma_n, options.prior, options.kernel_prior, report, cancel))
        if starts[-1][1]["cancelled"]:
            break
    # Keep the start whose final data misfit (the expected residual ||g - k * u||, i.e. the
    # likelihood term of the free energy at the finest scale) is smallest.
    misfits = [h["noise_sigma"][-1] if h["noise_sigma"] else np.inf for _, h in starts]
    best = int(np.argmin(misfits))
    state, hist = starts[best]
    hist.update({"method": method, "patch": patch, "noise_sigma_input": sigma_n,
                 "start_misfits": misfits, "chosen_start": best,
                 "cancelled": any(h["cancelled"] for _, h in starts)})
    kernel = state.k1
    if kernel.shape[0] != kernel_size:  # cancelled before the last scale
        kernel = skimage.transform.resize(kernel, (kernel_size, kernel_size), order=1)
        kernel = np.maximum(kernel, 0)
        kernel /= kernel.sum()
    kernel = center_kernel(kernel)
    image = final_image(y, kernel, options)
    if progress is not None:
        progress(total, total, "non-blind deconvolution done")
    hist["seconds"] = time.perf_counter() - t0
    report = {"method": method, "parameters": options.as_dict(), "seconds": hist["seconds"],
              "cancelled": hist["cancelled"]}
    return Result(image=image, kernel=kernel, history=hist, report=report)
