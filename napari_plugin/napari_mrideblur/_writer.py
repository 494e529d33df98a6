"""Writer: an image layer to NIfTI (``.nii`` or ``.nii.gz``) with :func:`mrideblur.io.write_nifti`.

A layer read from a NIfTI file by this plugin is written back with that file's affine and header
(its array transposed back to the file's axis order), so ``read -> write -> read`` keeps the
affine exactly. Any other layer gets the affine of its scale and translation: the layer axes
``(..., y, x)`` become the file axes ``(x, y, ...)`` (the project's NIfTI layout, as
``mrideblur correct`` writes ``image.nii.gz``), voxel size = scale, voxel 0 at the translation.
Complex data are written as magnitudes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ._layers import NIFTI_KEY

__all__ = ["layer_affine", "write_nifti_layer"]


def layer_affine(scale: Any, translate: Any, ndim: int) -> np.ndarray:
    """NIfTI affine of a layer written with its axes reversed.

    Parameters
    ----------
    scale, translate : sequences of float (layer axis order) or None
    ndim : int
        Number of layer axes.

    Returns
    -------
    (4, 4) float64
        ``diag(scale reversed)`` on the first three file axes, translation in the last column.
    """
    s = np.ones(ndim) if scale is None else np.asarray(scale, dtype=np.float64)
    t = np.zeros(ndim) if translate is None else np.asarray(translate, dtype=np.float64)
    aff = np.eye(4)
    for file_axis in range(min(ndim, 3)):
        layer_axis = ndim - 1 - file_axis
        aff[file_axis, file_axis] = s[layer_axis]
        aff[file_axis, 3] = t[layer_axis]
    return aff


def write_nifti_layer(path: str | os.PathLike[str], data: Any, meta: dict[str, Any]) -> list[str]:
    """npe2 single-layer writer: save an image layer as NIfTI (module notes).

    Parameters
    ----------
    path : str or path-like
        Output file; ``.nii.gz`` is appended when it has no NIfTI suffix.
    data : array_like
        Layer data (the first level of a multiscale layer).
    meta : dict
        Layer attributes (``scale``, ``translate``, ``metadata``, ``multiscale``).

    Returns
    -------
    list of str
        The written file.
    """
    from mrideblur.io import write_nifti

    p = Path(path)
    if not p.name.lower().endswith((".nii", ".nii.gz")):
        p = p.with_name(p.name + ".nii.gz")
    arr = np.asarray(data[0] if meta.get("multiscale") else data)
    if np.iscomplexobj(arr):
        arr = np.abs(arr)
    if arr.ndim < 2:
        raise ValueError(f"{p}: expected an image of at least 2 axes, got shape {arr.shape}")
    out = arr.transpose(tuple(reversed(range(arr.ndim))))
    src = (meta.get("metadata") or {}).get(NIFTI_KEY)
    if src is not None and tuple(src["shape"]) == out.shape:
        affine, header = np.asarray(src["affine"]), src["header"]
    else:
        affine, header = layer_affine(meta.get("scale"), meta.get("translate"), arr.ndim), None
    return [str(write_nifti(p, out, affine, header))]
