"""`cxrvlm train-mask-tokenizer`: train the mask VQ-VAE on real binary masks, validate on held-out patients.

    cxrvlm train-mask-tokenizer --masks ../shared/data/covid/masks ../shared/data/shenzhen_lungs/masks \
        --out runs/mask_tokenizer --steps 6000 --threads 1

Straight-through estimator, commitment loss, an EMA codebook initialised by k-means on the first batch's latents
and dead codes restarted from current latents, so that all 128 codes stay in use. Loss: BCE + soft Dice on the
64x64 logits. The run folder holds `checkpoint.safetensors` (written atomically; the run resumes from it, with the
same random stream), `log.jsonl`, and at the end `mask_vqvae.safetensors` (load with
`MaskTokenizer.from_file`), `eval.json` (round-trip IoU per held-out mask) and `worst.png`.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cxrvlm.tokens.seg import MaskTokenizer
from cxrvlm.tokens.seg_vqvae import MaskVQVAE, VQVAEConfig
from cxrvlm.train.mask_checkpoint import load_checkpoint, save_checkpoint, worst_picture
from cxrvlm.train.mask_data import augment, load_items, split_by_patient, to_canvas

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--masks", nargs="+", required=True, metavar="DIR", help="folders of binary mask PNGs")
    parser.add_argument("--out", required=True, help="run folder (resumed when it holds a checkpoint)")
    parser.add_argument("--steps", type=int, default=6000, help="optimizer steps (default 6000)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3, help="peak Adam learning rate (cosine decay to 5%%)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the patient split, init and augmentation")
    parser.add_argument("--val-fraction", type=float, default=0.15, help="share of patients held out per source")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine may be shared)")
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--ckpt-every", type=int, default=250)
    parser.add_argument("--embedding-dim", type=int, default=64)
    parser.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in --out")


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, args.threads))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    items = load_items(args.masks)
    train, val = split_by_patient(items, args.val_fraction, args.seed)
    if not train or not val:
        raise ValueError(f"need masks for both training and validation; got {len(train)} / {len(val)} items")
    log.info("train %d items (%d patients), val %d items (%d patients)", len(train),
             len({i.patient for i in train}), len(val), len({i.patient for i in val}))
    canvases = torch.from_numpy(np.stack([to_canvas(it.crop) for it in train]))[:, None]  # (N,1,S,S)
    torch.manual_seed(args.seed)
    model = MaskVQVAE(VQVAEConfig(embedding_dim=args.embedding_dim))
    state = TrainState(model, args)
    ckpt = out / "checkpoint.safetensors"
    if ckpt.is_file() and not args.fresh:
        state.load(ckpt)
        log.info("resumed from %s at step %d", ckpt, state.step)
    with open(out / "log.jsonl", "a", encoding="utf-8") as logf:
        state.train(canvases, val, ckpt, logf)
    return finish(model, val, train, args, state.step)


class TrainState:
    """Model, optimiser, EMA codebook statistics and the random stream: everything a resumed run needs."""

    def __init__(self, model, args: argparse.Namespace):
        self.model, self.args, self.step = model, args, 0
        self.opt = torch.optim.Adam([p for p in model.parameters()], lr=args.lr)
        k = model.cfg.num_codes
        self.expected = args.batch_size * 16 / k  # mean uses of one code per step
        self.ema_count = torch.full((k,), self.expected)
        self.ema_sum = model.codebook.clone() * self.expected
        self.gen = torch.Generator().manual_seed(args.seed)
        self.initialised = False

    def lr(self) -> float:
        warm = 200
        if self.step < warm:
            return self.args.lr * (self.step + 1) / warm
        t = (self.step - warm) / max(1, self.args.steps - warm)
        return self.args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))

    def train(self, canvases, val, ckpt: Path, logf) -> None:
        t0, n = time.time(), canvases.shape[0]
        while self.step < self.args.steps:
            idx = torch.randint(0, n, (self.args.batch_size,), generator=self.gen)
            target = augment(canvases[idx], self.gen)
            stats = self.train_step(target)
            self.step += 1
            if self.step % 50 == 0 or self.step == self.args.steps:
                stats.update(step=self.step, lr=self.lr(), sec=round(time.time() - t0, 1))
                logf.write(json.dumps(stats) + "\n")
                logf.flush()
                log.info("step %d %s", self.step, {k: stats[k] for k in ("loss", "iou64", "used", "restarts")})
            if self.step % self.args.eval_every == 0 or self.step == self.args.steps:
                res = summarise(evaluate(self.model, val))
                logf.write(json.dumps({"step": self.step, "val": res}) + "\n")
                log.info("step %d validation %s", self.step, res)
                self.model.train()
            if self.step % self.args.ckpt_every == 0 or self.step == self.args.steps:
                self.save(ckpt)

    def train_step(self, target) -> dict:
        """One optimiser step on (B,1,64,64) soft targets; returns scalar statistics."""
        model = self.model.train()
        for g in self.opt.param_groups:
            g["lr"] = self.lr()
        z = model.encode_latent(target)  # (B,D,4,4)
        if not self.initialised:
            self.kmeans_init(z.detach())
        codes = model.quantise(z.detach())  # (B,16)
        q = model.embed(codes)
        commit = F.mse_loss(z, q.detach())
        logits = model.decode_latent(z + (q - z).detach())  # straight-through: decoder grads flow to the encoder
        bce = F.binary_cross_entropy_with_logits(logits, target)
        p = torch.sigmoid(logits)
        dice = 1 - ((2 * (p * target).sum((1, 2, 3)) + 1) / (p.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1)).mean()
        loss = bce + dice + 0.25 * commit
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        restarts = self.ema_update(z.detach(), codes)
        with torch.no_grad():
            pred, t = logits > 0, target > 0.5
            iou = ((pred & t).sum((1, 2, 3)) / (pred | t).sum((1, 2, 3)).clamp(min=1)).mean()
        return {"loss": round(loss.item(), 4), "bce": round(bce.item(), 4), "dice": round(dice.item(), 4),
                "commit": round(commit.item(), 5), "iou64": round(iou.item(), 4),
                "used": int(codes.unique().numel()), "restarts": restarts}

    def kmeans_init(self, z, iters: int = 10) -> None:
        """Codebook <- k-means centres of the first batch's latents (so no code starts dead)."""
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        k = self.model.cfg.num_codes
        if flat.shape[0] >= k:
            centres = flat[torch.randperm(flat.shape[0], generator=self.gen)[:k]].clone()
        else:  # a tiny batch: repeat latents, jittered so that the centres differ
            pick = flat[torch.randint(0, flat.shape[0], (k,), generator=self.gen)]
            centres = pick + 1e-3 * torch.randn(pick.shape, generator=self.gen)
        for _ in range(iters):
            assign = torch.cdist(flat, centres).argmin(1)
            for j in range(k):
                sel = flat[assign == j]
                if len(sel):
                    centres[j] = sel.mean(0)
        self.model.codebook.copy_(centres)
        self.ema_sum = centres * self.expected
        self.initialised = True

    def ema_update(self, z, codes, decay: float = 0.99, dead: float = 0.5) -> int:
        """EMA codebook update; codes whose running use falls under `dead` restart at random current latents."""
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        onehot = F.one_hot(codes.reshape(-1), self.model.cfg.num_codes).float()  # (B*16, K)
        self.ema_count.mul_(decay).add_(onehot.sum(0), alpha=1 - decay)
        self.ema_sum.mul_(decay).add_(onehot.T @ flat, alpha=1 - decay)
        n = self.ema_count.sum()
        smoothed = (self.ema_count + 1e-5) / (n + self.model.cfg.num_codes * 1e-5) * n  # Laplace smoothing
        self.model.codebook.copy_(self.ema_sum / smoothed[:, None])
        dead_idx = torch.nonzero(self.ema_count < dead).flatten()
        if len(dead_idx):
            pick = flat[torch.randint(0, flat.shape[0], (len(dead_idx),), generator=self.gen)]
            self.model.codebook[dead_idx] = pick
            self.ema_sum[dead_idx] = pick
            self.ema_count[dead_idx] = 1.0
        return int(len(dead_idx))

    def save(self, path: Path) -> None:
        save_checkpoint(self, path)

    def load(self, path: Path) -> None:
        load_checkpoint(self, path)


