"""What is secret, and how it is redacted: the one place that knows.

Secret are:
- config fields annotated `SECRET` (`[mqtt] password`): the whole value;
- config fields annotated `SECRET_VALUES` (`[targets.launch] env`): every value of the mapping, because
  that is where HF_TOKEN and friends live and no name list can know them all;
- the userinfo of any URL (target `url`, `metrics_url`, `[storage] url`, the database URL, a broker URL):
  `postgresql://user:***@host/db`; a URL with a user and no password becomes `***@host`, since a bare
  user part is how tokens are passed (`https://TOKEN@host`);
- the value of argv flags that carry credentials (`--api-key X`, `--hf-token=X`), because a vLLM
  snapshot records the server's real argv;
- in free-form data (bus payloads, stored JSON), the values of keys that name a secret (`password`,
  `hf_token`, `api_key`, ...) and every value of an `env` mapping.

Values known to be secret (collected from the loaded config by `secret_values`) are `remember`ed process
wide, so a log line or an error message that quotes one verbatim is redacted too.

Redaction is for what is shown, logged or published. What the daemon needs to act (the real previous
config a rollback restores, the password the broker login uses) is kept as it is: the models stay plain
`str`, and callers redact their output through this module.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel

MASK = "***"
# Shorter remembered values are not masked inside text: a 1-3 character "password" would blank out
# every occurrence of that string in every log line, hiding far more than it protects.
MIN_KNOWN_LEN = 4
MAX_KNOWN = 1000  # remembered values, bounded: configs are small, anything beyond is a bug upstream
MAX_DEPTH = 64  # nesting redact_data follows; deeper data is masked whole rather than recursed into


class _Marker:
    """Field metadata: `Annotated[str | None, SECRET]`. Plain `str` values stay readable by callers."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"redaction.{self.name}"


SECRET = _Marker("SECRET")
SECRET_VALUES = _Marker("SECRET_VALUES")

# Key names that hold a secret in free-form data. Anchored at a word boundary of the key, so
# `hf_token` and `api_key` match but `prompt_tokens` and `generation_tokens_per_s` do not.
_SECRET_KEY = re.compile(
    r"(?i)^(?:.*[_.-])?(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|auth|authorization|"
    r"credentials?|private[_-]?key)$"
)
# ...except a key that counts or paces tokens: `delay_ms_per_token`, `max_tokens`, `tokens_per_block` are
# engine settings whose values a person must see (a new user's Triton rollout showed its before-value as ***).
_TOKEN_MEASURE = re.compile(
    r"(?i)(?:^|[_.:-])(?:per|max|min|num|first|last|prompt|input|output|generation|total|new|avg|mean)[_.-]"
    r"(?:[a-z0-9]+[_.-])*tokens?$"
)
# Environment variable names that hold a credential (HF_TOKEN, OPENAI_API_KEY, AWS_SECRET_ACCESS_KEY).
_SECRET_ENV_NAME = re.compile(r"(?i)token|secret|passw|pwd|api_?key|access_?key|private_?key|credential|auth")
# argv flags whose next element (or `=value`) is a credential.
_SECRET_FLAG = re.compile(r"(?i)^--?(?:[a-z0-9]+[_-])*(?:api[_-]?key|token|password|passwd|secret|auth)$")
# `scheme://userinfo@` anywhere in text. The userinfo is greedy up to the last `@` before the host, so a
# raw `@` inside a password is still covered (urlsplit splits the same way).
_URL_USERINFO = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^\s/?#@'\"]*(?:@[^\s/?#@'\"]*)*)@"
)
# `NAME_TOKEN=value`, `"password": "value"` and `--api-key value` / `'--api-key', 'value'` (an argv repr) in text.
# `:` only after a quoted key (JSON, a dict repr): in prose, "first token: 3" is not a credential.
_TEXT_ASSIGN = re.compile(
    r"(?i)(?P<key>\b[A-Za-z0-9_]*(?:password|passwd|secret|token|api_?key|apikey)\b(?:\s*=\s*|['\"]\s*:\s*))"
    r"(?P<q>['\"]?)(?P<value>[^\s'\",;&]+)"
)
_BEARER = re.compile(r"(?i)\b(?P<scheme>bearer|basic)\s+[A-Za-z0-9._~+/-]{8,}=*")
_TEXT_FLAG = re.compile(
    r"(?i)(?P<flag>--(?:[a-z0-9]+[_-])*(?:api[_-]?key|token|password|passwd|secret)(?:=|\s+|['\"],\s*['\"]))"
    r"(?P<value>[^\s'\"]+)"
)

