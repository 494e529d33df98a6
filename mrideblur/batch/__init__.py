"""``mrideblur batch``: correct whole directories of studies on Dask, resumably.

One **task** per 2D slice (per volume for 3D k-space): a task reads only its slice, runs the
library's estimator (:func:`mrideblur.mri.correct` for k-space; for NIfTI magnitude images
:func:`mrideblur.mri.correct_magnitude_image` with the catalogue's ``step-autofocus``, one move
per slice, ``per-shot-autofocus`` with ``motion_model="per-shot"``, or ``known-motion`` with a
motion table) and writes the slice's result to ``OUT/<study>/.parts/slice_NNNN.npz``. When
every slice of a study is there, the client reassembles them into the study's outputs and
writes ``report.json`` last:

- NIfTI input: ``corrected.nii.gz`` (the source's shape, affine and header), ``motion.csv``
  (a ``slice`` column, then ``shot,rot_deg,ty,tx``), ``report.json``;
- k-space input (case ``.h5``, fastMRI, ISMRMRD): ``image.nii.gz``, ``motion.csv``,
  ``recon.h5`` (complex image and motion; coil maps only for single slices), ``report.json``.

Resuming: every file is written to a temporary name and renamed (:mod:`mrideblur.io.atomic`),
so no half-written output ever appears. A rerun skips studies whose ``report.json`` exists
and slices whose part file exists, and removes temporary files a killed run left; so a killed
run restarts where it stopped. ``OUT/summary.csv`` (rewritten atomically after every study)
lists every input: ``status`` ``done`` (this run), ``skipped`` (finished before), ``failed``
(with the error) or ``pending``, the PSNR before/after when a truth exists, compute seconds,
the largest worker resident memory, the output folder, and a ``warning`` when a k-space
correction did not lower the data misfit (``report["data_fit"]``; also printed on stderr).

Scheduling: ``dask.distributed``, a ``LocalCluster`` of single-threaded worker processes by
default, or any scheduler by address (``--scheduler tcp://host:8786``): the same code path.
Tasks take file paths, so workers of a remote cluster must see the input and output folders
at the same paths (a shared file system).

Modules: :mod:`~mrideblur.batch.options` (what to run), :mod:`~mrideblur.batch.plan`
(discovery and planning), :mod:`~mrideblur.batch.tasks` (the worker side),
:mod:`~mrideblur.batch.assemble` (outputs and summary), :mod:`~mrideblur.batch.runner`
(Dask), :mod:`~mrideblur.batch.command` (the command lines).  The batch runner never imports
:mod:`mrideblur.cli`; what both need is in :mod:`mrideblur.shell`.

Exit codes of the command: 0 every input done or skipped, 3 some inputs failed (see
``summary.csv``), 2 bad arguments, 1 an output could not be written, 130 interrupted.
"""

from .command import COILS, add_correction_options, add_parser, cmd_batch, correct_nifti_command
from .options import (
    KSPACE_METHODS,
    MOTION_MODELS,
    NIFTI_METHODS,
    SUMMARY_COLUMNS,
    BatchOptions,
    Study,
    magnitude_method,
)
from .plan import discover, plan_studies
from .runner import run_batch
from .tasks import run_task

__all__ = [
    "BatchOptions",
    "COILS",
    "KSPACE_METHODS",
    "MOTION_MODELS",
    "NIFTI_METHODS",
    "SUMMARY_COLUMNS",
    "Study",
    "add_correction_options",
    "add_parser",
    "cmd_batch",
    "correct_nifti_command",
    "discover",
    "magnitude_method",
    "plan_studies",
    "run_batch",
    "run_task",
]
