"""Targets read through PromQL (issue 17 item 6), the pure half and the edge: the selector a user writes
cannot become another query, the answer a server sends is bounded and checked like a /metrics, and the
sample it makes means what a scraped one means. The real Prometheus is in
tests/integration/test_prometheus_source.py."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs

import httpx
import pytest

from daemon.collectors import promql
from daemon.config import parse_config
from daemon.errors import ConfigError
from daemon.prometheus_source import PromqlReader
from tests.daemon.helpers import MetricsServer, Response, closed_port_url


def vector(*series: tuple[dict[str, str], str]) -> bytes:
    return json.dumps(
        {
            "status": "success",
            "data": {
                "resultType": "vector",
                "result": [{"metric": m, "value": [1.7e9, v]} for m, v in series],
            },
        }
    ).encode()


def sig(name: str, **labels: str) -> dict[str, str]:
    return {promql.SIGNAL_LABEL: name, **labels}


# --- the selector -----------------------------------------------------------------------------


def test_a_selector_is_parsed_into_matchers_and_rendered_back_with_the_queries_own() -> None:
    matchers = promql.parse_selector('{ job="vllm" , instance=~"gpu-1:.*",model_name!="x\\"y" }')
    assert [m.render() for m in matchers] == ['job="vllm"', 'instance=~"gpu-1:.*"', 'model_name!="x\\"y"']
    query = promql.engine_query("vllm", matchers, 60)
    assert 'vllm:prompt_tokens_total{job="vllm",instance=~"gpu-1:.*",model_name!="x\\"y"}[60000ms]' in query
    assert (
        'vllm:request_success_total{job="vllm",instance=~"gpu-1:.*",model_name!="x\\"y",finished_reason="error"}'
        in query
    )


@pytest.mark.parametrize(
    ("selector", "why"),
    [
        ('{job="x"}) or vector(1) or (up{a="b"}', "expected ','"),  # an expression smuggled in
        ('{job="x"} or up{a="b"}', "expected ','"),
        ('{job="x"} or vector(1)', "label matchers in braces"),
        ('{job="x" instance="y"}', "expected ','"),
        ("{}", "at least one matcher"),
        ('{job=""}', "at least one matcher"),
        ('{job=~".*"}', "at least one matcher"),
        ('{__name__="up"}', "__name__ is chosen"),
        ('job="x"', "label matchers in braces"),
        ('{job="unterminated}', "not a label matcher"),
        ('{job="a\nb"}', "not a label matcher"),
        ("{" + 'job="x",' * 200 + "}", "longer than"),
    ],
)
def test_a_selector_that_is_not_only_label_matchers_is_refused_saying_why(selector: str, why: str) -> None:
    with pytest.raises(promql.SelectorError, match=why):
        promql.parse_selector(selector)


def test_every_signal_is_one_tagged_branch_of_one_query() -> None:
    matchers = promql.parse_selector('{job="kit"}')
    for engine in promql.PROMQL_ENGINES:
        query = promql.engine_query(engine, matchers, 30)
        branches = query.count(f'"{promql.SIGNAL_LABEL}"')
        assert branches == len(promql.ENGINE_SIGNALS[engine](promql.Sel(matchers), "30000ms")) + 1  # + up
        assert 'label_replace((max(up{job="kit"}))' in query
    assert promql.detect_query(matchers).count("__name__=~") == len(promql.ENGINE_MARKERS)


# --- the answer -------------------------------------------------------------------------------


def test_an_answer_becomes_the_same_windowed_sample_a_scrape_makes() -> None:
    answer = promql.parse_answer(
        vector(
            (sig("running"), "2"),
            (sig("prefix_queries"), "1000"),
            (sig("prefix_hits"), "250"),
            (sig("ttft_p95_s"), "0.08"),
            (sig("ttft_mean_s"), "0.05"),
            (sig("requests_failure_per_s"), "0.5"),
            (sig("requests_rejected_per_s"), "0.25"),
            (sig("resets"), "1"),
            (sig("itl_p50_s"), "NaN"),  # 0/0: no tokens in the window
            (sig("models", model_name="tiny"), "1"),
            (sig("cache_config", __name__="vllm:cache_config_info", job="kit", block_size="16"), "1"),
            ({"no_signal": "x"}, "5"),
        )
    )
    result = promql.build_result("a", "vllm", answer, 1.7e9, 60.0)
    s = result.sample
    assert (s.running, s.prefix_hit_rate, s.ttft_p95_s, s.ttft_mean_s, s.window_s) == (
        2,
        0.25,
        0.08,
        0.05,
        60,
    )
    assert s.requests_failure_per_s == 0.75 and s.counter_reset and s.itl_p50_s is None and not s.suspect
    assert promql.info_from(answer, {"job"}) == {"models": ["tiny"], "cache_config": {"block_size": "16"}}


def test_hostile_answers_are_refused_or_marked_never_read_as_data() -> None:
    inf = promql.build_result(
        "a", "vllm", promql.parse_answer(vector((sig("kv_cache_usage"), "+Inf"))), 1, 60
    )
    assert (
        inf.sample.kv_cache_usage is None
        and inf.sample.suspect
        and "infinite" in (inf.sample.suspect_reason or "")
    )
    out_of_range = promql.build_result(
        "a", "vllm", promql.parse_answer(vector((sig("kv_cache_usage"), "-5"))), 1, 60
    )
    assert out_of_range.sample.kv_cache_usage is None and out_of_range.sample.suspect
    refused = json.dumps(
        {"status": "error", "errorType": "bad_data", "error": "parse error \x1b[2J at char 3"}
    )
    with pytest.raises(promql.PromqlError, match="bad_data: parse error") as exc:
        promql.parse_answer(refused.encode())
    assert exc.value.kind == "http" and "\x1b" not in str(exc.value)
    for body, kind in (
        (b"<html>proxy login</html>", "parse"),
        (json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}}).encode(), "parse"),
        (vector(*[(sig("running", i=str(i)), "1") for i in range(promql.MAX_SERIES + 1)]), "too_large"),
    ):
        with pytest.raises(promql.PromqlError) as exc:
            promql.parse_answer(body)
        assert exc.value.kind == kind


# --- the config -------------------------------------------------------------------------------

HEAD = '[[targets]]\nname = "a"\nurl = "http://127.0.0.1:8000"\n'


@pytest.mark.parametrize(
    ("toml", "why"),
    [
        ('source = "prometheus"\n', "needs a [targets.prometheus] table"),
        ('[targets.prometheus]\nurl = "http://p:9090"\nselector = \'{job="x"}\'\n', "only read with source"),
        (
            'source = "prometheus"\nengine = "tgi"\n[targets.prometheus]\nurl = "http://p:9090"\nselector = \'{job="x"}\'\n',
            "cannot be read through PromQL",
        ),
        (
            'source = "prometheus"\n[targets.prometheus]\nurl = "http://p:9090"\nselector = \'{job="x"} or vector(1)\'\n',
            "label matchers in braces",
        ),
        ('source = "prometheus"\n[targets.prometheus]\nurl = "ftp://p"\nselector = \'{job="x"}\'\n', "http"),
    ],
)
def test_a_careless_prometheus_source_is_a_config_error_naming_the_setting(toml: str, why: str) -> None:
    with pytest.raises(ConfigError, match="targets") as exc:
        parse_config(HEAD + toml)
    assert why in str(exc.value)


# --- the edge ---------------------------------------------------------------------------------


def reader_for(
    url: str, timeout_s: float = 1.0, max_bytes: int = 1 << 20, engine: str = "auto"
) -> PromqlReader:
    config = parse_config(
        HEAD + f'timeout_s = {timeout_s}\nengine = "{engine}"\nsource = "prometheus"\n'
        f'[targets.prometheus]\nurl = "{url}"\nselector = \'{{job="kit"}}\'\n'
    )
    return PromqlReader(config.targets[0], 30.0, max_bytes)


def json_response(body: bytes, status: int = 200) -> Response:
    return status, {"Content-Type": "application/json", "Content-Length": str(len(body))}, [body]


async def test_the_reader_detects_the_engine_then_asks_one_query_per_poll() -> None:
    def answer(n: int, path: str) -> Response:
        assert path == "/api/v1/query"
        if n == 1:
            return json_response(vector((sig("vllm"), "40"), (sig("triton"), "2")))
        return json_response(vector((sig("up"), "1"), (sig("running"), "3")))

    with MetricsServer(answer) as server:
        reader = reader_for(server.url)
        async with httpx.AsyncClient() as client:
            first = await reader.read(client)
            await reader.read(client)
    assert reader.engine == "vllm" and first.sample.running == 3 and first.sample.engine == "vllm"
    forms = [parse_qs(body.decode()) for body in server.posted]
    assert len(forms) == 3 and "__name__=~" in forms[0]["query"][0]
    assert forms[1]["query"][0] == promql.engine_query("vllm", reader.matchers, 30.0)
    assert abs(float(forms[2]["time"][0]) - time.time()) < 60


@pytest.mark.parametrize(
    ("respond", "kind", "says"),
    [
        (lambda n, p: json_response(vector((sig("up"), "0"))), "refused", "up == 0"),
        (lambda n, p: json_response(vector()), "engine", "no series matching"),
        (lambda n, p: json_response(b"x" * 5000), "too_large", "past 4096 bytes"),
        (lambda n, p: json_response(b"busy", status=503), "http", "HTTP 503"),
    ],
)
async def test_a_prometheus_that_cannot_help_costs_a_poll_with_the_reason(
    respond, kind: str, says: str
) -> None:  # type: ignore[no-untyped-def]
    with MetricsServer(respond) as server:
        reader = reader_for(server.url, max_bytes=4096, engine="vllm")
        async with httpx.AsyncClient() as client:
            with pytest.raises(promql.PromqlError, match=says) as exc:
                await reader.read(client)
    assert exc.value.kind == kind


async def test_a_prometheus_that_hangs_or_is_away_is_bounded_in_time() -> None:
    def hang(n: int, path: str) -> Response:
        server.release.wait(10)
        return json_response(vector())

    with MetricsServer(hang) as server:
        reader = reader_for(server.url, timeout_s=0.3, engine="vllm")
        started = time.monotonic()
        async with httpx.AsyncClient() as client:
            with pytest.raises(promql.PromqlError, match="did not answer within 0.3 s"):
                await reader.read(client)
        assert time.monotonic() - started < 5
        server.release.set()
    reader = reader_for(closed_port_url(), engine="vllm")
    async with httpx.AsyncClient() as client:
        with pytest.raises(promql.PromqlError, match="cannot reach Prometheus") as exc:
            await reader.read(client)
    assert exc.value.kind == "connect"
