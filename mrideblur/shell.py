"""What the shells share: progress bar, report summaries, scores, command-line helpers.

The shells — the ``mrideblur`` command (:mod:`mrideblur.cli`), the batch runner
(:mod:`mrideblur.batch`), the demo (:mod:`mrideblur.demo`) and the napari plugin — only parse
their input, call an estimator (:mod:`mrideblur.estimators.api`) and write or show its results.
What more than one of them needs lives here, so that no shell imports another:

- :class:`ProgressBar`: a tqdm bar fed by an estimator's ``progress(step, total, message)``;
- :func:`summarize_history`: an estimator's history shrunk to what fits a report;
- :func:`psnr_pair`, :func:`motion_rmse`, :func:`correction_scores`: a motion correction scored
  against a ground truth (``Result.uncorrected`` is the reference; no second reconstruction);
- :func:`data_fit_warning` and :func:`quiet_data_fit_warning`: the one line a shell prints when
  a correction did not lower the data misfit (``report["data_fit"]``);
- :func:`option_names`, :func:`method_settings`: the options a catalogue method takes;
- :func:`kernel_montage`: kernels, or a field of them, tiled into one picture;
- command-line helpers: :func:`add_command`, argparse types, :func:`check_out_dir`,
  :func:`one_line`, :func:`training_start` (the resume rule of the training commands).

Importing this module is cheap (numpy only), so ``mrideblur --help`` stays fast.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DefaultsHelpFormatter",
    "ProgressBar",
    "add_command",
    "check_out_dir",
    "correction_scores",
    "correction_summary",
    "data_fit_warning",
    "fov_exit_warning",
    "key_value",
    "method_settings",
    "motion_rmse",
    "odd_int",
    "one_line",
    "option_names",
    "psnr_pair",
    "quiet_data_fit_warning",
    "summarize_history",
    "thread_count",
]


# --------------------------------------------------------------------------------------------
# progress


class ProgressBar:
    """A tqdm bar on stderr fed by the library's ``progress(step, total, message)`` callback.

    The bar appears at the first call and restarts whenever ``total`` changes or ``step`` goes
    backwards (a new slice).  On a terminal it redraws at most every 0.2 s; without one (CI
    logs, pipes) in plain ASCII at most every 10 s, so logs stay short.

    A run made of stages calls :meth:`stage` as each one begins: the previous stage's bar is
    filled to 100 % and left on its own line, and the next call opens a fresh bar labelled
    ``"desc: stage"``.  Leaving the ``with`` block normally fills the last bar too, so a bar
    ends at 100 % when its work is done even if the estimator stopped before its ``total``
    (converged early); after an exception it stays where it stopped.

    Parameters
    ----------
    enabled : bool
        ``False`` draws nothing (``--quiet``).
    desc : str
        Text in front of the bar.
    smoothing : float
        tqdm's ``smoothing``: ``0`` estimates the rate (and so the ETA) from the average speed
        since the bar started, ``1`` from the last update only (tqdm's default is 0.3).  The
        default 0.05 keeps the ETA steady when the steps differ in cost (coarse-to-fine
        estimators, whose late steps are the slow ones).
    """

    def __init__(self, enabled: bool = True, desc: str = "", smoothing: float = 0.05) -> None:
        self.enabled = enabled
        self._desc = desc
        self._label = desc
        self._smoothing = float(smoothing)
        self._bar: Any = None

    def _open(self, total: int | None) -> Any:
        from tqdm import tqdm

        tty = bool(getattr(sys.stderr, "isatty", lambda: False)())
        return tqdm(total=total, desc=self._label, file=sys.stderr, mininterval=0.2 if tty else 10.0,
                    dynamic_ncols=tty, ascii=not tty, leave=True, smoothing=self._smoothing)

    def __call__(self, step: int, total: int, message: str = "") -> None:
        if not self.enabled:
            return
        if self._bar is None:
            self._bar = self._open(total or None)
        bar = self._bar
        if (total and bar.total != total) or step < bar.n:
            bar.reset(total=total or None)
        if message:
            bar.set_postfix_str(str(message), refresh=False)
        bar.update(max(int(step) - bar.n, 0))

    def stage(self, name: str) -> None:
        """Begin stage ``name``: finish and close the current bar (its line stays), label the
        next one ``"desc: name"`` (``name`` alone without a ``desc``)."""
        self.finish()
        self.close()
        self._label = f"{self._desc}: {name}" if self._desc else str(name)

    def finish(self) -> None:
        """Fill the current bar to its total: its work ended normally, in fewer steps than
        announced (an estimator that converged before ``max_iter``).  No-op without a bar or
        a total."""
        bar = self._bar
        if bar is not None and bar.total and bar.n < bar.total:
            bar.update(bar.total - bar.n)

    def set_description(self, desc: str) -> None:
        """Change the text in front of the bar."""
        self._label = desc
        if self._bar is not None:
            self._bar.set_description(desc, refresh=False)

    def close(self) -> None:
        """Draw the final state and release the line (the bar stays where it is: see
        :meth:`finish`)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.finish()
        self.close()


# --------------------------------------------------------------------------------------------
# reports


def summarize_history(history: Mapping[str, Any] | None) -> dict[str, Any]:
    """Shrink an estimator's history to what fits a report.

    Numeric series longer than 8 become ``{"n", "first", "last", "min", "max"}``, shorter
    ones are kept as lists; scalars, strings and booleans are kept; other numeric arrays are
    described by their shape, anything else by its type name.

    Parameters
    ----------
    history : mapping or None

    Returns
    -------
    dict
    """
    out: dict[str, Any] = {}
    for key, value in (history or {}).items():
        if value is None or isinstance(value, (str, bool, int, float, np.generic)):
            out[str(key)] = value
            continue
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError):  # ragged, e.g. one kernel per scale
            arr = None
        if arr is None or arr.dtype.kind not in "biuf":
            out[str(key)] = f"<{type(value).__name__}>"
        elif arr.ndim == 1 and arr.size <= 8:
            out[str(key)] = arr.tolist()
        elif arr.ndim == 1:
            fin = arr[np.isfinite(arr)]
            out[str(key)] = {"n": int(arr.size), "first": arr[0].item(), "last": arr[-1].item(),
                             "min": fin.min().item() if fin.size else None,
                             "max": fin.max().item() if fin.size else None}
        elif arr.ndim == 0:
            out[str(key)] = arr.item()
        else:
            out[str(key)] = {"shape": list(arr.shape)}
    return out


