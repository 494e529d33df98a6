"""Training the score network by denoising score matching, with EMA weights, atomic
checkpoints and exact resume.

Loss (Vincent 2011; in the EDM form of Karras et al. 2022): for a clean crop ``x0``, a noise
level ``sigma`` drawn log-uniformly in the SDE's range (:meth:`VESDE.sample_sigma`) and
``z ~ N(0, I)`` (both channels),

    L = lambda(sigma) * mean |D(x0 + sigma z, sigma) - x0|^2,
    lambda = (sigma^2 + sd^2) / (sigma sd)^2,

which is the DSM loss ``sigma^2 |s(x, sigma) - (x0 - x)/sigma^2|^2`` reweighted so that the
UNet's own target has unit variance at every ``sigma``. Adam, linear warm-up, gradient-norm
clipping, and an exponential moving average of the weights (``ema_decay``, ramped up as
``min(decay, (1 + step) / (10 + step))``) -- the EMA weights are the ones exported and sampled.

Checkpoint (``torch.save`` dict, written atomically every ``checkpoint_every`` steps, at the end
and on interruption): ``model``, ``ema``, ``optimizer`` state, ``step``, ``seconds`` (training
time so far), the torch generator (noise, sigma) and numpy generator (data) states, the configs
and the loss history. ``resume=True`` restores all of it, so an interrupted run continues with
exactly the numbers an uninterrupted one would have produced (``tests/test_prior.py`` checks).
The loop itself (optimiser, EMA, checkpoints, interruption) is :class:`mrideblur.learn.loop.Trainer`,
shared with the learned deblurring networks.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from mrideblur.io.atomic import atomic_open, atomic_write

from ..learn.loop import LoopConfig, Trainer, checkpoint_path, read_checkpoint, resume_point, training_device
from ..threads import with_threads
from .data import TrainingData, builtin_base_slices, load_slices
from .sde import VESDE
from .unet import Denoiser, UNetConfig

__all__ = ["TrainConfig", "train", "export_weights", "checkpoint_path", "load_checkpoint", "read_prior_file",
           "dsm_loss", "CHECKPOINT_FORMAT", "WEIGHTS_FORMAT"]

CHECKPOINT_FORMAT = "mrideblur-prior-checkpoint-1"
WEIGHTS_FORMAT = "mrideblur-prior-weights-1"


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the checkpoint).

    Attributes
    ----------
    data : str or None
        Slices from ``make_slices.py`` (``.npz`` or folder); ``None`` = built-in MNI152 slices
        (training split of :func:`mrideblur.prior.data.builtin_base_slices`), or with
        ``sources`` the built-in mixture.
    sources : tuple of str or None
        Built-in mixture sources (:data:`mrideblur.prior.mixture.MIXTURE_SOURCES`: MNI152,
        Colin27, INIA19, synthetic contrasts from the MNI152 tissue maps), training split of each
        (:func:`mrideblur.prior.mixture.mixture_base_slices`); ``None`` = MNI152 only.
    init : str or None
        Weights (exported file or checkpoint) the network and its EMA start from: fine-tuning;
        ``None`` = a fresh network of ``unet``'s shape.
    size : int
        Side of the built-in slices (they are also made at ``size * s`` for ``s`` in ``scales``).
    scales : tuple of float
    crop, crops_per_image, batch : int
        Training crops (fully convolutional network: trained on crops, run on whole images).
    steps : int
        Total optimiser steps (a resumed run may raise it).
    lr, warmup, grad_clip, ema_decay : float / int
    checkpoint_every : int
        Steps between checkpoints.
    seed : int
        Seeds the network initialisation, the noise and the data stream.
    unet : dict
        :class:`UNetConfig` fields; ``sde``: :class:`VESDE` fields.
    """

    data: str | None = None
    sources: tuple[str, ...] | None = None
    init: str | None = None
    size: int = 128
    scales: tuple[float, ...] = (1.0, 1.5)
    crop: int = 64
    crops_per_image: int = 2
    batch: int = 16
    steps: int = 20000
    lr: float = 5e-4
    warmup: int = 200
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    checkpoint_every: int = 100
    seed: int = 0
    unet: dict = field(default_factory=lambda: UNetConfig().to_dict())
    sde: dict = field(default_factory=lambda: VESDE().to_dict())

    def to_dict(self) -> dict:
        d = asdict(self)
        d["scales"] = list(self.scales)
        d["sources"] = None if self.sources is None else list(self.sources)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "scales" in d:
            d["scales"] = tuple(d["scales"])
        if d.get("sources") is not None:
            d["sources"] = tuple(d["sources"])
        return cls(**d)


