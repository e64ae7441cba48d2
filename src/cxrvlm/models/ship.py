"""Put a trained model into the package as a built-in model, with its model card written from what was measured.

    cxrvlm ship RUN/final RUN/eval-val src/cxrvlm/models/weights/cxrvlm-tiny

Copies the checkpoint (config.json, model.safetensors in fp16, tokenizer.json) and the TB operating point chosen by
`cxrvlm eval`, and writes MODEL_CARD.md from the run's config and metrics.jsonl, the curated data's manifest.json
and the evaluation's metrics.json: every figure in the card comes from those files.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from cxrvlm.about import NOTICE
from cxrvlm.jsonl import read_jsonl
from cxrvlm.models.box_calibration import BOX_CALIBRATION_FILE, saved_box_calibration
from cxrvlm.models.copy_guard import COPY_GUARD_FILE, saved_copy_guard
from cxrvlm.models.operating_point import OPERATING_POINT_FILE, read_operating_point, write_operating_point
from cxrvlm.models.question_types import QUESTION_TYPES_FILE, saved_question_types
from cxrvlm.models.registry import load_model
from cxrvlm.tasks import get_task, list_tasks, screening_task

MAX_MB = 30.0  # the built-in model must stay small enough to ship inside a wheel


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def training_summary(run: Path) -> dict[str, Any]:
    """Steps, final losses, wall time (summed over resumed sessions) and the first/last validation losses."""
    rows = read_jsonl(run / "metrics.jsonl")
    train = [r for r in rows if "loss" in r]
    val = [r for r in rows if r.get("split") == "val"]
    sessions, prev = 0.0, None  # elapsed_s restarts at 0 when a run resumes
    for r in train:
        if prev is not None and r.get("elapsed_s", 0) < prev:
            sessions += prev
        prev = r.get("elapsed_s", 0)
    return {"steps": train[-1]["step"] if train else 0, "hours": (sessions + (prev or 0)) / 3600,
            "val_first": val[0]["task_loss"] if val else {}, "val_last": val[-1]["task_loss"] if val else {},
            "val_steps": (val[0]["step"], val[-1]["step"]) if val else None}


def metrics_table(metrics: dict[str, Any]) -> list[str]:
    lines = ["| task | main metric | value | 95% CI | n | malformed outputs |", "|---|---|---|---|---|---|"]
    for task, main in sorted(metrics.get("main", {}).items()):
        t = metrics["tasks"].get(task, {})
        ci = f"{_fmt(main.get('ci_low'))}–{_fmt(main.get('ci_high'))}" if main.get("ci_low") is not None else ""
        lines.append(f"| {task} | {main['key']} | {_fmt(main['value'])} | {ci} | {t.get('n', '')} | {t.get('n_invalid', '')} |")
    return lines


def describe_decoder(cfg: dict) -> str:
    """The decoder of a native config in words, its vocabulary included."""
    size = f"{cfg['n_layer']} layers, width {cfg['n_embd']}"
    vocab = f"vocabulary {cfg['vocab_size']} incl. 1024 `<loc>` and 128 `<seg>` tokens"
    if cfg.get("decoder") == "hf":
        return f"pretrained {cfg['hf_text_config'].get('model_type', '?')} decoder ({size}, {vocab})"
    return f"GPT decoder ({size}, {vocab})"


def _origin(cfg: dict) -> str:
    vision = "hf" in cfg["encoders"] or "efficientnet" in cfg["encoders"]  # EfficientNet-Lite: ImageNet weights
    pretrained = [p for p, on in (("vision encoder", vision), ("language model", cfg.get("decoder") == "hf")) if on]
    return f"built on a pretrained {' and '.join(pretrained)}" if pretrained else "trained from scratch on a CPU"


def _sources(data: dict) -> str:
    """The curated sources by name with their study counts (from the data's manifest.json)."""
    found = [f"{s['name']} ({s.get('studies', '?')} studies)" for s in data.get("sources", [])]
    return ", ".join(found) if found else "not recorded"


def describe_encoders(cfg: dict) -> str:
    """The vision side of a native config in words, e.g. "ConvNet encoder (widths 32-64-128-256, ...)"."""
    parts = []
    for name in cfg["encoders"]:
        if name == "vit":
            parts.append(f"ViT encoder ({cfg['vit_depth']} layers, width {cfg['vit_width']}, "
                         f"patch {cfg['vit_patch_size']})")
        elif name == "convnet":
            widths = "-".join(str(w) for w in cfg["cnn_widths"])
            parts.append(f"ConvNet encoder (ResNet-style, widths {widths}, {cfg['cnn_blocks']} residual block(s) per "
                         "stage)")
        elif name == "hf":
            hf = cfg["hf_vision_config"]
            parts.append(f"pretrained {hf['model_type']} encoder ({hf['num_hidden_layers']} layers, width "
                         f"{hf['hidden_size']}, patch {hf['patch_size']})")
        else:
            parts.append(f"{name} encoder")
    merged = f", tokens merged by {cfg['merge_k']}" if cfg.get("merge_k", 1) > 1 else ""
    return f"{' + '.join(parts)} on {cfg['image_size']} px grayscale input{merged}"


def run_chain(run: Path) -> list[Path]:
    """The run and the runs it continued (a config whose model is another run's model folder), first run first."""
    chain = [run]
    while True:
        start = Path(json.loads((chain[0] / "config.json").read_text())["model"])
        if not (start.parent / "config.json").is_file() or start.parent in chain:
            return chain
        chain.insert(0, start.parent)


def _describe_stage(stage: dict) -> str:
    parts = [f"{', '.join(stage['freeze'])} frozen"] if stage.get("freeze") else []
    parts += [f"lr x{factor} for {prefix}" for prefix, factor in (stage.get("lr_scale") or {}).items()]
    if stage.get("mixture"):
        ratios = stage.get("mixture_ratios")
        parts.append(f"mixture `{stage['mixture']}`" + (f" {ratios}" if stage["mixture"] == "fixed" and ratios else ""))
    return f"{stage['name']} {stage['steps']} steps" + (f" with {', '.join(parts)}" if parts else "")


def describe_run(run: Path, index: int, total: int) -> str:
    """One bullet of the card's training section: steps, mixture, lr, stages, start weights, time."""
    config, summary = json.loads((run / "config.json").read_text()), training_summary(run)
    mixture = config["mixture"] + (f" {config['mixture_ratios']}" if config["mixture"] == "fixed" else "")
    stages = "; ".join(_describe_stage(s) for s in config["stages"])
    init = "".join(f", {m} initialised from `{p}`" for m, p in config.get("init_from", {}).items())
    aug = ", location-aware zoom/shift augmentation" if config.get("augment_locations") else ""
    if config.get("augment", True) and config.get("augment_geometry", True):
        aug += ", a small random affine on the images of tasks without coordinates"
    return (f"- Run {index + 1} of {total} (`{run}`, from `{config['model']}`{init}): {summary['steps']} steps of "
            f"{config['batch_size']} ({stages}), mixture `{mixture}`, lr {config['lr']}{aug}, "
            f"{summary['hours']:.2f} h.")


def robustness_table(eval_dirs: list[Path]) -> list[str]:
    """Card lines: TB AUROC and accuracy of `cxrvlm eval --perturb` runs (and unperturbed ones), per split."""
    if not eval_dirs:
        return []
    rows = []
    for d in eval_dirs:
        doc = json.loads((d / "metrics.json").read_text())
        task = screening_task().name
        m = doc.get("tasks", {}).get(task, {}).get("metrics", {})
        if "tb_auroc" not in m:
            raise ValueError(f"{d}/metrics.json: no TB AUROC (evaluate task {task})")
        p = doc.get("perturb") or {}
        moved = ", ".join(f"{k} {v:g}" for k, v in p.items() if v != (1.0 if k == "zoom" else 0.0)) or "as filmed"
        rows.append(f"| {doc.get('split')} | {moved} | {_fmt(m['tb_auroc'])} | {_fmt(m.get('tb_accuracy'))} |")
    return [f"## Robustness to framing (`cxrvlm eval --tasks {screening_task().name} --perturb ...`)", "",
            "Every image zoomed about its centre (zoom < 1 shrinks the chest in the frame) or shifted by a fraction of "
            "its side; the operating point stays the one chosen on unmoved validation images.", "",
            "| split | images | TB AUROC | TB accuracy |", "|---|---|---|---|", *rows, ""]


def masks_paragraph(metrics: dict[str, Any], unrefined: Path | None) -> list[str]:
    """Card lines: whether the evaluated masks were redrawn by the mask refiner, and the figures without it."""
    task = next((t for t in list_tasks() if get_task(t).answer_shape.segs and t in metrics.get("tasks", {})), None)
    if task is None:
        return []
    if not metrics.get("mask_refiner"):
        return ["Segmentation masks are scored as the model's tokens decode them (no mask refiner).", ""]
    seg = metrics["tasks"][task]["metrics"]
    lines = [f"Segmentation masks are redrawn on the film by the mask refiner that ships with cxrvlm "
             f"(`cxrvlm.tokens.seg_refine`, as `cxrvlm interpret` gives them): IoU {_fmt(seg.get('iou'))}, "
             f"Dice {_fmt(seg.get('dice'))}."]
    if unrefined is not None:
        raw = json.loads((unrefined / "metrics.json").read_text())["tasks"][task]["metrics"]
        lines[0] += (f" The masks as the model's tokens decode them (`cxrvlm eval --no-mask-refiner`): IoU "
                     f"{_fmt(raw.get('iou'))}, Dice {_fmt(raw.get('dice'))}.")
    return [*lines, ""]


VALIDATION_HEADING = "## Validation metrics"
LIMITS_HEADING = "## Limitations"


def validation_section(metrics: dict[str, Any], unrefined: Path | None = None,
                       robustness: list[Path] | None = None) -> list[str]:
    """The card's validation lines: the metrics table, the operating point, the masks and robustness figures."""
    op = metrics.get("operating_point") or {}
    return [
        f"{VALIDATION_HEADING} (`cxrvlm eval --split {metrics.get('split')}`, patients never trained on)", "",
        *metrics_table(metrics), "",
        f"TB operating point: threshold {_fmt(op.get('threshold'))} chosen on the {op.get('split', 'validation')} "
        "split for sensitivity ≥ 0.90 (the WHO screening target), shipped as `operating_point.json`.", "",
        *masks_paragraph(metrics, unrefined),
        *reports_paragraph(metrics),
        *robustness_table(robustness or [])]


def reports_paragraph(metrics: dict[str, Any]) -> list[str]:
    """Card lines: generated reports that contradicted the label head or copied training text (and were replaced),
    and memorisation before and after the check."""
    lines = []
    for task, t in sorted(metrics.get("tasks", {}).items()):
        m, copied = t.get("metrics", {}), t.get("memorisation")
        if m.get("head_checked"):
            lines.append(f"{task}: {m['head_contradicted']} of {m['head_checked']} generated texts contradicted the "
                         "label head's TB verdict or findings, or copied training text, and were replaced by a text "
                         "templated from them, as `cxrvlm interpret` gives them; the figures above score what is "
                         "given.")
        if copied and copied.get("n"):
            said = copied.get("before_checks") or copied
            lines.append(f"{task}: {said['n_copied']} of {said['n']} generated texts copy a run of "
                         f"{copied['run_words']} words that only one training patient's text holds; "
                         f"{copied['n_copied']} of the texts given do.")
    return [" ".join(lines), ""] if lines else []


def refresh_metrics(dest: Path, eval_dir: Path, unrefined: Path | None = None,
                    robustness: list[Path] | None = None) -> str:
    """A shipped model's card with its validation section (and operating point) rewritten from a new evaluation of
    the same weights, e.g. after the evaluation code changed; the training section, which needs the run, stays."""
    card = (dest / "MODEL_CARD.md").read_text()
    start, end = card.find(VALIDATION_HEADING), card.find(LIMITS_HEADING)
    if start < 0 or end < start:
        raise ValueError(f"{dest / 'MODEL_CARD.md'}: no '{VALIDATION_HEADING}' section before '{LIMITS_HEADING}'")
    _copy_operating_point(eval_dir, dest)
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    text = card[:start] + "\n".join(validation_section(metrics, unrefined, robustness)) + "\n" + card[end:]
    (dest / "MODEL_CARD.md").write_text(text)
    return text


def _copy_operating_point(eval_dir: Path, dest: Path) -> None:
    """The evaluation's TB operating point, detection-score calibration, copy guard and answers' figures per
    question type, beside the model."""
    if (eval_dir / OPERATING_POINT_FILE).is_file():  # read and rewritten: a bad threshold fails here, not in use
        op = read_operating_point(eval_dir / OPERATING_POINT_FILE)
        op.pop("source_file")  # a path on the machine that shipped it
        write_operating_point(op, dest / OPERATING_POINT_FILE)
    if saved_box_calibration(eval_dir) is not None:  # read first: a bad file fails here
        shutil.copyfile(eval_dir / BOX_CALIBRATION_FILE, dest / BOX_CALIBRATION_FILE)
    if saved_copy_guard(eval_dir) is not None:
        shutil.copyfile(eval_dir / COPY_GUARD_FILE, dest / COPY_GUARD_FILE)
    if saved_question_types(eval_dir):
        shutil.copyfile(eval_dir / QUESTION_TYPES_FILE, dest / QUESTION_TYPES_FILE)


def write_card(dest: Path, run: Path, eval_dir: Path, note: str = "", robustness: list[Path] | None = None,
               unrefined: Path | None = None, reproduce: str = "make default-model") -> str:
    config = json.loads((run / "config.json").read_text())
    model_cfg = json.loads((dest / "config.json").read_text())
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    data_manifest = Path(config["data"]) / "manifest.json"
    data = json.loads(data_manifest.read_text()) if data_manifest.is_file() else {}
    summary = training_summary(run)
    chain = run_chain(run)
    tasks = data.get("counts", {}).get("tasks", {})
    lines = [
        f"# Model card: {model_cfg.get('name', dest.name)}", "", f"> {NOTICE} Not for clinical use.", "",
        f"A vision-language model {_origin(model_cfg)}; it learnt every task cxrvlm defines jointly "
        "(TB and finding classification, close- and open-ended VQA, reports, detection, grounding, segmentation).", "",
        "## Architecture", "",
        f"{describe_encoders(model_cfg)}, {model_cfg['projector']} projector, {describe_decoder(model_cfg)}. "
        "Weights stored in fp16.", "",
        "## Data", "", f"Curated with: `{data.get('command', '?')}`", "",
        "| task | train | val | test |", "|---|---|---|---|",
        *[f"| {t} | {c['train']} | {c['val']} | {c['test']} |" for t, c in sorted(tasks.items())], "",
        f"Splits are by patient (no patient in two splits). Sources: {_sources(data)}. Open-i report text trains the "
        "tokenizer only. Reports for the TB images are templated from their labels; for the COVID-19 collection "
        "they are the case notes.", "",
        "## Training", "",
        *[describe_run(r, i, len(chain)) for i, r in enumerate(chain)], "",
        f"Reproduce everything with `{reproduce}` (times are on this project's 2-core CPU machine, shared "
        "with other jobs).", "",
        *([note, ""] if note else []),
        "Validation loss per task (first → last evaluation):", "",
        "| task | first | last |", "|---|---|---|",
        *[f"| {t} | {_fmt(summary['val_first'].get(t))} | {_fmt(v)} |" for t, v in sorted(summary["val_last"].items())],
        "", *validation_section(metrics, unrefined, robustness),
        LIMITS_HEADING, "",
        f"- Small data (a few hundred to a few thousand patients), {_origin(model_cfg)} for a short CPU budget: far "
        "from the quality of large pretrained systems; the validation sets are small, so the confidence intervals "
        "are wide.",
        "- Reports for TB images are templated from labels, so report metrics there measure template recall.",
        "- Research use only. Not a diagnosis. Not validated on any external population.", ""]
    text = "\n".join(lines)
    (dest / "MODEL_CARD.md").write_text(text)
    return text


def ship(final: Path, eval_dir: Path, dest: Path, note: str = "", robustness: list[Path] | None = None,
         unrefined: Path | None = None, reproduce: str = "make default-model") -> Path:
    model = load_model(final)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, dtype=torch.float16)
    _copy_operating_point(eval_dir, tmp)
    size_mb = sum(f.stat().st_size for f in tmp.iterdir()) / 2**20
    if size_mb > MAX_MB:
        raise ValueError(f"{final}: {size_mb:.1f} MB is over the {MAX_MB} MB a built-in model may weigh")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    write_card(dest, final.parent, eval_dir, note, robustness, unrefined, reproduce)
    return dest
