"""Alerts: which audit events become webhook alerts, for which hook, in which format. Pure.

Settings (`alerts:` in the settings file):

    alerts:
      hooks:
        - name: security-channel
          url: https://hooks.slack.com/services/T000/B000/XXXX
          format: slack                  # or json (the default)
          events: [block, quarantine, pending, approve, revoke, audit_chain, trust_failure]
          secret: "..."                  # optional: X-Crate-Mirror-Signature: sha256=<hmac>
      queue: 1000          # deliveries waiting at most; more are dropped (and counted)
      attempts: 5          # tries per delivery before it is recorded as failed
      backoff: 1.0         # seconds before the first retry, doubled each time (capped at 60)
      timeout: 5.0         # seconds one delivery may take
      repeat_after: 3600   # seconds a repeat block of the same crate version is not re-sent
      poll: 0.5            # seconds between looks at the audit index

Kinds of alert, from the audit events (every worker's, and the CLI's):

    block          a request refused (any rule but the trust failures below)
    quarantine     a request refused by the malicious-crate rule until the crate ages
    pending        a hold that opened a new review (the first refusal of that version)
    approve        a person approved a crate (console or CLI; never trust-on-first-use)
    revoke, deny   a person revoked approvals / denied a held version
    audit_chain    the audit chain's index found a broken link, or a crash recovery
    trust_failure  upstream failed a TUF check or sent a crate whose checksum is wrong

Crate names, versions and reasons are crate- or client-controlled text: in Slack payloads
`&`, `<` and `>` are escaped as Slack requires, so a name cannot become a link or a mention.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from mirror.errors import ConfigError, Problem
from mirror.printable import printable

KINDS = (
    "block",
    "quarantine",
    "pending",
    "approve",
    "revoke",
    "deny",
    "audit_chain",
    "trust_failure",
)
FORMATS = ("json", "slack")
TRUST_RULES = frozenset({"tuf", "checksum"})
PEOPLE_ROUTES = frozenset({"cli", "console"})  # approvals by people (not trust-on-first-use)
# Audit actions the alert queue reads from the index.
ALERT_ACTIONS = ("block", "quarantine", "approve", "revoke", "deny", "audit.recovered")
REPEATED = frozenset({"block", "quarantine", "trust_failure"})  # suppressed within repeat_after
MAX_TEXT = 600  # characters of a reason carried in an alert
SIGNATURE_HEADER = "X-Crate-Mirror-Signature"


@dataclass(frozen=True)
class Hook:
    name: str
    url: str
    format: str = "json"
    events: frozenset[str] = frozenset(KINDS)
    secret: str | None = None


@dataclass(frozen=True)
class AlertSettings:
    hooks: tuple[Hook, ...] = ()
    queue: int = 1000  # deliveries waiting
    attempts: int = 5  # tries per delivery
    backoff: float = 1.0  # seconds before the first retry (doubled per retry)
    max_backoff: float = 60.0  # seconds
    timeout: float = 5.0  # seconds per delivery
    repeat_after: float = 3600.0  # seconds
    poll: float = 0.5  # seconds

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str) -> AlertSettings:
        """Validate the `alerts:` settings; every problem is reported (ConfigError)."""
        problems: list[Problem] = []

        def bad(fld: str, message: str) -> None:
            problems.append(Problem(where, None, f"alerts.{fld}", message))

        known = {"hooks", "queue", "attempts", "backoff", "timeout", "repeat_after", "poll"}
        for key in data:
            if key not in known:
                bad(str(key), f"unknown key (expected {', '.join(sorted(known))})")
        numbers: dict[str, Any] = {}
        for key, low in (("queue", 1), ("attempts", 1), ("backoff", 0), ("timeout", 0.1),
                         ("repeat_after", 0), ("poll", 0.05)):  # fmt: skip
            if key in data:
                value = data[key]
                if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
                    bad(key, f"expected a number of at least {low}")
                else:
                    numbers[key] = int(value) if key in ("queue", "attempts") else float(value)
        hooks = []
        raw_hooks = data.get("hooks", [])
        if not isinstance(raw_hooks, list):
            bad("hooks", "expected a list of hooks")
            raw_hooks = []
        names: set[str] = set()
        for i, raw in enumerate(raw_hooks):
            hook = _hook(raw, f"hooks[{i}]", bad)
            if hook is not None:
                if hook.name in names:
                    bad(f"hooks[{i}].name", f"{hook.name!r} is used twice")
                names.add(hook.name)
                hooks.append(hook)
        if problems:
            raise ConfigError(problems)
        return cls(hooks=tuple(hooks), **numbers)


def _hook(raw: Any, fld: str, bad: Any) -> Hook | None:
    if not isinstance(raw, Mapping):
        bad(fld, "expected a mapping with url, format, events")
        return None
    for key in raw:
        if key not in ("name", "url", "format", "events", "secret"):
            bad(f"{fld}.{key}", "unknown key (expected name, url, format, events, secret)")
    url = raw.get("url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        bad(f"{fld}.url", f"expected an http(s) URL, got {url!r}")
        return None
    fmt = raw.get("format", "json")
    if fmt not in FORMATS:
        bad(f"{fld}.format", f"expected one of {', '.join(FORMATS)}")
    events = raw.get("events", list(KINDS))
    if not isinstance(events, list) or not events or any(e not in KINDS for e in events):
        bad(f"{fld}.events", f"expected a list of {', '.join(KINDS)}")
        events = []
    secret = raw.get("secret")
    if secret is not None and (not isinstance(secret, str) or not secret):
        bad(f"{fld}.secret", "expected a non-empty string")
    name = raw.get("name", parts.netloc)
    return Hook(str(name), str(url), str(fmt), frozenset(events), secret)


# -- what an alert is -----------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    kinds: tuple[str, ...]  # the first is the main one
    event: Mapping[str, Any]  # seq, time, action, rule, crate, version, reason, client, ...
    links: Mapping[str, str] = field(default_factory=dict)  # evidence, review (console URLs)

    @property
    def kind(self) -> str:
        return self.kinds[0]

    def dedupe_key(self) -> str | None:
        """Repeats of one refusal (every build asks again) are one alert per window."""
        if self.kind not in REPEATED:
            return None
        e = self.event
        crate = str(e.get("crate", "")).lower().replace("-", "_")
        return f"{self.kind}:{crate}:{e.get('version') or ''}:{e.get('rule', '')}"


def kinds_of(action: str, rule: str, route: str | None, opens_review: bool) -> tuple[str, ...]:
    """The alert kinds one audit event is (empty: none)."""
    if action == "block" and rule in TRUST_RULES:
        return ("trust_failure",)
    if action in ("block", "quarantine"):
        return (action, "pending") if opens_review else (action,)
    if action == "approve":
        return ("approve",) if route in PEOPLE_ROUTES else ()
    if action in ("revoke", "deny"):
        return (action,)
    if action == "audit.recovered":
        return ("audit_chain",)
    return ()


def wants(hook: Hook, alert: Alert) -> bool:
    return any(kind in hook.events for kind in alert.kinds)


def console_links(base_url: str, event: Mapping[str, Any]) -> dict[str, str]:
    links: dict[str, str] = {}
    seq = event.get("seq")
    if isinstance(seq, int):
        links["evidence"] = f"{base_url}/-/events/{seq}"
    crate = event.get("crate")
    if isinstance(crate, str) and event.get("action") in ("block", "quarantine"):
        version = event.get("version") or ""
        links["review"] = (
            f"{base_url}/-/review?crate={quote(crate, safe='')}&version={quote(version, safe='')}"
        )
    return links


# -- payloads -------------------------------------------------------------------------------


def body(hook: Hook, alert: Alert, mirror_url: str) -> bytes:
    data = slack_payload(alert) if hook.format == "slack" else json_payload(alert, mirror_url)
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


def headers(hook: Hook, payload: bytes) -> dict[str, str]:
    """The signature a receiver can check (HMAC-SHA256 of the body with the hook's secret)."""
    if hook.secret is None:
        return {}
    digest = hmac.new(hook.secret.encode(), payload, hashlib.sha256).hexdigest()
    return {SIGNATURE_HEADER: f"sha256={digest}"}


def json_payload(alert: Alert, mirror_url: str) -> dict[str, Any]:
    event = {k: _clip(v) for k, v in alert.event.items() if v is not None}
    return {
        "source": "crate-mirror",
        "mirror": mirror_url,
        "kind": alert.kind,
        "kinds": list(alert.kinds),
        "event": event,
        "links": dict(alert.links),
    }


_HEADLINES = {
    "block": "blocked",
    "quarantine": "quarantined",
    "pending": "waits for review",
    "approve": "approved",
    "revoke": "approvals revoked",
    "deny": "denied",
    "audit_chain": "audit chain",
    "trust_failure": "upstream trust failure",
}


def slack_payload(alert: Alert) -> dict[str, Any]:
    """Slack's incoming-webhook shape: `text` (notifications) and one mrkdwn section."""
    e = alert.event
    what = slack_escape(" ".join(str(p) for p in (e.get("crate"), e.get("version")) if p))
    headline = f"{_HEADLINES[alert.kind]}: {what}" if what else _HEADLINES[alert.kind]
    lines = [f"*crate-mirror {headline}*"]
    lines.append(
        f"{slack_escape(str(e.get('action', '')))} by rule `{slack_escape(str(e.get('rule', '')))}`"
    )
    if e.get("reason"):
        lines.append(f"> {slack_escape(_clip(e.get('reason')))}")
    for label, url in alert.links.items():
        lines.append(f"<{url}|{label}>")  # our own URLs: crate text in them is %-encoded
    text = "\n".join(lines)
    return {
        "text": f"crate-mirror {headline}",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
        "unfurl_links": False,
    }


def slack_escape(text: str) -> str:
    """Slack's required escaping: a crate called `<!channel>` or `<https://x|y>` stays text;
    and no newline of the crate's starts a line of its own (a fake headline)."""
    return printable(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return value[: MAX_TEXT - 1] + "…"
    return value
