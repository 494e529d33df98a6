"""Speed, memory and adjointness of the multi-shot forward model ``A`` and its adjoint ``A^H``.

Times one application of ``A`` and of ``A^H`` (median over several runs after one warm-up run)
for the sigpy/numpy :class:`~mrideblur.mri.MultiShotSense` and the torch
:class:`~mrideblur.mri.MultiShotSenseTorch` (complex64, CPU, and CUDA when torch sees a GPU),
plus one forward+backward pass of ``||A x - y||^2`` in torch with respect to the image and the
motion parameters:

- 2D: 256 x 256, 8 coils, 16 interleaved shots, random motion (up to 3 deg / 3 px);
- 3D: 128^3, 16 coils, 32 interleaved shots over ``(kz, ky)``: numpy forward and adjoint (the
  torch model underneath), torch forward, adjoint, forward + adjoint and forward + backward;
- for both, the *FFT floor*: the bare FFT calls one forward + adjoint cannot avoid
  (:func:`fft_floor`), timed the same way; the ratio of ``fwd+adj`` to it is what the
  implementation adds to its FFTs.

Every row runs in a fresh subprocess (this script with ``--worker``), which also reports its
peak resident memory: the inputs are built, the process's high-water mark is reset through
``/proc/self/clear_refs`` (Linux), and ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is read
after the timed runs. The peak is therefore that of the whole process (Python, numpy, torch
and the inputs included) while it applies the operator; checked against an 8 GB limit. Each
row also carries a correctness figure measured in the same subprocess, after the timing:
the adjoint test ``|<A x, y> - <x, A^H y>| / |<A x, y>|`` for random complex ``x, y``
(inner products in float64), and for the forward+backward row the relative difference between
torch autograd's vector-Jacobian product of the forward (``A^H y`` by definition) and the
explicit adjoint.

Run: ``python benchmarks/physics.py`` (writes ``benchmarks/physics.md``; several minutes on 2
cores, mostly the 3D rows) or ``python benchmarks/physics.py --quick`` (64 x 64 and 32^3, same
code, writes ``benchmarks/physics_quick.md``; about a minute).

``--threads N`` sets torch's intra-op threads in the workers. On a machine busy with other work,
torch's default (one OpenMP thread per core) contends with the other processes and its CPU
timings become erratic, 10-50x slower than with one thread (seen on the 2-core development
machine); numpy's FFTs (``scipy.fft`` with ``workers=-1``) suffer much less.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

MEMORY_LIMIT_GB = 8.0
MAX_ROT, MAX_TRANS = 3.0, 3.0


@dataclass(frozen=True)
class Spec:
    """One benchmark row: which operator, on what problem, which operation."""

    dim: int  # 2 or 3
    n: int  # image side
    coils: int
    shots: int
    impl: str  # "numpy" or "torch"
    device: str  # "cpu" or "cuda"
    op: str  # "forward", "adjoint" or "fwd+bwd"
    repeats: int
    seed: int = 0
    threads: int | None = None  # torch intra-op threads; None = torch's default (all cores)


@dataclass(frozen=True)
class Mode:
    """Problem sizes and repeat counts of a benchmark mode."""

    n2: int
    coils2: int
    shots2: int
    repeats2: int
    n3: int
    coils3: int
    shots3: int
    repeats3: int
    out: str


MODES = {
    "full": Mode(256, 8, 16, 7, 128, 16, 32, 3, "physics.md"),
    "quick": Mode(64, 8, 16, 5, 32, 16, 32, 3, "physics_quick.md"),
}


# ------------------------------------------------------------------------------ worker side

def make_problem(dim: int, n: int, coils: int, shots: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs of one benchmark problem, all complex64 except the shot map and the motion.

    Returns
    -------
    dict with ``x`` ``(n,)*dim`` random complex image, ``sens`` ``(coils,) + (n,)*dim``
    (simulated loop coils, ``sum_c |S_c|^2 = 1``), ``shot_index`` ``(n,)`` or ``(n, n)``
    (interleaved), ``motion`` ``(shots, 3|6)`` random motion relative to shot 0, ``y`` a random
    complex k-space ``(coils,) + (n,)*dim``.
    """
    from mrideblur.mri import make_shot_index, motion_track, simulate_sens

    rng = np.random.default_rng(seed)
    shape = (n,) * dim
    pe_shape = (n,) if dim == 2 else (n, n)

    def crandn(*s: int) -> np.ndarray:
        out = np.empty(s, np.complex64)
        out.real = rng.standard_normal(s, dtype=np.float32)
        out.imag = rng.standard_normal(s, dtype=np.float32)
        return out

    return {
        "x": crandn(*shape),
        "sens": simulate_sens(shape, coils, "loop", seed=seed),
        "shot_index": make_shot_index(pe_shape if dim == 3 else n, shots, "interleaved"),
        "motion": motion_track(shots, "random", MAX_ROT, MAX_TRANS, ndim=dim, seed=seed),
        "y": crandn(coils, *shape),
    }


