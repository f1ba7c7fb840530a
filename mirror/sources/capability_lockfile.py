"""Reading, validating and writing `capabilities.lock.yaml` (the I/O half of the lock).

The lock's meaning and the decision are pure (`mirror.policy.capability_lock`); this module
reads the file with line numbers for precise errors, and writes it atomically under an
exclusive `flock` on a sidecar `.lock` file, so concurrent writers never lose updates.

Every server worker keeps the lock in memory. So that an approval or a revoke takes effect at
once in all of them, whoever changes the reviewed lock (`approve`, `revoke`, the console)
then bumps a counter in a small file in the cache directory (`LockEpoch`); each worker maps
that file and compares one integer before every decision that depends on the lock (a read
from shared memory, cheap enough for every warm hit), and reloads the lock when it moved.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from mirror.epoch import bump, epoch_file
from mirror.errors import BadRequest, ConfigError, Problem, StorageError
from mirror.files import exclusive_lock, write_atomic
from mirror.index import canonical_name, validate_name
from mirror.policy.capability_lock import (
    ENTRY_KEYS,
    LOCK_FORMAT,
    REVOKED_KEYS,
    Approval,
    CapabilityLock,
    Revocation,
)
from mirror.policy.semver import VersionReq
from mirror.scan.report import Capability, CapabilitySet
from mirror.yamlfile import Located, load_located

# The lock last read or written per path, by the file's identity. Trust-on-first-use adds a
# record per new crate: re-parsing the whole file each time (1.3 s for 3,000 crates with the
# line-numbered loader) made every first sighting slower than the last. `write_atomic` renames
# a new file into place, so any write, ours or another process's, changes the identity.
_CACHE_PATHS = 8
_read: dict[Path, tuple[tuple[int, int, int], CapabilityLock]] = {}


def load_lock(path: Path) -> CapabilityLock:
    """Read and validate a lock file; a missing file is an empty lock."""
    try:
        identity = _identity(path)  # before reading: a change after it only misses the cache
    except FileNotFoundError:
        return CapabilityLock()
    known = _read.get(path)
    if known is not None and known[0] == identity:
        return known[1]
    lock = _Validator(str(path)).lock(load_located(path))
    _remember(path, identity, lock)
    return lock


def _identity(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns, st.st_size


def _remember(path: Path, identity: tuple[int, int, int], lock: CapabilityLock) -> None:
    if path not in _read and len(_read) >= _CACHE_PATHS:
        _read.pop(next(iter(_read)))  # e.g. temp files the lock sync reads once
    _read[path] = (identity, lock)


def save_lock(lock: CapabilityLock, path: Path) -> None:
    with _locked(path):
        write_atomic(path, lock.render().encode())


def update_lock(
    path: Path,
    change: Callable[[CapabilityLock], CapabilityLock],
    *,
    epoch: Path | None = None,
) -> CapabilityLock:
    """Read-modify-write under an exclusive lock, so concurrent updates are not lost; then
    bump the `epoch` counter (if given) so running servers reload at once."""
    with _locked(path), contextlib.ExitStack() as stack:
        # The epoch file opened first: where it cannot be written (a read-only cache), the
        # lock is left as it was rather than changed without telling the servers.
        fd = stack.enter_context(epoch_file(epoch)) if epoch is not None else None
        new = change(load_lock(path))
        write_atomic(path, new.render().encode())
        _remember(path, _identity(path), new)
        if fd is not None:
            bump(fd)
    return new


EPOCH_NAME = "capability-lock.epoch"  # in the server's state directory
LOCK_IN_USE = "capability-lock.path"  # beside it: the reviewed lock that server reads


def record_lock_in_use(state_dir: Path, lock: Path) -> None:
    """Say which reviewed lock the server of this cache reads (`lock_in_use`)."""
    path = state_dir / LOCK_IN_USE
    text = str(lock.resolve())
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except OSError:
        pass
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text.encode())
    except OSError as e:
        raise StorageError(f"cannot write {path}: {e.strerror or e}") from e


def lock_in_use(state_dir: Path) -> Path | None:
    """The reviewed lock the server of this cache last started with (None: no server yet):
    an approval written to another file would be read by nobody."""
    try:
        return Path((state_dir / LOCK_IN_USE).read_text(encoding="utf-8").strip())
    except OSError:
        return None


class _Validator:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def fail(self, line: int | None, fld: str, message: str) -> None:
        self.problems.append(Problem(self.file, line, fld, message))

    def lock(self, top: Any) -> CapabilityLock:
        if not isinstance(top, dict):
            raise ConfigError([Problem(self.file, 1, "(top)", "expected a mapping")])
        for key, loc in top.items():
            if key not in ("version", "crates", "revoked"):
                self.fail(loc.line, key, "unknown key (expected version, crates, revoked)")
        version = top.get("version")
        if version is None or version.value != LOCK_FORMAT:
            line = version.line if version is not None else 1
            self.fail(line, "version", f"must be {LOCK_FORMAT}")
        crates: dict[str, tuple[Approval, ...]] = {}
        seen: dict[str, str] = {}
        body = top.get("crates")
        if body is not None and body.value is not None and not isinstance(body.value, dict):
            self.fail(body.line, "crates", "expected a mapping of crate name to approvals")
        elif body is not None and body.value:
            for name, loc in body.value.items():
                self.crate(name, loc, crates, seen)
        revoked = self.revoked(top.get("revoked"), seen)
        if self.problems:
            raise ConfigError(self.problems)
        return CapabilityLock(
            MappingProxyType(dict(sorted(crates.items()))),
            MappingProxyType(dict(sorted(revoked.items()))),
        )

    def revoked(self, body: Located | None, approved: dict[str, str]) -> dict[str, Revocation]:
        out: dict[str, Revocation] = {}
        if body is None or body.value is None:
            return out
        if not isinstance(body.value, dict):
            self.fail(body.line, "revoked", "expected a mapping of crate name to revocation")
            return out
        for name, loc in body.value.items():
            fld = f"revoked.{name}"
            try:
                validate_name(name)
            except BadRequest as e:
                self.fail(loc.line, fld, str(e))
                continue
            if canonical_name(name) in approved:
                self.fail(loc.line, fld, "also has approvals under crates (approve removes it)")
                continue
            if not isinstance(loc.value, dict):
                self.fail(loc.line, fld, "expected a mapping")
                continue
            for key, item in loc.value.items():
                if key not in REVOKED_KEYS:
                    self.fail(item.line, f"{fld}.{key}", f"unknown key (expected "
                              f"{', '.join(REVOKED_KEYS)})")  # fmt: skip
            text = [
                self.text(loc.value.get(k), loc.line, f"{fld}.{k}", False) for k in REVOKED_KEYS
            ]
            if all(t is not None for t in text):
                out[name] = Revocation(*(t or "" for t in text))
        return out

    def crate(
        self, name: str, loc: Located, crates: dict[str, tuple[Approval, ...]], seen: dict[str, str]
    ) -> None:
        fld = f"crates.{name}"
        try:
            validate_name(name)
        except BadRequest as e:
            self.fail(loc.line, fld, str(e))
            return
        if canonical_name(name) in seen:
            self.fail(loc.line, fld, f"same crate as {seen[canonical_name(name)]!r}")
            return
        seen[canonical_name(name)] = name
        if not isinstance(loc.value, list) or not loc.value:
            self.fail(loc.line, fld, "expected a non-empty list of approvals")
            return
        approvals = [self.approval(item, f"{fld}[{i}]") for i, item in enumerate(loc.value)]
        crates[name] = tuple(a for a in approvals if a is not None)

    def approval(self, item: Located, fld: str) -> Approval | None:
        if not isinstance(item.value, dict):
            self.fail(item.line, fld, "expected a mapping")
            return None
        entry: dict[str, Located] = item.value
        before = len(self.problems)
        for key, loc in entry.items():
            if key not in ENTRY_KEYS:
                self.fail(
                    loc.line, f"{fld}.{key}", f"unknown key (expected {', '.join(ENTRY_KEYS)})"
                )
        caps = self.capabilities(entry.get("capabilities"), item.line, f"{fld}.capabilities")
        text = {
            k: self.text(entry.get(k), item.line, f"{fld}.{k}", k in ("versions", "reviewed"))
            for k in ("approved_by", "approved_at", "reason", "versions", "reviewed")
        }
        req = None
        if text["versions"] is not None:
            try:
                req = VersionReq.parse(text["versions"])
            except ValueError as e:
                self.fail(entry["versions"].line, f"{fld}.versions", str(e))
        if len(self.problems) > before or caps is None:
            return None
        return Approval(
            caps,
            text["approved_by"] or "",
            text["approved_at"] or "",
            text["reason"] or "",
            text["versions"],
            text["reviewed"],
            req,
        )

    def capabilities(self, loc: Located | None, line: int, fld: str) -> CapabilitySet | None:
        if loc is None or not isinstance(loc.value, list):
            self.fail(loc.line if loc else line, fld, "expected a list of capabilities")
            return None
        caps: set[Capability] = set()
        for item in loc.value:
            try:
                caps.add(Capability(item.value))
            except ValueError:
                known = ", ".join(c.value for c in Capability)
                self.fail(item.line, fld, f"unknown capability {item.value!r} (known: {known})")
        return frozenset(caps)

    def text(self, loc: Located | None, line: int, fld: str, optional: bool) -> str | None:
        if loc is None:
            if not optional:
                self.fail(line, fld, "required")
            return None
        value = loc.value
        if isinstance(value, datetime):  # an unquoted timestamp
            value = value.isoformat()
        if isinstance(value, int | float) and fld.endswith(("versions", "reviewed")):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            self.fail(loc.line, fld, "expected a non-empty string")
            return None
        return value


def _locked(path: Path) -> AbstractContextManager[None]:
    """Exclusive lock on a sidecar file: two `approve` runs never lose each other's update."""
    return exclusive_lock(path.with_name(path.name + ".lock"))
