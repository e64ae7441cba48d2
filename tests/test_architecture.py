"""The house rule that keeps a task defined once: no task name outside `cxrvlm/tasks/` (the one front door is
checked in test_cli.py; the import layers by import-linter, `lint-imports`, which `make test` runs)."""
from __future__ import annotations

import ast
from pathlib import Path

from cxrvlm.tasks import list_tasks

SRC = Path(__file__).resolve().parents[1] / "src" / "cxrvlm"
# Words that are task names and also name something else: "report" is a study's report (records.Report), the key
# of a reference report in a target, the reading's field and a metrics module. Only the other names are checked.
ALSO_NOT_A_TASK = {"report"}


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def task_name_literals(root: Path = SRC) -> list[str]:
    """`file:line: 'name'` of every string literal (docstrings aside) equal to a task name, outside tasks/."""
    names = set(list_tasks()) - ALSO_NOT_A_TASK
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.is_relative_to(root / "tasks"):
            continue
        tree = ast.parse(path.read_text())
        docs = _docstrings(tree)
        found += [f"{path.relative_to(root)}:{node.lineno}: {node.value!r}" for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and node.value in names and id(node) not in docs]
    return found


def test_no_task_name_outside_tasks():
    assert task_name_literals() == []


def test_the_check_finds_a_task_name(tmp_path):
    (tmp_path / "sneaky.py").write_text('"""docstrings may say detect."""\nRULE = {"detect": 96}\n')
    assert task_name_literals(tmp_path) == ["sneaky.py:2: 'detect'"]

