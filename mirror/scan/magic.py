"""What a file or a decoded blob is, by its first bytes: pre-built code, an archive, or data."""

from __future__ import annotations

HEAD_BYTES = 8192  # bytes of a file these functions look at (git's NUL test reads 8000)
MIN_EMBEDDED_DATA = 16 * 1024  # bytes of unrecognised non-text data `include_bytes!` may embed

_BINARY_SUFFIXES = (".so", ".dll", ".dylib", ".a", ".lib", ".exe", ".o", ".obj", ".node", ".wasm")
_MACHO_MAGIC = (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe")
_EXECUTABLE_MAGIC = (
    (b"\x7fELF", "ELF binary"),
    *((magic, "Mach-O binary") for magic in _MACHO_MAGIC),
    (b"!<arch>\n", "static library (ar archive)"),
    (b"\0asm", "WebAssembly module"),
)
_ARCHIVE_MAGIC = (
    (b"\x1f\x8b", "gzip data"),
    (b"PK\x03\x04", "zip archive"),
    (b"7z\xbc\xaf\x27\x1c", "7-zip archive"),
    (b"\xfd7zXZ\0", "xz data"),
    (b"BZh", "bzip2 data"),
    (b"\x28\xb5\x2f\xfd", "zstd data"),
    (b"Rar!\x1a\x07", "rar archive"),
    (b"MSCF", "cabinet archive"),
)
# Data crates legitimately embed (images, fonts, documents): never a payload by their look.
_MEDIA_MAGIC = (
    b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF", b"\0\0\1\0", b"\0\1\0\0", b"OTTO", b"wOFF",
    b"wOF2", b"%PDF", b"BM", b"true", b"ttcf", b"<svg", b"<?xml",
)  # fmt: skip


# The first byte of every magic number above (and of "MZ", "\xca\xfe" and "ustar" at 257):
# a file starting with any other byte (most: text) is told apart without trying each one.
_FIRST_BYTES = frozenset(
    magic[0] for magic, _ in (*_EXECUTABLE_MAGIC, *_ARCHIVE_MAGIC, (b"MZ", ""), (b"\xca", ""))
)


def _maybe_magic(head: bytes) -> bool:
    return bool(head) and (head[0] in _FIRST_BYTES or head[257:262] == b"ustar")


def binary_kind(path: str, head: bytes, size: int) -> str | None:
    """What pre-built code a file is, by magic bytes first and then by name; None if none.
    `head` is the file's first bytes (HEAD_BYTES of them, or all of a smaller file)."""
    if not _maybe_magic(head):
        return _kind_by_name(path)
    if head.startswith(b"MZ") and _is_pe(head, size):
        return "PE (Windows) binary"
    if head.startswith(b"\xca\xfe\xba\xbe") and len(head) > 8 and head[7] < 20:
        return "Mach-O universal binary"  # (a Java class shares the magic; its byte 7 is >= 45)
    for magic, kind in _EXECUTABLE_MAGIC:
        if head.startswith(magic):
            return kind
    return _kind_by_name(path)


def _kind_by_name(path: str) -> str | None:
    name = path.rsplit("/", 1)[-1].lower()
    if name.endswith(_BINARY_SUFFIXES) or ".so." in name:
        return f"binary by name ({name.rsplit('.', 1)[-1]})"
    return None


def _is_pe(head: bytes, size: int) -> bool:
    if len(head) < 0x40:
        return False
    offset = int.from_bytes(head[0x3C:0x40], "little")
    if offset + 4 <= len(head):
        return head[offset : offset + 4] == b"PE\0\0"
    # The PE header lies beyond what was kept: a file this shaped is treated as a binary
    # (a header placed far out must not hide one; text starting "MZ" points past its end).
    return offset + 4 <= size


def magic_kind(head: bytes, size: int | None = None) -> str | None:
    """An executable or an archive by its first bytes (`size`: the whole file's, if `head`
    is only its start); for decoded blobs and embedded files."""
    if not _maybe_magic(head):
        return None
    if head.startswith(b"MZ") and _is_pe(head, len(head) if size is None else size):
        return "PE (Windows) binary"
    for magic, kind in _EXECUTABLE_MAGIC + _ARCHIVE_MAGIC:
        if head.startswith(magic):
            return kind
    if head[257:262] == b"ustar":
        return "tar archive"
    return None


def embedded_kind(head: bytes, size: int) -> str | None:
    """Why a file pulled in with `include_bytes!` could be a hidden payload: an executable,
    an archive, or a large block of data that is neither text nor a known media format
    (random or encrypted bytes hold a NUL in their first 8 KiB all but surely)."""
    kind = magic_kind(head, size)
    large_data = size >= MIN_EMBEDDED_DATA and b"\0" in head
    if kind is None and large_data and not head.startswith(_MEDIA_MAGIC):
        kind = f"{size // 1024} KiB of non-text data"
    return kind
