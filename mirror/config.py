"""Settings: one dataclass with units, read from one YAML file plus environment overrides.

Precedence: defaults < YAML file < `CRATE_MIRROR_<FIELD>` environment variables < command line.
Every problem is reported with file, line and field, and the server refuses to start on any.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mirror.errors import ConfigError, Problem
from mirror.yamlfile import Located, load_located

ENV_PREFIX = "CRATE_MIRROR_"
# Variables with the prefix that are not settings: the PKCS#11 PIN (mirror.trust.pkcs11).
NOT_SETTINGS = frozenset({"CRATE_MIRROR_PKCS11_PIN"})
MAX_WORKERS = 256  # `workers: 10000` ran out of file descriptors with a traceback


@dataclass(frozen=True)
class Settings:
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    # The URL cargo uses to reach us; written into config.json's `dl`. Derived when unset.
    public_url: str | None = None
    upstream_index: str = "https://index.crates.io/"
    cache_dir: Path = Path("./mirror-data")
    policy: Path | None = None
    index_ttl: float = 60.0  # seconds an index file is served without asking upstream
    negative_ttl: float = 30.0  # seconds an upstream 404 is remembered
    max_crate_bytes: int = 64 * 2**20  # bytes; larger downloads are refused, never cached
    max_index_bytes: int = 32 * 2**20  # bytes; one index file
    index_memory_bytes: int = 64 * 2**20  # bytes of index files kept in memory per worker
    hot_cache_bytes: int = 32 * 2**20  # bytes of small crates kept in memory per worker
    # bytes; larger crates are always sent from their file (and their connection handed to
    # the aiohttp handlers, which is what made a warm cargo fetch slower than nginx)
    hot_cache_max_file: int = 4 * 2**20
    # bytes of finished responses the front door repeats for warm hits (0 = every request
    # goes through the aiohttp handlers)
    prepared_bytes: int = 32 * 2**20
    listen_backlog: int = 1024  # pending connections the kernel queues for us
    upstream_connect_timeout: float = 10.0  # seconds
    upstream_read_timeout: float = 30.0  # seconds without a byte from upstream
    upstream_concurrency: int = 32  # connections to upstream at once
    upstream_retries: int = 3  # extra attempts for 5xx/429/connection errors on GETs
    # newest versions of a requested crate whose dependencies' index files are fetched ahead
    # of cargo asking for them (0: off)
    look_ahead_versions: int = 3
    look_ahead_crates: bool = True  # also fetch ahead the crates cargo will download
    offline: bool = False
    workers: int = 1  # server processes sharing the listening socket and the cache
    log_format: str = "json"  # json | console
    log_level: str = "info"
    audit_dir: Path | None = None  # default: <cache_dir>/audit
    # Token file (`crate-mirror token add`); when set, cargo must authenticate (auth-required).
    auth_tokens: Path | None = None
    # seconds a connection may stay idle or keep trickling request headers (slowloris)
    keepalive_timeout: float = 10.0
    # cargo's offer (`Upgrade: h2c`) to ask over HTTP/2, many requests at once on one
    # connection: `auto` takes it unless both cargo and upstream are near (mirror.http.h2c),
    # `always`, or `never` (HTTP/1.1 only: two requests at a time from cargo).
    http2: str = "auto"
    tuf: Mapping[str, Any] = field(default_factory=dict)  # see mirror.trust
    # The near-name feed (/feed/near-names.json and .atom): `public` (no token needed, for a
    # community to watch), `clients` (like the index: a client token when tokens are on), `off`.
    near_name_feed: str = "clients"
    # Where trust-on-first-use records what it saw: never the reviewed lock in the checkout.
    tofu_lock: Path | None = None  # default: <cache_dir>/state/capabilities.tofu.yaml
    # Admin token file (`crate-mirror admin add`); when set, the review console is served at
    # /-/ for the people in it (their tokens are not cargo's client tokens).
    admin_tokens: Path | None = None
    alerts: Mapping[str, Any] = field(default_factory=dict)  # webhooks: mirror.serving.alerts
    # -- replicas sharing a bucket (docs/scale-out.md) -----------------------------------------
    # This replica's name: its audit chain is <audit_dir>/<replica_id>/ (one chain per replica)
    replica_id: str | None = None
    s3_bucket: str | None = None  # set: crates, index files, scan reports shared through it
    s3_endpoint: str | None = None  # default AWS S3 in s3_region; MinIO, Ceph: their URL
    s3_region: str = "us-east-1"
    s3_prefix: str = ""  # key prefix, so several mirrors can share one bucket
    s3_addressing: str = "auto"  # auto | path | virtual (auto: virtual for AWS, else path)
    # Credentials: these, or else AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN
    s3_access_key_id: str | None = field(default=None, repr=False)
    s3_secret_access_key: str | None = field(default=None, repr=False)
    # HMAC key the replicas share: index files and scan reports in the bucket are signed with
    # it, and unsigned ones are refused (whoever can write the bucket cannot forge them)
    s3_record_key: str | None = field(default=None, repr=False)
    s3_connect_timeout: float = 5.0  # seconds
    s3_read_timeout: float = 30.0  # seconds without a byte from the bucket
    s3_retries: int = 3  # extra attempts for connection errors, timeouts, 5xx, 429
    s3_part_bytes: int = 8 * 2**20  # bytes; larger crates are uploaded in parts (>= 5 MiB)
    s3_stale_upload_seconds: float = 3600.0  # unfinished uploads older than this are aborted
    lock_sync_interval: float = 1.0  # seconds between capability-lock checks in the bucket

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.listen_host}:{self.listen_port}"

    @property
    def audit_root(self) -> Path:
        """Where the audit chains are: one, or one per replica in subdirectories."""
        return self.audit_dir if self.audit_dir is not None else self.cache_dir / "audit"

    @property
    def state_directory(self) -> Path:
        """What the server keeps besides the cache (not derived from upstream, never written
        by the store): trust-on-first-use records, the lock epoch, the console's session key."""
        return self.cache_dir / "state"

    @property
    def tofu_lock_path(self) -> Path:
        return self.tofu_lock if self.tofu_lock is not None else self.state_directory / TOFU_NAME

    @property
    def audit_directory(self) -> Path:
        """Where this process writes its chain."""
        root = self.audit_root
        return root / self.replica_id if self.replica_id else root

    @property
    def audit_index_path(self) -> Path:
        """The query index over every chain in `audit_root` (mirror.audit.index): beside the
        chain, or a replica's own in its state directory (local disk: the audit directory
        may be a volume the replicas share, and SQLite must not be shared between hosts)."""
        if self.replica_id:
            return self.state_directory / AUDIT_INDEX_NAME
        return self.audit_root / AUDIT_INDEX_NAME


