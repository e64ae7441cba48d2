"""LoRA through peft on both backends: only adapters train, training moves the output, merging keeps it, and the
merged model saves and loads as a plain checkpoint."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("peft")
pytest.importorskip("transformers")

from cxrvlm.models import Tokenizer, create_model, load_model  # noqa: E402
from cxrvlm.examples import Example  # noqa: E402
from cxrvlm.train.config import StageConfig  # noqa: E402
from cxrvlm.train.setup import add_lora, apply_stage, merge_lora  # noqa: E402

TINY = dict(image_size=32, vit_patch_size=8, vit_width=32, vit_depth=1, vit_heads=2, n_layer=2, n_head=2, n_embd=32,
            max_text_len=64, merge_k=1)
# attention projections: the native blocks' fused qkv; Gemma's (and SigLIP's) q/v projections
TARGETS = {"cxrvlm-tiny": ["qkv"], "paligemma-tiny": ["q_proj", "v_proj"]}


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.train([f"report {i}: the lungs are clear, no effusion." for i in range(50)], vocab_size=300)


def make(name: str, tok: Tokenizer):
    torch.manual_seed(0)
    model = create_model(name, tokenizer=tok, **TINY)
    rng = np.random.default_rng(0)
    examples = [Example("report", ["a.png"], "describe", "the lungs are clear.", "s", "p", "t"),
                Example("vqa", ["a.png", "b.png"], "effusion?", "no", "s", "p", "t")]
    images = [[rng.random((32, 32), dtype=np.float32)], [rng.random((32, 32), dtype=np.float32) for _ in range(2)]]
    return model, model.collate(examples, images)


def logits(model, batch) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**batch)[0]


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_lora_trains_adapters_only_and_merges(name: str, tok: Tokenizer, tmp_path) -> None:
    model, batch = make(name, tok)
    before = logits(model, batch)
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    add_lora(model, {"r": 4, "lora_alpha": 8, "target_modules": TARGETS[name]})
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert torch.allclose(logits(model, batch), before, atol=1e-6)  # LoRA B starts at zero
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(3):
        _, loss = model(**batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    adapted = logits(model, batch)
    assert (adapted - before).abs().max() > 1e-3  # the adapters changed the output
    for n, p in model.named_parameters():  # the base weights did not move
        plain = n.replace(".base_layer", "")
        if "lora_" not in n:
            assert torch.equal(p, base[plain]), n
    merge_lora(model)
    assert not any("lora_" in n or "base_layer" in n for n, _ in model.named_parameters())
    assert torch.allclose(logits(model, batch), adapted, atol=1e-5)
    model.save_pretrained(tmp_path / "merged")
    assert torch.allclose(logits(load_model(tmp_path / "merged"), batch), adapted, atol=1e-5)


def test_paligemma_saves_unmerged_adapters(tok: Tokenizer, tmp_path) -> None:
    """A checkpoint taken mid-LoRA (the trainer saves one every save_every steps) reloads with its adapters."""
    model, batch = make("paligemma-tiny", tok)
    add_lora(model, {"r": 2, "target_modules": ["q_proj"]})
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    model.save_pretrained(tmp_path / "lora")
    loaded = load_model(tmp_path / "lora")
    assert any("lora_A" in n for n, _ in loaded.named_parameters())
    assert torch.allclose(logits(loaded, batch), logits(model, batch), atol=1e-6)


def test_second_lora_stage_keeps_base_frozen_and_merge_allows_a_new_adapter(tok: Tokenizer) -> None:
    model, _ = make("cxrvlm-tiny-vit", tok)
    n_qkv = sum(n.endswith("qkv.weight") for n, _ in model.named_parameters())  # ViT + decoder blocks
    stage = StageConfig(name="lora", steps=1, lora={"r": 2, "target_modules": ["qkv"]})
    apply_stage(model, stage)
    apply_stage(model, stage)  # a later stage (or a resume) with adapters already in place
    assert all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    merge_lora(model)
    add_lora(model, {"r": 2, "target_modules": ["qkv"]})
    assert sum("lora_A" in n for n, _ in model.named_parameters()) == n_qkv == 3
    with pytest.raises(ValueError):
        add_lora(make("cxrvlm-tiny", tok)[0], {"r": 2, "target_modules": ["no_such_layer"]})


def test_trainer_runs_paligemma_with_a_lora_stage_and_resumes_exactly(tmp_path) -> None:
    """The trainer drives the PaliGemma backend as it drives the native model: a full stage, a LoRA stage, a
    loadable final folder, and a resume inside the LoRA stage that retraces the loss."""
    import json
    import shutil

    from curated_fixtures import write_curated

    from cxrvlm.train.config import load_config
    from cxrvlm.train.loop import Trainer

    data = write_curated(tmp_path / "data")
    cfg = {"model": "paligemma-tiny", "data": str(data), "batch_size": 2, "log_every": 1, "eval_every": 0,
           "save_every": 1, "warmup_steps": 1, "tokenizer_vocab_size": 300, "model_overrides": TINY,
           "stages": [{"name": "full", "steps": 1},
                      {"name": "lora", "steps": 2, "lora": {"r": 2, "target_modules": ["q_proj", "v_proj"]}}]}
    overrides = [f"{k}={json.dumps(v)}" for k, v in cfg.items()]

    def step_losses(run):
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return {r["step"]: r["loss"] for r in rows if "loss" in r}

    run = tmp_path / "run"
    Trainer(load_config(None, overrides), run).run()
    final = load_model(run / "final")  # the final model has its LoRA folded in
    assert not any("lora_" in n for n, _ in final.named_parameters())
    first = step_losses(run)
    shutil.rmtree(run / "step_0000003")
    shutil.rmtree(run / "final")
    Trainer(load_config(None, overrides), run).run()
    assert step_losses(run)[3] == pytest.approx(first[3], abs=1e-6)
