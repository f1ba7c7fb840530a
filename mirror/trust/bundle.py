"""Air-gap bundles: export what lockfiles need with the mirror's signed TUF metadata, and
import such a bundle into a disconnected mirror only after verifying all of it.

Bundle (a plain tar):

    manifest.json                 format, creation time, and every file with length + sha256
    tuf/<N.>role.json             the exporting mirror's metadata: every root version, the
                                  timestamp, snapshot, targets and the bins the files need
    index/<sparse index path>     index files exactly as the exporting mirror serves them
    crates/<sha256>.crate         crates, named by content hash

Import is stage -> verify -> commit: members are copied (never extracted by their own names)
into a private staging directory; the TUF metadata is verified against the *importing*
mirror's pinned root with ngclient (same code path as the proxy), each index file against
its signed hashes, each crate against a cksum in a verified index line; only then does
anything enter the cache. Any failure rejects the whole bundle and changes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

from tuf.api.exceptions import DownloadHTTPError

from mirror.epoch import bump_epoch
from mirror.errors import BadRequest, IntegrityError, StorageError, TrustError
from mirror.index import IndexFile, index_path, parse_index_path
from mirror.store import CachedIndex, FilesystemStore
from mirror.trust._tuf import FetcherInterface
from mirror.trust.repository import MirrorRepository, repository_lock
from mirror.trust.upstream import (
    check_target,
    find_target,
    open_updater,
    refresh_updater,
    updater_config,
)

FORMAT = "crate-mirror-bundle/1"
MAX_METADATA_BYTES = 5_000_000  # bytes, one TUF metadata file (endless-data defence)
MAX_INDEX_BYTES = 32 * 2**20  # bytes, one index file
MAX_CRATE_BYTES = 64 * 2**20  # bytes, one crate
MAX_MEMBERS = 200_000  # files in one bundle
BUNDLE = "the bundle"  # where imported metadata comes from, in messages
# In the cache's state directory: bumped by each import, so running offline servers read the
# index files again (mirror.serving.index_cache.IndexCache._imported).
IMPORT_EPOCH = "import.epoch"
_METADATA_NAME = re.compile(r"(?:[1-9][0-9]{0,9}\.)?[a-z][a-z0-9-]{0,63}\.json\Z")
_CRATE_NAME = re.compile(r"[0-9a-f]{64}\.crate\Z")

Progress = Callable[[int], object]  # called with a number of bytes or files just handled


@dataclass(frozen=True)
class ImportReport:
    index_files: int
    crates_added: int
    crates_present: int  # already in the cache (importing twice is harmless)
    metadata_version: int  # the timestamp version the bundle was verified with


@dataclass(frozen=True)
class ExportReport:
    index_files: int
    crates: int
    bytes: int


# -- export -----------------------------------------------------------------------------------


def export_bundle(
    out: Path,
    index_files: Mapping[str, bytes],
    crates: Mapping[str, Path],
    repo: MirrorRepository,
    progress: Progress | None = None,
) -> ExportReport:
    """Write a bundle of `index_files` ({crate name: served bytes}) and `crates` ({cksum: path}).

    The index files are published into the repository first (a no-op when unchanged), so the
    bundled metadata signs exactly the bytes in the bundle.
    """
    targets = {index_path(name): body for name, body in index_files.items()}
    covered = {line.cksum for body in targets.values() for line in IndexFile.parse(body).lines}
    for cksum in crates:
        if cksum not in covered:
            # Import would reject it: a crate is only trusted through a signed index line.
            raise IntegrityError(f"crate {cksum} is not listed in any bundled index file")
    repo.publish(targets)
    files: dict[str, bytes | Path] = {}
    with repository_lock(repo.settings.dir):
        for name in repo.files_for_targets(sorted(targets)):
            files[f"tuf/{name}"] = (repo.metadata_dir / name).read_bytes()
    for path, body in sorted(targets.items()):
        files[f"index/{path}"] = body
    for cksum, crate in sorted(crates.items()):
        files[f"crates/{cksum}.crate"] = crate

    manifest = {"format": FORMAT, "created": datetime.now(UTC).isoformat(), "files": {}}
    for name, content in files.items():
        digest, length = _digest(content)
        manifest["files"][name] = {"length": length, "sha256": digest}  # type: ignore[index]
    tmp = out.with_name(f".{out.name}.part")
    total = 0
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            _add(tar, "manifest.json", json.dumps(manifest, indent=1, sort_keys=True).encode())
            for name, content in files.items():
                total += _add(tar, name, content)
                if progress:
                    progress(1)
        tmp.replace(out)
    except OSError as e:
        tmp.unlink(missing_ok=True)  # no half bundle left behind
        raise StorageError(f"cannot write {out}: {e.strerror or e}") from e
    return ExportReport(len(targets), len(crates), total)


def _digest(content: bytes | Path) -> tuple[str, int]:
    h = hashlib.sha256()
    length = 0
    with _open(content) as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            length += len(chunk)
    return h.hexdigest(), length


def _open(content: bytes | Path) -> io.BufferedIOBase:
    return io.BytesIO(content) if isinstance(content, bytes) else open(content, "rb")


def _add(tar: tarfile.TarFile, name: str, content: bytes | Path) -> int:
    info = tarfile.TarInfo(name)
    info.size = len(content) if isinstance(content, bytes) else content.stat().st_size
    info.mtime = int(time.time())
    info.mode = 0o644
    with _open(content) as f:
        tar.addfile(info, f)
    return info.size


# -- import -----------------------------------------------------------------------------------


class DirectoryFetcher(FetcherInterface):
    """ngclient fetcher over a staged directory of metadata files (no network on import)."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory

    def _fetch(self, url: str) -> Iterator[bytes]:
        name = unquote(url.rsplit("/", 1)[-1])
        path = self._dir / name
        # Path traversal: only plain metadata file names from the staging directory.
        if not _METADATA_NAME.match(name) or not path.is_file():
            raise DownloadHTTPError(f"the bundle has no {name}", 404)
        return iter([path.read_bytes()])


