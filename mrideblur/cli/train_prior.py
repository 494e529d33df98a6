"""``mrideblur train-prior``: train the diffusion prior's score network (a thin shell over
:func:`mrideblur.prior.train.train`; registered in :data:`mrideblur.cli.COMMANDS`).

Examples::

    mrideblur train-prior --builtin --size 128 --steps 20000 --out runs/prior/
    mrideblur train-prior --builtin --steps 40000 --out runs/prior/ --resume   # continue / extend
    mrideblur train-prior --data slices.npz --steps 20000 --out runs/fastmri/ --device cuda
    mrideblur train-prior --sources mni152 inia19 synthetic --init mrideblur/prior/weights/mri_prior_mni152.pt \
        --steps 3000 --lr 2e-4 --out runs/loso_colin27/          # fine-tune on a mixture, Colin27 left out
    mrideblur train-prior --resume --out runs/prior/ --export weights.pt --steps 0  # export only

Ctrl-C (or SIGTERM) finishes the current step, writes the checkpoint and exits with 130;
``--resume`` continues exactly where it stopped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..shell import add_command, training_start

__all__ = ["add_parser", "cmd_train_prior"]

def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``train-prior`` subcommand to ``mrideblur``'s subparsers."""
    p = add_command(sub, "train-prior", cmd_train_prior, "train the diffusion prior (score network) on MRI slices")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", metavar="PATH",
                     help="slices from data_scripts/make_slices.py (.npz file or folder)")
    src.add_argument("--builtin", action="store_true",
                     help="built-in MNI152 slices of all three planes (training split), the default")
    src.add_argument("--sources", nargs="+", metavar="SOURCE",
                     help="built-in mixture instead: any of mni152 colin27 inia19 synthetic "
                          "(training split of each; leave one out for a held-out-source run)")
    p.add_argument("--init", type=Path, default=None, metavar="WEIGHTS",
                   help="start from these weights (exported file or checkpoint): fine-tuning")
    p.add_argument("--out", required=True, type=Path, metavar="CKPT",
                   help="checkpoint: a .pt file, or a folder (checkpoint.pt and loss.csv inside)")
    p.add_argument("--steps", type=int, default=20000, help="total training steps (default 20000)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--size", type=int, default=128, help="side of the built-in slices (default 128)")
    p.add_argument("--scales", type=float, nargs="+", default=[1.0, 1.5],
                   help="built-in slices also at size*scale (default 1.0 1.5)")
    p.add_argument("--crop", type=int, default=64, help="training crop side (default 64)")
    p.add_argument("--batch", type=int, default=16, help="crops per step (default 16)")
    p.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate (default 5e-4)")
    p.add_argument("--ema", type=float, default=0.999, help="EMA decay (default 0.999)")
    p.add_argument("--channels", type=int, nargs="+", default=None,
                   help="UNet channels per level (default 16 32 48 64)")
    p.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--export", type=Path, default=None, metavar="WEIGHTS",
                   help="also write the EMA weights (float16, network only) here at every checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def cmd_train_prior(args: argparse.Namespace) -> int:
    """Denoising score matching for the complex-image diffusion prior: a small fully convolutional
    UNet trained on random crops of augmented slices (random smooth and global phase), EMA weights,
    a checkpoint every --checkpoint-every steps; --resume continues an interrupted run exactly."""
    import shlex

    from ..prior.train import TrainConfig, checkpoint_path, export_weights, load_checkpoint, train
    from ..prior.unet import UNetConfig
    if args.steps < 0:
        raise ValueError(f"--steps: expected >= 0, got {args.steps}")
    if args.data is not None and not Path(args.data).exists():
        raise ValueError(f"--data {args.data}: no such file or folder")
    unet = UNetConfig() if args.channels is None else UNetConfig(channels=tuple(args.channels))
    if args.sources is not None:
        from ..prior.mixture import MIXTURE_SOURCES
        bad = [s for s in args.sources if s not in MIXTURE_SOURCES]
        if bad:
            raise ValueError(f"--sources: {bad} not among {MIXTURE_SOURCES}")
    if args.init is not None:
        if not args.init.exists():
            raise ValueError(f"--init {args.init}: no such weights file or checkpoint")
        if args.channels is None:  # the network's shape comes from the weights
            from ..prior.score import ScorePrior
            unet = UNetConfig.from_dict(ScorePrior.load(args.init).net.config.to_dict())
    cfg = TrainConfig(data=None if args.data is None else str(Path(args.data).resolve()),
                      sources=None if args.sources is None else tuple(args.sources),
                      init=None if args.init is None else str(args.init.resolve()), size=args.size,
                      scales=tuple(args.scales), crop=args.crop, batch=args.batch, steps=args.steps,
                      lr=args.lr, ema_decay=args.ema, checkpoint_every=args.checkpoint_every,
                      seed=args.seed, unet=unet.to_dict())
    ckpt = checkpoint_path(args.out)
    info = {"command": "mrideblur " + " ".join(shlex.quote(a) for a in sys.argv[1:])}
    export = None if args.export is None else (lambda: export_weights(ckpt, args.export, info=info))
    if not training_start(ckpt, args.out, args.resume, args.steps, lambda c: load_checkpoint(c)["step"], export):
        return 0
    try:
        snap = train(cfg, args.out, resume=args.resume, device=args.device, progress=not args.quiet,
                     export=args.export, export_info=info)
    except KeyboardInterrupt as exc:
        print(f"mrideblur: {exc or 'interrupted'}", file=sys.stderr)
        return 130
    h = snap["history"]
    print(f"step {snap['step']}, loss {h[-1]['loss']:.4f}, {snap['seconds']:.0f} s of training; checkpoint {ckpt}")
    if args.export is not None:
        print(f"EMA weights: {args.export}")
    return 0
