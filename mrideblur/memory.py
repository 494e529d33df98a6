"""Keep freed memory in the process instead of handing it back to the kernel at once (glibc).

The 3D model allocates and frees volume-sized buffers (16 MB at 128^3) hundreds of times per
application. By default glibc returns large freed blocks to the kernel (``munmap`` or heap
trimming); the next allocation of the same size then page-faults every page and the kernel zeroes
it, which on 2 cores cost as much as the FFTs themselves: one 128^3, 16-coil, 32-shot torch
forward + adjoint took 8.1-10.0 s with ``MRIDEBLUR_KEEP_FREED_MEMORY=0`` and 7.0-7.5 s with this
setting (three runs each, 2 threads, 2026-12-05; ``benchmarks/physics.py`` with and without the
variable measures the same).

:func:`keep_freed_memory` raises glibc's ``M_MMAP_THRESHOLD`` to 32 MB (its maximum on 64-bit
systems: blocks up to that size come from the heap and are reused) and ``M_TRIM_THRESHOLD`` to
1 GB (free memory at the top of the heap is kept up to that size). The cost is a resident set
that stays near its high-water mark. It runs once, on Linux with glibc only; set the environment
variable ``MRIDEBLUR_KEEP_FREED_MEMORY=0`` to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 1024 * 1024 * 1024
_done: bool | None = None


def keep_freed_memory() -> bool:
    """Set glibc's allocator to reuse freed blocks (once per process). Returns whether it is set."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if not sys.platform.startswith("linux") or os.environ.get("MRIDEBLUR_KEEP_FREED_MEMORY", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
