"""`cxrvlm ship`: put a trained run into the package as the built-in model, its card written from what was measured.

    cxrvlm ship RUN/final RUN/eval-val src/cxrvlm/models/weights/cxrvlm-tiny
    cxrvlm ship src/cxrvlm/models/weights/cxrvlm-tiny NEW-EVAL src/cxrvlm/models/weights/cxrvlm-tiny --metrics-only
"""
from __future__ import annotations

import argparse
from pathlib import Path

from cxrvlm.models import ship


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = ship.__doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("final", type=Path, help="the run's final model folder")
    parser.add_argument("eval_dir", type=Path, help="the `cxrvlm eval` output folder for the validation split")
    parser.add_argument("dest", type=Path, help="where the built-in model goes, e.g. src/cxrvlm/models/weights/cxrvlm-tiny")
    parser.add_argument("--reproduce", default="make default-model", metavar="COMMAND",
                        help="the command the card gives to reproduce the model (default: make default-model)")
    parser.add_argument("--note", default="", help="a paragraph for the card's training section (how this run went)")
    parser.add_argument("--robustness", type=Path, nargs="*", default=[], metavar="EVAL_DIR",
                        help="`cxrvlm eval --tasks classify [--perturb ...]` output folders for the card's "
                             "robustness table")
    parser.add_argument("--metrics-only", action="store_true",
                        help="rewrite only DEST's card validation section and operating point from EVAL_DIR (an "
                             "evaluation of the shipped weights); the weights and the training section stay")
    parser.add_argument("--unrefined", type=Path, default=None, metavar="EVAL_DIR",
                        help="`cxrvlm eval --tasks segment --no-mask-refiner` output folder: the card gives the "
                             "segmentation figures without the mask refiner too")


def _check(args: argparse.Namespace) -> None:
    """Missing inputs are named before anything is copied (and before the old built-in model is replaced)."""
    needed = [(args.final / "config.json", "final"), (args.eval_dir / "metrics.json", "eval_dir"),
              *((d / "metrics.json", "--robustness") for d in args.robustness),
              *([(args.unrefined / "metrics.json", "--unrefined")] if args.unrefined else [])]
    for path, what in needed:
        if not path.is_file():
            raise ValueError(f"{what}: {path} not found")


def run(args: argparse.Namespace) -> int:
    _check(args)
    if args.metrics_only:
        print(ship.refresh_metrics(args.dest, args.eval_dir, args.unrefined, args.robustness))
        return 0
    print(ship.ship(args.final, args.eval_dir, args.dest, args.note, args.robustness, args.unrefined,
                    args.reproduce))
    return 0
