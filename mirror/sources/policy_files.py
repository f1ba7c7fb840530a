"""Loading a policy and the files it points at (corpus, advisories, capability lock).

The I/O half of the policy: `mirror.policy` stays pure, this module reads files and builds
the engine. The name index (the popularity corpus and the internal names, for the `risk`
rule) takes about a second to build at 20,000 names, so it is reused across reloads while its
inputs are unchanged.
"""

from __future__ import annotations

from pathlib import Path

from mirror.errors import ConfigError, Problem
from mirror.policy.advisories import AdvisoryDb
from mirror.policy.decision import Mode
from mirror.policy.engine import PolicyEngine
from mirror.policy.model import Policy, parse_policy
from mirror.policy.names import NameIndex
from mirror.sources.advisories import load_advisories
from mirror.sources.capability_lockfile import load_lock
from mirror.sources.corpus import load_corpus, load_corpus_entries

DEFAULT_CORPUS_NAME = "popular-crates.txt"  # looked up next to the policy file


def load_policy(path: Path) -> Policy:
    """Read and validate a policy file; raise ConfigError listing every problem found."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError([Problem(str(path), None, "", f"cannot read: {e.strerror}")]) from e
    return parse_policy(data, path)


class PolicyFiles:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.policy: Policy | None = None
        self._names_key: tuple[object, ...] | None = None
        self._names: NameIndex | None = None
        self._stamps: dict[Path, float] = {}

    def load(self) -> PolicyEngine:
        """Read everything; raises ConfigError (and changes nothing) if any of it is invalid."""
        policy = load_policy(self.path)
        names = self._name_index(policy)
        advisories = self._advisories(policy)
        self.policy = policy
        self._stamps = {p: _mtime(p) for p in self._watched(policy)}
        return PolicyEngine(policy, names, advisories)

    def validate(self) -> None:
        """Check every file the policy needs, without building the (large) name index: the
        `serve` parent process checks before forking workers that build their own."""
        policy = load_policy(self.path)
        rules = policy.rules
        corpus = self.corpus_path(policy)
        if rules.risk.mode is not Mode.OFF and corpus is not None:
            load_corpus(corpus)
        self._advisories(policy)
        if rules.capabilities.mode is not Mode.OFF:
            load_lock(self.lock_path(policy))

    def changed(self) -> bool:
        return any(_mtime(p) != stamp for p, stamp in self._stamps.items())

    def corpus_path(self, policy: Policy) -> Path | None:
        """The popularity corpus (None: the policy runs the risk rule without one)."""
        rule = policy.rules.risk
        if not rule.use_corpus:
            return None
        return rule.corpus or self.path.parent / DEFAULT_CORPUS_NAME

    def lock_path(self, policy: Policy) -> Path:
        return policy.rules.capabilities.lock or self.path.parent / "capabilities.lock.yaml"

    def _advisories(self, policy: Policy) -> AdvisoryDb | None:
        rule = policy.rules.advisories
        if rule.mode is Mode.OFF or rule.db is None:
            return None
        try:
            return load_advisories(rule.db)
        except ConfigError as e:
            if (rule.db / "crates").is_dir():
                raise  # a malformed advisory: the problems name the file and line
            # Missing or not a checkout: say how to get one, not only what is wrong.
            raise ConfigError(
                [
                    Problem(
                        str(self.path),
                        None,
                        "rules.advisories.db",
                        f"{e.problems[0].message}: {rule.db}. Fetch the advisory database "
                        f"with `crate-mirror advisories update --policy {self.path}` (clones "
                        f"{rule.source}), or set rules.advisories.mode: off",
                    )
                ]
            ) from e

    def _name_index(self, policy: Policy) -> NameIndex | None:
        rule = policy.rules.risk
        if rule.mode is Mode.OFF:
            return None
        corpus = self.corpus_path(policy)
        key = (corpus, _mtime(corpus) if corpus else None, rule.protect_top, rule.protect)
        if key != self._names_key:
            entries = load_corpus_entries(corpus) if corpus is not None else None
            self._names = NameIndex(
                [e.name for e in entries] if entries is not None else None,
                protect_top=rule.protect_top,
                internal=rule.protect,
                downloads={e.name: e.downloads for e in entries or () if e.downloads is not None},
            )
            self._names_key = key
        return self._names

    def _watched(self, policy: Policy) -> list[Path]:
        paths = [self.path]
        corpus = self.corpus_path(policy)
        if policy.rules.risk.mode is not Mode.OFF and corpus is not None:
            paths.append(corpus)
        if policy.rules.capabilities.mode is not Mode.OFF:
            paths.append(self.lock_path(policy))
        advisories = policy.rules.advisories
        if advisories.mode is not Mode.OFF and advisories.db is not None:
            paths.append(advisories.db)  # `advisories update` puts a new directory there
        return paths


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return -1.0
