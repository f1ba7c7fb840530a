"""Defensive reading of a `.crate` (a gzipped tar) into memory, never onto disk.

A `.crate` comes from the internet and is read before anyone decided to trust it, so every
step is bounded: the gzip stream is inflated in slices and abandoned the moment it passes a
limit (gzip bomb), the tar is walked from memory, and any entry that could escape an unpack
directory or hide behind another (traversal, absolute path, links, devices, duplicates) makes
the whole archive a clear `ArchiveError`.
"""

from __future__ import annotations

import io
import tarfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import cast

from isal import isal_zlib

from mirror.errors import ArchiveError

_INFLATE_SLICE = 1024 * 1024  # bytes inflated per step, so a bomb is caught within one slice
_RATIO_FLOOR = 1024 * 1024  # bytes; below this a high ratio is normal (tar padding of tiny files)
_TAR_OVERHEAD_PER_ENTRY = 3 * 512  # bytes: header, a possible PAX/GNU long-name header, padding
# isal's stub declares `error` an instance; it is the exception class corrupt input raises.
_INFLATE_ERROR = cast(type[Exception], isal_zlib.error)


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds on what a `.crate` may unpack to; crates.io itself accepts at most 10 MiB packed."""

    max_total_bytes: int = 256 * 1024 * 1024  # bytes, sum of all unpacked file sizes
    max_files: int = 20_000  # tar entries (files and directories)
    max_ratio: int = 200  # unpacked tar bytes per compressed byte, checked past 1 MiB
    max_file_bytes: int = 64 * 1024 * 1024  # bytes, any one file


@dataclass(frozen=True)
class CrateArchive:
    """The validated contents of a `.crate`: `NAME-VERSION/` prefix and files below it."""

    prefix: str
    files: Mapping[str, bytes]  # path relative to the prefix ("src/lib.rs") -> content
    unpacked_bytes: int

    def text(self, path: str) -> str | None:
        """A file decoded as UTF-8 (invalid bytes replaced), or None if absent."""
        data = self.files.get(path)
        return None if data is None else data.decode("utf-8", errors="replace")


def read_crate(data: bytes, limits: ArchiveLimits = ArchiveLimits()) -> CrateArchive:
    """Unpack a `.crate` into memory, or raise ArchiveError naming the first thing wrong."""
    tar_bytes = _inflate(data, limits)
    return _read_tar(tar_bytes, limits)


def _inflate(data: bytes, limits: ArchiveLimits) -> bytes:
    """Gunzip in bounded slices; stop as soon as the output passes a limit (gzip bomb)."""
    cap = limits.max_total_bytes + limits.max_files * _TAR_OVERHEAD_PER_ENTRY + _RATIO_FLOOR
    # ISA-L inflates 2.5x faster than zlib, with zlib's API (and its bounded `max_length`).
    inflater = isal_zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip header required
    pieces: list[bytes] = []
    size = 0
    pending = data
    try:
        while not inflater.eof:
            piece = inflater.decompress(pending, _INFLATE_SLICE)
            pending = inflater.unconsumed_tail
            pieces.append(piece)
            size += len(piece)
            if size > cap:
                raise ArchiveError(f"crate unpacks to more than {cap} bytes")
            if size > _RATIO_FLOOR and size > limits.max_ratio * len(data):
                raise ArchiveError(
                    f"crate compression ratio exceeds {limits.max_ratio}:1 (gzip bomb)"
                )
            if not piece and not pending:
                raise ArchiveError("crate gzip stream is truncated")
    except _INFLATE_ERROR as e:
        raise ArchiveError(f"crate is not valid gzip: {e}") from e
    # Bytes after the gzip member are invisible to cargo's reader but not to every tool:
    # refuse them rather than scan one archive and let someone unpack another.
    if inflater.unused_data.strip(b"\0"):
        raise ArchiveError("crate has data after the end of its gzip stream")
    return b"".join(pieces)


def _read_tar(tar_bytes: bytes, limits: ArchiveLimits) -> CrateArchive:
    files: dict[str, bytes] = {}
    prefix: str | None = None
    total = 0
    entries = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
            while (member := tar.next()) is not None:
                entries += 1
                if entries > limits.max_files:
                    raise ArchiveError(f"crate has more than {limits.max_files} entries")
                top, rel = _check_name(member.name)
                if prefix is None:
                    prefix = top
                elif top != prefix:
                    raise ArchiveError(f"entry {member.name[:200]!r} is outside {prefix}/")
                if member.isdir():
                    continue
                _check_type(member)
                if member.size > limits.max_file_bytes:
                    raise ArchiveError(
                        f"{rel[:200]!r} is larger than {limits.max_file_bytes} bytes"
                    )
                total += member.size
                if total > limits.max_total_bytes:
                    raise ArchiveError(f"crate unpacks to more than {limits.max_total_bytes} bytes")
                if not rel:
                    raise ArchiveError(f"file entry {member.name[:200]!r} has no name")
                # Duplicate entries: a scanner reading the first copy and an unpacker keeping
                # the last would see different code.
                if rel in files:
                    raise ArchiveError(f"crate contains {rel[:200]!r} twice")
                # Sliced from the buffer: `extractfile` costs more than the header parse.
                content = tar_bytes[member.offset_data : member.offset_data + member.size]
                if len(content) != member.size:
                    raise ArchiveError(f"{rel[:200]!r} is cut short: the tar is truncated")
                files[rel] = content
            end = tar.offset
    except ArchiveError:
        raise
    except (tarfile.TarError, EOFError, ValueError, OSError, UnicodeError) as e:
        raise ArchiveError(f"crate is not a valid tar archive: {e}") from e
    # tarfile stops quietly at a corrupt header after the first; whatever follows the end
    # marker must be padding, or a reader more lenient than ours could see hidden entries.
    if tar_bytes[end:].strip(b"\0"):
        raise ArchiveError("crate has data after the end of its tar archive")
    if prefix is None:
        raise ArchiveError("crate archive is empty")
    return CrateArchive(prefix=prefix, files=MappingProxyType(files), unpacked_bytes=total)


def _check_name(name: str) -> tuple[str, str]:
    """Split `NAME-VERSION/rel/path` after refusing anything that could escape an unpack dir."""
    # Path traversal: absolute paths, `..`, Windows separators and drive letters, NUL.
    if not name or name.startswith("/") or "\\" in name or "\0" in name:
        raise ArchiveError(f"unsafe path in crate: {name[:200]!r}")
    parts = name.rstrip("/").split("/")
    if any(p in ("", ".", "..") for p in parts) or (len(parts[0]) == 2 and parts[0][1] == ":"):
        raise ArchiveError(f"unsafe path in crate: {name[:200]!r}")
    return parts[0], "/".join(parts[1:])


def _check_type(member: tarfile.TarInfo) -> None:
    # Symlinks and hard links point an unpacker at files outside the crate (or at another
    # entry, hiding content from a scan); devices and FIFOs have no place in source.
    if member.issym() or member.islnk():
        raise ArchiveError(f"crate contains a link: {member.name[:200]!r}")
    if not member.isreg():
        raise ArchiveError(f"crate contains a special file: {member.name[:200]!r}")
    # A sparse file's bytes in the tar are not its content (holes are left out): an unpacker
    # would write what the scan never saw. `cargo package` writes none.
    if member.issparse():
        raise ArchiveError(f"crate contains a sparse file: {member.name[:200]!r}")
