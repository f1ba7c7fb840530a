"""Any archive is refused or scanned within 128 MB (issue 16 item 7), checked in a child
process whose address space is capped with RLIMIT_AS: a scan that needed more would fail
there with MemoryError instead of finishing."""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from mirror.errors import ArchiveError
from mirror.scan.archive import ArchiveLimits
from mirror.scan.capabilities import scan_crate
from mirror.scan.report import Finding
from tests.fixtures.crates import debian_crate_dir, pack_crate
from tests.unit.scan.test_capabilities import make_crate

LIMIT = 128 * 1024 * 1024  # bytes of address space for the scanning child
REPO = Path(__file__).resolve().parents[3]
# The child caps itself before importing anything heavy, scans, and reports as JSON.
_CHILD = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
from mirror.errors import ArchiveError
from mirror.scan.capabilities import scan_crate
from mirror.scan.report import Finding
data = open(sys.argv[1], "rb").read()
try:
    report = scan_crate(data)
    result = {{"ok": True, "capabilities": sorted(c.value for c in report.capabilities)}}
except ArchiveError as e:
    result = {{"ok": False, "error": str(e)}}
# VmHWM: this process's peak RSS (ru_maxrss would carry over the forking parent's).
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
result["peak_rss_kib"] = int(status["VmHWM"].split()[0])
print(json.dumps(result))
"""


def scan_in_capped_child(tmp_path: Path, data: bytes) -> dict[str, object]:
    path = tmp_path / "subject.crate"
    path.write_bytes(data)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD.format(limit=LIMIT), str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]  # MemoryError would end up here
    result: dict[str, object] = json.loads(done.stdout)
    assert isinstance(result["peak_rss_kib"], int) and result["peak_rss_kib"] * 1024 < LIMIT
    return result


def streamed_crate(members: list[tuple[str, int, bytes]]) -> bytes:
    """A .crate of members (name, size, chunk): each member is `chunk` repeated to `size`
    bytes, written to the gzip stream slice by slice (never whole in memory)."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) as stream:
        for name, size, chunk in members:
            info = tarfile.TarInfo(f"demo-0.1.0/{name}")
            info.size = size
            stream.write(info.tobuf(format=tarfile.GNU_FORMAT))
            left = size
            while left:
                piece = chunk[: min(left, len(chunk))]
                stream.write(piece)
                left -= len(piece)
            stream.write(bytes(-size % 512))
        stream.write(bytes(1024))
    return out.getvalue()


MANIFEST = b'[package]\nname = "demo"\nversion = "0.1.0"\n'


def test_gzip_bomb_is_refused_within_the_bound(tmp_path: Path) -> None:
    """A ~1 MB bomb that inflates to 250 MiB in files under the per-file limit is refused
    by ratio as soon as it passes 1 MiB, with a message naming the attack."""
    zeros = bytes(1 << 20)
    members = [("Cargo.toml", len(MANIFEST), MANIFEST)]
    members += [(f"blob{i}.bin", 50 << 20, zeros) for i in range(5)]
    result = scan_in_capped_child(tmp_path, streamed_crate(members))
    assert result["ok"] is False and "gzip bomb" in str(result["error"])


def test_bomb_behind_incompressible_bytes_is_refused_within_the_bound(tmp_path: Path) -> None:
    """Issue 16's case: 1.5 MB of incompressible bytes first keep the running ratio low, so
    the zeros after them inflate up to the size cap; streamed, that costs no memory."""
    noise = random.Random(7).randbytes(1536 * 1024)
    zeros = bytes(1 << 20)
    members = [("Cargo.toml", len(MANIFEST), MANIFEST), ("noise.bin", len(noise), noise)]
    members += [(f"blob{i}.bin", 60 << 20, zeros) for i in range(5)]
    data = streamed_crate(members)
    assert len(data) > 1_500_000
    result = scan_in_capped_child(tmp_path, data)
    assert result["ok"] is False
    assert "more than" in str(result["error"]) or "gzip bomb" in str(result["error"])


def test_large_accepted_archive_of_zeros_is_scanned_within_the_bound(tmp_path: Path) -> None:
    """Issue 16's other case: a ~2 MB archive of ~250 MiB of mostly zeros, under every limit
    (the ratio stays below 200:1 throughout), used to peak at 543 MB; it is scanned."""
    chunk = bytes(1 << 20) + random.Random(3).randbytes(8 * 1024)
    members = [
        ("Cargo.toml", len(MANIFEST), MANIFEST),
        ("src/lib.rs", 28, b"pub fn f() { unsafe { } }\n\n\n"),
    ]
    members += [(f"data/zeros{i}.bin", 50 * len(chunk), chunk) for i in range(5)]
    data = streamed_crate(members)
    assert 1_500_000 < len(data) < 3_000_000
    result = scan_in_capped_child(tmp_path, data)
    assert result["ok"] is True and result["capabilities"] == ["unsafe"]


def _source_file(index: int) -> bytes:
    items = "".join(
        f"pub fn f{index}_{i}(p: *const u8) -> u8 {{ unsafe {{ *p }} }}\n" for i in range(16_000)
    )
    return items.encode()


def test_more_source_than_is_kept_is_scanned_within_the_bound(tmp_path: Path) -> None:
    """40 MiB of Rust (more than the 24 MiB kept in memory at once) is read in a second
    pass, within the bound."""
    sources = [(f"src/m{i}.rs", _source_file(i)) for i in range(52)]
    assert sum(len(source) for _, source in sources) > 40 << 20
    members = [("Cargo.toml", len(MANIFEST), MANIFEST)]
    members += [(name, len(source), source) for name, source in sources]
    result = scan_in_capped_child(tmp_path, streamed_crate(members))
    assert result["ok"] is True and result["capabilities"] == ["unsafe"]


def test_streamed_sources_give_the_same_report_as_kept_ones() -> None:
    """Files read in the second pass (beyond the memory kept) are merged into the same
    order: the report is the one a scan keeping everything gives."""
    data = pack_crate(debian_crate_dir("openssl-sys"))
    assert scan_crate(data, ArchiveLimits(max_kept_bytes=20_000)) == scan_crate(data)
    # The build script's modules are fetched again when they were not kept.
    helper = 'pub fn drop() { std::fs::write("/tmp/x", b"payload").unwrap(); }\n'
    data = make_crate(
        {
            "build/main.rs": "mod helper;\nfn main() { helper::drop(); }\n" + "// pad\n" * 500,
            "build/helper.rs": helper,
            "src/lib.rs": "pub fn f() -> u8 { 1 }\n" * 2000,
        },
        manifest='build = "build/main.rs"\n',
    )
    kept = scan_crate(data)
    assert scan_crate(data, ArchiveLimits(max_kept_bytes=100)) == kept
    assert [e.file for e in kept.findings[Finding.WRITE_OUTSIDE_OUT_DIR]] == ["build/helper.rs"]


def test_a_file_that_cannot_be_read_in_items_is_refused_beyond_the_parse_bound() -> None:
    """2 MiB of Rust in one item would be parsed whole (about 70 MB of tree): refused with
    a clear error rather than read in pieces that could misplace strings and comments."""
    body = "".join(f"    let _x{i} = unsafe {{ {i} }};\n" for i in range(70_000))
    data = make_crate({"src/lib.rs": f"pub fn huge() {{\n{body}}}\n"})
    with pytest.raises(ArchiveError, match=r"src/lib\.rs: \d+ bytes of Rust"):
        scan_crate(data)
