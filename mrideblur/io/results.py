"""Write the outputs of a motion correction: ``recon.h5``, ``image.nii.gz``, ``motion.csv``,
``report.json`` and ``report.png`` — each atomically (temporary file, then rename)."""

from __future__ import annotations

import csv
import io as _io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_open, atomic_write
from .images import to_jsonable, write_json
from .nifti import write_nifti

__all__ = ["write_motion_csv", "motion_csv_columns", "read_motion_csv", "write_recon_h5", "write_correction_outputs",
           "affine_from_voxel_size"]


def affine_from_voxel_size(voxel_size_mm: tuple[float, ...] | None, ndim: int) -> np.ndarray:
    """A NIfTI affine for an array in ``(z,) y, x`` order with the given voxel size (mm).

    The NIfTI file stores the array transposed to ``(x, y[, z])`` so its first voxel axis is x;
    without a voxel size, 1 mm is assumed.
    """
    vs = [1.0] * 3 if voxel_size_mm is None else list(voxel_size_mm)
    if len(vs) < 3:
        vs = list(vs) + [1.0] * (3 - len(vs))
    # voxel_size is in array order (dz, dy, dx) or (dy, dx[, slice thickness])
    if ndim == 3 and voxel_size_mm is not None and len(voxel_size_mm) == 3:
        dz, dy, dx = vs
    else:
        dy, dx = vs[0], vs[1]
        dz = vs[2] if voxel_size_mm is not None and len(voxel_size_mm) == 3 else 1.0
    return np.diag([dx, dy, dz, 1.0])


