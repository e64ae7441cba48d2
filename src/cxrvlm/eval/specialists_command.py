"""`cxrvlm specialists`: train the single-task baselines on a curated split and score them as `cxrvlm eval` scores
the model (`eval/specialists.py`): specialists.json and specialists.md in --out.

    cxrvlm specialists --data runs/curated-all --out runs/specialists
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from cxrvlm.eval.specialists import markdown, run_specialists
from cxrvlm.jsonl import clean

WHICH = ("tb_cnn", "lung_unet")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="DIR", help="a folder written by `cxrvlm curate`")
    parser.add_argument("--split", default="val", help="split the specialists are scored on (default val)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for specialists.json and .md")
    parser.add_argument("--only", choices=WHICH, action="append", help="train only this specialist (repeatable)")
    parser.add_argument("--tb-epochs", type=int, default=20, help="TB CNN epochs (default 20)")
    parser.add_argument("--unet-epochs", type=int, default=30, help="lung U-Net epochs (default 30)")
    parser.add_argument("--unet-size", type=int, default=128, help="lung U-Net input side in pixels (default 128)")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    for name in ("tb_epochs", "unet_epochs", "unet_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    result = clean(run_specialists(args.data, args.split, args.tb_epochs, args.unet_epochs, args.unet_size,
                                   args.seed, tuple(args.only or WHICH)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "specialists.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "specialists.md").write_text(markdown(result))
    print(markdown(result))
    return 0
