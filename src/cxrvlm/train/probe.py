"""Which vision encoder learns TB from scratch? A quick check before a long multi-task run.

    cxrvlm train-probe --data runs/curated --encoder convnet --image-size 256 --epochs 20
    cxrvlm train-probe --data runs/curated --encoder vit --image-size 224 --set vit_depth=4
    cxrvlm train-probe --data runs/curated --encoder hf --set hf_vision_path=/models/rad-dino --image-size 518 --frozen

Trains one encoder of the model registry (as configured by a registered model plus `--set` overrides), mean-pooled
into a logistic head, on the curated training split's TB images (task `classify`, kind `tb`) with the trainer's
intensity augmentation, and prints the validation AUROC five times along the way. With `--labels closed` the
encoder learns every closed question the split asks of one image instead (TB and finding classification, the
close-ended VQA: projection, normal, severity, ...), one linear head per question over its candidate answers, and
also prints the validation accuracy over those questions (`--only-question projection`: only the questions that
name it). It is a probe of the encoder's
inductive bias on this little data, not a model: the VLM reads the same encoder through its decoder instead.
A pretrained tower reads its local folder (`--encoder hf --set hf_vision_path=/models/rad-dino --image-size 518`);
`--frozen` trains the head(s) alone, the linear probe by which such encoders are compared.
With `--init FILE` it continues from an earlier probe's encoder (e.g. to make a good TB encoder robust to framing
with `--geometry` at a lower learning rate). With `--save FILE` the trained encoder is written out, and a VLM run
can start from it (`cxrvlm train ... 'init_from={"vision.encoders.0": "FILE"}'`): encoder pre-training on the one
label that needs global features, before the joint run.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cxrvlm.data.images import ImageCache, augment_geometry, augment_intensity
from cxrvlm.data.split import read_split
from cxrvlm.examples import Example
from cxrvlm.metrics.classification import auroc
from cxrvlm.models.config import VLMConfig
from cxrvlm.models.hf_vision import resolve_hf_vision
from cxrvlm.models.registry import read_model_config
from cxrvlm.models.vision_encoder import ENCODER_REGISTRY
from cxrvlm.overrides import parse_overrides
from cxrvlm.tasks import get_task, screening_task
from cxrvlm.tensorfile import write_tensors
from cxrvlm.train.setup import load_module_weights


def tb_images(data: str, split: str) -> list[tuple[str, int]]:
    """(image path, 1 = tuberculosis) of the split's TB screening examples (`Task.screening`)."""
    task = screening_task()
    kind, positive = task.screening
    items = [(ex.images[0], int(ex.suffix == positive)) for ex in read_split(data, split) if task.screening_case(ex)]
    if not items or len({y for _, y in items}) < 2:
        raise ValueError(f"{data} {split}: needs TB and normal images of task {task.name} (kind {kind}); "
                         f"found {len(items)}")
    return items


def _close_ended(ex: Example) -> bool:
    """Whether the example's answer is one of its candidates, scored by likelihood (classification, closed VQA)."""
    task = get_task(ex.task)
    return bool(task.candidates and task.candidates(ex))


def closed_questions(data: str, split: str) -> list[tuple[str, str, tuple[str, ...], int]]:
    """(image path, question, candidate answers, index of the answer) of the split's single-image classification
    and close-ended VQA examples: the labels a pooled head can learn from one image."""
    items = []
    for ex in read_split(data, split):
        candidates = tuple(ex.target.get("candidates") or ())
        if _close_ended(ex) and len(ex.images) == 1 and ex.suffix in candidates:
            items.append((ex.images[0], ex.prefix, candidates, candidates.index(ex.suffix)))
    return items


