"""The compact VLM: every configuration trains and generates; masks, padding, caching and checkpoints are exact."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cxrvlm.models import box_scores, list_models, load_model, read_model_config
from cxrvlm.models.language_model import prefix_lm_mask

from model_fixtures import example, views

PROMPT = "What is the diagnosis of the X-ray image?"
NATIVE = [n for n in list_models() if read_model_config(n)[0].get("backend", "native") == "native"]


def test_native_configs_are_registered() -> None:
    assert {"cxrvlm-tiny", "cxrvlm-small", "litegpt-style", "m4cxr-style"} <= set(NATIVE)


@pytest.mark.parametrize("name", NATIVE)
def test_every_config_trains_generates_and_scores(tiny, name: str) -> None:
    model = tiny(name).train()
    exs = [example(PROMPT, "tuberculosis"), example("Generate a medical report for the X-ray image provided",
                                                      "The lungs are clear.", n_images=2)]
    batch = model.collate(exs, [views(1), views(2, seed=1)])
    logits, loss = model(**batch)
    assert logits.shape == (*batch["input_ids"].shape, model.config.vocab_size)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    # the label head (cxrvlm-effnet) learns with its encoder in `cxrvlm train-probe`, never from the text loss
    grads = {n: p.grad for n, p in model.named_parameters() if not n.startswith("label_head.")}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    stem = next(n for n in grads if n.startswith("vision.encoders.0."))  # the first encoder's first weight
    assert grads[stem].abs().sum() > 0  # the loss reaches the image encoder
    texts = model.generate([views(1)], [PROMPT], max_new_tokens=5)
    assert len(texts) == 1 and isinstance(texts[0], str)
    probs = model.score_candidates(views(1), PROMPT, ["normal", "tuberculosis"])
    assert len(probs) == 2 and abs(sum(probs) - 1) < 1e-6 and all(0 < p < 1 for p in probs)


def test_prefix_lm_mask_matrix() -> None:
    key_valid = torch.tensor([[True, False, True, True, True, True]])  # key 1: a padded image slot
    mask = prefix_lm_mask(key_valid, torch.tensor([4]))[0, 0]
    expected = torch.tensor([
        [1, 0, 1, 1, 0, 0],
        [1, 0, 1, 1, 0, 0],
        [1, 0, 1, 1, 0, 0],
        [1, 0, 1, 1, 0, 0],
        [1, 0, 1, 1, 1, 0],  # answer tokens: whole prefix + earlier answer tokens
        [1, 0, 1, 1, 1, 1],
    ], dtype=torch.bool)
    assert torch.equal(mask, expected)


def test_prefix_lm_attention_in_the_model(tiny) -> None:
    model = tiny()
    batch = model.collate([example("detect left lung", "left lung right lung")], [views(1)])
    p = int(batch["prefix_lengths"][0])
    T = batch["input_ids"].size(1)
    logits, _ = model(**batch)

    changed = {k: v.clone() for k, v in batch.items()}
    changed["input_ids"][0, T - 2] = model.tokenizer.encode(" heart")[0]  # a late answer token
    logits2, _ = model(**changed)
    assert torch.allclose(logits[0, : T - 2], logits2[0, : T - 2], atol=1e-6)  # nothing earlier sees it
    assert not torch.allclose(logits[0, T - 2], logits2[0, T - 2])

    changed = {k: v.clone() for k, v in batch.items()}
    changed["input_ids"][0, p - 2] = model.tokenizer.encode(" heart")[0]  # the last prompt word
    logits3, _ = model(**changed)
    assert not torch.allclose(logits[0, 1], logits3[0, 1])  # an early prompt token sees a later one


def test_labels_mask_the_prefix_and_padding(tiny) -> None:
    model = tiny()
    tok = model.tokenizer
    batch = model.collate([example(PROMPT, "normal"), example("segment left lung", "a much longer answer here")],
                          [views(1), views(1)])
    for i, answer in enumerate(["normal", "a much longer answer here"]):
        ids, labels, p = batch["input_ids"][i], batch["labels"][i], int(batch["prefix_lengths"][i])
        n = int(batch["attention_mask"][i].sum())
        assert ids[0] == tok.bos_id and ids[p - 1] == tok.sep_id and ids[n - 1] == tok.eos_id
        assert (labels[:p] == -100).all() and (labels[n:] == -100).all()
        assert torch.equal(labels[p:n], ids[p:n])
        assert tok.decode(labels[p:n].tolist()) == answer
    assert (batch["input_ids"][0, int(batch["attention_mask"][0].sum()):] == tok.pad_id).all()


def test_loss_reductions_agree(tiny) -> None:
    model = tiny()
    batch = model.collate([example(PROMPT, "normal"), example(PROMPT, "a much longer answer here")],
                          [views(1), views(1, seed=3)])
    _, mean = model(**batch)
    _, per_example = model(**batch, reduction="none")
    _, summed = model(**batch, reduction="sum")
    counts = (batch["labels"][:, 1:] != -100).sum(1)
    assert per_example.shape == (2,)
    assert torch.allclose(summed / counts, per_example)
    assert torch.allclose(mean, summed.sum() / counts.sum())
    with pytest.raises(ValueError, match="reduction"):
        model(**batch, reduction="max")


def test_multi_image_batch_padding_is_invisible(tiny) -> None:
    model = tiny("m4cxr-style")
    ex_a, ex_b = example(PROMPT, "normal", n_images=3), example("segment left lung", "left lung")
    batch = model.collate([ex_a, ex_b], [views(3), views(1, seed=5)])
    assert batch["pixel_values"].shape == (2, 3, 1, 32, 32)
    assert batch["image_mask"].tolist() == [[True, True, True], [True, False, False]]
    logits, per_example = model(**batch, reduction="none")
    alone = model.collate([ex_b], [views(1, seed=5)])
    logits_b, loss_b = model(**alone, reduction="none")
    T = alone["input_ids"].size(1)
    assert torch.allclose(logits[1, :T], logits_b[0], atol=1e-5)
    assert torch.allclose(per_example[1], loss_b[0], atol=1e-6)
    # pixels in a padded slot are never read; the view order is (view embeddings)
    batch["pixel_values"][1, 1:] = 7.0
    assert torch.allclose(model(**batch)[0], logits, atol=1e-6)
    swapped = model.collate([ex_a], [views(3)[::-1]])
    assert not torch.allclose(model(**swapped)[0], model(**model.collate([ex_a], [views(3)]))[0])


def test_kv_cache_generate_equals_full_recompute(tiny) -> None:
    model = tiny().double()  # float64 so that near-ties of a random model cannot flip a greedy choice
    prompts = [PROMPT, "detect left lung ; right lung", "Generate a medical report"]
    images = [views(1), views(2, seed=1), views(1, seed=2)]
    cached, s1 = model.generate(images, prompts, max_new_tokens=12, return_scores=True)
    full, s2 = model.generate(images, prompts, max_new_tokens=12, return_scores=True, use_cache=False)
    assert cached == full
    for a, b in zip(s1, s2):
        assert [t for t, _ in a] == [t for t, _ in b]
        assert np.allclose([p for _, p in a], [p for _, p in b], atol=1e-9)
    # batching (left padding, padded image slots) changes nothing
    for i in range(3):
        assert model.generate([images[i]], [prompts[i]], max_new_tokens=12) == [cached[i]]


def test_causal_attention_reads_the_prompt_causally_and_decodes_consistently(tiny) -> None:
    """attention="causal" (LLaVA, M4CXR): a prompt token does not see the prompt tokens after it; "prefix" does.
    Cached decoding, recomputation and batching agree in both modes."""
    prompts = [PROMPT, "detect left lung ; right lung"]
    images = [views(1), views(2, seed=1)]
    outputs = {}
    for mode in ("prefix", "causal"):
        model = tiny(attention=mode).double()
        a = model.collate([example("detect left lung", "x")], [views(1)])
        b = model.collate([example("detect right lung", "x")], [views(1)])
        first_a, first_b = model(**a)[0][0, 1], model(**b)[0][0, 1]  # after "<bos> detect": the same two tokens
        outputs[mode] = torch.allclose(first_a, first_b)
        cached = model.generate(images, prompts, max_new_tokens=8)
        assert cached == model.generate(images, prompts, max_new_tokens=8, use_cache=False)
        for i in range(2):
            assert model.generate([images[i]], [prompts[i]], max_new_tokens=8) == [cached[i]]
    assert outputs == {"prefix": False, "causal": True}


@pytest.mark.parametrize("bias", [False, True])
def test_the_decode_step_is_the_blocks_math(tiny, bias: bool) -> None:
    """Batch-1 cached decoding runs `decode_step` (the blocks' weights without module calls): its hidden states
    equal the modules' for the same token and cache, with and without biases."""
    model = tiny(bias=bias).double()
    dec = model.decoder
    for block in dec.h:  # random biases, so a forgotten one would show
        for p in block.parameters():
            torch.nn.init.normal_(p, std=0.05)
    with torch.inference_mode():
        x = torch.randn(1, 5, model.config.n_embd, dtype=torch.float64)
        step = torch.randn(1, 1, model.config.n_embd, dtype=torch.float64)
        a, b = dec.new_cache(1, 8, x), dec.new_cache(1, 8, x)
        dec(x, None, a), dec(x, None, b)
        assert torch.allclose(dec.decode_step(dec.decode_plan(), step, a), dec(step, None, b), atol=1e-12)
        assert a.length == b.length == 6 and torch.allclose(a.k, b.k) and torch.allclose(a.v, b.v)


def test_generate_stops_at_eos_and_reports_probabilities(tiny) -> None:
    model = tiny()
    texts, scores = model.generate(views(1), [PROMPT, "segment left lung"], max_new_tokens=6, return_scores=True)
    assert len(texts) == len(scores) == 2
    for text, sc in zip(texts, scores):
        assert len(sc) <= 6 and all(0 < p <= 1 for _, p in sc)
        assert "<eos>" not in text and "<pad>" not in text
    head, eos = model.decoder.lm_head, model.tokenizer.eos_id
    model.decoder.lm_head = lambda h: head(h) + 1000.0 * (torch.arange(head(h).size(-1)) == eos)  # <eos> certain
    assert model.generate(views(1), [PROMPT], max_new_tokens=6, return_scores=True) == ([""], [[]])


def test_image_features_are_reused(tiny) -> None:
    model = tiny()
    feats = model.encode_images(views(2))
    prompts = [PROMPT, "segment left lung", "detect right lung"]
    assert model.generate(image_features=feats, prefixes=prompts, max_new_tokens=4) == \
        model.generate(views(2), prompts, max_new_tokens=4)
    by_feats = model.score_candidates(image_features=feats, prefix=PROMPT, candidates=["normal", "tuberculosis"])
    assert np.allclose(by_feats, model.score_candidates(views(2), PROMPT, ["normal", "tuberculosis"]))
    with pytest.raises(ValueError, match="exactly one"):
        model.generate(views(1), [PROMPT], image_features=feats)
    with pytest.raises(ValueError, match="no candidates"):
        model.score_candidates(image_features=feats, prefix=PROMPT, candidates=[])


def test_box_scores_from_loc_token_probabilities() -> None:
    locs = [(f"<loc{i:04d}>", p) for i, p in zip(range(4), (0.5, 0.5, 0.5, 0.5))]
    scores = [*locs, ("Ġleft", 0.9), ("Ġlung", 0.8), ("Ġ;", 0.7), *[(t, 0.25) for t, _ in locs], ("Ġright", 0.9)]
    assert np.allclose(box_scores(scores), [0.5, 0.25])
    assert box_scores([("<loc0001>", 0.9), ("x", 0.9)]) == []  # an incomplete box has no score


def test_save_load_round_trip_is_exact(tiny, tmp_path) -> None:
    model = tiny("litegpt-style")
    batch = model.collate([example(PROMPT, "tuberculosis", n_images=2)], [views(2)])
    logits, _ = model(**batch)
    folder = model.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    again = load_model(folder)
    assert again.config == model.config and again.tokenizer == model.tokenizer
    assert torch.equal(again(**batch)[0], logits)
    # overwrite in place (atomic replace), and a half-size fp16 copy
    model.save_pretrained(folder)
    half = model.save_pretrained(tmp_path / "half", dtype=torch.float16)
    assert (half / "model.safetensors").stat().st_size < 0.6 * (folder / "model.safetensors").stat().st_size
    assert torch.allclose(load_model(half)(**batch)[0], logits, atol=2e-2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "half"]  # no temporary folders left


def test_bad_inputs_are_clear_errors(tiny) -> None:
    model = tiny(max_images=2)
    with pytest.raises(ValueError, match="3 views.*max_images"):
        model.collate([example(PROMPT, "normal", 3)], [views(3)])
    with pytest.raises(ValueError, match="2 examples but 1"):
        model.collate([example(PROMPT, "a"), example(PROMPT, "b")], [views(1)])
    with pytest.raises(ValueError, match="range"):
        model.collate([example(PROMPT, "a")], [[np.full((8, 8), 3.0, dtype=np.float32)]])
    with pytest.raises(ValueError, match="2-D"):
        model.encode_images([np.zeros((2, 8, 8, 8), dtype=np.float32)])
    with pytest.raises(ValueError, match="no prefixes"):
        model.generate(views(1), [])


def test_overlong_text_is_cut_to_max_text_len(tiny) -> None:
    model = tiny(max_text_len=16)
    batch = model.collate([example("word " * 40, "answer " * 40)], [views(1)])
    assert batch["input_ids"].shape[1] == 16
    assert batch["input_ids"][0, 0] == model.tokenizer.bos_id
    assert (batch["labels"][0] != -100).sum() >= 1
    assert torch.isfinite(model(**batch)[1])
    assert len(model.generate(views(1), ["word " * 40], max_new_tokens=30)) == 1


def test_text_only_examples_work(tiny) -> None:
    model = tiny()
    batch = model.collate([example("Findings:", "The lungs are clear.", n_images=0)], [[]])
    assert batch["pixel_values"].shape[1] == 0
    assert torch.isfinite(model(**batch)[1])


def test_memorises_two_examples(tiny) -> None:
    """A real learning check: a few dozen Adam steps fit two image -> answer pairs, and both decoding paths
    (greedy generation, candidate scoring) then give the right answers."""
    model = tiny().train()
    # opacity on one side or the other (not uniform images: a ConvNet's GroupNorm removes global brightness)
    left, right = np.full((32, 32), 0.1, np.float32), np.full((32, 32), 0.1, np.float32)
    left[:, :16], right[:, 16:] = 0.9, 0.9
    bright, dark = [left], [right]
    batch = model.collate([example(PROMPT, "tuberculosis"), example(PROMPT, "normal")], [bright, dark])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        _, loss = model(**batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.1 * first
    assert model.generate([bright, dark], [PROMPT, PROMPT], max_new_tokens=8) == ["tuberculosis", "normal"]
    probs = model.score_candidates(dark, PROMPT, ["normal", "tuberculosis"])
    assert probs[0] > 0.9


def test_a_loc_token_scores_the_mass_of_its_neighbouring_bins(tiny) -> None:
    from cxrvlm.models.backend import LOC_TOLERANCE

    model = tiny()
    loc = model.tokenizer.loc_ids
    logits = torch.full((2, model.config.vocab_size), -30.0)
    for k in range(-5, 6):  # row 0: a coordinate spread evenly over bins 495..505
        logits[0, loc[500 + k]] = 0.0
    word = model.tokenizer.encode("lung")[0]
    logits[1, word], logits[1, loc[3]] = 1.0, 0.0  # row 1: an ordinary token wins
    ids, probs = model._pick(logits)
    assert model.tokenizer.loc_bin(int(ids[0])) in range(495, 506) and abs(float(probs[0]) - 1.0) < 1e-4
    assert int(ids[1]) == word and abs(float(probs[1]) - torch.softmax(logits[1], 0)[word].item()) < 1e-6
    logits[0, loc[500 + LOC_TOLERANCE + 20]] = 0.0  # a far bin is not counted
    assert abs(float(model._pick(logits)[1][0]) - 11 / 12) < 1e-4


def test_a_loc_coordinate_is_the_median_of_its_bins_not_the_argmax(tiny) -> None:
    model = tiny()
    loc = model.tokenizer.loc_ids
    logits = torch.full((1, model.config.vocab_size), -30.0)
    logits[0, loc[300]] = float(torch.tensor(3.0).log())  # the single likeliest bin holds 3/9 of the mass
    for k in range(6):  # the other 6/9 lies on bins 600..605, 1/9 each
        logits[0, loc[600 + k]] = 0.0
    ids, probs = model._pick(logits)
    assert model.tokenizer.loc_bin(int(ids[0])) == 601  # 3/9 + 2/9 passes half the mass at bin 601
    assert abs(float(probs[0]) - 6 / 9) < 1e-4  # the bins within ±LOC_TOLERANCE of 601
