"""Mask tokenizer: geometry, the shipped weights, round trips on generated masks, robustness, batches, files."""
from __future__ import annotations

import logging

import numpy as np
import pytest
from seg_shapes import iou, lungs_image

from cxrvlm.tokens.seg import (
    SEG_RE, SEG_TOKENS, WEIGHTS, MaskTokenError, MaskTokenizer, crop_resize, encode_seg, mask_box, paste, pixel_box,
    split_lungs,
)


@pytest.fixture(scope="module")
def tok() -> MaskTokenizer:
    return MaskTokenizer.default()


@pytest.fixture(scope="module")
def random_tok() -> MaskTokenizer:
    import torch

    from cxrvlm.tokens.seg_vqvae import MaskVQVAE, VQVAEConfig

    torch.manual_seed(0)
    return MaskTokenizer(MaskVQVAE(VQVAEConfig(embedding_dim=8, enc_channels=(4, 4, 8, 8), res_channels=8,
                                               dec_channels=(8, 4, 4, 4))))


def test_seg_tokens_and_regex():
    assert len(SEG_TOKENS) == 128 and SEG_TOKENS[0] == "<seg000>" and SEG_TOKENS[-1] == "<seg127>"
    text = encode_seg([0, 5, 127] + [9] * 13)
    assert [int(c) for c in SEG_RE.findall(text)] == [0, 5, 127] + [9] * 13


def test_mask_box_and_pixel_box():
    m = np.zeros((10, 12), bool)
    assert mask_box(m) is None
    m[2:5, 3:9] = True
    assert mask_box(m) == (3, 2, 9, 5)  # x1, y1, x2, y2 with exclusive ends
    assert pixel_box((3.4, 1.6, 8.6, 5.2), (10, 12)) == ((3, 2, 9, 5), "")
    for box, why in [((5, 5, 5.2, 8), "zero area"), ((20, 1, 30, 5), "outside"), ((1, 2, 3), "four numbers"),
                     ((0, float("nan"), 4, 4), "non-finite"), ((4, 4, 2, 8), "zero area")]:
        r, reason = pixel_box(box, (10, 12))
        assert r is None and why in reason


def test_crop_resize_and_paste_geometry():
    m = np.zeros((100, 80), bool)
    m[20:60, 10:50] = True
    x = crop_resize(m, (10, 20, 50, 60))
    assert x.shape == (64, 64) and x.dtype == np.float32 and x.min() == 1.0
    half = crop_resize(m, (10, 20, 90, 60))  # box twice as wide, running off the image: right half empty
    assert half[:, :30].min() > 0.99 and half[:, 34:].max() < 0.01
    out = paste(np.ones((64, 64), np.float32), (-10, 90, 30, 130), (100, 80))
    assert out.shape == (100, 80) and out.sum() == 30 * 10 and out[90:, :30].all()


def test_split_lungs_sides_and_specks():
    m = lungs_image(300, 260, seed=1)
    m[5:7, 5:7] = True  # a speck: dropped
    parts = split_lungs(m)
    assert set(parts) == {"right lung", "left lung"}
    assert np.argwhere(parts["right lung"])[:, 1].mean() < 130 < np.argwhere(parts["left lung"])[:, 1].mean()
    assert not parts["right lung"][5:7, 5:7].any() and not (parts["right lung"] & parts["left lung"]).any()
    one = np.zeros((50, 60), bool)
    one[10:40, 35:55] = True
    assert list(split_lungs(one)) == ["left lung"] and split_lungs(np.zeros((5, 5), bool)) == {}


def test_shipped_weights_small_and_cached(tok):
    assert WEIGHTS.is_file() and WEIGHTS.stat().st_size < 5_000_000
    assert (WEIGHTS.parent / "MASK_TOKENIZER_CARD.md").is_file()
    assert MaskTokenizer.default() is tok and tok.num_codes == 128 and tok.can_encode


def test_encode_shape_range_determinism(tok):
    m = lungs_image(240, 200, seed=3)
    box = mask_box(m)
    codes = tok.encode(m, box)
    assert len(codes) == 16 and all(isinstance(c, int) and 0 <= c < 128 for c in codes)
    assert tok.encode(m, box) == codes
    assert tok.encode_batch([m, m.copy()], [box, box]) == [codes, codes]


