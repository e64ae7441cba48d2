"""The sanity check of saliency maps (Adebayo et al. 2018, model randomisation): the shipped model's maps must change
when the weights they explain are randomised; and a reading carries them."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from cxrvlm.infer.phantom import render_phantom
from cxrvlm.models import load_model


@pytest.fixture(scope="module")
def shipped():
    return load_model("cxrvlm-effnet")


def _rank_corr(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a.ravel())), np.argsort(np.argsort(b.ravel()))
    return float(np.corrcoef(ra, rb)[0, 1])


def test_maps_change_when_the_encoder_s_last_blocks_are_randomised(shipped):
    film = render_phantom(256)
    before = shipped.label_maps(film)
    broken = copy.deepcopy(shipped)
    torch.manual_seed(0)
    blocks = broken.vision.encoders[0].net._blocks
    with torch.no_grad():
        for block in list(blocks)[-4:]:  # cascading randomisation from the top, as the check prescribes
            for p in block.parameters():
                p.normal_(0, 0.05)
    after = broken.label_maps(film)
    tb = shipped.label_names.index("Tuberculosis")
    assert _rank_corr(before[tb], after[tb]) < 0.5
    assert _rank_corr(before[tb], shipped.label_maps(film)[tb]) == pytest.approx(1.0)  # and they are repeatable


def test_a_reading_carries_the_tb_map(shipped):
    from cxrvlm.infer import Interpreter

    reading = Interpreter(shipped, name="cxrvlm-effnet").interpret(render_phantom(256), tasks=["classify"])
    tb = next(s for s in reading["saliency"] if s["label"] == "tuberculosis")
    assert tb["grid"] == [8, 8] and 0 <= tb["peak"][0] <= 256 and 0 <= tb["peak"][1] <= 256
