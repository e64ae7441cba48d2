"""Vision encoders trained from scratch (a small ViT, a small ConvNet), pretrained ones (ImageNet EfficientNet-Lite,
"efficientnet", models/efficientnet.py; a transformers tower, "hf", models/hf_vision.py), and their LiteGPT-style
fusion.

Every encoder maps a grayscale image (B, 1, S, S) to a grid of tokens (B, grid * grid, out_dim), row-major.
`VisionTower` runs the configured encoders and fuses them:
- fusion "sequence" (LiteGPT): token sequences concatenated one after the other (widths aligned by a linear map
  when they differ);
- fusion "channel": every encoder's grid resampled to the first one's, features concatenated per grid cell;
then `merge_k` > 1 merges k adjacent tokens into one by concatenating their features: k neighbours in token order
(merge_mode "sequence"; LiteGPT merges 5 of its 196 + 49 tokens) or each sqrt(k) x sqrt(k) block of the grid
(merge_mode "grid", pixel shuffle). The projector's first linear layer maps the merged features to the decoder
width.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from cxrvlm.models.config import VLMConfig
from cxrvlm.models.efficientnet import EfficientNetLite
from cxrvlm.models.hf_vision import HFVisionTower
from cxrvlm.models.layers import Block, LayerNorm, init_weights

ENCODER_REGISTRY: dict[str, Callable[[VLMConfig], nn.Module]] = {}


def register_encoder(name: str) -> Callable:
    def deco(builder: Callable[[VLMConfig], nn.Module]) -> Callable[[VLMConfig], nn.Module]:
        ENCODER_REGISTRY[name] = builder
        return builder
    return deco


class ViT(nn.Module):
    """Patch embedding + learned positions + pre-LN blocks (no class token: the decoder reads every patch)."""

    def __init__(self, image_size: int, patch: int, width: int, depth: int, heads: int, bias: bool,
                 dropout: float) -> None:
        super().__init__()
        self.grid = image_size // patch
        self.out_dim = width
        self.patch_embed = nn.Conv2d(1, width, kernel_size=patch, stride=patch)
        self.pos_embed = nn.Parameter(torch.randn(1, self.grid * self.grid, width) * 0.02)
        self.blocks = nn.ModuleList(Block(width, heads, bias, dropout) for _ in range(depth))
        self.ln = LayerNorm(width, bias)
        init_weights(self.blocks, depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed  # (B, N, D)
        for block in self.blocks:
            x = block(x)
        return self.ln(x)


def _group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm, not BatchNorm: batch-independent, so a batched and a single forward agree and DDP needs no sync."""
    groups = math.gcd(channels, 8)
    return nn.GroupNorm(groups, channels)


