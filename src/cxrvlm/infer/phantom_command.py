"""`cxrvlm render-phantom [OUT.png]`: draw the synthetic chest phantom (not patient data), by default over the one
the package ships (src/cxrvlm/assets/phantom_chest.png), the example `cxrvlm interpret --example` reads."""
from __future__ import annotations

import argparse

from cxrvlm.infer.phantom import PHANTOM_PNG, write_phantom

MIN_SIZE = 64  # below this the ribs and the clavicles are sub-pixel


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", nargs="?", default=str(PHANTOM_PNG), help=f"PNG to write (default {PHANTOM_PNG})")
    parser.add_argument("--size", type=int, default=512, help="side in pixels (default 512)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default 0: the shipped image)")


def run(args: argparse.Namespace) -> int:
    if args.size < MIN_SIZE:
        raise ValueError(f"--size must be at least {MIN_SIZE} pixels, got {args.size}")
    if not args.out.lower().endswith(".png"):
        raise ValueError(f"{args.out}: the phantom is written as PNG; give a .png path")
    print(write_phantom(args.out, args.size, args.seed))
    return 0
