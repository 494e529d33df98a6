"""``mrideblur batch``: correct whole directories of studies on Dask, resumably.

One **task** per 2D slice (per volume for 3D k-space): a task reads only its slice, runs the
library's estimator (:func:`mrideblur.mri.correct.correct` for k-space; for NIfTI magnitude
images :func:`mrideblur.mri.autofocus_step.step_autofocus`, one move per slice, or with
``motion_model="per-shot"`` :func:`mrideblur.mri.autofocus.autofocus`) and writes the slice's
result to ``OUT/<study>/.parts/slice_NNNN.npz``. When every slice of a study is there, the
client reassembles them into the study's outputs and writes ``report.json`` last:

- NIfTI input: ``corrected.nii.gz`` (the source's shape, affine and header), ``motion.csv``
  (a ``slice`` column, then ``shot,rot_deg,ty,tx``), ``report.json``;
- k-space input (case ``.h5``, fastMRI, ISMRMRD): ``image.nii.gz``, ``motion.csv``,
  ``recon.h5`` (complex image and motion; coil maps only for single slices), ``report.json``.

Resuming: every file is written to a temporary name and renamed (:mod:`mrideblur.io.atomic`),
so no half-written output ever appears. A rerun skips studies whose ``report.json`` exists
and slices whose part file exists, and removes temporary files a killed run left; so a killed
run restarts where it stopped. ``OUT/summary.csv`` (rewritten atomically after every study)
lists every input: ``status`` ``done`` (this run), ``skipped`` (finished before), ``failed``
(with the error) or ``pending``, the PSNR before/after when a truth exists, compute seconds,
the largest worker resident memory, and the output folder.

Scheduling: ``dask.distributed``, a ``LocalCluster`` of single-threaded worker processes by
default, or any scheduler by address (``--scheduler tcp://host:8786``): the same code path.
Tasks take file paths, so workers of a remote cluster must see the input and output folders
at the same paths (a shared file system).

Exit codes of the command: 0 every input done or skipped, 3 some inputs failed (see
``summary.csv``), 2 bad arguments, 1 an output could not be written, 130 interrupted.
"""

from __future__ import annotations

import argparse
import csv
import io as _io
import json
import os
import re
import resource
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .io.atomic import atomic_open, atomic_write, full_suffix
from .threads import set_threads, threads_from_env

__all__ = [
    "BatchOptions",
    "Study",
    "SUMMARY_COLUMNS",
    "add_parser",
    "cmd_batch",
    "correct_nifti_command",
    "discover",
    "plan_studies",
    "run_batch",
    "run_task",
]

NIFTI_SUFFIXES = (".nii", ".nii.gz")
HDF5_SUFFIXES = (".h5", ".hdf5")
INPUT_SUFFIXES = NIFTI_SUFFIXES + HDF5_SUFFIXES
#: Methods for NIfTI magnitude images (no raw k-space).
NIFTI_METHODS = ("autofocus", "jsmoco")
#: NIfTI autofocus motion models (:class:`BatchOptions`).
MOTION_MODELS = ("step", "per-shot")
#: Columns of ``summary.csv``.
SUMMARY_COLUMNS = ("input", "study", "status", "slices", "psnr_uncorrected_db", "psnr_corrected_db",
                   "seconds", "peak_rss_mb", "output", "error")
MANIFEST_COLUMNS = ("input", "truth", "id", "pe_axis", "slice_axis", "shots", "ordering", "slices", "motion_csv")
EXIT_FAILED_ROWS = 3
_PARTS = ".parts"
_DONE = "report.json"


# ------------------------------------------------------------------------------------ options


