"""Visual question answering. The prefix is the question itself (as PaliGemma-CXR asked it), the suffix the answer.

Close-ended questions are templated only where the data determines the answer:
- "label":    "Is there evidence of {finding} in this X-ray?" yes/no. Per study one positive label (yes) and one
              known-negative label (no), each drawn by `rng`, so the answers stay balanced within a source. Only
              labels of the shared vocabulary (`records.LABELS`): a source-specific term (a pathogen) is often
              recorded only when positive, and asking about it would give the answer away.
- "normal":   "Is this chest X-ray normal?" yes/no, when "No Finding" is known.
- "choice":   "Which of these findings is present in this X-ray: {a} or {b}?" one positive, one negative, order by rng.
- "view":     "What is the projection of this radiograph?" pa/ap/lateral, per view whose position is known.
- "lung_size": "Which lung is larger on this image, the right or the left?" (patient's sides) from the two lung
              masks' pixel areas (a single both-lungs mask is split into its two largest connected components; the
              one on the image's left is the patient's right lung), else from the two lung boxes' areas. Asked only
              when the areas differ by at least 10%, so the answer is not within annotation noise.
- "extent" / "density": "How extensive is the lung opacity?" / "How dense is the lung opacity?"
              none/mild/moderate/severe from the geographic extent (0-8) / opacity (0-6) scores, bins in `_text`.
- "change":   "Compared with the prior study from N days earlier, has the lung opacity worsened, improved, or stayed
              the same?" from both studies' geographic extent (threshold in `_text.opacity_change`); images are the
              current frontal view then the prior's.
Open-ended (and the source's own closed) questions come from `study.qa` ("source"); what the source says of a
question (`QA.meta`: VQA-RAD's qid, question_type and official_split) is copied into the example's meta.

target keys: "answer" (normalised answer), "closed" (bool), "candidates" (normalised phrases; [] for open ones and
for source closed questions that are not yes/no), "question", "template" (one of the names above).
"""
from __future__ import annotations

import logging
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cxrvlm.examples import Example, Prediction
from cxrvlm.metrics.vqa import ClosedVQAMetric, OpenVQAMetric
from cxrvlm.records import LABELS, QA, Study, View, load_mask
from cxrvlm.tasks import _reading, _text, labels
from cxrvlm.tasks.base import ReadContext, Task, register
from cxrvlm.tokens.seg import split_lungs
from cxrvlm.tokens.shape import TEXT

log = logging.getLogger(__name__)

NAME = "vqa"
YES_NO = ("yes", "no")
PROJECTIONS = ("pa", "ap", "lateral")
SIDES = ("right", "left")
MIN_AREA_DIFFERENCE = 0.10  # relative; smaller differences are within annotation noise
Q_LABEL = "Is there evidence of {x} in this X-ray?"
Q_NORMAL = "Is this chest X-ray normal?"
Q_CHOICE = "Which of these findings is present in this X-ray: {a} or {b}?"
Q_VIEW = "What is the projection of this radiograph?"
Q_LUNG_SIZE = "Which lung is larger on this image, the right or the left?"
Q_SEVERITY = {"extent": "How extensive is the lung opacity?", "density": "How dense is the lung opacity?"}
SOURCE_TEMPLATE = "source"  # the type of a question the source dataset asks (and of any question not ours)
Q_CHANGE = "Compared with {prior}, has the lung opacity worsened, improved, or stayed the same?"
_SCORE_OF = {"extent": "geographic_extent", "density": "opacity"}


def prompt(question: str) -> str:
    """The prefix for a question (the question, whitespace-normalised)."""
    q = " ".join(str(question).split())
    if not q:
        raise ValueError("vqa.prompt: empty question")
    return q


def change_question(prior_interval_days: float) -> str:
    return Q_CHANGE.format(prior=_text.interval_phrase(prior_interval_days))


def _closed(study: Study, views: Sequence[View], question: str, answer: str, candidates: Sequence[str],
            template: str, prior_views: Sequence[View] = ()) -> Example:
    target = {"answer": answer, "closed": True, "candidates": list(candidates), "question": question,
              "template": template}
    return _text.make_example(NAME, study, views, prompt(question), answer, target, {"template": template},
                              prior_views=prior_views)


