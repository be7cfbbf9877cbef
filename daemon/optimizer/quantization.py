"""Weight-quantization recommendations: the remedy when memory, not configuration, is the limit.

Recommended only on sustained pressure (MEMORY_PRESSURE at CRITICAL, or with preemptions), because
quantization trades accuracy and needs a quantized checkpoint or an engine rebuild: FP8 first (near
lossless on GPUs that support it, on-the-fly in vLLM), INT4 AWQ as the aggressive option.
"""

from __future__ import annotations

from daemon.analysis.rules import MEMORY_PRESSURE, PREEMPTION_STORM
from daemon.models import Severity
from daemon.optimizer.context import Context
from daemon.optimizer.models import RecommendationSpec


def recommend(ctx: Context) -> list[RecommendationSpec]:
    memory = ctx.bottleneck(MEMORY_PRESSURE)
    storm = ctx.bottleneck(PREEMPTION_STORM)
    sustained = (memory is not None and memory.severity == Severity.CRITICAL) or (
        memory is not None and storm is not None
    )
    if not sustained:
        return []
    why = (memory.summary if memory else "") + ("; " + storm.summary if storm else "")
    current = ctx.settings.value("--quantization") if ctx.engine == "vllm" else None
    if ctx.engine == "vllm" and current in (None, "None"):
        return [
            RecommendationSpec(
                instance=ctx.instance,
                engine=ctx.engine,
                kind="quantization",
                title="Serve FP8 weights",
                description="FP8 (W8A8) halves weight memory versus BF16; vLLM can quantize on load, and every byte "
                "freed becomes KV cache.",
                changes=[ctx.change("--quantization", "fp8", why)],
                expected_impact="high",
                estimated_improvement="~50% less weight memory; KV capacity grows by that amount",
                effort="medium",
                effort_detail="vLLM restart; run the eval set before and after",
                risks=[
                    "Small accuracy loss on some tasks",
                    "Dynamic FP8 without calibration is slightly worse than a calibrated checkpoint",
                ],
                prerequisites=["GPU with FP8 tensor cores (Ada, Hopper or newer)"],
                source=ctx.source(memory, storm),
            ),
            RecommendationSpec(
                instance=ctx.instance,
                engine=ctx.engine,
                kind="quantization",
                title="Serve an INT4 AWQ checkpoint",
                description="4-bit weights cut weight memory ~4x; needs an AWQ-quantized copy of the model.",
                changes=[
                    ctx.change("--quantization", "awq", why),
                    ctx.change(
                        "--model",
                        "<AWQ-quantized checkpoint of the served model>",
                        "AWQ needs pre-quantized weights",
                    ),
                ],
                expected_impact="high",
                estimated_improvement="~75% less weight memory",
                effort="high",
                effort_detail="quantize (or obtain) an AWQ checkpoint, then restart; full quality evaluation",
                risks=[
                    "Noticeable accuracy loss on reasoning/code tasks",
                    "Lower throughput than FP16 at large batch on some GPUs",
                ],
                prerequisites=["An AWQ checkpoint of the same model", "Quality evaluation sign-off"],
                source=ctx.source(memory, storm),
            ),
        ]
    if ctx.engine == "triton" and ctx.is_trt_llm:
        return [
            RecommendationSpec(
                instance=ctx.instance,
                engine=ctx.engine,
                kind="quantization",
                title="Rebuild the TensorRT-LLM engine with FP8",
                description="Weight and KV quantization are baked into a TRT-LLM engine at build time.",
                changes=[
                    ctx.change("trtllm-build --qformat", "fp8", why, apply="rebuild"),
                    ctx.change("trtllm-build --kv_cache_dtype", "fp8", why, apply="rebuild"),
                ],
                expected_impact="high",
                estimated_improvement="~50% less weight memory and ~2x KV capacity",
                effort="high",
                effort_detail="quantize the checkpoint (modelopt), rebuild the engine, redeploy the model repository",
                risks=["Accuracy loss to validate", "Rebuild takes tens of minutes"],
                prerequisites=["Hopper/Ada GPU", "The build toolchain matching the serving TRT-LLM version"],
                source=ctx.source(memory, storm),
            )
        ]
    return []
