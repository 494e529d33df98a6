"""``mrideblur deblur``: read an image or a NIfTI volume, deblur it slice by slice with
:func:`mrideblur.deblur.blind_deconvolve` or :func:`mrideblur.deblur.deconvolve`, write the
deblurred data, the kernels and ``report.json``."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..estimators.catalogue import find, methods
from ..io import (
    IMAGE_SUFFIXES,
    NIFTI_SUFFIXES,
    is_nifti,
    read_image,
    read_nifti,
    write_array,
    write_image,
    write_json,
    write_nifti,
)
from ..shell import ProgressBar, add_command, check_out_dir, kernel_montage, key_value, odd_int, summarize_history

__all__ = ["BLIND_METHODS", "DEFAULT_KERNEL_SIZE", "NONBLIND_METHODS", "add_parser", "cmd_deblur", "is_blind"]

#: Methods that estimate the kernel (:func:`mrideblur.deblur.blind_deconvolve`), from the
#: catalogue. A method in both lists (``diffusion``) is blind without --kernel (:func:`is_blind`).
BLIND_METHODS = methods("blind-deconvolve")
#: Methods that need the kernel (:func:`mrideblur.deblur.deconvolve`), from the catalogue.
NONBLIND_METHODS = methods("deconvolve")
#: Methods that estimate a spatially varying blur, a field of kernels
#: (:func:`mrideblur.deblur.deblur_nonuniform`), from the catalogue.
FIELD_METHODS = methods("deblur-nonuniform")
DEFAULT_KERNEL_SIZE = 25
#: Blind methods that also take a starting kernel (``--kernel``): semi-blind, the kernel refined
#: or its error modelled.
SEMI_BLIND = ("residual-prior",)
#: Keyword arguments the command sets itself (not through ``--param``).
RESERVED = {"blurred", "kernel", "kernel_size", "method", "seed", "progress", "cancel", "patch", "boundary"}

DESCRIPTION = (
    "Deblur a 2D image (PNG, TIFF, JPEG, .npy; colour images stay colour, one kernel for the three "
    "channels, unless --grey) or each 2D slice of a NIfTI volume. "
    f"Blind methods ({', '.join(BLIND_METHODS)}) estimate the blur kernel; non-blind "
    f"methods ({', '.join(NONBLIND_METHODS)}) need it as --kernel (diffusion is blind "
    f"without --kernel, non-blind with it; residual-prior takes --kernel as the inaccurate kernel whose "
    f"error it models); {', '.join(FIELD_METHODS)} estimates a blur that varies "
    "across the image (a field of kernels). Writes deblurred.png "
    "+ deblurred.npy (or deblurred.nii.gz), kernel.png + kernel.npy, uncertainty.npy (or .nii.gz) for "
    "methods that return one, and report.json to --out. Intensities are divided by the input's largest magnitude before deblurring "
    "and multiplied back afterwards."
)


def is_blind(method: str, kernel_given: bool) -> bool:
    """Whether ``method`` estimates the kernel: a method in both lists does unless given one."""
    return method in FIELD_METHODS or (method in BLIND_METHODS and not (method in NONBLIND_METHODS and kernel_given))


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``mrideblur deblur``."""
    p = add_command(sub, "deblur", cmd_deblur, "deblur an image or every slice of a NIfTI volume", DESCRIPTION)
    p.add_argument("input", type=Path, help=f"input file ({', '.join(IMAGE_SUFFIXES + NIFTI_SUFFIXES)})")
    p.add_argument("--out", type=Path, required=True, metavar="OUT_DIR", help="output directory (created)")
    p.add_argument("--method", choices=tuple(dict.fromkeys(BLIND_METHODS + NONBLIND_METHODS + FIELD_METHODS)),
                   default="vb",
                   help="deblurring method (default: vb)")
    p.add_argument("--kernel-size", type=odd_int, default=None, metavar="N",
                   help=f"odd size of the estimated kernel in pixels for blind methods (default {DEFAULT_KERNEL_SIZE})")
    p.add_argument("--kernel", type=Path, default=None, metavar="K.npy|K.png",
                   help="the known blur kernel, required by non-blind methods (normalised to sum 1)")
    p.add_argument("--patch", type=int, nargs=4, default=None, metavar=("Y0", "X0", "H", "W"),
                   help="blind methods: estimate the kernel on this rectangle (pixels) of each slice "
                        "(default: the library picks the window with the most edges)")
    p.add_argument("--boundary", choices=("taper", "periodic", "valid"), default=None,
                   help="how the image continues beyond its border in the (final) non-blind deconvolution "
                        "(library default: taper); valid returns an image larger by the kernel size minus one")
    p.add_argument("--axis", type=int, default=2,
                   help="NIfTI input: the slice axis; each slice across it is deblurred on its own (default 2)")
    p.add_argument("--grey", action="store_true",
                   help="convert a colour image to grey (luminance) first; by default colour is kept")
    p.add_argument("--seed", type=int, default=0, help="seed of the blind methods (default 0)")
    p.add_argument("--param", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="extra keyword argument of the method, e.g. --param n_iter=50 (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


# --------------------------------------------------------------------------------------------
# reading and checking


def load_slices(path: Path, axis: int, colour: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
    """Read the input as a stack of 2D slices ``(n, ny, nx)`` (``(1, ny, nx, 3)`` for a colour
    image when ``colour``) plus what is needed to write back."""
    if is_nifti(path):
        data, affine, header = read_nifti(path)
        while data.ndim > 3 and data.shape[-1] == 1:  # a 4D file holding one volume
            data = data[..., 0]
        if data.ndim == 2:
            stack, axis_used = data[None], None
        elif data.ndim == 3:
            if not -3 <= axis < 3:
                raise ValueError(f"--axis: expected 0, 1 or 2 for the 3D volume {path}, got {axis}")
            axis_used = axis % 3
            stack = np.moveaxis(data, axis_used, 0)
        else:
            raise ValueError(f"{path}: expected a 2D or 3D volume, got shape {data.shape}")
        meta = {"kind": "nifti", "shape": data.shape, "axis": axis_used, "affine": affine, "header": header}
        return np.ascontiguousarray(stack), meta
    image = read_image(path, colour=colour)
    return image[None], {"kind": "image", "shape": image.shape, "raster": path.suffix.lower() != ".npy",
                         "colour": image.ndim == 3}


def load_kernel(path: Path) -> np.ndarray:
    """A kernel file (``.npy`` or an image), checked and normalised to sum 1."""
    from ..deblur import validate_kernel

    return validate_kernel(read_image(path), name=str(path))


def deblur_options(args: argparse.Namespace, blind: bool) -> dict[str, Any]:
    """Check the deblur options against each other and against the method's own options
    (the catalogue's options dataclass); return the keyword arguments to pass on."""
    if blind and args.kernel is not None and args.method not in SEMI_BLIND:
        raise ValueError(f"--kernel: method {args.method!r} estimates the kernel; give --kernel only to "
                         f"the non-blind methods ({', '.join(NONBLIND_METHODS)}) or to {', '.join(SEMI_BLIND)}")
    if not blind and args.kernel is None:
        raise ValueError(f"--method {args.method} needs the blur kernel: add --kernel K.npy or K.png "
                         f"(or use a blind method: {', '.join(BLIND_METHODS)})")
    if not blind and args.patch is not None:
        raise ValueError("--patch: only the blind methods estimate a kernel on a patch")
    if args.method in FIELD_METHODS and (args.patch is not None or args.boundary is not None
                                         or args.kernel_size is not None):
        raise ValueError(f"--method {args.method} estimates a field of kernels over the whole image: --patch, "
                         "--boundary and --kernel-size do not apply")
    options: dict[str, Any] = {}  # given on the command line; the library's defaults otherwise
    if args.patch is not None:
        options["patch"] = tuple(args.patch)
    if args.boundary is not None:
        options["boundary"] = args.boundary
    for key, value in args.param:
        if key in RESERVED:
            raise ValueError(f"--param {key}: set by the command itself (use its own option if it has one)")
        options[key] = value
    # An option the method does not take, or a bad value, fails here, before any work.
    problem = "deblur-nonuniform" if args.method in FIELD_METHODS else "blind-deconvolve" if blind else "deconvolve"
    find(problem, args.method).make_options(**options)
    return options


# --------------------------------------------------------------------------------------------
# running


def deblur_stack(stack: np.ndarray, method: str, known_kernel: np.ndarray | None, kernel_size: int, seed: int,
                 options: dict[str, Any], bar: ProgressBar, name: str = "input",
                 ) -> tuple[list[np.ndarray], list[np.ndarray], list[dict[str, Any]], list[np.ndarray | None]]:
    """Deblur each slice of ``stack`` ``(n, ny, nx)`` on its own.

    Returns the deblurred slices, one kernel per slice, one report entry per slice
    (``index``, ``seconds``, ``history`` summary, ``skipped`` for constant slices) and the
    per-slice uncertainty maps (``None`` where the method gives none).  A ``ValueError`` of the
    library is raised again with ``name`` and, for stacks, the slice.  A blind method given
    ``known_kernel`` (:data:`SEMI_BLIND`) starts from it.
    """
    from ..deblur import blind_deconvolve, deblur_nonuniform, deconvolve

    blind = is_blind(method, known_kernel is not None)
    if blind and known_kernel is not None:  # semi-blind: the kernel is the method's starting point
        options = {**options, "kernel": known_kernel}
        kernel_size = known_kernel.shape[0]
    n = stack.shape[0]
    results, kernels, slices, spreads = [], [], [], []
    for i, blurred in enumerate(stack):
        if n > 1:
            bar.set_description(f"{method} slice {i + 1}/{n}")
        ts = time.perf_counter()
        entry: dict[str, Any] = {"index": i}
        history: Mapping[str, Any] | None = None
        spread = None
        if np.ptp(blurred) == 0:  # nothing to deblur (background slices at a volume's ends)
            image = blurred.copy()
            kernel = known_kernel if known_kernel is not None else _delta(kernel_size)
            entry["skipped"] = "constant slice"
        else:
            try:
                if blind:
                    with warnings.catch_warnings():  # the command prints the overshoot warning itself
                        warnings.simplefilter("ignore", UserWarning)
                        res = (deblur_nonuniform(blurred, method=method, progress=bar, **options)
                               if method in FIELD_METHODS else
                               blind_deconvolve(blurred, kernel_size, method=method, seed=seed, progress=bar, **options))
                    image, history = np.asarray(res.image), res.history
                    spread = None if res.uncertainty is None else np.asarray(res.uncertainty)
                    kernel = np.asarray(res.kernel) if res.kernel is not None else _delta(kernel_size)
                else:
                    image, kernel = np.asarray(deconvolve(blurred, known_kernel, method=method, **options)), known_kernel
            except ValueError as exc:
                where = f"{name}, slice {i} of {n}" if n > 1 else name
                raise ValueError(f"{where}: {exc}") from None
        if not blind:  # the blind methods feed the bar themselves, one run per slice
            bar(i + 1, n)
        entry["seconds"] = time.perf_counter() - ts
        entry["history"] = summarize_history(history)
        results.append(image)
        kernels.append(kernel)
        slices.append(entry)
        spreads.append(spread)
    shapes = {k.shape for k in kernels}
    if len(shapes) > 1:  # a field method's skipped (constant) slices: a field of "no blur" like the others'
        field = next(k for k in kernels if k.ndim == 4)
        none = np.zeros(field.shape)
        none[..., field.shape[-2] // 2, field.shape[-1] // 2] = 1.0
        kernels = [k if k.shape == field.shape else none for k in kernels]
    return results, kernels, slices, spreads


def _delta(size: int) -> np.ndarray:
    k = np.zeros((size, size))
    k[size // 2, size // 2] = 1.0
    return k


def center_crop(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Central ``shape`` part of ``image`` (an estimate extended past the field of view)."""
    if image.shape == tuple(shape):
        return image
    if image.shape[0] < shape[0] or image.shape[1] < shape[1]:
        raise RuntimeError(f"the method returned an image {image.shape} smaller than its input {tuple(shape)}")
    y0 = (image.shape[0] - shape[0]) // 2
    x0 = (image.shape[1] - shape[1]) // 2
    return image[y0 : y0 + shape[0], x0 : x0 + shape[1]]


# --------------------------------------------------------------------------------------------
# writing


def write_deblur_outputs(out_dir: Path, results: list[np.ndarray], kernels: np.ndarray, meta: dict[str, Any],
                         scale: float, spreads: list[np.ndarray | None] | None = None) -> dict[str, Path]:
    """Write the deblurred data, the kernels and, when the method gives them, the uncertainty
    maps (``spreads``, in the input's units); return ``{name: path}``."""
    out: dict[str, Path] = {}
    if spreads and any(u is not None for u in spreads):  # skipped (constant) slices: no spread
        spreads = [np.zeros_like(r) if u is None else u for r, u in zip(results, spreads)]
        if meta["kind"] == "nifti":
            vol = spreads[0] if meta["axis"] is None else np.moveaxis(np.stack(spreads), 0, meta["axis"])
            out["uncertainty"] = write_nifti(out_dir / "uncertainty.nii.gz", vol, meta["affine"], meta["header"])
        else:
            out["uncertainty"] = write_image(out_dir / "uncertainty.npy", spreads[0])
    if meta["kind"] == "nifti":
        volume = results[0] if meta["axis"] is None else np.moveaxis(np.stack(results), 0, meta["axis"])
        out["deblurred"] = write_nifti(out_dir / "deblurred.nii.gz", volume, meta["affine"], meta["header"])
    else:
        # PNG shows the same window as the input: [0, 1] for raster files, [0, max|input|] for .npy.
        window = 1.0 if meta["raster"] else scale
        out["deblurred_png"] = write_image(out_dir / "deblurred.png", results[0] / window)
        out["deblurred"] = write_image(out_dir / "deblurred.npy", results[0])
    out["kernel_png"] = write_image(out_dir / "kernel.png", kernel_montage(kernels))
    out["kernel"] = write_array(out_dir / "kernel.npy", kernels if meta["kind"] == "nifti" else kernels[0])
    return out


def cmd_deblur(args: argparse.Namespace) -> int:
    """Run ``mrideblur deblur``: read, deblur slice by slice, write images, kernels, report."""
    t0 = time.perf_counter()
    blind = is_blind(args.method, args.kernel is not None)
    options = deblur_options(args, blind)
    stack, meta = load_slices(args.input, args.axis, colour=not args.grey)
    known_kernel = load_kernel(args.kernel) if args.kernel is not None else None
    if known_kernel is not None and args.kernel_size is not None and known_kernel.shape != (args.kernel_size,) * 2:
        raise ValueError(f"--kernel-size {args.kernel_size} does not match the kernel in {args.kernel}, "
                         f"shape {known_kernel.shape}; leave --kernel-size out")
    out_dir = check_out_dir(args.out)
    scale = float(np.max(np.abs(stack))) or 1.0
    kernel_size = args.kernel_size or DEFAULT_KERNEL_SIZE

    with ProgressBar(enabled=not args.quiet, desc=args.method) as bar:
        results, kernels, slices, spreads = deblur_stack(stack / scale, args.method, known_kernel, kernel_size,
                                                         args.seed, options, bar, name=str(args.input))
    results = [r * scale for r in results]
    spreads = [None if u is None else u * scale for u in spreads]
    if meta["kind"] == "nifti":  # same grid as the input, so the affine still applies
        results = [center_crop(r, stack.shape[1:]) for r in results]
        spreads = [None if u is None else center_crop(u, stack.shape[1:]) for u in spreads]

    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = write_deblur_outputs(out_dir, results, np.stack(kernels), meta, scale, spreads)
    report = {
        "command": "deblur",
        "mrideblur_version": __version__,
        "input": str(args.input.resolve()),
        "input_kind": meta["kind"],
        "input_shape": list(meta["shape"]),
        "colour": bool(meta.get("colour")),
        "output_shape": list(results[0].shape) if meta["kind"] == "image" else list(meta["shape"]),
        "method": args.method,
        "blind": blind,
        "kernel_size": list(kernels[0].shape),
        "kernel_file": str(args.kernel.resolve()) if args.kernel is not None else None,
        "parameters": {"seed": args.seed if blind else None, "axis": meta.get("axis"), **options},
        "intensity_scale": scale,
        "outputs": {name: path.name for name, path in outputs.items()},
        "seconds": time.perf_counter() - t0,
        "slices": slices,
    }
    outputs["report"] = write_json(out_dir / "report.json", report)
    what = (f"blind, a {kernels[0].shape[0]}x{kernels[0].shape[1]} field of {kernels[0].shape[-1]}-pixel kernels "
            "estimated" if args.method in FIELD_METHODS else
            f"semi-blind, the given {kernels[0].shape[0]}-pixel kernel's error modelled"
            if blind and known_kernel is not None else
            f"blind, {kernels[0].shape[0]}-pixel kernel estimated" if blind else "known kernel")
    print(f"{args.method} ({what}): {len(results) if meta['kind'] == 'nifti' else 1} "
          f"{'colour ' if meta.get('colour') else ''}image(s) of {'x'.join(str(n) for n in stack.shape[1:3])} "
          f"pixels, {report['seconds']:.1f} s")
    print(f"outputs in {out_dir}: {', '.join(p.name for p in outputs.values())}")
    flagged = [(s["index"], s["history"]["warning"]) for s in slices if "warning" in (s.get("history") or {})]
    for index, text in flagged:
        where = f"slice {index}: " if len(slices) > 1 else ""
        print(f"mrideblur: warning: {where}{text}", file=sys.stderr)
    return 0
