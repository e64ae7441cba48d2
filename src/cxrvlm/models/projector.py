"""Projectors: vision tokens (B, N, in_dim) -> decoder-width tokens (B, num_tokens, n_embd).

- "linear": one linear map (LLaVA-1.0).
- "mlp": Linear-GELU-Linear (LLaVA-1.5; LiteGPT's projector after token merging).
- "cabstractor": Honeybee's C-Abstractor as used by M4CXR (1369 -> 361 tokens): learned positions, ResNet
  bottleneck blocks on the token grid, adaptive average pooling to a fixed token count (keeps locality, unlike a
  resampler's free queries), more ResNet blocks, then an MLP read-out. Honeybee's RegNet blocks carry a
  squeeze-excitation branch; ours are plain bottlenecks with LayerNorm.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cxrvlm.models.config import VLMConfig


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each grid cell of (B, C, H, W)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Bottleneck(nn.Module):
    """ResNet bottleneck (bottle ratio 1, as Honeybee): 1x1 - 3x3 - 1x1 convs with LayerNorm + SiLU, residual."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 1, bias=False), LayerNorm2d(c), nn.SiLU(),
            nn.Conv2d(c, c, 3, padding=1, bias=False), LayerNorm2d(c), nn.SiLU(),
            nn.Conv2d(c, c, 1, bias=False), LayerNorm2d(c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x + self.body(x))


class CAbstractor(nn.Module):
    def __init__(self, in_dim: int, hidden: int, out_dim: int, grid: int, num_tokens: int, depth: int) -> None:
        super().__init__()
        self.grid, self.num_tokens = grid, num_tokens
        self.pos_embed = nn.Parameter(torch.randn(1, grid * grid, in_dim) * 0.02)
        self.stem = nn.Conv2d(in_dim, hidden, 1)
        self.s1 = nn.Sequential(*(Bottleneck(hidden) for _ in range(depth)))
        self.pool = nn.AdaptiveAvgPool2d(math.isqrt(num_tokens))
        self.s2 = nn.Sequential(*(Bottleneck(hidden) for _ in range(depth)))
        self.readout = nn.Sequential(nn.Linear(hidden, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        x = (x + self.pos_embed).transpose(1, 2).reshape(B, D, self.grid, self.grid)
        x = self.s2(self.pool(self.s1(self.stem(x))))  # (B, hidden, side, side)
        return self.readout(x.flatten(2).transpose(1, 2))  # (B, num_tokens, out_dim)


class Projector(nn.Module):
    """The configured projector; `num_tokens` = tokens per image it hands the decoder."""

    def __init__(self, cfg: VLMConfig, in_dim: int, in_tokens: int, grid: int | None) -> None:
        super().__init__()
        hidden = cfg.projector_hidden or cfg.n_embd
        self.num_tokens = in_tokens
        if cfg.projector == "linear":
            self.net: nn.Module = nn.Linear(in_dim, cfg.n_embd)
        elif cfg.projector == "mlp":
            self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, cfg.n_embd))
        else:
            assert grid is not None, "config validation guarantees a grid for the C-Abstractor"
            self.net = CAbstractor(in_dim, hidden, cfg.n_embd, grid, cfg.projector_tokens, cfg.projector_depth)
            self.num_tokens = cfg.projector_tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
