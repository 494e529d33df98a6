"""One training loop for every network of the package: Adam, warm-up, clipping, EMA, atomic
checkpoints, exact resume, a clean stop on Ctrl-C / SIGTERM.

A :class:`Trainer` holds the network, its exponential moving average (``ema_decay``, ramped up
as ``min(decay, (1 + step) / (10 + step))``; the EMA weights are the ones exported), the Adam
optimiser and two random streams — a numpy generator for data and a torch generator for noise,
both on the CPU so results do not depend on the device.  :meth:`Trainer.fit` calls a
``loss_fn(trainer)`` once per step (it draws its batch from ``trainer.rng`` / ``trainer.gen``)
and writes a checkpoint every ``checkpoint_every`` steps, at the end and on interruption: the
weights, EMA, optimiser, both generator states, the step, the training seconds and the loss
history, plus whatever the caller adds (configs).  Loading it back continues with exactly the
numbers an uninterrupted run would have produced.

Users: :func:`mrideblur.prior.train.train` (the score network) and
:func:`mrideblur.learn.train_deblur.train` (the learned deblurring networks).
"""

from __future__ import annotations

import copy
import csv
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..io.atomic import atomic_open, atomic_write

__all__ = ["LoopConfig", "Trainer", "checkpoint_path", "read_checkpoint", "resume_point", "training_device",
           "write_loss_log"]


def checkpoint_path(out: str | Path) -> Path:
    """The checkpoint file for ``--out``: ``out`` itself when it ends in ``.pt``, else
    ``out/checkpoint.pt``."""
    out = Path(out)
    return out if out.suffix == ".pt" else out / "checkpoint.pt"


def read_checkpoint(path: str | Path, fmt: str, what: str) -> dict:
    """A training checkpoint whose ``format`` is ``fmt``; a ``ValueError`` naming the file (and
    ``what`` it should have been) when it is unreadable or of another kind."""
    path = Path(path)
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{path}: not a readable checkpoint ({first})") from None
    if not isinstance(ck, dict) or ck.get("format") != fmt:
        raise ValueError(f"{path}: not a mrideblur {what} checkpoint")
    return ck


def training_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device; a ``ValueError`` when CUDA is asked and absent."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available to this torch build")
    return device


def resume_point(ckpt: Path, resume: bool, config: Any, read: Callable[[Path], dict]) -> tuple[dict | None, Any]:
    """``(checkpoint or None, config)`` for a run: when resuming an existing checkpoint, its own
    config (of the caller's, only ``steps`` applies: the run continues to the larger total)."""
    if not (resume and ckpt.exists()):
        return None, config
    state = read(ckpt)
    resumed = type(config).from_dict(state["config"])
    resumed.steps = max(config.steps, int(state["step"]))
    return state, resumed


def write_loss_log(path: Path, history: list[dict]) -> None:
    """``loss.csv`` (step, mean loss since the previous checkpoint, training seconds), atomically."""
    with atomic_open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["step", "loss", "seconds"])
        for h in history:
            w.writerow([h["step"], f"{h['loss']:.6f}", f"{h['seconds']:.1f}"])


@dataclass
class LoopConfig:
    """The optimisation settings :class:`Trainer` needs (a training config carries them).

    Attributes
    ----------
    steps : int
        Total optimiser steps.
    lr : float
        Adam learning rate after a linear warm-up of ``warmup`` steps.
    grad_clip : float
        Largest gradient norm (0: no clipping).
    ema_decay : float
    checkpoint_every : int
    seed : int
        Seeds the network initialisation (before the model is built), the data and the noise.
    """

    steps: int
    lr: float
    warmup: int
    grad_clip: float
    ema_decay: float
    checkpoint_every: int
    seed: int

    @classmethod
    def of(cls, config: Any) -> "LoopConfig":
        """The loop settings read from any config object with these attribute names."""
        return cls(**{name: getattr(config, name) for name in cls.__dataclass_fields__})


