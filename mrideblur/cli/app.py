"""The ``mrideblur`` parser (:func:`build_parser`, every command of :data:`COMMANDS`) and its
entry point (:func:`main`): exit codes and one-line errors."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from ..batch import add_parser as add_batch
from ..shell import one_line
from .correct import add_parser as add_correct
from .deblur import add_parser as add_deblur
from .demo import add_parser as add_demo
from .simulate import add_parser as add_simulate
from .train_deblur import add_parser as add_train_deblur
from .train_prior import add_parser as add_train_prior

__all__ = ["COMMANDS", "build_parser", "main"]

#: Every subcommand's parser builder, in the order ``--help`` lists them.
COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    add_deblur, add_simulate, add_correct, add_batch, add_train_prior, add_train_deblur, add_demo)


def build_parser() -> argparse.ArgumentParser:
    """The ``mrideblur`` argument parser with every subcommand of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(prog="mrideblur",
                                     description="Remove blur from images and rigid motion from multi-coil MRI.")
    parser.add_argument("--version", action="version", version=f"mrideblur {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mrideblur`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; default ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit code: 0 success, 1 an output could not be written, 2 bad arguments or input
        (one ``mrideblur: error: ...`` line on stderr), 130 interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and argparse's own usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    try:
        from ..threads import set_threads

        set_threads(getattr(args, "threads", None))  # every library call of the command runs with it
        return int(args.func(args))
    except ValueError as exc:
        print(f"mrideblur: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"mrideblur: error: {one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mrideblur: interrupted", file=sys.stderr)
        return 130
