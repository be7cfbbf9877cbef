"""Fuzz the config loader: whatever the file holds, it loads a sound config or raises ConfigError.

The generator (config_fuzz.py) builds TOML from the config's own keys with values of every type,
corrupts some documents and makes others random bytes. Hypothesis drives it through a seeded
seed (a failure is reported with it), and feeds raw bytes and raw text of its own. A few seconds only;
`scripts/fuzz_config.py N` runs the same generator N times by hand.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.foundation.config_fuzz import KEYS, check, document

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_DIR = Path(tempfile.mkdtemp(prefix="charter-config-fuzz-"))


def test_the_generator_knows_the_config_keys() -> None:
    keys = {".".join(map(str, k)) for k, _ in KEYS}
    assert {
        "daemon.readonly",
        "mqtt.port",
        "targets.0.url",
        "targets.0.timeout_s",
        "rollouts.commands.k.params.k.pattern",
        "watch.debounce_ms",
    } <= keys


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1))
def test_generated_config_documents_only_ever_raise_config_error(seed: int) -> None:
    # A seed, not st.randoms(): Hypothesis' own Random leans to the first choice of every list,
    # which starves the generator of the rarer hostile values (an inf, a NUL in a URL).
    problem = check(_DIR / "config.toml", document(random.Random(seed)))
    assert problem is None, problem


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes_only_ever_raise_config_error(data: bytes) -> None:
    problem = check(_DIR / "config.toml", data)
    assert problem is None, problem


@FUZZ
@given(st.text(max_size=500))
def test_random_text_only_ever_raises_config_error(text: str) -> None:
    problem = check(_DIR / "config.toml", text.encode("utf-8", "surrogatepass"))
    assert problem is None, problem
