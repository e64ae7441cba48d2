"""Rule-based labeler of the 14 CheXpert observations in a radiology report (CheXpert / NegBio style).

    label_report("Mild cardiomegaly. No pleural effusion. Possible left basilar atelectasis.")
    -> {"Cardiomegaly": 1.0, "Pleural Effusion": 0.0, "Atelectasis": -1.0, "No Finding": nan, "Edema": nan, ...}

Per observation: 1 positive, 0 negative, -1 uncertain, NaN not mentioned. How (phrase lists in `chexpert_phrases`):
1. the report is lower-cased, hyphens become spaces, and it is split into sentences (and at ";" / ":");
2. mentions are found by phrase (FINDINGS), minus phrases that only look like one (UNMENTION: "calcified nodule");
   size words decide anatomy mentions (ANATOMY: "heart size is normal" -> 0, "enlarged" -> 1, "borderline" -> -1);
3. each mention is classified in its scope, the sentence cut at words that start another statement (SCOPE_BREAK:
   "but", "however", "there is", "and the", ...): "cannot exclude X" / "X is not excluded" -> -1; a negation cue
   before it ("no", "without", "negative for", "free of", "clear of", "resolution of", ...) or after it ("is not
   seen", "has resolved", "removed") -> 0; an uncertainty cue before it ("may", "possible", "likely", "suggest",
   "versus", "concern for", ...), "X or Y", or after it ("is possible", "?") -> -1; else 1;
4. mentions are aggregated as CheXpert does: any 1 -> 1, else any -1 -> -1, else 0; "heart failure"/"CHF" adds an
   uncertain Cardiomegaly mention; No Finding is 1 when no observation but Support Devices is 1 or -1 and no other
   abnormality (OTHER_FINDINGS: emphysema, scoliosis, granuloma, ...) is mentioned positively, else NaN.

Validated against the Open-i curators' MeSH tags with `validate_against_openi` (run
`cxrvlm label-reports --openi PATH/reports.jsonl`; see that function for the tag mapping). On
the 2,648 indexed Open-i reports with text, uncertain counted positive: micro F1 0.906 (precision 0.860, recall
0.958); per label F1 Cardiomegaly 0.98, Support Devices 0.96, No Finding 0.94, Lung Opacity 0.93, Pleural Effusion
0.92, Atelectasis 0.90, Consolidation 0.88, Pneumothorax 0.87, Pleural Other 0.85, Fracture 0.84, Edema 0.75, Lung
Lesion 0.68, Enlarged Cardiomediastinum 0.61, Pneumonia 0.45 (the curators tag the opacity, not a suspected
pneumonia). Uncertain counted negative: micro F1 0.903.
"""
from __future__ import annotations

import functools
import json
import logging
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from cxrvlm.metrics import chexpert_phrases as P
from cxrvlm.metrics.common import div, f1_from_counts
from cxrvlm.records import CHEXPERT_14

log = logging.getLogger(__name__)

NO_FINDING, SUPPORT_DEVICES = "No Finding", "Support Devices"


def _rx(patterns: Iterable[str]) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(f"(?:{p})" for p in patterns) + r")\b")


@functools.lru_cache(maxsize=1)
def _compiled() -> dict[str, object]:
    """The phrase lists compiled once (a pure function of the constants in chexpert_phrases)."""
    return {
        "findings": {k: _rx(v) for k, v in P.FINDINGS.items()},
        "uncertain_findings": {k: _rx(v) for k, v in P.FINDINGS_UNCERTAIN.items()},
        "anatomy": {k: tuple(_rx([p]) for p in v) for k, v in P.ANATOMY.items()},
        "unmention": {k: _rx(v) for k, v in P.UNMENTION.items()},
        "other": _rx(P.OTHER_FINDINGS),
        "unc_first": re.compile(P.UNCERTAIN_FIRST), "pseudo": re.compile(P.PSEUDO_NEGATION),
        "neg_pre": re.compile(P.NEGATION_PRE), "neg_post": re.compile(P.NEGATION_POST),
        "unc_pre": re.compile(P.UNCERTAIN_PRE), "unc_post": re.compile(P.UNCERTAIN_POST),
        "or_before": re.compile(P.UNCERTAIN_OR_BEFORE), "scope": re.compile(P.SCOPE_BREAK),
        "post_break": re.compile(P.POST_BREAK), "anatomy_break": re.compile(P.ANATOMY_BREAK),
    }


