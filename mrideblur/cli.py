"""The ``mrideblur`` command: a thin shell over the library.

Each subcommand is a pair ``_add_<name>(subparsers)`` (its arguments) and ``cmd_<name>(args)``
(read files with :mod:`mrideblur.io`, call one library entry point, write files); add a command
by writing such a pair and listing it in :data:`COMMANDS`.  No algorithm lives here.

Exit codes: 0 success, 1 a file could not be written (``OSError``), 2 bad arguments or data (a
``ValueError`` from the library or the readers, printed as one ``mrideblur: error: ...`` line
without a traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .io import (
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

__all__ = ["main", "build_parser", "cmd_deblur", "cmd_demo", "BLIND_METHODS", "NONBLIND_METHODS"]

# The method names are spelled out here, not imported, so that ``mrideblur --help`` does not
# load the numerical stack; tests/test_cli.py checks them against the library's lists.
#: Methods that estimate the kernel (:func:`mrideblur.deblur.blind_deconvolve`). "diffusion" is
#: in both lists: blind without --kernel, non-blind with it (:func:`_is_blind`).
BLIND_METHODS = ("vb", "map", "diffusion")
#: Methods that need the kernel (:func:`mrideblur.deblur.deconvolve`).
NONBLIND_METHODS = ("wiener", "tikhonov", "hyper-laplacian", "richardson-lucy", "inverse", "diffusion")
DEFAULT_KERNEL_SIZE = 25


def _is_blind(method: str, kernel_given: bool) -> bool:
    """Whether ``method`` estimates the kernel: a method in both lists does unless given one."""
    return method in BLIND_METHODS and not (method in NONBLIND_METHODS and kernel_given)


# --------------------------------------------------------------------------------------------
# progress bar


class ProgressBar:
    """A tqdm bar on stderr fed by the library's ``progress(step, total, message)`` callback.

    The bar appears at the first call and restarts whenever ``total`` changes or ``step`` goes
    backwards (a new slice).  On a terminal it redraws at most every 0.2 s; without one (CI
    logs, pipes) in plain ASCII at most every 10 s, so logs stay short.

    Parameters
    ----------
    enabled : bool
        ``False`` draws nothing (``--quiet``).
    desc : str
        Text in front of the bar.
    """

    def __init__(self, enabled: bool = True, desc: str = "") -> None:
        self.enabled = enabled
        self._desc = desc
        self._bar: Any = None

    def _open(self, total: int | None) -> Any:
        from tqdm import tqdm

        tty = bool(getattr(sys.stderr, "isatty", lambda: False)())
        return tqdm(
            total=total,
            desc=self._desc,
            file=sys.stderr,
            mininterval=0.2 if tty else 10.0,
            dynamic_ncols=tty,
            ascii=not tty,
            leave=True,
        )

    def __call__(self, step: int, total: int, message: str = "") -> None:
        if not self.enabled:
            return
        if self._bar is None:
            self._bar = self._open(total or None)
        bar = self._bar
        if (total and bar.total != total) or step < bar.n:
            bar.reset(total=total or None)
        if message:
            bar.set_postfix_str(str(message), refresh=False)
        bar.update(max(int(step) - bar.n, 0))

    def set_description(self, desc: str) -> None:
        """Change the text in front of the bar."""
        self._desc = desc
        if self._bar is not None:
            self._bar.set_description(desc, refresh=False)

    def close(self) -> None:
        """Draw the final state and release the line."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# argument helpers


def _odd_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an odd integer, got {text!r}") from None
    if n < 3 or n % 2 == 0:
        raise argparse.ArgumentTypeError(f"expected an odd integer >= 3, got {n}")
    return n


def _key_value(text: str) -> tuple[str, Any]:
    """``"nsr=0.01"`` -> ``("nsr", 0.01)``; the value is a Python literal or else a string."""
    key, sep, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError):
        value = raw.strip()
    return key, value


# --------------------------------------------------------------------------------------------
# deblur


