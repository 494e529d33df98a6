"""Case files, fastMRI and ISMRMRD readers: round trips, validation messages, shots, cropping."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import mrideblur
from mrideblur.io.case import Case, assign_shots, load_case, read_case, validate_case, write_case
from mrideblur.io.fastmri import read_fastmri
from mrideblur.io.ismrmrd_io import center_crop_readout, parse_ismrmrd_header, read_ismrmrd

RNG = np.random.default_rng(0)


def _cplx(*shape: int) -> np.ndarray:
    return (RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape)).astype(np.complex64)


def _cfft1(x: np.ndarray, inverse: bool = False) -> np.ndarray:
    """Centred orthonormal 1D DFT along the last axis, written out independently for the tests."""
    f = np.fft.ifft if inverse else np.fft.fft
    return np.fft.fftshift(f(np.fft.ifftshift(x, axes=-1), axis=-1, norm="ortho"), axes=-1)


def _no_temp_files(directory: Path) -> bool:
    return not any(".tmp" in p.name for p in directory.iterdir())


# ------------------------------------------------------------------------------ case builders


def case_2d() -> Case:
    ny, nx, nc, nshot = 12, 10, 3, 4
    shot_index = (np.arange(ny) % nshot).astype(np.int32)
    shot_index[[0, ny - 1]] = -1
    k = _cplx(nc, ny, nx)
    k[:, shot_index < 0, :] = 0
    motion = RNG.standard_normal((nshot, 3))
    motion[0] = 0
    return Case(
        kspace=k,
        shot_index=shot_index,
        sens=_cplx(nc, ny, nx),
        truth={"image": RNG.random((ny, nx)), "motion": motion, "sens": _cplx(nc, ny, nx)},
        voxel_size_mm=(0.5, 0.75),
        attrs={"name": "phantom", "snr_db": 30.5, "seed": 7, "flag": True, "levels": [1.0, 2.0], "tags": ["a", "b"]},
    )


def case_stack() -> Case:
    ns, nc, ny, nx = 2, 3, 8, 6
    shot_index = np.repeat(np.arange(4), 2).astype(np.int32)
    motion = np.zeros((4, 3))
    motion[1:] = 1.5
    return Case(
        kspace=_cplx(ns, nc, ny, nx),
        shot_index=shot_index,
        kind="stack",
        sens=_cplx(ns, nc, ny, nx),
        truth={"image": _cplx(ns, ny, nx), "motion": motion},
        voxel_size_mm=(3.0, 1.0, 1.0),
        attrs={"format": "test"},
    )


def case_3d() -> Case:
    nc, nz, ny, nx = 2, 4, 6, 5
    shot_index = (np.arange(nz * ny).reshape(nz, ny) % 3).astype(np.int32)
    motion = np.zeros((3, 6))
    motion[2] = [1, 2, 3, 0.1, 0.2, 0.3]
    return Case(
        kspace=_cplx(nc, nz, ny, nx),
        shot_index=shot_index,
        kind="3d",
        sens=_cplx(nc, nz, ny, nx),
        truth={"image": RNG.random((nz, ny, nx)), "motion": motion},
        voxel_size_mm=(1.0, 1.0, 1.2),
    )


BUILDERS = {"2d": case_2d, "stack": case_stack, "3d": case_3d}


# ------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("kind", ["2d", "stack", "3d"])
def test_case_round_trip(tmp_path, kind):
    case = BUILDERS[kind]()
    path = write_case(tmp_path / f"{kind}.h5", case)
    back = read_case(path)
    assert back.kind == kind and back.source == path
    assert back.kspace.dtype == np.complex64 and back.shot_index.dtype == np.int32
    np.testing.assert_array_equal(back.kspace, case.kspace)
    np.testing.assert_array_equal(back.shot_index, case.shot_index)
    assert back.sens.dtype == np.complex64
    np.testing.assert_array_equal(back.sens, case.sens)
    assert set(back.truth) == set(case.truth)
    np.testing.assert_allclose(back.truth["image"], case.truth["image"], rtol=1e-6)
    assert back.truth["motion"].dtype == np.float64
    np.testing.assert_array_equal(back.truth["motion"], case.truth["motion"])
    assert back.voxel_size_mm == case.voxel_size_mm
    assert back.attrs["mrideblur_version"] == mrideblur.__version__
    for key, val in case.attrs.items():
        got = back.attrs[key]
        if isinstance(val, list) and isinstance(val[0], str):
            assert got == val
        else:
            np.testing.assert_array_equal(got, val)
            assert type(np.asarray(got).item(0)) is type(np.asarray(val).item(0))
    assert back.nshot == case.nshot and back.ncoil == case.ncoil and back.is_3d == (kind == "3d")
    with h5py.File(path) as f:
        assert f.attrs["layout"] == kind
        assert f["kspace"].dtype == np.complex64 and f["shot_index"].dtype == np.int32


def test_case_properties():
    c2, cs, c3 = case_2d(), case_stack(), case_3d()
    assert (c2.nshot, c2.ncoil, c2.nslice, c2.image_shape, c2.is_3d) == (4, 3, 1, (12, 10), False)
    assert (cs.nshot, cs.ncoil, cs.nslice, cs.image_shape) == (4, 3, 2, (8, 6))
    assert (c3.nshot, c3.ncoil, c3.nslice, c3.image_shape, c3.is_3d) == (3, 2, 1, (4, 6, 5), True)
    assert Case(_cplx(2, 4, 4), np.zeros(4, int)).kind == "2d"


def test_4d_file_without_layout_is_inferred_from_shot_index(tmp_path):
    for case in (case_stack(), case_3d()):
        path = tmp_path / f"{case.kind}.h5"
        with h5py.File(path, "w") as f:
            f["kspace"] = case.kspace
            f["shot_index"] = case.shot_index
        assert read_case(path).kind == case.kind


def test_stack_accepts_one_set_of_coil_maps_for_all_slices(tmp_path):
    case = case_stack()
    case.sens = _cplx(case.ncoil, *case.image_shape)
    assert read_case(write_case(tmp_path / "s.h5", case)).sens.shape == (3, 8, 6)


def test_load_case_dispatches_on_content(tmp_path):
    path = write_case(tmp_path / "c.h5", case_2d())
    assert load_case(path).kind == "2d"
    with pytest.raises(ValueError, match="stores its shots"):
        load_case(path, shots=4)


# ------------------------------------------------------------------------------ validation


def _raw(path: Path, datasets: dict, attrs: dict | None = None) -> Path:
    with h5py.File(path, "w") as f:
        for name, val in datasets.items():
            f[name] = val
        for name, val in (attrs or {}).items():
            f.attrs[name] = val
    return path


def _good_2d() -> dict:
    c = case_2d()
    return {"kspace": c.kspace, "shot_index": c.shot_index, "truth/motion": c.truth["motion"]}


def _bad_nonfinite(d):
    d["kspace"] = d["kspace"].copy()
    d["kspace"][0, 3, 3] = np.nan


def _bad_unacquired(d):
    d["kspace"] = d["kspace"].copy()
    d["kspace"][:, 0, :] = 1


def _bad_motion0(d):
    d["truth/motion"] = d["truth/motion"] + 1


def _bad_gap(d):
    s = d["shot_index"].copy()
    s[s == 2] = 3
    s[s == 1] = 3
    d["shot_index"] = s


BAD_FILES = [
    # (mutation, dataset named in the message, words the message contains)
    (lambda d: d.pop("kspace"), "kspace", "missing"),
    (lambda d: d.pop("shot_index"), "shot_index", "missing"),
    (lambda d: d.__setitem__("kspace", d["kspace"][0]), "kspace", "rank 3"),
    (lambda d: d.__setitem__("kspace", np.abs(d["kspace"])), "kspace", "complex"),
    (_bad_nonfinite, "kspace", "finite"),
    (lambda d: d.__setitem__("shot_index", d["shot_index"][:-2]), "shot_index", "expected shape (12,)"),
    (lambda d: d.__setitem__("shot_index", d["shot_index"].astype(float)), "shot_index", "integers"),
    (lambda d: d.__setitem__("shot_index", np.where(d["shot_index"] < 0, -2, d["shot_index"])), "shot_index", ">= -1"),
    (_bad_gap, "shot_index", "shot(s) [1, 2]"),
    (lambda d: d.__setitem__("shot_index", np.full(12, -1, np.int32)), "shot_index", "at least one acquired line"),
    (_bad_unacquired, "kspace", "zeros on the lines not acquired"),
    (lambda d: d.__setitem__("sens", _cplx(2, 12, 10)), "sens", "coil count"),
    (lambda d: d.__setitem__("sens", _cplx(3, 12, 11)), "sens", "image size"),
    (lambda d: d.__setitem__("truth/motion", np.zeros((4, 6))), "truth/motion", "(4, 3)"),
    (lambda d: d.__setitem__("truth/motion", np.zeros((3, 3))), "truth/motion", "(4, 3)"),
    (_bad_motion0, "truth/motion", "relative to shot 0"),
    (lambda d: d.__setitem__("truth/image", np.zeros((5, 5))), "truth/image", "(12, 10)"),
    (lambda d: d.__setitem__("truth/sens", _cplx(3, 5, 5)), "truth/sens", "image size"),
]


@pytest.mark.parametrize("mutate, name, words", BAD_FILES)
def test_read_case_errors_name_file_and_dataset(tmp_path, mutate, name, words):
    d = _good_2d()
    mutate(d)
    path = _raw(tmp_path / "bad.h5", d)
    with pytest.raises(ValueError) as err:
        read_case(path)
    msg = str(err.value)
    assert msg.startswith(str(path)), msg
    assert f"dataset {name!r}" in msg, msg
    assert words in msg, msg


@pytest.mark.parametrize("voxel, layout", [((1.0,), "2d"), ((1.0, 2.0, 3.0, 4.0), "2d"), ((1.0, 1.0), "3d"), ((1.0, -1.0), "2d")])
def test_voxel_size_errors(tmp_path, voxel, layout):
    case = case_3d() if layout == "3d" else case_2d()
    path = _raw(tmp_path / "v.h5", {"kspace": case.kspace, "shot_index": case.shot_index}, {"voxel_size_mm": voxel})
    with pytest.raises(ValueError, match=r"v\.h5: attribute 'voxel_size_mm': expected"):
        read_case(path)


def test_bad_layout_attribute_and_3d_motion(tmp_path):
    c = case_2d()
    path = _raw(tmp_path / "l.h5", {"kspace": c.kspace, "shot_index": c.shot_index}, {"layout": "4d"})
    with pytest.raises(ValueError, match=r"l\.h5: attribute 'layout': expected one of"):
        read_case(path)
    c3 = case_3d()
    c3.truth["motion"] = np.zeros((3, 3))
    with pytest.raises(ValueError, match=r"dataset 'truth/motion': expected shape \(3, 6\)"):
        validate_case(c3, "x.h5")
    path = _raw(tmp_path / "z.h5", {"kspace": c3.kspace, "shot_index": c3.shot_index[:3]}, {"layout": "3d"})
    with pytest.raises(ValueError, match=r"z\.h5: dataset 'shot_index': expected shape \(4, 6\) \(the \(kz, ky\) axes"):
        read_case(path)
    path = _raw(tmp_path / "r.h5", {"kspace": c3.kspace, "shot_index": c3.shot_index}, {"layout": "2d"})
    with pytest.raises(ValueError, match=r"dataset 'kspace': expected rank 3"):
        read_case(path)


def test_read_case_file_errors(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        read_case(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match=r"text\.h5: not an HDF5 file"):
        read_case(tmp_path / "text.h5")
    fm = _raw(tmp_path / "fm.h5", {"kspace": _cplx(1, 2, 8, 4)})
    with pytest.raises(ValueError, match="read_fastmri"):
        read_case(fm)


@pytest.mark.parametrize("mutate, name, words", BAD_FILES[2:])
def test_write_case_validates_and_leaves_no_file(tmp_path, mutate, name, words):
    d = _good_2d()
    mutate(d)
    truth = {k.split("/")[1]: v for k, v in d.items() if k.startswith("truth/")}
    case = Case(d["kspace"], d["shot_index"], sens=d.get("sens"), truth=truth)
    path = tmp_path / "w.h5"
    with pytest.raises(ValueError) as err:
        write_case(path, case)
    assert str(err.value).startswith(str(path)) and words in str(err.value)
    assert not path.exists() and _no_temp_files(tmp_path)


def test_write_case_rejects_bad_attrs(tmp_path):
    for attrs, words in (({"layout": "2d"}, "reserved"), ({"x": {"a": 1}}, "expected a string"), ({"x": [object()]}, "dtype object")):
        case = case_2d()
        case.attrs = attrs
        with pytest.raises(ValueError, match=words):
            write_case(tmp_path / "a.h5", case)
    assert not (tmp_path / "a.h5").exists()


def test_failed_write_is_atomic(tmp_path, monkeypatch):
    path = write_case(tmp_path / "c.h5", case_2d())
    before = path.read_bytes()
    original = h5py.Group.create_dataset

    def failing(self, name, *args, **kwargs):
        if name == "shot_index":
            raise OSError("disk full (simulated)")
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", failing)
    with pytest.raises(OSError, match="simulated"):
        write_case(path, case_3d())
    with pytest.raises(OSError, match="simulated"):
        write_case(tmp_path / "new.h5", case_3d())
    assert path.read_bytes() == before
    assert not (tmp_path / "new.h5").exists() and _no_temp_files(tmp_path)


# ------------------------------------------------------------------------------ shots


def test_assign_shots_orderings():
    acq = np.ones(10, bool)
    acq[[0, 5]] = False
    inter = assign_shots(acq, 3, "interleaved")
    assert inter.tolist() == [-1, 0, 1, 2, 0, -1, 1, 2, 0, 1]
    seq = assign_shots(acq, 3, "sequential")
    assert seq.tolist() == [-1, 0, 0, 0, 1, -1, 1, 1, 2, 2]
    three = assign_shots(np.ones((2, 3), bool), 2)
    assert three.tolist() == [[0, 1, 0], [1, 0, 1]]
    with pytest.raises(ValueError, match="shots: expected an integer 1 .. 8"):
        assign_shots(acq, 9)
    with pytest.raises(ValueError, match="ordering"):
        assign_shots(acq, 2, "spiral")
    rnd = assign_shots(acq, 2, "random", seed=3)
    assert rnd.tolist() == assign_shots(acq, 2, "random", seed=3).tolist() and sorted(np.bincount(rnd[acq])) == [4, 4]


# ------------------------------------------------------------------------------ fastMRI

HEADER = """<?xml version="1.0" encoding="utf-8"?>
<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">
  <encoding>
    <encodedSpace><matrixSize><x>{ex}</x><y>{ey}</y><z>{ez}</z></matrixSize>
      <fieldOfView_mm><x>{fx}</x><y>{fy}</y><z>{fz}</z></fieldOfView_mm></encodedSpace>
    <reconSpace><matrixSize><x>{rx}</x><y>{ry}</y><z>{ez}</z></matrixSize>
      <fieldOfView_mm><x>{rfx}</x><y>{fy}</y><z>{fz}</z></fieldOfView_mm></reconSpace>
    <encodingLimits>
      <kspace_encoding_step_1><minimum>0</minimum><maximum>{ey1}</maximum><center>{cy}</center></kspace_encoding_step_1>
      <kspace_encoding_step_2><minimum>0</minimum><maximum>{ez1}</maximum><center>{cz}</center></kspace_encoding_step_2>
    </encodingLimits>
    <trajectory>cartesian</trajectory>
  </encoding>
