"""Reader: mrideblur case ``.h5``, fastMRI and ISMRMRD files, and NIfTI volumes.

- ``.h5`` / ``.hdf5``: :func:`mrideblur.io.case.load_case` picks the reader from the file's
  content (a case stores ``shot_index``; fastMRI files are read with 16 interleaved shots
  assumed, ISMRMRD files with the shots of their acquisition order). Layers: the uncorrected
  coil-combined image, the k-space log-magnitude (hidden) and the truth of a simulated case
  (hidden); see :func:`napari_mrideblur._layers.case_layers`.
- ``.nii`` / ``.nii.gz``: :func:`mrideblur.io.read_nifti`. The layer holds the file's array
  transposed, ``data[i, j, k] -> layer[k, j, i]`` (slices along the file's third axis, rows
  along the second), so the layer axes follow the project's ``(z, y, x)`` order; its scale is
  the voxel size (the length in mm of each affine column) and its translation the position in
  mm of voxel 0, so napari measures in millimetres. The full affine and header are kept in
  ``metadata["mrideblur_nifti"]`` for the writer.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ._layers import NIFTI_KEY, LayerData, case_layers, contrast

__all__ = ["get_reader", "nifti_scale_translate", "read_case_file", "read_nifti_file"]

_HDF5_SUFFIXES = (".h5", ".hdf5")
_NIFTI_SUFFIXES = (".nii", ".nii.gz")


def _name(path: Path) -> str:
    name = path.name
    for suffix in _HDF5_SUFFIXES + _NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _is_kspace_file(path: Path) -> bool:
    """Whether an HDF5 file is one that :func:`mrideblur.io.case.load_case` reads."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "kspace" in f or ("dataset" in f and isinstance(f["dataset"], h5py.Group) and "data" in f["dataset"])
    except OSError:
        return False


def get_reader(path: str | os.PathLike[str] | list) -> Callable[[Any], list[LayerData]] | None:
    """npe2 reader contribution: a reader for ``path``, or ``None`` when this plugin cannot read it.

    Parameters
    ----------
    path : str, path-like or list of them
        A list is accepted when every file in it is readable; its layers are concatenated.

    Returns
    -------
    callable or None
        ``reader(path) -> list of (data, kwargs, "image")``.
    """
    paths = [Path(p) for p in path] if isinstance(path, (list, tuple)) else [Path(path)]
    for p in paths:
        low = p.name.lower()
        if low.endswith(_NIFTI_SUFFIXES):
            continue
        if not (low.endswith(_HDF5_SUFFIXES) and p.is_file() and _is_kspace_file(p)):
            return None
    return read


def read(path: str | os.PathLike[str] | list) -> list[LayerData]:
    """Read one file or a list of files into layer data tuples (see the module notes)."""
    paths = [Path(p) for p in path] if isinstance(path, (list, tuple)) else [Path(path)]
    out: list[LayerData] = []
    for p in paths:
        out += read_nifti_file(p) if p.name.lower().endswith(_NIFTI_SUFFIXES) else read_case_file(p)
    return out


def read_case_file(path: str | os.PathLike[str], **reader_kwargs: Any) -> list[LayerData]:
    """Layers of a case, fastMRI or ISMRMRD file (:func:`mrideblur.io.case.load_case`).

    Parameters
    ----------
    path : str or path-like
    **reader_kwargs
        fastMRI / ISMRMRD reader options (``shots``, ``ordering``, ...).

    Returns
    -------
    list of (data, kwargs, "image")
    """
    from mrideblur.io.case import load_case

    p = Path(path)
    return case_layers(load_case(p, **reader_kwargs), _name(p))


def nifti_scale_translate(affine: np.ndarray, ndim: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Layer scale and translation of a NIfTI array of ``ndim`` axes shown transposed.

    Parameters
    ----------
    affine : (4, 4) array
        Voxel ``(i, j, k)`` to scanner mm.
    ndim : int
        Number of axes of the file's array (2, 3 or more; axes beyond the third get scale 1).

    Returns
    -------
    scale, translate : tuple of float, in the layer's (reversed) axis order
        ``scale[a]`` the length in mm of the affine column of file axis ``a`` (the voxel size),
        ``translate[a]`` the scanner coordinate of voxel 0 along that axis.
    """
    aff = np.asarray(affine, dtype=np.float64)
    voxel = np.linalg.norm(aff[:3, :3], axis=0)
    file_axes = list(reversed(range(ndim)))
    scale = tuple(float(voxel[a]) if a < 3 else 1.0 for a in file_axes)
    translate = tuple(float(aff[a, 3]) if a < 3 else 0.0 for a in file_axes)
    return scale, translate


def read_nifti_file(path: str | os.PathLike[str]) -> list[LayerData]:
    """One image layer of a NIfTI file (see the module notes).

    Returns
    -------
    list with one (data, kwargs, "image")
        ``data`` float32, the file's array transposed; ``kwargs`` ``name``, ``scale``,
        ``translate`` (mm) and ``metadata["mrideblur_nifti"] = {"affine", "header", "shape"}``.
    """
    from mrideblur.io import read_nifti

    p = Path(path)
    data, affine, header = read_nifti(p)
    layer = np.ascontiguousarray(data.transpose(tuple(reversed(range(data.ndim)))), dtype=np.float32)
    scale, translate = nifti_scale_translate(affine, data.ndim)
    meta = {NIFTI_KEY: {"affine": affine, "header": header, "shape": tuple(data.shape)}, "source": str(p)}
    kwargs = {"name": _name(p), "scale": scale, "translate": translate, "metadata": meta, "colormap": "gray",
              "contrast_limits": contrast(layer)}
    return [(layer, kwargs, "image")]
