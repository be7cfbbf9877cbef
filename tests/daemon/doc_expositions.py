"""Exposition text for engines that cannot run here, built from the documentation and source
read for /work/shared/reference/inference-servers.md (names, label sets, types, units).

Each builder takes the cumulative state so tests can script two scrapes and check windowed maths.
"""

from __future__ import annotations


def trt_llm(
    *,
    success: float = 10,
    reused: float = 4,
    input_tokens: float = 1000,
    output_tokens: float = 200,
    active: float = 5,
    scheduled: float = 3,
    waiting: float | None = 2,
    used: float = 300,
    max_: float = 1000,
    fraction: float | None = 0.3,
    paused: float = 1,
    pending: float = 1,
) -> str:
    m = 'model="tensorrt_llm",version="1"'
    lines = [
        "# HELP nv_inference_request_success Number of successful inference requests, all batch sizes",
        "# TYPE nv_inference_request_success counter",
        f"nv_inference_request_success{{{m}}} {success}",
        "# TYPE nv_inference_request_failure counter",
        f'nv_inference_request_failure{{{m},reason="REJECTED"}} 1',
        f'nv_inference_request_failure{{{m},reason="CANCELED"}} 5',
        "# TYPE nv_inference_request_duration_us counter",
        f"nv_inference_request_duration_us{{{m}}} {success * 250000}",
        "# TYPE nv_inference_queue_duration_us counter",
        f"nv_inference_queue_duration_us{{{m}}} {success * 10000}",
        "# TYPE nv_inference_pending_request_count gauge",
        f"nv_inference_pending_request_count{{{m}}} {pending}",
        "# TYPE nv_gpu_memory_used_bytes gauge",
        'nv_gpu_memory_used_bytes{gpu_uuid="GPU-1"} 70000000000',
        "# TYPE nv_gpu_memory_total_bytes gauge",
        'nv_gpu_memory_total_bytes{gpu_uuid="GPU-1"} 80000000000',
        "# HELP nv_trt_llm_request_metrics TRT LLM request metrics",
        "# TYPE nv_trt_llm_request_metrics gauge",
        'nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="context",version="1"} 1',
        f'nv_trt_llm_request_metrics{{model="tensorrt_llm",request_type="scheduled",version="1"}} {scheduled}',
        'nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="max",version="1"} 512',
        f'nv_trt_llm_request_metrics{{model="tensorrt_llm",request_type="active",version="1"}} {active}',
    ]
    if waiting is not None:
        lines.append(
            f'nv_trt_llm_request_metrics{{model="tensorrt_llm",request_type="waiting",version="1"}} {waiting}'
        )
    lines += [
        "# TYPE nv_trt_llm_runtime_memory_metrics gauge",
        'nv_trt_llm_runtime_memory_metrics{memory_type="pinned",model="tensorrt_llm",version="1"} 0',
        'nv_trt_llm_runtime_memory_metrics{memory_type="gpu",model="tensorrt_llm",version="1"} 1610236',
        'nv_trt_llm_runtime_memory_metrics{memory_type="cpu",model="tensorrt_llm",version="1"} 0',
        "# TYPE nv_trt_llm_kv_cache_block_metrics gauge",
        'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="tokens_per",model="tensorrt_llm",version="1"} 64',
        f'nv_trt_llm_kv_cache_block_metrics{{kv_cache_block_type="used",model="tensorrt_llm",version="1"}} {used}',
        f'nv_trt_llm_kv_cache_block_metrics{{kv_cache_block_type="free",model="tensorrt_llm",version="1"}} {max_ - used}',
        f'nv_trt_llm_kv_cache_block_metrics{{kv_cache_block_type="max",model="tensorrt_llm",version="1"}} {max_}',
        f'nv_trt_llm_kv_cache_block_metrics{{kv_cache_block_type="reused",model="tensorrt_llm",version="1"}} {reused}',
    ]
    if fraction is not None:
        lines.append(
            f'nv_trt_llm_kv_cache_block_metrics{{kv_cache_block_type="fraction",model="tensorrt_llm",version="1"}} {fraction}'
        )
    lines += [
        "# TYPE nv_trt_llm_inflight_batcher_metrics gauge",
        f'nv_trt_llm_inflight_batcher_metrics{{inflight_batcher_specific_metric="paused_requests",model="tensorrt_llm",version="1"}} {paused}',
        'nv_trt_llm_inflight_batcher_metrics{inflight_batcher_specific_metric="generation_requests",model="tensorrt_llm",version="1"} 3',
        "# TYPE nv_trt_llm_general_metrics gauge",
        'nv_trt_llm_general_metrics{general_type="timestamp",model="tensorrt_llm",version="1"} 1700074049000000',
        "# TYPE nv_llm_input_token_len histogram",
        f'nv_llm_input_token_len_count{{model="tensorrt_llm",response_metric_type="total_input_tokens",version="1"}} {success}',
        f'nv_llm_input_token_len_sum{{model="tensorrt_llm",response_metric_type="total_input_tokens",version="1"}} {input_tokens}',
        f'nv_llm_input_token_len_bucket{{model="tensorrt_llm",response_metric_type="total_input_tokens",version="1",le="+Inf"}} {success}',
        "# TYPE nv_llm_output_token_len histogram",
        f'nv_llm_output_token_len_count{{model="tensorrt_llm",response_metric_type="total_output_tokens",version="1"}} {success}',
        f'nv_llm_output_token_len_sum{{model="tensorrt_llm",response_metric_type="total_output_tokens",version="1"}} {output_tokens}',
        f'nv_llm_output_token_len_bucket{{model="tensorrt_llm",response_metric_type="total_output_tokens",version="1",le="+Inf"}} {success}',
    ]
    return "\n".join(lines) + "\n"


