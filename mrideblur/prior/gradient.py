"""Priors of the blind-deblurring model of Fergus et al. (2006).

- :class:`GradientMixturePrior`: a zero-mean mixture of Gaussians on image gradients,
  ``p(u) = sum_c pi_c N(u; 0, v_c)``, heavy-tailed like natural-image statistics.
- :class:`KernelExponentialPrior`: a mixture of exponentials on each (non-negative) kernel
  entry, ``p(k) = sum_d pi_d lambda_d exp(-lambda_d k)``, ``k >= 0``: sparse and positive.

Both expose the quantities the variational (and MAP) updates need: the expected precision a
mixture puts on a variable given its second moment, and the expected exponential rate given
a mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "GradientMixturePrior",
    "KernelExponentialPrior",
    "GRADIENT_PRIOR",
    "FITTED_GRADIENT_PRIOR",
    "GRADIENT_PRIOR_TEMPER",
    "KERNEL_PRIOR",
    "GRADIENT_PRIOR_WEIGHTS",
    "GRADIENT_PRIOR_VARIANCES",
]

#: Fitted by ``data_scripts/fit_gradient_prior.py``: EM with zero means on the horizontal and
#: vertical first differences of five photographs bundled with scikit-image (chelsea, coffee,
#: rocket, clock, brick), grey levels in [0, 1].  Four components, as in Fergus et al. 2006.
GRADIENT_PRIOR_WEIGHTS = (0.4465, 0.2911, 0.1884, 0.0740)
GRADIENT_PRIOR_VARIANCES = (1.0197e-05, 1.2485e-04, 2.2885e-03, 1.9356e-02)


@dataclass(frozen=True)
class GradientMixturePrior:
    """Zero-mean Gaussian mixture on image gradients, ``p(u) = sum_c pi_c N(u; 0, v_c)``.

    Attributes
    ----------
    weights : (C,) tuple of float
        Mixing weights ``pi_c`` (sum to 1).
    variances : (C,) tuple of float
        Component variances ``v_c`` in (intensity units)^2 per pixel.
    """

    weights: tuple[float, ...] = GRADIENT_PRIOR_WEIGHTS
    variances: tuple[float, ...] = GRADIENT_PRIOR_VARIANCES

    def __post_init__(self) -> None:
        w = np.asarray(self.weights, float)
        v = np.asarray(self.variances, float)
        if w.shape != v.shape or w.ndim != 1 or np.any(w <= 0) or np.any(v <= 0):
            raise ValueError("GradientMixturePrior: expected matching positive weights and variances")

    def responsibilities(self, second_moment: np.ndarray) -> np.ndarray:
        """Posterior component probabilities given ``<u^2>``: shape ``(C,) + second_moment.shape``.

        ``r_c ~ pi_c v_c^(-1/2) exp(-<u^2> / (2 v_c))`` (the mean-field update of the hidden
        component labels).
        """
        w = np.asarray(self.weights, float)
        v = np.asarray(self.variances, float)
        e2 = np.asarray(second_moment)[None]
        shp = (-1,) + (1,) * (e2.ndim - 1)
        logr = (np.log(w) - 0.5 * np.log(v)).reshape(shp) - e2 / (2 * v.reshape(shp))
        logr -= logr.max(axis=0, keepdims=True)
        r = np.exp(logr)
        return r / r.sum(axis=0, keepdims=True)

    def precision(self, second_moment: np.ndarray) -> np.ndarray:
        """Expected prior precision ``<1/v> = sum_c r_c / v_c`` for each variable."""
        v = np.asarray(self.variances, float)
        r = self.responsibilities(second_moment)
        return np.tensordot(1.0 / v, r, axes=(0, 0))


@dataclass(frozen=True)
class KernelExponentialPrior:
    """Mixture of exponentials on kernel entries, ``p(k) = sum_d pi_d lambda_d exp(-lambda_d k)``.

    The rates are per unit of kernel mass for a kernel that sums to one, so a typical entry of
    an ``n``-pixel blur path (about ``1/n``) sits on the shoulder of the steeper components.
    Hand-set (not fitted): Fergus et al. fitted four exponentials to kernels of real camera
    shake; these values give the same sparse, positive shape and were checked not to bias the
    kernel size on the deblurring benchmark.

    Attributes
    ----------
    weights : (D,) tuple of float
    rates : (D,) tuple of float
        ``lambda_d`` in 1 / (kernel mass).
    """

    weights: tuple[float, ...] = (0.4, 0.3, 0.2, 0.1)
    rates: tuple[float, ...] = (1000.0, 300.0, 100.0, 30.0)

    def expected_rate(self, mean: np.ndarray) -> np.ndarray:
        """``<lambda> = sum_d r_d lambda_d`` with ``r_d ~ pi_d lambda_d exp(-lambda_d <k>)``."""
        w = np.asarray(self.weights, float)
        lam = np.asarray(self.rates, float)
        m = np.asarray(mean)[None]
        shp = (-1,) + (1,) * (m.ndim - 1)
        logr = (np.log(w) + np.log(lam)).reshape(shp) - lam.reshape(shp) * m
        logr -= logr.max(axis=0, keepdims=True)
        r = np.exp(logr)
        r /= r.sum(axis=0, keepdims=True)
        return np.tensordot(lam, r, axes=(0, 0))


#: Widening of the fitted variances used for inference (a tempered prior).  Mean-field VB
#: underestimates posterior variances, and with the variances as fitted the estimator drifts
#: from the true kernel towards a delta: on camera, 25 px shake, 1% noise, started *at* the true
#: kernel, kernel similarity fell from 0.90 to 0.61 in 20 iterations; with the variances x16 it
#: stayed at 0.86 (x4: 0.83, x64: 0.95 but worse from a coarse start).  Measured with the
#: ``benchmarks/prior_temper.py`` (table in ``benchmarks/prior_temper.md``).
GRADIENT_PRIOR_TEMPER = 16.0

#: The fitted prior, exactly as fitted.
FITTED_GRADIENT_PRIOR = GradientMixturePrior()
#: The prior blind deconvolution uses by default: fitted weights, variances x GRADIENT_PRIOR_TEMPER.
GRADIENT_PRIOR = GradientMixturePrior(
    GRADIENT_PRIOR_WEIGHTS, tuple(v * GRADIENT_PRIOR_TEMPER for v in GRADIENT_PRIOR_VARIANCES)
)
KERNEL_PRIOR = KernelExponentialPrior()