def _add_deblur(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "deblur",
        help="deblur an image or every slice of a NIfTI volume",
        description=(
            "Deblur a 2D image (PNG, TIFF, JPEG, .npy) or each 2D slice of a NIfTI volume. "
            f"Blind methods ({', '.join(BLIND_METHODS)}) estimate the blur kernel; non-blind "
            f"methods ({', '.join(NONBLIND_METHODS)}) need it as --kernel (diffusion is blind "
            "without --kernel, non-blind with it). Writes deblurred.png "
            "+ deblurred.npy (or deblurred.nii.gz), kernel.png + kernel.npy and report.json to "
            "--out. Intensities are divided by the input's largest magnitude before deblurring "
            "and multiplied back afterwards."
        ),
    )
    p.add_argument("input", type=Path, help=f"input file ({', '.join(IMAGE_SUFFIXES + NIFTI_SUFFIXES)})")
    p.add_argument("--out", type=Path, required=True, metavar="OUT_DIR", help="output directory (created)")
    p.add_argument(
        "--method",
        choices=tuple(dict.fromkeys(BLIND_METHODS + NONBLIND_METHODS)),
        default="vb",
        help="deblurring method (default: vb)",
    )
    p.add_argument(
        "--kernel-size",
        type=_odd_int,
        default=None,
        metavar="N",
        help=f"odd size of the estimated kernel in pixels for blind methods (default {DEFAULT_KERNEL_SIZE})",
    )
    p.add_argument(
        "--kernel",
        type=Path,
        default=None,
        metavar="K.npy|K.png",
        help="the known blur kernel, required by non-blind methods (normalised to sum 1)",
    )
    p.add_argument(
        "--patch",
        type=int,
        nargs=4,
        default=None,
        metavar=("Y0", "X0", "H", "W"),
        help="blind methods: estimate the kernel on this rectangle (pixels) of each slice "
        "(default: the library picks the window with the most edges)",
    )
    p.add_argument(
        "--boundary",
        choices=("taper", "periodic", "valid"),
        default=None,
        help="how the image continues beyond its border in the (final) non-blind deconvolution "
        "(library default: taper); valid returns an image larger by the kernel size minus one",
    )
    p.add_argument(
        "--axis",
        type=int,
        default=2,
        help="NIfTI input: the slice axis; each slice across it is deblurred on its own (default 2)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the blind methods (default 0)")
    p.add_argument(
        "--param",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra keyword argument of the method, e.g. --param n_iter=50 (repeatable)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_deblur)


def _load_slices(path: Path, axis: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Read the input as a stack of 2D slices ``(n, ny, nx)`` plus what is needed to write back."""
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
    image = read_image(path)
    return image[None], {"kind": "image", "shape": image.shape, "raster": path.suffix.lower() != ".npy"}


def _load_kernel(path: Path) -> np.ndarray:
    from .deblur.kernels import validate_kernel

    return validate_kernel(read_image(path), name=str(path))


def _center_crop(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Central ``shape`` part of ``image`` (an estimate extended past the field of view)."""
    if image.shape == tuple(shape):
        return image
    if image.shape[0] < shape[0] or image.shape[1] < shape[1]:
        raise RuntimeError(f"the method returned an image {image.shape} smaller than its input {tuple(shape)}")
    y0 = (image.shape[0] - shape[0]) // 2
    x0 = (image.shape[1] - shape[1]) // 2
    return image[y0 : y0 + shape[0], x0 : x0 + shape[1]]


def summarize_history(history: Mapping[str, Any] | None) -> dict[str, Any]:
    """Shrink an estimator's history to what fits a report.

    Numeric series longer than 8 become ``{"n", "first", "last", "min", "max"}``, shorter
    ones are kept as lists; scalars, strings and booleans are kept; other numeric arrays are
    described by their shape, anything else by its type name.

    Parameters
    ----------
    history : mapping or None

    Returns
    -------
    dict
    """
    out: dict[str, Any] = {}
    for key, value in (history or {}).items():
        if value is None or isinstance(value, (str, bool, int, float, np.generic)):
            out[str(key)] = value
            continue
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError):  # ragged, e.g. one kernel per scale
            arr = None
        if arr is None or arr.dtype.kind not in "biuf":
            out[str(key)] = f"<{type(value).__name__}>"
            continue
        if arr.ndim == 1 and arr.size <= 8:
            out[str(key)] = arr.tolist()
        elif arr.ndim == 1:
            fin = arr[np.isfinite(arr)]
            out[str(key)] = {
                "n": int(arr.size),
                "first": arr[0].item(),
                "last": arr[-1].item(),
                "min": fin.min().item() if fin.size else None,
                "max": fin.max().item() if fin.size else None,
            }
        elif arr.ndim == 0:
            out[str(key)] = arr.item()
        else:
            out[str(key)] = {"shape": list(arr.shape)}
    return out


