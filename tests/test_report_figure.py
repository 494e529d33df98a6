"""The motion-correction report figure (report.png): what it shows, not only that it draws."""

import numpy as np
import pytest

from mrideblur.plots import RESIDUAL_LABEL, correction_figure


def _case(nshot=8, ncomp=3, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.uniform(size=(16, 16)) + 0j
    truth = rng.normal(size=(nshot, ncomp))
    truth[0] = 0
    est = truth + 0.1 * rng.normal(size=truth.shape)
    est[0] = 0
    residual = list(rng.uniform(0.01, 0.1, size=nshot))
    return img, truth, est, residual


def _axes(fig):
    return {ax.get_title(): ax for ax in fig.get_axes()}


def _lines(ax, gid):
    return [line for line in ax.get_lines() if line.get_gid() == gid]


def test_2d_figure_with_truth_shows_units_truth_and_percent_residuals(tmp_path):
    img, truth, est, residual = _case()
    fit = {"uncorrected": 0.088, "corrected": 0.027, "improved": True}
    fig = correction_figure(img, img, est, residual, truth_image=np.abs(img), truth_motion=truth,
                            title="t", data_fit=fit)
    axes = _axes(fig)
    assert {"uncorrected", "corrected", "truth", "rotation", "translation", "data residual per shot"} <= set(axes)

    rot, tra, res = axes["rotation"], axes["translation"], axes["data residual per shot"]
    assert "degrees" in rot.get_ylabel() and "pixels" in tra.get_ylabel()
    for ax in (rot, tra, res):
        assert ax.get_xlabel() == "shot (acquisition order)"
    # one rotation and two translations, each an estimate over its truth
    assert len(_lines(rot, "estimate")) == 1 and len(_lines(rot, "truth")) == 1
    assert len(_lines(tra, "estimate")) == 2 and len(_lines(tra, "truth")) == 2
    np.testing.assert_allclose(_lines(rot, "truth")[0].get_ydata(), truth[:, 0])
    np.testing.assert_allclose([ln.get_ydata() for ln in _lines(tra, "estimate")], est[:, 1:].T)
    for ax in (rot, tra):
        for t, e in zip(_lines(ax, "truth"), _lines(ax, "estimate")):
            # the truth is thick and underneath, the estimate thin and on top, same colour
            assert t.get_linewidth() > 3 * e.get_linewidth() and t.get_zorder() < e.get_zorder()
            assert t.get_color() == e.get_color()
        legend = [text.get_text() for text in ax.get_legend().get_texts()]
        assert "truth" in legend and "estimate" in legend
    assert {"ty", "tx"} <= {text.get_text() for text in tra.get_legend().get_texts()}

    # residuals in percent, with the all-shot misfits for reference
    assert res.get_ylabel() == RESIDUAL_LABEL and "(%)" in RESIDUAL_LABEL and "relative residual" in RESIDUAL_LABEL
    np.testing.assert_allclose([p.get_height() for p in res.patches], 100 * np.asarray(residual))
    levels = sorted(float(ln.get_ydata()[0]) for ln in res.get_lines())
    assert levels == pytest.approx([2.7, 8.8])
    assert any("uncorrected" in t.get_text() for t in res.get_legend().get_texts())

    fig.savefig(tmp_path / "report.png", dpi=50)
    assert (tmp_path / "report.png").stat().st_size > 1000


def test_2d_figure_without_truth_has_no_truth_lines():
    img, _, est, residual = _case()
    fig = correction_figure(img, img, est, residual)
    axes = _axes(fig)
    assert "truth" not in axes
    assert len(_lines(axes["rotation"], "estimate")) == 1 and not _lines(axes["rotation"], "truth")
    assert len(_lines(axes["translation"], "estimate")) == 2 and not _lines(axes["translation"], "truth")
    assert axes["rotation"].get_legend() is None  # one unlabelled line needs no key
    assert not axes["data residual per shot"].get_lines()  # no data_fit given: bars only


def test_3d_figure_splits_three_rotations_and_three_translations_in_voxels():
    img, truth, est, residual = _case(ncomp=6)
    vol = np.stack([img] * 3)
    fig = correction_figure(vol, vol, est, residual, truth_motion=truth, uncertainty=np.abs(vol))
    axes = _axes(fig)
    assert "uncertainty (posterior std)" in axes
    rot, tra = axes["rotation"], axes["translation"]
    assert "degrees" in rot.get_ylabel() and "voxels" in tra.get_ylabel()
    for ax in (rot, tra):
        assert len(_lines(ax, "estimate")) == 3 and len(_lines(ax, "truth")) == 3
    assert {"rz", "ry", "rx"} <= {t.get_text() for t in rot.get_legend().get_texts()}


def test_reliability_panel_only_with_an_uncertainty_and_a_truth():
    img, truth, est, residual = _case()
    t = np.abs(img)
    fig = correction_figure(img, img, est, residual, truth_image=t, truth_motion=truth, uncertainty=0.01 * t + 1e-3)
    axes = _axes(fig)
    assert "reliability" in axes
    ax = axes["reliability"]
    assert len(ax.get_lines()) == 2  # the diagonal and the binned curve
    assert "std/RMSE" in ax.get_legend().get_texts()[1].get_text()
    assert "reliability" not in _axes(correction_figure(img, img, est, residual, uncertainty=t))
    assert "reliability" not in _axes(correction_figure(img, img, est, residual, truth_image=t))


def test_mismatched_truth_motion_is_not_drawn():
    img, truth, est, residual = _case()
    fig = correction_figure(img, img, est, residual, truth_motion=truth[:-1])
    assert not _lines(_axes(fig)["rotation"], "truth")
