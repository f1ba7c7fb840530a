"""The air gap, end to end with real cargo: a connected mirror fetches and exports a signed
bundle; a disconnected mirror verifies and imports it; cargo builds from it with nothing else."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from mirror.store import FilesystemStore
from tests.cargo_project import CargoProject, Dependencies
from tests.fixtures.registry import Registry
from tests.fixtures.upstream import FakeUpstream
from tests.mirror_process import MirrorProcess

pytestmark = pytest.mark.e2e
DEPS: Dependencies = {
    "serde": {"version": "1", "features": ["derive"]},
    "serde_json": "1",
    "rand": "0.8",
}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mirror", *args], capture_output=True, text=True, check=False
    )


def _tampered_copy(bundle: Path, out: Path) -> None:
    """The same bundle with one byte of one crate flipped (a corrupted or doctored USB stick)."""
    with tarfile.open(bundle) as src, tarfile.open(out, "w") as dst:
        flipped = False
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else b""  # type: ignore[union-attr]
            if not flipped and member.name.startswith("crates/") and member.size > 100:
                data = data[:50] + bytes([data[50] ^ 1]) + data[51:]
                flipped = True
            dst.addfile(member, io.BytesIO(data))
        assert flipped


def test_export_import_and_offline_build(tmp_path: Path, debian_registry: Registry) -> None:
    connected_cache = tmp_path / "connected"
    repo = tmp_path / "tuf-repo"
    config = tmp_path / "connected.yaml"
    with FakeUpstream(debian_registry).in_thread() as upstream:
        config.write_text(
            f"cache_dir: {connected_cache}\nupstream_index: {upstream.url}/\n"
            f"tuf:\n  repository:\n    dir: {repo}\n    bins: 8\n"
        )
        init = _cli(
            "tuf",
            "init",
            "--config",
            str(config),
            "--offline-dir",
            str(tmp_path / "offline-keys"),
            "--root-keys",
            "2",
            "--root-threshold",
            "2",
        )
        assert init.returncode == 0, init.stderr
        mirror = MirrorProcess(connected_cache, config=config).start()
        try:
            project = CargoProject(tmp_path / "app", mirror.index_url, DEPS)
            assert project.generate_lockfile().returncode == 0
            assert project.fetch().returncode == 0
        finally:
            mirror.stop()
        bundle = tmp_path / "bundle.tar"
        export = _cli(
            "export",
            "--config",
            str(config),
            "--lockfile",
            str(project.dir / "Cargo.lock"),
            "--out",
            str(bundle),
            "--no-progress",
        )
        assert export.returncode == 0, export.stderr

    # Across the gap: the disconnected side pins the connected mirror's root.
    pinned = repo / "metadata" / "1.root.json"
    airgapped = tmp_path / "airgapped"
    evil = tmp_path / "evil.tar"
    _tampered_copy(bundle, evil)
    rejected = _cli(
        "import",
        str(evil),
        "--cache-dir",
        str(airgapped),
        "--trusted-root",
        str(pinned),
        "--no-progress",
    )
    assert rejected.returncode != 0
    assert "bundle rejected: crates/" in rejected.stderr  # names the member that was altered
    assert "does not match" in rejected.stderr
    assert not airgapped.exists() or list(FilesystemStore(airgapped).iter_crates()) == []

    imported = _cli(
        "import",
        str(bundle),
        "--cache-dir",
        str(airgapped),
        "--trusted-root",
        str(pinned),
        "--no-progress",
    )
    assert imported.returncode == 0, imported.stderr
    again = _cli(
        "import",
        str(bundle),
        "--cache-dir",
        str(airgapped),
        "--trusted-root",
        str(pinned),
        "--no-progress",
    )
    assert again.returncode == 0, again.stderr  # importing twice is harmless

    offline = MirrorProcess(airgapped, offline=True).start()
    try:
        project.registry_url = offline.index_url
        project.wipe_cargo_home()
        fetched = project.fetch()
        assert fetched.returncode == 0, fetched.stderr
        built = project.build_offline()
        assert built.returncode == 0, built.stderr
    finally:
        offline.stop()
