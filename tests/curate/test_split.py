from __future__ import annotations

import pytest

from cxrvlm.curate.split import PatientLinks, _allocate, assign_splits, bucket, parse_fractions


def test_parse_fractions_accepts_and_rejects() -> None:
    assert parse_fractions("0.8,0.1,0.1") == (0.8, 0.1, 0.1)
    assert parse_fractions([0.5, 0.5, 0]) == (0.5, 0.5, 0.0)
    for bad in ("0.8,0.2", "a,b,c", "0.9,0.2,0.1", "0.5,-0.1,0.6", "0,0.5,0.5", "nan,0.5,0.5"):
        with pytest.raises(ValueError, match="--split"):
            parse_fractions(bad)


def test_bucket_is_deterministic_uniform_and_seed_dependent() -> None:
    values = [bucket(0, f"p{i}") for i in range(2000)]
    assert values == [bucket(0, f"p{i}") for i in range(2000)]
    assert all(0.0 <= v < 1.0 for v in values)
    assert 0.45 < sum(values) / len(values) < 0.55
    assert values[:50] != [bucket(1, f"p{i}") for i in range(50)]


def test_patient_links_group_by_smallest_id_whatever_the_link_order() -> None:
    a, b = PatientLinks(), PatientLinks()
    for x, y in (("c", "b"), ("b", "a"), ("d", "e")):
        a.link(x, y)
    for x, y in (("e", "d"), ("a", "b"), ("b", "c")):
        b.link(x, y)
    assert a.groups() == b.groups() == {"a": ["a", "b", "c"], "d": ["d", "e"]}
    assert a.key("c") == "a"
    a.add("z")
    assert a.key("z") == "z"


def test_allocate_gives_every_split_an_item_when_possible() -> None:
    assert _allocate(7, (0.8, 0.1, 0.1)) == [5, 1, 1]
    assert _allocate(100, (0.8, 0.1, 0.1)) == [80, 10, 10]
    assert _allocate(2, (0.8, 0.1, 0.1)) == [2, 0, 0] or sum(_allocate(2, (0.8, 0.1, 0.1))) == 2
    assert _allocate(10, (1.0, 0.0, 0.0)) == [10, 0, 0]
    assert sum(_allocate(13, (0.7, 0.2, 0.1))) == 13


@pytest.mark.parametrize("stratify", [True, False])
def test_assign_splits_deterministic_and_order_independent(stratify: bool) -> None:
    groups = {f"tb:{i}": {"tb"} for i in range(300)} | {f"covid:{i}": {"covid"} for i in range(40)}
    first = assign_splits(groups, (0.8, 0.1, 0.1), seed=3, stratify=stratify)
    reordered = assign_splits(dict(reversed(list(groups.items()))), (0.8, 0.1, 0.1), seed=3, stratify=stratify)
    assert first == reordered
    assert set(first) == set(groups)
    counts = {s: sum(1 for v in first.values() if v == s) for s in ("train", "val", "test")}
    assert 0.7 * 340 < counts["train"] < 0.9 * 340 and counts["val"] > 10 and counts["test"] > 10
    other_seed = assign_splits(groups, (0.8, 0.1, 0.1), seed=4, stratify=stratify)
    assert other_seed != first


def test_stratified_split_puts_each_small_source_in_every_split() -> None:
    groups = {f"big:{i}": {"big"} for i in range(200)} | {f"small:{i}": {"small"} for i in range(5)}
    for seed in range(10):
        split = assign_splits(groups, (0.8, 0.1, 0.1), seed=seed)
        small = [split[f"small:{i}"] for i in range(5)]
        assert set(small) == {"train", "val", "test"}
        big = [split[f"big:{i}"] for i in range(200)]
        assert (big.count("train"), big.count("val"), big.count("test")) == (160, 20, 20)


def test_unstratified_split_does_not_move_patients_when_data_is_added() -> None:
    small = {f"p{i}": {"s"} for i in range(100)}
    large = small | {f"q{i}": {"s"} for i in range(100)}
    a = assign_splits(small, (0.8, 0.1, 0.1), seed=0, stratify=False)
    b = assign_splits(large, (0.8, 0.1, 0.1), seed=0, stratify=False)
    assert all(b[k] == v for k, v in a.items())
