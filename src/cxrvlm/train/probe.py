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
name it). With `--labels image` it learns the image-level label space of task `image_labels` (tuberculosis, no
finding, the pneumonias, NIH's findings: one sigmoid each, labels a film's source does not settle masked out of the
loss, `--tb-weight` on the TB output), also prints the macro AUROC over those labels, and `--save-head FILE` writes
the head with its label names: the label head a VLM with `label_names` carries (`init_from` "label_head").
It is a probe of the encoder's inductive bias on this little data, not a model: the VLM reads the same encoder
through its decoder instead.
A pretrained tower reads its local folder (`--encoder hf --set hf_vision_path=/models/rad-dino --image-size 518`);
`--frozen` trains the head(s) alone, the linear probe by which such encoders are compared.
With `--init FILE` it continues from an earlier probe's encoder (e.g. to make a good TB encoder robust to framing
with `--geometry` at a lower learning rate). With `--save FILE` the trained encoder is written out, and a VLM run
can start from it (`cxrvlm train ... 'init_from={"vision.encoders.0": "FILE"}'`): encoder pre-training on the one
label that needs global features, before the joint run. With --save the run keeps a resumable state beside the
file and a second run of the same command goes on from it.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cxrvlm.data.images import ImageCache, augment_geometry, augment_intensity
from cxrvlm.data.split import read_split
from cxrvlm.examples import Example
from cxrvlm.metrics.classification import auroc, choose_threshold
from cxrvlm.models.config import VLMConfig
from cxrvlm.models.hf_vision import resolve_hf_vision
from cxrvlm.models.registry import read_model_config
from cxrvlm.models.vision_encoder import ENCODER_REGISTRY
from cxrvlm.overrides import parse_overrides
from cxrvlm.tasks import get_task, labels, screening_task
from cxrvlm.tensorfile import write_tensors
from cxrvlm.train.setup import load_module_weights

SAVE_EVERY = 100  # steps between resumable states


def tb_images(data: str, split: str) -> list[tuple[str, int]]:
    """(image path, 1 = tuberculosis) of the split's TB screening examples (`Task.screening`)."""
    task = screening_task()
    kind, positive = task.screening
    items = [(ex.images[0], int(ex.suffix == positive)) for ex in read_split(data, split) if task.screening_case(ex)]
    if not items or len({y for _, y in items}) < 2:
        raise ValueError(f"{data} {split}: needs TB and normal images of task {task.name} (kind {kind}); "
                         f"found {len(items)}")
    return items


def disease_images(data: str, split: str) -> list[tuple[str, int]]:
    """(image path, 0) of the split's films with another disease and no TB (`Task.other_disease_case`): what a TB
    screening test must not call TB."""
    task = screening_task()
    cases = [task.other_disease_case(ex) for ex in read_split(data, split)] if task.other_disease_case else []
    return [(case.images[0], 0) for case in cases if case is not None]


def label_images(data: str, split: str) -> list[tuple[str, list[float], list[float]]]:
    """(image path, targets, mask) over `labels.LABEL_SPACE` of the split's image-level label examples."""
    items = [(ex.images[0], *labels.label_vector(ex.target["labels"], labels.LABEL_SPACE))
             for ex in read_split(data, split) if ex.task == labels.NAME]
    if not items:
        raise ValueError(f"{data} {split}: no {labels.NAME!r} examples; curate again with this version")
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


def _questions(args: argparse.Namespace) -> list[tuple[str, str, tuple[str, ...], int]]:
    """The training split's closed questions this probe learns (none unless `--labels closed`)."""
    questions = closed_questions(args.data, "train") if args.labels == "closed" else []
    questions = [q for q in questions if args.only_question.lower() in q[1].lower()]
    if args.labels == "closed" and not questions:
        raise ValueError(f"{args.data} train: no closed question contains {args.only_question!r}")
    return questions


def _encoder(args: argparse.Namespace) -> tuple[nn.Module, VLMConfig]:
    """The encoder named by --encoder, configured like --model's, started from --init when given."""
    base = {**read_model_config(args.model)[0], "image_size": args.image_size, "encoders": [args.encoder],
            "vocab_size": 1, **parse_overrides(args.set)}
    cfg = resolve_hf_vision(VLMConfig.from_json(base, where=f"probe of {args.model}"))
    encoder = ENCODER_REGISTRY[args.encoder](cfg)
    if args.init:
        load_module_weights(encoder, "", args.init)  # clear errors for a missing file or another encoder's weights
    return encoder, cfg


