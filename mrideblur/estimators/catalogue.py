"""The one list of estimators: what each solves, how, with which prior, and where it lives.

Every problem here is **physics with unknown parameters + an image prior + an estimator**:

==================  ==============================  ========================  ===========================
problem             physics ``y = A(phi) x + n``    unknown ``phi``           image prior
==================  ==============================  ========================  ===========================
image deblurring    convolution with a kernel       the kernel ``k``          gradient MoG; diffusion score
MRI motion          ``sum_s M_s F S T(theta_s)``    ``theta`` and coils ``S``  none/Tikhonov; diffusion score
magnitude images    ``|F^H sum_s M_s F T(theta_s) x|``  ``theta``              TV + l1; gradient entropy
==================  ==============================  ========================  ===========================

and the estimators come in three families:

- **point** — alternating or joint point estimates of the image and the parameters: naive MAP
  blind deconvolution, aligned-SENSE (image and motion in one joint L-BFGS step, alternated
  with the coil step);
- **posterior** — the parameters are estimated while averaging over the image: Fergus et al.'s
  Variational Bayes (the kernel update uses the posterior mean *and variance* of the
  gradients), kernel refits along a diffusion posterior sweep, and JSMoCo (motion and coils
  updated along a diffusion posterior sweep; the chains also give the uncertainty);
- **profiled** — the image is re-solved for every candidate parameter and the few parameters
  are searched globally, then refined: the step autofocus of magnitude images;
- **non-blind** — the parameters are known (a kernel; a motion table): the image alone;
- **learned** — a network trained on examples maps the data to the image (the scale-recurrent
  network); whatever parameters are reported are fitted afterwards.

Each :class:`Entry` names its module, its options dataclass and its run function; modules are
imported only when a method is used, so listing methods is instant. The public entry points
(:func:`mrideblur.deblur.deconvolve`, :func:`mrideblur.deblur.blind_deconvolve`,
:func:`mrideblur.mri.correct`, :func:`mrideblur.estimators.api.correct_magnitude_image`), the
CLI, the batch runner and the napari widgets all read :data:`CATALOGUE`.

Adding an estimator: one module in ``mrideblur/estimators/`` with an ``Options`` dataclass
(derived from :class:`mrideblur.estimators.base.Options`) and a ``run`` function returning
:class:`mrideblur.estimators.base.Result` — copy ``mrideblur/estimators/_template.py`` — and one
line below. docs/architecture.md walks through it.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["CATALOGUE", "PROBLEMS", "Entry", "find", "methods"]

#: Problems and what their run functions take.
PROBLEMS: dict[str, str] = {
    "deconvolve": "run(blurred (ny, nx) float, kernel (m, m), options) -> (ny, nx) float image",
    "blind-deconvolve": "run(blurred (ny, nx) float, kernel_size, options, progress, cancel) -> Result",
    "deconvolve-nonuniform": "run(blurred float on operator.oshape, operator (2D sigpy Linop), options) -> float "
                             "image on operator.ishape",
    "deblur-nonuniform": "run(blurred (ny, nx) or (ny, nx, 3) float, options, progress, cancel) -> Result "
                         "(kernel: the field (gy, gx, m, m))",
    "kspace": "run(kspace (coils, ky, kx) or (coils, kz, ky, kx), shot_index, sens or None, options, "
              "progress, cancel) -> Result",
    "magnitude": "run(image (ny, nx), shot_index (ny,), motion (nshot, 3) or None, options, progress, cancel) "
                 "-> Result",
}


@dataclass(frozen=True)
class Entry:
    """One row of the catalogue.

    Attributes
    ----------
    problem : str
        A key of :data:`PROBLEMS` (what the run function takes).
    name : str
        The method's name in the API, the CLI (``--method``) and napari.
    title : str
        A human description (paper, idea).
    unknown : str
        The physics parameters estimated (or "none" for non-blind methods).
    prior : str
        The image prior.
    family : str
        ``"point"``, ``"posterior"``, ``"profiled"``, ``"non-blind"`` or ``"learned"``.
    module : str
        Module (relative to :mod:`mrideblur.estimators`) holding the method.
    options : str
        Name of its options dataclass in that module.
    run : str
        Name of its run function in that module.
    resolve : str
        k-space methods: name of the function that re-solves the image for fixed motion and coil
        maps after the safeguard rejected shots, ``resolve(kspace, shot_index, sens, motion, x0,
        options) -> (image, uncertainty or None)``; empty: CG-SENSE (30 iterations from ``x0``).
    colour : bool
        Blind deblurring methods whose run function takes a colour image ``(ny, nx, 3)`` itself
        (an end-to-end network); the others get the luminance for the kernel and each channel
        deconvolved with it (:func:`mrideblur.estimators.blind_common.blind_colour`).
    """

    problem: str
    name: str
    title: str
    unknown: str
    prior: str
    family: str
    module: str
    options: str = "Options"
    run: str = "run"
    resolve: str = ""
    colour: bool = False

    def _module(self):
        return importlib.import_module(f"mrideblur.estimators.{self.module}")

    def options_class(self) -> type:
        """The options dataclass (imports the module)."""
        return getattr(self._module(), self.options)

    def run_function(self) -> Callable[..., Any]:
        """The run function (imports the module)."""
        return getattr(self._module(), self.run)

    def resolve_function(self) -> Callable[..., Any] | None:
        """The image re-solve after shot rejection (imports the module), or None: CG-SENSE."""
        return getattr(self._module(), self.resolve) if self.resolve else None

    def option_names(self) -> frozenset[str]:
        """Names of the fields of the options dataclass (imports the module)."""
        return frozenset(f.name for f in dataclasses.fields(self.options_class()))

    def make_options(self, **kwargs: Any):
        """Options from keyword arguments, with a clear error for a name the method does not take
        (naming the methods of the same problem that do take it)."""
        names = self.option_names()
        for key in kwargs:
            if key not in names:
                others = [e.name for e in CATALOGUE if e.problem == self.problem and e.name != self.name
                          and key in e.option_names()]
                if others:
                    raise ValueError(f"{key}: method {self.name!r} does not take this option (only "
                                     f"{', '.join(repr(o) for o in others)}); its options are "
                                     f"{', '.join(sorted(names))}")
        cls = self.options_class()
        return cls.from_kwargs(self.name, **kwargs)


CATALOGUE: tuple[Entry, ...] = (
    # image deblurring, kernel known
    Entry("deconvolve", "inverse", "regularised inverse filter", "none", "none", "non-blind", "nonblind",
          "InverseOptions"),
    Entry("deconvolve", "wiener", "Wiener filter, noise-to-signal ratio by the discrepancy principle", "none",
          "Gaussian (constant spectrum)", "non-blind", "nonblind", "WienerOptions"),
    Entry("deconvolve", "tikhonov", "Tikhonov, closed form", "none", "Gaussian gradients", "non-blind",
          "nonblind", "TikhonovOptions"),
    Entry("deconvolve", "hyper-laplacian", "half-quadratic splitting (Krishnan & Fergus 2009)", "none",
          "hyper-Laplacian gradients", "non-blind", "nonblind", "HyperLaplacianOptions"),
    Entry("deconvolve", "richardson-lucy", "Richardson-Lucy (Poisson maximum likelihood)", "none",
          "early stopping", "non-blind", "nonblind", "RichardsonLucyOptions"),
    Entry("deconvolve", "diffusion", "diffusion posterior mean (DiffPIR-style)", "none", "diffusion score",
          "non-blind", "nonblind", "DiffusionOptions"),
    # image deblurring, spatially varying blur known (a pose path or a kernel field)
    Entry("deconvolve-nonuniform", "hyper-laplacian", "IRLS + conjugate gradients on any blur operator", "none",
          "hyper-Laplacian gradients", "non-blind", "nonblind_nonuniform", "NonuniformHyperLaplacianOptions"),
    Entry("deconvolve-nonuniform", "tikhonov", "conjugate gradients on any blur operator", "none",
          "Gaussian gradients", "non-blind", "nonblind_nonuniform", "NonuniformTikhonovOptions"),
    # image deblurring, spatially varying blur unknown
    Entry("deblur-nonuniform", "kernel-field", "CNN motion classes per patch + MRF, non-uniform deconvolution "
          "(Sun et al. 2015)", "a field of linear motion kernels", "hyper-Laplacian gradients", "learned",
          "kernel_field", "KernelFieldOptions", colour=True),
    # image deblurring, kernel unknown
    Entry("blind-deconvolve", "map", "joint MAP of image and kernel (the naive baseline)", "kernel",
          "gradient mixture of Gaussians", "point", "blind_vb", "MAPOptions"),
    Entry("blind-deconvolve", "vb", "Variational Bayes, coarse to fine (Fergus et al. 2006)", "kernel",
          "gradient mixture of Gaussians", "posterior", "blind_vb", "VBOptions"),
    Entry("blind-deconvolve", "diffusion", "kernel refits along a diffusion posterior sweep", "kernel",
          "diffusion score", "posterior", "blind_diffusion", "BlindDiffusionOptions"),
    Entry("blind-deconvolve", "neural-filter", "per-patch deconvolution filters from a network, then a kernel fit "
          "and non-blind deconvolution (Chakrabarti 2016)", "kernel", "learned filters + hyper-Laplacian gradients",
          "learned", "neural_filter", "NeuralFilterOptions", colour=True),
    Entry("blind-deconvolve", "residual-prior", "VB kernel, then deep image prior + deep residual prior for the "
          "kernel error (Tang et al. 2023); ensemble uncertainty", "kernel error (residual)",
          "untrained generators + Laplace gradients", "posterior", "residual_prior", "ResidualPriorOptions",
          colour=True),
    Entry("blind-deconvolve", "srn", "scale-recurrent network, end to end (Tao et al. 2018); kernel fitted after",
          "none (image directly)", "learned from blurred photographs", "learned", "deblur_network",
          "NetworkDeblurOptions", colour=True),
    # multi-coil k-space with rigid motion
    Entry("kspace", "none", "CG-SENSE with ESPIRiT maps, no motion correction", "none", "Tikhonov (early stop)",
          "non-blind", "sense", "NoCorrectionOptions", "run_uncorrected"),
    Entry("kspace", "aligned-sense", "joint image + motion L-BFGS, coils re-fitted (aligned-SENSE)",
          "per-shot rigid motion, coil maps", "Tikhonov (early stop)", "point", "aligned_sense",
          "AlignedSenseOptions"),
    Entry("kspace", "jsmoco", "JSMoCo (Chen et al. 2025): motion and coils along a diffusion posterior sweep",
          "per-shot rigid motion, coil maps", "diffusion score", "posterior", "jsmoco", "JSMoCoOptions",
          resolve="resolve"),
    # magnitude images (NIfTI), no raw data
    Entry("magnitude", "step-autofocus", "one move per scan, searched globally under the modulus model",
          "step shot, rot, ty, tx", "TV + l1 + non-negativity", "profiled", "autofocus_step",
          "StepAutofocusOptions"),
    Entry("magnitude", "per-shot-autofocus", "gradient-entropy autofocus (Atkinson et al. 1997)",
          "per-shot rigid motion", "gradient entropy", "point", "autofocus", "AutofocusOptions"),
    Entry("magnitude", "known-motion", "modulus-model reconstruction with a given motion table", "none",
          "TV + l1 + non-negativity", "non-blind", "autofocus_magnitude", "MagnitudeOptions"),
)


def methods(problem: str) -> tuple[str, ...]:
    """Names of the methods for ``problem`` (a key of :data:`PROBLEMS`), in catalogue order."""
    if problem not in PROBLEMS:
        raise ValueError(f"problem: expected one of {tuple(PROBLEMS)}, got {problem!r}")
    return tuple(e.name for e in CATALOGUE if e.problem == problem)


def find(problem: str, name: str) -> Entry:
    """The entry of method ``name`` for ``problem``; a ValueError listing the choices otherwise."""
    for e in CATALOGUE:
        if e.problem == problem and e.name == name:
            return e
    raise ValueError(f"method: expected one of {methods(problem)}, got {name!r}")
