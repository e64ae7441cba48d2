"""The serve tests' shared fixtures: one tiny random-weight interpreter (its answers are garbage; the HTTP contract is
what is tested)."""
from __future__ import annotations

import pytest
import torch

from cxrvlm.infer import Interpreter
from cxrvlm.models import create_model

TINY = {"image_size": 64, "n_layer": 1, "n_embd": 32, "n_head": 1, "cnn_widths": [8, 16]}


@pytest.fixture(scope="session")
def interpreter():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield Interpreter(create_model("cxrvlm-tiny", **TINY), name="tiny", refine_masks=False)
    torch.set_num_threads(before)
