"""What location and segmentation tokens an answer may hold, so greedy decoding can keep to it.

A task declares its `answer_shape` (`cxrvlm.tasks.Task`); generation (`BackendMixin.generate(answer_shapes=...)`) then never emits
an answer the task's parser must reject for its token structure: a box of three `<loc>` tokens, a mask of 30 codes,
a report with coordinates in it. Each object of a shaped answer is `locs` `<locNNNN>` tokens, then `segs`
`<segNNN>` tokens, then (with `label`) at least one text token; the answer starts with an object and
is free text between objects. A shape with `locs == 0` is a plain-text answer: no `<loc>` and no `<seg>` token.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AnswerShape:
    locs: int = 0
    segs: int = 0
    label: bool = True  # each object ends in a text label (detection, segmentation), not in <eos> (grounding)

    def __post_init__(self) -> None:
        if self.locs < 0 or self.segs < 0 or (self.segs and not self.locs):
            raise ValueError(f"AnswerShape: needs locs >= 0, segs >= 0 and no segs without locs, got {self}")


TEXT = AnswerShape()
BOXES = AnswerShape(locs=4)
BOX_ONLY = AnswerShape(locs=4, label=False)
BOXES_AND_MASKS = AnswerShape(locs=4, segs=16)