def evaluate(model, items) -> list[dict]:
    """Round-trip IoU of decode(encode(m)) vs m at full resolution, through the public tokenizer API."""
    tok = MaskTokenizer(model.eval())
    masks = [np.pad(it.crop, 2) for it in items]  # a 2-pixel border, so boxes are not the image edge
    boxes = [(2, 2, 2 + it.crop.shape[1], 2 + it.crop.shape[0]) for it in items]
    codes = tok.encode_batch(masks, boxes)
    dec = tok.decode_batch(codes, boxes, [m.shape for m in masks])
    out = []
    for it, m, d, c in zip(items, masks, dec, codes):
        iou = float((m & d).sum() / max(1, (m | d).sum()))
        out.append({"stem": it.stem, "source": it.source, "patient": it.patient, "kind": it.kind,
                    "label": it.label, "size": list(it.crop.shape), "iou": round(iou, 4), "codes": c})
    return out


def summarise(results: list[dict]) -> dict:
    res: dict = {"n": len(results), "codes_used": len({c for r in results for c in r["codes"]})}
    for kind in ("whole", "single"):
        ious = [r["iou"] for r in results if r["kind"] == kind]
        if ious:
            res[f"miou_{kind}"] = round(float(np.mean(ious)), 4)
            res[f"min_iou_{kind}"] = round(float(np.min(ious)), 4)
    res["miou"] = round(float(np.mean([r["iou"] for r in results])), 4)
    return res


def finish(model, val, train, args: argparse.Namespace, steps: int) -> int:
    """Write the tokenizer weights, eval.json and worst.png; print the validation summary."""
    out = Path(args.out)
    results = evaluate(model, val)
    summary = summarise(results)
    train_summary = summarise(evaluate(model, train[:: max(1, len(train) // 300)]))
    tok = MaskTokenizer(model.eval())
    tok.save(out / "mask_vqvae.safetensors", meta={"steps": str(steps), "val": json.dumps(summary)})
    worst = sorted(results, key=lambda r: r["iou"])[:12]
    report = {"steps": steps, "val": summary, "train_subset": train_summary, "worst": worst, "items": results,
              "masks": [str(m) for m in args.masks], "seed": args.seed, "val_fraction": args.val_fraction,
              "val_patients": sorted({i.patient for i in val})}
    tmp = out / "eval.json.tmp"
    tmp.write_text(json.dumps(report, indent=1), encoding="utf-8")
    os.replace(tmp, out / "eval.json")
    by_key = {(i.stem, i.label): i for i in val}
    worst_picture(tok, [by_key[(w["stem"], w["label"])] for w in worst], worst, out / "worst.png")
    print(json.dumps({"steps": steps, "val": summary, "train_subset": train_summary}))
    return 0
