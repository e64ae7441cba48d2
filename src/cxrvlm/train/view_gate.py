"""`cxrvlm train-gate`: train the view gate (`models.view_gate`) on real negatives and measure it on held-out ones.

    cxrvlm train-gate --data-root ../shared/data --curated runs/curated-all --out runs/view-gate   # shipped recipe

What each kind is made of:
- frontal: the frontal views of the curated folder's training split (every source); the validation split's
  frontal views are the held-out films whose rejection rate is reported;
- lateral: the COVID-19 collection's lateral views (`covid/metadata.csv`, view L);
- other_body_part: VQA-RAD's head and abdomen images (CT, MRI, plain films);
- not_a_radiograph: the lung masks of ../shared/data (tb, covid, shenzhen_lungs) and generated blanks, noise,
  gradients and shapes;
- inverted: frontal films with their grey levels inverted (from the same split as the films).
Negatives are split by patient (laterals) or file (the rest) with a stable hash: HELD_OUT of them never train the
gate and give the reported pass rate. Batches draw every kind equally often, with random affines, gamma, contrast
and noise. The run folder holds `checkpoint.safetensors` (atomic; the run resumes from it), `log.jsonl`, and at
the end `view_gate.safetensors` (weights, threshold and held-out rates) and `eval.json`.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cxrvlm.data.split import read_split
from cxrvlm.io.read import read_image
from cxrvlm.models.view_gate import DEFAULT_THRESHOLD, FRONTAL, KINDS, SIZE, ViewGate, ViewGateNet, gate_input
from cxrvlm.tensorfile import read_tensors, write_tensors
from cxrvlm.train.checkpoint import optimizer_from_flat, optimizer_to_flat

log = logging.getLogger(__name__)

HELD_OUT = 0.35  # share of each negative kind (by patient or file) kept out of training
N_GENERATED = 300  # held-out generated graphics (a fixed seed apart from training's)
MAX_FRONTAL = 3000  # training films read (a seeded sample when the split has more): the gate needs variety, not all


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", required=True, help="../shared/data: covid/, vqa_rad/ and the mask folders")
    parser.add_argument("--curated", required=True, help="a `cxrvlm curate` folder: its train/val frontal views")
    parser.add_argument("--out", required=True, help="run folder (resumed when it holds a checkpoint)")
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--batch-size", type=int, default=60)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--ckpt-every", type=int, default=100)
    parser.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in --out")


def held_out(key: str) -> bool:
    """Stable across runs and machines: the first 8 hex digits of the key's SHA-1 as a share of 16^8."""
    return int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 16 ** 8 < HELD_OUT


def frontal_films(curated: str, split: str) -> list[str]:
    """Paths of the split's frontal views (a view position other than LATERAL, or none), each once."""
    out: dict[str, None] = {}
    for ex in read_split(curated, split):
        for path, position in zip(ex.images, ex.meta.get("view_positions") or []):
            if position != "LATERAL":
                out[path] = None
    return list(out)


