"""The shared low-level part of the case readers: the :class:`Case` record, its checks and HDF5 helpers.

:mod:`mrideblur.io.case` (case files and the :func:`~mrideblur.io.case.load_case` dispatcher),
:mod:`mrideblur.io.fastmri` and :mod:`mrideblur.io.ismrmrd_io` all build on this module and
on nothing else of each other's, so the readers import no dispatcher and no other reader. The
case-file contract that :func:`validate_case` checks is tabled in :mod:`mrideblur.io.case` and
docs/conventions.md. Everything here is re-exported by :mod:`mrideblur.io.case`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .shot_order import SHOT_ORDERINGS, assign_shots

__all__ = [
    "CASE_KINDS",
    "SHOT_ORDERINGS",
    "Case",
    "assign_shots",
    "center_crop_readout",
    "check_hdf5_file",
    "infer_kind",
    "open_hdf5",
    "read_dataset",
    "validate_case",
]

#: The three k-space layouts of a case.
CASE_KINDS = ("2d", "stack", "3d")
#: File attributes that are fields of :class:`Case`, not entries of ``Case.attrs``.
_RESERVED_ATTRS = ("layout", "voxel_size_mm")
_MOTION_ZERO_ATOL = 1e-6


def infer_kind(kspace_ndim: int, shot_index_ndim: int) -> str | None:
    """The layout implied by the ranks of ``kspace`` and ``shot_index``.

    Parameters
    ----------
    kspace_ndim, shot_index_ndim : int

    Returns
    -------
    str or None
        ``"2d"`` for a 3D ``kspace``; for a 4D one ``"3d"`` when ``shot_index`` is 2D
        ``(kz, ky)``, else ``"stack"``; ``None`` for any other rank.
    """
    if kspace_ndim == 3:
        return "2d"
    if kspace_ndim == 4:
        return "3d" if shot_index_ndim == 2 else "stack"
    return None


@dataclass
class Case:
    """One multi-coil acquisition with its shot map.

    Attributes
    ----------
    kspace : complex ndarray
        ``(coils, ky, kx)`` for ``kind="2d"``, ``(slices, coils, ky, kx)`` for ``"stack"``,
        ``(coils, kz, ky, kx)`` for ``"3d"``; complex64 once read or written. Centred
        orthonormal convention (docs/conventions.md): index ``N // 2`` is DC. Zeros on lines not
        acquired.
    shot_index : int ndarray
        ``(ky,)`` (2d, stack: the same map for every slice) or ``(kz, ky)`` (3d); ``-1`` marks
        a line not acquired, shots are ``0 .. nshot - 1``. int32 once read or written.
    kind : {"2d", "stack", "3d"}, optional
        Layout of ``kspace``. ``None`` (default) infers it with :func:`infer_kind`.
    sens : complex ndarray, optional
        Known coil maps, ``(coils, ny, nx)`` or ``(coils, nz, ny, nx)``; a stack also accepts
        ``(slices, coils, ny, nx)`` (one set per slice). ``ny, nx`` (``nz``) equal the k-space
        grid ``ky, kx`` (``kz``).
    truth : dict of str -> ndarray
        Ground truth of simulated cases: ``"image"`` (``image_shape``, or
        ``(slices, ny, nx)`` for a stack), ``"motion"`` (``(nshot, 3)`` rows
        ``(rot_deg, ty, tx)`` in 2D / stacks, ``(nshot, 6)`` rows
        ``(rz_deg, ry_deg, rx_deg, tz, ty, tx)`` in 3D; translations in pixels/voxels; row 0
        zero), ``"sens"`` (like ``sens``). Other keys hold any numeric array (a reader's
        reference image, for instance) and are not checked beyond being finite numbers.
    voxel_size_mm : tuple of float, optional
        Voxel size in millimetres in array axis order: ``(dy, dx)`` or ``(dz, dy, dx)``
        (``dz`` the slice thickness for 2D and stacks). 3D cases need all three.
    attrs : dict
        Free metadata (strings, numbers, numeric arrays), stored as HDF5 attributes. Readers
        put what they assumed in ``attrs["assumed"]``.
    source : Path, optional
        File the case was read from (not stored).
    """

    kspace: np.ndarray
    shot_index: np.ndarray
    kind: str | None = None
    sens: np.ndarray | None = None
    truth: dict[str, np.ndarray] = field(default_factory=dict)
    voxel_size_mm: tuple[float, ...] | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None

    def __post_init__(self) -> None:
        self.kspace = np.asarray(self.kspace)
        self.shot_index = np.asarray(self.shot_index)
        if self.kind is None:
            self.kind = infer_kind(self.kspace.ndim, self.shot_index.ndim)
        if self.sens is not None:
            self.sens = np.asarray(self.sens)
        self.truth = {str(k): np.asarray(v) for k, v in (self.truth or {}).items()}
        if self.voxel_size_mm is not None:
            self.voxel_size_mm = tuple(float(v) for v in np.ravel(np.asarray(self.voxel_size_mm, dtype=np.float64)))
        self.attrs = dict(self.attrs or {})
        if self.source is not None:
            self.source = Path(self.source)

    @property
    def is_3d(self) -> bool:
        """Whether ``kspace`` is a 3D volume ``(coils, kz, ky, kx)``."""
        return self.kind == "3d"

    @property
    def nshot(self) -> int:
        """Number of shots, ``max(shot_index) + 1`` (0 when nothing was acquired)."""
        return int(self.shot_index.max()) + 1 if self.shot_index.size else 0

    @property
    def ncoil(self) -> int:
        """Number of receive coils."""
        return int(self.kspace.shape[1] if self.kind == "stack" else self.kspace.shape[0])

    @property
    def nslice(self) -> int:
        """Number of 2D slices (1 for ``"2d"`` and ``"3d"``)."""
        return int(self.kspace.shape[0]) if self.kind == "stack" else 1

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Image grid of one slice or volume: ``(ny, nx)`` or ``(nz, ny, nx)``."""
        return tuple(int(n) for n in (self.kspace.shape[-3:] if self.is_3d else self.kspace.shape[-2:]))


