"""A pretrained causal LM from a local transformers folder as the native VLM's decoder ("hf"): its tokenizer with
the task tokens added, its weights kept, the native masks, cache and scoring on top, a checkpoint that loads
without the folder, and the trainer with LoRA. Tiny random Llama and GPT-2 folders are written in the test."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from cxrvlm.models import create_model, load_model
from cxrvlm.models.config import ConfigError

from model_fixtures import SENTENCES, TINY, example, views

transformers = pytest.importorskip("transformers")

PROMPT = "What is the diagnosis of the X-ray image?"


def _hf_tokenizer() -> object:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(SENTENCES * 20, trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"],
                                                               initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    from tokenizers import decoders

    tok.decoder = decoders.ByteLevel()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                                                eos_token="</s>")  # no pad token, as Llama's


def _llama_folder(path, tie: bool = False):
    torch.manual_seed(3)
    hf_tok = _hf_tokenizer()
    lm = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=len(hf_tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=tie,
        bos_token_id=hf_tok.bos_token_id, eos_token_id=hf_tok.eos_token_id))
    lm.save_pretrained(str(path))
    hf_tok.save_pretrained(str(path))
    return path, lm


def _model(folder, **overrides):
    torch.manual_seed(0)
    return create_model("cxrvlm-tiny", **{**TINY, "decoder": "hf", "hf_text_path": str(folder), **overrides}).eval()


def test_the_lm_keeps_its_weights_and_gets_the_task_tokens(tmp_path) -> None:
    folder, lm = _llama_folder(tmp_path / "llm")
    model = _model(folder)
    assert (model.config.n_embd, model.config.n_layer, model.config.n_head) == (32, 2, 4)  # the LM's own
    tok = model.tokenizer
    assert len(tok.loc_ids) == 1024 and len(tok.seg_ids) == 128 and tok.sep_id is not None
    assert tok.pad_id not in (tok.eos_id, None) and model.config.vocab_size == len(tok.hf) > lm.config.vocab_size
    layer = model.decoder.base.layers[0].self_attn.q_proj.weight
    assert torch.equal(layer, lm.model.layers[0].self_attn.q_proj.weight)
    old = lm.config.vocab_size
    assert torch.equal(model.decoder.base.embed_tokens.weight[:old], lm.model.embed_tokens.weight)
    assert tok.encode("<loc0012>") == [tok.loc_ids[12]]  # one token each, as the tasks' parsers expect


@pytest.mark.parametrize("attention", ["prefix", "causal"])
def test_it_trains_generates_with_the_cache_and_scores(tmp_path, attention: str) -> None:
    model = _model(_llama_folder(tmp_path / "llm")[0], attention=attention).train()
    batch = model.collate([example(PROMPT, "tuberculosis"), example("detect left lung", "<loc0010><loc0020>"
                                                                     "<loc0300><loc0400> left lung", n_images=2)],
                          [views(1), views(2, seed=1)])
    _, loss = model(**batch)
    loss.backward()
    assert torch.isfinite(loss) and model.decoder.base.layers[0].mlp.up_proj.weight.grad.abs().sum() > 0
    assert model.vision.encoders[0].body[0].weight.grad.abs().sum() > 0  # the loss reaches the image encoder
    model.eval()
    images, prompts = [views(1), views(2, seed=2)], [PROMPT, "Generate a medical report for the X-ray image provided"]
    cached, s1 = model.generate(images, prompts, max_new_tokens=8, return_scores=True)
    full, s2 = model.generate(images, prompts, max_new_tokens=8, return_scores=True, use_cache=False)
    assert cached == full
    assert np.allclose([p for _, p in s1[0]], [p for _, p in s2[0]], atol=1e-5)
    for i in range(2):  # a padded batch answers as each prompt alone
        assert model.generate([images[i]], [prompts[i]], max_new_tokens=8) == [cached[i]]
    probs = model.score_candidates(views(1), PROMPT, ["normal", "tuberculosis"])
    assert abs(sum(probs) - 1) < 1e-6


def test_a_saved_checkpoint_loads_without_the_lms_folder(tmp_path) -> None:
    folder, _ = _llama_folder(tmp_path / "llm", tie=True)
    model = _model(folder)
    assert model.decoder.tied
    model.save_pretrained(tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["hf_text_path"] == "" and saved["hf_text_config"]["model_type"] == "llama"
    shutil.rmtree(folder)
    again = load_model(tmp_path / "run")
    image = views(1)
    assert again.generate([image], [PROMPT], max_new_tokens=6) == model.generate([image], [PROMPT], max_new_tokens=6)
    assert np.allclose(again.score_candidates(image, PROMPT, ["normal", "tuberculosis"]),
                       model.score_candidates(image, PROMPT, ["normal", "tuberculosis"]), atol=1e-6)


def test_gpt2_with_learned_positions_works_too(tmp_path) -> None:
    hf_tok = _hf_tokenizer()
    transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=len(hf_tok), n_embd=32, n_layer=1, n_head=2,
                                                          n_positions=256)).save_pretrained(str(tmp_path / "gpt2"))
    hf_tok.save_pretrained(str(tmp_path / "gpt2"))
    model = _model(tmp_path / "gpt2")
    assert model.decoder.tied  # GPT-2 ties its head to the embedding
    a = model.generate([views(1), views(1, seed=4)], [PROMPT, "segment left lung"], max_new_tokens=5)
    b = model.generate([views(1), views(1, seed=4)], [PROMPT, "segment left lung"], max_new_tokens=5, use_cache=False)
    assert a == b


def test_bad_lm_folders_are_named(tmp_path) -> None:
    with pytest.raises(ConfigError, match="needs hf_text_path"):
        create_model("cxrvlm-tiny", **{**TINY, "decoder": "hf"})
    with pytest.raises(ValueError, match="no config.json"):
        _model(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="unknown decoder 'gpt5'"):
        create_model("cxrvlm-tiny", **{**TINY, "decoder": "gpt5"})


def test_the_trainer_adapts_it_with_lora_and_resumes_with_its_tokenizer(tmp_path) -> None:
    from curated_fixtures import write_curated
    from cxrvlm.train.config import load_config
    from cxrvlm.train.loop import Trainer

    folder, _ = _llama_folder(tmp_path / "llm")
    data = write_curated(tmp_path / "curated")
    small = {"image_size": 32, "cnn_widths": [8, 16], "decoder": "hf", "hf_text_path": str(folder),
             "max_text_len": 128}
    lora = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}

    def run(lora_steps: int) -> None:
        stages = [{"name": "projector", "steps": 2, "freeze": ["decoder"]},
                  {"name": "lora", "steps": lora_steps, "lora": lora}]
        args = [f"data={data}", f"model_overrides={json.dumps(small)}", f"stages={json.dumps(stages)}",
                "batch_size=2", "log_every=1", "eval_every=0", "save_every=2", "warmup_steps=1"]
        Trainer(load_config(None, args), tmp_path / "run").run()

    run(lora_steps=2)
    run(lora_steps=3)  # a longer run in the same folder resumes from step 4's checkpoint (LM tokenizer and all)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4, 5]
    model = load_model(tmp_path / "run" / "final")  # LoRA merged into the LM
    assert model.config.decoder == "hf" and (tmp_path / "run" / "final" / "text_tokenizer").is_dir()
    assert not any("lora_" in n for n, _ in model.named_parameters())
    assert isinstance(model.generate([views(1)], [PROMPT], max_new_tokens=3)[0], str)


def test_the_m4cxr_recipe_runs_with_rad_dino_and_an_llm(tmp_path) -> None:
    """configs/rad-dino-llm.json with tiny random stand-ins: the projector aligns with the tower and the LM frozen,
    then LoRA adapts the LM while the projector keeps learning; the merged model loads without either folder."""
    from pathlib import Path

    from curated_fixtures import write_curated
    from cxrvlm.train.config import load_config
    from cxrvlm.train.loop import Trainer

    llm, lm = _llama_folder(tmp_path / "llm")
    tower = transformers.Dinov2Model(transformers.Dinov2Config(
        image_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, patch_size=8))
    tower.save_pretrained(str(tmp_path / "rad-dino"))
    data = write_curated(tmp_path / "curated")
    recipe = Path(__file__).parents[2] / "configs" / "rad-dino-llm.json"
    small = {"image_size": 32, "projector_tokens": 4, "projector_hidden": 32, "projector_depth": 1,
             "max_text_len": 128, "hf_vision_path": str(tmp_path / "rad-dino"), "hf_text_path": str(llm)}
    args = [f"model_overrides.{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in small.items()]
    args += [f"data={data}", "stages.0.steps=2", "stages.1.steps=2", "batch_size=2", "log_every=1",
             "eval_every=0", "save_every=2", "warmup_steps=1"]
    trainer = Trainer(load_config(recipe, args), tmp_path / "run")
    trainer.run()
    shutil.rmtree(llm)
    shutil.rmtree(tmp_path / "rad-dino")
    model = load_model(tmp_path / "run" / "final")
    assert model.config.decoder == "hf" and model.config.encoders == ["hf"]
    assert not any("lora_" in n or "modules_to_save" in n for n, _ in model.named_parameters())
    state = model.vision.encoders[0].model.state_dict()
    changed = [k for k, v in tower.state_dict().items() if not state[k].equal(v.to(state[k].dtype))]  # bf16
    assert not changed, changed  # the tower stayed as pretrained (LoRA's pattern keeps to the LM)
    merged = model.decoder.base.layers[0].self_attn.q_proj.weight
    assert not merged.equal(lm.model.layers[0].self_attn.q_proj.weight.to(merged.dtype))  # the LM was adapted
    assert isinstance(model.generate([views(1)], ["detect left lung"], max_new_tokens=5)[0], str)


def test_pretrained_parts_held_in_bfloat16(tmp_path) -> None:
    """hf_dtype="bfloat16": the tower and the LM in bf16, the parts trained from scratch in float32; training,
    cached decoding and a checkpoint round trip work across the dtype edges."""
    llm, _ = _llama_folder(tmp_path / "llm")
    transformers.Dinov2Model(transformers.Dinov2Config(
        image_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        patch_size=8)).save_pretrained(str(tmp_path / "rad-dino"))
    model = _model(llm, encoders=["hf"], hf_vision_path=str(tmp_path / "rad-dino"), hf_dtype="bfloat16").train()
    assert model.decoder.base.layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16
    assert model.vision.encoders[0].model.embeddings.patch_embeddings.projection.weight.dtype == torch.bfloat16
    assert model.dtype == torch.float32  # the projector's
    _, loss = model(**model.collate([example(PROMPT, "tuberculosis")], [views(1)]))
    loss.backward()
    assert torch.isfinite(loss) and model.projector.parameters().__next__().grad is not None
    model.eval()
    image = views(1)
    cached = model.generate([image], [PROMPT], max_new_tokens=5)
    assert cached == model.generate([image], [PROMPT], max_new_tokens=5, use_cache=False)
    model.save_pretrained(tmp_path / "run")
    again = load_model(tmp_path / "run")
    assert again.decoder.base.layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16
    assert again.generate([image], [PROMPT], max_new_tokens=5) == cached


def test_a_pretrained_backbone_model_is_evaluated_and_interprets(tmp_path) -> None:
    """Rad-DINO + LLM stand-ins through `cxrvlm eval` (every task) and the Interpreter (every task, a prior too):
    the task tokens the LM's tokenizer was given decode and parse as the native ones do."""
    from curated_fixtures import write_curated
    from cxrvlm.cli import main
    from cxrvlm.infer import Interpreter
    from cxrvlm.infer.phantom import render_phantom

    llm, _ = _llama_folder(tmp_path / "llm")
    transformers.Dinov2Model(transformers.Dinov2Config(
        image_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        patch_size=8)).save_pretrained(str(tmp_path / "rad-dino"))
    _model(llm, encoders=["hf"], hf_vision_path=str(tmp_path / "rad-dino")).save_pretrained(tmp_path / "model")
    data = write_curated(tmp_path / "curated")
    out = tmp_path / "eval"
    assert main(["eval", "--model", str(tmp_path / "model"), "--data", str(data), "--split", "val", "--out", str(out),
                 "--max-new-tokens", "8", "--fast-metrics", "--no-progress", "--no-mask-refiner"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"classify", "detect", "segment", "vqa", "report"} <= set(metrics["tasks"])
    reading = Interpreter(load_model(tmp_path / "model"), refine_masks=False).interpret(
        render_phantom(96), prior=render_phantom(80), prior_days=7)
    assert reading["prior"] is not None and 0.0 <= reading["tb"]["probability"] <= 1.0
    assert isinstance(reading["report"], str) and reading["answers"]
