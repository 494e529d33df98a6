"""Reading and writing NIfTI-1 volumes (``.nii``, ``.nii.gz``) with their affine and header.

Data are indexed ``data[i, j, k]`` in NIfTI voxel order; the affine maps voxel indices to
scanner coordinates in millimetres (``xyz_mm = affine @ [i, j, k, 1]``).  Data are read as
``float64`` with the header's scaling (``scl_slope``, ``scl_inter``) applied and written as
``float32`` without scaling.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .atomic import atomic_write, full_suffix
from .images import _check_readable, _check_values

__all__ = ["NIFTI_SUFFIXES", "is_nifti", "read_nifti", "write_nifti"]

#: Suffixes of NIfTI files.
NIFTI_SUFFIXES = (".nii", ".nii.gz")
_EXPECTED = "a NIfTI-1 volume (.nii or .nii.gz)"


def is_nifti(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a NIfTI file (by its suffix)."""
    return full_suffix(path) in NIFTI_SUFFIXES


def read_nifti(path: str | os.PathLike[str]):  # -> tuple[np.ndarray, np.ndarray, Nifti1Header]
    """Read a NIfTI volume.

    Parameters
    ----------
    path : str or path-like
        ``.nii`` or ``.nii.gz`` file.

    Returns
    -------
    data : (ni, nj[, nk, ...]) float64 ndarray
        Voxel values, header scaling applied.
    affine : (4, 4) float64 ndarray
        Voxel-to-scanner transform in millimetres (the sform, else the qform, as nibabel
        chooses).
    header : nibabel.nifti1.Nifti1Header
        A copy of the file's header; pass it to :func:`write_nifti` to keep it.

    Raises
    ------
    ValueError
        Missing file, wrong suffix, not a NIfTI file, corrupted or truncated data, complex
        voxels, NaN/infinite voxels. The message names the file.
    """
    p = Path(path)
    _check_readable(p, NIFTI_SUFFIXES, _EXPECTED)
    import nibabel as nib

    try:
        img = nib.load(p)
        if not isinstance(img, nib.Nifti1Image):  # Nifti2Image subclasses Nifti1Image
            raise ValueError(f"a {type(img).__name__}, not NIfTI")
        if np.issubdtype(img.get_data_dtype(), np.complexfloating):
            raise ValueError(f"complex voxels ({img.get_data_dtype()}); expected real values")
        data = np.asarray(img.get_fdata(dtype=np.float64))
        affine = np.array(img.affine, dtype=np.float64)
        header = img.header.copy()
    except Exception as exc:  # noqa: BLE001 - nibabel, gzip, zlib and numpy raise many types
        raise ValueError(f"{p}: could not read as {_EXPECTED} ({type(exc).__name__}: {exc})") from None
    return _check_values(data, p, "volume", "voxel"), affine, header


def write_nifti(
    path: str | os.PathLike[str],
    data: np.ndarray,
    affine: np.ndarray,
    header=None,  # nibabel.nifti1.Nifti1Header | None
) -> Path:
    """Write a NIfTI volume atomically as ``float32``, keeping the affine and the header.

    Parameters
    ----------
    path : str or path-like
        ``.nii`` or ``.nii.gz`` (gzip-compressed).
    data : (ni, nj[, nk, ...]) array_like
        Real voxel values.
    affine : (4, 4) array_like
        Voxel-to-scanner transform in millimetres; stored as both sform and qform (codes of
        ``header`` kept when given, else "scanner").
    header : nibabel.nifti1.Nifti1Header, optional
        Header to keep (description, units, codes, pixel dimensions ...); its data type,
        shape and scaling are replaced to match ``data``.

    Returns
    -------
    Path
        ``path``, now holding the volume.

    Raises
    ------
    ValueError
        Wrong suffix, non-real data, bad affine.
    """
    import nibabel as nib

    p = Path(path)
    if not is_nifti(p):
        raise ValueError(f"{p}: cannot write {full_suffix(p) or '(no suffix)'!r}; expected {_EXPECTED}")
    arr = np.asarray(data)
    if np.iscomplexobj(arr) or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{p}: expected real voxel values, got dtype {arr.dtype}")
    aff = np.asarray(affine, dtype=np.float64)
    if aff.shape != (4, 4) or not np.all(np.isfinite(aff)):
        raise ValueError(f"{p}: expected a finite (4, 4) affine, got shape {aff.shape}")
    arr32 = arr.astype(np.float32)
    hdr = header.copy() if header is not None else None
    img = nib.Nifti1Image(arr32, aff, header=hdr)
    img.set_data_dtype(np.float32)
    # Float output needs no scaling; drop a slope/intercept inherited from an integer file.
    img.header.set_slope_inter(1.0, 0.0)
    sform_code = int(hdr["sform_code"]) if hdr is not None and int(hdr["sform_code"]) > 0 else 1
    qform_code = int(hdr["qform_code"]) if hdr is not None and int(hdr["qform_code"]) > 0 else 1
    img.set_sform(aff, code=sform_code)
    img.set_qform(aff, code=qform_code)
    return atomic_write(p, lambda tmp: nib.save(img, tmp))
