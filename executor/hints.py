"""Scheduling hints the tracing client adds to an agent's requests, from the plan.

vLLM serves its waiting queue by `(priority, arrival)` when started with `--scheduling-policy priority`
(a request's `priority` field; lower runs first; vLLM refuses a non-zero priority from a server on the
default `fcfs` policy). Plain first-come-first-served interleaves concurrent agents: a fan-out's siblings,
which share a prefix, queue behind other agents' requests, and on a full KV cache those evict the prefix
before the siblings run. Giving every request of a prefix group the time its group was first seen keeps
first-come-first-served between groups and lets later siblings take their group's place in line: they run
while their shared prefix is still cached. The numbers are wall-clock milliseconds, so agents in
different processes on one box order against each other the same way.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

# Groups remembered per client: far more than are in flight at once; the oldest are forgotten first.
REMEMBERED_GROUPS = 4096


class PriorityLine:
    """The priority of each request: the wall-clock millisecond its prefix group was first seen (its own,
    for a request in no group)."""

    def __init__(self, clock: Callable[[], float] = time.time, remember: int = REMEMBERED_GROUPS) -> None:
        self._clock = clock
        self._remember = remember
        self._groups: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()  # the synchronous client may be shared between threads

    def place(self, group: str | None) -> int:
        with self._lock:
            if group is not None and group in self._groups:
                self._groups.move_to_end(group)
                return self._groups[group]
            place = int(self._clock() * 1000)
            if group is not None:
                self._groups[group] = place
                while len(self._groups) > self._remember:
                    self._groups.popitem(last=False)
            return place


def with_priority(kwargs: dict[str, Any], priority: int) -> dict[str, Any]:
    """The request's arguments with vLLM's `priority` in `extra_body`, unless the agent set one itself."""
    extra = dict(kwargs.get("extra_body") or {})
    if "priority" in extra:
        return kwargs
    extra["priority"] = priority
    return {**kwargs, "extra_body": extra}