def _kernel_montage(kernels: np.ndarray) -> np.ndarray:
    """Tile ``(n, ky, kx)`` kernels on a near-square grid, each scaled to its own maximum."""
    n, ky, kx = kernels.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    tile = np.zeros((rows * (ky + 1) - 1, cols * (kx + 1) - 1))
    for i, k in enumerate(kernels):
        r, c = divmod(i, cols)
        peak = k.max()
        tile[r * (ky + 1) : r * (ky + 1) + ky, c * (kx + 1) : c * (kx + 1) + kx] = k / peak if peak > 0 else k
    return tile


def _deblur_options(args: argparse.Namespace, blind: bool) -> dict[str, Any]:
    """Check the deblur options against each other; return the keyword arguments to pass on."""
    if blind and args.kernel is not None:
        raise ValueError(
            f"--kernel: method {args.method!r} estimates the kernel; give --kernel only to "
            f"the non-blind methods ({', '.join(NONBLIND_METHODS)})"
        )
    if not blind and args.kernel is None:
        raise ValueError(
            f"--method {args.method} needs the blur kernel: add --kernel K.npy or K.png "
            f"(or use a blind method: {', '.join(BLIND_METHODS)})"
        )
    if not blind and args.patch is not None:
        raise ValueError("--patch: only the blind methods estimate a kernel on a patch")
    options: dict[str, Any] = {}  # given on the command line; the library's defaults otherwise
    if args.patch is not None:
        options["patch"] = tuple(args.patch)
    if args.boundary is not None:
        options["boundary"] = args.boundary
    reserved = {"blurred", "kernel", "kernel_size", "method", "seed", "progress", "cancel", "patch", "boundary"}
    for key, value in args.param:
        if key in reserved:
            raise ValueError(f"--param {key}: set by the command itself (use its own option if it has one)")
        options[key] = value
    if blind:  # blind_deconvolve names its parameters; deconvolve checks its own **params
        import inspect

        from .deblur import blind_deconvolve

        known = set(inspect.signature(blind_deconvolve).parameters) - reserved
        unknown = sorted(set(options) - known - {"patch", "boundary"})
        if unknown:
            raise ValueError(f"--param {unknown[0]}: not a parameter of method {args.method!r}; it accepts {sorted(known)}")
    return options


