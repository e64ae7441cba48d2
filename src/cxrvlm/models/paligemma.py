"""PaliGemma backend: transformers' PaliGemma (SigLIP -> linear projector -> Gemma) behind the native interface.

    model = load_paligemma("/models/paligemma-3b-pt-224")       # a local HF folder; never downloads
    model = tiny_paligemma(tokenizer)                           # random tiny config, built offline (tests, bench)
    batch = model.collate(examples, images); logits, loss = model(**batch)
    model.generate(images, prefixes); model.score_candidates(images, prefix, candidates); model.save_pretrained(dir)

The batch keys, `forward`, `encode_images` (-> `ImageFeatures`), `generate` and `score_candidates` are those of the
native `CompactVLM`, so the trainer, inference and evaluation drive both. Sequences follow PaliGemma's processor:

    [image tokens of view 0]...[view M-1] <bos> prefix \\n suffix <eos> <pad>...

with full attention over image tokens + `<bos> prefix \\n` (token_type_ids 0, HF's prefix-LM mask) and causal
attention over the suffix; the loss is on the suffix and `<eos>`. Positions are 1-based and count valid tokens only.
Grayscale views are repeated to SigLIP's 3 channels, normalised to [-1, 1] like PaliGemma's processor (area resize
instead of its bicubic). Several views: one block of image tokens per view, concatenated (as big_vision's
multi-image PaliGemma fine-tunes do); padded view slots are masked out. PaliGemma-1 was pretrained with one image, so
it has no notion of which block is which view (no view embedding, unlike the native model) until fine-tuned.

Two tokenizers: a checkpoint's own Gemma SentencePiece tokenizer (`TransformersTokenizer`, which has
`<locNNNN>`/`<segNNN>`), or the project's `Tokenizer` for tiny configs, whose image token id sits just past the text vocabulary (HF maps
such an out-of-vocabulary image id to padding before embedding, so nothing else is needed).
"""
from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from cxrvlm.models import checkpoint as ckpt
from cxrvlm.models.backend import BackendMixin, ImageFeatures, answer_loss
from cxrvlm.models.config import VLMConfig
from cxrvlm.models.constrain import ShapeConstraint
from cxrvlm.models.hf_common import require_hf
from cxrvlm.models.hf_tokenizer import TransformersTokenizer
from cxrvlm.models.tokenizer import Tokenizer

log = logging.getLogger(__name__)

BACKEND = "paligemma"
PATH_ENV = "CXRVLM_PALIGEMMA_PATH"  # folder of a paligemma-3b-pt-224 download, for create_model("paligemma-3b")
META_KEY = "cxrvlm"  # config.json key holding our VLMConfig, the tokenizer kind and any LoRA config


# ---------------------------------------------------------------------------------------------------- configs
def gemma_mlp_width(n_embd: int) -> int:
    """Gemma's GeGLU MLP has 3 matrices; 8/3 * width (to a multiple of 8) gives the native 4x GELU MLP's 8 d^2."""
    return max(8, int(round(8 * n_embd / 3 / 8)) * 8)


