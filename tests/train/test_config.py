import json
from pathlib import Path

import pytest

from cxrvlm.train.config import load_config


def test_defaults_and_dotted_overrides(tmp_path):
    cfg = load_config(None, ["stages.0.steps=7", "model_overrides.depth=2", "mixture=proportional", "lr=0.01"])
    assert cfg.total_steps == 7 and cfg.model_overrides == {"depth": 2}
    assert cfg.mixture == "proportional" and cfg.lr == 0.01


def test_stages_from_file(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"stages": [{"name": "warmup", "steps": 5, "freeze": ["decoder"]}, {"name": "all", "steps": 10}]}))
    cfg = load_config(p)
    assert [s.name for s in cfg.stages] == ["warmup", "all"]
    assert cfg.stage_at(4)[1].name == "warmup" and cfg.stage_at(5)[1].name == "all"


@pytest.mark.parametrize(
    "overrides, message",
    [(["bogus=1"], "unknown config key"), (["stages.0.bogus=1"], "stage 0: unknown key"), (["lr"], "not key=value"),
     (["batch_size=0"], "batch_size"), (["stages.3.steps=1"], "not an index")],
)
def test_bad_config_is_a_clear_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, overrides)


def test_missing_or_invalid_file(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_config(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_config(tmp_path / "bad.json")


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[2] / "configs").rglob("*.json")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path) -> None:
    """A recipe in configs/ with a misspelt key or a bad stage fails here, not an hour into a run."""
    cfg = load_config(path)
    assert cfg.total_steps > 0


def _write(path: Path, doc: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def test_an_experiment_names_its_base_and_only_what_it_changes(tmp_path) -> None:
    _write(tmp_path / "recipe.json", {"_recipe": "notes", "lr": 0.01, "seed": 3, "init_from": {"a": "x.safetensors"},
                                      "model_overrides": {"depth": 2, "width": 8},
                                      "stages": [{"name": "one", "steps": 5}, {"name": "two", "steps": 6}]})
    _write(tmp_path / "experiments" / "mid.json", {"base": "../recipe.json", "_experiment": "x", "seed": 4,
                                                   "model_overrides": {"width": 16, "depth": None}})
    exp = _write(tmp_path / "experiments" / "deep" / "exp.json",
                 {"base": "../mid.json", "init_from": None, "stages": [{"name": "only", "steps": 9}]})
    cfg = load_config(exp, ["model_overrides.heads=2"])
    assert cfg.lr == 0.01 and cfg.seed == 4  # from the recipe, from the middle file
    assert cfg.model_overrides == {"width": 16, "heads": 2}  # dicts merge; null removes a key
    assert cfg.init_from == {}  # null: back to the default
    assert [s.name for s in cfg.stages] == ["only"]  # lists replace wholesale


def test_a_base_cycle_or_a_bad_base_is_a_clear_error(tmp_path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    _write(a, {"base": "b.json"})
    _write(b, {"base": "a.json"})
    with pytest.raises(ValueError, match=r"cycle: .*a\.json -> .*b\.json -> .*a\.json"):
        load_config(a)
    _write(a, {"base": "a.json"})
    with pytest.raises(ValueError, match="cycle"):
        load_config(a)
    _write(a, {"base": "missing.json"})
    with pytest.raises(ValueError, match="missing.json not found"):
        load_config(a)
    _write(a, {"base": 3})
    with pytest.raises(ValueError, match="'base' must be the path"):
        load_config(a)
    _write(a, [1])
    with pytest.raises(ValueError, match="expected a JSON object"):
        load_config(a)


CONFIGS = Path(__file__).parents[2] / "configs"
EXPERIMENTS = sorted((CONFIGS / "experiments").glob("*.json"))


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_an_experiment_is_its_base_plus_what_it_names(path) -> None:
    """An experiment differs from its recipe exactly in the top-level keys the file sets, nowhere else."""
    doc = json.loads(path.read_text())
    base = (path.parent / doc["base"]).resolve()
    assert base.is_file() and base.parent == CONFIGS, doc["base"]  # experiments vary a recipe of configs/
    named = {k for k in doc if not k.startswith("_") and k != "base"}
    assert named, "an experiment that changes nothing"
    ours, theirs = load_config(path).to_json(), load_config(base).to_json()
    assert {k for k in ours if ours[k] != theirs[k]} == named


def test_every_experiment_has_a_row_in_experiments_md() -> None:
    text = (CONFIGS / "EXPERIMENTS.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `experiments/")]
    assert sorted(r.split("`")[1] for r in rows) == [f"experiments/{p.name}" for p in EXPERIMENTS]
    assert "python -m" not in text
    assert all("cxrvlm train --config configs/experiments/" in r for r in rows)  # each names its reproduction


def test_the_two_balance_configs_no_longer_share_a_name() -> None:
    names = [p.name for p in CONFIGS.rglob("*.json")]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
