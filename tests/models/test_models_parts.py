"""The parts: preprocessing, encoders, fusion and merging, projectors, KV cache."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cxrvlm.models.config import VLMConfig
from cxrvlm.models.layers import KVCache, Linear
from cxrvlm.models.preprocess import ImageInputError, preprocess, preprocess_views, to_gray
from cxrvlm.models.projector import Projector
from cxrvlm.models.vision_encoder import ConvNet, VisionTower, merge_grid, merge_tokens, resample_grid


def test_preprocess_resizes_and_normalises() -> None:
    img = np.zeros((50, 40), np.float32)
    img[:, 20:] = 1.0  # right half white
    x = preprocess(img, 16)
    assert x.shape == (1, 16, 16) and x.dtype == torch.float32
    assert x.min() == -1.0 and x.max() == 1.0  # [0, 1] -> [-1, 1]
    assert (x[0, :, :8] == -1).all() and (x[0, :, 8:] == 1).all()  # plain resize: halves stay halves


def test_to_gray_accepts_common_arrays() -> None:
    assert to_gray(np.full((4, 4), 255, np.uint8)).max() == 1.0
    assert to_gray(np.full((4, 4), 65535, np.uint16)).max() == 1.0
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 255
    assert np.allclose(to_gray(rgb), 1 / 3)
    for bad, match in [(np.full((4, 4), np.nan, np.float32), "NaN"), (np.zeros(5, np.float32), "2-D"),
                       (np.zeros((4, 4), np.int64), "dtype"), (np.full((4, 4), -0.5, np.float32), "range")]:
        with pytest.raises(ImageInputError, match=match):
            to_gray(bad)


def test_preprocess_views_checks_slots() -> None:
    assert preprocess_views([], 8, 0.5, 0.5, 2).shape == (0, 1, 8, 8)
    with pytest.raises(ImageInputError, match="wrap it in a list"):
        preprocess_views(np.zeros((8, 8), np.float32), 8, 0.5, 0.5, 2)
    with pytest.raises(ImageInputError, match="example 3 view 1"):
        preprocess_views([np.zeros((8, 8), np.float32), np.zeros(3, np.float32)], 8, 0.5, 0.5, 2, "example 3")


def test_merge_grid_concatenates_2x2_blocks() -> None:
    tokens = torch.arange(16, dtype=torch.float32).view(1, 16, 1)  # a 4x4 grid, value = row-major index
    merged = merge_grid(tokens, 4, 4)
    assert merged.shape == (1, 4, 4)
    assert merged[0].tolist() == [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]


def test_merge_tokens_pads_the_last_group() -> None:
    tokens = torch.arange(7, dtype=torch.float32).view(1, 7, 1)
    merged = merge_tokens(tokens, 5)
    assert merged[0].tolist() == [[0, 1, 2, 3, 4], [5, 6, 0, 0, 0]]
    assert merge_tokens(tokens, 1) is tokens


def test_resample_grid_shapes_and_mean() -> None:
    x = torch.ones(2, 16, 3)
    assert torch.allclose(resample_grid(x, 4, 2), torch.ones(2, 4, 3))
    assert resample_grid(x, 4, 8).shape == (2, 64, 3)


def test_convnet_grid() -> None:
    net = ConvNet(64, [8, 16, 16], 1, bias=False)
    assert net.grid == 4 and net(torch.zeros(2, 1, 64, 64)).shape == (2, 16, 16)


@pytest.mark.parametrize("kw, tokens, dim", [
    (dict(encoders=["vit"]), 16, 32),
    (dict(encoders=["vit"], merge_k=4, merge_mode="grid"), 4, 128),
    (dict(encoders=["vit", "convnet"], fusion="sequence", merge_k=5), 7, 160),  # (16 + 16) / 5, rounded up
    (dict(encoders=["vit", "convnet"], fusion="channel"), 16, 32 + 16),
    (dict(encoders=["convnet", "vit"], fusion="channel", cnn_widths=[8, 16, 16]), 4, 16 + 32),  # 2x2 grid
])
def test_vision_tower_fusion(kw, tokens: int, dim: int) -> None:
    base = dict(image_size=32, vit_patch_size=8, vit_width=32, vit_depth=1, vit_heads=2, cnn_widths=[8, 16])
    cfg = VLMConfig(**{**base, **kw})
    tower = VisionTower(cfg)
    out = tower(torch.zeros(3, 1, 32, 32))
    assert out.shape == (3, tokens, dim) == (3, tower.num_tokens, tower.out_dim)


def test_cabstractor_pools_to_a_fixed_token_count() -> None:
    cfg = VLMConfig(image_size=64, vit_patch_size=8, n_embd=24, n_head=2, projector="cabstractor",
                    projector_tokens=9, projector_depth=1, projector_hidden=16)
    proj = Projector(cfg, in_dim=32, in_tokens=64, grid=8)
    assert proj.num_tokens == 9
    assert proj(torch.randn(2, 64, 32)).shape == (2, 9, 24)


def test_kv_cache_bounds() -> None:
    cache = KVCache(1, 1, 1, 3, 2, torch.float32, torch.device("cpu"))
    k, _ = cache.update(0, torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2))
    cache.advance(2)
    assert k.shape == (1, 1, 2, 2)
    with pytest.raises(ValueError, match="KV cache full"):
        cache.update(0, torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2))


def test_linear_inference_path_follows_weight_updates() -> None:
    """The cached transposed weight used in inference mode is refreshed after an optimizer step and a load."""
    torch.manual_seed(0)
    layer = Linear(8, 5, bias=True)
    x = torch.randn(3, 8)
    with torch.inference_mode():
        assert torch.allclose(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias), atol=1e-6)
    layer(x).sum().backward()
    torch.optim.SGD(layer.parameters(), lr=1.0).step()
    with torch.inference_mode():
        assert torch.allclose(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias), atol=1e-6)
    layer.load_state_dict({"weight": torch.zeros(5, 8), "bias": torch.ones(5)})
    with torch.inference_mode():
        assert torch.equal(layer(x), torch.ones(3, 5))
