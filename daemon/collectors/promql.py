"""A target read through PromQL from a Prometheus that already scrapes it (issue 17 item 6): no second scraper.

Pure: the queries to send and the sample their answer makes; the request itself is in
`daemon/prometheus_source.py`. Where the scrape path turns two cumulative readings into a windowed sample
(`daemon.collectors.window`), here PromQL does the windowing over the same `window_s`: rates with `rate()`,
window counts with `increase()`, percentiles with `histogram_quantile(q, sum by (le) (rate(..._bucket[w])))`,
restarts with `resets()` — so the sample means the same thing whichever way it was read.

All of a target's signals go out as one query, each branch tagged with a `charter_signal` label and joined
with `or`: one round trip per poll, and every signal evaluated at the same instant. A signal the engine
does not export is simply absent from the answer (None in the sample), as on the scrape path.

The selector is the user's (a config value): it is parsed into label matchers and re-rendered, never pasted,
so `{job="x"}) or vector(1` cannot smuggle an expression into the query.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, ValidationError

from daemon.collectors.checks import check_sample, mark_suspect
from daemon.collectors.window import WindowResult, store_extras
from daemon.models import MetricSample
from daemon.text import clean

SIGNAL_LABEL = "charter_signal"
MAX_SELECTOR_CHARS = 1024
MAX_SERIES = 2000  # one target's answer is ~40 series; more is a fault or a selector matching a fleet
MAX_LABEL_CHARS = 256
PROMQL_ENGINES = ("vllm", "sglang", "triton")

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_VALUE = r'"(?:[^"\\\n]|\\.)*"'
_MATCHER = re.compile(rf"\s*({_NAME})\s*(=~|!~|!=|=)\s*({_VALUE})\s*")
_SELECTOR = re.compile(r"^\s*\{(.*)\}\s*$", re.DOTALL)


class SelectorError(ValueError):
    pass


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str  # still quoted, as written: re-rendered verbatim (it matched a quoted-string grammar)

    def render(self) -> str:
        return f"{self.label}{self.op}{self.value}"

    @property
    def matches_empty(self) -> bool:
        inner = self.value[1:-1]
        if self.op == "=":
            return inner == ""
        if self.op == "!=":
            return inner != ""
        if self.op == "=~":
            return inner in ("", ".*", "^$", "^.*$")
        return inner not in ("", "^$")  # !~: matches "" unless it excludes the empty string


def parse_selector(text: str) -> tuple[Matcher, ...]:
    """`{job="vllm", instance=~"gpu-1:.*"}` -> its matchers; SelectorError saying why it is not one.

    At least one matcher must not match the empty string (Prometheus' own rule for a selector without a
    metric name), and `__name__` is not the user's to set: the queries choose the metrics.
    """
    if len(text) > MAX_SELECTOR_CHARS:
        raise SelectorError(f"selector longer than {MAX_SELECTOR_CHARS} characters")
    whole = _SELECTOR.match(text)
    if whole is None:
        raise SelectorError(
            'a selector is label matchers in braces, e.g. {job="vllm", instance="gpu-1:8000"}'
        )
    body, matchers, pos = whole.group(1), [], 0
    while pos < len(body):
        m = _MATCHER.match(body, pos)
        if m is None:
            raise SelectorError(
                f'not a label matcher at {body[pos : pos + 20]!r} (label="value", !=, =~ or !~)'
            )
        matchers.append(Matcher(m.group(1), m.group(2), m.group(3)))
        pos = m.end()
        if pos < len(body):
            if body[pos] != ",":
                raise SelectorError(f"expected ',' between matchers at {body[pos : pos + 20]!r}")
            pos += 1
    if any(m.label == "__name__" for m in matchers):
        raise SelectorError("__name__ is chosen by charter-tui's queries; select the target by its labels")
    if not matchers or all(m.matches_empty for m in matchers):
        raise SelectorError('at least one matcher must select a non-empty value (e.g. job="vllm")')
    return tuple(matchers)


@dataclass(frozen=True)
class Sel:
    """Renders `metric{<user matchers>, <extra>}` for the queries below."""

    matchers: tuple[Matcher, ...]

    def __call__(self, metric: str, *extra: str) -> str:
        return metric + "{" + ",".join([*(m.render() for m in self.matchers), *extra]) + "}"


def _first(*exprs: str) -> str:
    # A metric renamed across releases: the first name the server exports wins (as on the scrape path).
    return " or ".join(f"({e})" for e in exprs)


def _rate(s: Sel, w: str, metric: str, *extra: str) -> str:
    return f"sum(rate({s(metric, *extra)}[{w}]))"


def _increase(s: Sel, w: str, metric: str, *extra: str) -> str:
    return f"sum(increase({s(metric, *extra)}[{w}]))"


def _quantile(q: float, s: Sel, w: str, base: str, scale: float = 1.0) -> str:
    expr = f"histogram_quantile({q}, sum by (le) (rate({s(base + '_bucket')}[{w}])))"
    return expr if scale == 1.0 else f"{expr} * {scale}"


def _mean(s: Sel, w: str, base: str) -> str:
    return f"{_increase(s, w, base + '_sum')} / {_increase(s, w, base + '_count')}"


def _histogram_signals(s: Sel, w: str, bases: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """p50, p95 and mean of each histogram signal; a histogram renamed across releases lists its names."""
    out = {}
    for signal, names in bases.items():
        out[f"{signal}_p50_s"] = _first(*(_quantile(0.5, s, w, n) for n in names))
        out[f"{signal}_p95_s"] = _first(*(_quantile(0.95, s, w, n) for n in names))
        out[f"{signal}_mean_s"] = _first(*(_mean(s, w, n) for n in names))
    return out


def _vllm(s: Sel, w: str) -> dict[str, str]:
    ok = 'finished_reason!~"abort|error"'  # abort is the client leaving: neither success nor failure
    return {
        "running": f"sum({s('vllm:num_requests_running')})",
        "waiting": f"sum({s('vllm:num_requests_waiting')})",
        "kv_cache_usage": _first(
            f"max({s('vllm:kv_cache_usage_perc')})", f"max({s('vllm:gpu_cache_usage_perc')})"
        ),
        "prefix_queries": _first(
            _increase(s, w, "vllm:prefix_cache_queries_total"),
            _increase(s, w, "vllm:gpu_prefix_cache_queries_total"),
        ),
        "prefix_hits": _first(
            _increase(s, w, "vllm:prefix_cache_hits_total"),
            _increase(s, w, "vllm:gpu_prefix_cache_hits_total"),
        ),
        "prompt_tokens_per_s": _rate(s, w, "vllm:prompt_tokens_total"),
        "generation_tokens_per_s": _rate(s, w, "vllm:generation_tokens_total"),
        "preemptions": _increase(s, w, "vllm:num_preemptions_total"),
        "requests_success_per_s": _rate(s, w, "vllm:request_success_total", ok),
        "requests_failure_per_s": _rate(s, w, "vllm:request_success_total", 'finished_reason="error"'),
        "requests_rejected_per_s": _rate(s, w, "vllm:admission_rejections_total"),
        "prefill_seconds": _increase(s, w, "vllm:request_prefill_time_seconds_sum"),
        "resets": f"sum(resets({s('vllm:prompt_tokens_total')}[{w}]))",
        "models": f"group by (model_name) ({s('vllm:num_requests_running')})",
        "cache_config": f"{s('vllm:cache_config_info')}",
        **_histogram_signals(
            s,
            w,
            {
                "ttft": ("vllm:time_to_first_token_seconds",),
                "itl": ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
                "e2e": ("vllm:e2e_request_latency_seconds",),
                "queue": ("vllm:request_queue_time_seconds",),
            },
        ),
    }


def _sglang(s: Sel, w: str) -> dict[str, str]:
    return {
        "running": f"sum({s('sglang:num_running_reqs')})",
        "waiting": f"sum({s('sglang:num_queue_reqs')})",
        "kv_cache_usage": f"max({s('sglang:token_usage')})",
        "prefix_queries": _increase(s, w, "sglang:prompt_tokens_total"),
        "prefix_hits": _increase(s, w, "sglang:cached_tokens_total"),
        "prompt_tokens_per_s": _rate(s, w, "sglang:prompt_tokens_total"),
        "generation_tokens_per_s": _rate(s, w, "sglang:generation_tokens_total"),
        "preemptions": _increase(s, w, "sglang:num_retracted_requests_total"),
        "requests_success_per_s": _rate(s, w, "sglang:num_requests_total"),
        "resets": f"sum(resets({s('sglang:prompt_tokens_total')}[{w}]))",
        "models": f"group by (model_name) ({s('sglang:num_running_reqs')})",
        **_histogram_signals(
            s,
            w,
            {
                "ttft": ("sglang:time_to_first_token_seconds",),
                "itl": ("sglang:inter_token_latency_seconds",),
                "e2e": ("sglang:e2e_request_latency_seconds",),
                "queue": ("sglang:queue_time_seconds",),
            },
        ),
    }


def _triton(s: Sel, w: str) -> dict[str, str]:
    # Triton's core exports cumulative microseconds and counts, so its latencies are window means; TTFT
    # is a millisecond histogram (decoupled models). The TRT-LLM backend's families are read by the
    # scrape path only for now.
    success = _increase(s, w, "nv_inference_request_success")
    compute = " + ".join(
        _increase(s, w, f"nv_inference_compute_{p}_duration_us") for p in ("input", "infer", "output")
    )
    return {
        "waiting": f"sum({s('nv_inference_pending_request_count')})",
        "gpu_memory_used_bytes": f"sum({s('nv_gpu_memory_used_bytes')})",
        "gpu_memory_total_bytes": f"sum({s('nv_gpu_memory_total_bytes')})",
        "requests_success_per_s": _rate(s, w, "nv_inference_request_success"),
        "requests_failure_per_s": _rate(s, w, "nv_inference_request_failure", 'reason!="CANCELED"'),
        "e2e_mean_s": f"{_increase(s, w, 'nv_inference_request_duration_us')} / {success} * 1e-6",
        "queue_mean_s": f"{_increase(s, w, 'nv_inference_queue_duration_us')} / {success} * 1e-6",
        "compute_mean_s": f"({compute}) / {success} * 1e-6",
        "ttft_p50_s": _quantile(0.5, s, w, "nv_inference_first_response_histogram_ms", 1e-3),
        "ttft_p95_s": _quantile(0.95, s, w, "nv_inference_first_response_histogram_ms", 1e-3),
        "resets": f"sum(resets({s('nv_inference_request_success')}[{w}]))",
        "models": f"group by (model) ({s('nv_inference_request_success')})",
    }


ENGINE_SIGNALS: dict[str, Callable[[Sel, str], dict[str, str]]] = {
    "vllm": _vllm,
    "sglang": _sglang,
    "triton": _triton,
}
# Which metric names say which engine runs behind the selector (the scrape path's `score`, in PromQL).
ENGINE_MARKERS = {"vllm": "vllm:.+", "sglang": "sglang:.+", "triton": "nv_inference_.+"}

# Signals whose series carry labels worth reading (the rest are single numbers).
LABELLED = ("models", "cache_config")
MODEL_LABELS = ("model_name", "model")


def _duration(window_s: float) -> str:
    return f"{max(round(window_s * 1000), 1)}ms"  # PromQL durations take no fractions


def _tagged(signal: str, expr: str) -> str:
    return f'label_replace({expr}, "{SIGNAL_LABEL}", "{signal}", "", "")'


def engine_query(engine: str, matchers: tuple[Matcher, ...], window_s: float) -> str:
    """The one query that reads a target of `engine` over the last `window_s` seconds."""
    signals = ENGINE_SIGNALS[engine](Sel(matchers), _duration(window_s))
    # `up` says whether Prometheus itself reaches the server: 0 is a target that is down, not one
    # without traffic.
    signals["up"] = f"max({Sel(matchers)('up')})"
    return " or ".join(_tagged(name, f"({expr})") for name, expr in signals.items())


def detect_query(matchers: tuple[Matcher, ...]) -> str:
    """How many series of each engine's metrics the selector matches (the scrape path's `score`)."""
    s = Sel(matchers)
    branches = []
    for engine, marker in ENGINE_MARKERS.items():
        names = s("", f'__name__=~"{marker}"')
        branches.append(_tagged(engine, f"count({names})"))
    return " or ".join(branches)


# --- the answer -------------------------------------------------------------------------------


class PromqlError(Exception):
    """The PromQL server's answer could not be used; `kind` is a stable short code like a poll error's."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


