"""What the multi-coil k-space estimators share: options, coil maps to start from, and the report.

Every k-space estimator (``none``, ``aligned-sense``, ``jsmoco``) receives one 2D slice
``(coils, ky, kx)`` or one 3D volume ``(coils, kz, ky, kx)`` with its shot map (docs/conventions.md)
and known coil maps or None; :func:`mrideblur.mri.correct` splits stacks into slices, checks the
input and compares the corrected data fit against the uncorrected one.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

import numpy as np

from .. import __version__
from ..physics.coils import estimate_sens
from ..physics.multishot import MultiShotSense
from ..physics.shots import count_shots
from .base import Options, positive_int

__all__ = ["KSpaceOptions", "initial_sens", "mri_report", "residuals"]


@dataclass
class KSpaceOptions(Options):
    """Options of every k-space estimator.

    Attributes
    ----------
    calib_width : int
        Width (lines) of the fully sampled k-space centre used for coil calibration.
    device : str
        torch device for the estimation (``"cpu"`` or ``"cuda"``).
    seed : int
        Seeds every random choice; deterministic estimators record it.
    """

    calib_width: int = 24
    device: str = "cpu"
    seed: int = 0

    def validate(self) -> None:
        self.calib_width = positive_int("calib_width", self.calib_width, 2)


def initial_sens(kspace: np.ndarray, sens: np.ndarray | None, options: KSpaceOptions) -> np.ndarray:
    """The given maps, or ESPIRiT maps from the (motion-corrupted) calibration lines."""
    if sens is not None:
        return sens
    return estimate_sens(kspace, "espirit", calib_width=options.calib_width, device=options.device)


def residuals(kspace: np.ndarray, shot_index: np.ndarray, sens: np.ndarray, motion: np.ndarray | None,
              image: np.ndarray) -> tuple[float, list[float]]:
    """Relative data misfits of ``image`` under the model (one forward application, dimensionless).

    Returns ``(total, per_shot)``: ``||A x - y|| / ||y||`` over all acquired lines, and
    ``||M_s (A x - y)|| / ||M_s y||`` for every shot ``s``.
    """
    r = MultiShotSense(sens, shot_index, motion)(image) - kspace
    per_shot = []
    for s in range(count_shots(shot_index)):
        m = (shot_index == s)[..., None]
        per_shot.append(float(np.linalg.norm(r * m) / max(np.linalg.norm(kspace * m), 1e-30)))
    return float(np.linalg.norm(r) / max(float(np.linalg.norm(kspace)), 1e-30)), per_shot


def mri_report(method: str, options: Options, kspace: np.ndarray, shot_index: np.ndarray, sens: np.ndarray,
               motion: np.ndarray | None, image: np.ndarray, history: dict, seconds: dict, cancelled: bool,
               **extra) -> dict:
    """The report every k-space estimator returns (``report.json``): ``data_misfit`` and
    ``residual_per_shot`` are those of :func:`residuals`."""
    total, per_shot = residuals(kspace, shot_index, sens, motion, image)
    return {
        "method": method,
        "parameters": {**options.as_dict(), **extra},
        "data_misfit": total,
        "residual_per_shot": per_shot,
        "history": history,
        "seconds": seconds,
        "cancelled": bool(cancelled),
        "versions": {"mrideblur": __version__, "numpy": np.__version__, "python": platform.python_version()},
    }
