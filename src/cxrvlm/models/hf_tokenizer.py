"""A transformers tokenizer behind the project `Tokenizer`'s interface (ids of the special, `<loc>` and `<seg>`
tokens; encode, decode, save), for the backends whose language model brings its own tokenizer."""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from cxrvlm.tokens.loc import LOC_TOKENS
from cxrvlm.tokens.seg import SEG_TOKENS


class TransformersTokenizer:
    """The project `Tokenizer`'s interface over a checkpoint's transformers tokenizer: PaliGemma's Gemma
    SentencePiece (`cxrvlm.models.paligemma`), or any LM's for the native model's "hf" decoder
    (`cxrvlm.models.hf_text`, which ends prompts with `sep_token`)."""

    def __init__(self, hf: Any, image_token_id: int | None, sep_token: str | None = None) -> None:
        self.hf = hf
        self.pad_id, self.bos_id, self.eos_id = hf.pad_token_id, hf.bos_token_id, hf.eos_token_id
        self.unk_id = hf.unk_token_id if hf.unk_token_id is not None else hf.pad_token_id
        # PaliGemma separates prefix and suffix with "\n", an ordinary token
        self.sep_id = hf.convert_tokens_to_ids(sep_token) if sep_token else None
        if None in (self.pad_id, self.bos_id, self.eos_id):
            raise ValueError(f"tokenizer {type(hf).__name__} lacks a pad, bos or eos token")
        self.loc_ids = hf.convert_tokens_to_ids(list(LOC_TOKENS))
        self.seg_ids = hf.convert_tokens_to_ids(list(SEG_TOKENS))
        if self.unk_id in self.loc_ids or self.unk_id in self.seg_ids:
            raise ValueError("tokenizer lacks the <locNNNN>/<segNNN> tokens PaliGemma's detection/segmentation need")
        self.special_ids = frozenset({self.pad_id, self.bos_id, self.eos_id, self.unk_id, image_token_id,
                                      self.sep_id} - {None})
        self._loc_bin = {tid: i for i, tid in enumerate(self.loc_ids)}

    @property
    def vocab_size(self) -> int:
        return len(self.hf)

    def encode(self, text: str) -> list[int]:
        return self.hf(text, add_special_tokens=False)["input_ids"]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self.hf(list(texts), add_special_tokens=False)["input_ids"] if texts else []

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        ids = [int(i) for i in ids]
        if skip_special_tokens:
            ids = [i for i in ids if i not in self.special_ids]
        return self.hf.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def id_to_token(self, i: int) -> str:
        return self.hf.convert_ids_to_tokens(int(i))

    def token_to_id(self, token: str) -> int | None:
        i = self.hf.convert_tokens_to_ids(token)
        return None if i == self.unk_id and token != self.hf.unk_token else i

    def loc_bin(self, token_id: int) -> int | None:
        return self._loc_bin.get(int(token_id))

    def save(self, folder: str | os.PathLike) -> None:
        self.hf.save_pretrained(str(folder))
