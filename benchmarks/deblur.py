"""Accuracy and speed of image deblurring: non-blind with the true kernel, and blind (VB, MAP).

Accuracy: the 4 benchmark photographs (``benchmarks/images.py``), each a ``256 + ks - 1``
square crop, blurred with ``boundary="valid"`` (a real, non-periodic blur: the observation is
256 x 256, smaller than the scene) by 4 seeded camera-shake kernels, plus 1% white noise
(seeded).  Every estimate is scored against the sharp scene on its interior (``ks`` pixels
cropped from every side) at the best whole-pixel shift within +-3 px, by PSNR, SSIM, the error
ratio of Levin et al. (2009) and, for the blind methods, the kernel similarity.

Speed: hyper-Laplacian deconvolution of a 512 x 512 image, and VB blind deconvolution with a
25 px kernel on a 256 x 256 image.

Run from the repository root: ``python benchmarks/deblur.py`` (writes ``benchmarks/deblur.md``,
~10-15 min on 2 cores) or ``python benchmarks/deblur.py --quick`` (2 images x 2 kernels, writes
``benchmarks/deblur_quick.md``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import mrideblur  # noqa: E402
from mrideblur.deblur import blind_deconvolve, blur, camera_shake_kernel, deconvolve  # noqa: E402
from mrideblur.metrics import error_ratio, kernel_similarity, psnr, ssd_upto_shift, ssim  # noqa: E402

from benchmarks.images import benchmark_images  # noqa: E402

SIZE = 256  # side of the blurred (observed) image
NOISE_SIGMA = 0.01
MAX_SHIFT = 3
KERNELS = ((15, 11), (19, 12), (25, 13), (25, 14))  # (kernel size, seed of camera_shake_kernel)
NONBLIND = ("inverse", "wiener", "tikhonov", "hyper-laplacian", "richardson-lucy")
BLIND = ("vb", "map")
BLURRED = "blurred (no deblurring)"
METHOD_ORDER = (BLURRED, *(f"non-blind {m} (true kernel)" for m in NONBLIND), *(f"blind {m.upper()}" for m in BLIND))
TARGET_HL_512 = 2.0
TARGET_VB_25 = 60.0
LOADS: list[float] = []  # 1-minute load average, sampled before every case and timing


def sample_load() -> float:
    try:
        LOADS.append(os.getloadavg()[0])
    except OSError:  # pragma: no cover
        LOADS.append(float("nan"))
    return LOADS[-1]


# ----------------------------------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------------------------------


def interior(img: np.ndarray, ks: int) -> np.ndarray:
    """The scene-sized image without ``ks`` pixels on every side."""
    return img[ks:-ks, ks:-ks]


def scores(estimate: np.ndarray, sharp: np.ndarray, ks: int) -> dict:
    """PSNR, SSIM and SSD of a scene-sized estimate at the best shift within +-MAX_SHIFT.

    The shift is the one minimising the SSD (:func:`ssd_upto_shift`, which also crops the truth
    by ``MAX_SHIFT`` so every shift compares the same pixels); PSNR is monotone in the SSD on a
    fixed region, so it is the PSNR-best shift too; SSIM is taken at the same shift.
    """
    e, t = interior(estimate, ks), interior(sharp, ks)
    ssd, (sy, sx) = ssd_upto_shift(e, t, MAX_SHIFT, return_shift=True)
    s = MAX_SHIFT
    ny, nx = t.shape
    e_al = e[s + sy : ny - s + sy, s + sx : nx - s + sx]
    t_core = t[s : ny - s, s : nx - s]
    return {"psnr": psnr(e_al, t_core, data_range=1.0), "ssim": ssim(e_al, t_core, data_range=1.0), "ssd": ssd, "shift": (sy, sx)}


def delta_kernel(ks: int) -> np.ndarray:
    k = np.zeros((ks, ks))
    k[ks // 2, ks // 2] = 1.0
    return k


# ----------------------------------------------------------------------------------------------
# Accuracy
# ----------------------------------------------------------------------------------------------


def run_accuracy(quick: bool) -> list[dict]:
    kernels = KERNELS[::2] if quick else KERNELS
    n_images = 2 if quick else None
    rows = []
    cache: dict[int, dict[str, np.ndarray]] = {}
    total = (2 if quick else 4) * len(kernels)
    case = 0
    for ks, kseed in kernels:
        if ks not in cache:
            cache[ks] = benchmark_images(SIZE + ks - 1)
        images = list(cache[ks].items())[:n_images]
        k_true = camera_shake_kernel(ks, seed=kseed)
        for ii, (name, x) in enumerate(images):
            case += 1
            sample_load()
            noise_seed = 100 * ii + kseed
            y = blur(x, k_true, noise_sigma=NOISE_SIGMA, seed=noise_seed, boundary="valid")
            assert y.shape == (SIZE, SIZE) and x.shape == (SIZE + ks - 1,) * 2
            print(f"[{case}/{total}] {name}, kernel {ks} px seed {kseed}, noise seed {noise_seed} (load {LOADS[-1]:.1f})", flush=True)
            base = {"image": name, "ks": ks, "kseed": kseed}

            # Reference of the error ratio: hyper-Laplacian deconvolution with the true kernel.
            t0, c0 = time.perf_counter(), time.process_time()
            x_hl_true = deconvolve(y, k_true, "hyper-laplacian", boundary="valid")
            t_hl, c_hl = time.perf_counter() - t0, time.process_time() - c0
            ssd_ref = ssd_upto_shift(interior(x_hl_true, ks), interior(x, ks), MAX_SHIFT)

            # No deblurring: the observation padded to scene size (scored as is); its error
            # ratio is Levin's: hyper-Laplacian deconvolution with a delta kernel.
            y_pad = np.pad(y, ks // 2, mode="edge")
            x_delta = deconvolve(y, delta_kernel(ks), "hyper-laplacian", boundary="valid")
            sc = scores(y_pad, x, ks)
            sc["er"] = error_ratio(interior(x_delta, ks), interior(x_hl_true, ks), interior(x, ks), MAX_SHIFT)
            sc["er_raw"] = sc["ssd"] / ssd_ref  # the blurred input itself, not deconvolved
            rows.append({**base, "method": BLURRED, **sc, "seconds": 0.0, "cpu": 0.0, "ksim": None})
            p_blur = sc["psnr"]
            print(f"    {BLURRED:40s} PSNR {sc['psnr']:6.2f}  SSIM {sc['ssim']:.3f}  ER {sc['er']:.2f} (raw {sc['er_raw']:.2f})", flush=True)

            for m in NONBLIND:
                if m == "hyper-laplacian":
                    est, dt, ct = x_hl_true, t_hl, c_hl
                else:
                    t0, c0 = time.perf_counter(), time.process_time()
                    est = deconvolve(y, k_true, m, boundary="valid")
                    dt, ct = time.perf_counter() - t0, time.process_time() - c0
                sc = scores(est, x, ks)
                sc["er"] = 1.0 if m == "hyper-laplacian" else None
                label = f"non-blind {m} (true kernel)"
                rows.append({**base, "method": label, **sc, "seconds": dt, "cpu": ct, "ksim": None})
                print(f"    {label:40s} PSNR {sc['psnr']:6.2f} ({sc['psnr'] - p_blur:+.2f})  SSIM {sc['ssim']:.3f}  {dt:.2f} s", flush=True)

            for m in BLIND:
                t0, c0 = time.perf_counter(), time.process_time()
                res = blind_deconvolve(y, ks, method=m, boundary="valid", patch=None, seed=0)
                dt, ct = time.perf_counter() - t0, time.process_time() - c0
                sc = scores(res.image, x, ks)
                sc["er"] = error_ratio(interior(res.image, ks), interior(x_hl_true, ks), interior(x, ks), MAX_SHIFT)
                ksim = kernel_similarity(res.kernel, k_true)
                label = f"blind {m.upper()}"
                rows.append({**base, "method": label, **sc, "seconds": dt, "cpu": ct, "ksim": ksim})
                print(f"    {label:40s} PSNR {sc['psnr']:6.2f} ({sc['psnr'] - p_blur:+.2f})  SSIM {sc['ssim']:.3f}  ER {sc['er']:.2f}  ksim {ksim:.3f}  shift {sc['shift']}  {dt:.1f} s (CPU {ct:.1f} s)", flush=True)
    return rows


# ----------------------------------------------------------------------------------------------
# Speed
# ----------------------------------------------------------------------------------------------


def run_speed() -> dict:
    ks = 25
    k = camera_shake_kernel(ks, seed=13)
    x512 = benchmark_images(512 + ks - 1)["camera"]
    y512 = blur(x512, k, noise_sigma=NOISE_SIGMA, seed=0, boundary="valid")
    times, cpus = [], []
    sample_load()
    for i in range(5):
        t0, c0 = time.perf_counter(), time.process_time()
        deconvolve(y512, k, "hyper-laplacian", boundary="valid")
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        print(f"[speed] hyper-Laplacian 512 x 512 run {i + 1}/5: {times[-1]:.3f} s (CPU {cpus[-1]:.3f} s)", flush=True)
    x256 = benchmark_images(SIZE + ks - 1)["camera"]
    y256 = blur(x256, k, noise_sigma=NOISE_SIGMA, seed=0, boundary="valid")
    load_vb = sample_load()
    t0, c0 = time.perf_counter(), time.process_time()
    blind_deconvolve(y256, ks, method="vb", boundary="valid", patch=None, seed=0)
    t_vb, c_vb = time.perf_counter() - t0, time.process_time() - c0
    load_vb = max(load_vb, sample_load())
    print(f"[speed] VB blind 25 px kernel on 256 x 256: {t_vb:.1f} s (CPU {c_vb:.1f} s)", flush=True)
    return {"hl512": float(np.median(times)), "hl512_cpu": float(np.median(cpus)), "hl512_all": times,
            "vb25": t_vb, "vb25_cpu": c_vb, "vb25_load": load_vb}


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------


def _f(v, fmt):
    return "—" if v is None else format(v, fmt)


def summary_table(rows: list[dict]) -> list[str]:
    blurred = {(r["image"], r["ks"], r["kseed"]): r["psnr"] for r in rows if r["method"] == BLURRED}
    out = [
        "| method | median PSNR (dB) | median gain over blurred (dB) | median SSIM | median ER | worst ER | ER <= 2 | ER <= 3 | median s/call | median CPU s/call |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in METHOD_ORDER:
        rs = [r for r in rows if r["method"] == m]
        if not rs:
            continue
        p = np.median([r["psnr"] for r in rs])
        gain = np.median([r["psnr"] - blurred[(r["image"], r["ks"], r["kseed"])] for r in rs])
        s = np.median([r["ssim"] for r in rs])
        ers = [r["er"] for r in rs if r["er"] is not None]
        if ers and m != METHOD_ORDER[4]:  # hyper-laplacian true kernel: ER = 1 by definition
            er_med, er_max = np.median(ers), max(ers)
            f2 = f"{np.mean(np.array(ers) <= 2):.0%}"
            f3 = f"{np.mean(np.array(ers) <= 3):.0%}"
        elif ers:
            er_med, er_max, f2, f3 = 1.0, 1.0, "(def.)", "(def.)"
        else:
            er_med = er_max = None
            f2 = f3 = "—"
        sec = np.median([r["seconds"] for r in rs])
        cpu = np.median([r["cpu"] for r in rs])
        out.append(f"| {m} | {p:.2f} | {gain:+.2f} | {s:.3f} | {_f(er_med, '.2f')} | {_f(er_max, '.2f')} | {f2} | {f3} | {sec:.2f} | {cpu:.2f} |")
    return out


def case_table(rows: list[dict]) -> list[str]:
    out = [
        "| image | kernel size | kernel seed | PSNR blurred | PSNR HL true k | PSNR VB | PSNR MAP | ER VB | ER MAP | ksim VB | ksim MAP | s VB | s MAP |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    keys = []
    for r in rows:
        key = (r["image"], r["ks"], r["kseed"])
        if key not in keys:
            keys.append(key)
    by = {(r["image"], r["ks"], r["kseed"], r["method"]): r for r in rows}
    for key in keys:
        b, h = by[(*key, BLURRED)], by[(*key, METHOD_ORDER[4])]
        v, mp = by[(*key, "blind VB")], by[(*key, "blind MAP")]
        out.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {b['psnr']:.2f} | {h['psnr']:.2f} | {v['psnr']:.2f} | {mp['psnr']:.2f} | "
            f"{v['er']:.2f} | {mp['er']:.2f} | {v['ksim']:.3f} | {mp['ksim']:.3f} | {v['seconds']:.1f} | {mp['seconds']:.1f} |"
        )
    return out


def write_report(path: Path, command: str, rows: list[dict], speed: dict, quick: bool, started: str, wall: float) -> None:
    cores = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        usable = cores
    blurred_rows = [r for r in rows if r["method"] == BLURRED]
    lines = [
        "# Deblurring benchmark" + (" (QUICK smoke test: 2 images x 2 kernels)" if quick else ""),
        "",
        f"- Command: `{command}` (from the repository root)",
        f"- Date: {started} (total wall time {wall / 60:.1f} min)",
        f"- Machine: {platform.machine()} {platform.processor() or ''}".rstrip()
        + f", `os.cpu_count()` = {cores} ({usable} usable); Python {platform.python_version()}, numpy/scipy only (torch not involved)",
        f"- mrideblur {mrideblur.__version__}, numpy {np.__version__}",
        f"- 1-minute load average during the run (sampled per case): {np.nanmin(LOADS):.1f}-{np.nanmax(LOADS):.1f} on {usable} cores"
        + (" — the machine was shared with other jobs, so wall times are inflated; CPU seconds (`time.process_time`, "
           "all threads of this process) are the less load-sensitive figure" if np.nanmax(LOADS) > usable + 0.5 else ""),
        "",
        "## Accuracy",
        "",
        f"Set: {len({r['image'] for r in rows})} benchmark images ({', '.join(dict.fromkeys(r['image'] for r in rows))}), "
        f"each a `256 + ks - 1` square central crop, blurred by `blur(x, camera_shake_kernel(ks, seed), noise_sigma={NOISE_SIGMA}, "
        "seed=100 * image_index + kernel_seed, boundary=\"valid\")` — a real, non-periodic blur: the observation is 256 x 256, "
        f"smaller than the scene — for the kernels (ks, seed) in {', '.join(str(k) for k in (KERNELS[::2] if quick else KERNELS))}; "
        f"{len(blurred_rows)} cases.",
        "",
        "Methods: non-blind `deconvolve(y, k_true, method, boundary=\"valid\")` with default parameters; blind "
        "`blind_deconvolve(y, ks, method=\"vb\"|\"map\", boundary=\"valid\", patch=None, seed=0)` (final image by hyper-Laplacian "
        "deconvolution with the estimated kernel). All return the scene-sized image; the blurred input is edge-padded by "
        "`ks // 2` to scene size (only its centre is scored).",
        "",
        f"Scoring, against the sharp scene on the interior (`ks` pixels cropped from every side, then {MAX_SHIFT} more by the "
        f"shift search): PSNR and SSIM (data range 1) at the whole-pixel shift within ±{MAX_SHIFT} px that minimises the SSD "
        "(`metrics.ssd_upto_shift`); ER = Levin et al. (2009) error ratio `metrics.error_ratio`: SSD(hyper-Laplacian "
        "deconvolution with the estimated kernel) / SSD(hyper-Laplacian deconvolution with the true kernel), both up to "
        "shift — for \"no deblurring\" the estimated kernel is a delta (hyper-Laplacian deconvolution with a delta kernel); "
        "ER is 1 by definition for the hyper-Laplacian row and not defined (—) for the other non-blind rows. ksim = kernel "
        "similarity (`metrics.kernel_similarity`, Hu & Yang 2012). Seconds are wall time per call; CPU seconds are `time.process_time()` per call.",
        "",
        *summary_table(rows),
        "",
        f"For reference, the error ratio of the raw blurred input itself (no deconvolution at all): median "
        f"{np.median([r['er_raw'] for r in blurred_rows]):.2f}, range {min(r['er_raw'] for r in blurred_rows):.2f}-"
        f"{max(r['er_raw'] for r in blurred_rows):.2f}.",
        "",
        "### Per case (blind methods)",
        "",
        *case_table(rows),
        "",
        "## Speed",
        "",
        f"{usable} CPU cores (`os.cpu_count()` = {cores}), numpy/scipy FFTs, torch not involved.",
        "",
        "| task | target | measured (wall) | CPU time |",
        "|---|---|---|---|",
        f"| hyper-Laplacian non-blind deconvolution, 512 x 512 image, 25 px kernel, `boundary=\"valid\"` (median of 5) | "
        f"<= {TARGET_HL_512:.0f} s | {speed['hl512']:.2f} s ({'met' if speed['hl512'] <= TARGET_HL_512 else 'MISSED'}) | {speed['hl512_cpu']:.2f} s |",
        f"| VB blind deconvolution, 25 px kernel, 256 x 256 image (`patch=None`), one run | <= {TARGET_VB_25:.0f} s | "
        f"{speed['vb25']:.1f} s ({'met' if speed['vb25'] <= TARGET_VB_25 else 'MISSED'}) | {speed['vb25_cpu']:.1f} s |",
        "",
        f"1-minute load average around the VB run: {speed['vb25_load']:.1f} on {usable} cores.",
        "",
        f"Hyper-Laplacian runs: {', '.join(f'{t:.3f}' for t in speed['hl512_all'])} s.",
        "",
    ]
    path.write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 images x 2 kernels; writes benchmarks/deblur_quick.md")
    args = ap.parse_args()
    command = "python benchmarks/deblur.py" + (" --quick" if args.quick else "")
    started = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    print(f"{command}: {started}, os.cpu_count() = {os.cpu_count()}, mrideblur {mrideblur.__version__}, numpy {np.__version__}", flush=True)
    t0 = time.perf_counter()
    rows = run_accuracy(args.quick)
    speed = run_speed()
    wall = time.perf_counter() - t0
    out = Path(__file__).resolve().parent / ("deblur_quick.md" if args.quick else "deblur.md")
    write_report(out, command, rows, speed, args.quick, started, wall)
    print("\n".join(summary_table(rows)), flush=True)
    print(f"wrote {out} ({wall / 60:.1f} min)", flush=True)


if __name__ == "__main__":
    main()
