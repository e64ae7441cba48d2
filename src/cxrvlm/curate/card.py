"""The data card (`card.md`) of a curated dataset: what is in each split, how balanced it is, what was left out and
why, and a few examples drawn as pictures (`card/*.png`).
"""
from __future__ import annotations

import logging
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from cxrvlm.curate.pipeline import Curated
from cxrvlm.curate.render import render_example
from cxrvlm.curate.split import SPLITS
from cxrvlm.curate.write import counts
from cxrvlm.examples import Example
from cxrvlm.tasks import get_task, list_tasks, screening_task

log = logging.getLogger(__name__)

_YES_NO = ("yes", "no")


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _split_rows(data: dict[str, dict[str, int]]) -> list[list[object]]:
    rows = [[k, *(v.get(s, 0) for s in SPLITS), sum(v.get(s, 0) for s in SPLITS)] for k, v in data.items()]
    totals = [sum(r[i] for r in rows) for i in range(1, len(SPLITS) + 2)]
    return rows + [["**total**", *totals]]


def _examples(result: Curated) -> Iterable[tuple[str, Example]]:
    for split in SPLITS:
        for ex in result.examples[split]:
            yield split, ex


def label_balance(result: Curated) -> dict[str, dict[str, tuple[int, int]]]:
    """Study label -> split -> (positives, negatives) over the studies with images (unknown labels not counted)."""
    out: dict[str, dict[str, list[int]]] = defaultdict(lambda: {s: [0, 0] for s in SPLITS})
    for study in result.studies:
        if not study.views:
            continue
        split = result.study_split[study.study_id]
        for name, value in study.known_labels().items():
            out[name][split][0 if value == 1.0 else 1] += 1
    ordered = sorted(out.items(), key=lambda kv: (-sum(p for p, _ in kv[1].values()), kv[0]))
    return {k: {s: (v[s][0], v[s][1]) for s in SPLITS} for k, v in ordered}


def answer_counts(result: Curated, task: str, key: str = "") -> dict[str, Counter]:
    """Suffix (answer) -> split counts for one task; `key` groups by a target field first ("kind: answer")."""
    out: dict[str, Counter] = defaultdict(Counter)
    for split, ex in _examples(result):
        if ex.task == task:
            group = f"{ex.target.get(key)}: " if key and ex.target.get(key) is not None else ""
            out[f"{group}{ex.suffix.strip()}"][split] += 1
    return dict(sorted(out.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])))


def vqa_balance(result: Curated) -> dict[str, Counter]:
    """yes / no / other close-ended / open-ended answers to questions (examples whose target says whether the
    question is closed) per split."""
    out: dict[str, Counter] = {k: Counter() for k in ("yes", "no", "other close-ended", "open-ended")}
    for split, ex in _examples(result):
        if "closed" not in ex.target:
            continue
        answer = ex.suffix.strip().lower()
        closed = ex.target.get("closed", True)
        kind = answer if answer in _YES_NO else ("other close-ended" if closed else "open-ended")
        out[kind][split] += 1
    return out


def report_kinds(result: Curated) -> dict[str, Counter]:
    """"task: kind" (report / case_notes / templated) -> split counts, for the report-writing examples (those whose
    target holds a reference report)."""
    out: dict[str, Counter] = defaultdict(Counter)
    for split, ex in _examples(result):
        kind = ex.target.get("kind")
        if "report" in ex.target:
            kind = "templated" if ex.meta.get("templated") else (kind if kind in ("report", "case_notes") else
                                                                  "report")
            out[f"{ex.task}: {kind}"][split] += 1
    return dict(sorted(out.items()))


def multi_counts(result: Curated) -> dict[str, dict[str, Counter]]:
    """task -> {"multi-view": split counts, "multi-study": split counts}. Multi-view: two or more of the study's
    own images; multi-study: any image of a prior study."""
    own = result.own_images()
    out: dict[str, dict[str, Counter]] = defaultdict(lambda: {"multi-view": Counter(), "multi-study": Counter()})
    for split, ex in _examples(result):
        mine = own.get(ex.study_id, set())
        n_own = sum(1 for p in ex.images if p in mine)
        if n_own > 1:
            out[ex.task]["multi-view"][split] += 1
        if n_own < len(ex.images):
            out[ex.task]["multi-study"][split] += 1
    return dict(sorted(out.items()))


