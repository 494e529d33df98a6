"""The hooks long computations share: a progress callback and a cancel check.

``progress(step, total, message)`` reports ``step`` of ``total`` units of work done;
``cancel() -> bool`` asks the computation to stop.  A loop calls :func:`check_cancel`, which
raises :class:`Cancelled`; the estimator that owns the loop catches it and returns its current
estimate with ``report["cancelled"] = True``.  Samplers (:mod:`mrideblur.prior`) and estimators
(:mod:`mrideblur.estimators`) use these same three names; shells (CLI: tqdm; napari: its
progress bar) pass the callables.
"""

from __future__ import annotations

from typing import Callable

__all__ = ["CancelFn", "Cancelled", "ProgressFn", "check_cancel"]

#: ``progress(step, total, message)``: ``step`` of ``total`` units of work done.
ProgressFn = Callable[[int, int, str], None]
#: ``cancel() -> bool``: True asks the computation to stop and return its current estimate.
CancelFn = Callable[[], bool]


class Cancelled(Exception):
    """Raised inside a loop when its ``cancel()`` returned True.

    Estimators catch it themselves and return their current estimate with
    ``report["cancelled"] = True``; users never see it unless they call a loop directly.
    """


def check_cancel(cancel: CancelFn | None) -> None:
    """Raise :class:`Cancelled` when ``cancel`` is given and returns True."""
    if cancel is not None and cancel():
        raise Cancelled
