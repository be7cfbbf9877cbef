"""Replayed inference servers: one process serving many loopback ports, each one real capture.

    python -m benchmarks.soak.replay SPEC.json      # prints one JSON line {"ports": {...}} when listening

SPEC: {"epoch": <unix time>, "targets": [{"name": ..., "kind": ..., "port": 0|N, "knob": path|null}]}.
Kinds: `vllm`, `vllm-load`, `triton` (the captures in /work/shared/fixtures/metrics, counters advancing
with wall time since `epoch`, so a restarted process continues where the last one was and rates are
real), `knob` (vllm whose generation rate halves while its knob file says batch=64: a regression the
canary validation must catch) and the hostile ones: `huge` (8,000,000 bytes over the line cap),
`nan` (NaN/Inf/negative gauges), `hang` (accepts, never answers), `escape` (terminal escape
sequences in label values and help text), `reset` (counters fall back to the capture every 20 s).
Health endpoints answer 200 so a target looks like the server it replays.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import signal
import sys
import time
from pathlib import Path

FIXTURES = Path("/work/shared/fixtures/metrics")
CAPTURES = {
    "vllm": "vllm-0.32.0-cpu.prom",
    "vllm-load": "vllm-0.32.0-cpu-under-load.prom",
    "triton": "triton-2.51.0-cpu-core.prom",
}
HUGE_BYTES = 8_000_000
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$")
MAX_REQUEST = 16 * 1024


def fixtures_dir() -> Path:
    here = FIXTURES
    if not here.exists():  # the repository's own copy of the vLLM capture, on a machine without /work/shared
        here = Path(__file__).resolve().parents[2] / "tests" / "daemon" / "fixtures"
    return here


class Template:
    """A capture split into static text and counter slots, so a scrape is one join, not a parse."""

    def __init__(self, text: str) -> None:
        kinds: dict[str, str] = {}
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ", 3)
                kinds[name] = kind.strip()
        self.parts: list[str] = []
        self.bases: list[float] = []
        self.rates: list[float] = []
        self.token_slots: list[int] = []  # generation-token counters: the knob's regression lever
        static: list[str] = []
        for line in text.splitlines():
            m = SAMPLE.match(line)
            rate = self._rate(m, kinds) if m else None
            if m is None or rate is None:
                static.append(line + "\n")
                continue
            static.append(m.group(1) + (m.group(2) or "") + " ")
            self.parts.append("".join(static))
            static = []
            if m.group(1) == "vllm:generation_tokens_total":
                self.token_slots.append(len(self.bases))
                rate = 100.0  # tokens/s: a halving is far past the validation's 1 token/s noise floor
            self.bases.append(float(m.group(3)))
            self.rates.append(rate)
            static.append("\n")
        self.parts.append("".join(static))

    @staticmethod
    def _rate(m: re.Match[str], kinds: dict[str, str]) -> float | None:
        """Per-second growth of a counter-like sample, None for gauges and `_created` stamps."""
        name, value = m.group(1), m.group(3)
        try:
            base = float(value)
        except ValueError:
            return None
        if not math.isfinite(base) or name.endswith("_created"):
            return None
        family = next(
            (
                f
                for f in (
                    name,
                    name.removesuffix("_total"),
                    name.removesuffix("_bucket"),
                    name.removesuffix("_count"),
                    name.removesuffix("_sum"),
                )
                if f in kinds
            ),
            None,
        )
        kind = kinds.get(family or "", "")
        if kind == "counter":
            return max(1.0, base / 100.0)
        if kind == "histogram":
            if name.endswith("_sum"):
                return 0.001  # every new observation is tiny: it lands in the first bucket
            if name.endswith("_bucket") or name.endswith("_count"):
                return 1.0  # the same for every bucket, so buckets stay monotone in `le`
        return None

    def render(self, elapsed: float, token_elapsed: float | None = None) -> bytes:
        """The capture `elapsed` seconds on; generation-token counters `token_elapsed` seconds on
        (a knob target's token clock runs slower while its setting is the bad one)."""
        out = [self.parts[0]]
        tokens = set(self.token_slots)
        for i, (base, rate) in enumerate(zip(self.bases, self.rates)):
            grown = rate * (token_elapsed if token_elapsed is not None and i in tokens else elapsed)
            out.append(repr(base + grown))
            out.append(self.parts[i + 1])
        return "".join(out).encode()


def huge_body() -> bytes:
    """8,000,000 bytes of valid exposition in ~100,000 short unique lines (poll_hostile's `long`
    shape): over the daemon's default line cap, so it must be refused unparsed, every poll."""
    from benchmarks.poll_hostile import hostile_exposition

    return hostile_exposition("long", HUGE_BYTES)


def nan_body(elapsed: float) -> bytes:
    return (
        '# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name="tiny"} NaN\n'
        '# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name="tiny"} -7\n'
        '# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{model_name="tiny"} +Inf\n'
        "# TYPE vllm:prompt_tokens_total counter\n"
        f'vllm:prompt_tokens_total{{model_name="tiny"}} {-elapsed}\n'
        '# TYPE vllm:generation_tokens_total counter\nvllm:generation_tokens_total{model_name="tiny"} -Inf\n'
        "# TYPE vllm:time_to_first_token_seconds histogram\n"
        'vllm:time_to_first_token_seconds_bucket{le="0.1",model_name="tiny"} NaN\n'
        'vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="tiny"} -3\n'
        'vllm:time_to_first_token_seconds_count{model_name="tiny"} -3\n'
        'vllm:time_to_first_token_seconds_sum{model_name="tiny"} NaN\n'
    ).encode()


def escape_body(template: Template, elapsed: float) -> bytes:
    evil = "\\x1b]0;pwned\\x07\x1b[2J\x1b[31mRED\x1b[0m\u202e\u0007"
    text = template.render(elapsed).decode().replace('model_name="tiny"', f'model_name="{evil}"')
    return (
        "# HELP vllm:evil \x1b[1;31mbold\x1b[0m\x1b]8;;http://x\x07link\n# TYPE vllm:evil gauge\n"
        f'vllm:evil{{engine="{evil}"}} 1\n' + text
    ).encode()


class Replay:
    def __init__(self, spec: dict) -> None:
        self.epoch = float(spec["epoch"])
        self.targets = spec["targets"]
        base = fixtures_dir()
        texts = {
            k: (base / v).read_text() if (base / v).exists() else (base / CAPTURES["vllm"]).read_text()
            for k, v in CAPTURES.items()
        }
        self.templates = {k: Template(t) for k, t in texts.items()}
        self.huge = huge_body() if any(t["kind"] == "huge" for t in self.targets) else b""
        self.scrapes = 0
        self.token_clock: dict[str, tuple[float, float]] = {}

    def body(self, target: dict) -> bytes:
        now = time.time()
        elapsed = now - self.epoch
        kind = target["kind"]
        if kind in ("vllm", "vllm-load", "triton"):
            return self.templates[kind].render(elapsed)
        if kind == "knob":
            factor = 1.0
            try:
                if json.loads(Path(target["knob"]).read_text()).get("batch") == "64":
                    factor = 0.5
            except (OSError, ValueError):
                pass
            # Integrated, so the counter keeps rising (only its rate changes): a fall would be a reset.
            last, clock = self.token_clock.get(target["name"], (now, elapsed))
            clock += (now - last) * factor
            self.token_clock[target["name"]] = (now, clock)
            return self.templates["vllm"].render(elapsed, token_elapsed=clock)
        if kind == "huge":
            return self.huge
        if kind == "nan":
            return nan_body(elapsed)
        if kind == "escape":
            return escape_body(self.templates["vllm"], elapsed)
        if kind == "reset":
            return self.templates["vllm"].render(elapsed % 20.0)
        raise ValueError(f"unknown kind {kind}")

    def answer(self, target: dict, path: bytes) -> tuple[bytes, bytes, bytes]:
        if path.startswith(b"/metrics"):
            return b"200 OK", b"text/plain; version=0.0.4", self.body(target)
        if path in (b"/health", b"/v2/health/live", b"/v2/health/ready"):
            return b"200 OK", b"text/plain", b""
        if path == b"/v1/models":
            return (
                b"200 OK",
                b"application/json",
                b'{"object":"list","data":[{"id":"tiny","object":"model"}]}',
            )
        if path == b"/version":
            return b"200 OK", b"application/json", b'{"version":"0.32.0"}'
        return b"404 Not Found", b"text/plain", b"not found\n"

    async def handle(self, target: dict, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if target["kind"] == "hang":
                await reader.read(MAX_REQUEST)
                await asyncio.sleep(3600)  # never answers: the daemon's timeout must cut it off
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                parts = request.split(b" ", 2)
                path = parts[1] if len(parts) > 2 else b"/"
                status, ctype, payload = self.answer(target, path)
                self.scrapes += 1
                writer.write(
                    b"HTTP/1.1 "
                    + status
                    + b"\r\nContent-Type: "
                    + ctype
                    + b"\r\nContent-Length: "
                    + str(len(payload)).encode()
                    + b"\r\n\r\n"
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    async def main(self) -> None:
        ports: dict[str, int] = {}
        servers = []
        for target in self.targets:
            srv = await asyncio.start_server(
                lambda r, w, t=target: self.handle(t, r, w),
                "127.0.0.1",
                int(target.get("port") or 0),
                reuse_address=True,
                limit=MAX_REQUEST,
            )
            servers.append(srv)
            ports[target["name"]] = srv.sockets[0].getsockname()[1]
        print(json.dumps({"ports": ports}), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(Replay(json.loads(Path(sys.argv[1]).read_text())).main())
