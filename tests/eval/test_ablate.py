"""`cxrvlm ablate --quick` on the tiny folder: every variant trained, evaluated and tabulated; a rerun resumes
without retraining; a pretrained backbone adds its zero-shot row."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cxrvlm.cli import main
from cxrvlm.eval.ablate import AblationSpec, ablation_table, column_key, plan_variants, with_steps

# a model even smaller than the quick preset's, so each variant trains in well under a second
TINY = ["model_overrides.image_size=32", "model_overrides.n_layer=1", "model_overrides.n_embd=32",
        "model_overrides.vit_width=32", "model_overrides.max_text_len=128", "tokenizer_vocab_size=400",
        "batch_size=4"]
ARGS = ["--quick", "--steps", "2", "--tasks", "classify,detect", "--limit", "4", "--max-new-tokens", "8"]


@pytest.fixture(scope="module")
def ablation(curated: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ablate") / "quick"
    assert main(["ablate", "--data", str(curated), "--out", str(out), *ARGS, *TINY]) == 0
    return out


def test_quick_ablation_table_has_every_variant(ablation: Path) -> None:
    table = json.loads((ablation / "ablation.json").read_text())
    names = [r["variant"] for r in table["rows"]]
    assert names == ["single:classify", "single:detect", "joint:inverse", "joint:proportional", "joint:fixed"]
    assert table["steps"] == 2 and table["seeds"] == [0]
    assert table["columns"]["detect"] in ("map_50", "map")
    rows = {r["variant"]: r["cells"] for r in table["rows"]}
    assert set(rows["single:classify"]) == {"classify"} and set(rows["single:detect"]) == {"detect"}
    for joint in names[2:]:
        assert set(rows[joint]) == {"classify", "detect"}
        assert all(c["key"] == table["columns"][t] for t, c in rows[joint].items())
    md = (ablation / "ablation.md").read_text()
    assert all(f"| {n} |" in md for n in names)
    for n in names:  # each variant: a finished model, its training config, and its evaluation report
        run = ablation / "runs" / n.replace(":", "-") / "seed0"
        assert (run / "final" / "config.json").is_file() and (run / "eval-val" / "report.html").is_file()
        cfg = json.loads((run / "config.json").read_text())
        assert cfg["stages"][0]["steps"] == 2 and cfg["seed"] == 0
    fixed = json.loads((ablation / "runs" / "joint-fixed" / "seed0" / "config.json").read_text())
    assert fixed["mixture"] == "fixed" and set(fixed["mixture_ratios"]) == {"classify", "detect"}
    single = json.loads((ablation / "runs" / "single-detect" / "seed0" / "config.json").read_text())
    assert single["tasks"] == ["detect"]


def test_rerun_resumes_without_training_or_evaluating(ablation: Path, curated: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import cxrvlm.eval.runner
    import cxrvlm.train.loop

    def refuse(*a, **k):
        raise AssertionError("a finished variant was run again")

    monkeypatch.setattr(cxrvlm.train.loop.Trainer, "run", refuse)
    monkeypatch.setattr(cxrvlm.eval.runner, "evaluate", refuse)
    before = (ablation / "ablation.json").read_text()
    assert main(["ablate", "--data", str(curated), "--out", str(ablation), *ARGS, *TINY]) == 0
    after = json.loads((ablation / "ablation.json").read_text())
    assert [r["cells"] for r in after["rows"]] == [r["cells"] for r in json.loads(before)["rows"]]


def test_pretrained_backbone_adds_zero_shot_row(curated: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "pre"
    assert main(["ablate", "--data", str(curated), "--out", str(out), "--quick", "--steps", "1", "--tasks", "classify",
                 "--strategies", "inverse", "--limit", "3", "--max-new-tokens", "4", "--pretrained",
                 str(tiny_model_dir), "batch_size=2"]) == 0
    table = json.loads((out / "ablation.json").read_text())
    assert [r["variant"] for r in table["rows"]] == ["zero-shot", "single:classify", "joint:inverse"]
    joint = json.loads((out / "runs" / "joint-inverse" / "seed0" / "config.json").read_text())
    assert joint["model"] == str(tiny_model_dir)  # trained variants start from the pretrained backbone
    assert table["rows"][0]["cells"]["classify"]["mean"] is not None


def test_plan_and_budget() -> None:
    names = [v.name for v in plan_variants(["a", "b"], ("inverse", "fixed"), None, {"c": 1.0})]
    assert names == ["single:a", "single:b", "joint:inverse"]  # no ratio for a or b: joint:fixed left out
    with pytest.raises(ValueError, match="unknown mixture strategy"):
        plan_variants(["a"], ("random",))
    base = {"stages": [{"steps": 100}, {"steps": 300}], "warmup_steps": 50, "save_every": 200}
    scaled = with_steps(base, 40)
    assert [s["steps"] for s in scaled["stages"]] == [10, 30] and scaled["warmup_steps"] == 4
    assert base["stages"][0]["steps"] == 100  # the base is not modified


def test_column_key_is_one_metric_per_task_and_seeds_average() -> None:
    runs = [{"variant": "x", "seed": 0, "tasks": {"classify": {"tb_auroc": float("nan"), "finding_auroc": 0.5}}},
            {"variant": "y", "seed": 0, "tasks": {"classify": {"tb_auroc": 0.8, "tb_auroc_ci_low": 0.6,
                                                               "tb_auroc_ci_high": 0.9, "finding_auroc": 0.7}}},
            {"variant": "z", "seed": 0, "tasks": {"classify": {"tb_auroc": 0.6}}},
            {"variant": "z", "seed": 1, "tasks": {"classify": {"tb_auroc": 0.7}}}]
    assert column_key("classify", [r["tasks"]["classify"] for r in runs]) == "tb_auroc"
    spec = AblationSpec(data="d", out="o", base={"stages": [{"steps": 5}]}, tasks=["classify"], seeds=[0, 1])
    variants = plan_variants(["classify"], ())
    for name in "xyz":
        variants.append(type(variants[0])(name, "joint"))
    table = ablation_table(spec, variants, runs)
    cells = {r["variant"]: r["cells"].get("classify") for r in table["rows"]}
    assert cells["x"]["mean"] is None  # undefined, not replaced by another metric
    assert (cells["y"]["mean"], cells["y"]["ci_low"], cells["y"]["ci_high"]) == (0.8, 0.6, 0.9)
    assert cells["z"]["mean"] == pytest.approx(0.65) and cells["z"]["sd"] == pytest.approx(0.0707, abs=1e-3)