def import_bundle(
    bundle: Path,
    store: FilesystemStore,
    trusted_root: Path,
    metadata_dir: Path | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Verify every file of `bundle`, then add its index files and crates to `store`.

    `metadata_dir` keeps the last imported metadata (default `<cache>/trust/import/<slot>`,
    one slot per pinned root), so an older bundle after a newer one is refused as a
    rollback. A rejected bundle raises IntegrityError or TrustError whose message is the
    reason alone (callers say "rejected").
    """
    try:
        bootstrap = trusted_root.read_bytes()
    except OSError as e:
        raise TrustError(f"cannot read the pinned root {trusted_root}: {e.strerror}") from e
    base = store.root / "trust" / "import"
    if metadata_dir is None:
        # One slot per pinned root: a bundle from another exporting mirror (its root given
        # with --trusted-root) replaced the one state that refused this root's older
        # bundles, and the next replay of an old bundle of this root was accepted.
        metadata_dir = base / hashlib.sha256(bootstrap).hexdigest()[:16]
    # Two imports at once would race on the rollback state; take turns.
    with (
        repository_lock(base.parent, ".import.lock"),
        tempfile.TemporaryDirectory(dir=store.tmp_dir, prefix="import-") as tmp,
    ):
        _adopt_single_slot(base, metadata_dir)
        previous = metadata_dir.with_name(metadata_dir.name + ".old")
        if not metadata_dir.exists() and previous.is_dir():
            previous.rename(metadata_dir)  # a crash mid-commit must not erase rollback state
        stage = Path(tmp)
        members = _stage(bundle, stage, progress)
        index_bodies, crate_sums, version, work_md = _verify(
            stage, members, bootstrap, metadata_dir
        )
        return _commit(store, stage, index_bodies, crate_sums, version, work_md, metadata_dir)


def _stage(bundle: Path, stage: Path, progress: Progress | None) -> dict[str, Path]:
    """Copy each allowed member to a name we choose; anything unexpected rejects the bundle."""
    members: dict[str, Path] = {}
    try:
        tar = tarfile.open(bundle, "r:")  # noqa: SIM115 - closed below
    except (OSError, tarfile.TarError) as e:
        raise IntegrityError(f"not a readable tar file ({e})") from e
    with tar, _unreadable_is_rejected():
        for count, member in enumerate(tar):
            if count >= MAX_MEMBERS:
                raise IntegrityError(f"more than {MAX_MEMBERS} files")
            if member.isdir():
                continue
            if not member.isfile():
                # Links and devices could point outside the staging area.
                raise IntegrityError(f"{member.name!r} is not a regular file")
            if member.name in members:
                raise IntegrityError(f"{member.name!r} appears twice")
            target, limit = _member_slot(member.name, stage)
            if member.size > limit:
                raise IntegrityError(f"{member.name!r} exceeds {limit} bytes")
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None
            with source, open(target, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            members[member.name] = target
            if progress:
                progress(1)
    if "manifest.json" not in members:
        raise IntegrityError("no manifest.json")
    return members


@contextlib.contextmanager
def _unreadable_is_rejected() -> Iterator[None]:
    """A bundle cut short (or corrupt) inside a member: tarfile notices while reading it."""
    try:
        yield
    except (tarfile.TarError, EOFError) as e:
        raise IntegrityError(f"not a complete tar file ({e})") from e


def _member_slot(name: str, stage: Path) -> tuple[Path, int]:
    if name == "manifest.json":
        return stage / "manifest.json", MAX_METADATA_BYTES
    kind, _, rest = name.partition("/")
    if kind == "tuf" and _METADATA_NAME.match(rest):
        return stage / "tuf" / rest, MAX_METADATA_BYTES
    if kind == "crates" and _CRATE_NAME.match(rest):
        return stage / "crates" / rest, MAX_CRATE_BYTES
    if kind == "index":
        try:
            crate = parse_index_path(rest)  # path traversal: only canonical index paths
        except BadRequest as e:
            raise IntegrityError(f"bad index path {name!r}: {e}") from e
        return stage / "index" / crate, MAX_INDEX_BYTES
    raise IntegrityError(f"unexpected file {name!r}")


def _adopt_single_slot(base: Path, slot: Path) -> None:
    """`<cache>/trust/import` held the metadata itself before there was a slot per root: it
    becomes the slot of the first root imported with, so its rollback state is kept."""
    old = sorted(base.glob("*.json"))
    if old and not slot.exists():
        slot.mkdir(parents=True)
        for path in old:
            path.rename(slot / path.name)


def _verify(
    stage: Path, members: dict[str, Path], bootstrap: bytes, metadata_dir: Path
) -> tuple[dict[str, bytes], set[str], int, Path]:
    _check_manifest(stage, members)
    work_md = stage / "metadata"
    if metadata_dir.is_dir():
        shutil.copytree(metadata_dir, work_md, symlinks=True)
    updater = open_updater(
        work_md,
        "bundle:///tuf/",
        bootstrap,
        updater_config(MAX_METADATA_BYTES),
        DirectoryFetcher(stage / "tuf"),
    )
    refresh_updater(updater, BUNDLE)
    bodies: dict[str, bytes] = {}
    for name, path in members.items():
        if not name.startswith("index/"):
            continue
        target = name.removeprefix("index/")
        body = path.read_bytes()
        info = find_target(updater, target, BUNDLE)
        if info is None:
            raise TrustError(f"{target} is not signed by the bundle's targets metadata")
        check_target(info, body)  # tampered or swapped index file
        bodies[parse_index_path(target)] = body
    listed = {line.cksum for body in bodies.values() for line in IndexFile.parse(body).lines}
    sums: set[str] = set()
    for name, path in members.items():
        if not name.startswith("crates/"):
            continue
        cksum = path.name.removesuffix(".crate")
        digest, _ = _digest(path)
        if digest != cksum:
            raise IntegrityError(f"{name} is tampered (sha256 {digest})")
        if cksum not in listed:
            raise IntegrityError(f"{name} is in no verified index line")
        sums.add(cksum)
    version = updater._trusted_set.timestamp.version
    return bodies, sums, version, work_md


def _check_manifest(stage: Path, members: dict[str, Path]) -> None:
    """The manifest must describe exactly the bundle: catches truncation and stray files."""
    try:
        manifest = json.loads((stage / "manifest.json").read_bytes())
        files = manifest["files"]
        if manifest.get("format") != FORMAT or not isinstance(files, dict):
            raise ValueError("unknown format")
    except (ValueError, KeyError, TypeError) as e:
        raise IntegrityError(f"unreadable manifest ({e})") from e
    present = set(members) - {"manifest.json"}
    if set(files) != present:
        diff = sorted(set(files) ^ present)[:5]
        raise IntegrityError(f"manifest does not match contents: {diff}")
    for name, entry in files.items():
        if not isinstance(entry, dict):
            raise IntegrityError(f"unreadable manifest (the entry of {name!r} is not a mapping)")
        digest, length = _digest(members[name])
        if entry.get("sha256") != digest or entry.get("length") != length:
            raise IntegrityError(f"{name} does not match the manifest")


def _commit(
    store: FilesystemStore,
    stage: Path,
    bodies: dict[str, bytes],
    sums: set[str],
    version: int,
    work_md: Path,
    metadata_dir: Path,
) -> ImportReport:
    added = present = 0
    for cksum in sorted(sums):
        if store.has_crate(cksum):
            present += 1
            continue
        store.put_crate_bytes(cksum, (stage / "crates" / f"{cksum}.crate").read_bytes())
        added += 1
    now = time.time()
    for name, body in sorted(bodies.items()):
        store.write_index(name, CachedIndex(body, None, None, now))
    # Keep the verified metadata, so the next import can detect a rollback.
    old = metadata_dir.with_name(metadata_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    metadata_dir.parent.mkdir(parents=True, exist_ok=True)
    if metadata_dir.exists():
        metadata_dir.rename(old)
    shutil.copytree(work_md, metadata_dir, symlinks=True)
    shutil.rmtree(old, ignore_errors=True)
    bump_epoch(store.root / "state" / IMPORT_EPOCH)  # running offline servers: read again
    return ImportReport(len(bodies), added, present, version)
