"""The training loop: one config runs on a CPU, one GPU or many processes (Accelerate), and resumes exactly.

Exactness: batch t is a pure function of (seed, t) (see mixture.py), augmentation and dropout are seeded from
(seed, t), and the learning rate is a function of t, so a run killed at any point and resumed from its last
checkpoint retraces the loss curve an uninterrupted run would draw.
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from cxrvlm.data.images import ImageCache, augment_geometry, augment_intensity, zoomed_and_shifted
from cxrvlm.data.split import TaskData, read_split
from cxrvlm.jsonl import read_jsonl, write_jsonl
from cxrvlm.models.hf_common import require_hf
from cxrvlm.tasks.base import get_task
from cxrvlm.train import checkpoint as ckpt_io
from cxrvlm.train.config import StageConfig, TrainConfig
from cxrvlm.train.mixture import answer_balance, effective_ratios, mixture_weights, sample_batch
from cxrvlm.train.setup import apply_stage, build_model, load_weights, merge_lora, param_groups

log = logging.getLogger(__name__)


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up then cosine decay to lr * min_lr_ratio, over all stages; a stage's own lr scales it."""
    _, stage = cfg.stage_at(step)
    base = stage.lr if stage.lr is not None else cfg.lr
    if step < cfg.warmup_steps:
        return base * (step + 1) / cfg.warmup_steps
    span = max(cfg.total_steps - cfg.warmup_steps, 1)
    progress = min((step - cfg.warmup_steps) / span, 1.0)
    return base * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


