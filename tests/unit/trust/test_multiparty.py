"""Keys held apart: each holder creates their key, signs staged changes where they are.

Every step goes through the `crate-mirror tuf ...` commands a holder or operator would run;
the holders' directories never see each other's private keys, only copies of staged files.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from mirror.cli import main
from mirror.errors import TrustError
from mirror.index import index_path
from mirror.trust._tuf import CryptoSigner, Metadata
from mirror.trust.bundle import DirectoryFetcher
from mirror.trust.keys import load_signer
from mirror.trust.repository import MirrorRepository
from mirror.trust.settings import TufRepositorySettings
from mirror.trust.upstream import (
    check_target,
    find_target,
    open_updater,
    refresh_updater,
    updater_config,
)
from tests.unit.trust.test_upstream import index_body

HOLDERS = ("alice", "bob", "carol")


@dataclass
class Ceremony:
    """Three root key holders and one targets key holder, each with their own directory."""

    tmp: Path
    repo: Path

    def holder(self, name: str) -> Path:
        return self.tmp / name

    def key(self, name: str) -> Path:
        return self.holder(name) / "key.pem"

    def pub(self, name: str) -> Path:
        return self.holder(name) / "key.pub"

    def tuf(self, *args: str) -> int:
        """`crate-mirror tuf ACTION --repo REPO ...`, as the operator runs it."""
        return main(["tuf", args[0], "--repo", str(self.repo), *args[1:]])

    def copy_to(self, name: str, role: str = "root") -> Path:
        """The operator hands a copy of the staged file to a holder (mail, USB stick...)."""
        copy = self.holder(name) / f"{role}.json"
        shutil.copyfile(self.repo / "staged" / f"{role}.json", copy)
        return copy

    def sign(self, name: str, role: str = "root", *extra: str) -> tuple[int, Path]:
        copy = self.copy_to(name, role)
        code = main(
            ["tuf", "sign", role, "--file", str(copy), "--key", str(self.key(name)), *extra]
        )
        return code, copy

    @property
    def settings(self) -> TufRepositorySettings:
        return TufRepositorySettings(dir=self.repo, bins=4)

    def published_root(self) -> bytes:
        return (self.repo / "metadata" / "root.json").read_bytes()


@pytest.fixture
def ceremony(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Ceremony:
    """Keys created by their holders, enrolled by public key: root 2 of 3, staged v1."""
    c = Ceremony(tmp_path, tmp_path / "repo")
    for name in (*HOLDERS, "tara"):
        assert main(["tuf", "key", "new", "--out", str(c.key(name))]) == 0
        printed = json.loads(capsys.readouterr().out)
        assert printed == json.loads(c.pub(name).read_text())
        assert "private" not in c.pub(name).read_text()
    roots = [a for n in HOLDERS for a in ("--root-key", str(c.pub(n)))]
    init = ["init", *roots, "--root-threshold", "2", "--targets-key", str(c.pub("tara"))]
    assert c.tuf(*init, "--bins", "4") == 0
    assert not (c.repo / "metadata" / "root.json").exists()  # nothing served before signing
    return c


def publish_v1(c: Ceremony) -> None:
    copies = [c.sign("alice")[1], c.sign("bob")[1], c.sign("tara", "targets")[1]]
    assert c.tuf("publish", *(a for copy in copies for a in ("--signed", str(copy)))) == 0


def downstream_verifies(c: Ceremony, pinned: bytes, client: Path, name: str) -> None:
    """A downstream TUF client, pinned to `pinned`, verifies an index file the mirror signed."""
    repo = MirrorRepository(c.settings)
    repo.publish({index_path(name): index_body(name)})
    fetcher = DirectoryFetcher(c.repo / "metadata")
    updater = open_updater(client, "mirror:///tuf/", pinned, updater_config(5_000_000), fetcher)
    refresh_updater(updater)
    info = find_target(updater, index_path(name))
    assert info is not None
    check_target(info, index_body(name))


def test_holders_sign_version_one_where_they_are(
    ceremony: Ceremony, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two of three root holders and the targets holder sign copies; publish creates v1."""
    c = ceremony
    code, copy = c.sign("alice")
    assert code == 0
    out = capsys.readouterr().out
    assert "root v1" in out and "root: 2 of" in out  # the holder sees what they sign
    assert c.tuf("publish", "--signed", str(copy)) == 1
    assert "lacks signatures" in capsys.readouterr().err
    assert not (c.repo / "metadata" / "root.json").exists()
    publish_v1(c)
    root = Metadata.from_bytes(c.published_root())
    assert len(root.signatures) == 2 and root.signed.roles["root"].threshold == 2
    assert not (c.repo / "staged").exists() or not any((c.repo / "staged").iterdir())
    downstream_verifies(c, c.published_root(), c.tmp / "client", "serde")


