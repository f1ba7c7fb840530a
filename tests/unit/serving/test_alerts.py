"""Alert settings, kinds and payloads (pure), and the dispatcher against a fake receiver:
each event alerted once across workers, repeats suppressed, retries, failures and drops on
the record."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from mirror.audit import AuditEvent, AuditLog, read_events
from mirror.audit.index import AuditIndex
from mirror.errors import ConfigError, UpstreamUnavailable
from mirror.serving.alert_queue import AlertDispatcher
from mirror.serving.alerts import (
    Alert,
    AlertSettings,
    Hook,
    body,
    headers,
    kinds_of,
    slack_payload,
)


def test_settings_are_validated_with_every_problem_named() -> None:
    """Unknown keys, bad URLs, formats and events are reported together."""
    good = AlertSettings.from_mapping(
        {"hooks": [{"url": "https://hooks.example/x", "format": "slack", "events": ["block"]}],
         "attempts": 3, "backoff": 0.5}, "mirror.yaml")  # fmt: skip
    assert good.hooks[0].events == frozenset({"block"}) and good.attempts == 3
    with pytest.raises(ConfigError) as info:
        AlertSettings.from_mapping(
            {"hooks": [{"url": "ftp://x", "format": "xml"}, {"url": "http://h", "events": ["x"]}],
             "queue": 0, "colour": "red"}, "mirror.yaml")  # fmt: skip
    text = str(info.value)
    for expected in ("alerts.colour", "hooks[0].url", "hooks[1].events", "alerts.queue"):
        assert expected in text


@pytest.mark.parametrize(
    ("action", "rule", "route", "opens", "kinds"),
    [
        ("block", "capabilities", "download", True, ("block", "pending")),
        ("block", "capabilities", "download", False, ("block",)),
        ("quarantine", "risk", "index", True, ("quarantine", "pending")),
        ("block", "tuf", "index", False, ("trust_failure",)),
        ("block", "checksum", "download", False, ("trust_failure",)),
        ("approve", "capabilities", "console", False, ("approve",)),
        ("approve", "capabilities", None, False, ()),  # trust on first use
        ("revoke", "capabilities", "cli", False, ("revoke",)),
        ("audit.recovered", "audit", None, False, ("audit_chain",)),
        ("allow", "default", "index", False, ()),
    ],
)
def test_kinds_of_events(
    action: str, rule: str, route: str | None, opens: bool, kinds: tuple[str, ...]
) -> None:
    """Which audit events become which alerts."""
    assert kinds_of(action, rule, route, opens) == kinds


def test_slack_payload_escapes_crate_controlled_text() -> None:
    """A crate named like a Slack mention or link stays text (Slack's &, <, > escaping)."""
    alert = Alert(("block",), {"crate": "<!channel>", "version": "1.0.0", "action": "block",
                               "rule": "typosquat", "reason": "<https://evil.example|click>"},
                  {"evidence": "http://mirror/-/events/3"})  # fmt: skip
    text = slack_payload(alert)["blocks"][0]["text"]["text"]
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "<https://evil.example|click>" not in text
    assert "<http://mirror/-/events/3|evidence>" in text  # our own link stays a link


def test_slack_payload_gives_crate_text_no_line_of_its_own() -> None:
    """A newline in a crate's text (a file name in the evidence) used to end the quote and
    start a line of the crate's choosing: a bold "approved by security-team" headline."""
    reason = "adds: fs (src/a\n\n*crate-mirror approved: x 1.0.0* by security-team\n> ok.rs:1)"
    alert = Alert(("block",), {"crate": "x", "version": "1.0.0", "action": "block",
                               "rule": "capabilities", "reason": reason}, {})  # fmt: skip
    lines = slack_payload(alert)["blocks"][0]["text"]["text"].splitlines()
    assert not any(line.startswith("*crate-mirror approved") for line in lines)
    assert lines[-1].startswith("> adds: fs (src/a\\n\\n*crate-mirror approved")


def test_json_payload_and_signature() -> None:
    """The generic payload carries the event and links; a secret signs the body."""
    hook = Hook("h", "http://r", "json", frozenset({"block"}), secret="s3cret")
    alert = Alert(("block", "pending"), {"seq": 7, "crate": "x", "action": "block"},
                  {"review": "http://m/-/review?crate=x&version="})  # fmt: skip
    payload = body(hook, alert, "http://m")
    data = json.loads(payload)
    assert data["kind"] == "block" and data["kinds"] == ["block", "pending"]
    assert data["event"]["seq"] == 7 and data["mirror"] == "http://m"
    expected = hmac.new(b"s3cret", payload, hashlib.sha256).hexdigest()
    assert headers(hook, payload) == {"X-Crate-Mirror-Signature": f"sha256={expected}"}


# -- the dispatcher ---------------------------------------------------------------------------


class FakeReceiver:
    """Stands in for the webhook client: records posts, fails while `down`."""

    def __init__(self, down: bool = False, status: int = 200) -> None:
        self.down = down
        self.status = status
        self.posts: list[tuple[str, dict[str, Any]]] = []

    async def post(self, url: str, payload: bytes, extra: Mapping[str, str]) -> int:
        self.posts.append((url, json.loads(payload)))
        if self.down:
            raise UpstreamUnavailable("webhook receiver unreachable: connection refused")
        return self.status

    async def close(self) -> None:
        pass


def block(crate: str, version: str = "1.0.0") -> AuditEvent:
    return AuditEvent("block", "capabilities", f"{crate} adds net", route="download",
                      crate=crate, version=version)  # fmt: skip


def dispatcher(
    audit_dir: Path, receiver: FakeReceiver, audit: AuditLog, **settings: Any
) -> AlertDispatcher:
    hooks = (Hook("r", "http://receiver/hook", "json", frozenset(settings.pop("events",
             ("block", "pending", "approve", "audit_chain", "trust_failure")))),)  # fmt: skip
    alert_settings = AlertSettings(hooks=hooks, backoff=0.01, **settings)
    return AlertDispatcher(alert_settings, AuditIndex(audit_dir), audit, receiver, "http://m")  # type: ignore[arg-type]


async def drain(d: AlertDispatcher, receiver: FakeReceiver, posts: int) -> None:
    for _ in range(200):
        if len(receiver.posts) >= posts and d._waiting == 0:
            return
        await asyncio.sleep(0.01)


async def test_each_event_is_alerted_once_across_workers_and_repeats_are_suppressed(
    tmp_path: Path,
) -> None:
    """Two workers' dispatchers share the cursor; a crate refused five times is one block
    alert (the first refusal also opened a review: one alert, both kinds)."""
    writer = AuditLog(tmp_path)
    receiver = FakeReceiver()
    first = dispatcher(tmp_path, receiver, writer)
    second = dispatcher(tmp_path, receiver, writer)
    first._queue = asyncio.Queue()
    second._queue = asyncio.Queue()
    for d in (first, second):
        for _ in range(2):
            d._spawn(d._send_loop())
    await first.look()  # the cursor starts at the end of the chain
    for event in [block("a"), block("b"), *[block("c") for _ in range(5)]]:
        writer.record(event)
    writer.flush()
    await asyncio.gather(first.look(), second.look())
    await drain(first, receiver, 3)
    crates = sorted(p["event"]["crate"] for _, p in receiver.posts)
    assert crates == ["a", "b", "c"]
    assert all(p["kinds"] == ["block", "pending"] for _, p in receiver.posts)
    await first.close()
    await second.close()
    writer.close()
    delivered = [e for e in read_events(tmp_path) if e["action"] == "alert.delivered"]
    assert len(delivered) == 3 and delivered[0]["details"]["attempts"] == 1


async def test_a_receiver_that_is_down_is_retried_then_recorded_as_failed(
    tmp_path: Path,
) -> None:
    """Retries with backoff, then `alert.failed` with the attempts and the error."""
    writer = AuditLog(tmp_path)
    receiver = FakeReceiver(down=True)
    d = dispatcher(tmp_path, receiver, writer, attempts=3)
    task = asyncio.create_task(d.run())
    await asyncio.sleep(0.1)
    writer.record(block("x"))
    writer.flush()
    for _ in range(300):
        writer.flush()
        if any(e["action"] == "alert.failed" for e in read_events(tmp_path)):
            break
        await asyncio.sleep(0.02)
    task.cancel()
    await d.close()
    writer.close()
    assert len(receiver.posts) == 3
    (failed,) = [e for e in read_events(tmp_path) if e["action"] == "alert.failed"]
    assert failed["details"]["attempts"] == 3 and "connection refused" in failed["reason"]


async def test_the_queue_is_bounded_and_drops_are_on_the_record(tmp_path: Path) -> None:
    """With the receiver down and a queue of 2, more alerts are dropped and counted."""
    writer = AuditLog(tmp_path)
    receiver = FakeReceiver(down=True)
    d = dispatcher(tmp_path, receiver, writer, queue=2, attempts=50, max_backoff=10.0)
    d._queue = asyncio.Queue()
    await d.look()
    for i in range(6):
        writer.record(block(f"c{i}"))
    writer.flush()
    await d.look()
    assert d._waiting == 2
    await d.close()
    writer.close()
    (dropped,) = [e for e in read_events(tmp_path) if e["action"] == "alert.dropped"]
    assert dropped["details"]["dropped"] == 4


async def test_a_broken_chain_and_a_cli_approval_are_alerted(tmp_path: Path) -> None:
    """A person's approval is an alert; an edited line found by the index is one too, once."""
    writer = AuditLog(tmp_path)
    receiver = FakeReceiver()
    d = dispatcher(tmp_path, receiver, writer)
    d._queue = asyncio.Queue()
    d._spawn(d._send_loop())
    await d.look()
    writer.record(AuditEvent("approve", "capabilities", "bob approved net for x", route="cli",
                             crate="x", version="1.0.0", details={"by": "bob"}))  # fmt: skip
    writer.record(AuditEvent("approve", "capabilities", "trust on first use", crate="y",
                             version="1.0.0"))  # fmt: skip
    writer.close()
    path = tmp_path / "audit-000001.jsonl"
    lines = path.read_text().splitlines()
    edited = json.loads(lines[0])
    edited["reason"] = "nothing happened"
    path.write_text("\n".join([json.dumps(edited), *lines[1:]]) + "\n")
    AuditIndex(tmp_path).rebuild()
    await d.look()
    await d.look()
    await drain(d, receiver, 2)
    kinds = sorted(p["kind"] for _, p in receiver.posts)
    assert kinds == ["approve", "audit_chain"]
    await d.close()