class Trainer:
    def __init__(self, cfg: TrainConfig, run_dir: str | Path) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.acc = require_hf("training (cxrvlm train)", "accelerate").Accelerator()
        self.train_data = TaskData(read_split(cfg.data, "train"), cfg.tasks, source=f"{cfg.data}/train.jsonl")
        val_examples = [e for e in read_split(cfg.data, "val") if e.task in self.train_data.sizes]
        self.val_data = TaskData(val_examples, None, source=f"{cfg.data}/val.jsonl") if val_examples else None
        checkpoints = ckpt_io.list_checkpoints(self.run_dir)
        self.resume_from = checkpoints[-1] if checkpoints else None
        self.model = build_model(cfg, self.train_data, self.resume_from / "model" if self.resume_from else None)
        self.images = ImageCache(self.model.config.image_size)
        self.geometry_in_answer = {t: get_task(t).coordinates for t in self.train_data.sizes}
        self.zoom_shift_safe = {t: get_task(t).zoom_shift_safe for t in self.train_data.sizes}
        self.example_weights = ({t: answer_balance(exs) for t, exs in self.train_data.by_task.items()}
                                if cfg.balance_answers else None)
        self.stage_index = -1
        self.optimizer: torch.optim.Optimizer | None = None
        self.start_step = 0

    # ----------------------------------------------------------------------------------------------- set-up
    def _enter_stage(self, index: int, stage: StageConfig) -> None:
        """Freeze / LoRA as the stage says, and a fresh optimizer over what now trains."""
        apply_stage(self.model, stage)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ValueError(f"stage {stage.name!r} freezes every parameter; nothing would train")
        groups = param_groups(self.model, stage)
        self.optimizer = torch.optim.AdamW(groups, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        self.wrapped, self.optimizer = self.acc.prepare(self.model, self.optimizer)
        self.stage_index = index
        n = sum(p.numel() for p in params)
        log.info("stage %d %r: %d trainable parameters", index, stage.name, n)

    def _weights(self, stage: StageConfig) -> tuple[dict[str, float], dict[str, int]]:
        sizes = self.train_data.sizes
        if stage.tasks is not None:
            unknown = sorted(set(stage.tasks) - set(sizes))
            if unknown:
                raise ValueError(f"stage {stage.name!r}: task(s) {unknown} have no training examples; have {sorted(sizes)}")
            sizes = {t: n for t, n in sizes.items() if t in stage.tasks}
        ratios = stage.mixture_ratios if stage.mixture_ratios is not None else self.cfg.mixture_ratios
        weights = mixture_weights(sizes, stage.mixture or self.cfg.mixture, self.cfg.mixture_temperature, ratios)
        return weights, sizes

    def _resume(self) -> None:
        last = self.resume_from
        if last is None:
            return
        state = ckpt_io.read_state(last)
        step = int(state["step"])
        index, stage = self.cfg.stage_at(step)
        self._enter_stage(index, stage)
        load_weights(self.model, last / "model")
        if state.get("stage") == index:  # at a stage boundary the new stage starts with a fresh optimizer
            self.optimizer.load_state_dict(ckpt_io.load_optimizer_state(last))
        self.start_step = step
        _truncate_metrics(self.run_dir / "metrics.jsonl", step)
        log.info("resumed from %s (step %d)", last, step)

    # ------------------------------------------------------------------------------------------------ steps
    def _examples(self, pairs: list[tuple[str, int]], step: int) -> tuple[list, list[list[np.ndarray]]]:
        examples, images = [], []
        for i, (task, idx) in enumerate(pairs):
            ex = self.train_data.get(task, idx)
            views = self.images.views(ex)
            if self.cfg.augment:
                rng = np.random.default_rng([self.cfg.seed, step, i])
                if self.cfg.augment_geometry and not self.geometry_in_answer[task]:
                    views = [augment_geometry(v, rng) for v in views]
                elif self.cfg.augment_locations and self.zoom_shift_safe[task] and len(views) == 1:
                    ex, views = zoomed_and_shifted(ex, views[0], rng)
                views = [augment_intensity(v, rng) for v in views]
            examples.append(ex)
            images.append(views)
        return examples, images

    def _step(self, step: int, weights: dict[str, float], sizes: dict[str, int]) -> dict[str, Any]:
        cfg, acc = self.cfg, self.acc
        pairs = sample_batch(weights, sizes, cfg.batch_size, cfg.seed, step, self.example_weights)
        local = pairs[acc.process_index :: acc.num_processes]
        torch.manual_seed(cfg.seed * 1_000_003 + step)  # dropout masks depend on the step, not on history
        examples, images = self._examples(local, step)
        batch = self.model.collate(examples, images)
        self.wrapped.train()
        _, per_example = self.wrapped(**batch, reduction="none")  # (B_local,)
        loss = per_example.mean()
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(cfg, step) * group.get("lr_scale", 1.0)
        self.optimizer.zero_grad(set_to_none=True)
        acc.backward(loss)
        if cfg.grad_clip > 0:
            acc.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        task_ids = torch.tensor([sorted(sizes).index(t) for t, _ in local])
        all_losses = acc.gather(per_example.detach().float())
        all_tasks = acc.gather(task_ids)
        task_loss = {}
        for k, task in enumerate(sorted(sizes)):
            sel = all_tasks == k
            if sel.any():
                task_loss[task] = float(all_losses[sel].mean())
        return {"loss": float(all_losses.mean()), "task_loss": task_loss, "lr": lr_at(cfg, step)}

    @torch.no_grad()
    def validate(self, chunk: int = 16) -> dict[str, float]:
        """Mean per-task loss on the first `eval_examples_per_task` validation examples of each task."""
        if self.val_data is None:
            return {}
        self.model.eval()
        out = {}
        for task, examples in self.val_data.by_task.items():
            examples = examples[: self.cfg.eval_examples_per_task]
            losses = []
            for i in range(0, len(examples), chunk):
                part = examples[i : i + chunk]
                batch = self.model.collate(part, [self.images.views(e) for e in part])
                _, per_example = self.model(**batch, reduction="none")
                losses.extend(per_example.tolist())
            out[task] = float(np.mean(losses))
        return out

    # ------------------------------------------------------------------------------------------------- run
    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.acc.is_main_process:
            (self.run_dir / "config.json").write_text(json.dumps(cfg.to_json(), indent=1))
        self._resume()
        writer = _tensorboard(self.run_dir) if cfg.tensorboard and self.acc.is_main_process else None
        progress = _progress(cfg.total_steps, self.start_step, disable=not self.acc.is_main_process)
        if self.start_step == 0 and cfg.eval_every and self.acc.is_main_process:  # the curve's starting point
            self._write({"step": 0, "split": "val", "task_loss": self.validate()}, writer)
        self.acc.wait_for_everyone()
        last: dict[str, Any] = {}
        t0, seen = time.perf_counter(), 0
        weights: dict[str, float] | None = None
        for step in range(self.start_step, cfg.total_steps):
            index, stage = cfg.stage_at(step)
            if index != self.stage_index:
                self._enter_stage(index, stage)
                weights = None
            if weights is None:
                weights, sizes = self._weights(stage)
                self._log_mixture(stage, weights, sizes)
            last = self._step(step, weights, sizes)
            seen += cfg.batch_size
            progress.update(1)
            progress.set_postfix(loss=f"{last['loss']:.3f}")
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.total_steps:
                rate = seen / (time.perf_counter() - t0)
                self._write({"step": done, "stage": stage.name, **last, "samples_per_s": rate,
                             "elapsed_s": time.perf_counter() - t0}, writer)
            if cfg.eval_every and (done % cfg.eval_every == 0 or done == cfg.total_steps):
                if self.acc.is_main_process:
                    self._write({"step": done, "split": "val", "task_loss": self.validate()}, writer)
                self.acc.wait_for_everyone()
            if done % cfg.save_every == 0 or done == cfg.total_steps:
                self.save(done)
        progress.close()
        if self.acc.is_main_process:  # the final model carries no adapters: LoRA is folded into its layers
            merge_lora(self.model).save_pretrained(self.run_dir / "final")
        self.acc.wait_for_everyone()
        return last

    def save(self, step: int) -> None:
        if self.acc.is_main_process:
            ckpt_io.save_checkpoint(self.run_dir, step, self.model, self.optimizer, {"stage": self.stage_index})
        self.acc.wait_for_everyone()

    def _log_mixture(self, stage: StageConfig, weights: dict[str, float], sizes: dict[str, int]) -> None:
        ratios = effective_ratios(weights, sizes, self.cfg.batch_size, self.cfg.seed, min(stage.steps, 200))
        if self.acc.is_main_process:
            self._write({"stage": stage.name, "mixture": self.cfg.mixture, "task_sizes": sizes,
                         "weights": weights, "effective_ratios": ratios}, None)
            log.info("mixture %s: effective ratios %s", self.cfg.mixture, {t: round(r, 3) for t, r in ratios.items()})

    def _write(self, record: dict[str, Any], writer: Any) -> None:
        if not self.acc.is_main_process:
            return
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if writer is not None and "step" in record:
            prefix = record.get("split", "train")
            for task, v in record.get("task_loss", {}).items():
                writer.add_scalar(f"{prefix}/loss_{task}", v, record["step"])
            if "loss" in record:
                writer.add_scalar(f"{prefix}/loss", record["loss"], record["step"])


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop records logged after the checkpoint we resume from (the resumed run writes them again) and any torn
    line a kill mid-write left; the file is replaced atomically."""
    if path.is_file():
        write_jsonl(path, [r for r in read_jsonl(path) if r.get("step", 0) <= step])


def _progress(total: int, initial: int, disable: bool) -> Any:
    return tqdm(total=total, initial=initial, desc="train", unit="step", disable=disable, dynamic_ncols=True)


def _tensorboard(run_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("tensorboard=true but the tensorboard package is not installed; logging to metrics.jsonl only")
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))
