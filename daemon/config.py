"""charter-tui's configuration: one TOML file, validated strictly into typed models.

Strict on purpose: an unknown key is almost always a typo that would otherwise be silently
ignored (a threshold that never applies), so it is an error naming the file, the key and why. Types
are strict too (pydantic strict mode): `readonly = "yes"` or `port = "1883"` is a mistake to point
at, not to guess about; TOML's own types are what a file gives, and an int still fills a float.
Numbers must be finite. The file itself is read only if it is a regular file of bounded size.
"""

from __future__ import annotations

import os
import stat
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from daemon.collectors.promql import PROMQL_ENGINES, parse_selector
from daemon.contract import CommandAction
from daemon.errors import ConfigError, shown
from daemon.paths import ENV_DATABASE_URL, ENV_DISCOVER, ENV_LOG_FILE, Locations, check_path, locations
from daemon.safe_regex import compile_pattern
from daemon.redaction import SECRET, SECRET_VALUES, remember, secret_values, url_password

Engine = Literal["auto", "vllm", "triton", "sglang", "tgi", "llamacpp"]
PositiveFloat = Annotated[float, Field(gt=0)]


MAX_CONFIG_BYTES = 1024 * 1024  # a config is a few KiB; anything near this is not one
MAX_URL_CHARS = 2048


class _Strict(BaseModel):
    # strict: no "yes" for a bool, no "1883" for a port, no true for an int (TOML has real types).
    # allow_inf_nan=False: `timeout_s = inf` would wait forever, nan compares false with everything.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def check_http_url(value: str) -> str:
    """An http(s) URL with a host, normalised without a trailing '/'; ValueError saying why not.

    The one rule for every URL a user gives (config targets, `charter-tui probe`). Whitespace and
    control characters are refused outright: httpx would otherwise send a CR/LF into a request line
    or quietly trim a space, and a URL that reads differently from what is requested is a trap.
    """
    if not isinstance(value, str):
        raise ValueError(f"expected a URL string, got {type(value).__name__}")
    if len(value) > MAX_URL_CHARS:
        raise ValueError(f"URL is {len(value)} characters long (max {MAX_URL_CHARS})")
    bad = next((c for c in value if c.isspace() or not c.isprintable()), None)
    if bad is not None:
        raise ValueError(f"{shown(repr(value), 80)} contains whitespace or a control character ({bad!r})")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{shown(repr(value), 80)} is not an http(s) URL with a host (e.g. http://127.0.0.1:8000)"
        )
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise ValueError(f"{shown(repr(value), 80)} has a bad port: {exc}") from None
    return value.rstrip("/")


def metrics_endpoint(url: str, metrics_url: str | None = None) -> str:
    """Where a server's Prometheus exposition is: `metrics_url` when configured (Triton serves it on its own
    port), with `/metrics` added if it names only the host; else `/metrics` on the server's root, an
    OpenAI-style `/v1` base URL included. The one rule every poller, actuator and probe uses."""
    if metrics_url:
        base = metrics_url.rstrip("/")
        return base if base.endswith("/metrics") else base + "/metrics"
    root = url.rstrip("/")
    root = root.removesuffix("/v1")
    return root + "/metrics"


Port = Annotated[int, Field(gt=0, lt=65536)]


class BlueGreenConfig(_Strict):
    """Relaunch without an outage (daemon/actuators/blue_green.py): the server alternates between two
    backend ports while a front charter-tui starts holds the target URL's port for the clients; a new
    server comes up beside the old one, is validated, and only then takes new connections."""

    # The two ports the server runs on, in turn; the configured argv's --port is replaced by them.
    ports: Annotated[list[Port], Field(min_length=2, max_length=2)]
    # Per port, what is added to [targets.launch] env for the server there: e.g. a second GPU,
    # [{CUDA_VISIBLE_DEVICES = "0"}, {CUDA_VISIBLE_DEVICES = "1"}]. Empty: both share the launch env.
    env: Annotated[list[dict[str, str]], SECRET_VALUES, Field(max_length=2)] = []
    # How long the old server may keep finishing the requests it holds before it is stopped anyway.
    drain_s: float = Field(default=30.0, ge=0, le=3600)

    @model_validator(mode="after")
    def _two_slots(self) -> BlueGreenConfig:
        if self.ports[0] == self.ports[1]:
            raise ValueError(f"blue_green.ports must be two different ports, got {self.ports[0]} twice")
        if self.env and len(self.env) != len(self.ports):
            raise ValueError("blue_green.env needs one table per port (two), or none")
        return self


