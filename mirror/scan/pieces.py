"""What literal pieces and literal bytes amount to, read from tree-sitter nodes: the pieces
`concat!`, `format!`, `+` and `push_str` join, integer arrays, bytes handed to a decoder.
A piece known only at run time is `PLACEHOLDER`."""

from __future__ import annotations

import re
from collections.abc import Iterator

from tree_sitter import Node

from mirror.scan.literals import literal_text
from mirror.scan.syntax import text

PLACEHOLDER = "\0"  # a value only known at run time, inside an assembled string
STRING_NODES = frozenset({"string_literal", "raw_string_literal"})
_LITERAL_NODES = frozenset(
    {"string_literal", "raw_string_literal", "char_literal", "integer_literal", "float_literal",
     "boolean_literal"}
)  # fmt: skip
_FORMAT_SPEC = re.compile(r"\{\{|\}\}|\{[^{}]*\}")


def integers(node: Node) -> list[int] | None:
    """The values of an array literal (or `[..]` token tree) made of integer literals only."""
    values = []
    for child in node.named_children:
        value = integer(text(child)) if child.type == "integer_literal" else None
        if value is None:
            return None
        values.append(value)
    return values


_INT_SUFFIX = re.compile(r"_?[ui](?:8|16|32|64|128|size)\Z")


def integer(literal: str) -> int | None:
    digits = _INT_SUFFIX.sub("", literal).replace("_", "").lower()
    try:
        return int(digits, 0) if digits.startswith(("0x", "0o", "0b")) else int(digits, 10)
    except ValueError:
        return None


def literal_bytes(call: Node) -> bytes | None:
    """Literal bytes passed to a decoder: `(vec![..])`, `(&[..])`, `([..])`, `(b"..")`,
    `(b"..".to_vec())`; None if the argument is anything else."""
    args = call.next_named_sibling
    if args is None or args.type != "arguments" or args.named_child_count != 1:
        return None
    node: Node | None = args.named_children[0]
    while node is not None and node.type in ("reference_expression", "call_expression"):
        if node.type == "call_expression":  # `b"..".to_vec()`
            node = node.child_by_field_name("function")
            node = node.child_by_field_name("value") if node is not None else None
        else:
            node = node.child_by_field_name("value")
    if node is None:
        return None
    if node.type == "macro_invocation":  # vec![..]
        node = next((n for n in node.named_children if n.type == "token_tree"), None)
    if node is not None and node.type in ("array_expression", "token_tree"):
        values = integers(node)
        if values is not None and all(0 <= v < 256 for v in values):
            return bytes(values)
    elif node is not None and node.type in STRING_NODES and (node.text or b"").startswith(b"b"):
        value = literal_text(text(node))
        if value is not None:
            return value[0].encode("latin-1", errors="replace")
    return None


def macro_pieces(macro: Node, name: str) -> list[str] | None:
    """What `concat!(..)` joins, or what `format!(..)` makes of its literal parts: literal
    values, and `PLACEHOLDER` for anything known only at run time."""
    args = next((n for n in macro.named_children if n.type == "token_tree"), None)
    if args is None:
        return None
    values = [_group_value(group) for group in _comma_groups(args)]
    if name == "concat":
        return values
    # format!: the format string's literal parts, its `{}` filled from literal arguments.
    if not values or values[0] == PLACEHOLDER:
        return None
    arguments = iter(values[1:])
    pieces: list[str] = []
    at = 0
    template = values[0]
    for spec in _FORMAT_SPEC.finditer(template):
        pieces.append(template[at : spec.start()])
        if spec.group(0) in ("{{", "}}"):
            pieces.append(spec.group(0)[0])
        else:
            pieces.append(next(arguments, PLACEHOLDER) if spec.group(0) == "{}" else PLACEHOLDER)
        at = spec.end()
    pieces.append(template[at:])
    return [p for p in pieces if p]


def _comma_groups(tree: Node) -> Iterator[list[Node]]:
    """The tokens of a macro's argument list, split at its top-level commas."""
    group: list[Node] = []
    for child in tree.children[1:-1]:  # inside the brackets
        if child.type == ",":
            yield group
            group = []
        else:
            group.append(child)
    if group:
        yield group


def _group_value(group: list[Node]) -> str:
    if len(group) == 1 and group[0].type in STRING_NODES:
        value = literal_text(text(group[0]))
        return value[0] if value is not None else PLACEHOLDER
    if len(group) == 1 and group[0].type in _LITERAL_NODES:
        return text(group[0]).strip("'")
    return PLACEHOLDER


def plus_pieces(node: Node) -> list[str]:
    """The operands of a `+` chain, left to right: literal values or placeholders."""
    pieces: list[str] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if (
            current.type == "binary_expression"
            and current.child_by_field_name("operator") is not None
        ):
            operator = current.child_by_field_name("operator")
            if operator is not None and operator.type == "+":
                right = current.child_by_field_name("right")
                left = current.child_by_field_name("left")
                stack.extend(n for n in (right, left) if n is not None)
                continue
        value = initial_literal(current)
        pieces.append(value if value is not None else PLACEHOLDER)
    return pieces


_OWNED = re.compile(
    rb'^(?:&\s*)?(?:String::from\(\s*)?(?P<lit>"(?:[^"\\]|\\.)*"|r#*"[^"]*"#*)\s*\)?'
    rb"(?:\s*\.\s*(?:to_string|to_owned|into)\(\s*\))?$",
    re.S,
)


def initial_literal(node: Node) -> str | None:
    """The literal value of `"x"`, `&"x"`, `"x".to_string()`, `String::from("x")`."""
    match = _OWNED.match((node.text or b"").strip())
    if match is None:
        return None
    value = literal_text(match.group("lit").decode("utf-8", "replace"))
    return value[0] if value is not None else None


def only_string_argument(args: Node | None) -> str | None:
    if args is None or args.type != "arguments" or args.named_child_count != 1:
        return None
    child = args.named_children[0]
    if child.type not in STRING_NODES:
        return None
    value = literal_text(text(child))
    return value[0] if value is not None else None
