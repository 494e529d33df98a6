"""Training the learned deblurring networks on blurred built-in photographs, resumable.

``train(TrainDeblurConfig(...), out)`` trains a network (a key of :data:`NETWORKS`: ``"srn"``,
``"motion-cnn"``, ``"neural-filter"``) on its stream of blurred training photographs
(:class:`mrideblur.learn.blur_data.BlurPairs` and its variants) with the package's one training loop (:class:`mrideblur.learn.loop.Trainer`: Adam, warm-up,
clipping, EMA, atomic checkpoints, exact resume).  :func:`export_deblur_weights` writes the EMA
weights as a small file (float16) with a provenance ``.json``; :func:`load_deblur_network` reads
it back (or a checkpoint).  The shell is ``mrideblur train-deblur``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from ..io.atomic import atomic_open, atomic_write
from ..threads import with_threads
from .blur_data import TRAIN_PHOTOS, BlurPairs
from .loop import LoopConfig, Trainer, checkpoint_path, read_checkpoint, resume_point, training_device
from .motion_cnn import MotionCNN, MotionCNNConfig, MotionPatches, motion_loss
from .neural_filter import NeuralFilter, NeuralFilterConfig, NeuralFilterPatches, neural_filter_loss
from .srn import SRN, SRNConfig, srn_loss

__all__ = ["DEBLUR_CHECKPOINT_FORMAT", "DEBLUR_WEIGHTS_FORMAT", "NETWORKS", "WEIGHTS_DIR", "TrainDeblurConfig",
           "export_deblur_weights", "load_deblur_network", "shipped_weights", "train"]

DEBLUR_CHECKPOINT_FORMAT = "mrideblur-deblur-checkpoint-1"
DEBLUR_WEIGHTS_FORMAT = "mrideblur-deblur-weights-1"


def _srn_stream(config: "TrainDeblurConfig", net: SRNConfig):
    if config.crop % net.multiple:
        raise ValueError(f"crop: expected a multiple of {net.multiple} for this network, got {config.crop}")
    return BlurPairs(config.crop, config.kernel_sizes, config.noise_range, config.scale_range, config.bank_size,
                     config.seed, reblur=config.reblur)


def _motion_stream(config: "TrainDeblurConfig", net: MotionCNNConfig):
    return MotionPatches(net.patch, config.noise_range)


def _filter_stream(config: "TrainDeblurConfig", net: NeuralFilterConfig):
    return NeuralFilterPatches(net.patch, kernel_sizes=config.kernel_sizes, noise_range=config.noise_range,
                               scale_range=config.scale_range, bank_size=config.bank_size, seed=config.seed,
                               reblur=config.reblur)


#: Trainable networks: name -> (network class, its config class, loss(outputs, targets), the
#: training stream of a config: ``stream(config, net_config).batch(n, rng) -> (inputs, targets)``).
NETWORKS = {"srn": (SRN, SRNConfig, srn_loss, _srn_stream),
            "motion-cnn": (MotionCNN, MotionCNNConfig, motion_loss, _motion_stream),
            "neural-filter": (NeuralFilter, NeuralFilterConfig, neural_filter_loss, _filter_stream)}
#: Network configs of a run that did not give one.
DEFAULT_NETS = {name: entry[1]().to_dict() for name, entry in NETWORKS.items()}


@dataclass
class TrainDeblurConfig:
    """Everything that defines a training run (stored in the checkpoint).

    Attributes
    ----------
    network : str
        A key of :data:`NETWORKS`.
    net : dict or None
        The network's config fields (e.g. :class:`SRNConfig`); ``None``: its default.
    crop, batch : int
        Training crops (the observation's side) and crops per step.
    kernel_sizes : tuple of int
        Odd camera-shake kernel sizes (pixels) of the training blur.
    noise_range, scale_range : (float, float)
        Noise standard deviation and photograph rescaling ranges (:class:`BlurPairs`).
    bank_size : int
        Camera-shake kernels in the training bank.
    reblur : float
        Share of training pairs re-blurred along an interpolated kernel (ID-Blau; ``BlurPairs``).
    steps, lr, warmup, grad_clip, ema_decay, checkpoint_every, seed
        The loop's settings (:class:`mrideblur.learn.loop.LoopConfig`).
    """

    network: str = "srn"
    net: dict | None = None
    crop: int = 96
    batch: int = 8
    kernel_sizes: tuple[int, ...] = (15, 17, 19, 21, 23, 25)
    noise_range: tuple[float, float] = (0.005, 0.02)
    scale_range: tuple[float, float] = (0.5, 1.0)
    bank_size: int = 512
    reblur: float = 0.0
    steps: int = 20000
    lr: float = 1e-4
    warmup: int = 200
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    checkpoint_every: int = 100
    seed: int = 0

    def validate(self) -> None:
        if self.network not in NETWORKS:
            raise ValueError(f"network: expected one of {tuple(NETWORKS)}, got {self.network!r}")
        if not 0.0 <= self.reblur <= 1.0:
            raise ValueError(f"reblur: expected a share in [0, 1], got {self.reblur}")
        if any(k < 3 or k % 2 == 0 for k in self.kernel_sizes):
            raise ValueError(f"kernel_sizes: expected odd sizes >= 3, got {self.kernel_sizes}")

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("kernel_sizes", "noise_range", "scale_range"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainDeblurConfig":
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for k in ("kernel_sizes", "noise_range", "scale_range"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


def _load_checkpoint(path: Path) -> dict:
    return read_checkpoint(path, DEBLUR_CHECKPOINT_FORMAT, "deblurring-network")


@with_threads
def train(config: TrainDeblurConfig, out: str | Path, resume: bool = False, device: str | torch.device = "cpu",
          progress: bool = True, data: BlurPairs | None = None, export: str | Path | None = None,
          stop_after: int | None = None, callback: Callable[[int, float], None] | None = None) -> dict:
    """Train (or continue training) a deblurring network; returns the final checkpoint dict.

    Parameters
    ----------
    config : TrainDeblurConfig
        Ignored when resuming, except ``steps`` (the run continues to the new total).
    out : path
        Checkpoint file or folder (:func:`mrideblur.learn.loop.checkpoint_path`); ``loss.csv``
        beside it.
    resume : bool
        Continue from the checkpoint when it exists.
    device : str
        ``"cpu"`` or ``"cuda"``.
    data : BlurPairs, optional
        Instead of the stream ``config`` describes (tests).
    export : path, optional
        Export the EMA weights (:func:`export_deblur_weights`) at every checkpoint.
    stop_after : int, optional
        Stop, with a checkpoint, after this many steps of this call.
    callback : callable ``(step, loss)``, optional
    """
    ckpt = checkpoint_path(out)
    device = training_device(device)
    state, config = resume_point(ckpt, resume, config, _load_checkpoint)
    config.validate()
    net_cls, cfg_cls, loss_of, make_stream = NETWORKS[config.network]
    net_cfg = cfg_cls.from_dict(config.net if config.net is not None else DEFAULT_NETS[config.network])
    torch.manual_seed(config.seed)
    trainer = Trainer(net_cls(net_cfg).to(device), LoopConfig.of(config), device)
    if state is not None:
        trainer.load_state(state)
    stream = data if data is not None else make_stream(config, net_cfg)

    def loss_fn(t: Trainer) -> torch.Tensor:
        inputs, targets = stream.batch(config.batch, t.rng)
        return loss_of(t.model(torch.from_numpy(inputs).to(device)), torch.from_numpy(targets).to(device))

    def extra() -> dict:
        return {"format": DEBLUR_CHECKPOINT_FORMAT, "config": config.to_dict(), "net": net_cfg.to_dict()}

    on_save = None if export is None else (lambda snap: export_deblur_weights(snap, export))
    return trainer.fit(loss_fn, ckpt, extra, on_save=on_save, progress=progress, desc=f"train-deblur {config.network}",
                       stop_after=stop_after, callback=callback)


def export_deblur_weights(source: str | Path | dict, out: str | Path, info: dict | None = None) -> Path:
    """Write a checkpoint's EMA weights (float16) and a provenance ``.json`` beside them.

    Parameters
    ----------
    source : checkpoint path or dict
    out : path of the ``.pt`` weights file
    info : dict, optional
        Extra provenance merged into the stored ``info`` (the command line, ...).
    """
    ck = _load_checkpoint(checkpoint_path(source)) if not isinstance(source, dict) else source
    cfg = ck["config"]
    meta = {
        "network": cfg["network"],
        "data": (f"scikit-image photographs {', '.join(TRAIN_PHOTOS)} (grey and per colour channel), "
                 + (f"camera-shake kernels of {min(cfg['kernel_sizes'])}-{max(cfg['kernel_sizes'])} px"
                    if cfg["network"] != "motion-cnn" else "patches blurred by the linear motion classes")
                 + f", valid blur, noise {cfg['noise_range'][0]}-{cfg['noise_range'][1]}"),
        "steps": int(ck["step"]),
        "seconds": round(float(ck["seconds"]), 1),
        "final_loss": ck["history"][-1]["loss"] if ck["history"] else None,
        "train_config": cfg,
        "parameters": int(sum(v.numel() for v in ck["ema"].values())),
        **(info or {}),
    }
    state = {k: (v.half() if v.is_floating_point() else v).clone() for k, v in ck["ema"].items()}
    blob = {"format": DEBLUR_WEIGHTS_FORMAT, "network": cfg["network"], "net": ck["net"], "state": state, "info": meta}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: torch.save(blob, tmp))
    with atomic_open(out.with_suffix(".json"), "w") as fh:
        json.dump(meta, fh, indent=1)
        fh.write("\n")
    return out


def load_deblur_network(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """A trained network (exported weights, or a checkpoint's EMA) in eval mode, and its ``info``.

    Raises ``ValueError`` naming the file when it is missing or of another kind.
    """
    p = checkpoint_path(path) if Path(path).is_dir() else Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such deblurring-network weights file")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise ValueError(f"{p}: not a readable weights file ({type(exc).__name__}: {exc})") from None
    fmt = blob.get("format") if isinstance(blob, dict) else None
    if fmt == DEBLUR_WEIGHTS_FORMAT:
        name, net, state, info = blob["network"], blob["net"], blob["state"], dict(blob["info"])
    elif fmt == DEBLUR_CHECKPOINT_FORMAT:
        name, net, state = blob["config"]["network"], blob["net"], blob["ema"]
        info = {"steps": int(blob["step"]), "seconds": float(blob["seconds"]), "train_config": blob["config"]}
    else:
        raise ValueError(f"{p}: not a mrideblur deblurring-network weights file or checkpoint")
    net_cls, cfg_cls = NETWORKS[name][:2]
    model = net_cls(cfg_cls.from_dict(net))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    info["path"] = str(p)
    return model.to(device).eval(), info


#: Folder of the shipped network weights (``<method>.pt``, a provenance ``.json`` beside each).
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def shipped_weights(method: str) -> Path:
    """The weights file shipped for ``method``; ``ValueError`` when this installation lacks it."""
    path = WEIGHTS_DIR / f"{method}.pt"
    if not path.is_file():
        raise ValueError(f"{path}: no shipped weights for network {method!r}; train them with "
                         f"'mrideblur train-deblur --network {method} --out RUN --export W.pt' and pass weights=W.pt")
    return path
