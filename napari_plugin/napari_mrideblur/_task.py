"""Run an mrideblur call off the GUI thread with napari's progress bar and a real Cancel.

mrideblur's estimators take ``progress(step, total, message)`` and ``cancel() -> bool``
callables (the loop-object convention of ARCHITECTURE.md). :class:`Task` runs
``fn(progress, cancel)`` on a napari ``thread_worker``; ``progress`` is forwarded to the GUI
thread by a queued Qt signal and drives a :class:`napari.utils.progress` bar; ``cancel`` reads a
flag that :meth:`Task.cancel` sets, which the estimator polls and then returns its current
estimate (``report["cancelled"] = True``) instead of being killed mid-step.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from napari.qt.threading import thread_worker
from napari.utils import progress as napari_progress
from qtpy.QtCore import QObject, Signal

__all__ = ["Task", "TaskControls"]


class Task(QObject):
    """One background run of ``fn(progress, cancel)``.

    Parameters
    ----------
    fn : callable(progress, cancel) -> object
        Runs in a worker thread; its return value goes to ``on_done``.
    description : str
        Label of the progress bar.
    on_done : callable(object)
        Called in the GUI thread with ``fn``'s return value.
    on_error : callable(Exception)
        Called in the GUI thread when ``fn`` raises.
    parent : QObject, optional

    Attributes
    ----------
    worker : napari.qt.threading.FunctionWorker
    pbar : napari.utils.progress
        The progress bar shown in the viewer's activity area while the task runs.
    cancelled : bool
        Whether :meth:`cancel` was called.
    log : list of (step, total, message)
        Every progress report received, in order.
    """

    #: ``(step, total, message)`` from the estimator, delivered in the GUI thread.
    progressed = Signal(int, int, str)

    def __init__(self, fn: Callable[[Callable[[int, int, str], None], Callable[[], bool]], Any], description: str,
                 on_done: Callable[[Any], None], on_error: Callable[[Exception], None],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._flag = threading.Event()
        self._description = description
        self.log: list[tuple[int, int, str]] = []
        self.progressed.connect(self._on_progress)  # queued: emitted from the worker thread
        self.pbar = napari_progress(total=0, desc=description)
        self.worker = thread_worker(self._call, start_thread=False, ignore_errors=True)(fn)
        self.worker.returned.connect(on_done)
        self.worker.errored.connect(on_error)
        self.worker.finished.connect(self.pbar.close)

    @property
    def cancelled(self) -> bool:
        return self._flag.is_set()

    def start(self) -> None:
        """Start the worker thread."""
        self.worker.start()

    def cancel(self) -> None:
        """Ask the running estimator to stop at its next poll."""
        self._flag.set()
        self.pbar.set_description(f"{self._description}: cancelling")

    def _call(self, fn: Callable) -> Any:
        return fn(self._report, self._flag.is_set)

    def _report(self, step: int, total: int, message: str) -> None:
        self.progressed.emit(int(step), int(total), str(message))

    def _on_progress(self, step: int, total: int, message: str) -> None:
        self.log.append((step, total, message))
        if total > 0 and self.pbar.total != total:
            self.pbar.total = total
        if step > self.pbar.n:
            self.pbar.update(step - self.pbar.n)
        if not self._flag.is_set():
            self.pbar.set_description(f"{self._description}: {message}" if message else self._description)


class TaskControls:
    """Run / Cancel plumbing shared by the dock widgets (mixed into a ``QWidget``).

    The widget provides ``run_button``, ``cancel_button``, ``status`` (a label), ``task``
    (``None`` before the first run), a ``run_finished`` signal, ``_done(outcome)`` and the
    class attribute ``failure_label`` used in the error notification.
    """

    failure_label = "mrideblur run"

    def _make_controls(self, run_label: str):
        """Create ``run_button``, ``cancel_button`` and ``status``; returns the buttons' row layout."""
        from qtpy.QtWidgets import QHBoxLayout, QLabel, QPushButton

        self.run_button = QPushButton(run_label)
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        return buttons

    def _start_task(self, fn: Callable, description: str, status: str, cancellable: bool = True) -> Task:
        """Run ``fn(progress, cancel)`` as a :class:`Task`; the buttons follow its state."""
        if self.task is not None:  # the previous run's task holds its inputs: let Qt free it
            self.task.deleteLater()
        self.task = Task(fn, description, self._done, self._failed, parent=self)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(cancellable)
        self.status.setText(status)
        self.task.start()
        return self.task

    def cancel(self) -> None:
        """Ask the running estimator to stop at its next poll; it returns its estimate so far."""
        if self.task is not None:
            self.task.cancel()
            self.status.setText("cancelling …")

    def _finish(self) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _failed(self, exc: Exception) -> None:
        from napari.utils.notifications import show_error

        self._finish()
        self.status.setText(f"failed: {exc}")
        show_error(f"{self.failure_label} failed: {exc}")
        self.run_finished.emit(exc)
