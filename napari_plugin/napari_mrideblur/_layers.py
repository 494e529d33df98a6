"""From mrideblur values (cases, results) to napari layer data tuples ``(data, kwargs, "image")``.

Only display arithmetic lives here (coil combination by root-sum-of-squares, log-magnitude,
scales); every estimate comes from :mod:`mrideblur`.

Keys this plugin puts in ``layer.metadata``:

``"mrideblur_case"``
    the :class:`mrideblur.io.case.Case` an image was made from (the correction widget's input);
``"mrideblur_nifti"``
    ``{"affine", "header", "shape"}`` of the NIfTI file a layer was read from (the writer keeps
    them); ``shape`` is the file's array shape, the layer holds its transpose;
``"voxel_size_mm"``
    the case's voxel size in array axis order, when known.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mrideblur.io.case import Case
from mrideblur.physics.fourier import ifft

__all__ = [
    "CASE_KEY",
    "NIFTI_KEY",
    "LayerData",
    "case_layers",
    "case_scale",
    "coil_combine",
    "contrast",
    "kspace_log_magnitude",
]

CASE_KEY = "mrideblur_case"
NIFTI_KEY = "mrideblur_nifti"
LayerData = tuple[np.ndarray, dict[str, Any], str]


def case_scale(case: Case) -> tuple[float, ...]:
    """Layer scale (mm per pixel, array axis order) of the images of a case.

    Parameters
    ----------
    case : Case

    Returns
    -------
    tuple of float
        ``(dy, dx)`` for a 2D case, ``(dz, dy, dx)`` for a stack or a 3D volume; 1 mm where
        the case does not know its voxel size (a stack's slice spacing without ``dz``).
    """
    nd = 3 if case.kind in ("stack", "3d") else 2
    vs = case.voxel_size_mm
    if vs is None:
        return (1.0,) * nd
    vs = tuple(float(v) for v in vs)
    if nd == 2:
        return vs[-2:]
    return vs if len(vs) == 3 else (1.0, *vs[-2:])


def _image_ndim(case: Case) -> int:
    return 3 if case.kind == "3d" else 2


def _coil_axis(case: Case) -> int:
    return 1 if case.kind == "stack" else 0


def coil_combine(case: Case) -> np.ndarray:
    """Uncorrected coil-combined magnitude image: root-sum-of-squares of the coil images.

    Parameters
    ----------
    case : Case
        k-space ``(coils, ky, kx)``, ``(slices, coils, ky, kx)`` or ``(coils, kz, ky, kx)``.

    Returns
    -------
    float32 ndarray ``(ny, nx)``, ``(slices, ny, nx)`` or ``(nz, ny, nx)``
    """
    coil_images = ifft(case.kspace, _image_ndim(case))
    return np.sqrt(np.sum(np.abs(coil_images) ** 2, axis=_coil_axis(case))).astype(np.float32)


def kspace_log_magnitude(case: Case) -> np.ndarray:
    """``log(1 + m / (1e-4 max m))`` of the coil root-sum-of-squares ``m`` of ``|kspace|``.

    Returns
    -------
    float32 ndarray shaped like :func:`coil_combine`'s image (k-space grid).
    """
    m = np.sqrt(np.sum(np.abs(case.kspace) ** 2, axis=_coil_axis(case)))
    peak = float(m.max()) or 1.0
    return np.log1p(m / (1e-4 * peak)).astype(np.float32)


def contrast(image: np.ndarray, symmetric: bool = False) -> tuple[float, float]:
    """Display range: ``(0, 99.5th percentile)`` of a magnitude image, or ``(-a, a)`` with ``a``
    the 99.5th percentile of ``|image|`` when ``symmetric``."""
    a = np.asarray(image, dtype=np.float64)
    if symmetric:
        top = float(np.percentile(np.abs(a), 99.5)) or 1.0
        return (-top, top)
    top = float(np.percentile(a, 99.5))
    low = min(0.0, float(a.min()))
    return (low, top if top > low else low + 1.0)


def case_layers(case: Case, name: str) -> list[LayerData]:
    """The layers of a case: the uncorrected image, k-space and, when known, the truth.

    Parameters
    ----------
    case : Case
    name : str
        Name of the main layer; the others are named after it.

    Returns
    -------
    list of (data, kwargs, "image")
        ``name``: the uncorrected coil-combined image (RSS), scale in mm, the case in
        ``metadata["mrideblur_case"]``; ``"{name} k-space (log)"``: k-space log-magnitude
        (hidden); ``"{name} truth"``: ``|truth/image|`` of a simulated case (hidden);
        ``"{name} reference RSS"``: a fastMRI file's own reconstruction (hidden, centred on the
        image grid).
    """
    scale = case_scale(case)
    image = coil_combine(case)
    meta: dict[str, Any] = {CASE_KEY: case, "voxel_size_mm": case.voxel_size_mm}
    if case.source is not None:
        meta["source"] = str(case.source)
    if "assumed" in case.attrs:
        meta["assumed"] = str(case.attrs["assumed"])
    layers: list[LayerData] = [
        (image, {"name": name, "scale": scale, "colormap": "gray", "contrast_limits": contrast(image),
                 "metadata": meta}, "image"),
    ]
    klog = kspace_log_magnitude(case)
    layers.append((klog, {"name": f"{name} k-space (log)", "scale": scale, "colormap": "magma", "visible": False,
                          "contrast_limits": (0.0, float(klog.max()) or 1.0)}, "image"))
    truth = case.truth.get("image")
    if truth is not None and truth.shape == image.shape:
        t = np.abs(truth).astype(np.float32)
        layers.append((t, {"name": f"{name} truth", "scale": scale, "colormap": "gray", "visible": False,
                           "contrast_limits": contrast(t)}, "image"))
    ref = case.truth.get("reference_rss")
    if ref is not None and ref.ndim == image.ndim:
        r = np.abs(ref).astype(np.float32)
        translate = tuple(((n - m) // 2) * s for n, m, s in zip(image.shape, r.shape, scale))
        layers.append((r, {"name": f"{name} reference RSS", "scale": scale, "translate": translate,
                           "colormap": "gray", "visible": False, "contrast_limits": contrast(r)}, "image"))
    return layers
