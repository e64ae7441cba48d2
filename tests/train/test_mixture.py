import numpy as np
import pytest

from cxrvlm.examples import Example
from cxrvlm.train.mixture import (MAX_ANSWER_BOOST, answer_balance, effective_ratios, mixture_weights,
                                  sample_batch)

SIZES = {"classify": 300, "detect": 100, "segment": 50}


def test_inverse_weights_are_inverse_to_size():
    w = mixture_weights(SIZES, "inverse")
    # 1/300 : 1/100 : 1/50 = 1 : 3 : 6
    assert w["classify"] == pytest.approx(0.1)
    assert w["detect"] == pytest.approx(0.3)
    assert w["segment"] == pytest.approx(0.6)


def test_proportional_and_temperature():
    assert mixture_weights(SIZES, "proportional")["classify"] == pytest.approx(300 / 450)
    t1 = mixture_weights(SIZES, "temperature", temperature=1.0)
    assert t1 == pytest.approx(mixture_weights(SIZES, "proportional"))
    hot = mixture_weights(SIZES, "temperature", temperature=1e6)
    assert all(v == pytest.approx(1 / 3, abs=1e-4) for v in hot.values())


def test_fixed_ratios_and_errors():
    w = mixture_weights(SIZES, "fixed", fixed={"classify": 54, "detect": 35, "segment": 11})
    assert w["classify"] == pytest.approx(0.54)
    with pytest.raises(ValueError, match="report"):
        mixture_weights(SIZES, "fixed", fixed={"report": 1.0})
    with pytest.raises(ValueError, match="needs mixture_ratios"):
        mixture_weights(SIZES, "fixed")
    with pytest.raises(ValueError, match="unknown mixture strategy"):
        mixture_weights(SIZES, "bogus")
    with pytest.raises(ValueError, match="no task"):
        mixture_weights({"a": 0}, "inverse")


def test_batches_are_a_function_of_seed_and_step():
    w = mixture_weights(SIZES, "inverse")
    a = sample_batch(w, SIZES, 8, seed=3, step=17)
    assert a == sample_batch(w, SIZES, 8, seed=3, step=17)
    assert a != sample_batch(w, SIZES, 8, seed=3, step=18)
    assert all(0 <= i < SIZES[t] for t, i in a)


def test_effective_ratios_follow_weights():
    w = mixture_weights(SIZES, "inverse")
    r = effective_ratios(w, SIZES, batch_size=32, seed=0, steps=200)
    for task in SIZES:
        assert r[task] == pytest.approx(w[task], abs=0.03)


def test_geometric_augmentation_is_small_and_never_flips():
    import numpy as np

    from cxrvlm.data.images import augment_geometry

    img = np.zeros((64, 64), np.float32)
    img[20:44, 8:20] = 1.0  # a bright block in the image's left third
    for seed in range(20):
        out = augment_geometry(img, np.random.default_rng(seed))
        assert out.shape == img.shape and out.dtype == np.float32
        ys, xs = np.nonzero(out > 0.5)
        assert xs.mean() < 24  # still on the left: no flip, only a small move
        assert 0.7 < (out > 0.5).sum() / img.sum() < 1.4  # zoom within 0.9-1.1 in each direction
    assert not np.array_equal(augment_geometry(img, np.random.default_rng(0)), img)


def _question(kind: str | None, answer: str) -> Example:
    target = {"template": kind, "closed": True, "answer": answer} if kind else {"answer": answer}
    return Example(task="vqa", images=["a.png"], prefix="q", suffix=answer, study_id="s", patient_id="p",
                   source="test", target=target)


def test_answer_balance_gives_each_answer_of_a_type_an_equal_share() -> None:
    # view: 8 "pa" and 2 "ap"; side: 3 "left" and 3 "right"; 2 open questions
    examples = ([_question("view", "pa")] * 8 + [_question("view", "AP")] * 2 + [_question("side", "left")] * 3
                + [_question("side", "right")] * 3 + [_question(None, "consolidation")] * 2)
    w = answer_balance(examples)
    assert w.sum() == pytest.approx(1.0)
    assert w[:8].sum() == pytest.approx(w[8:10].sum())  # pa and ap drawn equally often
    assert w[:10].sum() == pytest.approx(10 / 18)  # the type keeps its share of the task
    assert w[10:13].sum() == pytest.approx(w[13:16].sum()) and w[16] == pytest.approx(1 / 18)
    rare = [_question("view", "pa")] * 99 + [_question("view", "ap")]
    capped = answer_balance(rare)
    # the lone "ap" is drawn 5x as often as uniform drawing would (not 50x); each "pa" 100 / 198 as often
    assert capped[-1] / capped[0] == pytest.approx(MAX_ANSWER_BOOST / (100 / 198))
    assert answer_balance([_question(None, "x")] * 3) is None


def test_balanced_draws_follow_the_weights_and_stay_a_function_of_seed_and_step() -> None:
    w = np.array([0.0, 0.0, 1.0])
    pairs = sample_batch({"vqa": 1.0}, {"vqa": 3}, 16, seed=0, step=4, example_weights={"vqa": w})
    assert pairs == [("vqa", 2)] * 16
    again = sample_batch({"vqa": 1.0, "x": 1.0}, {"vqa": 3, "x": 5}, 8, 1, 2, {"vqa": np.ones(3) / 3, "x": None})
    assert again == sample_batch({"vqa": 1.0, "x": 1.0}, {"vqa": 3, "x": 5}, 8, 1, 2, {"vqa": np.ones(3) / 3})
