"""The `tuf:` settings section, typed, with units, validated with located problems.

```yaml
tuf:
  upstream:                      # verify a TUF-signed upstream (RFC 3724)
    # an offline (air-gapped) mirror may give trusted_root alone: it verifies bundles only
    metadata_url: https://index.example/tuf/
    trusted_root: /etc/crate-mirror/upstream-root.json   # pinned bootstrap root
    metadata_dir: ./mirror-data/trust/upstream           # ngclient's local metadata cache
    refresh_interval: 5m
    max_metadata_bytes: 5000000
  repository:                    # sign what this mirror serves, under /tuf/
    dir: ./mirror-data/trust/repository
    bins: 256
    expiry: {timestamp: 1d, snapshot: 7d, targets: 30d, root: 365d}
    signers: {timestamp: "file2:/path/ts.pem"}           # default: <dir>/keys/<role>.pem
```
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mirror.errors import ConfigError, Problem

ONLINE_ROLES = ("timestamp", "snapshot", "bins")
# Online roles that root names: root also trusts a standby key for each, so the server can
# switch keys without the root holders (bins needs none: targets delegates it).
STANDBY_ROLES = ("timestamp", "snapshot")
_DURATION_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*\Z")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class TufUpstreamSettings:
    metadata_url: str
    trusted_root: Path  # the pinned root.json: the only key material trusted up front
    metadata_dir: Path
    refresh_interval: float = 300.0  # seconds between scheduled metadata refreshes
    # bytes; cap for root/snapshot/targets downloads (endless-data attack). timestamp is
    # capped separately because it is tiny by design.
    max_metadata_bytes: int = 5_000_000
    timestamp_max_bytes: int = 16_384  # bytes
    min_forced_refresh_gap: float = 2.0  # seconds between two on-demand refreshes


@dataclass(frozen=True)
class Expiry:
    timestamp: timedelta = timedelta(days=1)
    snapshot: timedelta = timedelta(days=7)
    targets: timedelta = timedelta(days=30)  # the hashed bins (online); offline targets: root
    root: timedelta = timedelta(days=365)

    def for_role(self, role: str) -> timedelta:
        if role in ("timestamp", "snapshot", "root"):
            return getattr(self, role)  # type: ignore[no-any-return]
        return self.targets


@dataclass(frozen=True)
class TufRepositorySettings:
    dir: Path
    bins: int = 256  # number of hashed bins (a power of two, TAP 15 succinct roles)
    expiry: Expiry = field(default_factory=Expiry)
    # securesystemslib private-key URIs of the online roles; a KMS/HSM URI can replace the
    # default "file2:<dir>/keys/<role>.pem".
    signers: Mapping[str, str] = field(default_factory=dict)

    @property
    def metadata_dir(self) -> Path:
        return self.dir / "metadata"

    @property
    def keys_dir(self) -> Path:
        return self.dir / "keys"

    def signer_uri(self, role: str) -> str:
        return self.signers.get(role) or f"file2:{self.keys_dir / f'{role}.pem'}"

    def standby_path(self, role: str) -> Path:
        """The second key root trusts for an online top-level role (see `tuf rotate --standby`)."""
        return self.keys_dir / f"{role}.standby.pem"


@dataclass(frozen=True)
class TufSettings:
    upstream: TufUpstreamSettings | None = None  # set when upstream's metadata can be fetched
    repository: TufRepositorySettings | None = None
    # tuf.upstream.trusted_root: the root bundles are verified against. An air-gapped mirror
    # gives it alone (it has no metadata_url to fetch from, and imports bundles only).
    pinned_root: Path | None = None

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], file: str, *, offline: bool = False
    ) -> TufSettings:
        """Build from the raw `tuf:` mapping, or raise ConfigError listing every problem.

        `offline`: the mirror never contacts upstream, so `tuf.upstream` may name the
        trusted root alone. An online mirror must be able to verify what it fetches.
        """
        problems: list[Problem] = []

        def bad(name: str, message: str) -> None:
            problems.append(Problem(file, None, f"tuf.{name}", message))

        if not isinstance(data, Mapping):
            raise ConfigError([Problem(file, None, "tuf", "expected a mapping")])
        _unknown(data, {"upstream", "repository"}, "", bad)
        upstream, pinned = None, None
        if data.get("upstream") is not None:
            upstream, pinned = _upstream(data["upstream"], bad, offline)
        repo = _repository(data["repository"], bad) if data.get("repository") is not None else None
        if problems:
            raise ConfigError(problems)
        return cls(upstream=upstream, repository=repo, pinned_root=pinned)


def parse_duration(value: Any) -> float:
    """Seconds from `90`, `45s`, `5m`, `12h`, `1d`, `2w`; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30s, 5m, 1d")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION_RE.match(str(value))
        if not m:
            raise ValueError(f"{value!r} is not a duration like 30s, 5m, 1d")
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    if seconds <= 0:
        raise ValueError("must be positive")
    return seconds


