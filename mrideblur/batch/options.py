"""What ``mrideblur batch`` runs: its options, its studies, and the flags-to-method mapping.

The method lists come from the catalogue (:mod:`mrideblur.estimators.catalogue`); the NIfTI
flags (``--motion-csv``, ``--motion-model step|per-shot``) only name one of its ``magnitude``
methods (:func:`magnitude_method`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..estimators.catalogue import methods

__all__ = ["BatchOptions", "EXIT_FAILED_ROWS", "INPUT_SUFFIXES", "KSPACE_METHODS", "MANIFEST_COLUMNS",
           "MOTION_MODELS", "NIFTI_METHODS", "SUMMARY_COLUMNS", "Study", "magnitude_method"]

NIFTI_SUFFIXES = (".nii", ".nii.gz")
HDF5_SUFFIXES = (".h5", ".hdf5")
INPUT_SUFFIXES = NIFTI_SUFFIXES + HDF5_SUFFIXES
#: k-space methods (:data:`mrideblur.mri.METHODS`), from the catalogue.
KSPACE_METHODS = methods("kspace")
#: The autofocus methods of NIfTI magnitude images, ``<model>-autofocus`` in the catalogue.
_AUTOFOCUS = "-autofocus"
#: NIfTI autofocus motion models (``--motion-model``): the catalogue's ``step-autofocus`` and
#: ``per-shot-autofocus``.
MOTION_MODELS = tuple(m[: -len(_AUTOFOCUS)] for m in methods("magnitude") if m.endswith(_AUTOFOCUS))
#: The catalogue's magnitude method that corrects with a known motion table (``--motion-csv``).
KNOWN_MOTION = "known-motion"
#: Methods for NIfTI magnitude images (no raw k-space): ``autofocus`` (a magnitude method of the
#: catalogue, :func:`magnitude_method`), or JSMoCo on the image's single-coil k-space.
NIFTI_METHODS = ("autofocus",) + tuple(m for m in KSPACE_METHODS if m == "jsmoco")
#: Columns of ``summary.csv``.
SUMMARY_COLUMNS = ("input", "study", "status", "slices", "psnr_uncorrected_db", "psnr_corrected_db",
                   "seconds", "peak_rss_mb", "output", "error", "warning")
MANIFEST_COLUMNS = ("input", "truth", "id", "pe_axis", "slice_axis", "shots", "ordering", "slices", "motion_csv")
EXIT_FAILED_ROWS = 3
PARTS = ".parts"
DONE = "report.json"


@dataclass
class BatchOptions:
    """What to run on every input (per-input overrides come from the manifest).

    Attributes
    ----------
    method : str
        ``autofocus`` (NIfTI magnitude images: :func:`magnitude_method` picks the catalogue's method)
        or a k-space method of :data:`mrideblur.mri.METHODS` (:data:`KSPACE_METHODS`).
    pe_axis : int or None
        NIfTI: array axis of the phase encoding (required for NIfTI inputs).
    slice_axis : int
        NIfTI volumes: array axis across which the 2D slices lie.
    shots : int or None
        NIfTI, fastMRI, ISMRMRD: number of shots (these files do not store it; required for them).
    ordering : {"interleaved", "sequential", "centre-out", "checkered"} or None
        NIfTI, fastMRI, ISMRMRD: shot ordering (required for them, like ``shots``).
    coils : {"espirit", "joint"}
        k-space methods: coil maps.
    max_iter : int or None
        Iterations at the coarsest level (``None``: the method's default); for the step
        autofocus, the L-BFGS iterations of each inner solve and of the final correction.
    motion_model : {"step", "per-shot"}
        NIfTI autofocus: one move per slice searched under the magnitude model (the catalogue's
        ``step-autofocus``), or free per-shot motion by gradient entropy (``per-shot-autofocus``;
        recovers nothing from magnitude images, ``benchmarks/autofocus.md``, and is kept for
        complex-valued images).
    motion_csv : str or None
        NIfTI: a motion table (``[slice,]shot,rot_deg,ty,tx``, relative to shot 0, as
        ``motion.csv`` outputs are written) from elsewhere — a navigator, a tracker, the raw-data
        estimate of the same scan; each slice is then corrected with that motion under the
        magnitude model (the catalogue's ``known-motion``) instead of estimating it.
    device : str
        torch device of the estimator.
    seed : int
    slices : str or None
        Process only these slices of stacks and volumes (``"0:4"``, ``"10,12"``); the others
        are left out of k-space outputs and copied unchanged into NIfTI outputs.
    """

    method: str = "autofocus"
    pe_axis: int | None = None
    slice_axis: int = 2
    shots: int | None = None
    ordering: str | None = None
    coils: str = "joint"
    max_iter: int | None = None
    motion_model: str = "step"
    motion_csv: str | None = None
    device: str = "cpu"
    seed: int = 0
    slices: str | None = None


@dataclass
class Study:
    """One input file and how it splits into tasks.

    Attributes
    ----------
    id : str
        Output folder name under ``OUT``.
    input : Path
    kind : {"nifti", "case", "fastmri", "ismrmrd"}
    ntasks : int
        Number of tasks (slices; 1 for a 2D image, a 3D volume or an ISMRMRD file).
    truth : Path or None
        NIfTI ground truth (same shape) from the manifest.
    options : BatchOptions
    error : str or None
        Why the input cannot be processed (its row fails; the others go on).
    meta : dict
        ``shape``, ``layout`` ... found while planning.
    """

    id: str
    input: Path
    kind: str = ""
    ntasks: int = 0
    truth: Path | None = None
    options: BatchOptions = field(default_factory=BatchOptions)
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def magnitude_method(options: BatchOptions) -> str:
    """The catalogue's ``magnitude`` method that ``--method autofocus`` runs with these options:
    a motion table (``motion_csv``) -> ``known-motion``; else ``motion_model`` ``step`` ->
    ``step-autofocus``, ``per-shot`` -> ``per-shot-autofocus``."""
    return KNOWN_MOTION if options.motion_csv else f"{options.motion_model}{_AUTOFOCUS}"
