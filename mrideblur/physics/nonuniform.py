r"""Spatially varying blur: a camera that rolls, and a field of local kernels.

One kernel for the whole image (:func:`mrideblur.physics.blur.blur`) is the model of a camera
that only translates.  A real camera also rolls, and a roll about a point far from the optical
axis blurs each region differently.  Two sigpy ``Linop`` s model that:

:class:`PoseBlur` — the camera's path as weighted poses (Whyte et al., IJCV 2012; Tai et al.,
PAMI 2011).  Pose ``t`` is an in-plane rotation by ``rot_deg`` about a centre ``c`` (pixels,
inside or outside the frame) followed by a translation ``(ty, tx)``, the rotation convention of
docs/conventions.md: a point at offset ``d = (dy, dx)`` from ``c`` goes to
``c + (dy cos p - dx sin p, dy sin p + dx cos p) + (ty, tx)``, ``p = radians(rot_deg)``.  Pixel
``q`` records the sharp scene where pose ``t`` takes it, weighted by the time spent there::

    y(q) = sum_t a_t x(H_t q),      sum_t a_t = 1,

``x`` read by bilinear interpolation, zero outside the image.  As a matrix ``A = sum_t a_t W_t``
(``W_t`` sparse, four entries per row), so ``A^H = A^T`` exactly.

:class:`KernelField` — "efficient filter flow" (Hirsch et al., CVPR 2010): a grid of kernels
``k_r`` blended by windows ``w_r`` that sum to one (separable triangles, so the kernel between
grid nodes is the bilinear blend of its neighbours')::

    y = sum_r k_r * (w_r . x)        A^H y = sum_r w_r . (k_r correlated with y)

with ``*`` a zero-padded convolution (``boundary="same"``: output on the input grid;
``"valid"``: only the pixels whose blur footprint lies inside, as a camera records).  It is the
model the kernel-field estimators fit; :meth:`PoseBlur.local_kernels` gives the kernel field of a
pose path, so ``KernelField(shape, pose.local_kernels(grid, m))`` approximates ``pose``.

Images are real ``(ny, nx)`` float arrays (numpy, CPU); a colour image is blurred channel by
channel with :func:`blur_nonuniform`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import sigpy as sp
from scipy import signal

from .arrays import real_array
from .blur import check_colour_image, check_image, is_colour
from .kernels import validate_kernel

__all__ = ["KernelField", "PoseBlur", "blur_nonuniform", "field_windows", "roll_path", "roll_sweep"]


# ------------------------------------------------------------------------------------------ poses


def _poses(poses: np.ndarray) -> np.ndarray:
    p = real_array(poses, "poses", 2, "pose table (npose, 3) [rot_deg, ty, tx]")
    if p.shape[1] != 3 or p.shape[0] < 1:
        raise ValueError(f"poses: expected a table (npose, 3) of [rot_deg, ty, tx], got shape {p.shape}")
    return p


def roll_path(npose: int = 32, max_rot_deg: float = 2.0, max_shift: float = 2.0, seed: int = 0) -> np.ndarray:
    """A smooth random camera path: rotation and shift along a short random walk.

    Parameters
    ----------
    npose : int
        Number of poses (time samples along the exposure).
    max_rot_deg : float
        Largest absolute rotation reached, degrees (the path is scaled to it).
    max_shift : float
        Largest absolute translation reached along y or x, pixels.
    seed : int

    Returns
    -------
    (npose, 3) float64 table ``[rot_deg, ty, tx]`` with zero mean: the sharp image is the one
    seen from the mean pose, so every local kernel is centred (to first order in the angles)
    and a deblurred image needs no registration to be compared with it.
    """
    if npose < 2:
        raise ValueError(f"npose: expected at least 2 poses, got {npose}")
    rng = np.random.default_rng(seed)
    steps = rng.standard_normal((npose - 1, 3))
    # momentum makes the walk smooth, like a hand's path
    vel = np.zeros(3)
    path = [np.zeros(3)]
    for s in steps:
        vel = 0.7 * vel + s
        path.append(path[-1] + vel)
    p = np.array(path)
    p -= p.mean(axis=0)
    for j, top in zip(range(3), (max_rot_deg, max_shift, max_shift)):
        peak = np.abs(p[:, j]).max()
        p[:, j] = p[:, j] * (top / peak) if peak > 0 else 0.0
    return p


def roll_sweep(npose: int = 32, max_rot_deg: float = 1.5) -> np.ndarray:
    """A camera that rolls at a constant rate from ``-max_rot_deg`` to ``+max_rot_deg`` (no shift):
    about a pivot outside the frame every pixel is blurred along an arc of uniform density whose
    length grows with its distance from the pivot.  Returns ``(npose, 3)`` ``[rot_deg, ty, tx]``
    with zero mean."""
    if npose < 2:
        raise ValueError(f"npose: expected at least 2 poses, got {npose}")
    return np.column_stack([np.linspace(-max_rot_deg, max_rot_deg, npose), np.zeros(npose), np.zeros(npose)])


def _bilinear_matrix(shape: tuple[int, int], yy: np.ndarray, xx: np.ndarray) -> scipy.sparse.csr_matrix:
    """Sparse ``W`` with ``(W x)[q] = x`` read bilinearly at ``(yy[q], xx[q])``, zero outside."""
    ny, nx = shape
    n = ny * nx
    y0 = np.floor(yy).astype(np.int64)
    x0 = np.floor(xx).astype(np.int64)
    fy, fx = yy - y0, xx - x0
    rows, cols, vals = [], [], []
    q = np.arange(n)
    for dy, dx, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        yi, xi = y0 + dy, x0 + dx
        ok = (yi >= 0) & (yi < ny) & (xi >= 0) & (xi < nx) & (w != 0)
        rows.append(q[ok])
        cols.append(yi[ok] * nx + xi[ok])
        vals.append(w[ok])
    return scipy.sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))


class PoseBlur(sp.linop.Linop):
    """Blur by a camera path of in-plane poses, ``y(q) = sum_t a_t x(H_t q)`` (module notes).

    Parameters
    ----------
    shape : (ny, nx)
        Image size in pixels (input and output).
    poses : (npose, 3) array
        ``[rot_deg, ty, tx]`` per pose, degrees and pixels (:func:`roll_path`).
    centre : (cy, cx), optional
        Centre of rotation in pixel coordinates (row, column; may lie outside the image);
        default the image centre ``((ny - 1) / 2, (nx - 1) / 2)``.
    weights : (npose,) array, optional
        Time spent at each pose (non-negative, normalised to sum 1); default uniform.

    Attributes
    ----------
    matrix : scipy.sparse.csr_matrix ``(ny nx, ny nx)``
        ``A`` itself; ``A^H`` is its transpose.
    """

    def __init__(self, shape: tuple[int, int], poses: np.ndarray, centre: tuple[float, float] | None = None,
                 weights: np.ndarray | None = None) -> None:
        ny, nx = (int(s) for s in shape)
        if ny < 3 or nx < 3:
            raise ValueError(f"shape: expected an image of at least 3x3 pixels, got {shape}")
        self.poses = _poses(poses)
        npose = self.poses.shape[0]
        if weights is None:
            a = np.full(npose, 1.0 / npose)
        else:
            a = real_array(weights, "weights", 1, "weight per pose (npose,)")
            if a.shape != (npose,) or np.any(a < 0) or a.sum() <= 0:
                raise ValueError(f"weights: expected {npose} non-negative weights with a positive sum, got {a}")
            a = a / a.sum()
        self.weights = a
        self.centre = ((ny - 1) / 2.0, (nx - 1) / 2.0) if centre is None else (float(centre[0]), float(centre[1]))
        qy, qx = np.meshgrid(np.arange(ny, dtype=np.float64), np.arange(nx, dtype=np.float64), indexing="ij")
        mats = []
        for (rot, ty, tx), w in zip(self.poses, a):
            sy, sx = self.sample_points(qy.ravel(), qx.ravel(), rot, ty, tx)
            mats.append(w * _bilinear_matrix((ny, nx), sy, sx))
        self.matrix = sum(mats[1:], mats[0]).tocsr()
        self._matrix_t = self.matrix.T.tocsr()
        super().__init__((ny, nx), (ny, nx))

    def sample_points(self, qy: np.ndarray, qx: np.ndarray, rot_deg: float, ty: float, tx: float
                      ) -> tuple[np.ndarray, np.ndarray]:
        """``H q``: where one pose takes pixel coordinates ``(qy, qx)`` (docs/conventions.md's rotation)."""
        p = np.deg2rad(rot_deg)
        dy, dx = qy - self.centre[0], qx - self.centre[1]
        return (self.centre[0] + dy * np.cos(p) - dx * np.sin(p) + ty,
                self.centre[1] + dy * np.sin(p) + dx * np.cos(p) + tx)

    def local_kernel(self, point: tuple[float, float], size: int) -> np.ndarray:
        """The blur kernel at pixel ``point``: ``k(d) = sum_t a_t delta(d - (q - H_t q))``,
        splatted bilinearly on a ``(size, size)`` grid centred on ``d = 0`` (odd ``size``), sum 1.

        Raises ``ValueError`` when the path moves that point by more than ``size // 2`` pixels.
        """
        if size < 1 or size % 2 == 0:
            raise ValueError(f"size: expected an odd kernel size, got {size}")
        qy, qx = float(point[0]), float(point[1])
        k = np.zeros((size, size))
        h = size // 2
        for (rot, ty, tx), w in zip(self.poses, self.weights):
            sy, sx = self.sample_points(np.array([qy]), np.array([qx]), rot, ty, tx)
            dy, dx = qy - float(sy[0]) + h, qx - float(sx[0]) + h
            y0, x0 = int(np.floor(dy)), int(np.floor(dx))
            fy, fx = dy - y0, dx - x0
            inside = (0 <= y0 and y0 + (fy > 0) <= size - 1) and (0 <= x0 and x0 + (fx > 0) <= size - 1)
            if not inside:
                raise ValueError(f"size: the path moves pixel {point} by ({qy - float(sy[0]):.1f}, "
                                 f"{qx - float(sx[0]):.1f}) px, beyond a {size}x{size} kernel")
            for yy, xx, v in ((y0, x0, (1 - fy) * (1 - fx)), (y0, x0 + 1, (1 - fy) * fx),
                              (y0 + 1, x0, fy * (1 - fx)), (y0 + 1, x0 + 1, fy * fx)):
                if v:
                    k[yy, xx] += w * v
        return k / k.sum()

    def local_kernels(self, grid: tuple[int, int], size: int) -> np.ndarray:
        """Kernels at the nodes of :func:`field_windows`'s ``grid``: ``(gy, gx, size, size)``."""
        nodes_y, nodes_x = _grid_nodes(self.ishape, grid)
        return np.array([[self.local_kernel((cy, cx), size) for cx in nodes_x] for cy in nodes_y])

    def blur_length(self, point: tuple[float, float]) -> float:
        """Longest displacement ``|q - H_t q|`` of pixel ``point`` over the path, pixels."""
        sy, sx = zip(*(self.sample_points(np.array([point[0]]), np.array([point[1]]), *p) for p in self.poses))
        return float(np.max(np.hypot(point[0] - np.concatenate(sy), point[1] - np.concatenate(sx))))

    def _apply(self, input: np.ndarray) -> np.ndarray:
        x = np.asarray(input)
        return (self.matrix @ x.reshape(-1)).reshape(self.oshape).astype(x.dtype, copy=False)

    def _adjoint_linop(self) -> sp.linop.Linop:
        return _PoseBlurAdjoint(self)


class _PoseBlurAdjoint(sp.linop.Linop):
    """``A^H`` of a :class:`PoseBlur`: the transposed sparse matrix."""

    def __init__(self, fwd: PoseBlur) -> None:
        self.fwd = fwd
        super().__init__(fwd.ishape, fwd.oshape)

    def _apply(self, input: np.ndarray) -> np.ndarray:
        y = np.asarray(input)
        return (self.fwd._matrix_t @ y.reshape(-1)).reshape(self.oshape).astype(y.dtype, copy=False)

    def _adjoint_linop(self) -> sp.linop.Linop:
        return self.fwd


# ----------------------------------------------------------------------------------- kernel field


def _grid_nodes(shape: tuple[int, ...], grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Node coordinates of a ``(gy, gx)`` grid spanning the image, first and last on the border."""
    gy, gx = (int(g) for g in grid)
    if gy < 1 or gx < 1:
        raise ValueError(f"grid: expected at least one node per axis, got {grid}")
    return (np.linspace(0, shape[0] - 1, gy) if gy > 1 else np.array([(shape[0] - 1) / 2]),
            np.linspace(0, shape[1] - 1, gx) if gx > 1 else np.array([(shape[1] - 1) / 2]))


def _triangles(n: int, nodes: np.ndarray) -> np.ndarray:
    """``(len(nodes), n)`` hat functions on the nodes: piecewise linear, summing to one."""
    if len(nodes) == 1:
        return np.ones((1, n))
    t = np.arange(n, dtype=np.float64)
    step = nodes[1] - nodes[0]
    return np.clip(1.0 - np.abs(t[None, :] - nodes[:, None]) / step, 0.0, None)


def field_windows(shape: tuple[int, int], grid: tuple[int, int]) -> np.ndarray:
    """The windows ``w_r`` of a ``(gy, gx)`` kernel field on an image ``shape``.

    Separable hat functions centred on the grid nodes (the first and last nodes on the image
    border), so ``sum_r w_r = 1`` at every pixel and the field is the bilinear blend of the node
    kernels.  Returns ``(gy, gx, ny, nx)`` float64.
    """
    ny, nx = (int(s) for s in shape)
    nodes_y, nodes_x = _grid_nodes((ny, nx), grid)
    wy, wx = _triangles(ny, nodes_y), _triangles(nx, nodes_x)
    return wy[:, None, :, None] * wx[None, :, None, :]


class KernelField(sp.linop.Linop):
    """Efficient filter flow ``y = sum_r k_r * (w_r . x)`` (module notes), a sigpy ``Linop``.

    Parameters
    ----------
    shape : (ny, nx)
        Size of the sharp image ``x``, pixels.
    kernels : (gy, gx, m, m) array
        One kernel per grid node (odd ``m``, non-negative, each normalised to sum 1); a single
        ``(m, m)`` kernel is a ``1 x 1`` field (a uniform blur).
    boundary : {"same", "valid"}
        ``"same"``: output ``(ny, nx)``, zeros beyond the border; ``"valid"``: output
        ``(ny - m + 1, nx - m + 1)``, the pixels whose whole footprint lies inside.

    Notes
    -----
    Each node's product ``w_r . x`` is non-zero on two grid cells per axis only, so a node costs
    one FFT convolution of that box; the adjoint correlates the same boxes (exact, tested).
    """

    def __init__(self, shape: tuple[int, int], kernels: np.ndarray, boundary: str = "same") -> None:
        ny, nx = (int(s) for s in shape)
        k = np.asarray(kernels, dtype=np.float64)
        if k.ndim == 2:
            k = k[None, None]
        if k.ndim != 4 or k.shape[2] != k.shape[3] or k.shape[2] % 2 == 0:
            raise ValueError(f"kernels: expected (gy, gx, m, m) with odd m, got shape {k.shape}")
        self.kernels = np.array([[validate_kernel(k[i, j], name=f"kernels[{i}, {j}]") for j in range(k.shape[1])]
                                 for i in range(k.shape[0])])
        self.grid = k.shape[:2]
        self.m = m = k.shape[2]
        if boundary not in ("same", "valid"):
            raise ValueError(f"boundary: expected 'same' or 'valid', got {boundary!r}")
        if (boundary == "valid" and (ny < m or nx < m)) or ny < 3 or nx < 3:
            raise ValueError(f"shape: image {shape} too small for {m}x{m} kernels")
        self.boundary = boundary
        nodes_y, nodes_x = _grid_nodes((ny, nx), self.grid)
        self._wy, self._wx = _triangles(ny, nodes_y), _triangles(nx, nodes_x)
        self._boxes_y = [_support(w) for w in self._wy]
        self._boxes_x = [_support(w) for w in self._wx]
        # the full convolution lives on a canvas larger by m - 1; the output is a crop of it
        self._off = m // 2 if boundary == "same" else m - 1
        oshape = (ny, nx) if boundary == "same" else (ny - m + 1, nx - m + 1)
        super().__init__(oshape, (ny, nx))

    def _canvas_shape(self) -> tuple[int, int]:
        return (self.ishape[0] + self.m - 1, self.ishape[1] + self.m - 1)

    def _apply(self, input: np.ndarray) -> np.ndarray:
        x = np.asarray(input, dtype=np.float64)
        canvas = np.zeros(self._canvas_shape())
        m = self.m
        for i, (ya, yb) in enumerate(self._boxes_y):
            for j, (xa, xb) in enumerate(self._boxes_x):
                z = x[ya:yb, xa:xb] * np.outer(self._wy[i, ya:yb], self._wx[j, xa:xb])
                canvas[ya : yb + m - 1, xa : xb + m - 1] += signal.fftconvolve(z, self.kernels[i, j], mode="full")
        o = self._off
        return canvas[o : o + self.oshape[0], o : o + self.oshape[1]]

    def _adjoint_linop(self) -> sp.linop.Linop:
        return _KernelFieldAdjoint(self)

    def adjoint(self, y: np.ndarray) -> np.ndarray:
        """``A^H y`` (the same as ``self.H(y)``)."""
        y = np.asarray(y, dtype=np.float64)
        if y.shape != tuple(self.oshape):
            raise ValueError(f"y: expected shape {tuple(self.oshape)}, got {y.shape}")
        canvas = np.zeros(self._canvas_shape())
        o = self._off
        canvas[o : o + self.oshape[0], o : o + self.oshape[1]] = y
        x = np.zeros(self.ishape)
        m = self.m
        for i, (ya, yb) in enumerate(self._boxes_y):
            for j, (xa, xb) in enumerate(self._boxes_x):
                g = signal.fftconvolve(canvas[ya : yb + m - 1, xa : xb + m - 1], self.kernels[i, j, ::-1, ::-1],
                                       mode="valid")
                x[ya:yb, xa:xb] += g * np.outer(self._wy[i, ya:yb], self._wx[j, xa:xb])
        return x


class _KernelFieldAdjoint(sp.linop.Linop):
    """``A^H`` of a :class:`KernelField`."""

    def __init__(self, fwd: KernelField) -> None:
        self.fwd = fwd
        super().__init__(fwd.ishape, fwd.oshape)

    def _apply(self, input: np.ndarray) -> np.ndarray:
        return self.fwd.adjoint(input)

    def _adjoint_linop(self) -> sp.linop.Linop:
        return self.fwd


def _support(w: np.ndarray) -> tuple[int, int]:
    nz = np.flatnonzero(w > 0)
    return int(nz[0]), int(nz[-1]) + 1


# ---------------------------------------------------------------------------------------- helper


def blur_nonuniform(image: np.ndarray, operator: sp.linop.Linop, noise_sigma: float = 0.0,
                    seed: int | None = None) -> np.ndarray:
    """``y = A x + n`` for a spatially varying blur ``A`` (:class:`PoseBlur`, :class:`KernelField`).

    Parameters
    ----------
    image : (ny, nx) or (ny, nx, 3) array
        Sharp image; a colour image is blurred channel by channel by the same ``A``.
    operator : sigpy Linop
        Built for ``(ny, nx)``.
    noise_sigma : float
        White Gaussian noise, image units.
    seed : int, optional

    Returns
    -------
    ``operator.oshape`` (``+ (3,)`` for colour) float64 array.
    """
    if not noise_sigma >= 0:
        raise ValueError(f"noise_sigma: expected >= 0, got {noise_sigma}")
    if is_colour(image):
        x = check_colour_image(image)
        channels = [x[..., c] for c in range(3)]
    else:
        channels = [check_image(image)]
    if channels[0].shape != tuple(operator.ishape):
        raise ValueError(f"image: shape {channels[0].shape} does not match the operator's input {tuple(operator.ishape)}")
    y = np.stack([np.asarray(operator(c), dtype=np.float64) for c in channels], axis=-1)
    y = y if len(channels) == 3 else y[..., 0]
    return y + np.random.default_rng(seed).normal(0.0, noise_sigma, y.shape) if noise_sigma > 0 else y
