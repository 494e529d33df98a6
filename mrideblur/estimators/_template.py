"""A template estimator: copy this file to add a method, then add one line to the catalogue.

This one is real and tested (``tests/test_catalogue.py``): ``deconvolve(y, k, method="landweber")``
would run it once its catalogue line exists.  It solves ``y = k * x + n`` for ``x`` with the
kernel known, by Landweber iterations (gradient descent on ``||k * x - y||^2 / 2``),

.. math:: x_{i+1} = x_i + \\tau\\, k^T * (y - k * x_i), \\qquad 0 < \\tau < 2 / \\|k\\|_1^2,

stopped early (the iteration count is the regulariser), with circular convolution.

To add an estimator:

1. copy this file to ``mrideblur/estimators/<name>.py``;
2. write the ``Options`` dataclass (fields with defaults, documented; ``validate`` checks values
   and raises ``ValueError`` naming the field) and the ``run`` function with the signature of
   its problem (:data:`mrideblur.estimators.catalogue.PROBLEMS`): physics from
   :mod:`mrideblur.physics`, a prior from :mod:`mrideblur.prior` if it needs one; poll ``cancel``
   via :func:`~mrideblur.estimators.base.check_cancel`, report ``progress``, return a
   :class:`~mrideblur.estimators.base.Result` (or the image, for ``"deconvolve"``);
3. add one :class:`~mrideblur.estimators.catalogue.Entry` line to ``CATALOGUE``.

The public entry point, the CLI's ``--method`` choices, the batch runner and the napari
widgets then list and run it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..physics.blur import check_image, psf2otf
from ..physics.kernels import validate_kernel
from .base import Options, positive_int

__all__ = ["LandweberOptions", "run"]


@dataclass
class LandweberOptions(Options):
    """Options of the Landweber deconvolution.

    Attributes
    ----------
    n_iter : int
        Iterations (>= 1); fewer iterations regularise more.
    step : float
        Step ``tau`` as a fraction of the stability bound ``2 / max |K|^2``, in (0, 1).
    """

    n_iter: int = 50
    step: float = 0.9

    def validate(self) -> None:
        self.n_iter = positive_int("n_iter", self.n_iter)
        if not 0 < self.step < 1:
            raise ValueError(f"step: expected a value in (0, 1), got {self.step!r}")


def run(blurred: np.ndarray, kernel: np.ndarray, options: LandweberOptions) -> np.ndarray:
    """Deconvolve ``blurred`` ``(ny, nx)`` by ``kernel`` ``(m, m)`` with Landweber iterations.

    Returns the ``(ny, nx)`` float64 estimate of ``x`` (periodic boundaries).
    """
    y = check_image(blurred, "blurred")
    otf = psf2otf(validate_kernel(kernel, "kernel"), y.shape)
    tau = options.step * 2.0 / float(np.max(np.abs(otf)) ** 2)
    Y = np.fft.fft2(y)
    X = np.zeros_like(Y)
    for _ in range(options.n_iter):
        X = X + tau * np.conj(otf) * (Y - otf * X)
    return np.real(np.fft.ifft2(X))
