"""charter-tui's configuration: one TOML file, validated strictly into typed models.

Strict on purpose: an unknown key is almost always a typo that would otherwise be silently
ignored (a threshold that never applies), so it is an error naming the file, the key and why.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from daemon.errors import ConfigError
from daemon.paths import ENV_DATABASE_URL, ENV_LOG_FILE, Locations, locations

Engine = Literal["auto", "vllm", "triton", "sglang", "tgi", "llamacpp"]
PositiveFloat = Annotated[float, Field(gt=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL with a host (e.g. http://127.0.0.1:8000)")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise ValueError(f"{value!r} has a bad port: {exc}") from None
    return value.rstrip("/")


class LaunchConfig(_Strict):
    """How a target's server process is started, for actuators that must relaunch it (vLLM flags)."""

    argv: list[str] = Field(min_length=1)
    env: dict[str, str] = {}
    cwd: str | None = None
    systemd_unit: str | None = None


class TargetConfig(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    url: str
    engine: Engine = "auto"
    metrics_url: str | None = None  # when /metrics is served elsewhere (Triton's metrics port)
    models: list[str] = []  # Triton models to check for readiness and config
    timeout_s: PositiveFloat = 2.0
    poll_interval_s: PositiveFloat | None = None  # default: [daemon].poll_interval_s
    launch: LaunchConfig | None = None

    _url = field_validator("url")(classmethod(lambda cls, v: _check_http_url(v)))

    @field_validator("metrics_url")
    @classmethod
    def _metrics_url(cls, v: str | None) -> str | None:
        return None if v is None else _check_http_url(v)


class DaemonConfig(_Strict):
    poll_interval_s: PositiveFloat = 1.0
    # The daemon's own Prometheus metrics, served on loopback; 0 turns the exporter off.
    metrics_port: int = Field(default=9477, ge=0, le=65535)
    readonly: bool = False
    max_response_bytes: int = Field(default=8 * 1024 * 1024, gt=0)


class StorageConfig(_Strict):
    url: str = ""  # any SQLAlchemy URL; empty means the SQLite file in the XDG data dir
    raw_retention_hours: PositiveFloat = 24.0
    aggregate_retention_days: PositiveFloat = 30.0


class MqttConfig(_Strict):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    topic_prefix: str = "charter/v1"
    username: str | None = None
    password: str | None = None


class WatchConfig(_Strict):
    paths: list[str] = []
    # Extra function-name patterns (fnmatch) the compiler treats as LLM calls, e.g. "ask_*".
    llm_call_patterns: list[str] = []
    debounce_ms: int = Field(default=150, ge=0)


class SloConfig(_Strict):
    ttft_p95_ms: PositiveFloat = 1000.0
    itl_p95_ms: PositiveFloat = 100.0
    error_rate_max: float = Field(default=0.01, ge=0, le=1)
    # Share of samples (with traffic) that must meet every SLO for a window to count as compliant.
    compliance_target: float = Field(default=0.99, ge=0, le=1)


class ThresholdConfig(_Strict):
    kv_cache_usage_high: float = Field(default=0.90, ge=0, le=1)
    queue_waiting_high: int = Field(default=8, ge=1)
    prefix_hit_rate_low: float = Field(default=0.30, ge=0, le=1)
    throughput_low_tokens_s: float = Field(default=0.0, ge=0)  # 0 disables LOW_THROUGHPUT
    preemptions_per_min_high: float = Field(default=5.0, ge=0)
    # A bottleneck clears only once the value is this fraction back past its threshold (no flapping).
    hysteresis: float = Field(default=0.10, ge=0, le=0.5)
    window_s: PositiveFloat = 60.0
    gpu_memory_high: float = Field(default=0.95, ge=0, le=1)  # used/total device memory, where exported
    # CACHE_INEFFICIENCY is judged only on windows with at least this many prompt tokens looked up:
    # a handful of short requests says nothing about a cache.
    min_prefix_queries: int = Field(default=256, ge=1)
    queue_p95_high_s: float = Field(default=0.0, ge=0)  # 0 disables the queue-time trigger of QUEUE_BUILDUP
    # A bottleneck clears only after this many consecutive samples back inside the hysteresis band.
    clear_after_samples: int = Field(default=2, ge=1)


class KeymapConfig(_Strict):
    """Textual binding ids -> keys, e.g. approve = "A"."""

    bindings: dict[str, str] = {}


class SignalThreshold(_Strict):
    """How much worse a canary may be on one signal before validation fails it.

    Both conditions must hold to fail: the relative change exceeds `max_regression` AND the absolute
    change exceeds `min_abs_change` — so 0.4 ms -> 0.6 ms of latency (+50%, but noise) never fails.
    """

    max_regression: float = Field(default=0.10, ge=0)
    min_abs_change: float = Field(default=0.0, ge=0)


# The signals a rollout can be judged on: MetricSample fields plus `error_rate` (failures / all requests).
# Direction matters: for these, higher is better; for every other signal, lower is better.
ROLLOUT_SIGNALS: tuple[str, ...] = (
    "ttft_p95_s",
    "itl_p95_s",
    "e2e_p95_s",
    "queue_p95_s",
    # Window means, for engines that export latency as duration counters (Triton core, llama.cpp).
    "ttft_mean_s",
    "itl_mean_s",
    "e2e_mean_s",
    "queue_mean_s",
    "generation_tokens_per_s",
    "prefix_hit_rate",
    "error_rate",
    "preemptions",
)
HIGHER_IS_BETTER: frozenset[str] = frozenset({"generation_tokens_per_s", "prefix_hit_rate"})


def _check_signals(names: list[str] | dict[str, object]) -> None:
    unknown = sorted(set(names) - set(ROLLOUT_SIGNALS))
    if unknown:
        raise ValueError(f"unknown signal(s) {', '.join(unknown)}; known: {', '.join(ROLLOUT_SIGNALS)}")


def _default_signal_thresholds() -> dict[str, SignalThreshold]:
    return {
        "ttft_p95_s": SignalThreshold(max_regression=0.10, min_abs_change=0.005),
        "itl_p95_s": SignalThreshold(max_regression=0.10, min_abs_change=0.002),
        "e2e_p95_s": SignalThreshold(max_regression=0.10, min_abs_change=0.005),
        "queue_p95_s": SignalThreshold(max_regression=0.25, min_abs_change=0.01),
        "ttft_mean_s": SignalThreshold(max_regression=0.10, min_abs_change=0.005),
        "itl_mean_s": SignalThreshold(max_regression=0.10, min_abs_change=0.002),
        "e2e_mean_s": SignalThreshold(max_regression=0.10, min_abs_change=0.005),
        "queue_mean_s": SignalThreshold(max_regression=0.25, min_abs_change=0.01),
        "generation_tokens_per_s": SignalThreshold(max_regression=0.10, min_abs_change=1.0),
        "prefix_hit_rate": SignalThreshold(max_regression=0.10, min_abs_change=0.02),
        "error_rate": SignalThreshold(max_regression=0.0, min_abs_change=0.01),
        "preemptions": SignalThreshold(max_regression=0.0, min_abs_change=1.0),
    }


class CommandParamRule(_Strict):
    """The type and range of one parameter a generic command actuator accepts."""

    type: Literal["int", "float", "bool", "enum", "string"]
    min: float | None = None
    max: float | None = None
    choices: list[str] = []
    # For strings: a full-match regex (the default allows no spaces, quotes or shell metacharacters).
    pattern: str = r"[A-Za-z0-9_.:/@+-]{1,128}"


class CommandActuatorConfig(_Strict):
    """A target changed by running commands (argv templates, never a shell).

    `{param}` and `{value}` in an argv element are replaced by the validated name and value; `read`
    must print the current value of `{param}` on stdout (used for the previous-config record, for
    verification after apply and for crash recovery).
    """

    apply: list[str] = Field(min_length=1)
    read: list[str] = Field(min_length=1)
    timeout_s: PositiveFloat = 60.0
    params: dict[str, CommandParamRule] = Field(min_length=1)


class RolloutConfig(_Strict):
    """Canary, validation and actuation settings of approval-gated rollouts."""

    # After a change is applied, samples of this many seconds are ignored (caches warm, restarts settle).
    warmup_s: float = Field(default=30.0, ge=0)
    # How long the canary serves before it is judged.
    canary_window_s: PositiveFloat = 300.0
    # With one target, the canary is judged against its own samples of this many seconds before the change.
    baseline_window_s: PositiveFloat = 600.0
    # Fewer samples than this carrying a signal, in either window, leave that signal undecided (-> PAUSED).
    min_samples: int = Field(default=10, ge=1)
    # Signals judged when a rollout names none: ttft_p95_s, itl_p95_s, e2e_p95_s, generation_tokens_per_s,
    # prefix_hit_rate, error_rate, preemptions.
    default_signals: list[str] = ["ttft_p95_s", "itl_p95_s", "e2e_mean_s", "error_rate"]
    thresholds: dict[str, SignalThreshold] = Field(default_factory=_default_signal_thresholds)
    # A Triton load or a vLLM relaunch that does not report ready within this many seconds has failed.
    apply_timeout_s: PositiveFloat = 600.0
    # SIGTERM -> SIGKILL grace when a relaunch stops a server.
    stop_grace_s: PositiveFloat = 30.0
    # Seconds between two steps of the rollout loop.
    step_interval_s: PositiveFloat = 1.0
    # Give up restoring a target after this many failed attempts (the rollout stays FAILED, for a person).
    max_restore_attempts: int = Field(default=20, ge=1)
    # Targets changed by generic commands: [rollouts.commands.<target name>].
    commands: dict[str, CommandActuatorConfig] = {}

    @field_validator("default_signals")
    @classmethod
    def _known_signals(cls, v: list[str]) -> list[str]:
        _check_signals(v)
        return v

    @field_validator("thresholds")
    @classmethod
    def _merge_thresholds(cls, v: dict[str, SignalThreshold]) -> dict[str, SignalThreshold]:
        # A file that tunes one signal keeps the defaults of the others (a dict would otherwise replace).
        _check_signals(v)
        return {**_default_signal_thresholds(), **v}


class Config(_Strict):
    daemon: DaemonConfig = DaemonConfig()
    storage: StorageConfig = StorageConfig()
    mqtt: MqttConfig = MqttConfig()
    watch: WatchConfig = WatchConfig()
    slo: SloConfig = SloConfig()
    thresholds: ThresholdConfig = ThresholdConfig()
    keymap: KeymapConfig = KeymapConfig()
    rollouts: RolloutConfig = RolloutConfig()
    targets: list[TargetConfig] = []

    @field_validator("targets")
    @classmethod
    def _unique_names(cls, targets: list[TargetConfig]) -> list[TargetConfig]:
        seen: set[str] = set()
        for t in targets:
            if t.name in seen:
                raise ValueError(f"target name {t.name!r} is used twice")
            seen.add(t.name)
        return targets


class LoadedConfig(BaseModel):
    """The effective config plus where everything lives (after env-var overrides)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    config: Config
    source: Path | None  # None: no file, defaults only
    locations: Locations
    database_url: str
    log_file: Path


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _reason(err: dict[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key (check the spelling; `charter-tui config init` writes every key with a comment)"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{msg} (got {err['input']!r})" if err["type"] != "missing" else msg


def parse_config(text: str, file: str = "<config>") -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "", f"not valid TOML: {exc}") from None
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(file, _key_path(err["loc"]), _reason(err)) from None


def load_config(config_override: str | os.PathLike[str] | None = None) -> LoadedConfig:
    """Read the config file (missing file = defaults, unless it was named explicitly)."""
    locs = locations(config_override)
    path = locs.config_file
    if path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(str(path), "", f"cannot be read: {exc}") from None
        config, source = parse_config(text, str(path)), path
    elif config_override or os.environ.get("CHARTER_TUI_CONFIG"):
        raise ConfigError(str(path), "", "no such file (run `charter-tui config init` to write one)")
    else:
        config, source = Config(), None
    database_url = os.environ.get(ENV_DATABASE_URL) or config.storage.url or locs.default_database_url
    log_file = Path(os.environ.get(ENV_LOG_FILE) or locs.default_log_file)
    return LoadedConfig(
        config=config, source=source, locations=locs, database_url=database_url, log_file=log_file
    )
