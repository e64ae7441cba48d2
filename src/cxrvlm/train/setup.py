"""Model construction for a run and per-stage module set-up (freezing, LoRA)."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from cxrvlm.data.split import TaskData
from cxrvlm.models import Tokenizer, create_model, load_model
from cxrvlm.models.hf_common import require_hf
from cxrvlm.models.vlm import checkpoint_tokenizer
from cxrvlm.tensorfile import read_tensors
from cxrvlm.train.config import StageConfig, TrainConfig

log = logging.getLogger(__name__)
LORA_SEED = 0  # adapters are initialised from this seed, whatever the RNG state when their stage begins


def corpus_texts(cfg: TrainConfig, data: TaskData) -> list[str]:
    """Texts a new tokenizer learns from: every prompt and answer of the training split, plus the curated
    text-only corpus (e.g. Open-i reports) when the data folder has one."""
    texts = [t for exs in data.by_task.values() for e in exs for t in (e.prefix, e.suffix)]
    corpus = Path(cfg.data) / "text.jsonl"
    if corpus.is_file():
        with open(corpus) as f:
            texts.extend(json.loads(line)["text"] for line in f if line.strip())
    return texts


def build_model(cfg: TrainConfig, data: TaskData, resume_from: Path | None = None) -> nn.Module:
    """A checkpoint folder is loaded as it is; a registered name gets a tokenizer trained on the run's texts.
    When resuming, the model is rebuilt from the run's own checkpoint (config + tokenizer; the weights are loaded
    after the stage's LoRA adapters exist)."""
    if resume_from is not None:
        model = create_model(resume_from, tokenizer=checkpoint_tokenizer(resume_from))
    else:
        if Path(cfg.model).is_dir():
            model = load_model(cfg.model)
        else:
            torch.manual_seed(cfg.seed)
            # a pretrained LM decoder brings its own tokenizer
            tokenizer = None if cfg.model_overrides.get("decoder") == "hf" else \
                Tokenizer.train(corpus_texts(cfg, data), vocab_size=cfg.tokenizer_vocab_size)
            model = create_model(cfg.model, tokenizer=tokenizer, **cfg.model_overrides)
        for module, path in cfg.init_from.items():  # a resumed run has them in its checkpoint already
            load_module_weights(model, module, path)
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


def param_groups(model: nn.Module, stage: StageConfig) -> list[dict[str, Any]]:
    """The trainable parameters in optimizer groups by the stage's `lr_scale` (longest matching name prefix;
    factor 1 where none matches). Each group carries its factor as "lr_scale" for the schedule to apply."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    for prefix in stage.lr_scale:
        if not any(n.startswith(prefix) for n in names):
            raise ValueError(f"stage {stage.name!r}: lr_scale {prefix!r} matches no trainable parameter")
    groups: dict[float, list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            matches = [k for k in stage.lr_scale if name.startswith(k)]
            scale = float(stage.lr_scale[max(matches, key=len)]) if matches else 1.0
            groups.setdefault(scale, []).append(p)
    return [{"params": params, "lr_scale": scale} for scale, params in sorted(groups.items())]


def add_lora(model: nn.Module, lora: dict[str, Any]) -> None:
    """Inject peft LoRA adapters in place (once: a model that has them keeps them); only the adapters and
    `modules_to_save` copies train, also when the model already had adapters from an earlier stage."""
    peft = require_hf("LoRA (a stage's lora)", "peft")
    if not _has_lora(model):
        try:
            config = peft.LoraConfig(**lora)
        except TypeError as e:
            raise ValueError(f"lora config {lora}: {e}") from None
        with torch.random.fork_rng():  # the same adapter init in a resumed run as in an uninterrupted one
            torch.manual_seed(LORA_SEED)
            peft.inject_adapter_in_model(config, model)
        if not _has_lora(model):
            raise ValueError(f"lora config {lora}: target_modules matched no layer")
    for name, p in model.named_parameters():
        p.requires_grad = _is_adapter(name)


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold LoRA weights into their base layers and put the plain layers back (modules_to_save: the trained
    copy replaces the original), so the model is adapter-free and saves/loads like one never adapted."""
    LoraLayer = require_hf("merging LoRA", "peft.tuners.lora").LoraLayer
    ModulesToSaveWrapper = require_hf("merging LoRA", "peft.utils.other").ModulesToSaveWrapper
    for name, module in list(model.named_modules()):
        if isinstance(module, (LoraLayer, ModulesToSaveWrapper)):
            if isinstance(module, LoraLayer):
                module.merge()
                plain = module.get_base_layer()
            else:
                plain = module.unload_and_optionally_merge_module(merge=True, safe_merge=False, adapter_names=None)
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, plain)
    if "peft_config" in vars(model):
        del model.peft_config  # a later add_lora starts from a clean model
    return model


def _has_lora(model: nn.Module) -> bool:
    return any("lora_" in n for n, _ in model.named_parameters())


def _is_adapter(name: str) -> bool:
    return "lora_" in name or ".modules_to_save." in name


def _into_adapted(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """A checkpoint taken before LoRA was added (e.g. at the end of a full stage), read into a model that now has
    adapters: plain `x.weight` goes to peft's `x.base_layer.weight`; the adapters keep their fresh init."""
    if not _has_lora(model) or any("lora_" in k for k in state):
        return state
    names = {n for n, _ in model.state_dict().items()}
    out = {}
    for key, value in state.items():
        stem, _, leaf = key.rpartition(".")
        wrapped = f"{stem}.base_layer.{leaf}"
        out[wrapped if key not in names and wrapped in names else key] = value
    out.update({k: v for k, v in model.state_dict().items() if "lora_" in k})
    return out


def load_module_weights(model: nn.Module, module: str, path: str | Path) -> None:
    """Load a safetensors file holding one submodule's state dict (names relative to it) into `model.<module>`."""
    try:
        target = model.get_submodule(module)
    except AttributeError as e:
        raise ValueError(f"init_from: model has no module {module!r} ({e})") from e
    if not Path(path).is_file():
        raise ValueError(f"init_from[{module!r}]: {path} is not a file")
    metadata, tensors = read_tensors(path)
    try:
        missing, unexpected = target.load_state_dict(tensors, strict=False)
    except RuntimeError as e:  # a tensor of the wrong shape
        raise ValueError(f"init_from[{module!r}]: {path} does not match the module: {e}") from e
    if missing or unexpected:
        raise ValueError(f"init_from[{module!r}]: {path} does not match the module "
                         f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    _check_label_names(model, module, path, metadata)
    log.info("initialised %s from %s", module, path)


def _check_label_names(model: nn.Module, module: str, path: str | Path, metadata: dict[str, str]) -> None:
    """A label head file (`cxrvlm train-probe --save-head`) names its outputs: they must be the model's, in order."""
    saved = metadata.get("label_names")
    names = list(getattr(getattr(model, "config", None), "label_names", None) or [])
    if saved is not None and json.loads(saved) != names:
        raise ValueError(f"init_from[{module!r}]: {path} was trained for labels {json.loads(saved)}, but the model's "
                         f"label_names are {names}")


def load_weights(model: nn.Module, folder: Path) -> None:
    """Load `folder/model.safetensors` into `model` (names must match exactly)."""
    state = _into_adapted(load_file(str(Path(folder) / "model.safetensors")), model)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{folder}: checkpoint does not match the model (missing {missing[:5]}, unexpected {unexpected[:5]})")
