"""A root key inside a PKCS#11 token (SoftHSM2, a real PKCS#11 module from Debian).

Each test creates its own token in a temporary directory (SOFTHSM2_CONF). Token operations
run in a child process, as a key holder runs the command: a PKCS#11 library is initialised
once per process, with the configuration it finds then.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mirror.cli import main
from mirror.trust._tuf import Metadata
from tests.unit.trust.test_multiparty import Ceremony, downstream_verifies

SOFTHSM_LIB = Path("/usr/lib/softhsm/libsofthsm2.so")
PIN = "2468"
TOKEN = "ci-token"
KEY_ID = 3
URI = f"hsm:{KEY_ID}?label={TOKEN}"

# CI installs softhsm2 (.ci/run), so there a missing module fails instead of skipping.
pytestmark = pytest.mark.skipif(
    not (SOFTHSM_LIB.is_file() and shutil.which("softhsm2-util")) and not os.environ.get("CI"),
    reason="SoftHSM2 is not installed (apt-get install softhsm2)",
)


@pytest.fixture
def token_env(tmp_path: Path) -> dict[str, str]:
    """A fresh SoftHSM2 token in tmp_path, and the environment that reaches it."""
    tokens = tmp_path / "softhsm-tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf), "CRATE_MIRROR_PKCS11_PIN": PIN}
    init = ["softhsm2-util", "--init-token", "--free", "--label", TOKEN, "--pin", PIN]
    subprocess.run(
        [*init, "--so-pin", "13579"],
        env=env,
        check=True,
        capture_output=True,
    )
    return env


def holder(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`crate-mirror ...` run by the token's holder, in their own process."""
    return subprocess.run(
        [sys.executable, "-m", "mirror", *args, "--pkcs11-module", str(SOFTHSM_LIB)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_token_key_is_made_inside_the_token(token_env: dict[str, str], tmp_path: Path) -> None:
    """`tuf key new --pkcs11`: an ECDSA key the token will not let out, and its public part."""
    pub = tmp_path / "ci.pub"
    new = ["tuf", "key", "new", "--pkcs11", "--token-label", TOKEN, "--key-id", str(KEY_ID)]
    done = holder(token_env, *new, "--pub-out", str(pub))
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed == json.loads(pub.read_text())
    assert printed["keytype"] == "ecdsa" and printed["scheme"] == "ecdsa-sha2-nistp256"
    assert URI in done.stderr
    probe = (
        "import pkcs11, sys\n"
        "from pkcs11 import Attribute, ObjectClass\n"
        f"t = pkcs11.lib({str(SOFTHSM_LIB)!r}).get_token(token_label={TOKEN!r})\n"
        f"with t.open(user_pin={PIN!r}) as s:\n"
        "    k = s.get_key(ObjectClass.PRIVATE_KEY, id=pkcs11.util.biginteger(3))\n"
        "    print(k[Attribute.EXTRACTABLE], k[Attribute.SENSITIVE])\n"
    )
    attrs = subprocess.run(
        [sys.executable, "-c", probe], env=token_env, capture_output=True, text=True, check=True
    )
    assert attrs.stdout.split() == ["False", "True"]
    again = holder(token_env, *new)
    assert again.returncode == 1 and "already holds a key with id 3" in again.stderr


def test_wrong_pin_and_missing_token_fail_cleanly(token_env: dict[str, str]) -> None:
    """A wrong PIN or an unknown token is exit 1 with a reason, never a traceback."""
    new = ["tuf", "key", "new", "--pkcs11", "--key-id", "4"]
    wrong = holder({**token_env, "CRATE_MIRROR_PKCS11_PIN": "0000"}, *new, "--token-label", TOKEN)
    assert wrong.returncode == 1 and "PinIncorrect" in wrong.stderr
    missing = holder(token_env, *new, "--token-label", "no-such-token")
    assert missing.returncode == 1 and "no-such-token" in missing.stderr
    assert "Traceback" not in wrong.stderr + missing.stderr


def test_two_of_three_root_with_a_token_key(
    token_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Root 2 of 3: alice (file), ci (SoftHSM2 token), bob (file), all enrolled by public key.

    A rotation signed by the token alone is refused; with alice's signature it is published,
    and a client pinned to version 1 follows it.
    """
    c = Ceremony(tmp_path, tmp_path / "repo")
    for name in ("alice", "bob"):
        assert main(["tuf", "key", "new", "--out", str(c.key(name))]) == 0
    c.holder("ci").mkdir()
    new = ["tuf", "key", "new", "--pkcs11", "--token-label", TOKEN, "--key-id", str(KEY_ID)]
    made = holder(token_env, *new, "--pub-out", str(c.pub("ci")))
    assert made.returncode == 0, made.stderr
    roots = [a for n in ("alice", "ci", "bob") for a in ("--root-key", str(c.pub(n)))]
    offline = ["--offline-dir", str(tmp_path / "targets-holder")]
    assert c.tuf("init", *roots, "--root-threshold", "2", *offline, "--bins", "4") == 0

    def token_signs() -> Path:
        copy = c.copy_to("ci")
        done = holder(token_env, "tuf", "sign", "root", "--file", str(copy), "--key", URI)
        assert done.returncode == 0, done.stderr
        return copy

    alice = c.sign("alice")[1]
    assert c.tuf("publish", "--signed", str(alice), "--signed", str(token_signs())) == 0
    pinned = (c.repo / "metadata" / "1.root.json").read_bytes()
    downstream_verifies(c, pinned, tmp_path / "client", "serde")

    assert c.tuf("rotate", "timestamp") == 0
    capsys.readouterr()
    assert c.tuf("publish", "--signed", str(token_signs())) == 1
    assert "lacks signatures" in capsys.readouterr().err
    assert Metadata.from_bytes(c.published_root()).signed.version == 1
    alice = c.sign("alice")[1]
    assert c.tuf("publish", "--signed", str(alice)) == 0
    root = Metadata.from_bytes(c.published_root())
    ci_keyid = json.loads(c.pub("ci").read_text())["keyid"]
    assert root.signed.version == 2 and ci_keyid in root.signatures
    downstream_verifies(c, pinned, tmp_path / "client", "rand")  # the same client follows
