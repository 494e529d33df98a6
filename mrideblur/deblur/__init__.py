"""Image-domain deblurring: ``y = k * x + n`` with known or unknown kernel ``k``.

- kernels: :func:`gaussian_kernel`, :func:`disk_kernel`, :func:`linear_motion_kernel`,
  :func:`camera_shake_kernel`, :func:`validate_kernel`;
- the physics: :func:`blur`;
- non-blind estimators: :func:`deconvolve` (inverse, Wiener, Tikhonov, hyper-Laplacian,
  Richardson-Lucy);
- blind estimators: :func:`blind_deconvolve` (Variational Bayes after Fergus et al. 2006, the
  same model solved by joint MAP, and kernel refits along a diffusion posterior sweep of the MRI
  prior, :mod:`mrideblur.estimators.blind_diffusion`).
"""

from ..estimators.api import blind_deconvolve, deconvolve
from ..estimators.base import Result
from ..estimators.catalogue import methods as _methods
from ..physics.blur import blur, edgetaper, psf2otf
from ..physics.kernels import (
    camera_shake_kernel,
    center_kernel,
    disk_kernel,
    gaussian_kernel,
    linear_motion_kernel,
    validate_kernel,
)

#: Non-blind and blind methods, read from the catalogue.
METHODS = _methods("deconvolve")
BLIND_METHODS = _methods("blind-deconvolve")
#: The result of :func:`blind_deconvolve` (``image``, ``kernel``, ``history``).
BlindResult = Result

__all__ = [
    "BLIND_METHODS",
    "BlindResult",
    "METHODS",
    "Result",
    "blind_deconvolve",
    "blur",
    "camera_shake_kernel",
    "center_kernel",
    "deconvolve",
    "disk_kernel",
    "edgetaper",
    "gaussian_kernel",
    "linear_motion_kernel",
    "psf2otf",
    "validate_kernel",
]
