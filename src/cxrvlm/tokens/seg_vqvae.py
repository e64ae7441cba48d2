"""The mask VQ-VAE: a 64x64 mask -> a 4x4 grid of codes from a 128-entry codebook -> 64x64 logits.

The layout follows the mask VAE that PaliGemma uses (big_vision `pp/proj/paligemma/segmentation.py` and
`evaluators/proj/paligemma/transfers/segmentation.py`, after arXiv 2301.02229), so that one module runs both our
small trained weights and PaliGemma's released `vae-oid.npz`, and both are stored under the same tensor names:

    encoder.{0,2,4,6}   four stride-2 convs (TF "SAME" padding) + ReLU         (B,1,64,64) -> (B,C,4,4)
    encoder.{8,9}.net   two residual blocks: conv3x3, ReLU, conv3x3, ReLU, conv1x1 (+ input)
    encoder.10          conv1x1 -> embedding_dim                                -> (B,D,4,4)
    _vq_vae._embedding  codebook (num_codes, D); a code is the nearest entry (L2)
    decoder.0           conv1x1 D -> C + ReLU
    decoder.{2,3}.net   two residual blocks
    decoder.{4,6,8,10}  four ConvTranspose(k=4, s=2, p=1) + ReLU                 -> (B,c,64,64)
    decoder.12          conv1x1 -> 1 channel: a score, > 0 inside the mask

Weights use PyTorch layout (out, in, kh, kw), as `vae-oid.npz` does. Codes are read row-major over the 4x4 grid.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

GRID = 4  # codes per side: 4x4 = 16 tokens per mask
SIZE = 64  # side of the mask the VAE sees, in pixels


@dataclass
class VQVAEConfig:
    """Shapes of the mask VQ-VAE. Defaults are the small model shipped with the package (~0.55 M parameters)."""

    num_codes: int = 128  # PaliGemma's <seg000>..<seg127>
    embedding_dim: int = 64  # PaliGemma uses 512; 64 is ample for lung shapes and keeps the file small
    enc_channels: tuple[int, ...] = (16, 32, 64, 64)  # output channels of the four stride-2 convs
    enc_kernels: tuple[int, ...] = (4, 4, 4, 4)
    res_channels: int = 64  # width of the residual blocks (PaliGemma: 128)
    dec_channels: tuple[int, ...] = (64, 32, 16, 16)  # outputs of the four transposed convs (PaliGemma: 128,64,32,16)
    has_encoder: bool = True  # False for a decoder-only checkpoint

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> VQVAEConfig:
        known = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class ConvSame(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding (asymmetric when the kernel and stride call for it), as the encoder of
    `vae-oid.npz` was run in big_vision; for k=4, s=2 on even sizes it is the symmetric padding 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride)


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(
            ConvSame(channels, channels, 3), nn.ReLU(), ConvSame(channels, channels, 3), nn.ReLU(),
            ConvSame(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


def build_encoder(cfg: VQVAEConfig) -> nn.Sequential:
    layers: list[nn.Module] = []
    c_in = 1
    for c_out, k in zip(cfg.enc_channels, cfg.enc_kernels):
        layers += [ConvSame(c_in, c_out, k, stride=2), nn.ReLU()]
        c_in = c_out
    if c_in != cfg.res_channels:
        raise ValueError(f"encoder: last conv width {c_in} must equal res_channels {cfg.res_channels}")
    layers += [ResBlock(c_in), ResBlock(c_in), ConvSame(c_in, cfg.embedding_dim, 1)]
    return nn.Sequential(*layers)


def build_decoder(cfg: VQVAEConfig) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cfg.embedding_dim, cfg.res_channels, 1), nn.ReLU()]
    layers += [ResBlock(cfg.res_channels), ResBlock(cfg.res_channels)]
    c_in = cfg.res_channels
    for c_out in cfg.dec_channels:
        layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
        c_in = c_out
    layers.append(nn.Conv2d(c_in, 1, 1))
    return nn.Sequential(*layers)


class MaskVQVAE(nn.Module):
    """Encoder, codebook, decoder. `codebook` is a buffer: training updates it by EMA (train.mask_tokenizer), not
    SGD."""

    def __init__(self, cfg: VQVAEConfig | None = None):
        super().__init__()
        self.cfg = cfg or VQVAEConfig()
        self.encoder = build_encoder(self.cfg) if self.cfg.has_encoder else None
        self.decoder = build_decoder(self.cfg)
        self.register_buffer("codebook", torch.randn(self.cfg.num_codes, self.cfg.embedding_dim) * 0.1)

    # --- pieces ---------------------------------------------------------------------------------------------
    def encode_latent(self, masks: torch.Tensor) -> torch.Tensor:
        """(B,1,64,64) in [0,1] -> continuous latents (B,D,4,4). Input is shifted to [-1,1] as big_vision does."""
        if self.encoder is None:
            raise ValueError("this mask VQ-VAE checkpoint has no encoder (decoder-only): it can decode, not encode")
        return self.encoder(2.0 * (masks - 0.5))

    def quantise(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (B,D,4,4) -> codes (B,16) long, nearest codebook entry by L2, row-major over the grid."""
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)  # (B*16, D)
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.T + self.codebook.pow(2).sum(1)
        return dist.argmin(1).view(b, h * w)

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B,16) -> quantised latents (B,D,4,4)."""
        b = codes.shape[0]
        return self.codebook[codes.reshape(-1)].view(b, GRID, GRID, -1).permute(0, 3, 1, 2)

    def decode_latent(self, q: torch.Tensor) -> torch.Tensor:
        """Quantised latents (B,D,4,4) -> scores (B,1,64,64); > 0 means inside the mask."""
        return self.decoder(q)

    # --- whole path -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, masks: torch.Tensor) -> torch.Tensor:
        """(B,1,64,64) float in [0,1] -> codes (B,16) long in [0, num_codes)."""
        return self.quantise(self.encode_latent(masks))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B,16) -> scores (B,1,64,64)."""
        return self.decode_latent(self.embed(codes))

    # --- storage: one flat dict with vae-oid.npz's tensor names ---------------------------------------------
    def export_tensors(self) -> dict[str, torch.Tensor]:
        out = {"_vq_vae._embedding": self.codebook}
        for prefix, part in (("encoder", self.encoder), ("decoder", self.decoder)):
            if part is not None:
                out.update({f"{prefix}.{k}": v for k, v in part.state_dict().items()})
        return {k: v.detach().contiguous().float() for k, v in out.items()}

    def import_tensors(self, tensors: dict[str, torch.Tensor], source: str) -> None:
        """Load `export_tensors`-style names; ValueError naming `source` and the tensor on any mismatch."""
        own = self.export_tensors()
        missing = sorted(set(own) - set(tensors))
        if missing:
            raise ValueError(f"{source}: missing tensor(s) {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        for k, v in own.items():
            if tuple(tensors[k].shape) != tuple(v.shape):
                raise ValueError(f"{source}: tensor {k} has shape {tuple(tensors[k].shape)}, expected {tuple(v.shape)}")
        with torch.no_grad():
            self.codebook.copy_(tensors["_vq_vae._embedding"])
            for prefix, part in (("encoder", self.encoder), ("decoder", self.decoder)):
                if part is not None:
                    sd = {k[len(prefix) + 1:]: t for k, t in tensors.items() if k.startswith(prefix + ".")}
                    part.load_state_dict({k: sd[k] for k in part.state_dict()})
