"""Model construction for a run and per-stage module set-up (freezing, LoRA)."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cxrvlm.train.config import StageConfig, TrainConfig
from cxrvlm.train.data import TaskData, read_split

log = logging.getLogger(__name__)


def corpus_texts(cfg: TrainConfig, data: TaskData) -> list[str]:
    """Texts a new tokenizer learns from: every prompt and answer of the training split, plus the curated
    text-only corpus (e.g. Open-i reports) when the data folder has one."""
    texts = [t for exs in data.by_task.values() for e in exs for t in (e.prefix, e.suffix)]
    corpus = Path(cfg.data) / "text.jsonl"
    if corpus.is_file():
        with open(corpus) as f:
            texts.extend(json.loads(line)["text"] for line in f if line.strip())
    return texts


def build_model(cfg: TrainConfig, data: TaskData) -> nn.Module:
    """A checkpoint folder is loaded as it is; a registered name gets a tokenizer trained on the run's texts."""
    from cxrvlm.models import Tokenizer, create_model, load_model

    if Path(cfg.model).is_dir():
        model = load_model(cfg.model)
    else:
        torch.manual_seed(cfg.seed)
        tokenizer = Tokenizer.train(corpus_texts(cfg, data), vocab_size=cfg.tokenizer_vocab_size)
        model = create_model(cfg.model, tokenizer=tokenizer, **cfg.model_overrides)
    supported = getattr(model, "supported_tasks", None)
    if supported is not None:
        missing = sorted(set(data.sizes) - set(supported))
        if missing:
            raise ValueError(f"model {cfg.model!r} cannot do task(s) {missing}; it supports {sorted(supported)}")
    return model


def apply_stage(model: nn.Module, stage: StageConfig) -> None:
    """Freeze the modules the stage names (by name prefix); add LoRA adapters when it asks for them."""
    names = [n for n, _ in model.named_parameters()]
    for prefix in stage.freeze:
        if not any(n.startswith(prefix) for n in names):
            tops = sorted({n.split(".")[0] for n in names})
            raise ValueError(f"stage {stage.name!r}: freeze {prefix!r} matches no parameter; top-level modules: {tops}")
    for name, p in model.named_parameters():
        p.requires_grad = not any(name.startswith(prefix) for prefix in stage.freeze)
    if stage.lora:
        add_lora(model, stage.lora)


def add_lora(model: nn.Module, lora: dict[str, Any]) -> None:
    """Inject peft LoRA adapters in place; only the adapters (and modules_to_save) train."""
    from peft import LoraConfig, inject_adapter_in_model

    if _has_lora(model):
        return
    config = LoraConfig(**lora)
    inject_adapter_in_model(config, model)
    for name, p in model.named_parameters():
        p.requires_grad = "lora_" in name


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold LoRA weights into their base layers and put the plain layers back (a mergeable, adapter-free model)."""
    from peft.tuners.lora import LoraLayer

    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.get_base_layer())
    return model


def _has_lora(model: nn.Module) -> bool:
    return any("lora_" in n for n, _ in model.named_parameters())


def load_weights(model: nn.Module, folder: Path) -> None:
    """Load `folder/model.safetensors` into `model` (names must match exactly)."""
    from safetensors.torch import load_file

    state = load_file(str(Path(folder) / "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{folder}: checkpoint does not match the model (missing {missing[:5]}, unexpected {unexpected[:5]})")
