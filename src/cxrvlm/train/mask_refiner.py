"""`cxrvlm train-mask-refiner`: train the mask refiner (`tokens.seg_refine`) on a curated folder's masks.

    cxrvlm train-mask-refiner --data runs/curated --out runs/mask-refiner     # the shipped refiner's recipe

Each step draws training-split objects of task `segment` (a lung, or both) and makes the coarse mask a model
would give for them: the tight box's edges moved by a normal draw of `--box-jitter` of the box's size, the mask
sent through the shipped mask tokenizer in that box (so it is cut by the box, and as smooth as 16 codes make it),
and in some draws a quarter of the codes replaced at random. The film is flipped left-right at random and its
contrast changed (gamma). With `--second-pass SHARE`, that share of each batch is fed the refiner's own answer
(mask and tight box) instead, so that a second pass improves on a first. Loss: BCE + soft Dice. Validation: the
same simulation, with a fixed seed, on the validation split. The run folder holds `checkpoint.safetensors`
(written atomically; the run resumes from it, with its random stream), `log.jsonl`, and at the end
`mask_refiner.safetensors` and `eval.json`. The real check is `cxrvlm eval` of a model's segmentation with and
without the refiner.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cxrvlm.data.split import read_split
from cxrvlm.io.read import read_image
from cxrvlm.tasks import get_task
from cxrvlm.tensorfile import read_tensors, write_tensors
from cxrvlm.tokens.rle import rle_decode
from cxrvlm.tokens.seg import MaskTokenizer, mask_box
from cxrvlm.tokens.seg_refine import MaskRefiner, build_net, crop, grow, net_input, paste, shrink, work_scale
from cxrvlm.train.checkpoint import optimizer_from_flat, optimizer_to_flat

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="a folder written by `cxrvlm curate`")
    parser.add_argument("--out", required=True, help="run folder (resumed when it holds a checkpoint)")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate (warm-up, cosine to 5%%)")
    parser.add_argument("--box-jitter", type=float, default=0.1, help="sd of each box edge's move, share of size")
    parser.add_argument("--second-pass", type=float, default=0.0, metavar="SHARE",
                        help="share of samples whose coarse mask is the refiner's own answer (trains later passes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--ckpt-every", type=int, default=100)
    parser.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in --out")


def load_objects(data: str, split: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(working-size film, working-size bool mask) of every object of the split's examples whose answers hold masks
    (segmentation)."""
    objects = []
    for ex in read_split(data, split):
        if not get_task(ex.task).answer_shape.segs:
            continue
        pixels = read_image(ex.images[0]).pixels
        s = work_scale(pixels.shape)
        film = shrink(pixels, s)
        for i, entry in enumerate(ex.target.get("masks", [])):
            try:
                mask = rle_decode(entry["rle"])
            except (KeyError, ValueError) as e:
                raise ValueError(f"{data} {split} {ex.study_id}: target masks[{i}]: {e}") from None
            if mask.shape != pixels.shape:
                raise ValueError(f"{data} {split} {ex.study_id}: mask {i} is {mask.shape}, the film {pixels.shape}")
            small = shrink(mask.astype(np.float32), s) > 0.5
            if small.any():
                objects.append((film, small))
    return objects


def simulate(film: np.ndarray, mask: np.ndarray, rng: np.random.Generator, jitter: float,
             augment: bool) -> tuple[np.ndarray, np.ndarray, tuple]:
    """One object -> (refiner input (2, S, S), target bool (S, S), (film, mask, box) as augmented) with a
    model-like coarse mask."""
    if augment and rng.random() < 0.5:
        film, mask = film[:, ::-1], mask[:, ::-1]
    tight = np.asarray(mask_box(mask), float)
    size = np.array([tight[2] - tight[0], tight[3] - tight[1]] * 2)
    box = tight + rng.normal(0.0, jitter, 4) * size
    if box[2] - box[0] < 8 or box[3] - box[1] < 8:
        box = tight
    tok = MaskTokenizer.default()
    codes = tok.encode(mask, box)
    if rng.random() < 0.3:
        codes = [c if rng.random() > 0.25 else int(rng.integers(0, tok.num_codes)) for c in codes]
    coarse = tok.decode(codes, box, mask.shape).astype(np.float32)
    if augment:
        film = np.clip(film, 0.0, 1.0) ** float(np.exp(rng.normal(0.0, 0.25)))
    return net_input(film, coarse, box), target(mask, box), (film, mask, box)


def target(mask: np.ndarray, box: Any) -> np.ndarray:
    return crop(mask.astype(np.float32), grow(box)) > 0.5


def batch(objects: list, idx: Any, rng: np.random.Generator, jitter: float,
          augment: bool) -> tuple[Any, Any, list[tuple]]:
    made = [simulate(*objects[i], rng, jitter, augment) for i in idx]
    return (torch.from_numpy(np.stack([x for x, _, _ in made])),
            torch.from_numpy(np.stack([t for _, t, _ in made]).astype(np.float32)), [c for _, _, c in made])


