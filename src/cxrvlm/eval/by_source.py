"""Every metric per source: which source an example is reported under, and one task metric per source.

The source of an example is its curated `source`, refined by the dataset the film comes from when the source
gathers several (the tb set redistributes Shenzhen, Montgomery and DA/DB films, each from its own hospital and
scanner). This is the one place that decides it (`source_key`):

1. `meta["dataset"]`, when curation recorded the study's dataset on the example (`tb` studies hold it in
   `Study.meta["dataset"]`; today `tasks._text.make_example` does not copy it, so curated folders lack it);
2. else the namespace of the patient id when it differs from the source's name: shared NLM patients are
   `shenzhen:CHNCXR_0002` / `montgomery:MCUCXR_0004` and DA/DB ones `da_db:<image>`
   (`sources.tb`, `sources._common.nlm_patient_id`), while most sources name their patients after themselves
   (`covid:...`);
3. else the source alone.

A refined key is "source/dataset" ("tb/shenzhen", "shenzhen_lungs/shenzhen"), so two curated sources never share a
key and each key's metrics hold one source's examples only.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cxrvlm.examples import Example, Metric, Prediction
from cxrvlm.jsonl import clean

DATASET_KEY = "dataset"


def source_key(source: str, patient_id: str = "", meta: Mapping[str, Any] | None = None) -> str:
    """The source an example is reported under (see the module docstring)."""
    dataset = (meta or {}).get(DATASET_KEY)
    if not dataset:
        namespace, sep, _ = str(patient_id).partition(":")
        dataset = namespace if sep and namespace != source else ""
    return f"{source}/{dataset}" if dataset and dataset != source else str(source)


def example_source(example: Example) -> str:
    """`source_key` of a curated example."""
    return source_key(example.source, example.patient_id, example.meta)


class MetricsBySource:
    """One fresh task metric per source, fed the same predictions as the task's overall metric."""

    def __init__(self, make: Callable[[], Metric]) -> None:
        self.make = make
        self.metrics: dict[str, Metric] = {}
        self.counts: dict[str, int] = {}

    def update(self, example: Example, pred: Prediction) -> None:
        key = example_source(example)
        if key not in self.metrics:
            self.metrics[key], self.counts[key] = self.make(), 0
        self.metrics[key].update(pred, example.target)
        self.counts[key] += 1

    def compute(self, compute: Callable[[Metric, str], dict[str, Any]],
                overall: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
        """{source: {"n": examples scored, "metrics": the task metric's keys over them}}, sources sorted. With one
        source, `overall` (the task metric over the same examples, when given) is its metrics: not computed twice
        (a report metric's METEOR starts a JVM)."""
        if overall is not None and len(self.metrics) == 1:
            return {k: {"n": n, "metrics": clean(overall)} for k, n in self.counts.items()}
        return {k: {"n": self.counts[k], "metrics": clean(compute(self.metrics[k], k))} for k in sorted(self.metrics)}
