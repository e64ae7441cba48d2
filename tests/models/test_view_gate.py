"""The view gate: its network, its weights file, its reasons."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cxrvlm.models.view_gate import KINDS, SIZE, ViewGate, ViewGateNet, gate_input


def test_the_net_gives_one_logit_per_kind_at_any_batch_size():
    net = ViewGateNet(widths=(4, 8, 8, 8)).eval()
    assert net(torch.rand(3, 1, SIZE, SIZE)).shape == (3, len(KINDS))
    assert gate_input(np.random.default_rng(0).random((300, 200))).shape == (SIZE, SIZE)


def test_weights_round_trip_with_threshold_and_info(tmp_path):
    torch.manual_seed(0)
    gate = ViewGate(ViewGateNet(widths=(4, 8, 8, 8)), threshold=0.7, info={"held_out": {"negatives_passed": 0.01}})
    path = gate.save(tmp_path / "gate.safetensors")
    again = ViewGate.load(path)
    film = np.random.default_rng(1).random((256, 256)).astype(np.float32)
    assert again.probabilities(film) == gate.probabilities(film)
    assert again.threshold == 0.7 and again.info == gate.info
    assert sum(gate.probabilities(film).values()) == pytest.approx(1.0, abs=1e-3)


def test_a_file_that_is_not_a_gate_is_named(tmp_path):
    with pytest.raises(ValueError, match="nothing.safetensors: view gate not found"):
        ViewGate.load(tmp_path / "nothing.safetensors")


@pytest.mark.parametrize("kind, words", [("lateral", "lateral chest view"), ("other_body_part", "another body part"),
                                         ("not_a_radiograph", "a mask"), ("inverted", "inverted")])
def test_each_refusal_says_what_the_image_looks_like(kind, words):
    gate = ViewGate(ViewGateNet(widths=(4, 4, 4, 4)))
    probs = {k: 0.0 for k in KINDS} | {kind: 0.9, "frontal": 0.1}
    (reason,) = gate.problems_of(probs)
    assert words in reason and f"{kind} 0.90, frontal 0.10" in reason
    assert gate.problems_of({k: 0.0 for k in KINDS} | {"frontal": 0.5}) == []  # DEFAULT_THRESHOLD passes
