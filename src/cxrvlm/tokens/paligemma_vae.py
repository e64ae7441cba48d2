"""Load PaliGemma's released mask VQ-VAE (`vae-oid.npz`, big_vision's `gs://big_vision/paligemma/vae-oid.npz`).

The file is a flat npz of PyTorch-layout arrays: `_vq_vae._embedding` (128, 512), `decoder.{0,2.net.*,3.net.*,4,6,
8,10,12}.{weight,bias}` and, in the released file, `encoder.{0,2,4,6,8.net.*,9.net.*,10}.{weight,bias}`. Shapes
are read from the file (so a file of the same structure with other widths loads too) and every tensor is checked.
big_vision runs the decoder with flax `ConvTranspose(kernel 4, stride 2, padding 2, transpose_kernel=True)`, which
is PyTorch's `ConvTranspose2d(kernel 4, stride 2, padding 1)` on the same weights, and the encoder with TF "SAME"
padding (`ConvSame`).
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from cxrvlm.tokens.seg_vqvae import MaskVQVAE, VQVAEConfig

EMBEDDING = "_vq_vae._embedding"
ENC_CONVS = ("encoder.0", "encoder.2", "encoder.4", "encoder.6")
DEC_TCONVS = ("decoder.4", "decoder.6", "decoder.8", "decoder.10")


def _shape(arrays: dict[str, np.ndarray], key: str, ndim: int, path: Path) -> tuple[int, ...]:
    if key not in arrays:
        raise ValueError(f"{path}: array {key!r} is missing; not a PaliGemma mask VAE file")
    shape = tuple(arrays[key].shape)
    if len(shape) != ndim:
        raise ValueError(f"{path}: array {key!r} has shape {shape}, expected {ndim} dimensions")
    return shape


def config_from_arrays(arrays: dict[str, np.ndarray], path: Path) -> VQVAEConfig:
    """Infer the VQ-VAE shapes from the arrays of a vae-oid-style file."""
    num_codes, dim = _shape(arrays, EMBEDDING, 2, path)
    res = _shape(arrays, "decoder.0.weight", 4, path)[0]
    dec = tuple(_shape(arrays, f"{k}.weight", 4, path)[1] for k in DEC_TCONVS)  # ConvTranspose: (in, out, kh, kw)
    has_encoder = any(k.startswith("encoder.") for k in arrays)
    enc, kernels = (16, 32, 64, res), (4, 4, 4, 4)
    if has_encoder:
        shapes = [_shape(arrays, f"{k}.weight", 4, path) for k in ENC_CONVS]
        enc = tuple(s[0] for s in shapes)
        kernels = tuple(s[2] for s in shapes)
    return VQVAEConfig(num_codes=num_codes, embedding_dim=dim, enc_channels=enc, enc_kernels=kernels,
                       res_channels=res, dec_channels=dec, has_encoder=has_encoder)


def load_paligemma_npz(path: str | Path) -> MaskVQVAE:
    """`vae-oid.npz` (or a file of the same structure) -> MaskVQVAE in eval mode; ValueError naming the problem."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: PaliGemma mask VAE file not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: np.asarray(npz[k], np.float32) for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: cannot read as an npz archive ({e})") from None
    cfg = config_from_arrays(arrays, path)
    model = MaskVQVAE(cfg)
    model.import_tensors({k: torch.from_numpy(v) for k, v in arrays.items()}, str(path))
    return model.eval()
