"""Reading and writing 2D images (PNG, TIFF, JPEG, ``.npy``) and JSON reports.

Conventions
-----------
- Images come back as 2D ``float64`` arrays ``(ny, nx)`` indexed ``x[iy, ix]``; with
  ``colour=True`` an RGB(A) file comes back as ``(ny, nx, 3)`` (channels last, R, G, B).
- Integer pixel types are scaled to [0, 1] by the largest value of the type
  (``uint8 / 255``, ``uint16 / 65535``; signed types by their positive maximum, so they land in
  [-1, 1]); boolean images become 0.0 / 1.0; float images are kept as they are.
- Otherwise colour images become grey by luminance :data:`LUMA`, ``0.2125 R + 0.7154 G +
  0.0721 B`` (ITU-R BT.709, the weights of :func:`skimage.color.rgb2gray`); an alpha channel is
  dropped either way.
- ``.npy`` arrays are read as they are (cast to ``float64``, no scaling).

Every failure to read becomes a :class:`ValueError` whose message starts with the file name and
says what was expected, never a library's own traceback.  Every write is atomic
(:func:`mrideblur.io.atomic.atomic_write`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_open, atomic_write, full_suffix

__all__ = [
    "LUMA",
    "RASTER_SUFFIXES",
    "IMAGE_SUFFIXES",
    "read_image",
    "write_array",
    "write_image",
    "write_json",
    "to_jsonable",
]

#: Suffixes read and written through imageio (PNG/TIFF) or read only (JPEG).
RASTER_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
#: Every suffix :func:`read_image` accepts.
IMAGE_SUFFIXES = RASTER_SUFFIXES + (".npy",)
_WRITE_SUFFIXES = (".png", ".tif", ".tiff", ".npy")
#: Luminance weights of R, G, B (ITU-R BT.709, as :func:`skimage.color.rgb2gray`).
LUMA = np.array([0.2125, 0.7154, 0.0721])
# Name the plugin: left to itself, imageio tries every backend on a bad file (slow, noisy).
_PLUGINS = {".png": "pillow", ".jpg": "pillow", ".jpeg": "pillow", ".tif": "tifffile", ".tiff": "tifffile"}


def _expected() -> str:
    return "a 2D image (" + ", ".join(IMAGE_SUFFIXES) + ")"


def _check_readable(path: Path, suffixes: tuple[str, ...], what: str) -> None:
    """Raise a ``ValueError`` naming ``path`` unless it is an existing file with a known suffix."""
    suffix = full_suffix(path)
    if suffix not in suffixes:
        raise ValueError(f"{path}: unsupported file type {suffix or '(no suffix)'!r}; expected {what}")
    if not path.exists():
        raise ValueError(f"{path}: no such file; expected {what}")
    if not path.is_file():
        raise ValueError(f"{path}: not a regular file; expected {what}")


def _to_float(arr: np.ndarray, path: Path) -> np.ndarray:
    """Pixel values as float64, integer types scaled by their maximum (see module notes)."""
    if arr.dtype == bool:
        return arr.astype(np.float64)
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.float64) / float(np.iinfo(arr.dtype).max)
    if np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float64)
    raise ValueError(f"{path}: unsupported pixel type {arr.dtype}; expected integer or real pixels")


def _to_gray(arr: np.ndarray, path: Path, colour: bool = False) -> np.ndarray:
    """(ny, nx), (ny, nx, 1|2|3|4) -> (ny, nx), or (ny, nx, 3) for colour with ``colour``;
    anything else is an error naming the file."""
    if arr.ndim == 2:
        return arr
    if arr.ndim == 3 and arr.shape[-1] in (1, 2):  # grey, grey + alpha
        return arr[..., 0]
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):  # RGB, RGBA
        return arr[..., :3] if colour else arr[..., :3] @ LUMA
    raise ValueError(
        f"{path}: expected a single 2D image (grey or RGB), got an array of shape {arr.shape} "
        "(a multi-page or multi-channel file?)"
    )


def _check_values(img: np.ndarray, path: Path, what: str = "image", element: str = "pixel") -> np.ndarray:
    """``img`` unchanged, or a ``ValueError`` naming ``path`` when it is empty or not finite."""
    if img.size == 0:
        raise ValueError(f"{path}: the {what} is empty (shape {img.shape})")
    bad = int(np.count_nonzero(~np.isfinite(img)))
    if bad:
        raise ValueError(f"{path}: {bad} NaN or infinite {element}(s); expected finite values")
    return img


def read_image(path: str | os.PathLike[str], colour: bool = False) -> np.ndarray:
    """Read a 2D image from PNG, TIFF, JPEG or ``.npy``: grey, or RGB with ``colour``.

    Parameters
    ----------
    path : str or path-like
        File with a suffix in :data:`IMAGE_SUFFIXES`.
    colour : bool
        Keep an RGB(A) file's three colour channels (alpha dropped) instead of converting it to
        grey; a grey file stays 2D. ``.npy`` arrays ``(ny, nx, 3)`` are then accepted too.

    Returns
    -------
    (ny, nx) or, for a colour file with ``colour``, (ny, nx, 3) float64 ndarray
        Raster files: values in [0, 1] for unsigned integer pixels (see the module notes for
        the scaling and the colour-to-grey weights). ``.npy``: the stored values.

    Raises
    ------
    ValueError
        Missing file, unsupported suffix, unreadable or corrupted content, not a single 2D
        image, non-real values, or NaN/infinite pixels. The message names the file.
    """
    p = Path(path)
    _check_readable(p, IMAGE_SUFFIXES, _expected())
    suffix = full_suffix(p)
    if suffix == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - any library failure means "not a readable .npy"
            raise ValueError(f"{p}: could not read as a NumPy .npy array ({type(exc).__name__}: {exc})") from None
        if not isinstance(arr, np.ndarray):
            raise ValueError(f"{p}: expected a single array in the .npy file")
        if np.iscomplexobj(arr):
            raise ValueError(f"{p}: expected real values, got complex dtype {arr.dtype}")
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise ValueError(f"{p}: expected numeric values, got dtype {arr.dtype}")
        if not (arr.ndim == 2 or (colour and arr.ndim == 3 and arr.shape[-1] == 3)):
            raise ValueError(f"{p}: expected a 2D array (ny, nx){' or an RGB image (ny, nx, 3)' if colour else ''}, "
                             f"got shape {arr.shape}")
        return _check_values(arr.astype(np.float64), p)
    import imageio.v3 as iio  # imported here: only raster reads need it

    try:
        if p.stat().st_size == 0:
            raise OSError("the file is empty")
        arr = np.asarray(iio.imread(p, plugin=_PLUGINS[suffix]))
    except Exception as exc:  # noqa: BLE001 - imageio/Pillow/tifffile raise many types
        kind = suffix.lstrip(".").upper()
        raise ValueError(f"{p}: could not read as a {kind} image ({type(exc).__name__}: {exc})") from None
    if arr.size == 0:
        raise ValueError(f"{p}: could not read as a {suffix.lstrip('.').upper()} image (no pixel data)")
    img = _to_gray(_to_float(arr, p), p, colour)
    return _check_values(np.ascontiguousarray(img, dtype=np.float64), p)


def write_image(
    path: str | os.PathLike[str],
    image: np.ndarray,
    bit_depth: int = 8,
) -> Path:
    """Write a 2D grey or RGB image atomically; the format follows the suffix.

    Parameters
    ----------
    path : str or path-like
        ``.png``: values are clipped to [0, 1] and stored as ``round(x * (2**bit_depth - 1))``
        in ``uint8`` or ``uint16`` — scale the image into [0, 1] first (for example by its
        maximum) if its values live elsewhere. ``.tif``/``.tiff``: ``float32``, values kept.
        ``.npy``: ``float64``, values kept.
    image : (ny, nx) or (ny, nx, 3) array_like
        Real values; three channels last are R, G, B.
    bit_depth : {8, 16}
        PNG sample size; ignored for the other formats.

    Returns
    -------
    Path
        ``path``, now holding the image in the format of its suffix.

    Raises
    ------
    ValueError
        Unsupported suffix, neither 2D nor (ny, nx, 3), non-real values, NaN pixels in a PNG, a bad ``bit_depth``.
    """
    p = Path(path)
    suffix = full_suffix(p)
    if suffix not in _WRITE_SUFFIXES:
        raise ValueError(f"{p}: cannot write {suffix or '(no suffix)'!r}; expected one of {_WRITE_SUFFIXES}")
    arr = np.asarray(image)
    if np.iscomplexobj(arr) or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{p}: expected a real-valued image, got dtype {arr.dtype}")
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3)):
        raise ValueError(f"{p}: expected a 2D image (ny, nx) or an RGB image (ny, nx, 3), got shape {arr.shape}")
    arr = arr.astype(np.float64)
    if suffix == ".npy":
        return write_array(p, arr)
    import imageio.v3 as iio

    if suffix == ".png":
        if bit_depth not in (8, 16):
            raise ValueError(f"bit_depth: expected 8 or 16, got {bit_depth}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{p}: the image has NaN or infinite pixels; cannot store them in a PNG")
        dtype = np.uint8 if bit_depth == 8 else np.uint16
        top = float(np.iinfo(dtype).max)
        data = np.round(np.clip(arr, 0.0, 1.0) * top).astype(dtype)
        return atomic_write(p, lambda tmp: iio.imwrite(tmp, data, plugin="pillow", extension=".png"))
    data32 = arr.astype(np.float32)
    return atomic_write(p, lambda tmp: iio.imwrite(tmp, data32, plugin="tifffile"))


def write_array(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write an array of any shape to a ``.npy`` file atomically (no pickled objects).

    Parameters
    ----------
    path : str or path-like
        Must end in ``.npy``.
    array : array_like
        Numeric or boolean values, any shape; the dtype is kept.

    Returns
    -------
    Path
        ``path``, now holding the array.

    Raises
    ------
    ValueError
        A suffix other than ``.npy`` or a non-numeric array.
    """
    p = Path(path)
    if full_suffix(p) != ".npy":
        raise ValueError(f"{p}: expected a .npy file name")
    arr = np.asarray(array)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{p}: expected a numeric array, got dtype {arr.dtype}")
    with atomic_open(p, "wb") as fh:
        np.save(fh, arr, allow_pickle=False)
    return p


