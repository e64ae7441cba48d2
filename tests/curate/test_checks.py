from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cxrvlm.curate.checks import (
    DuplicateImageError, Fingerprints, LeakageError, check_no_leakage, duplicate_error, file_sha1,
    find_duplicates, missing_images,
)
from curate_fixtures import make_study, write_png


def test_byte_duplicate_across_studies_is_found_and_names_both_files(tmp_path: Path) -> None:
    a = make_study(tmp_path, "s:a", "p1", seed=1)
    b = make_study(tmp_path, "s:b", "p2", seed=2)
    c = make_study(tmp_path, "s:c", "p3", seed=3)
    copy = tmp_path / "copy.png"
    shutil.copy(a.views[0].path, copy)
    c.views[0].path = str(copy)
    dups = find_duplicates([a, b, c], pixels=False)
    assert len(dups) == 1
    d = dups[0]
    assert (d.kept_study, d.dropped_study, d.match) == ("s:a", "s:c", "bytes")
    err = duplicate_error(dups)
    assert isinstance(err, DuplicateImageError) and isinstance(err, ValueError)
    assert a.views[0].path in str(err) and str(copy) in str(err) and "--on-duplicate drop" in str(err)


def test_same_file_in_two_studies_and_same_study_twice(tmp_path: Path) -> None:
    a = make_study(tmp_path, "s:a", "p1", seed=1)
    b = make_study(tmp_path, "s:b", "p2", seed=2)
    b.views.append(b.views[0])  # one study listing its own image twice is not a cross-study duplicate
    assert find_duplicates([a, b]) == []
    b.views[0].path = a.views[0].path
    assert [d.dropped_study for d in find_duplicates([a, b])] == ["s:b"]


def test_pixel_duplicate_in_another_container_is_found(tmp_path: Path) -> None:
    a = make_study(tmp_path, "s:a", "p1", seed=1)
    b = make_study(tmp_path, "s:b", "p2", seed=2)
    # the same pixels saved again with other compression and a text chunk: different bytes, same image
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "another encoder")
    again = tmp_path / "again.png"
    with Image.open(a.views[0].path) as im:
        im.save(again, compress_level=1, pnginfo=info)
    assert file_sha1(again) != file_sha1(a.views[0].path)
    b.views[0].path = str(again)
    assert find_duplicates([a, b], pixels=False) == []
    dups = find_duplicates([a, b], pixels=True)
    assert [(d.kept_study, d.dropped_study, d.match) for d in dups] == [("s:a", "s:b", "pixels")]


def test_no_false_duplicates_for_distinct_images_of_one_size(tmp_path: Path) -> None:
    studies = [make_study(tmp_path, f"s:{i}", f"p{i}", seed=i) for i in range(6)]
    assert find_duplicates(studies) == []


def test_leakage_check_raises_for_a_patient_or_an_image_in_two_splits(tmp_path: Path) -> None:
    img1 = write_png(tmp_path / "1.png", 1)
    img2 = write_png(tmp_path / "2.png", 2)
    fp = Fingerprints()
    check_no_leakage([("p1", "train", [img1]), ("p1", "train", [img1]), ("p2", "val", [img2])], fp)
    with pytest.raises(LeakageError, match="p1 in train, test"):
        check_no_leakage([("p1", "train", [img1]), ("p1", "test", [])], fp)
    copy = tmp_path / "copy.png"
    shutil.copy(img1, copy)
    with pytest.raises(LeakageError, match="image"):
        check_no_leakage([("p1", "train", [img1]), ("p2", "val", [str(copy)])], fp)


def test_missing_images_lists_only_absent_files(tmp_path: Path) -> None:
    img = write_png(tmp_path / "1.png", 1)
    assert missing_images([img, str(tmp_path / "nope.png")]) == [str(tmp_path / "nope.png")]
    assert Fingerprints()(str(tmp_path / "nope.png")) is None
