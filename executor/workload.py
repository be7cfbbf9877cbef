"""The concrete calls of one run, as data: what to send, and what each send waits for.

A prompt is a list of pieces: literal text, or a reference to something only known while the run
goes on (another execution's output, the outputs of earlier iterations of a growing history, a
volatile value such as a clock reading). `render` turns the pieces into text once the outputs it
refers to exist. Dependencies are explicit, so the same workload can be run one call at a time in
source order (naive) or as concurrently as its data flow allows (optimized).
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class OutputRef:
    """The output of an execution; `index` picks one of an `n=` fan-out's outputs (None: all, joined)."""

    execution: str
    index: int | None = None


@dataclass(frozen=True)
class HistoryRef:
    """Earlier iterations' outputs, each on its own line: a replayed growing history."""

    executions: tuple[str, ...]


@dataclass(frozen=True)
class VolatileRef:
    """A value that is different on every request (`uuid4()`, `datetime.now()`, `time.time()`, random)."""

    expr: str


@dataclass(frozen=True)
class RoleMark:
    """The start of a chat message: the pieces up to the next mark are its content."""

    role: str


Piece = str | OutputRef | HistoryRef | VolatileRef | RoleMark


@dataclass
class Request:
    """One prompt made concrete: its text (chat messages flattened as the compiler sees them, for
    records and common-prefix warm-ups) and, for a chat call, the messages actually sent."""

    text: str
    messages: list[dict[str, str]] | None = None


@dataclass
class Execution:
    id: str  # `c2`, or `c2#3` for the 4th iteration of a call in a loop
    call_id: str
    iteration: int  # index among the call's executions
    pieces: list[Piece]
    max_tokens: int
    n: int = 1
    deps: set[str] = field(default_factory=set)
    order_key: tuple[int, int, int] = (0, 0, 0)  # (anchor line, iteration, call line): source order
    kind: str = "call"  # or "warmup"
    group: str | None = None  # executions of one call whose iterations are independent of each other
    vec: tuple[int, ...] = ()  # iteration index in each enclosing agent loop, outermost first
    lineage: tuple[tuple[str, OutputRef], ...] = ()  # which output of each earlier call it builds on


@dataclass
class RunWorkload:
    run: int
    input_line: int
    executions: list[Execution]
    notes: list[str] = field(default_factory=list)

    def by_id(self) -> dict[str, Execution]:
        return {e.id: e for e in self.executions}


def volatile_value(expr: str) -> str:
    e = expr.lower()
    if "uuid" in e:
        return str(uuid.uuid4())
    if "now" in e or "today" in e or "datetime" in e or "date" in e:
        return datetime.now().isoformat()
    if "time" in e:
        return f"{time.time():.6f}"
    return str(random.random())


def _text(p: Piece, outputs: dict[str, list[str]]) -> str:
    if isinstance(p, str):
        return p
    if isinstance(p, OutputRef):
        texts = outputs[p.execution]
        return "\n".join(texts) if p.index is None else texts[p.index]
    if isinstance(p, HistoryRef):
        return "".join("\n" + "\n".join(outputs[e]) for e in p.executions)
    if isinstance(p, RoleMark):
        return f"<|{p.role}|>\n"  # the compiler's flattened form of a message header
    return volatile_value(p.expr)


def render(pieces: list[Piece], outputs: dict[str, list[str]]) -> str:
    return "".join(_text(p, outputs) for p in pieces)


def materialize(pieces: list[Piece], outputs: dict[str, list[str]]) -> Request:
    """Text and (for chat calls) messages from one drawing of every volatile value."""
    texts = [_text(p, outputs) for p in pieces]
    if not any(isinstance(p, RoleMark) for p in pieces):
        return Request("".join(texts))
    messages: list[dict[str, str]] = []
    lead: list[str] = []
    for p, t in zip(pieces, texts):
        if isinstance(p, RoleMark):
            messages.append({"role": p.role, "content": ""})
        elif messages:
            messages[-1]["content"] += t
        else:
            lead.append(t)  # text before the first message header: keep it, in the first message
    if lead:
        messages[0]["content"] = "".join(lead) + messages[0]["content"]
    return Request("".join(texts), messages)


def refs_of(pieces: list[Piece]) -> set[str]:
    out: set[str] = set()
    for p in pieces:
        if isinstance(p, OutputRef):
            out.add(p.execution)
        elif isinstance(p, HistoryRef):
            out.update(p.executions)
    return out
