"""Running ``mrideblur batch`` (:func:`run_batch`): plan, skip what is finished, submit one
Dask task per remaining slice, reassemble each study as its last slice comes back.

Scheduling: ``dask.distributed``, a ``LocalCluster`` of single-threaded worker processes by
default, or any scheduler by address (``--scheduler tcp://host:8786``): the same code path.
Tasks take file paths, so workers of a remote cluster must see the input and output folders
at the same paths (a shared file system).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..shell import check_out_dir, one_line
from .assemble import assemble, clean_temporaries, summary_row, task_specs, write_summary
from .options import DONE, PARTS, BatchOptions, Study
from .plan import discover, plan_studies
from .tasks import run_task

__all__ = ["run_batch"]


def _client(scheduler: str | None, workers: int | None):
    """A dask.distributed client: on ``scheduler`` when given, else on a new LocalCluster."""
    import logging

    from dask.distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler, timeout="60s"), None
    from ..threads import ENV_VAR, get_threads

    n = int(workers) if workers else max(1, os.cpu_count() or 1)
    # each worker process uses this process's thread choice (--threads / $MRIDEBLUR_THREADS, else 1)
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.CRITICAL, env={ENV_VAR: str(get_threads())})
    return Client(cluster), cluster


def run_batch(
    source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    options: BatchOptions,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    command: str = "batch",
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Correct every study of a directory or manifest; resumable (module notes).

    Parameters
    ----------
    source : path
        Input directory or manifest ``.csv`` (:func:`discover`).
    out_dir : path
        Output directory (created); one folder per study plus ``summary.csv``.
    options : BatchOptions
    scheduler : str, optional
        Address of a running dask scheduler (``tcp://host:8786``); default a LocalCluster.
    workers : int, optional
        LocalCluster worker processes (one thread each); default the number of CPUs.
    progress : bool
        Show a progress bar over all tasks (stderr).
    command : str
        Recorded in each ``report.json``.
    on_row : callable(row), optional
        Called whenever a study's row becomes final.

    Returns
    -------
    list of dict
        The rows of ``summary.csv`` (:data:`SUMMARY_COLUMNS`), in input order.
    """
    out = check_out_dir(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clean_temporaries(out)
    studies = plan_studies(discover(source, options, out_dir=out))
    rows: dict[str, dict[str, Any]] = {}
    todo: dict[str, list[dict[str, Any]]] = {}
    by_id = {st.id: st for st in studies}
    assemble_now: list[Study] = []
    for st in studies:
        done_file = out / st.id / DONE
        if st.error:
            rows[st.id] = summary_row(st, "failed", None, out, st.error)
        elif done_file.is_file():
            try:
                rep = json.loads(done_file.read_text())
            except (OSError, ValueError):
                rep = {}
            rows[st.id] = summary_row(st, "skipped", rep, out)
            shutil.rmtree(out / st.id / PARTS, ignore_errors=True)
        else:
            specs = [s for s in task_specs(out, st) if not Path(s["part"]).is_file()]
            rows[st.id] = summary_row(st, "pending", None, out)
            if specs:
                todo[st.id] = specs
            else:
                assemble_now.append(st)

    def order() -> list[dict[str, Any]]:
        return [rows[st.id] for st in studies]

    def finish(st: Study, errors: list[str]) -> None:
        if errors:
            first = sorted(errors)[0]
            more = f" (and {len(errors) - 1} more slice(s))" if len(errors) > 1 else ""
            rows[st.id] = summary_row(st, "failed", None, out, first + more)
        else:
            try:
                rows[st.id] = assemble(out, st, command)
            except Exception as exc:  # noqa: BLE001 - assembly of one study must not stop the rest
                rows[st.id] = summary_row(st, "failed", None, out, f"{st.input}: assembling the outputs: "
                                   f"{type(exc).__name__}: {one_line(exc)}")
        write_summary(out, order())
        if on_row is not None:
            on_row(rows[st.id])

    for st in assemble_now:
        finish(st, [])
    write_summary(out, order())
    n_tasks = sum(len(v) for v in todo.values())
    if n_tasks:
        from dask.distributed import as_completed
        from tqdm import tqdm

        client, cluster = _client(scheduler, workers)
        remaining = {sid: len(specs) for sid, specs in todo.items()}
        errors: dict[str, list[str]] = {sid: [] for sid in todo}
        tty = bool(getattr(sys.stderr, "isatty", lambda: False)())
        try:
            owner: dict[Any, str] = {}
            futures = []
            for specs in todo.values():
                for spec in specs:
                    fut = client.submit(run_task, spec, key=f"mrideblur-{spec['study']}-{spec['index']}-{time.time_ns()}",
                                        pure=False)
                    owner[fut.key] = spec["study"]
                    futures.append(fut)
            with tqdm(total=n_tasks, desc=f"batch {options.method}", unit="task", file=sys.stderr,
                      disable=not progress, mininterval=0.2 if tty else 10.0, ascii=not tty) as bar:
                for fut in as_completed(futures):
                    sid = owner[fut.key]
                    try:
                        res = fut.result()
                    except Exception as exc:  # noqa: BLE001 - a worker died, a task could not run
                        res = {"study": sid, "ok": False,
                               "error": f"{by_id[sid].input}: task {fut.key}: {type(exc).__name__}: {one_line(exc)}"}
                    bar.update(1)
                    if not res["ok"]:
                        errors[sid].append(res["error"])
                    remaining[sid] -= 1
                    if remaining[sid] == 0:
                        finish(by_id[sid], errors[sid])
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    write_summary(out, order())
    return order()
