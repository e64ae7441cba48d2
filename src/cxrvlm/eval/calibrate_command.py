"""`cxrvlm calibrate`: temperature-scale a model's label head on a split (`eval/calibrate.py`); one JSON object on
stdout with the temperatures and the expected calibration error before and after.

    cxrvlm calibrate --model src/cxrvlm/models/weights/cxrvlm-effnet --data runs/curated-all --split val --write
"""
from __future__ import annotations

import argparse
import json

from cxrvlm.data.split import read_split
from cxrvlm.eval.calibrate import calibrate, write_temperatures
from cxrvlm.jsonl import clean
from cxrvlm.models import load_model, registry


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="NAME|PATH", help="checkpoint folder or named model")
    parser.add_argument("--data", required=True, metavar="DIR", help="a folder written by `cxrvlm curate`")
    parser.add_argument("--split", default="val", help="split to fit on (default val; never the test split)")
    parser.add_argument("--batch-size", type=int, default=8, metavar="B", help="films encoded at once (default 8)")
    parser.add_argument("--write", action="store_true",
                        help="write the temperatures into the model folder's config.json (label_temperatures)")


def run(args: argparse.Namespace) -> int:
    if args.split == "test":
        raise ValueError("calibrate: fitting on the test split would leak it into every later figure; use val")
    result = calibrate(load_model(args.model), read_split(args.data, args.split), args.batch_size)
    if args.write:
        result["written"] = str(write_temperatures(registry.checkpoint_folder(args.model), result["temperatures"]))
    print(json.dumps(clean({"model": str(args.model), "split": args.split, **result}), indent=1))
    return 0
