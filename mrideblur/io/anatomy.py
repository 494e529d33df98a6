"""Built-in test objects that need no download: the MNI152 T1 template, the Shepp-Logan phantom
and the photographs bundled with scikit-image; with Debian's ``mricron-data`` installed
(``apt-get install mricron-data``), also the Colin27 single-subject head (``ch2.nii.gz``, 1 mm,
scalp included) and the INIA19 macaque brain template (0.5 mm).

The MNI152 2009a symmetric T1 template (1 mm isotropic) ships inside nilearn's wheel; it is read
from the installed package's data folder with nibabel, without importing nilearn (which is
slow to import). Shepp-Logan comes from sigpy.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["mni_template_path", "mni_volume", "mni_slice", "shepp_logan", "photo", "template_slice", "template_volume", "PLANES",
           "TEMPLATES", "TISSUES", "template_array"]

PLANES = ("axial", "coronal", "sagittal")
_MNI_FILE = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


def mni_template_path() -> Path:
    """Path of the MNI152 T1 template inside the installed nilearn package."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("nilearn: not installed; it ships the MNI152 template (pip install nilearn)")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / _MNI_FILE
    if not path.is_file():
        raise ValueError(f"{path}: the MNI152 template is missing from the nilearn installation")
    return path


@lru_cache(maxsize=1)
def _mni_cached() -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    img = nib.load(str(mni_template_path()))
    data = np.asarray(img.dataobj, dtype=np.float32)  # (x, y, z) RAS, 1 mm
    vol = np.ascontiguousarray(data.transpose(2, 1, 0)[:, ::-1, :])  # (z, y, x), anterior at row 0
    vol /= max(float(vol.max()), 1e-12)
    return vol, np.asarray(img.affine)


def mni_volume() -> tuple[np.ndarray, np.ndarray]:
    """The MNI152 T1 template as ``(z, y, x)`` float32 in [0, 1] (1 mm voxels) and its affine.

    Axis order follows docs/conventions.md (``x[iz, iy, ix]``): ``z`` inferior -> superior, ``y``
    anterior -> posterior (row 0 anterior, so axial slices display nose up), ``x`` left -> right.
    The returned affine is nibabel's for the file's own (x, y, z) voxel order.
    """
    vol, aff = _mni_cached()
    return vol.copy(), aff.copy()


#: Tissue probability maps of the MNI152 2009a template (nilearn's wheel): grey matter, white
#: matter, and cerebrospinal fluid taken as the rest of the (skull-stripped) template's brain.
TISSUES = ("mni152-gm", "mni152-wm", "mni152-csf")


@lru_cache(maxsize=1)
def _tissue_cached() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import nibabel as nib

    maps = []
    for cls in ("gm", "wm"):
        path = mni_template_path().with_name(_MNI_FILE.replace("_t1_", f"_{cls}_"))
        if not path.is_file():
            raise ValueError(f"{path}: the MNI152 {cls.upper()} map is missing from the nilearn installation")
        data = np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)
        maps.append(np.clip(np.ascontiguousarray(data.transpose(2, 1, 0)[:, ::-1, :]) / 255.0, 0, 1))
    brain = _mni_cached()[0] > 0
    csf = np.clip(1.0 - maps[0] - maps[1], 0, 1) * brain
    return maps[0], maps[1], csf.astype(np.float32)


#: Volumes of Debian's mricron-data package (``/usr/share/mricron/templates``).
TEMPLATES = {"colin27": "ch2.nii.gz", "inia19": "inia19-t1-brain.nii.gz"}
_MRICRON = Path("/usr/share/mricron/templates")


@lru_cache(maxsize=2)
def _template_cached(name: str) -> np.ndarray:
    import nibabel as nib

    if name == "mni152":
        return _mni_cached()[0]
    if name in TISSUES:
        return _tissue_cached()[TISSUES.index(name)]
    if name not in TEMPLATES:
        raise ValueError(f"name: expected one of {('mni152',) + tuple(TEMPLATES) + TISSUES}, got {name!r}")
    path = _MRICRON / TEMPLATES[name]
    if not path.is_file():
        raise ValueError(f"{path}: missing; the {name} template comes with Debian's mricron-data "
                         "(apt-get install mricron-data)")
    img = nib.as_closest_canonical(nib.load(str(path)))  # RAS
    vol = np.asarray(img.dataobj, dtype=np.float32).transpose(2, 1, 0)[:, ::-1, :]
    vol = np.ascontiguousarray(vol) / max(float(vol.max()), 1e-12)
    return vol


