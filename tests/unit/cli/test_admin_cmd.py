"""`crate-mirror admin add|list|revoke`: console admins, their tokens apart from cargo's."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirror.cli import main
from mirror.sources.tokens import TokenStore, admin_tokens


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_add_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A token is printed once (cma_...), listed by name, and stops working when revoked."""
    file = str(tmp_path / "admins.json")
    code, out, err = run(["admin", "add", "alice", "--file", file], capsys)
    token = out.strip()
    assert code == 0 and token.startswith("cma_") and "shown only now" in err
    assert admin_tokens(Path(file)).authenticate(token) is not None
    code, out, _ = run(["admin", "list", "--file", file], capsys)
    assert code == 0 and out.startswith("alice ")
    assert run(["admin", "add", "alice", "--file", file], capsys)[0] == 2  # no duplicates
    assert run(["admin", "revoke", "alice", "--file", file], capsys)[0] == 0
    assert admin_tokens(Path(file)).authenticate(token) is None
    assert run(["admin", "revoke", "alice", "--file", file], capsys)[0] == 1


def test_admin_and_client_tokens_never_stand_in_for_each_other(tmp_path: Path) -> None:
    """Different prefixes, scopes and files: an admin token is no cargo token and back."""
    admins, clients = admin_tokens(tmp_path / "a.json"), TokenStore(tmp_path / "c.json")
    admin, client = admins.add("alice"), clients.add("ci")
    assert admins.authenticate(client) is None and clients.authenticate(admin) is None
    # Even a client token's hash copied into the admin file does not make it an admin token.
    (tmp_path / "a.json").write_text((tmp_path / "c.json").read_text().replace('"read"', '"admin"'))
    assert admin_tokens(tmp_path / "a.json").authenticate(client) is None


def test_the_file_comes_from_the_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--config` names the server's settings file; `admin_tokens` there is the file used."""
    config = tmp_path / "mirror.yaml"
    config.write_text(f"admin_tokens: {tmp_path / 'from-config.json'}\n")
    assert run(["admin", "add", "bob", "--config", str(config)], capsys)[0] == 0
    assert [r.name for r in admin_tokens(tmp_path / "from-config.json").records()] == ["bob"]


def test_admin_tokens_must_not_be_the_client_token_file(tmp_path: Path) -> None:
    """One file for both would make the two kinds of token interchangeable."""
    from mirror.config import load_settings
    from mirror.errors import ConfigError

    same = tmp_path / "tokens.json"
    with pytest.raises(ConfigError, match="admin_tokens"):
        load_settings(None, env={}, overrides={"admin_tokens": same, "auth_tokens": same})