@dataclass
class BatchOptions:
    """What to run on every input (per-input overrides come from the manifest).

    Attributes
    ----------
    method : str
        ``autofocus`` (NIfTI) or a k-space method of :data:`mrideblur.mri.correct.METHODS`.
    pe_axis : int or None
        NIfTI: array axis of the phase encoding (required for NIfTI inputs).
    slice_axis : int
        NIfTI volumes: array axis across which the 2D slices lie.
    shots : int
        NIfTI, fastMRI, ISMRMRD: number of shots to assume.
    ordering : {"interleaved", "sequential"}
        NIfTI, fastMRI, ISMRMRD: shot ordering to assume.
    coils : {"espirit", "joint"}
        k-space methods: coil maps.
    max_iter : int or None
        Iterations at the coarsest level (``None``: the method's default); for the step
        autofocus, the L-BFGS iterations of each inner solve and of the final correction.
    motion_model : {"step", "per-shot"}
        NIfTI autofocus: one move per slice searched under the magnitude model
        (:mod:`mrideblur.mri.autofocus_step`), or free per-shot motion by gradient entropy
        (:func:`mrideblur.mri.autofocus.autofocus`; recovers nothing from magnitude images,
        ``benchmarks/autofocus.md``, and is kept for complex-valued images).
    motion_csv : str or None
        NIfTI: a motion table (``[slice,]shot,rot_deg,ty,tx``, relative to shot 0, as
        ``motion.csv`` outputs are written) from elsewhere — a navigator, a tracker, the raw-data
        estimate of the same scan; each slice is then corrected with that motion under the
        magnitude model (:func:`mrideblur.mri.autofocus_magnitude.correct_magnitude`) instead
        of estimating it.
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
    shots: int = 16
    ordering: str = "interleaved"
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
    from .mri.correct import METHODS

    o = st.options
    if o.ordering not in ("interleaved", "sequential"):
        raise ValueError(f"{st.input}: ordering: expected 'interleaved' or 'sequential', got {o.ordering!r}")
    if st.kind == "nifti":
        if o.method not in NIFTI_METHODS:
            raise ValueError(f"{st.input}: a NIfTI image holds no raw k-space; method {o.method!r} needs it "
                             f"(use --method autofocus for NIfTI magnitude images)")
        if o.method == "jsmoco" and "jsmoco" not in METHODS:
            raise ValueError(f"{st.input}: method 'jsmoco' is not available in this version yet "
                             f"(mrideblur.mri.correct.METHODS = {list(METHODS)}); use --method autofocus")
    elif o.method not in METHODS:
        raise ValueError(f"{st.input}: method {o.method!r} is not a k-space method; expected one of {list(METHODS)}"
                         + (" (autofocus is for NIfTI magnitude images)" if o.method == "autofocus" else ""))
    if o.shots < 1:
        raise ValueError(f"{st.input}: shots: expected >= 1, got {o.shots}")
    if o.motion_csv:
        from .io.results import read_motion_csv

        if st.kind != "nifti" or o.method != "autofocus":
            raise ValueError(f"{st.input}: a motion table (--motion-csv) is for NIfTI images with --method autofocus")
        read_motion_csv(o.motion_csv, o.shots)  # fails here, with the file and line, before any work
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
    if shape[o.pe_axis] < 8 or o.shots > shape[o.pe_axis]:
        raise ValueError(f"{p}: {shape[o.pe_axis]} phase-encode lines cannot hold {o.shots} shots")
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

    from .io.case import infer_kind, open_hdf5

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
        except ValueError as exc:
            st.error = _one_line(exc)
        except Exception as exc:  # noqa: BLE001 - an unreadable file fails its row, never the batch
            st.error = f"{st.input}: {type(exc).__name__}: {_one_line(exc)}"
    return list(studies)


# ---------------------------------------------------------------------------- worker side


def _one_line(exc: BaseException | str) -> str:
    return " ".join(str(exc).split()) or (type(exc).__name__ if isinstance(exc, BaseException) else "")


def _limit_threads() -> None:
    """One worker, one core: torch and scipy.fft follow ``OMP_NUM_THREADS`` when it is set
    (dask's nannies set it to 1; :mod:`mrideblur.threads`)."""
    set_threads(threads_from_env())


_MALLOC_TUNED = False


def _tune_malloc() -> None:
    """Undo the cost of dask's ``MALLOC_TRIM_THRESHOLD_`` in this worker (Linux, glibc).

    Dask's nannies start workers with ``MALLOC_TRIM_THRESHOLD_=65536`` so that freed memory goes
    back to the OS. Setting it also turns off glibc's adaptive mmap threshold: every array
    above 128 kB is then mmap'ed, page-faulted and unmapped again, and a motion-correction
    task spends more time in the kernel than computing (measured: 28 s instead of 12 s for a
    64x64, 8-coil aligned-SENSE slice, 10 s of it system time). Large fixed thresholds
    (mmap above 32 MiB, trim above 128 MiB) restore the default behaviour's speed.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED or not sys.platform.startswith("linux") or "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return
    _MALLOC_TUNED = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        libc.mallopt(m_mmap_threshold, 32 * 2**20)
        libc.mallopt(m_trim_threshold, 128 * 2**20)
    except (OSError, AttributeError):  # not glibc: nothing to undo
        pass


def _peak_rss_mb() -> float:
    """Largest resident memory of this process so far (MB; ``ru_maxrss`` is KB on Linux)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return float(r) / (1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0)


def _nifti_slice(path: Path, index: int | None, pe_axis: int, slice_axis: int) -> np.ndarray:
    """One 2D slice of a NIfTI file, phase-encode axis first: ``(n_pe, n_readout)`` float64."""
    import nibabel as nib

    try:
        img = nib.load(path)
        shape = tuple(int(n) for n in img.shape)
        sl: list[Any] = [slice(None)] * len(shape)
        for ax in range(3, len(shape)):
            sl[ax] = 0
        if index is not None:
            sl[slice_axis] = index
        data = np.asarray(img.dataobj[tuple(sl)], dtype=np.float64)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"{path}: could not read slice {index} ({type(exc).__name__}: {_one_line(exc)})") from None
    if data.ndim != 2:
        raise ValueError(f"{path}: slice {index} has shape {data.shape}; expected 2D")
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{path}: slice {index} holds NaN or infinite voxels")
    axes = [a for a in range(len(shape)) if a != slice_axis or index is None][: data.ndim]
    pe = axes.index(pe_axis)
    return np.ascontiguousarray(np.moveaxis(data, pe, 0))


