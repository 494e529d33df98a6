"""Atomic file writes: an output file is either the complete new version or not there at all.

Every writer in :mod:`mrideblur.io` goes through :func:`atomic_write`: the data are written to
a temporary file in the destination's own directory (so the final rename never crosses a file
system), flushed to disk, and then moved over the destination with :func:`os.replace`, which is
atomic on POSIX and Windows.  If the writer raises, the temporary file is removed and any
existing destination is left untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "atomic_open", "full_suffix"]


def full_suffix(path: str | os.PathLike[str]) -> str:
    """Lower-case file suffix, keeping a compression suffix: ``"a.nii.gz" -> ".nii.gz"``.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    str
        ``""`` when the name has no suffix.
    """
    p = Path(path)
    suffixes = [s.lower() for s in p.suffixes]
    if len(suffixes) >= 2 and suffixes[-1] in (".gz", ".bz2", ".xz"):
        return "".join(suffixes[-2:])
    return suffixes[-1] if suffixes else ""


def _default_mode() -> int:
    """Permission bits a plain ``open(path, "w")`` would give (0o666 minus the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _temp_path(dest: Path) -> Path:
    """Create an empty temporary file beside ``dest`` with the same suffix; return its path."""
    directory = dest.parent if str(dest.parent) else Path(".")
    fd, name = tempfile.mkstemp(dir=directory, prefix=f".{dest.name}.", suffix=f".tmp{full_suffix(dest)}")
    os.close(fd)
    return Path(name)


def _publish(tmp: Path, dest: Path) -> None:
    """Flush ``tmp`` to disk, give it the usual permissions and rename it onto ``dest``."""
    with open(tmp, "rb+") as fh:  # make the bytes durable before the rename publishes them
        os.fsync(fh.fileno())
    os.chmod(tmp, _default_mode())  # mkstemp creates 0o600
    os.replace(tmp, dest)


def atomic_write(path: str | os.PathLike[str], writer: Callable[[Path], Any]) -> Path:
    """Write a file through ``writer`` so that ``path`` is never seen half-written.

    Parameters
    ----------
    path : str or path-like
        Destination. Its directory must exist.
    writer : callable ``writer(tmp_path: Path)``
        Writes the complete file to ``tmp_path``. ``tmp_path`` lies in the same directory and
        ends with the same suffix as ``path`` (``.png``, ``.nii.gz``, ...), so libraries that
        pick a format from the file name do the right thing.

    Returns
    -------
    Path
        ``path`` as a :class:`~pathlib.Path`.

    Raises
    ------
    Exception
        Whatever ``writer`` raises; the temporary file is removed first and ``path`` keeps its
        previous content (or stays absent).
    """
    dest = Path(path)
    tmp = _temp_path(dest)
    try:
        writer(tmp)
        _publish(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return dest


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Context manager: ``open`` a temporary file and move it onto ``path`` on a clean exit.

    Parameters
    ----------
    path : str or path-like
        Destination. Its directory must exist.
    mode : {"w", "wb", "wt"}
        A write mode of :func:`open`.
    **kwargs
        Passed to :func:`open` (``encoding``, ``newline``, ...).

    Yields
    ------
    file object
        Write to it; when the ``with`` block raises, ``path`` is not touched.

    Examples
    --------
    >>> with atomic_open(out_dir / "notes.txt", encoding="utf-8") as fh:  # doctest: +SKIP
    ...     fh.write("done\\n")
    """
    if mode not in ("w", "wb", "wt"):
        raise ValueError(f"mode: expected 'w', 'wt' or 'wb', got {mode!r}")
    dest = Path(path)
    tmp = _temp_path(dest)
    try:
        with open(tmp, mode, **kwargs) as fh:
            yield fh
        _publish(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
