"""End-to-end training on a tiny curated folder: run folder contents, exact resume after a crash and after
kill -9, and two-process DDP (gloo) matching the one-process loss curve."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curated_fixtures import write_curated

TINY = {"image_size": 32, "vit_patch_size": 8, "vit_width": 32, "vit_depth": 1, "vit_heads": 2, "n_layer": 1,
        "n_embd": 32, "n_head": 2, "merge_k": 1, "max_text_len": 96}


def overrides(data: Path, steps: int, **extra: object) -> list[str]:
    base = {"data": str(data), "stages.0.steps": steps, "batch_size": 4, "log_every": 1, "eval_every": 0,
            "save_every": 3, "warmup_steps": 2, "tokenizer_vocab_size": 300, "model_overrides": TINY, **extra}
    return [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in base.items()]


def losses(run: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_curated(tmp_path_factory.mktemp("curated"))


def train(data: Path, run: Path, steps: int, **extra: object) -> None:
    from cxrvlm.train.config import load_config
    from cxrvlm.train.loop import Trainer

    Trainer(load_config(None, overrides(data, steps, **extra)), run).run()


def test_run_folder_has_config_metrics_checkpoints_and_a_loadable_model(data, tmp_path):
    from cxrvlm.models import load_model

    run = tmp_path / "run"
    train(data, run, steps=4, eval_every=2)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    mixture = [r for r in rows if "effective_ratios" in r]
    assert mixture and abs(sum(mixture[0]["effective_ratios"].values()) - 1) < 1e-6
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4]
    assert all(r["task_loss"] for r in train_rows)
    val = [r for r in rows if r.get("split") == "val"]
    assert [r["step"] for r in val] == [0, 2, 4] and len(val[0]["task_loss"]) >= 5
    assert json.loads((run / "config.json").read_text())["stages"][0]["steps"] == 4
    assert sorted(p.name for p in run.glob("step_*")) == ["step_0000003", "step_0000004"]
    model = load_model(run / "final")
    assert isinstance(model.generate([[__import__("numpy").zeros((32, 32), "float32")]], ["detect right lung"],
                                     max_new_tokens=3)[0], str)


def test_loss_falls_when_training_longer(data, tmp_path):
    run = tmp_path / "run"
    train(data, run, steps=30, lr=3e-3, save_every=30)
    curve = losses(run)
    assert sum(list(curve.values())[-5:]) / 5 < sum(list(curve.values())[:5]) / 5


def test_resume_after_a_crash_retraces_the_same_curve(data, tmp_path, monkeypatch):
    from cxrvlm.train.loop import Trainer

    full = tmp_path / "full"
    train(data, full, steps=8)
    crashed = tmp_path / "crashed"
    real_step = Trainer._step

    def crash_at_7(self, step, *a):
        if step == 7:
            raise RuntimeError("simulated crash")
        return real_step(self, step, *a)

    monkeypatch.setattr(Trainer, "_step", crash_at_7)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(data, crashed, steps=8)
    monkeypatch.setattr(Trainer, "_step", real_step)
    assert max(losses(crashed)) == 7  # steps 1..7 logged before the crash; the last checkpoint is step 6
    train(data, crashed, steps=8)
    a, b = losses(full), losses(crashed)
    assert sorted(a) == sorted(b) == list(range(1, 9))
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-5, abs=1e-6), step


def test_resume_after_a_torn_metrics_line(data, tmp_path, monkeypatch):
    """A kill while metrics.jsonl was being written leaves half a line: resume repairs the file and goes on."""
    from cxrvlm.train.loop import Trainer

    run, real_step = tmp_path / "run", Trainer._step

    def crash_at_5(self, step, *a):
        if step == 5:
            raise RuntimeError("simulated crash")
        return real_step(self, step, *a)

    monkeypatch.setattr(Trainer, "_step", crash_at_5)
    with pytest.raises(RuntimeError):
        train(data, run, steps=6)
    monkeypatch.setattr(Trainer, "_step", real_step)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "loss": 1.2')  # the torn last line
    train(data, run, steps=6)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # every line parses again
    assert sorted(losses(run)) == list(range(1, 7))


def _cli(args: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_kill_9_then_resume_matches_an_uninterrupted_run(data, tmp_path):
    steps = 60
    full, killed = tmp_path / "full", tmp_path / "killed"
    cmd = [sys.executable, "-m", "cxrvlm.cli", "train", "--out"]
    p = _cli(cmd + [str(full)] + overrides(data, steps))
    assert p.wait(timeout=300) == 0, p.stderr.read()[-2000:]
    p = _cli(cmd + [str(killed)] + overrides(data, steps))
    deadline = time.time() + 300
    while not (killed / "step_0000003" / "state.json").exists():
        assert p.poll() is None and time.time() < deadline, "training ended before it could be killed"
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert max(losses(killed)) < steps
    p = _cli(cmd + [str(killed)] + overrides(data, steps))
    assert p.wait(timeout=300) == 0, p.stderr.read()[-2000:]
    a, b = losses(full), losses(killed)
    assert sorted(b) == list(range(1, steps + 1))
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-5, abs=1e-6), step


@pytest.mark.skipif(shutil.which("accelerate") is None and not Path(sys.executable).with_name("accelerate").exists(),
                    reason="accelerate launcher not installed")
def test_two_process_ddp_matches_one_process(data, tmp_path):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    train(data, single, steps=4)
    launcher = str(Path(sys.executable).with_name("accelerate"))
    p = _cli([launcher, "launch", "--cpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
              "--dynamo_backend", "no", "-m", "cxrvlm.cli", "train", "--out", str(ddp)] + overrides(data, 4))
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err[-3000:]
    a, b = losses(single), losses(ddp)
    assert sorted(b) == [1, 2, 3, 4]
    for step in a:  # gradients averaged over 2 processes of 2 examples = the mean over the batch of 4
        assert b[step] == pytest.approx(a[step], rel=1e-4), step


def test_resume_at_a_stage_boundary_into_a_lora_stage(data, tmp_path, monkeypatch):
    """Stage 1 trains everything, stage 2 only LoRA adapters; a crash right after the boundary checkpoint resumes
    with the new stage's fresh optimizer, retraces the curve, and the final model (LoRA merged) loads."""
    from cxrvlm.models import load_model
    from cxrvlm.train.loop import Trainer

    stages = {"stages": [{"name": "full", "steps": 3}, {"name": "lora", "steps": 3,
                                                        "lora": {"r": 2, "target_modules": ["qkv"]}}]}
    full, crashed = tmp_path / "full", tmp_path / "crashed"

    def run(out: Path) -> None:
        from cxrvlm.train.config import load_config

        args = [o for o in overrides(data, 6) if not o.startswith("stages.")]
        Trainer(load_config(None, args + [f"stages={json.dumps(stages['stages'])}"]), out).run()

    run(full)
    real_step = Trainer._step

    def crash_at_4(self, step, *a):
        if step == 4:
            raise RuntimeError("simulated crash")
        return real_step(self, step, *a)

    monkeypatch.setattr(Trainer, "_step", crash_at_4)
    with pytest.raises(RuntimeError):
        run(crashed)
    monkeypatch.setattr(Trainer, "_step", real_step)
    run(crashed)
    a, b = losses(full), losses(crashed)
    assert sorted(b) == list(range(1, 7))
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-5, abs=1e-6), step
    model = load_model(crashed / "final")
    assert not any("lora_" in n for n, _ in model.named_parameters())