def _case_slice(path: Path, index: int | None, layout: str) -> Any:
    """Read one slice of a case file (or the whole 2D/3D case) as a :class:`Case`."""
    from .io.case import Case, open_hdf5, read_case, validate_case

    if layout != "stack":
        return read_case(path)
    with open_hdf5(path, "a case file") as f:
        ks = np.asarray(f["kspace"][index])
        si = np.asarray(f["shot_index"][()])
        sens = None
        if "sens" in f:
            s = f["sens"]
            sens = np.asarray(s[index] if s.ndim == 4 else s[()])
        truth = {}
        if "truth" in f and "image" in f["truth"]:
            t = f["truth"]["image"]
            truth["image"] = np.asarray(t[index] if t.ndim == 3 else t[()])
        vs = f.attrs.get("voxel_size_mm")
    case = Case(kspace=ks, shot_index=si, kind="2d", sens=sens, truth=truth,
                voxel_size_mm=None if vs is None else tuple(np.ravel(vs)))
    validate_case(case, where=f"{path} slice {index}")
    return case


def _summarize_report(report: dict[str, Any]) -> dict[str, Any]:
    from .cli import summarize_history

    out = {k: v for k, v in report.items() if k not in ("history", "slices")}
    if "history" in report:
        hist = report["history"]
        out["history"] = summarize_history(hist) if isinstance(hist, dict) else f"<{type(hist).__name__}>"
    return out


def _run_nifti(spec: dict[str, Any], progress=None, cancel=None) -> dict[str, Any]:
    from .mri.fourier import fft
    from .mri.shots import make_shot_index

    o = BatchOptions(**spec["options"])
    path = Path(spec["input"])
    index = spec["index"]
    img = _nifti_slice(path, index, o.pe_axis, o.slice_axis)
    si = make_shot_index(img.shape[0], o.shots, o.ordering)
    kw: dict[str, Any] = {"device": o.device, "seed": o.seed, "progress": progress, "cancel": cancel}
    if o.max_iter is not None:
        kw["max_iter"] = o.max_iter
    if o.method == "autofocus" and o.motion_csv:
        from .io.results import read_motion_csv
        from .mri.autofocus_magnitude import correct_magnitude

        table = read_motion_csv(o.motion_csv, o.shots)
        key = 0 if index is None else int(index)
        if key not in table:
            raise ValueError(f"{o.motion_csv}: no motion rows for slice {key} (column 'slice')")
        kw.pop("seed")
        res = correct_magnitude(img, si, table[key], **kw)
    elif o.method == "autofocus" and o.motion_model == "step":
        from .mri.autofocus_step import step_autofocus

        if o.max_iter is not None:  # the inner solves' iterations; the final correction keeps its own
            kw["n_iter"] = kw.pop("max_iter")
        res = step_autofocus(img, si, **kw)
    elif o.method == "autofocus":
        from .mri.autofocus import autofocus

        res = autofocus(img, si, **kw)
    else:  # jsmoco on the single-coil k-space of the magnitude image
        from .mri.correct import correct

        kspace = fft(img.astype(np.complex64), 2)[None]
        res = correct(kspace, si, method=o.method, sens=np.ones_like(kspace), **kw)
    out = {"image": np.abs(res.image).astype(np.float32), "motion": res.motion, "uncorrected": img.astype(np.float32),
           "report": _summarize_report(res.report)}
    if spec.get("truth"):
        out["truth"] = _nifti_slice(Path(spec["truth"]), index, o.pe_axis, o.slice_axis).astype(np.float32)
    return out