# ---------------------------------------------------------------------------------- checks


def _fmt_list(values: Any, limit: int = 10) -> str:
    vals = [int(v) if isinstance(v, (int, np.integer)) else v for v in list(values)]
    if len(vals) <= limit:
        return str(vals)
    return str(vals[:limit])[:-1] + f", ... ({len(vals)} in all)]"


def _check_numeric(where: str, name: str, arr: np.ndarray, complex_ok: bool = True) -> None:
    kinds = "biufc" if complex_ok else "biuf"
    if arr.dtype.kind not in kinds:
        what = "numeric" if complex_ok else "real"
        raise ValueError(f"{where}: dataset {name!r}: expected {what} values, got dtype {arr.dtype}")
    if arr.dtype.kind in "fc":
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        if bad:
            raise ValueError(f"{where}: dataset {name!r}: expected finite values, got {bad} NaN or infinite value(s)")


def _check_sens(where: str, name: str, sens: np.ndarray, case: Case) -> None:
    _check_numeric(where, name, sens)
    img = case.image_shape
    ncoil = case.ncoil
    allowed = [(ncoil, *img)]
    if case.kind == "stack":
        allowed.append((case.nslice, ncoil, *img))
    if sens.shape not in allowed:
        names = {
            "2d": "(coils, ny, nx)",
            "3d": "(coils, nz, ny, nx)",
            "stack": "(coils, ny, nx) or (slices, coils, ny, nx)",
        }
        expected = " or ".join(str(a) for a in allowed)
        raise ValueError(
            f"{where}: dataset {name!r}: expected shape {expected} {names[case.kind]} "
            f"matching the coil count and image size of kspace {case.kspace.shape}, got {sens.shape}"
        )


