"""`cxrvlm bench` at tiny sizes: one run measures both backends and reports every figure, each positive."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers")

from cxrvlm.bench import flops  # noqa: E402
from cxrvlm.overrides import parse_overrides  # noqa: E402
from cxrvlm.cli import main  # noqa: E402

TINY = ["image_size=32", "vit_patch_size=8", "vit_width=32", "vit_depth=1", "vit_heads=2", "n_layer=1", "n_head=2",
        "n_embd=32", "max_text_len=64"]
KEYS = ("train_samples_per_s", "train_mfu", "hf_train_samples_per_s", "hf_train_mfu", "generate_ms", "hf_generate_ms",
        "peak_rss_mb", "matmul_peak_gflops", "train_speedup_vs_hf", "generate_speedup_vs_hf", "interpret_ms",
        "hf_interpret_ms", "interpret_speedup_vs_hf")


def test_bench_json_has_every_figure(capsys) -> None:
    code = main(["bench", "--json", "--steps", "2", "--warmup", "1", "--batch-size", "2", "--gen-tokens", "4",
                 "--gen-repeats", "1", "--matmul-size", "512", "--vocab", "300", "--prompt-tokens", "6",
                 "--answer-tokens", "6", "--interpret-repeats", "1", "--builtin", "", "--set", *TINY])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    for key in KEYS:
        assert isinstance(out[key], float) and out[key] > 0, key
    assert out["train_mfu"] < 1 and out["hf_train_mfu"] < 1  # a 512 matmul runs near the peak; tiny models far below
    assert out["hf_decoder_seq"] == 16 + 12  # PaliGemma's decoder reads every patch token + the text
    assert 12 < out["decoder_seq"] <= out["hf_decoder_seq"]  # the native model may merge image tokens
    assert set(out["targets_met"]) == {"train_speedup_vs_hf", "generate_speedup_vs_hf", "train_mfu"}


def test_flop_count_by_hand() -> None:
    """A 2-layer width-8 stack over 10 tokens: 2 * params * tokens + 4 * layers * width * seq^2, times 3."""
    part = flops.Part("decoder", params=100, tokens=10, attn_layers=2, attn_width=8, seq=10, n_seq=1)
    assert part.forward_flops() == 2 * 100 * 10 + 4 * 2 * 8 * 100
    assert flops.train_flops([part, flops.Part("head", 50, 4)]) == 3 * (part.forward_flops() + 2 * 50 * 4)


def test_bad_arguments_are_clear_errors(capsys) -> None:
    assert main(["bench", "--steps", "0"]) == 2
    assert "--steps must be >= 1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["image_size"])
    assert parse_overrides(["n_layer=2", "name=x"]) == {"n_layer": 2, "name": "x"}


def test_builtin_interpretation_runs_in_a_fresh_process(tmp_path) -> None:
    from cxrvlm.bench.interpret import builtin_in_subprocess
    from cxrvlm.models import Tokenizer, create_model

    tok = Tokenizer.train(["detect right lung ; left lung", "the lungs are clear"] * 20, vocab_size=300)
    create_model("cxrvlm-tiny", tokenizer=tok, **parse_overrides(TINY)).save_pretrained(tmp_path / "m")
    out = builtin_in_subprocess(str(tmp_path / "m"), repeats=1, threads=1)
    assert out["interpret_ms"] > 0 and 50 < out["peak_rss_mb"] < 4096
