"""Who sent a command: HMAC-SHA256 signed commands over MQTT, and the local identity.

The broker is not trusted to say who published a message (an anonymous client, or anyone holding a
broker password, could otherwise approve a rollout and write any `actor` into the audit log). So a
command on MQTT is a signed envelope::

    {"identity": "ops", "ts": 1764860000.1, "nonce": "<32 hex>", "command": {...RolloutCommand...},
     "sig": "<64 hex>"}

`sig` is HMAC-SHA256, under the identity's secret, of the canonical JSON (sorted keys, no spaces) of
the other four fields plus the topic it is addressed to, `charter/v1/<daemon-id>/command/<action>` (the
same over HTTP). Signing the topic means topic and payload must agree: a valid approval of rollout 3
cannot be re-published under another action, nor replayed to another daemon of the fleet (whose
rollout 3 is another rollout).

`CommandVerifier.verify` refuses, with the reason, a message that is retained, too large, not JSON
or nested too deep, malformed, unsigned or badly signed, from an unknown identity, stale (outside
`max_skew_s`, or signed before this daemon started), replayed (nonce already seen), or for an action
the identity is not allowed. What passes is an `AuthorizedCommand` whose identity is the verified
one; the target patterns it carries are checked by the rollout manager against the rollout itself.

Local paths (the CLI and the embedded TUI) run as an OS user who can already write the database, so
their identity is that user, as the kernel reports it (`local_identity`); signatures would add
nothing there. A read-only daemon refuses every command whatever its source (daemon/rollouts/).
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import logging
import math
import os
import secrets
import stat
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from daemon.bus import daemon_topic
from daemon.config import AuthConfig, ClientAuthConfig, IdentityConfig, WebhookConfig
from daemon.contract import MAX_COMMAND_BYTES, AuthorizedCommand, RolloutCommand, action_of_topic
from daemon.errors import ConfigError, UserError, shown
from daemon.redaction import remember

log = logging.getLogger(__name__)
ENVELOPE_KEYS = frozenset({"identity", "ts", "nonce", "command", "sig"})
MIN_SECRET_BYTES = 16
MAX_SECRET_BYTES = 4096
MAX_NONCES = 100_000  # only verified signers can add one, so this bounds memory, not an attacker
MAX_JSON_DEPTH = 8  # an envelope is 3 levels deep; a change value a few more


class SignedEnvelope(BaseModel):
    """The wire form of a command over MQTT, for the documentation (docs/contract/). The verifier checks the
    signature over the raw `command` object *before* validating it, so it does not parse through this model."""

    model_config = ConfigDict(extra="forbid")

    identity: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    ts: float = Field(description="Unix time of signing; refused outside max_skew_s")
    nonce: str = Field(min_length=16, max_length=128, description="random, never reused")
    command: RolloutCommand
    sig: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="hex HMAC-SHA256 of canonical JSON of {topic, identity, ts, nonce, command}",
    )


class CommandRefused(UserError):
    """A command that is not carried out; `reason` is what the sender is told and the audit records."""

    def __init__(self, reason: str, *, identity: str | None = None, request_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.identity = identity
        self.request_id = request_id


def local_identity() -> str:
    """The OS user running this process (the CLI, the embedded TUI): who the audit log names locally."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): fall back to the uid, still verified
        return f"uid:{os.getuid()}"


def read_secret(source: IdentityConfig | ClientAuthConfig | WebhookConfig, owner: str) -> bytes:
    """The secret bytes of `source`, refused unless they are private and long enough."""
    if source.secret_env:
        value = os.environ.get(source.secret_env)
        if value is None:
            raise ConfigError(owner, "secret_env", f"environment variable {source.secret_env} is not set")
        secret = value.strip().encode()
    elif source.secret_file:
        path = Path(source.secret_file).expanduser()
        try:
            info = path.stat()
        except OSError as exc:
            raise ConfigError(owner, "secret_file", f"{path}: {exc.strerror or exc}") from None
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(owner, "secret_file", f"{path} is not a regular file")
        if info.st_mode & 0o077:
            raise ConfigError(
                owner,
                "secret_file",
                f"{path} is readable by others (mode {stat.S_IMODE(info.st_mode):o}); chmod 600 it",
            )
        if info.st_size > MAX_SECRET_BYTES:
            raise ConfigError(
                owner,
                "secret_file",
                f"{path} is {info.st_size} bytes; a secret is at most {MAX_SECRET_BYTES}",
            )
        secret = path.read_bytes().strip()
    else:
        raise ConfigError(owner, "secret_file", "no secret_file or secret_env given")
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(
            owner,
            "secret",
            f"the secret is {len(secret)} bytes; use at least {MIN_SECRET_BYTES} "
            "(e.g. `openssl rand -hex 32`)",
        )
    remember([secret.decode("utf-8", "replace")])  # masked in any log line or message that would quote it
    return secret


