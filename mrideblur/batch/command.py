"""The command lines of the batch runner: ``mrideblur batch`` (:func:`add_parser`,
:func:`cmd_batch`) and the NIfTI path of ``mrideblur correct`` (:func:`correct_nifti_command`:
the same slice tasks, in this process, without Dask)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..io.atomic import full_suffix
from ..io.shot_order import SHOT_ORDERINGS
from ..shell import ProgressBar, add_command, check_out_dir
from .assemble import assemble, clean_temporaries, task_specs
from .options import DONE, EXIT_FAILED_ROWS, MOTION_MODELS, NIFTI_METHODS, NIFTI_SUFFIXES, BatchOptions, Study
from .plan import plan_studies
from .runner import run_batch
from .tasks import run_task

__all__ = ["COILS", "add_correction_options", "add_parser", "cmd_batch", "correct_nifti_command"]

#: Coil-map choices of the k-space methods (``coils`` of aligned-SENSE and JSMoCo).
COILS = ("espirit", "joint")

def add_correction_options(p: argparse.ArgumentParser) -> None:
    """The options that ``mrideblur correct`` and ``mrideblur batch`` share: NIfTI geometry and
    motion model, the shot pattern to assume, the k-space methods' settings, device, seed, quiet."""
    p.add_argument("--pe-axis", type=int, default=None,
                   help="NIfTI: array axis of the phase encoding (0, 1 or 2); required for NIfTI inputs")
    p.add_argument("--slice-axis", type=int, default=2, help="NIfTI volumes: axis across the 2D slices (default 2)")
    p.add_argument("--motion-model", choices=MOTION_MODELS, default="step",
                   help="NIfTI autofocus: one move per slice under the magnitude model (step, default), or free "
                        "per-shot motion by gradient entropy (per-shot; for complex images, it recovers nothing "
                        "from magnitude)")
    p.add_argument("--motion-csv", default=None, metavar="FILE",
                   help="NIfTI: a known motion table (e.g. from a navigator or tracker) used instead of estimating: "
                        "CSV columns [slice,]shot,rot_deg,ty,tx; per shot, relative to shot 0: rot_deg in degrees, "
                        "ty in pixels along --pe-axis, tx in pixels along the other in-plane axis; 'slice' is the "
                        "index along --slice-axis and is required for volumes (docs/nifti.md). Checked against "
                        "the image before any work")
    p.add_argument("--shots", type=int, default=None,
                   help="NIfTI/fastMRI/ISMRMRD: number of shots (required: these files do not store it; a case .h5 "
                        "has its shot map)")
    p.add_argument("--ordering", choices=SHOT_ORDERINGS, default=None,
                   help="NIfTI/fastMRI/ISMRMRD: shot ordering (required, like --shots): interleaved = shot s "
                        "acquires lines s, s + shots, ...; sequential = contiguous blocks; centre-out = rings "
                        "from the k-space centre; checkered = a (kz, ky) checkerboard (3D k-space)")
    p.add_argument("--coils", choices=COILS, default="joint",
                   help="k-space methods: coil maps by ESPIRiT on the corrupted data, or re-estimated with the motion")
    p.add_argument("--max-iter", type=int, default=None,
                   help="iterations at the coarsest level (default: the method's own); NIfTI step autofocus: "
                        "iterations of each inner solve")
    p.add_argument("--device", default="cpu", help="torch device of the estimator (cpu, cuda)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``mrideblur batch``."""
    p = add_command(sub, "batch", cmd_batch,
                    "correct every study in a folder or manifest on Dask (resumable, one task per slice)")
    p.add_argument("source", type=Path, metavar="INPUT_DIR|manifest.csv")
    p.add_argument("--out", type=Path, required=True, metavar="OUT_DIR")
    p.add_argument("--method", required=True,
                   help="autofocus (NIfTI magnitude images), or a k-space method: none, aligned-sense, ...")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="dask scheduler address, e.g. tcp://host:8786 (default: a LocalCluster on this machine)")
    p.add_argument("--workers", type=int, default=None, help="LocalCluster worker processes (default: CPU count)")
    p.add_argument("--slices", default=None, metavar="START:STOP|I,J,...",
                   help="process only these slices of every stack/volume (NIfTI outputs keep the others unchanged)")
    add_correction_options(p)


