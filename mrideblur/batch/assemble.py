"""The client side of ``mrideblur batch``: task specs, reassembling a study from its part files
(``report.json`` last), the rows of ``summary.csv``."""

from __future__ import annotations

import csv
import io as _io
import re
import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..io.atomic import atomic_open
from ..shell import data_fit_warning, psnr_pair
from .options import DONE, PARTS, SUMMARY_COLUMNS, Study
from .tasks import load_part

__all__ = ["assemble", "clean_temporaries", "part_path", "summary_row", "task_specs", "write_summary"]


def part_path(out_dir: Path, st: Study, index: int | None) -> Path:
    """Where the task of slice ``index`` of ``st`` writes its result."""
    return out_dir / st.id / PARTS / f"slice_{index or 0:04d}.npz"


def task_specs(out_dir: Path, st: Study) -> list[dict[str, Any]]:
    """One :func:`~mrideblur.batch.tasks.run_task` spec per slice of a planned study."""
    return [{"study": st.id, "kind": st.kind, "input": str(st.input), "index": i, "options": asdict(st.options),
             "truth": str(st.truth) if st.truth else None, "meta": st.meta, "part": str(part_path(out_dir, st, i))}
            for i in st.meta["slice_ids"]]


def _study_psnr(parts: list[dict[str, Any]]) -> dict[str, float] | None:
    if not parts or any("truth" not in p or "uncorrected" not in p for p in parts):
        return None
    return psnr_pair(np.stack([p["uncorrected"] for p in parts]), np.stack([np.abs(p["image"]) for p in parts]),
                     np.stack([p["truth"] for p in parts]))


