"""The case file: one multi-coil MRI acquisition (k-space, shot map, optional coil maps and truth).

A case is an HDF5 file (``.h5``) laid out as in docs/conventions.md:

==========================  =====================================================  ==========
dataset / attribute         shape, dtype                                           required
==========================  =====================================================  ==========
``kspace``                  ``(coils, ky, kx)`` (layout ``"2d"``),                 yes
                            ``(slices, coils, ky, kx)`` (``"stack"``) or
                            ``(coils, kz, ky, kx)`` (``"3d"``); complex64
``shot_index``              ``(ky,)`` (2d, stack) or ``(kz, ky)`` (3d); int32      yes
``sens``                    ``(coils, ny, nx)``, ``(coils, nz, ny, nx)``; a stack  no
                            may also have ``(slices, coils, ny, nx)``; complex64
``truth/image``             ``(ny, nx)``, ``(slices, ny, nx)``, ``(nz, ny, nx)``   no
``truth/motion``            ``(nshot, 3)`` (2d, stack) or ``(nshot, 6)`` (3d),     no
                            float64; row 0 is zero (motion relative to shot 0)
``truth/sens``              like ``sens``                                          no
``truth/<other>``           any numeric array (e.g. ``reference_rss``)             no
attr ``layout``             ``"2d"``, ``"stack"`` or ``"3d"``                      written
attr ``voxel_size_mm``      2 or 3 floats (3 for 3d), in array axis order          no
                            ``(dy, dx)`` or ``(dz, dy, dx)``
attr ``mrideblur_version``  str, the writer's version                              written
other attributes            strings, numbers, numeric arrays -> ``Case.attrs``     no
==========================  =====================================================  ==========

A 4D ``kspace`` is ambiguous (stack of slices or 3D volume): the writer stores the layout in
the ``layout`` attribute; a file without it is read as ``"3d"`` when ``shot_index`` is 2D
``(kz, ky)`` and as ``"stack"`` otherwise.

Lines with ``shot_index == -1`` were not acquired and hold zeros in ``kspace`` (checked).

Every check failure is a :class:`ValueError` whose message names the file (or ``where``), the
dataset or attribute, what was expected and what was found, e.g.
``"run1.h5: dataset 'shot_index': expected shape (64,) (the ky axis of kspace), got (60,)"``.
Writes are atomic (:func:`mrideblur.io.atomic.atomic_write`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write
from .case_base import (
    CASE_KINDS,
    SHOT_ORDERINGS,
    Case,
    assign_shots,
    check_hdf5_file,
    infer_kind,
    open_hdf5,
    read_dataset,
    validate_case,
)
from .fastmri import read_fastmri
from .ismrmrd_io import read_ismrmrd

__all__ = [
    "CASE_KINDS",
    "SHOT_ORDERINGS",
    "Case",
    "assign_shots",
    "check_hdf5_file",
    "infer_kind",
    "load_case",
    "open_hdf5",
    "read_case",
    "read_dataset",
    "validate_case",
    "write_case",
]


# ---------------------------------------------------------------------------------- writing


def _attr_for_h5(value: Any) -> Any:
    if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.dtype.kind in "US"):
        arr = np.asarray(value)
        if arr.dtype.kind in "US":
            import h5py

            return np.array([str(x) for x in arr.ravel()], dtype=h5py.string_dtype())
        return arr
    return value


def write_case(path: str | os.PathLike[str], case: Case) -> Path:
    """Write a case to an HDF5 file atomically, after :func:`validate_case`.

    Parameters
    ----------
    path : str or path-like
        Destination (``.h5`` by convention). Its directory must exist.
    case : Case
        Stored as in the module table: ``kspace`` and ``sens`` as complex64, ``shot_index`` as
        int32, ``truth/image`` as float32 (complex64 if complex), ``truth/motion`` as float64,
        ``truth/sens`` as complex64, other truth arrays as they are; attributes ``layout``,
        ``mrideblur_version``, ``voxel_size_mm`` (float64) and every entry of ``case.attrs``
        (an ``attrs["mrideblur_version"]`` is replaced by this writer's version).

    Returns
    -------
    Path
        The written file. A failed write leaves no file (and an existing one untouched).

    Raises
    ------
    ValueError
        The case breaks the contract (see :func:`validate_case`); the message names ``path``.
    """
    import h5py

    from .. import __version__

    p = Path(path)
    validate_case(case, p)

    def _truth_array(key: str, val: np.ndarray) -> np.ndarray:
        if key == "sens":
            return val.astype(np.complex64)
        if key == "motion":
            return val.astype(np.float64)
        if key == "image":
            return val.astype(np.complex64 if val.dtype.kind == "c" else np.float32)
        return val

    def _write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("kspace", data=np.ascontiguousarray(case.kspace, dtype=np.complex64))
            f.create_dataset("shot_index", data=case.shot_index.astype(np.int32))
            if case.sens is not None:
                f.create_dataset("sens", data=case.sens.astype(np.complex64))
            if case.truth:
                g = f.create_group("truth")
                for key, val in case.truth.items():
                    g.create_dataset(key, data=_truth_array(key, val))
            for key, val in case.attrs.items():
                if key != "mrideblur_version":
                    f.attrs[key] = _attr_for_h5(val)
            f.attrs["layout"] = str(case.kind)
            f.attrs["mrideblur_version"] = str(__version__)
            if case.voxel_size_mm is not None:
                f.attrs["voxel_size_mm"] = np.asarray(case.voxel_size_mm, dtype=np.float64)

    return atomic_write(p, _write)


# ---------------------------------------------------------------------------------- reading


def _attr_from_h5(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "O" or value.dtype.kind in "US":
            return [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v) for v in value.ravel()]
        return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_case(path: str | os.PathLike[str]) -> Case:
    """Read and validate a case file.

    Parameters
    ----------
    path : str or path-like
        HDF5 case file (module table).

    Returns
    -------
    Case
        ``kspace`` complex64, ``shot_index`` int32, ``sens`` complex64 or ``None``, ``truth``
        arrays as stored, ``voxel_size_mm`` floats or ``None``, ``attrs`` every other file
        attribute (``mrideblur_version`` included; bytes decoded to ``str``, NumPy scalars to
        Python numbers), ``source`` the path, ``kind`` from the ``layout`` attribute or
        inferred (module notes).

    Raises
    ------
    ValueError
        Missing file, not HDF5, a missing ``kspace`` / ``shot_index`` dataset, non-complex
        k-space, a non-integer ``shot_index``, a bad ``layout`` attribute, or anything
        :func:`validate_case` rejects. The message names the file and the dataset.
    """
    import h5py

    p = Path(path)
    with open_hdf5(p, "an mrideblur case file (.h5)") as f:
        hint = ""
        if "shot_index" not in f and "kspace" in f:
            hint = " (a raw fastMRI file? read it with mrideblur.io.read_fastmri or load_case)"
        elif "shot_index" not in f and "dataset" in f:
            hint = " (an ISMRMRD file? read it with mrideblur.io.read_ismrmrd or load_case)"
        if "kspace" not in f and "dataset" in f:
            hint = " (an ISMRMRD file? read it with mrideblur.io.read_ismrmrd or load_case)"
        try:
            kspace = read_dataset(
                f, "kspace", p, "(coils, ky, kx), (slices, coils, ky, kx) or (coils, kz, ky, kx) complex64"
            )
            shot_index = read_dataset(f, "shot_index", p, "(ky,) or (kz, ky) int32")
        except ValueError as exc:
            raise ValueError(f"{exc}{hint}") from None
        if kspace.dtype.kind != "c":
            raise ValueError(f"{p}: dataset 'kspace': expected complex values (complex64), got dtype {kspace.dtype}")
        if shot_index.dtype.kind not in "iu":
            raise ValueError(f"{p}: dataset 'shot_index': expected integers (int32), got dtype {shot_index.dtype}")
        sens = read_dataset(f, "sens", p, "coil maps (coils, ny, nx) complex64", required=False)
        truth: dict[str, np.ndarray] = {}
        if "truth" in f:
            g = f["truth"]
            if not isinstance(g, h5py.Group):
                raise ValueError(
                    f"{p}: dataset 'truth': expected a group of datasets (image, motion, sens), got a "
                    "dataset"
                )
            for key in g:
                truth[key] = read_dataset(g, key, p, "a numeric array")
        attrs = {str(k): _attr_from_h5(v) for k, v in f.attrs.items()}
    layout = attrs.pop("layout", None)
    if layout is None:
        kind = infer_kind(kspace.ndim, shot_index.ndim)
    elif layout in CASE_KINDS:
        kind = layout
    else:
        raise ValueError(f"{p}: attribute 'layout': expected one of {CASE_KINDS}, got {layout!r}")
    if kind is None:
        raise ValueError(
            f"{p}: dataset 'kspace': expected rank 3 (coils, ky, kx) or 4 (slices, coils, ky, kx) / "
            f"(coils, kz, ky, kx), got shape {kspace.shape}"
        )
    voxel = attrs.pop("voxel_size_mm", None)
    if voxel is not None:
        v = np.atleast_1d(np.asarray(voxel))
        if v.dtype.kind not in "iuf" or v.ndim != 1:
            raise ValueError(f"{p}: attribute 'voxel_size_mm': expected 2 or 3 numbers in mm, got {voxel!r}")
        voxel = tuple(float(x) for x in v)
    case = Case(
        kspace=kspace.astype(np.complex64, copy=False),
        shot_index=shot_index.astype(np.int32, copy=False),
        kind=kind,
        sens=sens,
        truth=truth,
        voxel_size_mm=voxel,
        attrs=attrs,
        source=p,
    )
    validate_case(case, p)
    if case.sens is not None:
        case.sens = case.sens.astype(np.complex64, copy=False)
    return case


# ---------------------------------------------------------------------------------- dispatch


def load_case(path: str | os.PathLike[str], **reader_kwargs: Any) -> Case:
    """Read any supported k-space file, choosing the reader from the file's content.

    - a ``shot_index`` dataset: an mrideblur case, :func:`read_case`;
    - a ``dataset`` group with ``data``: ISMRMRD, :func:`mrideblur.io.ismrmrd_io.read_ismrmrd`;
    - a ``kspace`` dataset without ``shot_index``: fastMRI, :func:`mrideblur.io.fastmri.read_fastmri`.

    Parameters
    ----------
    path : str or path-like
    **reader_kwargs
        Passed to the ISMRMRD or fastMRI reader (``shots``, ``ordering``, ...); an error for a
        case file, which stores its shots.

    Returns
    -------
    Case
    """
    import h5py

    p = Path(path)
    with open_hdf5(p, "a case, fastMRI or ISMRMRD HDF5 file") as f:
        keys = set(f.keys())
        is_ismrmrd = "dataset" in keys and isinstance(f["dataset"], h5py.Group) and "data" in f["dataset"]
    if "shot_index" in keys:
        if reader_kwargs:
            raise ValueError(
                f"{p}: an mrideblur case file stores its shots; unexpected options "
                f"{sorted(reader_kwargs)}"
            )
        return read_case(p)
    if is_ismrmrd:
        return read_ismrmrd(p, **reader_kwargs)
    if "kspace" in keys:
        return read_fastmri(p, **reader_kwargs)
    raise ValueError(
        f"{p}: expected a case file (datasets 'kspace' and 'shot_index'), a fastMRI file (dataset 'kspace') "
        f"or an ISMRMRD file (group 'dataset' with 'data'), got top-level entries {sorted(keys)}"
    )
