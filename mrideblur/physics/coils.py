r"""Coil sensitivities ``S``: calibration from k-space, simulated coil arrays, a smooth coil model.

Maps are complex arrays ``(coils, ny, nx)`` (or ``(coils, nz, ny, nx)``) normalised so that
``sum_c |S_c|^2 = 1`` inside the object (docs/conventions.md).

- :func:`estimate_sens`: ESPIRiT (Uecker et al. 2014) or JSENSE (Ying & Sheng 2007) from the
  fully sampled centre, through sigpy's ``EspiritCalib`` and ``JsenseRecon``;
- :func:`simulate_sens`: sigpy's birdcage model or a ring of small loop coils;
- :class:`PolynomialCoilModel`: ``S_c(r) = sum_b a_{cb} phi_b(r)`` with ``phi_b`` Legendre
  polynomials of low total degree — the few-coefficient coil model JSMoCo (Chen et al. 2025)
  fits jointly with motion — optionally times a per-coil linear-phase carrier
  (:func:`coil_carriers`) for arrays whose phase winds faster than a polynomial can follow.
"""

from __future__ import annotations

import numpy as np
import sigpy as sp
import sigpy.mri

__all__ = [
    "estimate_sens",
    "normalize_sens",
    "simulate_sens",
    "PolynomialCoilModel",
    "coil_carriers",
    "winding_carriers",
    "CARRIER_MIN_LINES",
    "SENS_METHODS",
    "COIL_MODELS",
]

SENS_METHODS = ("espirit", "jsense")
COIL_MODELS = ("birdcage", "loop")


def normalize_sens(sens: np.ndarray, threshold: float = 1e-6) -> np.ndarray:
    """Scale maps so ``sum_c |S_c|^2 = 1`` wherever it is above ``threshold`` (0 elsewhere)."""
    s = np.asarray(sens)
    rss = np.sqrt(np.sum(np.abs(s) ** 2, axis=0))
    scale = np.where(rss > threshold * max(rss.max(), 1e-30), 1.0 / np.maximum(rss, 1e-30), 0.0)
    return (s * scale).astype(np.complex64)


def estimate_sens(
    kspace: np.ndarray,
    method: str = "espirit",
    calib_width: int = 24,
    thresh: float = 0.02,
    crop: float = 0.95,
    kernel_width: int = 6,
    max_iter: int = 10,
    device: str = "cpu",
) -> np.ndarray:
    """Estimate coil maps from the fully sampled k-space centre.

    Parameters
    ----------
    kspace : (coils, ky, kx) or (coils, kz, ky, kx) complex
        Measured k-space (zeros where not acquired); its central ``calib_width`` lines on every
        phase-encode axis must be acquired.
    method : {"espirit", "jsense"}
        ESPIRiT: eigen-decomposition of the calibration matrix (``thresh`` on singular values,
        ``crop`` on eigenvalues, masks the background).  JSENSE: joint image/polynomial-coil
        fit on the calibration region (smooth maps over the whole field of view).
    calib_width : int
        Width of the calibration region in k-space lines.
    thresh, crop : float
        ESPIRiT parameters.
    kernel_width : int
        ESPIRiT kernel width; JSENSE map kernel width.
    max_iter : int
        ESPIRiT power iterations / JSENSE alternations.
    device : str
        ``"cpu"`` or ``"cuda"`` (sigpy device; needs cupy for cuda).

    Returns
    -------
    complex64 maps with ``kspace``'s shape, ``sum_c |S_c|^2 = 1`` where the maps are nonzero.
    """
    if method not in SENS_METHODS:
        raise ValueError(f"method: expected one of {SENS_METHODS}, got {method!r}")
    k = np.asarray(kspace)
    if k.ndim not in (3, 4) or k.dtype.kind != "c":
        raise ValueError(f"kspace: expected complex (coils, ky, kx) or (coils, kz, ky, kx), got {k.dtype} {k.shape}")
    if calib_width > min(k.shape[1:]):
        raise ValueError(f"calib_width: {calib_width} is larger than the k-space {k.shape[1:]}")
    dev = sp.Device(-1 if device == "cpu" else 0)
    if method == "espirit":
        maps = sigpy.mri.app.EspiritCalib(
            k, calib_width=calib_width, thresh=thresh, kernel_width=kernel_width, crop=crop,
            max_iter=max_iter, device=dev, show_pbar=False,
        ).run()
    else:
        maps = sigpy.mri.app.JsenseRecon(
            k, mps_ker_width=kernel_width + 6, ksp_calib_width=calib_width, max_iter=max_iter,
            device=dev, show_pbar=False,
        ).run()
    return normalize_sens(sp.to_device(maps, sp.cpu_device))


