"""`cxrvlm train-probe`: which vision encoder learns TB from scratch (the encoder probe; see cxrvlm.train.probe).

    cxrvlm train-probe --data runs/curated --encoder convnet --image-size 256 --epochs 20 --save runs/probe.safetensors
"""
from __future__ import annotations

import argparse

from cxrvlm.models.vision_encoder import ENCODER_REGISTRY
from cxrvlm.train import probe


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = probe.__doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the docstring's example lines
    parser.add_argument("--data", default="runs/curated", help="a folder written by `cxrvlm curate`")
    parser.add_argument("--model", default="cxrvlm-tiny", help="registered model whose encoder settings to start from")
    parser.add_argument("--encoder", default="convnet", choices=sorted(ENCODER_REGISTRY))
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="encoder config overrides")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--labels", default="tb", choices=["tb", "closed", "image"],
                        help="tb: the TB label only; closed: every closed question of one image (a head each); "
                             "image: the image-level label space of task 'image_labels' (multi-label, unsettled masked)")
    parser.add_argument("--tb-weight", type=float, default=1.0,
                        help="with --labels image: weight of the tuberculosis output in the loss (default 1)")
    parser.add_argument("--only-question", default="", metavar="TEXT",
                        help="with --labels closed: learn only the questions that contain TEXT (e.g. projection)")
    parser.add_argument("--frozen", action="store_true",
                        help="train the head(s) only: a linear probe of a pretrained encoder (--encoder hf)")
    parser.add_argument("--geometry", action="store_true", help="add the small random affine augmentation")
    parser.add_argument("--disease-negatives", action="store_true",
                        help="also train on films with another disease and no TB (COVID-19, pneumonia) as not-TB; "
                             "every row reports val_disease_as_tb either way")
    parser.add_argument("--init", default="", metavar="FILE.safetensors",
                        help="start from these encoder weights (a --save of an earlier probe), e.g. to add --geometry")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default="", metavar="FILE.safetensors",
                        help="write the trained encoder's weights, to start a VLM from (TrainConfig.init_from)")
    parser.add_argument("--save-head", default="", metavar="FILE.safetensors",
                        help="write the label head (with its label names), for a VLM's label_head (init_from)")


def _check(args: argparse.Namespace) -> None:
    for name in ("image_size", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.tb_weight <= 0:
        raise ValueError(f"--tb-weight must be positive, got {args.tb_weight}")
    if args.lr <= 0:
        raise ValueError(f"--lr must be positive, got {args.lr}")
    if args.only_question and args.labels != "closed":
        raise ValueError("--only-question needs --labels closed")


def run(args: argparse.Namespace) -> int:
    _check(args)
    probe.probe(args)
    return 0
