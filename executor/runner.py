"""Carry out one run's workload against a target in a mode, and measure it from both sides.

Client side: each request's send time, time to first token (streamed) and latency, and the run's
makespan (first send to last answer, warm-ups included: they are part of the plan's cost). Server
side: the counters over exactly the run's window (`counters`), and the block-level ceiling of the
prompts actually sent (`ceiling`, on the server's own token ids). A failed call stops the run and
raises `ExecutionError` naming the mode, the run, the call and the input line.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Literal

from executor import counters
from executor.ceiling import CeilingTracker
from executor.errors import CallFailed, CallTimeout, ExecutionError, TargetDown
from daemon.bench.records import CallRecord, Mode, RunResult
from daemon.supervisor import cancel_and_wait
from executor.schedule import MIN_WARMUP_CHARS, MIN_WARMUP_TOKENS, common_prefix, groups, naive_order
from executor.targets import Outcome, Target
from executor.workload import Execution, Request, RunWorkload, materialize


@dataclass
class RunOptions:
    timeout_s: float = 120.0  # per request
    concurrency: int = 32  # optimized mode: requests in flight at once
    inputs_name: str = ""  # for error messages: the inputs file


@dataclass
class _Sent:
    record: CallRecord
    request: Request
    prompt_ids: list[int] | None = None
    output_ids: list[int] | None = None


class _Run:
    def __init__(self, target: Target, workload: RunWorkload, mode: Mode, options: RunOptions) -> None:
        self.target, self.workload, self.mode, self.options = target, workload, mode, options
        self.outputs: dict[str, list[str]] = {}
        self.sent: list[_Sent] = []
        self.t0 = 0.0

    def _error(self, call: str, reason: str) -> ExecutionError:
        return ExecutionError(
            reason,
            mode=self.mode,
            run=self.workload.run,
            call=call,
            input_line=self.workload.input_line,
            inputs=self.options.inputs_name,
        )

    async def send(
        self,
        execution: str,
        call_id: str,
        kind: Literal["call", "warmup"],
        request: Request,
        max_tokens: int,
        n: int,
        ids: list[int] | None = None,
    ) -> Outcome:
        """Send a request (`ids`: a warm-up given as token ids) and record it; n > 1 sends siblings."""
        sent_s = time.perf_counter() - self.t0
        prompt: str | list[int] = ids if ids is not None else request.text
        messages = request.messages if ids is None and self.target.engine == "vllm" else None
        try:
            outcomes = await self._fanout(prompt, messages, max_tokens, n)
            texts = [o.text for o in outcomes]
        except CallTimeout as exc:
            raise self._error(execution, f"timed out: {exc}") from None
        except CallFailed as exc:
            raise self._error(execution, f"the server refused it: {exc}") from None
        except TargetDown as exc:
            raise self._error(execution, str(exc)) from None
        if kind == "call":
            self.outputs[execution] = texts
        for i, outcome in enumerate(outcomes):
            label = execution if n == 1 else f"{execution}/{i}"
            self.sent.append(
                _Sent(
                    CallRecord(
                        execution=label,
                        call_id=call_id,
                        kind=kind,
                        prompt_chars=len(request.text),
                        prompt_tokens=outcome.prompt_tokens,
                        completion_tokens=outcome.completion_tokens,
                        cached_tokens=outcome.cached_tokens,
                        sent_s=sent_s,
                        ttft_s=outcome.ttft_s,
                        latency_s=outcome.latency_s,
                        output_chars=len(outcome.text),
                    ),
                    request,
                    outcome.prompt_ids if outcome.prompt_ids is not None else ids,
                    outcome.output_ids,
                )
            )
        return outcomes[0]

    async def _fanout(
        self, prompt: str | list[int], messages: list[dict[str, str]] | None, max_tokens: int, n: int
    ) -> list[Outcome]:
        """One request, or for `n=` siblings n requests for the same prompt sent together (vLLM expands
        `n` into the same n sequences; separate requests keep per-sibling timings and usage)."""
        timeout = self.options.timeout_s
        if n == 1:
            return [await self.target.complete(prompt, max_tokens, timeout, messages)]
        results = await asyncio.gather(
            *(self.target.complete(prompt, max_tokens, timeout, messages) for _ in range(n))
        )
        return list(results)

    def request_of(self, e: Execution) -> Request:
        return materialize(e.pieces, self.outputs)

    async def warmup_prefix(self, requests: list[Request]) -> tuple[Request, list[int] | None] | None:
        """The prefix a group's requests share, as the request to warm it with (None: too short).

        Plain prompts: their common text, sent as text. Chat requests: the server renders them with
        its own chat template, which only it knows, so their common prefix is taken over the token
        ids it gives for each (`/tokenize` with the messages, all at once) and sent as ids.
        """
        if all(r.messages is None for r in requests) or self.target.engine != "vllm":
            prefix = common_prefix([r.text for r in requests])
            return (Request(prefix), None) if len(prefix) >= MIN_WARMUP_CHARS else None
        ids = await asyncio.gather(*(self.target.tokenize(r.text, r.messages) for r in requests))
        if any(i is None for i in ids):
            return None
        lists = [i for i in ids if i is not None]
        n = 0
        for column in zip(*lists):
            if any(t != column[0] for t in column):
                break
            n += 1
        if len(lists) == 1:
            n -= 1  # a fan-out of one request: its whole prompt but the token the siblings recompute
        return (
            (Request(common_prefix([r.text for r in requests])), lists[0][:n])
            if n >= MIN_WARMUP_TOKENS
            else None
        )

    # --- modes ----------------------------------------------------------------------------------
    async def naive(self) -> None:
        for e in naive_order(self.workload.executions):
            await self.send(e.id, e.call_id, "call", self.request_of(e), e.max_tokens, e.n)

    async def optimized(self) -> None:
        executions = self.workload.executions
        by_id = {e.id: e for e in executions}
        group_of: dict[str, str] = {}
        members = groups(executions)
        for gid, es in members.items():
            for e in es:
                group_of[e.id] = gid
        done: dict[str, asyncio.Event] = {e.id: asyncio.Event() for e in executions}
        gate = asyncio.Semaphore(self.options.concurrency)
        warmed: dict[str, asyncio.Task[None]] = {}

        async def wait_deps(e: Execution) -> None:
            for d in e.deps:
                if d in done:
                    await done[d].wait()

        async def warm(gid: str) -> None:
            es = members[gid]
            for e in es:  # the whole group must be renderable: every member's inputs exist
                await wait_deps(e)
            warm_request = await self.warmup_prefix([self.request_of(e) for e in es])
            if warm_request is not None:
                request, ids = warm_request
                async with gate:
                    await self.send(
                        f"warmup:{gid.split(':')[0]}", es[0].call_id, "warmup", request, 1, 1, ids
                    )

        async def one(e: Execution) -> None:
            await wait_deps(e)
            gid = group_of.get(e.id)
            if gid is not None:
                if gid not in warmed:
                    warmed[gid] = asyncio.ensure_future(warm(gid))
                await warmed[gid]
            async with gate:
                await self.send(e.id, e.call_id, "call", self.request_of(e), e.max_tokens, e.n)
            done[e.id].set()

        tasks = [asyncio.ensure_future(one(by_id[e.id])) for e in naive_order(executions)]
        try:
            await asyncio.gather(*tasks)
        finally:
            await cancel_and_wait([*tasks, *warmed.values()])


async def run_workload(
    target: Target,
    workload: RunWorkload,
    mode: Mode,
    options: RunOptions,
    round_no: int = 0,
    ceiling: CeilingTracker | None = None,
) -> RunResult:
    """Run one workload. `ceiling` carries the block-level ceiling across the runs of a mode (the
    server's cache does too); without it the run's ceiling assumes a cache that starts empty."""
    run = _Run(target, workload, mode, options)
    before = await counters.snapshot(target)
    run.t0 = time.perf_counter()
    if mode == "optimized":
        await run.optimized()
    else:
        await run.naive()
    makespan = time.perf_counter() - run.t0
    after = await counters.settle(target, before, len(run.sent))
    result = RunResult(
        mode=mode,
        round=round_no,
        run=workload.run,
        input_line=workload.input_line,
        makespan_s=makespan,
        calls=[s.record for s in sorted(run.sent, key=lambda s: s.record.sent_s)],
        server=counters.window(before, after),
    )
    if target.block_size:
        ordered = sorted(run.sent, key=lambda s: s.record.sent_s)
        tokens: list[list[int]] = []
        generated: list[list[int]] = []
        for s in ordered:
            ids = (
                s.prompt_ids
                if s.prompt_ids is not None
                else await target.tokenize(s.request.text, s.request.messages)
            )
            if ids is None:
                break
            tokens.append(ids)
            generated.append(s.output_ids or [])
        else:
            tracker = ceiling or CeilingTracker(target.block_size)
            result.ceiling = tracker.add(tokens, generated)
    return result
