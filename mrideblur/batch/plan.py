"""Finding the studies of ``mrideblur batch`` (:func:`discover`) and planning their tasks
(:func:`plan_studies`): reading each input's header, never its data."""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ..io.atomic import full_suffix
from ..io.shot_order import SHOT_ORDERINGS
from ..shell import one_line
from .options import (
    HDF5_SUFFIXES,
    INPUT_SUFFIXES,
    KSPACE_METHODS,
    MANIFEST_COLUMNS,
    MOTION_MODELS,
    NIFTI_METHODS,
    NIFTI_SUFFIXES,
    BatchOptions,
    Study,
)

__all__ = ["discover", "plan_studies"]


# ------------------------------------------------------------------------------ discovering


def _stem(path: Path) -> str:
    name = path.name
    suffix = full_suffix(path)
    return name[: len(name) - len(suffix)] if suffix and name.lower().endswith(suffix) else path.stem


def _safe_id(text: str) -> str:
    out = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "study"
    return out


def _int_or_none(text: str, where: str) -> int | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{where}: expected an integer, got {text!r}") from None


def discover(source: str | os.PathLike[str], options: BatchOptions, out_dir: Path | None = None) -> list[Study]:
    """The studies of a directory or a manifest, in a stable order.

    Parameters
    ----------
    source : path
        A directory (every ``.nii``, ``.nii.gz``, ``.h5``, ``.hdf5`` file below it, hidden
        files and ``out_dir`` excluded) or a ``.csv`` manifest with a header row: ``input``
        (required; relative paths are relative to the manifest's folder), and optional
        ``truth`` (NIfTI ground truth), ``id`` (output folder name), ``pe_axis``,
        ``slice_axis``, ``shots``, ``ordering``, ``slices`` (override the command's options
        for that row).
    options : BatchOptions
        Defaults for every study.
    out_dir : Path, optional
        Excluded from a directory scan.

    Returns
    -------
    list of Study
        Not yet planned (:func:`plan_studies`); a bad manifest row is a study with ``error``.

    Raises
    ------
    ValueError
        ``source`` missing, neither a directory nor a ``.csv``; a manifest without an
        ``input`` column or with unknown columns.
    """
    src = Path(source)
    studies: list[Study] = []
    if src.is_dir():
        skip = out_dir.resolve() if out_dir is not None else None
        files = []
        for p in sorted(src.rglob("*")):
            rel = p.relative_to(src)
            if any(part.startswith(".") for part in rel.parts) or not p.is_file():
                continue
            if skip is not None and (p.resolve() == skip or skip in p.resolve().parents):
                continue
            if full_suffix(p) in INPUT_SUFFIXES:
                files.append(p)
        for p in files:
            studies.append(Study(id=_safe_id(_stem(p)), input=p, options=replace(options)))
    elif src.is_file() and full_suffix(src) == ".csv":
        with open(src, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            cols = [c.strip() for c in (reader.fieldnames or [])]
            if "input" not in cols:
                raise ValueError(f"{src}: the manifest needs a header row with an 'input' column; found {cols}")
            unknown = [c for c in cols if c not in MANIFEST_COLUMNS]
            if unknown:
                raise ValueError(f"{src}: unknown manifest column(s) {unknown}; expected {list(MANIFEST_COLUMNS)}")
            for n, raw in enumerate(reader, start=2):
                row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
                where = f"{src} line {n}"
                text = row.get("input", "")
                path = Path(text) if text else Path(f"<line {n}>")
                if text and not path.is_absolute():
                    path = src.parent / path
                st = Study(id=_safe_id(row.get("id") or _stem(path)), input=path, options=replace(options))
                try:
                    if not text:
                        raise ValueError(f"{where}: empty 'input'")
                    if row.get("truth"):
                        t = Path(row["truth"])
                        st.truth = t if t.is_absolute() else src.parent / t
                    for key in ("pe_axis", "slice_axis", "shots"):
                        v = _int_or_none(row.get(key, ""), f"{where}: column {key!r}")
                        if v is not None:
                            setattr(st.options, key, v)
                    if row.get("ordering"):
                        st.options.ordering = row["ordering"]
                    if row.get("slices"):
                        st.options.slices = row["slices"]
                    if row.get("motion_csv"):
                        m = Path(row["motion_csv"])
                        st.options.motion_csv = str(m if m.is_absolute() else src.parent / m)
                except ValueError as exc:
                    st.error = str(exc)
                studies.append(st)
    else:
        raise ValueError(f"{src}: expected an input directory or a manifest .csv (header row with 'input')")
    # unique output names, in order
    seen: dict[str, int] = {}
    for st in studies:
        base = st.id
        if base in seen:
            seen[base] += 1
            st.id = f"{base}-{seen[base]}"
        else:
            seen[base] = 1
    return studies


# -------------------------------------------------------------------------------- planning


def _check_options(st: Study) -> None:
    """Raise ``ValueError`` if the method does not suit the input kind."""
    o = st.options
    if st.kind in ("nifti", "fastmri"):  # a case stores its shot map, ISMRMRD its acquisition order
        missing = [flag for flag, v in (("--shots", o.shots), ("--ordering", o.ordering)) if v is None]
        if missing:
            what = {"nifti": "NIfTI image", "fastmri": "fastMRI file"}[st.kind]
            raise ValueError(f"{st.input}: a {what} does not record which phase-encode lines each shot "
                             f"acquired; give {' and '.join(missing)} (manifest columns 'shots', 'ordering'), "
                             f"e.g. --shots 16 --ordering sequential")
    if o.ordering is not None and o.ordering not in SHOT_ORDERINGS:
        raise ValueError(f"{st.input}: ordering: expected one of {SHOT_ORDERINGS}, got {o.ordering!r}")
    if st.kind == "nifti":
        if o.method not in NIFTI_METHODS:
            raise ValueError(f"{st.input}: a NIfTI image holds no raw k-space; method {o.method!r} needs it "
                             f"(use --method autofocus for NIfTI magnitude images)")
    elif o.method not in KSPACE_METHODS:
        raise ValueError(f"{st.input}: method {o.method!r} is not a k-space method; expected one of "
                         f"{list(KSPACE_METHODS)}"
                         + (" (autofocus is for NIfTI magnitude images)" if o.method == "autofocus" else ""))
    if o.shots is not None and o.shots < 1:
        raise ValueError(f"{st.input}: shots: expected >= 1, got {o.shots}")
    if st.kind == "nifti":
        lines = st.meta["shape"][o.pe_axis]
        if lines < 8 or o.shots > lines:
            raise ValueError(f"{st.input}: {lines} phase-encode lines cannot hold {o.shots} shots")
    if o.motion_csv and (st.kind != "nifti" or o.method != "autofocus"):
        raise ValueError(f"{st.input}: a motion table (--motion-csv) is for NIfTI images with --method autofocus")
    if o.motion_model not in MOTION_MODELS:
        raise ValueError(f"{st.input}: motion_model: expected one of {list(MOTION_MODELS)}, got {o.motion_model!r}")


def _plan_nifti(st: Study) -> None:
    import nibabel as nib

    p = st.input
    try:
        img = nib.load(p)
        shape = tuple(int(n) for n in img.shape)
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types on bad files
        raise ValueError(f"{p}: could not read as a NIfTI-1 volume ({type(exc).__name__}: {exc})") from None
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) not in (2, 3):
        raise ValueError(f"{p}: expected a 2D image or a 3D volume, got shape {shape}")
    o = st.options
    nd = len(shape)
    if o.method not in NIFTI_METHODS:
        _check_options(st)  # the method's error says more than a missing --pe-axis
    if o.pe_axis is None:
        raise ValueError(f"{p}: --pe-axis: the phase-encode axis of the NIfTI array is needed (0..{nd - 1})")
    if not 0 <= o.pe_axis < nd:
        raise ValueError(f"{p}: --pe-axis: expected 0..{nd - 1} for shape {shape}, got {o.pe_axis}")
    if nd == 3:
        if not 0 <= o.slice_axis < 3 or o.slice_axis == o.pe_axis:
            raise ValueError(f"{p}: --slice-axis: expected an axis 0..2 other than --pe-axis {o.pe_axis}, "
                             f"got {o.slice_axis}")
        ntasks = shape[o.slice_axis]
    else:
        ntasks = 1
    if st.truth is not None:
        try:
            tshape = tuple(int(n) for n in nib.load(st.truth).shape)
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"{st.truth}: could not read the truth as NIfTI ({type(exc).__name__}: {exc})") from None
        while len(tshape) > 3 and tshape[-1] == 1:
            tshape = tshape[:-1]
        if tshape != shape:
            raise ValueError(f"{st.truth}: truth shape {tshape} differs from the input's {shape}")
    st.ntasks = ntasks
    st.meta = {"shape": list(shape)}


