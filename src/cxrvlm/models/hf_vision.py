"""A pretrained vision tower from `transformers` (DINOv2 / Rad-DINO, SigLIP, CLIP), read from a local folder, as an
encoder of the native VLM: the LLaVA / M4CXR recipe of a pretrained encoder, a projector and a decoder.

    create_model("cxrvlm-tiny", encoders=["hf"], hf_vision_path="/models/rad-dino", image_size=518)

The folder is a Hugging Face download (`config.json`, safetensors weights, `preprocessor_config.json`); a full
SigLIP or CLIP checkpoint gives its vision half. A new model reads the folder once (`resolve_hf_vision` copies the
tower's config and pixel normalisation into the VLM config); a saved cxrvlm checkpoint holds the tower's weights
and rebuilds it from that config, so it loads without the folder. Nothing is downloaded.

The tower sees the film as its pretraining did: the grayscale image un-normalised to [0, 1], repeated to three
channels and normalised with the folder's mean and std. Its patch tokens (CLS and register tokens dropped) form the
token grid, image_size / patch_size on a side.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cxrvlm.models.config import ConfigError, VLMConfig
from cxrvlm.models.hf_common import architecture, require_hf

# pixel normalisation of the model families when a folder has no preprocessor_config.json
_DEFAULT_NORMALISATION = {"siglip_vision_model": ([0.5] * 3, [0.5] * 3),
                          "clip_vision_model": ([0.48145466, 0.4578275, 0.40821073],
                                                [0.26862954, 0.26130258, 0.27577711])}
_IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])  # DINOv2's


def _transformers() -> Any:
    return require_hf("a pretrained vision tower (encoder 'hf')")


def read_tower_config(folder: str | Path) -> dict[str, Any]:
    """The vision model's transformers config (a dict with model_type) from a local folder; the vision half of a
    SigLIP/CLIP checkpoint. ValueError naming the folder when it is not a transformers vision model."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise ValueError(f"hf_vision_path {str(folder)!r}: no config.json (expected a local transformers download, "
                         "e.g. of microsoft/rad-dino)")
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: unreadable ({e})") from None
    transformers = _transformers()
    try:
        config = transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"hf_vision_path {str(folder)!r}: transformers cannot read it ({e})") from None
    config = getattr(config, "vision_config", None) or config  # SigLIP / CLIP: their vision half
    if not hasattr(config, "patch_size") or not hasattr(config, "hidden_size"):
        raise ValueError(f"hf_vision_path {str(folder)!r}: model_type {raw.get('model_type')!r} is not a patch-based "
                         "vision model (DINOv2 / Rad-DINO, SigLIP, CLIP)")
    return architecture(config)


def read_normalisation(folder: str | Path, model_type: str) -> tuple[list[float], list[float]]:
    """Per-channel (mean, std) the tower was pretrained with: the folder's preprocessor_config.json, else the
    family's default."""
    path = Path(folder) / "preprocessor_config.json"
    if path.is_file():
        try:
            pre = json.loads(path.read_text())
            mean, std = pre["image_mean"], pre["image_std"]
        except (OSError, json.JSONDecodeError, KeyError) as e:
            raise ValueError(f"{path}: no usable image_mean/image_std ({e})") from None
        mean, std = ([float(mean)] * 3, [float(std)] * 3) if isinstance(mean, (int, float)) else (mean, std)
        return [float(m) for m in mean], [float(s) for s in std]
    return _DEFAULT_NORMALISATION.get(model_type, _IMAGENET)


def resolve_hf_vision(cfg: VLMConfig) -> VLMConfig:
    """A config whose 'hf' encoder knows its architecture and normalisation (read from hf_vision_path once);
    unchanged for configs without one, or already resolved."""
    if "hf" not in cfg.encoders or cfg.hf_vision_config:
        return cfg
    tower = read_tower_config(cfg.hf_vision_path)
    mean, std = read_normalisation(cfg.hf_vision_path, tower["model_type"])
    return cfg.replace(hf_vision_config=tower, hf_vision_mean=mean, hf_vision_std=std)


class HFVisionTower(nn.Module):
    """(B, 1, S, S) normalised with the VLM's image_mean/std -> the tower's patch tokens (B, grid * grid, hidden)."""

    def __init__(self, cfg: VLMConfig) -> None:
        super().__init__()
        if not cfg.hf_vision_config:
            raise ConfigError(f"config {cfg.name!r}: encoder 'hf' is not resolved; build the model with "
                              "create_model / CompactVLM.from_config, which read hf_vision_path")
        transformers = _transformers()
        d = dict(cfg.hf_vision_config)
        hf_config = transformers.AutoConfig.for_model(d.pop("model_type"), **d)
        self.dtype = dtype = getattr(torch, cfg.hf_dtype)
        if cfg.hf_vision_path:  # a new model: the pretrained weights (the vision half of a SigLIP/CLIP checkpoint)
            self.model = transformers.AutoModel.from_pretrained(cfg.hf_vision_path, config=hf_config,
                                                                local_files_only=True, dtype=dtype)
        else:  # a saved checkpoint brings its own weights
            self.model = transformers.AutoModel.from_config(hf_config).to(dtype)
        self.grid = cfg.image_size // hf_config.patch_size
        self.out_dim = hf_config.hidden_size
        self.image_mean, self.image_std = cfg.image_mean, cfg.image_std
        self.register_buffer("mean", torch.tensor(cfg.hf_vision_mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.hf_vision_std).view(1, -1, 1, 1), persistent=False)
        # SigLIP and CLIP interpolate their position embeddings to another image size only when asked (DINOv2 always)
        asks = "interpolate_pos_encoding" in inspect.signature(self.model.forward).parameters
        self._kwargs = {"interpolate_pos_encoding": True} if asks else {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float() * self.image_std + self.image_mean  # back to [0, 1]
        x = (x.expand(-1, self.mean.size(1), -1, -1) - self.mean) / self.std
        tokens = self.model(pixel_values=x.to(self.dtype), **self._kwargs).last_hidden_state  # (B, [CLS, reg.,] P, D)
        return tokens[:, -self.grid * self.grid:].to(dtype)  # patch tokens come last in every family