def own_outputs(net: Any, x: Any, t: Any, cases: list[tuple], pick: np.ndarray) -> None:
    """Replace the picked samples' coarse masks by the refiner's own answer to them (and its tight box): the
    training of a second refinement pass, done in place."""
    rows = np.flatnonzero(pick)
    if rows.size == 0:
        return
    with torch.no_grad():
        prob = torch.sigmoid(net(x[rows])).numpy()
    for j, p in zip(rows, prob):
        film, mask, box = cases[j]
        again = paste(p, grow(box), film.shape)
        tight = mask_box(again)
        if tight is not None:
            x[j] = torch.from_numpy(net_input(film, again.astype(np.float32), tight))
            t[j] = torch.from_numpy(target(mask, tight).astype(np.float32))


def loss_of(logits: Any, target: Any) -> Any:
    p = logits.sigmoid()
    dice = (2 * (p * target).sum((1, 2)) + 1) / (p.sum((1, 2)) + target.sum((1, 2)) + 1)
    return F.binary_cross_entropy_with_logits(logits, target) + (1 - dice).mean()


def validate(net: Any, objects: list, jitter: float, seed: int) -> dict[str, float]:
    """IoU of the coarse and of the refined masks over the grown box, simulated the same way with a fixed seed."""
    rng = np.random.default_rng(seed + 1)
    coarse, refined = [], []
    net.eval()
    with torch.inference_mode():
        for start in range(0, len(objects), 32):
            x, t, _ = batch(objects, range(start, min(start + 32, len(objects))), rng, jitter, False)
            pred = net(x) > 0
            c, t = x[:, 1] > 0, t > 0.5
            coarse += ((c & t).sum((1, 2)) / (c | t).sum((1, 2)).clamp(min=1)).tolist()
            refined += ((pred & t).sum((1, 2)) / (pred | t).sum((1, 2)).clamp(min=1)).tolist()
    net.train()
    return {"n": len(refined), "iou_coarse": float(np.mean(coarse)), "iou_refined": float(np.mean(refined))}


def learning_rate(step: int, steps: int, peak: float) -> float:
    """Linear warm-up over the first 5% of the steps, then cosine decay to 5% of the peak."""
    warm = max(1, steps // 20)
    if step < warm:
        return peak * (step + 1) / warm
    t = min(1.0, (step - warm) / max(1, steps - warm))
    return peak * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * t)))


def save_checkpoint(path: Path, step: int, net: Any, opt: Any, rng: np.random.Generator) -> None:
    tensors, opt_meta = optimizer_to_flat(opt.state_dict())
    tensors = {**{f"net.{k}": v for k, v in net.state_dict().items()}, **{f"opt.{k}": v for k, v in tensors.items()}}
    write_tensors(path, tensors, {"step": str(step), "optimizer": json.dumps(opt_meta),
                                  "rng": json.dumps(rng.bit_generator.state), "widths": json.dumps(net.widths)})


def load_checkpoint(path: Path, net: Any, opt: Any, rng: np.random.Generator) -> int:
    meta, tensors = read_tensors(path)
    if json.loads(meta.get("widths", "null")) != net.widths:
        raise ValueError(f"{path}: checkpoint of another refiner shape; use --fresh or another --out")
    net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
    opt.load_state_dict(optimizer_from_flat({k[4:]: v for k, v in tensors.items() if k.startswith("opt.")},
                                            json.loads(meta["optimizer"])))
    rng.bit_generator.state = json.loads(meta["rng"])
    return int(meta["step"])


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, args.threads))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train, val = load_objects(args.data, "train"), load_objects(args.data, "val")
    if not train:
        raise ValueError(f"{args.data}: the training split has no segmentation masks (task segment)")
    log.info("%d training objects, %d validation objects", len(train), len(val))
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    net = build_net()
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    ckpt, step = out / "checkpoint.safetensors", 0
    if ckpt.is_file() and not args.fresh:
        step = load_checkpoint(ckpt, net, opt, rng)
        log.info("resumed from %s at step %d", ckpt, step)
    t0 = time.time()
    with open(out / "log.jsonl", "a", encoding="utf-8") as logf:
        while step < args.steps:
            x, t, cases = batch(train, rng.integers(0, len(train), args.batch_size), rng, args.box_jitter, True)
            if args.second_pass > 0:
                own_outputs(net, x, t, cases, rng.random(len(cases)) < args.second_pass)
            for group in opt.param_groups:
                group["lr"] = learning_rate(step, args.steps, args.lr)
            loss = loss_of(net(x), t)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % 50 == 0 or step == args.steps:
                row = {"step": step, "loss": round(loss.item(), 4), "sec": round(time.time() - t0, 1)}
                logf.write(json.dumps(row) + "\n")
                logf.flush()
                log.info("step %d loss %.4f", step, row["loss"])
            if step % args.ckpt_every == 0 or step == args.steps:
                save_checkpoint(ckpt, step, net, opt, rng)
    result = {"steps": step, "train_objects": len(train), "box_jitter": args.box_jitter,
              "second_pass": args.second_pass,
              "val": validate(net, val, args.box_jitter, args.seed) if val else None}
    (out / "eval.json").write_text(json.dumps(result, indent=1))
    MaskRefiner(net).save(out / "mask_refiner.safetensors", meta={"data": str(args.data), "steps": str(step)})
    print(json.dumps(result))
    return 0
