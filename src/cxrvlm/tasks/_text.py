"""Text pieces the task modules share: label <-> phrase, answer normalisation, output checks, severity bins,
prior-interval wording, and building an `Example` from a study's views.

Severity bins (Cohen et al. 2020 scores, mean of three radiologists, summed over both lungs):
- geographic extent 0-8 (per lung 0 none, 1 <25%, 2 25-50%, 3 50-75%, 4 >75% involved):
  none < 0.5 <= mild < 3 <= moderate < 5 <= severe   (i.e. per lung: < 0.25, < 1.5, < 2.5, >= 2.5)
- opacity 0-6 (per lung 0 none, 1 ground glass, 2 consolidation, 3 white-out):
  none < 0.5 <= mild < 2 <= moderate < 4 <= severe   (i.e. per lung: < 0.25, < 1, < 2, >= 2)
"""
from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from cxrvlm.examples import Example
from cxrvlm.records import LABELS, Box, Report, Study, View, load_mask
from cxrvlm.tokens.seg import mask_box, split_lungs

# Model output longer than this is not an answer but a runaway generation.
MAX_ANSWER_CHARS = 500
MAX_REPORT_CHARS = 20_000
SPECIAL_TOKEN_RE = re.compile(r"<(?:loc\d{4}|seg\d{3})>")
# U+FFFD is not refused: real source text holds it where the original encoding was lost ("39.6\ufffdC").
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_PUNCT_RE = re.compile(r"[^\w\s\-+/]")  # keep hyphens (covid-19), plus and slash; drop the rest

SEVERITY_LEVELS = ("none", "mild", "moderate", "severe")
SEVERITY_EDGES = {"geographic_extent": (0.5, 3.0, 5.0), "opacity": (0.5, 2.0, 4.0)}
SEVERITY_RANGE = {"geographic_extent": 8.0, "opacity": 6.0}
_SCORE_ALIASES = {"geographic_extent": ("geographic_extent", "geographic_extent_mean"),
                  "opacity": ("opacity", "opacity_mean")}

# Diagnoses that imply a broader one (torchxrayvision's COVID hierarchy): the narrowest is the diagnosis to name.
PARENT = {
    "COVID-19": "Viral Pneumonia", "SARS": "Viral Pneumonia", "Influenza": "Viral Pneumonia",
    "Varicella": "Viral Pneumonia", "MERS-CoV": "Viral Pneumonia", "Herpes": "Viral Pneumonia",
    "Viral Pneumonia": "Pneumonia", "Bacterial Pneumonia": "Pneumonia", "Fungal Pneumonia": "Pneumonia",
    "Pneumocystis": "Fungal Pneumonia", "Aspergillosis": "Fungal Pneumonia",
    "Streptococcus": "Bacterial Pneumonia", "Klebsiella": "Bacterial Pneumonia", "Legionella": "Bacterial Pneumonia",
    "E.Coli": "Bacterial Pneumonia", "Staphylococcus": "Bacterial Pneumonia", "Mycoplasma": "Bacterial Pneumonia",
    "Chlamydophila": "Bacterial Pneumonia", "Nocardia": "Bacterial Pneumonia", "Lipoid": "Pneumonia",
}
NO_FINDING = "No Finding"
ANATOMY = ("right lung", "left lung", "lung", "lungs", "heart", "trachea")


def normalise(text: str) -> str:
    """Lower case, punctuation dropped (hyphens kept), whitespace collapsed: "  COVID-19. " -> "covid-19"."""
    text = _PUNCT_RE.sub(" ", str(text).lower())
    return " ".join(text.split()).strip("-/+ ")


def phrase(label: str) -> str:
    """Label name -> the phrase used in prompts and answers ("Pleural Effusion" -> "pleural effusion")."""
    return normalise(label)


def vocabulary_order(labels: Iterable[str]) -> list[str]:
    """Labels in the shared vocabulary's order, then the others alphabetically (a stable order per source)."""
    index = {name: i for i, name in enumerate(LABELS)}
    return sorted(set(labels), key=lambda n: (index.get(n, len(index)), n.lower()))


def is_anatomy(label: str) -> bool:
    return phrase(label) in ANATOMY


def leaf_positives(study: Study) -> list[str]:
    """Positive labels that no other positive label narrows (COVID-19 rather than Viral Pneumonia), in vocabulary
    order; "No Finding" only when nothing else is positive."""
    pos = [k for k in study.positive_labels() if k != NO_FINDING]
    implied = set()
    for name in pos:
        parent = PARENT.get(name)
        while parent is not None and parent not in implied:
            implied.add(parent)
            parent = PARENT.get(parent)
    leaves = vocabulary_order(k for k in pos if k not in implied)
    if not leaves and study.labels.get(NO_FINDING) == 1.0:
        return [NO_FINDING]
    return leaves


def known_negatives(study: Study) -> list[str]:
    """Labels the data says are absent (0.0), vocabulary order, "No Finding" excluded."""
    return vocabulary_order(k for k, v in study.labels.items() if v == 0.0 and k != NO_FINDING)


