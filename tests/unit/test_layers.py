"""The layering rule, read from the code: every import of every module under mirror/ (also
those inside functions and under TYPE_CHECKING) points down the layers, and nothing imports
in a circle. See docs/architecture.md for the picture.

    cli -> app (composition) -> http -> serving -> sources, policy, scan, trust, audit,
    store, upstream -> base (errors, config, index, files, heap, metrics, logs, request_ids,
    yamlfile)
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "mirror"

BASE = "base"
PACKAGES = (
    "audit",
    "cli",
    "http",
    "policy",
    "scan",
    "serving",
    "sources",
    "store",
    "trust",
    "upstream",
)
# Which layer may import which (besides itself). Base is everything at the top of mirror/
# except the composition root (mirror.app) and the entry point (mirror.__main__, as cli).
ALLOWED: dict[str, frozenset[str]] = {
    BASE: frozenset(),
    "store": frozenset({BASE}),
    "upstream": frozenset({BASE}),
    "audit": frozenset({BASE}),
    "scan": frozenset({BASE}),
    "policy": frozenset({BASE, "scan"}),
    "trust": frozenset({BASE, "upstream", "store"}),
    "sources": frozenset({BASE, "policy", "scan", "upstream"}),
    "serving": frozenset(
        {BASE, "sources", "policy", "scan", "trust", "audit", "store", "upstream"}
    ),
    "http": frozenset({BASE, "serving", "sources"}),
    "app": frozenset({BASE, "http", "serving", "sources"}),
    "cli": frozenset(
        {BASE, "app", "serving", "sources", "policy", "scan", "trust", "audit", "store", "upstream"}
    ),
}
# Some allowed edges are narrower than the whole layer: decisions use the scan's result
# types, never the scanner itself.
ONLY: dict[tuple[str, str], frozenset[str]] = {
    ("policy", "scan"): frozenset({"mirror.scan.report"}),
    ("sources", "scan"): frozenset({"mirror.scan.report"}),
}
# The only layers that may know HTTP (aiohttp, httptools, h2, hyperframe): the front door
# and handlers, the composition around them, and the one client that calls out.
HTTP_LIBRARIES = ("aiohttp", "httptools", "h2", "hyperframe")
KNOWS_HTTP = frozenset({"http", "app", "upstream"})


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    line: int
    target: str  # the imported module, resolved (mirror.x.y) or a third-party top name

    def __str__(self) -> str:
        return f"{self.module} (line {self.line}) imports {self.target}"


def all_modules(root: Path = ROOT) -> dict[str, Path]:
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def layer(module: str) -> str:
    parts = module.split(".")
    if module == "mirror.app":
        return "app"
    if module == "mirror.__main__":
        return "cli"
    if len(parts) > 1 and parts[1] in PACKAGES:
        return parts[1]
    return BASE


def imports_of(module: str, source: str, known: set[str]) -> Iterator[Import]:
    """Every import in `source`, anywhere in it, resolved against the `known` modules."""
    is_package = module in known and any(k.startswith(module + ".") for k in known)
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x / from ..y import z
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield Import(module, node.lineno, candidate if candidate in known else base)


def project_imports() -> list[Import]:
    modules = all_modules()
    known = set(modules)
    found: list[Import] = []
    for name, path in modules.items():
        found.extend(imports_of(name, path.read_text(encoding="utf-8"), known))
    return found


def violations(found: list[Import], known: set[str]) -> list[str]:
    problems = []
    for imp in found:
        if imp.target != "mirror" and not imp.target.startswith("mirror."):
            top = imp.target.split(".")[0]
            if top in HTTP_LIBRARIES and layer(imp.module) not in KNOWS_HTTP:
                problems.append(f"{imp}: only {sorted(KNOWS_HTTP)} may use {top}")
            continue
        if imp.target not in known:
            problems.append(f"{imp}: no such module")
            continue
        source, target = layer(imp.module), layer(imp.target)
        if source == target:
            continue
        if target not in ALLOWED[source]:
            may = ", ".join(sorted(ALLOWED[source])) or "nothing"
            problems.append(f"{imp}: {source} -> {target} points up (it may use: {may})")
        elif (source, target) in ONLY and imp.target not in ONLY[(source, target)]:
            only = ", ".join(sorted(ONLY[(source, target)]))
            problems.append(f"{imp}: {source} may use only {only} from {target}")
    return problems


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node, or a node importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                out.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return out


def module_graph(found: list[Import]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for imp in found:
        if imp.target.startswith("mirror") and imp.target != imp.module:
            edges.setdefault(imp.module, set()).add(imp.target)
    return edges


def test_every_import_points_down_the_layers() -> None:
    """No module imports a layer above its own (or a module that does not exist)."""
    found = project_imports()
    assert len(found) > 300  # the whole package was read
    problems = violations(found, set(all_modules()))
    assert not problems, "imports against the layering rule:\n" + "\n".join(problems)


def test_no_import_cycles_between_modules_or_layers() -> None:
    """Neither modules nor layers import each other in a circle (also not lazily)."""
    found = project_imports()
    module_cycles = cycles(module_graph(found))
    assert not module_cycles, "module import cycles: " + "; ".join(
        " <-> ".join(c) for c in module_cycles
    )
    layers: dict[str, set[str]] = {}
    for imp in found:
        if imp.target.startswith("mirror") and layer(imp.module) != layer(imp.target):
            layers.setdefault(layer(imp.module), set()).add(layer(imp.target))
    assert not cycles(layers), f"layer cycles: {cycles(layers)}"


def test_the_allowed_edges_form_no_cycle() -> None:
    """The table itself is a strict order: some layer must be at the bottom, none loops."""
    assert not cycles({k: set(v) for k, v in ALLOWED.items()})


@pytest.mark.parametrize(
    ("module", "source", "problem"),
    [
        ("mirror.store.extra", "from mirror.http.edge import edge\n", "store -> http points up"),
        ("mirror.policy.extra", "def f():\n    import mirror.serving.gate\n", "policy -> serving"),
        (
            "mirror.scan.extra",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from mirror.audit import AuditEvent\n",
            "scan -> audit points up",
        ),
        ("mirror.policy.extra", "from mirror.scan.rust import scan_rust\n", "may use only"),
        ("mirror.serving.extra", "import aiohttp\n", "may use aiohttp"),
        ("mirror.serving.extra", "from mirror.server import Mirror\n", "no such module"),
        ("mirror.errors", "from mirror.policy.decision import Decision\n", "base -> policy"),
    ],
)
def test_an_upward_import_is_reported_with_its_place(
    module: str, source: str, problem: str
) -> None:
    """The checker itself: an upward import (top level, in a function, under TYPE_CHECKING)
    fails the rule, and the message names the module, the line and the import."""
    known = set(all_modules()) | {module}
    problems = violations(list(imports_of(module, source, known)), known)
    assert len(problems) == 1 and problem in problems[0], problems
    assert problems[0].startswith(f"{module} (line ")


def test_a_cycle_is_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]


def test_one_lock_helper() -> None:
    """Only mirror.files takes file locks (`fcntl`); everything else uses its helper."""
    users = sorted({i.module for i in project_imports() if i.target == "fcntl"})
    assert users == ["mirror.files"]


def test_the_documented_table_is_the_enforced_one() -> None:
    """docs/architecture.md shows the allowed edges; it must say what this test enforces."""
    text = (ROOT.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = text.split("| layer | may import (besides itself) |", 1)[1].split("\n\n", 1)[0]
    documented = {}
    for row in table.strip().splitlines()[1:]:
        layer_cell, imports_cell = (cell.strip() for cell in row.strip("|").split("|"))
        names = {part.strip().split()[0] for part in imports_cell.split(",")} - {"nothing"}
        documented[layer_cell.split()[0]] = frozenset(names)
    assert documented == ALLOWED
