from __future__ import annotations

import json
from pathlib import Path

import pytest
from curate_fixtures import make_study, text_study

from cxrvlm.curate.checks import DuplicateImageError
from cxrvlm.curate.pipeline import CurateConfig, curate, parse_source_spec
from cxrvlm.curate.write import write_dataset


def _config(tmp_path: Path, roots: list[str], **kw: object) -> CurateConfig:
    kw.setdefault("tasks", ["fake"])
    kw.setdefault("render", 0)
    return CurateConfig(sources=[("fake", tmp_path / r) for r in roots], out=tmp_path / "out", progress=False,
                        **kw)


def _populate(fake: type, tmp_path: Path, root: str, studies: list) -> None:
    (tmp_path / root).mkdir(exist_ok=True)
    fake.STUDIES[str(tmp_path / root)] = studies


def _splits_of(result) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for split, examples in result.examples.items():
        for ex in examples:
            out.setdefault(ex.patient_id, set()).add(split)
    return out


def test_splits_are_deterministic_patient_disjoint_and_order_independent(fake_registry, tmp_path: Path) -> None:
    studies = [make_study(tmp_path / "img", f"s:{i}", f"p{i // 2}", label=float(i % 2)) for i in range(60)]
    _populate(fake_registry, tmp_path, "a", studies)
    _populate(fake_registry, tmp_path, "b", list(reversed(studies)))
    first = curate(_config(tmp_path, ["a"], seed=5))
    again = curate(_config(tmp_path, ["a"], seed=5))
    backwards = curate(_config(tmp_path, ["b"], seed=5))
    dump = lambda r: {s: sorted(json.dumps(e.to_json(), sort_keys=True) for e in ex)  # noqa: E731
                      for s, ex in r.examples.items()}
    assert dump(first) == dump(again) == dump(backwards)  # the rng draw in the target is order-independent too
    assert all(len(s) == 1 for s in _splits_of(first).values())
    assert all(first.examples[s] for s in ("train", "val", "test"))
    assert dump(curate(_config(tmp_path, ["a"], seed=6))) != dump(first)


def test_patients_linked_across_sources_and_priors_share_a_split(fake_registry, tmp_path: Path) -> None:
    img = tmp_path / "img"
    a = [make_study(img, f"a:{i}", f"shared:{i}") for i in range(40)]
    b = [make_study(img, f"b:{i}", f"shared:{i}", source="other") for i in range(40)]
    # a prior study under another patient id (an adapter's naming slip) still belongs to the same person
    for i in range(0, 40, 4):
        b[i].prior = make_study(img, f"prior:{i}", f"alias:{i}", source="other")
    priors = [s.prior for s in b if s.prior is not None]
    _populate(fake_registry, tmp_path, "a", a)
    _populate(fake_registry, tmp_path, "b", b + priors)
    for seed in range(4):
        result = curate(_config(tmp_path, ["a", "b"], seed=seed))
        assert all(len(s) == 1 for s in _splits_of(result).values())
        split = result.study_split
        assert all(split[f"a:{i}"] == split[f"b:{i}"] for i in range(40))
        assert all(split[f"prior:{i}"] == split[f"b:{i}"] for i in range(0, 40, 4))


def test_duplicate_image_is_an_error_or_dropped_and_reported(fake_registry, tmp_path: Path) -> None:
    studies = [make_study(tmp_path / "img", f"s:{i}", f"p{i}") for i in range(12)]
    studies[7].views[0].path = studies[2].views[0].path
    _populate(fake_registry, tmp_path, "a", studies)
    with pytest.raises(DuplicateImageError, match=r"s_2_0\.png"):
        curate(_config(tmp_path, ["a"], on_duplicate="error"))
    result = curate(_config(tmp_path, ["a"], on_duplicate="drop"))
    assert "s:7" not in result.study_split and "s:2" in result.study_split
    dropped = [r for r in result.skipped if r["kind"] == "duplicate"]
    assert len(dropped) == 1 and dropped[0]["study_id"] == "s:7" and "s:2" in dropped[0]["reason"]
    assert not any(ex.study_id == "s:7" for exs in result.examples.values() for ex in exs)


def test_failing_task_missing_image_and_text_only_studies_are_reported(fake_registry, tmp_path: Path) -> None:
    studies = [make_study(tmp_path / "img", f"s:{i}", f"p{i}") for i in range(10)]
    studies[3].study_id = "s:boom"
    Path(studies[5].views[0].path).unlink()
    studies.append(studies[0])  # the same study id twice
    studies += [text_study("t:1"), text_study("t:2", "Heart size normal.")]
    _populate(fake_registry, tmp_path, "a", studies)
    fake_registry.SKIPS[str(tmp_path / "a")] = [("row 9", "bad label")]
    result = curate(_config(tmp_path, ["a"]))
    kinds = {(r["kind"], r.get("study_id") or r["item"]) for r in result.skipped}
    assert ("task", "s:boom") in kinds and ("missing_image", "s:5") in kinds
    assert ("study", "s:0") in kinds and ("source", "row 9") in kinds
    assert [t["study_id"] for t in result.text] == ["t:1", "t:2"]
    assert result.text[1]["text"] == "Findings: Heart size normal." and result.text[0]["split"] in ("train", "val",
                                                                                                     "test")
    assert sum(len(v) for v in result.examples.values()) == 8  # 10 studies - the failing one - the missing image
    out = write_dataset(result)
    skipped = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert len(skipped) == len(result.skipped) == 4
    manifest = json.loads((out / "manifest.json").read_text())
    assert sum(manifest["counts"]["examples"].values()) == 8 and manifest["counts"]["skipped"]["task"] == 1


def test_empty_result_bad_source_spec_and_fractions_are_clear_errors(fake_registry, tmp_path: Path) -> None:
    _populate(fake_registry, tmp_path, "a", [make_study(tmp_path / "img", "s:1", "p1", label=None)])
    with pytest.raises(ValueError, match="no examples"):
        curate(_config(tmp_path, ["a"]))
    with pytest.raises(ValueError, match="NAME=PATH"):
        parse_source_spec("tb")
    with pytest.raises(ValueError, match="does not exist"):
        curate(_config(tmp_path, ["missing"]))
    with pytest.raises(ValueError, match="--split"):
        curate(_config(tmp_path, ["a"], fractions=(0.5, 0.2, 0.2)))
    with pytest.raises(ValueError, match="unknown task"):
        curate(_config(tmp_path, ["a"], tasks=["nope"]))


def test_other_organs_are_left_out_unless_kept(fake_registry, tmp_path: Path) -> None:
    studies = [make_study(tmp_path / "img", f"s:{i}", f"p{i}") for i in range(6)]
    studies[1].meta["organ"] = "head"
    studies[2].meta["organ"] = "Chest"  # spelt as a source may spell it
    _populate(fake_registry, tmp_path, "a", studies)
    result = curate(_config(tmp_path, ["a"]))
    assert "s:1" not in result.study_split and "s:2" in result.study_split
    (left_out,) = [r for r in result.skipped if r["kind"] == "not_chest"]
    assert left_out["study_id"] == "s:1" and left_out["reason"].startswith("head image, not a chest film")
    kept = curate(_config(tmp_path, ["a"], keep_non_chest=True))
    assert "s:1" in kept.study_split and not any(r["kind"] == "not_chest" for r in kept.skipped)
