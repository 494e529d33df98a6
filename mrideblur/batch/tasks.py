"""The worker side of ``mrideblur batch``: one task per slice (:func:`run_task`).

A task reads only its slice, calls the library's estimator (:func:`mrideblur.mri.correct` for
k-space; for NIfTI magnitude images :func:`mrideblur.mri.correct_magnitude_image` with the
catalogue method the options name, :func:`~mrideblur.batch.options.magnitude_method`) and writes
the slice's result to a part file (:func:`save_part`), atomically.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..io.atomic import atomic_write
from ..io.images import to_jsonable
from ..shell import method_settings, one_line, quiet_data_fit_warning, summarize_history
from .options import BatchOptions, magnitude_method

__all__ = ["load_part", "run_task", "save_part"]

#: The option that ``--max-iter`` sets, where a method does not call it ``max_iter``: the step
#: autofocus's inner solves.
ITERATIONS = {"step-autofocus": "n_iter"}


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


def nifti_slice(path: Path, index: int | None, pe_axis: int, slice_axis: int) -> np.ndarray:
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
        raise ValueError(f"{path}: could not read slice {index} ({type(exc).__name__}: {one_line(exc)})") from None
    if data.ndim != 2:
        raise ValueError(f"{path}: slice {index} has shape {data.shape}; expected 2D")
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{path}: slice {index} holds NaN or infinite voxels")
    axes = [a for a in range(len(shape)) if a != slice_axis or index is None][: data.ndim]
    pe = axes.index(pe_axis)
    return np.ascontiguousarray(np.moveaxis(data, pe, 0))


def case_slice(path: Path, index: int | None, layout: str) -> Any:
    """Read one slice of a case file (or the whole 2D/3D case) as a :class:`Case`."""
    from ..io.case import Case, open_hdf5, read_case, validate_case

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


def summarize_report(report: dict[str, Any]) -> dict[str, Any]:
    """A slice's report for its part file: the history summarised, per-slice reports left out."""
    out = {k: v for k, v in report.items() if k not in ("history", "slices")}
    if "history" in report:
        hist = report["history"]
        out["history"] = summarize_history(hist) if isinstance(hist, dict) else f"<{type(hist).__name__}>"
    return out


def _run_nifti(spec: dict[str, Any], progress=None, cancel=None) -> dict[str, Any]:
    """A NIfTI slice: ``autofocus`` runs the catalogue's magnitude method that the options name
    (:func:`magnitude_method`); ``jsmoco`` runs on the single-coil k-space of the image."""
    from ..mri import correct, correct_magnitude_image, fft, make_shot_index

    o = BatchOptions(**spec["options"])
    index = spec["index"]
    img = nifti_slice(Path(spec["input"]), index, o.pe_axis, o.slice_axis)
    si = make_shot_index(img.shape[0], o.shots, o.ordering)
    if o.method == "autofocus":
        method, motion = magnitude_method(o), None
        if o.motion_csv:
            from ..io.results import read_motion_csv

            table = read_motion_csv(o.motion_csv, o.shots)
            key = 0 if index is None else int(index)
            if key not in table:
                raise ValueError(f"{o.motion_csv}: no motion rows for slice {key} (column 'slice')")
            motion = table[key]
        settings = method_settings("magnitude", method, device=o.device, seed=o.seed,
                                   **{ITERATIONS.get(method, "max_iter"): o.max_iter})
        res = correct_magnitude_image(img, si, method, motion=motion, progress=progress, cancel=cancel, **settings)
    else:
        kspace = fft(img.astype(np.complex64), 2)[None]
        settings = method_settings("kspace", o.method, device=o.device, seed=o.seed, max_iter=o.max_iter)
        with quiet_data_fit_warning():
            res = correct(kspace, si, method=o.method, sens=np.ones_like(kspace), progress=progress, cancel=cancel,
                          **settings)
    out = {"image": np.abs(res.image).astype(np.float32), "motion": res.motion, "uncorrected": img.astype(np.float32),
           "report": summarize_report(res.report)}
    if spec.get("truth"):
        out["truth"] = nifti_slice(Path(spec["truth"]), index, o.pe_axis, o.slice_axis).astype(np.float32)
    return out