def sentences(text: str) -> list[str]:
    """Lower-cased sentences / clauses of a report, hyphens as spaces (so "air-space" matches "air space")."""
    t = re.sub(r"(?<=\w)[-/](?=\w)", " ", (text or "").lower())
    t = re.sub(r"\bvs\.", "vs", t)
    t = re.sub(r"(?<=[a-z])\.(?=[a-z]{2})", ". ", t)  # "apex.there" -> two sentences
    t = re.sub(r"(?<!\S)\d+\.(?=\s)", ". ", t)  # list numbers "1. " end the previous sentence
    parts = re.split(r"\.+(?=\s|$)|[!;:\n]", t)
    return [" ".join(p.split()) for p in parts if p and p.strip()]


def _mask(text: str, rx: re.Pattern[str]) -> str:
    """Blank out matches of rx, keeping offsets (so cues inside pseudo-negations are not seen)."""
    return rx.sub(lambda m: " " * len(m.group(0)), text)


def _scope_before(clause: str, start: int) -> str:
    """The clause text before a mention, from the last scope break on."""
    before = clause[:start]
    breaks = list(_compiled()["scope"].finditer(before))
    return before[breaks[-1].end():] if breaks else before


def _scope_after(clause: str, end: int, limit: int = 60) -> str:
    after = clause[end:end + limit]
    m = _compiled()["post_break"].search(after)
    return after[:m.start()] if m else after


def classify(clause: str, start: int, end: int) -> float:
    """1 / 0 / -1 for the mention clause[start:end] (see the module docstring, step 3)."""
    c = _compiled()
    masked = _mask(clause, c["pseudo"])
    before, inside = _scope_before(masked, start), masked[start:end]
    after = _scope_after(masked, end)
    if c["unc_first"].search(before + inside) or c["unc_first"].search(inside + after):
        return -1.0
    if c["neg_pre"].search(before) or c["neg_pre"].search(inside) or c["neg_post"].search(after):
        return 0.0
    if (c["unc_pre"].search(before) or c["unc_pre"].search(inside) or c["unc_post"].search(after)
            or c["or_before"].search(before)):
        return -1.0
    return 1.0


def _anatomy_mentions(clause: str, label: str) -> list[float]:
    """Labels from size words beside anatomy ("heart size is normal" -> 0; "enlarged heart" -> 1)."""
    anatomy, abnormal, uncertain, normal = _compiled()["anatomy"][label]
    out = []
    for m in anatomy.finditer(clause):
        after = clause[m.end():m.end() + 80]
        cut = _compiled()["anatomy_break"].search(after)
        after = after[:cut.start()] if cut else after
        hits = [(q.start(), kind, q) for kind, rx in (("u", uncertain), ("n", normal), ("a", abnormal))
                for q in rx.finditer(after)]
        adjacent = re.search(r"(?:" + abnormal.pattern + r")\s+(?:of (?:the )?|\w+\s+)?$", clause[:m.start()])
        if hits:
            _, kind, q = min(hits, key=lambda h: (h[0], "una".index(h[1])))
            if kind == "u":
                out.append(-1.0 if classify(clause, m.start(), m.end() + q.end()) != 0.0 else 0.0)
            elif kind == "n":
                out.append(0.0)
            else:
                out.append(classify(clause, m.start(), m.end() + q.end()))
        elif adjacent:
            out.append(classify(clause, adjacent.start(), m.end()))
        elif re.search(r"(?:" + uncertain.pattern + r")\s+$", clause[:m.start()]):  # "borderline heart size"
            out.append(-1.0)
    return out


def _mentions(clause: str, label: str) -> list[float]:
    c = _compiled()
    unmention = c["unmention"].get(label)
    blocked = [(u.start(), u.end()) for u in unmention.finditer(clause)] if unmention else []
    out = []
    for rx_key, cap in (("findings", 1.0), ("uncertain_findings", -1.0)):
        rx = c[rx_key].get(label)
        for m in rx.finditer(clause) if rx else ():
            if any(s <= m.start() and m.end() <= e for s, e in blocked):
                continue
            v = classify(clause, m.start(), m.end())
            out.append(min(v, cap) if v != 0.0 else 0.0)
    if label in c["anatomy"]:
        out.extend(_anatomy_mentions(clause, label))
    return out


def _aggregate(values: list[float]) -> float:
    if not values:
        return math.nan
    return 1.0 if 1.0 in values else (-1.0 if -1.0 in values else 0.0)


