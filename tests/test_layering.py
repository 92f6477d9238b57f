"""The layers hold: ``otel_bridge`` and ``exporters`` never load ``baseplate``, ``otel_bridge``
never loads ``exporters``, and no module of the project takes part in an import cycle.

The cycle check reads every import statement, those inside functions included (a lazy import
is still a dependency); imports under ``if TYPE_CHECKING:`` are for the type checker only and
are left out.
"""

from __future__ import annotations

import ast
import graphlib
import json
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("baseplate", "otel_bridge", "exporters")
GENERATED = REPO / "baseplate" / "thrift" / "gen"


def _modules() -> dict[str, pathlib.Path]:
    modules = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            if GENERATED in path.parents:
                continue
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for statement in node.body:
                skipped.update(id(inner) for inner in ast.walk(statement))
    return skipped


def _resolve(name: str, modules: dict[str, pathlib.Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (anywhere but under TYPE_CHECKING)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        skipped = _type_checking_nodes(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parents = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parents, *([node.module] if node.module else [])])
                # `from pkg import module` depends on the module, `from module import name`
                # on the module
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            for target in targets:
                resolved = _resolve(target, modules)
                if resolved is not None and resolved != name:
                    graph[name].add(resolved)
    return graph


def test_no_import_cycle() -> None:
    sorter = graphlib.TopologicalSorter(import_graph())
    try:
        sorter.prepare()
    except graphlib.CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")


def test_lower_layers_import_no_higher_one_statically() -> None:
    wrong = []
    for module, imported in import_graph().items():
        layer = module.split(".")[0]
        for target in imported:
            target_layer = target.split(".")[0]
            if layer in ("otel_bridge", "exporters") and target_layer == "baseplate":
                wrong.append(f"{module} -> {target}")
            if layer == "otel_bridge" and target_layer == "exporters":
                wrong.append(f"{module} -> {target}")
    assert wrong == []


_LOAD_ALL = """
import importlib, json, sys
loaded = {}
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize("layer", ["otel_bridge", "exporters"])
def test_loading_a_lower_layer_loads_no_higher_one(layer: str) -> None:
    names = sorted(name for name in _modules() if name.split(".")[0] == layer)
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_ALL, *names],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = json.loads(result.stdout)
    assert [name for name in loaded if name.split(".")[0] == "baseplate"] == []
    if layer == "otel_bridge":
        assert [name for name in loaded if name.split(".")[0] == "exporters"] == []
