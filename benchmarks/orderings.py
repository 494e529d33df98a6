"""Shot orderings x motion size: which orderings aligned-SENSE recovers, and how large a motion.

Seeded suite (192x192, 8 coils, 16 shots, R = 1, 1% noise): the orderings interleaved,
sequential, centre-out and random (:func:`mrideblur.physics.shots.make_shot_index`) x motion up to
+-3 deg / +-3 px and up to +-10 deg / +-10 px x two cases per cell, one MNI152 slice with random
motion and one Shepp-Logan phantom (sigpy) with step motion (a jump at a random shot).  Rows:
uncorrected (ESPIRiT maps, no motion), aligned-SENSE as a user runs it (``correct(kspace,
shot_index)``, coils estimated), aligned-SENSE with the true coil maps given (what the motion
search alone reaches: a failure here is the search's, a failure only in the row above is the coil
estimate's) and the oracle (CG-SENSE, true motion and coils, 30 iterations).  Scores as
docs/conventions.md.

Run: ``python benchmarks/orderings.py [--only I,J] [--threads T] [--report-only] [--redo M]``
(writes ``benchmarks/orderings.md`` and appends raw rows to ``benchmarks/orderings.jsonl``; a rerun
skips the cases already there, so two processes with disjoint ``--only`` lists can share the work;
``--redo M`` recomputes method ``METHODS[M]`` of the chosen cases after a change to it).
"""

from __future__ import annotations

import argparse
import fcntl
import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.motion import _code_version, _summary  # noqa: E402
from mrideblur import __version__  # noqa: E402
from mrideblur.io.anatomy import mni_slice, shepp_logan  # noqa: E402
from mrideblur.metrics import psnr, ssim  # noqa: E402
from mrideblur.mri import correct, sense_recon, simulate  # noqa: E402
from mrideblur.threads import get_threads  # noqa: E402

ORDERINGS = ("interleaved", "sequential", "centre-out", "random")
SIZES = (3.0, 10.0)


def suite() -> list[dict]:
    cases, seed = [], 100
    for size in SIZES:
        for ordering in ORDERINGS:
            for anatomy, motion in (("mni-axial", "random"), ("shepp-logan", "step")):
                cases.append(dict(ordering=ordering, max_motion=size, anatomy=anatomy, motion=motion, seed=seed))
                seed += 1
    return cases


def key(c: dict) -> str:
    return f"{c['ordering']}/+-{c['max_motion']:g}/{c['anatomy']}/{c['motion']}/seed{c['seed']}"


METHODS = ("uncorrected (ESPIRiT, no motion)", "aligned-SENSE (coils estimated)", "aligned-SENSE, true coils given",
           "oracle (true motion and coils)")


def run_case(c: dict, methods: tuple[str, ...] = METHODS) -> list[dict]:
    image = shepp_logan(192) if c["anatomy"] == "shepp-logan" else mni_slice("axial", 0.5, 192)
    case = simulate(image, ncoil=8, nshot=16, ordering=c["ordering"], accel=1, motion=c["motion"],
                    max_rot=c["max_motion"], max_trans=c["max_motion"], noise=0.01, seed=c["seed"])
    truth, tm = case.truth["image"], case.truth["motion"]
    group = f"{c['ordering']}, up to +-{c['max_motion']:g} deg / px"
    rows = []

    def score(name: str, img: np.ndarray, motion: np.ndarray, seconds: float) -> None:
        e = motion - tm
        rows.append(dict(key=key(c), case=key(c), group=group, method=name,
                         psnr=psnr(img, truth, fit_scale=True), ssim=ssim(img, truth, fit_scale=True),
                         rot=float(np.sqrt(np.mean(e[:, 0] ** 2))), trans=float(np.sqrt(np.mean(e[:, 1:] ** 2))),
                         seconds=seconds, spearman=float("nan")))
        print(rows[-1], flush=True)

    runs = {
        METHODS[0]: lambda: correct(case.kspace, case.shot_index, "none"),
        METHODS[1]: lambda: correct(case.kspace, case.shot_index, "aligned-sense"),
        METHODS[2]: lambda: correct(case.kspace, case.shot_index, "aligned-sense", sens=case.truth["sens"]),
    }
    for name in methods:
        t = time.perf_counter()
        if name in runs:
            r = runs[name]()
            score(name, r.image, r.motion, time.perf_counter() - t)
        else:
            oracle = sense_recon(case.kspace, case.shot_index, case.truth["sens"], tm, max_iter=30)
            score(name, oracle, tm, time.perf_counter() - t)
    return rows