def cmd_deblur(args: argparse.Namespace) -> int:
    """Run ``mrideblur deblur``: read, deblur slice by slice, write images, kernels, report."""
    t0 = time.perf_counter()
    blind = _is_blind(args.method, args.kernel is not None)
    options = _deblur_options(args, blind)
    stack, meta = _load_slices(args.input, args.axis)
    known_kernel = _load_kernel(args.kernel) if args.kernel is not None else None
    if known_kernel is not None and args.kernel_size is not None and known_kernel.shape != (args.kernel_size,) * 2:
        raise ValueError(
            f"--kernel-size {args.kernel_size} does not match the kernel in {args.kernel}, "
            f"shape {known_kernel.shape}; leave --kernel-size out"
        )
    out_dir = args.out
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir}: exists and is not a directory")
    scale = float(np.max(np.abs(stack))) or 1.0
    kernel_size = args.kernel_size or DEFAULT_KERNEL_SIZE

    with ProgressBar(enabled=not args.quiet, desc=args.method) as bar:
        results, kernels, slices = _deblur_stack(
            stack / scale, args.method, known_kernel, kernel_size, args.seed, options, bar, name=str(args.input)
        )
    results = [r * scale for r in results]
    if meta["kind"] == "nifti":  # same grid as the input, so the affine still applies
        results = [_center_crop(r, stack.shape[1:]) for r in results]

    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = _write_deblur_outputs(out_dir, results, np.stack(kernels), meta, scale)
    report = {
        "command": "deblur",
        "mrideblur_version": __version__,
        "input": str(args.input.resolve()),
        "input_kind": meta["kind"],
        "input_shape": list(meta["shape"]),
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
    for name, path in outputs.items():
        print(f"{name}: {path}")
    return 0


def _deblur_stack(
    stack: np.ndarray,
    method: str,
    known_kernel: np.ndarray | None,
    kernel_size: int,
    seed: int,
    options: dict[str, Any],
    bar: ProgressBar,
    name: str = "input",
) -> tuple[list[np.ndarray], list[np.ndarray], list[dict[str, Any]]]:
    """Deblur each slice of ``stack`` ``(n, ny, nx)`` on its own.

    Returns the deblurred slices, one kernel per slice and one report entry per slice
    (``index``, ``seconds``, ``history`` summary, ``skipped`` for constant slices).  A
    ``ValueError`` of the library is raised again with ``name`` and, for stacks, the slice.
    """
    import mrideblur.deblur as deblur

    blind = _is_blind(method, known_kernel is not None)
    n = stack.shape[0]
    results, kernels, slices = [], [], []
    for i, blurred in enumerate(stack):
        if n > 1:
            bar.set_description(f"{method} slice {i + 1}/{n}")
        ts = time.perf_counter()
        entry: dict[str, Any] = {"index": i}
        history: Mapping[str, Any] | None = None
        if np.ptp(blurred) == 0:  # nothing to deblur (background slices at a volume's ends)
            image = blurred.copy()
            kernel = known_kernel if known_kernel is not None else _delta(kernel_size)
            entry["skipped"] = "constant slice"
        else:
            try:
                if blind:
                    res = deblur.blind_deconvolve(
                        blurred, kernel_size, method=method, seed=seed, progress=bar, **options
                    )
                    image, kernel, history = np.asarray(res.image), np.asarray(res.kernel), res.history
                else:
                    image = np.asarray(deblur.deconvolve(blurred, known_kernel, method=method, **options))
                    kernel = known_kernel
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
    return results, kernels, slices


def _delta(size: int) -> np.ndarray:
    k = np.zeros((size, size))
    k[size // 2, size // 2] = 1.0
    return k


def _write_deblur_outputs(
    out_dir: Path, results: list[np.ndarray], kernels: np.ndarray, meta: dict[str, Any], scale: float
) -> dict[str, Path]:
    """Write the deblurred data and the kernels; return ``{name: path}``."""
    out: dict[str, Path] = {}
    if meta["kind"] == "nifti":
        if meta["axis"] is None:
            volume = results[0]
        else:
            volume = np.moveaxis(np.stack(results), 0, meta["axis"])
        out["deblurred"] = write_nifti(out_dir / "deblurred.nii.gz", volume, meta["affine"], meta["header"])
        out["kernel_png"] = write_image(out_dir / "kernel.png", _kernel_montage(kernels))
        out["kernel"] = write_array(out_dir / "kernel.npy", kernels)
        return out
    image = results[0]
    # PNG shows the same window as the input: [0, 1] for raster files, [0, max|input|] for .npy.
    window = 1.0 if meta["raster"] else scale
    out["deblurred_png"] = write_image(out_dir / "deblurred.png", image / window)
    out["deblurred"] = write_image(out_dir / "deblurred.npy", image)
    out["kernel_png"] = write_image(out_dir / "kernel.png", _kernel_montage(kernels))
    out["kernel"] = write_array(out_dir / "kernel.npy", kernels[0])
    return out


# --------------------------------------------------------------------------------------------
# demo


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="blur a built-in photograph and compare the deblurring methods in one figure",
        description=(
            "Blur the scikit-image camera photograph with a random camera-shake kernel and 1% "
            "noise, deblur it with the inverse filter, Wiener, hyper-Laplacian (true kernel), "
            "and blind MAP and VB, and write a figure and demo_report.json with the PSNRs."
        ),
    )
    p.add_argument("--out", type=Path, default=Path("mrideblur_demo"), metavar="DIR",
                   help="output directory (default: ./mrideblur_demo)")
    p.add_argument("--quick", action="store_true", help="a small image: seconds instead of a minute or two")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """Run ``mrideblur demo``: call :func:`mrideblur.demo.run_demo` and list what it wrote."""
    from .demo import run_demo

    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out}: exists and is not a directory")
    with ProgressBar(enabled=not args.quiet, desc="demo") as bar:
        written = run_demo(args.out, quick=args.quick, progress=bar)
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0


