"""The fixture registry: real crates packed and indexed the way crates.io does it."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import tomllib
from pathlib import Path
from typing import Any

import pytest

from mirror.index import IndexFile, index_path
from tests.cargo_project import CargoProject
from tests.fixtures.registry import (
    BENCH_PROJECT_DEPS,
    Dep,
    Registry,
    build_registry,
    debian_crate_dirs,
)
from tests.fixtures.upstream import FakeUpstream

DEP_KEYS = {"name", "req", "features", "optional", "default_features", "target", "kind"}
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")


def dep(entry: dict[str, Any], name: str, kind: str = "normal") -> dict[str, Any]:
    return next(d for d in entry["deps"] if d["name"] == name and d["kind"] == kind)


def feature_refs_resolve(entry: dict[str, Any]) -> list[str]:
    """Feature values that name neither a feature nor a (non-dev) dependency of the entry."""
    features = {**entry["features"], **entry.get("features2", {})}
    deps = [d for d in entry["deps"] if d["kind"] != "dev"]
    optional = {d["name"] for d in deps if d["optional"]}
    names = {d["name"] for d in deps}
    bad = []
    for values in features.values():
        for v in values:
            if v.startswith("dep:"):
                ok = v[4:] in optional
            elif "/" in v:
                ok = v.split("/", 1)[0].rstrip("?") in names
            else:
                ok = v in features or v in optional
            if not ok:
                bad.append(v)
    return bad


def write_crate(root: Path, name: str, version: str, manifest: str) -> Path:
    src = root / f"{name}-{version}"
    (src / "src").mkdir(parents=True)
    (src / "src" / "lib.rs").write_text("")
    (src / "Cargo.toml").write_text(
        f'[package]\nname = "{name}"\nversion = "{version}"\n' + manifest
    )
    return src


def test_every_debian_crate_is_indexed(fixture_registry: Registry) -> None:
    """Each Debian source dir becomes exactly one index line, filed at its sparse path."""
    assert len(fixture_registry.crates) == len(debian_crate_dirs())
    for ref in fixture_registry.crates:
        path = fixture_registry.index_dir / index_path(ref.name)
        assert ref.version in fixture_registry.versions(ref.name)
        assert path.is_file()


def test_index_lines_are_valid_and_checksums_match(fixture_registry: Registry) -> None:
    """Every line parses with mirror.index, has cargo's fields, and cksum is the .crate's sha256."""
    for name in fixture_registry.names():
        raw = fixture_registry.read_index(name)
        parsed = IndexFile.parse(raw)
        assert not parsed.unparsed, name
        for line, entry in zip(parsed.lines, fixture_registry.entries(name), strict=True):
            assert line.name == name
            crate = fixture_registry.crate_bytes(name, line.vers)
            assert line.cksum == hashlib.sha256(crate).hexdigest()
            assert set(entry) >= {"name", "vers", "deps", "cksum", "features", "yanked", "links"}
            assert entry["yanked"] is False
            assert RFC3339.match(entry["pubtime"])
            for d in entry["deps"]:
                assert set(d) - {"registry", "package"} == DEP_KEYS
                assert d["kind"] in ("normal", "dev", "build")


def test_crate_archives_unpack_under_name_version(fixture_registry: Registry) -> None:
    """A .crate is a gzipped tar whose entries all live under NAME-VERSION/ (cargo requires it)."""
    data = fixture_registry.crate_bytes("serde", fixture_registry.versions("serde")[0])
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        names = tar.getnames()
    prefix = f"serde-{fixture_registry.versions('serde')[0]}/"
    assert all(n.startswith(prefix) for n in names)
    assert prefix + "Cargo.toml" in names and prefix + "build.rs" in names


def test_renamed_dependency_keeps_rename_as_name(fixture_registry: Registry) -> None:
    """getrandom's `core = { package = "rustc-std-workspace-core" }` is indexed name=core."""
    core = dep(fixture_registry.entries("getrandom")[0], "core")
    assert core["package"] == "rustc-std-workspace-core"
    assert core["optional"] is True