_known: set[str] = set()
_known_lock = threading.Lock()
_known_sorted: tuple[str, ...] = ()


# --- what is secret ---------------------------------------------------------------------------
def is_secret_key(key: object) -> bool:
    return isinstance(key, str) and bool(_SECRET_KEY.match(key)) and not _TOKEN_MEASURE.search(key)


def url_password(url: str) -> str | None:
    """The credential part of a URL's userinfo (the password, else a bare user), or None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if "@" not in parts.netloc:
        return None
    return parts.password if parts.password is not None else parts.username


def secret_values(model: BaseModel) -> set[str]:
    """The secret values of a config model, to `remember`: marked fields, env values named like a
    credential, credential argv flags, URL credentials in any string."""
    out: set[str] = set()

    def walk(value: Any, marker: _Marker | None) -> None:
        if isinstance(value, BaseModel):
            for name, field in type(value).model_fields.items():
                marks = [m for m in field.metadata if isinstance(m, _Marker)]
                walk(getattr(value, name), marks[0] if marks else None)
        elif isinstance(value, Mapping):
            for k, v in value.items():
                if marker is SECRET_VALUES:
                    # Every env value is masked where shown, but only those named like a credential are
                    # masked inside all text: masking "INFO" or "true" in every log line would hide more
                    # than it protects.
                    walk(v, SECRET if _SECRET_ENV_NAME.search(str(k)) else None)
                else:
                    walk(v, marker)
        elif isinstance(value, (list, tuple)):
            out.update(_argv_secrets(value))  # `--api-key X` in a launch argv
            for v in value:
                walk(v, marker)
        elif isinstance(value, str):
            if marker is SECRET:
                out.add(value)
            else:
                pw = url_password(value) if "@" in value else None
                if pw:
                    out.add(pw)

    walk(model, None)
    return {v for v in out if v}


def _argv_secrets(argv: Iterable[Any]) -> set[str]:
    out: set[str] = set()
    take_next = False
    for arg in argv:
        if take_next and isinstance(arg, str):
            out.add(arg)
        take_next = False
        if isinstance(arg, str):
            head, eq, value = arg.partition("=")
            if _SECRET_FLAG.match(head):
                if eq:
                    out.add(value)
                else:
                    take_next = True
    return out


def remember(values: Iterable[str]) -> None:
    """Known secret values, masked wherever they appear in redacted text (log lines, messages)."""
    global _known_sorted
    with _known_lock:
        for v in values:
            if isinstance(v, str) and len(v) >= MIN_KNOWN_LEN and len(_known) < MAX_KNOWN:
                _known.add(v)
        # Longest first: a secret that contains another is masked whole, not in pieces.
        _known_sorted = tuple(sorted(_known, key=len, reverse=True))


def forget_all() -> None:
    """Drop every remembered value (tests)."""
    global _known_sorted
    with _known_lock:
        _known.clear()
        _known_sorted = ()


# --- redaction ----------------------------------------------------------------------------------
def _mask_userinfo(userinfo: str) -> str:
    user, sep, _password = userinfo.partition(":")
    return f"{user}:{MASK}" if sep else MASK


def redact_url(url: str) -> str:
    """`postgresql://user:***@host/db`; credential query parameters masked; other URLs unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:  # a malformed URL (bad IPv6 literal): fall back to the text patterns
        return redact_text(url)
    netloc, query = parts.netloc, parts.query
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{_mask_userinfo(userinfo)}@{host}"
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_secret_key(k) for k, _ in pairs):
            query = urlencode([(k, MASK if is_secret_key(k) else v) for k, v in pairs], safe="*")
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Free text (a log line, an error message) with URL credentials, `X_TOKEN=...`, credential argv
    flags and every remembered secret value masked."""
    # Each pattern runs only where its anchor character occurs: most strings (names, numbers as text)
    # skip them all, which keeps `encode` cheap on the poller's per-sample messages.
    if "@" in text:
        text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{_mask_userinfo(m['userinfo'])}@", text)
    if "=" in text or ":" in text:
        text = _TEXT_ASSIGN.sub(
            lambda m: (
                m[0] if _TOKEN_MEASURE.search(m["key"].rstrip("='\": \t")) else f"{m['key']}{m['q']}{MASK}"
            ),
            text,
        )
    if "--" in text:
        text = _TEXT_FLAG.sub(lambda m: f"{m['flag']}{MASK}", text)
    if " " in text:
        text = _BEARER.sub(lambda m: f"{m['scheme']} {MASK}", text)
    for value in _known_sorted:
        if value in text:
            text = text.replace(value, MASK)
    return text


def redact_argv(argv: list[Any]) -> list[Any]:
    """`[..., "--api-key", "***"]` / `"--hf-token=***"`; every other element unchanged."""
    out: list[Any] = []
    mask_next = False
    for arg in argv:
        if not isinstance(arg, str):
            out.append(redact_data(arg))
            mask_next = False
            continue
        if mask_next:
            out.append(MASK)
            mask_next = False
            continue
        head, eq, _value = arg.partition("=")
        if _SECRET_FLAG.match(head):
            if eq:
                out.append(f"{head}={MASK}")
            else:
                out.append(arg)
                mask_next = True
            continue
        out.append(redact_text(arg))
    return out


def redact_data(data: Any, _depth: int = 0) -> Any:
    """A redacted copy of JSON-like data (dicts, lists, strings, models): what may be shown or published."""
    if _depth > MAX_DEPTH:
        return MASK
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    if isinstance(data, str):
        return redact_text(data)
    if isinstance(data, Mapping):
        out: dict[Any, Any] = {}
        for key, value in data.items():
            if value is None or isinstance(value, (bool, int, float)):
                out[key] = value  # most of a metric sample: nothing to mask, nothing to walk
            elif key == "env" and isinstance(value, Mapping):
                out[key] = {k: MASK for k in value}
            elif isinstance(value, str) and value and is_secret_key(key):
                out[key] = MASK
            else:
                out[key] = redact_data(value, _depth + 1)
        return out
    if isinstance(data, (list, tuple)):
        if any(isinstance(v, str) and v.startswith("-") for v in data):
            return redact_argv(list(data))
        return [redact_data(v, _depth + 1) for v in data]
    return data


def redact_config(model: BaseModel, *, exclude_none: bool = False) -> dict[str, Any]:
    """A config model as JSON-able data, with its marked fields and every URL credential masked."""
    dumped = model.model_dump(mode="json", exclude_none=exclude_none)
    out: dict[str, Any] = {}
    for name, value in dumped.items():
        field = type(model).model_fields.get(name)
        marks = [m for m in field.metadata if isinstance(m, _Marker)] if field is not None else []
        live = getattr(model, name, None)
        if SECRET in marks and value is not None:
            out[name] = MASK
        elif SECRET_VALUES in marks and isinstance(value, Mapping):
            out[name] = {k: MASK for k in value}
        elif SECRET_VALUES in marks and isinstance(value, list):  # one env per blue-green port
            out[name] = [{k: MASK for k in v} if isinstance(v, Mapping) else MASK for v in value]
        elif isinstance(live, BaseModel):
            out[name] = redact_config(live, exclude_none=exclude_none)
        elif isinstance(live, (list, tuple)) and live and all(isinstance(v, BaseModel) for v in live):
            out[name] = [redact_config(v, exclude_none=exclude_none) for v in live]
        elif isinstance(live, Mapping) and live and all(isinstance(v, BaseModel) for v in live.values()):
            out[name] = {k: redact_config(v, exclude_none=exclude_none) for k, v in live.items()}
        else:
            out[name] = redact_data(value)
    return out
