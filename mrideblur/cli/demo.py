"""``mrideblur demo``: call :func:`mrideblur.demo.run_demo` and print its summary."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..shell import ProgressBar, add_command, check_out_dir

__all__ = ["add_parser", "cmd_demo"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``mrideblur demo``."""
    p = add_command(sub, "demo", cmd_demo,
                    "compare the deblurring methods on a built-in photograph, then correct a simulated "
                    "motion-corrupted MRI scan with aligned-SENSE")
    p.add_argument("--out", type=Path, default=Path("mrideblur_demo"), metavar="DIR",
                   help="output directory (default: ./mrideblur_demo)")
    p.add_argument("--quick", action="store_true",
                   help="small problems (a 96x96 photograph, a 64x64 4-coil 8-shot scan): about 20 s instead of "
                        "about 2 min (measured on a 2-core machine, one thread)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def cmd_demo(args: argparse.Namespace) -> int:
    """Two demonstrations, one after the other. (1) Photograph: blur the scikit-image camera
    photograph (256x256) with a random 15-pixel camera-shake kernel and 1% noise, deblur it with the
    inverse filter, Wiener and the hyper-Laplacian prior (true kernel) and with blind MAP and blind
    Variational Bayes (kernel estimated), and write demo.png and demo_report.json with every PSNR.
    (2) MRI: simulate a 16-shot, 8-coil scan of a 128x128 MNI152 brain slice with random rigid motion
    between shots and 1% noise, correct it with aligned-SENSE, and write mri/ (report.png,
    report.json, recon.h5, image.nii.gz, motion.csv). Prints the PSNRs, the motion error and the
    output directory. The full demo takes about 2 minutes (--quick: about 20 s), measured on a
    2-core machine with one thread (--threads 1) and the other core busy; a slower or
    shared machine takes longer."""
    from .. import demo  # looked up at run time (tests replace demo.run_demo)

    check_out_dir(args.out)
    with ProgressBar(enabled=not args.quiet, desc="demo") as bar:
        written = demo.run_demo(args.out, quick=args.quick, progress=bar)
    summary = written.get("summary") or {"out_dir": str(args.out)}
    for line in demo.summary_lines(summary):
        print(line)
    return 0