def _read_kspace(spec: dict[str, Any], o: BatchOptions) -> Any:
    """The task's slice (or whole file) of a case, fastMRI or ISMRMRD file as a Case."""
    from ..io.case import load_case

    path, kind, index = Path(spec["input"]), spec["kind"], spec["index"]
    if kind == "case":
        return case_slice(path, index, spec["meta"].get("layout", "2d"))
    if kind == "fastmri":
        from ..io.fastmri import read_fastmri

        case = read_fastmri(path, shots=o.shots, ordering=o.ordering, slices=[index])
        case.kspace = case.kspace[0]
        case.kind = "2d"
        case.truth = {}
        return case
    pattern = {k: v for k, v in (("shots", o.shots), ("ordering", o.ordering)) if v is not None}
    return load_case(path, **pattern)  # ISMRMRD without them: its acquisition order


def _run_kspace(spec: dict[str, Any], progress=None, cancel=None) -> dict[str, Any]:
    """A k-space slice or volume: :func:`mrideblur.mri.correct`; ``Result.uncorrected`` is the
    reference of the PSNR figures."""
    from ..mri import correct

    o = BatchOptions(**spec["options"])
    case = _read_kspace(spec, o)
    stack = case.kind == "stack"
    kw = method_settings("kspace", o.method, coils=o.coils, device=o.device, seed=o.seed, max_iter=o.max_iter)
    with quiet_data_fit_warning():  # the summary says it (data_fit in the report)
        res = correct(case.kspace, case.shot_index, method=o.method, sens=case.sens, stack=stack, progress=progress,
                      cancel=cancel, **kw)
    out: dict[str, Any] = {"image": np.asarray(res.image, dtype=np.complex64), "motion": res.motion,
                           "report": summarize_report(res.report)}
    if case.voxel_size_mm is not None:
        out["voxel_size_mm"] = np.asarray(case.voxel_size_mm, dtype=np.float64)
    truth = case.truth.get("image")
    if truth is not None and truth.shape == res.image.shape:
        out["truth"] = np.abs(truth).astype(np.float32)
        out["uncorrected"] = np.abs(res.uncorrected).astype(np.float32)
    if not stack and res.sens.size * 8 <= 64 * 2**20:  # coil maps of a single slice/volume
        out["sens"] = np.asarray(res.sens, dtype=np.complex64)
    return out


def save_part(path: Path, result: dict[str, Any]) -> None:
    """Write a task's arrays, report, seconds and memory to ``path`` (``.npz``, atomically)."""
    arrays = {k: v for k, v in result.items() if isinstance(v, np.ndarray)}
    arrays["report_json"] = np.frombuffer(json.dumps(to_jsonable(result.get("report", {}))).encode(), dtype=np.uint8)
    arrays["seconds"] = np.asarray(result.get("seconds", 0.0))
    arrays["peak_rss_mb"] = np.asarray(result.get("peak_rss_mb", 0.0))

    def writer(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    atomic_write(path, writer)


def load_part(path: Path) -> dict[str, Any]:
    """Read what :func:`save_part` wrote."""
    with np.load(path) as z:
        out: dict[str, Any] = {k: z[k] for k in z.files if k != "report_json"}
        out["report"] = json.loads(bytes(z["report_json"]).decode()) if "report_json" in z.files else {}
    out["seconds"] = float(out.get("seconds", 0.0))
    out["peak_rss_mb"] = float(out.get("peak_rss_mb", 0.0))
    return out


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
        save_part(part, result)
        error = None
    except MemoryError:
        error = f"{where}: out of memory"
    except Exception as exc:  # noqa: BLE001 - reported in summary.csv
        msg = one_line(exc)
        error = msg if msg.startswith(str(spec["input"])) else f"{where}: {type(exc).__name__}: {msg}"
    return {"study": spec["study"], "index": spec.get("index"), "ok": error is None,
            "seconds": time.perf_counter() - t0, "peak_rss_mb": _peak_rss_mb(), "error": error}
