"""The single-task specialists, trained and scored on the same curated split as the model they are compared with:

- TB: a plain ResNet-style CNN (the `convnet` encoder, mean-pooled, one logistic output) trained on the TB films
  alone, as `cxrvlm train-probe --encoder convnet` trains it; scored like `cxrvlm eval` scores the model's TB
  screening: AUROC overall and per source, sensitivity / specificity / accuracy at the operating point chosen on
  validation for sensitivity >= 0.9, and the films with another disease and no TB called TB at that point.
- Lungs: a plain U-Net from the film to the lung mask (`cxrvlm.train.lung_unet`), scored by the segmentation
  task's own metric (IoU and Dice overall and per source).

    rows = run_specialists("runs/curated-all", split="val")   # {"tb_cnn": {...}, "lung_unet": {...}}
"""
from __future__ import annotations

import argparse
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from cxrvlm.data.split import read_split
from cxrvlm.eval import other_disease
from cxrvlm.eval.by_source import example_source
from cxrvlm.eval.operating_point import operating_point_from_scores, tb_examples
from cxrvlm.examples import Example
from cxrvlm.metrics import auroc, binary_at_threshold
from cxrvlm.tasks import mask_task, screening_task
from cxrvlm.train import probe
from cxrvlm.train.lung_unet import LungUNet, lung_masks

def tb_cnn_args(data: str, epochs: int, seed: int, image_size: int = 256) -> argparse.Namespace:
    """The TB CNN's settings: train-probe's defaults for the convnet on the TB labels."""
    return argparse.Namespace(data=data, model="cxrvlm-tiny", encoder="convnet", image_size=image_size, set=[],
                              epochs=epochs, batch_size=16, lr=1e-3, labels="tb", only_question="", frozen=False,
                              geometry=False, disease_negatives=False, init="", seed=seed, save="", save_head="",
                              tb_weight=1.0)


def _probabilities(run: Any, examples: Sequence[Example]) -> list[float]:
    return [1.0 / (1.0 + math.exp(-s)) for s in run.tb_scores([(e.images[0], 0) for e in examples])]


def score_tb(y: Sequence[int], p: Sequence[float], sources: Sequence[str],
             disease_p: Sequence[float]) -> dict[str, Any]:
    """The TB screening figures `cxrvlm eval` reports, from probabilities: overall and per-source AUROC, the
    operating point (sensitivity >= 0.9 on these films) and what it gives, other-disease films called TB."""
    op = operating_point_from_scores(list(y), list(p))
    at = binary_at_threshold(y, p, op["threshold"])
    out: dict[str, Any] = {"n": len(y), "auroc": auroc(y, p), "threshold": op["threshold"],
                           "sensitivity": at["sensitivity"], "specificity": at["specificity"],
                           "accuracy": at["accuracy"]}
    by_source: dict[str, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
    for t, q, s in zip(y, p, sources):
        by_source[s][0].append(t)
        by_source[s][1].append(q)
    out["by_source"] = {s: {"n": len(ys), "auroc": auroc(ys, qs) if 0 < sum(ys) < len(ys) else None}
                        for s, (ys, qs) in sorted(by_source.items())}
    if disease_p:
        called = [q >= op["threshold"] for q in disease_p]
        out["other_disease_as_tb"] = {"n": len(called), "rate": sum(called) / len(called)}
    return out


def run_tb_cnn(data: str, split: str, epochs: int, seed: int) -> dict[str, Any]:
    run, rows = probe.train(tb_cnn_args(data, epochs, seed))
    examples = read_split(data, split)
    cases = tb_examples(examples)
    positive = screening_task().screening[1]
    y = [int(e.target.get("label") == positive) for e in cases]
    disease = other_disease.cases(examples)
    out = score_tb(y, _probabilities(run, cases), [example_source(e) for e in cases], _probabilities(run, disease))
    return {**out, "epochs": epochs, "training": rows}


def run_lung_unet(data: str, split: str, epochs: int, size: int, seed: int) -> dict[str, Any]:
    task = mask_task()
    train = [e for e in read_split(data, "train") if e.task == task.name]
    unet = LungUNet(size=size, seed=seed)
    rows = unet.fit(lung_masks(train), epochs=epochs)
    metric, by_source = task.metric(fast=True), defaultdict(lambda: task.metric(fast=True))
    for ex in (e for e in read_split(data, split) if e.task == task.name and len(e.images) == 1):
        pred = unet.prediction(ex)
        metric.update(pred, ex.target)
        by_source[example_source(ex)].update(pred, ex.target)
    def figures(m: Any) -> dict[str, float]:
        computed = m.compute()  # COCO evaluation: once per metric
        return {k: computed[k] for k in ("n", "iou", "dice")}

    return {**figures(metric), "size": size, "epochs": epochs, "training": rows,
            "by_source": {s: figures(m) for s, m in sorted(by_source.items())}}


def run_specialists(data: str, split: str = "val", tb_epochs: int = 20, unet_epochs: int = 30,
                    unet_size: int = 128, seed: int = 0, which: Sequence[str] = ("tb_cnn", "lung_unet")
                    ) -> dict[str, Any]:
    """Train and score the specialists named in `which` on `data`'s training split, scored on `split`."""
    out: dict[str, Any] = {"data": data, "split": split, "seed": seed}
    if "tb_cnn" in which:
        out["tb_cnn"] = run_tb_cnn(data, split, tb_epochs, seed)
    if "lung_unet" in which:
        out["lung_unet"] = run_lung_unet(data, split, unet_epochs, unet_size, seed)
    return out


def markdown(result: dict[str, Any]) -> str:
    """The specialists' figures as a Markdown table per specialist."""
    lines = [f"# Specialists on {result['data']} ({result['split']} split, seed {result['seed']})", ""]
    tb = result.get("tb_cnn")
    if tb:
        lines += ["## TB: plain CNN (convnet, TB films only)", "",
                  "| films | AUROC | sensitivity | specificity | accuracy | other disease read as TB |",
                  "|---|---|---|---|---|---|",
                  f"| {tb['n']} | {tb['auroc']:.3f} | {tb['sensitivity']:.3f} | {tb['specificity']:.3f} | "
                  f"{tb['accuracy']:.3f} | {_rate(tb.get('other_disease_as_tb'))} |", "",
                  "| source | films | AUROC |", "|---|---|---|"]
        lines += [f"| {s} | {r['n']} | {_num(r['auroc'])} |" for s, r in tb["by_source"].items()]
        lines.append("")
    unet = result.get("lung_unet")
    if unet:
        lines += [f"## Lungs: plain U-Net ({unet['size']} px)", "", "| source | examples | IoU | Dice |",
                  "|---|---|---|---|", f"| all | {unet['n']:.0f} | {unet['iou']:.3f} | {unet['dice']:.3f} |"]
        lines += [f"| {s} | {r['n']:.0f} | {r['iou']:.3f} | {r['dice']:.3f} |" for s, r in unet["by_source"].items()]
        lines.append("")
    return "\n".join(lines)


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _rate(r: dict[str, Any] | None) -> str:
    return "n/a" if not r else f"{r['rate']:.1%} of {r['n']}"
