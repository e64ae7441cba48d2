"""Training configuration: a JSON file (a recipe, or an experiment naming its recipe as `base` and what it changes)
plus `key=value` overrides on the command line.

Stages are config (M4CXR: projector warm-up, then full/LoRA fine-tuning; LiteGPT: localisation, then
classification): each stage names its steps, frozen modules, optional LoRA and the tasks it draws from.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from cxrvlm.overrides import apply_overrides


@dataclass
class StageConfig:
    name: str = "joint"
    steps: int = 1000
    freeze: list[str] = field(default_factory=list)  # module name prefixes kept frozen, e.g. ["vision", "decoder"]
    lora: dict[str, Any] | None = None  # peft LoraConfig kwargs, e.g. {"r": 16, "target_modules": ["qkv"]}
    tasks: list[str] | None = None  # None: every task of the data
    lr: float | None = None  # None: TrainConfig.lr
    mixture: str | None = None  # None: TrainConfig.mixture (and its ratios / temperature)
    mixture_ratios: dict[str, float] | None = None  # for a "fixed" stage mixture; None: TrainConfig.mixture_ratios
    # module name prefix -> factor on the learning rate of its parameters (discriminative fine-tuning), e.g.
    # {"vision": 0.1} lets a pre-trained encoder adapt without forgetting; the longest matching prefix wins
    lr_scale: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainConfig:
    model: str = "cxrvlm-tiny"  # registered name or checkpoint folder
    model_overrides: dict[str, Any] = field(default_factory=dict)
    # module name -> safetensors file of that module's weights, loaded into a new model before step 0
    # (e.g. {"vision.encoders.0": "runs/probe/encoder.safetensors"} from `cxrvlm train-probe --save`)
    init_from: dict[str, str] = field(default_factory=dict)
    data: str = "runs/curated"  # a folder written by `cxrvlm curate`
    tasks: list[str] | None = None
    mixture: str = "inverse"  # inverse | proportional | temperature | fixed
    mixture_temperature: float = 2.0
    mixture_ratios: dict[str, float] = field(default_factory=dict)
    balance_answers: bool = False  # within a task, every answer of a close-ended question type drawn equally often
    batch_size: int = 16  # global batch; split across processes
    lr: float = 1e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    weight_decay: float = 0.01
    warmup_steps: int = 50
    grad_clip: float = 1.0
    seed: int = 0
    augment: bool = True  # intensity jitter (brightness, contrast, gamma) for every example
    augment_geometry: bool = True  # and a small affine where the task's answer holds no coordinates
    augment_locations: bool = False  # zoom/shift single-image examples of zoom_shift_safe tasks, loc tokens rewritten
    tokenizer_vocab_size: int = 4000  # BPE merges trained on the curated text when the model is new
    log_every: int = 10
    eval_every: int = 200
    eval_examples_per_task: int = 32
    save_every: int = 200
    tensorboard: bool = False
    stages: list[StageConfig] = field(default_factory=lambda: [StageConfig()])

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)

    def stage_at(self, step: int) -> tuple[int, StageConfig]:
        """(index, stage) that global step `step` belongs to."""
        start = 0
        for i, stage in enumerate(self.stages):
            if step < start + stage.steps:
                return i, stage
            start += stage.steps
        return len(self.stages) - 1, self.stages[-1]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = {k: v for k, v in d.items() if not k.startswith("_")}  # "_"-keys are notes for the reader
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; valid keys: {', '.join(sorted(known))}")
        d = dict(d)
        if "stages" in d:
            stage_keys = {f.name for f in fields(StageConfig)}
            stages = []
            for i, s in enumerate(d["stages"]):
                bad = sorted(set(s) - stage_keys)
                if bad:
                    raise ValueError(f"stage {i}: unknown key(s) {bad}; valid keys: {', '.join(sorted(stage_keys))}")
                stages.append(StageConfig(**s))
            if not stages:
                raise ValueError("config: 'stages' is empty")
            d["stages"] = stages
        cfg = cls(**d)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        for s in self.stages:
            if s.steps < 0:
                raise ValueError(f"stage {s.name!r}: steps must be >= 0, got {s.steps}")
            bad = {k: v for k, v in s.lr_scale.items() if not isinstance(v, (int, float)) or v <= 0}
            if bad:
                raise ValueError(f"stage {s.name!r}: lr_scale factors must be numbers > 0, got {bad}")


def load_config(path: str | Path | None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Config from a JSON file (or defaults when None), its `base` chain resolved (see `read_config_file`), then
    `key=value` overrides (dotted keys reach into dicts and stages: `stages.0.steps=20`, `model_overrides.depth=2`;
    values parse as JSON, else as strings; see cxrvlm.overrides)."""
    d = read_config_file(path) if path is not None else {}
    if "stages" not in d:
        d["stages"] = [asdict(StageConfig())]
    return TrainConfig.from_dict(apply_overrides(d, overrides))


def read_config_file(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file's keys over those of the file its `"base"` names (relative to its folder; recursively).

    An experiment names its recipe and only what it changes: dicts merge key by key, anything else (lists such as
    `stages`, numbers, strings) replaces the base's value, and `null` removes the base's key (back to the default,
    e.g. `"init_from": null`). `_`-keys (`_recipe`, `_experiment`) are notes for the reader and are dropped."""
    p = Path(path)
    if p.resolve() in _chain:
        cycle = " -> ".join(str(f) for f in (*_chain, p.resolve()))
        raise ValueError(f"config files name each other as base in a cycle: {cycle}")
    d = _read_json_object(p)
    base = d.pop("base", None)
    if base is None:
        return d
    if not isinstance(base, str) or not base:
        raise ValueError(f"config file {p}: 'base' must be the path of another config file, got {base!r}")
    return merge_config(read_config_file(p.parent / base, (*_chain, p.resolve())), d)


def _read_json_object(p: Path) -> dict[str, Any]:
    """The JSON object of a config file without its `_`-keys; ValueError naming the file otherwise."""
    if not p.is_file():
        raise ValueError(f"config file {p} not found")
    try:
        d = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"config file {p}: not valid JSON ({e})") from None
    if not isinstance(d, dict):
        raise ValueError(f"config file {p}: expected a JSON object, got {type(d).__name__}")
    return {k: v for k, v in d.items() if not k.startswith("_")}


def merge_config(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`changes` over `base` (a new dict): dicts merge recursively, None deletes the key, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_config(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