def canonical(bus_topic: str, identity: str, ts: float, nonce: str, command: dict[str, Any]) -> bytes:
    """The bytes that are signed: one fixed JSON form, so both ends compute the same thing."""
    body = {"topic": bus_topic, "identity": identity, "ts": ts, "nonce": nonce, "command": command}
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode()


def signature(secret: bytes, message: bytes) -> str:
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class CommandSigner:
    """The sending end (a remote TUI): turns a command into a signed envelope for its topic."""

    identity: str
    secret: bytes
    clock: Callable[[], float] = time.time

    @classmethod
    def from_config(cls, auth: AuthConfig, owner: str = "[auth.client]") -> CommandSigner | None:
        client = auth.client
        if client.identity is None:
            return None
        return cls(client.identity, read_secret(client, owner))

    def envelope(self, command: RolloutCommand, daemon_id: str) -> dict[str, Any]:
        """The signed envelope of `command` for the daemon `daemon_id` (no other daemon accepts it)."""
        body = command.model_dump(mode="json", exclude_none=True)
        ts, nonce = round(self.clock(), 6), secrets.token_hex(16)
        addressed = daemon_topic(daemon_id, command.topic)
        sig = signature(self.secret, canonical(addressed, self.identity, ts, nonce, body))
        return {"identity": self.identity, "ts": ts, "nonce": nonce, "command": body, "sig": sig}

    def encode(self, command: RolloutCommand, daemon_id: str) -> bytes:
        return json.dumps(self.envelope(command, daemon_id), separators=(",", ":")).encode()


@dataclass(frozen=True)
class _Grant:
    secret: bytes
    actions: frozenset[str]
    targets: tuple[str, ...]


class CommandVerifier:
    """The receiving end (the daemon's MQTT bridge): bytes on a command topic -> an AuthorizedCommand."""

    def __init__(self, auth: AuthConfig, daemon_id: str, *, clock: Callable[[], float] = time.time) -> None:
        # Signatures name the daemon a command is for: one signed for another daemon fails here.
        self.daemon_id = daemon_id
        self.max_skew_s = auth.max_skew_s
        self.clock = clock
        # Anything signed before this daemon started may be a capture replayed after a restart (the
        # nonce memory does not survive one), so it is refused as stale.
        self.started_at = clock()
        self._grants = {
            i.name: _Grant(
                read_secret(i, f"[auth.identities] {i.name}"), frozenset(i.actions), tuple(i.targets)
            )
            for i in auth.identities
        }
        self._nonces: OrderedDict[tuple[str, str], float] = OrderedDict()

    @property
    def identities(self) -> tuple[str, ...]:
        return tuple(self._grants)

    def verify(self, bus_topic: str, raw: bytes | str, *, retained: bool = False) -> AuthorizedCommand:
        if retained:
            raise CommandRefused(
                "retained messages are never commands (a retained command would run on every reconnect)"
            )
        action = action_of_topic(bus_topic)
        if action is None:
            raise CommandRefused(f"{shown(bus_topic, 80)} is not a command topic")
        data = _parse(raw)
        request_id = _request_id(data)
        identity = data.get("identity")
        if not isinstance(identity, str) or set(data) != ENVELOPE_KEYS:
            missing = sorted(ENVELOPE_KEYS - set(data))
            raise CommandRefused(
                "unsigned or malformed command envelope"
                + (f" (missing {', '.join(missing)})" if missing else ""),
                request_id=request_id,
            )
        grant = self._grants.get(identity)
        if grant is None:
            raise CommandRefused(f"unknown identity {shown(identity, 64)!r}", request_id=request_id)
        ts, nonce, command, sig = data["ts"], data["nonce"], data["command"], data["sig"]
        if (
            not isinstance(ts, (int, float))
            or isinstance(ts, bool)
            or not math.isfinite(ts)
            or not isinstance(nonce, str)
            or not 16 <= len(nonce) <= 128
            or not isinstance(command, dict)
            or not isinstance(sig, str)
        ):
            raise CommandRefused(
                "malformed command envelope (ts, nonce, command or sig)",
                identity=identity,
                request_id=request_id,
            )
        try:
            addressed = daemon_topic(self.daemon_id, bus_topic)
            expected = signature(grant.secret, canonical(addressed, identity, float(ts), nonce, command))
        except ValueError as exc:  # e.g. NaN somewhere in the command: cannot be canonical
            raise CommandRefused(
                f"command cannot be signed canonically: {exc}", identity=identity, request_id=request_id
            ) from None
        if not hmac.compare_digest(expected, sig):
            raise CommandRefused(
                f"bad signature for identity {identity!r} (wrong secret, the topic or payload was "
                f"changed, or it was signed for another daemon than {self.daemon_id!r})",
                identity=identity,
                request_id=request_id,
            )
        # From here on the identity is proven; what remains is whether this message may act now.
        now = self.clock()
        if abs(now - ts) > self.max_skew_s:
            raise CommandRefused(
                f"stale command: signed {now - ts:+.1f} s from now (allowed ±{self.max_skew_s:g} s; "
                "check both clocks)",
                identity=identity,
                request_id=request_id,
            )
        if ts < self.started_at - 0.5:
            raise CommandRefused(
                "stale command: signed before this daemon started (a replay after a restart?)",
                identity=identity,
                request_id=request_id,
            )
        self._forget_old(now)
        if (identity, nonce) in self._nonces:
            raise CommandRefused(
                "replayed command (its nonce was already used)", identity=identity, request_id=request_id
            )
        try:
            parsed = RolloutCommand.model_validate(command)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "command"
            raise CommandRefused(
                f"invalid command: {where}: {err['msg']}", identity=identity, request_id=request_id
            ) from None
        if parsed.action != action:
            raise CommandRefused(
                f"the topic says {action} but the command says {parsed.action}",
                identity=identity,
                request_id=request_id,
            )
        if parsed.action not in grant.actions:
            raise CommandRefused(
                f"identity {identity!r} may not {parsed.action} (allowed: "
                f"{', '.join(sorted(grant.actions))})",
                identity=identity,
                request_id=request_id,
            )
        self._nonces[(identity, nonce)] = float(ts)
        return AuthorizedCommand(parsed, identity=identity, via="mqtt", targets=grant.targets)

    def _forget_old(self, now: float) -> None:
        horizon = now - 2 * self.max_skew_s
        while self._nonces:
            key, ts = next(iter(self._nonces.items()))
            if ts >= horizon and len(self._nonces) < MAX_NONCES:
                break
            self._nonces.popitem(last=False)


