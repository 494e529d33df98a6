r"""What every k-space correction passes through before it is returned: never a worse image silently.

Two checks run after the estimator (:func:`mrideblur.mri.correct` calls :func:`safeguard`), then two
things are said about what they cannot check (3 and 4):

1. **Shots the model cannot explain.**  Each shot's residual energy per acquired sample,

   .. math:: e_s = \frac{\|M_s (A(\theta) x - y)\|^2}{n_s},

   is compared with the noise floor, the lower quartile of all ``e_s`` (most shots are
   explained down to the noise; the quartile is robust to the few that are not).  A shot above
   ``OUTLIER_FACTOR`` times the floor — through-plane motion, a shot that moved during its own
   acquisition, a spike — is **rejected**: its lines count as not acquired, and the image is
   re-solved from the others with their estimated motion (CG-SENSE, 30 iterations; the coils'
   redundancy fills the gap).  One shot at a time, the worst first, then the energies are
   looked at again (a bad shot also raises its neighbours' residual through the shared image).
   Never the shot that owns the k-space centre, and at most a quarter of the shots.  On simulated 96x96, 8-coil, 16-shot interleaved cases with one shot's
   data taken from a slice 6% of the head away, that shot stood at 7-9x the floor and its
   neighbours at 2-4x; rejecting it raised the PSNR from 29.6 to 34.9 dB and from 30.0 to
   36.0 dB (two anatomies), and no shot passed 1.1x in the clean cases.

2. **Better than no correction.**  The relative data misfit ``||A x - y|| / ||y||`` of the
   result is compared with that of the uncorrected image (SENSE, no motion, same coil maps), on
   the same lines (the kept ones).  When the correction does not lower it, the uncorrected
   image is returned (``keep_uncorrected=True``, the default), the estimate's motion goes to
   the report, and a ``RuntimeWarning`` says so.

What the data misfit cannot see: when the unknowns can explain the data in more than one way (a
sequential shot ordering with coils estimated jointly fits the data down to the noise with a
wrong motion, measured), a low misfit does not mean a right image.  So a third line is said,
and a fourth about the field of view:

3. **Can the data fit vouch for the motion?**  A shot that owns no line of the central quarter
   of the phase-encode axes (:func:`shots_outside_centre`) is seen only in one band of high
   frequencies, whose wrong motion the image and the coils absorb.  When more than a quarter of
   the shots are such (sequential and centre-out orderings; never interleaved or random ones),
   ``report["data_fit"]["vouched"]`` is False and a ``RuntimeWarning`` says that the image may
   be worse than the uncorrected one even though the fit improved.  Measured
   (benchmarks/orderings.md, 192x192, 16 shots): every sequential and centre-out case ended 2 to
   25 dB short of the oracle, one 2.4 dB below the uncorrected image with a better data fit;
   every interleaved and random case was recovered (within 0.3 dB of the oracle).

4. **Does the motion carry the object out of the field of view?**  The model moves the image on
   its grid with exact Fourier shears, which are periodic: content pushed over one edge comes in
   at the other.  A scanner does not do that along the readout (its anti-alias filter drops
   what leaves), and simulators that move images by interpolation with zeros outside do it on
   both axes.  :func:`fov_exit` gives, per shot, the share of the corrected image's energy
   (pixels above 5% of the peak) that the estimated motion moves past the grid's edge;
   ``report["data_fit"]["fov_exit"]`` holds it and above :data:`FOV_EXIT_WARN` in some shot a
   ``RuntimeWarning`` says the result near the edges is not to be trusted.  Measured on a
   foreign simulator (benchmarks/foreign2d.py, R = 2, +-3 deg / +-3 px, the true image and
   motion): the Colin27 head, which fills the field of view, moves up to 1.9% of its energy out
   (median shot 0.3%) and its CG-SENSE oracle with the true motion loses 3 dB to a model that
   drops it (a development script, one case: docs/limits.md); MNI152, INIA19 and Shepp-Logan
   slices move none out.
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Callable

import numpy as np

from ..physics.multishot import MultiShotSense
from ..physics.shots import count_shots
from .base import Result
from .mri_common import residuals
from .sense import sense_recon

__all__ = ["FOV_EXIT_WARN", "OUTLIER_FACTOR", "drop_shots", "fov_exit", "safeguard", "shot_residual_energy",
           "shots_outside_centre"]

#: ``resolve(shot_index, motion, x0) -> (image, uncertainty or None)`` (see :func:`safeguard`).
Resolve = Callable[[np.ndarray, np.ndarray, np.ndarray], "tuple[np.ndarray, np.ndarray | None]"]

#: A shot whose residual energy per sample exceeds this many times the noise floor is rejected.
OUTLIER_FACTOR = 5.0
#: At most this share of the shots is rejected (more means the model, not the shots, is wrong).
MAX_REJECTED = 0.25
#: Warn when some shot's motion moves more than this share of the image's energy out of the grid.
FOV_EXIT_WARN = 0.005


def fov_exit(image: np.ndarray, motion: np.ndarray, level: float = 0.05) -> np.ndarray:
    """Per shot, the share of the object's energy its rigid motion moves past the grid's edge.

    The object is the pixels of ``image`` above ``level`` times its peak magnitude; each moves
    from offset ``d`` (about the centre ``N // 2``) to ``R(theta_s) d + t_s`` (docs/conventions.md),
    and counts when that lands more than half a pixel outside the grid on any axis.

    Parameters
    ----------
    image : (ny, nx) or (nz, ny, nx) array
        The image in the frame of zero motion.
    motion : (nshot, 3) or (nshot, 6) float
        ``(rot_deg, ty, tx)`` or ``(rz, ry, rx, tz, ty, tx)``, degrees and pixels.
    level : float
        Magnitude, relative to the peak, below which a pixel is background.

    Returns
    -------
    (nshot,) float in [0, 1]: energy moved out over the object's energy.
    """
    from ..physics.motion import rotation_matrix2d, rotation_matrix3d

    x = np.abs(np.asarray(image))
    motion = np.atleast_2d(np.asarray(motion, dtype=float))
    nd = x.ndim
    if nd not in (2, 3) or motion.shape[1] != 3 * (nd - 1):
        raise ValueError(f"fov_exit: image {x.shape} and motion {motion.shape}: expected a 2D image with (nshot, 3) "
                         "or a 3D volume with (nshot, 6)")
    peak = float(x.max()) if x.size else 0.0
    if peak <= 0:
        return np.zeros(len(motion))
    n = np.array(x.shape)
    c = n // 2
    keep = x > level * peak
    d = np.argwhere(keep).astype(float) - c
    w = x[keep] ** 2
    out = np.zeros(len(motion))
    for s, th in enumerate(motion):
        R = rotation_matrix2d(th[0]) if nd == 2 else rotation_matrix3d(*th[:3])
        moved = d @ R.T + (th[1:] if nd == 2 else th[3:])
        gone = np.any((moved < -c - 0.5) | (moved > n - 1 - c + 0.5), axis=1)
        out[s] = float(w[gone].sum() / w.sum())
    return out


def shot_residual_energy(kspace: np.ndarray, shot_index: np.ndarray, sens: np.ndarray, motion: np.ndarray | None,
                         image: np.ndarray) -> np.ndarray:
    """Mean ``|A x - y|^2`` over each shot's acquired samples (all coils): ``(nshot,)`` float64,
    in the squared units of ``kspace``."""
    r = MultiShotSense(sens, shot_index, motion)(image) - kspace
    power = np.sum(np.abs(r) ** 2, axis=(0, -1))  # per phase-encode line (or (kz, ky) point)
    counts = r.shape[0] * r.shape[-1]
    nshot = count_shots(shot_index)
    return np.array([power[shot_index == s].sum() / max(counts * int((shot_index == s).sum()), 1)
                     for s in range(nshot)], dtype=np.float64)


#: Share of the shots owning no central line above which the data fit cannot vouch for the motion.
MAX_OUTSIDE_CENTRE = 0.25


def shots_outside_centre(shot_index: np.ndarray, fraction: float = 0.25) -> list[int]:
    """The shots that own no acquired line in the central ``fraction`` of every phase-encode
    axis (``(ky,)`` or ``(kz, ky)`` shot maps), in shot order."""
    si = np.asarray(shot_index)
    centre = tuple(slice(n // 2 - max(int(round(fraction * n / 2)), 1), n // 2 + max(int(round(fraction * n / 2)), 1))
                   for n in si.shape)
    inside = set(np.unique(si[centre]).tolist())
    return [s for s in range(count_shots(si)) if s not in inside and bool((si == s).any())]


def drop_shots(shot_index: np.ndarray, motion: np.ndarray, shots: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The shot map and motion table without ``shots``: their lines become ``-1`` (not acquired)
    and the remaining shots are renumbered ``0 .. nshot - len(shots) - 1`` in order."""
    nshot = count_shots(shot_index)
    keep = [s for s in range(nshot) if s not in set(shots)]
    remap = np.full(nshot + 1, -1, dtype=np.int64)  # index -1 (not acquired) maps to the last entry
    remap[keep] = np.arange(len(keep))
    return remap[np.asarray(shot_index)], np.asarray(motion)[keep]


def _spread(values: list[float], dropped: list[int], nshot: int) -> list[float | None]:
    """Per-kept-shot values back on the original shot numbers, ``None`` for the dropped shots."""
    it = iter(values)
    return [None if s in dropped else float(next(it)) for s in range(nshot)]


def safeguard(kspace: np.ndarray, shot_index: np.ndarray, res: Result, method: str, *, reject_shots: bool = True,
              keep_uncorrected: bool = True, stacklevel: int = 3, resolve: Resolve | None = None) -> Result:
    """Reject inconsistent shots, then compare the data fit with no correction (module notes).

    Parameters
    ----------
    kspace : (coils, ky, kx) or (coils, kz, ky, kx) complex
    shot_index : (ky,) or (kz, ky) int
    res : the estimator's Result (``image``, ``motion``, ``sens``, ``report``)
    method : the catalogue name (``"none"`` only gets its uncorrected image)
    reject_shots, keep_uncorrected : bool
        Switch check 1 off; return the estimate even when it fits the data worse.
    resolve : callable, optional
        ``resolve(shot_index, motion, x0) -> (image, uncertainty or None)``: the estimator's own
        image for fixed motion and maps on the shot map without the rejected shots (JSMoCo: its
        posterior sweep again, so the prior is not lost); default CG-SENSE, 30 iterations from
        ``x0``.  Measured on a foreign-simulator Colin27 slice at R = 2 (benchmarks/foreign2d.py):
        JSMoCo 31.43 dB without the check; one shot rejected and the image re-solved by CG-SENSE,
        29.65 dB; aligned-SENSE 30.89.

    Returns
    -------
    Result
        ``res`` with ``uncorrected`` set and ``report["data_fit"]``: ``uncorrected``,
        ``corrected`` (relative misfits on the kept lines), ``improved``,
        ``uncorrected_per_shot``, ``rejected_shots``, ``shot_energy_vs_floor``,
        ``kept_uncorrected``, ``shots_outside_centre``, ``vouched`` (check 3) and ``fov_exit``
        (check 4: per shot, the share of the image's energy moved out of the field of view).  After a
        rejection the image and ``residual_per_shot`` are those of the re-solve; ``motion`` keeps
        every shot's estimate.
    """
    from .aligned_sense import reference_shot

    t = time.perf_counter()
    uncorrected = res.image if method == "none" else sense_recon(kspace, shot_index, res.sens, None, max_iter=30)
    res.uncorrected = uncorrected
    seconds = res.report.setdefault("seconds", {})
    if method == "none":
        res.report["data_fit"] = {"uncorrected": res.report["data_misfit"], "corrected": res.report["data_misfit"],
                                  "improved": None, "uncorrected_per_shot": list(res.report["residual_per_shot"])}
        seconds["uncorrected"] = time.perf_counter() - t
        return res
    si, motion = np.asarray(shot_index), np.asarray(res.motion)
    fit: dict[str, Any] = {"rejected_shots": [], "rule": f"shot energy per sample > {OUTLIER_FACTOR:g} x the "
                           f"lower quartile of all shots (at most {MAX_REJECTED:.0%}, never the centre shot)"}
    if reject_shots and count_shots(si) >= 4:
        nshot, ref = count_shots(si), reference_shot(si)
        original = list(range(nshot))  # original number of each shot in the current (renumbered) map
        image, kept_motion, bad = res.image, motion, []
        while len(bad) < int(MAX_REJECTED * nshot):  # the worst shot first, then look again
            energy = shot_residual_energy(kspace, si, res.sens, kept_motion, image)
            floor = float(np.percentile(energy, 25))
            if not bad:
                fit["shot_energy_vs_floor"] = (energy / floor).round(3).tolist() if floor > 0 else None
            worst = int(np.argmax(np.where(np.array(original) == ref, -np.inf, energy)))
            if not floor > 0 or energy[worst] <= OUTLIER_FACTOR * floor:
                break
            bad.append(original.pop(worst))
            si, kept_motion = drop_shots(si, kept_motion, [worst])
            if resolve is None:
                image = sense_recon(kspace, si, res.sens, kept_motion, max_iter=30, x0=image).astype(np.complex64)
            else:
                image, uncertainty = resolve(si, kept_motion, image)
        if bad:
            res.image = image
            if resolve is not None:
                res.uncertainty = uncertainty
            fit["rejected_shots"] = sorted(bad)
            total, per_shot = residuals(kspace, si, res.sens, kept_motion, res.image)
            res.report["data_misfit"] = total
            res.report["residual_per_shot"] = _spread(per_shot, bad, nshot)
    before, before_per_shot = residuals(kspace, si, res.sens, None, uncorrected)
    after = res.report["data_misfit"]
    if fit["rejected_shots"]:
        before_per_shot = _spread(before_per_shot, fit["rejected_shots"], count_shots(shot_index))
    outside = shots_outside_centre(shot_index)
    exits = fov_exit(res.image, motion)
    fit.update(uncorrected=before, corrected=after, improved=bool(after < before),
               uncorrected_per_shot=before_per_shot, kept_uncorrected=False, shots_outside_centre=outside,
               vouched=len(outside) <= MAX_OUTSIDE_CENTRE * count_shots(shot_index),
               fov_exit=exits.round(4).tolist())
    if exits.size and exits.max() > FOV_EXIT_WARN:
        worst = int(np.argmax(exits))
        warnings.warn(f"correct(method={method!r}): the estimated motion moves {100 * exits[worst]:.1f}% of the "
                      f"image's energy out of the field of view (shot {worst}); the model wraps it round to the "
                      "other edge, so the result near the edges, and its accuracy, are not to be trusted "
                      "(report['data_fit']['fov_exit'], docs/limits.md)", RuntimeWarning, stacklevel=stacklevel)
    if fit["improved"] and not fit["vouched"]:
        warnings.warn(f"correct(method={method!r}): {len(outside)} of {count_shots(shot_index)} shots own no line of "
                      "the central quarter of k-space (a sequential or centre-out ordering): their motion is poorly "
                      "determined and the data fit cannot vouch for it; the image may be worse than the uncorrected "
                      "one (report['data_fit']['vouched'], docs/limits.md)", RuntimeWarning, stacklevel=stacklevel)
    if not fit["improved"]:
        msg = (f"correct(method={method!r}): the corrected data misfit {after:.4f} is not below the uncorrected one "
               f"{before:.4f}; the motion estimate is likely wrong")
        if keep_uncorrected:
            res.report["rejected_motion"] = np.asarray(res.motion).tolist()
            res.image, res.motion = uncorrected, np.zeros_like(np.asarray(res.motion))
            fit["kept_uncorrected"] = True
            msg += ": the uncorrected image is returned (report['data_fit'], report['rejected_motion'])"
        warnings.warn(msg, RuntimeWarning, stacklevel=stacklevel)
    res.report["data_fit"] = fit
    seconds["safeguards"] = time.perf_counter() - t
    return res
