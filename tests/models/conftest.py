"""Fixtures for the model tests: a BPE tokenizer trained in milliseconds and tiny models of every configuration."""
from __future__ import annotations

import pytest
import torch

from cxrvlm.models import Tokenizer, create_model
from model_fixtures import SENTENCES, TINY


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core machine the threads' spin-waits make
    them many times slower; run these tests single-threaded and restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tokenizer() -> Tokenizer:
    texts = [f"{s} {i}" for i in range(30) for s in SENTENCES]  # a few hundred lines
    return Tokenizer.train(texts, vocab_size=400)


@pytest.fixture()
def tiny(tokenizer: Tokenizer):
    """Factory: a tiny, seeded, eval-mode model of a registered configuration."""
    def make(name: str = "cxrvlm-tiny", **overrides):
        torch.manual_seed(0)
        return create_model(name, tokenizer=tokenizer, **{**TINY, **overrides}).eval()
    return make