def simulate_sens(shape: tuple[int, ...], ncoil: int = 8, model: str = "birdcage", seed: int | None = None) -> np.ndarray:
    """Simulated coil maps on an image grid, normalised ``sum_c |S_c|^2 = 1`` everywhere.

    Parameters
    ----------
    shape : (ny, nx) or (nz, ny, nx)
    ncoil : int
    model : {"birdcage", "loop"}
        ``"birdcage"``: sigpy's ``birdcage_maps`` (coils on a cylinder of radius 1.5 field of
        views).  ``"loop"``: ``ncoil`` small circular loops evenly spaced on a ring around the
        field of view (random offset angle from ``seed``), magnitude from the on-axis
        Biot-Savart law ``(r^2 + d^2)^(-3/2)``, phase growing with distance from the coil.
    seed : int, optional
        Ring rotation of the loop model.

    Returns
    -------
    (ncoil,) + shape complex64.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"shape: expected (ny, nx) or (nz, ny, nx), got {shape}")
    if model not in COIL_MODELS:
        raise ValueError(f"model: expected one of {COIL_MODELS}, got {model!r}")
    if ncoil < 1:
        raise ValueError(f"ncoil: expected >= 1, got {ncoil}")
    if model == "birdcage":
        maps = sigpy.mri.birdcage_maps((ncoil,) + shape, r=1.5)
    else:
        rng = np.random.default_rng(seed)
        grids = np.meshgrid(*[(np.arange(n) - n // 2) / max(n, 1) for n in shape], indexing="ij")
        yy, xx = grids[-2], grids[-1]
        zz = grids[0] if len(shape) == 3 else 0.0
        off = rng.uniform(0, 2 * np.pi)
        maps = []
        for c in range(ncoil):
            a = off + 2 * np.pi * c / ncoil
            cy, cx = 0.62 * np.sin(a), 0.62 * np.cos(a)
            d2 = (yy - cy) ** 2 + (xx - cx) ** 2 + (zz**2 if len(shape) == 3 else 0.0)
            mag = (0.25**2 + d2) ** -1.5
            maps.append(mag * np.exp(1j * (a + 2.0 * np.sqrt(d2))))
        maps = np.array(maps)
    return normalize_sens(maps)


#: A coil's carrier is kept on an axis only when its map's spectrum peaks at least this many
#: k-space lines off DC (the polynomial follows one cycle of phase across the field of view
#: to ~1%: the Legendre fit of ``exp(i pi t)`` at degree 6; two or more it does not).
#: Slice estimators go down to one line in an array that winds (:func:`winding_carriers`): a
#: 96 px Colin27 slice with 8 Gaussian-blob coils of up to 3 cycles each (R = 2) went from 35.0
#: to 39.9 dB (oracle 40.8; the true maps' carriers 40.0).  One line everywhere was tried and
#: dropped (2026-12-07): the package's small-loop arrays then took one-line carriers on 2-10
#: coils and six of their eight rows of benchmarks/coils.md fell by 0.1-1.0 dB.
CARRIER_MIN_LINES = 2


def coil_carriers(sens: np.ndarray, min_lines: int = CARRIER_MIN_LINES, degree: int | None = 6) -> np.ndarray:
    """Each coil's dominant linear phase: the peak of ``|F S_c|``, in k-space lines off DC.

    A coil map whose phase winds across the object (a small loop coil, an off-centre array
    element) is ``S_c(r) = exp(2 pi i k_c . (r - N // 2) / N) s_c(r)`` with a slowly varying
    ``s_c``; its spectrum is ``s_c``'s shifted by ``k_c``.  The polynomial model then describes
    ``s_c`` and the carrier the winding.  A carrier is kept only where the polynomial of
    ``degree`` fits the map better with it than without (least squares where the map is
    nonzero): a spectrum peak off DC that is not a winding (a map shaped by the object's edge,
    noise) changes nothing.

    Parameters
    ----------
    sens : (coils, ny, nx) or (coils, nz, ny, nx) complex
        Coil maps (ESPIRiT, coil images: anything with the right phase).
    min_lines : int
        Per axis, a peak nearer to DC than this is set to 0 (no carrier on that axis).
    degree : int or None
        Degree of the polynomial model the carriers are for; None skips the fit check.

    Returns
    -------
    (coils, ndim) int64: ``(ky, kx)`` or ``(kz, ky, kx)`` cycles per field of view.
    """
    s = np.asarray(sens)
    if s.ndim not in (3, 4):
        raise ValueError(f"sens: expected (coils, ny, nx) or (coils, nz, ny, nx), got {s.shape}")
    axes = tuple(range(1, s.ndim))
    spec = np.abs(np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(s, axes=axes), axes=axes), axes=axes))
    out = np.zeros((s.shape[0], s.ndim - 1), dtype=np.int64)
    for c in range(s.shape[0]):
        peak = np.unravel_index(int(np.argmax(spec[c])), spec.shape[1:])
        k = np.array(peak) - np.array(spec.shape[1:]) // 2
        out[c] = np.where(np.abs(k) >= min_lines, k, 0)
    if degree is not None and np.any(out):
        support = (np.abs(s) > 0).any(axis=0).astype(float)
        plain = PolynomialCoilModel(s.shape[1:], degree)
        modulated = PolynomialCoilModel(s.shape[1:], degree, out)

        def misfit(model: PolynomialCoilModel) -> np.ndarray:
            r = (model.maps(model.fit(s, support)) - s) * support
            return np.sum(np.abs(r) ** 2, axis=axes)

        out[misfit(modulated) >= misfit(plain)] = 0
    return out


def winding_carriers(sens: np.ndarray, degree: int | None = 6) -> np.ndarray | None:
    """The carriers every slice estimator gives its coil model (aligned-SENSE and JSMoCo alike).

    Two-line carriers first (:func:`coil_carriers` with ``min_lines=2``); if any coil of the
    array winds that far, every coil's carrier is taken down to one line off DC (see
    :data:`CARRIER_MIN_LINES` for the measured trade).  Arrays that do not wind keep plain
    polynomial maps.

    Parameters
    ----------
    sens : (coils, ny, nx) complex
        Starting coil maps of a slice.
    degree : int or None
        Degree of the polynomial model (passed to :func:`coil_carriers`).

    Returns
    -------
    (coils, 2) int64 carriers, or None where no coil winds (and for volumes, which take none).
    """
    s = np.asarray(sens)
    if s.ndim != 3:
        return None
    carriers = coil_carriers(s, CARRIER_MIN_LINES, degree)
    if not np.any(carriers):
        return None
    return coil_carriers(s, 1, degree)


class PolynomialCoilModel:
    r"""Smooth coil maps from a few coefficients: ``S_c(r) = e_c(r) sum_b a_{cb} phi_b(r)``.

    ``phi_b`` are products of Legendre polynomials in coordinates scaled to ``[-1, 1]`` over the
    field of view, of total degree ``<= degree`` (``(d + 1)(d + 2) / 2`` functions in 2D), made
    orthonormal over the grid (or over ``mask``) so the coefficients are well conditioned.
    ``e_c`` is coil ``c``'s carrier,

    .. math:: e_c(r) = \exp\Big(2 \pi i \sum_{ax} k_{c,ax} \frac{r_{ax} - N_{ax} // 2}{N_{ax}}\Big),

    1 without ``carriers``: a map whose phase winds by ``k`` cycles across the field of view
    needs a polynomial of degree well above ``pi k`` (a Gaussian-blob coil with 3 cycles: 56%
    error at degree 6, 22% at degree 10, 1.2% at degree 6 with its carrier; measured).

    Parameters
    ----------
    shape : (ny, nx) or (nz, ny, nx)
    degree : int
        Total polynomial degree (JSMoCo uses low orders; 4-6 describes typical head coils).
    carriers : (coils, ndim) int array, optional
        Cycles per field of view of every coil's carrier along each axis (:func:`coil_carriers`);
        all zero or ``None``: no carrier.
    """

    def __init__(self, shape: tuple[int, ...], degree: int = 5, carriers: np.ndarray | None = None):
        self.shape = tuple(int(s) for s in shape)
        if len(self.shape) not in (2, 3):
            raise ValueError(f"shape: expected (ny, nx) or (nz, ny, nx), got {shape}")
        if degree < 0:
            raise ValueError(f"degree: expected >= 0, got {degree}")
        self.degree = int(degree)
        self.carriers: np.ndarray | None = None
        if carriers is not None:
            k = np.asarray(carriers)
            if k.ndim != 2 or k.shape[1] != len(self.shape) or k.dtype.kind not in "iu":
                raise ValueError(f"carriers: expected integer (coils, {len(self.shape)}), got {k.dtype} {k.shape}")
            if np.any(k != 0):
                self.carriers = k.astype(np.int64)
        coords = [np.polynomial.legendre.legvander(np.linspace(-1, 1, n), degree) for n in self.shape]
        funcs, powers_kept = [], []
        for powers in np.ndindex(*([degree + 1] * len(self.shape))):
            if sum(powers) <= degree:
                f = np.ones(self.shape)
                for ax, p in enumerate(powers):
                    sh = [1] * len(self.shape)
                    sh[ax] = self.shape[ax]
                    f = f * coords[ax][:, p].reshape(sh)
                funcs.append(f.ravel())
                powers_kept.append(powers)
        q, r = np.linalg.qr(np.array(funcs).T)  # orthonormal columns over the grid
        self.basis = q.T.reshape((-1,) + self.shape)  # (nbasis,) + shape, real
        #: The separable form of the basis: ``basis[b] = sum_k to_basis[b, k] prod_ax
        #: factors[ax][:, powers[k, ax]]`` (Legendre values per axis, ``(n_ax, degree + 1)``;
        #: ``to_basis = R^-T`` of the orthonormalisation).  Lets a coil fit transform one factor
        #: per axis instead of every basis function (:mod:`mrideblur.estimators.coil_motion_varpro`).
        self.factors = tuple(coords)
        self.powers = np.array(powers_kept, dtype=np.int64)
        self.to_basis = np.linalg.inv(r).T

    @property
    def nbasis(self) -> int:
        return self.basis.shape[0]

    def carrier_phase(self, axis: int) -> np.ndarray | None:
        """``(coils, n_axis)`` complex128: every coil's carrier along one axis (``axis`` counted
        over the image axes, so ``-1`` is x), or ``None`` without carriers."""
        if self.carriers is None:
            return None
        n = self.shape[axis]
        r = (np.arange(n) - n // 2) / n
        return np.exp(2j * np.pi * self.carriers[:, axis, None] * r[None])

    def carrier_maps(self) -> np.ndarray | None:
        """``(coils,) + shape`` complex128 carriers ``e_c``, or ``None`` without carriers."""
        if self.carriers is None:
            return None
        out = np.ones((self.carriers.shape[0],) + self.shape, dtype=np.complex128)
        for ax in range(len(self.shape)):
            sh = [self.carriers.shape[0]] + [1] * len(self.shape)
            sh[1 + ax] = self.shape[ax]
            out = out * self.carrier_phase(ax).reshape(sh)
        return out

    def _check_coils(self, ncoil: int, name: str) -> None:
        if self.carriers is not None and ncoil != self.carriers.shape[0]:
            raise ValueError(f"{name}: {ncoil} coils, but the model has carriers for {self.carriers.shape[0]}")

    def maps(self, coeffs: np.ndarray) -> np.ndarray:
        """Coil maps ``(coils,) + shape`` from coefficients ``(coils, nbasis)`` complex."""
        c = np.asarray(coeffs)
        if c.ndim != 2 or c.shape[1] != self.nbasis:
            raise ValueError(f"coeffs: expected (coils, {self.nbasis}), got {c.shape}")
        self._check_coils(c.shape[0], "coeffs")
        out = np.tensordot(c, self.basis, axes=(1, 0))
        carrier = self.carrier_maps()
        return out if carrier is None else out * carrier

    def maps_torch(self, coeffs):
        """Torch version of :meth:`maps` (differentiable; the basis is moved to the tensor's device)."""
        import torch

        b = torch.as_tensor(self.basis, device=coeffs.device, dtype=coeffs.real.dtype)
        out = torch.tensordot(coeffs, b.to(coeffs.dtype), dims=([1], [0]))
        carrier = self.carrier_maps()
        return out if carrier is None else out * torch.as_tensor(carrier, device=coeffs.device).to(coeffs.dtype)

    def fit(self, sens: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
        """Least-squares coefficients ``(coils, nbasis)`` of maps ``(coils,) + shape``.

        ``weight`` (shape of the image, >= 0) restricts the fit, e.g. to the object mask.
        """
        s = np.asarray(sens)
        if s.shape[1:] != self.shape:
            raise ValueError(f"sens: expected (coils,) + {self.shape}, got {s.shape}")
        self._check_coils(s.shape[0], "sens")
        carrier = self.carrier_maps()
        if carrier is not None:  # |e_c| = 1: fitting e_c^* S_c is the same least squares
            s = s * carrier.conj()
        B = self.basis.reshape(self.nbasis, -1).T  # (npix, nbasis)
        Y = s.reshape(s.shape[0], -1).T  # (npix, coils)
        if weight is not None:
            w = np.sqrt(np.asarray(weight, float).ravel())[:, None]
            B, Y = B * w, Y * w
        coef, *_ = np.linalg.lstsq(B, Y, rcond=None)
        return coef.T.astype(np.complex128)
