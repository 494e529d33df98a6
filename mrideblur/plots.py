"""Report figures (matplotlib, Agg backend, no pyplot state): what a user looks at first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["RESIDUAL_LABEL", "RESIDUAL_NOTE", "correction_figure"]

#: y label of the per-shot residual panel (the values of ``report["residual_per_shot"]``).
RESIDUAL_LABEL = "relative residual ‖M_s(Ax − y)‖ / ‖M_s y‖ (%)"

#: Note under the residual panel: how to read a bar.
RESIDUAL_NOTE = ("Each shot is relative to its own signal: a shot with little of it (lines far from\n"
                 "the k-space centre) sits at the noise level even when its motion is right.")

# Truth: a thick, light line underneath; estimate: a thin line with dots on top, same colour.
_TRUTH_STYLE = {"lw": 6.0, "alpha": 0.3, "solid_capstyle": "round", "zorder": 1}
_ESTIMATE_STYLE = {"lw": 1.2, "marker": "o", "ms": 3.5, "zorder": 3}


def _middle(img: np.ndarray) -> np.ndarray:
    """A 2D view: the image itself, or the middle slice of a volume / stack."""
    a = np.abs(np.asarray(img))
    return a if a.ndim == 2 else a[a.shape[0] // 2]


def correction_figure(uncorrected: np.ndarray, corrected: np.ndarray, motion: np.ndarray,
                      residual_per_shot: Sequence[float], truth_image: np.ndarray | None = None,
                      truth_motion: np.ndarray | None = None, title: str = "",
                      uncertainty: np.ndarray | None = None,
                      data_fit: Mapping[str, Any] | None = None) -> Any:
    """A motion correction at a glance: images on top, motion and per-shot residuals below.

    Top row: uncorrected, corrected (and truth, and the posterior standard deviation when
    given), each on its own grey scale (an estimate's scale is arbitrary).  Bottom row, all
    against the shot number in acquisition order: rotations (degrees), translations (pixels,
    voxels in 3D) and the per-shot relative data residual in percent.  An estimated motion is
    a thin line with dots, drawn over its truth as a thick light line of the same colour.

    Parameters
    ----------
    uncorrected, corrected : (ny, nx) complex or real array
        Images; a volume ``(nz, ny, nx)`` or a stack shows its middle slice.
    motion : (nshot, 3) or (nshot, 6) float array
        Estimated motion per shot: ``[rot_deg, ty, tx]`` (degrees, pixels) or
        ``[rz, ry, rx, tz, ty, tx]`` (degrees, voxels); a stack ``(slices, nshot, k)`` shows its
        middle slice's.
    residual_per_shot : (nshot,) sequence of float
        ``||M_s(A x - y)|| / ||M_s y||`` per shot ``s`` (dimensionless, from
        :func:`mrideblur.estimators.mri_common.residuals`; ``report["residual_per_shot"]``);
        drawn in percent.
    truth_image : array like ``corrected``, optional
        Drawn as a third image when given.
    truth_motion : array like ``motion``, optional
        Drawn under the estimate when given.
    title : str
        Figure title.
    uncertainty : array like ``corrected``, optional
        Per-pixel posterior standard deviation (JSMoCo), its own panel with a colour bar; with
        ``truth_image`` too, a fourth bottom panel ``"reliability"``: the RMS error against the
        RMS std of ten equally populated std bins inside the object
        (:func:`mrideblur.metrics.reliability`), on the diagonal when the map is calibrated.
    data_fit : mapping, optional
        ``report["data_fit"]``: its ``"uncorrected"`` and ``"corrected"`` relative misfits over
        all shots (``||A x - y|| / ||y||``), when present, are drawn as horizontal lines on the
        residual panel for reference, and ``"uncorrected_per_shot"`` as a mark over each bar.

    Returns
    -------
    matplotlib.figure.Figure
        With an Agg canvas.  The motion lines carry ``gid`` ``"estimate"`` or ``"truth"``; the
        motion panels are titled ``"rotation"`` and ``"translation"``, the residual panel
        ``"data residual per shot"``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    m = np.asarray(motion, dtype=np.float64)
    if m.ndim == 3:
        m = m[m.shape[0] // 2]
    tm = None if truth_motion is None else np.asarray(truth_motion, dtype=np.float64)
    if tm is not None and tm.ndim == 3:
        tm = tm[tm.shape[0] // 2]
    if tm is not None and tm.shape != m.shape:
        tm = None
    panels = [("uncorrected", uncorrected), ("corrected", corrected)]
    if truth_image is not None:
        panels.append(("truth", truth_image))
    if uncertainty is not None:
        panels.append(("uncertainty (posterior std)", uncertainty))

    fig = Figure(figsize=(max(4.0 * len(panels), 14.0), 8.4), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.0, 0.95])
    for ax, (name, img) in zip(np.atleast_1d(top.subplots(1, len(panels))), panels):
        view = _middle(img)  # each panel on its own scale (the estimates' scale is arbitrary)
        unc = name.startswith("uncertainty")
        im = ax.imshow(view, cmap="magma" if unc else "gray", vmin=0, vmax=float(np.percentile(view, 99.5)) or 1.0)
        if unc:
            top.colorbar(im, ax=ax, shrink=0.8)
        ax.set_title(name)
        ax.axis("off")

    calib = None
    if uncertainty is not None and truth_image is not None and np.shape(uncertainty) == np.shape(truth_image):
        from .metrics import reliability

        calib = reliability(_middle(uncertainty), _middle(corrected), _middle(truth_image))
    axes = bottom.subplots(1, 4 if calib is not None else 3)
    ax_rot, ax_tra, ax_res = axes[:3]
    if calib is not None:
        _reliability_panel(axes[3], calib)
    shots = np.arange(m.shape[0])
    three_d = m.shape[1] == 6
    nrot = 3 if three_d else 1
    unit = "voxels" if three_d else "pixels"
    names = (["rz", "ry", "rx"] if three_d else ["rotation"]) + (["tz", "ty", "tx"] if three_d else ["ty", "tx"])
    colors = [f"C{j}" for j in range(m.shape[1])]
    for ax, cols, what, ylabel in ((ax_rot, range(nrot), "rotation", "rotation (degrees)"),
                                   (ax_tra, range(nrot, m.shape[1]), "translation", f"translation ({unit})")):
        handles = []
        for j in cols:
            if tm is not None:
                ax.plot(shots, tm[:, j], color=colors[j], gid="truth", label="_nolegend_", **_TRUTH_STYLE)
            line, = ax.plot(shots, m[:, j], color=colors[j], gid="estimate", label=names[j], **_ESTIMATE_STYLE)
            handles.append(line)
        key_color = "0.4"
        if len(handles) == 1:  # one component: the legend only says which line is which
            key_color, handles = handles[0].get_color(), []
        if tm is not None:
            handles += [Line2D([], [], color=key_color, **_ESTIMATE_STYLE, label="estimate"),
                        Line2D([], [], color=key_color, **_TRUTH_STYLE, label="truth")]
        if handles:
            ax.legend(handles=handles, fontsize=8)
        ax.axhline(0.0, color="0.8", lw=0.8, zorder=0)
        ax.set_title(what)
        ax.set_xlabel("shot (acquisition order)")
        ax.set_ylabel(ylabel)
        ax.set_xticks(shots if len(shots) <= 16 else shots[:: int(np.ceil(len(shots) / 16))])

    res = 100.0 * np.asarray(residual_per_shot, dtype=np.float64)  # None (a rejected shot) -> nan
    ax_res.bar(np.arange(len(res)), np.nan_to_num(res), color="C0", label="corrected, per shot")
    fit = data_fit or {}
    levels = [float(np.nanmax(res, initial=0.0))]
    before = fit.get("uncorrected_per_shot")
    if before is not None and len(before) == len(res):
        before = 100.0 * np.asarray(before, dtype=np.float64)
        ax_res.plot(np.arange(len(res)), before, "_", ms=14, mew=2, color="0.35", label="uncorrected, per shot")
        levels.append(float(np.nanmax(before, initial=0.0)))
    for j, s in enumerate(fit.get("rejected_shots") or []):
        ax_res.axvspan(s - 0.45, s + 0.45, color="C3", alpha=0.25, lw=0,
                       label="rejected (lines re-filled by SENSE)" if j == 0 else None)
    for key, style in (("uncorrected", {"color": "0.35", "ls": "--"}), ("corrected", {"color": "C3", "ls": ":"})):
        value = fit.get(key)
        if isinstance(value, (int, float)) and np.isfinite(value):
            ax_res.axhline(100.0 * value, lw=1.5, label=f"{key}, all shots: {100.0 * value:.1f} %", **style)
            levels.append(100.0 * value)
    if len(levels) > 1:  # room above the bars for the legend
        ax_res.set_ylim(0.0, 1.45 * max(levels) or 1.0)
        ax_res.legend(fontsize=8, loc="upper left")
    ax_res.set_title("data residual per shot")
    ax_res.set_xlabel("shot (acquisition order)")
    bottom.supxlabel(RESIDUAL_NOTE, x=0.995, ha="right", fontsize=8, color="0.3")
    ax_res.set_ylabel(RESIDUAL_LABEL)
    ax_res.set_xticks(shots if len(shots) <= 16 else shots[:: int(np.ceil(len(shots) / 16))])
    if title:
        fig.suptitle(title)
    return fig


def _reliability_panel(ax: Any, calib: Mapping[str, Any]) -> None:
    """RMS error against RMS std per std bin, with the diagonal (a calibrated map)."""
    bs, be = np.asarray(calib["bin_std"]), np.asarray(calib["bin_rmse"])
    top = 1.1 * float(max(bs.max(initial=0.0), be.max(initial=0.0))) or 1.0
    ax.plot([0.0, top], [0.0, top], color="0.6", ls="--", lw=1.0, label="calibrated")
    ax.plot(bs, be, "o-", color="C3", ms=4, label=f"std/RMSE {calib['ratio']:.2f}, "
            f"|e| <= 2 std: {100 * calib['cover2']:.0f} %")
    ax.set_xlim(0.0, top)
    ax.set_ylim(0.0, top)
    ax.set_title("reliability")
    ax.set_xlabel("predicted std (RMS per bin)")
    ax.set_ylabel("actual error (RMS per bin)")
    ax.legend(fontsize=8, loc="upper left")
