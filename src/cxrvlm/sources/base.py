"""One constructor signature for every dataset adapter: `SourceClass(root, limit=None)`, iterated for `Study`s.

An adapter reads one public dataset layout (or one folder of ../shared/data) and yields canonical records. Items it
cannot use (a row naming a missing file, an unreadable annotation) are skipped and listed in `skipped` with the
reason, never silently dropped and never fatal for the rest.
"""
from __future__ import annotations

import importlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

from cxrvlm.records import Study

log = logging.getLogger(__name__)


class Source(ABC):
    name: str = ""
    licence: str = ""
    citation: str = ""

    def __init__(self, root: str | Path, limit: int | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"source {self.name!r}: {self.root} is not a folder")
        if limit is not None and limit < 1:
            raise ValueError(f"source {self.name!r}: limit must be at least 1, got {limit}")
        self.limit = limit
        self.skipped: list[tuple[str, str]] = []  # (item, reason)

    @abstractmethod
    def _studies(self) -> Iterator[Study]:
        """Yield every study of the dataset (the limit is applied by `studies`)."""

    def studies(self) -> Iterator[Study]:
        for i, study in enumerate(self._studies()):
            if self.limit is not None and i >= self.limit:
                return
            yield study

    def __iter__(self) -> Iterator[Study]:
        return self.studies()

    def skip(self, item: str, reason: str) -> None:
        log.warning("%s: skipping %s: %s", self.name, item, reason)
        self.skipped.append((item, reason))

    def require(self, *relative: str) -> Path:
        """The path under root, or a ValueError naming the file the layout needs."""
        path = self.root.joinpath(*relative)
        if not path.exists():
            raise ValueError(f"source {self.name!r}: {path} not found (expected layout: see cxrvlm.sources.{self.name})")
        return path


_MODULES = (
    "tb", "covid", "shenzhen_lungs", "openi", "manifest", "shenzhen_montgomery", "tbx11k", "vindr", "nih",
    "hannover", "iu_xray", "mimic_cxr", "vqa_rad", "slake",
)
_REGISTRY: dict[str, type[Source]] = {}


def register_source(cls: type[Source]) -> type[Source]:
    """Class decorator: make the adapter available by its `name`."""
    if not cls.name:
        raise AssertionError(f"{cls.__name__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


def _load_all() -> None:
    for m in _MODULES:
        try:
            importlib.import_module(f"cxrvlm.sources.{m}")
        except ModuleNotFoundError as e:
            if e.name != f"cxrvlm.sources.{m}":
                raise


def list_sources() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def open_source(name: str, root: str | Path, limit: int | None = None) -> Source:
    """The adapter `name` over the folder `root`; ValueError listing valid names for an unknown one."""
    _load_all()
    if name not in _REGISTRY:
        raise ValueError(f"unknown source {name!r}; valid sources: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](root, limit=limit)
