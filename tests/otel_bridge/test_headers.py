"""otel_bridge.propagation.headers is the one place trace and Edge-Request header names are
spelled: no other module of the project writes them as literals."""

from __future__ import annotations

import ast
from pathlib import Path

from otel_bridge.propagation import headers

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("baseplate", "otel_bridge", "exporters")

# Names distinctive enough to find as literals ("Trace", "Span" ... are ordinary words too).
DISTINCTIVE = [
    value
    for name, value in vars(headers).items()
    if name.isupper() and isinstance(value, str) and "-" in value
]


def literals(path: Path) -> list[tuple[int, str | bytes]]:
    """The str and bytes constants of a module, docstrings included."""
    tree = ast.parse(path.read_text(), str(path))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes))
    ]


def test_the_distinctive_names_are_the_header_names() -> None:
    assert {"X-Trace", "X-B3-TraceId", "B3-TraceId", "X-Edge-Request", "Edge-Request"} <= set(
        DISTINCTIVE
    )


def test_no_other_module_spells_a_header_name() -> None:
    spelled = {name.lower() for name in DISTINCTIVE}
    spelled |= {name.encode() for name in spelled}
    owner = Path(headers.__file__).resolve()
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if path.resolve() == owner or "gen" in path.relative_to(REPO).parts:
                continue
            for line, value in literals(path):
                folded = value.lower()
                if folded in spelled:
                    found.append(f"{path.relative_to(REPO)}:{line}: {value!r}")
    assert found == []


def test_0_28_names_are_aliases_of_the_one_constant() -> None:
    from baseplate.integration import pyramid, thrift

    assert pyramid.EDGE_REQUEST_HEADER is headers.EDGE_REQUEST_HTTP_HEADER
    assert thrift.EDGE_REQUEST_HEADER is headers.EDGE_REQUEST_THRIFT_HEADER_BYTES
