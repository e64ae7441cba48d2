"""`cxrvlm source-probe`: how well a linear probe on the model's pooled image features tells the films' sources
apart (`eval/source_probe.py`): cross-validated balanced accuracy beside chance, one JSON object on stdout.

    cxrvlm source-probe --model cxrvlm-tiny --data runs/curated --split val
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from cxrvlm.data.split import read_split
from cxrvlm.eval.source_probe import source_probe
from cxrvlm.jsonl import clean
from cxrvlm.models import load_model


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="NAME|PATH", help="checkpoint folder or named model")
    parser.add_argument("--data", required=True, metavar="DIR", help="a folder written by `cxrvlm curate`")
    parser.add_argument("--split", default="val", help="split whose films are probed (default val)")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fold assignment (default 0)")
    parser.add_argument("--batch-size", type=int, default=8, metavar="B", help="films encoded at once (default 8)")
    parser.add_argument("--out", default=None, metavar="FILE", help="also write the result to this JSON file")


def run(args: argparse.Namespace) -> int:
    if args.folds < 2 or args.batch_size < 1:
        raise ValueError(f"--folds must be at least 2 and --batch-size at least 1, got {args.folds}, "
                         f"{args.batch_size}")
    result = clean({"model": str(args.model), "data": str(args.data), "split": args.split,
                    **source_probe(load_model(args.model), read_split(args.data, args.split), args.folds,
                                   args.seed, args.batch_size)})
    text = json.dumps(result, indent=1)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0
