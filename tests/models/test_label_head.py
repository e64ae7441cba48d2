"""The label head: a model with `label_names` reads one probability per label off its first encoder's pooled
tokens, keeps it through save/load, and starts from a `cxrvlm train-probe --save-head` file."""
from __future__ import annotations

import json

import pytest
import torch
from model_fixtures import views
from safetensors.torch import save_file

from cxrvlm.models import load_model
from cxrvlm.models.config import ConfigError

NAMES = ["Tuberculosis", "No Finding", "COVID-19"]


def test_head_probabilities_per_example_from_its_first_view(tiny) -> None:
    model = tiny(label_names=NAMES)
    assert model.label_names == NAMES
    feats = model.encode_images([views(1, seed=0), views(2, seed=1)])
    probs = model.label_probs(image_features=feats)
    assert [list(p) for p in probs] == [NAMES, NAMES]
    assert all(0.0 < v < 1.0 for p in probs for v in p.values())
    # the second example's first view alone gives the same reading: the prior/lateral slot does not enter
    alone = model.label_probs(images=[views(2, seed=1)[:1]])[0]
    assert alone == pytest.approx(probs[1], abs=1e-6)
    assert feats.expand(2).label_probs.shape == (2, 3)


def test_a_model_without_a_head_says_so(tiny) -> None:
    model = tiny()
    assert model.label_names == [] and model.label_head is None
    with pytest.raises(ValueError, match="has no label head"):
        model.label_probs(images=[views(1)])


def test_head_survives_save_and_load(tiny, tmp_path) -> None:
    model = tiny(label_names=NAMES)
    before = model.label_probs(images=[views(1)])[0]
    again = load_model(model.save_pretrained(tmp_path / "ckpt"))
    assert again.config.label_names == NAMES
    assert again.label_probs(images=[views(1)])[0] == pytest.approx(before)


def test_head_starts_from_a_probe_file(tiny, tmp_path) -> None:
    from cxrvlm.train.setup import load_module_weights

    model = tiny(label_names=NAMES)
    width = model.vision.encoders[0].out_dim
    weights = {"weight": torch.zeros(3, width), "bias": torch.tensor([2.0, 0.0, -2.0])}
    path = tmp_path / "head.safetensors"
    save_file(weights, str(path), metadata={"label_names": json.dumps(NAMES)})
    load_module_weights(model, "label_head", path)
    probs = model.label_probs(images=[views(1)])[0]
    assert probs == pytest.approx({"Tuberculosis": 0.8808, "No Finding": 0.5, "COVID-19": 0.1192}, abs=1e-4)


def test_a_head_trained_for_other_labels_is_refused(tiny, tmp_path) -> None:
    from cxrvlm.train.setup import load_module_weights

    model = tiny(label_names=NAMES)
    width = model.vision.encoders[0].out_dim
    path = tmp_path / "head.safetensors"
    save_file({"weight": torch.zeros(3, width), "bias": torch.zeros(3)}, str(path),
              metadata={"label_names": json.dumps(["Tuberculosis", "COVID-19", "No Finding"])})
    with pytest.raises(ValueError, match="was trained for labels"):
        load_module_weights(model, "label_head", path)


@pytest.mark.parametrize("temperatures", [[1.0], [1.0, 0.0], [1.0, -2.0]])
def test_label_temperatures_are_one_positive_value_per_label(tiny, temperatures) -> None:
    with pytest.raises(ConfigError, match="label_temperatures"):
        tiny(label_names=["Tuberculosis", "No Finding"], label_temperatures=temperatures)


def test_label_maps_average_to_the_head_s_logits(tiny) -> None:
    import numpy as np

    model = tiny(label_names=NAMES, label_temperatures=[1.0, 2.0, 0.5])
    view = views(1, seed=3)[0]
    maps = model.label_maps(view)
    probs = model.label_probs(images=[[view]])[0]
    assert maps.shape[0] == len(NAMES) and maps.shape[1] == maps.shape[2] == model.vision.encoders[0].grid
    for k, name in enumerate(NAMES):  # CAM is exact for a linear head on mean-pooled tokens
        assert 1 / (1 + np.exp(-maps[k].mean())) == pytest.approx(probs[name], abs=1e-4)