class LaunchConfig(_Strict):
    """How a target's server process is started, for actuators that must relaunch it (vLLM flags)."""

    argv: list[str] = Field(min_length=1)
    env: Annotated[dict[str, str], SECRET_VALUES] = {}  # values often hold tokens (HF_TOKEN)
    cwd: str | None = None
    systemd_unit: str | None = None
    # The account the server runs as (a root daemon switches to it). A root daemon with no user, or a
    # user that is root, refuses to start the server unless allow_root is true: see daemon/actuators/launch.py.
    user: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$")
    allow_root: bool = False
    blue_green: BlueGreenConfig | None = None

    @model_validator(mode="after")
    def _blue_green_runs_argv(self) -> LaunchConfig:
        if self.blue_green is not None and self.systemd_unit:
            raise ValueError("blue_green starts two servers from argv; it cannot be used with systemd_unit")
        return self


class PrometheusSourceConfig(_Strict):
    """Where a `source = "prometheus"` target's metrics are read: a PromQL server already scraping it."""

    # Prometheus, VictoriaMetrics, Thanos Query or Mimir's Prometheus API base (queries go to <url>/api/v1/query).
    url: str
    # Label matchers that pick this one server's series there, e.g. {job="vllm", instance="gpu-1:8000"}.
    selector: str = Field(min_length=2)

    _url = field_validator("url")(classmethod(lambda cls, v: check_http_url(v)))

    @field_validator("selector")
    @classmethod
    def _selector(cls, v: str) -> str:
        parse_selector(v)  # raises SelectorError (a ValueError) saying why it is not one
        return v


