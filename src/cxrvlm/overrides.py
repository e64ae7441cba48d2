"""`key=value` overrides from the command line: the one parser every subcommand uses.

    parse_value("3") -> 3; parse_value("[8, 16]") -> [8, 16]; parse_value("runs/x") -> "runs/x"
    parse_overrides(["n_layer=2", "name=x"]) -> {"n_layer": 2, "name": "x"}           # flat (model config keys)
    apply_overrides(cfg, ["stages.0.steps=20", "model_overrides.depth=2"])           # dotted, into dicts and lists

Values parse as JSON, else stay strings (so paths need no quoting). A bottom-layer leaf: imports nothing from cxrvlm.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def parse_value(raw: str) -> Any:
    """JSON if it parses (numbers, booleans, null, lists, objects, quoted strings), else the text itself."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def split_item(item: str) -> tuple[str, Any]:
    """`"key=value"` -> (key, parsed value); ValueError naming the item when it has no `=` or no key."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override {item!r} is not key=value")
    return key.strip(), parse_value(raw)


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Flat `key=value` items -> dict (a later item wins); dots stay part of the key."""
    return dict(split_item(item) for item in items)


def _child(node: Any, part: str, key: str, create: bool) -> Any:
    """`node[part]` of a dict (a missing key becomes {} when `create`) or of a list (by index)."""
    if isinstance(node, list):
        if not part.isdigit() or int(part) >= len(node):
            raise ValueError(f"override {key!r}: {part!r} is not an index of a list of {len(node)}")
        return node[int(part)]
    if not isinstance(node, dict):
        raise ValueError(f"override {key!r}: cannot reach {part!r} inside a {type(node).__name__}")
    return node.setdefault(part, {}) if create else node.get(part)


def set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    """`d[a][b][0] = value` for key "a.b.0": missing dict levels are created; list indexes must exist."""
    parts = key.split(".")
    if not all(parts):
        raise ValueError(f"override {key!r}: empty part in the dotted key")
    node: Any = d
    for part in parts[:-1]:
        node = _child(node, part, key, create=True)
    last = parts[-1]
    if isinstance(node, list):
        _child(node, last, key, create=False)  # checks the index
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ValueError(f"override {key!r}: cannot set {last!r} inside a {type(node).__name__}")


def apply_overrides(d: dict[str, Any], items: Iterable[str]) -> dict[str, Any]:
    """Each `dotted.key=value` item set into `d` in order (in place); returns `d`."""
    for item in items:
        key, value = split_item(item)
        set_dotted(d, key, value)
    return d
