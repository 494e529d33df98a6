"""One framework, two physics: the shape every blind estimator in mrideblur shares.

Every problem here is **physics with unknown parameters + an image prior + an estimator**:

==================  ==============================  ========================  ===========================
problem             physics ``y = A(phi) x + n``    unknown ``phi``           image prior
==================  ==============================  ========================  ===========================
image deblurring    convolution with a kernel       the kernel ``k``          gradient MoG; diffusion score
MRI motion          ``sum_s M_s F S T(theta_s)``    ``theta`` and coils ``S``  none/Tikhonov; diffusion score
==================  ==============================  ========================  ===========================

and the estimators come in two families, both present for both problems:

- **alternating point estimates** — an image step and a parameter step at the current point
  estimate of the image: naive MAP blind deconvolution
  (:func:`mrideblur.deblur.blind_deconvolve` ``method="map"``) and aligned-SENSE
  (:func:`mrideblur.mri.correct` ``method="aligned-sense"``, which makes the image and motion
  steps one joint L-BFGS step and alternates it with the coil step);
- **posterior-averaged** — the parameters are estimated while averaging over the unknown
  image: Fergus et al.'s Variational Bayes (``method="vb"``: the kernel update uses the
  posterior mean *and variance* of the gradients), its diffusion counterpart
  (``blind_deconvolve(method="diffusion")``: the kernel is refitted along a diffusion posterior
  sweep, to the re-noised and denoised posterior mean over the chains) and JSMoCo
  (``method="jsmoco"``: motion and coils are updated along a diffusion posterior sweep, against
  the posterior mean of the image over the chains, which also give the uncertainty).

A third, **profiled** search suits problems with few unknowns: the image is re-solved for every
candidate parameter and the parameters are searched globally on a grid, then refined — the step
autofocus of magnitude images (:mod:`mrideblur.mri.autofocus_step`, one move: four unknowns),
where alternating from zero motion stays in the zero-motion local minimum.

The pieces that make this pluggable are duck-typed, as in deepinv:

- a *physics* (:class:`Physics`): ``A``, ``A_adjoint`` on torch tensors, optionally
  ``noise_sigma`` — :class:`mrideblur.prior.physics.Convolution` (and its masked, re-kernelable
  :class:`mrideblur.deblur.blind_diffusion.MaskedConvolution`),
  :class:`mrideblur.prior.physics.MaskedFourier`, :class:`mrideblur.mri.jsmoco.MotionSensePhysics`;
- a *prior* (:class:`Prior`): ``denoise(x, sigma)`` — :class:`mrideblur.prior.ScorePrior`;
- a *parameter step* (:class:`ParameterStep`): ``(physics, y, image) -> None`` updating the
  physics' unknowns in place — the motion and coil steps of JSMoCo, the kernel step of blind
  diffusion deblurring; the samplers of
  :mod:`mrideblur.prior.samplers` call one through their ``callback`` after every step, so a
  new physics with a new unknown plugs in without touching the sampler.

:data:`ESTIMATORS` lists them with their entry points (``mrideblur.estimators.ESTIMATORS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["ESTIMATORS", "Estimator", "ParameterStep", "Physics", "Prior"]


@runtime_checkable
class Physics(Protocol):
    """A linear forward model ``y = A x`` on torch tensors ``(n, H, W)`` (its parameters are
    attributes that parameter steps may change)."""

    def A(self, x): ...

    def A_adjoint(self, y): ...


@runtime_checkable
class Prior(Protocol):
    """An image prior through its MMSE denoiser ``D(x, sigma) = E[x0 | x0 + sigma z = x]``."""

    def denoise(self, x, sigma): ...


class ParameterStep(Protocol):
    """Update the unknown parameters of ``physics`` given the data and the current image
    (a point estimate, or the posterior mean over samples)."""

    def __call__(self, physics: Physics, y, image) -> None: ...


@dataclass(frozen=True)
class Estimator:
    """One row of the table: which problem, how the unknown is estimated, and where it lives."""

    problem: str
    name: str
    unknown: str
    prior: str
    family: str  # "point" (alternating point estimates), "posterior" (averaged over the image) or
    # "profiled" (image re-solved per candidate parameter, parameters searched on a grid)
    entry_point: str


ESTIMATORS: tuple[Estimator, ...] = (
    Estimator("deblurring", "MAP", "kernel", "gradient mixture of Gaussians", "point",
              "mrideblur.deblur.blind_deconvolve(method='map')"),
    Estimator("deblurring", "Variational Bayes (Fergus 2006)", "kernel", "gradient mixture of Gaussians",
              "posterior", "mrideblur.deblur.blind_deconvolve(method='vb')"),
    Estimator("deblurring", "diffusion posterior sweep with kernel refits", "kernel", "diffusion score",
              "posterior", "mrideblur.deblur.blind_deconvolve(method='diffusion')"),
    Estimator("MRI motion", "aligned-SENSE", "per-shot rigid motion, coil maps", "Tikhonov", "point",
              "mrideblur.mri.correct(method='aligned-sense', coils='joint')"),
    Estimator("MRI motion", "JSMoCo (Chen 2025)", "per-shot rigid motion, coil maps", "diffusion score",
              "posterior", "mrideblur.mri.correct(method='jsmoco')"),
    Estimator("NIfTI magnitude motion", "step autofocus under the modulus model", "one rigid move (step shot, "
              "rot, ty, tx)", "TV + l1 + non-negativity", "profiled", "mrideblur.mri.autofocus_step.step_autofocus"),
    Estimator("complex-image motion", "autofocus (Atkinson 1997)", "per-shot rigid motion",
              "gradient entropy", "point", "mrideblur.mri.autofocus.autofocus"),
)
