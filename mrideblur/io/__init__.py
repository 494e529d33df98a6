"""File input and output: the only part of mrideblur that touches files.

- 2D images: :func:`read_image` (PNG, TIFF, JPEG, ``.npy`` -> ``float64`` grey, or RGB with
  ``colour=True``), and :func:`write_image` (grey or RGB; PNG 8/16 bit, float TIFF, ``.npy``);
- volumes: :func:`read_nifti` / :func:`write_nifti` (affine and header kept);
- arrays of any shape: :func:`write_array` (``.npy``); reports: :func:`write_json`;
- every writer is atomic (:func:`atomic_write`, :func:`atomic_open`): a reader never sees a
  half-written file.

Readers validate what they read and raise :class:`ValueError` with the file's name and what was
expected.
"""

from .atomic import atomic_open, atomic_write, full_suffix
from .images import IMAGE_SUFFIXES, LUMA, RASTER_SUFFIXES, read_image, to_jsonable, write_array, write_image, write_json
from .nifti import NIFTI_SUFFIXES, is_nifti, read_nifti, write_nifti

__all__ = [
    "IMAGE_SUFFIXES",
    "LUMA",
    "NIFTI_SUFFIXES",
    "RASTER_SUFFIXES",
    "atomic_open",
    "atomic_write",
    "full_suffix",
    "is_nifti",
    "read_image",
    "read_nifti",
    "to_jsonable",
    "write_array",
    "write_image",
    "write_json",
    "write_nifti",
]

# Multi-coil MRI k-space: case files (.h5), fastMRI and ISMRMRD readers.
from .case import CASE_KINDS, SHOT_ORDERINGS, Case, assign_shots, load_case, read_case, validate_case, write_case
from .fastmri import read_fastmri
from .ismrmrd_io import parse_ismrmrd_header, read_ismrmrd

__all__ += [
    "CASE_KINDS",
    "SHOT_ORDERINGS",
    "Case",
    "assign_shots",
    "load_case",
    "parse_ismrmrd_header",
    "read_case",
    "read_fastmri",
    "read_ismrmrd",
    "validate_case",
    "write_case",
]