def targets_allowed(patterns: tuple[str, ...], targets: list[str] | tuple[str, ...]) -> list[str]:
    """The targets none of `patterns` allows (empty: all allowed)."""
    return [t for t in targets if not any(fnmatchcase(t, p) for p in patterns)]


def _parse(raw: bytes | str) -> dict[str, Any]:
    size = len(raw)
    if size > MAX_COMMAND_BYTES:
        raise CommandRefused(f"command of {size} bytes refused (at most {MAX_COMMAND_BYTES})")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise CommandRefused("command is not JSON") from None
    except RecursionError:
        raise CommandRefused("command JSON is nested too deeply") from None
    if not isinstance(data, dict):
        raise CommandRefused("command is not a JSON object")
    if _depth(data) > MAX_JSON_DEPTH:
        raise CommandRefused(f"command JSON is nested deeper than {MAX_JSON_DEPTH} levels")
    return data


def _depth(value: Any, level: int = 1) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level


def _request_id(data: dict[str, Any]) -> str | None:
    """The request id, only so a sender can match a refusal (a bare unsigned command carries it on top)."""
    command = data.get("command")
    rid = command.get("request_id") if isinstance(command, dict) else data.get("request_id")
    return rid if isinstance(rid, str) and len(rid) <= 128 and rid.isprintable() else None


OnRefused = Callable[[CommandRefused, str], Awaitable[None]]
MAX_AUDITED_REFUSALS_PER_MIN = 60


class RefusalAudit:
    """Refused commands told to the sender and the audit log (`on_refused`), at a bounded rate: a flood of
    junk on the broker or the HTTP API must not fill the database. Beyond the bound, a count per minute."""

    def __init__(
        self, channel: str, on_refused: OnRefused | None, *, clock: Callable[[], float] = time.monotonic
    ):
        self.channel, self.on_refused, self.clock = channel, on_refused, clock
        self._window_start = clock()
        self._in_window = 0
        self._unreported = 0

    async def report(self, refused: CommandRefused, bus_topic: str) -> None:
        now = self.clock()
        if now - self._window_start >= 60.0:
            if self._unreported:
                log.warning(
                    "%s: %d more refused command(s) in the last minute were not audited one by one",
                    self.channel,
                    self._unreported,
                )
            self._window_start, self._in_window, self._unreported = now, 0, 0
        self._in_window += 1
        if self._in_window > MAX_AUDITED_REFUSALS_PER_MIN:
            self._unreported += 1
            return
        if self.on_refused is not None:
            await self.on_refused(refused, bus_topic)
        else:
            log.warning("%s: command on %s refused: %s", self.channel, shown(bus_topic, 120), refused.reason)
