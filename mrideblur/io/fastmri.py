"""Reading fastMRI multi-coil (and single-coil) ``.h5`` files into a :class:`~mrideblur.io.case.Case`.

A fastMRI file holds ``kspace`` ``(slices, coils, height, width)`` complex64 (single-coil:
``(slices, height, width)``), where *height* is the readout, oversampled 2x (640 samples for a
320-pixel field of view), and *width* the phase encoding (the ``mask`` of the test sets has one
entry per width column). Optional: ``ismrmrd_header`` (XML; a dataset, or an attribute),
``reconstruction_rss`` ``(slices, 320, 320)``, ``mask`` ``(width,)``, and file attributes
(``acquisition``, ``max``, ``norm``, ``patient_id``, ...).

What the reader does
--------------------
- Layout: the project puts the phase encoding on axis -2 and the readout on axis -1
  (docs/conventions.md), so the last two axes of a fastMRI ``kspace`` are swapped:
  ``(slices, coils, height=readout, width=ky)`` -> ``(slices, coils, ky, kx)``. Images of the
  case are therefore the transpose of fastMRI's own images (rows = phase encoding). A file that
  already stores ``(slices, coils, ky, kx)`` is read with ``readout_axis=-1``.
- Readout cropping (``crop_readout=True``): each line is transformed to image space along the
  readout with the centred orthonormal 1D DFT (``fftshift(ifft(ifftshift(k), norm="ortho"))``,
  the convention of :mod:`mrideblur.physics.fourier` on one axis), the central half
  (``N // 2 - N // 4 ..``, the columns of fastMRI's 320 x 320 crop) is kept, and it is
  transformed back. Image values are unchanged by the crop.
- Acquired lines: from ``mask`` when the file has one, else the ky lines that are not all zero
  in every slice and coil. The others get ``shot_index = -1`` (and zero k-space).
- Shots: fastMRI does not store the acquisition order, so the acquired lines (in ky order) are
  split among ``shots`` shots by an assumed ``ordering`` (:func:`~mrideblur.io.case.assign_shots`):
  ``"interleaved"`` (line ``i`` -> shot ``i % shots``) or ``"sequential"`` (consecutive blocks).
  ``Case.attrs["assumed"]`` states the assumptions.
- ``reconstruction_rss`` (not a ground truth: the RSS of the same, motion-free-as-far-as-known
  data) is kept as ``Case.truth["reference_rss"]``, transposed like the k-space to
  ``(slices, 320, 320)`` rows = phase encoding; it is fastMRI's 320 x 320 centre crop, which is
  not the case's image grid when the ky count is not 320.
- Voxel size ``(dz, dy, dx)`` from the header's encoded field of view over the encoded matrix.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .case_base import SHOT_ORDERINGS, Case, assign_shots, center_crop_readout, open_hdf5, read_dataset, validate_case
from .ismrmrd_header import parse_ismrmrd_header

__all__ = ["read_fastmri"]

_EXPECTED = "a fastMRI file (HDF5 with a 'kspace' dataset (slices, coils, readout, ky) complex64)"


def _slice_list(slices: int | slice | Sequence[int] | None, n: int, p: Path) -> list[int]:
    if slices is None:
        return list(range(n))
    if isinstance(slices, slice):
        out = list(range(n))[slices]
    elif isinstance(slices, (int, np.integer)) and not isinstance(slices, bool):
        out = [int(slices)]
    else:
        out = [int(s) for s in slices]
    bad = [s for s in out if not -n <= s < n]
    if bad or not out:
        raise ValueError(f"{p}: dataset 'kspace': slices: expected indices in 0 .. {n - 1}, got {bad or 'none'}")
    return [s % n for s in out]


def read_fastmri(
    path: str | os.PathLike[str],
    shots: int = 16,
    ordering: str = "interleaved",
    crop_readout: bool = True,
    slices: int | slice | Sequence[int] | None = None,
    readout_axis: int = -2,
) -> Case:
    """Read a fastMRI ``.h5`` file as a stack case.

    Parameters
    ----------
    path : str or path-like
        fastMRI multi-coil (``kspace`` 4D) or single-coil (3D, read as one coil) file.
    shots : int
        Number of shots to assume, ``1 ..`` the number of acquired lines.
    ordering : {"interleaved", "sequential", "centre-out"}
        Assumed shot ordering (module notes).
    crop_readout : bool
        Crop the 2x oversampled readout to its central half in image space.
    slices : int, slice or sequence of int, optional
        Slices to read (default all); the file is read one slice at a time.
    readout_axis : {-2, -1}
        Axis of the readout in the file: -2 for fastMRI files (``(slices, coils, readout, ky)``);
        -1 for a file already in the project layout ``(slices, coils, ky, kx)``.

    Returns
    -------
    Case
        ``kind="stack"``; ``kspace`` ``(slices, coils, ky, kx)`` complex64 with ``kx`` the
        cropped readout (half the file's when ``crop_readout``); ``shot_index`` ``(ky,)`` int32;
        ``truth["reference_rss"]`` ``(slices, 320, 320)`` float32 when the file has
        ``reconstruction_rss``; ``voxel_size_mm`` ``(dz, dy, dx)`` when it has an
        ``ismrmrd_header``; ``attrs``: ``format``, ``assumed``, ``shot_ordering``,
        ``readout_cropped``, ``slices`` (indices read), ``fastmri_<attr>`` for the file's
        attributes.

    Raises
    ------
    ValueError
        Missing file, not HDF5, no ``kspace`` dataset, wrong rank or non-complex k-space,
        non-finite values, a ``mask`` of the wrong length, no acquired line, bad ``shots`` /
        ``ordering`` / ``slices``, a malformed header. The message names the file and dataset.
    """
    import h5py

    p = Path(path)
    if ordering not in SHOT_ORDERINGS:
        raise ValueError(f"ordering: expected one of {SHOT_ORDERINGS}, got {ordering!r}")
    if readout_axis not in (-2, -1):
        raise ValueError(f"readout_axis: expected -2 (fastMRI) or -1, got {readout_axis!r}")
    with open_hdf5(p, _EXPECTED) as f:
        if "kspace" not in f:
            raise ValueError(f"{p}: dataset 'kspace': missing; expected {_EXPECTED}")
        ds = f["kspace"]
        if not isinstance(ds, h5py.Dataset):
            raise ValueError(f"{p}: dataset 'kspace': expected a dataset, got a {type(ds).__name__}")
        if ds.ndim not in (3, 4):
            raise ValueError(
                f"{p}: dataset 'kspace': expected rank 4 (slices, coils, readout, ky) or 3 (single-coil), "
                f"got shape {ds.shape}"
            )
        if ds.dtype.kind != "c":
            raise ValueError(f"{p}: dataset 'kspace': expected complex values (complex64), got dtype {ds.dtype}")
        single_coil = ds.ndim == 3
        nsl_file = ds.shape[0]
        ncoil = 1 if single_coil else ds.shape[1]
        n_ro, n_ky = (ds.shape[-2], ds.shape[-1]) if readout_axis == -2 else (ds.shape[-1], ds.shape[-2])
        if min(ds.shape) == 0:
            raise ValueError(f"{p}: dataset 'kspace': expected a non-empty array, got shape {ds.shape}")
        which = _slice_list(slices, nsl_file, p)
        nx = n_ro // 2 if crop_readout else n_ro
        if crop_readout and nx < 1:
            raise ValueError(f"{p}: dataset 'kspace': readout of {n_ro} sample(s) is too short to crop to its half")

        mask = read_dataset(f, "mask", p, f"the sampling mask ({n_ky},)", required=False)
        header_xml = read_dataset(f, "ismrmrd_header", p, "the ISMRMRD XML header", required=False)
        if header_xml is None and "ismrmrd_header" in f.attrs:  # some converters store it as an attribute
            header_xml = f.attrs["ismrmrd_header"]
        rss = read_dataset(f, "reconstruction_rss", p, "(slices, 320, 320) float", required=False)
        file_attrs = {str(k): v for k, v in f.attrs.items() if k != "ismrmrd_header"}

        kspace = np.zeros((len(which), ncoil, n_ky, nx), dtype=np.complex64)
        nonzero = np.zeros(n_ky, dtype=bool)
        for j, s in enumerate(which):
            k = np.asarray(ds[s])
            if single_coil:
                k = k[None]
            if readout_axis == -2:
                k = np.swapaxes(k, -1, -2)  # (coils, ky, readout)
            if not np.all(np.isfinite(k)):
                raise ValueError(
                    f"{p}: dataset 'kspace': expected finite values, got NaN or infinite values in slice "
                    f"{s}"
                )
            nonzero |= np.any(k != 0, axis=(0, 2))
            kspace[j] = center_crop_readout(k, nx) if crop_readout else k

    assumed = []
    if mask is not None:
        m = np.asarray(mask).ravel()
        if m.shape != (n_ky,) or m.dtype.kind not in "biuf":
            raise ValueError(
                f"{p}: dataset 'mask': expected ({n_ky},) (one entry per ky line), got shape "
                f"{np.shape(mask)} dtype {m.dtype}"
            )
        acquired = m != 0
        assumed.append("acquired lines from the 'mask' dataset")
    else:
        acquired = nonzero
        assumed.append("acquired lines = ky lines not all zero in every slice and coil")
    if not acquired.any():
        raise ValueError(f"{p}: dataset 'kspace': expected at least one acquired ky line, got all zero")
    kspace[:, :, ~acquired, :] = 0
    n_acq = int(acquired.sum())
    if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or not 1 <= shots <= n_acq:
        raise ValueError(f"shots: expected an integer 1 .. {n_acq} (the acquired lines of {p}), got {shots!r}")
    shot_index = assign_shots(acquired, int(shots), ordering)
    rule = {"interleaved": "line i -> shot i mod {n}", "sequential": "consecutive blocks of lines per shot",
            "centre-out": "lines by distance from the centre, in consecutive blocks per shot"}.get(ordering, ordering)
    assumed.insert(
        0,
        f"shot order not stored in fastMRI files: assumed {ordering} ({rule.format(n=int(shots))}) over the "
        f"{n_acq} acquired lines in ky order, {int(shots)} shots",
    )
    if readout_axis == -2:
        assumed.append(f"readout on axis -2 of the file ({n_ro} samples), ky on axis -1 ({n_ky} lines): axes swapped")
    if crop_readout:
        assumed.append(f"readout 2x oversampled: cropped from {n_ro} to the central {nx} in image space")
    if single_coil:
        assumed.append("single-coil file: one coil")

    truth: dict[str, np.ndarray] = {}
    if rss is not None:
        r = np.asarray(rss)
        if r.ndim != 3 or r.shape[0] != nsl_file or r.dtype.kind not in "iuf":
            raise ValueError(
                f"{p}: dataset 'reconstruction_rss': expected ({nsl_file}, ny, nx) real values, got shape "
                f"{r.shape} dtype {r.dtype}"
            )
        r = r[which]
        if readout_axis == -2:
            r = np.swapaxes(r, -1, -2)
        truth["reference_rss"] = np.ascontiguousarray(r, dtype=np.float32)

    voxel = None
    if header_xml is not None:
        hdr = parse_ismrmrd_header(header_xml, f"{p}: dataset 'ismrmrd_header'")
        (ex, ey, ez), (fx, fy, fz) = hdr.encoded_matrix, hdr.encoded_fov_mm
        if fx > 0 and fy > 0 and fz > 0:
            voxel = (fz / max(ez, 1), fy / ey, fx / ex)
            if ey != n_ky or ex != n_ro:
                assumed.append(
                    f"header encoded matrix {ex} x {ey} differs from the k-space ({n_ro} x {n_ky}); voxel size "
                    "from the header"
                )

    attrs: dict[str, Any] = {
        "format": "fastmri",
        "assumed": "; ".join(assumed),
        "shot_ordering": ordering,
        "readout_cropped": bool(crop_readout),
        "slices": np.asarray(which, dtype=np.int64),
    }
    for key, val in file_attrs.items():
        if isinstance(val, bytes):
            val = val.decode("utf-8", errors="replace")
        if isinstance(val, np.generic):
            val = val.item()
        if isinstance(val, (str, int, float, bool)):
            attrs[f"fastmri_{key}"] = val
    case = Case(kspace, shot_index, kind="stack", truth=truth, voxel_size_mm=voxel, attrs=attrs, source=p)
    validate_case(case, p)
    return case
