"""`cxrvlm bench-interpret` (hidden; `cxrvlm bench --builtin` runs it in a fresh process): median full-interpretation
latency and the peak RSS of this process, as one JSON line."""
from __future__ import annotations

import argparse
import json

import torch

from cxrvlm.about import DEFAULT_MODEL
from cxrvlm.bench.interpret import peak_rss_mb, time_interpretation
from cxrvlm.infer.phantom import example_image
from cxrvlm.models import load_model


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL, help="registered name or model folder")
    parser.add_argument("--repeats", type=int, default=5, help="timed interpretations after one warm-up")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default 0: torch's choice)")


def run(args: argparse.Namespace) -> int:
    if args.repeats < 1 or args.threads < 0:
        raise ValueError(f"--repeats must be >= 1 and --threads >= 0, got {args.repeats} and {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    ms = time_interpretation({args.model: load_model(args.model)}, str(example_image()), args.repeats)[args.model]
    print(json.dumps({"model": args.model, "interpret_ms": ms, "peak_rss_mb": peak_rss_mb(),
                      "threads": torch.get_num_threads()}))
    return 0
