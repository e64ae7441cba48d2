"""The mask tokenizer benchmark: runs end to end on a few generated masks and reports every figure."""
from __future__ import annotations

import json

from cxrvlm.cli import main
from cxrvlm.tokens.seg import split_lungs
from cxrvlm.bench.mask_tokenizer import generated_masks


def test_generated_masks_are_two_lungs():
    masks = generated_masks(3, 128)
    assert len(masks) == 3 and all(m.shape == (128, 128) and m.any() for m in masks)
    assert all(set(split_lungs(m)) == {"right lung", "left lung"} for m in masks)


def test_bench_command_prints_rates(capsys):
    assert main(["bench-mask-tokenizer", "--limit", "1", "--size", "128", "--repeats", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["masks"] == 3 and out["peak_rss_mb"] > 0 and out["threads"] == 1
    for key in ("encode_single", "encode_batch", "encode_model_batch", "decode_single", "decode_batch",
                "decode_model_batch"):
        assert out[key]["median_masks_per_s"] > 0