def _unknown(data: Mapping[str, Any], known: set[str], prefix: str, bad: Any) -> None:
    for key in data:
        if key not in known:
            bad(f"{prefix}{key}", f"unknown setting (expected one of {', '.join(sorted(known))})")


def _upstream(data: Any, bad: Any, offline: bool) -> tuple[TufUpstreamSettings | None, Path | None]:
    if not isinstance(data, Mapping):
        bad("upstream", "expected a mapping")
        return None, None
    known = {
        "metadata_url",
        "trusted_root",
        "metadata_dir",
        "refresh_interval",
        "max_metadata_bytes",
        "timestamp_max_bytes",
    }
    _unknown(data, known, "upstream.", bad)
    root = data.get("trusted_root")
    if not isinstance(root, str) or not root:
        bad("upstream.trusted_root", "required: path of the pinned root.json")
    elif not Path(root).is_file():
        bad("upstream.trusted_root", f"no such file: {root}")
    pinned = Path(str(root))
    url, mdir = data.get("metadata_url"), data.get("metadata_dir")
    if offline and url is None and mdir is None:
        return None, pinned  # air-gapped: bundles are verified against the pinned root alone
    only_offline = " (only an offline mirror may give trusted_root alone)"
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        bad(
            "upstream.metadata_url",
            "required: the http(s) URL of the upstream's TUF metadata" + only_offline
            if url is None
            else f"expected the http(s) URL of the upstream's TUF metadata, got {url!r}",
        )
        url = ""
    if not isinstance(mdir, str) or not mdir:
        bad(
            "upstream.metadata_dir",
            "required: a writable directory for verified metadata"
            + (only_offline if mdir is None else ""),
        )
    interval = 300.0
    if "refresh_interval" in data:
        try:
            interval = parse_duration(data["refresh_interval"])
        except ValueError as e:
            bad("upstream.refresh_interval", str(e))
    sizes = {}
    for name, default in (("max_metadata_bytes", 5_000_000), ("timestamp_max_bytes", 16_384)):
        value = data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1024:
            bad(f"upstream.{name}", "expected a number of bytes >= 1024")
            value = default
        sizes[name] = value
    settings = TufUpstreamSettings(
        metadata_url=url,
        trusted_root=pinned,
        metadata_dir=Path(str(mdir)),
        refresh_interval=interval,
        max_metadata_bytes=sizes["max_metadata_bytes"],
        timestamp_max_bytes=sizes["timestamp_max_bytes"],
    )
    return settings, pinned


def _repository(data: Any, bad: Any) -> TufRepositorySettings | None:
    if not isinstance(data, Mapping):
        bad("repository", "expected a mapping")
        return None
    _unknown(data, {"dir", "bins", "expiry", "signers"}, "repository.", bad)
    rdir = data.get("dir")
    if not isinstance(rdir, str) or not rdir:
        bad("repository.dir", "required: the directory created by `crate-mirror tuf init`")
        rdir = "."
    bins = data.get("bins", 256)
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2 or bins & (bins - 1):
        bad("repository.bins", "expected a power of two >= 2 (e.g. 256)")
        bins = 256
    expiry = Expiry()
    raw_expiry = data.get("expiry", {})
    if not isinstance(raw_expiry, Mapping):
        bad("repository.expiry", "expected a mapping of role to duration")
    else:
        roles = {"timestamp", "snapshot", "targets", "root"}
        _unknown(raw_expiry, roles, "repository.expiry.", bad)
        values = {}
        for role, raw in raw_expiry.items():
            try:
                values[role] = timedelta(seconds=parse_duration(raw))
            except ValueError as e:
                bad(f"repository.expiry.{role}", str(e))
        expiry = Expiry(**{k: v for k, v in values.items() if k in Expiry.__dataclass_fields__})
    signers = data.get("signers", {})
    if not isinstance(signers, Mapping) or not all(
        isinstance(v, str) and ":" in v for v in signers.values()
    ):
        bad("repository.signers", "expected a mapping of role to signer URI (file2:..., ...)")
        signers = {}
    else:
        _unknown(signers, set(ONLINE_ROLES), "repository.signers.", bad)
    return TufRepositorySettings(dir=Path(rdir), bins=bins, expiry=expiry, signers=dict(signers))
