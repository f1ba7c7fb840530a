"""Every failure crate-mirror knows how to explain, in one shallow tree.

    MirrorError
    ├── BadRequest            the client asked for something malformed          -> 400
    ├── NotFound              no such crate / version / file                    -> 404
    ├── Blocked               policy said no (names the rule)                   -> 403
    ├── UpstreamError         the registry failed us                            -> 502
    │   ├── UpstreamUnavailable   connection refused, reset, timeout, 5xx       -> 503/502
    │   ├── UpstreamNotFound      the registry answered 404                     -> 404
    │   └── IntegrityError        checksum, length or size limit violated       -> 502
    │       └── TruncatedBody     the body ended early (retried once)
    ├── TrustError            a TUF check failed (signature, expiry, rollback)  -> 502
    ├── StorageError          the cache could not be written (disk full, ...)   -> 507
    │   └── StoreUnavailable      the shared object store cannot be reached     -> 503
    ├── ArchiveError          a .crate is hostile or malformed                  -> 502
    ├── ConfigError           a settings or policy file is invalid (start-up)
    └── StartupError          the server cannot start (its port is taken, ...)

`mirror.http.edge` maps these to HTTP responses in exactly one place; nothing else in the
package knows about status codes.
"""

from __future__ import annotations

from dataclasses import dataclass

from mirror.printable import printable


class MirrorError(Exception):
    """Base class: the message is safe to show to a client (no secrets, no paths)."""


class BadRequest(MirrorError):
    pass


class NotFound(MirrorError):
    pass


class Blocked(MirrorError):
    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule  # the policy rule that decided (typosquat, deny, capabilities, ...)


class UpstreamError(MirrorError):
    pass


class UpstreamUnavailable(UpstreamError):
    pass


class UpstreamNotFound(UpstreamError):
    pass


class IntegrityError(UpstreamError):
    pass


class TruncatedBody(IntegrityError):
    """The body ended early (connection cut); worth one retry, unlike a wrong checksum."""


class TrustError(MirrorError):
    pass


class StorageError(MirrorError):
    pass


class StoreUnavailable(StorageError):
    """The shared object store (S3) did not answer, or refused: the message says which and
    why, never with credentials. Nothing it sent is served."""


class ArchiveError(MirrorError):
    """Its message may quote the crate (a file name, a line of code): kept printable, for
    the 403 body cargo prints and for terminals (mirror.printable)."""

    def __init__(self, message: str) -> None:
        super().__init__(printable(message))


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a settings or policy file, located for a human."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.field}: {self.message}"


class ConfigError(MirrorError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class StartupError(MirrorError):
    """The server cannot start for a reason outside its files: its port is taken, say."""