def test_target_dev_and_build_dependencies(fixture_registry: Registry) -> None:
    """cfg() targets, dev and build kinds, default-features and req normalization survive."""
    libc = dep(fixture_registry.entries("rand")[0], "libc")
    assert libc == {
        "name": "libc",
        "req": "^0.2.22",
        "features": [],
        "optional": True,
        "default_features": False,
        "target": "cfg(unix)",
        "kind": "normal",
    }
    serde = fixture_registry.entries("serde")[0]
    assert dep(serde, "serde_derive")["req"] == "=1.0.152"
    assert dep(serde, "serde_derive", "dev")["optional"] is False
    libz = fixture_registry.entries("libz-sys")[0]
    assert dep(libz, "pkg-config", "build")["target"] is None
    assert dep(libz, "vcpkg", "build")["target"] == 'cfg(target_env = "msvc")'
    assert libz["links"] == "z"
    assert fixture_registry.entries("serde")[0]["rust_version"] == "1.13"


def test_all_real_features_reference_existing_deps(fixture_registry: Registry) -> None:
    """After dropping deps Debian lacks, no feature of any crate names a missing dependency."""
    for name in fixture_registry.names():
        for entry in fixture_registry.entries(name):
            assert feature_refs_resolve(entry) == [], (name, entry["vers"])
    # getrandom's wasm-only deps (wasm-bindgen, js-sys) are not packaged: dropped.
    names = {d["name"] for d in fixture_registry.entries("getrandom")[0]["deps"]}
    assert "wasm-bindgen" not in names and "libc" in names


def test_missing_and_unsatisfiable_deps_are_dropped_with_their_features(tmp_path: Path) -> None:
    """Absent crates, unmatched reqs and every feature syntax naming them are removed."""
    src = tmp_path / "src"
    present = write_crate(src, "present", "1.2.0", "")
    user = write_crate(
        src,
        "user",
        "0.1.0",
        """
[dependencies]
present = "1"
absent = { version = "1", optional = true }
later = { package = "present", version = "2", optional = true }
[target.'cfg(windows)'.dependencies]
winonly = "0.3"
[dev-dependencies]
devonly = "1"
[features]
a = ["dep:absent", "present/x"]
b = ["absent/x", "absent?/y", "later", "a"]
c = ["absent", "winonly/z", "dep:later"]
d = ["nonexistent"]
""",
    )
    reg = build_registry(tmp_path / "reg", [present, user], cache=None)
    (entry,) = reg.entries("user")
    assert [(d["name"], d["kind"]) for d in entry["deps"]] == [("present", "normal")]
    features = {**entry["features"], **entry.get("features2", {})}
    assert features == {"a": ["present/x"], "b": ["a"], "c": [], "d": []}
    assert feature_refs_resolve(entry) == []


def test_new_feature_syntax_goes_to_features2(tmp_path: Path) -> None:
    """`dep:` and `?/` features move to features2 with v=2, as crates.io writes them."""
    dep_crate = write_crate(tmp_path / "src", "dep1", "1.0.0", "[features]\nx = []\n")
    user = write_crate(
        tmp_path / "src",
        "user2",
        "1.0.0",
        '[dependencies]\ndep1 = { version = "1", optional = true }\n'
        '[features]\nplain = []\nnew = ["dep:dep1"]\nweak = ["dep1?/x"]\n',
    )
    (entry,) = build_registry(tmp_path / "reg", [dep_crate, user], cache=None).entries("user2")
    assert entry["features"] == {"plain": []}
    assert entry["features2"] == {"new": ["dep:dep1"], "weak": ["dep1?/x"]}
    assert entry["v"] == 2


