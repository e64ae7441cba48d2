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
from cxrvlm.eval.ablate import AblationSpec, plan_variants, run_ablation
from cxrvlm.eval.operating_point import choose_operating_point, read_operating_point
from cxrvlm.eval.report import main_metric, write_outputs
from cxrvlm.eval.runner import EvalOptions, EvalResult, evaluate, select

__all__ = [
    "AblationSpec",
    "EvalOptions",
    "EvalResult",
    "choose_operating_point",
    "evaluate",
    "main_metric",
    "plan_variants",
    "read_operating_point",
    "run_ablation",
    "select",
    "write_outputs",
]