def _plan_hdf5(st: Study) -> None:
    import h5py

    from ..io.case import infer_kind, open_hdf5

    p = st.input
    with open_hdf5(p, "a case, fastMRI or ISMRMRD HDF5 file") as f:
        keys = set(f.keys())
        if "shot_index" in keys and "kspace" in keys:
            st.kind = "case"
            ks, si = f["kspace"], f["shot_index"]
            layout = f.attrs.get("layout")
            layout = layout.decode() if isinstance(layout, bytes) else layout
            layout = str(layout) if layout is not None else infer_kind(ks.ndim, si.ndim)
            if layout not in ("2d", "stack", "3d"):
                raise ValueError(f"{p}: dataset 'kspace' of shape {ks.shape} with 'shot_index' {si.shape}: unknown layout")
            st.ntasks = int(ks.shape[0]) if layout == "stack" else 1
            st.meta = {"layout": layout, "shape": list(ks.shape)}
        elif "dataset" in keys and isinstance(f["dataset"], h5py.Group):
            st.kind, st.ntasks = "ismrmrd", 1
        elif "kspace" in keys:
            ks = f["kspace"]
            if ks.ndim not in (3, 4):
                raise ValueError(f"{p}: dataset 'kspace': expected a fastMRI (slices, coils, readout, ky) array, "
                                 f"got shape {ks.shape}")
            st.kind, st.ntasks = "fastmri", int(ks.shape[0])
            st.meta = {"shape": list(ks.shape)}
        else:
            raise ValueError(f"{p}: expected a case file ('kspace' and 'shot_index'), a fastMRI file ('kspace') "
                             f"or an ISMRMRD file ('dataset'); found datasets {sorted(keys)}")
    if st.ntasks < 1:
        raise ValueError(f"{p}: no slice to process")


