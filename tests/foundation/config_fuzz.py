"""Random config files for fuzzing the loader: TOML built from the config's own keys, then broken.

One generator, driven by a `random.Random`, serves both the hypothesis test (which hands it a
seeded Random it can shrink) and `scripts/fuzz_config.py` (which runs it N times and reports).
A document sets a few real keys (found by walking the `Config` model, so new keys are covered
without editing this file) to values of every TOML type, right and wrong: hostile strings (CR/LF,
NUL, "yes", "1883", non-http URLs, bad regexes), huge and non-finite numbers, deep arrays, dates.
Some documents are then corrupted byte by byte, and some are random bytes from the start.

`check(path)` runs the real loader on a file and returns None when it behaved: it loaded a config
that keeps the promises (finite numbers, clean URLs), or it raised ConfigError with one line.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import types
import typing
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel

from daemon.config import Config, load_config
from daemon.errors import ConfigError

Key = tuple[str | int, ...]


def _submodel(annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """('direct'|'list'|'dict', Model) when a field holds config tables, else None."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "direct", annotation
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            found = _submodel(arg)
            if found:
                return found
    if origin is list and args and _submodel(args[0]):
        return "list", _submodel(args[0])[1]  # type: ignore[index]
    if origin is dict and len(args) == 2 and _submodel(args[1]):
        return "dict", _submodel(args[1])[1]  # type: ignore[index]
    return None


def schema_keys(model: type[BaseModel] = Config, prefix: Key = ()) -> list[tuple[Key, Any]]:
    """Every key path of the config with its annotation; lists of tables get index 0, dicts key 'k'."""
    out: list[tuple[Key, Any]] = []
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        out.append((path, field.annotation))
        sub = _submodel(field.annotation)
        if sub is None:
            continue
        kind, inner = sub
        extra: Key = () if kind == "direct" else ((0,) if kind == "list" else ("k",))
        out += schema_keys(inner, (*path, *extra))
    return out


KEYS = schema_keys()

HOSTILE_STRINGS = [
    "",
    "yes",
    "no",
    "true",
    "1883",
    "1e309",
    "inf",
    "nan",
    "-1",
    " ",
    "\t",
    "a" * 5000,
    "http://h:8000\r\nX-Injected: 1",
    "http://h 8000",
    "http://h\x00",
    "ftp://h",
    "file:///etc/passwd",
    "http://",
    "http://h:99999",
    "http://[::1",
    "((",
    "(a+)+",
    "(a)\\1",
    "(?=x)",
    "[a-z",
    "a{1001}",
    "../../../etc/passwd",
    "/etc/passwd",
    "\x1b[2J",
    "\u2028",
    "\ud7ff",
    "k" * 300,
    "vllm",
    "auto",
    "string",
    "http://127.0.0.1:8000",
    "ttft_p95_s",
    "*",
]


URL_STRINGS = [s for s in HOSTILE_STRINGS if "://" in s] + [
    "http://h:8000\t",
    "http://h:8000/\x85",
    "http://h:8000/\u2028",
    " http://h",
    "http://h\x0b:1",
    "http://h/\x7f",
]


def _string(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return rng.choice(HOSTILE_STRINGS)
    alphabet = "abc:/.-_ \r\n\t\x00\x7f\u00e9\u202e[](){}*+?\\\"'"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))


def _number(rng: random.Random) -> int | float:
    return rng.choice(
        [
            0,
            1,
            -1,
            2,
            65535,
            65536,
            2**63 - 1,
            -(2**63),
            10**6,
            rng.randint(-(10**9), 10**9),
            0.0,
            -0.0,
            0.5,
            1.5,
            1e-300,
            1e308,
            -1e308,
            math.inf,
            -math.inf,
            math.nan,
            rng.uniform(-1e6, 1e6),
        ]
    )


