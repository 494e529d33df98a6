"""A matplotlib canvas for the estimated motion: rotation and translations against shot."""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtWidgets import QSizePolicy

__all__ = ["MotionPlot"]


class MotionPlot(FigureCanvasQTAgg):
    """Two panels against shot number: rotation(s) in degrees, translations in pixels.

    Estimates are drawn as solid lines with markers, the truth (when known) dashed in the same
    colour. Colours follow napari's dark theme.
    """

    def __init__(self) -> None:
        self.figure = Figure(figsize=(3.6, 3.4), layout="constrained", facecolor="#262930")
        super().__init__(self.figure)
        self.setMinimumHeight(260)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.axes = self.figure.subplots(2, 1, sharex=True)
        self.motion: np.ndarray | None = None
        self.clear()

    def _style(self) -> None:
        for ax in self.axes:
            ax.set_facecolor("#262930")
            ax.tick_params(colors="#d6d0ce", labelsize=7)
            for side in ax.spines.values():
                side.set_color("#5a626c")
            ax.xaxis.label.set_color("#d6d0ce")
            ax.yaxis.label.set_color("#d6d0ce")
            ax.title.set_color("#d6d0ce")

    def clear(self) -> None:
        """Empty panels with their labels."""
        for ax in self.axes:
            ax.clear()
        self.axes[0].set_ylabel("rotation (deg)", fontsize=8)
        self.axes[1].set_ylabel("translation (px)", fontsize=8)
        self.axes[1].set_xlabel("shot", fontsize=8)
        self.axes[0].set_title("estimated motion (run a correction)", fontsize=8)
        self._style()
        self.draw_idle()

    def plot(self, motion: np.ndarray, truth: np.ndarray | None = None, title: str = "") -> None:
        """Draw one motion table.

        Parameters
        ----------
        motion : (nshot, 3) or (nshot, 6)
            ``rot_deg, ty, tx`` (2D) or ``rz, ry, rx, tz, ty, tx`` (3D), relative to shot 0.
        truth : same shape, optional
        title : str
        """
        m = np.asarray(motion, dtype=float)
        t = None if truth is None or np.shape(truth) != m.shape else np.asarray(truth, dtype=float)
        self.motion = m
        for ax in self.axes:
            ax.clear()
        nrot = 1 if m.shape[1] == 3 else 3
        rot_names = ["rot"] if nrot == 1 else ["rz", "ry", "rx"]
        trans_names = ["ty", "tx"] if nrot == 1 else ["tz", "ty", "tx"]
        shots = np.arange(m.shape[0])
        colours = ["#ffb000", "#00c2ff", "#ff4fa0"]
        for ax, cols, names in ((self.axes[0], range(nrot), rot_names),
                                (self.axes[1], range(nrot, m.shape[1]), trans_names)):
            for c, (j, name) in enumerate(zip(cols, names)):
                ax.plot(shots, m[:, j], "o-", ms=3, lw=1.2, color=colours[c], label=name)
                if t is not None:
                    ax.plot(shots, t[:, j], "--", lw=1, color=colours[c])
            leg = ax.legend(fontsize=7, loc="best", frameon=False)
            for text in leg.get_texts():
                text.set_color("#d6d0ce")
        self.axes[0].set_ylabel("rotation (deg)", fontsize=8)
        self.axes[1].set_ylabel("translation (px)", fontsize=8)
        self.axes[1].set_xlabel("shot", fontsize=8)
        self.axes[0].set_title(title + (" (dashed: truth)" if t is not None else ""), fontsize=8)
        self._style()
        self.draw_idle()
