"""Image-domain deblurring: ``y = k * x + n`` with known or unknown kernel ``k``.

- kernels: :func:`gaussian_kernel`, :func:`disk_kernel`, :func:`linear_motion_kernel`,
  :func:`camera_shake_kernel`, :func:`validate_kernel`;
- the physics: :func:`blur`; spatially varying blur (a camera that rolls): :class:`PoseBlur`,
  :class:`KernelField` (sigpy ``Linop`` s), :func:`roll_path`, :func:`blur_nonuniform`;
- non-blind estimators: :func:`deconvolve` (inverse, Wiener, Tikhonov, hyper-Laplacian,
  Richardson-Lucy);
- spatially varying: :func:`deconvolve_nonuniform` (known), :func:`deblur_nonuniform` (unknown:
  a field of local motion kernels, Sun et al. 2015);
- training data for learned methods: :func:`reblur_augment` (ID-Blau's re-blurring);
- blind estimators: :func:`blind_deconvolve` (Variational Bayes after Fergus et al. 2006, the
  same model solved by joint MAP, and kernel refits along a diffusion posterior sweep of the MRI
  prior, :mod:`mrideblur.estimators.blind_diffusion`).
"""

from ..estimators.api import blind_deconvolve, deblur_nonuniform, deconvolve, deconvolve_nonuniform
from ..estimators.base import Result
from ..estimators.catalogue import methods as _methods
from ..physics.blur import blur, edgetaper, psf2otf
from ..learn.reblur import reblur_augment
from ..physics.nonuniform import KernelField, PoseBlur, blur_nonuniform, roll_path, roll_sweep
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
NONUNIFORM_METHODS = _methods("deconvolve-nonuniform")
BLIND_NONUNIFORM_METHODS = _methods("deblur-nonuniform")
BLIND_METHODS = _methods("blind-deconvolve")
#: The result of :func:`blind_deconvolve` (``image``, ``kernel``, ``history``).
BlindResult = Result

__all__ = [
    "BLIND_METHODS",
    "BLIND_NONUNIFORM_METHODS",
    "BlindResult",
    "KernelField",
    "METHODS",
    "NONUNIFORM_METHODS",
    "PoseBlur",
    "Result",
    "blind_deconvolve",
    "blur",
    "blur_nonuniform",
    "camera_shake_kernel",
    "center_kernel",
    "deblur_nonuniform",
    "deconvolve",
    "deconvolve_nonuniform",
    "disk_kernel",
    "edgetaper",
    "gaussian_kernel",
    "linear_motion_kernel",
    "psf2otf",
    "reblur_augment",
    "roll_path",
    "roll_sweep",
    "validate_kernel",
]
