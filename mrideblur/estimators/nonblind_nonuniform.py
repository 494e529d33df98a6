r"""Non-blind deconvolution of a spatially varying blur: any linear blur operator, known.

Solves, for a blur operator ``A`` given as a sigpy ``Linop`` (:class:`mrideblur.physics.nonuniform.PoseBlur`,
:class:`~mrideblur.physics.nonuniform.KernelField`, or any real ``Linop`` with an adjoint)::

    x = argmin_x  lam/2 ||A x - y||^2 + sum_i rho(D_i x)

with ``D`` the horizontal and vertical first differences (zero past the last row / column) and

- ``"hyper-laplacian"``: ``rho(g) = |g|^alpha`` (Krishnan & Fergus 2009's prior, the same ``lam``
  and ``alpha`` as :func:`mrideblur.deblur.deconvolve`'s FFT solver, which needs one kernel);
  solved by iteratively reweighted least squares: each outer pass majorises ``|g|^alpha`` by a
  quadratic at the current gradients (``|g| >= eps``, ``eps`` shrinking from 0.1 to 0.005) and
  solves ``(A^H A + (alpha/lam) D^H W D) x = A^H y`` by conjugate gradients warm-started;
- ``"tikhonov"``: ``rho(g) = g^2 / lam_t`` in one CG solve (``lam`` then weighs ``||D x||^2``:
  ``argmin ||A x - y||^2 + lam ||D x||^2``, as the single-kernel Tikhonov).

The image ``x`` lives on ``A``'s input grid: larger than ``y`` for a ``"valid"`` operator (the
whole scene, its border filled by the prior), the same size otherwise.  numpy on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sigpy as sp

from ..physics.blur import check_image
from ..physics.cg import conjugate_gradient
from .base import Options, positive_int

__all__ = ["NonuniformHyperLaplacianOptions", "NonuniformTikhonovOptions", "run"]


@dataclass
class NonuniformHyperLaplacianOptions(Options):
    """``argmin lam/2 ||A x - y||^2 + sum |grad x|^alpha`` by IRLS + CG (module notes).

    Attributes
    ----------
    lam : float
        Data weight (default 1500, the single-kernel solver's value for 1% noise on [0, 1]).
    alpha : float
        Exponent in (0, 2]; 0.8 by default.
    outer : int
        Reweighting passes.
    cg_iters : int
        Conjugate-gradient iterations per pass.
    """

    lam: float = 1500.0
    alpha: float = 0.8
    outer: int = 8
    cg_iters: int = 25
    method = "hyper-laplacian"

    def validate(self) -> None:
        if not (np.isfinite(self.lam) and self.lam > 0):
            raise ValueError(f"lam: expected a positive number, got {self.lam!r}")
        if not (0 < self.alpha <= 2):
            raise ValueError(f"alpha: expected a number in (0, 2], got {self.alpha!r}")
        positive_int("outer", self.outer)
        positive_int("cg_iters", self.cg_iters)


@dataclass
class NonuniformTikhonovOptions(Options):
    """``argmin ||A x - y||^2 + lam ||grad x||^2`` by CG.

    Attributes
    ----------
    lam : float
        Gradient weight (default 1e-2, the single-kernel Tikhonov's value for 1% noise).
    cg_iters : int
        Conjugate-gradient iterations.
    """

    lam: float = 1e-2
    cg_iters: int = 100
    method = "tikhonov"

    def validate(self) -> None:
        if not (np.isfinite(self.lam) and self.lam >= 0):
            raise ValueError(f"lam: expected a number >= 0, got {self.lam!r}")
        positive_int("cg_iters", self.cg_iters)


def _grad(x: np.ndarray) -> np.ndarray:
    g = np.zeros((2,) + x.shape)
    g[0, :-1] = x[1:] - x[:-1]
    g[1, :, :-1] = x[:, 1:] - x[:, :-1]
    return g


def _grad_adjoint(g: np.ndarray) -> np.ndarray:
    out = np.zeros(g.shape[1:])
    out[:-1] -= g[0, :-1]
    out[1:] += g[0, :-1]
    out[:, :-1] -= g[1, :, :-1]
    out[:, 1:] += g[1, :, :-1]
    return out


def _start(y: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``y`` centred on the input grid, its border extended by the nearest pixel."""
    py, px = shape[0] - y.shape[0], shape[1] - y.shape[1]
    if py < 0 or px < 0:
        return y[: shape[0], : shape[1]].copy()
    return np.pad(y, ((py // 2, py - py // 2), (px // 2, px - px // 2)), mode="edge")


def run(blurred: np.ndarray, operator: sp.linop.Linop, options: Options) -> np.ndarray:
    """Deconvolve ``blurred`` (``operator.oshape``) by the known operator (module notes).

    Parameters
    ----------
    blurred : (ny, nx) float array
        ``y``, real, on the operator's output grid.
    operator : sigpy Linop
        The blur ``A`` with its adjoint ``A.H``; 2D input and output.
    options : NonuniformHyperLaplacianOptions or NonuniformTikhonovOptions

    Returns
    -------
    float64 image on ``operator.ishape``.
    """
    y = check_image(blurred, "blurred")
    if not isinstance(operator, sp.linop.Linop) or len(operator.ishape) != 2 or len(operator.oshape) != 2:
        raise ValueError(f"operator: expected a 2D sigpy Linop (e.g. mrideblur.physics.nonuniform.PoseBlur), "
                         f"got {type(operator).__name__}")
    if y.shape != tuple(operator.oshape):
        raise ValueError(f"blurred: shape {y.shape} does not match the operator's output {tuple(operator.oshape)}")
    ishape = tuple(operator.ishape)

    def blur(x: np.ndarray) -> np.ndarray:
        return np.asarray(operator(x), dtype=np.float64)

    def blur_h(r: np.ndarray) -> np.ndarray:
        return np.asarray(operator.H(r), dtype=np.float64)

    b = blur_h(y)
    x = _start(y, ishape)
    if options.method == "tikhonov":
        lam = options.lam
        return conjugate_gradient(lambda v: blur_h(blur(v)) + lam * _grad_adjoint(_grad(v)), b, x,
                                  max_iter=options.cg_iters)
    mu = options.alpha / options.lam
    for eps in np.geomspace(0.1, 0.005, options.outer):
        w = np.maximum(np.abs(_grad(x)), eps) ** (options.alpha - 2.0)
        x = conjugate_gradient(lambda v, w=w: blur_h(blur(v)) + mu * _grad_adjoint(w * _grad(v)), b, x,
                               max_iter=options.cg_iters)
    return x
