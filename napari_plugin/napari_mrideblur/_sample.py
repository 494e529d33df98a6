"""Sample data: a motion-corrupted scan simulated from the built-in MNI152 anatomy, with its truth.

Small on purpose (64 x 64, 4 coils, 8 interleaved shots, random motion up to 2 degrees /
2 pixels, 1% noise) so that the correction widget corrects it in seconds to a minute on a
laptop CPU. The simulation is :func:`mrideblur.physics.simulate` (motion on a 2x finer grid, no
inverse crime), exactly what ``mrideblur simulate --builtin mni --size 64 --coils 4 --shots 8
--max-rot 2 --max-trans 2`` writes.
"""

from __future__ import annotations

from functools import lru_cache

from mrideblur.io.case import Case

from ._layers import LayerData, case_layers

__all__ = ["SAMPLE_PARAMETERS", "make_sample", "sample_case"]

#: Parameters of the sample scan (:func:`mrideblur.physics.simulate` keywords plus the image size).
SAMPLE_PARAMETERS = {
    "size": 64,
    "ncoil": 4,
    "nshot": 8,
    "ordering": "interleaved",
    "motion": "random",
    "max_rot": 2.0,
    "max_trans": 2.0,
    "noise": 0.01,
    "seed": 0,
}


@lru_cache(maxsize=4)
def sample_case(size: int = SAMPLE_PARAMETERS["size"], seed: int = SAMPLE_PARAMETERS["seed"]) -> Case:
    """The simulated sample case (cached; do not modify it).

    Parameters
    ----------
    size : int
        Image side in pixels (the axial MNI slice resampled to ``size x size``).
    seed : int
        Seeds the motion, coils and noise.

    Returns
    -------
    Case
        ``kind="2d"``, ``truth`` with ``image``, ``motion`` and ``sens``; ``voxel_size_mm`` the
        template's 1 mm voxels times the resampling factor.
    """
    from mrideblur.io.anatomy import mni_slice, mni_volume
    from mrideblur.mri import simulate

    p = {k: v for k, v in SAMPLE_PARAMETERS.items() if k not in ("size", "seed")}
    case = simulate(mni_slice("axial", 0.55, size), seed=seed, **p)
    vol, _ = mni_volume()  # (z, y, x), 1 mm; the axial slice is zero-padded to a square first
    voxel = max(vol.shape[1:]) / size
    case.voxel_size_mm = (voxel, voxel)
    case.attrs["object"] = f"MNI152 T1 axial slice at 0.55, {size}x{size}"
    return case


def make_sample() -> list[LayerData]:
    """npe2 sample-data contribution: the sample's uncorrected image, k-space and truth layers."""
    return case_layers(sample_case(), "sample")
