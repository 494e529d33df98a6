"""Reading Cartesian ISMRMRD raw data (``.h5``) into a :class:`~mrideblur.io.case.Case`.

The file holds the standard ISMRMRD HDF5 layout: ``/dataset/xml`` (the XML header) and
``/dataset/data`` (one compound record per acquired line: ``head``, ``traj``, ``data``). It is
read with the ``ismrmrd`` package (a dependency, imported on first use): the records become
``ismrmrd.Acquisition`` objects (``ismrmrd.file.Acquisitions``, on the package's record type
``ismrmrd.hdf5.acquisition_dtype``), their flags are tested with the package's ``ACQ_*``
constants, and the header is read by :func:`~mrideblur.io.ismrmrd_header.parse_ismrmrd_header`
(``ismrmrd.xsd``). The file is opened read-only with h5py, so that a missing file, a non-HDF5
file or a missing dataset gives a one-line error naming the file and the dataset.

What the reader does
--------------------
- Encoding: the first ``<encoding>`` of the header. Its ``encodedSpace/matrixSize`` ``(x, y, z)``
  is the k-space grid ``(kx, ky, kz)``; ``z > 1`` (or any ``kspace_encode_step_2 > 0``) makes a
  3D case. Only Cartesian trajectories are read.
- Lines: ``idx.kspace_encode_step_1`` -> ``ky``, ``idx.kspace_encode_step_2`` -> ``kz``,
  ``idx.slice`` -> the slice of a stack. The ``encodingLimits`` centres are put on the grid
  centre ``N // 2`` (docs/conventions.md: index ``N // 2`` is DC); without limits the step is the
  grid index. Along the readout, ``discard_pre``/``discard_post`` samples are dropped and
  ``center_sample`` lands on ``kx = N // 2``; lines flagged ``ACQ_IS_REVERSE`` are reversed.
- Skipped: acquisitions of another encoding space (``encoding_space_ref != 0``), noise,
  parallel-imaging calibration only (``ACQ_IS_PARALLEL_CALIBRATION``; calibration *and* imaging
  lines are kept), navigator, phase-correction, feedback, dummy, surface-coil-correction and
  phase-stabilisation data. ``select`` keeps only lines whose counters match.
- A position (slice, kz, ky) acquired twice (averages, repetitions, contrasts, ...) is an error
  that names the counters that differ; choose one with ``select``.
- Readout oversampling: when the header's encoded matrix ``x`` is twice the recon matrix
  ``x``, the readout is cropped to the central half in image space (centred orthonormal 1D
  transform along ``kx``, the convention of :mod:`mrideblur.physics.fourier`).
- Voxel size ``(dz, dy, dx)`` from the encoded field of view over the encoded matrix
  (``dz`` the slice thickness in 2D).

Shots (``shots="acquisition"``)
-------------------------------
Per slice (the whole volume in 3D), lines are taken in file order (the acquisition order) and
a new shot starts at a line by the first of these rules that applies to the file:

1. *Counters*: when ``idx.segment`` or ``idx.repetition`` take more than one value, a new shot
   starts wherever the pair ``(repetition, segment)`` changes from the previous line, and
   nowhere else.
2. *Time gaps*: otherwise, when ``acquisition_time_stamp`` shows gaps longer than
   ``gap_factor`` times the median gap between consecutive lines (at least one tick), a new
   shot starts after each such gap, and nowhere else.
3. *Encoding jumps*: otherwise a new shot starts where the phase encoding moves against the
   running direction of the current shot: the first step of a shot sets the direction of
   ``ky`` (and of ``kz`` in 3D); a later step of the opposite sign on either axis starts a new
   shot (an interleaved sweep "jumps back" at each shot).

Shots are numbered in order of their first line. A stack needs the same shot map in every
slice. With an integer ``shots`` the file's order is ignored and the acquired lines are split
by :func:`~mrideblur.io.case.assign_shots` (``ordering``). ``Case.attrs["assumed"]`` says which
rule was used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .case_base import Case, assign_shots, center_crop_readout, open_hdf5, read_dataset, validate_case
from .ismrmrd_header import IsmrmrdHeader, import_ismrmrd, parse_ismrmrd_header

__all__ = ["IsmrmrdHeader", "parse_ismrmrd_header", "read_ismrmrd", "center_crop_readout", "SKIPPED_FLAGS"]

#: ISMRMRD acquisition flags (names of the ``ismrmrd`` package's constants) whose lines are not
#: image k-space.
SKIPPED_FLAGS = {
    "ACQ_IS_NOISE_MEASUREMENT": "noise measurement",
    "ACQ_IS_PARALLEL_CALIBRATION": "parallel calibration",
    "ACQ_IS_NAVIGATION_DATA": "navigation",
    "ACQ_IS_PHASECORR_DATA": "phase correction",
    "ACQ_IS_HPFEEDBACK_DATA": "HP feedback",
    "ACQ_IS_DUMMYSCAN_DATA": "dummy scan",
    "ACQ_IS_RTFEEDBACK_DATA": "RT feedback",
    "ACQ_IS_SURFACECOILCORRECTIONSCAN_DATA": "surface coil correction",
    "ACQ_IS_PHASE_STABILIZATION_REFERENCE": "phase stabilisation reference",
    "ACQ_IS_PHASE_STABILIZATION": "phase stabilisation",
}
_COUNTERS = ("average", "contrast", "phase", "repetition", "set", "segment", "slice")
_EXPECTED = "an ISMRMRD file (HDF5 with /dataset/xml and /dataset/data)"


# ------------------------------------------------------------------------------------ shots


def _direction_breaks(pos: np.ndarray) -> np.ndarray:
    """Rule 3: True where a line starts a new shot because an encoding moved backwards."""
    n = len(pos)
    new = np.zeros(n, dtype=bool)
    if n == 0:
        return new
    new[0] = True
    direction = np.zeros(pos.shape[1], dtype=np.int64)
    steps = np.sign(np.diff(pos, axis=0)).astype(np.int64)
    for i in range(1, n):
        step = steps[i - 1]
        if np.any((direction != 0) & (step != 0) & (step != direction)):
            new[i] = True
            direction[:] = 0
        else:
            direction = np.where(direction == 0, step, direction)
    return new


def _infer_shot_starts(
    pos: np.ndarray, counters: np.ndarray, stamps: np.ndarray, gap_factor: float
) -> tuple[np.ndarray, str]:
    """Boolean "line starts a shot" in acquisition order, and the rule used (module notes)."""
    n = len(pos)
    if len(np.unique(counters, axis=0)) > 1:
        new = np.ones(n, dtype=bool)
        new[1:] = np.any(counters[1:] != counters[:-1], axis=1)
        return new, "counters"
    if n > 1:
        gaps = np.diff(stamps.astype(np.int64))
        if np.any(gaps != gaps[0]) or np.any(gaps < 0):
            threshold = gap_factor * max(float(np.median(gaps)), 1.0)
            big = gaps > threshold
            if big.any():
                new = np.ones(n, dtype=bool)
                new[1:] = big
                return new, "time gaps"
    return _direction_breaks(pos), "encoding jumps"


_RULE_TEXT = {
    "counters": "a new shot at each change of (idx.repetition, idx.segment)",
    "time gaps": "a new shot after each gap in acquisition_time_stamp longer than {gap} x the median gap",
    "encoding jumps": "a new shot where the phase encoding moves against the running direction of the shot "
    "(segment/repetition unused and no time gaps in the file)",
}


# ------------------------------------------------------------------------------------- file


def _read_file(p: Path, dataset: str) -> tuple[Any, list[Any]]:
    """The XML header and the acquisitions (``ismrmrd.Acquisition``, in file order) of a file."""
    import h5py

    ismrmrd = import_ismrmrd()
    where_data = f"{p}: dataset '{dataset}/data'"
    with open_hdf5(p, _EXPECTED) as f:
        if dataset not in f or not isinstance(f[dataset], h5py.Group):
            raise ValueError(f"{p}: group {dataset!r}: missing; expected {_EXPECTED}")
        xml = read_dataset(f[dataset], "xml", p, "the ISMRMRD XML header")
        if "data" not in f[dataset]:
            raise ValueError(f"{where_data}: missing; expected ISMRMRD acquisitions (compound head/traj/data)")
        ds = f[dataset]["data"]
        if not isinstance(ds, h5py.Dataset) or not {"head", "traj", "data"} <= set(ds.dtype.names or ()):
            raise ValueError(
                f"{where_data}: expected compound records with fields 'head', 'traj' and 'data', got "
                f"{getattr(ds, 'dtype', 'a ' + type(ds).__name__)}"
            )
        missing = [n for n in ismrmrd.hdf5.acquisition_header_dtype.names if n not in (ds.dtype["head"].names or ())]
        if missing:
            raise ValueError(f"{where_data}: expected the ISMRMRD acquisition header fields, missing {missing}")
        try:  # HDF5 converts the records, field by field, to the package's record type
            records = np.atleast_1d(ds.astype(ismrmrd.hdf5.acquisition_dtype)[()])
        except Exception as exc:  # noqa: BLE001 - h5py raises several types for bad data
            raise ValueError(f"{where_data}: could not read the acquisitions ({type(exc).__name__}: {exc})") from None
    acquisitions = []
    for i, rec in enumerate(records):
        try:
            acquisitions.append(ismrmrd.file.Acquisitions.from_numpy(rec))
        except ValueError:
            h = rec["head"]
            nc, ns, nt = int(h["active_channels"]), int(h["number_of_samples"]), int(h["trajectory_dimensions"])
            raise ValueError(
                f"{where_data}: acquisition {i}: expected {2 * ns * nc} data floats (2 x {nc} channels x {ns} "
                f"samples) and {ns * nt} trajectory floats, got {np.size(rec['data'])} and {np.size(rec['traj'])}"
            ) from None
    return xml, acquisitions


# ----------------------------------------------------------------------------------- reader


def read_ismrmrd(
    path: str | os.PathLike[str],
    shots: int | str = "acquisition",
    ordering: str = "interleaved",
    crop_readout: bool = True,
    select: dict[str, int] | None = None,
    gap_factor: float = 4.0,
    dataset: str = "dataset",
) -> Case:
    """Read a Cartesian ISMRMRD ``.h5`` file as a case.

    Parameters
    ----------
    path : str or path-like
        ISMRMRD HDF5 file.
    shots : "acquisition" or int
        ``"acquisition"``: infer the shots from the acquisition order (module notes, rules 1-3).
        An int: that many shots over the acquired lines by ``ordering``.
    ordering : {"interleaved", "sequential", "centre-out", "checkered"}
        Used with an integer ``shots`` (see :func:`~mrideblur.io.case.assign_shots`).
    crop_readout : bool
        Crop the readout to the central half in image space when the header's encoded matrix
        ``x`` is twice the recon matrix ``x`` (2x readout oversampling).
    select : dict of str -> int, optional
        Keep only lines whose encoding counters equal these values, e.g.
        ``{"repetition": 0, "average": 1}``; keys among ``average, contrast, phase,
        repetition, set, segment, slice``.
    gap_factor : float
        Rule 2: a time gap longer than ``gap_factor`` x the median gap starts a shot.
    dataset : str
        Name of the ISMRMRD group in the file.

    Returns
    -------
    Case
        ``kind`` ``"2d"`` (one slice, ``(coils, ky, kx)``), ``"stack"`` (several slices,
        ``(slices, coils, ky, kx)``) or ``"3d"`` (``(coils, kz, ky, kx)``); complex64 k-space on
        the encoded grid (readout cropped as above); ``voxel_size_mm`` ``(dz, dy, dx)`` when
        the header has a field of view; ``attrs`` ``format``, ``assumed``, ``shot_rule``,
        ``readout_cropped``, ``skipped_acquisitions``.

    Raises
    ------
    ValueError
        Not an ISMRMRD file, a bad header, a non-Cartesian trajectory, no image lines, varying
        coil counts, lines outside the encoded grid, repeated positions, slices that differ in
        their acquired lines or shot maps, a 3D file with several slices (slabs), bad options.
        The message names the file and the dataset or field.
    """
    p = Path(path)
    if shots != "acquisition" and (isinstance(shots, bool) or not isinstance(shots, (int, np.integer))):
        raise ValueError(f"shots: expected 'acquisition' or an integer number of shots, got {shots!r}")
    if gap_factor <= 1:
        raise ValueError(f"gap_factor: expected a number > 1, got {gap_factor}")
    select = dict(select or {})
    for key in select:
        if key not in _COUNTERS:
            raise ValueError(f"select: expected keys among {_COUNTERS}, got {key!r}")
    xml, acqs = _read_file(p, dataset)
    ismrmrd = import_ismrmrd()
    where_xml = f"{p}: dataset '{dataset}/xml'"
    where_data = f"{p}: dataset '{dataset}/data'"
    hdr = parse_ismrmrd_header(xml, where_xml)
    if hdr.trajectory and hdr.trajectory.lower() != "cartesian":
        raise ValueError(f"{where_xml}: expected a Cartesian trajectory, got {hdr.trajectory!r}")

    def column(get: Any) -> np.ndarray:
        return np.array([get(a) for a in acqs], dtype=np.int64).reshape(len(acqs))

    def flag(name: str) -> np.ndarray:
        bit = getattr(ismrmrd, name)
        return np.array([a.is_flag_set(bit) for a in acqs], dtype=bool).reshape(len(acqs))

    e1 = column(lambda a: a.idx.kspace_encode_step_1)
    e2 = column(lambda a: a.idx.kspace_encode_step_2)
    counters = {name: column(lambda a, n=name: getattr(a.idx, n)) for name in _COUNTERS}
    nch = column(lambda a: a.active_channels)
    dpre = column(lambda a: a.discard_pre)
    dpost = column(lambda a: a.discard_post)
    csamp = column(lambda a: a.center_sample)
    space = column(lambda a: a.encoding_space_ref)
    stamps = column(lambda a: a.acquisition_time_stamp)

    keep = space == 0
    skipped: dict[str, int] = {}
    if np.any(space != 0):
        skipped["other encoding space"] = int(np.count_nonzero(space != 0))
    for const, name in SKIPPED_FLAGS.items():
        hit = flag(const) & keep
        if hit.any():
            skipped[name] = int(hit.sum())
            keep &= ~hit
    for key, val in select.items():
        hit = keep & (counters[key] != int(val))
        if hit.any():
            skipped[f"{key} != {val}"] = int(hit.sum())
        keep &= counters[key] == int(val)
    order = np.flatnonzero(keep)
    if order.size == 0:
        raise ValueError(
            f"{where_data}: expected image k-space lines, found none ({len(acqs)} acquisition(s); "
            f"skipped {skipped or 'none'})"
        )

    ncoil = np.unique(nch[order])
    if ncoil.size != 1:
        raise ValueError(f"{where_data}: expected the same active_channels on every line, got {ncoil.tolist()}")
    ncoil_i = int(ncoil[0])
    enc_x, enc_y, enc_z = hdr.encoded_matrix
    is_3d = enc_z > 1 or bool(np.any(e2[order] > 0))
    slices = counters["slice"][order]
    if is_3d and np.unique(slices).size > 1:
        raise ValueError(
            f"{where_data}: 3D data with several slices (slabs) {np.unique(slices).tolist()} are not supported; "
            "read one with select={'slice': n}"
        )
    slice_ids = np.unique(slices)
    nslice = int(slice_ids.size)
    slice_pos = np.searchsorted(slice_ids, slices)

    def offset(name: str, n: int) -> int:
        lim = hdr.limits.get(name)
        if lim is None or lim[2] <= 0:
            return 0
        return n // 2 - lim[2]

    ky = e1[order] + offset("kspace_encoding_step_1", enc_y)
    kz = e2[order] + offset("kspace_encoding_step_2", enc_z) if is_3d else np.zeros_like(ky)
    nz = max(enc_z, 1) if is_3d else 1
    for name, vals, n in (("kspace_encode_step_1", ky, enc_y), ("kspace_encode_step_2", kz, nz)):
        bad = (vals < 0) | (vals >= n)
        if bad.any():
            i = int(order[np.flatnonzero(bad)[0]])
            raise ValueError(
                f"{where_data}: acquisition {i}: idx.{name} puts the line at grid index "
                f"{int(vals[bad][0])}, outside the encoded matrix 0 .. {n - 1} of the XML header "
                f"(encodingLimits centre on index {n // 2})"
            )

    # repeated positions
    lin = (slice_pos * nz + kz) * enc_y + ky
    uniq, first, counts = np.unique(lin, return_index=True, return_counts=True)
    if np.any(counts > 1):
        dup = uniq[counts > 1][0]
        rows = order[lin == dup]
        varying = [c for c in _COUNTERS if c != "slice" and np.unique(counters[c][rows]).size > 1]
        hint = (
            f"the lines differ in {varying}; keep one with select={{{varying[0]!r}: 0}}"
            if varying
            else "the lines have identical counters"
        )
        raise ValueError(
            f"{where_data}: expected each (slice, kz, ky) position once, got {int((counts > 1).sum())} position(s) "
            f"acquired more than once (acquisitions {rows[:5].tolist()} share one); {hint}"
        )

    # fill the grid
    kspace = np.zeros((nslice, ncoil_i, nz, enc_y, enc_x), dtype=np.complex64)
    reverse = flag("ACQ_IS_REVERSE")
    for j, i in enumerate(order):
        line = acqs[i].data  # (channels, samples) complex64
        ns = line.shape[1]
        lo, hi = int(dpre[i]), ns - int(dpost[i])
        if not 0 <= lo < hi <= ns:
            raise ValueError(
                f"{where_data}: acquisition {int(i)}: discard_pre/post {lo}/{int(dpost[i])} leave no sample "
                f"of {ns}"
            )
        line = line[:, lo:hi]
        centre = int(csamp[i]) - lo if csamp[i] > 0 else line.shape[1] // 2
        if reverse[i]:
            line = line[:, ::-1]
            centre = line.shape[1] - 1 - centre
        start = enc_x // 2 - centre
        if start < 0 or start + line.shape[1] > enc_x:
            raise ValueError(
                f"{where_data}: acquisition {int(i)}: {line.shape[1]} samples centred on sample {centre} do "
                f"not fit the encoded matrix x = {enc_x} of the XML header"
            )
        kspace[slice_pos[j], :, kz[j], ky[j], start : start + line.shape[1]] = line
    if not np.all(np.isfinite(kspace)):
        raise ValueError(f"{where_data}: expected finite k-space samples, got NaN or infinite values")

    acquired = np.zeros((nslice, nz, enc_y), dtype=bool)
    acquired[slice_pos, kz, ky] = True
    if nslice > 1 and not np.all(acquired == acquired[:1]):
        raise ValueError(
            f"{where_data}: slices {slice_ids.tolist()} acquired different ky lines; a stack shares one shot map — "
            "read one slice with select={'slice': n}"
        )

    # shots
    attrs: dict[str, Any] = {"format": "ismrmrd"}
    if shots == "acquisition":
        per_slice = []
        rules = set()
        seg_rep = np.stack([counters["repetition"][order], counters["segment"][order]], axis=1)
        for sidx in range(nslice):
            sel = np.flatnonzero(slice_pos == sidx)  # acquisition order within the slice
            pos = np.stack([kz[sel], ky[sel]], axis=1) if is_3d else ky[sel][:, None]
            starts, rule = _infer_shot_starts(pos, seg_rep[sel], stamps[order][sel], gap_factor)
            rules.add(rule)
            shot_of_line = np.cumsum(starts) - 1
            smap = np.full((nz, enc_y), -1, dtype=np.int32)
            smap[kz[sel], ky[sel]] = shot_of_line
            per_slice.append(smap)
        if any(not np.array_equal(per_slice[0], s) for s in per_slice[1:]):
            raise ValueError(
                f"{where_data}: the shots inferred from the acquisition order differ between slices "
                f"{slice_ids.tolist()}; a stack shares one shot map — read one slice with select={{'slice': n}} "
                "or pass an integer shots"
            )
        shot_index = per_slice[0]
        rule_txt = "; ".join(_RULE_TEXT[r].format(gap=gap_factor) for r in sorted(rules))
        attrs["shot_rule"] = ",".join(sorted(rules))
        assumed = [f"shots inferred from the acquisition order: {rule_txt}"]
    else:
        shot_index = assign_shots(acquired[0], int(shots), ordering)
        attrs["shot_rule"] = ordering
        assumed = [
            f"shot order not taken from the file; assumed {ordering} over the acquired lines in raster "
            f"order, {int(shots)} shots"
        ]

    # readout oversampling
    rec_x = hdr.recon_matrix[0]
    cropped = bool(crop_readout and enc_x == 2 * rec_x)
    if cropped:
        kspace = center_crop_readout(kspace, rec_x)
        assumed.append(
            f"readout 2x oversampled (encoded x {enc_x} = 2 x recon x {rec_x}): cropped to the central "
            f"{rec_x} in image space"
        )
    else:
        assumed.append(f"readout kept at {enc_x} samples (encoded x {enc_x}, recon x {rec_x})")
    if skipped:
        assumed.append("skipped: " + ", ".join(f"{v} {k}" for k, v in skipped.items()))
    if hdr.n_encodings > 1:
        assumed.append(f"only the first of {hdr.n_encodings} encodings read")
    attrs["assumed"] = "; ".join(assumed)
    attrs["readout_cropped"] = cropped
    attrs["skipped_acquisitions"] = int(sum(skipped.values()))

    fov = hdr.encoded_fov_mm
    voxel = None
    if fov[0] > 0 and fov[1] > 0 and fov[2] > 0:
        voxel = (fov[2] / max(enc_z, 1), fov[1] / enc_y, fov[0] / enc_x)

    if is_3d:
        case = Case(kspace[0], shot_index, kind="3d", voxel_size_mm=voxel, attrs=attrs, source=p)
    elif nslice == 1:
        case = Case(kspace[0, :, 0], shot_index[0], kind="2d", voxel_size_mm=voxel, attrs=attrs, source=p)
    else:
        attrs["slices"] = slice_ids.astype(np.int64)
        case = Case(kspace[:, :, 0], shot_index[0], kind="stack", voxel_size_mm=voxel, attrs=attrs, source=p)
    validate_case(case, p)
    return case
