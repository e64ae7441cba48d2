"""The PaliGemma backend end to end at tiny size: collate, prefix-LM attention, training, generation, parsing,
candidate scoring, checkpoints (ours and an HF-layout folder), the registry entries and their errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from cxrvlm.models import Tokenizer, create_model, list_models, load_model  # noqa: E402
from cxrvlm.models.checkpoint import CheckpointError  # noqa: E402
from cxrvlm.models.hf_tokenizer import TransformersTokenizer  # noqa: E402
from cxrvlm.models.paligemma import PATH_ENV, PaliGemmaBackend, load_paligemma, tiny_paligemma  # noqa: E402
from cxrvlm.examples import Example  # noqa: E402
from cxrvlm.tasks.base import get_task  # noqa: E402

TINY = dict(image_size=32, vit_patch_size=8, vit_width=32, vit_depth=1, vit_heads=2, n_layer=2, n_head=2, n_embd=32,
            max_text_len=64)
DETECT = "<loc0102><loc0205><loc0819><loc0512> left lung"
TEXTS = ["detect left lung ; right lung", "is there tuberculosis?", "no", "yes", "left lung", "right lung",
         "The heart size is normal. The lungs are clear."]


def views(n: int, seed: int = 0, size: int = 40) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random((size, size), dtype=np.float32) for _ in range(n)]


def example(prefix: str, suffix: str, task: str = "report", n_images: int = 1) -> Example:
    return Example(task=task, images=[f"v{i}.png" for i in range(n_images)], prefix=prefix, suffix=suffix,
                   study_id="s", patient_id="p", source="test")


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.train([f"{t} {i}" for i in range(20) for t in TEXTS], vocab_size=300)


@pytest.fixture(scope="module")
def trained(tok: Tokenizer) -> tuple[PaliGemmaBackend, list[Example], list[list[np.ndarray]], list[float]]:
    """A tiny model trained on a fixed batch (a detection with one view, a yes/no question with two views)."""
    torch.manual_seed(0)
    model = tiny_paligemma(tok, **TINY)
    examples = [example("detect left lung", DETECT, "detect"), example("is there tuberculosis?", "no", "classify", 2)]
    images = [views(1, 1), views(2, 2)]
    batch = model.collate(examples, images)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    model.train()
    for _ in range(40):
        _, loss = model(**batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return model.eval(), examples, images, losses


def test_collate_follows_paligemma_layout(tok: Tokenizer) -> None:
    model = tiny_paligemma(tok, **TINY)
    batch = model.collate([example("detect left lung", DETECT), example("is there tuberculosis?", "no", n_images=2)],
                          [views(1), views(2)])
    assert batch["pixel_values"].shape == (2, 2, 1, 32, 32)
    assert batch["image_mask"].tolist() == [[True, False], [True, True]]
    newline = tok.encode("\n")
    for i, (prefix, suffix) in enumerate([("detect left lung", DETECT), ("is there tuberculosis?", "no")]):
        ids, labels = batch["input_ids"][i].tolist(), batch["labels"][i].tolist()
        p = int(batch["prefix_lengths"][i])
        assert ids[:p] == [tok.bos_id, *tok.encode(prefix), *newline]  # <bos> prefix \n
        n = int(batch["attention_mask"][i].sum())
        assert ids[p:n] == [*tok.encode(suffix), tok.eos_id]
        assert labels[:p] == [-100] * p and labels[p:n] == ids[p:n] and all(x == -100 for x in labels[n:])


def test_prefix_lm_attention(tok: Tokenizer) -> None:
    """Prompt positions see the whole prompt (a later prompt token changes earlier outputs) and never the answer."""
    model = tiny_paligemma(tok, **TINY).eval()
    batch = model.collate([example("detect left lung", "left lung")], [views(1)])
    p = int(batch["prefix_lengths"][0])
    logits, _ = model(**batch)
    answer_changed = {**batch, "input_ids": batch["input_ids"].clone()}
    answer_changed["input_ids"][0, p + 1] = tok.encode("yes")[0]
    logits2, _ = model(**answer_changed)
    assert torch.allclose(logits[0, :p + 1], logits2[0, :p + 1], atol=1e-5)  # up to the changed token: same
    assert not torch.allclose(logits[0, p + 1:], logits2[0, p + 1:], atol=1e-5)
    prompt_changed = {**batch, "input_ids": batch["input_ids"].clone()}
    prompt_changed["input_ids"][0, p - 2] = tok.encode("yes")[0]
    logits3, _ = model(**prompt_changed)
    assert not torch.allclose(logits[0, 0], logits3[0, 0], atol=1e-5)  # bidirectional over the prompt


def test_padding_and_extra_views_do_not_change_an_example(tok: Tokenizer) -> None:
    model = tiny_paligemma(tok, **TINY).eval()
    short = example("is there tuberculosis?", "no")
    alone = model(**model.collate([short], [views(1)]), reduction="none")[1]
    mixed = model(**model.collate([short, example("detect left lung", DETECT, n_images=3)], [views(1), views(3, 5)]),
                  reduction="none")[1]
    assert torch.allclose(alone[0], mixed[0], atol=1e-5)


def test_training_lowers_the_loss_and_generation_parses(trained) -> None:
    model, examples, images, losses = trained
    assert losses[-1] < 0.2 * losses[0], losses
    texts, scores = model.generate(images, [e.prefix for e in examples], max_new_tokens=12, return_scores=True)
    assert texts == [DETECT, "no"]
    pred = get_task("detect").parse(texts[0])
    assert pred.valid and pred.boxes[0][0] == "left lung"
    assert np.allclose(pred.boxes[0][1], (205 / 1023, 102 / 1023, 512 / 1023, 819 / 1023), atol=1e-3)
    assert all(0 < p <= 1 for _, p in scores[0]) and len(scores[0]) == len(model.tokenizer.encode(DETECT))


def test_cache_batching_and_feature_reuse_agree(trained) -> None:
    model, examples, images, _ = trained
    prefixes = [e.prefix for e in examples]
    cached, s1 = model.generate(images, prefixes, max_new_tokens=8, return_scores=True)
    full, s2 = model.generate(images, prefixes, max_new_tokens=8, return_scores=True, use_cache=False)
    assert cached == full
    assert np.allclose([p for _, p in s1[1]], [p for _, p in s2[1]], atol=1e-4)
    one_by_one = [model.generate([v], [p], max_new_tokens=8)[0] for v, p in zip(images, prefixes)]
    assert one_by_one == cached  # left padding of the shorter prompt changes nothing
    feats = model.encode_images([images[1]])
    assert model.generate(image_features=feats, prefixes=[prefixes[1]], max_new_tokens=8) == [cached[1]]


def test_score_candidates(trained) -> None:
    model, examples, images, _ = trained
    probs = model.score_candidates(images[1], examples[1].prefix, ["yes", "no", "left lung"])
    assert abs(sum(probs) - 1) < 1e-6 and max(range(3), key=probs.__getitem__) == 1
    with pytest.raises(ValueError, match="no candidates"):
        model.score_candidates(images[1], examples[1].prefix, [])


def test_save_and_load_round_trip(trained, tmp_path) -> None:
    model, examples, images, _ = trained
    batch = model.collate(examples, images)
    model.save_pretrained(tmp_path / "ckpt")
    loaded = load_model(tmp_path / "ckpt")  # the registry dispatches on config.json's "backend"
    assert isinstance(loaded, PaliGemmaBackend) and loaded.tokenizer == model.tokenizer
    assert loaded.config == model.config
    assert torch.allclose(loaded(**batch)[0], model(**batch)[0], atol=1e-6)


def test_hf_layout_folder_with_its_own_tokenizer(tok: Tokenizer, tmp_path) -> None:
    """A folder as HF writes it (config.json, safetensors, tokenizer files): loaded through AutoTokenizer, offline."""
    from transformers import PaliGemmaForConditionalGeneration, PreTrainedTokenizerFast

    from cxrvlm.models.paligemma import hf_config

    torch.manual_seed(0)
    cfg = tiny_paligemma(tok, **TINY).config
    hf = PaliGemmaForConditionalGeneration(hf_config(cfg, tok.vocab_size, {"pad": 0, "bos": 1, "eos": 2}))
    hf.save_pretrained(tmp_path / "hf")
    PreTrainedTokenizerFast(tokenizer_object=tok.hf, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                            unk_token="<unk>").save_pretrained(tmp_path / "hf")
    model = load_paligemma(tmp_path / "hf")
    assert isinstance(model.tokenizer, TransformersTokenizer) and model.config.image_size == 32
    assert model.tokenizer.loc_bin(model.tokenizer.token_to_id("<loc0512>")) == 512
    assert model.tokenizer.decode(model.tokenizer.encode(DETECT)) == DETECT
    batch = model.collate([example("detect left lung", DETECT)], [views(1)])
    p, T = int(batch["prefix_lengths"][0]), batch["input_ids"].size(1)
    with torch.no_grad():  # HF's own forward: image placeholder ids, token types 0 on image + prompt, 1 on answer
        ref = hf.eval()(input_ids=torch.cat([torch.full((1, 16), hf.config.image_token_id), batch["input_ids"]], 1),
                        pixel_values=batch["pixel_values"][:, 0].expand(-1, 3, -1, -1),
                        token_type_ids=torch.cat([torch.zeros(1, 16 + p, dtype=torch.long),
                                                  torch.ones(1, T - p, dtype=torch.long)], 1))
    assert torch.allclose(model(**batch)[0], ref.logits[:, 16:], atol=1e-4)  # same numbers as HF's own forward
    model.save_pretrained(tmp_path / "ours")
    again = load_model(tmp_path / "ours")
    assert isinstance(again.tokenizer, TransformersTokenizer)
    assert torch.allclose(again(**batch)[0], model(**batch)[0], atol=1e-6)


def test_registry_entries_and_errors(monkeypatch, tmp_path) -> None:
    assert {"paligemma-tiny", "paligemma-3b"} <= set(list_models())
    model = create_model("paligemma-tiny", **TINY)
    assert isinstance(model, PaliGemmaBackend) and model.tokens_per_image == 16
    monkeypatch.delenv(PATH_ENV, raising=False)
    with pytest.raises(ValueError, match=PATH_ENV):
        create_model("paligemma-3b")
    with pytest.raises(ValueError, match="not found"):
        create_model("paligemma-3b", path=str(tmp_path / "missing"))
    (tmp_path / "config.json").write_text('{"model_type": "llava"}')
    with pytest.raises(CheckpointError, match="not a PaliGemma folder"):
        load_paligemma(tmp_path)
