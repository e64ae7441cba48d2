"""A pretrained transformers vision tower as the native VLM's encoder ("hf"): read from a local folder, normalised as
it was pretrained, saved into and reloaded from a cxrvlm checkpoint without the folder. Tiny random towers are
written in the test (Rad-DINO's DINOv2 layout, a full SigLIP checkpoint); nothing is downloaded."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from cxrvlm.models import create_model, load_model
from cxrvlm.models.config import ConfigError
from cxrvlm.models.hf_vision import HFVisionTower, read_tower_config, resolve_hf_vision

from model_fixtures import TINY, example, views

transformers = pytest.importorskip("transformers")

PROMPT = "What is the diagnosis of the X-ray image?"
RAD_DINO_NORM = {"image_mean": [0.5307, 0.5307, 0.5307], "image_std": [0.2583, 0.2583, 0.2583]}
TOWER = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, patch_size=8)


def _dinov2_folder(path, image_size: int = 48):
    """A tiny random DINOv2 (Rad-DINO's architecture) saved as a download is, with Rad-DINO's normalisation."""
    torch.manual_seed(1)
    model = transformers.Dinov2Model(transformers.Dinov2Config(image_size=image_size, **TOWER))
    model.save_pretrained(str(path))
    (path / "preprocessor_config.json").write_text(json.dumps(RAD_DINO_NORM))
    return path, model


def _model(tokenizer, folder, **overrides):
    torch.manual_seed(0)
    return create_model("cxrvlm-tiny", tokenizer=tokenizer, **{**TINY, "encoders": ["hf"],
                                                                "hf_vision_path": str(folder), **overrides}).eval()


def test_the_tower_keeps_its_pretrained_weights_and_trains_the_rest(tmp_path, tokenizer) -> None:
    folder, reference = _dinov2_folder(tmp_path / "rad-dino")
    model = _model(tokenizer, folder)
    tower = model.vision.encoders[0]
    assert isinstance(tower, HFVisionTower) and tower.grid == 4 and tower.out_dim == 32  # 32 px / 8 px patches
    for name, value in reference.state_dict().items():
        assert torch.equal(tower.model.state_dict()[name], value), name
    assert model.config.hf_vision_config["model_type"] == "dinov2"
    assert model.config.hf_vision_mean == RAD_DINO_NORM["image_mean"]
    model.train()
    batch = model.collate([example(PROMPT, "tuberculosis")], [views(1)])
    _, loss = model(**batch)
    loss.backward()
    assert tower.model.embeddings.patch_embeddings.projection.weight.grad.abs().sum() > 0
    probs = model.eval().score_candidates(views(1), PROMPT, ["normal", "tuberculosis"])
    assert abs(sum(probs) - 1) < 1e-6


def test_the_tower_sees_the_film_as_it_was_pretrained(tmp_path, tokenizer) -> None:
    folder, reference = _dinov2_folder(tmp_path / "rad-dino")
    tower = _model(tokenizer, folder).vision.encoders[0]
    film = torch.rand(2, 1, 32, 32)
    x = (film - 0.5) / 0.5  # the VLM normalises to [-1, 1]; the tower undoes it and applies Rad-DINO's mean and std
    expected_input = (film.expand(-1, 3, -1, -1) - 0.5307) / 0.2583
    with torch.no_grad():
        expected = reference.eval()(pixel_values=expected_input).last_hidden_state[:, 1:]  # CLS dropped
        got = tower(x)
    assert got.shape == (2, 16, 32)
    assert torch.allclose(got, expected, atol=1e-5)


def test_a_saved_checkpoint_loads_without_the_towers_folder(tmp_path, tokenizer) -> None:
    folder, _ = _dinov2_folder(tmp_path / "rad-dino")
    model = _model(tokenizer, folder)
    model.save_pretrained(tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["hf_vision_path"] == "" and saved["hf_vision_config"]["patch_size"] == 8
    shutil.rmtree(folder)
    again = load_model(tmp_path / "run")
    image = views(1)
    assert np.allclose(again.score_candidates(image, PROMPT, ["normal", "tuberculosis"]),
                       model.score_candidates(image, PROMPT, ["normal", "tuberculosis"]), atol=1e-6)
    assert again.generate([image], [PROMPT], max_new_tokens=4) == model.generate([image], [PROMPT], max_new_tokens=4)


def test_a_full_siglip_checkpoint_gives_its_vision_half_at_another_image_size(tmp_path, tokenizer) -> None:
    torch.manual_seed(2)
    siglip = transformers.SiglipModel(transformers.SiglipConfig(
        vision_config=dict(image_size=64, **TOWER),
        text_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                         vocab_size=99, bos_token_id=None, eos_token_id=None)))
    siglip.save_pretrained(str(tmp_path / "siglip"))
    assert read_tower_config(tmp_path / "siglip")["model_type"] == "siglip_vision_model"
    model = _model(tokenizer, tmp_path / "siglip")  # 32 px films, a tower pretrained at 64 px
    assert model.config.hf_vision_mean == [0.5, 0.5, 0.5]  # SigLIP's own, without a preprocessor_config.json
    tower = model.vision.encoders[0]
    patch = next(v for k, v in tower.model.state_dict().items() if k.endswith("embeddings.patch_embedding.weight"))
    assert torch.equal(patch, siglip.vision_model.embeddings.patch_embedding.weight)  # loaded, not random
    assert tower(torch.zeros(1, 1, 32, 32)).shape == (1, 16, 32)


def test_a_full_clip_checkpoint_gives_its_vision_half(tmp_path, tokenizer) -> None:
    clip = transformers.CLIPModel(transformers.CLIPConfig(
        vision_config=dict(image_size=64, **TOWER),
        text_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                         vocab_size=99), projection_dim=16))
    clip.save_pretrained(str(tmp_path / "clip"))
    model = _model(tokenizer, tmp_path / "clip")
    assert model.config.hf_vision_config["model_type"] == "clip_vision_model"
    assert model.config.hf_vision_mean[0] == pytest.approx(0.4815, abs=1e-4)  # CLIP's own normalisation
    assert model.vision.encoders[0](torch.zeros(1, 1, 32, 32)).shape == (1, 16, 32)  # CLS dropped


def test_bad_towers_are_named(tmp_path, tokenizer) -> None:
    with pytest.raises(ConfigError, match="needs hf_vision_path"):
        create_model("cxrvlm-tiny", tokenizer=tokenizer, **{**TINY, "encoders": ["hf"]})
    with pytest.raises(ValueError, match="no config.json"):
        _model(tokenizer, tmp_path / "nowhere")
    transformers.GPT2Model(transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50)) \
        .save_pretrained(str(tmp_path / "gpt2"))
    with pytest.raises(ValueError, match="not a patch-based vision model"):
        _model(tokenizer, tmp_path / "gpt2")
    folder, _ = _dinov2_folder(tmp_path / "rad-dino")
    with pytest.raises(ConfigError, match="not a multiple of the pretrained tower's patch_size 8"):
        _model(tokenizer, folder, image_size=36)


def test_configs_without_a_tower_are_left_alone(tiny) -> None:
    cfg = tiny().config
    assert resolve_hf_vision(cfg) is cfg


def test_a_model_with_a_pretrained_tower_interprets_an_xray(tmp_path, tokenizer) -> None:
    from cxrvlm.infer import Interpreter
    from cxrvlm.infer.phantom import render_phantom

    folder, _ = _dinov2_folder(tmp_path / "rad-dino")
    _model(tokenizer, folder).save_pretrained(tmp_path / "run")
    shutil.rmtree(folder)
    reading = Interpreter(load_model(tmp_path / "run"), refine_masks=False).interpret(
        render_phantom(96), tasks=("classify", "detect"))
    assert 0.0 <= reading["tb"]["probability"] <= 1.0 and reading["image_size"] == [96, 96]
