"""Greedy decoding that keeps each answer to its task's token shape (`cxrvlm.tokens.shape.AnswerShape`).

A small model sometimes writes a box of three `<loc>` tokens, a mask of 30 codes, "yes" to a detection prompt or a
`<loc>` token in a report: an answer its task's parser must reject, so the study loses that box or mask altogether.
`ShapeConstraint` holds, per row of a batch, where the answer is inside its current object, and masks the next
token's logits to the token kinds the shape allows there. Within an allowed kind the model's own choice stands (the
likeliest label, the median `<loc>` bin), so a well-formed answer decodes exactly as without the constraint.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from cxrvlm.tokens.shape import AnswerShape

# what a row may emit next: anything / text only (no loc, no seg) / text, <eos> or a first <loc> (between objects) /
# a <loc> / a <seg> / a label token (no loc, no seg, no <eos>) / the answer's first token: a <loc> (the parsers
# reject an empty answer)
ANY, TEXT, FREE, LOC, SEG, LABEL, START = range(7)


class ShapeConstraint:
    """Per row of a batch: its answer shape and how far into its current object it is."""

    def __init__(self, shapes: Sequence[AnswerShape | None], loc_ids: Sequence[int], seg_ids: Sequence[int],
                 eos_id: int, device: torch.device) -> None:
        self.loc_ids, self.seg_ids, self.eos_id = list(loc_ids), list(seg_ids), eos_id
        self.bias_table = self.is_loc = None  # built for the logits' width at the first step

        def column(values: list[int]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.long, device=device)

        self.locs = column([s.locs if s else 0 for s in shapes])
        self.segs = column([s.segs if s else 0 for s in shapes])
        self.label = column([int(s.label) if s else 0 for s in shapes])
        self.between = column([ANY if s is None else FREE if s.locs else TEXT for s in shapes])
        self.pos = torch.zeros(len(shapes), dtype=torch.long, device=device)  # tokens of the current object so far
        self.started = False  # whether any token was emitted yet (all rows step together)

    def _tables(self, vocab: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if self.bias_table is None or self.bias_table.size(1) != vocab:
            is_loc = torch.zeros(vocab, dtype=torch.bool)
            is_loc[[i for i in self.loc_ids if i < vocab]] = True
            is_seg = torch.zeros(vocab, dtype=torch.bool)
            is_seg[[i for i in self.seg_ids if i < vocab]] = True
            banned = torch.zeros(7, vocab, dtype=torch.bool)
            banned[TEXT] = is_loc | is_seg
            banned[FREE] = is_seg
            banned[LOC] = ~is_loc
            banned[SEG] = ~is_seg
            banned[LABEL] = is_loc | is_seg
            banned[START] = ~is_loc
            if self.eos_id < vocab:
                banned[LABEL, self.eos_id] = True
            banned[banned.all(1)] = False  # a kind this vocabulary cannot write at all is not enforced
            self.bias_table = torch.zeros(7, vocab).masked_fill(banned, float("-inf")).to(device)
            self.is_loc = is_loc.to(device)
        return self.bias_table, self.is_loc

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, V) float logits -> the same with -inf wherever a row's shape does not allow the token next."""
        table, _ = self._tables(logits.size(-1), logits.device)
        inside = self.pos > 0
        between = self.between if self.started else torch.where(self.between == FREE, START, self.between)
        kind = torch.where(inside & (self.pos < self.locs), LOC, between)
        kind = torch.where(inside & (self.pos >= self.locs) & (self.pos < self.locs + self.segs), SEG, kind)
        kind = torch.where(inside & (self.pos == self.locs + self.segs) & (self.label > 0), LABEL, kind)
        return logits + table[kind]

    def advance(self, tokens: torch.Tensor) -> None:
        """Move every row past its emitted token (picked from `apply`'s logits): a `<loc>` between objects opens
        one, its last token closes it."""
        if self.is_loc is None:
            raise RuntimeError("ShapeConstraint.advance before apply: the token tables are built from the logits")
        opens = (self.pos == 0) & (self.locs > 0) & self.is_loc[tokens]
        pos = torch.where(self.pos > 0, self.pos + 1, opens.long())
        self.pos = torch.where(pos >= self.locs + self.segs + self.label, 0, pos)
        self.started = True