def _study_data_fit(ids: list[Any], parts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The slices' ``data_fit`` together (k-space methods; None for the others)."""
    fits = [p["report"].get("data_fit") or {} for p in parts]
    if not any("improved" in f for f in fits):
        return None
    flags = [f.get("improved") for f in fits]
    return {"improved": None if all(v is None for v in flags) else all(v is not False for v in flags),
            "slices_not_improved": [i for i, v in zip(ids, flags) if v is False]}


def data_fit_note(report: dict[str, Any]) -> str:
    """A study's :func:`~mrideblur.shell.data_fit_warning` from its ``report.json`` ("" if none)."""
    reports = report.get("slice_reports") or []
    ids = report.get("slice_indices")
    if ids is None:  # one image or volume
        return (data_fit_warning(reports[0]) if reports else None) or ""
    return data_fit_warning({"data_fit": report.get("data_fit") or {}, "slices": reports}, ids) or ""


def _write_nifti_study(folder: Path, st: Study, ids: list[Any], parts: list[dict[str, Any]],
                       report: dict[str, Any]) -> None:
    """``corrected.nii.gz`` in the source's shape, affine and header; ``motion.csv``; the report."""
    from ..io.images import write_json
    from ..io.nifti import read_nifti, write_nifti
    from ..io.results import write_motion_csv

    data, affine, header = read_nifti(st.input)
    shape = tuple(st.meta["shape"])
    o = st.options
    if len(shape) == 3:
        rest = [a for a in range(3) if a != o.slice_axis]  # axes of each slice, in order
        pe_pos = rest.index(o.pe_axis)
        vol = data.reshape(shape).copy()  # slices left out keep the input's values
        for i, p in zip(ids, parts):
            index: list[Any] = [slice(None)] * 3
            index[o.slice_axis] = i
            vol[tuple(index)] = np.moveaxis(np.abs(p["image"]), 0, pe_pos)
        motion = np.stack([p["motion"] for p in parts])
    else:
        vol = np.moveaxis(np.abs(parts[0]["image"]), 0, o.pe_axis)
        motion = parts[0]["motion"]
    vol = vol.reshape(data.shape)
    folder.mkdir(parents=True, exist_ok=True)
    write_nifti(folder / "corrected.nii.gz", vol, affine, header)
    write_motion_csv(folder / "motion.csv", motion, slice_ids=ids if motion.ndim == 3 else None)
    report["voxel_size_mm"] = [float(z) for z in header.get_zooms()[:3]]
    report["outputs"] = ["corrected.nii.gz", "motion.csv", DONE]
    write_json(folder / DONE, report)


def _write_kspace_study(folder: Path, ids: list[Any], parts: list[dict[str, Any]], report: dict[str, Any]) -> None:
    """``image.nii.gz``, ``motion.csv``, ``recon.h5`` (coil maps of single slices) and the report."""
    from ..io.images import to_jsonable
    from ..io.results import write_correction_outputs

    stack = ids != [None]
    image = np.stack([p["image"] for p in parts]) if stack else parts[0]["image"]
    motion = np.stack([p["motion"] for p in parts]) if stack else parts[0]["motion"]
    sens = parts[0].get("sens") if len(parts) == 1 and not stack else None
    vs = parts[0].get("voxel_size_mm")
    report["outputs"] = ["image.nii.gz", "motion.csv", "recon.h5", DONE]
    if sens is None:
        report["note"] = "recon.h5 holds no coil maps for a stack of slices (memory)"
    write_correction_outputs(folder, image, motion, np.zeros((0,), np.complex64) if sens is None else sens,
                             to_jsonable(report), voxel_size_mm=None if vs is None else tuple(vs))


def assemble(out_dir: Path, st: Study, command: str) -> dict[str, Any]:
    """Write a study's outputs from its part files (``report.json`` last); return its row."""
    from .. import __version__

    folder = out_dir / st.id
    ids = st.meta["slice_ids"]
    parts = [load_part(part_path(out_dir, st, i)) for i in ids]
    report: dict[str, Any] = {
        "command": command, "mrideblur_version": __version__, "input": str(st.input.resolve()), "kind": st.kind,
        "method": st.options.method, "options": asdict(st.options), "slices": st.ntasks,
        "slice_indices": ids if ids != [None] else None, "slices_in_file": st.meta.get("slices_in_file"),
        "seconds": float(sum(p["seconds"] for p in parts)), "seconds_per_slice": [p["seconds"] for p in parts],
        "peak_rss_mb": float(max(p.get("peak_rss_mb", 0.0) for p in parts)) if parts else 0.0,
        "slice_reports": [p["report"] for p in parts],
    }
    figures = _study_psnr(parts)
    if figures:
        report["psnr_db"] = figures
    fit = _study_data_fit(ids, parts)
    if fit is not None:
        report["data_fit"] = fit
    flags = [p["report"].get("corrected") for p in parts]
    if any(f is not None for f in flags):  # a motion search that may keep a slice unchanged
        report["slices_corrected"] = int(sum(bool(f) for f in flags))
        report["slices_unchanged"] = [i for i, f in zip(ids, flags) if f is False]
    if st.kind == "nifti":
        _write_nifti_study(folder, st, ids, parts, report)
    else:
        _write_kspace_study(folder, ids, parts, report)
    shutil.rmtree(folder / PARTS, ignore_errors=True)
    return summary_row(st, "done", report, out_dir)


def summary_row(st: Study, status: str, report: dict[str, Any] | None, out_dir: Path,
                error: str | None = None) -> dict[str, Any]:
    """A row of ``summary.csv`` (:data:`~mrideblur.batch.options.SUMMARY_COLUMNS`)."""
    rep = report or {}
    ps = rep.get("psnr_db") or {}
    fmt = (lambda v: f"{v:.2f}" if isinstance(v, (int, float)) and np.isfinite(v) else "")
    finished = status in ("done", "skipped")
    return {
        "input": str(st.input), "study": st.id, "status": status, "slices": st.ntasks or "",
        "psnr_uncorrected_db": fmt(ps.get("uncorrected")), "psnr_corrected_db": fmt(ps.get("corrected")),
        "seconds": f"{rep['seconds']:.1f}" if "seconds" in rep else "",
        "peak_rss_mb": f"{rep['peak_rss_mb']:.0f}" if rep.get("peak_rss_mb") else "",
        "output": str(out_dir / st.id) if finished else "",
        "error": error or "",
        "warning": data_fit_note(rep) if finished else "",
    }


def write_summary(out_dir: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write ``OUT/summary.csv`` (atomically)."""
    buf = _io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(SUMMARY_COLUMNS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in SUMMARY_COLUMNS})
    path = out_dir / "summary.csv"
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(buf.getvalue())
    return path


def clean_temporaries(out_dir: Path) -> int:
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
