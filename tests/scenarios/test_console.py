"""The review console over HTTP: logging in with an admin token, every page, approving and
denying, a whole lockfile in two actions, and the attacks its security stops (forged or
cross-site requests, client tokens, open redirects, hostile crate text)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from mirror.audit import AuditEvent, AuditLog
from mirror.sources.capability_lockfile import load_lock
from mirror.sources.tokens import TokenStore, admin_tokens
from tests.fixtures.pytest_plugin import SMALL_SET, MirrorClient
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream

HOSTILE = "<script>alert('x')</script>"
POLICY = "version: 2\nrules:\n  capabilities: {mode: block, first_seen: require-approval}\n"
EVIL_BUILD_RS = (
    b"use std::net::TcpStream;\n"
    b"// " + HOSTILE.encode() + b"\n"
    b'fn main() { let _ = TcpStream::connect("203.0.113.7:443"); }\n'
)

Console = Callable[..., Awaitable[tuple[TestClient[Any, Any], str, Path]]]


@pytest.fixture
def console(mirror_client: MirrorClient, small_upstream: FakeUpstream, tmp_path: Path) -> Console:
    """`await console()`: (client, admin token, tmp dir) of a mirror with the console on."""

    async def make(**overrides: Any) -> tuple[TestClient[Any, Any], str, Path]:
        policies = tmp_path / "policies"
        policies.mkdir(exist_ok=True)
        (policies / "policy.yaml").write_text(POLICY)
        admins = tmp_path / "admins.json"
        token = admin_tokens(admins).add("alice")
        client = await mirror_client(
            small_upstream, policy=policies / "policy.yaml", admin_tokens=admins, **overrides
        )
        return client, token, tmp_path

    return make


async def log_in(client: TestClient[Any, Any], token: str) -> None:
    form = await client.get("/-/login")
    nonce = re.search(r'name="_csrf" value="([^"]+)"', await form.text())
    assert nonce is not None
    resp = await client.post(
        "/-/login", data={"_csrf": nonce.group(1), "token": token}, allow_redirects=False
    )
    assert resp.status == 303, await resp.text()


async def csrf_of(client: TestClient[Any, Any], path: str = "/-/pending") -> str:
    found = re.search(r'name="_csrf" value="([^"]+)"', await (await client.get(path)).text())
    assert found is not None
    return found.group(1)


async def hold(client: TestClient[Any, Any], name: str, version: str) -> str:
    resp = await client.get(f"/api/v1/crates/{name}/{version}/download")
    assert resp.status == 403
    return await resp.text()


def newest(upstream: FakeUpstream, name: str) -> str:
    return upstream.registry.versions(name)[-1]


# -- logging in -------------------------------------------------------------------------------


async def test_pages_need_a_login_and_only_an_admin_token_logs_in(
    console: Console, small_upstream: FakeUpstream, tmp_path: Path
) -> None:
    """No page without a login; a cargo client token is not an admin token; a bad token gets
    the form again; the session cookie is HttpOnly, SameSite=Strict and scoped to /-/."""
    client, token, _ = await console()
    resp = await client.get("/-/pending", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/-/login?next=/-/pending")
    client_token = TokenStore(tmp_path / "clients.json").add("ci")
    for wrong in (client_token, "cma_" + "x" * 43, ""):
        form = await client.get("/-/login")
        nonce = re.search(r'name="_csrf" value="([^"]+)"', await form.text())
        assert nonce is not None
        resp = await client.post("/-/login", data={"_csrf": nonce.group(1), "token": wrong},
                                 allow_redirects=False)  # fmt: skip
        assert resp.status == 401 and "cm_session" not in resp.cookies
    form = await client.get("/-/login")
    nonce = re.search(r'name="_csrf" value="([^"]+)"', await form.text())
    assert nonce is not None
    resp = await client.post("/-/login", data={"_csrf": nonce.group(1), "token": token},
                             allow_redirects=False)  # fmt: skip
    assert resp.status == 303
    cookie = resp.headers.getall("Set-Cookie")
    session = next(c for c in cookie if c.startswith("cm_session="))
    assert "HttpOnly" in session and "SameSite=Strict" in session and "Path=/-/" in session
    assert (await client.get("/-/pending")).status == 200


async def test_login_form_needs_its_own_nonce_and_never_redirects_off_site(
    console: Console,
) -> None:
    """Login CSRF: a POST without the form's nonce cookie is refused; `next` stays on /-/."""
    client, token, _ = await console()
    resp = await client.post("/-/login", data={"_csrf": "guess", "token": token})
    assert resp.status == 403
    form = await client.get("/-/login?next=//evil.example/")
    nonce = re.search(r'name="_csrf" value="([^"]+)"', await form.text())
    assert nonce is not None
    resp = await client.post(
        "/-/login",
        data={"_csrf": nonce.group(1), "token": token, "next": "https://evil.example/"},
        allow_redirects=False,
    )
    assert resp.headers["Location"] == "/-/pending"


