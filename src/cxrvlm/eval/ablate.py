"""Multi-task vs single-task ablation (PaliGemma-CXR's central claim): with one step budget and the same seeds,
train one model per task, the joint model under each mixture strategy, and (given a pretrained backbone) read its
zero-shot result; evaluate each on one split; tabulate every task's main metric.

    plan = plan_variants(["classify", "detect"], pretrained=None)   # single:classify, single:detect, joint:inverse, ...
    rows = run_ablation(AblationSpec(data="runs/curated", out="runs/ablation", base=load_base(...)))

Folders: `out/runs/<variant>/seed<k>/` is a `cxrvlm train` run folder (config, metrics.jsonl, checkpoints,
`final/`) with its evaluation in `eval-<split>/` (metrics.json, report.html, ...). A variant whose run folder holds
a finished model is not retrained, and a finished evaluation with the same settings is not rerun, so an
interrupted ablation resumes (the trainer itself resumes a half-finished run from its last checkpoint).
"""
from __future__ import annotations

import copy
import json
import logging
import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxrvlm.data.split import read_split
from cxrvlm.eval.answer_types import train_baseline
from cxrvlm.eval.report import headline, main_metric, write_outputs
from cxrvlm.eval.runner import EvalOptions, evaluate, select
from cxrvlm.jsonl import clean
from cxrvlm.models import load_model
from cxrvlm.train.config import TrainConfig, load_config
from cxrvlm.train.loop import Trainer

log = logging.getLogger(__name__)

STRATEGIES = ("inverse", "proportional", "fixed")
CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs" / "ablation"  # the repository's configs/ablation/


