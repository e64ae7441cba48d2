"""Evaluation: run a model over a curated split, score every task with its own metric, write the report; and the
multi-task vs single-task ablation.

    from cxrvlm.eval import EvalOptions, evaluate, write_outputs
    result = evaluate(model, examples, EvalOptions(batch_size=8, threshold=op["threshold"]))
    write_outputs(result, "runs/eval", {"model": ..., "data": ..., "split": "test"}, op)

Modules: `predict` (model calls: encode once, generate, score candidates, box scores), `runner` (batches, parse,
metrics, records), `operating_point` (TB threshold chosen on val), `report` / `figures` / `plots` (metrics.json,
predictions.jsonl, report.md/html and pictures), `ablate` (variants, training, table); `command` and
`ablate_command` are the `cxrvlm eval` / `cxrvlm ablate` subcommands.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EvalOptions": "runner", "EvalResult": "runner", "evaluate": "runner", "select": "runner",
    "choose_operating_point": "operating_point", "read_operating_point": "operating_point",
    "write_outputs": "report", "main_metric": "report",
    "AblationSpec": "ablate", "plan_variants": "ablate", "run_ablation": "ablate",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:  # imported on first use, so `import cxrvlm.eval` stays light
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cxrvlm.eval' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cxrvlm.eval.{_EXPORTS[name]}"), name)
