"""Loading a policy and the files it points at (corpus, advisories, capability lock).

The I/O half of the policy: `mirror.policy` stays pure, this module reads files and builds
the engine. The typosquat index is expensive to build, so it is reused across reloads while
its inputs are unchanged.
"""

from __future__ import annotations

from pathlib import Path

from mirror.errors import ConfigError, Problem
from mirror.policy.advisories import AdvisoryDb
from mirror.policy.decision import Mode
from mirror.policy.engine import PolicyEngine
from mirror.policy.model import Policy, parse_policy
from mirror.policy.typosquat import TyposquatIndex
from mirror.sources.advisories import load_advisories
from mirror.sources.capability_lockfile import load_lock
from mirror.sources.corpus import load_corpus

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
        self._typosquat_key: tuple[object, ...] | None = None
        self._typosquat: TyposquatIndex | None = None
        self._stamps: dict[Path, float] = {}

    def load(self) -> PolicyEngine:
        """Read everything; raises ConfigError (and changes nothing) if any of it is invalid."""
        policy = load_policy(self.path)
        typosquat = self._typosquat_index(policy)
        advisories = self._advisories(policy)
        self.policy = policy
        self._stamps = {p: _mtime(p) for p in self._watched(policy)}
        return PolicyEngine(policy, typosquat, advisories)

    def validate(self) -> None:
        """Check every file the policy needs, without building the (large) typosquat index:
        the `serve` parent process checks before forking workers that build their own."""
        policy = load_policy(self.path)
        rules = policy.rules
        if rules.typosquat.mode is not Mode.OFF:
            load_corpus(self.corpus_path(policy), top=rules.typosquat.protect_top)
        self._advisories(policy)
        if rules.capabilities.mode is not Mode.OFF:
            load_lock(self.lock_path(policy))

    def changed(self) -> bool:
        return any(_mtime(p) != stamp for p, stamp in self._stamps.items())

    def corpus_path(self, policy: Policy) -> Path:
        return policy.rules.typosquat.corpus or self.path.parent / DEFAULT_CORPUS_NAME

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

    def _typosquat_index(self, policy: Policy) -> TyposquatIndex | None:
        rule = policy.rules.typosquat
        if rule.mode is Mode.OFF:
            return None
        corpus = self.corpus_path(policy)
        key = (corpus, _mtime(corpus), rule.protect_top, rule.protect)
        if key != self._typosquat_key:
            names = load_corpus(corpus, top=rule.protect_top)
            self._typosquat = TyposquatIndex(names, extra=rule.protect)
            self._typosquat_key = key
        return self._typosquat

    def _watched(self, policy: Policy) -> list[Path]:
        paths = [self.path]
        if policy.rules.typosquat.mode is not Mode.OFF:
            paths.append(self.corpus_path(policy))
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
