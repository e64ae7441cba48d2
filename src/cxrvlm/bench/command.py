"""`cxrvlm bench`: the native model against the HF PaliGemma backend built at the same size, in one run.

    cxrvlm bench [--json] [--steps N] [--model cxrvlm-tiny-vit] [--set key=value ...]

Measures, on this machine and in this process: training samples/s (median step time over `--steps` timed steps
after `--warmup`, forward + backward + AdamW on a fixed synthetic batch), model FLOPs utilisation against the
fp32 matmul peak measured here (median of n x n matmuls timed before, between and after the training rounds, so
under the same load as the steps; see flops.py for the FLOP count), greedy generation latency of `--gen-tokens`
new tokens (median, batch 1, KV cache, the image encoded in the call), and the peak resident memory. The models
are measured alternately, so load from other processes hits both alike; on a shared machine use `--threads 1`
for steadier figures (oversubscribed OpenMP threads make every small kernel wait).

The twin: the native config's image size, patch, ViT width/depth/heads, decoder width/depth/heads, text length
and tokenizer (so the vocabulary) go into SigLIP + Gemma (MHA, the same head size; GeGLU MLP at 8/3 x width for
the native 4x GELU MLP's parameter count). What PaliGemma's architecture fixes stays PaliGemma's: a linear
projector, no token merging (its decoder reads every patch token), RoPE instead of learned positions. So the
measured native model has a ViT (default `cxrvlm-tiny-vit`); the built-in ConvNet `cxrvlm-tiny` is timed on its
own in the full-interpretation figures (`--builtin`).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import sys
from typing import Any

import numpy as np
import torch

from cxrvlm.about import DEFAULT_MODEL
from cxrvlm.bench import flops
from cxrvlm.bench.interpret import builtin_in_subprocess, time_interpretation
from cxrvlm.bench.measure import synthetic_batch, synthetic_corpus, time_generation, time_training
from cxrvlm.models import Tokenizer, create_model
from cxrvlm.models.paligemma import BACKEND, PaliGemmaBackend
from cxrvlm.models.tokenizer import SPECIAL_TOKENS
from cxrvlm.overrides import parse_overrides

log = logging.getLogger(__name__)

TARGETS = {"train_speedup_vs_hf": 1.3, "generate_speedup_vs_hf": 2.0, "train_mfu": 0.35}
# at most: a full reading of one film on this laptop-class CPU in half a second, in 700 MB
BUILTIN_TARGETS = {"builtin_interpret_ms": 500.0, "builtin_interpret_peak_rss_mb": 700.0}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per model (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed training steps first (default 1)")
    parser.add_argument("--model", default="cxrvlm-tiny-vit",
                        help="native configuration to measure; it needs a ViT encoder, which is what the twin copies "
                             "(default cxrvlm-tiny-vit: the built-in cxrvlm-tiny's decoder with a ViT)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides for the native model (the PaliGemma twin follows), e.g. image_size=64")
    parser.add_argument("--batch-size", type=int, default=16, help="training batch (default 16, the trainer's)")
    parser.add_argument("--views", type=int, default=1, help="views per example (default 1: a frontal image)")
    parser.add_argument("--prompt-tokens", type=int, default=16, help="prompt tokens incl. <bos> and separator")
    parser.add_argument("--answer-tokens", type=int, default=48, help="answer tokens incl. <eos> (reports ~46)")
    parser.add_argument("--vocab", type=int, default=4000, help="BPE vocabulary (+ loc/seg/special tokens)")
    parser.add_argument("--gen-tokens", type=int, default=60, help="new tokens per generation (default 60)")
    parser.add_argument("--gen-repeats", type=int, default=5, help="timed generations per model (default 5)")
    parser.add_argument("--matmul-size", type=int, default=2048, help="side of the square matmul for the peak")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default 0: torch's choice)")
    parser.add_argument("--interpret-repeats", type=int, default=5, help="timed full interpretations per model")
    parser.add_argument("--builtin", default=DEFAULT_MODEL,
                        help="trained model whose interpretation is timed in a fresh process ('' to skip)")


def _check(args: argparse.Namespace) -> None:
    for name in ("steps", "batch_size", "views", "gen_tokens", "gen_repeats", "matmul_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.threads < 0:
        raise ValueError(f"--threads must be >= 0 (0: torch's default), got {args.threads}")
    if args.warmup < 0 or args.prompt_tokens < 2 or args.answer_tokens < 1:
        raise ValueError("--warmup must be >= 0, --prompt-tokens >= 2 and --answer-tokens >= 1")


def build_models(args: argparse.Namespace) -> tuple[Any, Any]:
    """The native model and its PaliGemma twin, sharing one BPE tokenizer trained on synthetic text."""
    tok = Tokenizer.train(synthetic_corpus(), vocab_size=args.vocab)
    torch.manual_seed(0)
    native = create_model(args.model, tokenizer=tok, **parse_overrides(args.set))
    if native.config.backend != "native":
        raise ValueError(f"--model {args.model!r} is not a native configuration (backend {native.config.backend!r})")
    if native.config.encoders != ["vit"]:
        raise ValueError(f"--model {args.model!r} has encoders {native.config.encoders}; the PaliGemma twin copies a "
                         "single ViT (SigLIP), so measure a ViT configuration such as cxrvlm-tiny-vit")
    twin_cfg = native.config.replace(name=f"{native.config.name}-paligemma-twin", backend=BACKEND,
                                     projector="linear", merge_k=1)
    return native, PaliGemmaBackend.from_config(twin_cfg, tok)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    _check(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    load, threads = os.getloadavg()[0], torch.get_num_threads()
    if threads > 1 and load > (os.cpu_count() or 1) - threads + 0.5:  # fewer idle CPUs than our threads
        log.warning("the machine is busy (1-minute load %.1f on %d CPUs): multi-threaded kernels wait for descheduled "
                    "threads, so figures drop; --threads 1 gives steadier ones", load, os.cpu_count() or 0)
    peak_samples = flops.matmul_gflops(args.matmul_size, 3)
    native, hf = build_models(args)
    cfg, tok = native.config, native.tokenizer
    batch = synthetic_batch(tok.vocab_size, len(SPECIAL_TOKENS), args.batch_size, args.views, cfg.image_size,
                            args.prompt_tokens, args.answer_tokens)
    text_len = args.prompt_tokens + args.answer_tokens
    step_s = time_training({"native": native, "hf": hf}, batch, args.steps, args.warmup,
                           between=lambda: peak_samples.extend(flops.matmul_gflops(args.matmul_size)))
    prompt = prompt_of(tok, synthetic_corpus(), args.prompt_tokens - 2)  # + <bos> and the separator
    image = np.random.default_rng(0).random((cfg.image_size, cfg.image_size), dtype=np.float32)
    gen_ms = time_generation({"native": native, "hf": hf}, image, prompt, args.gen_tokens, args.gen_repeats)

    interp_ms = time_interpretation({"native": native, "hf": hf}, image, args.interpret_repeats)
    peak_samples += flops.matmul_gflops(args.matmul_size, 2)
    peak = statistics.median(peak_samples)  # sampled before, between and after the training steps
    per_sample = {"native": flops.train_flops(flops.native_parts(native, args.views, text_len)),
                  "hf": flops.train_flops(flops.paligemma_parts(hf, args.views, text_len))}
    rate = {k: args.batch_size / t for k, t in step_s.items()}
    mfu = {k: rate[k] * per_sample[k] / (peak * 1e9) for k in rate}
    out = {
        "model": cfg.name, "train_samples_per_s": rate["native"], "train_mfu": mfu["native"],
        "hf_train_samples_per_s": rate["hf"], "hf_train_mfu": mfu["hf"],
        "generate_ms": gen_ms["native"], "hf_generate_ms": gen_ms["hf"],
        "train_speedup_vs_hf": rate["native"] / rate["hf"], "generate_speedup_vs_hf": gen_ms["hf"] / gen_ms["native"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "matmul_peak_gflops": peak, "train_gflops_per_sample": per_sample["native"] / 1e9,
        "hf_train_gflops_per_sample": per_sample["hf"] / 1e9,
        "params": native.num_parameters(), "hf_params": hf.num_parameters(),
        "decoder_seq": native.tokens_per_image * args.views + text_len,
        "hf_decoder_seq": hf.tokens_per_image * args.views + text_len,
        "vocab_size": tok.vocab_size, "batch_size": args.batch_size, "views": args.views, "text_len": text_len,
        "steps": args.steps, "gen_tokens": args.gen_tokens, "threads": torch.get_num_threads(),
        "matmul_samples": len(peak_samples), "load_avg_1m": load, "cpus": os.cpu_count(),
    }
    out.update({"interpret_ms": interp_ms["native"], "hf_interpret_ms": interp_ms["hf"],
                "interpret_speedup_vs_hf": interp_ms["hf"] / interp_ms["native"]})
    out["targets_met"] = {k: out[k] >= v for k, v in TARGETS.items()}
    if args.builtin:
        builtin = builtin_in_subprocess(args.builtin, args.interpret_repeats, args.threads)
        out.update({"builtin_model": builtin["model"], "builtin_interpret_ms": builtin["interpret_ms"],
                    "builtin_interpret_peak_rss_mb": builtin["peak_rss_mb"]})
        out["targets_met"].update({k: out[k] <= v for k, v in BUILTIN_TARGETS.items()})
    return out


def prompt_of(tok: Any, corpus: list[str], n_tokens: int) -> str:
    """The shortest run of corpus words that encodes to at least `n_tokens` tokens."""
    words: list[str] = []
    for word in " ".join(corpus).split():
        words.append(word)
        if len(tok.encode(" ".join(words))) >= n_tokens:
            break
    return " ".join(words)


def _table(r: dict[str, Any]) -> str:
    rows = [("training samples/s", f"{r['train_samples_per_s']:.2f}", f"{r['hf_train_samples_per_s']:.2f}",
             f"{r['train_speedup_vs_hf']:.2f}x"),
            ("training MFU", f"{r['train_mfu']:.1%}", f"{r['hf_train_mfu']:.1%}", ""),
            ("training GFLOP/sample", f"{r['train_gflops_per_sample']:.2f}", f"{r['hf_train_gflops_per_sample']:.2f}",
             ""),
            (f"generate {r['gen_tokens']} tokens (ms)", f"{r['generate_ms']:.1f}", f"{r['hf_generate_ms']:.1f}",
             f"{r['generate_speedup_vs_hf']:.2f}x"),
            ("full interpretation (ms)", f"{r['interpret_ms']:.0f}", f"{r['hf_interpret_ms']:.0f}",
             f"{r['interpret_speedup_vs_hf']:.2f}x"),
            ("parameters", f"{r['params']:,}", f"{r['hf_params']:,}", ""),
            ("decoder sequence", str(r["decoder_seq"]), str(r["hf_decoder_seq"]), "")]
    lines = [f"{r['model']} vs HF PaliGemma at the same size ({r['threads']} threads, batch {r['batch_size']}, "
             f"fp32 matmul peak {r['matmul_peak_gflops']:.1f} GFLOP/s)",
             f"{'':28s}{'native':>14s}{'HF PaliGemma':>14s}{'speed-up':>10s}"]
    lines += [f"{a:28s}{b:>14s}{c:>14s}{d:>10s}" for a, b, c, d in rows]
    if "builtin_interpret_ms" in r:
        lines.append(f"built-in {r['builtin_model']}, full interpretation in a fresh process: "
                     f"{r['builtin_interpret_ms']:.0f} ms, peak RSS {r['builtin_interpret_peak_rss_mb']:.0f} MB")
    lines.append(f"peak RSS {r['peak_rss_mb']:.0f} MB; targets met: "
                 + ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in r["targets_met"].items()))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    result = measure(args)
    print(json.dumps(result, indent=1) if args.json else _table(result), file=sys.stdout)
    return 0