def template_slice(name: str, plane: str = "axial", position: float = 0.55, size: int | None = None) -> np.ndarray:
    """One 2D slice of a template volume (``"mni152"``, ``"colin27"``, ``"inia19"``, or an MNI152
    tissue map of :data:`TISSUES`), float64 in [0, 1], oriented and resampled as
    :func:`mni_slice` does.

    Raises
    ------
    ValueError
        An unknown name, plane or position, or a template whose package is not installed.
    """
    return _slice(_template_cached(name), plane, position, size)


def template_array(name: str) -> np.ndarray:
    """A template volume (or tissue map) at its native grid, ``(z, y, x)`` float32 in [0, 1]
    (a copy; names as :func:`template_slice`)."""
    return _template_cached(name).copy()


def template_volume(name: str = "mni152", size: int = 64) -> np.ndarray:
    """A whole template volume (``"mni152"``, ``"colin27"``, ``"inia19"``) on a ``size^3`` grid.

    The ``(z, y, x)`` volume of :func:`mni_volume` / the mricron-data templates is zero-padded to
    a cube about its centre, smoothed against aliasing (Gaussian, sigma = half the shrink factor)
    and resampled with linear interpolation; float64 in [0, 1], 1 mm voxels scaled by the factor.

    Raises
    ------
    ValueError
        An unknown name, a size below 8, or a template whose package is not installed.
    """
    from scipy import ndimage

    if int(size) != size or size < 8:
        raise ValueError(f"size: expected an integer >= 8, got {size!r}")
    vol = _template_cached(name).astype(np.float64)
    n = max(vol.shape)
    cube = np.zeros((n, n, n))
    cube[tuple(slice((n - m) // 2, (n - m) // 2 + m) for m in vol.shape)] = vol
    f = n / size
    if f > 1:
        cube = ndimage.gaussian_filter(cube, 0.5 * f)
    out = ndimage.zoom(cube, size / n, order=1, grid_mode=True, mode="grid-constant")
    out = np.clip(out[:size, :size, :size], 0, None)
    return out / max(float(out.max()), 1e-12)


def mni_slice(plane: str = "axial", position: float = 0.55, size: int | None = None) -> np.ndarray:
    """One 2D slice of the MNI152 T1 template, float64 in [0, 1].

    Parameters
    ----------
    plane : {"axial", "coronal", "sagittal"}
    position : float
        Where along the normal axis, as a fraction of the volume (0..1).
    size : int, optional
        Resample to ``size x size`` (zero-padded to a square first, anti-aliased).

    Returns
    -------
    (ny, nx) float64 array.
    """
    return _slice(_mni_cached()[0], plane, position, size)


def _slice(vol: np.ndarray, plane: str, position: float, size: int | None) -> np.ndarray:
    if plane not in PLANES:
        raise ValueError(f"plane: expected one of {PLANES}, got {plane!r}")
    if not 0 <= position <= 1:
        raise ValueError(f"position: expected a fraction in [0, 1], got {position}")
    ax = PLANES.index(plane)
    i = int(round(position * (vol.shape[ax] - 1)))
    sl = np.take(vol, i, axis=ax).astype(np.float64)
    if ax != 0:
        sl = sl[::-1]  # coronal/sagittal: superior at the top row
    if size is not None:
        n = max(sl.shape)
        pad = [((n - s) // 2, n - s - (n - s) // 2) for s in sl.shape]
        sl = np.pad(sl, pad)
        import skimage.transform

        sl = skimage.transform.resize(sl, (size, size), anti_aliasing=True, order=3)
        sl = np.clip(sl, 0, None)
    return sl


def shepp_logan(shape: int | tuple[int, ...] = 192) -> np.ndarray:
    """The (modified) Shepp-Logan phantom from sigpy, ``(n, n)`` or a 3D shape, real float64."""
    import sigpy

    shape = (int(shape),) * 2 if np.isscalar(shape) else tuple(int(s) for s in shape)
    return np.abs(sigpy.shepp_logan(shape)).astype(np.float64)


def photo(name: str) -> np.ndarray:
    """A photograph bundled with scikit-image (``"camera"``, ``"astronaut"``, ...) as grey
    levels in [0, 1] (colour converted by luminance), float64 ``(ny, nx)``."""
    import skimage.color
    import skimage.data

    try:
        a = getattr(skimage.data, name)()
    except (AttributeError, TypeError):
        raise ValueError(f"name: {name!r} is not an image bundled with scikit-image") from None
    if a.ndim == 3:
        a = skimage.color.rgb2gray(a[..., :3])
    a = np.asarray(a, dtype=np.float64)
    return a / 255.0 if a.max() > 1 else a
