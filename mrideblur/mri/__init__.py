"""Multi-coil MRI with rigid motion: ``y_s = M_s F S T(theta_s) x + n`` for every shot ``s``.

What MRI users call, gathered from the layers that hold it:

- :func:`correct`: motion correction of raw k-space by a method of the catalogue
  (``"none"``, ``"aligned-sense"``, ``"jsmoco"``; :data:`METHODS`), returning a :class:`Result`;
- :func:`correct_magnitude_image`: motion correction of a magnitude image without raw data;
- :func:`sense_recon`: known-motion CG-SENSE, the oracle of every benchmark;
- the physics (:mod:`mrideblur.physics`): :func:`fft`/:func:`ifft` (the centred orthonormal FFT
  of docs/conventions.md), rigid motion, shot maps, coil maps, the model as a sigpy ``Linop``
  (:class:`MultiShotSense`) and its torch twin, and :func:`simulate`.
"""

from ..estimators.api import correct, correct_magnitude_image
from ..estimators.autofocus import autofocus
from ..estimators.base import Result
from ..estimators.catalogue import methods as _methods
from ..physics.coils import PolynomialCoilModel, coil_carriers, estimate_sens, normalize_sens, simulate_sens
from ..physics.fourier import fft, ifft
from ..physics.multishot import MultiShotSense
from ..physics.multishot_torch import MultiShotSenseTorch
from ..physics.motion import RigidMotion, rigid2d, rigid3d
from ..estimators.sense import sense_recon
from ..physics.shots import make_shot_index, shot_masks, validate_shot_index
from ..physics.simulate import motion_track, simulate

#: Methods of :func:`correct`, read from the catalogue.
METHODS = _methods("kspace")

__all__ = [
    "METHODS",
    "Result",
    "autofocus",
    "correct",
    "correct_magnitude_image",
    "MultiShotSense",
    "MultiShotSenseTorch",
    "PolynomialCoilModel",
    "RigidMotion",
    "coil_carriers",
    "estimate_sens",
    "fft",
    "ifft",
    "make_shot_index",
    "motion_track",
    "normalize_sens",
    "rigid2d",
    "rigid3d",
    "sense_recon",
    "shot_masks",
    "simulate",
    "simulate_sens",
    "validate_shot_index",
]
