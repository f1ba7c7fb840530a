"""Scanning one `.crate`: stream the archive, read the manifest, read each file, merge.

Memory stays bounded whatever the archive holds (issue 16: an accepted archive of zeros used
to peak at 543 MB): the archive streams past once, keeping `.rs` sources and `Cargo.toml` up
to `limits.max_kept_bytes`; the source beyond that is streamed a second time and read as it
passes. Of every other file only its size and what its first bytes say are kept, unless a
file read as Rust pulls it in (`include!("x.txt")`, `#[path = "x.dat"] mod x;`): rustc
compiles it whatever its name, so it is read as Rust too, in one more pass per level of such
files.

Files are read in scan order (the build script and what it pulls in, then `src/`, then the
rest), so the evidence kept per kind is the first in that order; files read in the second
pass are merged into the same order afterwards.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from mirror.errors import ArchiveError
from mirror.scan.archive import ArchiveLimits, CrateFiles, Entry
from mirror.scan.build_writes import writes_outside_out_dir
from mirror.scan.content import CrateFacts, read_content
from mirror.scan.content_tokens import Token, scan_tokens
from mirror.scan.findings import context_from
from mirror.scan.magic import binary_kind, embedded_kind
from mirror.scan.manifest import Manifest, read_manifest
from mirror.scan.modules import pulled_files
from mirror.scan.regions import Regions
from mirror.scan.report import (
    MAX_EVIDENCE,
    Capability,
    CapabilityReport,
    Context,
    Evidence,
    Finding,
    ordered,
)
from mirror.scan.rust import scan_rust

MAX_BUILD_SOURCE = 4 * 1024 * 1024  # bytes of build-script source fetched again if not kept
# Passes over the archive for files other than `.rs` that are pulled in (and for build files
# not kept): each level of a chain of them costs one more inflation of the whole archive, so a
# chain of thousands of tiny files would cost thousands. Real crates need one or two.
MAX_PULL_PASSES = 8
_ALL = tuple(Capability)  # iterating the enum itself is slow, and is done once per file
_MANIFEST = "Cargo.toml"


@dataclass
class _FileResult:
    """What one file showed, before merging (each list in line order)."""

    capabilities: list[tuple[Capability, Evidence]] = field(default_factory=list)
    findings: list[tuple[Finding, Evidence]] = field(default_factory=list)


class CrateScan:
    """One scan of one `.crate`'s bytes: `report()` does the work."""

    def __init__(self, data: bytes, limits: ArchiveLimits) -> None:
        self._data = data
        self._limits = limits
        self._sources: dict[str, bytes] = {}  # kept `.rs` sources (and the manifest)
        self._kept = 0  # bytes in `_sources`
        self._deferred: set[str] = set()  # `.rs` files not kept: read in a second pass
        self._sizes: dict[str, int] = {}  # every file
        self._binaries: dict[str, str] = {}  # path -> pre-built code it is
        self._embeddable: dict[str, str] = {}  # path -> why `include_bytes!` of it is suspect
        self._pulls: dict[str, list[str]] = {}  # file read -> the files it pulls in
        self._build_sources: dict[str, bytes] = {}  # build files not kept, fetched again
        self._read_files: set[str] = set()  # files read as Rust
        self._passes = 0  # extra passes over the archive for pulled-in files

    def report(self) -> CapabilityReport:
        prefix = self._first_pass()
        raw = self._sources.pop(_MANIFEST, None)
        if raw is None:
            raise ArchiveError(f"{prefix}/Cargo.toml is missing")
        manifest = read_manifest(raw, prefix, self._sizes)
        build = self._build_files(manifest)
        results: dict[str, _FileResult] = {}
        writes = writes_outside_out_dir(self._build_files_sources(build))
        # Build files other than `.rs` were fetched, never kept: read them with the rest.
        fetched = self._build_sources.items()
        self._sources.update({p: s for p, s in fetched if p not in self._deferred})
        self._build_sources.clear()
        for path, file_writes in _by_file(writes).items():
            results.setdefault(path, _FileResult()).findings.extend(file_writes)
        facts = CrateFacts(manifest.own_urls, self._embeddable)
        order = sorted(self._sizes, key=lambda p: _scan_order(p, build))
        budget = dict.fromkeys(_ALL, MAX_EVIDENCE)  # evidence still wanted, per capability
        for path in order:  # kept sources, in scan order: evidence budgets carry over
            source = self._sources.pop(path, None)
            if source is not None:
                result = self._read(path, source, dict(budget), facts, path in build)
                results.setdefault(path, _FileResult()).capabilities.extend(result.capabilities)
                results[path].findings.extend(result.findings)
                for cap, _ in result.capabilities:
                    budget[cap] -= 1
        if self._deferred:
            self._read_again(self._deferred, results, facts, build)
        self._read_pulled_in(results, facts, build)
        return self._merge(manifest, order, results, build)

    # -- reading ---------------------------------------------------------------------------------

    def _first_pass(self) -> str:
        files = CrateFiles(self._data, self._limits, self._keep)
        for entry in files:
            self._note(entry)
        assert files.prefix is not None  # (an archive without one is refused)
        return files.prefix

    def _keep(self, path: str, size: int) -> bool:
        if path == _MANIFEST:
            return True
        if not path.endswith(".rs"):
            return False
        if self._kept + size > self._limits.max_kept_bytes:
            self._deferred.add(path)
            return False
        self._kept += size
        return True

    def _note(self, entry: Entry) -> None:
        self._sizes[entry.path] = entry.size
        kind = binary_kind(entry.path, entry.head, entry.size)
        if kind is not None:
            self._binaries[entry.path] = kind
        embedded = embedded_kind(entry.head, entry.size)
        if embedded is not None:
            self._embeddable[entry.path] = embedded
        if entry.content is not None:
            self._sources[entry.path] = entry.content

    def _fetch(self, paths: Iterable[str]) -> dict[str, bytes]:
        """Another pass over the archive for the contents of `paths` (not kept the first time)."""
        wanted = set(paths)
        if not wanted:
            return {}
        self._count_pass()
        files = CrateFiles(self._data, self._limits, lambda path, _: path in wanted)
        return {e.path: e.content for e in files if e.content is not None}

    def _read_pulled_in(
        self, results: dict[str, _FileResult], facts: CrateFacts, build: Mapping[str, int]
    ) -> None:
        """Read the files of the crate that files read pull in and that were not read yet
        (other than `.rs`: a payload in `data/x.txt` pulled in with `include!` was never
        seen), level by level until none is left: each file is read once, so files pulling
        each other in end."""
        while True:
            wanted = {
                target
                for targets in self._pulls.values()
                for target in targets
                if target in self._sizes and target not in self._read_files
            }
            if not wanted:
                return
            self._count_pass()
            self._read_again(wanted, results, facts, build)

    def _count_pass(self) -> None:
        self._passes += 1
        # Fail closed: a chain cut short would leave its last files unread.
        if self._passes > MAX_PULL_PASSES:
            raise ArchiveError(
                f"files pull in files (include!, #[path]) more than {MAX_PULL_PASSES} levels deep"
            )

    def _read_again(
        self,
        paths: set[str],
        results: dict[str, _FileResult],
        facts: CrateFacts,
        build: Mapping[str, int],
    ) -> None:
        """Read `paths` (not kept in memory) as they stream past again. Each is read with a
        whole budget of its own: merging keeps the first lines in scan order."""
        budget = dict.fromkeys(_ALL, MAX_EVIDENCE)
        files = CrateFiles(self._data, self._limits, lambda path, _: path in paths)
        for entry in files:
            if entry.content is not None:
                result = self._read(entry.path, entry.content, budget, facts, entry.path in build)
                results.setdefault(entry.path, _FileResult())
                results[entry.path].capabilities.extend(result.capabilities)
                results[entry.path].findings.extend(result.findings)

    def _read(
        self,
        path: str,
        source: bytes,
        budget: Mapping[Capability, int],
        facts: CrateFacts,
        build: bool,
    ) -> _FileResult:
        """Capabilities and findings of one file read as Rust, its items parsed once for both."""
        self._read_files.add(path)
        result = _FileResult()
        wanted = frozenset(c for c, left in budget.items() if left > 0)
        regions = Regions(source, path)
        starts, hits = scan_tokens(source)
        for f in scan_rust(source, path, wanted, budget, regions, starts):
            result.capabilities.append((f.capability, Evidence(path, f.line, f.item)))
        for finding, line, item in read_content(source, path, regions, facts, build, hits):
            result.findings.append((finding, Evidence(path, line, item)))
        if any(token is Token.PULL for _, token, _ in hits):
            self._pulls[path] = list(pulled_files(path, source, is_root=False, mods=False))
        return result

    # -- build script and contexts ---------------------------------------------------------------

    def _build_files(self, manifest: Manifest) -> dict[str, int]:
        """The build script and the files it pulls in (path -> rank, in the order found),
        their sources kept in `_build_sources` (fetched again if they were not kept)."""
        script = manifest.build_script
        if script is None or script not in self._sizes:
            return {}
        found = [script]
        frontier = [script]
        while frontier:
            self._fetch_build_sources(p for p in frontier if p not in self._sources)
            following = []
            for path in frontier:
                source = self._sources.get(path) or self._build_sources.get(path, b"")
                for target in pulled_files(path, source, is_root=path == script):
                    if target in self._sizes and target not in found:
                        found.append(target)
                        following.append(target)
            frontier = following
        return {path: rank for rank, path in enumerate(found)}

    def _fetch_build_sources(self, paths: Iterable[str]) -> None:
        wanted = set(paths) - set(self._build_sources)
        total = sum(self._sizes[p] for p in wanted) + sum(map(len, self._build_sources.values()))
        # Fail closed, and within the memory bound: a build script pulling in this much
        # source is not read in part.
        if total > MAX_BUILD_SOURCE:
            raise ArchiveError(f"the build script pulls in more than {MAX_BUILD_SOURCE} bytes")
        self._build_sources.update(self._fetch(wanted))

    def _build_files_sources(self, build: Mapping[str, int]) -> dict[str, bytes]:
        sources: dict[str, bytes] = {}
        for path in build:
            source = self._sources.get(path) or self._build_sources.get(path)
            if source is not None:
                sources[path] = source
        return sources

    def _pulled_in(self, manifest: Manifest, build: Mapping[str, int]) -> dict[str, Context]:
        """Files whose context is not what their place says: pulled in by the build script,
        or pulled from tests/, examples/ or benches/ into code that is built."""
        pulled: dict[str, Context] = {}
        script = manifest.build_script
        for path in build:
            if context_from(script, manifest.proc_macro, {}, path) is not Context.BUILD:
                pulled[path] = Context.BUILD
        library = Context.MACRO if manifest.proc_macro else Context.RUNTIME
        todo = [
            p
            for p in self._pulls
            if context_from(script, manifest.proc_macro, pulled, p)
            in (Context.RUNTIME, Context.MACRO)
        ]
        while todo:
            for target in self._pulls.get(todo.pop(), ()):
                if (
                    target in self._sizes
                    and context_from(script, manifest.proc_macro, pulled, target) is Context.OTHER
                ):
                    pulled[target] = library
                    todo.append(target)
        return pulled

    # -- merging ---------------------------------------------------------------------------------

    def _merge(
        self,
        manifest: Manifest,
        order: list[str],
        results: Mapping[str, _FileResult],
        build: Mapping[str, int],
    ) -> CapabilityReport:
        capabilities: dict[Capability, list[Evidence]] = {}
        findings: dict[Finding, list[Evidence]] = {}
        for cap, evidence in manifest.evidence:
            _add(capabilities, cap, evidence)
        for path in order:
            kind = self._binaries.get(path)
            if kind is not None:
                _add(capabilities, Capability.BINARY, Evidence(path, 1, kind))
            result = results.get(path)
            if result is None:
                continue
            for cap, evidence in result.capabilities:
                _add(capabilities, cap, evidence)
            for finding, evidence in sorted(result.findings, key=lambda f: f[1].line):
                _add(findings, finding, evidence)
        return CapabilityReport(
            manifest.name,
            manifest.version,
            hashlib.sha256(self._data).hexdigest(),
            ordered({c: tuple(e) for c, e in capabilities.items()}, Capability),
            ordered({f: tuple(e) for f, e in findings.items()}, Finding),
            manifest.build_script,
            manifest.proc_macro,
            self._pulled_in(manifest, build),
        )


_K = TypeVar("_K", Capability, Finding)


def _add(kept: dict[_K, list[Evidence]], kind: _K, evidence: Evidence) -> None:
    evidence_list = kept.setdefault(kind, [])
    if len(evidence_list) < MAX_EVIDENCE:
        evidence_list.append(evidence)


def _by_file(
    found: Iterable[tuple[Finding, str, int, str]],
) -> dict[str, list[tuple[Finding, Evidence]]]:
    by_file: dict[str, list[tuple[Finding, Evidence]]] = {}
    for finding, path, line, item in found:
        by_file.setdefault(path, []).append((finding, Evidence(path, line, item)))
    return by_file


def _scan_order(path: str, build: Mapping[str, int]) -> tuple[int, int, str]:
    """The build script and what it pulls in first, then library code, then the rest."""
    rank = build.get(path)
    if rank is not None:
        return 0, rank, path
    if path.startswith("src/"):
        return 1, 0, path
    return 2, 0, path
