"""Curation: source records -> task examples -> patient-level splits, checked for leakage and duplicates.

    result = curate(CurateConfig(sources=[("tb", "data/tb")], out="runs/curated"))

Steps: open every source (all paths checked before any work), read their studies, drop repeated study ids, leave
out studies of other organs than the chest (`Study.organ`; VQA-RAD's head and abdomen images) unless
`keep_non_chest`, find exact duplicate images (error, or keep the first and drop the later study), link patients that must share a split,
assign splits, format every study with every task, drop examples whose images are missing, check that no patient or
image crosses splits, then write the files (`write_dataset`). A study a task fails on is reported in
`skipped` and the run goes on.

Each (study, task) pair gets its own `random.Random` seeded from (seed, study_id, task), so an example does not
depend on the order the studies were read in, nor on which other tasks were asked for.
"""
from __future__ import annotations

import logging
import random
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from tqdm import tqdm

from cxrvlm.curate.checks import (DUPLICATE_MODES, Duplicate, Fingerprints, check_no_leakage, duplicate_error,
                                  find_duplicates, missing_images)
from cxrvlm.jsonl import dumps
from cxrvlm.curate.split import SPLITS, PatientLinks, assign_splits, parse_fractions
from cxrvlm.examples import Example
from cxrvlm.records import CHEST, Study
from cxrvlm.sources.base import Source, open_source
from cxrvlm.tasks.base import get_task, list_tasks

log = logging.getLogger(__name__)


@dataclass
class CurateConfig:
    """What to curate. `sources`: (adapter name, folder) pairs; `fractions`: train, val, test."""

    sources: Sequence[tuple[str, str | Path]]
    out: str | Path
    tasks: Sequence[str] | None = None  # None: every registered task
    seed: int = 0
    fractions: Sequence[float] = (0.8, 0.1, 0.1)
    limit: int | None = None  # studies per source
    render: int = 8  # rendered examples in the data card
    on_duplicate: str = "drop"
    keep_non_chest: bool = False  # keep studies a source marks as another organ (head, abdomen)
    stratify: bool = True
    pixel_check: bool = True
    progress: bool = True
    command: str = ""


@dataclass
class SourceInfo:
    name: str
    path: str
    licence: str
    citation: str
    studies: int = 0
    skipped: int = 0


@dataclass
class Curated:
    """The curated dataset in memory: examples by split, text records, what was skipped and why."""

    config: CurateConfig
    tasks: list[str]
    sources: list[SourceInfo]
    studies: list[Study]  # kept studies (with views or text), in reading order
    study_split: dict[str, str]  # study_id -> split
    examples: dict[str, list[Example]] = field(default_factory=lambda: {s: [] for s in SPLITS})
    text: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)

    def own_images(self) -> dict[str, set[str]]:
        """study_id -> paths of the study's own views (an example's other images are its prior's)."""
        return {s.study_id: {str(v.path) for v in s.views if v.path} for s in self.studies}


def parse_source_spec(spec: str) -> tuple[str, str]:
    """"NAME=PATH" -> (name, path); ValueError for anything else."""
    name, sep, path = spec.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise ValueError(f"--source {spec!r}: expected NAME=PATH, e.g. tb=/data/tb")
    return name.strip(), path.strip()


def resolve_tasks(names: Sequence[str] | None) -> list[str]:
    """Requested task names (validated; ValueError listing the valid ones) or every registered task."""
    available = list_tasks()
    if not names:
        if not available:
            raise ValueError("no task modules are installed (cxrvlm.tasks)")
        return available
    for n in names:
        get_task(n)
    return list(dict.fromkeys(names))


def _bar(progress: bool, desc: str, total: int | None = None) -> Callable[[Iterable], Iterable]:
    if not progress:
        return lambda it: it
    return lambda it: tqdm(it, desc=desc, total=total, file=sys.stderr, unit="item", leave=False)


