"""One front door: every job is a `cxrvlm` subcommand; no other module runs as `python -m`."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from cxrvlm import cli

SRC = Path(cli.__file__).resolve().parent


def _has_main_block(path: Path) -> bool:
    """`if __name__ == "__main__":` at a module's top level."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) and "__name__" in ast.unparse(node.test):
            return True
    return False


def test_only_the_cli_module_runs_as_a_script() -> None:
    scripts = sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if _has_main_block(p))
    assert scripts == ["cli.py"]


@pytest.mark.parametrize("name", [*cli.COMMANDS, *cli.HIDDEN])
def test_every_subcommand_module_has_configure_and_run(name) -> None:
    module = importlib.import_module(cli.COMMANDS[name][0] if name in cli.COMMANDS else cli.HIDDEN[name])
    assert callable(module.configure) and callable(module.run)


def test_hidden_subcommands_work_but_are_not_listed(capsys) -> None:
    assert cli.main([]) == 2
    listing = capsys.readouterr().out
    assert all(name in listing for name in ("train-probe", "ship", "label-reports", "render-phantom"))
    assert not any(name in listing for name in cli.HIDDEN)
    with pytest.raises(SystemExit) as e:
        cli.main(["bench-interpret", "--help"])
    assert e.value.code == 0 and "--repeats" in capsys.readouterr().out
    assert cli.main(["bench-interpret", "--repeats", "0"]) == 2
    assert "--repeats must be >= 1" in capsys.readouterr().err


def test_an_unknown_subcommand_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["train_probe"])
    assert e.value.code == 2 and "invalid choice: 'train_probe'" in capsys.readouterr().err