def test_rotation_needs_the_root_threshold_and_clients_follow(ceremony: Ceremony) -> None:
    """A timestamp key rotation: refused with one root signature, published with two."""
    c = ceremony
    publish_v1(c)
    pinned = c.published_root()
    downstream_verifies(c, pinned, c.tmp / "client", "serde")
    assert c.tuf("rotate", "timestamp") == 0
    _, carol = c.sign("carol")
    assert c.tuf("publish", "--signed", str(carol)) == 1
    assert Metadata.from_bytes(c.published_root()).signed.version == 1
    _, alice = c.sign("alice")
    assert c.tuf("publish", "--signed", str(alice)) == 0
    assert Metadata.from_bytes(c.published_root()).signed.version == 2
    downstream_verifies(c, pinned, c.tmp / "client", "rand")  # same client follows v2


def test_a_new_root_key_is_enrolled_by_its_public_key(ceremony: Ceremony) -> None:
    """Replacing a root holder: old threshold and new threshold both sign."""
    c = ceremony
    publish_v1(c)
    assert main(["tuf", "key", "new", "--out", str(c.key("dave"))]) == 0
    bob = json.loads(c.pub("bob").read_text())["keyid"]
    assert c.tuf("rotate", "root", "--add-key", str(c.pub("dave")), "--remove-keyid", bob) == 0
    trusted = c.tmp / "trusted-root.json"
    trusted.write_bytes(c.published_root())
    # bob's key leaves root, so it only counts with the current root at hand.
    code, _ = c.sign("bob")
    assert code == 1
    copies = [c.sign(n, "root", "--trusted-root", str(trusted))[1] for n in ("bob", "alice")]
    assert c.tuf("publish", *(a for p in copies for a in ("--signed", str(p)))) == 1
    _, dave = c.sign("dave")  # the new root's threshold (2 of alice, carol, dave) needs one more
    assert c.tuf("publish", "--signed", str(dave)) == 0
    keyids = Metadata.from_bytes(c.published_root()).signed.roles["root"].keyids
    assert bob not in keyids and len(keyids) == 3
    downstream_verifies(c, (c.repo / "metadata" / "1.root.json").read_bytes(), c.tmp / "cl", "syn")


def test_online_keys_switch_to_standby_without_root_holders(
    ceremony: Ceremony, capsys: pytest.CaptureFixture[str]
) -> None:
    """timestamp and snapshot switch to the standby key root trusts; clients accept at once.

    The retired key is revoked when the root holders publish the root the switch staged.
    """
    c = ceremony
    publish_v1(c)
    pinned = c.published_root()
    downstream_verifies(c, pinned, c.tmp / "client", "serde")
    trusted = Metadata.from_bytes(pinned).signed
    for role in ("timestamp", "snapshot"):
        assert len(trusted.roles[role].keyids) == 2  # the active key and its standby
    keys = c.repo / "keys"
    before = {role: (keys / f"{role}.pem").read_bytes() for role in ("timestamp", "snapshot")}
    standby = {role: (keys / f"{role}.standby.pem").read_bytes() for role in before}
    standby_ids = {
        role: load_signer(f"file2:{keys / f'{role}.standby.pem'}", None, role).public_key.keyid
        for role in before
    }
    assert c.tuf("rotate", "timestamp", "--standby") == 0
    assert c.tuf("rotate", "snapshot", "--standby") == 0
    assert "no root holder needed" in capsys.readouterr().out
    for role in before:
        assert (keys / f"{role}.pem").read_bytes() == standby[role]
        assert not (keys / f"{role}.standby.pem").exists()
    assert Metadata.from_bytes(c.published_root()).signed.version == 1  # no holder signed
    timestamp = Metadata.from_bytes((c.repo / "metadata" / "timestamp.json").read_bytes())
    assert set(timestamp.signatures) == {standby_ids["timestamp"]}
    snapshot = MirrorRepository(c.settings).snapshot()
    assert set(snapshot.signatures) == {standby_ids["snapshot"]}
    downstream_verifies(c, pinned, c.tmp / "client", "rand")  # accepted at once
    assert c.tuf("rotate", "timestamp", "--standby") == 1  # the standby is used up
    assert "no standby timestamp key" in capsys.readouterr().err

    _, alice = c.sign("alice")
    _, bob = c.sign("bob")
    assert c.tuf("publish", "--signed", str(alice), "--signed", str(bob)) == 0
    root = Metadata.from_bytes(c.published_root()).signed
    assert root.version == 2
    for role, old in before.items():
        assert (keys / f"{role}.standby.pem").is_file()  # a fresh standby, now trusted
        stale = c.tmp / f"retired-{role}.pem"
        stale.write_bytes(old)
        stale.chmod(0o600)
        trusted_now = {k: root.keys[k] for k in root.roles[role].keyids}
        with pytest.raises(TrustError, match="not a trusted"):
            load_signer(f"file2:{stale}", trusted_now, role)
    downstream_verifies(c, pinned, c.tmp / "client", "syn")


