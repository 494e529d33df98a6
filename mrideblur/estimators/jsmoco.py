r"""JSMoCo: joint coil-sensitivity, motion and image estimation with a score-based diffusion prior.

After Chen, Tian, Wu, Lao, Zhang, Wei, *Medical Image Analysis* 102:103502 (2025). The unknowns
are the image ``x``, every shot's rigid motion ``theta_s`` and smooth coil maps ``S`` (a
polynomial model fixed in the scanner frame) in

.. math:: y_s = M_s F S T(\theta_s) x + n_s .

A Gibbs-style sweep runs along the reverse diffusion (:func:`mrideblur.prior.samplers.posterior_sample`):

(a) **image**: a denoising step of the diffusion prior at the current noise level followed by
    data consistency under the current ``theta`` and ``S`` (DiffPIR for the fast sampler,
    annealed Langevin with the likelihood score for ``sampler="pc"``);
(b) **motion**: every ``motion_every`` steps, L-BFGS iterations on all shots' ``theta`` (shot 0
    fixed) through the differentiable model with the current clean estimate ``E[x | x_t]``;
(c) **coils**: every ``coil_every`` steps, the exact linear least-squares fit of the polynomial
    maps given image and motion (:func:`mrideblur.estimators.aligned_sense.fit_coil_coeffs`), normalised to
    ``sum_c |S_c|^2 = 1``.

So motion and coils are estimated under the image posterior, not at one point estimate of it —
the MRI counterpart of Fergus's VB kernel estimate, which averages over the unknown sharp image
(:mod:`mrideblur.estimators.catalogue` shows the shared shape). With ``nsamples > 1`` the chains share the
motion and coils (their mean image drives steps (b) and (c)) and their spread is the posterior
uncertainty of the image.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from ..physics.coils import PolynomialCoilModel, normalize_sens, winding_carriers
from ..physics.multishot_torch import MotionSensePhysics
from ..prior.samplers import CALLBACK_IMAGES
from .aligned_sense import AlignedSenseOptions, fit_coil_coeffs, start
from .base import CancelFn, Cancelled, ProgressFn, Result, check_cancel, one_of, positive_int
from .mri_common import mri_report

__all__ = ["JSMoCoOptions", "estimate_noise_sigma", "jsmoco", "resolve", "run"]

SAMPLERS = ("fast", "pc")
INITS = ("aligned-sense", "espirit")


def estimate_noise_sigma(kspace: np.ndarray, shot_index: np.ndarray, residual: np.ndarray) -> float:
    """Noise std per real channel from the data-consistency residual of a least-squares fit.

    ``E|r|^2 = 2 sigma^2 (1 - p / m)`` for ``m`` complex measurements and ``p`` complex unknowns
    (the image pixels).
    """
    acquired = (np.asarray(shot_index) >= 0)[..., None]
    m = acquired.sum() * kspace.shape[-1] * kspace.shape[0]
    p = np.prod(kspace.shape[1:])
    dof = max(1.0 - p / m, 0.05)
    return float(np.sqrt(np.sum(np.abs(residual * acquired) ** 2) / (2 * m * dof)))


@dataclass
class JSMoCoOptions(AlignedSenseOptions):
    """Options of ``correct(method="jsmoco")`` and of the sweep :func:`jsmoco` (defaults: the fast
    sampler, tuned on simulated MNI slices).  Those of aligned-SENSE
    (:class:`~mrideblur.estimators.aligned_sense.AlignedSenseOptions`: ``coils``, ``max_iter``,
    ``calib_width``, ``device``, ``seed``) set the start.

    Attributes
    ----------
    init : {"aligned-sense", "espirit"}
        Start from the aligned-SENSE result, or from zero motion and the ESPIRiT maps of the
        corrupted data.
    prior : ScorePrior or path, optional
        The diffusion prior; default the weights shipped with the package.
    sampler : {"fast", "pc"}
        ``"fast"``: DiffPIR (one network call per step); ``"pc"``: predictor-corrector annealed
        Langevin with the likelihood score (two calls per step).
    steps : int
        Noise levels of the reverse diffusion.
    sigma_start : float
        First noise level (prior units, images scaled to ``max |x| ~ 1``): the sweep starts from
        the initial estimate re-noised to this level, so a good start needs fewer steps.
    nsamples : int
        Posterior samples (chains); > 1 gives the uncertainty map.
    motion_every, motion_iters : int
        A motion update every ``motion_every`` steps, with this many L-BFGS iterations.
    coil_every : int
        A coil update every ``coil_every`` steps (0: keep the initial maps).
    coil_degree : int
        Total degree of the polynomial coil model.
    lam, dc_iters : float, int
        DiffPIR's prior weight and CG iterations of each data-consistency solve.
    zeta : float
        Share of fresh noise when the fast sampler re-noises its estimate (0: deterministic
        after the start, 1: fresh noise only); more gives more diverse chains. 1 since
        2026-12-07: against 0.3, the posterior mean gained 0.6-3.8 dB on each of the nine cases of
        ``benchmarks/acceleration.py`` (R = 2-4, three sources, 4 chains; e.g. MNI152 R = 4
        35.2 -> 37.0 dB), the chains spread less relative to the error (corrected by
        ``std_scale``).
    std_pool : float
        Width (Gaussian sigma, pixels) of the window over which the per-pixel variance of the
        chains is pooled before the square root: with ``n`` chains a single pixel's std is off by
        about ``1 / sqrt(2 (n - 1))`` (41% for 4 chains); a 1.5-px Gaussian spans ``4 pi sigma^2``
        ~ 28 pixels, which would bring that to ~8% if neighbours were independent, at the cost
        of resolution. 0: raw per-pixel std.
    motion_image : {"consistent", "denoised"}
        The image the motion and coil steps fit to the data: ``"consistent"``, the estimate
        after the data-consistency solve of the step (DiffPIR's ``x0``); ``"denoised"``, the
        prior's denoised estimate before it (Tweedie's ``E[x | x_t]``). The consistent image
        has already been fitted to the data under the current motion, so it carries that
        motion's artefacts and holds the motion where it is.
    std_scale : float
        Factor on the chains' std in ``uncertainty`` (recalibration). The chains share the
        motion and coils and start from one estimate, so their spread misses part of the error
        (the motion and coil errors, the prior's bias): on the development source the raw
        spread was 0.39-0.56 of the actual RMS error (three MNI152 cases at R = 2, 3, 4, fast
        sampler, 4 chains, median 0.55) (``benchmarks/acceleration.md``). The factor
        makes the map's RMS match the RMS error there; how well it holds on sources never used to
        set it is measured in the same benchmark. Measured for the fast sampler; the pc
        sampler's chains get the same factor without a measurement of their own. 1: the raw
        spread.
    """

    sampler: str = "fast"
    steps: int = 24
    sigma_start: float = 0.1
    nsamples: int = 1
    motion_every: int = 2
    motion_iters: int = 8
    coil_every: int = 6
    coil_degree: int = 6
    lam: float = 1.0
    dc_iters: int = 6
    zeta: float = 1.0
    std_pool: float = 1.5
    std_scale: float = 1.8
    motion_image: str = "consistent"
    init: str = "aligned-sense"
    prior: Any = None

    def validate(self) -> None:
        super().validate()
        one_of("sampler", self.sampler, SAMPLERS)
        one_of("init", self.init, INITS)
        one_of("motion_image", self.motion_image, CALLBACK_IMAGES)
        self.nsamples = positive_int("nsamples", self.nsamples)
        self.steps = positive_int("steps", self.steps, 2)
        if not (np.isfinite(self.std_scale) and self.std_scale > 0):
            raise ValueError(f"std_scale: expected a positive number, got {self.std_scale!r}")


def _motion_step(physics: MotionSensePhysics, y: torch.Tensor, x: torch.Tensor, iters: int) -> float:
    """L-BFGS on all shots' motion (shot 0 fixed) for a fixed image ``x`` ``(ny, nx)``."""
    th = physics.theta.clone()
    tv = th[1:].clone().requires_grad_(True)
    zero = torch.zeros_like(th[:1])
    ynorm = float((y.abs() ** 2).sum())
    # the cost is normalised by ||y||^2, so its gradient is small near the optimum: torch's
    # default tolerance (1e-7) would end the step before it starts
    opt = torch.optim.LBFGS([tv], lr=1.0, max_iter=iters, history_size=10, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-12, tolerance_change=1e-14)
    last = [0.0]
    target = physics.model.data_rows(y).contiguous()  # the residual on each shot's own lines

    def closure() -> torch.Tensor:
        opt.zero_grad()
        r = torch.view_as_real(physics.model.forward_rows(x, torch.cat([zero, tv]), physics.sens) - target)
        loss = (r**2).sum() / ynorm
        loss.backward()
        last[0] = float(loss.detach())
        return loss

    opt.step(closure)
    physics.update_parameters(theta=torch.cat([zero, tv.detach()]).cpu().numpy())
    return last[0]


def jsmoco(
    kspace: np.ndarray,
    shot_index: np.ndarray,
    sens: np.ndarray,
    motion: np.ndarray,
    image: np.ndarray,
    prior,
    options: JSMoCoOptions | None = None,
    estimate_coils: bool = True,
    seed: int = 0,
    device: str = "cpu",
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> dict:
    """Run the JSMoCo sweep from an initial estimate (2D).

    Parameters
    ----------
    kspace : (coils, ky, kx) complex
    shot_index : (ky,) int
    sens : (coils, ny, nx) complex
        Initial coil maps (normalised).
    motion : (nshot, 3) float
        Initial motion, degrees / pixels, shot 0 = 0.
    image : (ny, nx) complex
        Initial image (frame of shot 0), data units.
    prior : mrideblur.prior.ScorePrior
    options : JSMoCoOptions
    estimate_coils : bool
        False keeps ``sens`` (known maps).
    seed : int
        Seeds the sampler noise: same seed, same result.
    device : str
        torch device of the prior and the model.
    progress, cancel
        ``progress(step, total, message)`` after every step; ``cancel()`` polled after every
        step (True: stop, returning the current estimate).

    Returns
    -------
    dict with ``image`` (posterior mean, complex64 ``(ny, nx)``), ``uncertainty`` (std of the
    magnitude over the samples, variance pooled over ``std_pool`` pixels, times ``std_scale``,
    float32, None for one sample), ``samples``
    ``(nsamples, ny, nx)``, ``motion`` ``(nshot, 3)``, ``sens``, ``noise_sigma``, ``history``
    (per-step noise level, data cost, motion change), ``cancelled``.
    """
    from ..prior.samplers import posterior_sample

    opt = options or JSMoCoOptions()
    if opt.sampler not in ("fast", "pc"):
        raise ValueError(f"sampler: expected 'fast' or 'pc', got {opt.sampler!r}")
    y = np.asarray(kspace)
    if y.ndim != 3:
        raise ValueError(f"kspace: JSMoCo is implemented for 2D slices (coils, ky, kx), got shape {y.shape}")
    si = np.asarray(shot_index)
    motion = np.array(motion, dtype=np.float64)
    dev = torch.device(device)
    prior = prior.to(dev) if str(prior.device) != str(dev) else prior
    # noise level from the initial fit's residual
    phys = MotionSensePhysics(si, sens, motion, device=dev)
    yt = torch.as_tensor(y, device=dev).to(torch.complex64)
    x0 = torch.as_tensor(np.asarray(image), device=dev).to(torch.complex64)
    with torch.no_grad():
        res = (phys.model(x0, phys.theta, phys.sens) - yt).cpu().numpy()
    phys.noise_sigma = estimate_noise_sigma(y, si, res)
    coil_model = (PolynomialCoilModel(y.shape[1:], opt.coil_degree, winding_carriers(sens, opt.coil_degree))  # winding phase: a carrier
                  if estimate_coils and opt.coil_every else None)
    hist: dict = {"sigma": [], "cost": [], "motion_change": [], "coil_updates": 0}
    t0 = time.perf_counter()

    def callback(i: int, sigma: float, xc: torch.Tensor) -> None:
        mean = xc.mean(0)
        hist["sigma"].append(float(sigma))
        if opt.motion_every and (i + 1) % opt.motion_every == 0:
            before = phys.theta.clone()
            cost = _motion_step(phys, yt, mean.detach(), opt.motion_iters)
            hist["cost"].append(cost)
            hist["motion_change"].append(float((phys.theta - before).abs().max()))
        if coil_model is not None and (i + 1) % opt.coil_every == 0:
            m = mean.detach().cpu().numpy()
            th = phys.theta.cpu().double().numpy()
            phys.update_parameters(sens=normalize_sens(coil_model.maps(fit_coil_coeffs(y, si, m, th, coil_model))))
            hist["coil_updates"] += 1
        check_cancel(cancel)

    cancelled = False
    state: dict = {}

    def cb(i: int, sigma: float, xc: torch.Tensor) -> None:
        state["x"] = xc
        callback(i, sigma, xc)

    try:
        samples = posterior_sample(
            prior, phys, yt, steps=opt.steps, method="diffpir" if opt.sampler == "fast" else "pc",
            n_samples=opt.nsamples, seed=seed, x_init=x0, sigma_start=opt.sigma_start, lam=opt.lam,
            dc_iters=opt.dc_iters, zeta=opt.zeta, callback=cb, progress=progress,
            callback_image=opt.motion_image,
        )
    except Cancelled:
        cancelled = True
        samples = state["x"]
    samples = samples.detach() if torch.is_tensor(samples) else torch.as_tensor(samples)
    samples = samples.reshape(-1, *y.shape[1:])
    mean = samples.mean(0).cpu().numpy().astype(np.complex64)
    unc = None
    if samples.shape[0] > 1:
        var = samples.abs().var(0, unbiased=True).cpu().numpy().astype(np.float64)
        if opt.std_pool > 0:
            var = ndimage.gaussian_filter(var, opt.std_pool, mode="nearest")
        unc = (opt.std_scale * np.sqrt(var)).astype(np.float32)
    hist["seconds"] = time.perf_counter() - t0
    return {
        "image": mean,
        "uncertainty": unc,
        "samples": samples.cpu().numpy().astype(np.complex64),
        "motion": phys.theta.cpu().double().numpy(),
        "sens": phys.sens.cpu().numpy().astype(np.complex64),
        "noise_sigma": phys.noise_sigma,
        "history": hist,
        "cancelled": cancelled,
    }


def load_prior(prior: Any, device: str = "cpu"):
    """The diffusion prior: a :class:`~mrideblur.prior.ScorePrior` as given, loaded from a path,
    or (None) the weights shipped with the package."""
    from ..prior import ScorePrior

    if prior is None:
        return ScorePrior.default(device)
    return prior if isinstance(prior, ScorePrior) else ScorePrior.load(prior, device=device)


def resolve(kspace: np.ndarray, shot_index: np.ndarray, sens: np.ndarray, motion: np.ndarray, image: np.ndarray,
            options: JSMoCoOptions) -> tuple[np.ndarray, np.ndarray | None]:
    """The posterior sweep again with the motion and maps held fixed (``motion_every = coil_every
    = 0``), from ``image``: JSMoCo's image on a shot map from which the safeguard
    (:func:`~mrideblur.estimators.safeguards.safeguard`) dropped shots, so the prior is kept.

    Parameters
    ----------
    kspace : (coils, ky, kx) complex
    shot_index : (ky,) int, the rejected shots' lines ``-1``
    sens : (coils, ny, nx) complex, the estimate's maps
    motion : (nshot_kept, 3) float, the kept shots' motion (degrees, pixels)
    image : (ny, nx) complex, the start (frame of the original shot 0)
    options : JSMoCoOptions

    Returns
    -------
    (posterior mean complex64 (ny, nx), uncertainty float32 (ny, nx) or None)
    """
    prior = load_prior(options.prior, options.device)
    fixed = dataclasses.replace(options, motion_every=0, coil_every=0)
    out = jsmoco(kspace, shot_index, sens, motion, image, prior, fixed, estimate_coils=False, seed=options.seed,
                 device=options.device)
    return out["image"], out["uncertainty"]


def run(kspace: np.ndarray, shot_index: np.ndarray, sens: np.ndarray | None, options: JSMoCoOptions,
        progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> Result:
    """``correct(method="jsmoco")`` on one 2D slice ``(coils, ky, kx)``: the start (aligned-SENSE,
    or zero motion with ESPIRiT maps), then the JSMoCo sweep (:func:`jsmoco`).

    Returns a :class:`~mrideblur.estimators.base.Result`: the posterior-mean image (complex64),
    motion ``(nshot, 3)`` (degrees, pixels, shot 0 zero), the coil maps, the per-pixel
    ``uncertainty`` (``nsamples > 1``) and the report (``history["jsmoco"]`` per step).
    """
    if kspace.ndim != 3:
        raise ValueError(f"kspace: method 'jsmoco' is implemented for 2D slices and stacks, got a volume "
                         f"{kspace.shape}")
    prior = load_prior(options.prior, options.device)
    t0 = time.perf_counter()
    known = sens is not None
    image, motion, sens, history, seconds, cancelled = start(kspace, shot_index, sens, options, progress, cancel,
                                                             estimate=options.init == "aligned-sense")
    uncertainty = None
    noise_sigma = None
    if not cancelled:
        t = time.perf_counter()
        out = jsmoco(kspace, shot_index, sens, motion, image, prior, options, estimate_coils=not known,
                     seed=options.seed, device=options.device, progress=progress, cancel=cancel)
        image, motion, sens, uncertainty = out["image"], out["motion"], out["sens"], out["uncertainty"]
        cancelled = out["cancelled"]
        history["jsmoco"] = out["history"]
        noise_sigma = out["noise_sigma"]
        seconds["jsmoco"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t0
    report = mri_report("jsmoco", options, kspace, shot_index, sens, motion, image, history, seconds, cancelled,
                        coils="given" if known else options.coils,
                        prior=prior.info.get("command", "shipped"), noise_sigma=noise_sigma)
    return Result(image=image, motion=motion, sens=np.asarray(sens, dtype=np.complex64), report=report,
                  history=history, uncertainty=uncertainty)
