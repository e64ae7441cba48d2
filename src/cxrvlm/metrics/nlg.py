"""Natural-language generation scores of reports: BLEU-1..4, METEOR, ROUGE-L and CIDEr through pycocoevalcap (the
field's reference implementation), sacreBLEU corpus BLEU, and per-sample lower-cased BLEU as PaliGemma-CXR reported.

All scores are in [0, 1] (CIDEr in [0, 10]); sacreBLEU's 0-100 score is divided by 100 to match.

- `coco_scores`: pycocoevalcap's PTBTokenizer (Java; lower-cases and drops punctuation), then its Bleu(4), Meteor
  (Java, METEOR 1.5; its start-up loads a paraphrase table, 5-15 s), Rouge (ROUGE-L) and Cider (clipped and
  length-penalised, document frequencies from this corpus's references, so it depends on the corpus). Without Java
  the text is tokenised by `simple_tokenize` (a close approximation) and METEOR is NaN, with a warning. The Java
  processes are started per call and stopped before returning: nothing is cached between calls.
- `sacrebleu_corpus`: sacreBLEU's default corpus BLEU (13a tokenisation, case-sensitive).
- `bleu_per_sample_lowercase`: BLEU-4 of each (lower-cased) sample on its own, 13a tokens, no smoothing (the
  formula of Hugging Face `evaluate`'s "bleu"), averaged over samples. A short or poor sample with no matching 4-gram
  scores 0, so this is lower than corpus BLEU and not comparable to it; it is what PaliGemma-CXR reported.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import logging
import math
import re
import shutil
from collections import Counter
from collections.abc import Sequence
from types import ModuleType

log = logging.getLogger(__name__)

_PTB_PUNCT = {"''", "'", "``", "`", "-lrb-", "-rrb-", "-lcb-", "-rcb-", ".", "?", "!", ",", ":", "-", "--", "...", ";"}


def require_eval(what: str, module: str) -> ModuleType:
    """`module` of the optional `eval` extra (pycocoevalcap, sacrebleu or one of their submodules), imported on
    first use so the core install runs without it; an ImportError naming the feature and the extra otherwise."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{what} needs {module.split('.')[0]}: pip install 'cxrvlm[eval]'") from None


def simple_tokenize(text: str) -> str:
    """Lower-case, split off punctuation, drop the punctuation tokens PTBTokenizer's wrapper drops: "No effusion." ->
    "no effusion". Used when Java is absent."""
    tokens = re.findall(r"\d+(?:[.,]\d+)*|[a-z]+(?:'[a-z]+)?|[^\sa-z\d]", (text or "").lower())
    return " ".join(t for t in tokens if t not in _PTB_PUNCT)


def _tokenize(texts: dict[int, str]) -> dict[int, list[str]]:
    """PTB-tokenise {id: text} in one Java process (or with simple_tokenize without Java)."""
    if shutil.which("java"):
        try:
            ptb = require_eval("PTB tokenisation", "pycocoevalcap.tokenizer.ptbtokenizer")
            out = ptb.PTBTokenizer().tokenize({k: [{"caption": v}] for k, v in texts.items()})
            if set(out) == set(texts):
                return out
            log.warning("PTBTokenizer returned %d of %d texts; using the Python tokenizer", len(out), len(texts))
        except (OSError, ValueError, RuntimeError) as e:
            log.warning("PTBTokenizer failed (%s); using the Python tokenizer", e)
    else:
        log.warning("java not found: tokenizing in Python and skipping METEOR")
    return {k: [simple_tokenize(v)] for k, v in texts.items()}


def _meteor(gts: dict[int, list[str]], res: dict[int, list[str]]) -> float:
    """pycocoevalcap METEOR, the Java process stopped afterwards; NaN (with a warning) if it cannot run."""
    if not shutil.which("java"):
        return math.nan
    Meteor = require_eval("METEOR", "pycocoevalcap.meteor.meteor").Meteor
    try:
        meteor = Meteor()
    except OSError as e:
        log.warning("METEOR could not start (%s)", e)
        return math.nan
    try:
        # METEOR's line protocol breaks on newlines and its "|||" separator; PTB output has neither, but be safe
        res = {k: [v[0].replace("\n", " ").replace("|||", " ")] for k, v in res.items()}
        score, _ = meteor.compute_score(gts, res)
        return float(score)
    except (ValueError, OSError, BrokenPipeError) as e:
        log.warning("METEOR failed (%s)", e)
        return math.nan
    finally:
        if meteor.lock.locked():  # compute_score does not release its lock when it fails; Meteor.__del__ would hang
            meteor.lock.release()
        meteor.meteor_p.stdin.close()
        meteor.meteor_p.kill()
        meteor.meteor_p.wait()