def _check_attr_value(where: str, key: Any, value: Any) -> None:
    if not isinstance(key, str) or not key or "/" in key:
        raise ValueError(f"{where}: attribute {key!r}: expected a non-empty string name without '/'")
    if key in _RESERVED_ATTRS:
        raise ValueError(
            f"{where}: attribute {key!r}: reserved (it is the Case field {('kind' if key == 'layout' else key)!r}); "
            "remove it from attrs"
        )
    if isinstance(value, (str, bool, int, float, complex, np.generic)):
        if isinstance(value, np.generic) and value.dtype.kind not in "biufcUS":
            raise ValueError(
                f"{where}: attribute {key!r}: expected a string, number or numeric array, got "
                f"{type(value).__name__}"
            )
        return
    if isinstance(value, (list, tuple, np.ndarray)):
        arr = np.asarray(value)
        if arr.dtype.kind in "biufc" or (arr.dtype.kind in "US" and arr.ndim == 1):
            return
        raise ValueError(
            f"{where}: attribute {key!r}: expected a string, number, numeric array or list of strings, "
            f"got {type(value).__name__} of dtype {arr.dtype}"
        )
    raise ValueError(
        f"{where}: attribute {key!r}: expected a string, number or numeric array, got "
        f"{type(value).__name__}"
    )