class TargetConfig(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    url: str
    engine: Engine = "auto"
    metrics_url: str | None = None  # when /metrics is served elsewhere (Triton's metrics port)
    models: list[str] = []  # Triton models to check for readiness and config
    timeout_s: PositiveFloat = 2.0
    poll_interval_s: PositiveFloat | None = None  # default: [daemon].poll_interval_s
    launch: LaunchConfig | None = None
    # What a million prompt tokens cost here, in any currency: the doctor turns the prefix cache's
    # hits into money saved with it (daemon/savings.py). None: tokens and seconds only.
    price_per_million_prompt_tokens: float | None = Field(default=None, gt=0, le=1e6)
    # Send synthetic 1-token requests to this target while it is a rollout's canary, and count the failed
    # ones as errors (daemon/rollouts/probes.py). Off by default: a production target has its own traffic,
    # and synthetic requests show in its users' logs and bills. OpenAI-compatible servers only.
    canary_probes: bool = False
    # "scrape": the daemon reads the server's /metrics itself. "prometheus": it asks a PromQL server that
    # already scrapes it ([targets.prometheus]), so a fleet needs no second scraper (daemon/prometheus_source.py).
    source: Literal["scrape", "prometheus"] = "scrape"
    prometheus: PrometheusSourceConfig | None = None

    _url = field_validator("url")(classmethod(lambda cls, v: check_http_url(v)))

    @model_validator(mode="after")
    def _source_has_its_settings(self) -> TargetConfig:
        if self.source == "prometheus":
            if self.prometheus is None:
                raise ValueError(
                    'source = "prometheus" needs a [targets.prometheus] table with the PromQL server\'s url and '
                    "the selector of this server's series"
                )
            if self.engine not in ("auto", *PROMQL_ENGINES):
                raise ValueError(
                    f"a {self.engine} target cannot be read through PromQL yet ({', '.join(PROMQL_ENGINES)} can); "
                    'use source = "scrape"'
                )
            if self.metrics_url is not None:
                raise ValueError('metrics_url is not read with source = "prometheus"; remove one of them')
        elif self.prometheus is not None:
            raise ValueError(
                '[targets.prometheus] is only read with source = "prometheus"; add it or remove the table'
            )
        return self

    @model_validator(mode="after")
    def _probes_need_openai_api(self) -> TargetConfig:
        if self.canary_probes and self.engine == "triton":
            raise ValueError(
                "canary_probes needs an OpenAI-compatible server (/v1/completions); a Triton model's inputs are "
                "its own, so it cannot be probed generically"
            )
        return self

    @model_validator(mode="after")
    def _front_port_is_not_a_backend(self) -> TargetConfig:
        blue_green = self.launch.blue_green if self.launch is not None else None
        if blue_green is not None:
            front = urlsplit(self.url).port or (443 if self.url.startswith("https") else 80)
            if front in blue_green.ports:
                raise ValueError(
                    f"blue_green.ports {blue_green.ports} include the url's port {front}, which the front holds for "
                    "the clients; give the server two other ports"
                )
            if self.metrics_url is not None:
                raise ValueError(
                    "metrics_url is not read with blue_green: the server's /metrics is reached through the front"
                )
        return self

    @property
    def metrics_endpoint(self) -> str:
        return metrics_endpoint(self.url, self.metrics_url)

    @field_validator("metrics_url")
    @classmethod
    def _metrics_url(cls, v: str | None) -> str | None:
        return None if v is None else check_http_url(v)


# A daemon's id is one MQTT topic level and a lease holder's name: letters, digits, '.', '_', '-'.
DAEMON_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"


class DaemonConfig(_Strict):
    # This daemon's name in a fleet (its topics are charter/v1/<id>/..., its rollout leases carry it); unset: the
    # host name (daemon/identity.py). Two daemons on one broker need two ids.
    id: str | None = Field(default=None, pattern=DAEMON_ID_PATTERN)
    poll_interval_s: PositiveFloat = 1.0
    # The daemon's own Prometheus metrics, served on loopback; 0 turns the exporter off.
    metrics_port: int = Field(default=9477, ge=0, le=65535)
    readonly: bool = False
    # With no [[targets]] configured, poll the inference servers found listening on this machine
    # (daemon/discovery.py); `charter-tui discover --write` keeps them in the config.
    discover: bool = True
    max_response_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    # A /metrics with more lines is refused unparsed (counted at C speed); real servers emit a few
    # thousand at most, see daemon/prom.py DEFAULT_MAX_LINES.
    max_exposition_lines: int = Field(default=50_000, gt=0)


class HttpApiConfig(_Strict):
    """The daemon's HTTP API (daemon/http_api.py): reads for orchestrators, signed rollout commands."""

    # 0: off. The API answers on this port when set (e.g. 9478).
    port: int = Field(default=0, ge=0, le=65535)
    # Loopback by default: anything wider belongs behind a reverse proxy that terminates TLS.
    host: str = Field(default="127.0.0.1", min_length=1, max_length=255, pattern=r"^[A-Za-z0-9.:_-]+$")


class GpuConfig(_Strict):
    """The daemon machine's NVIDIA GPUs, read with NVML (daemon/gpu.py); without the driver, one line says so."""

    enabled: bool = True
    poll_interval_s: float = Field(default=2.0, ge=0.2, le=3600)


class StorageConfig(_Strict):
    url: str = ""  # any SQLAlchemy URL; empty means the SQLite file in the XDG data dir
    raw_retention_hours: PositiveFloat = 24.0
    aggregate_retention_days: PositiveFloat = 30.0


class MqttConfig(_Strict):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    topic_prefix: str = Field(default="charter/v1", pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
    # Events kept for the broker while it is away, sent on reconnect; past this the oldest are dropped, counted
    # and reported (retained state is re-sent whole anyway, so only stream events are really lost).
    outbox_events: int = Field(default=5000, ge=10, le=1_000_000)
    username: str | None = None
    password: Annotated[str | None, SECRET] = None
    # The broker password from a file (mode 0600), so it need not sit in the config; wins over `password`.
    password_file: str | None = None
    # TLS to the broker: on when `tls` is true or any file below is set. `ca_file` verifies the broker
    # (system CAs when unset); `cert_file` + `key_file` authenticate this client by certificate.
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    @model_validator(mode="after")
    def _client_cert_pair(self) -> MqttConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (a client certificate and its key)")
        return self

    @property
    def uses_tls(self) -> bool:
        return self.tls or any((self.ca_file, self.cert_file, self.key_file))


class WatchConfig(_Strict):
    paths: list[str] = []
    # Extra function-name patterns (fnmatch) the compiler treats as LLM calls, e.g. "ask_*".
    llm_call_patterns: list[str] = []
    # Users' own framework adapters, `package.module:Class` (compiler/adapters/base.py says what one is).
    adapters: list[str] = []
    debounce_ms: int = Field(default=150, ge=0)
    # A file whose compile runs longer than this, or that is larger than max_file_bytes, is reported
    # "too complex" and keeps its last good result (the compile runs in a process that is killed).
    compile_timeout_s: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    max_file_bytes: int = Field(default=1024 * 1024, gt=0)


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


def _check_signals(names: Iterable[str]) -> None:
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
    # For strings: a full-match regex, matched by RE2 (linear time; no backreferences or lookaround).
    # The default allows no spaces, quotes, shell metacharacters or '/', and no leading '.' or '-'.
    # Whatever the pattern, a '..' path segment is refused, and so is an absolute path unless
    # allow_absolute_paths is set.
    pattern: str = r"[A-Za-z0-9_][A-Za-z0-9_.:@+-]{0,127}"
    allow_absolute_paths: bool = False

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        compile_pattern(v)  # ValueError with the reason: too long, or not RE2 syntax
        return v


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
    # During the canary window, a signal already worse than this many times its `max_regression` (on at
    # least `min_samples` samples each side) fails the canary at once instead of at the window's end: a
    # gross regression is not left serving for minutes. 0 turns the early check off.
    early_abort_factor: float = Field(default=3.0, ge=0)
    # Targets with `canary_probes = true`: one probe request every this many seconds while canary, and
    # how long one may take before it counts as failed.
    probe_interval_s: PositiveFloat = 2.0
    probe_timeout_s: PositiveFloat = 10.0
    # A Triton load or a vLLM relaunch that does not report ready within this many seconds has failed.
    apply_timeout_s: PositiveFloat = 600.0
    # SIGTERM -> SIGKILL grace when a relaunch stops a server.
    stop_grace_s: PositiveFloat = 30.0
    # Seconds between two steps of the rollout loop.
    step_interval_s: PositiveFloat = 1.0
    # Daemons sharing one database (PostgreSQL) lease each rollout they drive for this long, renewing it a few
    # times per lease; when a daemon dies, another one whose config has the rollout's targets takes it over
    # once the lease has expired (daemon/rollouts/lease.py).
    lease_s: float = Field(default=30.0, ge=1.0, le=3600.0)
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


IdentityName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")]


class _SecretSource(_Strict):
    """Where a signing secret is read from: a file (mode 0600, like an SSH key) or an environment variable."""

    secret_file: str | None = None
    secret_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")

    @model_validator(mode="after")
    def _one_source(self) -> _SecretSource:
        if (self.secret_file is None) == (self.secret_env is None):
            raise ValueError("give exactly one of secret_file and secret_env")
        return self


class IdentityConfig(_SecretSource):
    """Someone allowed to send commands over MQTT, and what they may do.

    `actions` default to proposing only (least privilege); `targets` are fnmatch patterns over target
    names, so e.g. ops may roll out to `prod-*` while the team may only touch `dev-*`.
    """

    name: IdentityName
    actions: list[CommandAction] = Field(default=["propose"], min_length=1)
    targets: list[str] = Field(default=["*"], min_length=1)


class ClientAuthConfig(_Strict):
    """How this charter-tui signs the commands it sends to a remote daemon (`tui --connect`)."""

    identity: IdentityName | None = None
    secret_file: str | None = None
    secret_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class AuthConfig(_Strict):
    """Commands over MQTT are HMAC-SHA256 signed by a configured identity (daemon/auth.py)."""

    # A signed command older (or newer) than this is refused as stale; its nonce is remembered this long.
    max_skew_s: float = Field(default=30.0, gt=0, le=600)
    identities: list[IdentityConfig] = []
    client: ClientAuthConfig = ClientAuthConfig()

    @field_validator("identities")
    @classmethod
    def _unique_identities(cls, v: list[IdentityConfig]) -> list[IdentityConfig]:
        names = [i.name for i in v]
        if len(set(names)) != len(names):
            raise ValueError("an identity name is used twice")
        return v


WebhookEvent = Literal["approval_needed", "promoted", "failed", "rolled_back"]
WEBHOOK_EVENTS: tuple[WebhookEvent, ...] = ("approval_needed", "promoted", "failed", "rolled_back")


class WebhookConfig(_Strict):
    """A URL told when a rollout waits for approval, is promoted, fails or is rolled back (daemon/webhooks.py).

    `format = "slack"` posts `{"text": ...}`, which Slack and Mattermost incoming webhooks both take;
    `"json"` posts the event with the rollout's id, state, targets and reason, for an orchestrator.
    With `secret_file` or `secret_env`, each request carries `X-Charter-Timestamp` and
    `X-Charter-Signature: sha256=HMAC(secret, "<timestamp>.<body>")` so the receiver can check it.
    """

    url: Annotated[str, SECRET]  # Slack and Mattermost webhook URLs carry their token in the path
    format: Literal["slack", "json"] = "slack"
    events: list[WebhookEvent] = Field(default=list(WEBHOOK_EVENTS), min_length=1)
    secret_file: str | None = None
    secret_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
    timeout_s: PositiveFloat = 10.0
    # Connection errors, timeouts, 429 and 5xx are retried with backoff (1 s, 2 s, 4 s, ... up to 60 s).
    max_attempts: int = Field(default=5, ge=1, le=20)

    _url = field_validator("url")(classmethod(lambda cls, v: check_http_url(v)))

    @model_validator(mode="after")
    def _one_secret_source(self) -> WebhookConfig:
        if self.secret_file is not None and self.secret_env is not None:
            raise ValueError("give at most one of secret_file and secret_env")
        return self


class Config(_Strict):
    daemon: DaemonConfig = DaemonConfig()
    auth: AuthConfig = AuthConfig()
    storage: StorageConfig = StorageConfig()
    mqtt: MqttConfig = MqttConfig()
    watch: WatchConfig = WatchConfig()
    slo: SloConfig = SloConfig()
    thresholds: ThresholdConfig = ThresholdConfig()
    keymap: KeymapConfig = KeymapConfig()
    rollouts: RolloutConfig = RolloutConfig()
    webhooks: list[WebhookConfig] = []
    http: HttpApiConfig = HttpApiConfig()
    gpu: GpuConfig = GpuConfig()
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


def _reason(err: ErrorDetails) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key (check the spelling; `charter-tui config init` writes every key with a comment)"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "missing":
        return msg
    got = err["input"]
    # Name TOML's type for a wrong type: "got 'yes'" alone does not say that quotes are the problem.
    kind = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}.get(
        type(got), type(got).__name__
    )
    return f"{msg} (got {kind} {shown(repr(got), 80)})"


def describe_validation_error(exc: ValidationError) -> tuple[str, str]:
    """(key path, reason) of the first error: one fact a user can act on, not pydantic's report."""
    err = exc.errors()[0]
    return _key_path(err["loc"]), _reason(err)


def parse_config(text: str, file: str = "<config>") -> Config:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "", f"not valid TOML: {exc}") from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively; `a = [[[[...` overflows it.
        raise ConfigError(file, "", "not valid TOML: arrays or inline tables nested too deeply") from None
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        key, reason = describe_validation_error(exc)
        raise ConfigError(file, key, reason) from None
    except RecursionError:
        raise ConfigError(file, "", "values nested too deeply") from None


