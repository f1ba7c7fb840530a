"""The near-name feed as documents: the newest entries as JSON and as Atom (RFC 4287).

Every near-name decision (stopped or let through, with its evidence) and every dry-run
(`warn`) decision of any rule is appended to `near-names.jsonl` by the audit writer; this
module reads the newest entries back and renders them, so a community can watch new
look-alikes appear and a team can watch what a rule in `warn` would stop before switching it
to `block`. Pure apart from the reader.

Entries carry crate-controlled text (evidence cites file paths and snippets from the crate):
JSON escapes it by construction; the Atom document is built with ElementTree (which escapes
markup) after removing the characters XML 1.0 cannot carry at all, so a hostile string can
neither inject elements nor make the document unreadable.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mirror.audit.files import FEED_NAME

__all__ = ["MAX_ENTRIES", "newest_entries", "render_atom", "render_json"]

MAX_ENTRIES = 1000  # entries a feed request may ask for
_READ_BLOCK = 256 * 1024  # bytes read per step from the end of the feed file
_ATOM = "http://www.w3.org/2005/Atom"
# XML 1.0 allows tab, newline, carriage return and everything from U+0020, minus surrogates
# and U+FFFE/U+FFFF; anything else makes the document ill-formed even when escaped.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def newest_entries(directory: Path, limit: int) -> list[dict[str, Any]]:
    """The last `limit` readable entries of the feed, newest first (read from the end)."""
    path = directory / FEED_NAME
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below; a missing file is no feed
    except FileNotFoundError:
        return []
    entries: list[dict[str, Any]] = []
    with handle:
        end = handle.seek(0, 2)
        carry = b""
        while end > 0 and len(entries) < limit:
            start = max(0, end - _READ_BLOCK)
            handle.seek(start)
            block = handle.read(end - start) + carry
            lines = block.split(b"\n")
            # The first piece may be the end of a line that starts in an earlier block.
            carry = lines.pop(0) if start > 0 else b""
            for raw in reversed(lines):
                entry = _parse(raw)
                if entry is not None:
                    entries.append(entry)
                    if len(entries) >= limit:
                        break
            end = start
        if carry and len(entries) < limit:
            entry = _parse(carry)
            if entry is not None:
                entries.append(entry)
    return entries


def _parse(raw: bytes) -> dict[str, Any] | None:
    if not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None  # a torn last line: skipped, the writer repairs the file
    return value if isinstance(value, dict) else None


def render_json(entries: Sequence[Mapping[str, Any]], *, title: str) -> bytes:
    body = {"title": title, "entries": list(entries)}
    return json.dumps(body, indent=1, ensure_ascii=True, sort_keys=True).encode() + b"\n"


def render_atom(
    entries: Sequence[Mapping[str, Any]], *, title: str, self_url: str, feed_id: str
) -> bytes:
    """An Atom feed: one entry per decision, newest first, evidence as the text content."""
    ET.register_namespace("", _ATOM)
    feed = ET.Element(f"{{{_ATOM}}}feed")
    _text(feed, "title", title)
    _text(feed, "id", feed_id)
    link = ET.SubElement(feed, f"{{{_ATOM}}}link")
    link.set("rel", "self")
    link.set("href", _clean(self_url))
    updated = str(entries[0].get("time", "")) if entries else "1970-01-01T00:00:00Z"
    _text(feed, "updated", updated)
    author = ET.SubElement(feed, f"{{{_ATOM}}}author")
    _text(author, "name", "crate-mirror")
    for entry in entries:
        item = ET.SubElement(feed, f"{{{_ATOM}}}entry")
        crate = str(entry.get("crate", "?"))
        version = entry.get("version")
        when = str(entry.get("time", updated))
        _text(item, "id", f"{feed_id}:{crate}:{version or ''}:{when}")
        _text(item, "title", _headline(entry))
        _text(item, "updated", when)
        _text(item, "content", _details(entry)).set("type", "text")
    document: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return document + b"\n"


def _headline(entry: Mapping[str, Any]) -> str:
    crate = entry.get("crate", "?")
    version = f" {entry['version']}" if entry.get("version") else ""
    action = entry.get("action", "seen")
    if entry.get("would"):
        action = f"{action} (would {entry['would']})"
    meant = entry.get("meant") or entry.get("protected")
    like = f", like `{meant}`" if meant else ""
    rule = f" by {entry['rule']}" if entry.get("rule") and not meant else ""
    return f"{action}: `{crate}`{version}{like}{rule}"


def _details(entry: Mapping[str, Any]) -> str:
    lines = []
    if "score" in entry:
        lines.append(f"score {entry['score']} ({entry.get('verdict', entry.get('action'))})")
    for signal in entry.get("evidence") or ():
        if isinstance(signal, Mapping):
            lines.append(f"{signal.get('points', 0):+} {signal.get('text', signal.get('id'))}")
    if entry.get("reason") and not entry.get("evidence"):
        lines.append(str(entry["reason"]))
    if entry.get("check"):
        lines.append(f"name check: {entry['check']}")
    if entry.get("until"):
        lines.append(f"held until {entry['until']}")
    return "\n".join(lines) or str(entry.get("action", ""))


def _text(parent: ET.Element, tag: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{_ATOM}}}{tag}")
    element.text = _clean(text)
    return element


def _clean(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)
