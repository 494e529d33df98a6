"""mrideblur: remove blur and rigid motion from images and multi-coil MRI.

One framework, two physics: ``y = k * x + n`` (image blur, :mod:`mrideblur.deblur`) and
``y_s = M_s F S T(theta_s) x + n`` (multi-shot MRI motion, :mod:`mrideblur.mri`). Both are
solved by an image prior plus an estimator of the unknown degradation.
"""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("mrideblur")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from .threads import get_threads, set_threads

__all__ = ["__version__", "get_threads", "set_threads"]
