from __future__ import annotations

import json
from pathlib import Path

import pytest

from cxrvlm.models import VLMConfig, create_model, list_models, load_model, read_model_config
from cxrvlm.models.config import ConfigError

from model_fixtures import TINY


def test_registered_configs_are_listed_and_valid() -> None:
    names = list_models()
    assert {"cxrvlm-tiny", "cxrvlm-small", "litegpt-style", "m4cxr-style"} <= set(names)
    for name in names:
        config, _ = read_model_config(name)
        assert config["name"] == name
        if config.get("backend", "native") == "native":
            assert VLMConfig.from_json(config, where=name).name == name


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="cxrvlm-tiny") as e:
        create_model("no-such-model")
    assert "no-such-model" in str(e.value)


def test_unknown_override_key_is_an_error(tokenizer) -> None:
    with pytest.raises(ValueError, match="unknown key.*depthh"):
        create_model("cxrvlm-tiny", tokenizer=tokenizer, depthh=2)


def test_bad_override_values_are_errors(tokenizer) -> None:
    with pytest.raises(ValueError, match="n_layer.*int"):
        create_model("cxrvlm-tiny", tokenizer=tokenizer, n_layer="2")
    with pytest.raises(ValueError, match="unknown projector"):
        create_model("cxrvlm-tiny", tokenizer=tokenizer, projector="perceiver")
    with pytest.raises(ValueError, match="vocab_size"):
        create_model("cxrvlm-tiny", tokenizer=tokenizer, vocab_size=123)
    with pytest.raises(ValueError, match="backend"):
        create_model("cxrvlm-tiny", tokenizer=tokenizer, backend="paligemma")


def test_shape_rules() -> None:
    with pytest.raises(ConfigError, match="multiple of vit_patch_size"):
        VLMConfig(image_size=100, vit_patch_size=16)
    with pytest.raises(ConfigError, match="C-Abstractor"):
        VLMConfig(encoders=["vit", "convnet"], fusion="sequence", projector="cabstractor", projector_tokens=49)
    with pytest.raises(ConfigError, match="square"):
        VLMConfig(projector="cabstractor", projector_tokens=50)
    with pytest.raises(ConfigError, match="merge_mode 'grid'"):
        VLMConfig(merge_k=3, merge_mode="grid")
    VLMConfig(encoders=["vit", "convnet"], fusion="channel", projector="cabstractor", projector_tokens=49)


def test_config_json_round_trip(tiny) -> None:
    model = tiny("litegpt-style")
    again = VLMConfig.from_json(json.loads(model.config.dumps()))
    assert again == model.config
    assert model.config.encoders == ["vit", "convnet"] and model.config.merge_k == 5


def test_create_from_config_file(tmp_path, tokenizer) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"name": "mine", "_note": "ignored", **TINY}))
    model = create_model(path, tokenizer=tokenizer)
    assert model.config.name == "mine" and model.config.n_layer == TINY["n_layer"]
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="not a valid JSON"):
        create_model(tmp_path / "broken.json")


def test_create_without_tokenizer_uses_byte_level() -> None:
    model = create_model("cxrvlm-tiny", **TINY)
    assert model.tokenizer.vocab_size == 5 + 256 + 1024 + 128 == model.config.vocab_size


def test_load_model_errors_and_named_checkpoints(tmp_path, monkeypatch, tiny) -> None:
    from cxrvlm.models import registry

    monkeypatch.setenv("CXRVLM_MODELS", str(tmp_path))
    monkeypatch.setattr(registry, "SHIPPED_DIR", tmp_path / "shipped")
    with pytest.raises(ValueError, match="no checkpoint 'cxrvlm-tiny'"):
        load_model("cxrvlm-tiny")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="config.json is missing"):
        load_model(tmp_path / "empty")
    model = tiny()
    model.save_pretrained(tmp_path / "cxrvlm-tiny")
    assert load_model("cxrvlm-tiny").config == model.config


def test_a_model_shipped_in_the_package_loads_by_name(tmp_path, monkeypatch, tiny) -> None:
    from cxrvlm.models import registry

    monkeypatch.setenv("CXRVLM_MODELS", str(tmp_path / "home"))
    monkeypatch.setattr(registry, "SHIPPED_DIR", tmp_path / "shipped")
    model = tiny()
    model.save_pretrained(tmp_path / "shipped" / "cxrvlm-tiny")
    assert registry.checkpoint_folder("cxrvlm-tiny") == tmp_path / "shipped" / "cxrvlm-tiny"
    assert load_model("cxrvlm-tiny").config == model.config
    model.save_pretrained(tmp_path / "home" / "cxrvlm-tiny")  # the user's own folder wins over the shipped one
    assert registry.checkpoint_folder("cxrvlm-tiny") == tmp_path / "home" / "cxrvlm-tiny"


def test_a_folder_here_named_like_a_built_in_model_does_not_shadow_it(tmp_path, monkeypatch, tiny) -> None:
    from cxrvlm.models import registry

    monkeypatch.setenv("CXRVLM_MODELS", str(tmp_path / "home"))
    monkeypatch.setattr(registry, "SHIPPED_DIR", tmp_path / "shipped")
    tiny().save_pretrained(tmp_path / "shipped" / "cxrvlm-tiny")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cxrvlm-tiny").mkdir()  # e.g. a run folder of that name, not a checkpoint
    assert registry.checkpoint_folder("cxrvlm-tiny") == tmp_path / "shipped" / "cxrvlm-tiny"
    assert registry.checkpoint_folder("./cxrvlm-tiny") == Path("./cxrvlm-tiny")  # a path means the folder
    assert registry.checkpoint_folder(Path("cxrvlm-tiny")) == Path("cxrvlm-tiny")
    (tmp_path / "mine").mkdir()
    assert registry.checkpoint_folder("mine") == Path("mine")  # a bare name no model has is still a folder here