class _Series(BaseModel):
    metric: dict[str, str]
    value: tuple[float, str]


class _Data(BaseModel):
    resultType: str  # noqa: N815 - the API's name
    result: list[_Series]


class _Answer(BaseModel):
    status: str
    data: _Data | None = None
    errorType: str | None = None  # noqa: N815
    error: str | None = None


@dataclass
class Answer:
    values: dict[str, float] = field(default_factory=dict)
    labels: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)


def parse_answer(body: bytes) -> Answer:
    """`/api/v1/query` JSON -> signal values (and the label sets of the labelled ones); PromqlError saying
    why the body is not a usable answer. Non-finite values (0/0 of an idle window) are left out."""
    try:
        answer = _Answer.model_validate_json(body)
    except ValidationError as exc:
        raise PromqlError("parse", f"not a Prometheus query answer: {exc.errors()[0]['msg']}") from None
    if answer.status != "success" or answer.data is None:
        reason = clean(f"{answer.errorType or 'error'}: {answer.error or 'no reason given'}")[:300]
        raise PromqlError("http", f"the query was refused ({reason})")
    if answer.data.resultType != "vector":
        raise PromqlError("parse", f"expected a vector, got a {clean(answer.data.resultType)[:40]}")
    if len(answer.data.result) > MAX_SERIES:
        raise PromqlError(
            "too_large",
            f"{len(answer.data.result)} series answered (at most {MAX_SERIES}): narrow the selector",
        )
    out = Answer()
    for series in answer.data.result:
        signal = series.metric.get(SIGNAL_LABEL)
        if signal is None:
            continue
        if signal in LABELLED:
            out.labels.setdefault(signal, []).append(
                {clean(k)[:MAX_LABEL_CHARS]: clean(v)[:MAX_LABEL_CHARS] for k, v in series.metric.items()}
            )
            continue
        try:
            value = float(series.value[1])
        except ValueError:
            out.rejected.append(f"{signal}: not a number ({clean(series.value[1])[:40]!r})")
            continue
        if math.isnan(value):
            continue  # 0/0 over a window without traffic: no value, as on the scrape path
        if math.isinf(value):
            out.rejected.append(f"{signal}: infinite")
            continue
        out.values[signal] = value
    return out


