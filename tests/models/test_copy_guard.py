"""The copy guard beside a model: written whole, read back the same, a broken file named in the error."""
from __future__ import annotations

import numpy as np
import pytest

from cxrvlm.metrics.memorisation import CopyGuard, CopyIndex
from cxrvlm.models.copy_guard import COPY_GUARD_FILE, saved_copy_guard, write_copy_guard

PATIENT = "a 54 year old man from the night shift with fever since tuesday had a cavity in the right upper lobe"


def test_a_saved_guard_reads_back_and_finds_the_same_copies(tmp_path) -> None:
    guard = CopyGuard.from_index(CopyIndex([PATIENT, "the lungs are clear"]))
    write_copy_guard(guard, tmp_path / COPY_GUARD_FILE)
    back = saved_copy_guard(tmp_path)
    assert back.n == guard.n and np.array_equal(back.hashes, guard.hashes)
    assert back.copied("History: " + PATIENT) == guard.copied("History: " + PATIENT) != []
    assert saved_copy_guard(tmp_path / "nothing here") is None and saved_copy_guard(None) is None
    assert [p.name for p in tmp_path.iterdir()] == [COPY_GUARD_FILE]  # no temporary file left


def test_a_file_that_is_not_a_guard_is_a_clear_error(tmp_path) -> None:
    (tmp_path / COPY_GUARD_FILE).write_bytes(b"not an npz")
    with pytest.raises(ValueError, match=f"{COPY_GUARD_FILE}: not a copy guard"):
        saved_copy_guard(tmp_path)
    np.savez(tmp_path / COPY_GUARD_FILE, hashes=np.array([1.5, 2.5]), run_words=np.int64(12))
    with pytest.raises(ValueError, match="1-D uint64"):
        saved_copy_guard(tmp_path)