def _rss_now_kib() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the process's RSS high-water mark (Linux ``clear_refs``); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_kib() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r // 1024 if sys.platform == "darwin" else r)  # bytes on macOS, KiB on Linux


def _rel_inner(ax: np.ndarray, y: np.ndarray, x: np.ndarray, ahy: np.ndarray) -> float:
    lhs = np.vdot(y.astype(np.complex128).ravel(), ax.astype(np.complex128).ravel())  # <A x, y>
    rhs = np.vdot(ahy.astype(np.complex128).ravel(), x.astype(np.complex128).ravel())  # <x, A^H y>
    return float(abs(lhs - rhs) / max(abs(lhs), 1e-300))


def _time(fn: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> list[float]:
    fn()  # warm-up: plans, caches, allocator
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def measure(spec: Spec) -> dict[str, Any]:
    """Time one operation, read the peak RSS, then run its correctness check (one process)."""
    p = make_problem(spec.dim, spec.n, spec.coils, spec.shots, spec.seed)
    result: dict[str, Any] = {}
    sync: Callable[[], None] = lambda: None  # noqa: E731
    if spec.impl == "numpy":
        from mrideblur.mri import MultiShotSense

        A = MultiShotSense(p["sens"], p["shot_index"], p["motion"])
        AH = A.H
        x, y = p["x"], p["y"]
        fns = {"forward": lambda: A.apply(x), "adjoint": lambda: AH.apply(y)}
        if spec.op not in fns:
            raise ValueError(f"op: numpy rows time 'forward' or 'adjoint', got {spec.op!r}")
        fn = fns[spec.op]

        def check() -> dict[str, Any]:
            return {"check": "adjoint test", "rel_err": _rel_inner(A.apply(x), y, x, AH.apply(y))}
    else:
        import torch

        from mrideblur.mri import MultiShotSenseTorch

        if spec.threads:
            torch.set_num_threads(spec.threads)
        dev = torch.device(spec.device)
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise RuntimeError("cuda: torch sees no GPU")
            sync = torch.cuda.synchronize
        T = MultiShotSenseTorch(p["shot_index"], ndim=spec.dim, device=dev, dtype=torch.complex64)
        x = torch.as_tensor(p["x"], device=dev)
        y = torch.as_tensor(p["y"], device=dev)
        sens = torch.as_tensor(p["sens"], device=dev)
        thetas = torch.as_tensor(p["motion"], dtype=torch.float32, device=dev)

        def fwd_bwd() -> None:
            xr = x.clone().requires_grad_(True)
            th = thetas.clone().requires_grad_(True)
            loss = (T.forward(xr, th, sens) - y).abs().pow(2).sum()
            loss.backward()

        def no_grad(f: Callable[[], Any]) -> Callable[[], Any]:
            def g() -> Any:
                with torch.no_grad():
                    return f()
            return g

        fns = {
            "forward": no_grad(lambda: T.forward(x, thetas, sens)),
            "adjoint": no_grad(lambda: T.adjoint(y, thetas, sens)),
            "fwd+adj": no_grad(lambda: T.adjoint(T.forward(x, thetas, sens), thetas, sens)),
            "fwd+bwd": fwd_bwd,
            FLOOR: no_grad(fft_floor(T, p["motion"], x, sens)),
        }
        if spec.op not in fns:
            raise ValueError(f"op: torch rows time {sorted(fns)}, got {spec.op!r}")
        fn = fns[spec.op]

        def check() -> dict[str, Any]:
            if spec.op == FLOOR:
                return {"check": "FFT calls only", "rel_err": float("nan")}
            with torch.no_grad():
                ahy = T.adjoint(y, thetas, sens)
            if spec.op != "fwd+bwd":
                with torch.no_grad():
                    ax = T.forward(x, thetas, sens)
                return {"check": "adjoint test",
                        "rel_err": _rel_inner(ax.cpu().numpy(), p["y"], p["x"], ahy.cpu().numpy())}
            xr = x.clone().requires_grad_(True)
            (vjp,) = torch.autograd.grad(T.forward(xr, thetas, sens), xr, grad_outputs=y)
            err = torch.linalg.vector_norm(vjp - ahy) / torch.linalg.vector_norm(ahy)
            return {"check": "autograd VJP vs A^H y", "rel_err": float(err)}

        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        result["torch_threads"] = torch.get_num_threads()
    gc.collect()
    result["rss_before_kib"] = _rss_now_kib()
    result["peak_reset"] = _reset_peak()
    times = _time(fn, spec.repeats, sync)
    result["peak_rss_kib"] = _peak_kib()
    if spec.impl == "torch" and spec.device == "cuda":
        import torch

        result["gpu_peak_bytes"] = int(torch.cuda.max_memory_allocated())
    result["times_s"] = times
    result.update(check())
    return result


FLOOR = "FFT floor fwd+adj"


def fft_floor(T: Any, motion: np.ndarray, x: Any, sens: Any) -> Callable[[], None]:
    """The FFTs one forward + adjoint cannot avoid, as bare ``torch.fft`` calls on the same shapes.

    Per shot and direction: the 1D FFT pair of every shear of the motion plan on one volume
    (:func:`mrideblur.physics.motion.build_plan`), and in 3D the coil FFTs of the shot's own data
    along the two axes left after its rows are picked (the data a ``(coils, K, ny, nx)`` or
    ``(coils, nz, K, nx)`` array; :mod:`mrideblur.physics.rows3d`); in 2D the coil FFTs along
    ``kx`` of the shot's lines. The products (phase ramps, coil maps, DFT rows), data movement
    and Python are left out: the ratio to this row is what the implementation adds to the FFTs.
    """
    import torch

    from mrideblur.physics.motion import build_plan

    nd = x.dim()
    nrot = 1 if nd == 2 else 3
    vol = x.unsqueeze(0)
    work = []
    for s in range(1, motion.shape[0]):
        th = motion[s : s + 1]
        ops = build_plan(nd, [th[:, j] for j in range(nrot)], [th[:, nrot + i] for i in range(nd)],
                         th[:, :nrot], th[:, nrot:], False, np.tan, np.sin, lambda v: v, True)
        axes = [nd + ax + 1 for ax, _ in ops]  # dims of (1, *spatial)
        if nd == 3:
            p = T._plans3d[s]
            k = len(p.rows)
            shape = (sens.shape[0],) + tuple(k if i == p.axis else n for i, n in enumerate(x.shape))
            dims = p.other if not p.full else (-3, -2, -1)
            red = torch.zeros(shape if not p.full else sens.shape, dtype=x.dtype)
        else:
            red = torch.zeros((sens.shape[0], T._nmax, x.shape[-1]), dtype=x.dtype)
            dims = (-1,)
        work.append((axes, red, dims))

    def run() -> None:
        for _ in range(2):  # forward and adjoint
            for axes, red, dims in work:
                for ax in axes:
                    torch.fft.ifft(torch.fft.fft(vol, dim=ax), dim=ax)
                torch.fft.fftn(red, dim=dims)

    return run


def _worker(arg: str) -> None:
    spec = Spec(**json.loads(arg))
    print(json.dumps(measure(spec)), flush=True)


# ------------------------------------------------------------------------------ driver side

def run_row(spec: Spec, timeout: float) -> dict[str, Any]:
    """Run :func:`measure` for ``spec`` in a fresh Python process; returns its result or an error."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(asdict(spec))]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return {"error": tail}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_wall_s"] = wall
    return out


def plan(mode: Mode, cuda: bool, threads: int | None = None) -> list[Spec]:
    """The rows of a mode: 2D numpy/torch (CPU, CUDA) and 3D numpy forward/adjoint, torch forward."""
    rows = []
    d2 = dict(dim=2, n=mode.n2, coils=mode.coils2, shots=mode.shots2, repeats=mode.repeats2, threads=threads)
    d3 = dict(dim=3, n=mode.n3, coils=mode.coils3, shots=mode.shots3, repeats=mode.repeats3, threads=threads)
    devices = ["cpu"] + (["cuda"] if cuda else [])
    rows += [Spec(impl="numpy", device="cpu", op=op, **d2) for op in ("forward", "adjoint")]
    rows += [Spec(impl="torch", device=dev, op=op, **d2) for dev in devices for op in ("forward", "adjoint", "fwd+bwd")]
    rows += [Spec(impl="torch", device="cpu", op=FLOOR, **d2)]
    rows += [Spec(impl="numpy", device="cpu", op=op, **d3) for op in ("forward", "adjoint")]
    rows += [Spec(impl="torch", device=dev, op=op, **d3) for dev in devices
             for op in ("forward", "adjoint", "fwd+adj", "fwd+bwd")]
    rows += [Spec(impl="torch", device="cpu", op=FLOOR, **d3)]
    return rows


def _gb(kib: int | None) -> float | None:
    return None if kib is None else kib * 1024 / 1e9


def _fmt_time(t: float) -> str:
    return f"{t * 1e3:.1f} ms" if t < 10 else f"{t:.1f} s"


def format_row(spec: Spec, r: dict[str, Any]) -> str:
    """One markdown table row."""
    shape = "x".join([str(spec.n)] * spec.dim)
    head = f"| {spec.dim}D {shape}, {spec.coils} coils, {spec.shots} shots | {spec.impl} | {spec.device} | {spec.op} "
    if "error" in r:
        return head + f"| failed: {r['error']} | | | | | |"
    t = r["times_s"]
    peak = _gb(r["peak_rss_kib"])
    before = _gb(r.get("rss_before_kib"))
    mem = f"{peak:.2f}" + ("" if r.get("peak_reset") else " (whole process)")
    if "gpu_peak_bytes" in r:
        mem += f"; GPU {r['gpu_peak_bytes'] / 1e9:.2f}"
    verdict = "ok" if peak < MEMORY_LIMIT_GB else "OVER"
    return (head + f"| {_fmt_time(statistics.median(t))} | {_fmt_time(min(t))} | {len(t)} "
            f"| {mem} | {'' if before is None else f'{before:.2f}'} | {100 * peak / MEMORY_LIMIT_GB:.0f}% {verdict} "
            f"| {r['check'] if r['rel_err'] != r['rel_err'] else r['check'] + ': ' + format(r['rel_err'], '.1e')} |")


def header(mode_name: str, argv: list[str], cuda_name: str | None, threads: int | None) -> list[str]:
    """Title and environment lines of the report."""
    import scipy
    import sigpy
    import torch

    cpus = os.cpu_count()
    nthreads = threads or torch.get_num_threads()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = cpus
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), model)
    except OSError:
        pass
    return [
        f"# Forward model speed, memory and adjointness ({mode_name} mode)",
        "",
        f"- Command: `{' '.join(['python', 'benchmarks/physics.py'] + argv)}`",
        f"- Date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- CPU: {model}; {cpus} logical CPUs, {usable} usable by this process; load average at start "
        f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}",
        f"- Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"sigpy {sigpy.__version__}, torch {torch.__version__} "
        f"({nthreads} intra-op thread{'s' if nthreads != 1 else ''}{'' if threads else ', its default'}; "
        "scipy.fft uses all CPUs, `workers=-1` in mrideblur.physics.fourier)",
        f"- GPU: {cuda_name if cuda_name else 'no GPU here (torch.cuda.is_available() is False): CUDA rows skipped'}",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    """Run every row of the chosen mode and write the markdown report; 0 when every row ran."""
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (64x64, 32^3); writes physics_quick.md")
    ap.add_argument("--out", type=Path, default=None, help="report path (default benchmarks/physics[_quick].md)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per row (default 3600)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads in the workers (default: torch's own, all cores; "
                         "use 1 on a busy machine)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        _worker(args.worker)
        return 0
    import torch

    from mrideblur.io.atomic import atomic_open

    mode_name = "quick" if args.quick else "full"
    mode = MODES[mode_name]
    cuda = torch.cuda.is_available()
    cuda_name = torch.cuda.get_device_name(0) if cuda else None
    lines = header(mode_name, argv, cuda_name, args.threads)
    lines += [
        "Median and fastest of the timed runs, after one warm-up run; complex64 throughout; random "
        f"motion up to {MAX_ROT:g} deg / {MAX_TRANS:g} px per shot, interleaved shots, simulated loop coils. "
        "Each row runs in a fresh process. *Peak RSS* is that process's resident-memory high-water "
        "mark while it runs the operation (reset through `/proc/self/clear_refs` after the inputs are "
        "built, read with `getrusage(RUSAGE_SELF).ru_maxrss`), so it includes the interpreter, numpy, "
        "torch and the inputs (*RSS before*); GB = 1e9 bytes, limit "
        f"{MEMORY_LIMIT_GB:g} GB. The last column is measured in the same process after the timing: "
        "the adjoint test `|<Ax, y> - <x, A^H y>| / |<Ax, y>|`, or for fwd+bwd (loss `||Ax - y||^2`, "
        "gradients w.r.t. the image and the motion) autograd's vector-Jacobian product of the forward "
        "against the explicit adjoint.",
        "",
        "| problem | impl | device | operation | median | fastest | runs | peak RSS (GB) | RSS before (GB) "
        "| vs limit | correctness (rel. error) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    failed = 0
    for spec in plan(mode, cuda, args.threads):
        print(f"running {spec}", file=sys.stderr, flush=True)
        r = run_row(spec, args.timeout)
        failed += "error" in r
        lines.append(format_row(spec, r))
        print(lines[-1], file=sys.stderr, flush=True)
    out = args.out or Path(__file__).with_name(mode.out)
    with atomic_open(out, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
