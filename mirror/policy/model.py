"""The policy file: YAML in, a typed frozen `Policy` out, or every problem located by line.

Parsing uses PyYAML's node graph (`yaml.compose`), not `safe_load`, because nodes keep
their line numbers and their raw text. The raw text matters: YAML 1.1 reads a plain `off`
as the boolean False, and we want `mode: off` to mean the mode, not a type error.

Pure: `parse_policy` takes the file's bytes (reading it is `mirror.sources.policy_files`);
everything it returns is plain data (defined in `mirror.policy.schema`, re-exported here)
for the pure rules in `mirror.policy.versions` and `mirror.policy.engine`.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import math
import re
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

import yaml

from mirror.errors import BadRequest, ConfigError, Problem
from mirror.index import validate_name
from mirror.policy.decision import Mode
from mirror.policy.schema import (
    RULE_NAMES,
    SCHEMA_VERSION,
    AdvisoriesRule,
    CapabilitiesRule,
    CrateSpec,
    DenyRule,
    FirstSeen,
    Informational,
    ListEntry,
    MinAgeRule,
    MissingPubtime,
    Policy,
    RiskRule,
    RiskThresholds,
    Rules,
    ScanBeforeServing,
    YankedRule,
    parse_duration,
)
from mirror.policy.semver import VersionReq
from mirror.policy.signals import MISSING, SIGNALS

__all__ = [
    "RULE_NAMES",
    "SCHEMA_VERSION",
    "AdvisoriesRule",
    "CapabilitiesRule",
    "CrateSpec",
    "DenyRule",
    "FirstSeen",
    "Informational",
    "ListEntry",
    "MinAgeRule",
    "MissingPubtime",
    "Policy",
    "RiskRule",
    "RiskThresholds",
    "Rules",
    "YankedRule",
    "parse_duration",
    "parse_policy",
]

_T = TypeVar("_T")
_R = TypeVar("_R", RiskRule, DenyRule, YankedRule, MinAgeRule, AdvisoriesRule, CapabilitiesRule)
_TAG = "tag:yaml.org,2002:"
# Keys of older policy versions, and what replaced them (named in the error).
_RENAMED = {"typosquat": "risk"}
# Git transports an advisory-db `source` may use (rules.advisories.source).
_GIT_URL = re.compile(r"(https?|ssh|git|file)://[^\s]+\Z")
_SCP_LIKE = re.compile(r"[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s:][^\s]*\Z")  # git@host:org/repo


def parse_policy(data: bytes, path: Path) -> Policy:
    """Validate policy bytes as if read from `path` (relative paths resolve against it)."""
    reader = _Reader(str(path), path.resolve().parent)
    try:
        root = yaml.compose(data.decode("utf-8"), Loader=yaml.SafeLoader)
    except UnicodeDecodeError as e:
        raise ConfigError([Problem(str(path), None, "", f"not UTF-8: {e.reason}")]) from e
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError([Problem(str(path), line, "", f"invalid YAML: {e.problem}")]) from e
    except yaml.YAMLError as e:
        raise ConfigError([Problem(str(path), None, "", f"invalid YAML: {e}")]) from e
    if root is None:
        raise ConfigError([Problem(str(path), None, "", "the policy file is empty")])
    policy = reader.policy(root, path, hashlib.sha256(data).hexdigest())
    if reader.problems or policy is None:
        raise ConfigError(sorted(reader.problems, key=lambda p: p.line or 0))
    return policy


class _Reader:
    """Walks the node graph, collecting located problems instead of stopping at the first."""

    def __init__(self, file: str, base: Path) -> None:
        self.file = file
        self.base = base
        self.problems: list[Problem] = []

    def problem(self, node: yaml.Node | None, fld: str, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else None
        self.problems.append(Problem(self.file, line, fld, message))

    # -- structure ---------------------------------------------------------------------

    def mapping(
        self, node: yaml.Node, fld: str, allowed: tuple[str, ...], what: str = "key"
    ) -> dict[str, yaml.Node] | None:
        """Check a mapping: string keys, no duplicates, only `allowed` keys."""
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, fld, f"expected a mapping, found {_kind(node)}")
            return None
        out: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            sub = f"{fld}.{key}" if fld else str(key)
            if not isinstance(key, str) or key_node.tag != _TAG + "str":
                self.problem(key_node, fld or "(top level)", "keys must be plain names")
            elif key in out:
                # A second `mode:` further down would silently override the first: an
                # easy way to hide a weakened rule in review, so it is an error.
                first = out[key].start_mark.line + 1
                self.problem(key_node, sub, f"duplicate key (first set on line {first})")
            elif key not in allowed:
                hint = [_RENAMED[key]] if key in _RENAMED else []
                hint = hint or difflib.get_close_matches(key, allowed, n=1)
                did = f"; did you mean {hint[0]!r}?" if hint else ""
                known = ", ".join(allowed)
                self.problem(key_node, sub, f"unknown {what} {key!r}{did} (known: {known})")
            else:
                out[key] = value_node
        return out

    def sequence(self, node: yaml.Node, fld: str) -> list[yaml.Node] | None:
        if isinstance(node, yaml.ScalarNode) and node.tag == _TAG + "null":
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, fld, f"expected a list, found {_kind(node)}")
            return None
        return list(node.value)

    # -- scalars -----------------------------------------------------------------------

    def string(self, node: yaml.Node, fld: str) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _TAG + "str":
            self.problem(node, fld, f"expected a string, found {_kind(node)}")
            return None
        return str(node.value)

    def integer(self, node: yaml.Node, fld: str, minimum: int = 0) -> int | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _TAG + "int":
            self.problem(node, fld, f"expected an integer, found {_kind(node)}")
            return None
        try:
            value = int(str(node.value).replace("_", ""), 0)
        except ValueError:
            self.problem(node, fld, f"{node.value!r} is not an integer")
            return None
        if value < minimum:
            self.problem(node, fld, f"must be at least {minimum}")
            return None
        return value

    def choice(self, node: yaml.Node, fld: str, enum: Callable[[str], _T], names: str) -> _T | None:
        # Raw text, whatever YAML 1.1 resolved it to: `off` and `no` are booleans there.
        text = node.value if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(text, str):
            self.problem(node, fld, f"expected one of {names}, found {_kind(node)}")
            return None
        try:
            return enum(text)
        except ValueError:
            self.problem(node, fld, f"{text!r} is not one of {names}")
            return None

    def mode(self, node: yaml.Node, fld: str) -> Mode | None:
        return self.choice(node, fld, Mode, "block, warn, off")

    def duration(self, node: yaml.Node, fld: str) -> timedelta | None:
        if not isinstance(node, yaml.ScalarNode) or _tag(node) != "str":
            self.problem(node, fld, f"expected a duration like 72h, found {_kind(node)}")
            return None
        try:
            return parse_duration(str(node.value))
        except ValueError as e:
            self.problem(node, fld, str(e))
            return None

    def day(self, node: yaml.Node, fld: str) -> date | None:
        text = node.value if _tag(node) in ("str", "timestamp") else None
        try:
            if isinstance(text, str):
                return date.fromisoformat(text)
        except ValueError:
            pass
        self.problem(node, fld, "expected a date like 2027-06-30")
        return None

    def path(self, node: yaml.Node, fld: str) -> Path | None:
        text = self.string(node, fld)
        if text is None:
            return None
        if not text:
            self.problem(node, fld, "empty path")
            return None
        return self.base / Path(text).expanduser()

    def strings(self, node: yaml.Node, fld: str) -> list[tuple[yaml.Node, str]]:
        items = self.sequence(node, fld) or []
        out = []
        for i, item in enumerate(items):
            text = self.string(item, f"{fld}[{i}]")
            if text is not None:
                out.append((item, text))
        return out

    # -- the policy ----------------------------------------------------------------------

    def policy(self, root: yaml.Node, path: Path, digest: str) -> Policy | None:
        top = self.mapping(root, "", ("version", "rules", "allow", "deny"))
        if top is None:
            return None
        if "version" not in top:
            self.problem(root, "version", f"missing; write `version: {SCHEMA_VERSION}`")
        else:
            version = self.integer(top["version"], "version")
            if version == 1:
                self.problem(
                    top["version"],
                    "version",
                    "version 1 policies judged names by distance alone (`rules.typosquat`); "
                    "version 2 weighs evidence in `rules.risk`: write `version: 2` and move "
                    "mode, corpus, protect_top and protect from rules.typosquat to rules.risk "
                    "(docs/detection.md)",
                )
            elif version is not None and version != SCHEMA_VERSION:
                self.problem(top["version"], "version", f"unsupported version {version}")
        rules = self.rules(top["rules"]) if "rules" in top else Rules()
        allow = self.entries(top.get("allow"), "allow")
        deny = self.entries(top.get("deny"), "deny")
        return Policy(rules, allow, deny, path.resolve(), digest)

    def rules(self, node: yaml.Node) -> Rules:
        if _tag(node) == "null":
            return Rules()
        given = self.mapping(node, "rules", RULE_NAMES, what="rule")
        if given is None:
            return Rules()
        r = Rules()
        return Rules(
            risk=self.rule(given, "risk", r.risk, self.risk),
            deny=self.rule(given, "deny", r.deny, lambda m, f, d: d),
            yanked=self.rule(given, "yanked", r.yanked, lambda m, f, d: d),
            min_age=self.rule(given, "min_age", r.min_age, self.min_age),
            advisories=self.rule(given, "advisories", r.advisories, self.advisories),
            capabilities=self.rule(given, "capabilities", r.capabilities, self.capabilities),
        )

    _KEYS: dict[str, tuple[str, ...]] = {  # noqa: RUF012  (read-only class table)
        "risk": (
            "mode",
            "corpus",
            "protect_top",
            "protect",
            "thresholds",
            "new",
            "young",
            "old",
            "new_version",
            "scan",
            "weights",
            "missing",
        ),
        "deny": ("mode",),
        "yanked": ("mode",),
        "min_age": ("mode", "age", "missing_pubtime"),
        "advisories": ("mode", "db", "ignore", "informational", "source"),
        "capabilities": ("mode", "lock", "first_seen"),
    }

    def rule(
        self,
        given: dict[str, yaml.Node],
        name: str,
        default: _R,
        settings: Callable[[dict[str, yaml.Node], str, _R], _R],
    ) -> _R:
        """Parse `rules.<name>`: a mapping with a required `mode` plus rule settings."""
        if name not in given:
            return default
        fld = f"rules.{name}"
        body = self.mapping(given[name], fld, self._KEYS[name], what="setting")
        if body is None:
            return default
        if "mode" not in body:
            self.problem(given[name], f"{fld}.mode", "missing; write block, warn or off")
            return settings(body, fld, default)
        mode = self.mode(body["mode"], f"{fld}.mode")
        result = settings(body, fld, default)
        return dataclasses.replace(result, mode=mode) if mode is not None else result

    def risk(self, body: dict[str, yaml.Node], fld: str, d: RiskRule) -> RiskRule:
        top = (
            self.integer(body["protect_top"], f"{fld}.protect_top")
            if "protect_top" in body
            else None
        )
        # `corpus: null` runs without one: every decision then says name evidence is missing.
        no_corpus = "corpus" in body and _tag(body["corpus"]) == "null"
        corpus = (
            self.path(body["corpus"], f"{fld}.corpus")
            if "corpus" in body and not no_corpus
            else None
        )
        protect: list[str] = []
        for i, (item, name) in enumerate(
            self.strings(body.get("protect", _NULL), f"{fld}.protect")
        ):
            if self.crate_name(item, f"{fld}.protect[{i}]", name):
                protect.append(name)
        ages = {
            key: self.duration(body[key], f"{fld}.{key}") if key in body else None
            for key in ("new", "young", "old", "new_version")
        }
        new = ages["new"] or d.new
        young = ages["young"] or d.young
        old = ages["old"] or d.old
        if not new <= young <= old:
            where = body.get("young") or body.get("new") or body.get("old")
            self.problem(where, fld, "ages must grow: new <= young <= old")
        scan = (
            self.choice(body["scan"], f"{fld}.scan", ScanBeforeServing, "new, never")
            if "scan" in body
            else None
        )
        return RiskRule(
            mode=d.mode,
            corpus=corpus or d.corpus,
            use_corpus=not no_corpus,
            protect_top=d.protect_top if top is None else top,
            protect=tuple(protect),
            thresholds=self.thresholds(body.get("thresholds"), f"{fld}.thresholds", d.thresholds),
            new=new,
            young=young,
            old=old,
            new_version=ages["new_version"] or d.new_version,
            scan=scan or d.scan,
            weights=self.points(body.get("weights"), f"{fld}.weights", d.weights, "signal"),
            missing=self.points(body.get("missing"), f"{fld}.missing", d.missing, "evidence"),
        )

    def thresholds(
        self, node: yaml.Node | None, fld: str, default: RiskThresholds
    ) -> RiskThresholds:
        if node is None:
            return default
        given = self.mapping(node, fld, ("warn", "quarantine", "block"), what="threshold")
        if given is None:
            return default
        values = {
            key: self.number(given[key], f"{fld}.{key}") if key in given else None
            for key in ("warn", "quarantine", "block")
        }
        result = RiskThresholds(
            warn=values["warn"] if values["warn"] is not None else default.warn,
            quarantine=values["quarantine"]
            if values["quarantine"] is not None
            else default.quarantine,
            block=values["block"] if values["block"] is not None else default.block,
        )
        if not 0 < result.warn <= result.quarantine <= result.block:
            self.problem(node, fld, "thresholds must grow: 0 < warn <= quarantine <= block")
        return result

    def points(
        self, node: yaml.Node | None, fld: str, default: Mapping[str, float], what: str
    ) -> Mapping[str, float]:
        """A mapping of known ids to numbers, over the defaults (signal weights, missing)."""
        if node is None:
            return default
        known = tuple(SIGNALS) if what == "signal" else tuple(MISSING)
        given = self.mapping(node, fld, known, what=what)
        if given is None:
            return default
        out = dict(default)
        for key, value in given.items():
            number = self.number(value, f"{fld}.{key}", allow_negative=True)
            if number is not None:
                out[key] = number
        return MappingProxyType(out)

    def number(self, node: yaml.Node, fld: str, *, allow_negative: bool = False) -> float | None:
        if not isinstance(node, yaml.ScalarNode) or _tag(node) not in ("int", "float"):
            self.problem(node, fld, f"expected a number, found {_kind(node)}")
            return None
        text = str(node.value).replace("_", "").lower()
        try:
            # YAML spells infinity and NaN `.inf` and `.nan`; Python does not.
            value = float(text.replace(".inf", "inf").replace(".nan", "nan"))
        except ValueError:
            self.problem(node, fld, f"{node.value!r} is not a number")
            return None
        if not math.isfinite(value) or (value < 0 and not allow_negative):
            self.problem(node, fld, "must be a finite number" + ("" if allow_negative else " >= 0"))
            return None
        return value

    def min_age(self, body: dict[str, yaml.Node], fld: str, d: MinAgeRule) -> MinAgeRule:
        age = self.duration(body["age"], f"{fld}.age") if "age" in body else None
        missing = (
            self.choice(
                body["missing_pubtime"], f"{fld}.missing_pubtime", MissingPubtime, "allow, hide"
            )
            if "missing_pubtime" in body
            else None
        )
        return MinAgeRule(d.mode, age or d.age, missing or d.missing_pubtime)

    def advisories(self, body: dict[str, yaml.Node], fld: str, d: AdvisoriesRule) -> AdvisoriesRule:
        db = self.path(body["db"], f"{fld}.db") if "db" in body else None
        ignore = []
        for i, (item, text) in enumerate(self.strings(body.get("ignore", _NULL), f"{fld}.ignore")):
            if re.fullmatch(r"RUSTSEC-\d{4}-\d{4}", text):
                ignore.append(text)
            else:
                self.problem(
                    item, f"{fld}.ignore[{i}]", f"{text!r} is not an id like RUSTSEC-2020-0071"
                )
        kinds = []
        names = ", ".join(k.value for k in Informational)
        items = self.sequence(body.get("informational", _NULL), f"{fld}.informational") or []
        for i, item in enumerate(items):
            kind = self.choice(item, f"{fld}.informational[{i}]", Informational, names)
            if kind is not None:
                kinds.append(kind)
        source = self.git_source(body["source"], f"{fld}.source") if "source" in body else None
        return AdvisoriesRule(
            d.mode, db or d.db, frozenset(ignore), frozenset(kinds), source or d.source
        )

    def git_source(self, node: yaml.Node, fld: str) -> str | None:
        """A git URL (https, http, ssh, git, file, or scp-like user@host:path) or a local path.

        Only these transports: git's `ext::` would run a command, and an argument that starts
        with `-` would be read as an option by `git clone`.
        """
        text = self.string(node, fld)
        if text is None:
            return None
        if _GIT_URL.match(text) or _SCP_LIKE.match(text):
            return text
        if not text or text.startswith("-") or "::" in text or "://" in text:
            self.problem(
                node, fld, f"{text!r} is not a git URL (https, ssh, git, file) or a local path"
            )
            return None
        return str(self.base / Path(text).expanduser())

    def capabilities(
        self, body: dict[str, yaml.Node], fld: str, d: CapabilitiesRule
    ) -> CapabilitiesRule:
        lock = self.path(body["lock"], f"{fld}.lock") if "lock" in body else None
        first = (
            self.choice(
                body["first_seen"], f"{fld}.first_seen", FirstSeen, "trust, require-approval"
            )
            if "first_seen" in body
            else None
        )
        return CapabilitiesRule(d.mode, lock or d.lock, first or d.first_seen)

    def crate_name(self, node: yaml.Node, fld: str, name: str) -> bool:
        try:
            validate_name(name)
        except BadRequest as e:
            self.problem(node, fld, f"{name!r}: {e}")
            return False
        return True

    def entries(self, node: yaml.Node | None, list_name: str) -> tuple[ListEntry, ...]:
        if node is None:
            return ()
        out: list[ListEntry] = []
        seen: dict[str, ListEntry] = {}
        for i, item in enumerate(self.sequence(node, list_name) or []):
            fld = f"{list_name}[{i}]"
            body = self.mapping(item, fld, ("crate", "reason", "expires"), what="field")
            if body is None:
                continue
            spec = self.crate_spec(body["crate"], f"{fld}.crate") if "crate" in body else None
            if "crate" not in body:
                self.problem(item, f"{fld}.crate", "missing; write `crate: name` or `name@req`")
            reason = self.string(body["reason"], f"{fld}.reason") if "reason" in body else None
            if "reason" not in body or reason == "":
                self.problem(item, f"{fld}.reason", "every entry needs a reason (it is audited)")
            expires = self.day(body["expires"], f"{fld}.expires") if "expires" in body else None
            if spec is None or not reason:
                continue
            entry = ListEntry(spec, reason, expires, fld, item.start_mark.line + 1)
            key = f"{spec.canonical}@{spec.req}"
            if key in seen:
                self.problem(item, fld, f"duplicate of {seen[key].field} (line {seen[key].line})")
                continue
            seen[key] = entry
            out.append(entry)
        return tuple(out)

    def crate_spec(self, node: yaml.Node, fld: str) -> CrateSpec | None:
        text = self.string(node, fld)
        if text is None:
            return None
        name, sep, req_text = text.partition("@")
        if not self.crate_name(node, fld, name.strip()):
            return None
        if not sep:
            return CrateSpec(name.strip())
        try:
            return CrateSpec(name.strip(), VersionReq.parse(req_text))
        except ValueError as e:
            self.problem(node, fld, f"bad version range: {e}")
            return None


_NULL = yaml.ScalarNode(_TAG + "null", "")


def _tag(node: yaml.Node) -> str:
    return str(node.tag).removeprefix(_TAG)


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    tag = _tag(node)
    return {"null": "nothing", "bool": "a boolean", "int": "an integer", "float": "a number"}.get(
        tag, f"{tag} {node.value!r}"
    )
