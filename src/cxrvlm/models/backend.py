"""What both model backends share (`CompactVLM` in vlm.py, `PaliGemmaBackend` in paligemma.py): the encoded views
(`ImageFeatures`), batching, the answer loss, and greedy KV-cached generation and candidate-answer scoring
(`BackendMixin`). A backend adds the vision and decoder parts and `encode_pixels` / `forward` / `_greedy_*`.

    texts = model.generate(images, prefixes, max_new_tokens=64)             # batched, greedy
    texts, scores = model.generate(..., return_scores=True)                 # scores[i]: [(token, prob), ...]
    feats = model.encode_images(views); model.generate(image_features=feats, prefixes=[p1, p2, ...])
    probs = model.score_candidates(views, prefix, ["normal", "tuberculosis"])   # sums to 1

`images`: one array or a list of arrays is ONE example's views (broadcast over every prompt); a list of lists
gives each example its views. Prompts are left-padded, so every example's next token sits at the same column of
the KV cache; text positions count real tokens only, so padding changes nothing but the batch shape.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from cxrvlm.models.constrain import ShapeConstraint
from cxrvlm.models.language_model import prefix_lm_mask
from cxrvlm.models.preprocess import as_examples, preprocess_views
from cxrvlm.tokens.loc import LOC_BINS
from cxrvlm.tokens.shape import AnswerShape

log = logging.getLogger(__name__)

IGNORE = -100  # label of positions without loss (prefix, padding), as torch's cross_entropy ignore_index
TokenScores = list[tuple[str, float]]  # one generated answer: (token, probability) per token, <eos> excluded
LOC_TOLERANCE = 10  # bins either side (about 1% of the image side) counted in a loc token's probability


@dataclass
class ImageFeatures:
    """Encoded views, reusable across prompts: tokens (B, N, C) in decoder width, mask (B, N) False = padded slot,
    and (models with a label head) the first view's label probabilities (B, L) and class activation maps
    (B, L, g, g), from the same pass of the encoder."""

    tokens: torch.Tensor
    mask: torch.Tensor
    label_probs: torch.Tensor | None = None
    label_maps: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.tokens.size(0)

    def expand(self, n: int) -> ImageFeatures:
        """Repeat one example's features for n prompts (B must be 1 or n)."""
        if len(self) == n:
            return self
        if len(self) != 1:
            raise ValueError(f"image features hold {len(self)} examples, but {n} prompts were given (need 1 or {n})")
        probs = None if self.label_probs is None else self.label_probs.expand(n, -1)
        maps = None if self.label_maps is None else self.label_maps.expand(n, -1, -1, -1)
        return ImageFeatures(self.tokens.expand(n, -1, -1), self.mask.expand(n, -1), probs, maps)


