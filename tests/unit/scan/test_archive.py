"""Hostile and malformed `.crate` archives are rejected quickly, in bounded memory."""

from __future__ import annotations

import gzip
import io
import tarfile
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mirror.errors import ArchiveError
from mirror.scan.archive import ArchiveLimits, CrateFiles
from mirror.scan.capabilities import scan_crate
from mirror.scan.tar_headers import _check_checksum
from tests.fixtures.crates import debian_crate_dir, pack_crate

HANG_GUARD = 30.0  # seconds: only a hang detector, every case finishes far sooner


def build_tar(entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                name, data = entry
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1, mtime=0)


def special(name: str, kind: bytes, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def read_crate(data: bytes, limits: ArchiveLimits | None = None) -> CrateFiles:
    """Walk a whole archive, keeping every file (each check runs as it streams past). The
    pass that reads no file (`check`, what `check_archive` runs) must refuse it too."""
    limits = limits or ArchiveLimits()
    try:
        CrateFiles(data, limits).check()
        checked = True
    except ArchiveError:
        checked = False
    files = CrateFiles(data, limits, lambda _path, _size: True)
    try:
        files.contents = {e.path: e.content for e in files}  # type: ignore[attr-defined]
    except ArchiveError:
        assert not checked, "check() passed an archive that reading it refuses"
        raise
    assert checked, "check() refused an archive that reading it accepts"
    return files


@contextmanager
def rejected(match: str) -> Iterator[None]:
    start = time.monotonic()
    with pytest.raises(ArchiveError, match=match):
        yield
    assert time.monotonic() - start < HANG_GUARD


def test_real_crate_reads_with_prefix_and_files() -> None:
    """A packed Debian crate streams past with its NAME-VERSION prefix stripped: kept files
    whole, the others as their size and first bytes."""
    src = debian_crate_dir("itoa")
    files = CrateFiles(pack_crate(src), ArchiveLimits(), lambda path, _: path.endswith(".rs"))
    entries = {e.path: e for e in files}
    assert files.prefix == src.name
    assert entries["src/lib.rs"].content == (src / "src/lib.rs").read_bytes()
    readme = (src / "README.md").read_bytes()
    assert entries["README.md"].content is None
    assert entries["README.md"].head == readme[:8192] and entries["README.md"].size == len(readme)
    assert files.unpacked_bytes == sum(e.size for e in entries.values())


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("demo-0.1.0/../../etc/cron.d/evil", "unsafe path"),
        ("demo-0.1.0/src/../../evil.rs", "unsafe path"),
        ("/etc/passwd", "unsafe path"),
        ("demo-0.1.0/src\\..\\..\\evil.rs", "unsafe path"),
        ("C:/Windows/evil.dll", "unsafe path"),
        ("demo-0.1.0/./src/lib.rs", "unsafe path"),
    ],
)
def test_path_traversal_is_rejected(name: str, match: str) -> None:
    """Entries that would land outside an unpack directory reject the whole crate."""
    data = gz(build_tar([("demo-0.1.0/Cargo.toml", b"[package]\n"), (name, b"x")]))
    with rejected(match):
        read_crate(data)


@pytest.mark.parametrize(
    "entry",
    [
        special("demo-0.1.0/src/lib.rs", tarfile.SYMTYPE, "/etc/shadow"),
        special("demo-0.1.0/src/lib.rs", tarfile.LNKTYPE, "demo-0.1.0/Cargo.toml"),
    ],
    ids=["symlink", "hardlink"],
)
def test_links_are_rejected(entry: tarfile.TarInfo) -> None:
    """Symlinks and hard links could point an unpacker at files outside the crate."""
    data = gz(build_tar([("demo-0.1.0/Cargo.toml", b"[package]\n"), entry]))
    with rejected("link"):
        read_crate(data)


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.FIFOTYPE, tarfile.BLKTYPE])
def test_device_and_fifo_entries_are_rejected(kind: bytes) -> None:
    """Devices and FIFOs have no place in source and could hang an unpacker."""
    data = gz(build_tar([special("demo-0.1.0/dev", kind)]))
    with rejected("special file"):
        read_crate(data)


def test_sparse_files_are_rejected() -> None:
    """A sparse file's stored bytes are not its content: the scan would read other code."""
    entry = tarfile.TarInfo("demo-0.1.0/src/lib.rs")
    entry.type = tarfile.GNUTYPE_SPARSE  # (tarfile writes it as a plain header of type S)
    data = gz(build_tar([("demo-0.1.0/Cargo.toml", b"[package]\n"), entry]))
    with rejected("sparse"):
        read_crate(data)


def test_file_cut_short_by_a_truncated_tar_is_rejected() -> None:
    """Content is sliced from the tar: a last file whose bytes run out is refused."""
    tar = build_tar([("demo-0.1.0/src/lib.rs", b"fn a() {}\n" * 300)])
    with rejected("truncated|not a valid tar"):
        read_crate(gz(tar[: 512 + 1000]))


