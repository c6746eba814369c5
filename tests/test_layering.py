"""Dependencies point one way: dag <- runner <- models <- scheduler <- operators <-
flowfile <- integrations <- server <- cli. Every import counts, inside functions and under
``TYPE_CHECKING`` too, since a cycle there is a cycle for a reader and a type checker.
And inside a layer no two modules import each other, even through others or only
for typing (the imports a module makes as it is imported)."""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import networkx as nx
import pytest

import smmf_flow

#: lowest first; ``errors``, ``sandbox``, ``timed_regex`` and ``telemetry`` (the
#: switch, and what builds a tracer) are leaves every layer may use
ORDER = [
    "errors",
    "sandbox",
    "timed_regex",
    "telemetry",
    "dag",
    "awel",
    "runner",
    "models",
    "scheduler",
    "operators",
    "flowfile",
    "integrations",
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


# --- no circles between modules ----------------------------------------------------------


def module_name(path: Path) -> str:
    """The dotted name of a source file of smmf_flow or of the operator library."""
    if path.is_relative_to(OPERATORS):
        parts = ("smmf_flow", "operators", *path.relative_to(OPERATORS).with_suffix("").parts)
    else:
        parts = ("smmf_flow", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports a module makes or declares as it is imported: at its top level,
    under ``if TYPE_CHECKING:`` and in ``try`` blocks; not inside functions or classes
    (which run later, when every module is there)."""
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            pending.extend(ast.iter_child_nodes(node))


def import_targets(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool, modules: set[str]
) -> set[str]:
    """The modules an import names: ``from a import b`` names ``a.b`` when that is a
    module, else ``a`` itself; relative imports are resolved against ``module``."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, base] if base else package)
    return {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}


def import_graph() -> nx.DiGraph[str]:
    """Module → the modules of smmf_flow and the operator library it imports."""
    files = {module_name(path): path for path in [*PACKAGE.rglob("*.py"), *OPERATORS.rglob("*.py")]}
    graph: nx.DiGraph[str] = nx.DiGraph()
    for module, path in files.items():
        for node in module_level_imports(ast.parse(path.read_text(encoding="utf-8"))):
            targets = import_targets(node, module, path.name == "__init__.py", set(files))
            graph.add_edges_from((module, t) for t in targets if t in files and t != module)
    return graph


def import_circles() -> list[str]:
    """Each circle of module-level imports, as ``a -> b -> a``."""
    circles = []
    for cycle in nx.simple_cycles(import_graph()):
        start = cycle.index(min(cycle))
        ordered = cycle[start:] + cycle[:start]
        circles.append(" -> ".join([*ordered, ordered[0]]))
    return sorted(circles)


def test_no_module_imports_itself_through_others() -> None:
    assert import_circles() == []


def test_the_check_sees_a_circle_even_a_typing_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check can fail: two dag modules that import each other, one of them only
    for typing, and a relative import."""
    (tmp_path / "dag").mkdir()
    (tmp_path / "dag" / "__init__.py").write_text("")
    (tmp_path / "dag" / "a.py").write_text("from smmf_flow.dag.b import B\n")
    (tmp_path / "dag" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import A\n"
        "def later():\n    from smmf_flow.dag import a\n"
    )
    monkeypatch.setattr(f"{__name__}.PACKAGE", tmp_path)
    monkeypatch.setattr(f"{__name__}.OPERATORS", tmp_path / "none")
    assert import_circles() == ["smmf_flow.dag.a -> smmf_flow.dag.b -> smmf_flow.dag.a"]
