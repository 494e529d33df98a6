"""``mrideblur correct``: read k-space (case ``.h5``, fastMRI, ISMRMRD), call
:func:`mrideblur.mri.correct`, write every output; NIfTI magnitude images go to the batch
runner's slice tasks (:func:`mrideblur.batch.correct_nifti_command`)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..batch import NIFTI_METHODS, add_correction_options, correct_nifti_command
from ..estimators.catalogue import methods
from ..io import is_nifti
from ..shell import (
    ProgressBar,
    add_command,
    correction_scores,
    data_fit_warning,
    method_settings,
    positive_int,
    quiet_data_fit_warning,
)

__all__ = ["METHODS", "add_parser", "cmd_correct"]

#: ``--method`` choices: the catalogue's k-space methods, and ``autofocus`` for NIfTI magnitude
#: images (``--motion-model``/``--motion-csv`` name the catalogue's magnitude method).
METHODS = tuple(dict.fromkeys(methods("kspace") + NIFTI_METHODS))

def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``mrideblur correct``."""
    p = add_command(sub, "correct", cmd_correct,
                    "correct rigid motion in multi-shot multi-coil k-space (case .h5, fastMRI, ISMRMRD)")
    p.add_argument("input", type=Path, help="case .h5 (docs/conventions.md), fastMRI or ISMRMRD file")
    p.add_argument("--out", type=Path, required=True, metavar="OUT_DIR")
    p.add_argument("--method", choices=METHODS, default="aligned-sense",
                   help="jsmoco: diffusion-prior joint estimation (mrideblur.estimators.jsmoco); autofocus: NIfTI "
                        "magnitude images (see --motion-model); the others need k-space")
    p.add_argument("--nsamples", type=int, default=1,
                   help="jsmoco: posterior samples; > 1 also writes uncertainty.nii.gz")
    p.add_argument("--sampler", choices=("fast", "pc"), default="fast",
                   help="jsmoco: DiffPIR (one network call per step) or predictor-corrector")
    p.add_argument("--prior", type=Path, default=None,
                   help="jsmoco: prior checkpoint or weights (default: the weights shipped with mrideblur)")
    p.add_argument("--init", choices=("aligned-sense", "espirit"), default="aligned-sense",
                   help="jsmoco: start from aligned-SENSE, or from zero motion and ESPIRiT maps")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads for torch and FFTs (default: all cores; 1 is fastest on a busy machine)")
    add_correction_options(p)


def _is_case_file(path: Path) -> bool:
    """True for an mrideblur case (it stores its shot map); other files get the reader options."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "shot_index" in f
    except OSError:
        return True  # not HDF5: load_case reports it with the file name


def cmd_correct(args: argparse.Namespace) -> int:
    """Estimate per-shot rigid motion (and coil maps) and reconstruct the corrected image. Writes
    recon.h5, image.nii.gz, motion.csv, report.json and report.png to --out. When the correction
    does not lower the data misfit, says so on stderr."""
    from ..io.case import load_case
    from ..io.results import write_correction_outputs
    from ..mri import correct
    from ..plots import correction_figure
    from ..threads import set_threads

    set_threads(args.threads)
    if is_nifti(args.input) or args.method == "autofocus":  # images without raw data: the batch's tasks
        return correct_nifti_command(args)
    if args.motion_csv:
        raise ValueError(f"--motion-csv: a known motion table is for NIfTI magnitude images (--method autofocus); "
                         f"{args.input} is k-space, whose motion is estimated")
    path = Path(args.input)
    if not path.is_file():
        raise ValueError(f"{path}: no such file; expected a case .h5, fastMRI or ISMRMRD file")
    case = load_case(path) if _is_case_file(path) else load_case(path, shots=args.shots, ordering=args.ordering)
    settings = method_settings("kspace", args.method, coils=args.coils, max_iter=args.max_iter, device=args.device,
                               seed=args.seed, nsamples=args.nsamples, sampler=args.sampler, prior=args.prior,
                               init=args.init)
    t0 = time.perf_counter()
    with ProgressBar(enabled=not args.quiet, desc="correct") as bar, quiet_data_fit_warning():
        result = correct(case.kspace, case.shot_index, method=args.method, sens=case.sens, progress=bar,
                         stack=case.kind == "stack", **settings)
    report = dict(result.report)
    report["input"] = str(path)
    report["seconds_total"] = time.perf_counter() - t0
    truth, truth_motion = case.truth.get("image"), case.truth.get("motion")
    report.update(correction_scores(result, truth, truth_motion if truth is not None else None))
    title = f"{path.name}: {args.method}" + (f" ({args.coils} coils)" if "coils" in settings else "")
    fig = correction_figure(result.uncorrected, result.image, result.motion, report["residual_per_shot"],
                            truth_image=truth, truth_motion=truth_motion, title=title, uncertainty=result.uncertainty)
    written = write_correction_outputs(args.out, result.image, result.motion, result.sens, report,
                                       voxel_size_mm=case.voxel_size_mm, figure=fig, uncertainty=result.uncertainty)
    for name, p in written.items():
        print(f"{name}: {p}")
    if "psnr_db" in report:
        print(f"PSNR vs truth: uncorrected {report['psnr_db']['uncorrected']:.2f} dB, "
              f"corrected {report['psnr_db']['corrected']:.2f} dB")
    warning = data_fit_warning(report)
    if warning:
        print(f"mrideblur: warning: {warning}", file=sys.stderr)
    return 0
