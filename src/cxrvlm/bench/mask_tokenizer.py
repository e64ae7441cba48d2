"""`cxrvlm bench-mask-tokenizer`: masks per second through the mask tokenizer, each direction, one mask at a time
and in batches, the median over repeats, and the process's peak resident memory; prints JSON.

    cxrvlm bench-mask-tokenizer --masks ../shared/data/covid/masks --limit 64 --repeats 5 --threads 1

"Full" figures time the whole public path (crop + resize + VQ-VAE for encode; VQ-VAE + resize into the box +
threshold for decode) on full-size masks; "model" figures time the network alone on prepared 64x64 inputs / codes.
Without --masks it uses generated both-lung masks of --size pixels.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from cxrvlm.tokens.seg import MaskTokenizer, mask_box, split_lungs


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--masks", nargs="*", default=[], metavar="DIR", help="folders of mask PNGs (else generated)")
    parser.add_argument("--limit", type=int, default=64, help="mask files to use (each gives 3 masks: both, R, L)")
    parser.add_argument("--size", type=int, default=1024, help="side of generated masks, pixels")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--weights", default=None, help="safetensors (default: shipped) or a vae-oid .npz")


def generated_masks(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """n both-lung masks: two half-ellipses with random proportions, size x size."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = []
    for _ in range(n):
        top, base = size * rng.uniform(0.1, 0.2), size * rng.uniform(0.75, 0.9)
        m = np.zeros((size, size), bool)
        for cx, half in ((0.32, rng.uniform(0.12, 0.17)), (0.68, rng.uniform(0.11, 0.16))):
            m |= ((xx - cx * size) / (half * size)) ** 2 + ((yy - base) / (base - top)) ** 2 < 1
        out.append(m & (yy < base))
    return out


def _load(folders: list[str], limit: int) -> list[np.ndarray]:
    files = sorted(p for d in folders for p in Path(d).glob("*.png"))[:limit]
    if not files:
        raise ValueError(f"no mask PNGs found in {folders}")
    out = []
    for p in files:
        with Image.open(p) as im:
            out.append(np.asarray(im.convert("L")) > 127)
    return out


def _rate(fn: Callable[[], object], n: int, repeats: int) -> dict:
    fn()  # warm-up (thread pools, allocator)
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - t))
    return {"median_masks_per_s": round(statistics.median(rates), 1), "min": round(min(rates), 1),
            "max": round(max(rates), 1)}


def benchmark(tok, masks: list[np.ndarray], repeats: int) -> dict:
    """Masks/s for encode and decode, single and batched, full path and model only."""
    objs = []
    for m in masks:
        parts = list(split_lungs(m).values())
        objs += [(x, mask_box(x)) for x in [np.logical_or.reduce(parts), *parts]] if parts else []
    ms, boxes = [m for m, _ in objs], [b for _, b in objs]
    sizes = [m.shape for m in ms]
    codes = tok.encode_batch(ms, boxes)
    prepared = np.stack([tok.prepare(m, b) for m, b in objs])
    n = len(objs)
    return {
        "masks": n, "mean_pixels": int(np.mean([m.size for m in ms])),
        "encode_single": _rate(lambda: [tok.encode(m, b) for m, b in objs], n, repeats),
        "encode_batch": _rate(lambda: tok.encode_batch(ms, boxes), n, repeats),
        "encode_model_batch": _rate(lambda: tok.encode_arrays(prepared), n, repeats),
        "decode_single": _rate(lambda: [tok.decode(c, b, s) for c, b, s in zip(codes, boxes, sizes)], n, repeats),
        "decode_batch": _rate(lambda: tok.decode_batch(codes, boxes, sizes), n, repeats),
        "decode_model_batch": _rate(lambda: tok.decode_scores(codes), n, repeats),
    }


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, args.threads))
    if args.weights and str(args.weights).endswith(".npz"):
        tok = MaskTokenizer.from_paligemma_npz(args.weights)
    else:
        tok = MaskTokenizer.from_file(args.weights) if args.weights else MaskTokenizer.default()
    masks = _load(args.masks, args.limit) if args.masks else generated_masks(max(1, args.limit), args.size)
    result = {"tokenizer": tok.name, "threads": torch.get_num_threads(), "repeats": args.repeats,
              **benchmark(tok, masks, args.repeats),
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    print(json.dumps(result, indent=1))
    return 0
