"""Crate-controlled text made safe to show a person: control and format characters escaped.

A file name or a string literal inside a crate can carry ESC sequences (which recolour text,
move the cursor, erase lines or plant links on a terminal), newlines (which add lines of the
crate's choosing to a 403 body that cargo prints, or to a Slack message), and bidirectional
overrides (which reorder what a reviewer reads). Text meant for a person that holds anything a
crate or a client chose goes through `printable`; JSON and HTML escape it by their own rules.
"""

from __future__ import annotations


def printable(value: object) -> str:
    """`value` as text with every non-printable character written as its escape (`\\x1b`,
    `\\n`, `\\u202e`); printable text, any script, is unchanged."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
