"""The protected-name corpus: loading the shipped file, and `corpus update` against a small
fake crates.io API started on 127.0.0.1 (pagination, rate limit, User-Agent, atomic write)."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from mirror import USER_AGENT
from mirror.cli import build_parser, main
from mirror.errors import ConfigError, StorageError, UpstreamError, UpstreamUnavailable
from mirror.sources.corpus import (
    DEFAULT_CORPUS,
    CorpusEntry,
    CorpusUpdateSettings,
    load_corpus,
    load_corpus_entries,
    update_corpus,
    write_corpus,
)

ServerFactory = Callable[..., Awaitable[TestServer]]
OLD_CORPUS = "# old corpus\nserde\ntokio\n"


class FakeClock:
    """Monotonic time that only moves when the code under test sleeps (or a request is
    served), so the rate limit is checked without waiting."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeCratesApi:
    """`/api/v1/crates?sort=downloads` over a fixed ranking, paginated like crates.io."""

    def __init__(self, names: list[str], clock: FakeClock, *, next_links: bool = True) -> None:
        self.names = names
        self.clock = clock
        self.next_links = next_links
        self.requests: list[tuple[float, str, dict[str, str]]] = []  # (time, UA, query)
        self.fail_on_page: int | None = None
        self.page_override: dict[int, Any] = {}

    async def handle(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.requests.append((self.clock(), request.headers.get("User-Agent", ""), query))
        self.clock.now += 0.25  # the request takes a while; the limiter must count from its start
        assert query["sort"] == "downloads"
        page, per_page = int(query["page"]), int(query["per_page"])
        if page == self.fail_on_page:
            return web.Response(status=500, text="upstream on fire")
        if page in self.page_override:
            return web.json_response(self.page_override[page])
        chunk = self.names[(page - 1) * per_page : page * per_page]
        first = (page - 1) * per_page
        body: dict[str, Any] = {
            "crates": [{"name": n, "downloads": 10_000 - first - i} for i, n in enumerate(chunk)]
        }
        if self.next_links:
            more = page * per_page < len(self.names)
            next_page = f"?page={page + 1}&per_page={per_page}&sort=downloads" if more else None
            body["meta"] = {"total": len(self.names), "next_page": next_page}
        return web.json_response(body)


NAMES = [f"crate-{i:03d}" for i in range(1, 251)]


@pytest.fixture
def clock() -> FakeClock:
    """A fake monotonic clock with a recording sleep."""
    return FakeClock()


@pytest.fixture
async def api(aiohttp_server: ServerFactory, clock: FakeClock) -> tuple[FakeCratesApi, str]:
    """A fake crates.io API with 250 crates on 127.0.0.1, and its base URL."""
    fake = FakeCratesApi(list(NAMES), clock)
    app = web.Application()
    app.router.add_get("/api/v1/crates", fake.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    return fake, str(server.make_url("")).rstrip("/")


@pytest.fixture
def old_corpus(tmp_path: Path) -> Path:
    """An existing corpus file that a failed update must leave alone."""
    path = tmp_path / "policies" / "popular-crates.txt"
    path.parent.mkdir()
    path.write_text(OLD_CORPUS)
    return path


async def _update(
    out: Path, url: str, clock: FakeClock, count: int, pages: list[int] | None = None
) -> list[str]:
    entries = await update_corpus(
        out,
        CorpusUpdateSettings(api=url, count=count),
        clock=clock,
        sleep=clock.sleep,
        on_page=pages.append if pages is not None else None,
        now=lambda: datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
    )
    return [e.name for e in entries]


async def test_update_pages_through_the_api(
    api: tuple[FakeCratesApi, str], clock: FakeClock, old_corpus: Path
) -> None:
    """250 names at 100 a page take three requests, in rank order, reported as progress."""
    fake, url = api
    pages: list[int] = []
    names = await _update(old_corpus, url, clock, 250, pages)
    assert names == NAMES
    assert [q["page"] for _, _, q in fake.requests] == ["1", "2", "3"]
    assert {q["per_page"] for _, _, q in fake.requests} == {"100"}
    assert pages == [100, 100, 50]
    assert load_corpus(old_corpus) == NAMES
    header = old_corpus.read_text().splitlines()[:3]
    assert all(line.startswith("#") for line in header)
    assert url in header[1] and "2026-11-25" in header[1]


async def test_update_stops_at_count(
    api: tuple[FakeCratesApi, str], clock: FakeClock, old_corpus: Path
) -> None:
    """Asking for 150 names fetches two pages and keeps exactly 150; 30 asks for one page of 30."""
    fake, url = api
    assert await _update(old_corpus, url, clock, 150) == NAMES[:150]
    assert len(fake.requests) == 2
    fake.requests.clear()
    assert await _update(old_corpus, url, clock, 30) == NAMES[:30]
    assert [q["per_page"] for _, _, q in fake.requests] == ["30"]


async def test_update_respects_one_request_per_second(
    api: tuple[FakeCratesApi, str], clock: FakeClock, old_corpus: Path
) -> None:
    """Requests start at least one second apart (crates.io crawler policy), sleeping only
    the remainder after a slow response."""
    fake, url = api
    await _update(old_corpus, url, clock, 250)
    starts = [t for t, _, _ in fake.requests]
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(starts))
    assert clock.sleeps == [pytest.approx(0.75), pytest.approx(0.75)]


async def test_update_identifies_itself(
    api: tuple[FakeCratesApi, str], clock: FakeClock, old_corpus: Path
) -> None:
    """Every request carries the mirror's User-Agent, as crates.io requires of crawlers."""
    fake, url = api
    await _update(old_corpus, url, clock, 250)
    assert {ua for _, ua, _ in fake.requests} == {USER_AGENT}


async def test_update_without_next_page_links(
    aiohttp_server: ServerFactory, clock: FakeClock, old_corpus: Path
) -> None:
    """An API that gives no `meta.next_page` is paged by number until a page comes back empty."""
    fake = FakeCratesApi(NAMES[:120], clock, next_links=False)
    app = web.Application()
    app.router.add_get("/api/v1/crates", fake.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    names = await _update(old_corpus, str(server.make_url("")), clock, 500)
    assert names == NAMES[:120]
    assert [q["page"] for _, _, q in fake.requests] == ["1", "2", "3"]


async def test_update_keeps_first_place_of_a_name_seen_twice(
    api: tuple[FakeCratesApi, str], clock: FakeClock, old_corpus: Path
) -> None:
    """Rankings shift while paging; a name seen again (in any spelling) keeps its first rank."""
    fake, url = api
    fake.page_override[2] = {
        "crates": [{"name": "Crate_001"}, {"name": "late-arrival"}],
        "meta": {"next_page": None},
    }
    assert await _update(old_corpus, url, clock, 250) == [*NAMES[:100], "late-arrival"]


async def test_failed_update_leaves_old_file(
    api: tuple[FakeCratesApi, str], clock: FakeClock, old_corpus: Path
) -> None:
    """A 500 on page two raises and the previous corpus stays, byte for byte."""
    fake, url = api
    fake.fail_on_page = 2
    with pytest.raises(UpstreamUnavailable):
        await _update(old_corpus, url, clock, 250)
    assert old_corpus.read_text() == OLD_CORPUS
    assert os.listdir(old_corpus.parent) == [old_corpus.name]


@pytest.mark.parametrize(
    "page",
    [
        {"crates": [{"name": "serde"}, {"name": "# injected comment"}]},
        {"crates": [{"name": "../../etc/passwd"}]},
        {"crates": [{"name": "ok\nevil"}]},
        {"crates": [{"downloads": 5}]},
        {"crates": "serde"},
        {"crates": [{"name": "serde"}], "meta": {"next_page": "https://elsewhere.example/"}},
        [],
    ],
)
async def test_hostile_api_answer_is_rejected(
    api: tuple[FakeCratesApi, str], clock: FakeClock, old_corpus: Path, page: Any
) -> None:
    """Non-names (comment lines, paths, newlines), malformed pages and off-site links are
    refused, so a hostile API cannot rewrite the policy corpus."""
    fake, url = api
    fake.page_override[1] = page
    with pytest.raises(UpstreamError):
        await _update(old_corpus, url, clock, 250)
    assert old_corpus.read_text() == OLD_CORPUS


async def test_empty_answer_keeps_old_corpus(
    api: tuple[FakeCratesApi, str], clock: FakeClock, old_corpus: Path
) -> None:
    """An API with no crates is an error, not an empty corpus that protects nothing."""
    fake, url = api
    fake.page_override[1] = {"crates": [], "meta": {"next_page": None}}
    with pytest.raises(UpstreamError):
        await _update(old_corpus, url, clock, 250)
    assert old_corpus.read_text() == OLD_CORPUS


async def test_unreachable_api(clock: FakeClock, old_corpus: Path, unused_tcp_port: int) -> None:
    """A refused connection is reported as the registry being unavailable."""
    with pytest.raises(UpstreamUnavailable):
        await _update(old_corpus, f"http://127.0.0.1:{unused_tcp_port}", clock, 10)
    assert old_corpus.read_text() == OLD_CORPUS


async def test_update_keeps_download_counts(
    api: tuple[FakeCratesApi, str], clock: FakeClock, old_corpus: Path
) -> None:
    """crates.io says how often each crate was downloaded: the corpus keeps it."""
    fake, url = api
    fake.page_override[1] = {
        "crates": [
            {"name": "serde", "downloads": 500},
            {"name": "tokio", "downloads": -1},  # not a count: left out, not trusted
            {"name": "rand", "downloads": "many"},
            {"name": "libc"},
        ],
        "meta": {"next_page": None},
    }
    await _update(old_corpus, url, clock, 10)
    entries = load_corpus_entries(old_corpus)
    assert [(e.name, e.downloads) for e in entries] == [
        ("serde", 500),
        ("tokio", None),
        ("rand", None),
        ("libc", None),
    ]
    assert "serde 500" in old_corpus.read_text()


def test_a_bad_download_count_is_located(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text("serde 10\ntokio lots\nrand 1 2\n")
    with pytest.raises(ConfigError) as info:
        load_corpus_entries(path)
    assert [(p.line, p.field) for p in info.value.problems] == [(2, "downloads"), (3, "downloads")]


async def test_cli_update(api: tuple[FakeCratesApi, str], old_corpus: Path) -> None:
    """`crate-mirror corpus update --api --count --out` writes the file and exits 0."""
    _, url = api
    argv = ["corpus", "update", "--api", url, "--count", "40", "--out", str(old_corpus)]
    assert await asyncio.to_thread(main, argv) == 0
    assert load_corpus(old_corpus) == NAMES[:40]


def test_cli_update_failure_exits_nonzero(
    old_corpus: Path, unused_tcp_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """A failed update exits 1, says the corpus is unchanged, and leaves it so."""
    argv = ["corpus", "update", "--api", f"http://127.0.0.1:{unused_tcp_port}"]
    assert main([*argv, "--count", "5", "--out", str(old_corpus)]) == 1
    assert "unchanged" in capsys.readouterr().err
    assert old_corpus.read_text() == OLD_CORPUS


def test_cli_help_and_check(capsys: pytest.CaptureFixture[str]) -> None:
    """`corpus update --help` documents its options; `corpus check` names the squatted crate."""
    with pytest.raises(SystemExit):
        build_parser().parse_args(["corpus", "update", "--help"])
    assert "--count" in capsys.readouterr().out
    assert main(["corpus", "check", "serde", "qwxzv"]) == 0
    assert main(["corpus", "check", "curl-impersonator"]) == 1  # `curl` with a word added
    assert main(["corpus", "check", "--top", "100", "serde_jsno"]) == 1
    assert "serde_json" in capsys.readouterr().out


def test_write_is_atomic(old_corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the final rename fails, the old file is intact and no temporary file is left."""

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(StorageError):
        write_corpus(
            old_corpus, [CorpusEntry("a"), CorpusEntry("b")], source="test", when=datetime.now(UTC)
        )
    assert old_corpus.read_text() == OLD_CORPUS
    assert os.listdir(old_corpus.parent) == [old_corpus.name]


def test_shipped_corpus() -> None:
    """The shipped list holds the 20,000 most downloaded crates, headed by its source and date."""
    names = load_corpus(DEFAULT_CORPUS)
    assert len(names) == 20_000
    assert names[:3] == ["syn", "proc-macro2", "quote"]
    head = DEFAULT_CORPUS.read_text().splitlines()[:2]
    assert head[0].startswith("#") and "2024-03-18" in head[1]


def test_load_top_n(tmp_path: Path) -> None:
    """The loader skips comments and blank lines and returns the first N names in order."""
    path = tmp_path / "c.txt"
    path.write_text("# header\n\nserde\n  tokio  \n# note\nrand\nlibc\n")
    assert load_corpus(path) == ["serde", "tokio", "rand", "libc"]
    assert load_corpus(path, top=2) == ["serde", "tokio"]
    assert load_corpus(path, top=0) == []
    assert load_corpus(path, top=99) == ["serde", "tokio", "rand", "libc"]


def test_load_rejects_corrupt_corpus(tmp_path: Path) -> None:
    """A line that is not a crate name stops start-up with its file and line number."""
    path = tmp_path / "c.txt"
    path.write_text("serde\nnot a name\n")
    with pytest.raises(ConfigError) as err:
        load_corpus(path)
    assert err.value.problems[0].line == 2
    with pytest.raises(ConfigError):
        load_corpus(tmp_path / "missing.txt")
