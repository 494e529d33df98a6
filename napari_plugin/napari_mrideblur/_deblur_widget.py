"""The deblur dock widget: :func:`mrideblur.deblur.blind_deconvolve` or
:func:`mrideblur.deblur.deconvolve` on the 2D image or slice on screen.

Blind (``vb``, ``map``, ...): the kernel is estimated and added as a small layer (at the image's
top-left corner, same pixel size); ``kernel-field`` (:func:`mrideblur.deblur.deblur_nonuniform`)
estimates a blur that varies across the image, shown as a montage of its kernels (the field's
grid, each kernel scaled to its own peak). Non-blind (``wiener``, ``hyper-laplacian``, ...): the kernel
is a Gaussian of the given width or any small image layer (a kernel estimated before, for
instance). An RGB layer is deblurred in colour (one kernel for the three channels, estimated on
the luminance; an alpha channel is dropped) and comes back as an RGB layer. The plane is scaled to a peak of 1 for the deconvolution (the priors assume [0, 1]
grey levels) and back. Runs on a ``thread_worker`` with napari's progress bar and Cancel (blind
only: the non-blind solvers take well under a second).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ._layers import LayerData, contrast
from ._task import Task, TaskControls

__all__ = ["DeblurOutcome", "DeblurWidget", "current_plane"]

#: The kernel combo box entry for a Gaussian of the width given beside it.
GAUSSIAN_ITEM = "gaussian (sigma)"
#: Largest side of an image layer offered as a kernel.
MAX_KERNEL_LAYER = 101


def current_plane(viewer: Any, layer: Any) -> tuple[np.ndarray, tuple[int, ...]]:
    """The 2D plane of ``layer`` on screen: its last two axes (three for RGB) at the viewer's
    current position.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
    layer : napari.layers.Image, grey or RGB(A)

    Returns
    -------
    plane : (ny, nx) float64, or (ny, nx, 3) for an RGB(A) layer (alpha dropped)
    index : tuple of int
        Indices of the plane along the layer's leading axes (empty for a 2D layer).
    """
    rgb = bool(getattr(layer, "rgb", False))
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    spatial = data.ndim - (1 if rgb else 0)
    if spatial < 2:
        raise ValueError(f"{layer.name}: expected an image of at least 2 axes, got shape {data.shape}")
    index: tuple[int, ...] = ()
    if spatial > 2:
        pos = layer.world_to_data(viewer.dims.point)
        index = tuple(int(np.clip(round(float(p)), 0, n - 1)) for p, n in zip(pos[: spatial - 2], data.shape))
    plane = np.asarray(data[index], dtype=np.float64)
    if rgb:
        plane = plane[..., :3]
    if np.iscomplexobj(plane):
        plane = np.abs(plane)
    return plane, index


@dataclass
class DeblurOutcome:
    """One deblurring run: the deblurred plane, the kernel used or estimated, the per-pixel
    uncertainty where the method gives one (``residual-prior``), and the call's record."""

    name: str
    image: np.ndarray
    kernel: np.ndarray
    blind: bool
    method: str
    index: tuple[int, ...] = ()
    history: dict = field(default_factory=dict)
    seconds: float = 0.0
    uncertainty: np.ndarray | None = None


def run_deblur(plane: np.ndarray, name: str, index: tuple[int, ...], method: str, kernel: np.ndarray | None,
               kernel_size: int, n_iter: int, n_starts: int, seed: int, progress, cancel) -> DeblurOutcome:
    """The worker-thread part (no Qt): deblur one plane with :mod:`mrideblur.deblur`."""
    from mrideblur.deblur import BLIND_METHODS, BLIND_NONUNIFORM_METHODS, blind_deconvolve, deblur_nonuniform, deconvolve

    t0 = time.perf_counter()
    peak = float(np.max(np.abs(plane))) or 1.0
    y = plane / peak
    if method in BLIND_NONUNIFORM_METHODS:  # a field of kernels; the kernel size is its own
        res = deblur_nonuniform(y, method=method, progress=progress, cancel=cancel)
        image, k, history, blind = res.image, res.kernel, res.history, True
        spread = None
    elif method in BLIND_METHODS and kernel is None:  # "diffusion" is both: blind only without a kernel
        # the widget's iterations and starts are VB's and MAP's; diffusion and networks use their own
        iters = {"n_iter": n_iter, "n_starts": n_starts} if method in ("vb", "map") else {}
        res = blind_deconvolve(y, kernel_size, method=method, seed=seed, progress=progress, cancel=cancel, **iters)
        image, k, history, blind = res.image, res.kernel, res.history, True
        spread = None if res.uncertainty is None else np.asarray(res.uncertainty) * peak
    else:
        if kernel is None:
            raise ValueError("kernel: a non-blind method needs a kernel (a Gaussian or a kernel layer)")
        image, k, history, blind = deconvolve(y, kernel, method=method), np.asarray(kernel), {}, False
        spread = None
    history = {key: v for key, v in history.items() if not isinstance(v, np.ndarray)}  # maps are layers
    return DeblurOutcome(name=name, image=image * peak, kernel=k, blind=blind, method=method, index=index,
                         history=history, seconds=time.perf_counter() - t0, uncertainty=spread)


