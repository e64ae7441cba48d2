"""Fixtures for curation tests: the fake source and fake task put in the registries for one test."""
from __future__ import annotations

import pytest
from curate_fixtures import FAKE_TASK, FakeSource

from cxrvlm.sources import base as sources_base
from cxrvlm.tasks import base as tasks_base


@pytest.fixture
def fake_registry(monkeypatch: pytest.MonkeyPatch) -> type[FakeSource]:
    """Register the fake source "fake" and the fake task "fake"; returns the source class."""
    sources_base._load_all()
    monkeypatch.setitem(sources_base._REGISTRY, "fake", FakeSource)
    monkeypatch.setitem(tasks_base._REGISTRY, "fake", FAKE_TASK)
    monkeypatch.setattr(FakeSource, "STUDIES", {})
    monkeypatch.setattr(FakeSource, "SKIPS", {})
    return FakeSource
