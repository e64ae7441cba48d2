"""A pretrained causal language model from a local transformers folder (Llama, Mistral, Qwen2, Gemma, GPT-2, ...)
as the native VLM's decoder: the LLaVA / M4CXR recipe of a (pretrained) encoder, a projector and an LLM.

    create_model("m4cxr-style", decoder="hf", hf_text_path="/models/llm", encoders=["hf"],
                 hf_vision_path="/models/rad-dino", image_size=518)

The LM keeps everything the native model has around its decoder: view embeddings, the attention mask (prefix-LM,
as PaliGemma, or `attention="causal"`: the text read causally, as the LM was pretrained), candidate scoring and the
answer-shape constraint; a training stage's "lora" adapts it through peft. Its own tokenizer replaces the project's,
with `<locNNNN>`, `<segNNN>` and `<sep>` (and `<bos>`/`<pad>` where the LM has none) added and the embeddings
grown to match; n_embd, n_layer and n_head are the LM's. A new model reads the folder once; a saved checkpoint holds
the LM's weights, its config and its tokenizer (`text_tokenizer/`), and loads without the folder.
"""
from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cxrvlm.models.config import ConfigError, VLMConfig
from cxrvlm.models.hf_common import architecture, require_hf
from cxrvlm.models.hf_tokenizer import TransformersTokenizer
from cxrvlm.models.tokenizer import BOS, PAD, SEP
from cxrvlm.tokens.loc import LOC_TOKENS
from cxrvlm.tokens.seg import SEG_TOKENS

log = logging.getLogger(__name__)

TOKENIZER_DIR = "text_tokenizer"  # inside a checkpoint folder


def _transformers() -> Any:
    return require_hf("a pretrained language model (decoder 'hf')")


def wrap_tokenizer(hf_tok: Any) -> Any:
    """The LM's HF tokenizer behind the project `Tokenizer`'s interface, with the tokens the tasks need added
    (idempotent: a saved checkpoint's tokenizer already has them)."""
    vocab = hf_tok.get_vocab()
    missing = [t for t in (*LOC_TOKENS, *SEG_TOKENS) if t not in vocab]
    if missing:
        hf_tok.add_tokens(missing)
    special: dict[str, str] = {}
    if hf_tok.bos_token is None:
        special["bos_token"] = BOS
    if hf_tok.pad_token is None or hf_tok.pad_token_id == hf_tok.eos_token_id:
        special["pad_token"] = PAD  # the pad is never generated; an <eos> used as pad would never end an answer
    if special:
        hf_tok.add_special_tokens(special)
    if SEP not in vocab:
        hf_tok.add_tokens([SEP], special_tokens=True)
    if hf_tok.eos_token is None:
        raise ValueError(f"tokenizer {type(hf_tok).__name__} has no end-of-sequence token")
    return TransformersTokenizer(hf_tok, None, sep_token=SEP)


def read_tokenizer(folder: str | Path) -> Any:
    transformers = _transformers()
    try:
        return wrap_tokenizer(transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True))
    except (OSError, ValueError) as e:
        raise ValueError(f"{folder}: no usable tokenizer ({e})") from None


def resolve_hf_text(cfg: VLMConfig, tokenizer: Any) -> tuple[VLMConfig, Any]:
    """(config, tokenizer) of a model whose decoder is "hf": a new one reads the LM's config and tokenizer from
    hf_text_path; a checkpoint's config already has the LM's and must come with its tokenizer. Others unchanged."""
    if cfg.decoder != "hf":
        return cfg, tokenizer
    if cfg.hf_text_config:
        if not isinstance(tokenizer, TransformersTokenizer):
            raise ConfigError(f"config {cfg.name!r}: a saved 'hf' decoder needs its own tokenizer (in "
                              f"{TOKENIZER_DIR}/ of the checkpoint), not {type(tokenizer).__name__}")
        return cfg, tokenizer
    folder = Path(cfg.hf_text_path)
    if not (folder / "config.json").is_file():
        raise ValueError(f"hf_text_path {str(folder)!r}: no config.json (expected a local transformers download of "
                         "a causal language model)")
    transformers = _transformers()
    try:
        lm_config = transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"hf_text_path {str(folder)!r}: transformers cannot read it ({e})") from None
    lm_config = lm_config.get_text_config() if hasattr(lm_config, "get_text_config") else lm_config
    if tokenizer is not None:
        log.info("%s: a pretrained language model keeps its own tokenizer; the given one is not used", folder)
    tokenizer = read_tokenizer(folder)
    d = architecture(lm_config)
    width, heads = int(lm_config.hidden_size), int(lm_config.num_attention_heads)
    return cfg.replace(hf_text_config=d, n_embd=width, n_head=heads, n_layer=int(lm_config.num_hidden_layers),
                       vocab_size=0), tokenizer