def validate_case(case: Case, where: str | os.PathLike[str] = "case") -> None:
    """Check a case against the case-file contract (the table of :mod:`mrideblur.io.case`; docs/conventions.md).

    Used by :func:`~mrideblur.io.case.read_case` (after reading), :func:`~mrideblur.io.case.write_case`
    (before writing) and the fastMRI and ISMRMRD readers.

    Parameters
    ----------
    case : Case
    where : str or path-like
        Prefix of the error messages: the file name, or a description of the case.

    Raises
    ------
    ValueError
        ``"{where}: dataset '<name>': expected ..., got ..."`` (or ``attribute '<name>'``) for:
        an unknown layout; a ``kspace`` of the wrong rank, empty, not complex or not finite;
        a ``shot_index`` that is not integer, whose shape is not the phase-encode axes of
        ``kspace``, with values below -1, with no acquired line, or with shot numbers that
        have gaps (the missing ones are listed); non-zero k-space on lines marked -1; ``sens``
        or ``truth/sens`` whose shape disagrees with the coil count or the image size;
        ``truth/image`` of the wrong shape; ``truth/motion`` not ``(nshot, 3)`` (2d, stack) /
        ``(nshot, 6)`` (3d), not finite, or with a non-zero first row (motion is relative to
        shot 0); ``voxel_size_mm`` of the wrong length or not positive; attrs that cannot be
        stored as HDF5 attributes or that use a reserved name.
    """
    w = os.fspath(where)
    if case.kind is None:
        raise ValueError(
            f"{w}: dataset 'kspace': expected rank 3 (coils, ky, kx) or rank 4 (slices, coils, ky, kx) / "
            f"(coils, kz, ky, kx), got shape {case.kspace.shape}"
        )
    if case.kind not in CASE_KINDS:
        raise ValueError(
            f"{w}: attribute 'layout': expected one of {CASE_KINDS}, got {case.kind!r} "
            f"(kspace shape {case.kspace.shape}, shot_index shape {case.shot_index.shape})"
        )
    k = case.kspace
    rank = {"2d": (3, "(coils, ky, kx)"), "stack": (4, "(slices, coils, ky, kx)"), "3d": (4, "(coils, kz, ky, kx)")}
    nd, axes = rank[case.kind]
    if k.ndim != nd:
        raise ValueError(
            f"{w}: dataset 'kspace': expected rank {nd} {axes} for layout {case.kind!r}, got shape "
            f"{k.shape}"
        )
    if k.size == 0:
        raise ValueError(f"{w}: dataset 'kspace': expected a non-empty array {axes}, got shape {k.shape}")
    if k.dtype.kind != "c":
        raise ValueError(f"{w}: dataset 'kspace': expected complex values (complex64), got dtype {k.dtype}")
    bad = int(np.count_nonzero(~np.isfinite(k)))
    if bad:
        raise ValueError(f"{w}: dataset 'kspace': expected finite values, got {bad} NaN or infinite value(s)")

    # shot_index
    s = case.shot_index
    pe_shape = tuple(k.shape[-3:-1]) if case.kind == "3d" else (k.shape[-2],)
    pe_names = "(kz, ky) axes" if case.kind == "3d" else "ky axis"
    if s.dtype.kind not in "iu":
        raise ValueError(f"{w}: dataset 'shot_index': expected integers (int32), got dtype {s.dtype}")
    if s.shape != pe_shape:
        raise ValueError(
            f"{w}: dataset 'shot_index': expected shape {pe_shape} (the {pe_names} of kspace "
            f"{k.shape}), got {s.shape}"
        )
    if s.size and s.min() < -1:
        low = np.unique(s[s < -1])
        raise ValueError(
            f"{w}: dataset 'shot_index': expected values >= -1 (-1 marks a line not acquired), got {_fmt_list(low)}"
        )
    nshot = int(s.max()) + 1
    if nshot == 0:
        raise ValueError(f"{w}: dataset 'shot_index': expected at least one acquired line, got all -1")
    missing = np.setdiff1d(np.arange(nshot), np.unique(s[s >= 0]))
    if missing.size:
        raise ValueError(
            f"{w}: dataset 'shot_index': expected shots numbered 0 .. {nshot - 1} without gaps, "
            f"got no line for shot(s) {_fmt_list(missing)}"
        )
    unacq = s < 0
    if unacq.any():
        lines = np.any(k[..., unacq, :] != 0, axis=tuple(range(k.ndim - s.ndim - 1)) + (-1,))
        if lines.any():
            pos = np.argwhere(unacq)[lines]
            where_txt = _fmt_list([tuple(int(v) for v in p) if len(p) > 1 else int(p[0]) for p in pos], limit=5)
            raise ValueError(
                f"{w}: dataset 'kspace': expected zeros on the lines not acquired (shot_index == -1), "
                f"got non-zero data on {len(pos)} line(s) at {'(kz, ky)' if s.ndim == 2 else 'ky'} = {where_txt}"
            )

    if case.sens is not None:
        _check_sens(w, "sens", case.sens, case)

    # truth
    for key, val in case.truth.items():
        name = f"truth/{key}"
        if not key or "/" in key:
            raise ValueError(f"{w}: dataset {name!r}: expected a name without '/'")
        if key == "sens":
            _check_sens(w, name, val, case)
        elif key == "motion":
            ncol = 6 if case.kind == "3d" else 3
            cols = "(rz_deg, ry_deg, rx_deg, tz, ty, tx)" if ncol == 6 else "(rot_deg, ty, tx)"
            _check_numeric(w, name, val, complex_ok=False)
            if val.shape != (nshot, ncol):
                raise ValueError(
                    f"{w}: dataset {name!r}: expected shape ({nshot}, {ncol}) (nshot, {cols}) for layout "
                    f"{case.kind!r}, got {val.shape}"
                )
            if not np.allclose(val[0], 0.0, rtol=0.0, atol=_MOTION_ZERO_ATOL):
                raise ValueError(
                    f"{w}: dataset {name!r}: expected row 0 to be zero (motion is relative to shot 0, "
                    f"docs/conventions.md), got {val[0].tolist()}"
                )
        elif key == "image":
            _check_numeric(w, name, val)
            expected = (case.nslice, *case.image_shape) if case.kind == "stack" else case.image_shape
            if val.shape != expected:
                axes_txt = {"2d": "(ny, nx)", "stack": "(slices, ny, nx)", "3d": "(nz, ny, nx)"}[case.kind]
                raise ValueError(f"{w}: dataset {name!r}: expected shape {expected} {axes_txt}, got {val.shape}")
        else:
            _check_numeric(w, name, val)

    if case.voxel_size_mm is not None:
        v = case.voxel_size_mm
        lengths = (3,) if case.kind == "3d" else (2, 3)
        if len(v) not in lengths:
            expected_txt = "3 values (dz, dy, dx)" if case.kind == "3d" else "2 values (dy, dx) or 3 (dz, dy, dx)"
            raise ValueError(
                f"{w}: attribute 'voxel_size_mm': expected {expected_txt} for layout {case.kind!r}, got "
                f"{len(v)}: {list(v)}"
            )
        if not all(np.isfinite(x) and x > 0 for x in v):
            raise ValueError(f"{w}: attribute 'voxel_size_mm': expected positive finite millimetres, got {list(v)}")

    for key, val in case.attrs.items():
        _check_attr_value(w, key, val)


