"""Commands that arrive on the bus: verified, allowed or refused, audited, and answered with a `CommandResult`.

`commands` holds what each command does to the store (shared with the CLI, which writes directly); this
module is the daemon's door for the other paths (MQTT, the embedded TUI). Its rules (docs/security.md):
- only an `AuthorizedCommand` is carried out: whoever put it on the bus (the MQTT bridge after checking a
  signature, the embedded TUI as the local user) established the identity; anything else on a command
  topic is refused as unauthenticated, whatever `actor` it claims;
- the identity may act only on the targets it is allowed (`auth.targets_allowed`), and the command's
  action must match the topic it came on;
- every refusal, including those the MQTT bridge made before the bus (`refused`), is audited before the
  sender hears back, and every command gets one answer on `RESULT_TOPIC`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from daemon.auth import CommandRefused, targets_allowed
from daemon.bus import Bus, Event, topic
from daemon.config import Config
from daemon.contract import RESULT_TOPIC, AuthorizedCommand, CommandResult
from daemon.errors import UserError
from daemon.models import AuditEvent, Rollout
from daemon.rollouts import commands as cmd
from daemon.rollouts.journal import Journal, row_id
from daemon.rollouts.repo import public_view

log = logging.getLogger(__name__)


class CommandHandler:
    def __init__(self, config: Config, journal: Journal, *, readonly: bool) -> None:
        self.config = config
        self.journal = journal
        self.repo = journal.repo
        self.bus: Bus = journal.bus
        self.readonly = readonly

    async def handle_event(self, event: Event) -> None:
        """One event from a command topic -> a checked, audited transition, answered with a `CommandResult`."""
        payload = event.payload
        if not isinstance(payload, AuthorizedCommand):
            reason = "unauthenticated command refused (send it signed over MQTT, or from the CLI/TUI)"
            await self._refuse(reason, identity=None, request_id=_request_id_of(payload), topic_=event.topic)
            return
        command = payload.command
        try:
            if event.topic != command.topic:
                raise UserError(
                    f"the topic {event.topic} does not match the command's action {command.action}"
                )
            row = await self.handle_command(payload)
        except (UserError, ValueError) as exc:
            await self._refuse(
                str(exc), identity=payload.identity, request_id=command.request_id, topic_=event.topic
            )
            return
        self.bus.publish(
            RESULT_TOPIC,
            CommandResult(
                ok=True, request_id=command.request_id, rollout=_dump(row), identity=payload.identity
            ),
        )

    async def refused(self, refused: CommandRefused, bus_topic: str) -> None:
        """A command the MQTT bridge refused before it reached the bus: answered and audited here too."""
        await self._refuse(
            refused.reason, identity=refused.identity, request_id=refused.request_id, topic_=bus_topic
        )

    async def _refuse(
        self, reason: str, *, identity: str | None, request_id: str | None, topic_: str
    ) -> None:
        """Answer and audit a refused command; nothing was changed."""
        log.warning("command on %s from %s refused: %s", topic_, identity or "an unverified sender", reason)
        audit = AuditEvent(
            actor=identity or "unverified",
            entity="command",
            entity_id=topic_[-200:],
            action="refused",
            comment=reason[:2000],
        )
        await asyncio.to_thread(self.repo.store.add_all, [audit])  # audited before the sender hears back
        self.bus.publish(topic("audit", "command"), audit)
        self.bus.publish(
            RESULT_TOPIC, CommandResult(ok=False, request_id=request_id, error=reason, identity=identity)
        )

    async def handle_command(self, authorized: AuthorizedCommand) -> Rollout:
        """Carry out an authorized command, as its verified identity (the audit's actor)."""
        command, actor = authorized.command, authorized.identity
        if self.readonly:
            raise cmd.ReadOnly(f"read-only daemon: {command.action} is refused")
        if command.action == "propose" and command.recommendation_id is not None:
            rec = await asyncio.to_thread(cmd.recommendation_of, self.repo, command.recommendation_id)
            _check_targets(authorized, cmd.recommendation_targets(rec))
            row = await asyncio.to_thread(
                cmd.propose_recommendation,
                self.repo,
                self.config,
                command.recommendation_id,
                actor=actor,
                readonly=self.readonly,
            )
            proposed = await asyncio.to_thread(cmd.recommendation_of, self.repo, command.recommendation_id)
            self.bus.publish(topic("recommendation", str(proposed.id)), proposed.model_dump(mode="json"))
        elif command.action == "propose":
            _check_targets(authorized, command.targets)
            row = await asyncio.to_thread(
                cmd.propose,
                self.repo,
                self.config,
                targets=command.targets,
                changes=command.changes,
                actor=actor,
                reason=command.reason,
                signals=command.signals,
                readonly=self.readonly,
            )
        else:
            assert command.id is not None  # RolloutCommand requires it for every other action
            current = await asyncio.to_thread(self.repo.get, command.id)
            _check_targets(authorized, current.targets)
            row = await asyncio.to_thread(
                cmd.apply_command,
                self.repo,
                command.action,
                command.id,
                actor=actor,
                comment=command.comment,
                readonly=self.readonly,
            )
        latest = await asyncio.to_thread(self.repo.events, row_id(row))
        self.journal.publish(row, latest[-1] if latest else None)
        return row


def _check_targets(authorized: AuthorizedCommand, targets: list[str]) -> None:
    refused = targets_allowed(authorized.targets, targets)
    if refused:
        raise UserError(f"identity {authorized.identity!r} may not act on target(s) {', '.join(refused)}")


def _request_id_of(payload: object) -> str | None:
    """The request id of an unauthenticated command, only so its sender can match the refusal."""
    rid = payload.get("request_id") if isinstance(payload, dict) else None
    return rid if isinstance(rid, str) and len(rid) <= 128 and rid.isprintable() else None


def _dump(row: Rollout) -> dict[str, Any]:
    return public_view(row).model_dump(mode="json")
