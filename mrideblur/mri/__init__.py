"""Multi-coil MRI with rigid motion: ``y_s = M_s F S T(theta_s) x + n`` for every shot ``s``.

- :mod:`.fourier`: the centred orthonormal FFT of CONVENTIONS.md (numpy and torch);
- :mod:`.motion` / :mod:`.motion_torch`: rigid motion ``T(theta)`` by Fourier shears;
- :mod:`.shots`: shot maps (which lines each shot acquired);
- :mod:`.coils`: coil maps — ESPIRiT/JSENSE calibration, simulated arrays, a polynomial model;
- :mod:`.model` / :mod:`.model_torch`: the whole model as a sigpy ``Linop`` and its
  differentiable torch twin;
- :mod:`.recon`: known-motion CG-SENSE (:func:`sense_recon`), the oracle of every benchmark;
- :mod:`.simulate`: motion-corrupted cases from any image or volume, without the inverse crime.
- :mod:`.autofocus`: per-shot motion from one image (no raw k-space) by gradient-entropy autofocus.
"""

from .autofocus import autofocus
from .coils import PolynomialCoilModel, estimate_sens, normalize_sens, simulate_sens
from .fourier import fft, ifft
from .model import MultiShotSense
from .model_torch import MultiShotSenseTorch
from .motion import RigidMotion, rigid2d, rigid3d
from .recon import sense_recon
from .shots import make_shot_index, shot_masks, validate_shot_index
from .simulate import motion_track, simulate

__all__ = [
    "autofocus",
    "MultiShotSense",
    "MultiShotSenseTorch",
    "PolynomialCoilModel",
    "RigidMotion",
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