# --------------------------------------------------------------------------------------------
# simulate

BUILTIN_ANATOMY = ("mni", "mni-coronal", "mni-sagittal", "mni-3d", "shepp", "shepp-3d")


def _add_simulate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate a motion-corrupted multi-coil, multi-shot scan and write it as a case .h5",
        description=(
            "Make a case file (CONVENTIONS.md) from an image (PNG, TIFF, .npy), a NIfTI volume "
            "(one slice along --axis, or the whole volume with --volume) or built-in anatomy "
            "(the MNI152 T1 template shipped in nilearn's wheel, or Shepp-Logan). The object "
            "is moved on a 2x finer grid and k-space is cropped, so estimators cannot win by "
            "sharing the simulator's interpolation. Ground truth is stored under truth/."
        ),
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("input", nargs="?", type=Path, help="image or NIfTI file")
    src.add_argument("--builtin", choices=BUILTIN_ANATOMY, help="built-in anatomy instead of a file")
    p.add_argument("--out", type=Path, required=True, metavar="CASE.h5", help="output case file")
    p.add_argument("--size", type=int, default=None, help="resample 2D built-in anatomy to SIZE x SIZE (default 192; 3D: 64)")
    p.add_argument("--axis", type=int, default=2, help="NIfTI: slice axis of the file's array (default 2)")
    p.add_argument("--position", type=float, default=0.55, help="NIfTI/built-in: slice position as a fraction (default 0.55)")
    p.add_argument("--volume", action="store_true", help="NIfTI: simulate the whole 3D volume (6-DOF motion)")
    p.add_argument("--coils", type=int, default=8)
    p.add_argument("--shots", type=int, default=16)
    p.add_argument("--ordering", choices=("interleaved", "sequential", "random"), default="interleaved")
    p.add_argument("--accel", type=int, default=1, help="acceleration R outside the ACS lines")
    p.add_argument("--acs", type=int, default=24, help="fully sampled centre lines")
    p.add_argument("--motion", choices=("random", "step", "drift", "periodic", "none"), default="random")
    p.add_argument("--max-rot", type=float, default=3.0, help="degrees")
    p.add_argument("--max-trans", type=float, default=3.0, help="pixels")
    p.add_argument("--noise", type=float, default=0.01, help="fraction of the brightest coil-image pixel")
    p.add_argument("--coil-model", choices=("birdcage", "loop"), default="birdcage")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_simulate)


def _simulation_object(args: argparse.Namespace) -> tuple[np.ndarray, tuple[float, ...] | None, str]:
    """The image or volume to simulate, its voxel size (mm) if known, and a description."""
    from .io.anatomy import mni_slice, mni_volume, shepp_logan

    if args.builtin:
        if args.builtin.endswith("-3d"):
            n = args.size or 64
            if args.builtin == "shepp-3d":
                return shepp_logan((n, n, n)), None, f"Shepp-Logan {n}^3"
            import skimage.transform

            vol, _ = mni_volume()
            voxel = tuple(s / n for s in vol.shape)  # the template has 1 mm voxels
            vol = skimage.transform.resize(vol, (n, n, n), anti_aliasing=True)
            return vol, voxel, f"MNI152 T1 resampled to {n}^3"
        n = args.size or 192
        if args.builtin == "shepp":
            return shepp_logan(n), None, f"Shepp-Logan {n}x{n}"
        plane = {"mni": "axial", "mni-coronal": "coronal", "mni-sagittal": "sagittal"}[args.builtin]
        return mni_slice(plane, args.position, n), None, f"MNI152 T1 {plane} slice at {args.position}, {n}x{n}"
    path = args.input
    if is_nifti(path):
        data, affine, header = read_nifti(path)
        zooms = tuple(float(z) for z in header.get_zooms()[:3])
        if data.ndim == 4:
            data = data[..., 0]
        if args.volume:
            if data.ndim != 3:
                raise ValueError(f"{path}: --volume needs a 3D volume, got shape {data.shape}")
            return data, zooms[::-1], f"{path.name} volume"
        if data.ndim == 3:
            if not 0 <= args.axis < 3:
                raise ValueError(f"--axis: expected 0, 1 or 2 for a 3D volume, got {args.axis}")
            i = int(round(args.position * (data.shape[args.axis] - 1)))
            sl = np.take(data, i, axis=args.axis)
            vs = tuple(z for a, z in enumerate(zooms) if a != args.axis)
            return sl, vs, f"{path.name} slice {i} along axis {args.axis}"
        return data, zooms[:2], path.name
    return read_image(path), None, path.name


