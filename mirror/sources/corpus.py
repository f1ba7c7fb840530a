"""The protected-name corpus: loading the shipped list and refreshing it from a registry API.

The corpus file (`policies/popular-crates.txt`) is one crate name per line, most downloaded
first, after a `#` comment header saying where and when it came from. The policy decides how
many of the top names to protect (`load_corpus(path, top=N)`).

`update_corpus` pages through a crates.io-compatible API (`/api/v1/crates?sort=downloads`)
with the mirror's one upstream client, politely: its identifying User-Agent and at most one
request per second, as crates.io's crawler policy asks (so no retries either). The new list
is validated completely before it replaces the old file, atomically, so a failed or hostile
refresh leaves the previous corpus in place.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mirror.errors import (
    BadRequest,
    ConfigError,
    Problem,
    StorageError,
    UpstreamError,
)
from mirror.files import write_atomic
from mirror.index import canonical_name, validate_name
from mirror.upstream.client import ClientLimits, Upstream, UpstreamClient

__all__ = [
    "DEFAULT_CORPUS",
    "CorpusEntry",
    "CorpusUpdateSettings",
    "fetch_popular",
    "load_corpus",
    "load_corpus_entries",
    "update_corpus",
    "write_corpus",
]

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "policies" / "popular-crates.txt"


@dataclass(frozen=True)
class CorpusUpdateSettings:
    api: str = "https://crates.io"  # base URL of a crates.io-compatible API
    count: int = 20_000  # names to fetch
    per_page: int = 100  # crates.io's maximum page size
    min_interval: float = 1.0  # seconds between request starts (crates.io crawler policy)
    timeout: float = 30.0  # seconds per request
    max_page_bytes: int = 4 * 1024 * 1024  # bytes; a page of 100 crates is ~100 KiB

    def limits(self) -> ClientLimits:
        # No retries: a retry soon after a failure would break the one-request-per-second rule.
        return ClientLimits(
            connect_timeout=self.timeout, read_timeout=self.timeout, concurrency=1, retries=0
        )


@dataclass(frozen=True)
class CorpusEntry:
    name: str
    downloads: int | None = None  # all-time downloads, where the source said


def load_corpus(path: Path, top: int | None = None) -> list[str]:
    """The first `top` names of a corpus file (all if None), in rank order."""
    return [e.name for e in load_corpus_entries(path, top)]


def load_corpus_entries(path: Path, top: int | None = None) -> list[CorpusEntry]:
    """The first `top` entries of a corpus file (all if None), in rank order: a name per
    line, optionally followed by its download count.

    Raises ConfigError (located) for an unreadable file or a line that is not a crate name
    (and count): a corrupted corpus must stop start-up, not silently protect nothing.
    """
    if top is not None and top < 0:
        raise ValueError("top must be >= 0")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([Problem(str(path), None, "corpus", f"cannot read: {e}")]) from e
    entries: list[CorpusEntry] = []
    problems: list[Problem] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if top is not None and len(entries) >= top:
            break
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            name = validate_name(fields[0])
        except BadRequest as e:
            problems.append(Problem(str(path), lineno, "name", str(e)))
            continue
        if len(fields) > 2 or (len(fields) == 2 and not fields[1].isdigit()):
            problems.append(
                Problem(str(path), lineno, "downloads", "expected `name` or `name downloads`")
            )
            continue
        entries.append(CorpusEntry(name, int(fields[1]) if len(fields) == 2 else None))
    if problems:
        raise ConfigError(problems)
    return entries


def write_corpus(
    path: Path, entries: Sequence[CorpusEntry], *, source: str, when: datetime
) -> None:
    """Write a corpus file atomically (temporary file in the same directory, fsync, replace)."""
    header = (
        "# Popular crates.io crate names, most downloaded first (rank = position in this list).\n"
        f"# Source: {source}, fetched {when.strftime('%Y-%m-%d %H:%M UTC')} by crate-mirror.\n"
        "# Format: one crate per line, its name and, where known, its download count; lines\n"
        "# starting with '#' and blank lines are ignored.\n"
    )
    body = header + "".join(
        f"{e.name} {e.downloads}\n" if e.downloads is not None else f"{e.name}\n" for e in entries
    )
    try:
        write_atomic(path, body.encode())
    except OSError as e:
        raise StorageError(f"cannot write corpus {path.name}: {e.strerror}") from e


Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


async def fetch_popular(
    settings: CorpusUpdateSettings,
    *,
    client: Upstream | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
    on_page: Callable[[int], None] | None = None,
) -> list[CorpusEntry]:
    """The `settings.count` most downloaded crates, most downloaded first, with their download
    counts where the API gives them (crates.io does).

    Follows `meta.next_page` (crates.io's pagination link), or `page=N+1` when an API gives
    none. `on_page(n)` is called with the number of new names after each page (progress).
    """
    own = client is None
    if client is None:
        client = UpstreamClient(settings.api, settings.limits())
    names: list[CorpusEntry] = []
    seen: set[str] = set()
    base = settings.api.rstrip("/") + "/api/v1/crates"
    per_page = max(1, min(settings.per_page, settings.count))
    url = f"{base}?sort=downloads&per_page={per_page}&page=1"
    page = 1
    last_start: float | None = None
    try:
        while len(names) < settings.count:
            if last_start is not None:
                # Crawler etiquette: crates.io asks for at most one request per second.
                wait = last_start + settings.min_interval - clock()
                if wait > 0:
                    await sleep(wait)
            last_start = clock()
            body = await _get_json(client, url, settings)
            crates, next_page = _parse_page(body)
            added = 0
            for entry in crates:
                key = canonical_name(entry.name)
                if key not in seen and len(names) < settings.count:
                    seen.add(key)  # rankings shift while paging: keep a name's first place
                    names.append(entry)
                    added += 1
            if on_page is not None:
                on_page(added)
            if not crates or next_page == "":
                break
            page += 1
            if next_page is None:  # the API gave no link: count pages ourselves
                next_page = f"?sort=downloads&per_page={per_page}&page={page}"
            url = base + next_page
    finally:
        if own:
            await client.close()
    return names


async def _get_json(client: Upstream, url: str, settings: CorpusUpdateSettings) -> Any:
    headers = {"Accept": "application/json"}
    # The size limit is enforced while reading: a hostile API cannot make us buffer gigabytes.
    async with client.get(
        url, kind="api", max_bytes=settings.max_page_bytes, headers=headers
    ) as resp:
        if resp.status != 200:
            raise UpstreamError(f"registry API answered {resp.status} for {url}")
        raw = await resp.read()
    try:
        return json.loads(raw)
    except ValueError as e:
        raise UpstreamError("registry API returned invalid JSON") from e


def _parse_page(body: Any) -> tuple[list[CorpusEntry], str | None]:
    """Crates of one page and the next-page query ("" when there is none, None when the API
    does not say). Names are validated: the file is later read as policy, so a hostile API
    must not smuggle in comment lines, paths or non-names; a download count that is not a
    non-negative integer is left out, not trusted."""
    if not isinstance(body, dict) or not isinstance(body.get("crates"), list):
        raise UpstreamError("registry API page has no 'crates' list")
    names = []
    for item in body["crates"]:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            raise UpstreamError("registry API crate entry without a name")
        try:
            valid = validate_name(name)
        except BadRequest as e:
            raise UpstreamError(f"registry API returned an invalid crate name: {e}") from e
        downloads = item.get("downloads")
        ok = isinstance(downloads, int) and not isinstance(downloads, bool) and downloads >= 0
        names.append(CorpusEntry(valid, downloads if ok else None))
    meta = body.get("meta")
    if not isinstance(meta, dict) or "next_page" not in meta:
        return names, None
    next_page = meta["next_page"]
    if next_page is None:
        return names, ""
    if not isinstance(next_page, str) or not next_page.startswith("?"):
        raise UpstreamError("registry API next_page is not a query string")
    return names, next_page


async def update_corpus(
    out: Path,
    settings: CorpusUpdateSettings,
    *,
    client: Upstream | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
    on_page: Callable[[int], None] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[CorpusEntry]:
    """Fetch the top crates and replace `out` with them; on any failure `out` is unchanged."""
    names = await fetch_popular(settings, client=client, clock=clock, sleep=sleep, on_page=on_page)
    if not names:
        raise UpstreamError("registry API returned no crates; keeping the old corpus")
    write_corpus(out, names, source=f"{settings.api} /api/v1/crates?sort=downloads", when=now())
    return names