def label_report(text: str) -> dict[str, float]:
    """The 14 CheXpert observations of one report: label -> 1 / 0 / -1 / NaN (keys in CHEXPERT_14 order)."""
    clauses = sentences(text)
    if not clauses:  # an empty report says nothing, not "no finding"
        return {k: math.nan for k in CHEXPERT_14}
    found: dict[str, list[float]] = {k: [] for k in CHEXPERT_14}
    other_positive = False
    c = _compiled()
    for clause in clauses:
        for label in CHEXPERT_14:
            if label != NO_FINDING:
                found[label].extend(_mentions(clause, label))
        for m in re.finditer(r"\b(?:heart failure|chf)\b", clause):
            if classify(clause, m.start(), m.end()) != 0.0:
                found["Cardiomegaly"].append(-1.0)  # CheXpert: heart failure suggests, not proves, cardiomegaly
        other_positive = other_positive or any(classify(clause, m.start(), m.end()) != 0.0
                                               for m in c["other"].finditer(clause))
    labels = {k: _aggregate(v) for k, v in found.items()}
    finding = any(labels[k] in (1.0, -1.0) for k in CHEXPERT_14 if k not in (NO_FINDING, SUPPORT_DEVICES))
    labels[NO_FINDING] = math.nan if finding or other_positive else 1.0
    return labels


def label_phrase(text: str, pattern: str) -> float:
    """One more observation, by a regular expression over the lower-cased report (hyphens as spaces), classified
    and aggregated as the 14 are: 1 / 0 / -1, NaN when the report does not mention it."""
    rx = re.compile(rf"\b(?:{pattern})\b")
    return _aggregate([classify(c, m.start(), m.end()) for c in sentences(text) for m in rx.finditer(c)])


def label_reports(texts: Sequence[str]) -> np.ndarray:
    """(N, 14) float array of 1 / 0 / -1 / NaN, columns in CHEXPERT_14 order."""
    rows = (label_report(t) for t in texts)
    return np.array([[r[k] for k in CHEXPERT_14] for r in rows], dtype=float).reshape(-1, 14)


# --- validation against the Open-i curators' MeSH tags ------------------------------------------------------------

# CheXpert observation -> MeSH-tag prefixes of Open-i's `mesh_major` that mean it (a tag matches a prefix when it
# equals it or starts with it + "/"). Chosen to follow the CheXpert definitions: "Cardiac Shadow/enlarged" is an
# enlarged heart; Lung Opacity is opacity / airspace disease / infiltrate / lung density / interstitial markings
# (not "bronchovascular crowding", not scarring); calcified granulomas are not lesions; pulmonary congestion and
# heart failure are Edema as in CheXpert's edema phrases; surgical clips, sutures and monitor leads are devices.
OPENI_MESH_MAP: dict[str, tuple[str, ...]] = {
    "No Finding": ("normal",),
    "Enlarged Cardiomediastinum": ("Mediastinum",),
    "Cardiomegaly": ("Cardiomegaly", "Cardiac Shadow/enlarged", "Cardiac Shadow/borderline"),
    "Lung Opacity": ("Opacity/lung", "Airspace Disease", "Infiltrate", "Density/lung", "Markings/lung/interstitial",
                     "Markings/lung/base/interstitial", "Markings/lung/bilateral/interstitial", "Lung/interstitial",
                     "Lung Diseases, Interstitial", "Opacity/retrocardiac", "Opacity/costophrenic angle"),
    "Lung Lesion": ("Nodule", "Mass", "Cavitation", "Lung Neoplasms"),  # refined in mesh_to_chexpert
    "Edema": ("Pulmonary Edema", "Pulmonary Congestion", "Heart Failure"),
    "Consolidation": ("Consolidation",),
    "Pneumonia": ("Pneumonia",),
    "Atelectasis": ("Pulmonary Atelectasis",),
    "Pneumothorax": ("Pneumothorax", "Hydropneumothorax"),
    "Pleural Effusion": ("Pleural Effusion", "Hydropneumothorax"),
    "Pleural Other": ("Thickening/pleura",),
    "Fracture": ("Fractures, Bone",),
    "Support Devices": ("Implanted Medical Device", "Catheters, Indwelling", "Medical Device", "Tube, Inserted",
                        "Stents", "Surgical Instruments", "Sutures"),
}