def hf_config(cfg: VLMConfig, vocab_size: int, special: dict[str, int]) -> Any:
    """A PaliGemmaConfig with the native config's numbers: SigLIP (vit_*) + Gemma (n_*), MHA, head 64 as native.

    The image token id is `vocab_size` (one past the text vocabulary). `special`: pad/bos/eos token ids."""
    tf = _transformers()
    vision = tf.SiglipVisionConfig(hidden_size=cfg.vit_width, intermediate_size=4 * cfg.vit_width,
                                   num_hidden_layers=cfg.vit_depth, num_attention_heads=cfg.vit_heads,
                                   num_channels=3, image_size=cfg.image_size, patch_size=cfg.vit_patch_size,
                                   vision_use_head=False)
    max_positions = max(2048, cfg.max_images * (cfg.image_size // cfg.vit_patch_size) ** 2 + cfg.max_text_len + 1)
    text = tf.GemmaConfig(vocab_size=vocab_size, hidden_size=cfg.n_embd, intermediate_size=gemma_mlp_width(cfg.n_embd),
                          num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head,
                          num_key_value_heads=cfg.n_head, head_dim=cfg.n_embd // cfg.n_head,
                          max_position_embeddings=max_positions,
                          pad_token_id=special["pad"], bos_token_id=special["bos"], eos_token_id=special["eos"])
    return tf.PaliGemmaConfig(vision_config=vision, text_config=text, image_token_index=vocab_size,
                              vocab_size=vocab_size, projection_dim=cfg.n_embd, hidden_size=cfg.n_embd)


def describe(hf_cfg: Any, name: str, max_text_len: int = 512, max_images: int = 4) -> VLMConfig:
    """The VLMConfig (model.config) describing an existing PaliGemmaConfig: image size, widths, depths, heads."""
    v, t = hf_cfg.vision_config, hf_cfg.text_config
    return VLMConfig(name=name, backend=BACKEND, image_size=v.image_size, vit_patch_size=v.patch_size,
                     vit_width=v.hidden_size, vit_depth=v.num_hidden_layers, vit_heads=v.num_attention_heads,
                     projector="linear", vocab_size=t.vocab_size, n_layer=t.num_hidden_layers,
                     n_head=t.num_attention_heads, n_embd=t.hidden_size, max_text_len=max_text_len,
                     max_images=max_images)


# ---------------------------------------------------------------------------------------------------- model
class PaliGemmaBackend(BackendMixin, nn.Module):
    """`PaliGemmaModel` (vision tower, projector, Gemma) + the LM head, with the native model's methods.

    Parameters are named as in HF's PaliGemmaForConditionalGeneration (`model.vision_tower...`,
    `model.language_model...`); a tied LM head reads the embedding matrix and has no parameter of its own."""

    def __init__(self, config: VLMConfig, hf_model: Any, tokenizer: Tokenizer | TransformersTokenizer) -> None:
        super().__init__()
        self.config, self.tokenizer = config, tokenizer
        self.hf_config = hf_model.config
        self.model = hf_model.model  # PaliGemmaModel
        self.tied = bool(getattr(self.hf_config, "tie_word_embeddings", True))
        if not self.tied:
            self.lm_head = hf_model.lm_head
        text = self.hf_config.text_config
        self.image_token_id = int(self.hf_config.image_token_id)
        self.tokens_per_image = int(text.num_image_tokens)
        self.softcap = getattr(text, "final_logit_softcapping", None)

    # ------------------------------------------------------------------------------------------------ build / IO
    @classmethod
    def from_config(cls, config: VLMConfig, tokenizer: Tokenizer | None = None) -> PaliGemmaBackend:
        """A randomly initialised model at the native config's size, with the project tokenizer."""
        tokenizer = tokenizer or Tokenizer.byte_level()
        special = {"pad": tokenizer.pad_id, "bos": tokenizer.bos_id, "eos": tokenizer.eos_id}
        config = config.replace(backend=BACKEND, projector="linear", vocab_size=tokenizer.vocab_size)
        hf = _transformers().PaliGemmaForConditionalGeneration(hf_config(config, tokenizer.vocab_size, special))
        return cls(config, hf.float(), tokenizer)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, dtype: torch.dtype = torch.float32) -> PaliGemmaBackend:
        """A folder written by `save_pretrained`, or an HF PaliGemma download (config.json, safetensors shards,
        tokenizer files); read with local_files_only, so nothing is ever downloaded."""
        _transformers()  # a clear error before any file is read
        folder = Path(folder)
        raw = ckpt.read_config(folder) if (folder / ckpt.CONFIG_FILE).is_file() else None
        if raw is None or raw.get("model_type") != BACKEND:
            raise ckpt.CheckpointError(f"{folder}: not a PaliGemma folder (config.json missing or its model_type is "
                                       f"{None if raw is None else raw.get('model_type')!r}, not 'paligemma')")
        if META_KEY in raw:
            return cls._from_own(folder, raw)
        return cls._from_hf(folder, dtype)

    @classmethod
    def _from_hf(cls, folder: Path, dtype: torch.dtype) -> PaliGemmaBackend:
        tf = _transformers()
        try:
            hf = tf.PaliGemmaForConditionalGeneration.from_pretrained(str(folder), local_files_only=True,
                                                                      dtype=dtype)
            hf_tok = tf.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except OSError as e:
            raise ckpt.CheckpointError(f"{folder}: cannot load the PaliGemma weights/tokenizer ({e})") from None
        tokenizer = TransformersTokenizer(hf_tok, int(hf.config.image_token_id))
        return cls(describe(hf.config, folder.name), hf, tokenizer).eval()

    @classmethod
    def _from_own(cls, folder: Path, raw: dict[str, Any]) -> PaliGemmaBackend:
        model = cls.from_checkpoint_config(raw, folder)
        return ckpt.load_weights_into(model, folder)

    @classmethod
    def from_checkpoint_config(cls, raw: dict[str, Any], folder: Path | None,
                               tokenizer: Tokenizer | None = None) -> PaliGemmaBackend:
        """A new (randomly initialised) model of the architecture a `save_pretrained` config.json describes,
        LoRA adapters included; the tokenizer is `tokenizer` or, when None or the checkpoint keeps a Gemma
        tokenizer, read from `folder`."""
        tf = _transformers()
        raw = dict(raw)
        meta = raw.pop(META_KEY)
        raw.pop("backend", None)
        where = f"{folder / ckpt.CONFIG_FILE if folder else 'config'}:{META_KEY}"
        config = VLMConfig.from_json(meta["config"], where=f"{where}.config")
        if meta.get("tokenizer") == "hf" or tokenizer is None:
            if folder is None:
                raise ValueError(f"{where}: the checkpoint's folder is needed to read its tokenizer")
            tokenizer = _read_tokenizer(folder, meta.get("tokenizer") == "hf", int(raw["image_token_index"]))
        model = cls(config, tf.PaliGemmaForConditionalGeneration(tf.PaliGemmaConfig.from_dict(raw)), tokenizer)
        if meta.get("lora"):
            peft = require_hf("LoRA adapters", "peft")
            peft.inject_adapter_in_model(peft.LoraConfig(**meta["lora"]), model)
        return model

    def save_pretrained(self, folder: str | os.PathLike, dtype: torch.dtype | None = None) -> Path:
        """config.json (HF's PaliGemmaConfig + our config under "cxrvlm") + model.safetensors + tokenizer files,
        atomically. Unmerged LoRA adapters are saved with their config, so loading re-creates them."""
        state = {k: v.detach().to("cpu", dtype or v.dtype).contiguous() for k, v in self.state_dict().items()}
        hf_kind = isinstance(self.tokenizer, TransformersTokenizer)
        meta = {"config": self.config.to_json(), "tokenizer": "hf" if hf_kind else "cxrvlm", "lora": _lora_meta(self)}
        data = {**self.hf_config.to_dict(), "backend": BACKEND, META_KEY: meta}
        tok_name = "tokenizer_config.json" if hf_kind else ckpt.TOKENIZER_FILE
        tok_writer = (lambda p: self.tokenizer.save(p.parent)) if hf_kind else self.tokenizer.save
        return ckpt.write_folder(folder, {
            ckpt.WEIGHTS_FILE: lambda p: save_file(state, str(p), metadata={"format": "pt"}),
            tok_name: tok_writer,
            ckpt.CONFIG_FILE: ckpt.write_json(data),  # last: the tokenizer's own save may write a config.json too
        })

    # ------------------------------------------------------------------------------------------------ batching
    def _prompt_ids(self, prefix: str) -> list[int]:
        """`<bos> prefix \\n` (PaliGemma's prompt, prefix and newline tokenized together as its processor does;
        the newline ends the full-attention prefix)."""
        return [self.tokenizer.bos_id, *self.tokenizer.encode(prefix + "\n")]

    # ------------------------------------------------------------------------------------------------ compute
    def encode_pixels(self, pixel_values: torch.Tensor, image_mask: torch.Tensor) -> ImageFeatures:
        """(B, M, 1, S, S) + (B, M) -> ImageFeatures (B, M * tokens_per_image, D); only real views are encoded."""
        B, M = image_mask.shape
        n, D = self.tokens_per_image, self.hf_config.text_config.hidden_size
        image_mask = image_mask.to(self.device, torch.bool)
        out = torch.zeros(B, M, n, D, device=self.device, dtype=self.dtype)
        if image_mask.any():
            views = pixel_values.to(self.device, self.dtype)[image_mask].expand(-1, 3, -1, -1)  # (K, 3, S, S)
            out[image_mask] = self.model.get_image_features(views).pooler_output.to(out.dtype)  # (K, n, D)
        return ImageFeatures(out.reshape(B, M * n, D), image_mask[:, :, None].expand(B, M, n).reshape(B, M * n))

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        """Hidden states (..., D) -> logits (..., V), with Gemma-2's final soft-capping when the config has it."""
        w = self.model.get_input_embeddings().weight
        logits = F.linear(h, w) if self.tied else self.lm_head(h)
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    def _run(self, feats: ImageFeatures, ids: torch.Tensor, text_mask: torch.Tensor, n_prefix: torch.Tensor,
             cache: Any = None) -> torch.Tensor:
        """Image features (B, N, D) + text ids (B, T) -> last hidden states (B, N + T, D) through HF's
        PaliGemmaModel (its prefix-LM mask: token type 0 = image + prompt, full attention; 1 = answer, causal)."""
        dev = self.device
        x = torch.cat([feats.tokens.to(dev, self.dtype), self.model.get_input_embeddings()(ids)], dim=1)
        valid = torch.cat([feats.mask.to(dev), text_mask.to(dev, torch.bool)], dim=1)  # (B, L)
        L, N = x.size(1), feats.tokens.size(1)
        token_type = (torch.arange(L, device=dev)[None] >= N + n_prefix.to(dev)[:, None]).long()
        positions = valid.long().cumsum(1).clamp(min=1)  # PaliGemma counts positions from 1
        out = self.model(inputs_embeds=x, attention_mask=valid.long(), position_ids=positions,
                         token_type_ids=token_type, past_key_values=cache, use_cache=cache is not None)
        return out.last_hidden_state

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, prefix_lengths: torch.Tensor,
                pixel_values: torch.Tensor | None = None, image_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, image_features: ImageFeatures | None = None,
                reduction: str = "mean") -> tuple[torch.Tensor, torch.Tensor | None]:
        """-> logits (B, T, V) over the text positions (logits[:, t] predicts token t + 1) and the answer loss
        ("mean" over the batch's answer tokens, "none" (B,) per example mean, "sum" (B,) per example NLL)."""
        B = input_ids.size(0)
        if image_features is None:
            if pixel_values is None or image_mask is None:
                pixel_values, image_mask = torch.zeros(B, 0, 1, 1, 1), torch.zeros(B, 0, dtype=torch.bool)
            image_features = self.encode_pixels(pixel_values, image_mask)
        feats = image_features.expand(B)
        h = self._run(feats, input_ids.to(self.device), attention_mask, prefix_lengths)
        logits = self._logits(h[:, feats.tokens.size(1):])  # (B, T, V)
        loss = None if labels is None else answer_loss(logits, labels.to(self.device), reduction)
        return logits, loss

    # ------------------------------------------------------------------------------------------------ generation
    def _banned_ids(self) -> list[int]:
        return [*super()._banned_ids(), self.image_token_id]

    def _greedy_cached(self, feats: ImageFeatures, ids: torch.Tensor, mask: torch.Tensor, steps: int,
                       shape: ShapeConstraint | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Prefill the left-padded prompts into an HF DynamicCache, then one token per step."""
        B, Tp = ids.shape
        cache = _transformers().DynamicCache(config=self.hf_config.text_config)
        h = self._run(feats, ids, mask, torch.full((B,), Tp, device=self.device), cache)
        valid = torch.cat([feats.mask.to(self.device), mask], dim=1)
        pos = valid.long().sum(1)  # (B,) the last prompt token's 1-based position
        logits = self._logits(h[:, -1])
        out, probs = [], []
        done = torch.zeros(B, dtype=torch.bool, device=self.device)
        for step in range(steps):
            tok, p = self._pick(logits, shape)
            out.append(tok), probs.append(p)
            done |= tok == self.tokenizer.eos_id
            if bool(done.all()) or step == steps - 1:
                break
            valid = torch.cat([valid, valid.new_ones(B, 1)], dim=1)
            pos = pos + 1
            o = self.model.language_model(inputs_embeds=self.model.get_input_embeddings()(tok[:, None]),
                                          attention_mask=valid.long(), position_ids=pos[:, None],
                                          past_key_values=cache, use_cache=True)
            logits = self._logits(o.last_hidden_state[:, -1])
        return torch.stack(out, 1), torch.stack(probs, 1)

    def _greedy_full(self, feats: ImageFeatures, ids: torch.Tensor, mask: torch.Tensor, steps: int,
                     shape: ShapeConstraint | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference decoding without a cache: the whole sequence again at every step."""
        B, Tp = ids.shape
        gen = ids.new_zeros(B, 0)
        out, probs = [], []
        done = torch.zeros(B, dtype=torch.bool, device=self.device)
        for _ in range(steps):
            seq = torch.cat([ids, gen], 1)
            text_mask = torch.cat([mask, torch.ones_like(gen, dtype=torch.bool)], 1)
            h = self._run(feats, seq, text_mask, torch.full((B,), Tp, device=self.device))
            tok, p = self._pick(self._logits(h[:, -1]), shape)
            out.append(tok), probs.append(p)
            gen = torch.cat([gen, tok[:, None]], 1)
            done |= tok == self.tokenizer.eos_id
            if bool(done.all()):
                break
        return torch.stack(out, 1), torch.stack(probs, 1)


def _read_tokenizer(folder: Path, hf_kind: bool, image_token_id: int) -> Tokenizer | TransformersTokenizer:
    if not hf_kind:
        return Tokenizer.load(folder / ckpt.TOKENIZER_FILE)
    hf_tok = _transformers().AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    return TransformersTokenizer(hf_tok, image_token_id)


def _transformers() -> Any:
    return require_hf("the PaliGemma backend")


def _lora_meta(model: nn.Module) -> dict[str, Any] | None:
    """The LoRA config of unmerged adapters (peft keeps it on the model), JSON-able; None without adapters."""
    if not any("lora_" in n for n, _ in model.named_parameters()):
        return None
    config = getattr(model, "peft_config", {}).get("default")
    if config is None:
        raise ValueError("model has LoRA weights but no peft_config; merge the adapters before saving")
    d = config.to_dict()
    keys = {f.name for f in dataclasses.fields(config)} & {"r", "lora_alpha", "lora_dropout", "target_modules",
                                                           "bias", "use_rslora", "modules_to_save", "fan_in_fan_out"}
    out = {k: d[k] for k in keys}
    if isinstance(out.get("target_modules"), (set, frozenset)):
        out["target_modules"] = sorted(out["target_modules"])
    return out


# ---------------------------------------------------------------------------------------------------- entry points
def tiny_paligemma(tokenizer: Tokenizer | None = None, **overrides: Any) -> PaliGemmaBackend:
    """A random tiny PaliGemma (64 px, 2-layer SigLIP and Gemma, width 64), built offline; `overrides` are
    VLMConfig keys (image_size, vit_width, n_layer, ...)."""
    base = dict(name="paligemma-tiny", image_size=64, vit_patch_size=16, vit_width=64, vit_depth=2, vit_heads=2,
                n_layer=2, n_head=2, n_embd=64, max_text_len=128)
    return PaliGemmaBackend.from_config(VLMConfig(backend=BACKEND, projector="linear", **{**base, **overrides}),
                                        tokenizer)


def load_paligemma(folder: str | os.PathLike | None = None, dtype: torch.dtype = torch.float32) -> PaliGemmaBackend:
    """PaliGemma from a local folder (`paligemma-3b-pt-224` layout), or from $CXRVLM_PALIGEMMA_PATH."""
    folder = folder or os.environ.get(PATH_ENV)
    if not folder:
        raise ValueError(f"PaliGemma needs a local checkpoint folder: pass path=... or set ${PATH_ENV} to a "
                         "paligemma-3b-pt-224 download (config.json, *.safetensors, tokenizer files)")
    if not Path(folder).is_dir():
        raise ckpt.CheckpointError(f"{folder}: PaliGemma folder not found")
    return PaliGemmaBackend.from_pretrained(folder, dtype)


# Backend hooks for registry.py (as in vlm.py): create(config_dict, tokenizer, where) and load(folder).
def create(config: dict[str, Any], tokenizer: Tokenizer | None, where: str) -> PaliGemmaBackend:
    """A new model. A JSON config with `path` (`"env"`: $CXRVLM_PALIGEMMA_PATH) loads pretrained weights; a
    checkpoint's config.json gives its architecture (and LoRA adapters) with random weights, its tokenizer read
    from the checkpoint folder (`where` names its config.json) unless one is given; otherwise the VLMConfig keys
    give a randomly initialised model of that size."""
    config = dict(config)
    path = config.pop("path", None)
    if path is not None:
        if tokenizer is not None:
            log.info("%s: a pretrained PaliGemma keeps its own tokenizer; the given one is not used", where)
        return load_paligemma(None if path == "env" else path)
    if META_KEY in config:
        folder = Path(where.split(" + ")[0]).parent
        return PaliGemmaBackend.from_checkpoint_config(config, folder if folder.is_dir() else None, tokenizer)
    return PaliGemmaBackend.from_config(VLMConfig.from_json({**config, "backend": BACKEND}, where=where), tokenizer)


def load(folder: str | os.PathLike) -> PaliGemmaBackend:
    return PaliGemmaBackend.from_pretrained(folder)