class _Probe:
    """An encoder with a pooled linear TB head (and one head per closed question), trained and validated."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = np.random.default_rng(args.seed)
        self.train, self.val = tb_images(args.data, "train"), tb_images(args.data, "val")
        if args.disease_negatives:
            self.train += disease_images(args.data, "train")
        self.val_disease = disease_images(args.data, "val")
        self.questions = _questions(args)
        self.keys = sorted({(q, c) for _, q, c, _ in self.questions})
        self.key_index = {k: i for i, k in enumerate(self.keys)}
        self.encoder, self.cfg = _encoder(args)
        # the TB logit is column 0 in both modes (labels.LABEL_SPACE starts with tuberculosis)
        self.labelled = label_images(args.data, "train") if args.labels == "image" else []
        self.val_labelled = label_images(args.data, "val") if args.labels == "image" else []
        self.head = nn.Linear(self.encoder.out_dim, len(labels.LABEL_SPACE) if self.labelled else 1)
        self.label_weights = torch.tensor([args.tb_weight if n == labels.TB else 1.0 for n in labels.LABEL_SPACE])
        self.heads = nn.ModuleList(nn.Linear(self.encoder.out_dim, len(c)) for _, c in self.keys)
        self.encoder.requires_grad_(not args.frozen)
        self.train_mode = not args.frozen  # a frozen (linear-probed) encoder stays in eval mode throughout
        self.encoder.train(self.train_mode)
        self.cache = ImageCache(args.image_size)
        self.val_questions = ([q for q in closed_questions(args.data, "val") if (q[1], q[2]) in self.key_index]
                              if self.keys else [])

    def pixels(self, items: list[tuple], augment: bool) -> torch.Tensor:
        out = []
        for path, *_ in items:
            x = self.cache.get(path)
            if augment:
                x = augment_intensity(x, self.rng)
                x = augment_geometry(x, self.rng) if self.args.geometry else x
            out.append(torch.from_numpy((x - self.cfg.image_mean) / self.cfg.image_std)[None])
        return torch.stack(out)

    def features(self, items: list[tuple], augment: bool) -> torch.Tensor:
        return self.encoder(self.pixels(items, augment)).mean(1)  # (B, C): tokens pooled

    def tb_scores(self, items: list[tuple]) -> list[float]:
        self.encoder.eval()
        with torch.inference_mode():
            scores = [float(s) for i in range(0, len(items), 32)
                      for s in self.head(self.features(items[i:i + 32], False))[:, 0]]
        self.encoder.train(self.train_mode)
        return scores

    def val_tb(self) -> dict[str, float]:
        """Validation TB AUROC (TB vs normal films) and the share of films with another disease called TB at the
        threshold that reaches sensitivity 0.9 on the validation TB films (the WHO triage target)."""
        y, scores = [y for _, y in self.val], self.tb_scores(self.val)
        out = {"val_auroc": round(auroc(y, scores), 4)}
        if self.val_disease:
            threshold = choose_threshold(y, scores, 0.9)
            called = [s >= threshold for s in self.tb_scores(self.val_disease)]
            out["val_disease_as_tb"] = round(sum(called) / len(called), 4)
        return out

    def val_accuracy(self) -> float:
        self.encoder.eval()
        right = 0
        with torch.inference_mode():
            for i in range(0, len(self.val_questions), 32):
                chunk = self.val_questions[i:i + 32]
                right += sum(int(self.heads[self.key_index[(q, c)]](f).argmax()) == y
                             for f, (_, q, c, y) in zip(self.features(chunk, False), chunk))
        self.encoder.train(self.train_mode)
        return right / max(len(self.val_questions), 1)

    def val_labels(self) -> dict[str, float]:
        """The label head's validation AUROCs: the macro and TB's (`labels.LabelsMetric`)."""
        self.encoder.eval()
        metric = labels.metric()
        with torch.inference_mode():
            for i in range(0, len(self.val_labelled), 32):
                chunk = self.val_labelled[i:i + 32]
                for row, (_, y, m) in zip(torch.sigmoid(self.head(self.features(chunk, False))), chunk):
                    probs = dict(zip(labels.LABEL_SPACE, map(float, row)))
                    metric.update(labels.head_prediction(probs),
                                  {"labels": {n: t for n, t, k in zip(labels.LABEL_SPACE, y, m) if k}})
        self.encoder.train(self.train_mode)
        out = metric.compute()
        return {f"val_{k}": round(v, 4) for k, v in out.items() if k == "labels_macro_auroc"}

    def loss_of_batch(self) -> torch.Tensor:
        size = self.args.batch_size
        if self.labelled:  # multi-label, labels a film's source does not settle masked out
            batch = [self.labelled[i] for i in self.rng.integers(0, len(self.labelled), size)]
            logits = self.head(self.features(batch, True))
            y, m = torch.tensor([b[1] for b in batch]), torch.tensor([b[2] for b in batch])
            loss = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
            m = m * self.label_weights  # the TB column may weigh more (--tb-weight): the screening test comes first
            return (loss * m).sum() / m.sum().clamp(min=1.0)
        if not self.keys:
            batch = [self.train[i] for i in self.rng.integers(0, len(self.train), size)]
            logit = self.head(self.features(batch, True))[:, 0]
            return F.binary_cross_entropy_with_logits(logit, torch.tensor([float(y) for _, y in batch]))
        batch = [self.questions[i] for i in self.rng.integers(0, len(self.questions), size)]
        feats = self.features(batch, True)
        # the TB head keeps learning on the TB images of the batch, so the TB AUROC stays comparable
        tb = [(f, float(c[y] == "tuberculosis")) for f, (_, q, c, y) in zip(feats, batch) if "tuberculosis" in c
              and len(c) == 2]
        losses = [F.cross_entropy(self.heads[self.key_index[(q, c)]](f)[None], torch.tensor([y]))
                  for f, (_, q, c, y) in zip(feats, batch)]
        if tb:
            losses.append(F.binary_cross_entropy_with_logits(self.head(torch.stack([f for f, _ in tb]))[:, 0],
                                                             torch.tensor([y for _, y in tb])))
        return torch.stack(losses).mean()

    def parameters(self) -> list[nn.Parameter]:
        return [*(p for p in self.encoder.parameters() if p.requires_grad), *self.head.parameters(),
                *self.heads.parameters()]

    def row(self, step: int, loss: torch.Tensor, t0: float) -> dict[str, float]:
        row = {"step": step, "train_loss": round(loss.item(), 4), **self.val_tb(),
               "elapsed_s": round(time.perf_counter() - t0, 1)}
        if self.keys:
            row["val_closed_accuracy"] = round(self.val_accuracy(), 4)
        if self.labelled:
            row.update(self.val_labels())
        return row


def _state_path(args: argparse.Namespace) -> Path | None:
    """Where the probe keeps its resumable state: beside --save (none without it)."""
    return Path(args.save + ".state") if args.save else None


def _save_state(path: Path, run: _Probe, opt: torch.optim.Optimizer, sched: Any, step: int, log: list) -> None:
    """Everything to go on from `step`, written atomically (a crash mid-write keeps the previous state)."""
    state = {"step": step, "log": log, "encoder": run.encoder.state_dict(), "head": run.head.state_dict(),
             "heads": run.heads.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
             "rng": run.rng.bit_generator.state, "torch_rng": torch.get_rng_state()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _resume(path: Path | None, run: _Probe, opt: torch.optim.Optimizer, sched: Any) -> tuple[int, list]:
    """(step, log) of the saved state, loaded into the run; (0, []) when there is none."""
    if path is None or not path.is_file():
        return 0, []
    state = torch.load(path, weights_only=False)
    run.encoder.load_state_dict(state["encoder"])
    run.head.load_state_dict(state["head"])
    run.heads.load_state_dict(state["heads"])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    run.rng.bit_generator.state = state["rng"]
    torch.set_rng_state(state["torch_rng"])
    print(json.dumps({"resumed": str(path), "step": state["step"]}), flush=True)
    return state["step"], state["log"]


def train(args: argparse.Namespace) -> tuple[_Probe, list[dict[str, float]]]:
    """Train the probe (printing a JSON row of validation figures five times): the trained run and its rows. With
    --save it keeps a resumable state beside the file (FILE.state, every `SAVE_EVERY` steps) and goes on from it
    when run again."""
    torch.manual_seed(args.seed)
    run = _Probe(args)
    steps = max(args.epochs * (len(run.questions) or len(run.labelled) or len(run.train)) // args.batch_size, 5)
    opt = torch.optim.AdamW(run.parameters(), lr=args.lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps)
    state_path = _state_path(args)
    start, log = _resume(state_path, run, opt, sched)
    t0 = time.perf_counter()
    for step in range(start, steps):
        loss = run.loss_of_batch()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % max(steps // 5, 1) == 0 or step == steps - 1:
            log.append(run.row(step + 1, loss, t0))
            print(json.dumps(log[-1]), flush=True)
        if state_path is not None and (step + 1) % SAVE_EVERY == 0:
            _save_state(state_path, run, opt, sched, step + 1, log)
    return run, log


def probe(args: argparse.Namespace) -> list[dict[str, float]]:
    """Train the probe (`train`), save the encoder (and the label head) if asked; the resumable state is removed
    once they are saved."""
    run, log = train(args)
    state_path = _state_path(args)
    if args.save:
        write_tensors(args.save, run.encoder.state_dict(),
                      {"encoder": args.encoder, "image_size": str(args.image_size)})
        print(json.dumps({"saved": args.save}), flush=True)
    if args.save_head:
        names = labels.LABEL_SPACE if run.labelled else labels.LABEL_SPACE[:1]
        write_tensors(args.save_head, run.head.state_dict(), {"label_names": json.dumps(list(names))})
        print(json.dumps({"saved": args.save_head}), flush=True)
    if state_path is not None and state_path.is_file():
        state_path.unlink()
    return log
