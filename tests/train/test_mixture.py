import pytest

from cxrvlm.train.mixture import effective_ratios, mixture_weights, sample_batch

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
