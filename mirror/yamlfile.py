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
    return _convert(node)


def _convert(node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Located] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            out[str(key)] = Located(_convert(value_node), key_node.start_mark.line + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [Located(_convert(item), item.start_mark.line + 1) for item in node.value]
    # Resolve the scalar with the safe constructor so `3`, `true`, `2027-01-01` get their types.
    return yaml.SafeLoader(yaml.dump(None)).construct_object(node, deep=True)