</ismrmrdHeader>"""


def header(ex: int, ey: int, ez: int = 1, rx: int | None = None, fov=(256.0, 128.0, 5.0), cy: int | None = None) -> str:
    rx = ex // 2 if rx is None else rx
    return HEADER.format(
        ex=ex, ey=ey, ez=ez, rx=rx, ry=ey, fx=fov[0], fy=fov[1], fz=fov[2], rfx=fov[0] * rx / ex,
        ey1=ey - 1, ez1=max(ez - 1, 0), cy=ey // 2 if cy is None else cy, cz=ez // 2,
    )


@pytest.fixture
def fastmri_file(tmp_path):
    """fastMRI layout: 2 slices, 4 coils, readout 64 (2x oversampled) on axis -2, 32 ky on axis -1."""
    ns, nc, nro, nky = 2, 4, 64, 32
    k = _cplx(ns, nc, nro, nky)
    missing = [0, 1, 30, 31, 7]
    k[..., missing] = 0
    rss = RNG.random((ns, 32, 32)).astype(np.float32)
    path = tmp_path / "file_brain_test.h5"
    with h5py.File(path, "w") as f:
        f["kspace"] = k
        f["reconstruction_rss"] = rss
        f["ismrmrd_header"] = header(nro, nky, fov=(440.0, 220.0, 5.0))
        f.attrs["acquisition"] = "AXT2"
        f.attrs["max"] = 0.5
    return path, k, missing, rss


def test_fastmri_shapes_cropping_and_shots(fastmri_file):
    path, k, missing, rss = fastmri_file
    case = read_fastmri(path, shots=4)
    assert case.kind == "stack" and case.kspace.shape == (2, 4, 32, 32) and case.kspace.dtype == np.complex64
    # expected: swap to (slices, coils, ky, readout), centred ifft along the readout, keep the central half, fft back
    kk = np.swapaxes(k, -1, -2)
    img = _cfft1(kk, inverse=True)[..., 16:48]
    np.testing.assert_allclose(case.kspace, _cfft1(img), atol=1e-5)
    acquired = [j for j in range(32) if j not in missing]
    assert (case.shot_index[missing] == -1).all()
    assert case.shot_index[acquired].tolist() == [i % 4 for i in range(len(acquired))]
    assert case.nshot == 4 and "interleaved" in case.attrs["assumed"] and "cropped" in case.attrs["assumed"]
    np.testing.assert_array_equal(case.truth["reference_rss"], np.swapaxes(rss, -1, -2))
    assert case.voxel_size_mm == pytest.approx((5.0, 220.0 / 32, 440.0 / 64))
    assert case.attrs["fastmri_acquisition"] == "AXT2" and case.attrs["readout_cropped"] is True
    seq = read_fastmri(path, shots=3, ordering="sequential", slices=[1])
    assert seq.kspace.shape == (1, 4, 32, 32)
    assert seq.shot_index[acquired].tolist() == [(i * 3) // len(acquired) for i in range(len(acquired))]
    np.testing.assert_allclose(seq.kspace[0], case.kspace[1])
    centric = read_fastmri(path, shots=3, ordering="centre-out", slices=[1])
    dist = np.abs(np.array(acquired) - 16)
    assert [dist[centric.shot_index[acquired] == s].max() for s in range(3)] == sorted(
        dist[centric.shot_index[acquired] == s].max() for s in range(3))  # shot 0 at the centre, then rings
    assert centric.shot_index[16] == 0 and "centre-out" in centric.attrs["assumed"]
    with pytest.raises(ValueError, match="checkered"):
        read_fastmri(path, shots=4, ordering="checkered")
    assert load_case(path, shots=4).kspace.shape == (2, 4, 32, 32)


def test_fastmri_case_round_trip_and_options(fastmri_file, tmp_path):
    path, k, missing, _ = fastmri_file
    case = read_fastmri(path, shots=2)
    back = read_case(write_case(tmp_path / "case.h5", case))
    np.testing.assert_array_equal(back.kspace, case.kspace)
    assert back.attrs["assumed"] == case.attrs["assumed"]
    full = read_fastmri(path, shots=2, crop_readout=False)
    np.testing.assert_array_equal(full.kspace, np.swapaxes(k, -1, -2))
    # a file already in (slices, coils, ky, kx) order; a mask dataset decides the acquired lines
    p2 = tmp_path / "proj.h5"
    mask = np.ones(32, np.float32)
    mask[[3, 4]] = 0
    with h5py.File(p2, "w") as f:
        f["kspace"] = np.swapaxes(k, -1, -2)
        f["mask"] = mask
    c2 = read_fastmri(p2, shots=2, readout_axis=-1, crop_readout=False)
    assert c2.shot_index[[3, 4]].tolist() == [-1, -1] and not np.any(c2.kspace[..., [3, 4], :])
    assert "mask" in c2.attrs["assumed"] and c2.voxel_size_mm is None


def test_fastmri_errors(fastmri_file, tmp_path):
    path, *_ = fastmri_file
    with pytest.raises(ValueError, match="shots: expected an integer 1 .. 27"):
        read_fastmri(path, shots=28)
    with pytest.raises(ValueError, match="ordering"):
        read_fastmri(path, ordering="zigzag")
    bad = _raw(tmp_path / "real.h5", {"kspace": np.zeros((1, 2, 8, 4), np.float32)})
    with pytest.raises(ValueError, match=r"real\.h5: dataset 'kspace': expected complex"):
        read_fastmri(bad)
    bad = _raw(tmp_path / "nok.h5", {"other": np.zeros(3)})
    with pytest.raises(ValueError, match=r"nok\.h5: dataset 'kspace': missing"):
        read_fastmri(bad)
    bad = _raw(tmp_path / "mask.h5", {"kspace": _cplx(1, 2, 8, 4), "mask": np.ones(5)})
    with pytest.raises(ValueError, match=r"mask\.h5: dataset 'mask': expected \(4,\)"):
        read_fastmri(bad, shots=2)


# ------------------------------------------------------------------------------ ISMRMRD

ENC = np.dtype(
    [("kspace_encode_step_1", "<u2"), ("kspace_encode_step_2", "<u2"), ("average", "<u2"), ("slice", "<u2"),
     ("contrast", "<u2"), ("phase", "<u2"), ("repetition", "<u2"), ("set", "<u2"), ("segment", "<u2"),
     ("user", "<u2", (8,))]
)
HEAD = np.dtype(
    [("version", "<u2"), ("flags", "<u8"), ("measurement_uid", "<u4"), ("scan_counter", "<u4"),
     ("acquisition_time_stamp", "<u4"), ("physiology_time_stamp", "<u4", (3,)), ("number_of_samples", "<u2"),
     ("available_channels", "<u2"), ("active_channels", "<u2"), ("channel_mask", "<u8", (16,)),
     ("discard_pre", "<u2"), ("discard_post", "<u2"), ("center_sample", "<u2"), ("encoding_space_ref", "<u2"),
     ("trajectory_dimensions", "<u2"), ("sample_time_us", "<f4"), ("position", "<f4", (3,)),
     ("read_dir", "<f4", (3,)), ("phase_dir", "<f4", (3,)), ("slice_dir", "<f4", (3,)),
     ("patient_table_position", "<f4", (3,)), ("idx", ENC), ("user_int", "<i4", (8,)), ("user_float", "<f4", (8,))]
)
ACQ = np.dtype([("head", HEAD), ("traj", h5py.vlen_dtype(np.float32)), ("data", h5py.vlen_dtype(np.float32))])


def write_ismrmrd(path: Path, xml: str, lines: list[dict]) -> Path:
    """Standard ISMRMRD HDF5 layout with h5py: /dataset/xml and /dataset/data (compound records).

    Each line: ``data`` (coils, samples) complex64, ``ky``, optional ``kz``, ``slice``, ``segment``,
    ``repetition``, ``average``, ``time``, ``flags``.
    """
    rec = np.zeros(len(lines), dtype=ACQ)
    for i, ln in enumerate(lines):
        h = rec[i]["head"]
        d = np.asarray(ln["data"], np.complex64)
        h["version"] = 1
        h["flags"] = ln.get("flags", 0)
        h["scan_counter"] = i
        h["acquisition_time_stamp"] = ln.get("time", i)
        h["number_of_samples"] = d.shape[1]
        h["available_channels"] = h["active_channels"] = d.shape[0]
        h["center_sample"] = ln.get("center", d.shape[1] // 2)
        idx = h["idx"]
        idx["kspace_encode_step_1"] = ln["ky"]
        idx["kspace_encode_step_2"] = ln.get("kz", 0)
        for name in ("slice", "segment", "repetition", "average"):
            idx[name] = ln.get(name, 0)
        rec[i]["head"] = h
        rec[i]["traj"] = np.zeros(0, np.float32)
        rec[i]["data"] = d.view(np.float32).ravel()
    with h5py.File(path, "w") as f:
        g = f.create_group("dataset")
        g.create_dataset("xml", data=[xml.encode()], dtype=h5py.vlen_dtype(bytes))
        g.create_dataset("data", data=rec, maxshape=(None,))
    return path


def _interleaved_lines(k: np.ndarray, nshot: int, gap: int = 0, **extra) -> list[dict]:
    """(coils, ky, kx) -> lines in interleaved shot order; ``gap`` ticks of pause between shots."""
    lines, t = [], 0
    for s in range(nshot):
        for ky in range(s, k.shape[1], nshot):
            lines.append({"data": k[:, ky], "ky": ky, "time": t, **extra})
            t += 1
        t += gap
    return lines


def test_ismrmrd_2d_interleaved_shots_and_crop(tmp_path):
    k = _cplx(3, 16, 32)
    path = write_ismrmrd(tmp_path / "a.h5", header(32, 16), _interleaved_lines(k, 4))
    case = read_ismrmrd(path)
    assert case.kind == "2d" and case.kspace.shape == (3, 16, 16)
    np.testing.assert_allclose(case.kspace, _cfft1(_cfft1(k, inverse=True)[..., 8:24]), atol=1e-5)
    np.testing.assert_allclose(case.kspace, center_crop_readout(k, 16), atol=1e-6)
    assert case.shot_index.tolist() == [j % 4 for j in range(16)]
    assert case.attrs["shot_rule"] == "encoding jumps" and case.attrs["readout_cropped"] is True
    assert case.voxel_size_mm == pytest.approx((5.0, 8.0, 8.0))
    uncropped = read_ismrmrd(path, crop_readout=False, shots=2, ordering="sequential")
    np.testing.assert_array_equal(uncropped.kspace, k)
    assert uncropped.shot_index.tolist() == [0] * 8 + [1] * 8
    assert load_case(path).nshot == 4


def test_ismrmrd_time_gaps_and_counters(tmp_path):
    k = _cplx(2, 8, 8)
    # centre-out order inside each shot: only the time gaps can tell the shots apart
    order = [[4, 5, 3, 6], [2, 7, 1, 0]]
    lines, t = [], 0
    for s, rows in enumerate(order):
        for ky in rows:
            lines.append({"data": k[:, ky], "ky": ky, "time": t})
            t += 2
        t += 40
    case = read_ismrmrd(write_ismrmrd(tmp_path / "t.h5", header(8, 8, rx=8), lines))
    assert case.attrs["shot_rule"] == "time gaps" and case.attrs["readout_cropped"] is False
    assert [int(case.shot_index[j]) for j in range(8)] == [1, 1, 1, 0, 0, 0, 0, 1]
    # the segment counter wins over everything else
    for ln in lines:
        ln["segment"] = int(ln["ky"] % 2)
        ln["time"] = 0
    lines.sort(key=lambda ln: (ln["segment"], ln["ky"]))
    case = read_ismrmrd(write_ismrmrd(tmp_path / "c.h5", header(8, 8, rx=8), lines))
    assert case.attrs["shot_rule"] == "counters"
    assert case.shot_index.tolist() == [j % 2 for j in range(8)]


def test_ismrmrd_3d_and_stack(tmp_path):
    nc, nz, ny, nx = 2, 4, 6, 8
    k = _cplx(nc, nz, ny, nx)
    lines = []
    for kz in range(nz):  # one shot per kz partition, ky ascending (MPRAGE-like)
        for ky in range(ny):
            lines.append({"data": k[:, kz, ky], "ky": ky, "kz": kz})
    case = read_ismrmrd(write_ismrmrd(tmp_path / "v.h5", header(nx, ny, nz, rx=nx, fov=(80.0, 60.0, 40.0)), lines))
    assert case.kind == "3d" and case.kspace.shape == (nc, nz, ny, nx)
    np.testing.assert_array_equal(case.kspace, k)
    assert case.shot_index.tolist() == [[z] * ny for z in range(nz)]
    assert case.voxel_size_mm == pytest.approx((10.0, 10.0, 10.0))

    ks = _cplx(3, 2, 8, 16)  # slices, coils, ky, kx
    lines = []
    for s in range(4):  # shots; slices interleaved inside each shot
        for sl in range(3):
            for ky in range(s, 8, 4):
                lines.append({"data": ks[sl, :, ky], "ky": ky, "slice": sl})
    stack = read_ismrmrd(write_ismrmrd(tmp_path / "s.h5", header(16, 8), lines))
    assert stack.kind == "stack" and stack.kspace.shape == (3, 2, 8, 8)
    np.testing.assert_allclose(stack.kspace, center_crop_readout(ks, 8), atol=1e-6)
    assert stack.shot_index.tolist() == [j % 4 for j in range(8)]
    one = read_ismrmrd(tmp_path / "s.h5", select={"slice": 1})
    assert one.kind == "2d"
    np.testing.assert_allclose(one.kspace, stack.kspace[1], atol=1e-6)


def test_ismrmrd_skips_noise_and_places_partial_lines(tmp_path):
    k = _cplx(2, 8, 8)
    lines = [ln for ln in _interleaved_lines(k, 2) if ln["ky"] < 6]  # ky 6, 7 not acquired
    lines[0] = {**lines[0], "data": k[:, 0, 2:], "center": 2}  # asymmetric echo: samples 2 .. 7, DC at sample 2
    noise = {"data": _cplx(2, 5), "ky": 0, "flags": 1 << 18}  # ACQ_IS_NOISE_MEASUREMENT
    case = read_ismrmrd(write_ismrmrd(tmp_path / "n.h5", header(8, 8, rx=8), [noise] + lines))
    assert case.attrs["skipped_acquisitions"] == 1 and "noise" in case.attrs["assumed"]
    assert case.shot_index.tolist() == [0, 1, 0, 1, 0, 1, -1, -1]
    np.testing.assert_array_equal(case.kspace[:, 6:], 0)
    np.testing.assert_array_equal(case.kspace[:, 0, :2], 0)
    np.testing.assert_array_equal(case.kspace[:, :6, 2:], k[:, :6, 2:])


def test_ismrmrd_errors(tmp_path):
    k = _cplx(2, 8, 8)
    lines = _interleaved_lines(k, 2)
    dup = lines + [{"data": k[:, 3], "ky": 3, "average": 1}]
    path = write_ismrmrd(tmp_path / "d.h5", header(8, 8, rx=8), dup)
    with pytest.raises(ValueError, match=r"d\.h5: dataset 'dataset/data': expected each \(slice, kz, ky\) position once.*average"):
        read_ismrmrd(path)
    assert read_ismrmrd(path, select={"average": 0}).nshot == 2
    path = write_ismrmrd(tmp_path / "o.h5", header(8, 4, rx=8), lines)
    with pytest.raises(ValueError, match=r"o\.h5: dataset 'dataset/data': acquisition \d+: idx.kspace_encode_step_1"):
        read_ismrmrd(path)
    path = write_ismrmrd(tmp_path / "r.h5", header(8, 8).replace("cartesian", "radial"), lines)
    with pytest.raises(ValueError, match=r"r\.h5: dataset 'dataset/xml': expected a Cartesian"):
        read_ismrmrd(path)
    path = write_ismrmrd(tmp_path / "x.h5", "<ismrmrdHeader/>", lines)
    with pytest.raises(ValueError, match=r"x\.h5: dataset 'dataset/xml': .*<encoding>"):
        read_ismrmrd(path)
    with pytest.raises(ValueError, match=r"e\.h5: group 'dataset': missing"):
        read_ismrmrd(_raw(tmp_path / "e.h5", {"other": np.zeros(2)}))
    with pytest.raises(ValueError, match="shots"):
        read_ismrmrd(tmp_path / "d.h5", shots="sometimes")


def test_parse_header_without_namespace():
    hdr = parse_ismrmrd_header(header(64, 32, fov=(200.0, 100.0, 3.0)).replace(' xmlns="http://www.ismrm.org/ISMRMRD"', ""))
    assert hdr.encoded_matrix == (64, 32, 1) and hdr.recon_matrix == (32, 32, 1)
    assert hdr.encoded_fov_mm == (200.0, 100.0, 3.0) and hdr.limits["kspace_encoding_step_1"] == (0, 31, 16)
    assert hdr.trajectory == "cartesian"


def test_ismrmrd_file_written_by_the_ismrmrd_package(tmp_path):
    ismrmrd = pytest.importorskip("ismrmrd")
    k = _cplx(3, 8, 16)
    path = tmp_path / "pkg.h5"
    ds = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    ds.write_xml_header(header(16, 8, fov=(320.0, 160.0, 4.0)))
    for t, ln in enumerate(_interleaved_lines(k, 2, gap=50)):
        acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(ln["data"]))
        acq.idx.kspace_encode_step_1 = ln["ky"]
        acq.center_sample = 8
        acq.acquisition_time_stamp = ln["time"]
        ds.append_acquisition(acq)
    ds.close()
    case = read_ismrmrd(path)
    assert case.kspace.shape == (3, 8, 8) and case.attrs["shot_rule"] == "time gaps"
    np.testing.assert_allclose(case.kspace, center_crop_readout(k, 8), atol=1e-6)
    assert case.shot_index.tolist() == [j % 2 for j in range(8)]
    assert case.voxel_size_mm == pytest.approx((4.0, 20.0, 20.0))


def test_ismrmrd_shepp_logan_from_the_ismrmrd_tools(tmp_path):
    """A file written by the format's own C++ tools (Debian's ismrmrd-tools) reads as a Shepp-Logan."""
    tool = shutil.which("ismrmrd_generate_cartesian_shepp_logan")
    if tool is None:
        pytest.skip("ismrmrd_generate_cartesian_shepp_logan not installed (apt-get install ismrmrd-tools)")
    path = tmp_path / "shepp.h5"
    subprocess.run([tool, "-m", "64", "-c", "4", "-a", "1", "-n", "0.01", "-o", str(path)], check=True,
                   capture_output=True, timeout=60)
    case = read_ismrmrd(path)
    # 64 x 64 recon matrix, readout 2x oversampled in the file (128 samples), every line acquired
    assert case.kind == "2d" and case.kspace.shape == (4, 64, 64) and case.attrs["readout_cropped"] is True
    assert (case.shot_index >= 0).all()
    coil_images = np.fft.fftshift(
        np.fft.ifft2(np.fft.ifftshift(case.kspace, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)
    )
    rss = np.sqrt((np.abs(coil_images) ** 2).sum(axis=0))
    with h5py.File(path, "r") as f:  # the tool stores the phantom it sampled, as ISMRMRD complex pairs
        phantom = f["dataset/phantom"][()]
    reference = np.abs(phantom["real"] + 1j * phantom["imag"]).reshape(64, 64)
    assert np.corrcoef(rss.ravel(), reference.ravel())[0, 1] > 0.95


def test_missing_ismrmrd_package_says_how_to_install(tmp_path, monkeypatch):
    k = _cplx(2, 8, 8)
    path = write_ismrmrd(tmp_path / "m.h5", header(8, 8, rx=8), _interleaved_lines(k, 2))
    monkeypatch.setitem(sys.modules, "ismrmrd", None)  # as if not installed
    with pytest.raises(ImportError, match="pip install ismrmrd"):
        read_ismrmrd(path)
    with pytest.raises(ImportError, match="pip install ismrmrd"):
        parse_ismrmrd_header(header(8, 8))