def join_words(items: Sequence[str], conjunction: str = "and") -> str:
    """["a", "b", "c"] -> "a, b and c"."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def check_output(text: Any, max_chars: int = MAX_ANSWER_CHARS, allow_special: bool = False) -> str:
    """Why model text is malformed as a plain-text answer ("" when it is fine)."""
    if not isinstance(text, str):
        return f"output is a {type(text).__name__}, not text"
    if not text.strip():
        return "empty output"
    if len(text) > max_chars:
        return f"output is {len(text)} characters, longer than the {max_chars} an answer can be"
    if _CONTROL_RE.search(text):
        return "output contains control characters"
    if not allow_special and SPECIAL_TOKEN_RE.search(text):
        return "output contains location/segmentation tokens where plain text was expected"
    return ""


def output_warning(task: str, reason: str, text: str) -> str:
    """A reading's warning for a malformed model output, the output shown (cut at 80 characters)."""
    shown = text if len(text) <= 80 else text[:77] + "..."
    return f"{task}: {reason or 'malformed output'} (output: {shown!r})"


def get_score(study: Study, name: str) -> float | None:
    """A severity score of the study ("geographic_extent" or "opacity"), None when absent or not finite."""
    for key in _SCORE_ALIASES[name]:
        value = study.scores.get(key)
        if value is not None and math.isfinite(float(value)):
            return float(value)
    return None


def severity_level(name: str, value: float) -> str:
    """Score -> none/mild/moderate/severe with the bins in the module docstring."""
    low, mid, high = SEVERITY_EDGES[name]
    if value < low:
        return "none"
    if value < mid:
        return "mild"
    return "moderate" if value < high else "severe"


def interval_phrase(days: float) -> str:
    """Prior interval -> "the prior study from 12 days earlier" (same day / 1 day handled)."""
    n = int(round(abs(float(days))))
    if n == 0:
        return "the prior study from the same day"
    return f"the prior study from {n} day{'s' if n != 1 else ''} earlier"


def report_text(report: Report) -> str:
    """The answer text of a report: "Findings: ... Impression: ..." for a radiology report, the plain text for case
    notes (which are not a findings section: history, course and imaging mixed)."""
    if report.kind == "case_notes":
        return " ".join(p.strip() for p in (report.findings, report.impression) if p.strip())
    return report.text


def view_boxes(view: View) -> list[Box]:
    """The boxes drawn on the view; where it has none, the tight boxes of the two lungs of its lung mask, so every
    masked view also teaches detection and grounding (the box of a mask is exact, not an annotation guess)."""
    if view.boxes:
        return list(view.boxes)
    ref = next((r for k, r in view.masks.items() if phrase(k) in ("lungs", "lung")), None)
    if ref is None:
        return []
    try:
        mask = load_mask(ref, view.size)
    except (ValueError, OSError) as e:
        logging.getLogger(__name__).warning("%s: lung mask unreadable, no boxes from it: %s", view.image_id, e)
        return []
    h, w = mask.shape
    sides = split_lungs(mask)
    boxes = [(side, mask_box(sides[side])) for side in ("right lung", "left lung") if side in sides]
    return [Box.from_pixels(side, *box, width=w, height=h) for side, box in boxes if box is not None]


def usable_views(study: Study) -> list[View]:
    """Views with a file path (the only ones an example can point to)."""
    return [v for v in study.views if v.path]


def first_frontal(study: Study | None) -> View | None:
    """The first frontal (or unspecified) view with a path."""
    if study is None:
        return None
    return next((v for v in study.views if v.path and v.is_frontal), None)


def first_lateral(study: Study) -> View | None:
    return next((v for v in study.views if v.path and v.view_position == "LATERAL"), None)


def make_example(task: str, study: Study, views: Sequence[View], prefix: str, suffix: str,
                 target: dict[str, Any], meta: dict[str, Any] | None = None,
                 prior_views: Sequence[View] = ()) -> Example:
    """An Example over `views` of the study then `prior_views` of its prior, with view facts in meta."""
    meta = dict(meta or {})
    meta["view_positions"] = [v.view_position for v in views]
    meta["image_ids"] = [v.image_id for v in views]
    if prior_views:
        meta["prior_view_positions"] = [v.view_position for v in prior_views]
        meta["prior_image_ids"] = [v.image_id for v in prior_views]
        meta["prior_study_id"] = study.prior.study_id if study.prior is not None else None
        meta["prior_interval_days"] = study.prior_interval_days
    return Example(task=task, images=[str(v.path) for v in (*views, *prior_views)], prefix=prefix, suffix=suffix,
                   study_id=study.study_id, patient_id=study.patient_id, source=study.source,
                   target=target, meta=meta)


# A change in the geographic extent score (0-8, mean of three readers) of at least one point is a change in
# extent; smaller differences are within the readers' disagreement and count as "stayed the same".
CHANGE_THRESHOLD = 1.0
CHANGE_ANSWERS = ("worsened", "improved", "stayed the same")


def opacity_change(study: Study) -> str | None:
    """worsened / improved / stayed the same, from the geographic extent of this study and its prior; None when
    either score or the interval is missing."""
    if study.prior is None or study.prior_interval_days is None:
        return None
    now, before = get_score(study, "geographic_extent"), get_score(study.prior, "geographic_extent")
    if now is None or before is None:
        return None
    delta = now - before
    if delta >= CHANGE_THRESHOLD:
        return "worsened"
    if delta <= -CHANGE_THRESHOLD:
        return "improved"
    return "stayed the same"
