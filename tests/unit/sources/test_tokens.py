"""Client tokens: stored hashed, checked exactly, revocable live (mirror.sources.tokens)."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from mirror.errors import BadRequest, ConfigError, NotFound
from mirror.sources import tokens as token_file
from mirror.sources.tokens import TOKEN_PREFIX, TokenStore, hash_token, token_from_header


@pytest.fixture
def tokens(tmp_path: Path) -> TokenStore:
    return TokenStore(tmp_path / "tokens.json")


def test_token_file_holds_only_hashes(tokens: TokenStore) -> None:
    """A stolen token file does not contain a usable token (stored hashed)."""
    token = tokens.add("ci")
    raw = tokens.path.read_text()
    assert token.startswith(TOKEN_PREFIX)
    assert token not in raw
    assert token[len(TOKEN_PREFIX) :] not in raw
    assert hash_token(token) in raw
    assert stat.S_IMODE(os.stat(tokens.path).st_mode) == 0o600


def test_valid_token_authenticates_with_name_and_scopes(tokens: TokenStore) -> None:
    token = tokens.add("build-farm")
    identity = tokens.authenticate(token)
    assert identity is not None
    assert identity.name == "build-farm"
    assert identity.scopes == frozenset({"read"})
    assert tokens.authenticate(f"Bearer {token}") == identity


@pytest.mark.parametrize(
    "header",
    [None, "", " ", "Bearer", "Bearer ", "cmt_", "x" * 10_000, "Basic dXNlcjpwYXNz", "\x00"],
)
def test_missing_or_malformed_headers_are_refused(tokens: TokenStore, header: str | None) -> None:
    tokens.add("ci")
    assert tokens.authenticate(header) is None


def test_near_miss_tokens_are_refused(tokens: TokenStore) -> None:
    """Prefix, suffix, case and one-character changes of a real token are all refused."""
    token = tokens.add("ci")
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    for guess in (token[:-1], token + "x", token.upper(), flipped, " " + token + "x"):
        assert tokens.authenticate(guess) is None, guess


def test_a_token_of_another_store_is_refused(tmp_path: Path) -> None:
    other = TokenStore(tmp_path / "other.json").add("ci")
    assert TokenStore(tmp_path / "tokens.json").authenticate(other) is None


def test_revoke_takes_effect_in_a_running_store_without_restart(
    tokens: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's long-lived store notices the CLI's revoke (another process) on its own."""
    monkeypatch.setattr(token_file, "RELOAD_CHECK_SECONDS", 0.0)
    token = tokens.add("laptop")
    server_view = TokenStore(tokens.path)
    assert server_view.authenticate(token) is not None
    TokenStore(tokens.path).revoke("laptop")
    assert server_view.authenticate(token) is None


def test_revoking_an_unknown_name_says_so(tokens: TokenStore) -> None:
    with pytest.raises(NotFound):
        tokens.revoke("nobody")


def test_names_and_scopes_are_validated(tokens: TokenStore) -> None:
    tokens.add("ci")
    with pytest.raises(BadRequest, match="exists"):
        tokens.add("ci")
    with pytest.raises(BadRequest):
        tokens.add("../etc")
    with pytest.raises(BadRequest, match="scope"):
        tokens.add("adm", ["admin"])  # no admin scope exists: nothing admin is offered over HTTP


def test_each_token_is_unique(tokens: TokenStore) -> None:
    issued = {tokens.add(f"t{i}") for i in range(20)}
    assert len(issued) == 20
    assert {tokens.authenticate(t).name for t in issued} == {f"t{i}" for i in range(20)}  # type: ignore[union-attr]


def test_missing_file_means_nobody_gets_in(tmp_path: Path) -> None:
    assert TokenStore(tmp_path / "absent.json").authenticate(TOKEN_PREFIX + "x" * 43) is None


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[]",
        b'{"version": 2, "tokens": []}',
        b'{"version": 1, "tokens": [{"name": "a", "sha256": "plaintext-token"}]}',
        b'{"version": 1, "tokens": [{"name": "a", "sha256": "'
        + b"0" * 64
        + b'", "scopes": ["admin"]}]}',
    ],
)
def test_a_corrupt_token_file_is_a_config_error(tmp_path: Path, content: bytes) -> None:
    """Refuse to start rather than guess who may read (fail closed)."""
    path = tmp_path / "tokens.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError):
        TokenStore(path)


def _edit_by_hand(path: Path, content: bytes) -> None:
    """Write `content` as an editor would, and make sure the store sees a new stamp."""
    before = path.stat().st_mtime_ns
    path.write_bytes(content)
    os.utime(path, ns=(before + 10**9, before + 10**9))


