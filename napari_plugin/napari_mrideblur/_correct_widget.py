"""The motion-correction dock widget: :func:`mrideblur.mri.correct` from the viewer.

Input: an image layer that carries a case (opened by this plugin's reader or the sample), or a
file (case ``.h5``, fastMRI, ISMRMRD). Options: method (whatever the catalogue's
:data:`mrideblur.mri.METHODS` lists when the widget is made), coil maps, iterations,
torch device, seed. The run happens on a napari ``thread_worker`` with napari's progress bar;
Cancel makes the estimator stop at its next poll and the estimate so far is shown. A stack of
slices is corrected slice by slice (``correct`` does it), the progress bar covering the whole.

Results, as layers named after the input: ``corrected (<method>)``; ``uncorrected`` (SENSE
with the same coil maps and no motion, ``Result.uncorrected``: the reference the PSNR and the
difference compare against); ``uncertainty`` (own colormap, when the method returns one); ``coil maps`` (a stack
over coils); ``difference`` (corrected minus uncorrected, the uncorrected scaled onto the
corrected by least squares); plus the motion plot (rotation and translations against shot)
and PSNR against the truth when the case has one (:func:`mrideblur.shell.correction_scores`);
a line when the correction did not lower the data misfit (``report["data_fit"]``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ._layers import CASE_KEY, LayerData, case_layers, case_scale, contrast
from ._motion_plot import MotionPlot
from ._task import Task, TaskControls

__all__ = ["CorrectionOutcome", "CorrectionWidget", "available_devices", "correction_layers"]

#: The input combo box entry that means "the file named below".
FILE_ITEM = "file below…"


def available_devices() -> list[str]:
    """torch devices to offer: ``cpu``, then ``cuda`` / ``mps`` when present."""
    import torch

    out = ["cpu"]
    if torch.cuda.is_available():
        out.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


@dataclass
class CorrectionOutcome:
    """What one run of the widget produced (``CorrectionWidget.outcome``).

    Attributes
    ----------
    name : str
        Base name of the layers (the input layer's name, or the file's stem).
    case : mrideblur.io.case.Case
    result : mrideblur.mri.Result
    uncorrected : complex ndarray
        SENSE image without motion correction, same coil maps as ``result`` (``result.uncorrected``).
    psnr_db : dict or None
        ``{"uncorrected": dB, "corrected": dB}`` against ``case.truth["image"]`` (project
        convention: magnitudes, least-squares scale inside the object).
    seconds : float
    from_file : bool
        The case was read from a file (its own layers are added too).
    """

    name: str
    case: Any
    result: Any
    uncorrected: np.ndarray
    psnr_db: dict[str, float] | None = None
    seconds: float = 0.0
    from_file: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def cancelled(self) -> bool:
        return bool(self.result.report.get("cancelled"))


def run_correction(case: Any, path: str | None, name: str, parameters: dict[str, Any], progress, cancel) -> CorrectionOutcome:
    """The worker-thread part: read (when given a file), correct, score. No Qt here.

    Parameters
    ----------
    case : Case or None
        The case, or None to read ``path``.
    path : str or None
    name : str
    parameters : dict
        ``method``, ``coils``, ``max_iter``, ``device``, ``seed`` for :func:`correct`.
    progress, cancel : callables passed to :func:`correct`

    Returns
    -------
    CorrectionOutcome
    """
    from mrideblur.mri import correct
    from mrideblur.shell import correction_scores, method_settings, quiet_data_fit_warning

    t0 = time.perf_counter()
    from_file = case is None
    if from_file:
        from mrideblur.io.case import load_case

        if path is None or not str(path).strip():
            raise ValueError("input: choose a layer with k-space (open a case .h5, or File > Open Sample) or a file")
        p = Path(str(path).strip())
        if p.name.lower().endswith((".nii", ".nii.gz")):
            raise ValueError(f"{p}: a NIfTI image carries no k-space; motion correction needs a case .h5, "
                             "fastMRI or ISMRMRD file")
        case = load_case(p)
    method = parameters["method"]
    settings = method_settings("kspace", method, **{k: v for k, v in parameters.items() if k != "method"})
    with quiet_data_fit_warning():  # the widget says it in its own words
        result = correct(case.kspace, case.shot_index, method=method, sens=case.sens, progress=progress,
                         cancel=cancel, stack=case.kind == "stack", **settings)
    scores = correction_scores(result, case.truth.get("image")).get("psnr_db")
    return CorrectionOutcome(name=name, case=case, result=result, uncorrected=result.uncorrected, psnr_db=scores,
                             seconds=time.perf_counter() - t0, from_file=from_file, parameters=dict(parameters))


def _layers_take_axis_labels() -> bool:
    """Whether napari's layers accept ``axis_labels`` (napari >= 0.6)."""
    import inspect

    from napari.layers import Image

    return "axis_labels" in inspect.signature(Image.__init__).parameters