def negatives(root: Path) -> dict[str, list[tuple[str, bool]]]:
    """kind -> [(path, held out)] of the real negatives under `root` (../shared/data)."""
    out: dict[str, list[tuple[str, bool]]] = {"lateral": [], "other_body_part": [], "not_a_radiograph": []}
    with open(root / "covid" / "metadata.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["view"].strip().upper() in ("L", "LL", "LATERAL"):
                out["lateral"].append((str(root / "covid" / "images" / row["image_id"]), held_out(row["patientid"])))
    vqa = root / "vqa_rad"
    organs = {q["image_name"]: q["image_organ"].strip().upper()
              for q in json.loads((vqa / "VQA_RAD Dataset Public.json").read_text())}
    for name, organ in sorted(organs.items()):
        if organ != "CHEST":
            out["other_body_part"].append((str(vqa / "VQA_RAD Image Folder" / name), held_out(name)))
    for folder in ("tb/masks", "covid/masks", "shenzhen_lungs/masks"):
        for p in sorted((root / folder).glob("*.png")):
            out["not_a_radiograph"].append((str(p), held_out(f"{folder}/{p.name}")))
    return out


def read_inputs(paths: list[str], what: str) -> np.ndarray:
    """(N, SIZE, SIZE) uint8 gate inputs; an unreadable file is skipped with a warning naming it."""
    rows = []
    for p in paths:
        try:
            rows.append(np.round(gate_input(read_image(p).pixels) * 255).astype(np.uint8))
        except (ValueError, OSError) as e:
            log.warning("%s: skipping %s: %s", what, p, e)
    return np.stack(rows) if rows else np.zeros((0, SIZE, SIZE), np.uint8)


def generated(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, SIZE, SIZE) uint8 images that are not radiographs: flat grey, noise, blurred noise, gradients, shapes."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    out = np.empty((n, SIZE, SIZE), np.float32)
    for i in range(n):
        kind = rng.integers(5)
        if kind == 0:
            img = np.full((SIZE, SIZE), rng.random()) + rng.normal(0, 0.01, (SIZE, SIZE))
        elif kind == 1:
            img = rng.random((SIZE, SIZE))
        elif kind == 2:
            small = rng.random((8, 8)).astype(np.float32)
            img = np.asarray(torch.nn.functional.interpolate(torch.from_numpy(small)[None, None], size=SIZE,
                                                             mode="bicubic", align_corners=False)[0, 0])
        elif kind == 3:
            a = rng.normal(size=2)
            img = a[0] * xx + a[1] * yy
            img = (img - img.min()) / max(float(np.ptp(img)), 1e-6)
        else:
            img = np.full((SIZE, SIZE), rng.random() * 0.2)
            for _ in range(rng.integers(1, 5)):
                cy, cx, ry, rx = rng.random(4) * [1, 1, 0.4, 0.4] + [0, 0, 0.05, 0.05]
                img[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1] = 0.6 + 0.4 * rng.random()
        out[i] = np.clip(img, 0, 1)
    return np.round(out * 255).astype(np.uint8)


def gather(root: str, curated: str, seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(training inputs, held-out inputs), each kind -> (N, SIZE, SIZE) uint8."""
    rng = np.random.default_rng(seed)
    films = frontal_films(curated, "train")
    if len(films) > MAX_FRONTAL:
        films = [films[i] for i in sorted(rng.choice(len(films), MAX_FRONTAL, replace=False))]
    train = {FRONTAL: read_inputs(films, "frontal")}
    test = {FRONTAL: read_inputs(frontal_films(curated, "val"), "frontal (val)")}
    for kind, rows in negatives(Path(root)).items():
        train[kind] = read_inputs([p for p, out in rows if not out], kind)
        test[kind] = read_inputs([p for p, out in rows if out], kind)
    test["not_a_radiograph"] = np.concatenate([test["not_a_radiograph"],
                                               generated(N_GENERATED, np.random.default_rng(seed + 10_000))])
    train["inverted"], test["inverted"] = 255 - train[FRONTAL], 255 - test[FRONTAL]
    for name, split in (("train", train), ("held out", test)):
        log.info("%s: %s", name, {k: len(v) for k, v in split.items()})
    return train, test


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """(B, 1, S, S) in [0, 1]: random affine (scale 0.85-1.15, turn +-10 degrees, shift +-8%), gamma 0.7-1.4,
    contrast 0.8-1.2 about the mean, Gaussian noise up to 0.03."""
    b = x.size(0)
    u = torch.rand(b, 6, generator=gen)
    scale, angle = 0.85 + 0.3 * u[:, 0], (u[:, 1] - 0.5) * math.radians(20)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, (u[:, 2] - 0.5) * 0.16], 1),
                         torch.stack([sin, cos, (u[:, 3] - 0.5) * 0.16], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    x = x.clamp(1e-4, 1) ** (0.7 + 0.7 * u[:, 4]).view(b, 1, 1, 1)
    mean = x.mean(dim=(2, 3), keepdim=True)
    x = (x - mean) * (0.8 + 0.4 * u[:, 5]).view(b, 1, 1, 1) + mean
    x = x + torch.randn(x.shape, generator=gen) * 0.03 * torch.rand(b, 1, 1, 1, generator=gen)
    return x.clamp(0, 1)


def draw(train: dict[str, np.ndarray], batch: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch with every kind equally often (generated graphics make up half of not_a_radiograph)."""
    kinds = rng.integers(len(KINDS), size=batch)
    rows = []
    for k in kinds:
        pool = train[KINDS[k]]
        if KINDS[k] == "not_a_radiograph" and rng.random() < 0.5:
            rows.append(generated(1, rng)[0])
        else:
            rows.append(pool[rng.integers(len(pool))])
    x = torch.from_numpy(np.stack(rows).astype(np.float32) / 255.0)[:, None]
    return x, torch.from_numpy(kinds)


def rates(gate: ViewGate, test: dict[str, np.ndarray]) -> dict[str, Any]:
    """Held-out figures: frontal films rejected, negatives passed (per kind and overall), the kinds as called."""
    out: dict[str, Any] = {"threshold": gate.threshold, "n": {k: len(v) for k, v in test.items()}}
    passed, n_neg, called = 0, 0, {}
    for kind, inputs in test.items():
        probs = gate.probabilities_batch(inputs.astype(np.float32) / 255.0) if len(inputs) else np.zeros((0, 5))
        ok = probs[:, 0] >= gate.threshold
        called[kind] = dict(Counter(KINDS[i] for i in probs.argmax(1)))
        if kind == FRONTAL:
            out["frontal_rejected"] = float(1 - ok.mean()) if len(ok) else None
        else:
            out[f"{kind}_passed"] = float(ok.mean()) if len(ok) else None
            passed, n_neg = passed + int(ok.sum()), n_neg + len(ok)
    out["negatives_passed"] = passed / n_neg if n_neg else None
    out["called"] = called
    return out


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def card(measured: dict[str, Any], args: argparse.Namespace) -> str:
    """The gate's card: what it refuses and its held-out rates, from `rates`."""
    n = measured["n"]
    rows = [f"| {kind} | {n[kind]} | " + (f"rejected {_pct(measured['frontal_rejected'])}" if kind == FRONTAL
                                         else f"passed {_pct(measured[f'{kind}_passed'])}") +
            f" | {', '.join(f'{k} {v}' for k, v in sorted(measured['called'][kind].items()))} |" for kind in KINDS]
    return "\n".join([
        "# View gate", "", "> Research use only. Not a diagnosis.", "",
        "Refuses images the reading models cannot read: lateral views, other body parts and modalities, masks and "
        "drawings, inverted films (`cxrvlm.models.view_gate`). A film passes when the gate gives \"frontal\" a "
        f"probability of at least {measured['threshold']}.", "",
        f"Trained with `cxrvlm train-gate --data-root {args.data_root} --curated {args.curated}` ({args.steps} "
        f"steps of {args.batch_size}); see `cxrvlm.train.view_gate` for what each kind is made of.", "",
        "## Held out (never trained on)", "",
        "| kind | images | rate | called |", "|---|---|---|---|", *rows, "",
        f"Negatives passed as frontal films, all kinds: {_pct(measured['negatives_passed'])} (target at most 2%); "
        f"frontal validation films refused: {_pct(measured['frontal_rejected'])} (target at most 1%). The frontal "
        "films are the curated validation split's (patients no model trained on); the negatives are the held-out "
        f"share ({HELD_OUT:.0%}, by patient or file) of each real kind plus {N_GENERATED} generated graphics.", ""])


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train, test = gather(args.data_root, args.curated, args.seed)
    for kind in KINDS:
        if not len(train[kind]):
            raise ValueError(f"train-gate: no training image of kind {kind!r} (check --data-root / --curated)")
    torch.manual_seed(args.seed)
    net = ViewGateNet()
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    ckpt, start = out / "checkpoint.safetensors", 0
    if ckpt.is_file() and not args.fresh:
        meta, tensors = read_tensors(ckpt)
        net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        opt.load_state_dict(optimizer_from_flat({k[4:]: v for k, v in tensors.items() if k.startswith("opt.")},
                                                json.loads(meta["optimizer"])))
        start = int(meta["step"])
        log.info("resumed from %s at step %d", ckpt, start)
    net.train()
    t0 = time.perf_counter()
    with open(out / "log.jsonl", "a") as logf:
        for step in range(start, args.steps):
            rng = np.random.default_rng((args.seed, step))  # a resumed run draws what it would have drawn
            x, y = draw(train, args.batch_size, rng)
            x = augment(x, torch.Generator().manual_seed(int(rng.integers(2 ** 31))))
            for g in opt.param_groups:
                g["lr"] = args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / args.steps)))
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if (step + 1) % 20 == 0:
                logf.write(json.dumps({"step": step + 1, "loss": round(loss.item(), 4)}) + "\n")
                logf.flush()
            if (step + 1) % args.ckpt_every == 0 or step + 1 == args.steps:
                flat, opt_meta = optimizer_to_flat(opt.state_dict())
                tensors = {**{f"net.{k}": v for k, v in net.state_dict().items()},
                           **{f"opt.{k}": v for k, v in flat.items()}}
                write_tensors(ckpt, tensors, {"step": str(step + 1), "optimizer": json.dumps(opt_meta)})
                log.info("step %d loss %.4f (%.0fs)", step + 1, loss.item(), time.perf_counter() - t0)
    gate = ViewGate(net, DEFAULT_THRESHOLD)
    measured = rates(gate, test)
    gate.info = {"held_out": {k: measured[k] for k in measured if k.endswith(("_passed", "_rejected"))},
                 "n_held_out": measured["n"], "steps": args.steps, "recipe": "cxrvlm train-gate"}
    gate.save(out / "view_gate.safetensors")
    (out / "eval.json").write_text(json.dumps(measured, indent=1) + "\n")
    (out / "VIEW_GATE_CARD.md").write_text(card(measured, args))
    print(json.dumps(measured))
    return 0