def _label_questions(study: Study, view: View, rng: random.Random) -> list[Example]:
    positives = sorted(_text.phrase(k) for k in study.positive_labels() if k != _text.NO_FINDING and k in LABELS)
    negatives = [_text.phrase(k) for k in _text.known_negatives(study) if k in LABELS]
    negatives = [n for n in negatives if n not in positives]
    out = []
    if positives:
        out.append(_closed(study, [view], Q_LABEL.format(x=rng.choice(positives)), "yes", YES_NO, "label"))
    if negatives:
        out.append(_closed(study, [view], Q_LABEL.format(x=rng.choice(negatives)), "no", YES_NO, "label"))
    normal = study.labels.get(_text.NO_FINDING)
    if normal in (0.0, 1.0) and not (normal == 1.0 and positives):
        out.append(_closed(study, [view], Q_NORMAL, "yes" if normal == 1.0 else "no", YES_NO, "normal"))
    if positives and negatives:
        pair = [rng.choice(positives), rng.choice(negatives)]
        rng.shuffle(pair)
        answer = pair[0] if pair[0] in positives else pair[1]
        out.append(_closed(study, [view], Q_CHOICE.format(a=pair[0], b=pair[1]), answer, pair, "choice"))
    return out


def _mask_areas(view: View) -> tuple[float, float] | None:
    masks = {_text.phrase(k): ref for k, ref in view.masks.items()}
    try:
        if "right lung" in masks and "left lung" in masks:
            return (float(load_mask(masks["right lung"]).sum()), float(load_mask(masks["left lung"]).sum()))
        both = next((masks[k] for k in ("lungs", "lung") if k in masks), None)
        if both is None:
            return None

        sides = split_lungs(load_mask(both))
        if len(sides) < 2:
            return None
        right, left = float(sides["right lung"].sum()), float(sides["left lung"].sum())
        # a lung smaller than a fifth of the pair is a broken mask, not a small lung
        return (right, left) if min(right, left) >= 0.2 * (right + left) else None
    except (ValueError, OSError) as e:
        log.warning("vqa: %s: lung mask unreadable, no lung-size question: %s", view.image_id, e)
        return None


def _box_areas(view: View) -> tuple[float, float] | None:
    found: dict[str, list[float]] = {}
    for b in view.boxes:
        found.setdefault(_text.phrase(b.label), []).append((b.x2 - b.x1) * (b.y2 - b.y1))
    if len(found.get("right lung", [])) != 1 or len(found.get("left lung", [])) != 1:
        return None
    return found["right lung"][0], found["left lung"][0]


def _lung_size_question(study: Study, view: View) -> list[Example]:
    if view.view_position == "LATERAL":
        return []
    areas = _mask_areas(view) or _box_areas(view)
    if areas is None or max(areas) <= 0:
        return []
    right, left = areas
    if abs(right - left) / max(right, left) < MIN_AREA_DIFFERENCE:
        return []
    return [_closed(study, [view], Q_LUNG_SIZE, "right" if right > left else "left", SIDES, "lung_size")]


def _severity_questions(study: Study, view: View) -> list[Example]:
    out = []
    for template, score_name in _SCORE_OF.items():
        value = _text.get_score(study, score_name)
        if value is not None:
            level = _text.severity_level(score_name, value)
            out.append(_closed(study, [view], Q_SEVERITY[template], level, _text.SEVERITY_LEVELS, template))
    change = _text.opacity_change(study)
    prior_view = _text.first_frontal(study.prior)
    if change is not None and prior_view is not None:
        out.append(_closed(study, [view], change_question(study.prior_interval_days), change,
                           _text.CHANGE_ANSWERS, "change", prior_views=[prior_view]))
    return out


def _source_questions(study: Study) -> list[Example]:
    out = []
    for qa in study.qa:
        views = [v for v in study.views[qa.view:qa.view + 1] if v.path] if 0 <= qa.view < len(study.views) else []
        answer, question = _text.normalise(qa.answer), " ".join(str(qa.question).split())
        if not views or not answer or not question:
            log.debug("vqa: %s: skipping source question %r (no image or empty text)", study.study_id, qa.question)
            continue
        out.append(_source_example(study, views[0], qa, question, answer))
    return out


def _source_example(study: Study, view: View, qa: QA, question: str, answer: str) -> Example:
    candidates = list(YES_NO) if answer in YES_NO else []
    target = {"answer": answer, "closed": bool(qa.closed), "candidates": candidates, "question": question,
              "template": SOURCE_TEMPLATE}
    return _text.make_example(NAME, study, [view], prompt(question), qa.answer.strip(), target,
                              {**qa.meta, "template": SOURCE_TEMPLATE})