def _counter_rows(data: dict[str, Counter], limit: int | None = None) -> list[list[object]]:
    items = list(data.items())[:limit] if limit else list(data.items())
    return [[k, *(c[s] for s in SPLITS), sum(c.values())] for k, c in items]


def _pictures_first(task: str) -> tuple[bool, str]:
    """Sort key: the tasks whose answers hold coordinates (boxes, masks: what a picture shows best) first."""
    return (not (task in list_tasks() and get_task(task).coordinates), task)


def choose_examples(result: Curated, n: int) -> list[tuple[str, Example]]:
    """Up to `n` (split, example) pairs to draw: round-robin over tasks (boxes and masks first), a multi-study or
    multi-view one when there is one, each drawn by a `random.Random(seed)` so the card is reproducible."""
    if n <= 0:
        return []
    rng = random.Random(result.config.seed)
    by_task: dict[str, list[tuple[str, Example]]] = defaultdict(list)
    for split, ex in _examples(result):
        if ex.images:
            by_task[ex.task].append((split, ex))
    order = sorted(by_task, key=_pictures_first)
    chosen: list[tuple[str, Example]] = []
    multi = [(s, e) for s, e in _examples(result) if len(e.images) > 1]
    while len(chosen) < n and any(by_task[t] for t in order):
        for task in order:
            if len(chosen) >= n or not by_task[task]:
                continue
            chosen.append(by_task[task].pop(rng.randrange(len(by_task[task]))))
        if multi and len(chosen) < n and not any(len(e.images) > 1 for _, e in chosen):
            chosen.append(multi[rng.randrange(len(multi))])
    return chosen


def render_examples(result: Curated, out: Path) -> list[tuple[str, Example, str]]:
    """Draw the chosen examples into out/card/; returns (split, example, relative png path) of those drawn."""
    folder = out / "card"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("example_*.png"):  # pictures of an earlier run into the same folder
        old.unlink()
    drawn = []
    for i, (split, ex) in enumerate(choose_examples(result, result.config.render)):
        name = f"example_{i:02d}_{ex.task}.png"
        try:
            task = get_task(ex.task)
        except ValueError:
            task = None
        try:
            render_example(ex, folder / name, task, title=f"{ex.task} | {split} | {ex.study_id}")
        except (ValueError, OSError) as e:
            log.warning("could not draw %s example of %s: %s", ex.task, ex.study_id, e)
            continue
        drawn.append((split, ex, f"card/{name}"))
    return drawn


def _pos_neg(v: tuple[int, int]) -> str:
    return f"{v[0]} / {v[1]}"


def _source_task_rows(data: dict[str, dict[str, dict[str, int]]]) -> list[list[object]]:
    """One row per (source, task) with examples, then the source's total."""
    rows: list[list[object]] = []
    for source, tasks in data.items():
        for task, per in tasks.items():
            rows.append([source, task, *(per[s] for s in SPLITS), sum(per.values())])
        totals = [sum(per[s] for per in tasks.values()) for s in SPLITS]
        rows.append([source, "**all**", *totals, sum(totals)])
    return rows


