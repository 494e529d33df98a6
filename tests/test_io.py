"""File input/output: round trips, atomic writes, and clear errors for bad files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import imageio.v3 as iio
import nibabel as nib
import numpy as np
import pytest

from mrideblur.io import (
    atomic_open,
    atomic_write,
    full_suffix,
    read_image,
    read_nifti,
    write_array,
    write_image,
    write_json,
    write_nifti,
)


@pytest.fixture
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(0.0, 1.0, size=(20, 31))


def _no_temp_files(directory: Path) -> bool:
    return not any(p.name.startswith(".") and ".tmp" in p.name for p in directory.iterdir())


# ---------------------------------------------------------------------------- round trips


def test_png_8bit_round_trip_within_half_a_level(tmp_path, image):
    path = write_image(tmp_path / "a.png", image)
    back = read_image(path)
    assert back.dtype == np.float64 and back.shape == image.shape
    assert np.abs(back - image).max() <= 0.5 / 255 + 1e-12
    assert iio.imread(path).dtype == np.uint8


def test_png_16bit_round_trip(tmp_path, image):
    path = write_image(tmp_path / "a.png", image, bit_depth=16)
    assert iio.imread(path).dtype == np.uint16
    assert np.abs(read_image(path) - image).max() <= 0.5 / 65535 + 1e-12


def test_png_clips_to_unit_range(tmp_path):
    x = np.array([[-0.5, 0.0, 0.5], [1.0, 1.5, 0.25], [0.1, 0.2, 0.3]])
    back = read_image(write_image(tmp_path / "c.png", x))
    assert back[0, 0] == 0.0 and back[1, 1] == 1.0
    assert back.min() >= 0.0 and back.max() <= 1.0


def test_npy_round_trip_is_exact(tmp_path, image):
    x = image * 1000 - 3  # .npy keeps values as they are, no scaling
    assert np.array_equal(read_image(write_image(tmp_path / "a.npy", x)), x)


def test_float_tiff_round_trip(tmp_path, image):
    x = image * 7.0 - 2.0
    back = read_image(write_image(tmp_path / "a.tif", x))
    np.testing.assert_allclose(back, x.astype(np.float32), rtol=0, atol=0)


def test_rgb_png_read_as_luminance(tmp_path):
    rgb = np.zeros((4, 5, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 255, 0, 0
    rgb[1:, :, 1] = 255  # rows 1.. are yellow
    iio.imwrite(tmp_path / "rgb.png", rgb)
    g = read_image(tmp_path / "rgb.png")
    assert g.shape == (4, 5)
    np.testing.assert_allclose(g[0], 0.2125)
    np.testing.assert_allclose(g[1:], 0.2125 + 0.7154)


def test_uint16_png_scaled_to_unit_range(tmp_path):
    raw = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    raw = np.pad(raw, 1)
    iio.imwrite(tmp_path / "u16.png", raw)
    np.testing.assert_allclose(read_image(tmp_path / "u16.png"), raw / 65535.0)


def test_write_array_any_shape(tmp_path):
    x = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    back = np.load(write_array(tmp_path / "stack.npy", x))
    assert back.dtype == np.int16 and np.array_equal(back, x)


def _affine() -> np.ndarray:
    a = np.array([[0.0, -1.25, 0.1, 10.5], [0.9, 0.0, 0.0, -5.0], [0.0, 0.0, 3.0, 2.0], [0, 0, 0, 1]])
    return a


@pytest.mark.parametrize("name", ["vol.nii", "vol.nii.gz"])
def test_nifti_round_trip_keeps_affine_and_header(tmp_path, name):
    rng = np.random.default_rng(1)
    data = rng.normal(size=(6, 5, 4)) * 100
    hdr = nib.Nifti1Header()
    hdr["descrip"] = b"mrideblur test"
    hdr.set_xyzt_units("mm", "sec")
    hdr.set_intent("none")
    path = write_nifti(tmp_path / name, data, _affine(), hdr)
    assert _no_temp_files(tmp_path)

    back, affine, header = read_nifti(path)
    assert back.dtype == np.float64 and back.shape == data.shape
    np.testing.assert_allclose(back, data.astype(np.float32))
    np.testing.assert_allclose(affine, _affine(), atol=1e-6)
    assert header["descrip"].item() == b"mrideblur test"
    assert header.get_xyzt_units() == ("mm", "sec")
    assert header.get_data_dtype() == np.float32
    if name.endswith(".gz"):
        with gzip.open(path) as fh:  # really compressed
            assert fh.read(4)


def test_nifti_scaled_integer_file_read_as_float_and_written_unscaled(tmp_path):
    raw = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    img = nib.Nifti1Image(raw, np.eye(4))
    img.header.set_slope_inter(0.5, 10.0)
    nib.save(img, tmp_path / "int.nii")
    data, affine, header = read_nifti(tmp_path / "int.nii")
    np.testing.assert_allclose(data, raw * 0.5 + 10.0)

    write_nifti(tmp_path / "out.nii", data, affine, header)  # the inherited slope must not apply again
    again, _, _ = read_nifti(tmp_path / "out.nii")
    np.testing.assert_allclose(again, data)


def test_write_json_converts_numpy_types(tmp_path):
    obj = {
        "f": np.float32(1.5),
        "i": np.int64(3),
        "b": np.bool_(True),
        "a": np.arange(3),
        "nan": float("nan"),
        "t": (1, 2),
        "p": tmp_path,
    }
    data = json.loads(write_json(tmp_path / "r.json", obj).read_text())
    assert data == {"f": 1.5, "i": 3, "b": True, "a": [0, 1, 2], "nan": None, "t": [1, 2], "p": str(tmp_path)}


def test_full_suffix():
    assert full_suffix("a/b.nii.gz") == ".nii.gz"
    assert full_suffix("B.PNG") == ".png"
    assert full_suffix("x.v2.npy") == ".npy"
    assert full_suffix("noext") == ""


# ---------------------------------------------------------------------------- atomic writes


def test_atomic_write_leaves_nothing_when_writer_raises(tmp_path):
    target = tmp_path / "out.png"

    def half_then_fail(tmp: Path) -> None:
        tmp.write_bytes(b"\x89PNG half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_keeps_previous_file_when_writer_raises(tmp_path, image):
    target = write_image(tmp_path / "keep.npy", image)

    def fail(tmp: Path) -> None:
        tmp.write_bytes(b"garbage")
        raise OSError("interrupted")

    with pytest.raises(OSError):
        atomic_write(target, fail)
    assert np.array_equal(read_image(target), image)
    assert _no_temp_files(tmp_path)


def test_atomic_write_temp_file_has_destination_suffix(tmp_path):
    seen = []
    atomic_write(tmp_path / "v.nii.gz", lambda tmp: (seen.append(tmp), tmp.write_bytes(b"x")))
    assert seen[0].name.endswith(".nii.gz") and seen[0].parent == tmp_path
    assert (tmp_path / "v.nii.gz").read_bytes() == b"x"


def test_atomic_open_discards_on_error(tmp_path):
    target = tmp_path / "notes.txt"
    with pytest.raises(ValueError):
        with atomic_open(target, "w") as fh:
            fh.write("partial")
            raise ValueError("stop")
    assert list(tmp_path.iterdir()) == []
    with atomic_open(target, "w", encoding="utf-8") as fh:
        fh.write("done")
    assert target.read_text() == "done"


def test_write_image_nan_png_is_error_and_writes_nothing(tmp_path):
    x = np.zeros((4, 4))
    x[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_image(tmp_path / "n.png", x)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- bad input


def _assert_names(excinfo: pytest.ExceptionInfo, path: Path) -> None:
    assert str(path) in str(excinfo.value)


def test_missing_file(tmp_path):
    path = tmp_path / "absent.png"
    with pytest.raises(ValueError, match="no such file") as e:
        read_image(path)
    _assert_names(e, path)
    with pytest.raises(ValueError, match="no such file") as e:
        read_nifti(tmp_path / "absent.nii.gz")
    _assert_names(e, tmp_path / "absent.nii.gz")


@pytest.mark.parametrize("name", ["image.bmp", "image.txt", "image"])
def test_unsupported_suffix(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"data")
    with pytest.raises(ValueError, match="unsupported file type") as e:
        read_image(path)
    _assert_names(e, path)


def test_wrong_suffix_for_nifti(tmp_path):
    path = tmp_path / "vol.png"
    path.write_bytes(b"data")
    with pytest.raises(ValueError, match="NIfTI") as e:
        read_nifti(path)
    _assert_names(e, path)


@pytest.mark.parametrize(
    "name, content",
    [
        ("bad.png", b"\x89PNG\r\n\x1a\n this is not really a png"),
        ("bad.tif", b"II*\x00 nonsense"),
        ("bad.jpg", b"\xff\xd8\xff\xe0 nonsense"),
        ("bad.npy", b"\x93NUMPY garbage"),
        ("empty.png", b""),
    ],
)
def test_corrupted_image_files(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match="could not read") as e:
        read_image(path)
    _assert_names(e, path)


def test_truncated_png(tmp_path, image):
    full = write_image(tmp_path / "full.png", image).read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(ValueError, match="could not read") as e:
        read_image(path)
    _assert_names(e, path)


@pytest.mark.parametrize("cut", [0.05, 0.5, 0.99])
def test_corrupted_nifti(tmp_path, cut):
    noise = np.random.default_rng(2).normal(size=(8, 8, 8))  # does not compress much
    good = write_nifti(tmp_path / "good.nii.gz", noise, np.eye(4)).read_bytes()
    path = tmp_path / "bad.nii.gz"
    path.write_bytes(good[: int(cut * len(good))])
    with pytest.raises(ValueError, match="could not read") as e:
        read_nifti(path)
    _assert_names(e, path)


def test_nan_pixels(tmp_path):
    x = np.ones((5, 5))
    x[2, 3] = np.nan
    np.save(tmp_path / "nan.npy", x)
    with pytest.raises(ValueError, match="1 NaN") as e:
        read_image(tmp_path / "nan.npy")
    _assert_names(e, tmp_path / "nan.npy")

    iio.imwrite(tmp_path / "nan.tif", x.astype(np.float32))
    with pytest.raises(ValueError, match="NaN") as e:
        read_image(tmp_path / "nan.tif")
    _assert_names(e, tmp_path / "nan.tif")


def test_nan_voxels(tmp_path):
    v = np.ones((4, 4, 3), dtype=np.float32)
    v[0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(v, np.eye(4)), tmp_path / "nan.nii")
    with pytest.raises(ValueError, match="NaN") as e:
        read_nifti(tmp_path / "nan.nii")
    _assert_names(e, tmp_path / "nan.nii")


@pytest.mark.parametrize(
    "array, match",
    [
        (np.ones((3, 4, 5)), "2D"),
        (np.ones((4, 4), dtype=complex), "complex"),
        (np.array(["a", "b"]), "numeric"),
    ],
)
def test_npy_not_a_2d_real_image(tmp_path, array, match):
    path = tmp_path / "x.npy"
    np.save(path, array)
    with pytest.raises(ValueError, match=match) as e:
        read_image(path)
    _assert_names(e, path)


def test_multipage_tiff_is_rejected(tmp_path):
    path = tmp_path / "stack.tif"
    iio.imwrite(path, np.zeros((3, 8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match="single 2D image") as e:
        read_image(path)
    _assert_names(e, path)


def test_object_npy_is_rejected_without_unpickling(tmp_path):
    path = tmp_path / "obj.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="could not read") as e:
        read_image(path)
    _assert_names(e, path)


def test_write_unsupported_suffix(tmp_path, image):
    with pytest.raises(ValueError, match="cannot write"):
        write_image(tmp_path / "a.jpg", image)
    with pytest.raises(ValueError, match="cannot write"):
        write_nifti(tmp_path / "a.npy", image, np.eye(4))
    with pytest.raises(ValueError, match="affine"):
        write_nifti(tmp_path / "a.nii", image, np.eye(3))


def test_jpeg_read(tmp_path):
    x = np.tile(np.linspace(0, 255, 16, dtype=np.uint8), (16, 1))
    iio.imwrite(tmp_path / "g.jpg", x)
    back = read_image(tmp_path / "g.jpg")
    assert back.shape == (16, 16)
    assert np.abs(back - x / 255.0).max() < 0.05  # lossy


def test_template_slices_are_oriented_like_the_mni_template():
    """Colin27 and INIA19 (Debian's mricron-data) come out as the MNI slices do: values in
    [0, 1], the head centred, and a sagittal slice with superior at the top."""
    from mrideblur.io.anatomy import TEMPLATES, template_slice

    if not Path("/usr/share/mricron/templates", TEMPLATES["colin27"]).is_file():
        pytest.skip("mricron-data not installed (apt-get install mricron-data)")
    mni = template_slice("mni152", "sagittal", 0.5, 96)
    for name in ("colin27", "inia19"):
        for plane in ("axial", "coronal", "sagittal"):
            sl = template_slice(name, plane, 0.5, 96)
            assert sl.shape == (96, 96) and 0 <= sl.min() and sl.max() <= 1 + 1e-9
            rows, cols = np.nonzero(sl > 0.1 * sl.max())
            assert abs(rows.mean() - 47.5) < 20 and abs(cols.mean() - 47.5) < 20, (name, plane)
        # sagittal: superior at the top, so the brain's upper half holds more tissue than the
        # lowest rows (neck / brainstem), as in the MNI slice
        sag = template_slice(name, "sagittal", 0.5, 96)
        for s in (sag, mni):
            assert s[:48].sum() > s[72:].sum()
    with pytest.raises(ValueError, match="name"):
        template_slice("nonexistent")


def test_template_volume_is_a_cube_in_unit_range():
    from mrideblur.io.anatomy import template_volume

    v = template_volume("mni152", 24)
    assert v.shape == (24, 24, 24) and v.min() >= 0 and abs(v.max() - 1) < 1e-12
    assert v[12, 12, 12] > 0.1 and v[0, 0, 0] == 0  # brain in the middle, air in the corner
    with pytest.raises(ValueError, match="size"):
        template_volume("mni152", 4)
    with pytest.raises(ValueError, match="name"):
        template_volume("nope", 24)
