"""``mrideblur demo``: call :func:`mrideblur.demo.run_demo` and list what it wrote."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..shell import ProgressBar, add_command, check_out_dir

__all__ = ["add_parser", "cmd_demo"]

def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``mrideblur demo``."""
    p = add_command(sub, "demo", cmd_demo,
                    "blur a built-in photograph and compare the deblurring methods in one figure")
    p.add_argument("--out", type=Path, default=Path("mrideblur_demo"), metavar="DIR",
                   help="output directory (default: ./mrideblur_demo)")
    p.add_argument("--quick", action="store_true", help="a small image: seconds instead of a minute or two")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def cmd_demo(args: argparse.Namespace) -> int:
    """Blur the scikit-image camera photograph with a random camera-shake kernel and 1% noise,
    deblur it with the inverse filter, Wiener, hyper-Laplacian (true kernel), and blind MAP and VB,
    and write a figure and demo_report.json with the PSNRs."""
    from .. import demo  # looked up at run time (tests replace demo.run_demo)

    check_out_dir(args.out)
    with ProgressBar(enabled=not args.quiet, desc="demo") as bar:
        written = demo.run_demo(args.out, quick=args.quick, progress=bar)
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0