def test_duplicate_entries_are_rejected() -> None:
    """Two copies of one path: a scanner and an unpacker could each see a different one."""
    data = gz(build_tar([("demo-0.1.0/src/lib.rs", b"fn a() {}"), ("demo-0.1.0/src/lib.rs", b"x")]))
    with rejected("twice"):
        read_crate(data)


def test_entries_outside_the_prefix_are_rejected() -> None:
    """All entries share one NAME-VERSION/ directory, as cargo requires."""
    data = gz(build_tar([("demo-0.1.0/Cargo.toml", b""), ("other-0.1.0/src/lib.rs", b"")]))
    with rejected("outside"):
        read_crate(data)


def _bomb(total: int) -> bytes:
    """A .crate whose one file is `total` zero bytes, built in slices (never whole in memory)."""
    header = tarfile.TarInfo("demo-0.1.0/zeros")
    header.size = total
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9, mtime=0) as stream:
        stream.write(header.tobuf(format=tarfile.GNU_FORMAT))
        chunk = bytes(1 << 20)
        for _ in range(total >> 20):
            stream.write(chunk)
        stream.write(bytes(1024))
    return out.getvalue()


def test_gzip_bomb_is_rejected_without_inflating_it() -> None:
    """A 60 MiB bomb is refused by ratio after inflating a few MiB; memory stays small."""
    data = _bomb(60 << 20)
    assert len(data) < 1 << 20
    for walk in (lambda files: list(files), CrateFiles.check):  # reading, and check_archive's
        tracemalloc.start()
        try:
            with rejected("ratio"):
                walk(CrateFiles(data, ArchiveLimits()))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 16 << 20


def test_oversized_member_is_refused_by_its_header() -> None:
    """A member claiming 256 MiB is refused at its header, before its data is inflated."""
    with rejected("larger than"):
        read_crate(_bomb(256 << 20))


def test_total_size_limit_is_enforced_while_streaming() -> None:
    """A crate over the total limit is refused even when its ratio looks normal."""
    data = pack_crate(debian_crate_dir("itoa"))
    with rejected("more than"):
        read_crate(data, ArchiveLimits(max_total_bytes=10_000, max_ratio=10**9))


def test_single_file_limit_is_enforced() -> None:
    """One oversized file is refused by its header, before its data is read."""
    data = pack_crate(debian_crate_dir("itoa"))
    with rejected("larger than"):
        read_crate(data, ArchiveLimits(max_file_bytes=1000))


def test_many_tiny_files_are_rejected() -> None:
    """100k empty files (an inode/CPU exhaustion attempt) stop at the entry limit."""
    blocks = []
    for i in range(100_000):
        info = tarfile.TarInfo(f"demo-0.1.0/f{i}")
        blocks.append(info.tobuf(format=tarfile.GNU_FORMAT))
    data = gz(b"".join(blocks) + bytes(1024))
    with rejected("more than 20000 entries"):
        read_crate(data)


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda d: d[: len(d) // 2], "truncated"),
        (lambda d: d[:10] + bytes(b ^ 0x5A for b in d[10:200]) + d[200:], "not valid gzip"),
        (lambda d: d[:-8] + b"\0\0\0\0" + d[-4:], "not valid gzip"),
        (lambda d: b"PK\x03\x04 not a gzip stream at all", "not valid gzip"),
        (lambda d: d + gz(b"a second member"), "after the end of its gzip stream"),
    ],
    ids=["truncated", "corrupt-deflate", "bad-crc", "not-gzip", "trailing-member"],
)
def test_corrupt_gzip_is_rejected(damage: Callable[[bytes], bytes], match: str) -> None:
    """Damaged or padded gzip streams are a clear ArchiveError, not a crash."""
    data = damage(pack_crate(debian_crate_dir("itoa")))
    with rejected(match):
        read_crate(data)


def test_gzip_of_non_tar_is_rejected() -> None:
    """A valid gzip holding something other than a tar is refused."""
    with rejected("not a valid tar|empty"):
        read_crate(gz(b"this is just text, not a tar archive\n" * 50))


def test_entries_hidden_after_a_corrupt_header_are_rejected() -> None:
    """tarfile stopped quietly at a bad header after the first, and never looked further;
    a more lenient unpacker might read on. A bad checksum anywhere refuses the crate."""
    tar = bytearray(build_tar([("demo-0.1.0/a.rs", b"a"), ("demo-0.1.0/b.rs", b"b")]))
    tar[1024 + 148 : 1024 + 156] = b"0000000\0"  # break the second header's checksum
    with rejected("bad header checksum at 1024"):
        read_crate(gz(bytes(tar)))


@given(st.binary(min_size=512, max_size=512))
@example(bytes(512))
@example(b"\xff" * 512)
@settings(max_examples=300)
def test_header_checksum_is_the_sum_tar_defines(block: bytes) -> None:
    """The checksum is the sum of the header's bytes with its own field read as 8 spaces;
    it is computed in pieces (adler32), so compare with the plain sum, at the extremes too."""
    reference = sum(block[:148]) + 8 * 32 + sum(block[156:])
    for stored, accepted in ((reference, True), (reference + 1, False), (reference - 1, False)):
        header = block[:148] + b"%06o\0 " % stored + block[156:]
        if accepted:
            _check_checksum(header, 0)
        else:
            with pytest.raises(ArchiveError, match="bad header checksum"):
                _check_checksum(header, 0)