def correction_layers(outcome: CorrectionOutcome) -> list[LayerData]:
    """Layer data tuples of a correction's results (module notes), bottom to top."""
    case, res, name = outcome.case, outcome.result, outcome.name
    scale = case_scale(case)
    method = outcome.parameters.get("method", res.report.get("method", ""))
    corrected = np.abs(res.image).astype(np.float32)
    unc = np.abs(outcome.uncorrected).astype(np.float64)
    a = float(np.sum(unc * corrected) / max(np.sum(unc * unc), 1e-30))
    diff = (corrected - a * unc).astype(np.float32)
    sens = np.abs(res.sens).astype(np.float32)
    if case.kind == "stack":  # (slices, coils, ny, nx) -> (coils, slices, ny, nx): slices share the image's axis
        sens = np.ascontiguousarray(sens.transpose(1, 0, 2, 3))
    uncorrected = unc.astype(np.float32)
    layers: list[LayerData] = [
        (uncorrected, {"name": f"{name} uncorrected", "scale": scale, "colormap": "gray", "visible": False,
                       "contrast_limits": contrast(uncorrected)}, "image"),
        (diff, {"name": f"{name} difference", "scale": scale, "colormap": "PiYG", "visible": False,
                "contrast_limits": contrast(diff, symmetric=True)}, "image"),
        (sens, {"name": f"{name} coil maps", "scale": (1.0, *scale), "colormap": "viridis", "visible": False,
                "contrast_limits": (0.0, float(sens.max()) or 1.0)}, "image"),
    ]
    if _layers_take_axis_labels():  # the slider of the coil axis says "coil"
        spatial = {"2d": ("y", "x"), "stack": ("slice", "y", "x"), "3d": ("z", "y", "x")}[case.kind]
        layers[2][1]["axis_labels"] = ("coil", *spatial)
    uncertainty = getattr(res, "uncertainty", None)
    if uncertainty is not None:
        u = np.abs(np.asarray(uncertainty)).astype(np.float32)
        layers.append((u, {"name": f"{name} uncertainty", "scale": scale, "colormap": "inferno", "visible": False,
                           "contrast_limits": contrast(u)}, "image"))
    meta = {"report": res.report, "motion": res.motion, "psnr_db": outcome.psnr_db,
            "voxel_size_mm": case.voxel_size_mm}
    layers.append((corrected, {"name": f"{name} corrected ({method})", "scale": scale, "colormap": "gray",
                               "contrast_limits": contrast(corrected), "metadata": meta}, "image"))
    return layers


