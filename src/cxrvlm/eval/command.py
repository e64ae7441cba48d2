"""`cxrvlm eval`: evaluate a model on every task of a curated split.

    cxrvlm eval --model runs/joint/final --data runs/curated --split test --out runs/eval-test

Writes metrics.json, predictions.jsonl, report.md, report.html (+ figures/) and, when a TB operating point is
used, operating_point.json. The TB operating point is chosen on the val split by default (`--threshold-from val`)
and applied unchanged to the evaluated split; `--threshold-from FILE` reuses an operating_point.json (or a
metrics.json holding one), `--threshold T` fixes it, `--threshold-from none` answers by the most likely candidate.
The majority-answer baseline of each close-ended question type is read from the folder's train split
(`answer_types`); without one, from the evaluated split (the report says which).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from cxrvlm.data.split import read_split
from cxrvlm.eval.answer_types import train_baseline
from cxrvlm.eval.memorisation import training_index
from cxrvlm.eval.operating_point import OperatingPointError, choose_operating_point
from cxrvlm.eval.report import write_outputs
from cxrvlm.eval.runner import EvalOptions, evaluate, select
from cxrvlm.metrics.memorisation import CopyGuard
from cxrvlm.models import load_model
from cxrvlm.models.box_calibration import BOX_CALIBRATION_FILE, write_box_calibration
from cxrvlm.models.copy_guard import COPY_GUARD_FILE, write_copy_guard
from cxrvlm.models.operating_point import OPERATING_POINT_FILE, read_operating_point, write_operating_point
from cxrvlm.models.question_types import QUESTION_TYPES_FILE, write_question_types
from cxrvlm.tasks import screening_task


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="NAME|PATH", help="checkpoint folder or named model")
    parser.add_argument("--data", required=True, metavar="DIR", help="a folder written by `cxrvlm curate`")
    parser.add_argument("--split", default="test", help="split to evaluate: train, val or test (default test)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created; files overwritten)")
    parser.add_argument("--tasks", default=None, metavar="A,B",
                        help="comma-separated tasks (default: all in the split)")
    parser.add_argument("--limit", type=_positive, default=None, metavar="N",
                        help="at most N examples per task (a seeded random sample)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --limit sample (default 0)")
    parser.add_argument("--batch-size", type=_positive, default=8, metavar="B", help="examples per batch (default 8)")
    parser.add_argument("--max-new-tokens", type=_positive, default=None, metavar="N",
                        help="generation length for every task (default: per task)")
    parser.add_argument("--threshold-from", default="val", metavar="SPLIT|FILE|none",
                        help="where the TB operating point comes from (default: chosen on the val split)")
    parser.add_argument("--threshold", type=float, default=None, metavar="P",
                        help="fixed TB operating point: P(tuberculosis) >= P is positive (overrides --threshold-from)")
    parser.add_argument("--min-sensitivity", type=float, default=0.9,
                        help="sensitivity the operating point must reach on val (WHO TB triage target, default 0.9)")
    parser.add_argument("--candidate-mode", choices=("score", "generate"), default="score",
                        help="close-ended answers from candidate likelihoods (default) or from the generated text")
    parser.add_argument("--no-chain", action="store_true",
                        help="findings_then_report step 2 gets the reference step-1 answer, not the model's own")
    parser.add_argument("--fast-metrics", action="store_true",
                        help="skip pycocoevalcap (its METEOR starts a JVM) and use 200 bootstrap resamples")
    parser.add_argument("--perturb", type=_perturbation, default=None, metavar="zoom=Z,dx=X,dy=Y",
                        help="robustness check: every image zoomed by Z about its centre and shifted by X, Y of its "
                             "side (e.g. zoom=0.93 or dx=0.03); tasks without coordinates in their answers only")
    parser.add_argument("--no-mask-refiner", action="store_true",
                        help="score the masks as the model's tokens decode them, not redrawn on the film by the "
                             "mask refiner (the default, as `cxrvlm interpret` gives them)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def _perturbation(text: str) -> tuple[float, float, float]:
    values = {"zoom": 1.0, "dx": 0.0, "dy": 0.0}
    for item in text.split(","):
        key, _, value = item.partition("=")
        if key.strip() not in values:
            raise argparse.ArgumentTypeError(f"unknown key {key.strip()!r} in {text!r}; use zoom=, dx=, dy=")
        try:
            values[key.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{key.strip()}={value!r} in {text!r} is not a number") from None
    return values["zoom"], values["dx"], values["dy"]


def _tasks(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def resolve_operating_point(args: argparse.Namespace, model: object, limit_seed: tuple[int | None, int]) -> dict | None:
    """The TB operating point the arguments ask for (None when none is asked for or none can be chosen)."""
    if args.threshold is not None:
        if not 0.0 <= args.threshold <= 1.0:
            raise ValueError(f"--threshold must be a probability in [0, 1], got {args.threshold}")
        return {"threshold": args.threshold, "chosen_on": "given on the command line"}
    source = args.threshold_from
    if not source or source.lower() == "none":
        return None
    if source not in ("train", "val", "test"):
        return read_operating_point(source)
    if not (Path(args.data) / f"{source}.jsonl").is_file():
        logging.getLogger(__name__).warning("no %s split in %s: no TB operating point", source, args.data)
        return None
    examples = select(read_split(args.data, source), [screening_task().name], *limit_seed)
    try:
        return choose_operating_point(model, examples, args.batch_size, args.min_sensitivity, source,
                                      progress=not args.no_progress)
    except OperatingPointError as e:
        logging.getLogger(__name__).warning("%s; answers are the most likely candidate", e)
        return None


def run(args: argparse.Namespace) -> int:
    examples = select(read_split(args.data, args.split), _tasks(args.tasks), args.limit, args.seed)
    if not examples:
        raise ValueError(f"{args.data}/{args.split}.jsonl has no examples of the tasks asked for "
                         f"({args.tasks or 'all'})")
    model = load_model(args.model)
    op = resolve_operating_point(args, model, (args.limit, args.seed))
    copy_index = training_index(args.data)
    guard = CopyGuard.from_index(copy_index) if copy_index is not None else None
    options = EvalOptions(batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                          threshold=op["threshold"] if op else None, candidate_mode=args.candidate_mode,
                          chain=not args.no_chain, progress=not args.no_progress, fast_metrics=args.fast_metrics,
                          perturb=args.perturb, refine_masks=not args.no_mask_refiner, copy_guard=guard)
    result = evaluate(model, examples, options)
    out = Path(args.out)
    info = {"model": str(args.model), "data": str(args.data), "split": args.split,
            "mask_refiner": not args.no_mask_refiner}
    if args.perturb:
        info["perturb"] = dict(zip(("zoom", "dx", "dy"), args.perturb))
    doc = write_outputs(result, out, info, op, train_baseline(args.data), copy_index)
    if op:
        write_operating_point({**op, "applied_to": args.split}, out / OPERATING_POINT_FILE)
    else:
        (out / OPERATING_POINT_FILE).unlink(missing_ok=True)  # a stale one would describe another run
    typed = {task: t["by_type"] for task, t in doc["tasks"].items() if t.get("by_type")}
    if typed and not args.perturb:  # shipped beside the model: each answer says how its type fared here
        write_question_types(typed, args.split, out / QUESTION_TYPES_FILE)
    else:
        (out / QUESTION_TYPES_FILE).unlink(missing_ok=True)
    if guard is not None:  # shipped beside the model (`cxrvlm ship`): readings are checked as evaluated
        write_copy_guard(guard, out / COPY_GUARD_FILE)
    else:
        (out / COPY_GUARD_FILE).unlink(missing_ok=True)
    if doc.get("box_calibration") and not args.perturb:
        write_box_calibration({**doc["box_calibration"], "fitted_on": args.split}, out / BOX_CALIBRATION_FILE)
    else:
        (out / BOX_CALIBRATION_FILE).unlink(missing_ok=True)
    summary = {"out": str(out), "n_examples": doc["n_examples"], "malformed": doc["malformed"],
               "main": {t: m["value"] for t, m in doc["main"].items()}}
    print(json.dumps(summary))
    print(f"report: {out / 'report.html'}", file=sys.stderr)
    return 0