def test_bins_rotate_with_the_targets_holder_alone(ceremony: Ceremony) -> None:
    """bins is delegated by targets: no root holder takes part in rotating it."""
    c = ceremony
    publish_v1(c)
    pinned = c.published_root()
    downstream_verifies(c, pinned, c.tmp / "client", "serde")
    old = (c.repo / "keys" / "bins.pem").read_bytes()
    assert c.tuf("rotate", "bins") == 0
    _, copy = c.sign("tara", "targets")
    assert c.tuf("publish", "--signed", str(copy)) == 0
    assert (c.repo / "keys" / "bins.pem").read_bytes() != old
    assert Metadata.from_bytes(c.published_root()).signed.version == 1  # root untouched
    downstream_verifies(c, pinned, c.tmp / "client", "rand")


# -- what the signatures stop ------------------------------------------------------------------


def test_a_stranger_key_cannot_sign(ceremony: Ceremony, capsys: pytest.CaptureFixture[str]) -> None:
    """Wrong key: refused when signing, and a copy carrying its signature is refused."""
    c = ceremony
    assert main(["tuf", "key", "new", "--out", str(c.key("mallory"))]) == 0
    code, _ = c.sign("mallory")
    assert code == 1 and "not a trusted root key" in capsys.readouterr().err
    copy = c.copy_to("mallory")
    forged = Metadata.from_bytes(copy.read_bytes())
    forged.sign(CryptoSigner.generate_ed25519(), append=True)
    copy.write_bytes(forged.to_bytes())
    assert c.tuf("publish", "--signed", str(copy)) == 1
    assert "is not a root key" in capsys.readouterr().err


def test_below_threshold_publishes_nothing(ceremony: Ceremony) -> None:
    """One of two root signatures: nothing is published, the signature is kept."""
    c = ceremony
    _, alice = c.sign("alice")
    _, tara = c.sign("tara", "targets")
    assert c.tuf("publish", "--signed", str(alice), "--signed", str(tara)) == 1
    assert not (c.repo / "metadata" / "root.json").exists()
    _, bob = c.sign("bob")
    assert c.tuf("publish", "--signed", str(bob)) == 0  # alice's signature was kept


def test_a_tampered_copy_is_refused(ceremony: Ceremony, capsys: pytest.CaptureFixture[str]) -> None:
    """A copy altered on its way (a key added) and then signed does not count."""
    c = ceremony
    copy = c.copy_to("alice")
    md = Metadata.from_bytes(copy.read_bytes())
    md.signed.add_key(CryptoSigner.generate_ed25519().public_key, "root")
    copy.write_bytes(md.to_bytes())
    assert main(["tuf", "sign", "root", "--file", str(copy), "--key", str(c.key("alice"))]) == 0
    assert c.tuf("publish", "--signed", str(copy)) == 1
    assert "does not sign the staged root" in capsys.readouterr().err
    staged = Metadata.from_bytes((c.repo / "staged" / "root.json").read_bytes())
    assert staged.signatures == {}


def test_a_tampered_staged_file_loses_its_signatures(ceremony: Ceremony) -> None:
    """Editing the staged root after a holder signed it voids that signature."""
    c = ceremony
    publish_v1(c)
    assert c.tuf("rotate", "timestamp") == 0
    _, alice = c.sign("alice")
    assert c.tuf("publish", "--signed", str(alice)) == 1  # merged, 1 of 2
    staged = c.repo / "staged" / "root.json"
    md = Metadata.from_bytes(staged.read_bytes())
    md.signed.add_key(CryptoSigner.generate_ed25519().public_key, "timestamp")
    staged.write_bytes(md.to_bytes())  # someone with access to the server edits it
    _, bob = c.sign("bob")  # bob signs what is staged now
    assert c.tuf("publish", "--signed", str(bob)) == 1  # alice's signature no longer counts
    assert Metadata.from_bytes(c.published_root()).signed.version == 1


