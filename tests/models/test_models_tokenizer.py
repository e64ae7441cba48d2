from __future__ import annotations

import json
import time

import pytest

from cxrvlm.models import Tokenizer, TokenizerError, read_texts
from cxrvlm.tokens.loc import encode_box
from cxrvlm.tokens.seg import encode_seg


def test_train_is_fast_and_learns_merges(tokenizer: Tokenizer) -> None:
    start = time.perf_counter()
    tok = Tokenizer.train(["The lungs are clear. No pleural effusion."] * 300, vocab_size=300)
    assert time.perf_counter() - start < 2.0
    assert len(tok.encode("The lungs are clear.")) < len("The lungs are clear.")  # merges, not bytes
    text = "No pleural effusion or pneumothorax."
    assert len(tokenizer.encode(text)) < len(text) / 2


def test_loc_and_seg_tokens_are_single_tokens(tokenizer: Tokenizer) -> None:
    ids = tokenizer.encode("<loc0512>")
    assert ids == [tokenizer.loc_ids[512]] and tokenizer.loc_bin(ids[0]) == 512
    assert tokenizer.encode("<seg127>") == [tokenizer.seg_ids[127]]
    text = encode_box(0.1, 0.2, 0.5, 0.9) + " left lung ; " + encode_box(0.5, 0.2, 0.9, 0.9) + encode_seg(range(16)) + " right lung"
    ids = tokenizer.encode(text)
    assert sum(1 for i in ids if tokenizer.loc_bin(i) is not None) == 8
    assert sum(1 for i in ids if i in tokenizer.seg_ids) == 16
    assert tokenizer.decode(ids) == text  # loc/seg kept verbatim, spaces intact


def test_special_tokens_layout_and_stripping(tokenizer: Tokenizer) -> None:
    assert (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.sep_id, tokenizer.unk_id) == (0, 1, 2, 3, 4)
    assert tokenizer.loc_ids == list(range(400, 1424)) and tokenizer.seg_ids == list(range(1424, 1552))
    assert tokenizer.vocab_size == 400 + 1024 + 128
    ids = [tokenizer.bos_id, *tokenizer.encode("normal"), tokenizer.eos_id, tokenizer.pad_id]
    assert tokenizer.decode(ids) == "normal"
    assert tokenizer.decode(ids, skip_special_tokens=False).startswith("<bos>")


def test_case_and_unicode_round_trip(tokenizer: Tokenizer) -> None:
    for text in ("Heart size NORMAL.", "épanchement pleural 胸腔积液", "x  y"):
        assert tokenizer.decode(tokenizer.encode(text)) == text


def test_byte_level_tokenizer_needs_no_data() -> None:
    tok = Tokenizer.byte_level()
    assert tok.vocab_size == 5 + 256 + 1024 + 128
    assert len(tok.encode("abc")) == 3 and tok.encode("<loc0001>") == [tok.loc_ids[1]]
    assert tok.decode(tok.encode("Befund: ödem")) == "Befund: ödem"


def test_save_load_round_trip(tokenizer: Tokenizer, tmp_path) -> None:
    tokenizer.save(tmp_path / "tokenizer.json")
    again = Tokenizer.load(tmp_path)
    assert again == tokenizer
    assert again.encode("segment left lung <loc0003>") == tokenizer.encode("segment left lung <loc0003>")


def test_bad_input_errors(tmp_path) -> None:
    with pytest.raises(TokenizerError, match="vocab_size"):
        Tokenizer.train(["a b c"], vocab_size=100)
    with pytest.raises(TokenizerError, match="no non-empty texts"):
        Tokenizer.train(["", "  "], vocab_size=300)
    with pytest.raises(TokenizerError, match="not found"):
        Tokenizer.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(TokenizerError, match="not a tokenizers JSON"):
        Tokenizer.load(tmp_path / "bad.json")


def test_read_texts_skips_bad_lines(tmp_path) -> None:
    path = tmp_path / "reports.jsonl"
    rows = [{"findings": "Clear lungs.", "impression": "Normal."}, {"text": "curated line"}, {"findings": ""}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n")
    assert read_texts(path) == ["Clear lungs. Normal.", "curated line"]


def test_openi_reports_train_a_tokenizer(shared_data) -> None:
    texts = read_texts(shared_data / "openi" / "reports.jsonl")
    assert len(texts) > 2000
    tok = Tokenizer.train(texts[:500], vocab_size=1000)
    assert len(tok.encode("No acute cardiopulmonary abnormality.")) <= 10
