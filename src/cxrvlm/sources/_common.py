"""Small readers and conventions shared by the source adapters.

Row numbers in messages are 1-based lines of the file (the CSV header is line 1), so a user can open the file at
the line named in an error.
"""
from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from cxrvlm.records import Study, View

# Region names are lower case, as prompts use them ("detect right lung ; left lung", "segment lungs").
LUNGS = "lungs"  # one mask holding both lungs
RIGHT_LUNG = "right lung"  # the patient's right, shown on the image's left
LEFT_LUNG = "left lung"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".bmp")
_MISSING = {"", "na", "nan", "none", "null", "n/a"}


def read_csv(path: str | Path, required: Sequence[str] = ()) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) of a CSV with a header; ValueError naming the file and the missing columns.

    Values are stripped strings ("" where a cell is empty). The file is read as UTF-8 (a BOM is dropped).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: CSV file not found")
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            raise ValueError(f"{path}: empty CSV file (no header)")
        missing = [c for c in required if c not in reader.fieldnames]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(reader.fieldnames)}")
        for row in reader:
            # reader.line_num is the last physical line read, so multi-line quoted cells still point inside the row
            yield reader.line_num, {k: (v or "").strip() for k, v in row.items() if k is not None}


def read_jsonl(path: str | Path, skip: Callable[[str, str], None]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) of a JSON-lines file; a malformed line is passed to `skip` and the rest read."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: JSON-lines file not found")
    with path.open(encoding="utf-8-sig") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                skip(f"{path.name} line {n}", f"not valid JSON ({e.msg} at column {e.colno})")
                continue
            if not isinstance(obj, dict):
                skip(f"{path.name} line {n}", f"expected a JSON object, got {type(obj).__name__}")
                continue
            yield n, obj


def parse_float(value: Any, what: str = "value") -> float:
    """A number from a cell; empty / NA -> NaN; ValueError naming `what` otherwise."""
    if value is None or (isinstance(value, str) and value.strip().lower() in _MISSING):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: {value!r} is not a number") from None