def test_data_after_the_end_of_archive_block_is_rejected() -> None:
    """An entry placed after the end-of-archive blocks is invisible to cargo, not to all."""
    tar = build_tar([("demo-0.1.0/a.rs", b"a")])
    hidden = build_tar([("demo-0.1.0/hidden.rs", b"evil")])
    with rejected("after the end of its tar"):
        read_crate(gz(tar + hidden))


def test_long_names_the_ways_cargo_and_tarfile_write_them() -> None:
    """GNU long names (cargo) and pax paths (tarfile) both name the member that follows."""
    long = "demo-0.1.0/" + "d/" * 70 + "deep.rs"
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
            info = tarfile.TarInfo(long)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
        files = read_crate(gz(buf.getvalue()))
        assert files.contents == {long.split("/", 1)[1]: b"abc"}  # type: ignore[attr-defined]


def _raw_header(name: bytes, kind: bytes, size: bytes = b"00000000000\0") -> bytes:
    """A ustar header with a correct checksum, for kinds tarfile will not write."""
    block = bytearray(512)
    block[0 : len(name)] = name
    block[100:108] = b"0000644\0"
    block[124:136] = size
    block[156:157] = kind
    block[257:263] = b"ustar\0"
    block[263:265] = b"00"
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


@pytest.mark.parametrize(
    ("kind", "match"),
    [(b"V", "unknown type"), (b"M", "unknown type"), (b"S", "sparse"), (b"6", "special")],
)
def test_entry_types_a_crate_has_no_use_for_are_rejected(kind: bytes, match: str) -> None:
    """Volume labels, multi-volume continuations, sparse files, FIFOs: refused, not guessed."""
    tar = _raw_header(b"demo-0.1.0/x", kind) + bytes(1024)
    with rejected(match):
        read_crate(gz(tar))


def test_global_pax_header_that_renames_is_rejected() -> None:
    """A global header would rename every member after it: refused. One holding only a
    comment (`git archive` writes one) is harmless."""
    for records, match in ((b"path=evil.rs", "global pax header"), (b"comment=abc", None)):
        record = b"%d %s\n" % (len(records) + 4, records)
        record = b"%d %s\n" % (len(record), records)
        header = _raw_header(b"pax_global_header", b"g", b"%011o\0" % len(record))
        body = record + bytes(-len(record) % 512)
        tar = header + body + build_tar([("demo-0.1.0/a.rs", b"a")])
        if match is None:
            assert read_crate(gz(tar)).contents == {"a.rs": b"a"}  # type: ignore[attr-defined]
        else:
            with rejected(match):
                read_crate(gz(tar))


@pytest.mark.parametrize(
    ("size", "match"),
    [(b"\xff" + bytes(11), "negative number"), (b"12x4567\0\0\0\0\0", "bad number")],
    ids=["negative-base-256", "not-octal"],
)
def test_malformed_numbers_are_rejected(size: bytes, match: str) -> None:
    with rejected(match):
        read_crate(gz(_raw_header(b"demo-0.1.0/a.rs", b"0", size) + bytes(1024)))


def test_huge_long_name_is_refused_before_it_is_read() -> None:
    """A GNU long name claiming 1 GiB is refused by its header."""
    tar = _raw_header(b"././@LongLink", b"L", b"%011o\0" % (1 << 30)) + bytes(1024)
    with rejected("long name of 1073741824 bytes"):
        read_crate(gz(tar))


def test_raw_deflate_without_gzip_header_is_rejected() -> None:
    """Only gzip framing is accepted (cargo writes gzip)."""
    with rejected("not valid gzip"):
        read_crate(zlib.compress(build_tar([("demo-0.1.0/a.rs", b"a")])))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    """Whatever the bytes, reading either succeeds or raises ArchiveError."""
    with suppress(ArchiveError):
        read_crate(data)


_SMALL_CRATE = pack_crate(debian_crate_dir("itoa"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(_SMALL_CRATE) - 1), st.integers(0, 255)), max_size=8))
def test_corrupted_real_crate_never_crashes_the_scanner(flips: list[tuple[int, int]]) -> None:
    """Random byte damage to a real crate gives a report or an ArchiveError, nothing else."""
    data = bytearray(_SMALL_CRATE)
    for at, value in flips:
        data[at] = value
    with suppress(ArchiveError):
        scan_crate(bytes(data))


def test_tar_layer_damage_never_crashes_the_scanner() -> None:
    """Damage inside the tar (re-gzipped, so the gzip layer is valid) is handled too."""
    tar = gzip.decompress(_SMALL_CRATE)
    for at in range(0, len(tar), 997):
        damaged = tar[:at] + bytes([tar[at] ^ 0xFF]) + tar[at + 1 :]
        with suppress(ArchiveError):
            scan_crate(gz(damaged))
