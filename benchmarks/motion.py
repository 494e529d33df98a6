"""Motion-correction benchmark: uncorrected, aligned-SENSE (each coil option), JSMoCo (both
samplers, started from the aligned-SENSE joint-coil result) and the oracle.

Seeded suite on MNI152 slices (192x192, 8 coils, 16 shots, motion up to 3 deg / 3 px, 1% noise):
3 motion kinds (random, step, drift) x 2 orderings (interleaved, sequential) x R in {1, 2}
(R = 2 with 24 ACS lines).  Scores as docs/conventions.md: PSNR/SSIM after a least-squares scale
inside the object mask, motion RMSE over shots (rotation deg, translation px), wall seconds.

JSMoCo seconds include the aligned-SENSE start. The fast sampler runs 4 posterior samples;
the uncertainty column is the Spearman correlation between their per-pixel std and the absolute
error of their mean, inside the object mask.

Run: ``python benchmarks/motion.py [--quick] [--cases N | --only I,J] [--threads T] [--no-jsmoco] [--out MD]``
(writes ``benchmarks/motion.md`` and its raw rows ``benchmarks/motion.jsonl`` unless ``--out``, or
``motion_quick.*`` with ``--quick``: 96x96, 8 shots, interleaved random only). The markdown is
rewritten after every case and a rerun skips the cases already in the ``.jsonl`` (a case run
with ``--no-jsmoco`` is redone whole when JSMoCo rows are asked for later).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mrideblur import __version__  # noqa: E402
from mrideblur.io.anatomy import mni_slice  # noqa: E402
from mrideblur.metrics import psnr, ssim  # noqa: E402
from mrideblur.mri import sense_recon, simulate  # noqa: E402
from mrideblur.mri import correct  # noqa: E402
from mrideblur.estimators.jsmoco import JSMoCoOptions, jsmoco  # noqa: E402
from mrideblur.prior import ScorePrior  # noqa: E402
from mrideblur.threads import get_threads  # noqa: E402

PLANES = ("axial", "coronal", "sagittal")


def suite(quick: bool) -> list[dict]:
    if quick:
        return [dict(size=96, nshot=8, motion="random", ordering="interleaved", accel=1, seed=0)]
    cases = []
    seed = 0
    for accel in (1, 2):
        for ordering in ("interleaved", "sequential"):
            for motion in ("random", "step", "drift"):
                cases.append(dict(size=192, nshot=16, motion=motion, ordering=ordering, accel=accel, seed=seed))
                seed += 1
    return cases


def run_case(c: dict, jsmoco_rows: bool = True) -> list[dict]:
    plane = PLANES[c["seed"] % 3]
    case = simulate(mni_slice(plane, 0.5, c["size"]), ncoil=8, nshot=c["nshot"], ordering=c["ordering"],
                    accel=c["accel"], acs=24, motion=c["motion"], noise=0.01, seed=c["seed"])
    truth, tm = case.truth["image"], case.truth["motion"]
    rows = []

    def score(name, image, motion, seconds, uncertainty=None):
        e = motion - tm
        rho = float("nan")
        if uncertainty is not None:
            from scipy.stats import spearmanr

            a = np.abs(image)
            mask = np.abs(truth) > 0.05 * np.abs(truth).max()
            s = np.sum(a[mask] * np.abs(truth)[mask]) / np.sum(a[mask] ** 2)
            rho = float(spearmanr(uncertainty[mask], np.abs(s * a - np.abs(truth))[mask]).statistic)
        rows.append(dict(case=f"{c['motion']}/{c['ordering']}/R{c['accel']}/{plane}", method=name,
                         psnr=psnr(image, truth, fit_scale=True), ssim=ssim(image, truth, fit_scale=True),
                         rot=float(np.sqrt(np.mean(e[:, 0] ** 2))), trans=float(np.sqrt(np.mean(e[:, 1:] ** 2))),
                         seconds=seconds, spearman=rho))
        print(rows[-1], flush=True)

    t = time.perf_counter()
    none = correct(case.kspace, case.shot_index, "none")
    score("uncorrected (ESPIRiT, no motion)", none.image, none.motion, time.perf_counter() - t)
    for coils in ("espirit", "joint"):
        t = time.perf_counter()
        r = correct(case.kspace, case.shot_index, "aligned-sense", coils=coils)
        seconds = time.perf_counter() - t
        score(f"aligned-SENSE, coils={coils}", r.image, r.motion, seconds)
    prior = ScorePrior.default()
    for sampler, n in ((("fast", 4), ("pc", 1)) if jsmoco_rows else ()):
        t = time.perf_counter()
        out = jsmoco(case.kspace, case.shot_index, r.sens, r.motion, r.image, prior,
                     JSMoCoOptions(sampler=sampler, nsamples=n), seed=c["seed"])
        score(f"JSMoCo, {sampler} sampler", out["image"], out["motion"], seconds + time.perf_counter() - t,
              out["uncertainty"])
    t = time.perf_counter()
    oracle = sense_recon(case.kspace, case.shot_index, case.truth["sens"], tm, max_iter=30)
    score("oracle (true motion and coils)", oracle, tm, time.perf_counter() - t)
    return rows


def _key(c: dict) -> str:
    return f"{c['motion']}/{c['ordering']}/R{c['accel']}/{PLANES[c['seed'] % 3]}/seed{c['seed']}/{c['size']}"


def _summary(rows: list[dict], title: str) -> list[str]:
    """Median / worst per method, with the PSNR gap to the oracle of the same case."""
    oracle = {r["case"]: r["psnr"] for r in rows if r["method"].startswith("oracle")}
    lines = [f"### {title}", "",
             "| method | PSNR dB | worst PSNR | gap to oracle dB (median / worst) | SSIM | rot RMSE deg | worst rot "
             "| trans RMSE px | worst trans | seconds | std-error Spearman |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in dict.fromkeys(r["method"] for r in rows):
        rs = [r for r in rows if r["method"] == m]
        col = {k: np.array([r[k] for r in rs], dtype=float) for k in ("psnr", "ssim", "rot", "trans", "seconds", "spearman")}
        gap = np.array([oracle[r["case"]] - r["psnr"] for r in rs if r["case"] in oracle])
        gaps = f"{np.median(gap):.2f} / {gap.max():.2f}" if gap.size else ""
        rho = "" if np.all(np.isnan(col["spearman"])) else f"{np.nanmedian(col['spearman']):.2f}"
        lines.append(f"| {m} | {np.median(col['psnr']):.2f} | {col['psnr'].min():.2f} | {gaps} | {np.median(col['ssim']):.3f} | "
                     f"{np.median(col['rot']):.3f} | {col['rot'].max():.3f} | {np.median(col['trans']):.3f} | "
                     f"{col['trans'].max():.3f} | {np.median(col['seconds']):.1f} | {rho} |")
    return lines + [""]


def _code_version() -> str:
    """``git describe`` of the checkout that ran the benchmark (``-dirty`` with local changes)."""
    import subprocess

    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(__file__).parent,
                              capture_output=True, text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_markdown(rows: list[dict], out: Path, command: str, ncases: int, total: int) -> None:
    lines = [
        "# Motion correction benchmark", "",
        f"Command: `{command}`; last updated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"{os.cpu_count()} CPU cores, threads per run {get_threads()}; mrideblur {__version__} "
        f"(git {_code_version()}); "
        f"{ncases} of {total} cases done. Raw rows: `{out.with_suffix('.jsonl').name}` (a rerun skips the cases "
        "already there).", "",
        "The *gap to oracle* is the oracle's PSNR minus the method's on the same case (negative: better than "
        "the oracle, which is CG-SENSE without a prior). Seconds are wall time on this machine (JSMoCo's include "
        "the aligned-SENSE start).", "",
        "## Summary (median / worst over cases)", "",
    ]
    groups = sorted({tuple(r["case"].split("/")[1:3]) for r in rows}, key=lambda g: (g[1], g[0]))
    for ordering, accel in groups:
        lines += _summary([r for r in rows if tuple(r["case"].split("/")[1:3]) == (ordering, accel)],
                          f"{accel}, {ordering}")
    lines += ["## Per case", "", "| case | method | PSNR dB | SSIM | rot RMSE | trans RMSE | seconds | Spearman |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rho = "" if np.isnan(r["spearman"]) else f"{r['spearman']:.2f}"
        lines.append(f"| {r['case']} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['rot']:.3f} | "
                     f"{r['trans']:.3f} | {r['seconds']:.1f} | {rho} |")
    out.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cases", type=int, default=None, help="only the first N cases of the suite")
    ap.add_argument("--only", default=None, help="comma-separated case indices of the suite (0-11)")
    ap.add_argument("--threads", type=int, default=None, help="torch / scipy.fft / BLAS threads (default: mrideblur's, 1)")
    ap.add_argument("--no-jsmoco", action="store_true", help="leave out the JSMoCo rows")
    ap.add_argument("--report-only", action="store_true", help="rewrite the markdown from the .jsonl rows")
    ap.add_argument("--out", default=None,
                    help="markdown to write (raw rows next to it as .jsonl); default benchmarks/motion.md")
    args = ap.parse_args()
    if args.threads:
        from mrideblur.threads import set_threads

        set_threads(args.threads)  # the entry points run with mrideblur's choice (default 1)
    suite_all = suite(args.quick)
    cases = suite_all[: args.cases]
    if args.only:
        cases = [suite_all[int(i)] for i in args.only.split(",")]
    out = Path(args.out) if args.out else Path(__file__).with_name("motion_quick.md" if args.quick else "motion.md")
    raw = out.with_suffix(".jsonl")
    rows: list[dict] = []
    if raw.exists():
        rows = [json.loads(line) for line in raw.read_text().splitlines() if line.strip()]
    command = "python benchmarks/motion.py" + " ".join([""] + [a for a in sys.argv[1:] if a != "--report-only"])
    if args.report_only:
        write_markdown(rows, out, command, len({r["key"] for r in rows}), len(suite_all))
        return
    for c in cases:
        have = [r for r in rows if r.get("key") == _key(c)]
        if have and (args.no_jsmoco or any(r["method"].startswith("JSMoCo") for r in have)):
            print(f"{_key(c)}: already in {raw.name}, skipped")
            continue
        new = run_case(c, jsmoco_rows=not args.no_jsmoco)
        for r in new:
            r["key"] = _key(c)
        rows = [r for r in rows if r.get("key") != _key(c)] + new  # a case is replaced as a whole
        raw.write_text("".join(json.dumps(r) + "\n" for r in rows))
        write_markdown(rows, out, command, len({r["key"] for r in rows}), len(suite_all))
        print(f"wrote {out}", flush=True)


if __name__ == "__main__":
    main()
