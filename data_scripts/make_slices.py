"""Build 2D complex training/evaluation slices for the diffusion prior.

Three sources:

- ``--source mni``: every slice of the MNI152 T1 template (:func:`mrideblur.io.anatomy.mni_volume`,
  1 mm) in the three planes (axial, coronal, sagittal) that holds enough brain (at least
  ``--min-brain`` of the native slice above ``--brain-level``), zero-padded to a square and
  resampled to ``--size`` (:func:`mrideblur.io.anatomy.mni_slice`). ``--augment N`` adds ``N``
  augmented copies of every slice (:func:`augment`: random flips, a small rotation, an elastic
  deformation, a gamma and a smooth intensity shading, and a smooth random background phase that
  makes the slice complex); the original, real slice is kept as well.
- ``--source mixture``: the diffusion prior's training mixture (:mod:`mrideblur.prior.mixture`):
  MNI152, Colin27 and INIA19 slices of the three planes and synthetic contrasts drawn from the
  MNI152 tissue maps (random intensity per tissue, a head around the brain, lesions, texture,
  bias field), about ``--per-source`` of each, outside the held-out band (``--split train``);
  ``--sources`` leaves one out. Debian's ``mricron-data`` (Colin27, INIA19) is installed with
  apt-get when missing (``--no-install`` refuses). ``mrideblur train-prior --sources ...`` builds
  the same slices on the fly and needs no file.
- ``--source fastmri --data DIR``: the central ``--slices-per-volume`` slices of every
  multi-coil ``.h5`` file in ``DIR`` (fastMRI layout, read by :func:`mrideblur.io.read_fastmri`
  with the 2x oversampled readout cropped), coil-combined by root-sum-of-squares of the centred
  inverse FFT, or -- ``--complex`` -- by ESPIRiT maps (:func:`mrideblur.mri.estimate_sens`):
  ``x = sum_c conj(S_c) F^-1 y_c``, the complex SENSE combination, which keeps the image phase
  (the RSS image is magnitude only and carries the coils' noise bias). Images stay in the
  project's layout (rows = phase encoding, the transpose of fastMRI's own display), are
  zero-padded to a square and resampled to ``--size``. Use fully sampled files (fastMRI
  train/val); zero-filled undersampled test files would give aliased images. A file that cannot
  be read is skipped with a one-line warning naming it.

Every slice is complex64 ``(size, size)`` scaled so its largest magnitude is 1.

Output (``--out``): a ``.npz`` file with ``images`` ``(n, size, size)`` complex64, ``source``
(``"mni"`` / ``"fastmri"``), ``origin`` (plane name or file name per slice), ``index`` (slice
index in its volume) and ``copy`` (0 = original, ``1..N`` = augmented copy); or, for any other
``--out`` (a folder), one ``NNNNNN.npy`` per slice plus ``index.csv`` with the same columns.
Every file is written atomically (:mod:`mrideblur.io.atomic`).

Run::

    python data_scripts/make_slices.py --source mni --augment 4 --out mni128.npz
    python data_scripts/make_slices.py --source mixture --sources mni152 inia19 synthetic --out loso_colin27.npz
    python data_scripts/make_slices.py --source fastmri --data /data/multicoil_val --complex \\
        --slices-per-volume 6 --out fastmri128/
"""

from __future__ import annotations

import argparse
import csv
import sys
import warnings
from pathlib import Path
from dataclasses import dataclass

import numpy as np
import skimage.transform

from mrideblur.io.anatomy import PLANES, mni_slice, mni_volume
# the augmentation and slice selection live in the package so that `mrideblur train-prior`
# works from an installed package; re-exported here under their old names
from mrideblur.prior.data import (_smooth_field, augment, brain_fraction, mni_candidates,  # noqa: F401
                                  normalize, smooth_phase)
from mrideblur.io.atomic import atomic_open, atomic_write

__all__ = [
    "SliceSet",
    "augment",
    "brain_fraction",
    "central_slices",
    "combine_coils",
    "fastmri_slices",
    "main",
    "mni_candidates",
    "mixture_slices",
    "mni_slices",
    "normalize",
    "resize_square",
    "smooth_phase",
    "write_slices",
]

SOURCES = ("mni", "fastmri", "mixture")


