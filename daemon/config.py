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


class Config(_Strict):
    daemon: DaemonConfig = DaemonConfig()
    storage: StorageConfig = StorageConfig()
    mqtt: MqttConfig = MqttConfig()
    watch: WatchConfig = WatchConfig()
    slo: SloConfig = SloConfig()
    thresholds: ThresholdConfig = ThresholdConfig()
    keymap: KeymapConfig = KeymapConfig()
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