def test_location_augmentation_rewrites_loc_answers_only(data, tmp_path):
    from cxrvlm.train.config import load_config
    from cxrvlm.train.loop import Trainer

    trainer = Trainer(load_config(None, overrides(data, 1, augment_locations=True)), tmp_path / "run")
    for task in ("detect", "classify"):
        pairs = [(task, i) for i in range(trainer.train_data.sizes[task])]
        examples, _ = trainer._examples(pairs, step=0)
        changed = [ex.suffix != trainer.train_data.get(t, i).suffix for ex, (t, i) in zip(examples, pairs)]
        assert any(changed) if task == "detect" else not any(changed), task


def test_a_stage_can_set_its_own_mixture(data, tmp_path):
    run = tmp_path / "run"
    stages = [{"name": "all", "steps": 2}, {"name": "classify", "steps": 2, "mixture": "fixed",
                                            "mixture_ratios": {"classify": 1.0}}]
    train(data, run, steps=4, stages=stages)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    tasks = {r["step"]: set(r["task_loss"]) for r in rows if "loss" in r}
    assert tasks[3] == tasks[4] == {"classify"} and len(tasks[1] | tasks[2]) > 1


def test_a_stage_lr_scale_slows_the_modules_it_names(data, tmp_path):
    from cxrvlm.train.config import load_config
    from cxrvlm.train.loop import Trainer

    stages = [{"name": "gentle-encoder", "steps": 3, "lr_scale": {"vision": 1e-4}}]
    trainer = Trainer(load_config(None, overrides(data, 3, stages=stages)), tmp_path / "run")
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.run()
    change = {n: float((p.detach() - before[n]).abs().max()) for n, p in trainer.model.named_parameters()}
    vision = max(v for n, v in change.items() if n.startswith("vision."))
    decoder = max(v for n, v in change.items() if n.startswith("decoder."))
    assert 0 < vision < 1e-3 * decoder  # Adam's step is about lr, so 1e-4 of it