# ------------------------------------------------------------------------------ HDF5 reading


def open_hdf5(path: Path, what: str):  # -> h5py.File
    """Open an existing HDF5 file for reading, or raise a ``ValueError`` naming it and ``what``
    was expected (missing, not a file, not HDF5, unreadable)."""
    import h5py

    check_hdf5_file(path, what)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path}: could not open as HDF5 ({exc}); expected {what}") from None


def check_hdf5_file(path: Path, what: str) -> None:
    """Raise a ``ValueError`` naming ``path`` unless it is an existing HDF5 file."""
    import h5py

    if not path.exists():
        raise ValueError(f"{path}: no such file; expected {what}")
    if not path.is_file():
        raise ValueError(f"{path}: not a regular file; expected {what}")
    try:
        ok = h5py.is_hdf5(path)
    except OSError as exc:
        raise ValueError(f"{path}: could not open ({exc}); expected {what}") from None
    if not ok:
        raise ValueError(f"{path}: not an HDF5 file; expected {what}")


def read_dataset(f: Any, name: str, path: Path, expected: str, required: bool = True) -> np.ndarray | None:
    """Read dataset ``name`` of an open HDF5 file; a missing or non-dataset entry is an error.

    Parameters
    ----------
    f : h5py.File or h5py.Group
    name : str
        Dataset path inside ``f``.
    path : Path
        File name for the messages.
    expected : str
        What the dataset should hold (shape and dtype), for the messages.
    required : bool
        If False a missing dataset returns ``None``.
    """
    import h5py

    if name not in f:
        if not required:
            return None
        raise ValueError(f"{path}: dataset {name!r}: missing; expected {expected}")
    obj = f[name]
    if not isinstance(obj, h5py.Dataset):
        raise ValueError(f"{path}: dataset {name!r}: expected a dataset holding {expected}, got a {type(obj).__name__}")
    try:
        return np.asarray(obj[()])
    except Exception as exc:  # noqa: BLE001 - h5py raises several types for bad data
        raise ValueError(
            f"{path}: dataset {name!r}: could not read ({type(exc).__name__}: {exc}); expected "
            f"{expected}"
        ) from None


# ---------------------------------------------------------------------------- shots, readout


def center_crop_readout(kspace: np.ndarray, width: int) -> np.ndarray:
    """Crop the readout (last axis) to its central ``width`` samples in image space.

    ``k -> F1(crop(F1^-1 k))`` with the centred orthonormal 1D transform along ``kx``,
    ``F1 x = fftshift(fft(ifftshift(x), norm="ortho"))`` — the convention of
    :mod:`mrideblur.physics.fourier` applied to one axis. The kept image columns are
    ``N // 2 - width // 2 .. + width``, so the image centre stays at index ``width // 2``;
    image values are unchanged by the crop (the transform is unitary on each side).

    Parameters
    ----------
    kspace : (..., kx) complex array
    width : int
        ``1 .. kx``.

    Returns
    -------
    (..., width) complex64 array
    """
    n = kspace.shape[-1]
    if not 1 <= width <= n:
        raise ValueError(f"width: expected 1 .. {n}, got {width}")
    img = np.fft.fftshift(np.fft.ifft(np.fft.ifftshift(kspace, axes=-1), axis=-1, norm="ortho"), axes=-1)
    start = n // 2 - width // 2
    img = img[..., start : start + width]
    out = np.fft.fftshift(np.fft.fft(np.fft.ifftshift(img, axes=-1), axis=-1, norm="ortho"), axes=-1)
    return out.astype(np.complex64, copy=False)
