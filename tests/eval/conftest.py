"""Fixtures for evaluation tests: a tiny curated folder and a tiny randomly initialised model saved as a checkpoint."""
from __future__ import annotations

from pathlib import Path

import pytest

from curated_fixtures import write_curated

# Small enough that a forward pass is a few milliseconds: 32 px images -> 4 patches, one layer each side.
TINY = dict(image_size=32, vit_patch_size=16, vit_width=32, vit_depth=1, vit_heads=2, merge_k=1, n_layer=1,
            n_head=2, n_embd=32, max_text_len=128)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core machine the threads wait on each other
    (4x slower here); restored after each module."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def curated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_curated(tmp_path_factory.mktemp("curated"))


@pytest.fixture(scope="session")
def tiny_model_dir(curated: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from cxrvlm.models import Tokenizer, create_model
    from cxrvlm.data.split import read_split

    texts = [t for e in read_split(curated, "train") for t in (e.prefix, e.suffix)]
    torch.manual_seed(0)
    model = create_model("cxrvlm-tiny", tokenizer=Tokenizer.train(texts, vocab_size=400), **TINY)
    folder = tmp_path_factory.mktemp("model") / "tiny"
    model.save_pretrained(folder)
    return folder