def test_lr_scale_groups_parameters_by_longest_prefix_and_rejects_unknown_ones() -> None:
    from torch import nn

    from cxrvlm.train.config import StageConfig
    from cxrvlm.train.setup import param_groups

    model = nn.ModuleDict({"vision": nn.ModuleDict({"enc": nn.Linear(2, 2), "align": nn.Linear(2, 2)}),
                           "decoder": nn.Linear(2, 2)})
    groups = param_groups(model, StageConfig("s", 1, lr_scale={"vision": 0.1, "vision.align": 0.5}))
    sizes = {g["lr_scale"]: sum(p.numel() for p in g["params"]) for g in groups}
    assert sizes == {0.1: 6, 0.5: 6, 1.0: 6}
    with pytest.raises(ValueError, match="lr_scale 'vison' matches no trainable parameter"):
        param_groups(model, StageConfig("s", 1, lr_scale={"vison": 0.1}))


def test_the_rad_dino_recipe_trains_with_a_frozen_pretrained_tower(data, tmp_path):
    """configs/rad-dino.json with a tiny random DINOv2 in Rad-DINO's place: the tower stays as pretrained through
    the run, and the run's model loads without the tower's folder."""
    transformers = pytest.importorskip("transformers")
    from cxrvlm.models import load_model
    from cxrvlm.train.config import load_config
    from cxrvlm.train.loop import Trainer

    tower = transformers.Dinov2Model(transformers.Dinov2Config(
        image_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, patch_size=8))
    tower.save_pretrained(str(tmp_path / "rad-dino"))
    recipe = Path(__file__).parents[2] / "configs" / "rad-dino.json"
    small = {"image_size": 32, "projector_tokens": 4, "projector_hidden": 32, "projector_depth": 1, "n_layer": 1,
             "n_embd": 32, "n_head": 2, "max_text_len": 96}
    args = [f"model_overrides.{k}={json.dumps(v)}" for k, v in small.items()]
    args += [f"model_overrides.hf_vision_path={tmp_path / 'rad-dino'}", f"data={data}", "stages.0.steps=3",
             "batch_size=4", "log_every=1", "eval_every=0", "save_every=3", "warmup_steps=1", "tokenizer_vocab_size=300"]
    Trainer(load_config(recipe, args), tmp_path / "run").run()
    shutil.rmtree(tmp_path / "rad-dino")
    model = load_model(tmp_path / "run" / "final")
    state = model.vision.encoders[0].model.state_dict()
    assert all(state[k].equal(v) for k, v in tower.state_dict().items())  # frozen: exactly as pretrained
    assert list(losses(tmp_path / "run")) == [1, 2, 3]
