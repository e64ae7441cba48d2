"""Canonical records: every source adapter turns its dataset layout into these.

A `Study` is one imaging session of one patient: one or more `View`s (frontal, lateral), optional prior study,
study-level labels, report and question/answer pairs. Boxes and masks belong to the `View` they were drawn on
(a lateral view has its own geometry), so they live on `View`, not on `Study`.

Conventions:
- labels: `dict[str, float]`, 1.0 positive, 0.0 negative, NaN unknown (as torchxrayvision does); names from
  `LABELS` where one fits, so labels line up across datasets.
- boxes: normalised `x1, y1, x2, y2` in [0, 1] of the view's image (x to the right, y down).
- masks: label -> `MaskRef` (a path to a binary image file, an in-memory bool array, or a COCO RLE dict).
- organ: `Study.meta["organ"]` names the body part where a source holds images of others ("head", "abdomen" in
  VQA-RAD); absent means a chest film (`Study.organ`), and curation leaves other organs out unless asked.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cxrvlm.tokens.rle import rle_decode

# Label vocabulary shared across sources (torchxrayvision / CheXpert spelling), plus TB and COVID-19.
CHEXPERT_14 = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture",
    "Support Devices",
)
EXTRA_LABELS = (
    "Tuberculosis", "COVID-19", "Infiltration", "Mass", "Nodule", "Emphysema", "Fibrosis", "Pleural Thickening",
    "Hernia", "Aortic Enlargement", "Calcification", "ILD", "Lung Cyst", "Mediastinal Shift", "Other Lesion",
    "Lung Cavity", "Rib Fracture", "Clavicle Fracture", "Bronchiectasis", "COPD", "Lung Tumor", "Pneumocystis",
    "Bacterial Pneumonia", "Viral Pneumonia", "Fungal Pneumonia",
)
LABELS = CHEXPERT_14 + EXTRA_LABELS
VIEW_POSITIONS = ("PA", "AP", "LATERAL")
FRONTAL = ("PA", "AP")
CHEST = "chest"


def normalise_view_position(value: str | None) -> str | None:
    """Map the spellings datasets use ("PA", "AP Supine", "L", "LL", "lateral") to PA / AP / LATERAL / None."""
    if not value:
        return None
    v = str(value).strip().upper()
    if v.startswith("PA"):
        return "PA"
    if v.startswith("AP"):
        return "AP"
    if v in ("L", "LL", "RL", "LAT", "LATERAL") or v.startswith("LAT"):
        return "LATERAL"
    return None


@dataclass
class Box:
    """One labelled box, normalised x1, y1, x2, y2 in [0, 1]."""

    label: str
    x1: float
    y1: float
    x2: float
    y2: float

    def __post_init__(self) -> None:
        for name in ("x1", "y1", "x2", "y2"):
            v = float(getattr(self, name))
            if not (math.isfinite(v) and -1e-6 <= v <= 1 + 1e-6):
                raise ValueError(f"box {self.label!r}: {name}={v} is not a normalised coordinate in [0, 1]")
            setattr(self, name, min(max(v, 0.0), 1.0))
        if self.x2 < self.x1 or self.y2 < self.y1:
            raise ValueError(f"box {self.label!r}: x2/y2 smaller than x1/y1 ({self.as_tuple()})")

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)

    @classmethod
    def from_pixels(cls, label: str, x1: float, y1: float, x2: float, y2: float, width: int, height: int) -> Box:
        """Box from pixel corners, clipped to the image."""
        if width <= 0 or height <= 0:
            raise ValueError(f"box {label!r}: image size {width}x{height} is not positive")
        clip = lambda v, n: min(max(float(v) / n, 0.0), 1.0)  # noqa: E731
        return cls(label, clip(x1, width), clip(y1, height), clip(x2, width), clip(y2, height))

    def to_pixels(self, width: int, height: int) -> tuple[float, float, float, float]:
        return (self.x1 * width, self.y1 * height, self.x2 * width, self.y2 * height)


# A mask is a path to a binary image (nonzero = inside), a bool array H x W, or a COCO RLE dict.
MaskRef = Any


@dataclass
class View:
    """One image of a study. `path` or `pixels` (float32 H x W in [0, 1]) gives the image."""

    image_id: str
    path: str | None = None
    pixels: np.ndarray | None = None
    view_position: str | None = None  # PA / AP / LATERAL / None when the source does not say
    size: tuple[int, int] | None = None  # (height, width) in pixels, where known without reading the file
    boxes: list[Box] = field(default_factory=list)
    masks: dict[str, MaskRef] = field(default_factory=dict)

    @property
    def is_frontal(self) -> bool:
        return self.view_position in FRONTAL or self.view_position is None


@dataclass
class Report:
    """Report text. `kind` says what it really is: a radiology "report", "case_notes", or "templated"."""

    findings: str = ""
    impression: str = ""
    kind: str = "report"

    @property
    def text(self) -> str:
        parts = []
        if self.findings.strip():
            parts.append(f"Findings: {self.findings.strip()}")
        if self.impression.strip():
            parts.append(f"Impression: {self.impression.strip()}")
        return " ".join(parts)

    def __bool__(self) -> bool:
        return bool(self.findings.strip() or self.impression.strip())


@dataclass
class QA:
    """A question/answer pair that came with the data. `closed` when the answer is from a fixed set."""

    question: str
    answer: str
    closed: bool = False
    view: int = 0  # which view of the study the question is about
    meta: dict[str, Any] = field(default_factory=dict)  # what the source says of it: id, type, official split


@dataclass
class Study:
    study_id: str
    patient_id: str
    source: str
    licence: str
    views: list[View] = field(default_factory=list)
    labels: dict[str, float] = field(default_factory=dict)
    report: Report | None = None
    qa: list[QA] = field(default_factory=list)
    prior: Study | None = None
    prior_interval_days: float | None = None  # days between the prior study and this one
    scores: dict[str, float] = field(default_factory=dict)  # e.g. severity: geographic_extent (0-8), opacity (0-6)
    meta: dict[str, Any] = field(default_factory=dict)  # age, sex, offset, source-specific extras

    @property
    def images(self) -> list[View]:
        """DESIGN.md name for the views."""
        return self.views

    @property
    def organ(self) -> str:
        """The body part imaged: `meta["organ"]` where the source says, else "chest"."""
        return str(self.meta.get("organ") or CHEST).lower()

    def frontal(self) -> View | None:
        """The first frontal (or unspecified) view, else None."""
        return next((v for v in self.views if v.is_frontal), None)

    def lateral(self) -> View | None:
        return next((v for v in self.views if v.view_position == "LATERAL"), None)

    def positive_labels(self) -> list[str]:
        return [k for k, v in self.labels.items() if v == 1.0]

    def known_labels(self) -> dict[str, float]:
        return {k: v for k, v in self.labels.items() if not (isinstance(v, float) and math.isnan(v))}


def load_mask(ref: MaskRef, size: tuple[int, int] | None = None) -> np.ndarray:
    """A mask reference -> bool H x W. `size` (H, W) is needed for RLE without a size and checked otherwise."""
    if isinstance(ref, np.ndarray):
        mask = ref.astype(bool)
    elif isinstance(ref, dict):
        mask = rle_decode(ref)
    elif isinstance(ref, (str, Path)):
        path = Path(ref)
        if not path.is_file():
            raise ValueError(f"{path}: mask file is missing")
        with Image.open(path) as im:
            mask = np.asarray(im.convert("L")) > 127
    else:
        raise ValueError(f"mask reference of type {type(ref).__name__} is not a path, array or RLE dict")
    if size is not None and tuple(mask.shape) != tuple(size):
        raise ValueError(f"mask size {mask.shape} does not match its image size {tuple(size)}")
    return mask
