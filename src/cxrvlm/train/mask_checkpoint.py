"""Mask tokenizer training checkpoints (one safetensors file, written atomically; no pickles) and the worst-case
picture of a validation run."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from cxrvlm.tensorfile import read_tensors, write_tensors


def save_checkpoint(state: Any, path: Path) -> None:
    """Model, codebook statistics, Adam state and the random stream of a `mask_tokenizer.TrainState` -> `path`."""
    tensors = {f"model.{k}": v for k, v in state.model.export_tensors().items()}
    tensors["ema.count"] = state.ema_count
    tensors["ema.sum"] = state.ema_sum
    tensors["rng"] = state.gen.get_state()
    opt = state.opt.state_dict()
    for i, s in opt["state"].items():
        for name, t in s.items():
            tensors[f"opt.{i}.{name}"] = t
    meta = {"step": str(state.step), "initialised": str(int(state.initialised)),
            "param_groups": json.dumps(opt["param_groups"]), "config": json.dumps(state.model.cfg.to_dict())}
    write_tensors(path, tensors, meta)


def load_checkpoint(state: Any, path: Path) -> None:
    """Restore what `save_checkpoint` wrote; ValueError when the file belongs to another model shape."""
    meta, tensors = read_tensors(path)
    if json.loads(meta.get("config", "{}")) != state.model.cfg.to_dict():
        raise ValueError(f"{path}: checkpoint was made for another model configuration; use --fresh or another --out")
    state.model.import_tensors({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, str(path))
    state.ema_count, state.ema_sum = tensors["ema.count"], tensors["ema.sum"]
    state.gen.set_state(tensors["rng"])
    opt_state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, i, name = k.split(".", 2)
            opt_state.setdefault(int(i), {})[name] = v
    state.opt.load_state_dict({"state": opt_state, "param_groups": json.loads(meta["param_groups"])})
    state.step = int(meta["step"])
    state.initialised = meta.get("initialised") == "1"


def worst_picture(tok: Any, items: list, results: list[dict], path: Path, height: int = 160) -> None:
    """One panel per item: white = both, red = missed (in the mask, not decoded), blue = extra; IoU written below."""
    panels = []
    for it, r in zip(items, results):
        m = np.pad(it.crop, 2)
        box = (2, 2, 2 + it.crop.shape[1], 2 + it.crop.shape[0])
        d = tok.decode(tok.encode(m, box), box, m.shape)
        rgb = np.zeros(m.shape + (3,), np.uint8)
        rgb[m & d] = 255
        rgb[m & ~d] = (230, 40, 40)
        rgb[~m & d] = (40, 110, 255)
        w = max(1, round(m.shape[1] * height / m.shape[0]))
        panel = Image.new("RGB", (w, height + 28), (40, 40, 40))
        panel.paste(Image.fromarray(rgb).resize((w, height), Image.NEAREST), (0, 0))
        draw = ImageDraw.Draw(panel)
        draw.text((3, height + 2), f"IoU {r['iou']:.3f} {r['label']}", fill=(255, 255, 0))
        draw.text((3, height + 14), r["stem"][:max(8, w // 6)], fill=(200, 200, 200))
        panels.append(panel)
    if not panels:
        return
    total = sum(p.width for p in panels) + 4 * (len(panels) - 1)
    per_row = max(1, -(-total // 1400))
    rows, row, cur = [], [], 0
    limit = total / per_row
    for p in panels:
        row.append(p)
        cur += p.width + 4
        if cur >= limit:
            rows.append(row)
            row, cur = [], 0
    if row:
        rows.append(row)
    sheet = Image.new("RGB", (max(sum(p.width + 4 for p in r) for r in rows), len(rows) * (height + 32)), (0, 0, 0))
    for j, r in enumerate(rows):
        x = 0
        for p in r:
            sheet.paste(p, (x, j * (height + 32)))
            x += p.width + 4
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
