"""Which Rust paths, bare names and macros grant which capability (data, and matching it)."""

from __future__ import annotations

import functools
import re

from mirror.scan.report import Capability

Path_ = tuple[str, ...]

# Path prefixes that grant a capability. A resolved path matches when it starts with one.
# Data-only items (std::net::IpAddr, std::env::consts) are left out on purpose.
RULES: dict[Capability, tuple[str, ...]] = {
    Capability.NET: (
        "std::net::TcpStream", "std::net::TcpListener", "std::net::UdpSocket",
        "std::net::ToSocketAddrs", "std::os::unix::net", "tokio::net", "async_std::net",
        "mio::net", "socket2", "reqwest", "hyper::client", "hyper::Client", "ureq", "curl",
        "isahc", "surf", "attohttpc",
    ),
    Capability.FS: (
        "std::fs", "tokio::fs", "async_std::fs", "fs_err", "std::os::unix::fs",
        "std::os::windows::fs",
        # Where this process and its files are on the machine (and moving there).
        "std::env::temp_dir", "std::env::current_dir", "std::env::set_current_dir",
        "std::env::current_exe",
    ),
    Capability.PROCESS: (
        "std::process::Command", "std::process::Child", "std::os::unix::process::CommandExt",
        "std::os::windows::process::CommandExt", "tokio::process", "async_process", "duct",
        "subprocess", "libc::fork", "libc::execv", "libc::execve", "libc::execvp",
        "libc::posix_spawn", "libc::posix_spawnp", "nix::unistd::fork", "nix::unistd::execv",
    ),
    Capability.ENV: (
        "std::env::var", "std::env::var_os", "std::env::vars", "std::env::vars_os",
        "std::env::set_var", "std::env::remove_var",
    ),
}  # fmt: skip
# Names that mean the capability even when we cannot see where they were imported from
# (glob imports, re-exports): nobody names an unrelated type `TcpStream`.
BARE: dict[str, Capability] = {
    "TcpStream": Capability.NET, "TcpListener": Capability.NET, "UdpSocket": Capability.NET,
    "UnixStream": Capability.NET, "UnixListener": Capability.NET,
    "UnixDatagram": Capability.NET, "OpenOptions": Capability.FS,
}  # fmt: skip
BARE_CALLS: dict[Path_, Capability] = {
    ("File", "open"): Capability.FS,
    ("File", "create"): Capability.FS,
    ("Path", "read_dir"): Capability.FS,
    ("PathBuf", "read_dir"): Capability.FS,
}
# Methods only the file system has (`path.read_dir()`), whatever the receiver's type.
METHODS: dict[str, Capability] = {
    "read_dir": Capability.FS,
    "read_link": Capability.FS,
    "symlink_metadata": Capability.FS,
}
# Paths that grant a capability when called (`libc::memchr(..)`), not when merely named
# (`libc::c_int`, `libc::EINVAL` are data). Every call into libc is foreign code; these also
# reach the file system.
CALL_RULES: dict[Capability, tuple[str, ...]] = {
    Capability.FFI: ("libc",),
    Capability.FS: tuple(
        f"libc::{name}"
        for name in (
            "open",
            "open64",
            "openat",
            "openat64",
            "creat",
            "creat64",
            "fopen",
            "fopen64",
            "freopen",
            "rename",
            "renameat",
            "renameat2",
            "unlink",
            "unlinkat",
            "mkdir",
            "mkdirat",
            "rmdir",
            "link",
            "linkat",
            "symlink",
            "symlinkat",
            "chmod",
            "fchmodat",
            "chown",
            "lchown",
            "fchownat",
            "truncate",
            "truncate64",
            "opendir",
            "readlink",
            "readlinkat",
            "realpath",
            "stat",
            "stat64",
            "lstat",
            "lstat64",
            "fstatat",
            "statx",
            "access",
            "faccessat",
            "mknod",
            "mknodat",
            "mkfifo",
            "utimensat",
        )
    ),
}
ENV_MACROS = frozenset({"env", "option_env"})
INCLUDE_MACROS = frozenset({"include_bytes", "include_str", "include"})
# Compile-time variables cargo itself sets: reading them reveals nothing about the machine.
CARGO_ENV = re.compile(r"CARGO(_|\Z)|OUT_DIR\Z")

RULE_PATHS: tuple[tuple[Path_, Capability], ...] = tuple(
    (tuple(rule.split("::")), cap) for cap, rules in RULES.items() for rule in rules
)
CALL_RULE_PATHS: tuple[tuple[Path_, Capability], ...] = tuple(
    (tuple(rule.split("::")), cap) for cap, rules in CALL_RULES.items() for rule in rules
)
_RULES_BY_HEAD: dict[str, list[tuple[Path_, Capability]]] = {}
for _path, _cap in RULE_PATHS:
    _RULES_BY_HEAD.setdefault(_path[0], []).append((_path, _cap))


def absolute(path: Path_) -> Path_:
    """`::std::fs` and `std::fs` are the same path (a leading `::` is an empty segment)."""
    return path[1:] if path and path[0] == "" else path


def match_path(path: Path_) -> Capability | None:
    """The capability a resolved path grants, if any."""
    for rule, cap in _RULES_BY_HEAD.get(path[0] if path else "", ()):
        if path[: len(rule)] == rule:
            return cap
    return None


def match_call(path: Path_) -> list[Capability]:
    """The capabilities calling a resolved path grants (`libc::open` -> FFI and FS). libc's
    functions sit at its top: `libc::c_int::max_value()` calls a method of `i32`."""
    if len(path) != 2:
        return []
    return [cap for rule, cap in CALL_RULE_PATHS if path[: len(rule)] == rule]


_ALL_BY_HEAD: dict[str, list[Path_]] = {}
for _path, _ in RULE_PATHS + CALL_RULE_PATHS:
    _ALL_BY_HEAD.setdefault(_path[0], []).append(_path)


@functools.lru_cache(maxsize=4096)
def relevant(path: Path_) -> bool:
    """Does `path` grant a capability, or lead to one (`std::env` leads to `std::env::var`)?"""
    return bool(path) and any(
        path[: len(rule)] == rule or rule[: len(path)] == path
        for rule in _ALL_BY_HEAD.get(path[0], ())
    )