def read_config_file(path: Path) -> str | None:
    """The text of the config file, None if there is none; ConfigError if it cannot be one.

    Opened without blocking and checked on the open descriptor (no race with a swap): a FIFO would
    block the open and the read forever, /dev/zero never ends, a directory is not a file. The read
    is bounded even if the file grows while it is read.
    """
    check_path(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot be opened: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(str(path), "", "is not a regular file (a directory, device, FIFO or socket)")
        if info.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(
                str(path), "", f"is {info.st_size} bytes (max {MAX_CONFIG_BYTES}); not a config file?"
            )
        chunks, size = [], 0
        while size <= MAX_CONFIG_BYTES:
            chunk = os.read(fd, MAX_CONFIG_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(str(path), "", f"grew past {MAX_CONFIG_BYTES} bytes while being read")
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot be read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), "", f"is not UTF-8 text (byte {exc.start})") from None


def load_config(config_override: str | os.PathLike[str] | None = None) -> LoadedConfig:
    """Read the config file (missing file = defaults, unless it was named explicitly)."""
    locs = locations(config_override)
    path = locs.config_file
    text = read_config_file(path)
    if text is not None:
        config, source = parse_config(text, str(path)), path
    elif config_override or os.environ.get("CHARTER_TUI_CONFIG"):
        raise ConfigError(str(path), "", "no such file (run `charter-tui config init` to write one)")
    else:
        config, source = Config(), None
    discover = os.environ.get(ENV_DISCOVER)
    if discover is not None:
        if discover.lower() not in ("0", "1", "false", "true", "no", "yes", "off", "on"):
            raise ConfigError(f"${ENV_DISCOVER}", "", f"{discover[:20]!r} is not a boolean (0/1, true/false)")
        daemon = config.daemon.model_copy(update={"discover": discover.lower() in ("1", "true", "yes", "on")})
        config = config.model_copy(update={"daemon": daemon})
    database_url = os.environ.get(ENV_DATABASE_URL) or config.storage.url or locs.default_database_url
    log_file = Path(os.environ.get(ENV_LOG_FILE) or locs.default_log_file)
    # Known from here on, so any log line or message that quotes one is redacted (daemon/redaction.py).
    remember(secret_values(config) | {url_password(database_url) or ""})
    return LoadedConfig(
        config=config, source=source, locations=locs, database_url=database_url, log_file=log_file
    )
