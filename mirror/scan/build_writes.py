"""Build scripts that write outside `OUT_DIR`: files created, written, copied, renamed or
removed where the path is not visibly derived from `OUT_DIR` (cargo's place for build output).

A build script runs on every machine that builds the crate, as the user building it; the
advisories saw ones that dropped payloads and edited files elsewhere. What is seen: calls
of `std::fs` (and `fs_err`, `tokio::fs`) writers and `File::create`/`OpenOptions` whose path
argument mentions neither `OUT_DIR` nor a name derived from it. Derived names are followed
through `let` (and `if let`, `for`, assignments), struct fields set from them, and the
parameters of functions in the build files called with them (for every call alike).

What is not seen: writes through another crate (`cc`, `cmake`: both write into OUT_DIR by
default), through a spawned process (`cp`, a shell), through closures, or paths passed
around in collections; a helper that writes both derived and other paths counts as derived.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from tree_sitter import Node, Query, QueryCursor

from mirror.scan.literals import shown
from mirror.scan.regions import MAX_PARSE_BYTES
from mirror.scan.report import Finding
from mirror.scan.syntax import LANGUAGE, segments, text, thread_parser

MAX_ROUNDS = 16  # passes to propagate derived names to a fixed point (real scripts need 3)
# Destination argument of each writer (by the last two path segments, or the last).
_FS_MODULES = frozenset({"fs", "fs_err"})
_FS_WRITERS = {
    "write": 0, "create_dir": 0, "create_dir_all": 0, "remove_file": 0, "remove_dir": 0,
    "remove_dir_all": 0, "copy": 1, "rename": 1, "hard_link": 1, "set_permissions": 0,
    "soft_link": 1, "symlink": 1, "symlink_file": 1, "symlink_dir": 1,
}  # fmt: skip
_FILE_CREATORS = frozenset({"create", "create_new"})
_OPEN_FOR_WRITING = re.compile(rb"\.\s*(?:write|append|create|create_new|truncate)\s*\(\s*true")
_DERIVED_ROOT = b"OUT_DIR"
_WORD = re.compile(rb"\w+")
_FIELD = re.compile(rb"\.\s*(\w+)")
_WRITERS = (b"fs::", b"fs_err", b"File::create", b"File::options", b"OpenOptions")
_QUERY = Query(
    LANGUAGE,
    """
    (let_declaration pattern: (_) @pattern value: (_) @value)
    (let_condition pattern: (_) @pattern value: (_) @value)
    (for_expression pattern: (_) @pattern value: (_) @value)
    (assignment_expression left: (_) @pattern right: (_) @value)
    (field_initializer field: (field_identifier) @field value: (_) @fvalue)
    (shorthand_field_initializer (identifier) @shorthand)
    (function_item name: (identifier) @fn parameters: (parameters) @params)
    (call_expression function: (_) @callee arguments: (arguments) @args)
    """,
)


@dataclass
class _File:
    path: str
    root: Node


def writes_outside_out_dir(sources: Mapping[str, bytes]) -> list[tuple[Finding, str, int, str]]:
    """Writes in the build files `sources` (path -> bytes) whose path is not derived from
    OUT_DIR, as (WRITE_OUTSIDE_OUT_DIR, file, line, item)."""
    files: list[_File] = []
    found: list[tuple[Finding, str, int, str]] = []
    # Nothing writes without naming a writer (`fs::`, `fs_err`, `File::create`, `OpenOptions`;
    # `use std::fs::write` names `fs::` too).
    if not any(marker in source for source in sources.values() for marker in _WRITERS):
        return found
    for path, source in sources.items():
        if len(source) > MAX_PARSE_BYTES:
            # Fail closed: what cannot be read is reported, not assumed harmless.
            item = f"{len(source)} bytes: too large to check for writes"
            found.append((Finding.WRITE_OUTSIDE_OUT_DIR, path, 1, item))
            continue
        # Every build file, writer or not: derived paths cross files through calls.
        files.append(_File(path, thread_parser().parse(source).root_node))
    captures = [(f, _captures(f.root)) for f in files]
    functions = {text(name): params for _, c in captures for name, params in c["fn"]}
    derived = _Derived()
    for _ in range(MAX_ROUNDS):
        if not any([derived.learn(c, functions) for _, c in captures]):
            break
    for file, c in captures:
        for line, item in _writes(c, derived):
            found.append((Finding.WRITE_OUTSIDE_OUT_DIR, file.path, line, item))
    return found


Matches = dict[str, list[tuple[Node, ...]]]  # kind -> the captures of each match


def _captures(root: Node) -> Matches:
    """The query's matches, grouped: "bind" (pattern, value), "field" (name, value),
    "shorthand" (name,), "fn" (name, parameters), "call" (callee, arguments)."""
    grouped: Matches = {"bind": [], "field": [], "shorthand": [], "fn": [], "call": []}
    for _, match in QueryCursor(_QUERY).matches(root):
        if "pattern" in match:
            grouped["bind"].append((match["pattern"][0], match["value"][0]))
        elif "field" in match:
            grouped["field"].append((match["field"][0], match["fvalue"][0]))
        elif "shorthand" in match:
            grouped["shorthand"].append((match["shorthand"][0],))
        elif "fn" in match:
            grouped["fn"].append((match["fn"][0], match["params"][0]))
        elif "callee" in match:
            grouped["call"].append((match["callee"][0], match["args"][0]))
    return grouped


class _Derived:
    """Names (variables, fields, parameters) known to hold a path derived from OUT_DIR."""

    def __init__(self) -> None:
        self.names: set[bytes] = set()
        self.fields: set[bytes] = set()
        # Per expression (by node id): its words, the fields it reads, whether it names
        # OUT_DIR. Asked again every round: worked out once.
        self._words: dict[int, tuple[frozenset[bytes], frozenset[bytes], bool]] = {}

    def mentions(self, node: Node) -> bool:
        words = self._words.get(node.id)
        if words is None:
            data = node.text or b""
            words = (
                frozenset(_WORD.findall(data)),
                frozenset(_FIELD.findall(data)),
                (_DERIVED_ROOT in data),
            )
            self._words[node.id] = words
        names, fields, root = words
        return root or not names.isdisjoint(self.names) or not fields.isdisjoint(self.fields)

    def learn(self, c: Matches, functions: Mapping[str, Node]) -> bool:
        """One pass over a file's bindings; True if anything new was learnt. `functions`:
        the parameter lists of the functions in all build files, by name."""
        before = (len(self.names), len(self.fields))
        for pattern, value in c["bind"]:
            if self.mentions(value):
                self._add_names(_identifiers(pattern))
        for field, value in c["field"]:
            if self.mentions(value):
                self._add_fields({field.text or b""})
        for (name,) in c["shorthand"]:
            if (name.text or b"") in self.names:
                self._add_fields({name.text or b""})
        for callee, args in c["call"]:
            path = segments(callee)
            function = path[-1] if path else _method_name(callee)
            target = functions.get(function) if function is not None else None
            if target is None:
                continue
            parameters = [p for p in target.named_children if p.type == "parameter"]
            for parameter, argument in zip(parameters, args.named_children, strict=False):
                bound = parameter.child_by_field_name("pattern")
                if bound is not None and self.mentions(argument):
                    self._add_names(_identifiers(bound))
        return (len(self.names), len(self.fields)) != before

    def _add_names(self, names: set[bytes]) -> None:
        self.names |= names

    def _add_fields(self, fields: set[bytes]) -> None:
        self.fields |= fields


def _writes(c: Matches, derived: _Derived) -> Iterator[tuple[int, str]]:
    for callee, args in c["call"]:
        index = _destination(callee)
        if index is None:
            continue
        arguments = args.named_children
        if index >= len(arguments) or derived.mentions(arguments[index]):
            continue
        call = f"{_callee_name(callee)}({shown(text(arguments[index]))})"
        yield callee.start_point.row + 1, f"{call}: path not derived from OUT_DIR"


def _destination(callee: Node) -> int | None:
    """Which argument of this call is a path it writes to, if it writes at all."""
    path = segments(callee)
    if path:
        if len(path) >= 2 and path[-2] in _FS_MODULES and path[-1] in _FS_WRITERS:
            return _FS_WRITERS[path[-1]]
        if len(path) >= 2 and path[-2] == "File" and path[-1] in _FILE_CREATORS:
            return 0
        return None
    if _method_name(callee) == "open":
        chain = callee.child_by_field_name("value")
        data = chain.text if chain is not None else b""
        if data and (b"OpenOptions" in data or b"options()" in data):
            return 0 if _OPEN_FOR_WRITING.search(data) else None
    return None


def _method_name(callee: Node) -> str | None:
    if callee.type != "field_expression":
        return None
    field = callee.child_by_field_name("field")
    return text(field) if field is not None else None


def _callee_name(callee: Node) -> str:
    path = segments(callee)
    return "::".join(path[-2:]) if path else f".{_method_name(callee)}"


def _identifiers(pattern: Node) -> set[bytes]:
    """The names a pattern binds (`x`, `(a, b)`, `Some(dir)`, `Config { out, .. }`)."""
    if pattern.type == "identifier":
        return {pattern.text or b""}
    names: set[bytes] = set()
    stack = [pattern]
    while stack and len(names) < 64:
        node = stack.pop()
        if node.type == "identifier":
            names.add(node.text or b"")
            continue
        skip = node.child_by_field_name("type")  # `Some` in `Some(dir)`, `Config` in `Config {..}`
        stack.extend(n for n in node.named_children if skip is None or n.id != skip.id)
    return names