def _options(args: argparse.Namespace, **more) -> BatchOptions:
    """:class:`BatchOptions` from the shared command-line options (:func:`add_correction_options`)."""
    return BatchOptions(method=args.method, pe_axis=args.pe_axis, slice_axis=args.slice_axis, shots=args.shots,
                        ordering=args.ordering, coils=args.coils, max_iter=args.max_iter,
                        motion_model=args.motion_model, motion_csv=args.motion_csv, device=args.device,
                        seed=args.seed, **more)


def cmd_batch(args: argparse.Namespace) -> int:
    """Correct every NIfTI (autofocus) or k-space file (case .h5, fastMRI, ISMRMRD) in INPUT_DIR, or
    every row of a manifest .csv (columns: input, and optionally truth, id, pe_axis, slice_axis,
    shots, ordering, slices, motion_csv). One task per slice on a dask.distributed LocalCluster, or
    on the scheduler at --scheduler. Each study gets a folder in OUT_DIR; OUT_DIR/summary.csv lists
    every input with its status, PSNR (when a truth exists), seconds, error, and a warning when a
    correction did not improve the data fit. A rerun skips finished outputs. Exit status 3 when some
    inputs failed."""
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers: expected >= 1, got {args.workers}")
    if args.scheduler and args.workers is not None:
        raise ValueError("--workers: only for the local cluster; a --scheduler brings its own workers")
    if not args.source.exists():
        raise ValueError(f"{args.source}: no such directory or manifest")
    options = _options(args, slices=args.slices)
    workers = args.workers if args.workers is not None else (1 if str(args.device).startswith("cuda") else None)
    rows = run_batch(args.source, args.out, options, scheduler=args.scheduler, workers=workers, progress=not args.quiet)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "skipped", "failed")}
    print(f"summary: {args.out / 'summary.csv'} ({counts['done']} done, {counts['skipped']} skipped, "
          f"{counts['failed']} failed)")
    for r in rows:
        if r["status"] == "failed":
            print(f"failed: {r['error']}", file=sys.stderr)
        elif r.get("warning"):
            print(f"warning: {r['study']}: {r['warning']}", file=sys.stderr)
    return EXIT_FAILED_ROWS if counts["failed"] else 0


def correct_nifti_command(args: argparse.Namespace) -> int:
    """``mrideblur correct study.nii.gz --method autofocus ...``: the batch's slice tasks run
    one after another in this process (no Dask), writing the same outputs as ``batch``.

    ``args`` carries ``input``, ``out``, ``method`` and the options of :func:`add_correction_options`.
    """
    if full_suffix(args.input) not in NIFTI_SUFFIXES:
        raise ValueError(f"{args.input}: --method {args.method} works on NIfTI images (.nii, .nii.gz); "
                         f"for k-space files use --method aligned-sense or none")
    if args.method not in NIFTI_METHODS:
        raise ValueError(f"{args.input}: a NIfTI image holds no raw k-space; --method {args.method} needs it "
                         f"(use --method autofocus for NIfTI magnitude images)")
    out = check_out_dir(args.out)
    target = out.resolve()
    st = Study(id=target.name, input=Path(args.input), options=_options(args))
    plan_studies([st])
    if st.error:
        raise ValueError(st.error)
    target.mkdir(parents=True, exist_ok=True)
    clean_temporaries(target)
    with ProgressBar(enabled=not args.quiet, desc=args.method) as bar:
        for i, spec in enumerate(task_specs(target.parent, st)):
            if Path(spec["part"]).is_file():  # finished by an interrupted earlier run
                continue
            sub = (lambda s, t, m, i=i: bar(i * t + s, st.ntasks * t, f"slice {i + 1}/{st.ntasks}: {m}"))
            res = run_task(spec, progress=sub)
            if not res["ok"]:
                raise ValueError(res["error"])
    row = assemble(target.parent, st, "correct")
    what = "known motion table" if args.motion_csv else f"{args.motion_model} motion searched"
    print(f"{args.method} ({what}): {row['slices']} slice(s), {float(row['seconds'] or 0):.1f} s of compute")
    if row["psnr_corrected_db"]:
        print(f"PSNR vs truth: uncorrected {row['psnr_uncorrected_db']} dB, corrected {row['psnr_corrected_db']} dB")
    done = json.loads((target / DONE).read_text())
    if "slices_corrected" in done:
        print(f"{done['slices_corrected']} of {row['slices']} slice(s) corrected; the others are returned unchanged "
              f"(no move found with confidence: 'reason' in each of {DONE}'s slice_reports)")
    print(f"outputs in {out}: corrected.nii.gz, motion.csv, {DONE}")
    if row["warning"]:
        print(f"mrideblur: warning: {row['warning']}", file=sys.stderr)
    return 0