def open_sources(specs: Sequence[tuple[str, str | Path]], limit: int | None) -> list[Source]:
    """Every adapter, opened before anything is read, so a bad name or path fails at once."""
    if not specs:
        raise ValueError("no --source given: pass at least one NAME=PATH")
    opened = []
    for name, path in specs:
        if not Path(path).exists():
            raise ValueError(f"--source {name}={path}: {path} does not exist")
        opened.append(open_source(name, path, limit=limit))
    return opened


def read_studies(sources: Sequence[Source], specs: Sequence[tuple[str, str | Path]], progress: bool
                 ) -> tuple[list[Study], list[SourceInfo], list[dict[str, Any]]]:
    """All studies of all sources (a repeated study id is skipped), per-source info, and the items skipped."""
    studies: list[Study] = []
    infos: list[SourceInfo] = []
    skipped: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for src, (_, path) in zip(sources, specs):
        info = SourceInfo(src.name, str(path), src.licence, src.citation)
        for study in _bar(progress, f"read {src.name}")(src):
            if study.study_id in seen:
                skipped.append(_skip("study", src.name, study.study_id,
                                     f"study id already read from source {seen[study.study_id]}"))
                continue
            seen[study.study_id] = src.name
            studies.append(study)
            info.studies += 1
        skipped += [_skip("source", src.name, item, reason) for item, reason in src.skipped]
        info.skipped = len(src.skipped)
        infos.append(info)
        log.info("%s: %d studies, %d items skipped", src.name, info.studies, info.skipped)
    return studies, infos, skipped


def _skip(kind: str, source: str, item: str, reason: str, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "source": source, "item": item, "reason": reason, **extra}


def link_patients(studies: Sequence[Study], duplicates: Sequence[Duplicate]) -> PatientLinks:
    """Patients that must share a split: one id across sources, a study and its priors, duplicate holders."""
    links = PatientLinks()
    for s in studies:
        links.add(s.patient_id)
        prior = s.prior
        while prior is not None:
            links.link(s.patient_id, prior.patient_id)
            prior = prior.prior
    for d in duplicates:
        links.link(d.kept_patient, d.dropped_patient)
    return links


def split_studies(studies: Sequence[Study], links: PatientLinks, config: CurateConfig) -> dict[str, str]:
    """study_id -> split, by the split of the study's patient group."""
    group_sources: dict[str, set[str]] = {}
    for s in studies:
        group_sources.setdefault(links.key(s.patient_id), set()).add(s.source)
    group_split = assign_splits(group_sources, config.fractions, config.seed, config.stratify)
    return {s.study_id: group_split[links.key(s.patient_id)] for s in studies}


def drop_non_chest(studies: list[Study], keep: bool) -> tuple[list[Study], list[dict[str, Any]]]:
    """The chest studies (all with `keep`) and a skipped record for each study of another organ."""
    if keep:
        return studies, []
    other = [s for s in studies if s.organ != CHEST]
    if other:
        log.info("%d studies of other organs than the chest left out (--keep-non-chest keeps them)", len(other))
    skipped = [_skip("not_chest", s.source, s.study_id, f"{s.organ} image, not a chest film "
                     "(--keep-non-chest keeps it)", study_id=s.study_id) for s in other]
    return [s for s in studies if s.organ == CHEST], skipped


def _apply_duplicates(studies: list[Study], duplicates: list[Duplicate], mode: str
                      ) -> tuple[list[Study], list[dict[str, Any]]]:
    if not duplicates:
        return studies, []
    if mode == "error":
        raise duplicate_error(duplicates)
    source_of = {s.study_id: s.source for s in studies}
    dropped = {d.dropped_study for d in duplicates}
    skipped = [_skip("duplicate", source_of[d.dropped_study], d.dropped_path,
                     f"exact duplicate ({d.match}) of {d.kept_path} (study {d.kept_study}); study dropped",
                     study_id=d.dropped_study, duplicate_of=d.kept_path) for d in duplicates]
    log.warning("%d duplicate image(s): dropped %d later stud(ies), e.g. %s", len(duplicates), len(dropped),
                duplicates[0].describe())
    return [s for s in studies if s.study_id not in dropped], skipped


