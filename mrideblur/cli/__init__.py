"""The ``mrideblur`` command: a thin shell over the library.

Each subcommand is a module with ``add_parser(subparsers)`` (its arguments; it sets
``func``) and ``cmd_<name>(args)`` (read files with :mod:`mrideblur.io`, call one library entry
point, write files); add a command by writing such a module and listing its ``add_parser`` in
:data:`COMMANDS` (:mod:`mrideblur.cli.app`).  No algorithm lives here: method choices come from
the catalogue (:mod:`mrideblur.estimators.catalogue`).

- :mod:`~mrideblur.cli.deblur` — ``mrideblur deblur`` (images and NIfTI slices);
- :mod:`~mrideblur.cli.simulate` — ``mrideblur simulate`` (a motion-corrupted case ``.h5``);
- :mod:`~mrideblur.cli.correct` — ``mrideblur correct`` (k-space; NIfTI via the batch's tasks);
- ``mrideblur batch`` — registered from :mod:`mrideblur.batch` (its public ``add_parser``);
- :mod:`~mrideblur.cli.train_prior` — ``mrideblur train-prior`` (the diffusion prior);
- :mod:`~mrideblur.cli.train_deblur` — ``mrideblur train-deblur`` (learned deblurring networks);
- :mod:`~mrideblur.cli.demo` — ``mrideblur demo``.

What the shells share (progress bar, history summaries, scores) is in :mod:`mrideblur.shell`.

Exit codes: 0 success, 1 a file could not be written (``OSError``), 2 bad arguments or data (a
``ValueError`` from the library or the readers, printed as one ``mrideblur: error: ...`` line
without a traceback), 130 interrupted.
"""

from ..shell import ProgressBar, summarize_history
from .app import COMMANDS, build_parser, main
from .deblur import BLIND_METHODS, NONBLIND_METHODS, cmd_deblur
from .demo import cmd_demo

__all__ = ["BLIND_METHODS", "COMMANDS", "NONBLIND_METHODS", "ProgressBar", "build_parser", "cmd_deblur", "cmd_demo",
           "main", "summarize_history"]
