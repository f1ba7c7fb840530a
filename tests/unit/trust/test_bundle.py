"""Air-gap bundles: verified against the importing mirror's pinned root, all or nothing."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mirror.epoch import Epoch
from mirror.errors import IntegrityError, StorageError, TrustError
from mirror.index import index_path
from mirror.store import FilesystemStore
from mirror.trust.bundle import IMPORT_EPOCH, export_bundle, import_bundle
from mirror.trust.repository import MirrorRepository, init_repository
from mirror.trust.settings import TufRepositorySettings
from tests.fixtures.crates import debian_crate_dir, pack_crate

Crates = dict[str, tuple[bytes, bytes]]  # name -> (index body, crate bytes)


def make_crate(name: str, vers: str, payload: bytes) -> tuple[bytes, bytes]:
    crate = payload + f"{name}-{vers}".encode()
    cksum = hashlib.sha256(crate).hexdigest()
    line = {"name": name, "vers": vers, "deps": [], "cksum": cksum, "features": {}}
    return json.dumps(line, separators=(",", ":")).encode() + b"\n", crate


@dataclass
class Air:
    settings: TufRepositorySettings
    repo: MirrorRepository
    root: Path  # the exporting mirror's root.json, pinned on the disconnected side
    store: FilesystemStore  # the disconnected mirror's cache
    tmp: Path

    def export(self, crates: Crates, name: str = "bundle.tar") -> Path:
        out = self.tmp / name
        files = {n: body for n, (body, _) in crates.items()}
        paths = {}
        for _, data in crates.values():
            cksum = hashlib.sha256(data).hexdigest()
            paths[cksum] = self.tmp / f"{cksum}.crate"
            paths[cksum].write_bytes(data)
        export_bundle(out, files, paths, self.repo)
        return out

    def import_(self, bundle: Path) -> object:
        return import_bundle(bundle, self.store, self.root)

    def assert_untouched(self) -> None:
        assert list(self.store.iter_crates()) == []
        assert list(self.store.iter_index_names()) == []
        assert not (self.store.root / "trust" / "import").exists()


@pytest.fixture
def air(tmp_path: Path) -> Air:
    settings = TufRepositorySettings(dir=tmp_path / "repo", bins=4)
    init_repository(settings, tmp_path / "offline", root_keys=1, root_threshold=1)
    pinned = tmp_path / "pinned-root.json"
    pinned.write_bytes((settings.metadata_dir / "root.json").read_bytes())
    store = FilesystemStore(tmp_path / "airgapped")
    return Air(settings, MirrorRepository(settings), pinned, store, tmp_path)


@pytest.fixture
def crates() -> Crates:
    itoa = pack_crate(debian_crate_dir("itoa"))
    return {"itoa": make_crate("itoa", "1.0.0", itoa), "ryu": make_crate("ryu", "1.0.0", b"r")}


def rewrite(bundle: Path, change: dict[str, bytes | None], fix_manifest: bool = True) -> None:
    """Replace (or drop, with None) members, keeping the manifest consistent if asked."""
    with tarfile.open(bundle) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar}  # type: ignore[union-attr]
    for name, data in change.items():
        if data is None:
            members.pop(name, None)
        else:
            members[name] = data
    if fix_manifest:
        manifest = json.loads(members["manifest.json"])
        manifest["files"] = {
            n: {"length": len(d), "sha256": hashlib.sha256(d).hexdigest()}
            for n, d in members.items()
            if n != "manifest.json"
        }
        members["manifest.json"] = json.dumps(manifest).encode()
    with tarfile.open(bundle, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def crate_member(crates: Crates, name: str) -> str:
    return f"crates/{hashlib.sha256(crates[name][1]).hexdigest()}.crate"


def test_bundle_round_trip(air: Air, crates: Crates) -> None:
    """Everything a lockfile needs arrives verified in the disconnected cache."""
    report = air.import_(air.export(crates))
    assert report.index_files == 2 and report.crates_added == 2  # type: ignore[attr-defined]
    for name, (body, data) in crates.items():
        cached = air.store.read_index(name)
        assert cached is not None and cached.body == body
        assert air.store.has_crate(hashlib.sha256(data).hexdigest())
    # Running offline servers of this cache are told (they read the index files again).
    assert Epoch(air.store.root / "state" / IMPORT_EPOCH).read() == 1


def test_importing_twice_is_harmless(air: Air, crates: Crates) -> None:
    """Re-importing the same bundle neither fails nor duplicates anything."""
    bundle = air.export(crates)
    air.import_(bundle)
    report = air.import_(bundle)
    assert report.crates_added == 0 and report.crates_present == 2  # type: ignore[attr-defined]


def test_newer_bundle_adds_and_older_is_a_rollback(air: Air, crates: Crates) -> None:
    """A later bundle adds to the cache; replaying an earlier one afterwards is refused."""
    first = air.export({"itoa": crates["itoa"]}, "first.tar")
    second = air.export({"ryu": crates["ryu"]}, "second.tar")
    air.import_(second)
    with pytest.raises(TrustError, match="rollback"):
        air.import_(first)
    assert air.store.read_index("itoa") is None
    assert air.store.read_index("ryu") is not None


def test_tampered_crate_rejects_bundle(air: Air, crates: Crates) -> None:
    """A crate altered after export (manifest re-computed by the attacker) is caught."""
    bundle = air.export(crates)
    rewrite(bundle, {crate_member(crates, "itoa"): b"evil build.rs"})
    with pytest.raises(IntegrityError, match="tampered"):
        air.import_(bundle)
    air.assert_untouched()


def test_tampered_index_file_rejects_bundle(air: Air, crates: Crates) -> None:
    """An index line pointing at another cksum fails the signed hashes."""
    bundle = air.export(crates)
    evil_body, _ = make_crate("ryu", "1.0.0", b"evil")
    rewrite(bundle, {f"index/{index_path('ryu')}": evil_body})
    with pytest.raises(TrustError, match="length or hash mismatch"):
        air.import_(bundle)
    air.assert_untouched()


def test_swapped_index_files_reject_bundle(air: Air, crates: Crates) -> None:
    """Mix-and-match: itoa's signed index file under ryu's path is refused."""
    bundle = air.export(crates)
    a, b = f"index/{index_path('itoa')}", f"index/{index_path('ryu')}"
    rewrite(bundle, {a: crates["ryu"][0], b: crates["itoa"][0]})
    with pytest.raises(TrustError, match="length or hash mismatch"):
        air.import_(bundle)
    air.assert_untouched()


def test_bundle_from_another_mirror_is_rejected(air: Air, crates: Crates, tmp_path: Path) -> None:
    """Wrong key: metadata not chained to the pinned root is refused."""
    other = TufRepositorySettings(dir=tmp_path / "other", bins=4)
    init_repository(other, tmp_path / "other-offline", root_keys=1, root_threshold=1)
    air.repo = MirrorRepository(other)
    with pytest.raises(TrustError, match="signature threshold not met"):
        air.import_(air.export(crates))
    air.assert_untouched()


def test_expired_bundle_is_rejected(air: Air, crates: Crates) -> None:
    """Freeze: a bundle whose timestamp expired before import is refused."""
    past = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    air.repo = MirrorRepository(air.settings, clock=lambda: past)
    with pytest.raises(TrustError, match="expired"):
        air.import_(air.export(crates))
    air.assert_untouched()


def test_unlisted_and_unsafe_members_reject_bundle(air: Air, crates: Crates) -> None:
    """Path traversal and stray files: only known member shapes are accepted."""
    for evil in ("../../etc/passwd", "index/../../x", "crates/abc.crate", "tuf/../root.json"):
        bundle = air.export(crates)
        rewrite(bundle, {evil: b"x"})
        with pytest.raises(IntegrityError, match=r"unexpected file|bad index path"):
            air.import_(bundle)
    air.assert_untouched()


def test_symlink_member_rejects_bundle(air: Air, crates: Crates) -> None:
    """Links could point outside the staging area: refused."""
    bundle = air.export(crates)
    with tarfile.open(bundle, "a") as tar:
        link = tarfile.TarInfo("crates/" + "0" * 64 + ".crate")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(IntegrityError, match="not a regular file"):
        air.import_(bundle)
    air.assert_untouched()


def test_truncated_bundle_fails_manifest(air: Air, crates: Crates) -> None:
    """A bundle missing a file its manifest lists is refused."""
    bundle = air.export(crates)
    rewrite(bundle, {crate_member(crates, "ryu"): None}, fix_manifest=False)
    with pytest.raises(IntegrityError, match="manifest does not match"):
        air.import_(bundle)
    air.assert_untouched()


def test_export_refuses_crate_without_index_line(air: Air, crates: Crates) -> None:
    """A crate no bundled index line vouches for could never be verified on import."""
    stray = air.tmp / "stray.crate"
    stray.write_bytes(b"stray")
    with pytest.raises(IntegrityError, match="not listed"):
        export_bundle(
            air.tmp / "b.tar",
            {"ryu": crates["ryu"][0]},
            {hashlib.sha256(b"stray").hexdigest(): stray},
            air.repo,
        )


@pytest.mark.parametrize("member", [0, -1])
def test_a_bundle_cut_inside_a_file_is_rejected_not_a_traceback(
    air: Air, crates: Crates, member: int
) -> None:
    """Cut in the middle of a member (the first, the last), tarfile raised ReadError past
    the import's checks: a traceback, and nothing in the audit log."""
    bundle = air.export(crates)
    with tarfile.open(bundle) as tar:
        cut = tar.getmembers()[member]
    data = bundle.read_bytes()
    bundle.write_bytes(data[: cut.offset_data + cut.size // 2])
    with pytest.raises(IntegrityError, match="not a complete tar file"):
        air.import_(bundle)
    air.assert_untouched()


def test_a_manifest_entry_of_the_wrong_shape_is_rejected(air: Air, crates: Crates) -> None:
    """`files[name]` as a list raised AttributeError (a traceback)."""
    bundle = air.export(crates)
    with tarfile.open(bundle) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    manifest["files"]["tuf/1.root.json"] = []
    rewrite(bundle, {"manifest.json": json.dumps(manifest).encode()}, fix_manifest=False)
    with pytest.raises(IntegrityError, match="unreadable manifest"):
        air.import_(bundle)
    air.assert_untouched()


def test_a_bundle_without_its_metadata_says_so_not_upstream(air: Air, crates: Crates) -> None:
    """There is no upstream on the disconnected side: a missing file is the bundle's."""
    bundle = air.export(crates)
    rewrite(bundle, {"tuf/timestamp.json": None})
    with pytest.raises(TrustError) as info:
        air.import_(bundle)
    assert "upstream" not in str(info.value)
    assert "the bundle has no timestamp.json" in str(info.value)
    air.assert_untouched()


def test_export_to_an_unwritable_place_leaves_no_part_file(air: Air, crates: Crates) -> None:
    """A bundle that cannot be written is a StorageError, and no `.NAME.part` stays."""
    target = air.tmp / "taken"
    target.mkdir()
    files = {n: body for n, (body, _) in crates.items()}
    with pytest.raises(StorageError, match="cannot write"):
        export_bundle(target, files, {}, air.repo)
    assert sorted(p.name for p in air.tmp.iterdir() if p.name.endswith(".part")) == []


def test_a_bundle_of_another_root_does_not_reopen_this_roots_rollback(
    air: Air, crates: Crates, tmp_path: Path
) -> None:
    """One rollback state was shared by every root: after a bundle of another exporting
    mirror (its root given as the trusted root), an older bundle of this root was accepted."""
    first = air.export({"itoa": crates["itoa"]}, "first.tar")
    second = air.export({"ryu": crates["ryu"]}, "second.tar")
    other = TufRepositorySettings(dir=tmp_path / "other-repo", bins=4)
    init_repository(other, tmp_path / "other-offline", root_keys=1, root_threshold=1)
    other_root = tmp_path / "other-root.json"
    other_root.write_bytes((other.metadata_dir / "root.json").read_bytes())
    body, data = make_crate("memchr", "2.0.0", b"m")
    (tmp_path / "m.crate").write_bytes(data)
    theirs = tmp_path / "theirs.tar"
    paths = {hashlib.sha256(data).hexdigest(): tmp_path / "m.crate"}
    export_bundle(theirs, {"memchr": body}, paths, MirrorRepository(other))
    air.import_(second)
    import_bundle(theirs, air.store, other_root)
    with pytest.raises(TrustError, match="rollback"):
        air.import_(first)
    assert air.store.read_index("itoa") is None


def test_the_single_rollback_state_of_before_is_kept(air: Air, crates: Crates) -> None:
    """A cache imported into before there was a state per root keeps refusing old bundles."""
    first = air.export({"itoa": crates["itoa"]}, "first.tar")
    second = air.export({"ryu": crates["ryu"]}, "second.tar")
    air.import_(second)
    base = air.store.root / "trust" / "import"
    (slot,) = base.iterdir()
    for path in slot.iterdir():  # the layout of before: the metadata right in trust/import
        path.rename(base / path.name)
    slot.rmdir()
    with pytest.raises(TrustError, match="rollback"):
        air.import_(first)
