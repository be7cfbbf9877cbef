"""How a run's executions are ordered: naive source order, and the optimized plan's stages.

Naive is the agent as written: one request at a time, in source order (a call inside a loop runs
all its iterations interleaved with the other calls of that loop, as Python would), no warm-up.

Optimized follows the compiler's plan: every execution starts as soon as the outputs it needs exist
(independent calls run concurrently), and a *group* — the iterations of a call whose iterations do
not feed each other, or an `n=` fan-out — is preceded by one prefill-only request (`max_tokens: 1`)
for the prefix its members share, so the siblings follow their shared prefix instead of each
prefilling it at once. The prefix is the members' concrete common prefix, computed when they are
ready: the compiler can only see up to the first run-time value, while a `.format` template filled
per iteration often shares far more (test case 2). Groups too small to share a full block skip it.
"""

from __future__ import annotations

import heapq
import os

from executor.workload import Execution

# Below this many characters (or tokens) a common prefix is unlikely to fill one 16-32 token block.
MIN_WARMUP_CHARS = 64
MIN_WARMUP_TOKENS = 16


def naive_order(executions: list[Execution]) -> list[Execution]:
    """Topological order that prefers source order (anchor line, iteration, call line)."""
    by_id = {e.id: e for e in executions}
    indegree = {e.id: len([d for d in e.deps if d in by_id]) for e in executions}
    users: dict[str, list[str]] = {e.id: [] for e in executions}
    for e in executions:
        for d in e.deps:
            if d in users:
                users[d].append(e.id)
    heap = [(e.order_key, i, e.id) for i, e in enumerate(executions) if indegree[e.id] == 0]
    heapq.heapify(heap)
    index = {e.id: i for i, e in enumerate(executions)}
    out: list[Execution] = []
    while heap:
        _, _, eid = heapq.heappop(heap)
        out.append(by_id[eid])
        for u in users[eid]:
            indegree[u] -= 1
            if indegree[u] == 0:
                heapq.heappush(heap, (by_id[u].order_key, index[u], u))
    if len(out) != len(executions):
        stuck = sorted(set(by_id) - {e.id for e in out})
        raise ValueError(f"executions depend on each other in a cycle: {', '.join(stuck)}")
    return out


def groups(executions: list[Execution]) -> dict[str, list[Execution]]:
    """Warm-up groups: the independent iterations of one call (>= 2), or one `n=` fan-out request."""
    out: dict[str, list[Execution]] = {}
    for e in executions:
        if e.group is not None:
            out.setdefault(e.group, []).append(e)
        elif e.n > 1:
            out[f"{e.id}:fanout"] = [e]
    return {k: v for k, v in out.items() if len(v) >= 2 or v[0].n > 1}


def common_prefix(texts: list[str]) -> str:
    if not texts:
        return ""
    if len(texts) == 1:
        return texts[0]
    return os.path.commonprefix(texts)
