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
