"""Read YAML keeping line numbers, so every complaint about a file can name the line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mirror.errors import ConfigError, Problem


@dataclass(frozen=True)
class Located:
    """A YAML value and the (1-based) line it starts on."""

    value: Any
    line: int


def load_located(path: Path) -> Any:
    """Parse a YAML file into plain Python values whose mapping keys map to `Located` values.

    Scalars and lists inside a `Located` are plain; nested mappings are again dicts of `Located`.
    A syntax error becomes a ConfigError naming the line.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([Problem(str(path), None, "(file)", f"cannot read: {e.strerror}")]) from e
    except UnicodeDecodeError as e:
        raise ConfigError([Problem(str(path), None, "(file)", "not UTF-8 text")]) from e
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else None
        raise ConfigError([Problem(str(path), line, "(syntax)", str(e.problem))]) from e
    except yaml.YAMLError as e:
        raise ConfigError([Problem(str(path), None, "(syntax)", str(e))]) from e
    if node is None:
        return {}
    try:
        return _Converter().convert(node)
    except _Unconvertible as e:
        raise ConfigError([Problem(str(path), e.line, "(syntax)", e.message)]) from None


MAX_NODES = 1_000_000  # values after aliases are expanded: far more than any real file


class _Unconvertible(Exception):
    def __init__(self, line: int, message: str) -> None:
        self.line, self.message = line, message


class _Converter:
    """Aliases are followed, so an alias inside the value it names (`a: &x [*x]`) recursed
    without end, and nested aliases can expand a small file without bound ("billion
    laughs"): both are refused."""

    def __init__(self) -> None:
        self._open: set[int] = set()  # ids of the nodes being converted (the path down)
        self._count = 0
        # Scalars are resolved with the safe constructor, so `3`, `true`, `2027-01-01` get
        # their types; one for the file (one per scalar cost 40 us each).
        self._scalars = yaml.SafeLoader("")

    def convert(self, node: yaml.Node) -> Any:
        line = node.start_mark.line + 1
        if id(node) in self._open:
            raise _Unconvertible(line, "an alias refers to the value that contains it")
        self._count += 1
        if self._count > MAX_NODES:
            raise _Unconvertible(line, f"more than {MAX_NODES} values once aliases are expanded")
        self._open.add(id(node))
        try:
            return self._convert(node)
        finally:
            self._open.discard(id(node))

    def _convert(self, node: yaml.Node) -> Any:
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Located] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value if isinstance(key_node, yaml.ScalarNode) else key_node)
                line = key_node.start_mark.line + 1
                if key in out:  # YAML keeps the last one: the first would be silently ignored
                    first = out[key].line
                    raise _Unconvertible(line, f"{key} appears twice (also on line {first})")
                out[key] = Located(self.convert(value_node), line)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [Located(self.convert(item), item.start_mark.line + 1) for item in node.value]
        return self._scalars.construct_object(node, deep=True)