def dsm_loss(model: Denoiser, x0: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """EDM-weighted denoising score matching loss (module docstring), averaged over the batch."""
    sd = model.config.sigma_data
    s = sigma[:, None, None, None]
    d = model(x0 + s * noise, sigma)
    w = (s**2 + sd**2) / (s * sd) ** 2
    return (w * (d - x0) ** 2).mean()


def load_checkpoint(path: str | Path) -> dict:
    """Read a training checkpoint (a ``ValueError`` naming the file when it is not one)."""
    return read_checkpoint(path, CHECKPOINT_FORMAT, "prior training")


def _make_data(cfg: TrainConfig) -> TrainingData:
    if cfg.data is None and cfg.sources is not None:
        from .mixture import mixture_base_slices

        slices = mixture_base_slices(cfg.size, tuple(cfg.scales), tuple(cfg.sources), split="train", seed=cfg.seed)
    elif cfg.data is None:
        slices = builtin_base_slices(cfg.size, tuple(cfg.scales), split="train")
    else:
        slices = load_slices(cfg.data)
    return TrainingData(slices, crop=cfg.crop, crops_per_image=cfg.crops_per_image)


def read_prior_file(path: str | Path, ema: bool = True) -> dict:
    """Read exported weights or a training checkpoint (file, or an ``--out`` folder).

    Returns ``{"unet": dict, "sde": dict, "state": network state (float32), "info": dict,
    "path": Path}``; ``ema`` picks a checkpoint's EMA (default) or raw weights.  Raises
    ``ValueError`` naming the file when it is missing, unreadable or of another kind.
    """
    p = Path(path)
    if p.is_dir():
        p = checkpoint_path(p)
    if not p.is_file():
        raise ValueError(f"{p}: no such prior weights or checkpoint file")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise ValueError(f"{p}: not a readable prior file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    fmt = blob.get("format") if isinstance(blob, dict) else None
    if fmt == WEIGHTS_FORMAT:
        state, info = blob["state"], dict(blob.get("info", {}))
    elif fmt == CHECKPOINT_FORMAT:
        state = blob["ema" if ema else "model"]
        info = {"steps": int(blob["step"]), "seconds": float(blob["seconds"]), "train_config": blob["config"]}
    else:
        raise ValueError(f"{p}: not a mrideblur prior weights file or training checkpoint")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return {"unet": blob["unet"], "sde": blob["sde"], "state": state, "info": info, "path": p}


def _load_init(model: Denoiser, path: str, unet_cfg: UNetConfig) -> None:
    """Start ``model`` from exported weights or a checkpoint's EMA (fine-tuning)."""
    f = read_prior_file(path)
    if UNetConfig.from_dict(f["unet"]).to_dict() != unet_cfg.to_dict():
        raise ValueError(f"init {f['path']}: its network ({f['unet']}) differs from the run's ({unet_cfg.to_dict()})")
    model.load_state_dict(f["state"])


def export_weights(source: str | Path | dict, out: str | Path, dtype: torch.dtype = torch.float16,
                   info: dict | None = None) -> Path:
    """Write the EMA network weights of a checkpoint as a small stand-alone weights file.

    Parameters
    ----------
    source : path or checkpoint dict
    out : path
        Weights file (``.pt``); a provenance ``.json`` with the same stem is written beside it.
    dtype : torch dtype
        Storage precision of the floating-point tensors (float16 halves the size; loading casts
        back to float32).
    info : dict, optional
        Extra provenance (command line, ...), merged into the stored ``info``.

    Returns
    -------
    Path of the weights file.
    """
    ck = load_checkpoint(source) if not isinstance(source, dict) else source
    state = {k: (v.to(dtype) if v.is_floating_point() else v).cpu().clone() for k, v in ck["ema"].items()}
    cfg = ck["config"]
    meta = {
        "data": cfg["data"] or (
            f"built-in mixture {', '.join(cfg['sources'])}, three planes, training split of each "
            "(mrideblur.prior.data.HELD_OUT band excluded), augmented on the fly"
            if cfg.get("sources") else
            "built-in MNI152 T1 slices, three planes, training split "
            "(mrideblur.prior.data.HELD_OUT band excluded), augmented on the fly"),
        "steps": int(ck["step"]),
        "seconds": round(float(ck["seconds"]), 1),
        "final_loss": ck["history"][-1]["loss"] if ck["history"] else None,
        "train_config": cfg,
        "dtype": str(dtype).replace("torch.", ""),
        "parameters": int(sum(v.numel() for k, v in ck["ema"].items() if not k.endswith("freqs"))),
    }
    meta.update(info or {})
    blob = {"format": WEIGHTS_FORMAT, "unet": ck["unet"], "sde": ck["sde"], "state": state, "info": meta}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: torch.save(blob, tmp))
    with atomic_open(out.with_suffix(".json"), "w") as fh:
        json.dump(meta, fh, indent=1)
        fh.write("\n")
    return out


@with_threads
def train(config: TrainConfig, out: str | Path, resume: bool = False, device: str | torch.device = "cpu",
          progress: bool = True, data: TrainingData | None = None, export: str | Path | None = None,
          export_info: dict | None = None, stop_after: int | None = None,
          callback: Callable[[int, float], None] | None = None) -> dict:
    """Train (or continue training) the score network; returns the final checkpoint dict.

    Parameters
    ----------
    config : TrainConfig
        Ignored when resuming, except ``steps`` (the run continues to the new total).
    out : path
        Checkpoint file or folder (:func:`checkpoint_path`); a ``loss.csv`` is kept beside it.
    resume : bool
        Continue from the checkpoint when it exists (start afresh when it does not).
    device : str
        ``"cpu"`` or ``"cuda"``; the random streams stay on the CPU so results do not depend on
        the device's generator.
    progress : bool
        tqdm bar on stderr (loss in the postfix).
    data : TrainingData, optional
        Use this data instead of the one ``config`` describes (tests).
    export : path, optional
        Also export the EMA weights (:func:`export_weights`) at every checkpoint.
    stop_after : int, optional
        Stop (with a checkpoint) after this many steps of this call, as an interruption would.
    callback : callable ``(step, loss)``, optional
        Called after every step.
    """
    ckpt = checkpoint_path(out)
    device = training_device(device)
    state, config = resume_point(ckpt, resume, config, load_checkpoint)
    unet_cfg = UNetConfig.from_dict(config.unet)
    sde = VESDE.from_dict(config.sde)
    torch.manual_seed(config.seed)
    trainer = Trainer(Denoiser(unet_cfg).to(device), LoopConfig.of(config), device)
    if state is None and config.init is not None:
        _load_init(trainer.model, config.init, unet_cfg)
        trainer.sync_ema()
    if state is not None:
        trainer.load_state(state)
    stream = data if data is not None else _make_data(config)

    def loss_fn(t: Trainer) -> torch.Tensor:
        x0 = torch.from_numpy(stream.batch(config.batch, t.rng)).to(device)
        sigma = sde.sample_sigma(config.batch, generator=t.gen).to(device)
        noise = torch.randn(x0.shape, generator=t.gen).to(device)
        return dsm_loss(t.model, x0, sigma, noise)

    def extra() -> dict:
        return {"format": CHECKPOINT_FORMAT, "config": config.to_dict(), "unet": unet_cfg.to_dict(),
                "sde": sde.to_dict()}

    on_save = None if export is None else (lambda snap: export_weights(snap, export, info=export_info))
    return trainer.fit(loss_fn, ckpt, extra, on_save=on_save, progress=progress, desc="train-prior",
                       stop_after=stop_after, callback=callback)
