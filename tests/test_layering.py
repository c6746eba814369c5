"""Dependencies point one way: dag <- runner <- models <- scheduler <- operators <-
flowfile <- server <- cli. Every import counts, inside functions and under
``TYPE_CHECKING`` too, since a cycle there is a cycle for a reader and a type checker."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

import smmf_flow

#: lowest first; ``errors`` and ``sandbox`` are leaves every layer may use
ORDER = [
    "errors",
    "sandbox",
    "dag",
    "runner",
    "models",
    "scheduler",
    "operators",
    "flowfile",
    "server",
    "cli",
]
#: the package root re-exports dag and runner, so it stands where runner does
ROOT_RANK = ORDER.index("runner")
PACKAGE = Path(smmf_flow.__file__).parent
_spec = importlib.util.find_spec("smmf_flow.operators")  # found, not imported
assert _spec is not None and _spec.submodule_search_locations
OPERATORS = Path(next(iter(_spec.submodule_search_locations)))


def layer_of(module: str) -> str | None:
    """The layer a dotted module name belongs to (None: not smmf_flow)."""
    parts = module.split(".")
    if parts[0] != "smmf_flow":
        return None
    return parts[1] if len(parts) > 1 else "smmf_flow"


def rank(layer: str) -> int:
    return ROOT_RANK if layer == "smmf_flow" else ORDER.index(layer)


def sources() -> list[tuple[str, Path]]:
    """(layer, file) for every module of smmf_flow and of the operator library."""
    found = [("operators", path) for path in sorted(OPERATORS.rglob("*.py"))]
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).parts
        if relative == ("__init__.py",):
            continue
        found.append((relative[0].removesuffix(".py"), path))
    return found


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in ``path``, names of ``from smmf_flow
    import x`` counted as modules ``smmf_flow.x`` when they are subpackages."""
    modules: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "smmf_flow":
                modules += [
                    (node.lineno, f"smmf_flow.{alias.name}")
                    if alias.name in ORDER
                    else (node.lineno, "smmf_flow")
                    for alias in node.names
                ]
            else:
                modules.append((node.lineno, node.module))
    return modules


def upward_imports() -> list[str]:
    wrong = []
    for layer, path in sources():
        for line, module in imported(path):
            target = layer_of(module)
            if target is None or target == layer:
                continue
            if rank(target) > rank(layer):
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {layer} imports {module}")
    return wrong


def test_every_module_is_in_a_known_layer() -> None:
    assert {layer for layer, _ in sources()} <= set(ORDER)


def test_no_import_points_up_the_layers() -> None:
    assert upward_imports() == []


def test_the_check_sees_an_upward_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check can fail: a dag module that imports the runner (even only for typing)."""
    bad = tmp_path / "dag" / "bad.py"
    bad.parent.mkdir()
    bad.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from smmf_flow.runner.dag import DAG\n"
    )
    monkeypatch.setattr(f"{__name__}.PACKAGE", tmp_path)
    monkeypatch.setattr(f"{__name__}.OPERATORS", tmp_path / "none")
    assert upward_imports() == [f"{tmp_path.name}/dag/bad.py:3: dag imports smmf_flow.runner.dag"]