def test_cached_crates_are_identical_to_fresh_packing(tmp_path: Path) -> None:
    """The pack cache returns the same bytes (and so checksums) as packing from scratch."""
    dirs = [d for d in debian_crate_dirs() if d.name.startswith(("itoa-", "ryu-"))]
    cached = build_registry(tmp_path / "a", dirs, cache=tmp_path / "cache")
    again = build_registry(tmp_path / "b", dirs, cache=tmp_path / "cache")
    fresh = build_registry(tmp_path / "c", dirs, cache=None)
    assert len(list((tmp_path / "cache").rglob("*.crate"))) == 2
    for name in ("itoa", "ryu"):
        assert cached.read_index(name) == again.read_index(name) == fresh.read_index(name)


def test_add_crate_publishes_a_buildable_synthetic_crate(registry: Registry) -> None:
    """An "evil update" with a build.rs gets a correct index line, cksum and Cargo.toml."""
    before = registry.read_index("itoa")
    entry = registry.add_crate(
        "itoa",
        "1.0.99",
        {"build.rs": b'fn main() { std::process::Command::new("curl"); }\n'},
        deps=[Dep("libc", "^0.2", optional=True, target="cfg(unix)")],
        features={"net": ["dep:libc"]},
        pubtime="2026-11-25T10:00:00Z",
    )
    raw = registry.read_index("itoa")
    assert raw.startswith(before)  # earlier lines byte-identical, new line appended
    last = json.loads(raw.splitlines()[-1])
    assert last == entry and last["features2"] == {"net": ["dep:libc"]}
    data = registry.crate_bytes("itoa", "1.0.99")
    assert last["cksum"] == hashlib.sha256(data).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        manifest = tar.extractfile("itoa-1.0.99/Cargo.toml")
        assert manifest is not None
        toml = tomllib.loads(manifest.read().decode())
        assert "itoa-1.0.99/build.rs" in tar.getnames()
    assert toml["target"]["cfg(unix)"]["dependencies"]["libc"]["optional"] is True
    assert toml["features"] == {"net": ["dep:libc"]}


def test_yank_rewrites_only_the_flag(registry: Registry) -> None:
    """Yanking flips one line's `yanked`; the mtime moves forward for Last-Modified."""
    mtime = registry.index_file("serde").stat().st_mtime
    version = registry.versions("serde")[0]
    registry.yank("serde", version)
    (entry,) = registry.entries("serde")
    assert entry["yanked"] is True
    assert registry.index_file("serde").stat().st_mtime > mtime
    registry.yank("serde", version, yanked=False)
    assert registry.entries("serde")[0]["yanked"] is False
    with pytest.raises(KeyError):
        registry.yank("serde", "9.9.9")


def test_private_copy_does_not_touch_the_session_registry(
    registry: Registry, fixture_registry: Registry
) -> None:
    """Mutating a test's copy (hardlinked crates) leaves the shared registry as it was."""
    original_index = fixture_registry.read_index("memchr")
    version = fixture_registry.versions("memchr")[0]
    original_crate = fixture_registry.crate_bytes("memchr", version)
    registry.write_crate("memchr", version, b"tampered")
    registry.write_index("memchr", b"garbage\n")
    registry.add_crate("serde-json", "1.0.0", {"src/lib.rs": b"// typosquat\n"})
    assert fixture_registry.read_index("memchr") == original_index
    assert fixture_registry.crate_bytes("memchr", version) == original_crate
    assert not fixture_registry.index_file("serde-json").exists()
    other = fixture_registry.versions("itoa")[0]
    assert registry.crate_file("itoa", other).stat().st_nlink > 1  # shared, not copied
    assert Registry.open(registry.root).names() == [n for n in registry.names() if n != "memchr"]


@pytest.mark.e2e
def test_bench_project_locks_100_crates(registry: Registry, tmp_path: Path) -> None:
    """BENCH_PROJECT_DEPS resolves with real cargo to a Cargo.lock of 100+ registry crates."""
    with FakeUpstream(registry).in_thread() as up:
        project = CargoProject(tmp_path, up.url, BENCH_PROJECT_DEPS)
        result = project.generate_lockfile()
    assert result.returncode == 0, result.stderr
    locked = project.lock_versions()
    assert sum(len(v) for v in locked.values()) >= 100
    assert set(BENCH_PROJECT_DEPS) <= set(locked)
