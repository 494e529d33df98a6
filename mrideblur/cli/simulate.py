"""``mrideblur simulate``: build an object (a file or built-in anatomy), call
:func:`mrideblur.mri.simulate` and write the motion-corrupted scan as a case ``.h5``."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..io import is_nifti, read_image, read_nifti
from ..io.shot_order import ORDERINGS
from ..shell import add_command

__all__ = ["BUILTIN_ANATOMY", "add_parser", "cmd_simulate"]

BUILTIN_ANATOMY = ("mni", "mni-coronal", "mni-sagittal", "mni-3d", "shepp", "shepp-3d")

def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``mrideblur simulate``."""
    p = add_command(sub, "simulate", cmd_simulate,
                    "simulate a motion-corrupted multi-coil, multi-shot scan and write it as a case .h5")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("input", nargs="?", type=Path, help="image or NIfTI file")
    src.add_argument("--builtin", choices=BUILTIN_ANATOMY, help="built-in anatomy instead of a file")
    p.add_argument("--out", type=Path, required=True, metavar="CASE.h5", help="output case file")
    p.add_argument("--size", type=int, default=None, help="resample 2D built-in anatomy to SIZE x SIZE (default 192; 3D: 64)")
    p.add_argument("--axis", type=int, default=2, help="NIfTI: slice axis of the file's array (default 2)")
    p.add_argument("--position", type=float, default=0.55, help="NIfTI/built-in: slice position as a fraction (default 0.55)")
    p.add_argument("--volume", action="store_true", help="NIfTI: simulate the whole 3D volume (6-DOF motion)")
    p.add_argument("--coils", type=int, default=8, help="receive coils (channels) of the simulated array")
    p.add_argument("--shots", type=int, default=16, help="shots (segments); each acquires its own phase-encode lines")
    p.add_argument("--ordering", choices=ORDERINGS, default="interleaved",
                   help="which lines each shot acquires: every shots-th line, contiguous blocks, rings from the "
                        "centre out, a (kz, ky) checkerboard (3D), or at random")
    p.add_argument("--accel", type=int, default=1, help="acceleration R outside the ACS lines")
    p.add_argument("--acs", type=int, default=24, help="fully sampled centre lines")
    p.add_argument("--motion", choices=("random", "step", "drift", "periodic", "none"), default="random",
                   help="motion over the shots: independent random poses, one jump, a slow drift, a periodic "
                        "nod, or none (the motion-free reference)")
    p.add_argument("--max-rot", type=float, default=3.0, help="largest rotation, degrees")
    p.add_argument("--max-trans", type=float, default=3.0, help="largest translation, pixels")
    p.add_argument("--noise", type=float, default=0.01, help="fraction of the brightest coil-image pixel")
    p.add_argument("--coil-model", choices=("birdcage", "loop"), default="birdcage",
                   help="coil sensitivities: smooth birdcage modes, or surface loops (Biot-Savart) with winding phase")
    p.add_argument("--seed", type=int, default=0, help="seed of the motion, the noise and the coil phases")


def _simulation_object(args: argparse.Namespace) -> tuple[np.ndarray, tuple[float, ...] | None, str]:
    """The image or volume to simulate, its voxel size (mm) if known, and a description."""
    from ..io.anatomy import mni_slice, mni_volume, shepp_logan

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
    """Make a case file (docs/conventions.md) from an image (PNG, TIFF, .npy), a NIfTI volume (one slice
    along --axis, or the whole volume with --volume) or built-in anatomy (the MNI152 T1 template
    shipped in nilearn's wheel, or Shepp-Logan). The object is moved on a 2x finer grid and k-space
    is cropped, so estimators cannot win by sharing the simulator's interpolation. Ground truth is
    stored under truth/."""
    obj, voxel, what = _simulation_object(args)  # a bad input fails here, before the simulator loads
    from ..io.case import write_case
    from ..mri import simulate

    case = simulate(obj, ncoil=args.coils, nshot=args.shots, ordering=args.ordering, accel=args.accel,
                    acs=args.acs, motion=args.motion, max_rot=args.max_rot, max_trans=args.max_trans,
                    noise=args.noise, coil_model=args.coil_model, seed=args.seed)
    case.voxel_size_mm = voxel
    case.attrs["object"] = what
    write_case(args.out, case)
    print(f"case: {args.out} ({case.kind}, kspace {case.kspace.shape}, {case.nshot} shots, object: {what})")
    return 0
