"""`cxrvlm ablate`: multi-task vs single-task training with one budget and the same seeds (PaliGemma-CXR's claim).

    cxrvlm ablate --data runs/curated --out runs/ablation --quick            # minutes on a 2-core CPU
    cxrvlm ablate --data runs/curated --out runs/ablation --steps 2000 --seeds 0,1,2 --split test
    cxrvlm ablate --data runs/curated --out runs/ablation --pretrained runs/pretrained/final   # + zero-shot row

Trains `single:<task>` for each task, `joint:inverse`, `joint:proportional` and `joint:fixed` (the config's
`mixture_ratios`), evaluates each, writes `ablation.md` and `ablation.json`. Rerunning resumes: finished models and
evaluations are reused. The training config is `--config` or `configs/ablation/{base,quick}.json`; `key=value`
arguments override it as in `cxrvlm train`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cxrvlm.data.split import read_split
from cxrvlm.eval.ablate import AblationSpec, load_base, run_ablation, with_steps
from cxrvlm.eval.runner import EvalOptions

QUICK_LIMIT = 24
QUICK_MAX_NEW_TOKENS = 48  # an untrained model rarely stops early; a report is cut, a two-lung answer still fits


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"give one or more distinct seeds, got {text!r}")
    return seeds


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="DIR", help="a folder written by `cxrvlm curate`")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="ablation folder (runs/, ablation.md, ablation.json)")
    parser.add_argument("--quick", action="store_true",
                        help=f"configs/ablation/quick.json (a tiny model, 150 steps), {QUICK_LIMIT} examples per "
                             "task, no pycocoevalcap: minutes on a 2-core CPU")
    parser.add_argument("--config", default=None, help="training config JSON shared by every variant")
    parser.add_argument("--steps", type=_positive, default=None, help="training steps of every variant (the budget)")
    parser.add_argument("--seeds", type=_seeds, default=[0], metavar="0,1", help="seeds (default 0)")
    parser.add_argument("--pretrained", default=None, metavar="PATH",
                        help="pretrained checkpoint: every variant starts from it, and its zero-shot row is added")
    parser.add_argument("--split", default="val", help="split every variant is evaluated on (default val)")
    parser.add_argument("--tasks", default=None, metavar="A,B", help="tasks to compare (default: all in train)")
    parser.add_argument("--strategies", default="inverse,proportional,fixed", metavar="A,B",
                        help="joint mixture strategies (default inverse,proportional,fixed)")
    parser.add_argument("--limit", type=_positive, default=None, metavar="N", help="evaluation examples per task")
    parser.add_argument("--batch-size", type=_positive, default=8, metavar="B", help="evaluation batch size")
    parser.add_argument("--max-new-tokens", type=_positive, default=None, metavar="N", help="generation length cap")
    parser.add_argument("--full-metrics", action="store_true",
                        help="with --quick: still run pycocoevalcap (METEOR starts a JVM per evaluation)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="training config overrides")


def run(args: argparse.Namespace) -> int:
    base = load_base(args.config, args.quick, args.overrides)
    if args.steps is not None:
        base = with_steps(base, args.steps)
    train_tasks = sorted({e.task for e in read_split(args.data, "train")})
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else train_tasks
    missing = sorted(set(tasks) - set(train_tasks))
    if missing:
        raise ValueError(f"{args.data}/train.jsonl has no examples of task(s) {missing}; it has {train_tasks}")
    options = EvalOptions(batch_size=args.batch_size, progress=False,
                          max_new_tokens=args.max_new_tokens or (QUICK_MAX_NEW_TOKENS if args.quick else None),
                          fast_metrics=args.quick and not args.full_metrics)
    spec = AblationSpec(data=args.data, out=args.out, base=base, tasks=tasks, seeds=args.seeds,
                        strategies=[s.strip() for s in args.strategies.split(",") if s.strip()],
                        pretrained=args.pretrained, split=args.split,
                        limit=args.limit or (QUICK_LIMIT if args.quick else None), eval_options=options)
    table = run_ablation(spec)
    print(json.dumps({"out": args.out, "rows": [r["variant"] for r in table["rows"]], "columns": table["columns"]}))
    print(Path(args.out, "ablation.md").read_text(), file=sys.stderr)
    return 0