def write_markdown(rows: list[dict], out: Path, command: str, total: int) -> None:
    ncases = len({r["key"] for r in rows})
    lines = [
        "# Shot orderings and motion size", "",
        f"Command: `{command}`; last updated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"{os.cpu_count()} CPU cores, threads per run {get_threads()}; mrideblur {__version__} "
        f"(git {_code_version()}); {ncases} of {total} cases done. Raw rows: `{out.with_suffix('.jsonl').name}`.", "",
        "192x192, 8 coils (birdcage), 16 shots, R = 1, 1% noise; per cell an MNI152 axial slice with random "
        "motion and the Shepp-Logan phantom with a step. The gap to oracle is the oracle's PSNR minus the "
        "method's on the same case. Seconds: wall time, one thread.", "",
        "## Summary (median / worst over the cases of a cell)", "",
    ]
    for g in dict.fromkeys(r["group"] for r in rows):
        lines += _summary([r for r in rows if r["group"] == g], g)
    lines += ["## Per case", "", "| case | method | PSNR dB | rot RMSE deg | trans RMSE px | seconds |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['method']} | {r['psnr']:.2f} | {r['rot']:.3f} | {r['trans']:.3f} | {r['seconds']:.1f} |")
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=None, help="comma-separated case indices of the suite (0-15)")
    ap.add_argument("--threads", type=int, default=1, help="torch / scipy.fft / BLAS threads (default 1)")
    ap.add_argument("--report-only", action="store_true", help="rewrite the markdown from the .jsonl rows")
    ap.add_argument("--redo", choices=range(len(METHODS)), type=int, default=None,
                    help="recompute one method's rows (index into METHODS) of the chosen cases, replacing them")
    args = ap.parse_args()
    from mrideblur.threads import set_threads

    set_threads(args.threads)
    cases = suite()
    todo = [cases[int(i)] for i in args.only.split(",")] if args.only else cases
    out = Path(__file__).with_name("orderings.md")
    raw = out.with_suffix(".jsonl")
    command = "python benchmarks/orderings.py" + (f" --threads {args.threads}" if args.threads != 1 else "")

    def load() -> list[dict]:
        """The rows of ``raw``, the last one of each (case, method) (a case run twice by
        accident, or before a ``--redo``, is reported once)."""
        rows = [json.loads(line) for line in raw.read_text().splitlines() if line.strip()] if raw.exists() else []
        return list({(r["key"], r["method"]): r for r in rows}.values())

    order = {key(c): i for i, c in enumerate(cases)}

    def sort(rows: list[dict]) -> list[dict]:
        rank = {m: i for i, m in enumerate(METHODS)}
        return sorted(rows, key=lambda r: (order.get(r["key"], 1 << 30), rank.get(r["method"], 99)))

    for c in [] if args.report_only else todo:
        if args.redo is None and any(r["key"] == key(c) for r in load()):
            print(f"{key(c)}: already in {raw.name}, skipped")
            continue
        if args.redo is None:
            new = run_case(c)
            with raw.open("a") as f:  # one write per case: processes sharing the suite do not interleave rows
                f.write("".join(json.dumps(r) + "\n" for r in new))
        else:
            new = run_case(c, (METHODS[args.redo],))
            with raw.with_suffix(".lock").open("w") as lock:  # processes sharing --redo rewrite in turn
                fcntl.flock(lock, fcntl.LOCK_EX)
                kept = [r for r in load() if not (r["key"] == key(c) and r["method"] == METHODS[args.redo])]
                tmp = raw.with_suffix(f".jsonl.{os.getpid()}.tmp")
                tmp.write_text("".join(json.dumps(r) + "\n" for r in kept + new))
                tmp.replace(raw)
        write_markdown(sort(load()), out, command, len(cases))
    write_markdown(sort(load()), out, command, len(cases))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