def _hist(name: str, labels: str, buckets: list[tuple[str, float]], total: float) -> list[str]:
    sep = "," if labels else ""
    out = [f"# TYPE {name} histogram"]
    out += [f'{name}_bucket{{{labels}{sep}le="{le}"}} {c}' for le, c in buckets]
    out += [f"{name}_sum{{{labels}}} {total}", f"{name}_count{{{labels}}} {buckets[-1][1]}"]
    return out


def sglang(
    *, prompt: float = 1000, cached: float = 600, gen: float = 300, retracted: float = 0, ttft_n: float = 10
) -> str:
    lab = 'model_name="meta-llama/Llama-3.1-8B-Instruct",engine_type="unified",tp_rank="0",pp_rank="0",moe_ep_rank="0"'
    req = 'model_name="meta-llama/Llama-3.1-8B-Instruct",engine_type="unified"'
    lines = [
        "# TYPE sglang:num_running_reqs gauge",
        f"sglang:num_running_reqs{{{lab}}} 4.0",
        "# TYPE sglang:num_queue_reqs gauge",
        f"sglang:num_queue_reqs{{{lab}}} 2.0",
        "# TYPE sglang:token_usage gauge",
        f"sglang:token_usage{{{lab}}} 0.28",
        "# TYPE sglang:cache_hit_rate gauge",
        f"sglang:cache_hit_rate{{{lab}}} 0.0075",
        "# TYPE sglang:weight_memory_usage_gb gauge",
        f"sglang:weight_memory_usage_gb{{{lab}}} 15.0",
        "# TYPE sglang:kv_cache_memory_usage_gb gauge",
        f"sglang:kv_cache_memory_usage_gb{{{lab}}} 50.0",
        "# TYPE sglang:prompt_tokens_total counter",
        f'sglang:prompt_tokens_total{{{req},is_streaming="true"}} {prompt / 2}',
        f'sglang:prompt_tokens_total{{{req},is_streaming="false"}} {prompt / 2}',
        "# TYPE sglang:generation_tokens_total counter",
        f'sglang:generation_tokens_total{{{req},is_streaming="false"}} {gen}',
        "# TYPE sglang:cached_tokens_total counter",
        f'sglang:cached_tokens_total{{{req},cache_source="device"}} {cached * 0.75}',
        f'sglang:cached_tokens_total{{{req},cache_source="host"}} {cached * 0.25}',
        "# TYPE sglang:num_requests_total counter",
        f'sglang:num_requests_total{{{req},is_streaming="false"}} {ttft_n}',
        "# TYPE sglang:num_retracted_requests_total counter",
        f"sglang:num_retracted_requests_total{{{lab}}} {retracted}",
    ]
    lines += _hist(
        "sglang:time_to_first_token_seconds",
        req + ',is_streaming="true"',
        [("0.1", ttft_n * 0.2), ("0.5", ttft_n * 0.8), ("1.0", ttft_n), ("+Inf", ttft_n)],
        ttft_n * 0.3,
    )
    lines += _hist("sglang:queue_time_seconds", lab, [("0.01", ttft_n), ("+Inf", ttft_n)], ttft_n * 0.001)
    return "\n".join(lines) + "\n"


