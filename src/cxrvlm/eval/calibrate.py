"""Calibrate a model's label head on one split: a temperature per label, fitted by likelihood (temperature scaling,
Guo et al. 2017), and the expected calibration error before and after, measured out of sample by two folds of
patients (each fold's temperatures fitted on the other) so the "after" is not the fit's own data.

    cxrvlm calibrate --model src/cxrvlm/models/weights/cxrvlm-effnet --data runs/curated-all --split val --write

A label with at least `labels.MIN_POSITIVES` positives and a negative gets its own temperature; the others share
the one fitted on every settled (film, label) pair. `--write` puts the temperatures in the model folder's
config.json (`label_temperatures`, written atomically); re-evaluate afterwards, since the TB operating point is a
threshold on the calibrated probability. A temperature keeps each label's ranking, so AUROC does not move.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cxrvlm.data.images import ImageCache
from cxrvlm.eval.predict import scored
from cxrvlm.examples import Example
from cxrvlm.jsonl import write_json
from cxrvlm.metrics.calibration import ece, fit_temperature, fold_of, logit
from cxrvlm.tasks import labels

FOLDS = 2


def head_logits(model: Any, examples: Sequence[Example], batch_size: int = 8) -> list[tuple[str, dict, dict]]:
    """(patient, settled labels, uncalibrated logit per label) of each label example the model reads."""
    names = list(model.label_names)
    temperatures = list(model.config.label_temperatures) or [1.0] * len(names)
    cache = ImageCache(int(model.config.image_size))
    rows = []
    for ex, probs in scored(model, examples, batch_size, cache, label="calibrate"):
        if probs:
            rows.append((ex.patient_id, ex.target["labels"],
                         {n: float(logit([probs[n]])[0]) * t for n, t in zip(names, temperatures)}))
    return rows


def _pairs(rows: Sequence[tuple[str, dict, dict]], name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(labels, logits) of one label's settled pairs, or of every label's when `name` is None."""
    pairs = [(float(y), z[k]) for _, settled, z in rows for k, y in settled.items()
             if (name is None or k == name) and k in z]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def fit(rows: Sequence[tuple[str, dict, dict]], names: Sequence[str]) -> list[float]:
    """One temperature per label name (its own, or the shared one; see the module docstring)."""
    shared = fit_temperature(*_pairs(rows))
    out = []
    for name in names:
        y, z = _pairs(rows, name)
        enough = y.sum() >= labels.MIN_POSITIVES and y.sum() < len(y)
        out.append(fit_temperature(y, z) if enough else shared)
    return out


def _probs(y_z: tuple[np.ndarray, np.ndarray], t: float) -> tuple[np.ndarray, np.ndarray]:
    return y_z[0], 1 / (1 + np.exp(-y_z[1] / t))


def calibrate(model: Any, examples: Sequence[Example], batch_size: int = 8) -> dict[str, Any]:
    """Temperatures fitted on the split and the ECE before and after (after: out of sample, by folds)."""
    names = list(model.label_names)
    if not names:
        raise ValueError(f"model {model.config.name!r} has no label head to calibrate")
    rows = head_logits(model, [e for e in examples if e.task == labels.NAME], batch_size)
    if not rows:
        raise ValueError(f"no {labels.NAME} example in the split: curate with a source that settles image labels")
    before = {"all": ([], []), labels.TB: ([], [])}
    after = {"all": ([], []), labels.TB: ([], [])}
    folds = [fold_of(patient, FOLDS) for patient, _, _ in rows]
    for k in range(FOLDS):
        train = [r for r, f in zip(rows, folds) if f != k]
        test = [r for r, f in zip(rows, folds) if f == k]
        temps = dict(zip(names, fit(train, names)))
        for name in names:
            y, p1 = _probs(_pairs(test, name), 1.0)
            _, pt = _probs(_pairs(test, name), temps[name])
            for key in ("all", labels.TB) if name == labels.TB else ("all",):
                before[key][0].extend(y), before[key][1].extend(p1)
                after[key][0].extend(y), after[key][1].extend(pt)
    temperatures = fit(rows, names)
    return {"n_films": len(rows), "temperatures": dict(zip(names, (round(t, 4) for t in temperatures))),
            "ece_before": ece(*before["all"]), "ece_after": ece(*after["all"]),
            "ece_tuberculosis_before": ece(*before[labels.TB]), "ece_tuberculosis_after": ece(*after[labels.TB]),
            "n_pairs": len(before["all"][0]), "folds": FOLDS}


def write_temperatures(folder: str | os.PathLike, temperatures: dict[str, float]) -> Path:
    """Put the temperatures, in the config's label order, into `folder/config.json` (atomically)."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise ValueError(f"--write needs a model folder with config.json, got {folder}")
    config = json.loads(path.read_text())
    if list(config.get("label_names") or []) != list(temperatures):
        raise ValueError(f"{path}: its label_names are not the calibrated labels {list(temperatures)}")
    config["label_temperatures"] = [float(temperatures[n]) for n in config["label_names"]]
    return write_json(path, config)
