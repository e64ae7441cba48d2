"""The native compact VLM: vision tower -> projector -> (+ view embedding) -> prefix-LM decoder (GPT or a
pretrained LM).

    model = CompactVLM.from_config(VLMConfig(...), tokenizer)
    batch = model.collate(examples, images)      # images: per example, its views as float32 (H, W) in [0, 1]
    logits, loss = model(**batch)                # loss: mean NLL over answer tokens
    model(**batch, reduction="none")[1]          # (B,) mean NLL of each example's answer

Sequence per example: [image tokens of slot 0][slot 1]...[slot M-1] <bos> prompt <sep> answer <eos> <pad>...
Each view is encoded on its own, gets the learned embedding of its slot (the order of `Example.images`: the
study's views, then the prior's; the prompt says whether slot 1 holds a lateral view or a prior study, as the
tasks write it, so training, evaluation and inference all index views the same way), and padded slots are masked
out of attention. Batching, the answer loss, generation and candidate scoring live in backend.py.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from cxrvlm.models import checkpoint as ckpt
from cxrvlm.models.backend import BackendMixin, ImageFeatures, answer_loss
from cxrvlm.models.config import VLMConfig
from cxrvlm.models.hf_text import TOKENIZER_DIR, HFDecoder, read_tokenizer, resolve_hf_text
from cxrvlm.models.hf_vision import resolve_hf_vision
from cxrvlm.models.language_model import GPTDecoder, prefix_lm_mask
from cxrvlm.models.projector import Projector
from cxrvlm.models.tokenizer import Tokenizer
from cxrvlm.models.vision_encoder import VisionTower

log = logging.getLogger(__name__)


class CompactVLM(BackendMixin, nn.Module):
    def __init__(self, config: VLMConfig, tokenizer: Tokenizer) -> None:
        super().__init__()
        if config.vocab_size != tokenizer.vocab_size:
            raise ValueError(f"config {config.name!r}: vocab_size {config.vocab_size} does not match the tokenizer's "
                             f"{tokenizer.vocab_size}")
        self.config, self.tokenizer = config, tokenizer
        self.vision = VisionTower(config)
        self.projector = Projector(config, self.vision.out_dim, self.vision.num_tokens, self.vision.grid)
        self.view_embed = nn.Embedding(config.max_images, config.n_embd)
        nn.init.normal_(self.view_embed.weight, std=0.02)
        self.decoder = HFDecoder(config) if config.decoder == "hf" else GPTDecoder(config)
        self.tokens_per_image = self.projector.num_tokens
        # the label head reads the first encoder's pooled tokens (task "image_labels"; VLMConfig.label_names)
        self.label_head = (nn.Linear(self.vision.encoders[0].out_dim, len(config.label_names))
                           if config.label_names else None)

    @property
    def dtype(self) -> torch.dtype:
        """The projector's: pretrained parts may be held in another dtype (hf_dtype) and cast at their edges."""
        return next(self.projector.parameters()).dtype

    # ------------------------------------------------------------------------------------------------ build / IO
    @classmethod
    def from_config(cls, config: VLMConfig, tokenizer: Tokenizer | None = None) -> CompactVLM:
        """A new model; without a tokenizer the byte-level one (no merges) is used. A pretrained LM decoder
        brings its own tokenizer."""
        config, tokenizer = resolve_hf_text(config, tokenizer)
        if tokenizer is None:
            log.info("no tokenizer given: using the byte-level tokenizer (train one with Tokenizer.train for "
                     "shorter sequences)")
            tokenizer = Tokenizer.byte_level()
        config = resolve_hf_vision(config)  # a pretrained tower's architecture, read from its folder once
        if config.vocab_size not in (0, tokenizer.vocab_size):
            raise ValueError(f"config {config.name!r}: vocab_size {config.vocab_size} given, but the tokenizer has "
                             f"{tokenizer.vocab_size}; leave vocab_size out, it is set from the tokenizer")
        return cls(config.replace(vocab_size=tokenizer.vocab_size), tokenizer)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> CompactVLM:
        folder = Path(folder)
        config = VLMConfig.from_json(ckpt.read_config(folder), where=str(folder / ckpt.CONFIG_FILE))
        model = cls(config, checkpoint_tokenizer(folder))
        return ckpt.load_weights_into(model, folder)

    def save_pretrained(self, folder: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
        """Write config.json + model.safetensors (+ tokenizer.json) atomically; `dtype=torch.float16` halves it."""
        state = {k: v.detach().to("cpu", dtype or v.dtype).contiguous() for k, v in self.state_dict().items()}
        # the checkpoint holds a pretrained tower's or LM's weights, so it no longer needs their folders
        config = self.config.replace(hf_vision_path="", hf_text_path="")
        if "efficientnet" in config.encoders:
            config = config.replace(efficientnet_pretrained=False)
        tokenizer_name = TOKENIZER_DIR if config.decoder == "hf" else ckpt.TOKENIZER_FILE
        return ckpt.write_folder(folder, {
            ckpt.CONFIG_FILE: ckpt.write_json(config.to_json()),
            ckpt.WEIGHTS_FILE: lambda p: save_file(state, str(p), metadata={"format": "pt"}),
            tokenizer_name: self.tokenizer.save,
        })

    # ------------------------------------------------------------------------------------------------ batching
    def _prompt_ids(self, prefix: str) -> list[int]:
        tok = self.tokenizer
        return [tok.bos_id, *tok.encode(prefix), tok.sep_id]

    # ------------------------------------------------------------------------------------------------ compute
    def encode_pixels(self, pixel_values: torch.Tensor, image_mask: torch.Tensor) -> ImageFeatures:
        """(B, M, 1, S, S) + (B, M) -> ImageFeatures (B, M * tokens_per_image, C); only real views are encoded."""
        B, M = image_mask.shape
        if M > self.config.max_images:
            raise ValueError(f"{M} image slots, but the model has {self.config.max_images} (max_images)")
        n, C = self.tokens_per_image, self.config.n_embd
        image_mask = image_mask.to(self.device, torch.bool)
        out = torch.zeros(B, M, n, C, device=self.device, dtype=self.dtype)
        probs = maps = None
        if image_mask.any():
            views = pixel_values.to(self.device, self.dtype)[image_mask]  # (K, 1, S, S)
            tokens, first = self.vision.forward_with_first(views)
            out[image_mask] = self.projector(tokens)  # (K, n, C)
            if self.label_head is not None:  # the first view of each example (an example without one reads NaN)
                probs = self._first_views(torch.sigmoid(self._head_logits(first.mean(1))), image_mask)
                maps = self._label_maps(first, image_mask)
        out = out + self.view_embed.weight[:M][None, :, None, :]
        return ImageFeatures(out.reshape(B, M * n, C), image_mask[:, :, None].expand(B, M, n).reshape(B, M * n),
                             probs, maps)

    def _head_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The label head's logits (..., L) of first-encoder features (..., D), divided by the label temperatures
        when the model has them (calibrated on validation, `cxrvlm calibrate`)."""
        logits = self.label_head(x.float())
        if self.config.label_temperatures:
            logits = logits / torch.tensor(self.config.label_temperatures, device=logits.device)
        return logits

    def _first_views(self, per_view: torch.Tensor, image_mask: torch.Tensor) -> torch.Tensor:
        """(K, ...) values of the real views -> (B, ...) those of each example's first view (NaN without one)."""
        B, M = image_mask.shape
        full = torch.full((B, M, *per_view.shape[1:]), float("nan"), device=self.device)
        full[image_mask] = per_view
        return full[:, 0]

    @torch.no_grad()
    def _label_maps(self, first: torch.Tensor, image_mask: torch.Tensor) -> torch.Tensor | None:
        """Class activation maps (B, L, g, g) of each example's first view from the first encoder's g x g tokens
        (K, g * g, D): each cell the label's logit from that cell's token alone. The head is linear on their mean,
        so a map's mean is exactly the label's logit (CAM, Zhou et al. 2016); rows top to bottom. None when the
        encoder's tokens are not a grid. For showing, never trained: no gradient."""
        g = self.vision.encoders[0].grid
        if g is None or first.size(1) != g * g:
            return None
        cams = self._head_logits(first).transpose(1, 2).reshape(first.size(0), -1, g, g)  # (K, L, g, g)
        return self._first_views(cams, image_mask)

    def label_maps(self, pixels: np.ndarray) -> np.ndarray:
        """Class activation maps of the label head for one view (float (H, W) in [0, 1]): (labels, g, g), as
        `encode_images` gives them in `ImageFeatures.label_maps`."""
        if self.label_head is None:
            raise ValueError(f"model {self.config.name!r} has no label head (config label_names is empty)")
        maps = self.encode_images([[pixels]]).label_maps
        if maps is None:
            raise ValueError(f"model {self.config.name!r}: its first encoder's tokens are not a grid")
        return maps[0].cpu().numpy()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, prefix_lengths: torch.Tensor,
                pixel_values: torch.Tensor | None = None, image_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, image_features: ImageFeatures | None = None,
                reduction: str = "mean") -> tuple[torch.Tensor, torch.Tensor | None]:
        """-> logits (B, T, V) over the text positions (logits[:, t] predicts token t + 1), and the loss on
        `labels` (None without labels): "mean" over all answer tokens of the batch, "none" (B,) mean per example,
        "sum" (B,) summed NLL per example (the answer's negative log-likelihood)."""
        dev = self.device
        input_ids, attention_mask = input_ids.to(dev), attention_mask.to(dev)
        B, T = input_ids.shape
        if image_features is None:
            if pixel_values is None or image_mask is None:
                pixel_values, image_mask = torch.zeros(B, 0, 1, 1, 1), torch.zeros(B, 0, dtype=torch.bool)
            image_features = self.encode_pixels(pixel_values, image_mask)
        feats = image_features.expand(B)
        positions = torch.arange(T, device=dev).expand(B, T)
        x = torch.cat([feats.tokens.to(dev, self.dtype), self.decoder.embed(input_ids, positions)], dim=1)
        n_img = feats.tokens.size(1)
        key_valid = torch.cat([feats.mask.to(dev), attention_mask.bool()], dim=1)
        mask = prefix_lm_mask(key_valid, self._prefix_end(n_img, prefix_lengths.to(dev), B))
        logits = self.decoder.lm_head(self.decoder(x, mask)[:, n_img:])  # (B, T, V)
        loss = None if labels is None else answer_loss(logits, labels.to(dev), reduction)
        return logits, loss


def checkpoint_tokenizer(folder: str | os.PathLike) -> Any:
    """A saved model's tokenizer: the project's `tokenizer.json`, or a pretrained LM's (`text_tokenizer/`)."""
    folder = Path(folder)
    if (folder / TOKENIZER_DIR).is_dir():
        return read_tokenizer(folder / TOKENIZER_DIR)
    return Tokenizer.load(folder / ckpt.TOKENIZER_FILE)


# Backend hooks for registry.py: a backend module exposes create(config_dict, tokenizer, where) and load(folder).
def create(config: dict[str, Any], tokenizer: Tokenizer | None, where: str) -> CompactVLM:
    return CompactVLM.from_config(VLMConfig.from_json(config, where=where), tokenizer)


def load(folder: str | os.PathLike) -> CompactVLM:
    return CompactVLM.from_pretrained(folder)