@dataclass(frozen=True)
class SliceSet:
    """A set of 2D slices and where each came from.

    Attributes
    ----------
    images : (n, size, size) complex64
        Slices, each scaled to a largest magnitude of 1.
    origin : (n,) str
        Plane (``"axial"``, ``"coronal"``, ``"sagittal"``) for MNI slices, file name for fastMRI.
    index : (n,) int
        Slice index along the normal axis of the volume / in the fastMRI file.
    copy : (n,) int
        0 for the original slice, ``1..N`` for its augmented copies.
    """

    images: np.ndarray
    origin: np.ndarray
    index: np.ndarray
    copy: np.ndarray

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _empty(size: int) -> SliceSet:
    return SliceSet(np.zeros((0, size, size), np.complex64), np.zeros(0, dtype="<U1"),
                    np.zeros(0, np.int64), np.zeros(0, np.int64))


def resize_square(x: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad a 2D image to a square (centred) and resample it to ``size x size``.

    Cubic splines with scikit-image's anti-aliasing when shrinking; a complex image is resampled
    as its real and imaginary parts (the resampling is linear).
    """
    x = np.asarray(x)
    n = max(x.shape)
    pad = [((n - s) // 2, n - s - (n - s) // 2) for s in x.shape]
    x = np.pad(x, pad)
    if x.shape == (size, size):
        return x

    def rs(a: np.ndarray) -> np.ndarray:
        return skimage.transform.resize(a, (size, size), order=3, anti_aliasing=n > size, mode="constant")

    if np.iscomplexobj(x):
        return rs(x.real) + 1j * rs(x.imag)
    return rs(x)


def _select(n_total: int, n_wanted: int | None) -> np.ndarray:
    """Indices of ``n_wanted`` items spread evenly over ``n_total`` (all when ``None``)."""
    if n_wanted is None or n_wanted >= n_total:
        return np.arange(n_total)
    return np.unique(np.round(np.linspace(0, n_total - 1, max(n_wanted, 0))).astype(int))


def _progress(iterable, total: int, desc: str, show: bool):
    if not show:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="slice", file=sys.stderr)


def mni_slices(size: int = 128, augment_copies: int = 0, seed: int = 0, min_brain: float = 0.15,
               level: float = 0.1, step: int = 1, planes: tuple[str, ...] = PLANES,
               max_slices: int | None = None, progress: bool = False) -> SliceSet:
    """Slices of the MNI152 T1 template, optionally augmented.

    Parameters
    ----------
    size : int
        Output side length (the slice is zero-padded to a square, then resampled).
    augment_copies : int
        Augmented copies per slice (:func:`augment`), kept next to the original.
    seed : int
        Seed of the augmentation; copy ``c`` of slice ``(plane, i)`` uses the generator
        ``default_rng([seed, plane number, i, c])``, so a slice's copies do not depend on which
        other slices are selected.
    min_brain, level, step, planes
        Slice selection (:func:`mni_candidates`).
    max_slices : int, optional
        At most this many output slices (originals and copies together); the base slices are
        then spread evenly over the candidate list, so every plane stays represented.
    progress : bool
        Show a tqdm progress bar on stderr.

    Returns
    -------
    SliceSet
        ``images`` ``(n, size, size)`` complex64 (originals are real-valued), ``origin`` the
        plane, ``index`` the slice index along the plane's normal axis of :func:`mni_volume`.
    """
    if size < 8:
        raise ValueError(f"size: expected >= 8, got {size}")
    if augment_copies < 0:
        raise ValueError(f"augment: expected >= 0 copies, got {augment_copies}")
    if max_slices is not None and max_slices < 1:
        raise ValueError(f"max_slices: expected >= 1, got {max_slices}")
    cands = mni_candidates(min_brain, level, step, planes)
    if not cands:
        raise ValueError(f"MNI152: no slice has {min_brain:.0%} of its pixels above {level}")
    per = 1 + augment_copies
    want = None if max_slices is None else -(-max_slices // per)
    cands = [cands[i] for i in _select(len(cands), want)]
    vol, _ = mni_volume()
    images, origin, index, copy = [], [], [], []
    for plane, i in _progress(cands, len(cands), "MNI152", progress):
        base = mni_slice(plane, i / (vol.shape[PLANES.index(plane)] - 1), size=size)
        images.append(normalize(base))
        origin.append(plane)
        index.append(i)
        copy.append(0)
        for c in range(1, per):
            rng = np.random.default_rng([seed, PLANES.index(plane), i, c])
            images.append(augment(base, rng))
            origin.append(plane)
            index.append(i)
            copy.append(c)
    n = len(images) if max_slices is None else min(len(images), max_slices)
    return SliceSet(np.stack(images[:n]), np.array(origin[:n]), np.array(index[:n], np.int64),
                    np.array(copy[:n], np.int64))


def _num_slices(path: Path) -> int:
    """Number of slices of a fastMRI file's ``kspace`` (a ValueError naming the file otherwise)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            ds = f.get("kspace")
            if not isinstance(ds, h5py.Dataset):
                raise ValueError(f"{path}: dataset 'kspace': missing; expected a fastMRI multi-coil file")
            if ds.ndim != 4:
                raise ValueError(f"{path}: dataset 'kspace': expected (slices, coils, readout, ky), got shape {ds.shape}")
            return int(ds.shape[0])
    except OSError as exc:
        raise ValueError(f"{path}: not a readable HDF5 file ({str(exc).splitlines()[0]})") from None


def central_slices(n: int, count: int) -> list[int]:
    """The ``count`` central indices of ``range(n)`` (all of them when ``count >= n``)."""
    count = min(max(int(count), 1), n)
    start = n // 2 - count // 2
    return list(range(start, start + count))


def _calib_width(acquired: np.ndarray, limit: int) -> int:
    """Width of the contiguous block of acquired lines around the centre line, at most ``limit``."""
    c = len(acquired) // 2
    w = 0
    while w < limit and c - (w + 1) // 2 >= 0 and c + w // 2 < len(acquired) \
            and acquired[c - (w + 1) // 2] and acquired[c + w // 2]:
        w += 1
    return w


def combine_coils(kspace: np.ndarray, acquired: np.ndarray | None = None, complex_combine: bool = False,
                  calib_width: int = 24) -> np.ndarray:
    """One coil-combined image from one slice of multi-coil k-space ``(coils, ky, kx)``.

    ``complex_combine=False``: root-sum-of-squares ``sqrt(sum_c |F^-1 y_c|^2)`` (real).
    ``complex_combine=True``: ``sum_c conj(S_c) F^-1 y_c`` with ESPIRiT maps ``S`` normalised to
    ``sum_c |S_c|^2 = 1`` (zero outside the object), calibrated on the central
    ``min(calib_width, fully sampled centre, kx)`` lines.
    """
    from mrideblur.mri import estimate_sens
    from mrideblur.physics.fourier import ifft

    img = ifft(np.asarray(kspace), 2)
    if not complex_combine:
        return np.sqrt(np.sum(np.abs(img) ** 2, axis=0))
    if acquired is None:
        acquired = np.any(kspace != 0, axis=(0, 2))
    width = min(_calib_width(np.asarray(acquired, bool), calib_width), kspace.shape[-1])
    if width < 8:
        raise ValueError(f"only {width} fully sampled centre lines: too few to calibrate ESPIRiT maps")
    sens = estimate_sens(np.asarray(kspace, np.complex64), "espirit", calib_width=width,
                         kernel_width=min(6, width // 2))
    return np.sum(np.conj(sens) * img, axis=0)


def fastmri_slices(data_dir: str | Path, size: int = 128, slices_per_volume: int = 6,
                   complex_combine: bool = False, max_slices: int | None = None,
                   progress: bool = False) -> SliceSet:
    """Coil-combined central slices of every fastMRI multi-coil ``.h5`` file in a folder.

    Parameters
    ----------
    data_dir : str or Path
        Folder with ``*.h5`` files (``kspace`` ``(slices, coils, readout, ky)``, readout
        oversampled 2x). Files are read in name order.
    size : int
        Output side length (zero-padded to a square, then resampled).
    slices_per_volume : int
        Central slices taken from each file.
    complex_combine : bool
        ESPIRiT complex combination instead of root-sum-of-squares (:func:`combine_coils`).
    max_slices : int, optional
        Stop once this many slices are collected.
    progress : bool
        tqdm progress bar over the files on stderr.

    Returns
    -------
    SliceSet
        ``origin`` the file name, ``index`` the slice index in the file, ``copy`` 0.

    Raises
    ------
    ValueError
        ``data_dir`` is not a folder or has no ``.h5`` file, or no file gave a slice.

    Warns
    -----
    UserWarning
        For each file (or slice) that could not be read or combined: one line naming it; the
        file is skipped.
    """
    from mrideblur.io import read_fastmri

    d = Path(data_dir)
    if not d.is_dir():
        raise ValueError(f"{d}: not a folder (expected a folder of fastMRI .h5 files)")
    files = sorted(p for p in d.iterdir() if p.suffix.lower() == ".h5" and p.is_file())
    if not files:
        raise ValueError(f"{d}: no .h5 files (expected fastMRI multi-coil files)")
    if size < 8:
        raise ValueError(f"size: expected >= 8, got {size}")
    if slices_per_volume < 1:
        raise ValueError(f"slices_per_volume: expected >= 1, got {slices_per_volume}")
    images, origin, index = [], [], []
    for path in _progress(files, len(files), "fastMRI", progress):
        if max_slices is not None and len(images) >= max_slices:
            break
        try:
            which = central_slices(_num_slices(path), slices_per_volume)
            case = read_fastmri(path, shots=1, crop_readout=True, slices=which)
        except (ValueError, OSError, KeyError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if str(path) not in msg:
                msg = f"{path}: {msg}"
            warnings.warn(f"{msg} -- file skipped", stacklevel=2)
            continue
        acquired = case.shot_index >= 0
        for j, s in enumerate(which):
            try:
                img = combine_coils(case.kspace[j], acquired, complex_combine)
                images.append(normalize(resize_square(img, size)))
            except ValueError as exc:
                warnings.warn(f"{path}: slice {s}: {exc} -- slice skipped", stacklevel=2)
                continue
            origin.append(path.name)
            index.append(s)
    if not images:
        raise ValueError(f"{d}: no slice could be read from its {len(files)} .h5 file(s)")
    n = len(images) if max_slices is None else min(len(images), max_slices)
    return SliceSet(np.stack(images[:n]), np.array(origin[:n]), np.array(index[:n], np.int64),
                    np.zeros(n, np.int64))


def write_slices(out: str | Path, slices: SliceSet, source: str) -> Path:
    """Write a :class:`SliceSet` atomically.

    ``out`` ending in ``.npz``: one file with ``images``, ``origin``, ``index``, ``copy`` and
    ``source``. Anything else: a folder (created if needed) with ``000000.npy`` ... (one
    ``(size, size)`` complex64 slice each) and ``index.csv`` (``file,origin,index,copy``),
    written last so a complete ``index.csv`` means a complete folder.
    """
    out = Path(out)
    if out.suffix.lower() == ".npz":
        if not out.parent.is_dir():
            raise ValueError(f"{out}: its folder {out.parent} does not exist")

        def writer(tmp: Path) -> None:
            np.savez(tmp, images=slices.images, origin=slices.origin, index=slices.index,
                     copy=slices.copy, source=np.array(source))

        return atomic_write(out, writer)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder (give a .npz file or a folder)")
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for i, img in enumerate(slices.images):
        name = f"{i:06d}.npy"
        atomic_write(out / name, lambda tmp, a=img: np.save(tmp, a))
        names.append(name)
    with atomic_open(out / "index.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "origin", "index", "copy"])
        for name, o, i, c in zip(names, slices.origin, slices.index, slices.copy):
            w.writerow([name, o, int(i), int(c)])
    return out


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="make_slices.py",
        description="Build 2D complex training/evaluation slices (MNI152 template or fastMRI files) "
                    "for the diffusion prior; every slice complex64, max magnitude 1.",
    )
    ap.add_argument("--source", choices=SOURCES, required=True, help="where the slices come from")
    ap.add_argument("--out", required=True, help="output .npz file, or a folder for one .npy per slice")
    ap.add_argument("--size", type=int, default=128, help="side of the square output slices (default 128)")
    ap.add_argument("--max-slices", type=int, default=None, help="at most this many output slices")
    ap.add_argument("--seed", type=int, default=0, help="seed of the augmentation (default 0)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = ap.add_argument_group("mni")
    g.add_argument("--augment", type=int, default=0, metavar="N",
                   help="augmented copies per slice, kept with the original (default 0)")
    g.add_argument("--planes", nargs="+", choices=PLANES, default=list(PLANES), help="planes (default all three)")
    g.add_argument("--min-brain", type=float, default=0.15,
                   help="skip slices with less than this fraction above --brain-level (default 0.15)")
    g.add_argument("--brain-level", type=float, default=0.1, help="intensity counted as brain (default 0.1)")
    g.add_argument("--step", type=int, default=1, help="take every STEP-th slice (default 1)")
    g = ap.add_argument_group("mixture")
    g.add_argument("--sources", nargs="+", default=None, metavar="SOURCE",
                   help="mixture sources (default all: mni152 colin27 inia19 synthetic); leave one out for a "
                        "held-out-source training set")
    g.add_argument("--per-source", type=int, default=300, help="about this many slices per source (default 300)")
    g.add_argument("--split", choices=("train", "test", "all"), default="train",
                   help="held-out band of every source: outside (train, default), inside (test) or both")
    g.add_argument("--no-install", action="store_true",
                   help="do not apt-get install mricron-data (Colin27, INIA19) when it is missing")
    g = ap.add_argument_group("fastmri")
    g.add_argument("--data", help="folder of fastMRI multi-coil .h5 files")
    g.add_argument("--slices-per-volume", type=int, default=6, help="central slices per file (default 6)")
    g.add_argument("--complex", action="store_true",
                   help="complex coil combination with ESPIRiT maps instead of root-sum-of-squares")
    return ap


def _ensure_mricron(install: bool) -> None:
    """Install Debian's mricron-data (Colin27, INIA19; 16 MB) when missing and allowed."""
    import os
    import shutil
    import subprocess

    from mrideblur.io.anatomy import TEMPLATES

    if Path("/usr/share/mricron/templates", TEMPLATES["colin27"]).is_file():
        return
    if not install or shutil.which("apt-get") is None:
        raise ValueError("/usr/share/mricron/templates: missing; Colin27 and INIA19 come with Debian's "
                         "mricron-data (apt-get install mricron-data), or leave them out with --sources")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    print("installing mricron-data (Colin27, INIA19) with apt-get", file=sys.stderr)
    for cmd in (sudo + ["apt-get", "update", "-qq"], sudo + ["apt-get", "install", "-y", "-qq", "mricron-data"]):
        if subprocess.run(cmd, stdin=subprocess.DEVNULL).returncode != 0:
            raise ValueError(f"{' '.join(cmd)}: failed; install mricron-data by hand or leave colin27 / inia19 out")


def mixture_slices(size: int = 128, sources: list[str] | None = None, per_source: int = 300,
                   split: str = "train", seed: int = 0, install: bool = True) -> SliceSet:
    """The prior's training mixture (:mod:`mrideblur.prior.mixture`) as magnitude slices.

    ``origin`` is the source name, ``index`` the slice's number within its source, ``copy`` 0.
    The same slices ``mrideblur train-prior --sources ...`` builds on the fly, at one scale.
    """
    from mrideblur.prior.mixture import MIXTURE_SOURCES, mixture_base_slices

    sources = list(MIXTURE_SOURCES if not sources else sources)
    bad = [s for s in sources if s not in MIXTURE_SOURCES]
    if bad:
        raise ValueError(f"--sources: {bad} not among {MIXTURE_SOURCES}")
    if {"colin27", "inia19"} & set(sources):
        _ensure_mricron(install)
    images, origin, index = [], [], []
    for src in sources:
        sl = mixture_base_slices(size, (1.0,), (src,), split=split, target_per_source=per_source, seed=seed)
        images += [normalize(x) for x in sl]
        origin += [src] * len(sl)
        index += list(range(len(sl)))
    return SliceSet(np.stack(images), np.array(origin), np.array(index, np.int64), np.zeros(len(images), np.int64))


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> str:
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status (0 ok, 1 error, 2 usage)."""
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.source == "fastmri" and not args.data:
        ap.error("--source fastmri needs --data DIR")
    previous, warnings.formatwarning = warnings.formatwarning, _one_line_warning
    try:
        if args.source == "mixture":
            sl = mixture_slices(args.size, args.sources, args.per_source, args.split, args.seed,
                                install=not args.no_install)
        elif args.source == "mni":
            sl = mni_slices(args.size, args.augment, args.seed, args.min_brain, args.brain_level, args.step,
                            tuple(args.planes), args.max_slices, progress=not args.no_progress)
        else:
            sl = fastmri_slices(args.data, args.size, args.slices_per_volume, args.complex, args.max_slices,
                                progress=not args.no_progress)
        out = write_slices(args.out, sl, args.source)
    except ValueError as exc:
        print(f"make_slices.py: error: {exc}", file=sys.stderr)
        return 1
    finally:
        warnings.formatwarning = previous
    print(f"wrote {len(sl)} slices {sl.images.shape[1:]} complex64 to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