def test_an_old_signed_root_cannot_be_replayed(
    ceremony: Ceremony, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rollback: a fully signed root v2 staged again after v3 is refused, and not re-signed."""
    c = ceremony
    publish_v1(c)
    signed_v2 = []
    for rotation in ("timestamp", "snapshot"):
        assert c.tuf("rotate", rotation) == 0
        copies = [c.sign(n)[1] for n in ("alice", "bob")]
        if rotation == "timestamp":
            signed_v2 = [p.read_bytes() for p in copies]
        assert c.tuf("publish", *(a for p in copies for a in ("--signed", str(p)))) == 0
    assert Metadata.from_bytes(c.published_root()).signed.version == 3
    staged = c.repo / "staged" / "root.json"
    staged.parent.mkdir(exist_ok=True)
    replay = Metadata.from_bytes(signed_v2[0])
    replay.signatures.update(Metadata.from_bytes(signed_v2[1]).signatures)
    staged.write_bytes(replay.to_bytes())
    assert c.tuf("publish") == 1
    assert "only v4 can follow" in capsys.readouterr().err
    assert Metadata.from_bytes(c.published_root()).signed.version == 3
    trusted = c.tmp / "trusted.json"
    trusted.write_bytes(c.published_root())
    copy = c.holder("alice") / "old-root.json"
    copy.write_bytes(signed_v2[0])
    sign = ["tuf", "sign", "root", "--file", str(copy), "--key", str(c.key("alice"))]
    assert main([*sign, "--trusted-root", str(trusted)]) == 1
    assert "only v4 can follow" in capsys.readouterr().err


def test_a_signature_that_does_not_verify_is_refused(
    ceremony: Ceremony, capsys: pytest.CaptureFixture[str]
) -> None:
    """A copy whose signature bytes were altered is refused as tampered, nothing merged."""
    c = ceremony
    _, copy = c.sign("alice")
    md = Metadata.from_bytes(copy.read_bytes())
    for sig in md.signatures.values():
        sig.signature = ("00" if sig.signature[:2] != "00" else "11") + sig.signature[2:]
    copy.write_bytes(md.to_bytes())
    assert c.tuf("publish", "--signed", str(copy)) == 1
    assert "does not verify" in capsys.readouterr().err


def test_public_key_files_cannot_lie_or_repeat(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A key file claiming another keyid, or one key enrolled twice, is refused."""
    c = Ceremony(tmp_path, tmp_path / "repo")
    for name in ("alice", "bob"):
        assert main(["tuf", "key", "new", "--out", str(c.key(name))]) == 0
    capsys.readouterr()
    twice = ["init", "--root-key", str(c.pub("alice")), "--root-key", str(c.pub("alice"))]
    assert c.tuf(*twice, "--root-threshold", "2", "--targets-key", str(c.pub("bob"))) == 1
    assert "enrolled twice" in capsys.readouterr().err
    liar = json.loads(c.pub("bob").read_text())
    liar["keyid"] = json.loads(c.pub("alice").read_text())["keyid"]
    (tmp_path / "liar.pub").write_text(json.dumps(liar))
    lying = ["init", "--root-key", str(c.pub("alice")), "--root-key", str(tmp_path / "liar.pub")]
    assert c.tuf(*lying, "--root-threshold", "2", "--targets-key", str(c.pub("bob"))) == 1
    assert "does not match the key's content" in capsys.readouterr().err
    too_many = ["init", "--root-key", str(c.pub("alice")), "--root-threshold", "2"]
    assert c.tuf(*too_many, "--offline-dir", str(tmp_path / "off")) == 1
    assert "root threshold" in capsys.readouterr().err
    assert not (c.repo / "staged").exists() and not (c.repo / "keys").exists()
    assert not (tmp_path / "off").exists()  # nothing created by a refused init


def test_key_files_are_never_overwritten(tmp_path: Path) -> None:
    """`tuf key new` refuses to replace an existing key (a lost key cannot be undone)."""
    key = tmp_path / "k.pem"
    assert main(["tuf", "key", "new", "--out", str(key)]) == 0
    before = key.read_bytes()
    assert main(["tuf", "key", "new", "--out", str(key)]) == 1
    assert key.read_bytes() == before
    with pytest.raises(TrustError):
        from mirror.trust.keys import read_public_key

        read_public_key(tmp_path / "missing.pub")