class CorrectionWidget(TaskControls, QWidget):
    """Dock widget that runs a motion correction (module notes).

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer

    Attributes
    ----------
    outcome : CorrectionOutcome or None
        The last finished run.
    task : Task or None
        The running (or last) background task.
    run_finished : Signal(object)
        Emitted in the GUI thread after each run, with the :class:`CorrectionOutcome` (its layers
        already added) or the exception that stopped it.
    """

    run_finished = Signal(object)
    failure_label = "mrideblur correction"

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        from mrideblur.estimators.aligned_sense import COIL_OPTIONS
        from mrideblur.mri import METHODS

        self.viewer = napari_viewer
        self.outcome: CorrectionOutcome | None = None
        self.task: Task | None = None

        self.input = QComboBox()
        self.input.setToolTip("image layer opened from a k-space file or the sample (it carries the k-space)")
        self.file = QLineEdit()
        self.file.setPlaceholderText("case .h5, fastMRI or ISMRMRD file")
        browse = QPushButton("…")
        browse.setMaximumWidth(28)
        browse.clicked.connect(self._browse)
        file_row = QHBoxLayout()
        file_row.setContentsMargins(0, 0, 0, 0)
        file_row.addWidget(self.file)
        file_row.addWidget(browse)
        file_box = QWidget()
        file_box.setLayout(file_row)

        self.method = QComboBox()
        self.method.addItems(list(METHODS))  # the catalogue's, read now: methods are added over time
        if "aligned-sense" in METHODS:
            self.method.setCurrentText("aligned-sense")
        self.coils = QComboBox()
        self.coils.addItems(list(COIL_OPTIONS))
        self.coils.setCurrentText("joint" if "joint" in COIL_OPTIONS else COIL_OPTIONS[0])
        self.coils.setToolTip("coil maps: ESPIRiT on the corrupted data, or re-estimated jointly with the motion "
                              "(known maps stored in a case file are always used)")
        self.iterations = QSpinBox()
        self.iterations.setRange(5, 5000)
        self.iterations.setValue(60)
        self.iterations.setToolTip("iterations at the coarsest level (max_iter of mrideblur.mri.correct)")
        self.device = QComboBox()
        self.device.setEditable(True)
        self.device.addItems(available_devices())
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.side_by_side = QCheckBox("show uncorrected | corrected | truth side by side")
        self.side_by_side.setChecked(True)

        form = QFormLayout()
        form.addRow("input", self.input)
        form.addRow("or file", file_box)
        form.addRow("method", self.method)
        form.addRow("coils", self.coils)
        form.addRow("iterations", self.iterations)
        form.addRow("device", self.device)
        form.addRow("seed", self.seed)

        buttons = self._make_controls("Correct")

        self.psnr_label = QLabel("")
        self.psnr_label.setWordWrap(True)
        self.plot = MotionPlot()

        layout = QVBoxLayout()
        layout.addLayout(form)
        layout.addWidget(self.side_by_side)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.psnr_label)
        layout.addWidget(self.plot, stretch=1)
        self.setLayout(layout)

        layers = self.viewer.layers
        layers.events.inserted.connect(self._refresh_inputs)
        layers.events.removed.connect(self._refresh_inputs)
        layers.events.moved.connect(self._refresh_inputs)
        self.viewer.dims.events.current_step.connect(self._on_dims)
        self._refresh_inputs()

    # ------------------------------------------------------------------ input

    def _case_layers(self) -> list[Any]:
        return [lay for lay in self.viewer.layers if CASE_KEY in getattr(lay, "metadata", {})]

    def _refresh_inputs(self, event: Any = None) -> None:
        if event is not None and getattr(event, "type", "") == "inserted":
            layer = event.value
            layer.events.name.connect(self._refresh_inputs)
        current = self.input.currentText()
        names = [lay.name for lay in reversed(self._case_layers())]
        self.input.blockSignals(True)
        self.input.clear()
        self.input.addItems(names + [FILE_ITEM])
        if current in names:
            self.input.setCurrentText(current)
        elif names:
            self.input.setCurrentText(names[0])
        else:
            self.input.setCurrentText(FILE_ITEM)
        self.input.blockSignals(False)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "k-space file", "", "HDF5 (*.h5 *.hdf5);;all files (*)")
        if path:
            self.file.setText(path)
            self.input.setCurrentText(FILE_ITEM)

    def parameters(self) -> dict[str, Any]:
        """Keyword arguments for :func:`mrideblur.mri.correct` from the controls (those a method
        does not take are left out when it runs)."""
        return {"method": self.method.currentText(), "coils": self.coils.currentText(),
                "max_iter": int(self.iterations.value()), "device": self.device.currentText().strip() or "cpu",
                "seed": int(self.seed.value())}

    # ------------------------------------------------------------------ run

    @property
    def running(self) -> bool:
        return self.task is not None and self.cancel_button.isEnabled()

    def run(self) -> Task | None:
        """Start a correction in the background (no-op while one runs). Returns the task."""
        if self.running:
            return None
        choice = self.input.currentText()
        if choice and choice != FILE_ITEM and choice in self.viewer.layers:
            layer = self.viewer.layers[choice]
            case, path, name = layer.metadata[CASE_KEY], None, layer.name
        else:
            path = self.file.text().strip()
            case, name = None, (Path(path).name.split(".")[0] if path else "input")
        params = self.parameters()
        return self._start_task(lambda progress, cancel: run_correction(case, path, name, params, progress, cancel),
                                f"mrideblur {params['method']}", f"running {params['method']} on {name} …")

    def _done(self, outcome: CorrectionOutcome) -> None:
        from napari.layers import Layer

        from mrideblur.shell import data_fit_warning

        self._finish()
        self.outcome = outcome
        new: list[LayerData] = []
        if outcome.from_file:
            new += case_layers(outcome.case, outcome.name)
        new += correction_layers(outcome)
        for data, kwargs, kind in new:
            if kwargs["name"] in self.viewer.layers:
                self.viewer.layers.remove(kwargs["name"])
            self.viewer.add_layer(Layer.create(data, kwargs, kind))
        state = "cancelled — showing the estimate so far" if outcome.cancelled else "done"
        self.status.setText(f"{outcome.parameters['method']}: {state} in {outcome.seconds:.1f} s")
        lines = []
        if outcome.psnr_db:
            p = outcome.psnr_db
            lines.append(f"PSNR vs truth: uncorrected {p['uncorrected']:.2f} dB, corrected {p['corrected']:.2f} dB")
        warning = data_fit_warning(outcome.result.report)
        if warning:
            lines.append(f"warning: {warning}")
        self.psnr_label.setText("\n".join(lines))
        self._plot_motion()
        if self.side_by_side.isChecked():
            self.show_side_by_side()
        self.run_finished.emit(outcome)

    # ------------------------------------------------------------------ display

    def _slice_index(self) -> int:
        """Slice of a stack result shown in the viewer (for the motion plot)."""
        out = self.outcome
        name = f"{out.name} corrected ({out.parameters['method']})"
        if name not in self.viewer.layers:
            return out.result.motion.shape[0] // 2
        layer = self.viewer.layers[name]
        pos = layer.world_to_data(self.viewer.dims.point)
        return int(np.clip(round(float(pos[0])), 0, out.result.motion.shape[0] - 1))

    def _plot_motion(self) -> None:
        out = self.outcome
        if out is None:
            return
        m = np.asarray(out.result.motion)
        truth = out.case.truth.get("motion")
        title = f"{out.name}: {out.parameters['method']}"
        if m.ndim == 3:  # a stack: the slice on screen
            i = self._slice_index()
            m = m[i]
            if truth is not None and np.ndim(truth) == 3:
                truth = truth[i]
            title += f", slice {i}"
        self.plot.plot(m, truth, title)

    def _on_dims(self, event: Any = None) -> None:
        if self.outcome is not None and np.ndim(self.outcome.result.motion) == 3:
            self._plot_motion()

    def show_side_by_side(self) -> None:
        """Grid view, left to right: the uncorrected and the corrected image (SENSE with the same
        coil maps, without and with the motion) and, when known, the truth; every other layer
        hidden; a caption (with PSNR) above."""
        out = self.outcome
        if out is None:
            return
        panels = [(f"{out.name} uncorrected", "uncorrected", "uncorrected"),
                  (f"{out.name} corrected ({out.parameters['method']})", "corrected", "corrected"),
                  (f"{out.name} truth", "truth", None)]
        panels = [p for p in panels if p[0] in self.viewer.layers]
        layers = self.viewer.layers
        for layer in layers:
            layer.visible = any(layer.name == p[0] for p in panels)
        # napari fills the grid from the bottom of the layer list: move the panels up in order.
        for name, _, _ in panels:
            layers.move(layers.index(name), len(layers))
        canvas = getattr(self.viewer, "canvas", None)  # napari >= 0.9; older: viewer.grid / text_overlay
        grid = canvas.grid if canvas is not None else self.viewer.grid
        text = canvas.overlays.text if canvas is not None else self.viewer.text_overlay
        grid.shape = (1, len(panels))
        grid.enabled = True
        psnr = out.psnr_db or {}
        captions = [label + (f" {psnr[key]:.1f} dB" if key in psnr else "") for _, label, key in panels]
        text.text = "  |  ".join(captions)
        text.position = "top_center"
        text.font_size = 10
        text.visible = True
        self.viewer.reset_view()

    def closeEvent(self, event: Any) -> None:
        self.cancel()
        super().closeEvent(event)