def answer_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy on positions whose label is not -100; see `CompactVLM.forward` for reductions."""
    if reduction not in ("mean", "none", "sum"):
        raise ValueError(f"reduction must be 'mean', 'none' or 'sum', got {reduction!r}")
    B, T, V = logits.shape
    target = labels[:, 1:]
    nll = F.cross_entropy(logits[:, :-1].reshape(-1, V).float(), target.reshape(-1), ignore_index=IGNORE,
                          reduction="none").view(B, T - 1)
    count = (target != IGNORE).sum(1)
    if reduction == "sum":
        return nll.sum(1)
    if reduction == "none":
        return nll.sum(1) / count.clamp(min=1)
    return nll.sum() / count.sum().clamp(min=1)


class BackendMixin:
    """What both backends share: generation, candidate scoring, and the batching and bookkeeping they rest on."""

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def pixel_batch(self, images: Sequence[Sequence[Any]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example views -> pixel_values (B, M, 1, S, S), image_mask (B, M); M = the most views of any example."""
        c = self.config
        per_example = [preprocess_views(v, c.image_size, c.image_mean, c.image_std, c.max_images, f"example {i}")
                       for i, v in enumerate(images)]
        M = max((p.size(0) for p in per_example), default=0)
        pixels = torch.zeros(len(per_example), M, 1, c.image_size, c.image_size)
        mask = torch.zeros(len(per_example), M, dtype=torch.bool)
        for i, p in enumerate(per_example):
            pixels[i, : p.size(0)] = p
            mask[i, : p.size(0)] = True
        return pixels, mask

    def text_batch(self, prefixes: Sequence[str], suffixes: Sequence[str]) -> dict[str, torch.Tensor]:
        """Right-padded `<bos> prefix <sep> suffix <eos>`: input_ids, attention_mask, labels (-100 outside the
        answer), prefix_lengths (tokens up to and including <sep>). Too long: the prompt keeps its end, the answer
        is cut (and loses <eos>)."""
        tok, room = self.tokenizer, self.config.max_text_len
        rows, n_prefix, cut = [], [], 0
        for pre_ids, suf_ids in zip(map(self._prompt_ids, prefixes), tok.encode_batch(list(suffixes))):
            suf_ids = [*suf_ids, tok.eos_id]
            if len(pre_ids) > room - 1:  # keep <bos> and the prompt's end (the question) + room for one answer token
                pre_ids = [tok.bos_id, *pre_ids[len(pre_ids) - (room - 2):]]
            if len(pre_ids) + len(suf_ids) > room:
                suf_ids, cut = suf_ids[: room - len(pre_ids)], cut + 1
            rows.append(pre_ids + suf_ids)
            n_prefix.append(len(pre_ids))
        if cut:
            log.warning("%d of %d examples were longer than max_text_len=%d tokens and were cut", cut, len(rows), room)
        T = max(len(r) for r in rows)
        ids = torch.full((len(rows), T), tok.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), T), IGNORE, dtype=torch.long)
        attn = torch.zeros((len(rows), T), dtype=torch.long)
        for i, (row, p) in enumerate(zip(rows, n_prefix)):
            ids[i, : len(row)] = torch.tensor(row)
            labels[i, p : len(row)] = torch.tensor(row[p:])
            attn[i, : len(row)] = 1
        return {"input_ids": ids, "attention_mask": attn, "labels": labels,
                "prefix_lengths": torch.tensor(n_prefix, dtype=torch.long)}

    def collate(self, examples: Sequence[Any], images: Sequence[Sequence[Any]]) -> dict[str, torch.Tensor]:
        """Examples (`.prefix`, `.suffix`) + their views -> the keyword arguments of `forward` (CPU tensors):
        pixel_values (B, M, 1, S, S), image_mask (B, M), input_ids / attention_mask / labels (B, T),
        prefix_lengths (B,).
        """
        if len(examples) != len(images):
            raise ValueError(f"collate: {len(examples)} examples but {len(images)} image lists")
        if not examples:
            raise ValueError("collate: empty batch")
        pixels, mask = self.pixel_batch(images)
        text = self.text_batch([e.prefix for e in examples], [e.suffix for e in examples])
        return {"pixel_values": pixels, "image_mask": mask, **text}

    @torch.inference_mode()
    def encode_images(self, images: Any) -> ImageFeatures:
        """Views of one example (list of arrays) or of a batch (list of lists) -> features for generate/score."""
        pixels, mask = self.pixel_batch(as_examples(images))
        with self._eval_mode():
            return self.encode_pixels(pixels, mask)

    @property
    def label_names(self) -> list[str]:
        """The label head's outputs ([] for a model without one)."""
        return list(getattr(self.config, "label_names", None) or [])

    def label_probs(self, images: Any = None, image_features: ImageFeatures | None = None) -> list[dict[str, float]]:
        """The label head's probabilities for the first view of each example (images or encoded features, as
        `generate` takes them); ValueError for a model without a label head."""
        if not self.label_names:
            raise ValueError(f"model {self.config.name!r} has no label head (config label_names is empty)")
        feats = image_features if image_features is not None else self.encode_images(images)
        if feats.label_probs is None:
            raise ValueError("these image features were encoded without the label head")
        return [dict(zip(self.label_names, map(float, row))) for row in feats.label_probs]

    @contextlib.contextmanager
    def _eval_mode(self) -> Iterator[None]:
        """Evaluation mode (no dropout) for the duration, then the mode the caller had."""
        was_training = self.training
        self.eval()
        try:
            yield
        finally:
            self.train(was_training)

    def _features(self, images: Any, image_features: ImageFeatures | None, n: int) -> ImageFeatures:
        if (images is None) == (image_features is None):
            raise ValueError("give either images or image_features (from encode_images), exactly one of them")
        if image_features is None:
            image_features = self.encode_images(images)
        return image_features.expand(n)

    def _prompt_batch(self, prefixes: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded `<bos> prefix <sep>` ids and mask (B, Tp); an over-long prompt keeps <bos> and its end."""
        room = self.config.max_text_len - 1  # at least one position for the answer
        rows = []
        for p in prefixes:
            ids = self._prompt_ids(p)
            rows.append(ids if len(ids) <= room else [ids[0], *ids[len(ids) - room + 1:]])
        Tp = max(len(r) for r in rows)
        ids = torch.full((len(rows), Tp), self.tokenizer.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), Tp), dtype=torch.bool)
        for i, r in enumerate(rows):
            ids[i, Tp - len(r):] = torch.tensor(r)
            mask[i, Tp - len(r):] = True
        return ids.to(self.device), mask.to(self.device)

    def _banned_ids(self) -> list[int]:
        """Tokens greedy decoding never emits (no answer contains them); a backend adds its own (image token)."""
        tok = self.tokenizer
        return [i for i in (tok.pad_id, tok.bos_id, tok.sep_id, tok.unk_id) if i is not None]

    def _pick_tables(self, vocab: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(banned ids, loc bin -> id, id -> loc bin or -1) for `_pick`, built once per vocabulary size and device."""
        key = (vocab, str(device))
        cached = getattr(self, "_pick_cache", None)
        if cached is None or cached[0] != key:
            banned = torch.tensor([i for i in self._banned_ids() if i < vocab], dtype=torch.long, device=device)
            loc_ids = torch.tensor([i for i in getattr(self.tokenizer, "loc_ids", []) if i < vocab],
                                   dtype=torch.long, device=device)
            bin_of = torch.full((vocab,), -1, dtype=torch.long, device=device)
            if loc_ids.numel() == LOC_BINS:
                bin_of[loc_ids] = torch.arange(LOC_BINS, device=device)
            self._pick_cache = cached = (key, (banned, loc_ids, bin_of))
        return cached[1]

    def _pick(self, logits: torch.Tensor,
              shape: ShapeConstraint | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy choice over (B, V) logits, never a banned token -> ids, probabilities. Where the choice is a
        `<locNNNN>` token, the coordinate is the median of the loc bins' distribution (the value with the least
        expected absolute error; the argmax of a spread-out distribution is off by a few bins), and its probability
        is the mass of the bins within ±LOC_TOLERANCE of it: the exact bin's own (a few percent for a good box)
        says little about the box. With `shape`, only the token kinds each row's answer shape allows next are
        candidates (the probabilities are renormalised over them), and `shape` moves past the chosen tokens."""
        banned, loc_ids, bin_of = self._pick_tables(logits.size(-1), logits.device)
        logits = logits.float().index_fill(1, banned, float("-inf"))
        logp = torch.log_softmax(logits if shape is None else shape.apply(logits), dim=-1)
        best, ids = logp.max(dim=-1)
        prob, is_loc = best.exp(), bin_of[ids] >= 0
        if bool(is_loc.any()):
            loc_p = logp.index_select(1, loc_ids).exp()
            cum = F.pad(loc_p.cumsum(1), (1, 0))  # (B, 1025): cum[:, k] = mass of bins < k
            median = ((cum[:, 1:] < 0.5 * cum[:, -1:]).sum(1)).clamp(0, LOC_BINS - 1)
            lo = (median - LOC_TOLERANCE).clamp(0, LOC_BINS - 1)[:, None]
            hi = (median + LOC_TOLERANCE).clamp(0, LOC_BINS - 1)[:, None] + 1
            window = (cum.gather(1, hi) - cum.gather(1, lo))[:, 0].clamp(0.0, 1.0)
            ids = torch.where(is_loc, loc_ids[median], ids)
            prob = torch.where(is_loc, window, prob)
        if shape is not None:
            shape.advance(ids)
        return ids, prob

    @torch.inference_mode()
    def generate(self, images: Any = None, prefixes: Sequence[str] | str = (), max_new_tokens: int = 64,
                 image_features: ImageFeatures | None = None, return_scores: bool = False,
                 use_cache: bool = True, answer_shapes: Sequence[AnswerShape | None] | None = None,
                 ) -> list[str] | tuple[list[str], list[TokenScores]]:
        """Greedy answers to `prefixes` -> decoded strings (special tokens stripped, loc/seg kept), and with
        `return_scores` each answer's per-token probabilities. `answer_shapes` (one per prefix; None: free) keeps
        each answer to its task's token structure (`cxrvlm.models.constrain`). `use_cache=False` recomputes the
        whole sequence at every step (the reference the cache is tested against)."""
        prefixes = [prefixes] if isinstance(prefixes, str) else list(prefixes)
        if not prefixes:
            raise ValueError("generate: no prefixes given")
        if answer_shapes is not None and len(answer_shapes) != len(prefixes):
            raise ValueError(f"generate: {len(answer_shapes)} answer shapes for {len(prefixes)} prefixes")
        if max_new_tokens < 1:
            raise ValueError(f"generate: max_new_tokens must be >= 1, got {max_new_tokens}")
        with self._eval_mode():
            feats = self._features(images, image_features, len(prefixes))
            ids, mask = self._prompt_batch(prefixes)
            steps = min(max_new_tokens, self.config.max_text_len - int(mask.sum(1).max()))
            if steps < max_new_tokens:
                log.warning("generate: max_new_tokens cut from %d to %d by max_text_len=%d", max_new_tokens, steps,
                            self.config.max_text_len)
            shape = None if answer_shapes is None or not any(answer_shapes) else ShapeConstraint(
                answer_shapes, getattr(self.tokenizer, "loc_ids", []),
                getattr(self.tokenizer, "seg_ids", []), self.tokenizer.eos_id, self.device)
            run = self._greedy_cached if use_cache else self._greedy_full
            out, probs = run(feats, ids, mask, steps, shape)
        return self._finish(out, probs, return_scores)

    def _prefix_end(self, n_img: int, prompt: int | torch.Tensor, batch: int) -> torch.Tensor:
        """(B,) the first position each row attends causally: after the prompt (config.attention "prefix"), or
        after the image tokens ("causal": the text is causal from its first token)."""
        end = n_img + (prompt if self.config.attention == "prefix" else 0)
        return end if torch.is_tensor(end) else torch.full((batch,), end, device=self.device)

    def _greedy_cached(self, feats: ImageFeatures, ids: torch.Tensor, mask: torch.Tensor, steps: int,
                       shape: ShapeConstraint | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        dec, dev = self.decoder, self.device
        B = ids.size(0)
        positions = (mask.long().cumsum(1) - 1).clamp(min=0)
        x = torch.cat([feats.tokens.to(dev, self.dtype), dec.embed(ids, positions)], dim=1)  # (B, L, C)
        L = x.size(1)
        key_valid = torch.ones(B, L + steps, dtype=torch.bool, device=dev)
        key_valid[:, :L] = torch.cat([feats.mask.to(dev), mask], dim=1)
        cache = dec.new_cache(B, L + steps, x)
        h = dec(x, prefix_lm_mask(key_valid[:, :L], self._prefix_end(feats.tokens.size(1), L - feats.tokens.size(1),
                                                                       B)), cache)
        logits, next_pos = dec.lm_head(h[:, -1]), positions[:, -1] + 1
        # one new query per step: with no padded key anywhere (every batch-1 call) it may see every cached key,
        # so no mask is needed and attention takes its unmasked kernel
        all_valid = bool(key_valid.all())
        plan = dec.decode_plan() if all_valid and hasattr(dec, "decode_plan") and not self.training else None
        out, probs = [], []
        done = torch.zeros(B, dtype=torch.bool, device=dev)
        for step in range(steps):
            tok, p = self._pick(logits, shape)
            out.append(tok)
            probs.append(p)
            done |= tok == self.tokenizer.eos_id
            if bool(done.all()) or step == steps - 1:
                break
            x = dec.embed(tok[:, None], next_pos[:, None])
            if plan is not None:
                h = dec.decode_step(plan, x, cache)
            else:
                h = dec(x, None if all_valid else key_valid[:, None, None, : cache.length + 1], cache)
            logits, next_pos = dec.lm_head(h[:, -1]), next_pos + 1
        return torch.stack(out, 1), torch.stack(probs, 1)

    def _greedy_full(self, feats: ImageFeatures, ids: torch.Tensor, mask: torch.Tensor, steps: int,
                     shape: ShapeConstraint | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        dec, dev = self.decoder, self.device
        B, Tp = ids.shape
        n_img = feats.tokens.size(1)
        gen = ids.new_zeros(B, 0)
        out, probs = [], []
        done = torch.zeros(B, dtype=torch.bool, device=dev)
        for _ in range(steps):
            seq = torch.cat([ids, gen], 1)
            text_mask = torch.cat([mask, torch.ones_like(gen, dtype=torch.bool)], 1)
            positions = (text_mask.long().cumsum(1) - 1).clamp(min=0)
            x = torch.cat([feats.tokens.to(dev, self.dtype), dec.embed(seq, positions)], dim=1)
            key_valid = torch.cat([feats.mask.to(dev), text_mask], 1)
            attn = prefix_lm_mask(key_valid, self._prefix_end(n_img, Tp, B))
            tok, p = self._pick(dec.lm_head(dec(x, attn)[:, -1]), shape)
            out.append(tok)
            probs.append(p)
            gen = torch.cat([gen, tok[:, None]], 1)
            done |= tok == self.tokenizer.eos_id
            if bool(done.all()):
                break
        return torch.stack(out, 1), torch.stack(probs, 1)

    def _finish(self, out: torch.Tensor, probs: torch.Tensor,
                return_scores: bool) -> list[str] | tuple[list[str], list[TokenScores]]:
        """Cut each row at its first <eos>, decode, and pair tokens with their probabilities."""
        tok = self.tokenizer
        texts, scores = [], []
        for row, prow in zip(out.tolist(), probs.tolist()):
            n = row.index(tok.eos_id) if tok.eos_id in row else len(row)
            texts.append(tok.decode(row[:n]))
            scores.append([(tok.id_to_token(t), float(q)) for t, q in zip(row[:n], prow[:n])])
        return (texts, scores) if return_scores else texts

    @torch.inference_mode()
    def score_candidates(self, images: Any = None, prefix: str = "", candidates: Sequence[str] = (),
                         image_features: ImageFeatures | None = None) -> list[float]:
        """Probability of each candidate answer (its full likelihood, <eos> included), normalised over the set."""
        candidates = list(candidates)
        if not candidates:
            raise ValueError("score_candidates: no candidates given")
        if len(set(candidates)) != len(candidates):
            raise ValueError(f"score_candidates: candidates repeat: {candidates}")
        with self._eval_mode():
            feats = self._features(images, image_features, 1)
            if len(feats) != 1:
                raise ValueError(f"score_candidates scores one example; got features of {len(feats)}")
            batch = self.text_batch([prefix] * len(candidates), candidates)
            _, nll = self(**batch, image_features=feats.expand(len(candidates)), reduction="sum")
        return torch.softmax(-nll.double(), dim=0).tolist()


def box_scores(scores: TokenScores) -> list[float]:
    """One score per box of a generated answer: the geometric mean of the probabilities of each run of four
    consecutive `<locNNNN>` tokens, in the order the boxes appear (detection and segmentation answers)."""
    out, run = [], []
    for token, p in scores:
        if token.startswith("<loc") and token.endswith(">"):
            run.append(max(p, 1e-12))
            if len(run) == 4:
                out.append(float(torch.tensor(run, dtype=torch.float64).log().mean().exp()))
                run = []
        else:
            run = []
    return out