class Trainer:
    """Network, EMA, optimiser, random streams and progress of one training run (module notes).

    Parameters
    ----------
    model : torch.nn.Module
        Already on its device and initialised (seed torch before building it).
    loop : LoopConfig
    device : torch.device
    """

    def __init__(self, model: torch.nn.Module, loop: LoopConfig, device: torch.device) -> None:
        self.model = model
        self.loop = loop
        self.device = device
        self.ema = copy.deepcopy(model).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.opt = torch.optim.Adam(model.parameters(), lr=loop.lr)
        self.gen = torch.Generator().manual_seed(loop.seed)
        self.rng = np.random.default_rng(loop.seed)
        self.step, self.seconds, self.history = 0, 0.0, []

    def sync_ema(self) -> None:
        """Start the EMA from the current weights (after loading initial weights)."""
        self.ema.load_state_dict(self.model.state_dict())

    def state(self) -> dict:
        """The resumable state (CPU copies)."""
        return {
            "model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            "ema": {k: v.detach().cpu().clone() for k, v in self.ema.state_dict().items()},
            "optimizer": self.opt.state_dict(),
            "step": self.step,
            "seconds": self.seconds,
            "torch_rng": self.gen.get_state(),
            "numpy_rng": self.rng.bit_generator.state,
            "history": list(self.history),
        }

    def load_state(self, state: dict) -> None:
        """Restore :meth:`state` (a checkpoint)."""
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["optimizer"])
        self.gen.set_state(state["torch_rng"])
        self.rng.bit_generator.state = state["numpy_rng"]
        self.step, self.seconds = int(state["step"]), float(state["seconds"])
        self.history = list(state["history"])

    def fit(self, loss_fn: Callable[["Trainer"], torch.Tensor], ckpt: Path, extra: Callable[[], dict],
            on_save: Callable[[dict], None] | None = None, progress: bool = True, desc: str = "train",
            stop_after: int | None = None, callback: Callable[[int, float], None] | None = None) -> dict:
        """Train to ``loop.steps``; returns the last checkpoint dict (``extra()`` merged in).

        Parameters
        ----------
        loss_fn : callable ``(trainer) -> scalar tensor``
            Draws one batch (from ``trainer.rng`` / ``trainer.gen``) and returns its loss.
        ckpt : Path
            Checkpoint file; ``loss.csv`` is kept beside it.
        extra : callable ``() -> dict``
            Fields stored in every checkpoint besides the state (format tag, configs).
        on_save : callable ``(checkpoint) -> None``, optional
            Called after each checkpoint (e.g. to export weights).
        stop_after : int, optional
            Stop, with a checkpoint, after this many steps of this call.
        callback : callable ``(step, loss)``, optional

        Raises
        ------
        KeyboardInterrupt
            After Ctrl-C or SIGTERM, once the checkpoint is written.
        ValueError
            When the loss is not finite (the message suggests a lower learning rate).
        """
        loop = self.loop
        ckpt.parent.mkdir(parents=True, exist_ok=True)

        def save() -> dict:
            snap = {**extra(), **self.state()}
            atomic_write(ckpt, lambda tmp: torch.save(snap, tmp))
            write_loss_log(ckpt.parent / "loss.csv", self.history)
            if on_save is not None:
                on_save(snap)
            return snap

        bar = None
        if progress:
            from tqdm import tqdm

            tty = bool(getattr(sys.stderr, "isatty", lambda: False)())
            bar = tqdm(total=loop.steps, initial=self.step, desc=desc, file=sys.stderr,
                       mininterval=0.5 if tty else 30.0, ascii=not tty, dynamic_ncols=tty)
        run_losses: list[float] = []
        done_here = 0
        snap = None
        stop = _StopFlag()
        try:
            stop.install()
            self.model.train()
            while self.step < loop.steps:
                t0 = time.perf_counter()
                for g in self.opt.param_groups:
                    g["lr"] = loop.lr * min(1.0, (self.step + 1) / max(loop.warmup, 1))
                loss = loss_fn(self)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                if loop.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), loop.grad_clip)
                self.opt.step()
                decay = min(loop.ema_decay, (1 + self.step) / (10 + self.step))
                with torch.no_grad():
                    for pe, pm in zip(self.ema.parameters(), self.model.parameters()):
                        pe.lerp_(pm, 1 - decay)
                    for be, bm in zip(self.ema.buffers(), self.model.buffers()):
                        be.copy_(bm)
                self.step += 1
                done_here += 1
                self.seconds += time.perf_counter() - t0
                lv = float(loss.detach())
                if not math.isfinite(lv):
                    raise ValueError(f"training diverged at step {self.step} (loss {lv}); lower --lr")
                run_losses.append(lv)
                if callback is not None:
                    callback(self.step, lv)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{np.mean(run_losses[-50:]):.4f}", refresh=False)
                last = (self.step >= loop.steps or (stop_after is not None and done_here >= stop_after)
                        or stop.set)
                if self.step % loop.checkpoint_every == 0 or last:
                    self.history.append({"step": self.step, "loss": float(np.mean(run_losses)),
                                         "seconds": self.seconds})
                    run_losses = []
                    snap = save()
                if last:
                    break
        finally:
            stop.uninstall()
            if bar is not None:
                bar.close()
        if stop.set:
            raise KeyboardInterrupt(f"training interrupted; checkpoint at step {self.step} in {ckpt}")
        return snap if snap is not None else {**extra(), **self.state()}


class _StopFlag:
    """SIGINT / SIGTERM set a flag instead of raising mid-step, so the loop finishes the step,
    writes a consistent checkpoint and stops (only in the main thread; elsewhere a no-op)."""

    def __init__(self) -> None:
        self.set = False
        self._old: dict = {}

    def _handler(self, signum, frame) -> None:
        if self.set:  # a second signal: give up at once
            raise KeyboardInterrupt
        self.set = True

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handler)

    def uninstall(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}