def tgi(
    *,
    success: float = 100,
    failure_overloaded: float = 2,
    failure_validation: float = 7,
    input_sum: float = 5000,
    gen_sum: float = 2000,
    summary: bool = False,
) -> str:
    lines = [
        "# TYPE tgi_request_count counter",
        f"tgi_request_count {success + failure_overloaded + failure_validation}",
        "# TYPE tgi_request_success counter",
        f"tgi_request_success {success}",
        "# TYPE tgi_request_failure counter",
        f'tgi_request_failure{{err="overloaded"}} {failure_overloaded}',
        f'tgi_request_failure{{err="validation"}} {failure_validation}',
        "# TYPE tgi_queue_size gauge",
        "tgi_queue_size 12",
        "# TYPE tgi_batch_current_size gauge",
        "tgi_batch_current_size 8",
        "# TYPE tgi_batch_max_total_tokens gauge",
        "tgi_batch_max_total_tokens 16000",
    ]
    lines += _hist(
        "tgi_request_input_length",
        "",
        [("100", success / 2), ("1000", success), ("+Inf", success)],
        input_sum,
    )
    lines += _hist("tgi_request_generated_tokens", "", [("100", success), ("+Inf", success)], gen_sum)
    if summary:
        lines += [
            "# TYPE tgi_request_duration summary",
            'tgi_request_duration{quantile="0.5"} 0.8',
            'tgi_request_duration{quantile="0.9"} 1.5',
            'tgi_request_duration{quantile="0.95"} 2.0',
            'tgi_request_duration{quantile="0.99"} 3.1',
            f"tgi_request_duration_sum {success * 0.9}",
            f"tgi_request_duration_count {success}",
        ]
    else:
        lines += _hist(
            "tgi_request_duration",
            "",
            [("0.5", success * 0.4), ("1", success * 0.9), ("2", success), ("+Inf", success)],
            success * 0.8,
        )
    lines += _hist(
        "tgi_request_queue_duration",
        "",
        [("0.01", success * 0.5), ("0.1", success), ("+Inf", success)],
        success * 0.02,
    )
    lines += _hist(
        "tgi_request_mean_time_per_token_duration",
        "",
        [("0.02", success * 0.5), ("0.05", success), ("+Inf", success)],
        success * 0.025,
    )
    return "\n".join(lines) + "\n"


def llamacpp(
    *, prompt: float = 400, cached: float = 600, predicted: float = 100, predicted_s: float = 2.0
) -> str:
    # Hand-written by llama-server: HELP/TYPE and values, no labels.
    rows = [
        ("prompt_tokens_total", "counter", prompt),
        ("prompt_tokens_cached_total", "counter", cached),
        ("prompt_seconds_total", "counter", 1.5),
        ("tokens_predicted_total", "counter", predicted),
        ("tokens_predicted_seconds_total", "counter", predicted_s),
        ("n_decode_total", "counter", 90),
        ("n_tokens_max", "counter", 1024),
        ("prompt_tokens_seconds", "gauge", 250.0),
        ("predicted_tokens_seconds", "gauge", 50.0),
        ("requests_processing", "gauge", 2),
        ("requests_deferred", "gauge", 3),
        ("n_busy_slots_per_decode", "gauge", 1.5),
    ]
    lines: list[str] = []
    for name, kind, value in rows:
        lines += [
            f"# HELP llamacpp:{name} {name}",
            f"# TYPE llamacpp:{name} {kind}",
            f"llamacpp:{name} {value}",
        ]
    return "\n".join(lines) + "\n"