def probe(args: argparse.Namespace) -> list[dict[str, float]]:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train, val = tb_images(args.data, "train"), tb_images(args.data, "val")
    questions = closed_questions(args.data, "train") if args.labels == "closed" else []
    questions = [q for q in questions if args.only_question.lower() in q[1].lower()]
    if args.labels == "closed" and not questions:
        raise ValueError(f"{args.data} train: no closed question contains {args.only_question!r}")
    keys = sorted({(q, c) for _, q, c, _ in questions})
    key_index = {k: i for i, k in enumerate(keys)}
    base = {**read_model_config(args.model)[0], "image_size": args.image_size, "encoders": [args.encoder],
            "vocab_size": 1, **parse_overrides(args.set)}
    cfg = resolve_hf_vision(VLMConfig.from_json(base, where=f"probe of {args.model}"))
    encoder = ENCODER_REGISTRY[args.encoder](cfg)
    if args.init:
        load_module_weights(encoder, "", args.init)  # clear errors for a missing file or another encoder's weights
    head = nn.Linear(encoder.out_dim, 1)
    heads = nn.ModuleList(nn.Linear(encoder.out_dim, len(c)) for _, c in keys)  # one per closed question
    encoder.requires_grad_(not args.frozen)
    train_mode = not args.frozen  # a frozen (linear-probed) encoder stays in eval mode throughout
    encoder.train(train_mode)
    params = [*(p for p in encoder.parameters() if p.requires_grad), *head.parameters(), *heads.parameters()]
    steps = max(args.epochs * (len(questions) or len(train)) // args.batch_size, 5)
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps)
    cache = ImageCache(args.image_size)

    def pixels(items: list[tuple], augment: bool) -> torch.Tensor:
        out = []
        for path, *_ in items:
            x = cache.get(path)
            if augment:
                x = augment_intensity(x, rng)
                x = augment_geometry(x, rng) if args.geometry else x
            out.append(torch.from_numpy((x - cfg.image_mean) / cfg.image_std)[None])
        return torch.stack(out)

    def val_auroc() -> float:
        encoder.eval()
        with torch.inference_mode():
            scores = [float(s) for i in range(0, len(val), 32)
                      for s in head(encoder(pixels(val[i:i + 32], False)).mean(1))[:, 0]]
        encoder.train(train_mode)
        return auroc([y for _, y in val], scores)

    val_questions = [q for q in closed_questions(args.data, "val") if (q[1], q[2]) in key_index] if keys else []

    def val_accuracy() -> float:
        encoder.eval()
        with torch.inference_mode():
            right = 0
            for i in range(0, len(val_questions), 32):
                chunk = val_questions[i:i + 32]
                feats = encoder(pixels(chunk, False)).mean(1)
                right += sum(int(heads[key_index[(q, c)]](f).argmax()) == y for f, (_, q, c, y) in zip(feats, chunk))
        encoder.train(train_mode)
        return right / max(len(val_questions), 1)

    def loss_of_batch() -> torch.Tensor:
        if not keys:
            batch = [train[i] for i in rng.integers(0, len(train), args.batch_size)]
            logit = head(encoder(pixels(batch, True)).mean(1))[:, 0]
            return F.binary_cross_entropy_with_logits(logit, torch.tensor([float(y) for _, y in batch]))
        batch = [questions[i] for i in rng.integers(0, len(questions), args.batch_size)]
        feats = encoder(pixels(batch, True)).mean(1)
        # the TB head keeps learning on the TB images of the batch, so the TB AUROC stays comparable
        tb = [(f, float(c[y] == "tuberculosis")) for f, (_, q, c, y) in zip(feats, batch) if "tuberculosis" in c
              and len(c) == 2]
        losses = [F.cross_entropy(heads[key_index[(q, c)]](f)[None], torch.tensor([y]))
                  for f, (_, q, c, y) in zip(feats, batch)]
        if tb:
            losses.append(F.binary_cross_entropy_with_logits(head(torch.stack([f for f, _ in tb]))[:, 0],
                                                             torch.tensor([y for _, y in tb])))
        return torch.stack(losses).mean()

    log, t0 = [], time.perf_counter()
    for step in range(steps):
        loss = loss_of_batch()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % max(steps // 5, 1) == 0 or step == steps - 1:
            row = {"step": step + 1, "train_loss": round(loss.item(), 4), "val_auroc": round(val_auroc(), 4),
                   "elapsed_s": round(time.perf_counter() - t0, 1)}
            if keys:
                row["val_closed_accuracy"] = round(val_accuracy(), 4)
            print(json.dumps(row), flush=True)
            log.append(row)
    if args.save:
        write_tensors(args.save, encoder.state_dict(), {"encoder": args.encoder, "image_size": str(args.image_size)})
        print(json.dumps({"saved": args.save}), flush=True)
    return log