def _sections(result: Curated) -> list[str]:
    c = counts(result)
    cfg = result.config
    split_header = ["", *SPLITS, "total"]
    parts = [
        "# Data card\n",
        f"Made by `{cfg.command or 'cxrvlm curate'}` — seed {cfg.seed}, split "
        + ", ".join(f"{s} {f:g}" for s, f in zip(SPLITS, cfg.fractions))
        + f" by patient ({'stratified by source' if cfg.stratify else 'unstratified'}), duplicates: "
        f"{cfg.on_duplicate}, tasks: {', '.join(result.tasks)}.\n",
        "## Sources\n",
        table(["source", "path", "studies", "skipped by the adapter", "licence"],
              [[i.name, f"`{i.path}`", i.studies, i.skipped, i.licence] for i in result.sources]) + "\n",
        "## Examples per task\n", table(["task", *split_header[1:]], _split_rows(c["tasks"])) + "\n",
        "## Examples per source\n", table(["source", *split_header[1:]], _split_rows(c["sources"])) + "\n",
        "## Examples per source and task\n",
        table(["source", "task", *split_header[1:]], _source_task_rows(c["source_tasks"])) + "\n",
        "## Patients and studies per split\n",
        table(split_header, [[k, *(c[k][s] for s in SPLITS), sum(c[k].values())]
                             for k in ("patients", "studies", "text")]) + "\n",
        "`patients`: distinct patient ids with examples; `studies`: studies kept (with images or text); "
        "`text`: report-only studies written to `text.jsonl`. No patient and no image is in two splits "
        "(checked).\n",
    ]
    return parts + _balance_sections(result) + _excluded_sections(result, c)


def _balance_sections(result: Curated) -> list[str]:
    parts = ["## Label balance\n", "Study labels of the studies with images, positives / negatives "
             "(unknown labels not counted):\n"]
    balance = label_balance(result)
    parts.append(table(["label", *SPLITS], [[k, *(_pos_neg(v[s]) for s in SPLITS)] for k, v in balance.items()])
                 + "\n" if balance else "No labelled studies.\n")
    classify = answer_counts(result, screening_task().name, key="kind")
    if classify:
        parts += ["Classification answers (by kind):\n",
                  table(["answer", *SPLITS, "total"], _counter_rows(classify, 20)) + "\n"]
    vqa = vqa_balance(result)
    if any(vqa.values()):
        parts += ["VQA answers:\n", table(["answer", *SPLITS, "total"], _counter_rows(vqa)) + "\n"]
    reports = report_kinds(result)
    if reports:
        parts += ["## Reports\n", "Real reports, case notes, and reports templated from structured findings:\n",
                  table(["task: kind", *SPLITS, "total"], _counter_rows(reports)) + "\n"]
    multi = multi_counts(result)
    rows = [[f"{t}: {k}", *(cnt[s] for s in SPLITS), sum(cnt.values())]
            for t, kinds in multi.items() for k, cnt in kinds.items() if cnt]
    parts += ["## Multi-image and multi-study examples\n",
              table(["task: inputs", *SPLITS, "total"], rows) + "\n" if rows else "None.\n"]
    return parts


def _excluded_sections(result: Curated, c: dict) -> list[str]:
    parts = ["## Left out\n"]
    if not result.skipped:
        return parts + ["Nothing was skipped.\n"]
    parts.append(table(["kind", "items"], sorted(c["skipped"].items())) + "\n")
    reasons = Counter((r["kind"], r.get("task", ""), r["reason"]) for r in result.skipped)
    parts += ["Most frequent reasons (all items with their reasons are in `skipped.jsonl`):\n",
              table(["kind", "task", "reason", "items"],
                    [[k, t, r.replace("|", "\\|")[:160], n] for (k, t, r), n in reasons.most_common(10)]) + "\n"]
    if result.duplicates:
        parts += [f"{len(result.duplicates)} exact duplicate image(s) across studies "
                  f"({'the later study was dropped' if result.config.on_duplicate == 'drop' else 'error'}; "
                  "their patients are kept in one split):\n"]
        parts += [f"- {d.describe()}" for d in result.duplicates[:10]]
        parts.append("")
    return parts


def write_card(result: Curated, out: str | Path) -> Path:
    """Render the examples and write out/card.md; returns its path."""
    out = Path(out)
    parts = _sections(result)
    drawn = render_examples(result, out)
    if drawn:
        parts.append("## Examples\n")
        for split, ex, png in drawn:
            parts.append(f"**{ex.task}** ({split}, {ex.source}, `{ex.study_id}`)\n\n![{ex.task}]({png})\n")
    path = out / "card.md"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