def cmd_simulate(args: argparse.Namespace) -> int:
    """Run ``mrideblur simulate``: build the object, call :func:`mrideblur.mri.simulate`, write."""
    from .io.case import write_case
    from .mri.simulate import simulate

    obj, voxel, what = _simulation_object(args)
    case = simulate(obj, ncoil=args.coils, nshot=args.shots, ordering=args.ordering, accel=args.accel,
                    acs=args.acs, motion=args.motion, max_rot=args.max_rot, max_trans=args.max_trans,
                    noise=args.noise, coil_model=args.coil_model, seed=args.seed)
    case.voxel_size_mm = voxel
    case.attrs["object"] = what
    write_case(args.out, case)
    print(f"case: {args.out} ({case.kind}, kspace {case.kspace.shape}, {case.nshot} shots, object: {what})")
    return 0


# --------------------------------------------------------------------------------------------
# correct


def _add_correct(sub: argparse._SubParsersAction) -> None:
    from .batch import add_motion_model

    p = sub.add_parser(
        "correct",
        help="correct rigid motion in multi-shot multi-coil k-space (case .h5, fastMRI, ISMRMRD)",
        description=(
            "Estimate per-shot rigid motion (and coil maps) and reconstruct the corrected image. "
            "Writes recon.h5, image.nii.gz, motion.csv, report.json and report.png to --out."
        ),
    )
    p.add_argument("input", type=Path, help="case .h5 (CONVENTIONS.md), fastMRI or ISMRMRD file")
    p.add_argument("--out", type=Path, required=True, metavar="OUT_DIR")
    p.add_argument("--method", choices=("none", "aligned-sense", "jsmoco", "autofocus"), default="aligned-sense",
                   help="jsmoco: diffusion-prior joint estimation (mrideblur.mri.jsmoco); autofocus: NIfTI "
                        "magnitude images (see --motion-model); the others need k-space")
    p.add_argument("--nsamples", type=int, default=1,
                   help="jsmoco: posterior samples; > 1 also writes uncertainty.nii.gz")
    p.add_argument("--sampler", choices=("fast", "pc"), default="fast",
                   help="jsmoco: DiffPIR (one network call per step) or predictor-corrector")
    p.add_argument("--prior", type=Path, default=None,
                   help="jsmoco: prior checkpoint or weights (default: the weights shipped with mrideblur)")
    p.add_argument("--init", choices=("aligned-sense", "espirit"), default="aligned-sense",
                   help="jsmoco: start from aligned-SENSE, or from zero motion and ESPIRiT maps")
    p.add_argument("--coils", choices=("espirit", "joint"), default="joint",
                   help="coil maps: ESPIRiT on the corrupted data, or re-estimated with the motion")
    p.add_argument("--max-iter", type=int, default=None,
                   help="L-BFGS iterations at the coarsest level (default: the method's own, 150 for k-space "
                        "methods); NIfTI step autofocus: iterations of each inner solve (default 80)")
    p.add_argument("--shots", type=int, default=16, help="fastMRI/ISMRMRD: number of shots to assume")
    p.add_argument("--ordering", choices=("interleaved", "sequential"), default="interleaved",
                   help="fastMRI: shot ordering to assume (the file does not store it)")
    p.add_argument("--pe-axis", type=int, default=None, help="NIfTI: array axis of the phase encoding (required)")
    p.add_argument("--slice-axis", type=int, default=2, help="NIfTI volumes: axis across the 2D slices (default 2)")
    add_motion_model(p)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="CPU threads for torch and FFTs (default: all cores; 1 is fastest on a busy machine)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_correct)


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {n}")
    return n


