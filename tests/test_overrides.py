"""The one `key=value` parser: values, flat dicts, dotted keys into dicts and lists, and errors naming the item."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from cxrvlm.overrides import apply_overrides, parse_overrides, parse_value, set_dotted, split_item


@pytest.mark.parametrize("raw, value", [("3", 3), ("0.5", 0.5), ("true", True), ("null", None), ("[8, 16]", [8, 16]),
                                        ('{"a": 1}', {"a": 1}), ('"7"', "7"), ("runs/x", "runs/x"), ("", ""),
                                        ("a=b", "a=b")])
def test_values_parse_as_json_else_stay_text(raw, value) -> None:
    assert parse_value(raw) == value and type(parse_value(raw)) is type(value)


def test_flat_overrides_keep_dots_and_the_last_item_wins() -> None:
    assert parse_overrides(["n_layer=2", "name=x", " depth =3", "a.b=1", "n_layer=4", "path=a=b"]) == \
        {"n_layer": 4, "name": "x", "depth": 3, "a.b": 1, "path": "a=b"}
    assert parse_overrides([]) == {}


@pytest.mark.parametrize("item", ["lr", "=3", " =3"])
def test_an_item_without_key_or_equals_is_named(item) -> None:
    with pytest.raises(ValueError, match=f"override {item!r} is not key=value"):
        parse_overrides([item])
    with pytest.raises(ValueError, match="is not key=value"):
        split_item(item)


def test_dotted_keys_reach_into_dicts_and_lists() -> None:
    d = {"stages": [{"steps": 5}, {"steps": 6}], "model_overrides": {}}
    assert apply_overrides(d, ["stages.1.steps=20", "model_overrides.depth=2", "init_from.a.b=x", "lr=0.1"]) is d
    assert d == {"stages": [{"steps": 5}, {"steps": 20}], "model_overrides": {"depth": 2},
                 "init_from": {"a": {"b": "x"}}, "lr": 0.1}
    set_dotted(d, "stages.0", {"steps": 1})
    assert d["stages"][0] == {"steps": 1}


@pytest.mark.parametrize("item, message", [
    ("stages.3.steps=1", r"'3' is not an index of a list of 2"), ("stages.x.steps=1", "'x' is not an index"),
    ("stages.2=1", "'2' is not an index"), ("lr.x=1", "cannot set 'x' inside a float"),
    ("lr.x.y=1", "cannot reach 'x' inside a float"), ("a..b=1", "empty part")])
def test_bad_dotted_keys_are_named(item, message) -> None:
    d = {"stages": [{}, {}], "lr": 0.1}
    with pytest.raises(ValueError, match=message) as e:
        apply_overrides(d, [item])
    assert repr(item.partition("=")[0]) in str(e.value)


def test_the_module_is_a_bottom_layer_leaf() -> None:
    import cxrvlm.overrides as mod

    tree = ast.parse(Path(mod.__file__).read_text())
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m.startswith("cxrvlm")]
