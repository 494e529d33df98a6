"""Fit the zero-mean mixture-of-Gaussians prior on image gradients used by blind deblurring.

Reproduces the constants ``GRADIENT_PRIOR_WEIGHTS`` and ``GRADIENT_PRIOR_VARIANCES`` of
``mrideblur/deblur/priors.py``: horizontal and vertical first differences of grey-level
photographs from scikit-image's bundled data (intensities in [0, 1]), pooled, fitted by EM with
the means held at zero (as in Fergus et al. 2006, who fitted one street scene).

Run: ``python data_scripts/fit_gradient_prior.py [--components 4]``
"""

from __future__ import annotations

import argparse

import numpy as np

from mrideblur.io.anatomy import photo

FIT_IMAGES = ("chelsea", "coffee", "rocket", "clock", "brick")


def gradients() -> np.ndarray:
    out = []
    for name in FIT_IMAGES:
        img = photo(name)
        out += [np.diff(img, axis=0).ravel(), np.diff(img, axis=1).ravel()]
    return np.concatenate(out)


def fit_zero_mean_mog(g: np.ndarray, n: int, iters: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """EM for ``p(g) = sum_c pi_c N(g; 0, v_c)``; returns (pi, v) sorted by variance."""
    v = np.var(g) * np.logspace(-2, 1, n)
    pi = np.full(n, 1.0 / n)
    g2 = g**2
    for _ in range(iters):
        logp = np.log(pi) - 0.5 * np.log(2 * np.pi * v) - g2[:, None] / (2 * v)
        logp -= logp.max(axis=1, keepdims=True)
        r = np.exp(logp)
        r /= r.sum(axis=1, keepdims=True)
        nk = r.sum(axis=0)
        pi = nk / len(g)
        v = np.maximum((r * g2[:, None]).sum(axis=0) / nk, 1e-8)
    order = np.argsort(v)
    return pi[order], v[order]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--components", type=int, default=4)
    args = ap.parse_args()
    pi, v = fit_zero_mean_mog(gradients(), args.components)
    print("GRADIENT_PRIOR_WEIGHTS =", np.array2string(pi, precision=4, separator=", "))
    print("GRADIENT_PRIOR_VARIANCES =", np.array2string(v, precision=4, separator=", "))


if __name__ == "__main__":
    main()