def detected_engine(answer: Answer) -> str | None:
    counts = {e: v for e, v in answer.values.items() if e in ENGINE_SIGNALS and v > 0}
    return max(counts, key=lambda e: counts[e]) if counts else None


_SAMPLE_FIELDS = set(MetricSample.model_fields)
_NOT_INFO_LABELS = {"__name__", "job", "instance", "engine", SIGNAL_LABEL}


def build_result(instance: str, engine: str, answer: Answer, ts: float, window_s: float) -> WindowResult:
    """The windowed sample a PromQL answer makes (the same fields, units and checks as a scrape's)."""
    v = answer.values
    sample = MetricSample(instance=instance, ts=ts, engine=engine, window_s=window_s)
    for key, value in v.items():
        if key in _SAMPLE_FIELDS:
            setattr(sample, key, value)
    if "requests_rejected_per_s" in v:
        # Admission rejections are failures the server chose (the scrape path adds them the same way).
        sample.requests_failure_per_s = (sample.requests_failure_per_s or 0.0) + v["requests_rejected_per_s"]
    if sample.prefix_queries and sample.prefix_hits is not None:
        sample.prefix_hit_rate = min(sample.prefix_hits / sample.prefix_queries, 1.0)
    sample.counter_reset = v.get("resets", 0.0) > 0
    extras = {k: val for k, val in v.items() if k.endswith("_mean_s")}
    store_extras(sample, extras)
    mark_suspect(sample, [*answer.rejected, *check_sample(sample)])
    return WindowResult(sample=sample, extras=extras)


def info_from(answer: Answer, selector_labels: set[str]) -> dict[str, object]:
    """Static facts in the answer's labels, as the scrape path's `RawReading.info`: models, cache config."""
    info: dict[str, object] = {}
    models = [m[label] for m in answer.labels.get("models", []) for label in MODEL_LABELS if m.get(label)]
    if models:
        info["models"] = list(dict.fromkeys(models))[:64]
    configs = answer.labels.get("cache_config")
    if configs:
        drop = _NOT_INFO_LABELS | selector_labels
        info["cache_config"] = {k: val for k, val in configs[0].items() if k not in drop}
    return info