def _run_kspace(spec: dict[str, Any], progress=None, cancel=None) -> dict[str, Any]:
    from .io.case import load_case
    from .mri.correct import correct

    o = BatchOptions(**spec["options"])
    path = Path(spec["input"])
    kind, index = spec["kind"], spec["index"]
    if kind == "case":
        case = _case_slice(path, index, spec["meta"].get("layout", "2d"))
    elif kind == "fastmri":
        from .io.fastmri import read_fastmri

        case = read_fastmri(path, shots=o.shots, ordering=o.ordering, slices=[index])
        case.kspace = case.kspace[0]
        case.kind = "2d"
        case.truth = {}
    else:
        case = load_case(path, shots=o.shots, ordering=o.ordering)
    stack = case.kind == "stack"
    kw: dict[str, Any] = {"coils": o.coils, "device": o.device, "seed": o.seed, "progress": progress, "cancel": cancel,
                          "stack": stack}
    if o.max_iter is not None:
        kw["max_iter"] = o.max_iter
    res = correct(case.kspace, case.shot_index, method=o.method, sens=case.sens, **kw)
    out: dict[str, Any] = {"image": np.asarray(res.image, dtype=np.complex64), "motion": res.motion,
                           "report": _summarize_report(res.report)}
    if case.voxel_size_mm is not None:
        out["voxel_size_mm"] = np.asarray(case.voxel_size_mm, dtype=np.float64)
    truth = case.truth.get("image")
    if truth is not None and truth.shape == res.image.shape:
        out["truth"] = np.abs(truth).astype(np.float32)
        none = res.image if o.method == "none" else correct(case.kspace, case.shot_index, method="none",
                                                             sens=res.sens, stack=stack).image
        out["uncorrected"] = np.abs(none).astype(np.float32)
    if not stack and res.sens.size * 8 <= 64 * 2**20:  # coil maps of a single slice/volume
        out["sens"] = np.asarray(res.sens, dtype=np.complex64)
    return out