class _Cache:
    """The native cache's `.length` over a transformers DynamicCache."""

    def __init__(self, hf_cache: Any) -> None:
        self.hf, self.length = hf_cache, 0


class HFDecoder(nn.Module):
    """The native decoder's interface (`embed`, `forward(x, attn_mask, cache)`, `lm_head`, `new_cache`) over a
    transformers causal LM. Positions count the valid tokens (image and text) the mask lets the sequence see."""

    def __init__(self, cfg: VLMConfig) -> None:
        super().__init__()
        transformers = _transformers()
        d = dict(cfg.hf_text_config)
        lm_config = transformers.AutoConfig.for_model(d.pop("model_type"), **d)
        self.dtype = getattr(torch, cfg.hf_dtype)
        if cfg.hf_text_path:  # a new model: the pretrained weights; a saved checkpoint brings its own
            lm = transformers.AutoModelForCausalLM.from_pretrained(cfg.hf_text_path, local_files_only=True,
                                                                    dtype=self.dtype)
        else:
            lm = transformers.AutoModelForCausalLM.from_config(lm_config).to(self.dtype)
        lm.resize_token_embeddings(cfg.vocab_size)  # the tokens added to its tokenizer
        self.base = getattr(lm, lm.base_model_prefix)
        out, inp = lm.get_output_embeddings(), lm.get_input_embeddings()
        self.tied = out is None or out.weight is inp.weight
        if not self.tied:
            self.head = out  # a tied head has no tensor of its own (no aliased tensors in the safetensors file)
        self.lm_config = lm.config
        self.softcap = getattr(lm.config, "final_logit_softcapping", None)
        # transformers renamed `past_key_values` to `cache` (the old name warns, then goes)
        params = inspect.signature(self.base.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"

    def embed(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """ids (B, T) -> (B, T, C); the LM places tokens by `position_ids` in `forward`, so positions are unused."""
        return self.base.get_input_embeddings()(ids)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None, cache: _Cache | None = None) -> torch.Tensor:
        """x (B, L, C); attn_mask bool (B, 1, L, cached + L), True = may attend, None = every key; -> (B, L, C)."""
        x = x.to(self.dtype)  # image features come from the float32 projector
        B, L, _ = x.shape
        past = cache.length if cache is not None else 0
        if attn_mask is None:
            positions = torch.arange(past, past + L, device=x.device).expand(B, L)
            mask = None
        else:
            valid = attn_mask[:, 0].any(dim=1)  # (B, cached + L): keys some query may see
            positions = (valid.long().cumsum(1) - 1).clamp(min=0)[:, -L:]
            mask = torch.zeros(attn_mask.shape, dtype=x.dtype, device=x.device)
            mask = mask.masked_fill(~attn_mask, torch.finfo(x.dtype).min)  # additive: eager and SDPA read it
        out = self.base(inputs_embeds=x, attention_mask=mask, position_ids=positions, use_cache=cache is not None,
                        **{self._cache_kw: None if cache is None else cache.hf})
        if cache is not None:
            cache.length += L
        return out.last_hidden_state

    def lm_head(self, h: torch.Tensor) -> torch.Tensor:
        """(..., C) -> float32 logits (..., V)."""
        logits = F.linear(h, self.base.get_input_embeddings().weight) if self.tied else self.head(h)
        logits = logits.float()
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    def new_cache(self, batch: int, max_len: int, like: torch.Tensor) -> _Cache:
        return _Cache(_transformers().DynamicCache(config=self.lm_config))
