"""The README stays short, no text is in the docs twice, every relative link resolves, and the
README's "Try it locally" commands work as written (issue 12)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from difflib import SequenceMatcher
from pathlib import Path

import pytest

from tests.mirror_process import free_port

# The repository root, however deep this file is moved under tests/.
ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
README = ROOT / "README.md"
DOCS = ROOT / "docs"

README_MAX_BYTES = 15_000  # issue 12: "the README is under 15 KB"
# A repeated paragraph this long is a copied section, not a shared phrase or a short command.
MIN_DUPLICATE_CHARS = 200
# Sections with one title whose bodies match this closely are one section kept twice (the old
# README had two "Capabilities" sections differing in one paragraph).
SAME_SECTION_RATIO = 0.9

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_INLINE_CODE = re.compile(r"(`+).*?\1")
_INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto: ...


def pages() -> list[Path]:
    """Every page the docs consist of: the README, docs/*.md and the benchmark harness README."""
    return [README, *sorted(DOCS.glob("*.md")), ROOT / "bench" / "README.md"]


def _lines(text: str) -> Iterator[tuple[int, str, bool]]:
    """(line number, line, inside a fenced code block) for every line."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            yield number, line, True
            fenced = not fenced
            continue
        yield number, line, fenced


def paragraphs(text: str) -> list[tuple[int, str]]:
    """(first line, whitespace-normalized text) of each paragraph; a fenced block is one."""
    found: list[tuple[int, str]] = []
    start, lines = 0, list[str]()
    for number, line, fenced in [*_lines(text), (0, "", False)]:  # a blank line ends the last
        if fenced or line.strip():
            start = start if lines else number
            lines.append(line)
        elif lines:
            found.append((start, " ".join(" ".join(lines).split())))
            lines = []
    return found


def sections(text: str) -> list[tuple[int, str, str]]:
    """(line, title, normalized body) of every `##` and `###` section; a body runs to the next
    heading of any level."""
    found: list[tuple[int, str, list[str]]] = []
    for number, line, fenced in _lines(text):
        heading = None if fenced else _HEADING.match(line)
        if heading:
            if len(heading.group(1)) in (2, 3):
                found.append((number, heading.group(2), []))
            else:
                found.append((number, "", []))  # ends the section before; never compared
        elif found:
            found[-1][2].append(line)
    return [(n, title, " ".join(" ".join(b).split())) for n, title, b in found if title]


def slug(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = title.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a page, with GitHub's -1, -2 ... suffixes for repeated titles."""
    seen: dict[str, int] = defaultdict(int)
    found: set[str] = set()
    for _, line, fenced in _lines(text):
        heading = None if fenced else _HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            found.add(base if seen[base] == 0 else f"{base}-{seen[base]}")
            seen[base] += 1
    return found


def links(text: str) -> list[tuple[int, str]]:
    """(line, target) of every Markdown link outside code, inline or reference style."""
    found: list[tuple[int, str]] = []
    for number, line, fenced in _lines(text):
        if fenced:
            continue
        prose = _INLINE_CODE.sub("", line)
        found += [(number, m.group(1)) for m in _INLINE_LINK.finditer(prose)]
        reference = _REFERENCE_LINK.match(prose)
        if reference:
            found.append((number, reference.group(1)))
    return found


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """Relative links of `page` whose file, or whose anchor in a Markdown file, does not exist
    (each as `PAGE:LINE: TARGET: PROBLEM`, PAGE relative to `root`)."""
    problems = []
    for number, target in links(page.read_text()):
        if _EXTERNAL.match(target):
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        where = f"{page.relative_to(root)}:{number}: {target}"
        if not dest.exists():
            problems.append(f"{where}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
            problems.append(f"{where}: no heading with this anchor")
    return problems


def duplicated_paragraphs(texts: dict[str, str]) -> list[str]:
    """Paragraphs of at least MIN_DUPLICATE_CHARS that appear more than once, anywhere."""
    where: dict[str, list[str]] = defaultdict(list)
    for name, text in texts.items():
        for number, paragraph in paragraphs(text):
            if len(paragraph) >= MIN_DUPLICATE_CHARS:
                where[paragraph].append(f"{name}:{number}")
    return [f"{' and '.join(w)}: {p[:80]}..." for p, w in where.items() if len(w) > 1]


def duplicated_sections(texts: dict[str, str]) -> list[str]:
    """Pairs of sections with the same title and near-identical bodies, anywhere."""
    by_title: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for name, text in texts.items():
        for number, title, body in sections(text):
            by_title[title.lower()].append((f"{name}:{number}", body))
    problems = []
    for title, found in by_title.items():
        for i, (where_a, body_a) in enumerate(found):
            for where_b, body_b in found[i + 1 :]:
                ratio = SequenceMatcher(None, body_a, body_b, autojunk=False).ratio()
                if ratio >= SAME_SECTION_RATIO:
                    problems.append(f"{where_a} and {where_b}: '{title}' ({ratio:.0%} alike)")
    return problems


def _page_texts() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text() for p in pages()}


# -- the docs as they are ------------------------------------------------------------------


def test_readme_is_under_15_kb() -> None:
    """The README is an entry point; deep sections belong in docs/."""
    size = len(README.read_bytes())
    assert size < README_MAX_BYTES, f"README.md is {size} bytes; move detail into docs/"


def test_no_long_paragraph_appears_twice() -> None:
    """No paragraph of 200 characters or more is in the README and docs/ twice."""
    assert duplicated_paragraphs(_page_texts()) == []


def test_no_section_appears_twice() -> None:
    """No `##`/`###` section is kept twice with a near-identical body."""
    assert duplicated_sections(_page_texts()) == []


def test_every_relative_link_resolves() -> None:
    """Every relative link in the README and docs/ names an existing file (and heading)."""
    found = [target for page in pages() for _, target in links(page.read_text())]
    assert len(found) >= 10, "the link scanner found almost no links: it is broken"
    assert [problem for page in pages() for problem in broken_links(page)] == []


_TEST_REF = re.compile(r"\btests/[\w/]+\.py(?:::\w+)?")


def missing_test_references(text: str, root: Path = ROOT) -> list[str]:
    """Test files (and `file::test` names) a page cites that do not exist."""
    missing = []
    for ref in sorted(set(_TEST_REF.findall(text))):
        path, _, name = ref.partition("::")
        source = root / path
        if not source.is_file() or (name and f"def {name}(" not in source.read_text()):
            missing.append(ref)
    return missing


def test_every_cited_test_exists(tmp_path: Path) -> None:
    """Pages cite tests as evidence (`tests/scenarios/test_soak.py::test_x`): each must exist,
    so a moved or renamed test cannot leave a claim pointing at nothing."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text("def test_b(): ...\n")
    page = "`tests/test_a.py::test_b` `tests/test_a.py::test_c` `tests/test_gone.py`"
    assert missing_test_references(page, tmp_path) == [
        "tests/test_a.py::test_c",
        "tests/test_gone.py",
    ]
    cited = {p.name: missing_test_references(p.read_text()) for p in pages()}
    assert {name: refs for name, refs in cited.items() if refs} == {}


def test_readme_maps_every_docs_page() -> None:
    """The README's map of docs/ links every page there, so none is orphaned."""
    linked = {
        (ROOT / target.partition("#")[0]).resolve() for _, target in links(README.read_text())
    }
    assert [p.name for p in DOCS.glob("*.md") if p.resolve() not in linked] == []


# -- the checks catch what they are for -----------------------------------------------------

_LONG = (
    "Every file is written in tmp/, fsynced, and os.replace'd into place, so kill -9 at any "
    "moment leaves the old entry or the complete new one. Temp files of dead processes are "
    "removed at start-up after an hour."
)


def test_duplicate_check_finds_a_copied_paragraph_despite_rewrapping() -> None:
    """A long paragraph copied to another page, wrapped differently, is reported; short ones
    and fenced blocks of one command are not."""
    first = f"# A\n\n{_LONG}\n\nshort line\n"
    second = "# B\n\nshort line\n\n" + _LONG.replace(" so ", "\nso ") + "\n"
    problems = duplicated_paragraphs({"a.md": first, "b.md": second})
    assert len(problems) == 1 and problems[0].startswith("a.md:3 and b.md:5")
    assert duplicated_paragraphs({"a.md": first, "b.md": "short line\n"}) == []


def test_section_check_finds_a_near_copy_with_the_same_title() -> None:
    """Two `###` sections with one title and one word changed are one section kept twice; the
    same title over different text is fine."""
    one = f"## Speed\n\n{_LONG}\n\n## Next\n\nother\n"
    near_copy = "### Speed\n\n" + _LONG.replace("an hour", "two hours") + "\n"
    different = "### Speed\n\nThe scanner reads 55 MB/s on two cores.\n"
    assert len(duplicated_sections({"a.md": one, "b.md": near_copy})) == 1
    assert duplicated_sections({"a.md": one, "b.md": different}) == []


def test_link_check_finds_missing_files_and_anchors(tmp_path: Path) -> None:
    """Missing files and headings are reported; links in code, external links and links to
    existing headings (repeated titles get -1) are not."""
    (tmp_path / "other.md").write_text("# Other\n\n## Client tokens (`auth-required`)\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Speed\n\n## Speed\n\n"
        "[ok](other.md#client-tokens-auth-required) [ok](#speed-1) [ok](https://x.invalid/y)\n"
        "[gone](missing.md) [bad anchor](other.md#nope)\n"
        "`[in code](missing.md)`\n\n```\n[in a fence](missing.md)\n```\n"
        "[ref]: also-missing.md\n"
    )
    problems = [p.split(": ", 1)[1] for p in broken_links(page, tmp_path)]
    assert problems == [
        "missing.md: no such file",
        "other.md#nope: no heading with this anchor",
        "also-missing.md: no such file",
    ]


# -- "Try it locally" works as written --------------------------------------------------------

_TRY_DIR = "/tmp/try-mirror"  # the README's scratch directory; the test uses its own
_CARGO_ENV_DROPPED = ("CARGO_REGISTRIES_", "CARGO_REGISTRY_", "CARGO_SOURCE_", "CARGO_NET_")


def try_it_commands() -> list[str]:
    """The commands of the README's "Try it locally" block (a line ending in `&&` goes on)."""
    text = README.read_text()
    section = text.split("\n## Try it locally\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    commands: list[str] = []
    continued = False
    for line in block.splitlines():
        if continued:
            commands[-1] += " " + line.strip()
        else:
            commands.append(line.strip())
        continued = line.rstrip().endswith("&&")
    return commands


def _wait_for_line(proc: subprocess.Popen[str], timeout: float) -> str:
    got: list[str] = []
    stdout = proc.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: got.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert got and got[0].strip(), f"no output within {timeout:.0f}s (exit {proc.poll()})"
    return got[0].strip()


def _wait_for_health(url: str, proc: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the mirror exited {proc.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout:.0f}s")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)


@pytest.mark.e2e
def test_try_it_locally_works_as_written(tmp_path: Path) -> None:
    """The three commands run as the README gives them (only the scratch directory, the two
    ports and the venv's bin directory are this test's own): cargo builds a project through the
    mirror, a malicious crate is refused with its evidence, and the audit log has the
    decisions."""
    commands = try_it_commands()
    assert len(commands) == 3, commands
    upstream_port, mirror_port = free_port(), free_port()
    bin_dir = str(Path(sys.executable).parent) + "/"

    def own(command: str) -> str:
        command = command.replace(_TRY_DIR, str(tmp_path)).replace(".venv/bin/", bin_dir)
        return command.replace("8081", str(upstream_port)).replace("8082", str(mirror_port))

    # The clone's policies/ go to a scratch copy, which must stay as it was: trust-on-first-use
    # writes its records under the cache directory, never into the checkout.
    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "policies", clone / "policies")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRATE_MIRROR_")}
    env["PYTHONPATH"] = str(ROOT)  # `python -m tests.fixtures.upstream` from the scratch clone
    cargo_env = {k: v for k, v in env.items() if not k.startswith(_CARGO_ENV_DROPPED)}
    cargo_env |= {"CARGO_HOME": str(tmp_path / "cargo-home"), "CARGO_TERM_COLOR": "never"}
    cargo_env.pop("CARGO_TARGET_DIR", None)

    def start(command: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            shlex.split(own(command)),
            cwd=clone,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    upstream = start(commands[0])
    mirror = None
    try:
        assert _wait_for_line(upstream, 120) == f"http://127.0.0.1:{upstream_port}"
        mirror = start(commands[1])
        line = _wait_for_line(mirror, 60)
        assert line.startswith(f"crate-mirror serving on http://127.0.0.1:{mirror_port}/index/")
        _wait_for_health(f"http://127.0.0.1:{mirror_port}/healthz", mirror, 60)

        built = subprocess.run(
            ["bash", "-c", own(commands[2])],
            cwd=tmp_path,
            env=cargo_env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert built.returncode == 0, built.stderr[-3000:]
        assert built.stdout.strip() == "Hello, world!"
        for name in ("serde_json", "serde", "itoa", "ryu"):
            assert f"Compiling {name} v" in built.stderr

        squat = subprocess.run(
            ["cargo", "add", "tracing-check"],
            cwd=tmp_path / "demo",
            env=cargo_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert squat.returncode != 0
        assert "`tracing-check` looks malicious" in squat.stderr
        assert "library code reads secrets and can send them out" in squat.stderr
        assert "approve it: crate-mirror approve tracing-check@0.1.0 --reason" in squat.stderr

        audit = subprocess.run(
            [bin_dir + "crate-mirror", "audit", "query", "--dir", str(tmp_path / "cache/audit")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert audit.returncode == 0, audit.stderr
        assert re.search(r"block\s+risk\s+tracing-check", audit.stdout), audit.stdout
        assert re.search(r"allow\s+default\s+ryu@", audit.stdout), audit.stdout
        lock = (clone / "policies" / "capabilities.lock.yaml").read_text()
        assert lock == (ROOT / "policies" / "capabilities.lock.yaml").read_text()
        # Recorded within seconds of the first download (the answer does not wait for it).
        tofu = tmp_path / "cache" / "state" / "capabilities.tofu.yaml"
        deadline = time.monotonic() + 60
        while not (tofu.exists() and "trust-on-first-use" in tofu.read_text()):
            assert time.monotonic() < deadline, "no trust-on-first-use record after 60 s"
            time.sleep(0.2)
    finally:
        for proc in (mirror, upstream):
            if proc is not None:
                _stop(proc)
