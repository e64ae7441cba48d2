"""`cxrvlm train --config FILE [key=value ...] --out RUN_DIR`: train on a `cxrvlm curate` folder; resumes from the
run folder's last checkpoint when there is one. Multi-process: `accelerate launch --num_processes 2 -m cxrvlm.cli train ...`."""
from __future__ import annotations

import argparse
import json

from cxrvlm.train.config import load_config
from cxrvlm.train.loop import Trainer


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="JSON training config (see configs/ in the repository); defaults without one")
    parser.add_argument("--out", required=True, help="run folder: config, metrics.jsonl, checkpoints, final model")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. data=runs/curated stages.0.steps=50")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    trainer = Trainer(cfg, args.out)
    last = trainer.run()
    if trainer.acc.is_main_process:
        print(json.dumps({"run": args.out, "steps": cfg.total_steps, **last}))
    return 0
