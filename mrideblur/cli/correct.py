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
    check_out_dir,
    correction_scores,
    correction_summary,
    data_fit_warning,
    method_settings,
    quiet_data_fit_warning,
)

__all__ = ["METHODS", "add_parser", "cmd_correct"]

#: ``--method`` choices: the catalogue's k-space methods, and ``autofocus`` for NIfTI magnitude
#: images (``--motion-model``/``--motion-csv`` name the catalogue's magnitude method).
METHODS = tuple(dict.fromkeys(methods("kspace") + NIFTI_METHODS))

def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``mrideblur correct``."""
    p = add_command(sub, "correct", cmd_correct,
                    "correct rigid motion in multi-shot k-space (case .h5, fastMRI, ISMRMRD) or in a NIfTI "
                    "magnitude image (--method autofocus)")
    p.add_argument("input", type=Path,
                   help="case .h5 (docs/conventions.md), fastMRI or ISMRMRD file; or a NIfTI image (.nii, .nii.gz) "
                        "with --method autofocus, --pe-axis, --shots and --ordering")
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
    add_correction_options(p)


def _hdf5_kind(path: Path) -> str:
    """``"case"`` (stores its shot map), ``"ismrmrd"`` (a ``dataset`` group) or ``"fastmri"``;
    a file that is not HDF5 is left to :func:`~mrideblur.io.case.load_case`'s error."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "case" if "shot_index" in f else ("ismrmrd" if "dataset" in f else "fastmri")
    except OSError:
        return "case"


def cmd_correct(args: argparse.Namespace) -> int:
    """Estimate per-shot rigid motion and reconstruct the corrected image. K-space input (case .h5,
    fastMRI, ISMRMRD; coil maps estimated too): writes recon.h5, image.nii.gz, motion.csv,
    report.json and report.png to --out, and says on stderr when the correction does not lower the
    data misfit. A NIfTI magnitude image (--method autofocus; no raw data): each slice is corrected
    under the magnitude model, with the motion searched (--motion-model) or given (--motion-csv);
    writes corrected.nii.gz (same affine), motion.csv and report.json. The shot pattern (--shots,
    --ordering) must be given for NIfTI and fastMRI files, which do not store it."""
    # everything that can be wrong with the input is found before the numerical libraries load
    path = Path(args.input)
    if not path.is_file():
        raise ValueError(f"{path}: no such file; expected a case .h5, fastMRI or ISMRMRD file, or a NIfTI image "
                         f"(.nii, .nii.gz) with --method autofocus")
    if is_nifti(path) or args.method == "autofocus":  # images without raw data: the batch's tasks
        return correct_nifti_command(args)
    if args.motion_csv:
        raise ValueError(f"--motion-csv: a known motion table is for NIfTI magnitude images (--method autofocus); "
                         f"{args.input} is k-space, whose motion is estimated")
    from ..io.case import load_case

    kind = _hdf5_kind(path)
    pattern = {k: v for k, v in (("shots", args.shots), ("ordering", args.ordering)) if v is not None}
    missing = [f"--{k}" for k in ("shots", "ordering") if k not in pattern]
    if kind == "fastmri" and missing:
        raise ValueError(f"{path}: a fastMRI file does not record which phase-encode lines each shot acquired; "
                         f"give {' and '.join(missing)}, e.g. --shots 16 --ordering interleaved")
    case = load_case(path) if kind == "case" else load_case(path, **pattern)  # ISMRMRD: its acquisition order
    check_out_dir(args.out)

    from ..io.results import write_correction_outputs
    from ..mri import correct
    from ..plots import correction_figure

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
                            truth_image=truth, truth_motion=truth_motion, title=title, uncertainty=result.uncertainty,
                            data_fit=report.get("data_fit"))
    written = write_correction_outputs(args.out, result.image, result.motion, result.sens, report,
                                       voxel_size_mm=case.voxel_size_mm, figure=fig, uncertainty=result.uncertainty)
    print("\n".join(correction_summary(report, args.out, list(written.values()))))
    warning = data_fit_warning(report)
    if warning:
        print(f"mrideblur: warning: {warning}", file=sys.stderr)
    return 0
