"""`cxrvlm curate`: public CXR datasets -> a multi-task dataset folder (train/val/test jsonl, text, card).

    cxrvlm curate --source tb=data/tb --source covid=data/covid --out runs/curated

Exact duplicate images across studies are dropped by default (the first study keeps the image, the later study is
left out and listed in skipped.jsonl and the card, and both patients stay in one split): the public data holds
such copies (two DA/DB normals of the `tb` folder are byte-identical files), so failing would make it uncuratable.
`--on-duplicate error` makes any duplicate fatal instead.
"""
from __future__ import annotations

import argparse
import shlex

from cxrvlm.curate.card import write_card
from cxrvlm.curate.checks import DUPLICATE_MODES
from cxrvlm.curate.pipeline import CurateConfig, curate, parse_source_spec
from cxrvlm.curate.write import counts, write_dataset


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", action="append", required=True, metavar="NAME=PATH",
                        help="a dataset adapter and its folder, e.g. tb=/data/tb (repeat for several)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created; files overwritten)")
    parser.add_argument("--tasks", default=None, metavar="A,B",
                        help="comma-separated task names (default: every task)")
    parser.add_argument("--seed", type=int, default=0, help="split and template seed (default 0)")
    parser.add_argument("--split", default="0.8,0.1,0.1", metavar="TRAIN,VAL,TEST",
                        help="patient fractions per split (default 0.8,0.1,0.1)")
    parser.add_argument("--limit", type=_positive, default=None, metavar="N", help="at most N studies per source")
    parser.add_argument("--render", type=_non_negative, default=8, metavar="N",
                        help="examples drawn in the data card (default 8; 0 for none)")
    parser.add_argument("--on-duplicate", choices=DUPLICATE_MODES, default="drop",
                        help="exact duplicate image in two studies: drop the later study (default) or stop")
    parser.add_argument("--keep-non-chest", action="store_true",
                        help="keep images a source marks as another organ (VQA-RAD's head and abdomen images); "
                             "by default they are left out and listed in skipped.jsonl")
    parser.add_argument("--no-stratify", action="store_true",
                        help="assign patients by hash threshold only (stable when data is added) instead of "
                             "cutting each source by the fractions")
    parser.add_argument("--no-pixel-check", action="store_true",
                        help="find duplicates by file bytes only (skip decoding same-size images)")


def run(args: argparse.Namespace) -> int:
    config = CurateConfig(
        sources=[parse_source_spec(s) for s in args.source], out=args.out,
        tasks=[t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None,
        seed=args.seed, fractions=args.split, limit=args.limit, render=args.render,
        on_duplicate=args.on_duplicate, keep_non_chest=args.keep_non_chest, stratify=not args.no_stratify, pixel_check=not args.no_pixel_check,
        progress=True, command=shlex.join(["cxrvlm", "curate", *_argv(args)]),
    )
    result = curate(config)
    out = write_dataset(result)
    card = write_card(result, out)
    c = counts(result)
    print(f"curated {sum(c['examples'].values())} examples into {out} "
          + " ".join(f"{s}={n}" for s, n in c["examples"].items())
          + f"; text={sum(c['text'].values())}; skipped={sum(c['skipped'].values())}; card: {card}")
    for task, per in c["tasks"].items():
        print(f"  {task:22s} " + " ".join(f"{s}={n}" for s, n in per.items()))
    return 0


def _argv(args: argparse.Namespace) -> list[str]:
    """The command's arguments, normalised (defaults spelt out), for the manifest and the card."""
    out = [a for s in args.source for a in ("--source", s)] + ["--out", str(args.out)]
    for flag, value in (("--tasks", args.tasks), ("--seed", args.seed), ("--split", args.split),
                        ("--limit", args.limit), ("--render", args.render), ("--on-duplicate", args.on_duplicate)):
        if value is not None:
            out += [flag, str(value)]
    flags = (("--keep-non-chest", args.keep_non_chest), ("--no-stratify", args.no_stratify),
             ("--no-pixel-check", args.no_pixel_check))
    return out + [f for f, on in flags if on]
