"""How many CPU threads mrideblur's numerical kernels use: one per process unless asked.

Three thread pools do the heavy lifting on the CPU: torch's (motion estimation, the diffusion
prior), ``scipy.fft``'s (:mod:`mrideblur.physics.fourier`) and the BLAS under numpy (sigpy's
operators).  Each would take every core by default.  On a machine shared with other jobs, or
with several workers per machine (``mrideblur batch``), threads of competing processes wait on
each other: with other work on the project's 2-core machine, torch's default of two threads made
one correction about 10x slower than one thread (``benchmarks/threads.py`` measures it).  So
mrideblur uses **one thread per process** unless asked for more, in one of three ways (the first
that is set wins):

1. ``mrideblur.set_threads(n)`` in Python, or ``--threads N`` on the command line;
2. the environment variable ``MRIDEBLUR_THREADS`` (an integer >= 1, or ``all``);
3. the default, 1.

The choice applies during every public entry point (:func:`mrideblur.deblur.deconvolve`,
:func:`~mrideblur.deblur.blind_deconvolve`, :func:`mrideblur.mri.correct`,
:func:`~mrideblur.mri.correct_magnitude_image`, the prior's samplers and training): they run
under :func:`using_threads`, which sets torch's, scipy.fft's and the BLAS's thread counts and
restores torch's afterwards, so code around them keeps its own setting.  ``all`` means the cores
this process may run on (``os.sched_getaffinity``), which is fastest on an idle machine.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

__all__ = ["ENV_VAR", "DEFAULT_THREADS", "available_cores", "get_threads", "set_threads", "using_threads",
           "with_threads"]

#: The environment variable read when :func:`set_threads` has not been called.
ENV_VAR = "MRIDEBLUR_THREADS"
#: Threads per process when nothing is asked.
DEFAULT_THREADS = 1

_chosen: int | None = None
F = TypeVar("F", bound=Callable[..., Any])


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity; ``os.cpu_count()`` where unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _parse(value: int | str, where: str) -> int:
    """``value`` as a thread count: an integer >= 1 or ``"all"`` (every available core)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "all":
            return available_cores()
        if not text.isdigit():
            raise ValueError(f"{where}: expected an integer >= 1 or 'all', got {value!r}")
        value = int(text)
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{where}: expected an integer >= 1 or 'all', got {value!r}")
    return int(value)


def get_threads() -> int:
    """The thread count mrideblur uses now: :func:`set_threads`'s, else ``$MRIDEBLUR_THREADS``, else 1.

    Raises
    ------
    ValueError
        ``MRIDEBLUR_THREADS`` is set to something other than an integer >= 1 or ``all``.
    """
    if _chosen is not None:
        return _chosen
    env = os.environ.get(ENV_VAR, "").strip()
    return _parse(env, f"environment variable {ENV_VAR}") if env else DEFAULT_THREADS


def set_threads(n: int | str | None) -> None:
    """Choose the threads of every later mrideblur call in this process.

    Parameters
    ----------
    n : int >= 1, ``"all"`` or None
        Threads for torch, ``scipy.fft`` and the BLAS during mrideblur's calls; ``"all"`` every
        core this process may use; ``None`` forgets the choice (back to ``$MRIDEBLUR_THREADS``,
        else 1).

    Raises
    ------
    ValueError
        ``n`` is not an integer >= 1, ``"all"`` or None.
    """
    global _chosen
    _chosen = None if n is None else _parse(n, "threads")


@contextlib.contextmanager
def using_threads(n: int | str | None = None) -> Iterator[int]:
    """Run a block with ``n`` threads (default :func:`get_threads`) in torch, scipy.fft and BLAS.

    torch's setting is process-wide and is restored on exit; scipy.fft's is per calling thread
    (``scipy.fft.set_workers``); the BLAS limit is threadpoolctl's.  Nested blocks are cheap.

    Yields
    ------
    int
        The thread count in force.
    """
    import scipy.fft as sfft
    import torch
    from threadpoolctl import threadpool_limits

    k = get_threads() if n is None else _parse(n, "threads")
    before = torch.get_num_threads()
    if before != k:
        torch.set_num_threads(k)
    try:
        with threadpool_limits(limits=k, user_api="blas"), sfft.set_workers(k):
            yield k
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def with_threads(func: F) -> F:
    """Decorator: run ``func`` under :func:`using_threads` (the public entry points use it)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with using_threads():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
