"""Helpers for the inference tests: a tiny random model's settings and a scripted `generate`."""
from __future__ import annotations

import re
from typing import Any

# A model small enough to build in a blink and run a whole reading in well under a second on one thread; its
# random weights write garbage, which is what the robustness tests need.
TINY = dict(image_size=64, vit_depth=1, vit_width=32, vit_heads=1, n_layer=1, n_embd=32, n_head=1)

_TOKEN_RE = re.compile(r"<(?:loc\d{4}|seg\d{3})>|.", re.DOTALL)


def token_scores(text: str, special: float = 0.8, other: float = 0.5) -> list[tuple[str, float]]:
    """(token, probability) for a scripted answer: each loc/seg token one token, every other character one token."""
    return [(t, special if t.startswith("<") and len(t) > 1 else other) for t in _TOKEN_RE.findall(text)]


class ScriptedGenerate:
    """Stands in for `model.generate`: answers whose prefix starts with a scripted key get the scripted text (with
    `token_scores`), others go to the real method. Records every call's prefix and image features."""

    def __init__(self, model: Any, answers: dict[str, str], special: float = 0.8) -> None:
        self.real, self.answers, self.special = model.generate, answers, special
        self.calls: list[tuple[str, Any]] = []

    def __call__(self, images: Any = None, prefixes: Any = (), max_new_tokens: int = 64,
                 image_features: Any = None, return_scores: bool = False, **kw: Any) -> Any:
        prefixes = [prefixes] if isinstance(prefixes, str) else list(prefixes)
        self.calls += [(p, image_features) for p in prefixes]
        key = next((k for k in self.answers if prefixes[0].startswith(k)), None)
        if key is None:
            return self.real(images=images, prefixes=prefixes, max_new_tokens=max_new_tokens,
                             image_features=image_features, return_scores=return_scores, **kw)
        texts = [self.answers[key]] * len(prefixes)
        scores = [token_scores(t, self.special) for t in texts]
        return (texts, scores) if return_scores else texts
