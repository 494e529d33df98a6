r"""Blind deblurring of a spatially varying blur by a field of local motion kernels, after Sun et
al., "Learning a convolutional neural network for non-uniform motion blur removal" (CVPR 2015).

1. **Local evidence**: a CNN (:class:`mrideblur.learn.motion_cnn.MotionCNN`, trained on patches
   of built-in photographs blurred by straight streaks) gives, for every ``32 x 32`` patch on a
   grid of stride ``stride``, the probabilities of the linear motion classes
   :data:`~mrideblur.learn.motion_cnn.MOTION_CLASSES` (lengths 1-31 px, 12 directions).
2. **Field**: the image is covered by a ``grid`` of nodes with hat windows (those of
   :class:`mrideblur.physics.nonuniform.KernelField`); node ``r`` scores class ``c`` by the
   window-weighted mean log-probability of the patches around it,
   ``E_r(c) = -sum_p w_r(p) log P(c | patch p) / sum_p w_r(p)``.
3. **Smoothing** (Sun et al.'s Markov random field): iterated conditional modes on the node grid
   with the pairwise cost ``beta (1 - S(k_a, k_b))`` between 4-neighbours (``S`` the normalised
   correlation of the two class kernels), from the per-node best class.
4. **Deconvolution**: :func:`mrideblur.estimators.nonblind_nonuniform.run` (IRLS hyper-Laplacian)
   with the :class:`~mrideblur.physics.nonuniform.KernelField` of the chosen kernels as a
   ``"valid"`` blur — the observation is the part of a larger scene whose blur footprint lies
   inside, nothing assumed beyond the frame — then the scene cropped back to the observation's
   grid; a colour image shares the field (estimated on the luminance) and is deconvolved channel
   by channel.  A constant image is returned as it is.

Sun et al. also rotate each patch to refine the direction, and use a larger network; here the
directions are classes (every 15 degrees) and the network is small enough for a CPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..learn.motion_cnn import KERNEL_SIZE, MOTION_CLASSES, class_kernel
from ..learn.train_deblur import load_deblur_network, shipped_weights
from ..physics.blur import check_colour_image, check_image, luminance
from ..physics.nonuniform import KernelField, field_windows
from .base import CancelFn, Options, ProgressFn, Result, positive_int
from .nonblind_nonuniform import NonuniformHyperLaplacianOptions
from .nonblind_nonuniform import run as deconvolve_field

__all__ = ["KernelFieldOptions", "run"]


@dataclass
class KernelFieldOptions(Options):
    """Options of the kernel-field method (module notes).

    Attributes
    ----------
    grid : (int, int)
        Nodes of the kernel field along y and x (the hat windows of ``KernelField``).
    stride : int
        Step between the classified patches, pixels.
    beta : float
        Weight of the smoothness cost between neighbouring nodes (in units of mean
        negative log-probability).
    weights : str, Path or None
        The classifier's weights; ``None``: the shipped ``motion-cnn`` weights.
    lam, alpha : float
        The final IRLS hyper-Laplacian deconvolution's data weight and exponent.
    seed : int
        Unused (deterministic); kept so every blind method takes it.
    """

    grid: Any = (6, 6)
    stride: int = 8
    beta: float = 0.5
    weights: Any = None
    lam: float = 1500.0
    alpha: float = 0.8
    seed: int = 0

    def validate(self) -> None:
        try:
            gy, gx = (int(v) for v in self.grid)
        except (TypeError, ValueError):
            raise ValueError(f"grid: expected (gy, gx), got {self.grid!r}") from None
        if gy < 1 or gx < 1:
            raise ValueError(f"grid: expected at least one node per axis, got {self.grid!r}")
        self.grid = (gy, gx)
        self.stride = positive_int("stride", self.stride)
        if not self.beta >= 0:
            raise ValueError(f"beta: expected a number >= 0, got {self.beta!r}")


def _similarities() -> np.ndarray:
    ks = np.array([class_kernel(i).ravel() for i in range(len(MOTION_CLASSES))])
    ks = ks / np.linalg.norm(ks, axis=1, keepdims=True)
    return ks @ ks.T


def _patch_logprobs(net: torch.nn.Module, y: np.ndarray, patch: int, stride: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centres (rows, columns) of the classified patches and their class log-probabilities."""
    ys = np.arange(0, y.shape[0] - patch + 1, stride)
    xs = np.arange(0, y.shape[1] - patch + 1, stride)
    t = torch.from_numpy(y.astype(np.float32))
    out = []
    with torch.no_grad():
        for y0 in ys:
            row = torch.stack([t[y0 : y0 + patch, x0 : x0 + patch] for x0 in xs])[:, None]
            out.append(torch.log_softmax(net(row), dim=1).numpy())
    return ys + (patch - 1) / 2.0, xs + (patch - 1) / 2.0, np.stack(out)  # (ny_p, nx_p, classes)