def test_a_token_file_that_turns_invalid_accepts_nobody(
    tokens: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fail closed while serving too: the old tokens stop working (one of them the operator
    was removing), `problem` says why, and one alert is logged however many requests come."""
    monkeypatch.setattr(token_file, "RELOAD_CHECK_SECONDS", 0.0)
    kept, removed = tokens.add("kept"), tokens.add("removed")
    server_view = TokenStore(tokens.path)
    assert server_view.authenticate(removed) is not None
    good = tokens.path.read_bytes()
    broken = good.replace(b'"name": "removed"', b'"name": "removed",,')  # a slip of the hand
    _edit_by_hand(tokens.path, broken)
    with capture_logs() as logs:
        for _ in range(3):
            assert server_view.authenticate(kept) is None
            assert server_view.authenticate(removed) is None
    assert server_view.problem is not None and "not JSON" in server_view.problem
    alerts = [e for e in logs if e["event"] == "tokens.file_invalid"]
    assert len(alerts) == 1 and alerts[0]["log_level"] == "error"
    assert str(tokens.path) in alerts[0]["file"]
    assert kept not in repr(logs) and removed not in repr(logs)
    _edit_by_hand(tokens.path, good)
    with capture_logs() as logs:
        assert server_view.authenticate(kept) is not None
    assert server_view.problem is None
    assert [e["event"] for e in logs] == ["tokens.file_valid_again"]


def test_an_unreadable_token_file_while_serving_accepts_nobody(
    tokens: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(token_file, "RELOAD_CHECK_SECONDS", 0.0)
    token = tokens.add("ci")
    server_view = TokenStore(tokens.path)
    tokens.path.unlink()
    tokens.path.mkdir()  # reading it fails (EISDIR) whoever runs the test, root included
    assert server_view.authenticate(token) is None
    assert server_view.problem is not None


def test_header_parsing() -> None:
    assert token_from_header("abc") == "abc"
    assert token_from_header("  Bearer   abc ") == "abc"
    assert token_from_header("bearer abc") == "abc"
    assert token_from_header("Token abc") == "Token abc"  # only Bearer is a scheme we strip
    assert token_from_header("a" * (token_file.MAX_HEADER_CHARS + 1)) is None


def test_a_check_is_one_fast_hash_and_a_lookup(
    tokens: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Auth runs on every request, so a check is one sha256 and a dictionary lookup (a slow
    KDF would cost milliseconds per request; tokens are 256 random bits, so it buys nothing).
    Counted, not timed."""
    token = tokens.add("ci")
    assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
    calls: list[str] = []
    real = token_file.hash_token

    def counted(token: str) -> str:
        calls.append(token)
        return real(token)

    monkeypatch.setattr(token_file, "hash_token", counted)
    for _ in range(100):
        assert tokens.authenticate(token) is not None
    assert calls == [token] * 100


def test_the_console_key_is_made_once_and_shared(tmp_path: Path) -> None:
    """Workers starting together agree on one session key; a damaged key file is an error."""
    import threading

    from mirror.errors import ConfigError
    from mirror.sources.tokens import KEY_BYTES, load_or_create_key

    path = tmp_path / "state" / "console-session.key"
    keys: list[bytes] = []
    threads = [threading.Thread(target=lambda: keys.append(load_or_create_key(path)))
               for _ in range(8)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1 and len(keys[0]) == KEY_BYTES
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["console-session.key"]
    path.write_bytes(b"short")
    with pytest.raises(ConfigError, match="wrong size"):
        load_or_create_key(path)


def test_an_unknown_key_is_refused_not_dropped_by_the_next_write(tmp_path: Path) -> None:
    """`{"version":1,"tokens":[],"extra":1}` lost "extra" at the next `token add`."""
    path = tmp_path / "tokens.json"
    text = '{"version": 1, "tokens": [], "extra": 1}'
    path.write_text(text)
    with pytest.raises(ConfigError, match="extra: unknown key"):
        TokenStore(path).add("bob")
    assert path.read_text() == text


def test_a_token_file_of_the_other_kind_is_named_as_such(tmp_path: Path) -> None:
    """`admin add --file tokens.json` said only "expected a list of admin"."""
    clients = TokenStore(tmp_path / "tokens.json")
    clients.add("alice")
    with pytest.raises(ConfigError, match="is this the other kind of token file"):
        token_file.admin_tokens(clients.path).add("bob")