class ResBlock(nn.Module):
    """Basic ResNet block: conv3x3-GN-GELU-conv3x3-GN + identity, GELU."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.norm1 = _group_norm(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.norm2 = _group_norm(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.norm1(self.conv1(x)))
        return F.gelu(x + self.norm2(self.conv2(h)))


class ConvNet(nn.Module):
    """A small ResNet: a 4x4 stride-4 "patchify" stem (ConvNeXt's; as strided as ResNet's 7x7/2 + max-pool, and
    cheaper), residual blocks, then per further width a stride-2 conv and residual blocks. Stride 2^(stages+1)."""

    def __init__(self, image_size: int, widths: list[int], blocks: int, bias: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = 1
        for i, w in enumerate(widths):
            conv = nn.Conv2d(prev, w, 4, stride=4, bias=False) if i == 0 else \
                nn.Conv2d(prev, w, 3, stride=2, padding=1, bias=False)
            layers += [conv, _group_norm(w), nn.GELU()]
            layers += [ResBlock(w) for _ in range(blocks)]
            prev = w
        self.body = nn.Sequential(*layers)
        self.grid = image_size // 2 ** (len(widths) + 1)
        self.out_dim = widths[-1]
        self.ln = LayerNorm(widths[-1], bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(self.body(x).flatten(2).transpose(1, 2))  # (B, grid*grid, C)


@register_encoder("vit")
def _vit(cfg: VLMConfig) -> nn.Module:
    return ViT(cfg.image_size, cfg.vit_patch_size, cfg.vit_width, cfg.vit_depth, cfg.vit_heads, cfg.bias, cfg.dropout)


@register_encoder("convnet")
def _convnet(cfg: VLMConfig) -> nn.Module:
    return ConvNet(cfg.image_size, cfg.cnn_widths, cfg.cnn_blocks, cfg.bias)


@register_encoder("hf")
def _hf(cfg: VLMConfig) -> nn.Module:
    return HFVisionTower(cfg)


@register_encoder("efficientnet")
def _efficientnet(cfg: VLMConfig) -> nn.Module:
    return EfficientNetLite(cfg.efficientnet_variant, cfg.image_size, cfg.image_mean, cfg.image_std,
                            cfg.efficientnet_pretrained)


def resample_grid(tokens: torch.Tensor, grid: int, target: int) -> torch.Tensor:
    """(B, grid*grid, D) -> (B, target*target, D): area-average when shrinking, bilinear when growing."""
    if grid == target:
        return tokens
    B, _, D = tokens.shape
    x = tokens.transpose(1, 2).reshape(B, D, grid, grid)
    if grid > target:
        x = F.adaptive_avg_pool2d(x, target)
    else:
        x = F.interpolate(x, size=(target, target), mode="bilinear", align_corners=False)
    return x.flatten(2).transpose(1, 2)


def merge_grid(tokens: torch.Tensor, grid: int, k: int) -> torch.Tensor:
    """(B, grid*grid, D) -> (B, (grid/s)^2, k * D) with s = sqrt(k): each s x s block's features concatenated
    (space-to-depth), blocks in row-major order."""
    s = math.isqrt(k)
    B, _, D = tokens.shape
    g = grid // s
    x = tokens.reshape(B, g, s, g, s, D).permute(0, 1, 3, 2, 4, 5)  # (B, g, g, s, s, D)
    return x.reshape(B, g * g, k * D)


def merge_tokens(tokens: torch.Tensor, k: int) -> torch.Tensor:
    """(B, N, D) -> (B, ceil(N / k), k * D): k adjacent tokens concatenated; zero tokens pad the last group."""
    if k == 1:
        return tokens
    B, N, D = tokens.shape
    pad = (-N) % k
    if pad:
        tokens = torch.cat([tokens, tokens.new_zeros(B, pad, D)], dim=1)
    return tokens.reshape(B, (N + pad) // k, k * D)


class VisionTower(nn.Module):
    """Configured encoders + fusion + merge: (B, 1, S, S) -> (B, num_tokens, out_dim); `grid` when still square."""

    def __init__(self, cfg: VLMConfig) -> None:
        super().__init__()
        self.encoders = nn.ModuleList(ENCODER_REGISTRY[name](cfg) for name in cfg.encoders)
        grids = [e.grid for e in self.encoders]
        dims = [e.out_dim for e in self.encoders]
        self.fusion, self.merge_k, self.merge_mode = cfg.fusion, cfg.merge_k, cfg.merge_mode
        self.target_grid = grids[0]
        if len(self.encoders) == 1 or cfg.fusion == "sequence":
            # sequence fusion concatenates tokens, so every encoder is mapped to the first one's width
            self.align = nn.ModuleList(nn.Identity() if d == dims[0] else nn.Linear(d, dims[0]) for d in dims)
            fused_tokens, fused_dim = sum(g * g for g in grids), dims[0]
        else:
            self.align = nn.ModuleList(nn.Identity() for _ in dims)
            fused_tokens, fused_dim = grids[0] ** 2, sum(dims)
        self.num_tokens = -(-fused_tokens // cfg.merge_k)
        self.out_dim = fused_dim * cfg.merge_k
        self.grid = grids[0] // math.isqrt(cfg.merge_k) if cfg.has_grid else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_first(x)[0]

    def forward_with_first(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (the tower's tokens, the first encoder's own tokens (B, its tokens, its out_dim)): a label head reads
        their mean, as `cxrvlm train-probe` trained it, and its class activation maps read them one by one."""
        raw = [enc(x) for enc in self.encoders]
        return self._fuse([align(f) for f, align in zip(raw, self.align)]), raw[0]

    def _fuse(self, feats: list[torch.Tensor]) -> torch.Tensor:
        if len(feats) == 1:
            fused = feats[0]
        elif self.fusion == "sequence":
            fused = torch.cat(feats, dim=1)
        else:
            grids = [enc.grid for enc in self.encoders]
            fused = torch.cat([resample_grid(f, g, self.target_grid) for f, g in zip(feats, grids)], dim=2)
        if self.merge_mode == "grid":
            return merge_grid(fused, self.target_grid, self.merge_k)
        return merge_tokens(fused, self.merge_k)