def parse_label(value: Any, what: str = "label") -> float:
    """A label cell -> 1.0 / 0.0 / NaN. Accepts 1/0, 1.0/0.0, true/false, yes/no, positive/negative;
    empty and -1 (CheXpert's "uncertain") give NaN."""
    if isinstance(value, bool):
        return float(value)
    text = "" if value is None else str(value).strip().lower()
    if text in _MISSING or text in ("-1", "-1.0", "uncertain"):
        return math.nan
    if text in ("1", "1.0", "true", "yes", "y", "positive", "pos"):
        return 1.0
    if text in ("0", "0.0", "false", "no", "n", "negative", "neg"):
        return 0.0
    raise ValueError(f"{what}: {value!r} is not a label (expected 1, 0, -1 or empty)")


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file, read from its header only; ValueError naming the file when unreadable."""
    try:
        with Image.open(path) as im:
            width, height = im.size
    except (OSError, UnidentifiedImageError) as e:
        raise ValueError(f"{path}: cannot read the image size ({e})") from None
    return height, width


def find_image(folder: str | Path, stem: str, extensions: Iterable[str] = IMAGE_EXTENSIONS) -> Path | None:
    """The file `folder/stem.<ext>` for the first extension that exists (lower- or upper-case), else None."""
    folder = Path(folder)
    for ext in extensions:
        for candidate in (folder / f"{stem}{ext}", folder / f"{stem}{ext.upper()}"):
            if candidate.is_file():
                return candidate
    return None


# Shenzhen (CHNCXR_0001_0) and Montgomery (MCUCXR_0001_0) file names: set, patient number, label suffix.
_NLM_NAME = re.compile(r"^(CHNCXR|MCUCXR)_(\d+)(?:_([01]))?$", re.IGNORECASE)


def nlm_patient_id(image_id: str) -> str | None:
    """Patient id shared by every adapter that holds a Shenzhen or Montgomery image, else None.

    The same patient appears in several redistributions (the originals, TBX11K's extra set, the lung-mask set), so
    every adapter names them alike — "shenzhen:CHNCXR_0002" for "CHNCXR_0002_0.png" — and patient-level splits
    keep the copies together.
    """
    m = _NLM_NAME.match(Path(image_id).stem if "." in image_id else image_id)
    if not m:
        return None
    prefix = m.group(1).upper()
    dataset = "shenzhen" if prefix == "CHNCXR" else "montgomery"
    return f"{dataset}:{prefix}_{m.group(2)}"


def nlm_tb_label(image_id: str) -> float:
    """The label carried by a Shenzhen/Montgomery file name: suffix _1 = tuberculosis, _0 = normal, else NaN."""
    m = _NLM_NAME.match(Path(image_id).stem if "." in image_id else image_id)
    if not m or m.group(3) is None:
        return math.nan
    return float(m.group(3))


def frontal_first(views: list[View]) -> list[View]:
    """The views with frontal (and unspecified) ones first, otherwise in their original order."""
    return sorted(views, key=lambda v: 0 if v.is_frontal else 1)


def link_priors(timeline: list[tuple[float, Study]]) -> None:
    """Link each study of ONE patient to the immediately earlier one. `timeline`: (time in days, study) pairs.

    Sets `prior` and `prior_interval_days` (> 0) in place; studies at equal times are not linked to each other.
    """
    ordered = sorted(timeline, key=lambda t: t[0])
    for (t0, earlier), (t1, later) in zip(ordered, ordered[1:]):
        if t1 > t0:
            later.prior = earlier
            later.prior_interval_days = float(t1 - t0)


# Open-i / IU X-ray MeSH-style major terms (the part before the first "/") -> label names of cxrvlm.records.LABELS.
# Only terms that name one of our labels; anatomy words (Lung, Spine), granulomas and bone changes have no label.
MESH_TO_LABELS: dict[str, tuple[str, ...]] = {
    "Cardiomegaly": ("Cardiomegaly",),
    "Pulmonary Atelectasis": ("Atelectasis",),
    "Pleural Effusion": ("Pleural Effusion",),
    "Opacity": ("Lung Opacity",),
    "Airspace Disease": ("Lung Opacity",),
    "Infiltrate": ("Infiltration",),
    "Consolidation": ("Consolidation",),
    "Pneumonia": ("Pneumonia",),
    "Pneumothorax": ("Pneumothorax",),
    "Hydropneumothorax": ("Pneumothorax", "Pleural Effusion"),
    "Pulmonary Edema": ("Edema",),
    "Pulmonary Congestion": ("Edema",),  # CheXpert counts vascular congestion as edema
    "Nodule": ("Nodule",),
    "Mass": ("Mass",),
    "Emphysema": ("Emphysema",),
    "Pulmonary Emphysema": ("Emphysema",),
    "Bullous Emphysema": ("Emphysema",),
    "Pulmonary Fibrosis": ("Fibrosis",),
    "Fractures, Bone": ("Fracture",),
    "Hernia, Hiatal": ("Hernia",),
    "Hernia, Diaphragmatic": ("Hernia",),
    "Pulmonary Disease, Chronic Obstructive": ("COPD",),
    "Lung Diseases, Interstitial": ("ILD",),
    "Tuberculosis": ("Tuberculosis",),
    "Bronchiectasis": ("Bronchiectasis",),
    "Cavitation": ("Lung Cavity",),
    "Cysts": ("Lung Cyst",),
    "Calcinosis": ("Calcification",),
    "Catheters, Indwelling": ("Support Devices",),
    "Tube, Inserted": ("Support Devices",),
    "Implanted Medical Device": ("Support Devices",),
    "Medical Device": ("Support Devices",),
    "Stents": ("Support Devices",),
}


def mesh_labels(terms: Iterable[str]) -> dict[str, float]:
    """Positive labels named by MeSH-style terms ("Cardiomegaly/mild", "normal"); other labels stay unknown.

    "normal" gives "No Finding" = 1; any mapped finding other than a support device gives "No Finding" = 0.
    """
    labels: dict[str, float] = {}
    heads = [str(t).split("/")[0].strip() for t in terms]
    for head in heads:
        for name in MESH_TO_LABELS.get(head, ()):
            labels[name] = 1.0
    if any(name != "Support Devices" for name in labels):
        labels["No Finding"] = 0.0
    elif any(h.lower() == "normal" for h in heads):
        labels["No Finding"] = 1.0
    return labels
