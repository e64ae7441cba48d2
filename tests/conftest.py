"""Shared test fixtures. Real-data tests use `shared_data`, which skips where ../shared/data is absent."""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip(f"real CXR data not found at {SHARED_DATA} (only present on the development machine)")
    return SHARED_DATA