def _is_case_file(path: Path) -> bool:
    """True for an mrideblur case (it stores its shot map); other files get the reader options."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "shot_index" in f
    except OSError:
        return True  # not HDF5: load_case reports it with the file name


def cmd_correct(args: argparse.Namespace) -> int:
    """Run ``mrideblur correct``: read, call :func:`mrideblur.mri.correct`, write every output."""
    from .io.case import load_case
    from .io.results import write_correction_outputs
    from .metrics import psnr
    from .mri.correct import correct
    from .plots import correction_figure
    from .threads import set_threads

    set_threads(args.threads)
    if is_nifti(args.input) or args.method == "autofocus":  # images without raw data: mrideblur.batch
        from .batch import correct_nifti_command

        return correct_nifti_command(args)
    if getattr(args, "motion_csv", None):
        raise ValueError(f"--motion-csv: a known motion table is for NIfTI magnitude images (--method autofocus); "
                         f"{args.input} is k-space, whose motion is estimated")
    path = Path(args.input)
    if not path.is_file():
        raise ValueError(f"{path}: no such file; expected a case .h5, fastMRI or ISMRMRD file")
    case = load_case(path) if _is_case_file(path) else load_case(path, shots=args.shots, ordering=args.ordering)
    t0 = time.perf_counter()
    with ProgressBar(enabled=not args.quiet, desc="correct") as bar:
        result = correct(case.kspace, case.shot_index, method=args.method, sens=case.sens, coils=args.coils,
                         max_iter=150 if args.max_iter is None else args.max_iter, device=args.device,
                         seed=args.seed, progress=bar, stack=case.kind == "stack", nsamples=args.nsamples, sampler=args.sampler,
                         prior=args.prior, init=args.init)
        uncorrected = result.image if args.method == "none" else correct(
            case.kspace, case.shot_index, method="none", sens=result.sens, stack=case.kind == "stack").image
    report = dict(result.report)
    report["input"] = str(path)
    report["seconds_total"] = time.perf_counter() - t0
    truth = case.truth.get("image")
    if truth is not None and truth.shape == result.image.shape:
        report["psnr_db"] = {"uncorrected": psnr(uncorrected, truth, fit_scale=True),
                             "corrected": psnr(result.image, truth, fit_scale=True)}
        tm = case.truth.get("motion")
        if tm is not None and tm.shape == result.motion.shape:
            nrot = 1 if tm.shape[-1] == 3 else 3
            err = result.motion - tm
            report["motion_rmse"] = {"rotation_deg": float(np.sqrt(np.mean(err[..., :nrot] ** 2))),
                                     "translation_px": float(np.sqrt(np.mean(err[..., nrot:] ** 2)))}
    fig = correction_figure(uncorrected, result.image, result.motion, report["residual_per_shot"],
                            truth_image=truth, truth_motion=case.truth.get("motion"),
                            title=f"{path.name}: {args.method}" + (f" ({args.coils} coils)" if args.method != "none" else ""),
                            uncertainty=result.uncertainty)
    written = write_correction_outputs(args.out, result.image, result.motion, result.sens, report,
                                       voxel_size_mm=case.voxel_size_mm, figure=fig, uncertainty=result.uncertainty)
    for name, p in written.items():
        print(f"{name}: {p}")
    if "psnr_db" in report:
        print(f"PSNR vs truth: uncorrected {report['psnr_db']['uncorrected']:.2f} dB, "
              f"corrected {report['psnr_db']['corrected']:.2f} dB")
    return 0


# --------------------------------------------------------------------------------------------
# entry point

from .prior.cli import add_parser as _add_train_prior  # noqa: E402  (mrideblur train-prior)

#: Every subcommand's parser builder, in the order ``--help`` lists them.
def _add_batch(sub: argparse._SubParsersAction) -> None:
    """``mrideblur batch`` (whole folders on Dask) lives in :mod:`mrideblur.batch`."""
    from .batch import add_parser

    add_parser(sub)


COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (_add_deblur, _add_simulate, _add_correct, _add_batch, _add_train_prior, _add_demo)


def build_parser() -> argparse.ArgumentParser:
    """The ``mrideblur`` argument parser with every subcommand of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="mrideblur",
        description="Remove blur from images and rigid motion from multi-coil MRI.",
    )
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
        return int(args.func(args))
    except ValueError as exc:
        print(f"mrideblur: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"mrideblur: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mrideblur: interrupted", file=sys.stderr)
        return 130


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":  # python -m mrideblur.cli
    sys.exit(main())