def write_motion_csv(path: str | os.PathLike[str], motion: np.ndarray, voxel_size_mm: tuple[float, ...] | None = None,
                     slice_ids: list[int] | None = None) -> Path:
    """Motion table in the docs/conventions.md CSV format.

    ``motion`` ``(nshot, 3)`` -> ``shot,rot_deg,ty,tx`` (+ ``ty_mm,tx_mm``); ``(nshot, 6)`` ->
    ``shot,rz_deg,ry_deg,rx_deg,tz,ty,tx`` (+ ``tz_mm,ty_mm,tx_mm``); ``(slices, nshot, 3)``
    adds a leading ``slice`` column (``slice_ids[i]`` for ``motion[i]``, default ``i``).
    Millimetre columns appear when the voxel size is known (array order, as in the case file).
    """
    m = np.asarray(motion, dtype=float)
    stacked = m.ndim == 3
    rows = m.reshape(-1, m.shape[-1])
    nshot = m.shape[-2]
    npar = m.shape[-1]
    if npar == 3:
        names = ["rot_deg", "ty", "tx"]
        tcols = [1, 2]
    elif npar == 6:
        names = ["rz_deg", "ry_deg", "rx_deg", "tz", "ty", "tx"]
        tcols = [3, 4, 5]
    else:
        raise ValueError(f"motion: expected (nshot, 3) or (nshot, 6) rows, got shape {m.shape}")
    header = (["slice"] if stacked else []) + ["shot"] + names
    vs = None
    if voxel_size_mm is not None:
        v = list(voxel_size_mm)
        vs = v[-len(tcols):] if len(v) >= len(tcols) else None
        if vs is not None:
            header += [names[c] + "_mm" for c in tcols]
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for i, r in enumerate(rows):
        row = ([i // nshot if slice_ids is None else slice_ids[i // nshot]] if stacked else []) + [i % nshot] + \
            [f"{v:.6f}" for v in r]
        if vs is not None:
            row += [f"{r[c] * s:.6f}" for c, s in zip(tcols, vs)]
        w.writerow(row)
    with atomic_open(path, "w") as f:
        f.write(buf.getvalue())
    return Path(path)


def motion_csv_columns(path: str | os.PathLike[str]) -> list[str]:
    """The header of a motion table (column names, white space stripped); [] for an empty file."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        header = next(csv.reader(fh), [])
    return [c.strip() for c in header]


def read_motion_csv(path: str | os.PathLike[str], nshot: int) -> dict[int, np.ndarray]:
    """Read a 2D motion table (``[slice,]shot,rot_deg,ty,tx``, as :func:`write_motion_csv`
    writes it; extra columns such as ``ty_mm`` are ignored).

    Parameters
    ----------
    path : the ``.csv`` file
    nshot : int, shots every slice must have (``0 .. nshot - 1``, each once)

    Returns
    -------
    dict slice index -> ``(nshot, 3)`` float64 ``rot_deg, ty, tx`` (degrees, pixels, relative to
    shot 0); a table without a ``slice`` column gives the key 0.

    Raises
    ------
    ValueError
        Missing file or columns, a non-numeric or non-finite value (naming the line and the
        column), a shot outside ``0 .. nshot - 1`` or repeated, a slice with missing shots.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: motion table not found")
    need = ("shot", "rot_deg", "ty", "tx")
    table: dict[int, dict[int, list[float]]] = {}
    with open(p, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        cols = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in need if c not in cols]
        if missing:
            raise ValueError(f"{p}: motion table needs the columns {list(need)} (and 'slice' for volumes); "
                             f"missing {missing}, found {cols}")
        for n, raw in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
            vals = {}
            for c in ("slice", "shot", "rot_deg", "ty", "tx"):
                if c == "slice" and "slice" not in cols:
                    vals[c] = 0.0
                    continue
                try:
                    vals[c] = float(row.get(c, ""))
                except ValueError:
                    raise ValueError(f"{p} line {n}: column {c!r}: expected a number, got {row.get(c)!r}") from None
                if not np.isfinite(vals[c]):
                    raise ValueError(f"{p} line {n}: column {c!r}: expected a finite number, got {row.get(c)!r}")
            sl, shot = int(vals["slice"]), int(vals["shot"])
            if shot != vals["shot"] or not 0 <= shot < nshot:
                raise ValueError(f"{p} line {n}: column 'shot': expected an integer 0..{nshot - 1}, got {row['shot']!r}")
            if shot in table.setdefault(sl, {}):
                raise ValueError(f"{p} line {n}: slice {sl}, shot {shot} appears twice")
            table[sl][shot] = [vals["rot_deg"], vals["ty"], vals["tx"]]
    if not table:
        raise ValueError(f"{p}: motion table has no rows")
    out = {}
    for sl, shots in table.items():
        if len(shots) != nshot:
            absent = sorted(set(range(nshot)) - set(shots))
            raise ValueError(f"{p}: slice {sl}: expected {nshot} shots, shots {absent} are missing")
        out[sl] = np.array([shots[s] for s in range(nshot)], dtype=np.float64)
    return out


def write_recon_h5(path: str | os.PathLike[str], image: np.ndarray, motion: np.ndarray, sens: np.ndarray,
                   report: dict[str, Any], voxel_size_mm: tuple[float, ...] | None = None,
                   uncertainty: np.ndarray | None = None) -> Path:
    """``recon.h5``: datasets ``image`` (complex64), ``motion`` (float64), ``sens`` (complex64),
    ``uncertainty`` (float32, JSMoCo with several samples),
    attribute ``report`` (JSON text), ``voxel_size_mm`` when known, ``mrideblur_version``."""
    import h5py

    from .. import __version__

    def writer(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("image", data=np.asarray(image, dtype=np.complex64))
            f.create_dataset("motion", data=np.asarray(motion, dtype=np.float64))
            f.create_dataset("sens", data=np.asarray(sens, dtype=np.complex64))
            if uncertainty is not None:
                f.create_dataset("uncertainty", data=np.asarray(uncertainty, dtype=np.float32))
            f.attrs["report"] = json.dumps(to_jsonable(report))
            f.attrs["mrideblur_version"] = __version__
            if voxel_size_mm is not None:
                f.attrs["voxel_size_mm"] = np.asarray(voxel_size_mm, dtype=float)

    return atomic_write(path, writer)


def write_correction_outputs(out_dir: str | os.PathLike[str], image: np.ndarray, motion: np.ndarray,
                             sens: np.ndarray, report: dict[str, Any], voxel_size_mm: tuple[float, ...] | None = None,
                             affine: np.ndarray | None = None, figure: Any | None = None,
                             uncertainty: np.ndarray | None = None) -> dict[str, Path]:
    """Write every output of one correction into ``out_dir`` (created); returns name -> path.

    ``image.nii.gz`` holds the magnitude, transposed to NIfTI's ``(x, y[, z])`` voxel order, with
    ``affine`` when given (e.g. from the source NIfTI) or one built from the voxel size.
    ``figure`` (a matplotlib Figure) is saved as ``report.png``; ``uncertainty`` (per-pixel
    posterior std, shaped like ``image``) as ``uncertainty.nii.gz`` with the same affine and in
    ``recon.h5``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    img = np.asarray(image)
    mag = np.abs(img).astype(np.float32)
    vol = mag.T if mag.ndim == 2 else np.transpose(mag, (2, 1, 0))
    aff = affine if affine is not None else affine_from_voxel_size(voxel_size_mm, img.ndim)
    written = {
        "recon": write_recon_h5(out / "recon.h5", img, motion, sens, report, voxel_size_mm, uncertainty),
        "image": write_nifti(out / "image.nii.gz", vol, aff),
        "motion": write_motion_csv(out / "motion.csv", motion, voxel_size_mm),
        "report": write_json(out / "report.json", report),
    }
    if uncertainty is not None:
        u = np.asarray(uncertainty, dtype=np.float32)
        written["uncertainty"] = write_nifti(out / "uncertainty.nii.gz", u.T if u.ndim == 2 else np.transpose(u, (2, 1, 0)), aff)
    if figure is not None:
        written["figure"] = atomic_write(out / "report.png", lambda tmp: figure.savefig(tmp, dpi=100, format="png"))
    return written