@dataclass
class Variant:
    """One row of the table: name, kind ("single", "joint", "zero-shot"), the training-config keys it changes,
    and the tasks it is evaluated on (None: every task of the split)."""

    name: str
    kind: str
    overrides: dict[str, Any] = field(default_factory=dict)
    tasks: list[str] | None = None

    @property
    def folder(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", self.name)


@dataclass
class AblationSpec:
    data: str
    out: str
    base: dict[str, Any]  # a training config (TrainConfig JSON) shared by every variant
    tasks: list[str]  # the tasks compared (those of the training split unless restricted)
    seeds: list[int] = field(default_factory=lambda: [0])
    strategies: Sequence[str] = STRATEGIES
    pretrained: str | None = None
    split: str = "val"
    limit: int | None = None  # examples per task in each evaluation
    eval_options: EvalOptions = field(default_factory=lambda: EvalOptions(progress=False))


def plan_variants(tasks: Sequence[str], strategies: Sequence[str] = STRATEGIES, pretrained: str | None = None,
                  fixed_ratios: dict[str, float] | None = None) -> list[Variant]:
    """Zero-shot (with a pretrained backbone), one single-task model per task, one joint model per strategy. The
    "fixed" strategy needs ratios for at least one of the tasks; it is left out (with a warning) otherwise."""
    for s in strategies:
        if s not in STRATEGIES:
            raise ValueError(f"unknown mixture strategy {s!r} for the ablation; valid: {', '.join(STRATEGIES)}")
    out = [Variant("zero-shot", "zero-shot")] if pretrained else []
    out += [Variant(f"single:{t}", "single", {"tasks": [t]}, [t]) for t in tasks]
    for s in strategies:
        over: dict[str, Any] = {"tasks": list(tasks), "mixture": s}
        if s == "fixed":
            ratios = {t: float(v) for t, v in (fixed_ratios or {}).items() if t in tasks}
            if not any(v > 0 for v in ratios.values()):
                log.warning("ablation: no mixture_ratios for tasks %s in the config; joint:fixed left out", list(tasks))
                continue
            over["mixture_ratios"] = ratios
        out.append(Variant(f"joint:{s}", "joint", over))
    return out


def load_base(path: str | Path | None, quick: bool, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The shared training config: `path`, else `configs/ablation/quick.json` / `base.json`, its `base` chain
    resolved and `key=value` overrides applied by `load_config` (as `cxrvlm train` takes them); as its JSON dict."""
    if path is None:
        path = CONFIG_DIR / ("quick.json" if quick else "base.json")
        if not Path(path).is_file():
            raise ValueError(f"{path} not found: pass --config (a training config JSON)")
    return load_config(path, list(overrides)).to_json()


def with_steps(base: dict[str, Any], steps: int) -> dict[str, Any]:
    """The config with its stages rescaled to `steps` in total (proportionally; each stage at least one step)."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    cfg = copy.deepcopy(base)
    stages = cfg["stages"]
    total = sum(s["steps"] for s in stages) or 1
    scaled = [max(1, round(s["steps"] * steps / total)) for s in stages]
    scaled[-1] = max(1, steps - sum(scaled[:-1]))
    for s, n in zip(stages, scaled):
        s["steps"] = n
    cfg["warmup_steps"] = min(cfg.get("warmup_steps", 0), max(steps // 10, 1))
    cfg["save_every"] = min(cfg.get("save_every", steps), steps)
    return cfg


def train_config(spec: AblationSpec, variant: Variant, seed: int) -> dict[str, Any]:
    """The full training config of one (variant, seed)."""
    cfg = copy.deepcopy(spec.base)
    cfg.update(copy.deepcopy(variant.overrides), data=str(spec.data), seed=seed)
    if spec.pretrained:
        cfg["model"] = str(spec.pretrained)
    if variant.kind == "single":  # a stage restricted to other tasks would have nothing to draw from
        for stage in cfg["stages"]:
            stage["tasks"] = None
    return cfg


def finished(run_dir: Path) -> bool:
    """A run folder whose final model was written (the trainer writes `final/` last, atomically)."""
    final = run_dir / "final"
    return (final / "config.json").is_file() and any(final.glob("*.safetensors"))


def train_variant(spec: AblationSpec, variant: Variant, seed: int, run_dir: Path) -> Path:
    """Train (or resume) one variant; returns the folder of its final model."""
    if finished(run_dir):
        log.info("ablation: %s seed %d already trained (%s)", variant.name, seed, run_dir / "final")
        return run_dir / "final"
    cfg = TrainConfig.from_dict(train_config(spec, variant, seed))
    log.info("ablation: training %s seed %d for %d steps -> %s", variant.name, seed, cfg.total_steps, run_dir)
    Trainer(cfg, run_dir).run()
    return run_dir / "final"


def evaluate_variant(spec: AblationSpec, variant: Variant, model_path: str, eval_dir: Path,
                     examples: list) -> dict[str, Any]:
    """Evaluate a model on the variant's tasks; a finished evaluation with the same settings is reused."""
    key = {"split": spec.split, "limit": spec.limit, "tasks": variant.tasks or spec.tasks, "model": model_path}
    done = eval_dir / "metrics.json"
    if done.is_file():
        doc = json.loads(done.read_text())
        if doc.get("ablation_key") == key:
            return doc
    chosen = select(examples, key["tasks"], spec.limit)
    if not chosen:
        raise ValueError(f"{spec.data}/{spec.split}.jsonl has no examples of {key['tasks']}")
    result = evaluate(load_model(model_path), chosen, spec.eval_options)
    info = {"model": model_path, "data": str(spec.data), "split": spec.split, "variant": variant.name,
            "ablation_key": key}
    return write_outputs(result, eval_dir, info, baseline=train_baseline(spec.data))


def run_ablation(spec: AblationSpec, variants: list[Variant] | None = None) -> dict[str, Any]:
    """Train and evaluate every (variant, seed); write `ablation.json` and `ablation.md` into `spec.out`."""
    variants = variants if variants is not None else plan_variants(
        spec.tasks, spec.strategies, spec.pretrained, spec.base.get("mixture_ratios"))
    examples = read_split(spec.data, spec.split)
    out = Path(spec.out)
    runs = []
    for variant in variants:
        for seed in ([None] if variant.kind == "zero-shot" else spec.seeds):
            run_dir = out / "runs" / variant.folder / ("pretrained" if seed is None else f"seed{seed}")
            model_path = str(spec.pretrained) if seed is None else str(train_variant(spec, variant, seed, run_dir))
            doc = evaluate_variant(spec, variant, model_path, run_dir / f"eval-{spec.split}", examples)
            runs.append({"variant": variant.name, "kind": variant.kind, "seed": seed, "run_dir": str(run_dir),
                         "tasks": {t: r["metrics"] for t, r in doc["tasks"].items()},
                         "malformed": doc.get("malformed", {})})
    table = ablation_table(spec, variants, runs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.json").write_text(json.dumps(clean(table), indent=1, allow_nan=False) + "\n")
    (out / "ablation.md").write_text(render_table(table))
    return table


def column_key(task: str, metrics: list[dict[str, Any]]) -> str | None:
    """One metric per task for every row: the first headline metric that any run defines (finite), else the first
    any run reports (so a column never mixes, say, TB AUROC in one row with finding AUROC in another)."""
    present = [m for m in metrics if m]
    for k in headline(task):
        if any(isinstance(m.get(k), (int, float)) and math.isfinite(m[k]) for m in present):
            return k
    fallback = [k for k in headline(task) if any(k in m for m in present)]
    if fallback:
        return fallback[0]
    return next((main_metric(task, m)["key"] for m in present if main_metric(task, m)["key"]), None)


def _cell(key: str | None, metrics_per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    def value(m: dict[str, Any], k: str | None) -> float | None:
        v = m.get(k) if k else None
        return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None

    per_seed = [value(m, key) for m in metrics_per_seed]
    values = [v for v in per_seed if v is not None]
    cell: dict[str, Any] = {"key": key, "per_seed": per_seed,
                            "mean": statistics.fmean(values) if values else None,
                            "sd": statistics.stdev(values) if len(values) > 1 else None}
    if len(metrics_per_seed) == 1 and key:
        cell["ci_low"] = value(metrics_per_seed[0], key + "_ci_low")
        cell["ci_high"] = value(metrics_per_seed[0], key + "_ci_high")
    return cell


def ablation_table(spec: AblationSpec, variants: list[Variant], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows = variants, columns = each task's main metric (mean over seeds; the metric's CI with one seed)."""
    columns = {t: column_key(t, [r["tasks"].get(t, {}) for r in runs]) for t in spec.tasks}
    rows = []
    for v in variants:
        mine = [r for r in runs if r["variant"] == v.name]
        cells = {t: _cell(columns[t], [r["tasks"][t] for r in mine])
                 for t in spec.tasks if mine and all(t in r["tasks"] for r in mine)}
        rows.append({"variant": v.name, "kind": v.kind, "cells": cells})
    steps = sum(s["steps"] for s in spec.base["stages"])
    return {"data": str(spec.data), "split": spec.split, "limit": spec.limit, "steps": steps,
            "batch_size": spec.base.get("batch_size"), "seeds": spec.seeds, "pretrained": spec.pretrained,
            "model": spec.base.get("model"), "tasks": spec.tasks, "columns": columns, "rows": rows, "runs": runs}


def _fmt_cell(cell: dict[str, Any] | None) -> str:
    if not cell or cell.get("mean") is None:
        return "–"
    text = f"{cell['mean']:.3f}"
    if cell.get("sd") is not None:
        text += f" ± {cell['sd']:.3f} (n={len(cell['per_seed'])})"
    elif cell.get("ci_low") is not None and cell.get("ci_high") is not None:
        text += f" [{cell['ci_low']:.3f}, {cell['ci_high']:.3f}]"
    return text


def render_table(table: dict[str, Any]) -> str:
    """The markdown table; the best mean of each column in bold."""
    tasks = table["tasks"]
    best = {}
    for t in tasks:
        means = [r["cells"][t]["mean"] for r in table["rows"] if t in r["cells"] and r["cells"][t]["mean"] is not None]
        best[t] = max(means) if len(set(means)) > 1 else None  # no bold when every row ties
    head = ["variant"] + [f"{t} ({table['columns'][t] or '–'})" for t in tasks]
    lines = [f"# Ablation: multi-task vs single-task on `{table['data']}` ({table['split']})", "",
             f"Every trained variant: {table['steps']} steps of batch {table['batch_size']} from `{table['model']}`, "
             f"seeds {table['seeds']}; evaluation on at most {table['limit'] or 'all'} examples per task. Cells: mean "
             "over seeds (± sd with several seeds; the metric's bootstrap 95% CI in brackets with one seed); "
             "– = not "
             "evaluated or undefined.", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table["rows"]:
        cells = []
        for t in tasks:
            c = r["cells"].get(t)
            text = _fmt_cell(c)
            cells.append(f"**{text}**" if c and c.get("mean") is not None and c["mean"] == best[t] else text)
        lines.append("| " + " | ".join([r["variant"], *cells]) + " |")
    return "\n".join(lines) + "\n"
