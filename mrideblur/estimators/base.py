"""What every estimator shares: its result, its options, its progress and cancel hooks.

Every estimator of the package solves the same kind of problem — physics ``y = A(phi) x + n``
with unknown parameters ``phi`` (a blur kernel; per-shot rigid motion and coil maps), an image
prior, and an estimator of ``x`` and ``phi`` — and has the same outside shape, in the manner of
sigpy's ``App``:

- its options are a dataclass derived from :class:`Options` (no twenty keyword arguments:
  ``Options.from_kwargs`` checks names and says which ones a method takes);
- it runs as ``run(data..., options, progress=None, cancel=None) -> Result``, with the hooks of
  :mod:`mrideblur.hooks`;
- ``progress(step, total, message)`` is called as it goes (:data:`ProgressFn`);
- ``cancel()`` is polled; when it returns True the estimator raises :class:`Cancelled` inside
  its loop, catches it at the top, and returns its current estimate with
  ``report["cancelled"] = True`` (:func:`check_cancel` raises it);
- every stochastic path is seeded by ``options.seed`` where the method has one.

The methods themselves are listed in :mod:`mrideblur.estimators.catalogue`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..hooks import CancelFn, Cancelled, ProgressFn, check_cancel

__all__ = ["CancelFn", "Cancelled", "Options", "ProgressFn", "Result", "check_cancel"]

@dataclass
class Options:
    """Base of every estimator's options (a dataclass per method).

    Subclasses add fields with defaults and numpy-style docs in their own docstring; call
    :meth:`from_kwargs` to build one from keyword arguments with a clear error for names the
    method does not take, and :meth:`validate` (called by ``from_kwargs``) to check values.
    """

    @classmethod
    def from_kwargs(cls, method: str = "", **kwargs: Any) -> "Options":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            label = f"method {method!r}" if method else cls.__name__
            raise ValueError(f"{unknown[0]}: {label} does not take this option; its options are "
                             f"{', '.join(sorted(names)) or 'none'}")
        options = cls(**kwargs)
        options.validate()
        return options

    def validate(self) -> None:
        """Check the values; raise ``ValueError`` naming the field and what was expected."""

    def kwargs(self) -> dict[str, Any]:
        """The fields as keyword arguments (values as they are)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def as_dict(self) -> dict[str, Any]:
        """The options as a JSON-friendly dict (for ``report["parameters"]``)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v if isinstance(v, (bool, int, float, str, type(None), list, tuple, dict)) else repr(v)
        return out


def positive_int(name: str, value: Any, low: int = 1) -> int:
    """``int(value)`` when it is an integer ``>= low``, else a ValueError naming ``name``."""
    if isinstance(value, bool) or int(value) != value or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return int(value)


def one_of(name: str, value: Any, choices: tuple) -> Any:
    """``value`` when it is one of ``choices``, else a ValueError naming ``name``."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {choices}, got {value!r}")
    return value


@dataclass
class Result:
    """What every estimator returns.

    Attributes
    ----------
    image : ndarray
        The estimate ``x``: float ``(ny, nx)`` for deblurring, complex64 ``(ny, nx)``,
        ``(nz, ny, nx)`` or ``(slices, ny, nx)`` for MRI.
    motion : float64 ``(nshot, 3)`` ``[rot_deg, ty, tx]`` (``(nshot, 6)`` in 3D, ``(slices, nshot, 3)``
        for a stack), degrees and pixels, shot 0 zero (docs/conventions.md); None for deblurring.
    sens : complex64 coil maps used, shaped like one k-space volume; None where not estimated.
    kernel : float ``(m, m)`` blur kernel (non-negative, sums to 1); None for MRI.
    uncertainty : float32 like ``image`` or None
        Per-pixel posterior standard deviation (image units) for posterior-sampling methods.
    uncorrected : like ``image`` or None
        MRI: the image without motion correction (SENSE with the same coil maps), which the
        report's ``data_fit`` compares against.
    report : dict
        ``method``, ``parameters``, ``seconds``, ``cancelled`` and method-specific entries (for
        MRI ``residual_per_shot``, ``data_fit`` — the corrected against the uncorrected data
        misfit — and ``history``); JSON-friendly, written as ``report.json`` by the shells.
    history : dict
        Traces of the iterations (costs, kernels per scale, ...); for MRI the same dict as
        ``report["history"]``.
    """

    image: np.ndarray
    motion: np.ndarray | None = None
    sens: np.ndarray | None = None
    kernel: np.ndarray | None = None
    uncertainty: np.ndarray | None = None
    uncorrected: np.ndarray | None = None
    report: dict = field(default_factory=dict)
    history: dict = field(default_factory=dict)

    @property
    def cancelled(self) -> bool:
        """Whether the run was stopped by its ``cancel`` hook before it finished."""
        return bool(self.report.get("cancelled") or self.history.get("cancelled"))