def _parse_slices(text: str, n: int, where: str) -> list[int]:
    """``"a:b[:c]"`` or ``"i,j,..."`` -> sorted slice indices within ``0 .. n - 1``."""
    t = text.strip()
    try:
        if ":" in t:
            parts = [int(v) if v.strip() else None for v in t.split(":")]
            if len(parts) > 3:
                raise ValueError
            ids = list(range(n))[slice(*parts)]
        else:
            ids = sorted({int(v) for v in t.split(",") if v.strip()})
    except ValueError:
        raise ValueError(f"{where}: --slices: expected START:STOP or a comma list of slice indices, got {text!r}") from None
    bad = [i for i in ids if not 0 <= i < n]
    if bad or not ids:
        raise ValueError(f"{where}: --slices {text!r}: selects {bad[:5] if bad else 'no'} slice(s) outside 0..{n - 1}")
    return ids


def _select_slices(st: Study) -> None:
    """``meta["slice_ids"]``: the slices to process (``[None]`` for a single image/volume)."""
    sliced = (st.kind == "nifti" and len(st.meta.get("shape", [])) == 3) or st.kind == "fastmri" or \
        (st.kind == "case" and st.meta.get("layout") == "stack")
    if st.options.slices:
        if not sliced:
            raise ValueError(f"{st.input}: --slices: the input is one image or volume, not a stack of slices")
        ids: list[int | None] = list(_parse_slices(st.options.slices, st.ntasks, str(st.input)))
    else:
        ids = list(range(st.ntasks)) if sliced else [None]
    st.meta["slices_in_file"] = st.ntasks if sliced else 1
    st.meta["slice_ids"] = ids
    st.ntasks = len(ids)


def _check_motion_table(st: Study) -> None:
    """The study's motion table (``--motion-csv``) read and matched to the slices to process.

    A table with a ``slice`` column needs ``nshot`` rows for every processed slice (the
    slice's index along ``--slice-axis``); one without serves a 2D image only.
    """
    from ..io.results import motion_csv_columns, read_motion_csv

    o = st.options
    table = read_motion_csv(o.motion_csv, o.shots)  # the file, line and column of any bad value
    ids = st.meta["slice_ids"]
    if "slice" not in motion_csv_columns(o.motion_csv):
        if ids != [None]:
            raise ValueError(f"{o.motion_csv}: no 'slice' column, but {st.input} is a volume of "
                             f"{st.meta['slices_in_file']} slices along axis {o.slice_axis}; give every processed "
                             f"slice's rows (columns slice,shot,rot_deg,ty,tx), or choose one slice's table per run")
        return
    wanted = [0 if i is None else int(i) for i in ids]
    absent = [i for i in wanted if i not in table]
    if absent:
        raise ValueError(f"{o.motion_csv}: no rows for slice(s) {absent[:10]}{' ...' if len(absent) > 10 else ''} "
                         f"of {st.input} (the table has slices {sorted(table)[:10]}); every processed slice needs "
                         f"{o.shots} rows (shot 0..{o.shots - 1})")


def plan_studies(studies: Sequence[Study]) -> list[Study]:
    """Read each input's header (not its data) to find its kind and number of tasks.

    A study that cannot be processed gets ``error`` (one line naming the file); the others are
    unaffected.
    """
    for st in studies:
        if st.error:
            continue
        try:
            suffix = full_suffix(st.input)
            if not st.input.is_file():
                raise ValueError(f"{st.input}: no such file")
            if suffix in NIFTI_SUFFIXES:
                st.kind = "nifti"
                _plan_nifti(st)
                _check_options(st)
            elif suffix in HDF5_SUFFIXES:
                _plan_hdf5(st)
                _check_options(st)
            else:
                raise ValueError(f"{st.input}: unsupported file type {suffix or '(none)'!r}; "
                                 f"expected one of {list(INPUT_SUFFIXES)}")
            _select_slices(st)
            if st.options.motion_csv:
                _check_motion_table(st)
        except ValueError as exc:
            st.error = one_line(exc)
        except Exception as exc:  # noqa: BLE001 - an unreadable file fails its row, never the batch
            st.error = f"{st.input}: {type(exc).__name__}: {one_line(exc)}"
    return list(studies)