def coco_scores(hypotheses: Sequence[str], references: Sequence[str], meteor: bool = True) -> dict[str, float]:
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr of hypotheses against one reference each (pycocoevalcap). Keys `bleu_1` ..
    `bleu_4`, `meteor`, `rouge_l`, `cider`. ValueError on length mismatch; NaN for all on an empty corpus.

    meteor: False skips METEOR (NaN), whose Java process loads a paraphrase table for 5-15 s."""
    if len(hypotheses) != len(references):
        raise ValueError(f"coco_scores: {len(hypotheses)} hypotheses but {len(references)} references")
    keys = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider")
    if not hypotheses:
        return {k: math.nan for k in keys}
    Bleu = require_eval("BLEU (coco_scores)", "pycocoevalcap.bleu.bleu").Bleu
    Rouge = require_eval("ROUGE-L (coco_scores)", "pycocoevalcap.rouge.rouge").Rouge
    Cider = require_eval("CIDEr (coco_scores)", "pycocoevalcap.cider.cider").Cider
    n = len(hypotheses)
    tok = _tokenize({i: t for i, t in enumerate(list(hypotheses) + list(references))})
    res = {i: tok[i] for i in range(n)}
    gts = {i: tok[n + i] for i in range(n)}
    with contextlib.redirect_stdout(io.StringIO()):  # Bleu prints its statistics
        bleu, _ = Bleu(4).compute_score(gts, res)
        rouge, _ = Rouge().compute_score(gts, res)
        cider, _ = Cider().compute_score(gts, res)
    out = {f"bleu_{i + 1}": float(b) for i, b in enumerate(bleu)}
    out.update(meteor=_meteor(gts, res) if meteor else math.nan, rouge_l=float(rouge), cider=float(cider))
    return out


def sacrebleu_corpus(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """sacreBLEU corpus BLEU (default settings) / 100; NaN on an empty corpus."""
    if len(hypotheses) != len(references):
        raise ValueError(f"sacrebleu_corpus: {len(hypotheses)} hypotheses but {len(references)} references")
    if not hypotheses:
        return math.nan
    sacrebleu = require_eval("sacreBLEU", "sacrebleu")
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score) / 100.0


def _tokens_13a(text: str) -> list[str]:
    try:
        tokenizer_13a = require_eval("13a tokenisation", "sacrebleu.tokenizers.tokenizer_13a")
    except ImportError:  # the eval extra is absent: a close approximation of 13a
        return re.sub(r"([^\w\s])", r" \1 ", text).split()
    return tokenizer_13a.Tokenizer13a()(text).split()


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def sentence_bleu(hypothesis: Sequence[str], reference: Sequence[str], max_n: int = 4) -> float:
    """BLEU of one tokenised hypothesis against one tokenised reference, no smoothing: the geometric mean of the
    clipped n-gram precisions (n = 1..max_n) times the brevity penalty exp(1 - r/c) when c < r. 0 when any precision
    is 0 or the hypothesis is empty."""
    if not hypothesis:
        return 0.0
    log_p = 0.0
    for n in range(1, max_n + 1):
        hyp_ngrams, ref_ngrams = _ngrams(hypothesis, n), _ngrams(reference, n)
        matches = sum((hyp_ngrams & ref_ngrams).values())
        possible = max(len(hypothesis) - n + 1, 0)
        if matches == 0 or possible == 0:
            return 0.0
        log_p += math.log(matches / possible) / max_n
    c, r = len(hypothesis), len(reference)
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * math.exp(log_p)


def bleu_per_sample_lowercase(hypotheses: Sequence[str], references: Sequence[str], max_n: int = 4) -> float:
    """Mean over samples of sentence BLEU-max_n on lower-cased 13a tokens (PaliGemma-CXR's report BLEU)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"bleu_per_sample_lowercase: {len(hypotheses)} hypotheses but {len(references)} references")
    if not hypotheses:
        return math.nan
    scores = [sentence_bleu(_tokens_13a(h.lower()), _tokens_13a(r.lower()), max_n)
              for h, r in zip(hypotheses, references)]
    return sum(scores) / len(scores)
