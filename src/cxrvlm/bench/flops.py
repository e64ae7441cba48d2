"""Model FLOPs, counted analytically, and the machine's measured fp32 matmul peak.

Training FLOPs per sample = 3 x forward (backward = 2 x forward, Kaplan et al. 2020 / PaLM appendix B), with

    forward = 2 * sum over parts (matmul parameters of the part x tokens through it per sample)
            + 4 * sum over attention stacks (layers x width x sequence^2)      # QK^T and AV, full square

- matmul parameters: weights of Linear and Conv2d layers (a stride = kernel patch convolution is a matmul per
  patch); biases, norms and embedding look-ups are not matmuls and are left out. The tied LM head is V x d and
  runs on the text positions only (both backends compute logits there only).
- tokens: ViT / SigLIP layers see every patch of every view; the projector sees the tokens it receives (after
  the native model's token merging); the decoder sees image tokens + text tokens.
- attention: the full L x L square is counted, as SDPA with an explicit prefix-LM mask computes it all.
MFU = (training FLOPs per sample x samples/s) / measured matmul peak.

Checked against torch.utils.flop_counter.FlopCounterMode on one training step of cxrvlm-tiny and its PaliGemma
twin: the matmul terms agree within 1% (the counter skips the input gradient of the patch convolution, and does
not count the CPU flash-attention kernel, which the attention term below covers).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Part:
    """One part of a model: its matmul parameters and the tokens per sample it processes; for a transformer
    stack also its attention (layers, width, sequence length, sequences per sample)."""

    name: str
    params: int
    tokens: int
    attn_layers: int = 0
    attn_width: int = 0
    seq: int = 0
    n_seq: int = 0

    def forward_flops(self) -> float:
        return 2.0 * self.params * self.tokens + 4.0 * self.attn_layers * self.attn_width * self.seq ** 2 * self.n_seq


def matmul_params(module: nn.Module) -> int:
    """Weights of the Linear and Conv2d layers under `module` (LoRA's A/B matrices are Linear layers too)."""
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))


def native_parts(model: nn.Module, views: int, text_len: int) -> list[Part]:
    """Parts of the native CompactVLM (ViT encoders) for one sample of `views` views and `text_len` text tokens."""
    cfg = model.config
    if list(cfg.encoders) != ["vit"]:
        raise ValueError(f"bench counts FLOPs for ViT encoders only; config {cfg.name!r} has {cfg.encoders}")
    patches = (cfg.image_size // cfg.vit_patch_size) ** 2
    dec_seq = model.tokens_per_image * views + text_len
    return [
        Part("vision", matmul_params(model.vision), patches * views, cfg.vit_depth, cfg.vit_width, patches, views),
        Part("projector", matmul_params(model.projector), model.vision.num_tokens * views),
        Part("decoder", matmul_params(model.decoder.h), dec_seq, cfg.n_layer, cfg.n_embd, dec_seq, 1),
        Part("lm_head", model.decoder.wte.weight.numel(), text_len),
    ]


def paligemma_parts(model: nn.Module, views: int, text_len: int) -> list[Part]:
    """Parts of the PaliGemma backend: SigLIP, the linear projector, Gemma, the tied LM head."""
    v, t = model.hf_config.vision_config, model.hf_config.text_config
    patches = (v.image_size // v.patch_size) ** 2
    dec_seq = patches * views + text_len
    inner = model.model
    return [
        Part("vision", matmul_params(inner.vision_tower), patches * views, v.num_hidden_layers, v.hidden_size,
             patches, views),
        Part("projector", matmul_params(inner.multi_modal_projector), patches * views),
        Part("decoder", matmul_params(inner.language_model.layers), dec_seq, t.num_hidden_layers,
             t.num_attention_heads * t.head_dim, dec_seq, 1),
        Part("lm_head", inner.get_input_embeddings().weight.numel(), text_len),
    ]


def train_flops(parts: list[Part]) -> float:
    """Training FLOPs per sample (forward + backward)."""
    return 3.0 * sum(p.forward_flops() for p in parts)


def matmul_gflops(n: int = 2048, repeats: int = 1) -> list[float]:
    """GFLOP/s of `repeats` fp32 n x n @ n x n torch.matmul calls (2 n^3 FLOPs each), after one warm-up call."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    torch.matmul(a, b, out=out)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(a, b, out=out)
        rates.append(2.0 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return rates


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Median GFLOP/s of `repeats` fp32 n x n matmuls."""
    return statistics.median(matmul_gflops(n, repeats))
