"""`cxrvlm` command line: thin; each subcommand lives in a small command module beside the code that does the work.

A subcommand module exposes `configure(parser: argparse.ArgumentParser)` and `run(args) -> int`. This is the one
entry point: no other module has a `__main__` block (a child process runs `sys.executable -m cxrvlm.cli <command>`).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from cxrvlm.about import VERSION

# subcommand -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "curate": ("cxrvlm.curate.command", "turn public CXR datasets into a multi-task dataset (train/val/test jsonl + card)"),
    "train": ("cxrvlm.train.command", "train a model on a curated dataset (multi-task mixture, stages, resume)"),
    "train-probe": ("cxrvlm.train.probe_command", "which encoder learns TB: train one alone with a pooled head; "
                                                  "--save its weights for a VLM run (TrainConfig.init_from)"),
    "train-mask-tokenizer": ("cxrvlm.train.mask_tokenizer", "train the VQ-VAE mask tokenizer on binary lung masks"),
    "train-mask-refiner": ("cxrvlm.train.mask_refiner", "train the mask refiner (U-Net: film + decoded mask -> mask)"),
    "train-gate": ("cxrvlm.train.view_gate", "train the view gate (is this a frontal chest radiograph?) on real "
                                             "negatives; report its held-out pass and rejection rates"),
    "import-lm": ("cxrvlm.models.gguf_import_command", "a GGUF language model (e.g. the installed SmolLM2-135M) -> a "
                                                         "transformers folder a config reads as its decoder"),
    "bench-mask-tokenizer": ("cxrvlm.bench.mask_tokenizer", "masks/s through the mask tokenizer, each direction"),
    "bench": ("cxrvlm.bench.command", "native model vs HF PaliGemma at the same size: samples/s, MFU, latency, RSS"),
    "interpret": ("cxrvlm.infer.command", "read chest X-rays (PNG/JPEG/DICOM): TB, findings, report, boxes, masks, answers"),
    "serve": ("cxrvlm.serve.command", "the web page and HTTP API for reading X-rays (FastAPI; this machine only by default)"),
    "eval": ("cxrvlm.eval.command", "evaluate a model on every task of a curated split: metrics.json, report.md/html"),
    "calibrate": ("cxrvlm.eval.calibrate_command", "temperature-scale a model's label head on validation: ECE "
                                                   "before and after (out of sample), --write into its config"),
    "pointing-game": ("cxrvlm.eval.pointing_command", "do the label head's saliency maps point into the boxes of the "
                                                      "findings they explain? (hit rate vs the image centre's)"),
    "source-probe": ("cxrvlm.eval.source_probe_command", "can a linear probe on the model's image features tell the "
                                                         "films' sources apart? (balanced accuracy vs chance)"),
    "specialists": ("cxrvlm.eval.specialists_command", "train the single-task baselines (TB CNN, lung U-Net) on a "
                                                       "curated split and score them as eval scores the model"),
    "compare": ("cxrvlm.eval.compare_command", "several evaluations of one split and the specialists side by side"),
    "ablate": ("cxrvlm.eval.ablate_command", "multi-task vs single-task ablation with one budget and seeds: ablation.md/json"),
    "ship": ("cxrvlm.models.ship_command", "put a trained run into the package as the built-in model, with its model card"),
    "label-reports": ("cxrvlm.metrics.labeler_command", "CheXpert labels of report text (rule-based), or the labeler's "
                                                        "agreement with Open-i's MeSH tags"),
    "render-phantom": ("cxrvlm.infer.phantom_command", "draw the synthetic chest phantom, the example image that ships"),
}
# Subcommands other commands run in a child process; they work like the rest but are left out of --help.
HIDDEN: dict[str, str] = {
    "bench-interpret": "cxrvlm.bench.interpret_command",  # `cxrvlm bench --builtin`: one interpretation's RSS
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s module is imported (to add its arguments), so start-up stays fast."""
    parser = argparse.ArgumentParser(prog="cxrvlm", description="Chest X-ray multi-task vision-language model.")
    parser.add_argument("--version", action="version", version=f"cxrvlm {VERSION}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        _add(sub.add_parser(name, help=help_text, description=help_text), module, name == command)
    for name, module in HIDDEN.items():
        _add(sub.add_parser(name), module, name == command)  # no help=: argparse does not list it
    return parser


def _add(parser: argparse.ArgumentParser, module: str, chosen: bool) -> None:
    parser.set_defaults(_module=module)
    if chosen:
        importlib.import_module(module).configure(parser)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except (ValueError, FileNotFoundError) as e:
        print(f"cxrvlm {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
