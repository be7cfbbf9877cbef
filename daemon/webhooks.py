"""Outgoing webhooks: the team's chat (or an orchestrator) told when a rollout needs or changes its verdict.

Flagger's confirm-rollout and event webhooks are the anchor. The notifier watches the bus for rollout
state changes and, for each `[[webhooks]]` entry that wants the event, queues one POST:
- `approval_needed` (a proposal waits), `promoted` (COMPLETED), `failed`, `rolled_back`;
- the body is `{"text": ...}` (Slack and Mattermost incoming webhooks) or the event as JSON;
- signed with HMAC-SHA256 over "<timestamp>.<body>" when the entry has a secret;
- retried with backoff on connection errors, timeouts, 429 and 5xx, `max_attempts` times in all; any
  other answer (a 4xx: the URL or the body is wrong) is not retried.
Delivery never holds up the daemon: the bus consumer only enqueues, into a bounded queue whose overflow
is counted and logged, and one sender posts. The URL is a secret (Slack's carries the token): it is
never logged or published; messages name the entry by its position.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from daemon.bus import Bus, topic
from daemon.config import WebhookConfig, WebhookEvent
from daemon.models import Rollout
from daemon.rollouts.repo import public_view, stage_of
from daemon.text import clean

log = logging.getLogger(__name__)

QUEUE_SIZE = 256
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})

# The rollout state entered -> the webhook event it is.
EVENT_OF_STATE: dict[str, WebhookEvent] = {
    "PENDING_APPROVAL": "approval_needed",
    "COMPLETED": "promoted",
    "FAILED": "failed",
    "ROLLED_BACK": "rolled_back",
}


@dataclass(frozen=True)
class Delivery:
    hook: int  # the entry's position in [[webhooks]] (its URL is a secret)
    event: WebhookEvent
    body: bytes


def event_for(previous: str | None, row: Rollout) -> WebhookEvent | None:
    """The event a rollout's new state is, if it entered that state now (`previous` is the state seen last)."""
    if previous == row.state:
        return None
    return EVENT_OF_STATE.get(row.state)


def payload(event: WebhookEvent, row: Rollout, fmt: str) -> dict[str, Any]:
    """The body for one event. Titles and reasons come from proposals and servers: cleaned of control
    characters and cut, and taken from the rollout's public view (secrets in argv or URLs masked)."""
    view = public_view(row)
    stage = stage_of(view)
    title = clean(view.title or "", limit=200)
    targets = ", ".join(clean(t, limit=64) for t in view.targets)
    reason = clean(stage.failure_reason or "", limit=500) or None
    rid = view.id
    if fmt == "json":
        return {
            "event": event,
            "rollout": rid,
            "state": view.state,
            "title": title,
            "targets": list(view.targets),
            "reason": reason,
            "proposed_by": stage.proposed_by,
            "at": view.updated_at,
        }
    text = {
        "approval_needed": f"charter-tui: rollout #{rid} waits for approval: {title} ({targets}). "
        f"Approve with `charter-tui rollouts approve {rid}`, or `a` on the Rollouts screen.",
        "promoted": f"charter-tui: rollout #{rid} completed: {title} ({targets}).",
        "failed": f"charter-tui: rollout #{rid} failed: {title} ({targets})"
        + (f": {reason}" if reason else "")
        + ". Its targets are being restored.",
        "rolled_back": f"charter-tui: rollout #{rid} rolled back: {title} ({targets})"
        + (f": {reason}" if reason else "")
        + ".",
    }[event]
    return {"text": text}


def signed_headers(secret: bytes, body: bytes, now: float) -> dict[str, str]:
    ts = str(int(now))
    mac = hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Charter-Timestamp": ts, "X-Charter-Signature": f"sha256={mac}"}


