"""`cxrvlm import-lm`: a GGUF language model (or an installed one by name) -> a local transformers folder that a
model config reads as its decoder (`decoder=hf hf_text_path=FOLDER`); see `cxrvlm.models.gguf_import`.

    cxrvlm import-lm smollm2 --out models/smollm2-135m
"""
from __future__ import annotations

import argparse

from cxrvlm.models.gguf_import import INSTALLED, import_gguf, resolve_gguf


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="NAME|FILE.gguf",
                        help=f"an installed model ({', '.join(sorted(INSTALLED))}) or a .gguf file")
    parser.add_argument("--out", required=True, metavar="DIR", help="the transformers folder to write")


def run(args: argparse.Namespace) -> int:
    out = import_gguf(resolve_gguf(args.model), args.out)
    print(f"wrote {out}; use it as the decoder: decoder=hf hf_text_path={out}")
    return 0
