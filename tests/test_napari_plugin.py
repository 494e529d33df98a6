"""napari plugin (napari_plugin/, import name napari_mrideblur): manifest, reader, writer, sample,
correction and deblur widgets, run in a real viewer (pytest-qt's ``make_napari_viewer``; under
Xvfb in tests/run.sh).

A screenshot of the viewer after a correction is written to ``$MRIDEBLUR_TEST_ARTIFACTS``
(default: the test's tmp_path) as ``napari_after_correction.png``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

if sys.platform.startswith("linux") and not any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
    pytest.skip("no display: run under xvfb-run -a (tests/run.sh does)", allow_module_level=True)
napari = pytest.importorskip("napari")
pytest.importorskip("pytestqt")
pytest.importorskip("napari_mrideblur")

import h5py

from mrideblur.io import read_nifti, write_nifti
from mrideblur.io.anatomy import mni_slice
from mrideblur.io.case import Case, write_case
from mrideblur.mri import simulate

PLUGIN = "napari-mrideblur"
SAMPLE_KEY = "motion_corrupted_mni"


def _wait_run(qtbot, widget, start, timeout_s: float):
    """Start a widget run inside waitSignal (so the signal cannot be missed) and return its payload."""
    with qtbot.waitSignal(widget.run_finished, timeout=int(timeout_s * 1000)) as blocker:
        start()
    out = blocker.args[0]
    if isinstance(out, Exception):
        raise out
    return out


def _correction_widget(viewer):
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Motion correction")
    return widget


def _small_case(size=48, ncoil=4, nshot=4, seed=1) -> Case:
    return simulate(mni_slice("axial", 0.55, size), ncoil=ncoil, nshot=nshot, motion="random", max_rot=2,
                    max_trans=2, noise=0.01, seed=seed)


# ------------------------------------------------------------------------------------ manifest


def test_manifest_validates_and_napari_lists_every_contribution(make_napari_viewer):
    npe2 = shutil.which("npe2", path=str(Path(sys.executable).parent)) or shutil.which("npe2")
    assert npe2, "npe2 command not found"
    run = subprocess.run([npe2, "validate", "napari_mrideblur", "--imports"], check=False, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0 and "valid" in run.stdout, run.stdout + run.stderr

    from npe2 import PluginManager

    make_napari_viewer()  # napari discovers its plugins
    pm = PluginManager.instance()
    manifest = pm.get_manifest(PLUGIN)
    c = manifest.contributions
    assert {"*.h5", "*.nii.gz"} <= set(c.readers[0].filename_patterns)
    assert [w.layer_types for w in c.writers] == [["image"]] and ".nii.gz" in c.writers[0].filename_extensions
    assert [s.key for s in c.sample_data] == [SAMPLE_KEY]
    assert {w.display_name for w in c.widgets} == {"Motion correction", "Deblur"}
    assert PLUGIN in {r.plugin_name for r in pm.iter_compatible_readers(["case.h5"])}
    assert PLUGIN in {r.plugin_name for r in pm.iter_compatible_readers(["head.nii.gz"])}
    assert PLUGIN in {w.plugin_name for w in pm.iter_compatible_writers(["image"])}


# -------------------------------------------------------------------------------------- reader


def test_reader_case_file_layers_shape_and_mm_scale(make_napari_viewer, tmp_path):
    case = _small_case()
    case.voxel_size_mm = (1.5, 0.75)
    path = write_case(tmp_path / "scan.h5", case)
    viewer = make_napari_viewer()
    layers = viewer.open(path, plugin=PLUGIN)
    names = [lay.name for lay in layers]
    assert names == ["scan", "scan k-space (log)", "scan truth"]
    image = viewer.layers["scan"]
    assert image.data.shape == (48, 48)
    np.testing.assert_allclose(image.scale, (1.5, 0.75))
    assert image.metadata["mrideblur_case"].kspace.shape == (4, 48, 48)
    assert not viewer.layers["scan k-space (log)"].visible
    np.testing.assert_allclose(viewer.layers["scan truth"].data, np.abs(case.truth["image"]), rtol=1e-6)
    # the uncorrected coil combination is the root-sum-of-squares of the coil images
    coil_images = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(case.kspace, axes=(-2, -1)), norm="ortho"),
                                  axes=(-2, -1))
    np.testing.assert_allclose(image.data, np.sqrt((np.abs(coil_images) ** 2).sum(0)), rtol=1e-4, atol=1e-6)


def test_reader_fastmri_stack_and_ismrmrd(make_napari_viewer, tmp_path):
    rng = np.random.default_rng(0)
    k = (rng.standard_normal((2, 3, 32, 16)) + 1j * rng.standard_normal((2, 3, 32, 16))).astype(np.complex64)
    fm = tmp_path / "file_brain.h5"
    with h5py.File(fm, "w") as f:  # fastMRI layout: (slices, coils, readout 2x oversampled, ky)
        f["kspace"] = k
    viewer = make_napari_viewer()
    viewer.open(fm, plugin=PLUGIN)
    layer = viewer.layers["file_brain"]
    assert layer.data.shape == (2, 16, 16)  # (slices, ky, readout cropped to half)
    assert layer.metadata["mrideblur_case"].kind == "stack"
    assert "assumed" in layer.metadata

    ismrmrd = pytest.importorskip("ismrmrd")
    xml = """<?xml version="1.0" encoding="utf-8"?>