@pytest.mark.parametrize("seed", range(6))
def test_round_trip_on_generated_lungs(tok, seed):
    """decode(encode(m)) ~ m for whole-lung and single-lung masks of several image sizes and aspect ratios."""
    h, w = [(300, 260), (512, 512), (900, 1000), (200, 320), (640, 480), (1024, 1024)][seed]
    whole = lungs_image(h, w, seed)
    for m in [whole, *split_lungs(whole).values()]:
        box = mask_box(m)
        back = tok.decode(tok.encode(m, box), box, (h, w))
        assert back.shape == (h, w) and iou(back, m) >= 0.92, (seed, iou(back, m))


@pytest.mark.parametrize("codes, box, size, why", [
    ([1] * 15, (0, 0, 10, 10), (20, 20), "expected 16 codes, got 15"),
    ([1] * 17, (0, 0, 10, 10), (20, 20), "expected 16 codes"),
    ([1] * 15 + [128], (0, 0, 10, 10), (20, 20), "outside 0..127"),
    ([-1] + [1] * 15, (0, 0, 10, 10), (20, 20), "outside 0..127"),
    ([1.5] * 16, (0, 0, 10, 10), (20, 20), "not integers"),
    ("abc", (0, 0, 10, 10), (20, 20), "not a sequence of integers"),
    (None, (0, 0, 10, 10), (20, 20), "not a sequence"),
    ([1] * 16, (5, 5, 5, 9), (20, 20), "zero area"),
    ([1] * 16, (30, 30, 40, 40), (20, 20), "outside"),
    ([1] * 16, (0, 0, float("inf"), 4), (20, 20), "non-finite"),
    ([1] * 16, "box", (20, 20), "not four numbers"),
    ([1] * 16, (0, 0, 10, 10), (0, 20), "not positive"),
])
def test_try_decode_never_raises(tok, codes, box, size, why):
    mask, reason = tok.try_decode(codes, box, size)
    assert why in reason and not mask.any()
    assert mask.shape == (tuple(size) if min(size) > 0 else (1, 1))
    assert not tok.decode(codes, box, size).any()


def test_decode_batch_matches_single_and_keeps_good_items(tok):
    m = lungs_image(300, 260, seed=4)
    box = mask_box(m)
    codes = tok.encode(m, box)
    out = tok.try_decode_batch([codes, codes[:3], codes], [box, box, (0, 0, 260, 300)], (300, 260))
    assert np.array_equal(out[0][0], tok.decode(codes, box, (300, 260))) and out[0][1] == ""
    assert out[1][1] and not out[1][0].any() and out[2][1] == "" and out[2][0].any()
    assert len(tok.decode_batch([codes] * 3, [box] * 3, [(300, 260)] * 3)) == 3


def test_encode_errors_and_batch_skips_bad_items(tok, caplog):
    m = lungs_image(100, 100, seed=0)
    with pytest.raises(MaskTokenError, match="2-D"):
        tok.encode(np.zeros((4, 4, 3), bool), (0, 0, 2, 2))
    with pytest.raises(MaskTokenError, match="zero area"):
        tok.encode(m, (10, 10, 10, 50))
    with pytest.raises(MaskTokenError, match="outside"):
        tok.encode(m, (200, 10, 300, 50))
    with caplog.at_level(logging.WARNING):
        out = tok.encode_batch([m, m, np.zeros(5, bool)], [mask_box(m), (1, 1, 1, 1), (0, 0, 1, 1)])
    assert out[0] == tok.encode(m, mask_box(m)) and out[1] is None and out[2] is None
    assert "mask 1 skipped" in caplog.text and "mask 2 skipped" in caplog.text
    with pytest.raises(MaskTokenError, match="2 masks but 1 boxes"):
        tok.encode_batch([m, m], [mask_box(m)])


def test_save_and_load_round_trip(random_tok, tmp_path):
    m = lungs_image(120, 100, seed=2)
    random_tok.save(tmp_path / "w.safetensors", meta={"note": "test"})
    loaded = MaskTokenizer.from_file(tmp_path / "w.safetensors")
    assert loaded.model.cfg == random_tok.model.cfg
    assert loaded.encode(m, mask_box(m)) == random_tok.encode(m, mask_box(m))
    assert not (tmp_path / "w.safetensors.tmp").exists()
    with pytest.raises(MaskTokenError, match="not found"):
        MaskTokenizer.from_file(tmp_path / "none.safetensors")
    from safetensors.numpy import save_file

    save_file({"x": np.zeros(3, np.float32)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(MaskTokenError, match="not a cxrvlm-mask-vqvae file"):
        MaskTokenizer.from_file(tmp_path / "other.safetensors")
