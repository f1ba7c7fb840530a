"""Delivering alerts: read new events from the audit index, queue deliveries, retry, record.

Every worker runs one `AlertDispatcher`. Each look at the index *claims* the events after a
shared cursor (mirror.audit.index.AuditIndex.claim), so each event is alerted once, by
whichever worker claims it, and alerts cover what every process recorded (a CLI approval
too). Repeats of one refusal are sent once per `repeat_after` (shared across workers).

Nothing here can slow serving: the index is read in a thread, deliveries go out from
background tasks through mirror.upstream.webhooks, and the queue is bounded: when it is full
new deliveries are dropped and counted (an `alert.dropped` event says how many). A delivery
that fails is retried with exponential backoff; after `attempts` tries it is recorded as
`alert.failed`; a delivered one as `alert.delivered` (hook, kinds, event seq, attempts,
status). Those outcome events are never alerted themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import structlog

from mirror.audit import AuditEvent, AuditSink
from mirror.audit.index import AuditIndex, EventRow, IndexPlace
from mirror.errors import MirrorError, UpstreamUnavailable
from mirror.serving.alerts import (
    ALERT_ACTIONS,
    Alert,
    AlertSettings,
    Hook,
    body,
    console_links,
    headers,
    kinds_of,
    wants,
)
from mirror.serving.core import MirrorCore
from mirror.upstream.webhooks import WebhookClient

log = structlog.get_logger("mirror.alerts")
CURSOR = "alerts"
SENDERS = 4  # deliveries in flight at once per worker


@dataclass
class Delivery:
    hook: Hook
    alert: Alert
    attempt: int = 0  # tries made so far
    first_at: float = 0.0  # unix time of the first try


class AlertDispatcher:
    def __init__(
        self,
        settings: AlertSettings,
        index: AuditIndex,
        audit: AuditSink,
        client: WebhookClient,
        mirror_url: str,
    ) -> None:
        self.settings = settings
        self._index = index
        self._audit = audit
        self._client = client
        self._mirror_url = mirror_url
        self._queue: asyncio.Queue[Delivery] | None = None
        self._waiting = 0  # deliveries queued or sleeping before a retry (the bound)
        self._dropped = 0  # not yet reported
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifetime -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Look for new events every `poll` seconds until cancelled."""
        self._queue = asyncio.Queue()
        for _ in range(SENDERS):
            self._spawn(self._send_loop())
        while True:
            try:
                await self.look()
            except MirrorError as e:
                log.error("alerts.look_failed", error=str(e))
            except Exception:  # a background loop: a bug is logged and the loop goes on
                log.exception("alerts.look_crashed")
            await asyncio.sleep(self.settings.poll)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._client.close()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- finding what to send -----------------------------------------------------------------

    async def look(self) -> int:
        """Claim new events, queue their deliveries; returns how many alerts were made."""
        alerts = await asyncio.to_thread(self._claim)
        for alert in alerts:
            for hook in self.settings.hooks:
                if wants(hook, alert):
                    self._enqueue(Delivery(hook, alert, first_at=time.time()))
        if self._dropped:
            self._record_dropped()
        return len(alerts)

    def _claim(self) -> list[Alert]:
        index = self._index
        index.refresh()
        alerts = []
        for row, opens in index.claim(CURSOR, ALERT_ACTIONS):
            alert = self._alert(row, opens)
            if alert is None:
                continue
            key = alert.dedupe_key()
            if key is not None and not index.first_in(key, self.settings.repeat_after):
                continue  # the same refusal again, within the window
            alerts.append(alert)
        broken = index.status().broken
        if broken is not None and index.note("alerted-break", str(broken)) != str(broken):
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            event = {"action": "audit.broken", "rule": "audit", "reason": str(broken),
                     "seq": broken.seq, "time": now}  # fmt: skip
            alerts.append(Alert(("audit_chain",), event, {}))
        return alerts

    def _alert(self, row: EventRow, opens_review: bool) -> Alert | None:
        kinds = kinds_of(row.action, row.rule, row.route, opens_review)
        if not kinds:
            return None
        event = {
            "seq": row.seq,
            "replica": row.replica,
            "time": row.time,
            "action": row.action,
            "rule": row.rule,
            "crate": row.crate,
            "version": row.version,
            "reason": row.reason,
            "client": row.client,
            "route": row.route,
            "request_id": row.request_id,
        }
        return Alert(kinds, event, console_links(self._mirror_url, event))

    # -- the bounded queue --------------------------------------------------------------------

    def _enqueue(self, delivery: Delivery) -> None:
        assert self._queue is not None
        if self._waiting >= self.settings.queue:
            self._dropped += 1  # a receiver down for long must not grow memory without bound
            return
        self._waiting += 1
        self._queue.put_nowait(delivery)

    async def _send_loop(self) -> None:
        assert self._queue is not None
        while True:
            delivery = await self._queue.get()
            try:
                finished = await self._send(delivery)
            except Exception:  # a background task: log a bug, keep delivering
                log.exception("alerts.send_crashed", hook=delivery.hook.name)
                finished = True
            if finished:
                self._waiting -= 1

    async def _send(self, delivery: Delivery) -> bool:
        """One try; True when the delivery is over (delivered, or failed for good)."""
        hook, alert = delivery.hook, delivery.alert
        payload = body(hook, alert, self._mirror_url)
        delivery.attempt += 1
        try:
            status = await self._client.post(hook.url, payload, headers(hook, payload))
            error = None if 200 <= status < 300 else f"receiver answered HTTP {status}"
        except UpstreamUnavailable as e:
            status, error = None, str(e)
        if error is None:
            self._outcome("alert.delivered", delivery, status, None)
            return True
        if delivery.attempt >= self.settings.attempts:
            log.warning("alerts.failed", hook=hook.name, kind=alert.kind, error=error)
            self._outcome("alert.failed", delivery, status, error)
            return True
        delay = min(self.settings.max_backoff, self.settings.backoff * 2 ** (delivery.attempt - 1))
        self._spawn(self._retry_later(delivery, delay))
        return False

    async def _retry_later(self, delivery: Delivery, delay: float) -> None:
        await asyncio.sleep(delay)
        assert self._queue is not None
        self._queue.put_nowait(delivery)  # still counted in _waiting: no new slot needed

    # -- the record ---------------------------------------------------------------------------

    def _outcome(
        self, action: str, delivery: Delivery, status: int | None, error: str | None
    ) -> None:
        alert = delivery.alert
        what = f"{alert.kind} alert for event {alert.event.get('seq')} to {delivery.hook.name}"
        reason = f"{what}: {'delivered' if error is None else error}"
        details = {
            "hook": delivery.hook.name,
            "kinds": list(alert.kinds),
            "seq": alert.event.get("seq"),
            "attempts": delivery.attempt,
            "status": status,
            "seconds": round(time.time() - delivery.first_at, 3),
        }
        self._audit.record(
            AuditEvent(action, "alerts", reason, crate=_text(alert.event.get("crate")),
                       version=_text(alert.event.get("version")), details=details)
        )  # fmt: skip

    def _record_dropped(self) -> None:
        count, self._dropped = self._dropped, 0
        log.warning("alerts.dropped", count=count)
        self._audit.record(
            AuditEvent("alert.dropped", "alerts",
                       f"{count} alert deliveries dropped: the queue of {self.settings.queue} "
                       "was full (receivers down or slow)", details={"dropped": count})
        )  # fmt: skip


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def dispatcher_for(core: MirrorCore) -> AlertDispatcher | None:
    """The alert dispatcher the settings ask for (None without hooks); ConfigError if the
    `alerts:` settings are invalid."""
    settings = core.settings
    if not settings.alerts:
        return None
    alerts = AlertSettings.from_mapping(settings.alerts, "settings")
    if not alerts.hooks:
        return None
    return AlertDispatcher(
        alerts,
        IndexPlace.of(settings).open(),  # alerts claim this replica's own chain
        core.gate.audit,
        WebhookClient(timeout=alerts.timeout, concurrency=SENDERS),
        settings.base_url,
    )
