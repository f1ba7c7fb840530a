"""An expired allow/deny entry stops applying, and the server says so when it loads it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from structlog.testing import capture_logs

from mirror.config import Settings

POLICY = """\
version: 2
rules:
  deny: {mode: block}
allow:
  - crate: "itoa@1"
    reason: "old exception"
    expires: 2020-01-31
"""


async def test_expired_entries_are_logged_at_load(
    tmp_path: Path,
    aiohttp_client: Any,
    mirror_app: Callable[[Settings], web.Application],
    mirror_settings: Callable[..., Settings],
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    with capture_logs() as logs:
        app = mirror_app(mirror_settings(None, offline=True, policy=policy))
    # Started and cleaned up by the fixture: an app never cleaned up keeps its audit writer
    # thread, which then opens files in this test's directory during later tests.
    await aiohttp_client(app)
    expired = [e for e in logs if e["event"] == "policy.entry_expired"]
    assert len(expired) == 1
    assert expired[0]["expired"] == "2020-01-31"
    assert expired[0]["line"] == 5
