"""Checks a curated dataset must pass: no exact duplicate image across studies, no patient (or image) in two splits,
every image an example points to exists.

Duplicates are found in two passes: the SHA-1 of each file's bytes, then, among files of equal pixel size that the
first pass did not already match, the SHA-1 of the decoded pixels (`cxrvlm.io.read_image`, as 8-bit), which also
catches one image saved in two containers (PNG and TIFF, or two PNG encoders).
"""
from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cxrvlm.io import probe_image, read_image, to_uint8
from cxrvlm.records import Study

log = logging.getLogger(__name__)

DUPLICATE_MODES = ("error", "drop")


class LeakageError(ValueError):
    """A patient or an image lands in two splits."""


class DuplicateImageError(ValueError):
    """Two different studies hold the same image."""


@dataclass(frozen=True)
class Duplicate:
    """`dropped_study` holds `dropped_path`, whose content equals `kept_path` of the earlier `kept_study`."""

    kept_study: str
    kept_patient: str
    kept_path: str
    dropped_study: str
    dropped_patient: str
    dropped_path: str
    match: str  # "bytes" (identical files) or "pixels" (identical decoded pixels)

    def describe(self) -> str:
        what = "is the same file as" if self.match == "bytes" else "has the same pixels as"
        return (f"{self.dropped_path} (study {self.dropped_study}) {what} {self.kept_path} "
                f"(study {self.kept_study})")


def file_sha1(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-1 of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def pixel_sha1(path: str | Path) -> str:
    """SHA-1 of the decoded image as 8-bit (H, W) plus its shape; ValueError when unreadable."""
    pixels = to_uint8(read_image(path).pixels)
    return hashlib.sha1(repr(pixels.shape).encode() + pixels.tobytes()).hexdigest()


def _pixel_size(path: str) -> tuple[int, int] | None:
    try:
        meta = probe_image(path)
    except ValueError:
        return None
    return tuple(meta.source_size)


def _own_images(studies: Sequence[Study]) -> list[tuple[str, str, str]]:
    """(study_id, patient_id, path) of every view with an existing file, in study order (priors not repeated)."""
    out: dict[tuple[str, str, str], None] = {}  # ordered set: a study naming one file twice counts it once
    for s in studies:
        for v in s.views:
            if v.path and Path(v.path).is_file():
                out[(s.study_id, s.patient_id, str(v.path))] = None
    return list(out)


class Fingerprints:
    """File SHA-1 by path, computed once; None for a file that cannot be read."""

    def __init__(self) -> None:
        self._cache: dict[str, str | None] = {}

    def __call__(self, path: str) -> str | None:
        if path not in self._cache:
            try:
                self._cache[path] = file_sha1(path)
            except OSError as e:
                log.debug("cannot hash %s: %s", path, e)
                self._cache[path] = None
        return self._cache[path]


def find_duplicates(studies: Sequence[Study], pixels: bool = True, fingerprints: Fingerprints | None = None,
                    progress: Callable[[Iterable], Iterable] = lambda it: it) -> list[Duplicate]:
    """Images of a later study identical to an image of an earlier, different study (bytes, then pixels).

    The first study to hold an image keeps it; each later holder gives one `Duplicate`. A file the reader cannot
    decode is left to the byte check (it will be reported by whatever reads it next).
    """
    images = _own_images(studies)
    found: list[Duplicate] = []
    unmatched = _match(images, fingerprints or Fingerprints(), "bytes", found, progress)
    if pixels:
        by_size: dict[tuple[int, int] | None, list[tuple[str, str, str]]] = defaultdict(list)
        for item in unmatched:
            by_size[_pixel_size(item[2])].append(item)
        # only images sharing a size with an image of another study can have equal pixels: decode just those
        candidates = [it for size, group in by_size.items() if size is not None
                      and len({sid for sid, _, _ in group}) > 1 for it in group]
        position = {it: i for i, it in enumerate(images)}
        candidates.sort(key=position.__getitem__)  # keep study order: the first holder keeps the image
        _match(candidates, _safe_pixel_sha1, "pixels", found, progress)
    return found


def _safe_pixel_sha1(path: str) -> str | None:
    try:
        return pixel_sha1(path)
    except ValueError as e:
        log.debug("pixel hash of %s skipped: %s", path, e)
        return None


def _match(images: list[tuple[str, str, str]], digest: Callable[[str], str | None], kind: str,
           found: list[Duplicate], progress: Callable[[Iterable], Iterable]) -> list[tuple[str, str, str]]:
    """Append duplicates by `digest` to `found`; return one entry per distinct digest (the first holder)."""
    first: dict[str, tuple[str, str, str]] = {}
    cache: dict[str, str | None] = {}
    for item in progress(images):
        study_id, patient_id, path = item
        if path not in cache:
            cache[path] = digest(path)
        d = cache[path]
        if d is None:
            continue
        owner = first.setdefault(d, item)
        if owner[0] != study_id:
            found.append(Duplicate(owner[0], owner[1], owner[2], study_id, patient_id, path, kind))
    return list(first.values())


def duplicate_error(duplicates: Sequence[Duplicate]) -> DuplicateImageError:
    """The error for `--on-duplicate error`, naming the files of up to five pairs."""
    lines = [d.describe() for d in duplicates[:5]]
    more = f" (and {len(duplicates) - 5} more)" if len(duplicates) > 5 else ""
    return DuplicateImageError(
        f"{len(duplicates)} exact duplicate image(s) across studies{more}: " + "; ".join(lines)
        + ". Remove them from the data or run with --on-duplicate drop to keep the first and drop the others."
    )


def check_no_leakage(rows: Iterable[tuple[str, str, Sequence[str]]], fingerprint: Callable[[str], str | None]
                     ) -> None:
    """`rows`: (patient_id, split, image paths) per example or text record. Raises LeakageError when a patient, or
    an image (by `fingerprint`, e.g. its file SHA-1), is in two splits."""
    patient_splits: dict[str, set[str]] = defaultdict(set)
    image_splits: dict[str, set[str]] = defaultdict(set)
    image_name: dict[str, str] = {}
    for patient_id, split, paths in rows:
        patient_splits[patient_id].add(split)
        for p in paths:
            fp = fingerprint(p)
            if fp is not None:
                image_splits[fp].add(split)
                image_name.setdefault(fp, p)
    crossing = sorted(p for p, s in patient_splits.items() if len(s) > 1)
    if crossing:
        first = crossing[0]
        raise LeakageError(f"{len(crossing)} patient(s) in more than one split, e.g. {first} in "
                           f"{', '.join(sorted(patient_splits[first], key=_split_order))}")
    images = sorted(image_name[f] for f, s in image_splits.items() if len(s) > 1)
    if images:
        raise LeakageError(f"{len(images)} image(s) used in more than one split, e.g. {images[0]}")


def _split_order(split: str) -> tuple[int, str]:
    order = ("train", "val", "test")
    return (order.index(split) if split in order else len(order), split)


def missing_images(paths: Sequence[str]) -> list[str]:
    """The paths among `paths` that are not existing files."""
    return [p for p in paths if not Path(p).is_file()]
