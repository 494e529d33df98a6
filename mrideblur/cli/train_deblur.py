"""``mrideblur train-deblur``: train a learned deblurring network on blurred built-in photographs
(a thin shell over :func:`mrideblur.learn.train_deblur.train`; registered in
:data:`mrideblur.cli.COMMANDS`).

Examples::

    mrideblur train-deblur --network srn --steps 20000 --out runs/srn/ --export runs/srn.pt
    mrideblur train-deblur --network srn --steps 40000 --out runs/srn/ --resume   # continue / extend
    mrideblur train-deblur --network motion-cnn --batch 64 --lr 1e-3 --steps 20000 --out runs/cnn/

Ctrl-C (or SIGTERM) finishes the current step, writes the checkpoint and exits with 130;
``--resume`` continues exactly where it stopped.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ..shell import add_command, training_start

__all__ = ["add_parser", "cmd_train_deblur"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``train-deblur`` subcommand to ``mrideblur``'s subparsers."""
    p = add_command(sub, "train-deblur", cmd_train_deblur,
                    "train a learned deblurring network on blurred built-in photographs")
    p.add_argument("--network", default="srn", choices=("srn", "motion-cnn", "neural-filter"),
                   help="srn (end-to-end deblurring, blind_deconvolve method 'srn'), neural-filter (per-patch "
                        "deconvolution filters, method 'neural-filter') or motion-cnn (the patch "
                        "classifier of deblur_nonuniform's 'kernel-field'); default srn")
    p.add_argument("--out", required=True, type=Path, metavar="CKPT",
                   help="checkpoint: a .pt file, or a folder (checkpoint.pt and loss.csv inside)")
    p.add_argument("--steps", type=int, default=20000, help="total training steps (default 20000)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--crop", type=int, default=96, help="srn: training crop side (default 96)")
    p.add_argument("--batch", type=int, default=8, help="crops per step (default 8)")
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default 1e-4)")
    p.add_argument("--reblur", type=float, default=0.0, metavar="SHARE",
                   help="share of training pairs re-blurred along a re-scaled, turned kernel (ID-Blau; default 0)")
    p.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--export", type=Path, default=None, metavar="WEIGHTS",
                   help="also write the EMA weights (float16) here at every checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def cmd_train_deblur(args: argparse.Namespace) -> int:
    """Train on camera-shake blur (15-25 px kernels, valid blur, 0.5-2% noise) of the training
    photographs (:data:`mrideblur.learn.blur_data.TRAIN_PHOTOS`), EMA weights, a checkpoint every
    --checkpoint-every steps; --resume continues an interrupted run exactly."""
    from ..learn.loop import checkpoint_path
    from ..learn.train_deblur import TrainDeblurConfig, export_deblur_weights, load_deblur_network, train

    if args.steps < 0:
        raise ValueError(f"--steps: expected >= 0, got {args.steps}")
    cfg = TrainDeblurConfig(network=args.network, crop=args.crop, batch=args.batch, steps=args.steps, lr=args.lr,
                            checkpoint_every=args.checkpoint_every, seed=args.seed, reblur=args.reblur)
    cfg.validate()
    ckpt = checkpoint_path(args.out)
    info = {"command": "mrideblur " + " ".join(shlex.quote(a) for a in sys.argv[1:])}
    export = None if args.export is None else (lambda: export_deblur_weights(ckpt, args.export, info=info))
    if not training_start(ckpt, args.out, args.resume, args.steps,
                          lambda c: load_deblur_network(c)[1]["steps"], export):
        return 0
    try:
        snap = train(cfg, args.out, resume=args.resume, device=args.device, progress=not args.quiet,
                     export=None)
    except KeyboardInterrupt as exc:
        print(f"mrideblur: {exc or 'interrupted'}", file=sys.stderr)
        return 130
    finally:
        if args.export is not None and ckpt.exists():
            export_deblur_weights(ckpt, args.export, info=info)
    h = snap["history"]
    print(f"step {snap['step']}, loss {h[-1]['loss']:.5f}, {snap['seconds']:.0f} s of training; checkpoint {ckpt}")
    if args.export is not None:
        print(f"EMA weights: {args.export}")
    return 0