def value(rng: random.Random, depth: int = 0) -> Any:
    """A random TOML value of any type; nested ones stay shallow except for the deliberate deep array."""
    roll = rng.random()
    if roll < 0.25:
        return _string(rng)
    if roll < 0.5:
        return _number(rng)
    if roll < 0.6:
        return rng.random() < 0.5
    if roll < 0.65:
        return rng.choice(
            [
                dt.datetime(2026, 1, 2, 3, 4, 5),
                dt.date(2026, 1, 2),
                dt.time(3, 4, 5),
                dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc),
            ]
        )
    if roll < 0.7 and depth == 0:
        nested: Any = rng.choice(["x", 1, {}])
        for _ in range(rng.randint(1, 400)):  # deep, yet within what tomli_w itself can write
            nested = [nested]
        return nested
    if depth >= 3:
        return _string(rng)
    if roll < 0.85:
        return [value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {_string(rng) or "k": value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def _base(annotation: Any) -> Any:
    """The plain type under Annotated/Optional wrappers: float, int, str, bool, list, dict, or None."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _base(args[0])
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _base(inner[0]) if inner else None
    if origin is typing.Literal:
        return str
    return origin or annotation


def typed_value(rng: random.Random, annotation: Any, key: Key = ()) -> Any:
    """A value of the field's own TOML type (so the document gets past the type check to the
    range, finiteness and URL checks behind it), hostile within that type."""
    base = _base(annotation)
    if base is float:  # non-finite often: most float keys take inf past their range check
        return rng.choice([math.inf, math.nan, -math.inf]) if rng.random() < 0.3 else float(_number(rng))
    if base is int:
        return int(rng.choice([0, 1, -1, 65535, 65536, 2**63 - 1, rng.randint(-1000, 100000)]))
    if base is bool:
        return rng.random() < 0.5
    if base is str:
        if key and key[-1] in ("url", "metrics_url") and rng.random() < 0.7:
            return rng.choice(URL_STRINGS)
        return _string(rng)
    if base is list:
        return [_string(rng) for _ in range(rng.randint(0, 3))]
    if base is dict:
        return {_string(rng) or "k": _string(rng) for _ in range(rng.randint(0, 2))}
    return value(rng)


def _set(doc: dict[str, Any], key: Key, val: Any) -> None:
    node: Any = doc
    for part, nxt in zip(key, key[1:]):
        if isinstance(part, int):
            continue
        if isinstance(nxt, int):  # an array of tables: write into its first table
            current = node.get(part)
            if not (isinstance(current, list) and current and isinstance(current[0], dict)):
                node[part] = [{}]
            node = node[part][0]
        else:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
    node[key[-1]] = val


def document(rng: random.Random) -> bytes:
    """One config file's bytes: real keys with random values, maybe corrupted, or random bytes."""
    if rng.random() < 0.1:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
    doc: dict[str, Any] = {}
    if rng.random() < 0.5:  # a sane target gives the validators behind it something to reach
        doc["targets"] = [{"name": "t", "url": "http://127.0.0.1:8000"}]
    # Often one key only: a document with one wrong value is refused for that value, so whatever
    # the loader lets through shows up in the promise check instead of hiding behind another error.
    for _ in range(1 if rng.random() < 0.5 else rng.randint(2, 6)):
        key, annotation = rng.choice(KEYS)
        _set(doc, key, typed_value(rng, annotation, key) if rng.random() < 0.6 else value(rng))
    if rng.random() < 0.1:
        _set(doc, (_string(rng) or "x",), value(rng))  # an unknown top-level key
    try:
        text = tomli_w.dumps(doc).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError, RecursionError):  # tomli_w refuses a few values: use the repr
        text = repr(doc).encode("utf-8", "surrogatepass")
    if rng.random() < 0.25:
        data = bytearray(text)
        for _ in range(rng.randint(1, 8)):
            op, pos = rng.random(), rng.randrange(len(data) + 1)
            if op < 0.4:
                data[pos:pos] = bytes([rng.randrange(256)])
            elif op < 0.7 and data:
                del data[min(pos, len(data) - 1)]
            else:
                data[pos:pos] = rng.choice([b"[", b"]", b"{", b'"', b"=", b"\n", b"[[", b"\\u0000", b"\xff"])
        text = bytes(data)
    return text


def _promises_kept(config: Config) -> str | None:
    """Why a config that loaded breaks a promise of the loader, or None."""
    stack: list[Any] = [config.model_dump()]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack += item.values()
        elif isinstance(item, list):
            stack += item
        elif isinstance(item, float) and not math.isfinite(item):
            return f"a non-finite number was accepted: {item!r}"
    for target in config.targets:
        for url in (target.url, target.metrics_url):
            # Checked here independently of check_http_url, so that a hole in it shows.
            if url is not None and (
                not url.startswith(("http://", "https://"))
                or any(c.isspace() or not c.isprintable() for c in url)
            ):
                return f"a bad URL was accepted: {url!r}"
    return None


def outcome(path: Path, data: bytes) -> tuple[str, str | None]:
    """Write `data` to `path` and load it: ('loaded'|'refused', None), or ('finding', what went wrong)."""
    path.write_bytes(data)
    try:
        loaded = load_config(path)
    except ConfigError as exc:
        message = str(exc)
        if "\n" in message or "\r" in message:
            return "finding", f"ConfigError message spans lines: {message[:200]!r}"
        return "refused", None
    except Exception as exc:  # noqa: BLE001 - the finding: anything but ConfigError escaped
        return "finding", f"{type(exc).__name__}: {str(exc)[:300]}"
    problem = _promises_kept(loaded.config)
    return ("finding", problem) if problem else ("loaded", None)


def check(path: Path, data: bytes) -> str | None:
    """None if the loader behaved on `data`, else what went wrong."""
    return outcome(path, data)[1]