def psnr_pair(uncorrected: np.ndarray, corrected: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """``{"uncorrected": dB, "corrected": dB}`` against ``truth`` (magnitudes, least-squares scale:
    :func:`mrideblur.metrics.psnr` with ``fit_scale=True``, the project's convention)."""
    from .metrics import psnr

    return {"uncorrected": psnr(uncorrected, truth, fit_scale=True),
            "corrected": psnr(corrected, truth, fit_scale=True)}


def motion_rmse(motion: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Root-mean-square error of a motion table against the truth: ``rotation_deg`` and
    ``translation_px`` (the first column, or the first three of a 6-DOF table, are rotations)."""
    m, t = np.asarray(motion, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    nrot = 1 if t.shape[-1] == 3 else 3
    err = m - t
    return {"rotation_deg": float(np.sqrt(np.mean(err[..., :nrot] ** 2))),
            "translation_px": float(np.sqrt(np.mean(err[..., nrot:] ** 2)))}


def correction_scores(result: Any, truth_image: np.ndarray | None = None,
                      truth_motion: np.ndarray | None = None) -> dict[str, Any]:
    """A motion correction's :class:`~mrideblur.estimators.base.Result` against a ground truth.

    Returns ``psnr_db`` (:func:`psnr_pair` of ``result.uncorrected`` and ``result.image``) when
    ``truth_image`` has the image's shape, ``uncertainty_calibration`` (``ratio`` of RMS std to
    RMS error and ``cover2``, the share of pixels within two std: :func:`mrideblur.metrics.reliability`)
    when the result has an uncertainty map of that shape too, and ``motion_rmse`` when
    ``truth_motion`` has the motion's shape; an empty dict without a truth.
    """
    out: dict[str, Any] = {}
    image, uncorrected = np.asarray(result.image), result.uncorrected
    if truth_image is not None and uncorrected is not None and np.shape(truth_image) == image.shape:
        out["psnr_db"] = psnr_pair(uncorrected, image, truth_image)
        unc = getattr(result, "uncertainty", None)
        if unc is not None and np.shape(unc) == image.shape:
            from .metrics import reliability

            cal = reliability(unc, image, truth_image)
            out["uncertainty_calibration"] = {"ratio": cal["ratio"], "cover2": cal["cover2"]}
    if truth_motion is not None and result.motion is not None and np.shape(truth_motion) == np.shape(result.motion):
        out["motion_rmse"] = motion_rmse(result.motion, truth_motion)
    return out


def correction_summary(report: Mapping[str, Any], out_dir: str | Path, files: Sequence[str | Path]) -> list[str]:
    """What a correction did, in a few lines for stdout: method and seconds, the data misfit
    before and after, PSNR and motion error against a truth when there is one, the outputs.

    Parameters
    ----------
    report : a correction's report (``report.json``): ``method``, ``seconds_total``,
        ``data_fit`` (``uncorrected``/``corrected``/``improved``, or ``slices_not_improved`` for a
        stack), and when a truth was known ``psnr_db`` and ``motion_rmse``
    out_dir : the output folder
    files : the files written there (names or paths)
    """
    lines = [f"{report.get('method', 'correction')}: {float(report.get('seconds_total', 0.0)):.1f} s"]
    fit = report.get("data_fit") or {}
    if "uncorrected" in fit and "corrected" in fit:
        verdict = {True: "improved", False: "NOT improved"}.get(fit.get("improved"), "")
        lines.append(f"data misfit ||A x - y|| / ||y||: uncorrected {fit['uncorrected']:.4f}, corrected "
                     f"{fit['corrected']:.4f}" + (f" ({verdict})" if verdict else ""))
        if fit.get("kept_uncorrected"):
            lines.append("the uncorrected image was kept (the estimate is in report.json, 'rejected_motion')")
    elif fit.get("improved") is not None:
        bad = fit.get("slices_not_improved") or []
        lines.append("data misfit: lower than uncorrected in every slice" if not bad else
                     f"data misfit: NOT lower than uncorrected in slices {bad}")
    if fit.get("rejected_shots"):
        lines.append(f"shots rejected as inconsistent with the model (lines re-filled by SENSE): "
                     f"{fit['rejected_shots']}")
    if "psnr_db" in report:
        p = report["psnr_db"]
        lines.append(f"PSNR vs truth: uncorrected {p['uncorrected']:.2f} dB, corrected {p['corrected']:.2f} dB")
    if "motion_rmse" in report:
        m = report["motion_rmse"]
        lines.append(f"motion error vs truth (RMS over shots): {m['rotation_deg']:.3f} deg, "
                     f"{m['translation_px']:.3f} px")
    names = ", ".join(Path(f).name for f in files)
    lines.append(f"outputs in {Path(out_dir)}: {names}")
    return lines


def data_fit_warning(report: Mapping[str, Any], slice_ids: Sequence[Any] | None = None) -> str | None:
    """One line when a correction did not lower the data misfit (``report["data_fit"]``), or
    lowered it where the fit cannot vouch for the motion (``vouched`` False: most shots own no
    central line of k-space), or moved part of the image out of the field of view
    (:func:`fov_exit_warning`); else None.

    ``report`` is a correction's report: one image (``data_fit`` holds both misfits) or a stack
    (``slices`` holds one report per slice; ``slice_ids`` names them, default 0, 1, ...).
    """
    fit = report.get("data_fit") or {}
    if fit.get("improved") is True and fit.get("vouched") is False:
        return (f"the data fit improved, but {len(fit.get('shots_outside_centre') or [])} shots own no line of the "
                "central quarter of k-space (a sequential or centre-out ordering): it cannot vouch for their motion, "
                "and the image may be worse than the uncorrected one")
    if fit.get("improved") is not False:
        return fov_exit_warning(report, slice_ids)
    slices = report.get("slices")
    if isinstance(slices, Sequence) and slices and all(isinstance(s, Mapping) for s in slices):
        ids = list(slice_ids) if slice_ids is not None else list(range(len(slices)))
        bad = [(i, s.get("data_fit") or {}) for i, s in zip(ids, slices)
               if (s.get("data_fit") or {}).get("improved") is False]
        if bad:
            what = ", ".join(f"slice {i} ({_misfits(f)})" for i, f in bad)
            return f"the correction did not improve the data fit in {len(bad)} of {len(slices)} slices: {what}"
    return f"the correction did not improve the data fit: {_misfits(fit)}"


def fov_exit_warning(report: Mapping[str, Any], slice_ids: Sequence[Any] | None = None) -> str | None:
    """One line when the estimated motion moves more than
    :data:`~mrideblur.estimators.safeguards.FOV_EXIT_WARN` of the image's energy out of the field
    of view in some shot (``report["data_fit"]["fov_exit"]``; for a stack, each slice's report
    in ``report["slices"]``, named by ``slice_ids``), else None."""
    from .estimators.safeguards import FOV_EXIT_WARN

    slices = report.get("slices")
    if isinstance(slices, Sequence) and slices and all(isinstance(r, Mapping) for r in slices):
        ids = list(slice_ids) if slice_ids is not None else list(range(len(slices)))
        found = [(i, max(float(e) for e in (r.get("data_fit") or {}).get("fov_exit") or [0.0]))
                 for i, r in zip(ids, slices)]
        bad = [(i, e) for i, e in found if e > FOV_EXIT_WARN]
        if not bad:
            return None
        what = ", ".join(f"slice {i} {100 * e:.1f}%" for i, e in bad)
        return (f"the estimated motion moves part of the image out of the field of view in {len(bad)} of "
                f"{len(slices)} slices ({what}, worst shot); the model wraps it round, so the edges and the "
                "accuracy of those slices are not to be trusted")
    exits = [float(e) for e in (report.get("data_fit") or {}).get("fov_exit") or []]
    if not exits or max(exits) <= FOV_EXIT_WARN:
        return None
    worst = int(np.argmax(exits))
    return (f"the estimated motion moves {100 * exits[worst]:.1f}% of the image out of the field of view (shot "
            f"{worst}); the model wraps it round, so the edges and the accuracy of the result are not to be trusted")


def _misfits(fit: Mapping[str, Any]) -> str:
    if "uncorrected" not in fit or "corrected" not in fit:
        return "relative data misfit not lower than without correction"
    return f"relative data misfit {fit['uncorrected']:.4f} uncorrected, {fit['corrected']:.4f} corrected"


@contextlib.contextmanager
def quiet_data_fit_warning() -> Iterator[None]:
    """Silence :func:`mrideblur.mri.correct`'s ``RuntimeWarning`` about the data fit: a shell
    that reports :func:`data_fit_warning` itself says it once, in its own words."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"correct\(method=", category=RuntimeWarning)
        yield


def option_names(problem: str, method: str) -> set[str]:
    """Names of the options that ``method`` of ``problem`` takes (imports the method's module)."""
    from .estimators.catalogue import find

    return set(find(problem, method).option_names())


def method_settings(problem: str, method: str, **settings: Any) -> dict[str, Any]:
    """The shell's ``settings`` that ``method`` of ``problem`` takes, ``None`` values left out (so
    the method's own defaults apply): one set of command-line flags serves every method."""
    takes = option_names(problem, method)
    return {k: v for k, v in settings.items() if k in takes and v is not None}


# --------------------------------------------------------------------------------------------
# command line


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """``--help`` lines end with ``(default: X)`` where an option has a default worth showing
    (not None/False, and the help text does not already state it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text or default is None or default is False or default is argparse.SUPPRESS
                or action.option_strings == [] or isinstance(action, argparse._HelpAction)):
            return text
        shown = default.name if isinstance(default, Path) and str(default) == default.name else default
        return f"{text} (default: {shown})".strip()


def add_command(sub: argparse._SubParsersAction, name: str, func: Callable[[argparse.Namespace], int],
                help: str, description: str | None = None) -> argparse.ArgumentParser:
    """Register subcommand ``name`` running ``func(args)``; returns its parser for the arguments.

    ``description`` (``--help``) defaults to ``func``'s docstring, written for the user.
    Every command gets ``--threads N|all`` (:mod:`mrideblur.threads`; :func:`mrideblur.cli.main`
    applies it before the command runs).
    """
    text = description if description is not None else " ".join((func.__doc__ or "").split())
    p = sub.add_parser(name, help=help, description=text, formatter_class=DefaultsHelpFormatter)
    p.set_defaults(func=func)
    p.add_argument("--threads", type=thread_count, default=None, metavar="N|all",
                   help="CPU threads for torch, FFTs and BLAS (default: $MRIDEBLUR_THREADS, else 1 — the fastest "
                        "when other jobs share the cores; 'all' uses every core of an idle machine)")
    return p


def _int_at_least(text: str, low: int, what: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if n < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got {n}")
    return n


def thread_count(text: str) -> int | str:
    """argparse type: an integer >= 1 or ``all`` (:func:`mrideblur.threads.set_threads`)."""
    if text.strip().lower() == "all":
        return "all"
    return _int_at_least(text, 1, "an integer >= 1 or 'all'")


def odd_int(text: str) -> int:
    """argparse type: an odd integer >= 3."""
    n = _int_at_least(text, 3, "an odd integer >= 3")
    if n % 2 == 0:
        raise argparse.ArgumentTypeError(f"expected an odd integer >= 3, got {n}")
    return n


def key_value(text: str) -> tuple[str, Any]:
    """argparse type: ``"nsr=0.01"`` -> ``("nsr", 0.01)``; the value is a Python literal or else a string."""
    key, sep, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError):
        value = raw.strip()
    return key, value


def check_out_dir(path: str | Path) -> Path:
    """``path`` as a Path; a ``ValueError`` (``--out ...``) when it exists and is not a directory."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a directory")
    return out


def one_line(exc: BaseException | str) -> str:
    """An exception (or text) as one line: white space folded, the type's name when empty."""
    return " ".join(str(exc).split()) or (type(exc).__name__ if isinstance(exc, BaseException) else "")


def training_start(ckpt: Path, out: Any, resume: bool, steps: int, done_steps: Callable[[Path], int],
                   export: Callable[[], Any] | None) -> bool:
    """The resume rule of the training commands (``train-prior``, ``train-deblur``).

    With ``resume`` and an existing checkpoint ``ckpt``: when it already holds ``steps`` steps
    (``done_steps(ckpt)``), say so, run ``export`` (if given, printing what it wrote) and return
    ``False`` — nothing to train; otherwise say on stderr that the run continues with its own
    settings and return ``True``.  Without ``resume`` an existing checkpoint is a ``ValueError``
    naming ``--out`` (never overwritten).  Returns ``True`` when training should run.
    """
    if resume and ckpt.exists():
        done = int(done_steps(ckpt))
        if steps <= done:
            print(f"{ckpt}: already at step {done} (>= --steps {steps}); nothing to train")
            if export is not None:
                print(f"exported EMA weights: {export()}")
            return False
        print(f"resuming {ckpt} at step {done} with its own settings (of the options only --steps, "
              f"--device, --threads and --export apply)", file=sys.stderr)
    elif ckpt.exists():
        raise ValueError(f"--out {out}: a checkpoint exists; pass --resume to continue it or pick another --out")
    return True


def kernel_montage(kernels: np.ndarray) -> np.ndarray:
    """Tile ``(n, ky, kx)`` kernels on a near-square grid, each scaled to its own maximum (fields
    of kernels, ``(..., gy, gx, ky, kx)``, tile every kernel of every field in order)."""
    kernels = np.asarray(kernels).reshape((-1,) + np.shape(kernels)[-2:])
    n, ky, kx = kernels.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    tile = np.zeros((rows * (ky + 1) - 1, cols * (kx + 1) - 1))
    for i, k in enumerate(kernels):
        r, c = divmod(i, cols)
        peak = k.max()
        tile[r * (ky + 1) : r * (ky + 1) + ky, c * (kx + 1) : c * (kx + 1) + kx] = k / peak if peak > 0 else k
    return tile
