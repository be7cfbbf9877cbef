"""A target read through a real Prometheus (issue 17 item 6) against the same real vLLM read directly.

Prometheus (Debian's package, started by the test kit) scrapes the kit's vLLM CPU server every 0.5 s. A burst
of requests sharing a prefix runs between two direct scrapes; the PromQL source is then read over a window
that spans the same scrapes. The two must agree: the prefix hit rate (a ratio of two `increase()`s, so
Prometheus' extrapolation cancels out) and the TTFT p50/p95 within one histogram bucket (extrapolation scales
a bucket that was empty before the window a little differently from the others). Then the real poller reads
it through PromQL with `engine = "auto"`: UP, detected as vLLM, its model and cache config learnt.
"""

from __future__ import annotations

import asyncio
import bisect
import time

import httpx
import pytest

from daemon import prom
from daemon.collectors import read
from daemon.collectors.window import build_sample
from daemon.config import parse_config
from daemon.models import InstanceState
from daemon.poller import Poller
from daemon.prometheus_source import PromqlReader
from testkit.prometheus import start_prometheus

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


async def scrape(client: httpx.AsyncClient, url: str):  # type: ignore[no-untyped-def]
    response = await client.get(f"{url}/metrics")
    return read(prom.parse(response.content), "vllm", time.time())


async def wait_until_scraped_after(client: httpx.AsyncClient, prom_url: str, ts: float) -> None:
    """Until Prometheus holds a scrape of the server taken after `ts` (so its window ends where ours does)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = await client.get(f"{prom_url}/api/v1/query", params={"query": 'timestamp(up{job="charter"})'})
        result = r.json()["data"]["result"]
        if result and float(result[0]["value"][1]) > ts + 0.6:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("Prometheus did not scrape the kit's vLLM within 60 s")


def config_toml(prom_url: str, engine: str = "auto", selector: str = '{job="charter"}') -> str:
    return (
        "[daemon]\nmetrics_port = 0\ndiscover = false\n"
        '[[targets]]\nname = "kit"\nurl = "http://127.0.0.1:9"\ntimeout_s = 10\n'
        f'engine = "{engine}"\nsource = "prometheus"\n'
        f"[targets.prometheus]\nurl = \"{prom_url}\"\nselector = '{selector}'\n"
    )


async def test_promql_source_agrees_with_direct_scraping_over_the_same_window(vllm_server) -> None:  # type: ignore[no-untyped-def]
    with start_prometheus([vllm_server.url], interval_s=0.5) as prometheus:
        async with httpx.AsyncClient(timeout=120) as client:
            await wait_until_scraped_after(client, prometheus.url, time.time())
            before = await scrape(client, vllm_server.url)
            await wait_until_scraped_after(client, prometheus.url, before.ts)
            for i in range(8):  # a shared prefix: hits after the first request
                r = await client.post(
                    f"{vllm_server.url}/v1/completions",
                    json={
                        "model": vllm_server.model,
                        "prompt": "fleet prefix " * 60 + str(i),
                        "max_tokens": 4,
                    },
                )
                r.raise_for_status()
            await asyncio.sleep(0.6)
            after = await scrape(client, vllm_server.url)
            await wait_until_scraped_after(client, prometheus.url, after.ts)
            direct = build_sample("kit", after, before).sample

            config = parse_config(config_toml(prometheus.url, engine="vllm"))
            # The window reaches back to the scrape before `before`: both sides see the same burst.
            window_s = time.time() - before.ts + 0.4
            via_prometheus = (await PromqlReader(config.targets[0], window_s, 1 << 22).read(client)).sample

    assert direct.prefix_queries and direct.prefix_hit_rate is not None and direct.prefix_hit_rate > 0.3
    assert via_prometheus.prefix_hit_rate == pytest.approx(direct.prefix_hit_rate, abs=0.005)
    bounds = sorted(after.histograms["ttft"].buckets)
    for field in ("ttft_p50_s", "ttft_p95_s"):
        ours, theirs = getattr(direct, field), getattr(via_prometheus, field)
        assert ours is not None and theirs is not None, field
        assert abs(bisect.bisect_left(bounds, ours) - bisect.bisect_left(bounds, theirs)) <= 1, (
            field,
            ours,
            theirs,
        )
    assert via_prometheus.window_s == pytest.approx(window_s) and via_prometheus.engine == "vllm"


async def test_the_poller_reads_a_prometheus_sourced_target_and_says_why_when_it_cannot(vllm_server) -> None:  # type: ignore[no-untyped-def]
    with start_prometheus([vllm_server.url], interval_s=0.5) as prometheus:
        async with httpx.AsyncClient(timeout=60) as client:
            await wait_until_scraped_after(client, prometheus.url, time.time())
            await client.post(
                f"{vllm_server.url}/v1/completions",
                json={"model": vllm_server.model, "prompt": "poller prefix " * 30, "max_tokens": 2},
            )
        config = parse_config(config_toml(prometheus.url))
        poller = Poller(config, None)
        try:
            assert await poller.poll_target(config.targets[0])
            status = poller.status["kit"]
            assert status.state == InstanceState.UP and status.engine == "vllm"
            assert status.info["models"] == [vllm_server.model]
            assert status.info["cache_config"]["block_size"] and "job" not in status.info["cache_config"]
        finally:
            await poller.aclose()

        nothing = parse_config(config_toml(prometheus.url, selector='{job="no-such-job"}'))
        poller = Poller(nothing, None)
        try:
            assert not await poller.poll_target(nothing.targets[0])
            status = poller.status["kit"]
            assert status.state == InstanceState.DOWN
            assert 'no vLLM, SGLang or Triton series matching {job="no-such-job"}' in (status.reason or "")
        finally:
            await poller.aclose()
