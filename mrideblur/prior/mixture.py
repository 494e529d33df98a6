"""A training mixture for the diffusion prior: several anatomies and synthetic contrasts.

The first prior saw only the MNI152 T1 template: one smooth, noise-free average brain in one
contrast, skull-stripped. Scans researchers bring differ in anatomy (single subjects, other
species), contrast (T2, PD, FLAIR, inverted), texture, bias field, lesions and non-brain tissue
(scalp, skull, fat). The sources here are the ones the project may train on, all installed
offline:

- ``"mni152"``: the MNI152 2009a T1 template (nilearn's wheel), three planes;
- ``"colin27"``: the Colin27 single-subject T1 head, scalp included (Debian's ``mricron-data``);
- ``"inia19"``: the INIA19 macaque T1 brain template, 0.5 mm (``mricron-data``);
- ``"synthetic"``: images drawn from the MNI152 grey-matter, white-matter and CSF maps
  (:func:`synthetic_head`): a random intensity per tissue class (T1-, T2-, PD-, FLAIR-like and
  random orderings), a random head around the brain (CSF rim, dark skull, bright scalp of
  random widths), lesion-like blobs, fine texture, a bias field, a blur and faint noise.

Every source keeps the same held-out band (:data:`mrideblur.prior.data.HELD_OUT`, a fraction of
the volume along each plane's normal) out of ``split="train"``; leaving a whole source out
(``sources`` without it) gives the leave-one-source-out runs of ``benchmarks/prior_denoise.py``.
Shepp-Logan and scikit-image's photographs are never in the mixture (they are test objects).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from mrideblur.io.anatomy import PLANES, template_array, template_slice

from .data import HELD_OUT, _smooth_field, brain_fraction

__all__ = ["MIXTURE_SOURCES", "mixture_base_slices", "source_candidates", "synthetic_head"]

#: Sources of :func:`mixture_base_slices`.
MIXTURE_SOURCES = ("mni152", "colin27", "inia19", "synthetic")

#: Tissue intensities (grey matter, white matter, CSF) of common contrasts, before jitter.
_CONTRASTS = {"T1": (0.55, 0.85, 0.12), "T2": (0.55, 0.35, 1.0), "PD": (0.8, 0.65, 0.9),
              "FLAIR": (0.65, 0.45, 0.06)}


def source_candidates(source: str, split: str = "train", step: int = 1, min_brain: float = 0.15,
                      level: float = 0.1) -> list[tuple[str, float]]:
    """``(plane, position)`` of the slices of one source with enough object in them.

    Parameters
    ----------
    source : str
        One of :data:`MIXTURE_SOURCES` (``"synthetic"`` uses the MNI152 slices).
    split : {"train", "test", "all"}
        Outside, inside or regardless of the held-out band :data:`HELD_OUT`.
    step : int
        Every ``step``-th slice along each normal.
    min_brain, level : float
        Least fraction of the native slice above ``level`` (intensities in [0, 1]).

    Returns
    -------
    list of (plane, position in [0, 1]).
    """
    if source not in MIXTURE_SOURCES:
        raise ValueError(f"source: expected one of {MIXTURE_SOURCES}, got {source!r}")
    if split not in ("train", "test", "all"):
        raise ValueError(f"split: expected 'train', 'test' or 'all', got {split!r}")
    if step < 1:
        raise ValueError(f"step: expected >= 1, got {step}")
    vol = template_array("mni152" if source == "synthetic" else source)
    out = []
    for ax, plane in enumerate(PLANES):
        n = vol.shape[ax]
        for i in np.flatnonzero(brain_fraction(vol, ax, level) >= min_brain):
            pos = i / (n - 1)
            held = HELD_OUT[0] <= pos < HELD_OUT[1]
            if i % step or (split == "train" and held) or (split == "test" and not held):
                continue
            out.append((plane, float(pos)))
    return out


def _shell(d: np.ndarray, lo: np.ndarray, hi: np.ndarray, soft: float) -> np.ndarray:
    """Soft indicator of the band ``lo < d <= hi`` of a distance map ``d`` (pixels)."""

    def step(t: np.ndarray) -> np.ndarray:
        return 0.5 * (1 + np.tanh(t / soft))

    return step(d - lo) * step(hi - d)


def synthetic_head(gm: np.ndarray, wm: np.ndarray, csf: np.ndarray, rng: np.random.Generator,
                   head_probability: float = 0.7) -> np.ndarray:
    """One synthetic magnitude image from tissue probability maps; float64 in [0, 1].

    ``m = sum_k a_k p_k`` over grey matter, white matter and CSF, with intensities ``a_k`` from a
    named contrast (T1, T2, PD, FLAIR; each jittered by up to 0.12) or, one time in four, uniform
    in [0.05, 1] (so inverted and unusual orderings occur); then, each at random:

    - a head (``head_probability``): outside the brain a CSF rim, a dark skull and a bright scalp
      of random widths (in pixels, proportional to the image size) whose boundaries follow a
      smooth random modulation;
    - one to four lesion-like blobs inside the brain (smoothed ellipses, brighter or darker);
    - fine texture (a correlated random field of 1-2 px, up to 6%) per tissue;
    - a multiplicative bias field ``exp(b u(r))``, ``|b| <= 0.4``;
    - a Gaussian blur of up to 1 px (other resolutions), and faint Gaussian noise (<= 0.5%).

    Parameters
    ----------
    gm, wm, csf : (n, n) arrays
        Tissue probabilities of one slice, in [0, 1].
    rng : numpy Generator
        Source of every random choice.
    head_probability : float
        Chance of drawing a head around the brain.

    Returns
    -------
    (n, n) float64, largest value 1.
    """
    gm, wm, csf = (np.clip(np.asarray(a, dtype=np.float64), 0, 1) for a in (gm, wm, csf))
    if not gm.shape == wm.shape == csf.shape or gm.ndim != 2:
        raise ValueError(f"gm, wm, csf: expected three equal 2D shapes, got {gm.shape}, {wm.shape}, {csf.shape}")
    n = max(gm.shape)
    if rng.random() < 0.25:
        a = rng.uniform(0.05, 1.0, 3)
    else:
        name = list(_CONTRASTS)[int(rng.integers(len(_CONTRASTS)))]
        a = np.clip(np.array(_CONTRASTS[name]) + rng.uniform(-0.12, 0.12, 3), 0.03, 1.0)
    tissues = [gm, wm, csf]
    m = np.zeros_like(gm)
    for k, p in enumerate(tissues):
        texture = 1 + rng.uniform(0, 0.06) * _smooth_field(gm.shape, rng, rng.uniform(1, 2))
        m += a[k] * p * texture
    brain = (gm + wm + csf) > 0.5
    if rng.random() < 0.5 and brain.any():  # lesions
        yy, xx = np.mgrid[:gm.shape[0], :gm.shape[1]]
        cand = np.argwhere(wm > 0.7) if (wm > 0.7).any() else np.argwhere(brain)
        for _ in range(int(rng.integers(1, 5))):
            cy, cx = cand[int(rng.integers(len(cand)))]
            ry, rx = rng.uniform(0.01, 0.05, 2) * n
            th = rng.uniform(0, np.pi)
            u = ((yy - cy) * np.cos(th) + (xx - cx) * np.sin(th)) / ry
            v = (-(yy - cy) * np.sin(th) + (xx - cx) * np.cos(th)) / rx
            blob = ndimage.gaussian_filter((u**2 + v**2 <= 1).astype(float), 0.5 + 0.01 * n)
            m = m * (1 - blob) + rng.uniform(0.05, 1.0) * blob * (gm + wm)
    if rng.random() < head_probability and brain.any():  # CSF rim, skull, scalp
        wobble = 1 + 0.3 * _smooth_field(gm.shape, rng, n / 6)
        w_csf, w_skull, w_scalp = (rng.uniform(*r) * n / 128 * wobble for r in ((0.5, 3), (2, 6), (3, 10)))
        soft = 0.6 * max(n / 128, 0.5)
        d = ndimage.distance_transform_edt(~brain)  # pixels outside the brain
        rim = _shell(d, np.zeros_like(w_csf), w_csf, soft)
        skull = _shell(d, w_csf, w_csf + w_skull, soft)
        scalp = _shell(d, w_csf + w_skull, w_csf + w_skull + w_scalp, soft)
        m = m + a[2] * rim + rng.uniform(0.0, 0.15) * skull + rng.uniform(0.3, 1.0) * scalp
    m = m * np.exp(rng.uniform(-0.4, 0.4) * _smooth_field(gm.shape, rng, n / 3))
    if rng.random() < 0.5:
        m = ndimage.gaussian_filter(m, rng.uniform(0.3, 1.0))
    m = np.clip(m, 0, None)
    m = m / max(m.max(), 1e-12)
    if rng.random() < 0.5:
        m = np.abs(m + rng.uniform(0, 0.005) * rng.standard_normal(m.shape))
    return m / max(m.max(), 1e-12)


def mixture_base_slices(size: int = 128, scales: tuple[float, ...] = (1.0, 1.5),
                        sources: tuple[str, ...] = MIXTURE_SOURCES, split: str = "train",
                        target_per_source: int = 300, synthetic_copies: int = 2,
                        seed: int = 0) -> list[np.ndarray]:
    """Magnitude training slices from several sources, about equally many from each.

    Parameters
    ----------
    size : int
        Base side length; every slice is also made at ``round(size * s)`` for ``s`` in ``scales``.
    scales : tuple of float
        Resampling factors (anatomy at several pixel sizes).
    sources : tuple of str
        Subset of :data:`MIXTURE_SOURCES` (leave one out for a held-out-source run).
    split : {"train", "test", "all"}
        Held-out band handling (:func:`source_candidates`).
    target_per_source : int
        About this many images per source and scale (every ``step``-th slice is kept so that each
        source contributes alike: a 0.5 mm volume does not outweigh a 1 mm one; synthetic
        positions are thinned by ``synthetic_copies``).
    synthetic_copies : int
        Synthetic images per MNI152 position (each a new contrast and head).
    seed : int
        Seeds the synthetic draws (slice ``j``, copy ``c``: ``default_rng([seed, j, c])``).

    Returns
    -------
    list of (n, n) float32 arrays in [0, 1] (sizes differ between scales).
    """
    bad = [s for s in sources if s not in MIXTURE_SOURCES]
    if bad or not sources:
        raise ValueError(f"sources: expected a non-empty subset of {MIXTURE_SOURCES}, got {sources!r}")
    out: list[np.ndarray] = []
    for source in sources:
        total = len(source_candidates(source, split))
        per = synthetic_copies if source == "synthetic" else 1
        step = max(1, int(round(total * per / max(target_per_source, 1))))
        cands = source_candidates(source, split, step=step)
        for j, (plane, pos) in enumerate(cands):
            for s in scales:
                n = int(round(size * s))
                if source == "synthetic":
                    maps = [template_slice(t, plane, pos, n) for t in ("mni152-gm", "mni152-wm", "mni152-csf")]
                    for c in range(synthetic_copies):
                        rng = np.random.default_rng([seed, j, c, n])
                        out.append(synthetic_head(*maps, rng).astype(np.float32))
                else:
                    sl = template_slice(source, plane, pos, n)
                    out.append((sl / max(sl.max(), 1e-12)).astype(np.float32))
    if not out:
        raise ValueError(f"sources {sources}: no {split} slice")
    return out