def mesh_to_chexpert(tags: Iterable[str]) -> dict[str, int]:
    """Open-i `mesh_major` tags -> CheXpert observation -> 1 (tagged) / 0 (not tagged), by OPENI_MESH_MAP except for
    Lung Lesion: a Nodule / Mass tag, or a round lung opacity / density ("Opacity/lung/.../round", how the curators
    tag a nodular opacity), unless a Calcinosis / (Calcified) Granuloma tag shares its site (a calcified nodule is a
    granuloma, not a lesion, as in CheXpert) or it is outside the lung (heart, pleura, breast, mediastinum)."""
    tags = [t.strip() for t in tags]
    out = {label: int(any(t == p or t.startswith(p + "/") for t in tags for p in prefixes))
           for label, prefixes in OPENI_MESH_MAP.items()}
    lesions = [t for t in tags if t.split("/")[0] in ("Nodule", "Mass") or (
        t.startswith(("Opacity/lung/", "Density/lung/")) and "/round" in t)]
    calcified_sites = {_site(t) for t in tags if t.split("/")[0] in _CALCIFIED}
    out["Lung Lesion"] = int(any(_site(t) not in calcified_sites and not t.startswith(_NOT_LUNG) for t in lesions))
    return out


_CALCIFIED = ("Calcinosis", "Calcified Granuloma", "Granuloma")
_NOT_LUNG = ("Nodule/heart", "Nodule/pleura", "Mass/breast", "Mass/mediastinum")


def _site(tag: str) -> str:
    """The anatomical site of a MeSH tag: "Nodule/lung/lower lobe/left/small" -> "lung/lower lobe"."""
    return "/".join(tag.split("/")[1:3])


def validate_against_openi(path: str | Path, uncertain_as_positive: bool = True) -> dict[str, dict[str, float]]:
    """Per-label agreement of the labeler (findings + impression) with the curators' tags of Open-i reports.

    A label is positive for the labeler when 1 (and -1 when `uncertain_as_positive`, the convention of the clinical
    F1); positive for the curators when a mapped tag is present (OPENI_MESH_MAP). Reports tagged "No Indexing" or
    with no findings and no impression are skipped. Returns label -> {precision, recall, f1, support (tagged
    reports), predicted, n}, plus "micro" over the 14 labels. ValueError if the file is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Open-i reports file not found: {path}")
    truth, texts = [], []
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            try:
                rec = json.loads(line)
                tags, text = rec["mesh_major"], f"{rec.get('findings') or ''} {rec.get('impression') or ''}"
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{i}: not an Open-i report record ({e})") from None
            if not text.strip() or any(t.startswith("No Indexing") for t in tags):
                continue
            m = mesh_to_chexpert(tags)
            truth.append([m[k] for k in CHEXPERT_14])
            texts.append(text)
    y = np.array(truth, dtype=int).reshape(-1, 14)
    lab = label_reports(texts)
    pred = (lab == 1) | ((lab == -1) & uncertain_as_positive)
    table: dict[str, dict[str, float]] = {}
    totals = np.zeros(3, dtype=int)
    for j, k in enumerate(CHEXPERT_14):
        tp, fp = int((pred[:, j] & (y[:, j] == 1)).sum()), int((pred[:, j] & (y[:, j] == 0)).sum())
        fn = int((~pred[:, j] & (y[:, j] == 1)).sum())
        totals += (tp, fp, fn)
        table[k] = {"precision": div(tp, tp + fp), "recall": div(tp, tp + fn), "f1": f1_from_counts(tp, fp, fn),
                    "support": float(tp + fn), "predicted": float(tp + fp), "n": float(len(y))}
    tp, fp, fn = (int(v) for v in totals)
    table["micro"] = {"precision": div(tp, tp + fp), "recall": div(tp, tp + fn), "f1": f1_from_counts(tp, fp, fn),
                      "support": float(tp + fn), "predicted": float(tp + fp), "n": float(len(y))}
    return table


def format_table(table: dict[str, dict[str, float]]) -> str:
    """The agreement table as aligned text."""
    rows = [f"{'label':28s} {'precision':>9s} {'recall':>7s} {'f1':>6s} {'support':>8s} {'predicted':>9s}"]
    for k, r in table.items():
        rows.append(f"{k:28s} {r['precision']:9.3f} {r['recall']:7.3f} {r['f1']:6.3f} {int(r['support']):8d} "
                    f"{int(r['predicted']):9d}")
    return "\n".join(rows)
