"""`cxrvlm compare`: several `cxrvlm eval` folders of one split (and the specialists) side by side, as Markdown
(`eval/compare.py`).

    cxrvlm compare old=runs/old/eval-val new=runs/new/eval-val --specialists runs/specialists/specialists.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from cxrvlm.eval.compare import compare, read_eval


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("evals", nargs="+", metavar="NAME=DIR", help="a column name and its `cxrvlm eval` folder")
    parser.add_argument("--specialists", default=None, metavar="FILE", help="specialists.json of `cxrvlm specialists`")
    parser.add_argument("--out", default=None, metavar="FILE", help="also write the tables to this Markdown file")


def run(args: argparse.Namespace) -> int:
    evals = {}
    for item in args.evals:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise ValueError(f"{item!r} is not NAME=DIR")
        evals[name] = read_eval(folder)
    specialists = None
    if args.specialists:
        path = Path(args.specialists)
        if not path.is_file():
            raise ValueError(f"--specialists {path}: not found")
        specialists = json.loads(path.read_text())
    text = compare(evals, specialists)
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 0
