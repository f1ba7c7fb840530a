"""Resolving names in one Rust file through its `use` declarations to the paths they mean.

Resolution is per file: every `use` in the file (any scope) feeds one alias table, which is
an over-approximation, never an under-approximation, of Rust scoping.
"""

from __future__ import annotations

from collections.abc import Iterator

from tree_sitter import Node

from mirror.errors import ArchiveError
from mirror.scan.report import Capability
from mirror.scan.rules import (
    BARE,
    BARE_CALLS,
    Path_,
    absolute,
    match_call,
    match_path,
    relevant,
)
from mirror.scan.syntax import MAX_PATH_SEGMENTS, NAME_NODES, PATH_NODES, segments, text

Found = tuple[Capability, Node, str]


class AliasTable:
    """Names bound by `use` (and `extern crate .. as`) to paths that lead to a capability."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.aliases: dict[str, Path_] = {}
        self.globs: list[Path_] = []

    def collect_use(self, node: Node, prefix: Path_, depth: int = 0) -> None:
        if depth > MAX_PATH_SEGMENTS:
            # Real code never nests `use` lists this deep; skipping would hide the import.
            raise ArchiveError(f"{self.file}: `use` nested more than {MAX_PATH_SEGMENTS} deep")
        kind = node.type
        if kind in PATH_NODES or kind in NAME_NODES:
            path = segments(node)
            if path is None:
                return
            full = prefix + path
            name = full[-2] if path == ("self",) and len(full) > 1 else full[-1]
            if path == ("self",):
                full = full[:-1]
            self.alias(name, full)
        elif kind == "use_as_clause":
            src, alias = node.child_by_field_name("path"), node.child_by_field_name("alias")
            path = segments(src) if src is not None else None
            if path is not None and alias is not None:
                full = prefix + path
                self.alias(text(alias), full[:-1] if full[-1:] == ("self",) else full)
        elif kind == "scoped_use_list":
            head = node.child_by_field_name("path")
            path = segments(head) if head is not None else ()
            body = node.child_by_field_name("list")
            if path is not None and body is not None:
                self.collect_use(body, prefix + path, depth + 1)
        elif kind == "use_list":
            for child in node.named_children:
                self.collect_use(child, prefix, depth + 1)
        elif kind == "use_wildcard":
            inner = node.named_children[0] if node.named_children else None
            path = segments(inner) if inner is not None else ()
            if path is not None and relevant(absolute(prefix + path)):
                self.globs.append(absolute(prefix + path))

    def alias(self, name: str, path: Path_) -> None:
        # Only names that lead to a capability matter; the rest would just slow resolution.
        path = absolute(path)
        if name != "_" and relevant(path):
            self.aliases[name] = path

    def resolve(self, path: Path_) -> Path_ | None:
        path = absolute(path)
        if not path or path[0] in ("crate", "self", "super", "Self"):
            return None
        if path[0] in self.aliases:
            return self.aliases[path[0]] + path[1:]
        return path

    def use_findings(self, node: Node, prefix: Path_, depth: int = 0) -> Iterator[Found]:
        """What a `use` declaration imports that grants a capability."""
        if depth > MAX_PATH_SEGMENTS:
            return
        kind = node.type
        if kind in PATH_NODES or kind in NAME_NODES or kind == "use_as_clause":
            src = node.child_by_field_name("path") if kind == "use_as_clause" else node
            path = segments(src) if src is not None else None
            if path is not None:
                full = absolute(prefix + path)
                if full and full[-1] == "self":
                    full = full[:-1]
                cap = match_path(full)
                if cap is not None:
                    yield cap, node, "use " + "::".join(full)
        elif kind == "scoped_use_list":
            head = node.child_by_field_name("path")
            path = segments(head) if head is not None else ()
            body = node.child_by_field_name("list")
            if path is not None and body is not None:
                yield from self.use_findings(body, prefix + path, depth + 1)
        elif kind == "use_list":
            for child in node.named_children:
                yield from self.use_findings(child, prefix, depth + 1)
        elif kind == "use_wildcard":
            inner = node.named_children[0] if node.named_children else None
            path = segments(inner) if inner is not None else ()
            cap = match_path(absolute(prefix + path)) if path is not None else None
            if cap is not None and path is not None:
                yield cap, node, "use " + "::".join((*absolute(prefix + path), "*"))

    def path_findings(self, node: Node, path: Path_ | None) -> Iterator[Found]:
        """What a path used in code grants, resolved through aliases, globs and bare names."""
        if path is None:
            return
        resolved = self.resolve(path)
        if resolved is None:
            return
        cap = match_path(resolved)
        if cap is None and path[0] not in self.aliases:
            for glob in self.globs:
                cap = match_path(glob + path)
                if cap is not None:
                    resolved = glob + path
                    break
        if cap is None and len(path) == 1 and path[0] in BARE:
            cap = BARE[path[0]]
        if cap is None and path[:2] in BARE_CALLS and path[0] not in self.aliases:
            cap = BARE_CALLS[path[:2]]
        if cap is not None:
            yield cap, node, "::".join(resolved)
        if resolved[0] == "libc" and _called(node):
            for called_cap in match_call(resolved):
                yield called_cap, node, "::".join(resolved)

    def call_findings(self, node: Node, path: Path_ | None) -> Iterator[Found]:
        """What calling `path` grants beyond naming it (`libc::open(..)`: FFI and FS), for a
        call the caller has seen (`libc::$fn(..)` in a macro body)."""
        if path is None:
            return
        resolved = self.resolve(path)
        if resolved is None:
            return
        for cap in match_call(resolved):
            yield cap, node, "::".join(resolved)


def _called(node: Node) -> bool:
    """Is the path `node` the function of a call (`libc::memchr(..)`, not `libc::c_int`)?
    (One sibling step: asked only of paths into libc.)"""
    after = node.next_sibling
    return after is not None and after.type == "arguments"