<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD"><encoding>
<encodedSpace><matrixSize><x>16</x><y>8</y><z>1</z></matrixSize>
<fieldOfView_mm><x>320</x><y>160</y><z>4</z></fieldOfView_mm></encodedSpace>
<reconSpace><matrixSize><x>8</x><y>8</y><z>1</z></matrixSize>
<fieldOfView_mm><x>160</x><y>160</y><z>4</z></fieldOfView_mm></reconSpace>
<encodingLimits><kspace_encoding_step_1><minimum>0</minimum><maximum>7</maximum><center>4</center>
</kspace_encoding_step_1></encodingLimits><trajectory>cartesian</trajectory></encoding></ismrmrdHeader>"""
    kk = (rng.standard_normal((3, 8, 16)) + 1j * rng.standard_normal((3, 8, 16))).astype(np.complex64)
    path = tmp_path / "raw.h5"
    ds = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    ds.write_xml_header(xml)
    t = 0
    for shot in range(2):
        for ky in range(shot, 8, 2):
            acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(kk[:, ky]))
            acq.idx.kspace_encode_step_1 = ky
            acq.center_sample = 8
            acq.acquisition_time_stamp = t
            t += 1
            ds.append_acquisition(acq)
        t += 50
    ds.close()
    viewer.open(path, plugin=PLUGIN)
    raw = viewer.layers["raw"]
    assert raw.data.shape == (8, 8)
    np.testing.assert_allclose(raw.scale, (20.0, 20.0))  # 160 mm / 8 lines, 320 mm / 16 samples
    assert raw.metadata["mrideblur_case"].nshot == 2


def _oblique_affine() -> np.ndarray:
    a = np.radians(20.0)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag([0.8, 1.2, 2.5])
    aff[:3, 3] = (-30.5, 12.25, 40.0)
    return aff


def test_reader_nifti_scale_is_the_voxel_size_in_mm(make_napari_viewer, tmp_path):
    data = np.random.default_rng(1).random((10, 12, 6))
    aff = np.diag([0.8, 1.2, 2.5, 1.0])
    aff[:3, 3] = (-30.5, 12.25, 40.0)
    path = write_nifti(tmp_path / "head.nii.gz", data, aff)
    viewer = make_napari_viewer()
    viewer.open(path, plugin=PLUGIN)
    layer = viewer.layers["head"]
    assert layer.data.shape == (6, 12, 10)  # (k, j, i): slices along the file's third axis
    np.testing.assert_allclose(layer.scale, (2.5, 1.2, 0.8), atol=1e-6)
    np.testing.assert_allclose(layer.translate, (40.0, 12.25, -30.5), atol=1e-6)
    np.testing.assert_allclose(layer.data, data.transpose(2, 1, 0), rtol=1e-6)
    # voxel (i, j, k) = (4, 5, 3) sits at world (z, y, x) in mm
    np.testing.assert_allclose(layer.data_to_world((3, 5, 4)), (40.0 + 3 * 2.5, 12.25 + 5 * 1.2, -30.5 + 4 * 0.8))
    oblique = write_nifti(tmp_path / "oblique.nii", data, _oblique_affine())
    viewer.open(oblique, plugin=PLUGIN)
    np.testing.assert_allclose(viewer.layers["oblique"].scale, (2.5, 1.2, 0.8), atol=1e-6)


# -------------------------------------------------------------------------------------- writer


def test_writer_round_trips_the_affine(make_napari_viewer, tmp_path):
    data = np.random.default_rng(2).random((9, 7, 5)).astype(np.float32)
    aff = _oblique_affine()
    src = write_nifti(tmp_path / "src.nii.gz", data, aff)
    viewer = make_napari_viewer()
    viewer.open(src, plugin=PLUGIN)
    out = tmp_path / "saved.nii.gz"
    written = viewer.layers["src"].save(str(out), plugin=PLUGIN)
    assert [Path(p) for p in written] == [out]
    back, back_aff, _ = read_nifti(out)
    np.testing.assert_allclose(back_aff, aff, atol=1e-6)
    np.testing.assert_allclose(back, data, rtol=1e-6)
    # a layer with no source file: the affine of its scale and translation (axes reversed)
    viewer.add_image(np.ones((4, 6, 8), np.float32), name="derived", scale=(3.0, 0.5, 0.25), translate=(1.0, 2.0, 3.0))
    viewer.layers["derived"].save(str(tmp_path / "derived.nii"), plugin=PLUGIN)
    d, d_aff, _ = read_nifti(tmp_path / "derived.nii")
    assert d.shape == (8, 6, 4)
    expected = np.diag([0.25, 0.5, 3.0, 1.0])
    expected[:3, 3] = (3.0, 2.0, 1.0)
    np.testing.assert_allclose(d_aff, expected, atol=1e-6)


# ------------------------------------------------------------------------ sample + correction


def _canvas_panels(img: np.ndarray) -> int:
    """Number of separate bright column bands in a canvas screenshot (images side by side)."""
    grey = np.asarray(img)[..., :3].mean(-1)
    grey = grey[int(0.2 * len(grey)) : int(0.8 * len(grey))]  # below the caption
    bright = (grey > 40).sum(0) > 5
    edges = np.flatnonzero(np.diff(bright.astype(int)) == 1)
    return int(len(edges) + bright[0])


def test_sample_corrects_from_the_widget_end_to_end(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 800)
    layers = viewer.open_sample(PLUGIN, SAMPLE_KEY)
    assert [lay.name for lay in layers] == ["sample", "sample k-space (log)", "sample truth"]
    sample = viewer.layers["sample"]
    voxel = sample.metadata["mrideblur_case"].voxel_size_mm
    from mrideblur.io.anatomy import mni_volume

    side_mm = max(mni_volume()[0].shape[1:])  # 1 mm template, axial slice padded to a square
    assert sample.data.shape == (64, 64) and voxel == pytest.approx((side_mm / 64,) * 2)

    widget = _correction_widget(viewer)
    assert widget.input.currentText() == "sample"
    methods = [widget.method.itemText(i) for i in range(widget.method.count())]
    assert {"none", "aligned-sense"} <= set(methods)
    widget.method.setCurrentText("aligned-sense")
    widget.coils.setCurrentText("joint")
    widget.iterations.setValue(40)
    t0 = time.perf_counter()
    beats = []  # the GUI thread keeps running while the worker corrects
    from qtpy.QtCore import QTimer

    timer = QTimer()
    timer.timeout.connect(lambda: beats.append(time.perf_counter()))
    timer.start(100)
    out = _wait_run(qtbot, widget, widget.run_button.click, timeout_s=240)
    timer.stop()
    seconds = time.perf_counter() - t0
    assert len(beats) > 0.3 * seconds / 0.1, "the viewer's event loop was blocked during the correction"
    assert widget.task.log and widget.task.log[-1][0] > 0

    assert not out.cancelled
    corrected = viewer.layers["sample corrected (aligned-sense)"]
    assert corrected.data.shape == (64, 64)
    np.testing.assert_allclose(corrected.scale, voxel)
    assert viewer.layers["sample coil maps"].data.shape == (4, 64, 64)
    assert viewer.layers["sample difference"].data.shape == (64, 64)
    np.testing.assert_allclose(viewer.layers["sample uncorrected"].data, np.abs(out.uncorrected), rtol=1e-5)
    assert out.psnr_db["corrected"] > out.psnr_db["uncorrected"] + 5, out.psnr_db
    assert f"{out.psnr_db['corrected']:.2f} dB" in widget.psnr_label.text()
    assert out.result.motion.shape == (8, 3)
    np.testing.assert_allclose(widget.plot.motion, out.result.motion)
    # side by side: uncorrected | corrected | truth
    visible = [lay.name for lay in viewer.layers if lay.visible]
    assert visible == ["sample uncorrected", "sample corrected (aligned-sense)", "sample truth"]
    qtbot.wait(300)
    shots = Path(os.environ.get("MRIDEBLUR_TEST_ARTIFACTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    png = shots / "napari_after_correction.png"
    viewer.screenshot(str(png), canvas_only=False)
    assert png.stat().st_size > 10_000
    print(f"screenshot: {png}; PSNR {out.psnr_db}; {seconds:.1f} s")
    assert _canvas_panels(viewer.screenshot(canvas_only=True)) == 3


def test_cancel_stops_a_run(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, SAMPLE_KEY)
    widget = _correction_widget(viewer)
    widget.method.setCurrentText("aligned-sense")
    widget.coils.setCurrentText("joint")
    widget.iterations.setValue(3000)  # minutes of work if not cancelled
    widget.side_by_side.setChecked(False)
    with qtbot.waitSignal(widget.run_finished, timeout=120_000) as blocker:
        widget.run()
        assert widget.cancel_button.isEnabled() and not widget.run_button.isEnabled()
        qtbot.waitUntil(lambda: len(widget.task.log) >= 3, timeout=60_000)  # the estimator is iterating
        t_cancel = time.perf_counter()
        widget.cancel_button.click()
    stopped_after = time.perf_counter() - t_cancel
    out = blocker.args[0]
    assert not isinstance(out, Exception), out
    assert out.result.report["cancelled"] is True and out.cancelled
    assert stopped_after < 20, stopped_after
    step, total, _ = widget.task.log[-1]
    assert step < 0.5 * total  # stopped early
    assert "sample corrected (aligned-sense)" in viewer.layers  # the estimate so far is shown
    assert widget.run_button.isEnabled() and not widget.cancel_button.isEnabled()
    assert "cancelled" in widget.status.text()


def test_stack_is_corrected_slice_by_slice_with_progress_of_the_whole(make_napari_viewer, qtbot, tmp_path):
    a, b = _small_case(seed=1), _small_case(seed=2)
    stack = Case(np.stack([a.kspace, b.kspace]), a.shot_index, kind="stack",
                 truth={"image": np.stack([a.truth["image"], b.truth["image"]])}, voxel_size_mm=(4.0, 1.0, 1.0))
    path = write_case(tmp_path / "stack.h5", stack)
    viewer = make_napari_viewer()
    widget = _correction_widget(viewer)
    assert widget.input.currentText() == "file below…"
    widget.file.setText(str(path))  # from a file: its layers are added with the result
    widget.method.setCurrentText("aligned-sense")
    widget.coils.setCurrentText("espirit")
    widget.iterations.setValue(5)
    out = _wait_run(qtbot, widget, widget.run, timeout_s=120)
    assert viewer.layers["stack"].data.shape == (2, 48, 48)
    corrected = viewer.layers["stack corrected (aligned-sense)"]
    assert corrected.data.shape == (2, 48, 48)
    np.testing.assert_allclose(corrected.scale, (4.0, 1.0, 1.0))
    assert viewer.layers["stack coil maps"].data.shape == (4, 2, 48, 48)  # coils, then the slices' axis
    assert out.result.motion.shape == (2, 4, 3) and out.psnr_db is not None
    log = widget.task.log
    totals = {t for _, t, _ in log}
    assert len(totals) == 1  # one bar over both slices
    assert any("slice 1/2" in m for *_, m in log) and any("slice 2/2" in m for *_, m in log)
    steps = [s for s, _, _ in log]
    assert steps == sorted(steps) and steps[-1] > totals.pop() // 2
    viewer.dims.set_current_step(viewer.dims.ndim - 3, 1)  # world axes: coils, slices, y, x
    assert "slice 1" in widget.plot.axes[0].get_title()


# -------------------------------------------------------------------------------------- deblur


def test_deblur_widget_nonblind_and_blind_kernel_layer(make_napari_viewer, qtbot):
    from mrideblur.deblur import blur, gaussian_kernel
    from mrideblur.io.anatomy import photo
    from mrideblur.metrics import psnr

    sharp = photo("camera")[200:264, 200:264]
    k = gaussian_kernel(1.5)
    blurred = blur(sharp, k, noise_sigma=0.002, seed=0, boundary="symmetric")
    viewer = make_napari_viewer()
    viewer.add_image(np.stack([np.zeros_like(blurred), blurred * 200.0]), name="photo", scale=(5.0, 0.5, 0.5))
    viewer.dims.set_current_step(0, 1)  # the blurred plane is on screen
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Deblur")
    widget.image.setCurrentText("photo")
    widget.method.setCurrentText("wiener")
    widget.kernel.setCurrentText("gaussian (sigma)")
    widget.sigma.setValue(1.5)
    out = _wait_run(qtbot, widget, widget.run, timeout_s=60)
    assert out.index == (1,)
    layer = viewer.layers["photo [1] deblurred (wiener)"]
    assert layer.data.shape == (64, 64)
    np.testing.assert_allclose(layer.scale, (0.5, 0.5))
    assert psnr(layer.data / 200.0, sharp) > psnr(blurred, sharp) + 1

    widget.method.setCurrentText("blind vb")
    widget.kernel_size.setValue(7)
    widget.n_iter.setValue(5)
    widget.n_starts.setValue(1)
    out = _wait_run(qtbot, widget, widget.run, timeout_s=120)
    kernel = viewer.layers["photo [1] kernel (vb)"]
    assert kernel.data.shape == (7, 7)
    assert kernel.data.sum() == pytest.approx(1.0, abs=1e-4) and kernel.data.min() >= 0
    assert viewer.layers["photo [1] deblurred (vb)"].data.shape == (64, 64)


def test_deblur_widget_keeps_an_rgb_layer_in_colour(make_napari_viewer, qtbot):
    from skimage import data

    from mrideblur.deblur import blur, gaussian_kernel
    from mrideblur.metrics import psnr

    sharp = data.astronaut()[40:104, 180:244] / 255.0
    blurred = np.clip(blur(sharp, gaussian_kernel(1.5), noise_sigma=0.002, seed=0), 0, 1)
    viewer = make_napari_viewer()
    viewer.add_image((blurred * 255).round().astype(np.uint8), name="rgb", rgb=True)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Deblur")
    assert widget.image.findText("rgb") >= 0 and widget.kernel.findText("rgb") < 0  # not a kernel
    widget.image.setCurrentText("rgb")
    widget.method.setCurrentText("wiener")
    widget.kernel.setCurrentText("gaussian (sigma)")
    widget.sigma.setValue(1.5)
    _wait_run(qtbot, widget, widget.run, timeout_s=60)
    layer = viewer.layers["rgb deblurred (wiener)"]
    assert layer.rgb and layer.data.shape == (64, 64, 3)
    assert psnr(layer.data / 255.0, sharp) > psnr(blurred, sharp) + 1


def test_deblur_widget_shows_the_residual_prior_uncertainty(make_napari_viewer, qtbot):
    from mrideblur.deblur import blur, camera_shake_kernel
    from mrideblur.io.anatomy import photo

    sharp = photo("camera")[200:264, 200:264]
    blurred = blur(sharp, camera_shake_kernel(7, seed=1), noise_sigma=0.01, seed=0, boundary="symmetric")
    viewer = make_napari_viewer()
    viewer.add_image(blurred * 100.0, name="photo")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Deblur")
    widget.image.setCurrentText("photo")
    widget.method.setCurrentText("blind residual-prior")
    widget.kernel_size.setValue(7)
    out = _wait_run(qtbot, widget, widget.run, timeout_s=300)
    spread = viewer.layers["photo uncertainty (residual-prior)"]
    assert spread.data.shape == (64, 64) and spread.data.max() > 0 and not spread.visible
    assert out.uncertainty is not None and "residual_map" not in out.history


def test_deblur_widget_estimates_a_kernel_field(make_napari_viewer, qtbot):
    from mrideblur.deblur import PoseBlur, blur_nonuniform, roll_sweep
    from mrideblur.io.anatomy import photo

    sharp = photo("camera")[150:246, 150:246]
    blurred = blur_nonuniform(sharp, PoseBlur(sharp.shape, roll_sweep(16, 1.5), centre=(-200.0, 48.0)), 0.01, seed=0)
    viewer = make_napari_viewer()
    viewer.add_image(blurred, name="rolled")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Deblur")
    widget.image.setCurrentText("rolled")
    widget.method.setCurrentText("blind kernel-field")
    out = _wait_run(qtbot, widget, widget.run, timeout_s=300)
    assert out.kernel.ndim == 4  # (gy, gx, m, m)
    gy, gx, m, _ = out.kernel.shape
    cols = int(np.ceil(np.sqrt(gy * gx)))  # the field's kernels tiled on a near-square grid
    rows = int(np.ceil(gy * gx / cols))
    assert viewer.layers["rolled kernel (kernel-field)"].data.shape == (rows * (m + 1) - 1, cols * (m + 1) - 1)
    assert viewer.layers["rolled deblurred (kernel-field)"].data.shape == blurred.shape
