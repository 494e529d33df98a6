"""data_scripts/make_slices.py: MNI152 and fastMRI slices for the diffusion prior."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from mrideblur.io.anatomy import PLANES, shepp_logan
from mrideblur.mri import fft, simulate_sens

SCRIPT = Path(__file__).resolve().parents[1] / "data_scripts" / "make_slices.py"


@pytest.fixture(scope="module")
def ms():
    spec = importlib.util.spec_from_file_location("make_slices", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_slices"] = mod  # dataclasses look their module up by name
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop("make_slices", None)


@pytest.fixture(scope="module")
def mni(ms):
    """Every 10th candidate slice, 48 px, one augmented copy each."""
    return ms.mni_slices(48, augment_copies=1, seed=3, step=10)


def _phase_steps(z: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """|phase difference| between horizontal and vertical neighbours, both inside ``mask``."""
    dx = np.abs(np.angle(z[:, 1:] * np.conj(z[:, :-1])))[mask[:, 1:] & mask[:, :-1]]
    dy = np.abs(np.angle(z[1:] * np.conj(z[:-1])))[mask[1:] & mask[:-1]]
    return np.concatenate([dx, dy])


def test_mni_slices_shape_norm_planes_and_seed(ms, mni):
    n = len(mni)
    assert mni.images.shape == (n, 48, 48) and mni.images.dtype == np.complex64 and n > 20
    np.testing.assert_allclose(np.abs(mni.images).max(axis=(1, 2)), 1.0, rtol=1e-6)
    assert set(mni.origin.tolist()) == set(PLANES)
    assert sorted(set(mni.copy.tolist())) == [0, 1] and (mni.copy == 0).sum() == n // 2
    originals = mni.images[mni.copy == 0]
    assert np.all(originals.imag == 0) and np.all(originals.real >= 0)
    again = ms.mni_slices(48, augment_copies=1, seed=3, step=10)
    np.testing.assert_array_equal(again.images, mni.images)
    other = ms.mni_slices(48, augment_copies=1, seed=4, step=10, max_slices=6)
    assert len(other) == 6 and set(other.origin.tolist()) == set(PLANES)  # spread over the planes
    same = [np.array_equal(other.images[i], mni.images[(mni.origin == other.origin[i]) & (mni.index == other.index[i])
                                                         & (mni.copy == other.copy[i])][0]) for i in range(6)]
    assert all(s for s, c in zip(same, other.copy) if c == 0) and not any(s for s, c in zip(same, other.copy) if c)


def test_mni_skips_slices_with_little_brain(ms):
    cands = ms.mni_candidates(min_brain=0.15)
    from mrideblur.io.anatomy import mni_volume

    vol, _ = mni_volume()
    for plane, i in cands[:: max(len(cands) // 20, 1)]:
        assert np.mean(np.take(vol, i, axis=PLANES.index(plane)) > 0.1) >= 0.15
    assert ("axial", 0) not in cands and len(cands) < sum(vol.shape)


def test_augment_changes_slice_keeps_it_normalised_with_smooth_phase(ms, mni):
    base = mni.images[(mni.copy == 0) & (mni.origin == "axial")][-1].real
    mask = base > 0.2
    for seed in range(4):
        z = ms.augment(base, np.random.default_rng(seed))
        assert z.shape == base.shape and z.dtype == np.complex64 and np.all(np.isfinite(z))
        assert np.abs(z).max() == pytest.approx(1.0, rel=1e-6)
        assert np.linalg.norm(np.abs(z) - base) > 0.05 * np.linalg.norm(base)
        inside = np.abs(z) > 0.2
        assert _phase_steps(z, inside).max() <= 4 * np.pi * 2 / 47  # Markov: degree 2, up to pi, 48 px
    np.testing.assert_array_equal(ms.augment(base, np.random.default_rng(7)), ms.augment(base, np.random.default_rng(7)))
    # over many draws the phase is not trivially zero
    assert max(np.abs(np.angle(ms.augment(base, np.random.default_rng(s))[mask])).max() for s in range(4)) > 0.3


def _write_fastmri(path: Path, nslice: int = 3, ncoil: int = 4) -> np.ndarray:
    """A fastMRI-layout file: kspace (slices, coils, readout 64 = 2x oversampled, 32 ky) of a
    Shepp-Logan inside the central half of the readout; returns the 32 x 32 object (rows = ky)."""
    obj = shepp_logan(32)
    full = np.zeros((32, 64), complex)
    full[:, 16:48] = obj * np.exp(0.5j)
    sens = simulate_sens((32, 64), ncoil)
    k = np.stack([fft(sens * full * (1 + 0.1 * s), 2) for s in range(nslice)])  # (slices, coils, ky, kx)
    with h5py.File(path, "w") as f:
        f["kspace"] = np.swapaxes(k, -1, -2).astype(np.complex64)  # fastMRI: (slices, coils, readout, ky)
    return obj


def test_fastmri_rss_slices_and_bad_file_skipped(ms, tmp_path):
    obj = _write_fastmri(tmp_path / "file_brain_a.h5")
    (tmp_path / "file_brain_b.h5").write_bytes(b"not hdf5")
    with h5py.File(tmp_path / "file_brain_c.h5", "w") as f:
        f["other"] = np.zeros(3)
    (tmp_path / "notes.txt").write_text("ignored")
    with pytest.warns(UserWarning) as rec:
        out = ms.fastmri_slices(tmp_path, size=32, slices_per_volume=2, progress=False)
    msgs = [str(w.message) for w in rec]
    assert any("file_brain_b.h5" in m and "skipped" in m for m in msgs)
    assert any("file_brain_c.h5" in m and "kspace" in m for m in msgs)
    assert all(len(m.splitlines()) == 1 for m in msgs)
    assert out.images.shape == (2, 32, 32) and out.images.dtype == np.complex64
    assert out.origin.tolist() == ["file_brain_a.h5"] * 2 and out.index.tolist() == [0, 1]  # central 2 of 3
    # RSS with sum_c |S_c|^2 = 1 is |object|; the readout crop keeps the central half exactly
    np.testing.assert_allclose(np.abs(out.images[0]), obj / obj.max(), atol=1e-5)
    small = ms.fastmri_slices(tmp_path, size=16, slices_per_volume=10, max_slices=2)
    assert small.images.shape == (2, 16, 16)
    np.testing.assert_allclose(np.abs(small.images).max(axis=(1, 2)), 1.0, rtol=1e-6)


def test_fastmri_errors(ms, tmp_path):
    with pytest.raises(ValueError, match="no .h5 files"):
        ms.fastmri_slices(tmp_path)
    with pytest.raises(ValueError, match="not a folder"):
        ms.fastmri_slices(tmp_path / "missing")
    (tmp_path / "x.h5").write_bytes(b"junk")
    with pytest.warns(UserWarning, match=r"x\.h5"), pytest.raises(ValueError, match="no slice could be read"):
        ms.fastmri_slices(tmp_path)


def test_fastmri_complex_espirit_combination(ms, tmp_path):
    obj = _write_fastmri(tmp_path / "a.h5", nslice=1)
    out = ms.fastmri_slices(tmp_path, size=32, complex_combine=True)
    z = out.images[0]
    mask = obj > 0.05 * obj.max()
    np.testing.assert_allclose(np.abs(z)[mask], (obj / obj.max())[mask], atol=0.02)
    assert _phase_steps(z, mask).max() < 0.3  # coil phases removed up to a smooth map phase


def test_cli_writes_npz_and_folder(ms, tmp_path, capsys):
    out = tmp_path / "mni.npz"
    assert ms.main(["--source", "mni", "--size", "32", "--step", "20", "--augment", "1", "--max-slices", "7",
                    "--out", str(out), "--no-progress"]) == 0
    with np.load(out) as f:
        assert f["images"].shape == (7, 32, 32) and f["images"].dtype == np.complex64
        assert str(f["source"]) == "mni" and f["origin"].shape == (7,) and f["copy"].tolist()[:2] == [0, 1]
    _write_fastmri(tmp_path / "a.h5")
    folder = tmp_path / "slices"
    assert ms.main(["--source", "fastmri", "--data", str(tmp_path), "--size", "16", "--slices-per-volume", "3",
                    "--out", str(folder), "--no-progress"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["000000.npy", "000001.npy", "000002.npy", "index.csv"]
    assert np.load(folder / "000001.npy").shape == (16, 16)
    assert (folder / "index.csv").read_text().splitlines()[1] == "000000.npy,a.h5,0,0"
    assert not [p for p in tmp_path.rglob("*.tmp*")]  # atomic writes left no temporaries
    empty = tmp_path / "empty"
    empty.mkdir()
    assert ms.main(["--source", "fastmri", "--data", str(empty), "--out", str(tmp_path / "e.npz")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "empty" in err[0] and "no .h5 files" in err[0] and not (tmp_path / "e.npz").exists()
    with pytest.raises(SystemExit):
        ms.main(["--source", "fastmri", "--out", str(out)])  # --data missing: usage error


def test_cli_writes_the_prior_mixture(ms, tmp_path, capsys):
    """``--source mixture``: per-source slices with their source as origin; a left-out source is absent."""
    out = tmp_path / "mix.npz"
    assert ms.main(["--source", "mixture", "--sources", "mni152", "synthetic", "--per-source", "6",
                    "--size", "32", "--no-install", "--out", str(out)]) == 0
    with np.load(out) as f:
        origin = f["origin"].tolist()
        assert set(origin) == {"mni152", "synthetic"} and 8 <= len(origin) <= 16
        assert f["images"].shape[1:] == (32, 32) and np.abs(f["images"]).max() == pytest.approx(1.0)
    assert ms.main(["--source", "mixture", "--sources", "mni152", "photos", "--out", str(tmp_path / "x.npz")]) == 1
    assert "photos" in capsys.readouterr().err and not (tmp_path / "x.npz").exists()
