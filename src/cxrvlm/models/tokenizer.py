"""Text tokenizer: byte-level BPE (HF `tokenizers`) + 1024 `<locNNNN>` + 128 `<segNNN>` + special tokens.

    tok = Tokenizer.train(texts, vocab_size=4000)    # BPE learned from prompts, answers and reports (~ms per 1k lines)
    tok = Tokenizer.byte_level()                      # no training data: every byte is a token (longer sequences)
    ids = tok.encode("detect left lung")              # list[int], no special tokens added
    tok.decode(ids)                                   # special tokens stripped, loc/seg tokens kept
    tok.save("tokenizer.json"); Tokenizer.load("tokenizer.json")

Id layout: `<pad>`=0 `<bos>`=1 `<eos>`=2 `<sep>`=3 `<unk>`=4, then the 256 byte symbols and the BPE merges
(`vocab_size` counts these: the text vocabulary), then `<loc0000>`..`<loc1023>`, then `<seg000>`..`<seg127>`.
Case is kept (reports and labels are cased; metrics lower-case on their own, as PaliGemma-CXR's code does), and
byte-level BPE never needs `<unk>` (it is there for backends whose vocabularies use one). Loc and seg tokens are
added tokens: the text is split at them before BPE, so `<loc0512>` is always one token and decodes verbatim.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from tokenizers import AddedToken, decoders, models, pre_tokenizers, trainers
from tokenizers import Tokenizer as HFTokenizer

from cxrvlm.tokens.loc import LOC_TOKENS
from cxrvlm.tokens.seg import SEG_TOKENS

log = logging.getLogger(__name__)

PAD, BOS, EOS, SEP, UNK = "<pad>", "<bos>", "<eos>", "<sep>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, SEP, UNK)
MIN_VOCAB = len(SPECIAL_TOKENS) + 256  # specials + the byte alphabet


class TokenizerError(ValueError):
    """A tokenizer file or training request that cannot be used; the message says which and why."""


class Tokenizer:
    """A trained HF tokenizer with the project's special, loc and seg tokens at fixed places (see module doc)."""

    def __init__(self, hf: HFTokenizer) -> None:
        self.hf = hf
        missing = [t for t in SPECIAL_TOKENS + LOC_TOKENS + SEG_TOKENS if hf.token_to_id(t) is None]
        if missing:
            raise TokenizerError(f"tokenizer lacks {len(missing)} required token(s), e.g. {missing[:3]}")
        self.pad_id, self.bos_id, self.eos_id, self.sep_id, self.unk_id = (hf.token_to_id(t) for t in SPECIAL_TOKENS)
        self.loc_ids = [hf.token_to_id(t) for t in LOC_TOKENS]  # bin i -> token id
        self.seg_ids = [hf.token_to_id(t) for t in SEG_TOKENS]
        self.special_ids = frozenset((self.pad_id, self.bos_id, self.eos_id, self.sep_id, self.unk_id))
        self._loc_bin = {tid: i for i, tid in enumerate(self.loc_ids)}

    # ------------------------------------------------------------------------------------------------ building
    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int = 4000) -> Tokenizer:
        """Learn byte-level BPE from `texts`; `vocab_size` = specials + 256 bytes + merges (loc/seg come on top)."""
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < MIN_VOCAB:
            raise TokenizerError(f"vocab_size must be an integer >= {MIN_VOCAB} (specials + bytes), got {vocab_size!r}")
        texts = [t for t in texts if isinstance(t, str) and t.strip()]
        if not texts:
            raise TokenizerError("Tokenizer.train: no non-empty texts to learn from")
        hf = _empty_byte_level()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        hf.train_from_iterator(texts, trainer)
        _add_fixed_tokens(hf)
        log.info("trained a BPE tokenizer on %d texts: %d tokens", len(texts), hf.get_vocab_size())
        return cls(hf)

    @classmethod
    def byte_level(cls) -> Tokenizer:
        """A tokenizer that needs no data: specials + the 256 byte symbols, no merges."""
        alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
        vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
        vocab.update({ch: len(SPECIAL_TOKENS) + i for i, ch in enumerate(alphabet)})
        hf = HFTokenizer(models.BPE(vocab=vocab, merges=[]))
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = decoders.ByteLevel()
        hf.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SPECIAL_TOKENS])
        _add_fixed_tokens(hf)
        return cls(hf)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Read a tokenizer.json written by `save` (or a folder holding one)."""
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.is_file():
            raise TokenizerError(f"{path}: tokenizer file not found")
        try:
            hf = HFTokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises a bare Exception on malformed JSON
            raise TokenizerError(f"{path}: not a tokenizers JSON file ({e})") from None
        return cls(hf)

    def save(self, path: str | os.PathLike) -> None:
        self.hf.save(str(path))

    def to_str(self) -> str:
        return self.hf.to_str()

    # ------------------------------------------------------------------------------------------------ use
    @property
    def vocab_size(self) -> int:
        """Every id the model must embed (text vocabulary + loc + seg)."""
        return self.hf.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.hf.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """ids -> text; `<pad>/<bos>/<eos>/<sep>/<unk>` dropped unless asked, loc/seg tokens always kept."""
        ids = [int(i) for i in ids]
        if skip_special_tokens:
            ids = [i for i in ids if i not in self.special_ids]
        return self.hf.decode(ids, skip_special_tokens=False)

    def id_to_token(self, i: int) -> str:
        tok = self.hf.id_to_token(int(i))
        if tok is None:
            raise TokenizerError(f"token id {i} is outside the vocabulary of {self.vocab_size}")
        return tok

    def token_to_id(self, token: str) -> int | None:
        return self.hf.token_to_id(token)

    def loc_bin(self, token_id: int) -> int | None:
        """The 0..1023 bin of a `<locNNNN>` token id, None for any other id."""
        return self._loc_bin.get(int(token_id))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and self.to_str() == other.to_str()

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size})"


def _empty_byte_level() -> HFTokenizer:
    hf = HFTokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    return hf


def _add_fixed_tokens(hf: HFTokenizer) -> None:
    """loc then seg tokens as added (non-special) tokens: single tokens that decode verbatim."""
    hf.add_tokens([AddedToken(t, normalized=False) for t in LOC_TOKENS + SEG_TOKENS])


def read_texts(path: str | os.PathLike, fields: tuple[str, ...] = ("text", "findings", "impression")) -> list[str]:
    """Texts for tokenizer training from a JSON-lines file: each line's non-empty `fields`, joined by a space
    (Open-i's reports.jsonl gives findings + impression; a curated text.jsonl gives "text"). Bad lines are
    skipped and counted in a warning."""
    path = Path(path)
    if not path.is_file():
        raise TokenizerError(f"{path}: text file not found")
    texts, bad = [], 0
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                parts = [str(row[k]).strip() for k in fields if isinstance(row, dict) and row.get(k)]
            except json.JSONDecodeError:
                bad += 1
                continue
            if parts:
                texts.append(" ".join(parts))
    if bad:
        log.warning("%s: skipped %d line(s) that are not JSON", path, bad)
    return texts
