"""Shape-constrained greedy decoding: answers keep to their task's <loc>/<seg> structure."""
from __future__ import annotations

import re

import pytest
import torch

from cxrvlm.models.constrain import ShapeConstraint
from cxrvlm.tasks import detect, segment
from cxrvlm.tokens.shape import BOX_ONLY, BOXES, BOXES_AND_MASKS, TEXT, AnswerShape

_OBJECT = re.compile(r"((?:<loc\d{4}>)+)((?:<seg\d{3}>)*)([^<]*)")


def _shape_of(text: str) -> list[tuple[int, int, str]]:
    """(number of loc tokens, number of seg tokens, the text after them) per object of an answer."""
    return [(m.group(1).count("<loc"), m.group(2).count("<seg"), m.group(3)) for m in _OBJECT.finditer(text)]


def _drive(constraint: ShapeConstraint, wants: list[int], vocab: int) -> list[int]:
    """Greedy steps where the model always wants token `wants[step]`, with every other token 10 logits behind."""
    out = []
    for want in wants:
        logits = torch.zeros(1, vocab)
        logits[0, want] = 10.0
        tok = int(constraint.apply(logits).argmax(-1)[0])
        constraint.advance(torch.tensor([tok]))
        out.append(tok)
    return out


def test_a_box_is_four_locs_and_a_label_whatever_the_model_prefers() -> None:
    loc, seg, eos, word = list(range(10, 20)), list(range(20, 30)), 1, 5
    c = ShapeConstraint([BOXES], loc, seg, eos, torch.device("cpu"))
    # the model wants: a loc, then <eos> too early, then a seg, then 3 more locs where the label belongs
    got = _drive(c, [loc[0], eos, seg[0], loc[1], loc[2], loc[3], word, eos], vocab=40)
    assert got[:4] == [loc[0], got[1], got[2], loc[1]] and all(t in loc for t in got[:4])
    assert got[4] not in loc + seg + [eos]  # the label, not a fifth loc
    assert got[5] == loc[3]  # between objects a loc opens the next box
    assert all(t in loc for t in got[6:]) and c.pos.tolist() == [3]  # ... which takes locs, not the wanted text


def test_a_mask_object_is_four_locs_then_sixteen_codes_then_a_label() -> None:
    loc, seg, eos = list(range(10, 20)), list(range(20, 30)), 1
    c = ShapeConstraint([BOXES_AND_MASKS], loc, seg, eos, torch.device("cpu"))
    wants = [loc[0]] * 4 + [seg[0]] * 10 + [eos] + [seg[1]] * 10 + [eos]  # stops after 10 codes, then 10 too many
    got = _drive(c, wants, vocab=40)
    assert all(t in loc for t in got[:4]) and all(t in seg for t in got[4:20])
    assert got[20] not in loc + seg + [eos]  # the label comes after exactly 16 codes
    assert got[21] not in seg  # codes outside an object are never written


def test_an_answer_with_objects_starts_with_one() -> None:
    loc, seg, eos, word = list(range(10, 20)), list(range(20, 30)), 1, 5
    c = ShapeConstraint([BOXES, BOXES, TEXT], loc, seg, eos, torch.device("cpu"))
    logits = torch.zeros(3, 40)
    logits[0, word], logits[0, loc[2]] = 10.0, 1.0  # "yes" to a detection prompt
    logits[1, eos], logits[1, loc[4]] = 10.0, 1.0  # an empty answer, which every task's parser rejects
    logits[2, word] = 10.0
    picked = c.apply(logits).argmax(-1)
    assert int(picked[0]) == loc[2] and int(picked[1]) == loc[4] and int(picked[2]) == word
    c.advance(picked)
    assert int(c.apply(logits).argmax(-1)[2]) == word  # only the first token is held to an object


def test_text_answers_never_hold_loc_or_seg_tokens_and_free_rows_are_untouched() -> None:
    loc, seg, eos = list(range(10, 20)), list(range(20, 30)), 1
    c = ShapeConstraint([TEXT, None], loc, seg, eos, torch.device("cpu"))
    logits = torch.zeros(2, 40)
    logits[:, loc[3]] = 10.0
    picked = c.apply(logits).argmax(-1)
    assert int(picked[0]) not in loc + seg and int(picked[1]) == loc[3]


def test_a_grounding_box_needs_no_label_and_a_vocabulary_without_locs_is_not_enforced() -> None:
    loc, seg, eos = list(range(10, 20)), list(range(20, 30)), 1
    c = ShapeConstraint([BOX_ONLY], loc, seg, eos, torch.device("cpu"))
    got = _drive(c, [loc[0], eos, eos, eos, eos], vocab=40)
    assert all(t in loc for t in got[:4]) and got[4] == eos
    bare = ShapeConstraint([BOXES], [], [], eos, torch.device("cpu"))
    assert torch.isfinite(bare.apply(torch.zeros(1, 40))).all()
    with pytest.raises(ValueError, match="no segs without locs"):
        AnswerShape(locs=0, segs=16)


def test_a_random_model_keeps_to_the_shape_of_every_task_in_one_batch(tiny) -> None:
    model = tiny()
    prompts = [segment.prompt(["right lung", "left lung"]), detect.prompt(["right lung"]), "describe the x-ray"]
    image = torch.rand(256, 256).numpy()
    free = model.generate(image, prompts, max_new_tokens=60)
    texts = model.generate(image, prompts, max_new_tokens=60,
                           answer_shapes=[BOXES_AND_MASKS, BOXES, TEXT])
    objects = _shape_of(texts[0])
    assert objects and all(n_loc == 4 and n_seg == 16 and label for n_loc, n_seg, label in objects[:-1])
    assert all(n_loc == 4 and n_seg == 0 for n_loc, n_seg, _ in _shape_of(texts[1])[:-1])
    assert "<loc" not in texts[2] and "<seg" not in texts[2]
    # untrained weights write anything: unconstrained, at least one of the three answers breaks its shape
    broken = [_shape_of(free[0]) != _shape_of(texts[0]), _shape_of(free[1]) != _shape_of(texts[1]),
              "<loc" in free[2] or "<seg" in free[2]]
    assert any(broken)
    assert model.generate(image, prompts, max_new_tokens=60, answer_shapes=[None] * 3) == free
    assert model.generate(image, prompts, max_new_tokens=60, answer_shapes=[BOXES_AND_MASKS, BOXES, TEXT],
                          use_cache=False) == texts  # the uncached reference path keeps to the same shapes