def format_study(study: Study, name: str, module: ModuleType, seed: int
                 ) -> tuple[list[Example], list[dict[str, Any]]]:
    """One task over one study -> (examples with existing images, skipped records). Never raises."""
    rng = random.Random(f"{seed}:{study.study_id}:{name}")
    try:
        made = list(module.format(study, rng))
    except Exception as e:  # noqa: BLE001 - one bad study must not stop a curation run
        log.debug("task %s failed on %s", name, study.study_id, exc_info=True)
        return [], [_skip("task", study.source, study.study_id, f"{type(e).__name__}: {e}", task=name,
                          study_id=study.study_id)]
    kept, skipped = [], []
    for ex in made:
        gone = missing_images(ex.images)
        if gone:
            skipped.append(_skip("missing_image", study.source, gone[0], f"image not found ({len(gone)} missing)",
                                 task=name, study_id=study.study_id))
            continue
        try:
            dumps(ex.to_json())  # an example that cannot be written is reported here, not at write time
        except (TypeError, ValueError) as e:
            skipped.append(_skip("task", study.source, study.study_id, f"example is not JSON-serialisable: {e}",
                                 task=name, study_id=study.study_id))
            continue
        kept.append(ex)
    return kept, skipped


def text_record(study: Study, split: str) -> dict[str, Any]:
    """A study without views -> its report text for tokenizer / language-model pretraining."""
    report = study.report
    meta = {**study.meta, "report_kind": report.kind if report else None,
            "labels": {k: v for k, v in study.known_labels().items()}}
    return {"source": study.source, "study_id": study.study_id, "patient_id": study.patient_id,
            "text": report.text if report else "", "split": split, "meta": meta}


def curate(config: CurateConfig) -> Curated:
    """Run every step up to (not including) writing; see the module docstring."""
    if config.on_duplicate not in DUPLICATE_MODES:
        raise ValueError(f"--on-duplicate {config.on_duplicate!r}: choose one of {', '.join(DUPLICATE_MODES)}")
    config.fractions = parse_fractions(config.fractions)
    tasks = resolve_tasks(config.tasks)
    sources = open_sources(config.sources, config.limit)
    studies, infos, skipped = read_studies(sources, config.sources, config.progress)
    studies, organ_skipped = drop_non_chest(studies, config.keep_non_chest)
    skipped += organ_skipped
    fingerprints = Fingerprints()
    duplicates = find_duplicates(studies, config.pixel_check, fingerprints, _bar(config.progress, "hash images"))
    studies, dup_skipped = _apply_duplicates(studies, duplicates, config.on_duplicate)
    links = link_patients(studies, duplicates)
    study_split = split_studies(studies, links, config)
    result = Curated(config, tasks, infos, studies, study_split, skipped=skipped + dup_skipped,
                     duplicates=duplicates)
    modules = {name: get_task(name) for name in tasks}
    for study in _bar(config.progress, "format", len(studies))(studies):
        split = study_split[study.study_id]
        if not study.views:
            if study.report:
                result.text.append(text_record(study, split))
            else:
                result.skipped.append(_skip("study", study.source, study.study_id, "no views and no report"))
        for name, module in modules.items():
            examples, bad = format_study(study, name, module, config.seed)
            result.examples[split] += examples
            result.skipped += bad
    rows = [(ex.patient_id, split, ex.images) for split, exs in result.examples.items() for ex in exs]
    rows += [(t["patient_id"], t["split"], ()) for t in result.text]
    check_no_leakage(rows, fingerprints)
    if not any(result.examples.values()):
        raise ValueError(f"no examples: {len(studies)} studies from {', '.join(i.name for i in infos)} gave no "
                         f"example for task(s) {', '.join(tasks)} ({len(result.skipped)} items skipped; "
                         "see the log)")
    return result
