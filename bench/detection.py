"""Detection accuracy, measured by real cargo through the mirror with the shipped default policy.

Run from the repository root: python -m bench.detection [--jobs 2] [--sample N] [--out DIR]

What it does (docs/detection.md, "Measured"):
1. Builds a crates.io-like registry: Debian's crates (tests/fixtures/registry.py), plus every
   dev-set crate from bench/devset/ (malicious crates reproduced from RustSec advisories,
   typo squats of top crates, legitimate near-names with their real version history).
2. Serves it with the fake upstream and starts `crate-mirror serve --policy
   policies/default.yaml` in front of it (advisories are off in the default policy: the point
   is to stop a crate before an advisory exists).
3. For every dev-set crate, a fresh cargo project that depends on it runs `cargo
   generate-lockfile` and `cargo fetch` through the mirror, with its own empty CARGO_HOME.
4. Reads cargo's own download cache to see which `.crate` files reached cargo:
   - a malicious crate is stopped when none of its malicious versions reached cargo (a
     takeover's project may still resolve to the legitimate older version: that is a stop);
   - a typo squat is stopped when its `.crate` did not reach cargo;
   - a legitimate near-name passes when its newest version reached cargo.
5. Prints the rates per group (popular and long-tail counted apart), every miss with the
   mirror's reason, and writes JSON and Markdown to bench/results/.

Publish times: malicious crates and typo squats are published at a seeded random moment
within their real lifetime before the run (typos: 1 hour to 30 days); legitimate crates keep
their real publish times, moved forward by (now - the dev set's snapshot date) so that the
run sees them at the age they had when the data was taken. Lines without a `pubtime` keep
none (published before 2025).

Content of legitimate crates and typo squats: the real sources of a Debian-packaged crate
(chosen by a hash of the name), renamed. Their own sources are not available offline; a
donor gives them real, legitimate code with the usual mix of build scripts, proc-macros and
FFI. Malicious crates carry the reproductions in bench/devset/malicious/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import shutil
import sys
import tempfile
import time
import tomllib
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from mirror.index import canonical_name
from mirror.policy.semver import Version
from tests.cargo_project import CargoProject
from tests.fixtures.cargo_manifest import Dep, index_entry, manifest_deps
from tests.fixtures.crates import pack_crate
from tests.fixtures.registry import Registry, build_registry, debian_crate_dirs
from tests.fixtures.upstream import FakeUpstream
from tests.mirror_process import MirrorProcess

ROOT = Path(__file__).resolve().parent.parent
DEVSET = ROOT / "bench" / "devset"
POLICY = ROOT / "policies" / "default.yaml"
DONOR_VERSIONS = 3  # newest versions of a legitimate crate that carry the donor's sources
TYPO_MAX_AGE = timedelta(days=30)
TYPO_MIN_AGE = timedelta(hours=1)
CARGO_TIMEOUT = 180.0  # seconds per cargo command
HOLDOUT_FROM = date(2026, 6, 1)  # advisories from this day on were not looked at when tuning


@dataclass
class Case:
    group: str  # malicious | typo | popular | longtail
    name: str
    req: str  # what the probe project asks for
    bad: frozenset[str] = frozenset()  # versions that must not reach cargo (malicious)
    want: str | None = None  # the version that should reach cargo (legitimate)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    case: Case
    stopped: bool
    reached: list[str]  # versions of the crate whose .crate reached cargo
    reason: str  # the mirror's words (cargo's error output), trimmed
    seconds: float

    @property
    def correct(self) -> bool:
        return self.stopped if self.case.group in ("malicious", "typo") else not self.stopped


# -- the dev set ------------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def newest(versions: Iterable[str]) -> str | None:
    """The version `*` resolves to: the highest release (cargo skips pre-releases and yanked)."""
    best: tuple[Version, str] | None = None
    for v in versions:
        try:
            parsed = Version.parse(v)
        except ValueError:
            continue
        if parsed.pre:
            continue
        if best is None or parsed > best[0]:
            best = (parsed, v)
    return best[1] if best else None


class Donors:
    """Debian crates lending their real sources to dev-set crates that have none here."""

    def __init__(self) -> None:
        self.dirs = debian_crate_dirs()

    def pick(self, name: str) -> Path:
        digest = int(hashlib.sha256(name.encode()).hexdigest(), 16)
        return self.dirs[digest % len(self.dirs)]


def renamed_sources(src: Path, name: str, version: str, out: Path) -> Path:
    """A copy of a crate's sources as `name` `version`, without dependencies.

    The dependency tables are dropped so that the manifest agrees with the index line the
    harness writes (dependencies limited to crates the fixture registry has); the code keeps
    what it uses, which is what the scan reads.
    """
    dest = out / f"{name}-{version}"
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("debian", ".cargo-checksum.json"))
    manifest = tomllib.loads((src / "Cargo.toml").read_text())
    package = dict(manifest.get("package", {}))
    package.update(name=name, version=version)
    package.pop("links", None)  # two crates may not link the same native library
    kept = {k: v for k, v in manifest.items() if k in ("lib", "bin", "features") and v}
    kept.pop("features", None)
    if isinstance(kept.get("lib"), dict):
        kept["lib"] = {k: v for k, v in kept["lib"].items() if k in ("proc-macro", "path", "name")}
    lines = ["[package]", *(f"{k} = {json.dumps(v)}" for k, v in package.items() if _plain(v))]
    for table, values in kept.items():
        if isinstance(values, dict):
            lines.append(f"\n[{table}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in values.items() if _plain(v)]
    (dest / "Cargo.toml").write_text("\n".join(lines) + "\n")
    return dest


def _plain(value: object) -> bool:
    return isinstance(value, str | bool | int) or (
        isinstance(value, list) and all(isinstance(x, str) for x in value)
    )


def minimal_sources(name: str, version: str, out: Path) -> Path:
    dest = out / f"{name}-{version}"
    (dest / "src").mkdir(parents=True)
    (dest / "Cargo.toml").write_text(
        f'[package]\nname = "{name}"\nversion = "{version}"\nedition = "2021"\n'
    )
    (dest / "src" / "lib.rs").write_text("pub fn placeholder() {}\n")
    return dest


class DevSetRegistry:
    """Publishes the dev set into a fixture registry and collects the cases to probe."""

    def __init__(self, registry: Registry, now: datetime, rng: random.Random) -> None:
        self.registry = registry
        self.now = now
        self.rng = rng
        self.donors = Donors()
        self.available: dict[str, list[str]] = defaultdict(list)
        for ref in registry.crates:
            self.available[ref.name].append(ref.version)
        self.cases: list[Case] = []
        self.skipped: list[tuple[str, str]] = []

    def publish(
        self,
        name: str,
        version: str,
        src: Path,
        pubtime: str | None,
        deps: Sequence[Dep] = (),
        yanked: bool = False,
    ) -> None:
        entry = index_entry(name, version, list(deps), {}, cksum="", pubtime=pubtime, yanked=yanked)
        self.registry.publish(pack_crate(src, f"{name}-{version}"), entry)
        self.available[name].append(version)

    def resolvable(self, deps: Iterable[Dep]) -> list[Dep]:
        from mirror.policy.semver import VersionReq

        kept = []
        for dep in deps:
            if dep.kind == "dev":
                continue
            try:
                req = VersionReq.parse(dep.req)
            except ValueError:
                continue
            versions = self.available.get(dep.package or dep.name, ())
            if any(req.matches(Version.parse(v)) for v in versions if _parses(v)):
                kept.append(dep)
        return kept

    # -- groups -----------------------------------------------------------------------------

    def malicious(self, devset: Path) -> None:
        data = load_yaml(devset / "malicious.yaml")
        entries = sorted(data["crates"], key=lambda e: e.get("kind") == "takeover")
        # Helpers first: a takeover's added dependency must exist before its index line.
        entries.sort(key=lambda e: e.get("kind") != "helper")
        for entry in entries:
            try:
                self._malicious_one(devset, entry)
            except (OSError, ValueError, KeyError, tomllib.TOMLDecodeError) as e:
                self.skipped.append((entry.get("name", "?"), f"malicious: {e}"))

    def _malicious_one(self, devset: Path, entry: Mapping[str, Any]) -> None:
        fixture = devset / entry["fixture"]
        manifest = tomllib.loads((fixture / "Cargo.toml").read_text())
        name = manifest["package"]["name"]
        release = manifest["package"]["version"]
        deps = self.resolvable(manifest_deps(manifest))
        lifetime = timedelta(hours=float(entry.get("lifetime_hours") or 72))
        age = timedelta(seconds=self.rng.uniform(60, max(lifetime.total_seconds(), 120)))
        released = self.now - age
        meta = {
            k: entry.get(k)
            for k in ("advisory", "advisory_date", "kind", "imitates", "imitation", "payload")
        }
        with tempfile.TemporaryDirectory() as tmp:
            if entry.get("kind") == "takeover":
                history = entry.get("legit_versions") or []
                donor = self.donors.pick(name)
                for i, line in enumerate(history):
                    vers = line["vers"]
                    src = (
                        renamed_sources(donor, name, vers, Path(tmp) / str(i))
                        if i >= len(history) - DONOR_VERSIONS
                        else minimal_sources(name, vers, Path(tmp) / str(i))
                    )
                    self.publish(
                        name, vers, src, line.get("pubtime"), yanked=bool(line.get("yanked"))
                    )
                src = Path(tmp) / "release" / f"{name}-{release}"
                shutil.copytree(fixture, src)
                self.publish(name, release, src, rfc3339(released), deps)
                legit = newest(v["vers"] for v in history if not v.get("yanked")) or "0"
                req = f"^{legit}" if legit != "0" else "*"
                self.cases.append(Case("malicious", name, req, frozenset({release}), meta=meta))
                return
            count = max(1, int(entry.get("versions") or 1))
            versions = _version_run(release, count)
            bad = set()
            for i, vers in enumerate(versions):
                src = Path(tmp) / str(i) / f"{name}-{vers}"
                shutil.copytree(fixture, src)
                _set_version(src / "Cargo.toml", vers)
                # Earlier versions spread over the crate's life; the newest is `age` old.
                when = released - lifetime * (len(versions) - 1 - i) / max(len(versions), 1)
                self.publish(name, vers, src, rfc3339(when), deps)
                bad.add(vers)
            self.cases.append(Case("malicious", name, "*", frozenset(bad), meta=meta))

    def typos(self, devset: Path, sample: int | None) -> None:
        entries = load_yaml(devset / "typos.yaml")["typos"]
        for entry in _sample(entries, sample, self.rng):
            name = entry["name"]
            if name in self.available:
                self.skipped.append((name, "typo: the name exists in the fixture registry"))
                continue
            age = timedelta(
                seconds=self.rng.uniform(TYPO_MIN_AGE.total_seconds(), TYPO_MAX_AGE.total_seconds())
            )
            with tempfile.TemporaryDirectory() as tmp:
                src = renamed_sources(self.donors.pick(name), name, "0.1.0", Path(tmp))
                self.publish(name, "0.1.0", src, rfc3339(self.now - age))
            meta = {"target": entry.get("target"), "error": entry.get("error")}
            self.cases.append(Case("typo", name, "*", frozenset({"0.1.0"}), meta=meta))

    def legit(self, devset: Path, sample: int | None) -> None:
        data = load_yaml(devset / "legit.yaml")
        snapshot = _day(data.get("snapshot_date"))
        shift = self.now - datetime.combine(snapshot, datetime.min.time(), UTC)
        for entry in _sample(data["crates"], sample, self.rng):
            name = entry["name"]
            if name in self.available or canonical_name(name) in self._canonical():
                self.skipped.append((name, "legit: the name exists in the fixture registry"))
                continue
            lines = entry.get("versions") or []
            releases = [v["vers"] for v in lines if not v.get("yanked")]
            want = newest(releases)
            if want is None:
                self.skipped.append((name, "legit: no release version to fetch"))
                continue
            donor = self.donors.pick(name)
            with tempfile.TemporaryDirectory() as tmp:
                for i, line in enumerate(lines):
                    vers = line["vers"]
                    pubtime = line.get("pubtime")
                    if pubtime:
                        pubtime = rfc3339(datetime.fromisoformat(pubtime) + shift)
                    recent = i >= len(lines) - DONOR_VERSIONS or vers == want
                    where = Path(tmp) / str(i)
                    src = (
                        renamed_sources(donor, name, vers, where)
                        if recent
                        else minimal_sources(name, vers, where)
                    )
                    deps = [Dep(d, "*") for d in line.get("deps") or () if d in self.available]
                    self.publish(name, vers, src, pubtime, deps, yanked=bool(line.get("yanked")))
            group = entry.get("group", "longtail")
            meta = {k: entry.get(k) for k in ("near", "relation", "rank", "near_rank")}
            self.cases.append(Case(group, name, "*", want=want, meta=meta))

    def _canonical(self) -> set[str]:
        return {canonical_name(n) for n in self.available}


def _parses(version: str) -> bool:
    try:
        Version.parse(version)
    except ValueError:
        return False
    return True


def _version_run(release: str, count: int) -> list[str]:
    """`count` versions ending with `release` (earlier ones as patch releases below it)."""
    v = Version.parse(release)
    out = [release]
    patch = v.patch
    while len(out) < count:
        patch -= 1
        if patch < 0:
            out.append(f"{v.major}.{v.minor}.0-pre.{count - len(out)}")
            continue
        out.append(f"{v.major}.{v.minor}.{patch}")
    return sorted(set(out), key=lambda s: Version.parse(s))


def _set_version(manifest: Path, version: str) -> None:
    text = manifest.read_text()
    text = re.sub(r'(?m)^version\s*=\s*"[^"]*"', f'version = "{version}"', text, count=1)
    manifest.write_text(text)


def _sample(entries: Sequence[Any], size: int | None, rng: random.Random) -> list[Any]:
    if size is None or size >= len(entries):
        return list(entries)
    return rng.sample(list(entries), size)


def _day(value: object) -> date:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    raise ValueError("legit.yaml needs `snapshot_date` (the date its index data was taken)")


# -- probing ------------------------------------------------------------------------------------


def probe(case: Case, registry_url: str, workdir: Path) -> Outcome:
    started = time.monotonic()
    project = CargoProject(workdir, registry_url, {case.name: case.req}, name="probe")
    result = project.generate_lockfile()
    if result.returncode == 0:
        result = project.fetch()
    reached = sorted(_reached(project.cargo_home, case.name))
    if case.group in ("malicious", "typo"):
        stopped = not (set(reached) & case.bad)
    else:
        stopped = case.want not in reached
    reason = _reason(result.stderr) if result.returncode else ""
    shutil.rmtree(workdir, ignore_errors=True)
    return Outcome(case, stopped, reached, reason, time.monotonic() - started)


def _reached(cargo_home: Path, name: str) -> Iterator[str]:
    """Versions of `name` whose .crate cargo downloaded (its own cache, not the mirror's)."""
    prefix = f"{name}-"
    for path in cargo_home.glob("registry/cache/*/*.crate"):
        stem = path.name[: -len(".crate")]
        if stem.startswith(prefix) and _parses(stem[len(prefix) :]):
            yield stem[len(prefix) :]


def _reason(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    useful = [ln for ln in lines if "crate-mirror" in ln or "403" in ln or "error" in ln]
    return " | ".join(useful or lines)[-600:]


# -- the run ------------------------------------------------------------------------------------


@contextmanager
def serving(registry: Registry, work: Path) -> Iterator[MirrorProcess]:
    policy_dir = work / "policies"
    shutil.copytree(ROOT / "policies", policy_dir)
    with FakeUpstream(registry).in_thread() as upstream:
        mirror = MirrorProcess(
            work / "cache",
            upstream=upstream.url,
            policy=policy_dir / "default.yaml",
            extra=["--workers", "1"],
        ).start()
        try:
            yield mirror
        finally:
            mirror.stop()


def summarize(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    groups: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        groups[o.case.group].append(o)
        if o.case.group == "malicious":
            when = _day(o.case.meta.get("advisory_date") or "2000-01-01")
            groups["malicious (held out)" if when >= HOLDOUT_FROM else "malicious (tuning)"].append(
                o
            )
    table = {}
    for group, items in sorted(groups.items()):
        stopped = sum(1 for o in items if o.stopped)
        table[group] = {"n": len(items), "stopped": stopped, "rate": stopped / len(items)}
    misses = [
        {
            "group": o.case.group,
            "crate": o.case.name,
            "stopped": o.stopped,
            "reached": o.reached,
            "reason": o.reason,
            **{k: v for k, v in o.case.meta.items() if v is not None},
        }
        for o in outcomes
        if not o.correct
    ]
    return {"groups": table, "misses": misses}


def markdown(summary: Mapping[str, Any], meta: Mapping[str, Any]) -> str:
    out = [f"# Detection run {meta['started']}", "", f"Policy: {meta['policy']}", ""]
    out += ["| group | crates | stopped | rate | target |", "|---|---:|---:|---:|---|"]
    targets = {
        "malicious": ">= 95% stopped",
        "typo": ">= 95% stopped",
        "popular": "<= 2% stopped",
        "longtail": "<= 2% stopped",
    }
    for group, row in summary["groups"].items():
        target = targets.get(group.split(" ")[0], "")
        out.append(f"| {group} | {row['n']} | {row['stopped']} | {row['rate']:.1%} | {target} |")
    out += ["", "## Wrong decisions", ""]
    for miss in summary["misses"]:
        out.append(
            f"- {miss['group']} `{miss['crate']}`: {'stopped' if miss['stopped'] else 'passed'}"
            f" — {miss.get('reason') or 'reached cargo: ' + ', '.join(miss['reached'])}"
        )
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.detection",
        description="Measure detection with real cargo through the mirror (default policy).",
    )
    parser.add_argument("--jobs", type=int, default=2, help="cargo probes at once (default 2)")
    parser.add_argument(
        "--sample",
        type=int,
        default=None,
        help="probe at most N typos and N legitimate crates (default: all)",
    )
    parser.add_argument("--seed", type=int, default=1, help="publish-time and sampling seed")
    parser.add_argument("--devset", type=Path, default=DEVSET, help="dev-set directory")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    if shutil.which("cargo") is None:
        print("bench.detection: real cargo is needed on PATH", file=sys.stderr)
        return 2
    started = datetime.now(UTC)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="crate-mirror-detection-") as tmp:
        work = Path(tmp)
        print("building the registry (Debian crates + dev set) ...", flush=True)
        registry = build_registry(work / "registry")
        devset = DevSetRegistry(registry, started, rng)
        devset.malicious(args.devset)
        devset.typos(args.devset, args.sample)
        devset.legit(args.devset, args.sample)
        counts = Counter(c.group for c in devset.cases)
        print(f"dev set: {dict(counts)}; skipped {len(devset.skipped)}", flush=True)
        outcomes: list[Outcome] = []
        with serving(registry, work) as mirror, ThreadPoolExecutor(args.jobs) as pool:
            futures = [
                pool.submit(probe, case, mirror.index_url, work / "probes" / f"{i}")
                for i, case in enumerate(devset.cases)
            ]
            for future in tqdm(as_completed(futures), total=len(futures), desc="cargo probes"):
                outcomes.append(future.result())
    summary = summarize(outcomes)
    meta = {
        "started": rfc3339(started),
        "policy": str(POLICY.relative_to(ROOT)),
        "seed": args.seed,
        "skipped": devset.skipped,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"detection-{started.strftime('%Y%m%dT%H%M%SZ')}"
    stem.with_suffix(".json").write_text(
        json.dumps(
            {"meta": meta, **summary, "outcomes": [_plain_outcome(o) for o in outcomes]},
            indent=1,
            default=str,
        )
    )
    text = markdown(summary, meta)
    stem.with_suffix(".md").write_text(text)
    print(text)
    return 0


def _plain_outcome(o: Outcome) -> dict[str, Any]:
    case = asdict(o.case)
    case["bad"] = sorted(case["bad"])
    return {
        **case,
        "stopped": o.stopped,
        "reached": o.reached,
        "reason": o.reason,
        "seconds": round(o.seconds, 2),
    }


if __name__ == "__main__":
    sys.exit(main())
