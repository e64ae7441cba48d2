"""`cxrvlm pointing-game`: do the label head's saliency maps point into the boxes of the findings they explain?
(`eval/pointing.py`); one JSON object on stdout.

    cxrvlm pointing-game --model cxrvlm-effnet --data runs/curated-all --split val
"""
from __future__ import annotations

import argparse
import json

from cxrvlm.data.split import read_split
from cxrvlm.eval.pointing import pointing_game
from cxrvlm.models import load_model


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="NAME|PATH", help="a model with a label head")
    parser.add_argument("--data", required=True, metavar="DIR", help="a folder written by `cxrvlm curate`")
    parser.add_argument("--split", nargs="+", default=["val"], help="split(s) whose boxed films are used (default val)")


def run(args: argparse.Namespace) -> int:
    examples = [e for split in args.split for e in read_split(args.data, split)]
    result = pointing_game(load_model(args.model), examples)
    print(json.dumps({"model": str(args.model), "split": args.split, **result}, indent=1))
    return 0
