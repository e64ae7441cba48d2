"""Helpers for curation tests: images and studies built in the test, a fake source and a fake task."""
from __future__ import annotations

import random
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from cxrvlm.records import Box, Report, Study, View
from cxrvlm.tasks import Task
from cxrvlm.tokens.shape import TEXT
from cxrvlm.sources.base import Source
from cxrvlm.examples import Example, Prediction
from cxrvlm.tokens.loc import LOC_RE, decode_locs, encode_box


def write_png(path: Path, seed: int, size: tuple[int, int] = (48, 40), **save: object) -> str:
    """A random 8-bit grayscale PNG (distinct content per seed); returns its path."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=size, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode="L").save(path, **save)
    return str(path)


def make_study(folder: Path, study_id: str, patient_id: str, source: str = "fake", seed: int | None = None,
               n_views: int = 1, label: float | None = 1.0, boxes: bool = False) -> Study:
    """A study with `n_views` new PNGs under folder (content from `seed`, default: from the study id)."""
    base = seed if seed is not None else zlib.crc32(study_id.encode()) % 100_000
    views = []
    for i in range(n_views):
        path = write_png(folder / f"{study_id.replace(':', '_')}_{i}.png", base * 10 + i)
        view = View(image_id=f"{study_id}_{i}", path=path, view_position="PA" if i == 0 else "LATERAL",
                    size=(48, 40))
        if boxes:
            view.boxes = [Box("right lung", 0.1, 0.1, 0.45, 0.9), Box("left lung", 0.55, 0.1, 0.9, 0.9)]
        views.append(view)
    labels = {} if label is None else {"Tuberculosis": label, "No Finding": 1.0 - label}
    return Study(study_id=study_id, patient_id=patient_id, source=source, licence="test", views=views,
                 labels=labels)


def text_study(study_id: str, text: str = "The lungs are clear.") -> Study:
    return Study(study_id=study_id, patient_id=study_id, source="faketext", licence="test",
                 report=Report(findings=text), meta={"image_ids": []})


class FakeSource(Source):
    """Yields the studies put in `STUDIES[root]`; skips nothing unless told."""

    name = "fake"
    licence = "test"
    citation = "none"
    STUDIES: dict[str, list[Study]] = {}
    SKIPS: dict[str, list[tuple[str, str]]] = {}

    def _studies(self) -> Iterator[Study]:
        for item, reason in self.SKIPS.get(str(self.root), []):
            self.skip(item, reason)
        yield from self.STUDIES.get(str(self.root), [])


def _fake_format(study: Study, rng: random.Random) -> list[Example]:
    """classify-like: one example per study with a Tuberculosis label, answer from the label; a detect-like example
    for views with boxes; raises on a study whose id contains "boom" (to test failure handling)."""
    if "boom" in study.study_id:
        raise RuntimeError("cannot format this study")
    if not study.views or "Tuberculosis" not in study.labels:
        return []
    view = study.views[0]
    answer = "tuberculosis" if study.labels["Tuberculosis"] == 1.0 else "normal"
    common = dict(study_id=study.study_id, patient_id=study.patient_id, source=study.source)
    out = [Example("fake", [p.path for p in study.views], "diagnosis?", answer,
                   target={"label": answer, "r": rng.random()}, **common)]
    if view.boxes:
        suffix = " ; ".join(f"{encode_box(*b.as_tuple())} {b.label}" for b in view.boxes)
        out.append(Example("fake", [view.path], "detect right lung ; left lung", suffix, **common))
    return out


def _fake_parse(text: str, image_size: tuple[int, int] | None = None) -> Prediction:
    boxes = []
    for fragment in text.split(";"):
        locs = [int(t) for t in LOC_RE.findall(fragment)]
        if len(locs) == 4:
            boxes.append((LOC_RE.sub("", fragment).strip(), decode_locs(locs)))
    return Prediction("fake", text=text, boxes=boxes, label=text.strip())


FAKE_TASK = Task(name="fake", format=_fake_format, parse=_fake_parse, metric=lambda **_: None, max_new_tokens=8,
                 headline=(), answer_shape=TEXT, coordinates=True)