def to_jsonable(obj: Any) -> Any:
    """Convert ``obj`` to plain JSON types.

    NumPy scalars become Python numbers, arrays become (nested) lists, paths become strings,
    dataclasses and mappings become objects, tuples and sets become lists, and NaN/infinite
    floats become ``null`` (strict JSON has no NaN).

    Parameters
    ----------
    obj : Any

    Returns
    -------
    Any
        Made of ``dict``, ``list``, ``str``, ``int``, ``float``, ``bool`` and ``None``.

    Raises
    ------
    TypeError
        For a value with no JSON form (an arbitrary object).
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, (complex, np.complexfloating)):
        return [to_jsonable(obj.real), to_jsonable(obj.imag)]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    raise TypeError(f"cannot convert {type(obj).__name__} to JSON")


def write_json(path: str | os.PathLike[str], obj: Any, indent: int = 2) -> Path:
    """Write ``obj`` as UTF-8 JSON, atomically, after :func:`to_jsonable`.

    Parameters
    ----------
    path : str or path-like
    obj : Any
        Mappings, sequences, numbers, strings, NumPy scalars and arrays, paths, dataclasses.
    indent : int
        Indentation of the output.

    Returns
    -------
    Path
        The written file.
    """
    p = Path(path)
    text = json.dumps(to_jsonable(obj), indent=indent, allow_nan=False) + "\n"
    with atomic_open(p, "w", encoding="utf-8") as fh:
        fh.write(text)
    return p