def _save_part(path: Path, result: dict[str, Any]) -> None:
    arrays = {k: v for k, v in result.items() if isinstance(v, np.ndarray)}
    arrays["report_json"] = np.frombuffer(json.dumps(_jsonable(result.get("report", {}))).encode(), dtype=np.uint8)
    arrays["seconds"] = np.asarray(result.get("seconds", 0.0))
    arrays["peak_rss_mb"] = np.asarray(result.get("peak_rss_mb", 0.0))

    def writer(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    atomic_write(path, writer)


def _load_part(path: Path) -> dict[str, Any]:
    with np.load(path) as z:
        out: dict[str, Any] = {k: z[k] for k in z.files if k != "report_json"}
        out["report"] = json.loads(bytes(z["report_json"]).decode()) if "report_json" in z.files else {}
    out["seconds"] = float(out.get("seconds", 0.0))
    out["peak_rss_mb"] = float(out.get("peak_rss_mb", 0.0))
    return out


def _jsonable(obj: Any) -> Any:
    from .io.images import to_jsonable

    return to_jsonable(obj)


def run_task(spec: dict[str, Any], progress=None, cancel=None) -> dict[str, Any]:
    """Process one slice (one task) and write its part file; what a Dask worker runs.

    Parameters
    ----------
    spec : dict
        ``study``, ``kind``, ``input``, ``index`` (slice, or ``None`` for the whole file),
        ``options`` (:class:`BatchOptions` as a dict), ``truth``, ``meta``, ``part`` (the
        output path).
    progress, cancel : optional
        Passed to the estimator (in-process runs; Dask tasks leave them out).

    Returns
    -------
    dict
        ``study``, ``index``, ``ok``, ``seconds``, ``peak_rss_mb``, ``error`` (one line, or
        ``None``). Errors are returned, not raised, so one bad slice never stops the batch.
    """
    _limit_threads()
    _tune_malloc()
    t0 = time.perf_counter()
    where = f"{spec['input']}" + (f" slice {spec['index']}" if spec.get("index") is not None else "")
    try:
        if spec["kind"] == "nifti":
            result = _run_nifti(spec, progress, cancel)
        else:
            result = _run_kspace(spec, progress, cancel)
        result["seconds"] = time.perf_counter() - t0
        result["peak_rss_mb"] = _peak_rss_mb()
        part = Path(spec["part"])
        part.parent.mkdir(parents=True, exist_ok=True)
        _save_part(part, result)
        error = None
    except MemoryError:
        error = f"{where}: out of memory"
    except Exception as exc:  # noqa: BLE001 - reported in summary.csv
        msg = _one_line(exc)
        error = msg if msg.startswith(str(spec["input"])) else f"{where}: {type(exc).__name__}: {msg}"
    return {"study": spec["study"], "index": spec.get("index"), "ok": error is None,
            "seconds": time.perf_counter() - t0, "peak_rss_mb": _peak_rss_mb(), "error": error}


# -------------------------------------------------------------------------------- assembly


def _part_path(out_dir: Path, st: Study, index: int | None) -> Path:
    return out_dir / st.id / _PARTS / f"slice_{index or 0:04d}.npz"


def _task_specs(out_dir: Path, st: Study) -> list[dict[str, Any]]:
    return [{"study": st.id, "kind": st.kind, "input": str(st.input), "index": i, "options": asdict(st.options),
             "truth": str(st.truth) if st.truth else None, "meta": st.meta, "part": str(_part_path(out_dir, st, i))}
            for i in st.meta["slice_ids"]]


def _psnr_pair(parts: list[dict[str, Any]]) -> dict[str, float] | None:
    from .metrics import psnr

    if not parts or any("truth" not in p or "uncorrected" not in p for p in parts):
        return None
    truth = np.stack([p["truth"] for p in parts])
    return {"uncorrected": psnr(np.stack([p["uncorrected"] for p in parts]), truth, fit_scale=True),
            "corrected": psnr(np.stack([np.abs(p["image"]) for p in parts]), truth, fit_scale=True)}


def _assemble(out_dir: Path, st: Study, command: str) -> dict[str, Any]:
    """Write a study's outputs from its part files (``report.json`` last); return its row."""
    from . import __version__
    from .io.nifti import read_nifti, write_nifti
    from .io.images import write_json
    from .io.results import write_correction_outputs, write_motion_csv

    folder = out_dir / st.id
    ids = st.meta["slice_ids"]
    parts = [_load_part(_part_path(out_dir, st, i)) for i in ids]
    figures = _psnr_pair(parts)
    seconds = float(sum(p["seconds"] for p in parts))
    report: dict[str, Any] = {
        "command": command, "mrideblur_version": __version__, "input": str(st.input.resolve()), "kind": st.kind,
        "method": st.options.method, "options": asdict(st.options), "slices": st.ntasks,
        "slice_indices": ids if ids != [None] else None, "slices_in_file": st.meta.get("slices_in_file"),
        "seconds": seconds, "seconds_per_slice": [p["seconds"] for p in parts],
        "peak_rss_mb": float(max(p.get("peak_rss_mb", 0.0) for p in parts)) if parts else 0.0,
        "slice_reports": [p["report"] for p in parts],
    }
    if figures:
        report["psnr_db"] = figures
    if st.kind == "nifti":
        data, affine, header = read_nifti(st.input)
        shape = tuple(st.meta["shape"])
        o = st.options
        if len(shape) == 3:
            rest = [a for a in range(3) if a != o.slice_axis]  # axes of each slice, in order
            pe_pos = rest.index(o.pe_axis)
            vol = data.reshape(shape).copy()  # slices left out keep the input's values
            for i, p in zip(ids, parts):
                index = [slice(None)] * 3
                index[o.slice_axis] = i
                vol[tuple(index)] = np.moveaxis(np.abs(p["image"]), 0, pe_pos)
            motion = np.stack([p["motion"] for p in parts])
        else:
            vol = np.moveaxis(np.abs(parts[0]["image"]), 0, o.pe_axis)
            motion = parts[0]["motion"]
        vol = vol.reshape(data.shape)
        folder.mkdir(parents=True, exist_ok=True)
        zooms = [float(z) for z in header.get_zooms()[:3]]
        write_nifti(folder / "corrected.nii.gz", vol, affine, header)
        write_motion_csv(folder / "motion.csv", motion, slice_ids=ids if motion.ndim == 3 else None)
        report["voxel_size_mm"] = zooms
        report["outputs"] = ["corrected.nii.gz", "motion.csv", _DONE]
        write_json(folder / _DONE, report)
    else:
        stack = ids != [None]
        image = np.stack([p["image"] for p in parts]) if stack else parts[0]["image"]
        motion = np.stack([p["motion"] for p in parts]) if stack else parts[0]["motion"]
        sens = parts[0].get("sens") if len(parts) == 1 and not stack else None
        vs = parts[0].get("voxel_size_mm")
        report["outputs"] = ["image.nii.gz", "motion.csv", "recon.h5", _DONE]
        if sens is None:
            report["note"] = "recon.h5 holds no coil maps for a stack of slices (memory)"
        write_correction_outputs(folder, image, motion, np.zeros((0,), np.complex64) if sens is None else sens,
                                 _jsonable(report), voxel_size_mm=None if vs is None else tuple(vs))
    shutil.rmtree(folder / _PARTS, ignore_errors=True)
    return _row(st, "done", report, out_dir)


def _row(st: Study, status: str, report: dict[str, Any] | None, out_dir: Path, error: str | None = None) -> dict[str, Any]:
    rep = report or {}
    ps = rep.get("psnr_db") or {}
    fmt = (lambda v: f"{v:.2f}" if isinstance(v, (int, float)) and np.isfinite(v) else "")
    return {
        "input": str(st.input), "study": st.id, "status": status, "slices": st.ntasks or "",
        "psnr_uncorrected_db": fmt(ps.get("uncorrected")), "psnr_corrected_db": fmt(ps.get("corrected")),
        "seconds": f"{rep['seconds']:.1f}" if "seconds" in rep else "",
        "peak_rss_mb": f"{rep['peak_rss_mb']:.0f}" if rep.get("peak_rss_mb") else "",
        "output": str(out_dir / st.id) if status in ("done", "skipped") else "",
        "error": error or "",
    }


def _write_summary(out_dir: Path, rows: Sequence[dict[str, Any]]) -> Path:
    buf = _io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(SUMMARY_COLUMNS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in SUMMARY_COLUMNS})
    path = out_dir / "summary.csv"
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(buf.getvalue())
    return path


