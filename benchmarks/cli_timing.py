"""What a first-time user waits for on the command line: errors, and thread settings on a busy machine.

Part 1, fail fast: the wall time of ``mrideblur correct`` until its one-line error, for a missing
file and for a text file named ``.nii.gz`` (median of ``--repeats`` fresh processes).

Part 2, threads: the ``mrideblur correct`` command with its default threads against
``--threads 1`` and ``--threads all``, on an idle machine and with busy processes.

Each row runs the same command line in a fresh process (``mrideblur correct CASE --method
aligned-sense``, a 96 x 96, 8-coil, 16-shot interleaved case from ``mrideblur simulate --builtin
mni --size 96``) and reports its wall time, the median of ``--repeats`` runs.  "busy" starts
``--busy`` pure-Python spinning processes (one per core by default: the cores are full) before
the run and stops them after.  The load average (1 min) is read before and after every row.

Run: ``python benchmarks/cli_timing.py [--repeats 3] [--busy N] [--out benchmarks/cli_timing.md]``
(about 10 minutes on 2 cores).  The criteria: each error within 3 s; with busy cores, the default
setting takes at most 1.5x the time of ``--threads 1``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPIN = "import signal, sys\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\nwhile True:\n    pass\n"


def _mrideblur(*args: str, env: dict[str, str] | None = None, expect: int = 0) -> float:
    """Wall seconds of ``python -m mrideblur.cli ARGS`` (raises unless it exits with ``expect``)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mrideblur.cli", *args], capture_output=True, text=True, env=env)
    if proc.returncode != expect:
        raise RuntimeError(f"mrideblur {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return time.perf_counter() - t0


def _load() -> float:
    return os.getloadavg()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--busy", type=int, default=None, help="spinning processes (default: one per core)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "cli_timing.md")
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    busy = cores if args.busy is None else args.busy
    env = {k: v for k, v in os.environ.items() if k not in ("MRIDEBLUR_THREADS", "OMP_NUM_THREADS")}
    rows = []
    errors = []
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "text.nii.gz"
        text.write_text("not an image\n")
        for name, argv in (("missing file", ["correct", str(Path(tmp) / "missing.h5"), "--out", str(Path(tmp) / "e")]),
                           ("text file named .nii.gz", ["correct", str(text), "--method", "autofocus", "--pe-axis",
                                                        "0", "--shots", "16", "--ordering", "sequential", "--out",
                                                        str(Path(tmp) / "e")])):
            before = _load()
            times = [_mrideblur(*argv, env=env, expect=2) for _ in range(args.repeats)]
            errors.append((name, statistics.median(times), max(times), before))
            print(errors[-1], flush=True)
        case = Path(tmp) / "case96.h5"
        _mrideblur("simulate", "--builtin", "mni", "--size", "96", "--seed", "1", "--out", str(case), env=env)
        settings = [("default", []), ("--threads 1", ["--threads", "1"]), ("--threads all", ["--threads", "all"])]
        for state in ("idle", "busy"):
            spinners = []
            if state == "busy":
                spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(busy)]
                time.sleep(5)
            try:
                for name, extra in settings:
                    before = _load()
                    times = [_mrideblur("correct", str(case), "--method", "aligned-sense", "--quiet",
                                        "--out", str(Path(tmp) / f"out_{state}_{i}"), *extra, env=env)
                             for i in range(args.repeats)]
                    rows.append((state, name, statistics.median(times), min(times), max(times), before, _load()))
                    print(rows[-1], flush=True)
            finally:
                for p in spinners:
                    p.terminate()
                for p in spinners:
                    p.wait()
            time.sleep(5)
    ref = {state: t for state, name, t, *_ in rows if name == "--threads 1"}
    lines = [
        "# The command line's waits: errors, and threads on an idle and a busy machine",
        "",
        f"Command: `python benchmarks/cli_timing.py --repeats {args.repeats}`"
        + (f" --busy {args.busy}" if args.busy is not None else "")
        + f"; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {cores} CPU cores ({platform.machine()}); "
        f"busy = {busy} spinning Python processes. Case: `mrideblur simulate --builtin mni --size 96 --seed 1` "
        "(96x96, 8 coils, 16 interleaved shots), corrected with `mrideblur correct CASE --method aligned-sense`; "
        f"wall time of the whole command (imports included), median of {args.repeats} runs.",
        "",
        "## Bad input: time to the one-line error (exit 2)",
        "",
        "| input | median s | max s | load before |",
        "|---|---:|---:|---:|",
        *[f"| {name} | {med:.2f} | {hi:.2f} | {before:.1f} |" for name, med, hi, before in errors],
        "",
        "## Threads: a 96x96 aligned-SENSE correction",
        "",
        "| machine | threads | median s | min s | max s | vs --threads 1 | load before | load after |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for state, name, med, lo, hi, before, after in rows:
        lines.append(f"| {state} | {name} | {med:.1f} | {lo:.1f} | {hi:.1f} | {med / ref[state]:.2f}x | "
                     f"{before:.1f} | {after:.1f} |")
    lines += ["", "The default is one thread per process (`mrideblur.threads`); `all` is what torch and "
              "scipy.fft would take on their own."]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
