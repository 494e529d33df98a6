"""How many CPU threads mrideblur's numerical kernels use.

Two libraries do the heavy lifting on the CPU: torch (motion estimation, the diffusion prior)
and ``scipy.fft`` (:mod:`mrideblur.physics.fourier`, which asks for all cores by default). On a
machine shared with other jobs, or with several workers per machine (``mrideblur batch``), one
thread per process is usually fastest: threads of two processes competing for the same cores
slowed torch by 10x on the project's 2-core machine.
"""

from __future__ import annotations

import os

__all__ = ["set_threads", "threads_from_env"]


def set_threads(n: int | None) -> None:
    """Use ``n`` threads for torch and ``scipy.fft`` in this process (``None``: library defaults).

    Parameters
    ----------
    n : int >= 1 or None
    """
    from .physics import fourier

    if n is None:
        fourier.FFT_WORKERS = -1
        return
    if int(n) != n or n < 1:
        raise ValueError(f"threads: expected an integer >= 1, got {n}")
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(int(n))
    fourier.FFT_WORKERS = int(n)


def threads_from_env() -> int | None:
    """``OMP_NUM_THREADS`` as an int (dask's worker nannies set it to 1), or None if unset/invalid."""
    n = os.environ.get("OMP_NUM_THREADS", "")
    return int(n) if n.isdigit() and int(n) >= 1 else None