class DeblurWidget(TaskControls, QWidget):
    """Dock widget for blind or non-blind deconvolution of the plane on screen (module notes).

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer

    Attributes
    ----------
    outcome : DeblurOutcome or None
    run_finished : Signal(object)
        Emitted in the GUI thread after each run with the :class:`DeblurOutcome` (its layers
        added) or the exception that stopped it.
    """

    run_finished = Signal(object)
    failure_label = "mrideblur deblurring"

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        from mrideblur.deblur import BLIND_METHODS, BLIND_NONUNIFORM_METHODS
        from mrideblur.deblur import METHODS as NONBLIND

        self.viewer = napari_viewer
        self.outcome: DeblurOutcome | None = None
        self.task: Task | None = None

        self.image = QComboBox()
        self.method = QComboBox()
        self.method.addItems([f"blind {m}" for m in BLIND_METHODS + BLIND_NONUNIFORM_METHODS]
                             + list(NONBLIND))  # the catalogue's
        self.method.setCurrentText("blind vb")
        self.method.currentTextChanged.connect(self._method_changed)
        self.kernel_size = QSpinBox()
        self.kernel_size.setRange(3, 101)
        self.kernel_size.setSingleStep(2)
        self.kernel_size.setValue(15)
        self.kernel_size.setToolTip("odd size of the kernel to estimate, a little larger than the blur")
        self.n_iter = QSpinBox()
        self.n_iter.setRange(1, 500)
        self.n_iter.setValue(40)
        self.n_iter.setToolTip("iterations per scale")
        self.n_starts = QSpinBox()
        self.n_starts.setRange(1, 10)
        self.n_starts.setValue(3)
        self.n_starts.setToolTip("independent coarse-to-fine searches; the best fitting one is kept")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.kernel = QComboBox()
        self.sigma = QDoubleSpinBox()
        self.sigma.setRange(0.1, 50.0)
        self.sigma.setValue(1.5)
        self.sigma.setSingleStep(0.1)

        form = QFormLayout()
        form.addRow("image", self.image)
        form.addRow("method", self.method)
        form.addRow("kernel size", self.kernel_size)
        form.addRow("iterations", self.n_iter)
        form.addRow("starts", self.n_starts)
        form.addRow("seed", self.seed)
        form.addRow("known kernel", self.kernel)
        form.addRow("gaussian sigma", self.sigma)

        buttons = self._make_controls("Deblur")

        layout = QVBoxLayout()
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self.setLayout(layout)

        layers = self.viewer.layers
        layers.events.inserted.connect(self._refresh)
        layers.events.removed.connect(self._refresh)
        layers.events.moved.connect(self._refresh)
        self._refresh()
        self._method_changed(self.method.currentText())

    def _refresh(self, event: Any = None) -> None:
        from napari.layers import Image

        if event is not None and getattr(event, "type", "") == "inserted":
            event.value.events.name.connect(self._refresh)
        images = [lay for lay in reversed(self.viewer.layers) if isinstance(lay, Image)]
        for box, names in (
            (self.image, [lay.name for lay in images]),
            (self.kernel, [GAUSSIAN_ITEM] + [lay.name for lay in images if not lay.rgb and lay.ndim == 2
                                             and max(lay.data.shape) <= MAX_KERNEL_LAYER]),
        ):
            current = box.currentText()
            box.blockSignals(True)
            box.clear()
            box.addItems(names)
            if current in names:
                box.setCurrentText(current)
            box.blockSignals(False)

    def _method_changed(self, text: str) -> None:
        blind = text.startswith("blind ")
        for w in (self.kernel_size, self.n_iter, self.n_starts, self.seed):
            w.setEnabled(blind)
        self.kernel.setEnabled(not blind)
        self.sigma.setEnabled(not blind)

    @property
    def running(self) -> bool:
        return self.task is not None and self.cancel_button.isEnabled()

    def _known_kernel(self) -> np.ndarray:
        from mrideblur.deblur import gaussian_kernel

        choice = self.kernel.currentText()
        if choice == GAUSSIAN_ITEM or choice not in self.viewer.layers:
            return gaussian_kernel(float(self.sigma.value()))
        return np.asarray(self.viewer.layers[choice].data, dtype=np.float64)

    def run(self) -> Task | None:
        """Deblur the plane on screen of the chosen layer in the background. Returns the task."""
        if self.running:
            return None
        name = self.image.currentText()
        if name not in self.viewer.layers:
            self.status.setText("choose an image layer")
            return None
        layer = self.viewer.layers[name]
        try:
            plane, index = current_plane(self.viewer, layer)
        except ValueError as exc:
            self.status.setText(str(exc))
            return None
        text = self.method.currentText()
        method = text.removeprefix("blind ")
        kernel = None if text.startswith("blind ") else self._known_kernel()
        args = (int(self.kernel_size.value()) | 1, int(self.n_iter.value()), int(self.n_starts.value()),
                int(self.seed.value()))
        return self._start_task(
            lambda progress, cancel: run_deblur(plane, name, index, method, kernel, *args, progress, cancel),
            f"mrideblur deblur ({method})", f"deblurring {name} ({method}) …", cancellable=text.startswith("blind "))

    def outcome_layers(self, outcome: DeblurOutcome) -> list[LayerData]:
        """Layer data tuples of a run: the deblurred plane, when blind the kernel, and the
        uncertainty map when the method gives one."""
        src = next((lay for lay in self.viewer.layers if lay.name == outcome.name), None)
        scale = tuple(src.scale[-2:]) if src is not None else (1.0, 1.0)
        translate = tuple(src.translate[-2:]) if src is not None else (0.0, 0.0)
        where = "" if not outcome.index else " [" + ", ".join(str(i) for i in outcome.index) + "]"
        img = outcome.image.astype(np.float32)
        look = {"rgb": True} if img.ndim == 3 else {"colormap": "gray"}
        out: list[LayerData] = [
            (img, {"name": f"{outcome.name}{where} deblurred ({outcome.method})", "scale": scale,
                   "translate": translate, **look, "contrast_limits": contrast(img),
                   "metadata": {"deblur_history": outcome.history, "plane_index": outcome.index}}, "image"),
        ]
        if outcome.blind:
            from mrideblur.shell import kernel_montage

            k = outcome.kernel.astype(np.float32)
            k = kernel_montage(k).astype(np.float32) if k.ndim == 4 else k  # a field: its kernels tiled
            out.append((k, {"name": f"{outcome.name}{where} kernel ({outcome.method})", "scale": scale,
                            "translate": translate, "colormap": "inferno",
                            "contrast_limits": (0.0, float(k.max()) or 1.0)}, "image"))
        if outcome.uncertainty is not None:
            u = outcome.uncertainty.astype(np.float32)
            u = u.mean(axis=-1) if u.ndim == 3 else u  # colour: one map, the channels' mean
            out.append((u, {"name": f"{outcome.name}{where} uncertainty ({outcome.method})", "scale": scale,
                            "translate": translate, "colormap": "magma",
                            "contrast_limits": (0.0, float(u.max()) or 1.0), "visible": False}, "image"))
        return out

    def _done(self, outcome: DeblurOutcome) -> None:
        from napari.layers import Layer

        self._finish()
        self.outcome = outcome
        for data, kwargs, kind in self.outcome_layers(outcome):
            if kwargs["name"] in self.viewer.layers:
                self.viewer.layers.remove(kwargs["name"])
            self.viewer.add_layer(Layer.create(data, kwargs, kind))
        cancelled = " (cancelled: kernel so far)" if outcome.history.get("cancelled") else ""
        warning = f" — warning: {outcome.history['warning']}" if outcome.history.get("warning") else ""
        self.status.setText(f"{outcome.method}: done in {outcome.seconds:.1f} s{cancelled}{warning}")
        self.run_finished.emit(outcome)

    def closeEvent(self, event: Any) -> None:
        self.cancel()
        super().closeEvent(event)