TOFU_NAME = "capabilities.tofu.yaml"
AUDIT_INDEX_NAME = "audit-index.sqlite"


_LOG_LEVELS = ("debug", "info", "warning", "error")
# Settings that take one of a few words. YAML reads `off`, `no`, `true` ... as booleans, so
# `near_name_feed: off` or `http2: true` arrive as such: the error names the words instead.
_WORDS: dict[str, tuple[str, ...]] = {
    "s3_addressing": ("auto", "path", "virtual"),
    "log_format": ("json", "console"),
    "http2": ("auto", "always", "never"),
    "near_name_feed": ("public", "clients", "off"),
    "log_level": _LOG_LEVELS,
}


def _expected(words: tuple[str, ...]) -> str:
    return "expected " + ", ".join(words[:-1]) + " or " + words[-1]


_NESTED = ("tuf", "alerts")  # mappings: settings file only, no environment variable
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_REPLICA_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")


def load_settings(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build Settings from file, environment and explicit overrides, or raise ConfigError."""
    env = os.environ if env is None else env
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    origins: dict[str, tuple[str, int | None]] = {}  # where each value came from, for errors
    known = {f.name: f for f in fields(Settings)}

    if path is not None:
        data = load_located(path)
        if not isinstance(data, dict):
            raise ConfigError([Problem(str(path), 1, "(top level)", "expected a mapping")])
        for key, located in data.items():
            name = key.replace("-", "_")
            if name not in known:
                problems.append(Problem(str(path), located.line, key, "unknown setting"))
                continue
            _set(values, problems, name, _plain(located.value), str(path), located.line)
            origins[name] = (str(path), located.line)

    for var, raw in env.items():
        if not var.startswith(ENV_PREFIX):
            continue
        name = var[len(ENV_PREFIX) :].lower()
        if var in NOT_SETTINGS:
            continue
        if name not in known or name in _NESTED:
            problems.append(Problem("environment", None, var, "unknown setting"))
            continue
        _set(values, problems, name, raw, "environment", None, from_env=True)
        origins[name] = ("environment", None)

    for name, value in (overrides or {}).items():
        if value is not None:
            _set(values, problems, name, value, "command line", None)
            origins[name] = ("command line", None)

    # Range checks run on what parsed, so one run reports every problem (a bad type did not
    # hide an out-of-range value elsewhere until it was fixed).
    settings = Settings(**values)
    problems.extend(_check(settings, origins))
    if problems:
        raise ConfigError(problems)
    return settings


def _plain(value: Any) -> Any:
    """Strip the line-number wrappers from a nested YAML value."""
    if isinstance(value, dict):
        return {k: _plain(v.value) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(item.value) if isinstance(item, Located) else item for item in value]
    return value


def _set(
    values: dict[str, Any],
    problems: list[Problem],
    name: str,
    value: Any,
    file: str,
    line: int | None,
    *,
    from_env: bool = False,
) -> None:
    default = Settings.__dataclass_fields__[name].default
    kind = Settings.__dataclass_fields__[name].type
    try:
        values[name] = _coerce(name, value, kind, default, from_env)
    except ValueError as e:
        field_name = (ENV_PREFIX + name.upper()) if from_env else name
        secret = not Settings.__dataclass_fields__[name].repr  # credentials: never echoed
        message = f"expected text, got a {type(value).__name__}" if secret else str(e)
        problems.append(Problem(file, line, field_name, message))


def _coerce(name: str, value: Any, kind: Any, default: Any, from_env: bool) -> Any:
    kind = str(kind)
    if name in _NESTED:
        if not isinstance(value, dict):
            raise ValueError("expected a mapping")
        return value
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if from_env and isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if from_env and isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true or false, got {value!r}")
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"expected a whole number, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"expected a whole number, got {value!r}") from None
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"expected a number of seconds, got {value!r}")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
        if not math.isfinite(number):  # `.nan`, `.inf`: no time limit is meant by them
            raise ValueError(f"expected a finite number, got {value!r}")
        return number
    if "Path" in kind:
        if value is None and "None" in kind:
            return None
        if isinstance(value, Path):
            return value
        if not isinstance(value, str) or not value:
            raise ValueError(f"expected a path, got {value!r}")
        return Path(value)
    if value is None and "None" in kind:
        return None
    if not isinstance(value, str):
        if name in _WORDS:  # YAML made a boolean of a word: say which words
            raise ValueError(f"{_expected(_WORDS[name])} (quoted if need be), got {value!r}")
        raise ValueError(f"expected text, got {value!r}")
    return value


def _check(s: Settings, origins: Mapping[str, tuple[str, int | None]]) -> list[Problem]:
    """Range and format checks that types alone do not catch."""
    problems = []

    def bad(field_name: str, message: str) -> None:
        file, line = origins.get(field_name, ("defaults", None))
        named = ENV_PREFIX + field_name.upper() if file == "environment" else field_name
        problems.append(Problem(file, line, named, message))

    if s.workers > MAX_WORKERS:
        bad("workers", f"must be at most {MAX_WORKERS} (each is a process with its own caches)")
    if not s.listen_host.strip():
        # An empty host listens on every interface: say 0.0.0.0 (or ::) if that is meant.
        bad("listen_host", "must not be empty (0.0.0.0 listens on every interface)")
    if not 1 <= s.listen_port <= 65535:
        # Port 0 would listen on a port nobody is told: config.json would send cargo to :0.
        bad("listen_port", "must be between 1 and 65535")
    for name in ("upstream_index", "public_url"):
        url = getattr(s, name)
        if url is None:
            continue
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            bad(name, f"expected an http(s) URL, got {url!r}")
    for name in (
        "index_ttl",
        "negative_ttl",
        "upstream_connect_timeout",
        "upstream_read_timeout",
        "keepalive_timeout",
    ):
        if getattr(s, name) < 0:
            bad(name, "must not be negative")
    for name in (
        "max_crate_bytes",
        "max_index_bytes",
        "upstream_concurrency",
        "workers",
        "listen_backlog",
        "index_memory_bytes",
    ):
        if getattr(s, name) < 1:
            bad(name, "must be at least 1")
    for name in (
        "upstream_retries",
        "hot_cache_bytes",
        "hot_cache_max_file",
        "prepared_bytes",
        "look_ahead_versions",
    ):
        if getattr(s, name) < 0:
            bad(name, "must not be negative")
    if s.admin_tokens is not None and s.admin_tokens == s.auth_tokens:
        # One file for both would let a cargo token open the console, or the other way round.
        bad("admin_tokens", "must not be the client token file (auth_tokens)")
    if s.replica_id is not None and not _REPLICA_ID.fullmatch(s.replica_id):
        # It becomes a directory name: no separators, no dot-dot (path traversal).
        bad("replica_id", "expected 1-64 letters, digits, '.', '_' or '-', not starting with '.'")
    if s.s3_endpoint is not None:
        parts = urlsplit(s.s3_endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            bad("s3_endpoint", f"expected an http(s) URL, got {s.s3_endpoint!r}")
    if s.s3_part_bytes < 5 * 2**20:
        bad("s3_part_bytes", "must be at least 5 MiB (5242880): S3 refuses smaller parts")
    if s.s3_bucket is not None and not _BUCKET.fullmatch(s.s3_bucket):
        bad("s3_bucket", "expected an S3 bucket name: 3-63 of a-z, 0-9, '.', '-'")
    for name in ("s3_connect_timeout", "s3_read_timeout", "s3_stale_upload_seconds"):
        if getattr(s, name) < 0:
            bad(name, "must not be negative")
    if s.s3_retries < 0:
        bad("s3_retries", "must not be negative")
    if s.lock_sync_interval <= 0:
        bad("lock_sync_interval", "must be positive")
    for name, words in _WORDS.items():
        if getattr(s, name) not in words:
            bad(name, _expected(words))
    return problems


def replace(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, **changes)