class WebhookNotifier:
    def __init__(
        self,
        hooks: list[WebhookConfig],
        bus: Bus,
        *,
        secrets: dict[int, bytes] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        """`secrets`: each signed entry's secret by position, read at start (`daemon.auth.read_secret`)."""
        self.hooks, self.bus, self.clock, self.sleep = hooks, bus, clock, sleep
        self.secrets = secrets or {}
        self.queue: asyncio.Queue[Delivery] = asyncio.Queue(QUEUE_SIZE)
        self.dropped = 0
        self.delivered = 0
        self.failed = 0
        self._seen: dict[int, str] = {}  # rollout id -> the state last seen
        # A rollout last changed before this notifier started was told about by the run that saw it
        # change (or by nobody, if none ran): a restart does not announce history again.
        self.started_at = clock()

    async def run(self, stop: asyncio.Event) -> None:
        sub = self.bus.subscribe(topic("rollout", "+"))
        sender = asyncio.create_task(self._send_all(), name="charter:webhooks:send")
        try:
            while not stop.is_set():
                getter = asyncio.ensure_future(sub.get())
                stopped = asyncio.ensure_future(stop.wait())
                done, _ = await asyncio.wait({getter, stopped}, return_when=asyncio.FIRST_COMPLETED)
                stopped.cancel()
                if getter not in done:
                    getter.cancel()
                    break
                event = getter.result()
                if isinstance(event.payload, Rollout):
                    self.observe(event.payload)
        finally:
            self.bus.unsubscribe(sub)
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    def observe(self, row: Rollout) -> None:
        """Queue the deliveries a rollout's new state calls for; never waits."""
        if row.id is None:
            return
        event = event_for(self._seen.get(row.id), row)
        self._seen[row.id] = row.state
        if event is None or row.updated_at < self.started_at:
            return
        for i, hook in enumerate(self.hooks):
            if event not in hook.events:
                continue
            body = json.dumps(payload(event, row, hook.format), separators=(",", ":")).encode()
            try:
                self.queue.put_nowait(Delivery(i, event, body))
            except asyncio.QueueFull:
                self.dropped += 1
                log.warning(
                    "webhook %d: queue full (%d); %s of rollout %s dropped", i, QUEUE_SIZE, event, row.id
                )

    async def _send_all(self) -> None:
        async with httpx.AsyncClient(follow_redirects=False) as client:
            while True:
                delivery = await self.queue.get()
                try:
                    await self.deliver(client, delivery)
                except Exception:  # noqa: BLE001 - one bad delivery must not stop the others
                    log.exception("webhook %d: delivery of %s failed", delivery.hook, delivery.event)

    async def deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> bool:
        """POST one delivery, retrying what may succeed later; True once the receiver took it."""
        hook = self.hooks[delivery.hook]
        wait = BACKOFF_FIRST_S
        for attempt in range(1, hook.max_attempts + 1):
            headers = {"Content-Type": "application/json", "X-Charter-Event": delivery.event}
            secret = self.secrets.get(delivery.hook)
            if secret is not None:
                headers |= signed_headers(secret, delivery.body, self.clock())
            try:
                response = await client.post(
                    hook.url, content=delivery.body, headers=headers, timeout=hook.timeout_s
                )
                if 200 <= response.status_code < 300:
                    self.delivered += 1
                    return True
                why = f"HTTP {response.status_code}"
                retry = response.status_code in RETRY_STATUSES
            except httpx.HTTPError as exc:
                why, retry = type(exc).__name__, True
            if not retry or attempt == hook.max_attempts:
                self.failed += 1
                log.warning(
                    "webhook %d: %s not delivered after %d attempt(s): %s",
                    delivery.hook,
                    delivery.event,
                    attempt,
                    why,
                )
                return False
            log.info(
                "webhook %d: %s attempt %d: %s; again in %.0f s",
                delivery.hook,
                delivery.event,
                attempt,
                why,
                wait,
            )
            await self.sleep(wait)
            wait = min(wait * 2, BACKOFF_MAX_S)
        return False