def _clean_temporaries(out_dir: Path) -> int:
    """Remove temporary files (``.<name>.<random>.tmp<suffix>``) a killed run left behind."""
    n = 0
    for p in out_dir.rglob(".*.tmp*"):
        if p.is_file() and re.match(r"^\..+\.tmp", p.name):
            try:
                p.unlink()
                n += 1
            except OSError:
                pass
    return n


# ------------------------------------------------------------------------------- the runner


def _client(scheduler: str | None, workers: int | None):
    """A dask.distributed client: on ``scheduler`` when given, else on a new LocalCluster."""
    import logging

    from dask.distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler, timeout="60s"), None
    n = int(workers) if workers else max(1, os.cpu_count() or 1)
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.CRITICAL)
    return Client(cluster), cluster


def run_batch(
    source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    options: BatchOptions,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    command: str = "batch",
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Correct every study of a directory or manifest; resumable (module notes).

    Parameters
    ----------
    source : path
        Input directory or manifest ``.csv`` (:func:`discover`).
    out_dir : path
        Output directory (created); one folder per study plus ``summary.csv``.
    options : BatchOptions
    scheduler : str, optional
        Address of a running dask scheduler (``tcp://host:8786``); default a LocalCluster.
    workers : int, optional
        LocalCluster worker processes (one thread each); default the number of CPUs.
    progress : bool
        Show a progress bar over all tasks (stderr).
    command : str
        Recorded in each ``report.json``.
    on_row : callable(row), optional
        Called whenever a study's row becomes final.

    Returns
    -------
    list of dict
        The rows of ``summary.csv`` (:data:`SUMMARY_COLUMNS`), in input order.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    _clean_temporaries(out)
    studies = plan_studies(discover(source, options, out_dir=out))
    rows: dict[str, dict[str, Any]] = {}
    todo: dict[str, list[dict[str, Any]]] = {}
    by_id = {st.id: st for st in studies}
    assemble_now: list[Study] = []
    for st in studies:
        done_file = out / st.id / _DONE
        if st.error:
            rows[st.id] = _row(st, "failed", None, out, st.error)
        elif done_file.is_file():
            try:
                rep = json.loads(done_file.read_text())
            except (OSError, ValueError):
                rep = {}
            rows[st.id] = _row(st, "skipped", rep, out)
            shutil.rmtree(out / st.id / _PARTS, ignore_errors=True)
        else:
            specs = [s for s in _task_specs(out, st) if not Path(s["part"]).is_file()]
            rows[st.id] = _row(st, "pending", None, out)
            if specs:
                todo[st.id] = specs
            else:
                assemble_now.append(st)

    def order() -> list[dict[str, Any]]:
        return [rows[st.id] for st in studies]

    def finish(st: Study, errors: list[str]) -> None:
        if errors:
            first = sorted(errors)[0]
            more = f" (and {len(errors) - 1} more slice(s))" if len(errors) > 1 else ""
            rows[st.id] = _row(st, "failed", None, out, first + more)
        else:
            try:
                rows[st.id] = _assemble(out, st, command)
            except Exception as exc:  # noqa: BLE001 - assembly of one study must not stop the rest
                rows[st.id] = _row(st, "failed", None, out, f"{st.input}: assembling the outputs: "
                                   f"{type(exc).__name__}: {_one_line(exc)}")
        _write_summary(out, order())
        if on_row is not None:
            on_row(rows[st.id])

    for st in assemble_now:
        finish(st, [])
    _write_summary(out, order())
    n_tasks = sum(len(v) for v in todo.values())
    if n_tasks:
        from dask.distributed import as_completed
        from tqdm import tqdm

        client, cluster = _client(scheduler, workers)
        remaining = {sid: len(specs) for sid, specs in todo.items()}
        errors: dict[str, list[str]] = {sid: [] for sid in todo}
        tty = bool(getattr(sys.stderr, "isatty", lambda: False)())
        try:
            owner: dict[Any, str] = {}
            futures = []
            for specs in todo.values():
                for spec in specs:
                    fut = client.submit(run_task, spec, key=f"mrideblur-{spec['study']}-{spec['index']}-{time.time_ns()}",
                                        pure=False)
                    owner[fut.key] = spec["study"]
                    futures.append(fut)
            with tqdm(total=n_tasks, desc=f"batch {options.method}", unit="task", file=sys.stderr,
                      disable=not progress, mininterval=0.2 if tty else 10.0, ascii=not tty) as bar:
                for fut in as_completed(futures):
                    sid = owner[fut.key]
                    try:
                        res = fut.result()
                    except Exception as exc:  # noqa: BLE001 - a worker died, a task could not run
                        res = {"study": sid, "ok": False,
                               "error": f"{by_id[sid].input}: task {fut.key}: {type(exc).__name__}: {_one_line(exc)}"}
                    bar.update(1)
                    if not res["ok"]:
                        errors[sid].append(res["error"])
                    remaining[sid] -= 1
                    if remaining[sid] == 0:
                        finish(by_id[sid], errors[sid])
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    _write_summary(out, order())
    return order()


# ---------------------------------------------------------------------------- command line


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pe-axis", type=int, default=None,
                   help="NIfTI: array axis of the phase encoding (0, 1 or 2); required for NIfTI inputs")
    p.add_argument("--slice-axis", type=int, default=2, help="NIfTI volumes: axis across the 2D slices (default 2)")
    add_motion_model(p)


def add_motion_model(p: argparse.ArgumentParser) -> None:
    """``--motion-model`` and ``--motion-csv`` of NIfTI autofocus (``correct`` and ``batch``)."""
    p.add_argument("--motion-model", choices=MOTION_MODELS, default="step",
                   help="NIfTI autofocus: one move per slice under the magnitude model (step, default), or free "
                        "per-shot motion by gradient entropy (per-shot; for complex images, it recovers nothing "
                        "from magnitude)")
    p.add_argument("--motion-csv", default=None, metavar="FILE",
                   help="NIfTI: known motion ([slice,]shot,rot_deg,ty,tx relative to shot 0, e.g. from a navigator "
                        "or tracker): correct each slice with it under the magnitude model instead of estimating")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``mrideblur batch``."""
    p = sub.add_parser(
        "batch",
        help="correct every study in a folder or manifest on Dask (resumable, one task per slice)",
        description=(
            "Correct every NIfTI (autofocus) or k-space file (case .h5, fastMRI, ISMRMRD) in INPUT_DIR, or "
            "every row of a manifest .csv (columns: input, and optionally truth, id, pe_axis, slice_axis, "
            "shots, ordering, slices, motion_csv). One task per slice on a dask.distributed LocalCluster, or on the scheduler at "
            "--scheduler. Each study gets a folder in OUT_DIR; OUT_DIR/summary.csv lists every input with its "
            "status, PSNR (when a truth exists), seconds and error. A rerun skips finished outputs. "
            "Exit status 3 when some inputs failed."
        ),
    )
    p.add_argument("source", type=Path, metavar="INPUT_DIR|manifest.csv")
    p.add_argument("--out", type=Path, required=True, metavar="OUT_DIR")
    p.add_argument("--method", required=True,
                   help="autofocus (NIfTI magnitude images), or a k-space method: none, aligned-sense, ...")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="dask scheduler address, e.g. tcp://host:8786 (default: a LocalCluster on this machine)")
    p.add_argument("--workers", type=int, default=None, help="LocalCluster worker processes (default: CPU count)")
    p.add_argument("--device", default="cpu", help="torch device of the estimator (cpu, cuda)")
    _add_common(p)
    p.add_argument("--shots", type=int, default=16, help="NIfTI/fastMRI/ISMRMRD: shots to assume (default 16)")
    p.add_argument("--ordering", choices=("interleaved", "sequential"), default="interleaved",
                   help="NIfTI/fastMRI/ISMRMRD: shot ordering to assume")
    p.add_argument("--coils", choices=("espirit", "joint"), default="joint", help="k-space methods: coil maps")
    p.add_argument("--max-iter", type=int, default=None, help="iterations at the coarsest level (method default)")
    p.add_argument("--slices", default=None, metavar="START:STOP|I,J,...",
                   help="process only these slices of every stack/volume (NIfTI outputs keep the others unchanged)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_batch)


def cmd_batch(args: argparse.Namespace) -> int:
    """Run ``mrideblur batch``."""
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers: expected >= 1, got {args.workers}")
    if args.scheduler and args.workers is not None:
        raise ValueError("--workers: only for the local cluster; a --scheduler brings its own workers")
    if not args.source.exists():
        raise ValueError(f"{args.source}: no such directory or manifest")
    options = BatchOptions(method=args.method, pe_axis=args.pe_axis, slice_axis=args.slice_axis, shots=args.shots,
                           ordering=args.ordering, coils=args.coils, max_iter=args.max_iter,
                           motion_model=args.motion_model, motion_csv=args.motion_csv, device=args.device,
                           seed=args.seed, slices=args.slices)
    workers = args.workers if args.workers is not None else (1 if str(args.device).startswith("cuda") else None)
    rows = run_batch(args.source, args.out, options, scheduler=args.scheduler, workers=workers, progress=not args.quiet)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "skipped", "failed")}
    print(f"summary: {args.out / 'summary.csv'} ({counts['done']} done, {counts['skipped']} skipped, "
          f"{counts['failed']} failed)")
    for r in rows:
        if r["status"] == "failed":
            print(f"failed: {r['error']}", file=sys.stderr)
    return EXIT_FAILED_ROWS if counts["failed"] else 0


def correct_nifti_command(args: argparse.Namespace) -> int:
    """``mrideblur correct study.nii.gz --method autofocus ...``: the batch's slice tasks run
    one after another in this process (no Dask), writing the same outputs as ``batch``.

    ``args`` carries ``input``, ``out``, ``method``, ``pe_axis``, ``slice_axis``, ``shots``,
    ``ordering``, ``max_iter``, ``device``, ``seed``, ``quiet``.
    """
    from .cli import ProgressBar

    if full_suffix(args.input) not in NIFTI_SUFFIXES:
        raise ValueError(f"{args.input}: --method {args.method} works on NIfTI images (.nii, .nii.gz); "
                         f"for k-space files use --method aligned-sense or none")
    if args.method not in NIFTI_METHODS:
        raise ValueError(f"{args.input}: a NIfTI image holds no raw k-space; --method {args.method} needs it "
                         f"(use --method autofocus for NIfTI magnitude images)")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a directory")
    options = BatchOptions(method=args.method, pe_axis=args.pe_axis, slice_axis=getattr(args, "slice_axis", 2),
                           shots=args.shots, ordering=args.ordering, max_iter=getattr(args, "max_iter", None),
                           motion_model=getattr(args, "motion_model", "step"),
                           motion_csv=getattr(args, "motion_csv", None),
                           device=args.device, seed=args.seed)
    target = out.resolve()
    st = Study(id=target.name, input=Path(args.input), options=options)
    plan_studies([st])
    if st.error:
        raise ValueError(st.error)
    target.mkdir(parents=True, exist_ok=True)
    _clean_temporaries(target)
    with ProgressBar(enabled=not getattr(args, "quiet", False), desc=args.method) as bar:
        for i, spec in enumerate(_task_specs(target.parent, st)):
            if Path(spec["part"]).is_file():  # finished by an interrupted earlier run
                continue
            sub = (lambda s, t, m, i=i: bar(i * t + s, st.ntasks * t, f"slice {i + 1}/{st.ntasks}: {m}"))
            res = run_task(spec, progress=sub)
            if not res["ok"]:
                raise ValueError(res["error"])
    row = _assemble(target.parent, st, "correct")
    for name in ("corrected.nii.gz", "motion.csv", _DONE):
        print(f"{name}: {out / name}")
    if row["psnr_corrected_db"]:
        print(f"PSNR vs truth: uncorrected {row['psnr_uncorrected_db']} dB, corrected {row['psnr_corrected_db']} dB")
    return 0
