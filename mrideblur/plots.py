"""Report figures (matplotlib, Agg backend, no pyplot state): what a user looks at first."""

from __future__ import annotations

import numpy as np

__all__ = ["correction_figure"]


def _middle(img: np.ndarray) -> np.ndarray:
    """A 2D view: the image itself, or the middle slice of a volume / stack."""
    a = np.abs(np.asarray(img))
    return a if a.ndim == 2 else a[a.shape[0] // 2]


def correction_figure(uncorrected: np.ndarray, corrected: np.ndarray, motion: np.ndarray,
                      residual_per_shot: list[float], truth_image: np.ndarray | None = None,
                      truth_motion: np.ndarray | None = None, title: str = "",
                      uncertainty: np.ndarray | None = None):
    """Uncorrected vs corrected image (and truth), motion traces against shot, residual per shot.

    Parameters
    ----------
    uncorrected, corrected : complex images ``(ny, nx)`` (a volume shows its middle slice)
    motion : (nshot, 3) or (nshot, 6) estimated motion (a stack shows its middle slice's)
    residual_per_shot : per-shot relative data-consistency residual
    truth_image, truth_motion : optional ground truth, drawn when given
    title : figure title
    uncertainty : optional per-pixel posterior standard deviation (JSMoCo), its own panel

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    m = np.asarray(motion)
    if m.ndim == 3:
        m = m[m.shape[0] // 2]
    tm = None if truth_motion is None else np.asarray(truth_motion)
    if tm is not None and tm.ndim == 3:
        tm = tm[tm.shape[0] // 2]
    panels = [("uncorrected", uncorrected), ("corrected", corrected)] + ([("truth", truth_image)] if truth_image is not None else [])
    if uncertainty is not None:
        panels.append(("uncertainty (posterior std)", uncertainty))
    fig = Figure(figsize=(4 * (len(panels) + 2), 4.2), layout="constrained")
    axes = fig.subplots(1, len(panels) + 2)
    for ax, (name, img) in zip(axes, panels):
        view = _middle(img)  # each panel on its own scale (the estimates' scale is arbitrary)
        unc = name.startswith("uncertainty")
        im = ax.imshow(view, cmap="magma" if unc else "gray", vmin=0, vmax=float(np.percentile(view, 99.5)) or 1.0)
        if unc:
            fig.colorbar(im, ax=ax, shrink=0.8)
        ax.set_title(name)
        ax.axis("off")
    shots = np.arange(m.shape[0])
    ax = axes[len(panels)]
    nrot = 1 if m.shape[1] == 3 else 3
    labels = ["rot (deg)"] if nrot == 1 else ["rz (deg)", "ry (deg)", "rx (deg)"]
    labels += ["ty (px)", "tx (px)"] if nrot == 1 else ["tz (vx)", "ty (vx)", "tx (vx)"]
    for j, lab in enumerate(labels):
        line, = ax.plot(shots, m[:, j], "o-", ms=3, label=lab)
        if tm is not None:
            ax.plot(shots, tm[:, j], "--", color=line.get_color(), lw=1)
    ax.set_xlabel("shot")
    ax.set_title("motion (dashed: truth)" if tm is not None else "motion")
    ax.legend(fontsize=7)
    ax = axes[-1]
    ax.bar(np.arange(len(residual_per_shot)), residual_per_shot)
    ax.set_xlabel("shot")
    ax.set_title("data residual per shot")
    if title:
        fig.suptitle(title)
    return fig