def run(blurred: np.ndarray, options: KernelFieldOptions, progress: ProgressFn | None = None,
        cancel: CancelFn | None = None) -> Result:
    """Estimate a field of linear motion kernels and deblur (module notes).

    Parameters
    ----------
    blurred : (ny, nx) or (ny, nx, 3) float array
        The blurred image, intensities in [0, 1] (the classifier was trained there).

    Returns
    -------
    Result
        ``image`` shaped like ``blurred``; ``kernel`` the field ``(gy, gx, 33, 33)``;
        ``history``: ``classes`` ``(gy, gx)`` indices into ``MOTION_CLASSES``, ``lengths`` and
        ``angles`` per node, ``confidence`` (per node, the probability of the chosen class
        averaged over its window), ``weights``, ``seconds``.
    """
    t0 = time.perf_counter()
    colour = np.ndim(blurred) == 3
    y = check_colour_image(blurred, "blurred") if colour else check_image(blurred, "blurred")
    grey = luminance(y) if colour else y
    net, info = load_deblur_network(options.weights if options.weights is not None else shipped_weights("motion-cnn"))
    patch = net.config.patch
    if min(grey.shape) < patch:
        raise ValueError(f"blurred: image {grey.shape} is smaller than the classifier's {patch}-px patches")
    if np.ptp(grey) == 0:  # nothing to deblur
        return Result(image=np.array(y), kernel=None, history={"skipped": "constant image", "cancelled": False},
                      report={"method": "kernel-field"})
    if progress is not None:
        progress(0, 3, "kernel-field: classifying patches")
    cy, cx, logp = _patch_logprobs(net, grey, patch, options.stride)
    # node energies: window-weighted mean negative log-probability of the patches around each node,
    # the nodes spread over the scene (larger than the observation by the kernel size minus one)
    h = KERNEL_SIZE // 2
    scene = (grey.shape[0] + 2 * h, grey.shape[1] + 2 * h)
    windows = field_windows(scene, options.grid)  # (gy, gx, scene y, scene x)
    iy = np.round(cy).astype(int) + h
    ix = np.round(cx).astype(int) + h
    w = windows[:, :, iy][:, :, :, ix]  # (gy, gx, ny_p, nx_p)
    w = w / np.maximum(w.sum(axis=(2, 3), keepdims=True), 1e-12)
    energy = -np.einsum("abij,ijc->abc", w, logp)
    confidence_all = np.einsum("abij,ijc->abc", w, np.exp(logp))
    if cancel is not None and cancel():  # stopped: the input back, with the evidence so far
        return Result(image=np.array(y), kernel=None, history={"cancelled": True, "seconds": time.perf_counter() - t0},
                      report={"method": "kernel-field", "cancelled": True})
    # smoothing: iterated conditional modes with a kernel-similarity pairwise cost
    sim = _similarities()
    labels = energy.argmin(axis=2)
    gy, gx = labels.shape
    for _ in range(10):
        changed = 0
        for a in range(gy):
            for b in range(gx):
                cost = energy[a, b].copy()
                for da, db in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                    if 0 <= a + da < gy and 0 <= b + db < gx:
                        cost += options.beta * (1.0 - sim[labels[a + da, b + db]])
                best = int(cost.argmin())
                changed += best != labels[a, b]
                labels[a, b] = best
        if not changed:
            break
    kernels = np.array([[class_kernel(int(labels[a, b])) for b in range(gx)] for a in range(gy)])
    if progress is not None:
        progress(1, 3, "kernel-field: deconvolving")
    field = KernelField(scene, kernels, boundary="valid")
    hl = NonuniformHyperLaplacianOptions(lam=options.lam, alpha=options.alpha)
    hl.validate()
    inner = (slice(h, h + grey.shape[0]), slice(h, h + grey.shape[1]))
    image = (np.stack([deconvolve_field(y[..., c], field, hl)[inner] for c in range(3)], axis=-1) if colour
             else deconvolve_field(y, field, hl)[inner])
    if progress is not None:
        progress(3, 3, "kernel-field: done")
    history = {
        "classes": labels, "lengths": np.array([[MOTION_CLASSES[c][0] for c in row] for row in labels]),
        "angles": np.array([[MOTION_CLASSES[c][1] for c in row] for row in labels]),
        "confidence": np.take_along_axis(confidence_all, labels[..., None], axis=2)[..., 0],
        "weights": info.get("path"), "steps": info.get("steps"), "kernel_size": KERNEL_SIZE,
        "seconds": time.perf_counter() - t0, "cancelled": False,
    }
    return Result(image=image, kernel=kernels, history=history,
                  report={"method": "kernel-field", "parameters": options.as_dict(), "seconds": history["seconds"]})
