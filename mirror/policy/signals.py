"""The signals a malicious-crate decision adds up: one table, with default weights.

A signal is one piece of evidence and the points it adds (positive: suspicious; negative:
reassuring). The policy may override any weight by id (`rules.risk.weights`); `policy check`
rejects unknown ids. The ids are stable: they appear in audit events, the near-name feed,
403 bodies and `crate-mirror explain`.

The defaults are chosen so that no single weak signal stops a crate, a look-alike name alone
holds only a crate that is also new (quarantine, lifted by age), and a block needs evidence of
what the code does (or an internal name served from upstream). docs/detection.md explains
each, with the measurements behind the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["MISSING", "SIGNALS", "Kind", "SignalSpec", "default_weights"]


Kind = str  # "name" | "history" | "content" | "dependency" | "version" | "missing"


@dataclass(frozen=True)
class SignalSpec:
    id: str
    kind: Kind
    weight: float  # default points
    meaning: str  # one line for `policy check`/docs


_SPECS = (
    # -- the name ------------------------------------------------------------------------
    SignalSpec("typo", "name", 3.0, "a typo-like near-name of a popular crate"),
    SignalSpec("typo_internal", "name", 5.0, "a near-name of one of your internal crates"),
    SignalSpec("combo", "name", 0.5, "a popular crate's name with a word added/removed/replaced"),
    SignalSpec("internal_name", "name", 8.0, "one of your internal names, served by upstream"),
    SignalSpec("established", "name", -4.0, "the name itself is in the popularity corpus"),
    # -- the crate's history (its index file) ---------------------------------------------
    SignalSpec("new_crate", "history", 1.5, "first published less than `new` ago (adds to young)"),
    SignalSpec("young_crate", "history", 1.5, "first published less than `young` ago"),
    SignalSpec("few_versions", "history", 0.5, "two versions or fewer"),
    SignalSpec("old_crate", "history", -2.0, "first published more than `old` ago"),
    SignalSpec("predates_pubtime", "history", -1.0, "published before crates.io kept times"),
    SignalSpec("many_versions", "history", -1.0, "ten versions or more over half a year"),
    SignalSpec("mostly_yanked", "history", 0.5, "more than half of its versions yanked"),
    SignalSpec("first_seen", "history", 0.0, "first requested through this mirror today"),
    # -- what the version's code does (the capability scan) -------------------------------
    SignalSpec("build_net", "content", 4.0, "build script or proc-macro opens connections"),
    SignalSpec("build_process", "content", 0.5, "build script or proc-macro runs programs"),
    SignalSpec("build_url", "content", 1.5, "build script or proc-macro holds a URL"),
    SignalSpec("build_sensitive", "content", 3.0, "build-time code reads secrets or home files"),
    SignalSpec("build_writes_outside", "content", 2.0, "build script writes outside OUT_DIR"),
    SignalSpec("build_obfuscation", "content", 2.0, "build-time code hides strings"),
    SignalSpec("runtime_sensitive", "content", 2.0, "library code reads secrets or home files"),
    SignalSpec("runtime_url", "content", 0.25, "library code holds a URL"),
    SignalSpec("runtime_obfuscation", "content", 1.0, "library code hides strings"),
    SignalSpec("build_shell_command", "content", 2.0, "build-time code names a downloader/shell"),
    SignalSpec("runtime_shell_command", "content", 1.0, "library code names a downloader/shell"),
    SignalSpec("secret_search", "content", 2.0, "code that looks for private keys or tokens"),
    SignalSpec("embedded_binary", "content", 2.0, "include_bytes! of a binary"),
    SignalSpec("shipped_binary", "content", 1.0, "ships pre-built executable code"),
    SignalSpec("download_execute", "content", 2.0, "build-time code fetches and runs something"),
    SignalSpec("exfiltration", "content", 3.0, "reads secrets and has a way to send them"),
    SignalSpec("runtime_download_execute", "content", 3.5, "library code fetches and runs"),
    # -- dependencies the version adds ----------------------------------------------------
    SignalSpec("dependency_typo", "dependency", 3.0, "adds a dependency on a fresh look-alike"),
    SignalSpec("dependency_young", "dependency", 1.5, "adds a dependency on a young crate"),
    # -- the version itself ---------------------------------------------------------------
    SignalSpec(
        "new_version",
        "version",
        1.0,
        "an established crate's release newer than `new_version`",
    ),
)

SIGNALS: MappingProxyType[str, SignalSpec] = MappingProxyType({s.id: s for s in _SPECS})

# Evidence that could not be had, and the points its absence adds (policy: rules.risk.missing).
MISSING: MappingProxyType[str, tuple[float, str]] = MappingProxyType(
    {
        "scan": (0.5, "the version's content could not be scanned"),
        "dependency": (0.5, "a dependency's index file could not be had"),
        "corpus": (0.0, "no popularity corpus is loaded: names were not compared"),
        "index": (0.0, "upstream was unreachable: history from the cached index file"),
    }
)


def default_weights() -> dict[str, float]:
    return {s.id: s.weight for s in _SPECS}
