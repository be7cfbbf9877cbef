"""What an optimizer looks at: one target's engine, current settings, open bottlenecks, latest sample."""

from __future__ import annotations

from dataclasses import dataclass, field

from daemon.models import Bottleneck, MetricSample, Severity
from daemon.optimizer.models import Apply, ConfigChange
from daemon.optimizer.settings import Settings


GPU_SMALLEST_BLOCK = 16
CPU_SMALLEST_BLOCK = 32


def smallest_vllm_block(settings: Settings) -> int:
    """The smallest KV block this vLLM's attention backend takes, as far as the server tells. vLLM's
    CPU attention backend takes only multiples of 32 (`cpu_attn.py`, vLLM 0.32; it refuses 16). The
    platform is known when the server process is local (`procs.local_vllm_platform`); otherwise a
    server that chose 128-token blocks itself is taken for the CPU platform, whose own default that is
    (a GPU's is 16). Anything else is offered GPU's 16. (The optimizer's recommendations and the Agents
    screen's cache plan both ask this.)"""
    if settings.value("platform") == "cpu":
        return CPU_SMALLEST_BLOCK
    if settings.value("platform") == "gpu":
        return GPU_SMALLEST_BLOCK
    chosen_by_user = settings.value("user_specified_block_size")
    if settings.value("--block-size") == 128 and chosen_by_user is False:
        return CPU_SMALLEST_BLOCK
    return GPU_SMALLEST_BLOCK


@dataclass
class Context:
    instance: str
    engine: str
    settings: Settings
    bottlenecks: list[Bottleneck] = field(default_factory=list)
    sample: MetricSample | None = None

    def bottleneck(self, kind: str) -> Bottleneck | None:
        return next((b for b in self.bottlenecks if b.kind == kind and b.active), None)

    @property
    def is_trt_llm(self) -> bool:
        """Triton serving TensorRT-LLM: seen in its metrics, or in the model config's parameters."""
        if self.engine != "triton":
            return False
        values = self.settings.values
        return self.settings.value("backend") == "tensorrtllm" or any(
            k in values
            for k in (
                "parameters.gpt_model_type",
                "parameters.batching_strategy",
                "parameters.gpt_model_path",
            )
        )

    def smallest_block(self) -> int:
        """See `smallest_vllm_block`."""
        return smallest_vllm_block(self.settings)

    def change(
        self, parameter: str, recommended: object, reason: str, apply: Apply = "restart"
    ) -> ConfigChange:
        value, source = self.settings.get(parameter)
        return ConfigChange(
            parameter=parameter,
            current_value=value,
            current_source=source,
            recommended_value=recommended,
            reason=reason,
            apply=apply,
        )

    def source(self, *bottlenecks: Bottleneck | None) -> dict[str, object]:
        present = [b for b in bottlenecks if b is not None]
        return {
            "bottlenecks": [
                {
                    "id": b.id,
                    "kind": b.kind,
                    "severity": b.severity.value,
                    "summary": b.summary,
                    "evidence": b.evidence,
                }
                for b in present
            ]
        }

    def worst_severity(self, *bottlenecks: Bottleneck | None) -> Severity:
        order = [Severity.INFO, Severity.WARNING, Severity.CRITICAL]
        present = [b.severity for b in bottlenecks if b is not None]
        return max(present, key=order.index) if present else Severity.INFO