async def test_a_forged_cookie_or_a_revoked_token_ends_the_session(
    console: Console, tmp_path: Path
) -> None:
    """The cookie is signed; revoking the admin's token ends every session made with it."""
    client, token, _ = await console()
    await log_in(client, token)
    jar = client.session.cookie_jar
    value = next(c.value for c in jar if c.key == "cm_session")
    body, _, signature = value.rpartition(".")
    for forged in (body[:-2] + "AA." + signature, body + "." + "0" * 64, "x"):
        jar.clear()
        jar.update_cookies({"cm_session": forged})
        assert (await client.get("/-/pending", allow_redirects=False)).status == 303
    jar.clear()
    jar.update_cookies({"cm_session": value})
    assert (await client.get("/-/pending", allow_redirects=False)).status == 200
    admin_tokens(tmp_path / "admins.json").revoke("alice")
    import time

    time.sleep(1.1)  # the token file is re-read at most once a second
    assert (await client.get("/-/pending", allow_redirects=False)).status == 303


# -- actions: POST only, CSRF, same origin ----------------------------------------------------


async def test_actions_need_post_the_csrf_token_and_the_same_origin(
    console: Console, small_upstream: FakeUpstream, tmp_path: Path
) -> None:
    """Every way to forge an approval is refused and changes nothing; the real form works."""
    client, token, _ = await console()
    version = newest(small_upstream, "itoa")
    await hold(client, "itoa", version)
    await log_in(client, token)
    csrf = await csrf_of(client)
    form = {"decision": "approve", "target": f"itoa@{version}", "reason": "ok"}
    lock = tmp_path / "policies" / "capabilities.lock.yaml"
    assert (await client.get("/-/decide", params=form)).status == 405  # no action over GET
    assert (await client.post("/-/decide", data=form)).status == 403  # no CSRF token
    assert (await client.post("/-/decide", data={**form, "_csrf": "0" * 64})).status == 403
    resp = await client.post(
        "/-/decide", data={**form, "_csrf": csrf}, headers={"Origin": "https://evil.example"}
    )
    assert resp.status == 403
    resp = await client.post(
        "/-/decide", data={**form, "_csrf": csrf}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert resp.status == 403
    assert not lock.exists()
    resp = await client.post("/-/decide", data={**form, "_csrf": csrf})
    assert resp.status == 200 and "1 approved" in await resp.text()
    assert load_lock(lock).approvals("itoa")[0].approved_by == "alice"


async def test_a_bearer_admin_token_needs_no_csrf_and_a_client_token_is_refused(
    console: Console, small_upstream: FakeUpstream, tmp_path: Path
) -> None:
    """Scripts may use `Authorization: Bearer cma_...` (no browser sends it by itself)."""
    client, token, _ = await console()
    version = newest(small_upstream, "ryu")
    await hold(client, "ryu", version)
    client_token = TokenStore(tmp_path / "clients.json").add("ci")
    resp = await client.get("/-/pending", headers={"Authorization": f"Bearer {client_token}"},
                            allow_redirects=False)  # fmt: skip
    assert resp.status == 303
    resp = await client.post(
        "/-/decide",
        data={"decision": "deny", "target": f"ryu@{version}", "reason": "not needed"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status == 200 and "1 denied" in await resp.text()


# -- hostile text -----------------------------------------------------------------------------


async def test_hostile_crate_text_renders_as_text_everywhere(
    console: Console, small_upstream: FakeUpstream, small_registry: Registry, tmp_path: Path
) -> None:
    """`<script>` in a crate name, a reason, a client and a source line is escaped on every
    page, and the pages forbid scripts anyway (CSP)."""
    client, token, tmp = await console()
    small_registry.add_crate("evil-build", "1.0.0", {"build.rs": EVIL_BUILD_RS})
    await hold(client, "evil-build", "1.0.0")
    log = AuditLog(tmp / "cache" / "audit")  # a name no request could carry, in the log
    near = {"near_name": {"protected": HOSTILE}}
    event = AuditEvent("block", "typosquat", f"near {HOSTILE}", route="index", crate=HOSTILE,
                       client=HOSTILE, details=near)  # fmt: skip
    log.record(event)
    log.close()
    await log_in(client, token)
    pages = ["/-/pending", "/-/decisions", "/-/near-names", "/-/decisions?crate=" + HOSTILE,
             "/-/review?crate=evil-build&version=1.0.0"]  # fmt: skip
    for path in pages:
        resp = await client.get(path)
        assert resp.status == 200, path
        text = await resp.text()
        assert "<script" not in text, path
        assert "script-src" not in resp.headers["Content-Security-Policy"]
        assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    review = await (await client.get("/-/review?crate=evil-build&version=1.0.0")).text()
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in review  # the source line
    assert "TcpStream::connect" in review and "net" in review
    decisions = await (await client.get("/-/decisions?action=block")).text()
    assert "&lt;script&gt;" in decisions


# -- the pages and the workflow ---------------------------------------------------------------


async def test_review_shows_evidence_and_approving_serves_the_next_request(
    console: Console, small_upstream: FakeUpstream, small_registry: Registry, tmp_path: Path
) -> None:
    """Pending lists the hold; the review shows what it adds with source lines; approving
    writes who approved into the lock and the very next download is served."""
    client, token, _ = await console()
    small_registry.add_crate("evil-build", "1.0.0", {"build.rs": EVIL_BUILD_RS})
    await hold(client, "evil-build", "1.0.0")
    await log_in(client, token)
    pending = await (await client.get("/-/pending")).text()
    assert "evil-build" in pending and "capabilities" in pending
    review = await (await client.get("/-/review?crate=evil-build&version=1.0.0")).text()
    assert "+ net" in review and "build.rs:1" in review and "+ build_script" in review
    assert 'class="hit"' in review  # the evidence line is marked in its context
    csrf = await csrf_of(client)
    resp = await client.post("/-/decide", data={
        "_csrf": csrf, "decision": "approve", "target": "evil-build@1.0.0",
        "reason": "reviewed: telemetry opt-in"})  # fmt: skip
    assert "1 approved" in await resp.text()
    lock = load_lock(tmp_path / "policies" / "capabilities.lock.yaml")
    (approval,) = lock.approvals("evil-build")
    assert (approval.approved_by, approval.reviewed) == ("alice", "1.0.0")
    assert (await client.get("/api/v1/crates/evil-build/1.0.0/download")).status == 200
    assert "evil-build" not in await (await client.get("/-/pending")).text()
    events = await (await client.get("/-/decisions?action=approve")).text()
    assert "alice approved" in events


async def test_a_whole_lockfile_is_reviewed_and_approved_in_two_actions(
    console: Console, small_upstream: FakeUpstream
) -> None:
    """Paste the Cargo.lock (one action), approve all it lists (the second). cfg-if has no
    capabilities: nothing to review, so it is not listed."""
    client, token, _ = await console()
    refs = [(name, newest(small_upstream, name)) for name in SMALL_SET if name != "cfg-if"]
    for name, version in refs:
        await hold(client, name, version)
    refs.append(("cfg-if", newest(small_upstream, "cfg-if")))
    await log_in(client, token)
    lockfile = "version = 3\n" + "".join(
        f'\n[[package]]\nname = "{n}"\nversion = "{v}"\n'
        'source = "registry+https://github.com/rust-lang/crates.io-index"\n'
        for n, v in [*refs[:4], refs[-1]]
    )
    csrf = await csrf_of(client)
    listed = await (
        await client.post("/-/lockfile", data={"_csrf": csrf, "lockfile": lockfile})
    ).text()
    shown = re.findall(r'name="shown" value="([^"]+)"', listed)
    assert sorted(shown) == sorted(f"{n}@{v}" for n, v in refs[:4])
    form = [("_csrf", csrf), ("decision", "approve-all"), ("reason", "new project")]
    resp = await client.post("/-/decide", data=[*form, *[("shown", s) for s in shown]])
    assert "4 approved" in await resp.text()
    for name, version in refs[:4]:
        assert (await client.get(f"/api/v1/crates/{name}/{version}/download")).status == 200
    assert (await client.get(f"/api/v1/crates/{refs[4][0]}/{refs[4][1]}/download")).status == 403


async def test_decisions_event_near_names_and_status_pages(
    console: Console, small_upstream: FakeUpstream
) -> None:
    """Each page answers and shows what it is for; a malformed filter is a clear 400."""
    client, token, _ = await console()
    await hold(client, "itoa", newest(small_upstream, "itoa"))
    await log_in(client, token)
    text = await (await client.get("/-/decisions?action=block&crate=itoa&since=1h")).text()
    seq = re.search(r'href="/-/events/(\d+)"', text)
    assert seq is not None and "itoa" in text
    event = await (await client.get(f"/-/events/{seq.group(1)}")).text()
    assert "capabilities" in event and "Review this crate version" in event
    assert (await client.get("/-/decisions?since=yesterday")).status == 400
    assert (await client.get("/-/events/999999")).status == 404
    assert (await client.get("/-/near-names")).status == 200
    status = await (await client.get("/-/status")).text()
    assert "capabilities" in status and "block" in status and "Intact" in status
    assert "Quickest recent answer" in status  # how far upstream is (loopback: not far)
    assert "fetched ahead" not in status
    live = await (await client.get("/-/decisions?live=1")).text()
    assert 'http-equiv="refresh"' in live


async def test_a_quarantined_look_alike_shows_its_signals_and_is_approved_in_the_lock(
    console: Console, small_upstream: FakeUpstream, small_registry: Registry, tmp_path: Path
) -> None:
    """The malicious-crate rule's holds (`risk`, details.risk) are pending reviews too: the
    review shows every signal with its points; approving is a human approval in the lock for
    that version (what lifts the rule)."""
    client, token, tmp = await console()
    small_registry.add_crate("serde-derlve", "0.1.0", {"src/lib.rs": b"pub fn f() {}\n"})
    risk = {"verdict": "quarantine", "score": 7.5, "thresholds": {"quarantine": 6},
            "meant": "serde_derive", "until": "2026-12-01T00:00:00Z",
            "signals": [{"id": "typo_of_popular", "points": 4, "text": "looks like serde_derive"},
                        {"id": "new_crate", "points": 3.5, "text": "first published 2 hours ago"},
                        {"id": "old_account", "points": -1, "text": HOSTILE}]}  # fmt: skip
    log = AuditLog(tmp / "cache" / "audit")
    near = {"protected": "serde_derive", "check": "edit", "distance": 1}
    reason = "`serde-derlve` 0.1.0 is quarantined (score 7.5)"
    log.record(AuditEvent("quarantine", "risk", reason, route="download", crate="serde-derlve",
                          version="0.1.0", details={"risk": risk, "near_name": near}))  # fmt: skip
    log.close()
    await log_in(client, token)
    pending = await (await client.get("/-/pending")).text()
    assert "serde-derlve" in pending and "quarantine" in pending
    review = await (await client.get("/-/review?crate=serde-derlve&version=0.1.0")).text()
    for text in ("looks like serde_derive", "+4", "+3.5", "-1", "7.50", "serde_derive",
                 "2026-12-01T00:00:00Z", "&lt;script&gt;"):  # fmt: skip
        assert text in review, text
    assert "<script" not in review
    await client.get("/index/se/rd/serde-derlve")  # the index file is in the cache now
    csrf = await csrf_of(client)
    resp = await client.post("/-/decide", data={"_csrf": csrf, "decision": "approve",
                             "target": "serde-derlve@0.1.0", "reason": "our fork"})  # fmt: skip
    assert "1 approved" in await resp.text()
    (approval,) = load_lock(tmp_path / "policies" / "capabilities.lock.yaml").approvals(
        "serde-derlve"
    )
    assert (approval.approved_by, approval.reviewed) == ("alice", "0.1.0")


async def test_approving_while_the_lock_is_invalid_says_so_as_a_503_not_a_500(
    console: Console, small_registry: Registry, tmp_path: Path
) -> None:
    """A lock edited by hand into invalid YAML: the approval is refused with its reason
    (file and line), as "unavailable until fixed", not as an internal error."""
    client, token, _ = await console()
    small_registry.add_crate("evil-build", "1.0.0", {"build.rs": EVIL_BUILD_RS})
    await hold(client, "evil-build", "1.0.0")
    await log_in(client, token)
    lock = tmp_path / "policies" / "capabilities.lock.yaml"
    lock.write_text("version: 1\ncrates: {foo: [\n")
    resp = await client.post("/-/decide", data={
        "_csrf": await csrf_of(client), "decision": "approve", "target": "evil-build@1.0.0",
        "reason": "reviewed"})  # fmt: skip
    assert resp.status == 503
    assert "capabilities.lock.yaml:" in await resp.text()
    assert lock.read_text() == "version: 1\ncrates: {foo: [\n"
