"""Property tests (Hypothesis) of the token codecs on any text: loc tokens decode to boxes in [0, 1] or nothing,
seg codes are checked without raising, and whole objects survive a round trip."""
from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cxrvlm.tokens.loc import LOC_RE, decode_locs, encode_box, locs_extent, quantise, zoom_shift_locs
from cxrvlm.tokens.seg import NUM_CODES, SEG_RE, check_codes, encode_seg

PIECES = st.one_of(
    st.text(max_size=10),
    st.integers(0, 1023).map(lambda i: f"<loc{i:04d}>"),
    st.integers(0, 127).map(lambda i: f"<seg{i:03d}>"),
    st.sampled_from(["<loc", "<loc12345>", "<seg999>", " ; ", "right lung", "\x00"]),
)
TEXT = st.lists(PIECES, max_size=30).map("".join)
UNIT = st.floats(-2.0, 3.0, allow_nan=False)
BOUNDED = settings(max_examples=200, deadline=None)


@BOUNDED
@given(text=TEXT)
def test_loc_text_never_raises(text: str) -> None:
    extent = locs_extent(text)
    if extent is not None:
        assert all(0.0 <= v <= 1.0 for v in extent)
    bins = [int(b) for b in LOC_RE.findall(text)]
    if len(bins) % 4:
        with pytest.raises(ValueError, match="not whole boxes"):
            zoom_shift_locs(text, 0.9, 0.01, -0.01)
    else:
        assert len(LOC_RE.findall(zoom_shift_locs(text, 0.9, 0.01, -0.01))) == len(bins)


@BOUNDED
@given(box=st.tuples(UNIT, UNIT, UNIT, UNIT))
def test_loc_box_round_trip(box: tuple[float, float, float, float]) -> None:
    bins = [int(b) for b in LOC_RE.findall(encode_box(*box))]
    x1, y1, x2, y2 = decode_locs(bins)
    assert bins == [quantise(v) for v in (box[1], box[0], box[3], box[2])]
    assert all(0.0 <= v <= 1.0 for v in (x1, y1, x2, y2))


@BOUNDED
@given(text=TEXT)
def test_seg_codes_from_any_text_are_checked_without_raising(text: str) -> None:
    codes = [int(c) for c in SEG_RE.findall(text)]
    vals, reason = check_codes(codes)
    assert (vals is None) == bool(reason)
    if vals is not None:
        assert encode_seg(vals) == "".join(f"<seg{c:03d}>" for c in vals)


@BOUNDED
@given(codes=st.lists(st.integers(0, NUM_CODES - 1), min_size=16, max_size=16))
def test_seg_round_trip(codes: list[int]) -> None:
    assert [int(c) for c in SEG_RE.findall(encode_seg(codes))] == codes
    assert check_codes(codes) == (codes, "")


@BOUNDED
@given(codes=st.one_of(st.none(), st.text(max_size=5), st.lists(st.one_of(st.integers(-5, 200), st.floats(),
                                                                        st.text(max_size=2)), max_size=20)))
@example(codes=[float("inf")] * 16)  # found by this test: int(inf) raised OverflowError
@example(codes=[float("nan")] * 16)
def test_check_codes_never_raises(codes: object) -> None:
    vals, reason = check_codes(codes)
    assert (vals is None) == bool(reason)