def format(study: Study, rng: random.Random) -> list[Example]:
    """Study -> every close-ended question its data answers, plus the source's own questions."""
    out: list[Example] = []
    frontal = _text.first_frontal(study)
    if frontal is not None:
        out += _label_questions(study, frontal, rng)
        out += _severity_questions(study, frontal)
    for view in _text.usable_views(study):
        if view.view_position in ("PA", "AP", "LATERAL"):
            out.append(_closed(study, [view], Q_VIEW, view.view_position.lower(), PROJECTIONS, "view"))
        out += _lung_size_question(study, view)
    return out + _source_questions(study)


def parse(text: str, image_size: tuple[int, int] | None = None,
          candidates: Sequence[str] | None = None) -> Prediction:
    """Model text -> `Prediction.answer` (normalised). Invalid when empty, runaway (> 500 characters), holding
    control or loc/seg tokens, or not one of `candidates` when those are given. Never raises."""
    reason = _text.check_output(text)
    if reason:
        return Prediction(NAME, valid=False, reason=reason, text=text[:_text.MAX_ANSWER_CHARS]
                          if isinstance(text, str) else "")
    answer = _text.normalise(text)
    if not answer:
        return Prediction(NAME, valid=False, reason="output has no words", text=text)
    if candidates and answer not in {_text.normalise(c) for c in candidates}:
        return Prediction(NAME, valid=False, reason=f"answer {answer[:60]!r} is not one of the candidates", text=text)
    return Prediction(NAME, text=text, answer=answer, label=answer)


