"""Memorisation: a run of RUN words held by one training document is a copy; one many documents share is not."""
from __future__ import annotations

from cxrvlm.metrics.memorisation import RUN, CopyGuard, CopyIndex, memorisation, words

STOCK = "the lungs are clear no pleural effusion or pneumothorax the cardiomediastinal silhouette is normal today"
PATIENT = ("a 54 year old man from the night shift with fever since tuesday had a cavity in the right upper lobe "
           "seen on the portable film")


def test_a_patient_specific_run_is_a_copy_and_stock_phrasing_is_not():
    index = CopyIndex([STOCK, STOCK, PATIENT, "Another patient entirely, with nothing in common."])
    assert index.documents == 4
    assert index.copied("Findings: " + STOCK.upper() + ".") == []  # two patients' reports hold it
    copied = index.copied("History: " + PATIENT.replace(" ", ",  ") + " Impression: TB.")
    assert copied and all(len(c.split()) == RUN for c in copied)
    assert index.copied(" ".join(words(PATIENT)[:RUN - 1])) == []  # one word short of a run


def test_memorisation_rate_and_examples():
    index = CopyIndex([STOCK, STOCK + " again", PATIENT])
    out = memorisation([PATIENT, STOCK, "short text"], index)
    assert out["n"] == 3 and out["n_copied"] == 1 and out["rate"] == 1 / 3
    assert out["examples"][0]["generated"].startswith("a 54 year old") and out["run_words"] == RUN
    assert memorisation([], index)["rate"] is None


def test_the_copy_guard_finds_what_the_index_finds_without_keeping_the_text():
    index = CopyIndex([STOCK, STOCK, PATIENT, "Another patient entirely, with nothing in common."])
    guard = CopyGuard.from_index(index)
    assert guard.hashes.dtype.name == "uint64" and len(guard.hashes) == sum(c == 1 for c in index.count.values())
    for text in ("History: " + PATIENT + " Impression: TB.", "Findings: " + STOCK, "short", ""):
        assert guard.copied(text) == index.copied(text)
    assert guard.copied(PATIENT) and CopyGuard([]).copied(PATIENT) == []