class VQAMetric:
    """Closed questions scored by accuracy, open ones by exact match and token F1; keys prefixed closed_/open_."""

    def __init__(self) -> None:
        self.by_kind = {"closed": ClosedVQAMetric(), "open": OpenVQAMetric()}
        self.reset()

    def update(self, pred: Prediction, target: dict[str, Any]) -> None:
        kind = "closed" if target.get("closed") else "open"
        self.seen[kind] += 1
        self.by_kind[kind].update(pred, target)

    def compute(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for kind, m in self.by_kind.items():
            if self.seen[kind]:  # a kind with no question is left out
                out.update({f"{kind}_{k}": v for k, v in m.compute().items()})
        return out

    def reset(self) -> None:
        self.seen = {k: 0 for k in self.by_kind}
        for m in self.by_kind.values():
            m.reset()


def metric(threshold: float | None = None, fast: bool = False) -> VQAMetric:
    """Closed questions by accuracy, open ones by exact match and token F1."""
    return VQAMetric()


def candidates(example: Example) -> list[str]:
    """A close-ended question's candidates (scored by likelihood); [] for an open one (generated)."""
    cands = (example.target.get("candidates") or []) if example.target.get("closed", False) else []
    return [str(c) for c in dict.fromkeys(cands)] if len(cands) >= 2 else []


# ------------------------------------------------------------------------------------------------ inference
# Which answers a question allows: close-ended questions are scored over their candidates (so the answer comes with
# a probability), open ones are generated. The task's own templates have fixed candidates; any other question
# that starts like a yes/no question ("Is ...", "Are ...", "Does ...") is scored over yes/no.
_YES_NO_OPENERS = frozenset("is are does do did has have had can could was were will would should shall may "
                            "might must".split())
_CHOICE_RE = re.compile(re.escape(Q_CHOICE).replace(r"\{a\}", "(?P<a>.+?)").replace(r"\{b\}", "(?P<b>.+?)") + "$",
                        re.IGNORECASE)
_LABEL_RE = re.compile(re.escape(Q_LABEL).replace(r"\{x\}", "(?P<x>.+)") + "$", re.IGNORECASE)
# "Is there a pleural effusion?" / "Are there any signs of pneumonia on this film?": a head label asked about
_ASKS_LABEL_RE = re.compile(r"^(?:is|are) there (?:any |an? )?(?:(?:evidence|signs?) of )?(?P<x>.+?)"
                            r"(?: (?:in|on) (?:this|the) (?:chest )?(?:x-ray|xray|film|image|radiograph))?\??$")
_CHANGE_RE = re.compile(re.escape(Q_CHANGE).replace(r"\{prior\}", ".+?") + "$", re.IGNORECASE)
DEFAULT_QUESTIONS = (Q_NORMAL, Q_LABEL.format(x="tuberculosis"), Q_VIEW, Q_LUNG_SIZE)


@dataclass
class Question:
    """A question to ask: `candidates` empty for an open question; `needs_prior` for the change question."""

    text: str
    candidates: list[str] = field(default_factory=list)
    needs_prior: bool = False

    @property
    def closed(self) -> bool:
        return bool(self.candidates)


def closed_candidates(question: str) -> list[str]:
    """The fixed answers of a close-ended question, [] for an open one."""
    q = " ".join(str(question).split())
    fixed = {Q_VIEW: PROJECTIONS, Q_LUNG_SIZE: SIDES,
             **{s: _text.SEVERITY_LEVELS for s in Q_SEVERITY.values()}}
    for template, answers in fixed.items():
        if q.lower() == template.lower():
            return list(answers)
    if _CHANGE_RE.match(q):
        return list(_text.CHANGE_ANSWERS)
    m = _CHOICE_RE.match(q)
    if m:
        a, b = _text.normalise(m.group("a")), _text.normalise(m.group("b"))
        return [a, b] if a and b and a != b else []
    words = q.lower().split()
    return list(YES_NO) if words and words[0] in _YES_NO_OPENERS else []


def template_of(question: str) -> str:
    """The question type (the `template` of its examples) of one of this task's own questions; any other question
    is a `SOURCE_TEMPLATE` one, as clinicians' own questions (VQA-RAD) are."""
    q = " ".join(str(question).split()).lower()
    fixed = {Q_VIEW: "view", Q_LUNG_SIZE: "lung_size", Q_NORMAL: "normal",
             **{text: kind for kind, text in Q_SEVERITY.items()}}
    kind = next((k for text, k in fixed.items() if q == text.lower()), None)
    patterns = (("change", _CHANGE_RE), ("choice", _CHOICE_RE), ("label", _LABEL_RE))
    return kind or next((k for k, pattern in patterns if pattern.match(q)), SOURCE_TEMPLATE)


def _with_validation(ctx: ReadContext, answer: dict[str, Any]) -> dict[str, Any]:
    """The closed answer with how its question type fared on validation (`ReadOptions.question_types`; evaluation
    answers as a reading does, the head settling what it can), and a warning when that was no better than always
    giving one answer: such an answer does not follow the film."""
    kind = template_of(answer["question"])
    if kind == SOURCE_TEMPLATE and answer.get("source") == "label head":  # a label question in other words
        kind = "label"
    seen = ctx.options.question_types.get(NAME, {}).get(kind) if answer["closed"] else None
    if not seen or not answer["answer"]:
        return answer
    answer["validation"] = {"type": kind, "n": seen["n"], "accuracy": round(float(seen["accuracy"]), 4),
                            "constant_accuracy": seen.get("constant_accuracy"),
                            "no_better_than_constant": seen["no_better_than_constant"]}
    if seen["no_better_than_constant"]:
        ctx.warn(f"{NAME}: {answer['question']!r}: on validation this model answered {kind!r} questions no better "
                 f"than always answering {seen.get('constant_answer')!r} ({seen['accuracy']:.2f} vs "
                 f"{seen.get('constant_accuracy') or 0:.2f}, n={seen['n']}); do not rely on this answer")
    return answer


def make_question(item: str | dict | Question) -> Question:
    """A question string, a {"question": ..., "candidates": [...]} dict or a Question -> Question."""
    if isinstance(item, Question):
        return item
    if isinstance(item, dict):
        if "question" not in item:
            raise ValueError(f"question {item!r}: a dict needs a 'question' key")
        text = prompt(item["question"])
        given = item.get("candidates")
        candidates = [str(c) for c in given] if given else closed_candidates(text)
    elif isinstance(item, str):
        text = prompt(item)
        candidates = closed_candidates(text)
    else:
        raise ValueError(f"question {item!r}: expected a string or a dict, got {type(item).__name__}")
    if len(set(candidates)) != len(candidates):
        raise ValueError(f"question {text!r}: candidates repeat: {candidates}")
    return Question(text, candidates, needs_prior=bool(_CHANGE_RE.match(text)))


def wants_pair(ctx: ReadContext) -> bool:
    """A question about change reads the prior beside the current film."""
    return ctx.second == "prior" and any(q.needs_prior for q in ctx.options.questions)


def head_answer(question: str, head: Mapping[str, float], tb_threshold: float | None) -> dict[str, Any] | None:
    """The answer of a yes/no question the label head settles, given as the reading's verdict gives it (so they
    agree): "Is there evidence of X in this X-ray?" for a head label X (TB at the operating point), and the same
    asked in other words ("Is there a pleural effusion?", "Are there signs of pneumonia on this film?"); "Is this
    chest X-ray normal?" (yes when the head calls no finding). `probability` is the head's probability of the
    answer given; None for any other question."""
    q = " ".join(str(question).split()).lower()
    by_phrase = {_text.phrase(k): k for k in head if k != _text.NO_FINDING}
    called = labels.called(head, tb_threshold)
    m = _LABEL_RE.match(q) or _ASKS_LABEL_RE.match(q)
    if m and m.group("x").strip() in by_phrase:
        name = by_phrase[m.group("x").strip()]
        yes, p_yes = name in called, head[name]
    elif q == Q_NORMAL.lower() and _text.NO_FINDING in head:
        yes, p_yes = not [k for k in called if k != _text.NO_FINDING], head[_text.NO_FINDING]
    else:
        return None
    return {"question": question, "answer": "yes" if yes else "no",
            "probability": round(float(p_yes if yes else 1.0 - p_yes), 6), "closed": True, "source": "label head"}


def from_head(example: Example, head: Mapping[str, float],
              tb_threshold: float | None = None) -> dict[str, float] | None:
    """A yes/no question the label head settles (`head_answer`), answered in evaluation as a reading answers it:
    the head's call, given all the weight (the VQA metric scores answers, not their ranking); None: the decoder."""
    if candidates(example) != list(YES_NO):
        return None
    settled = head_answer(str(example.target.get("question") or example.prefix), head, tb_threshold)
    if settled is None:
        return None
    return {answer: float(answer == settled["answer"]) for answer in YES_NO}


def _answer(ctx: ReadContext, q: Question, pair: bool) -> dict[str, Any]:
    head = ctx.labels() if q.candidates == list(YES_NO) else None
    settled = head_answer(q.text, head, ctx.options.threshold) if head else None
    if settled is not None:
        return settled
    if q.closed:
        probs = ctx.score(prompt(q.text), q.candidates, pair=pair)
        best = int(np.argmax(probs))
        return {"question": q.text, "answer": q.candidates[best], "probability": round(float(probs[best]), 6),
                "closed": True}
    text, token_scores = ctx.generate(prompt(q.text), TASK.budget(), TASK.answer_shape, pair=pair)
    pred = parse(text)
    if not pred.valid:
        ctx.warn(_text.output_warning(f"{NAME} {q.text!r}", pred.reason, text))
        return {"question": q.text, "answer": "", "probability": None, "closed": False}
    return {"question": q.text, "answer": text.strip(),
            "probability": round(_reading.answer_probability(token_scores), 6), "closed": False}


def read(ctx: ReadContext) -> dict[str, Any]:
    """An answer per question (closed: the likeliest candidate and its share; open: the generated text and its
    mean token confidence; a yes/no question the label head settles: the head's call, `head_answer`), with its
    question type's validation figures when the model has them (`_with_validation`). A change question without a
    prior gets an empty answer and a warning."""
    answers = []
    for q in ctx.options.questions:
        if q.needs_prior and ctx.second != "prior":
            ctx.warn(f"{NAME}: {q.text!r} compares with a prior study, but none was given")
            answers.append({"question": q.text, "answer": "", "probability": None, "closed": q.closed})
            continue
        answers.append(_with_validation(ctx, _answer(ctx, q, pair=q.needs_prior)))
    return {"answers": answers}


TASK = register(Task(
    name=NAME, format=format, parse=parse, metric=metric,
    max_new_tokens=24,  # an answer phrase
    headline=("closed_accuracy", "open_token_f1", "open_exact_match"),
    answer_shape=TEXT,  # plain text: greedy decoding never writes a <loc> or <seg> token
    coordinates=False,  # left/right words survive small shifts, turns and zooms
    parse_hints=("candidates",), candidates=candidates, from_head=from_head,
    reading={"answers": []}, read=read, wants_pair=wants_pair))
