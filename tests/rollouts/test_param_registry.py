"""The parameter registries and their names: lookup, normalisation, the vLLM flags, `describe`.

`tests/rollouts/test_params.py` covers `ParamSpec.coerce` (the values); this file covers how a
parameter is found and shown, the paths the mutation run (docs/mutation.md) found unchecked.
"""

from __future__ import annotations

import pytest

from daemon.actuators.params import (
    TRITON_PARAMS,
    VLLM_PARAMS,
    InvalidChange,
    ParamSpec,
    lookup,
    normalize_name,
)


@pytest.mark.parametrize("raw", ["--max-num-seqs", "max-num-seqs", "max_num_seqs", "-max-num-seqs"])
def test_every_spelling_of_a_vllm_flag_finds_the_same_spec(raw: str) -> None:
    assert lookup(VLLM_PARAMS, raw, "vllm") is VLLM_PARAMS["max_num_seqs"]


def test_names_starting_with_x_keep_their_first_letter() -> None:
    assert normalize_name("--xla-flags") == "xla_flags" and normalize_name("X-y") == "X_y"


@pytest.mark.parametrize("raw", ["", "--", "9lives", "max num seqs", "a" * 81, "max;rm"])
def test_a_name_that_is_no_parameter_name_is_refused(raw: str) -> None:
    with pytest.raises(InvalidChange, match="is not a parameter name"):
        normalize_name(raw)


def test_unknown_parameter_lists_the_known_ones_sorted() -> None:
    with pytest.raises(InvalidChange) as err:
        lookup(VLLM_PARAMS, "max-num-sequences", "vllm")
    assert str(err.value) == (
        "unknown vllm parameter 'max-num-sequences'; known: " + ", ".join(sorted(VLLM_PARAMS))
    )


def test_triton_dotted_fields_are_found_as_written() -> None:
    assert lookup(TRITON_PARAMS, "instance_group.count", "triton").location == "field"


def test_registry_keys_are_their_own_normal_form() -> None:
    """Why `lookup`'s second try (the raw name) never matters for the shipped registries."""
    for registry in (VLLM_PARAMS, TRITON_PARAMS):
        for name in registry:
            assert normalize_name(name) == name


def test_vllm_specs_carry_their_real_flags() -> None:
    """What a relaunch puts in argv: `--max-num-seqs`, and for booleans also `--no-enable-prefix-caching`."""
    assert VLLM_PARAMS["max_num_seqs"].flag == "--max-num-seqs"
    assert VLLM_PARAMS["max_num_seqs"].negative_flag is None
    assert VLLM_PARAMS["enable_prefix_caching"].flag == "--enable-prefix-caching"
    assert VLLM_PARAMS["enable_prefix_caching"].negative_flag == "--no-enable-prefix-caching"
    for name, spec in VLLM_PARAMS.items():
        assert spec.name == name and spec.help
        assert spec.flag == "--" + name.replace("_", "-")
        assert (spec.negative_flag is not None) == (spec.type == "bool")


@pytest.mark.parametrize(
    ("spec", "shown"),
    [
        (ParamSpec("n", "int", "h", min=1, max=65536), "int in [1, 65536]"),
        (ParamSpec("f", "float", "h", min=0.05), "float in [0.05, inf]"),
        (ParamSpec("f", "float", "h", max=0.5), "float in [-inf, 0.5]"),
        (ParamSpec("e", "enum", "h", choices=("a", "b")), "one of a|b"),
        (ParamSpec("b", "bool", "h"), "bool"),
        (ParamSpec("s", "string", "h"), "string"),
    ],
)
def test_describe_says_type_and_range(spec: ParamSpec, shown: str) -> None:
    assert spec.describe() == shown


# --- ParamSpec.coerce: what a person reads when a value is refused, and the exact edges ------------

INT = ParamSpec("max_num_seqs", "int", "h", min=1, max=65536)
FLOAT = ParamSpec("gpu_memory_utilization", "float", "h", min=0.05, max=0.99)
FLAG = ParamSpec("enable_prefix_caching", "bool", "h")
TEXT = ParamSpec("variant", "string", "h")
PATH = ParamSpec("config", "string", "h", pattern=r"[A-Za-z0-9_./-]{1,64}")


@pytest.mark.parametrize(
    ("spec", "raw", "message"),
    [
        (INT, 0, "max_num_seqs=0 is below the minimum 1"),
        (INT, "65537", "max_num_seqs='65537' is above the maximum 65536"),
        (INT, "8.5", "max_num_seqs='8.5' is not an integer"),
        (INT, "", "max_num_seqs='' must be 1-256 characters"),
        (INT, "8;rm", "max_num_seqs='8;rm' contains whitespace, quotes, control or shell characters"),
        (INT, [8], "max_num_seqs=[8] has type list; expected a string, number or boolean"),
        (FLOAT, "x", "gpu_memory_utilization='x' is not a number"),
        (FLOAT, "1e999", "gpu_memory_utilization='1e999' is not a finite number"),
        (FLOAT, float("nan"), "gpu_memory_utilization=nan is not a finite number"),
        (FLAG, "maybe", "enable_prefix_caching='maybe' is not a boolean (true/false)"),
        (TEXT, "-x", "variant='-x' must not start with '-'"),
        (ParamSpec("e", "enum", "h", choices=("a", "b")), "c", "e='c' is not one of a, b"),
        (PATH, "a/../b", "config='a/../b' has a '..' path segment"),
        (
            PATH,
            "/etc/passwd",
            "config='/etc/passwd' is an absolute path (the rule does not set allow_absolute_paths)",
        ),
        (ParamSpec("s", "string", "h", pattern="("), "x", None),
    ],
)
def test_refusals_name_the_parameter_the_value_and_the_reason(
    spec: ParamSpec, raw, message: str | None
) -> None:
    with pytest.raises(InvalidChange) as err:
        spec.coerce(raw)
    if message is None:  # an invalid pattern: the RE2 error text is its own
        assert str(err.value).startswith("s='x' cannot be checked: ")
        assert len(str(err.value)) > len("s='x' cannot be checked: ")
    else:
        assert str(err.value) == message


def test_bounds_and_length_limits_are_inclusive() -> None:
    assert INT.coerce("1") == 1 and INT.coerce(65536) == 65536
    assert FLOAT.coerce("0.05") == 0.05 and FLOAT.coerce(0.99) == 0.99
    long_ok = "a" * 256
    assert ParamSpec("s", "string", "h", pattern=r"a{1,300}").coerce(long_ok) == long_ok
    with pytest.raises(InvalidChange, match="must be 1-256 characters"):
        ParamSpec("s", "string", "h", pattern=r"a{1,300}").coerce(long_ok + "a")


def test_json_booleans_coerce_to_booleans() -> None:
    assert FLAG.coerce(True) is True and FLAG.coerce(False) is False
    assert FLAG.coerce("ON") is True and FLAG.coerce("off") is False


def test_the_default_string_pattern_takes_both_cases() -> None:
    assert TEXT.coerce("Canary-B.2") == "Canary-B.2"
    with pytest.raises(InvalidChange, match="does not match"):
        TEXT.coerce("a" * 65)


def test_a_long_value_is_shown_cut_to_60_characters() -> None:
    with pytest.raises(InvalidChange) as err:
        INT.coerce("9" * 100)
    shown = str(err.value).removeprefix("max_num_seqs=").removesuffix(" is not an integer")
    assert shown == repr("9" * 100)[:57] + "..." and len(shown) == 60
    with pytest.raises(InvalidChange) as err:
        INT.coerce("9" * 58)  # its repr is exactly 60 characters: shown whole
    assert str(err.value) == f"max_num_seqs={'9' * 58!r} is not an integer"
    with pytest.raises(InvalidChange) as err:
        INT.coerce("9" * 59)  # 61 characters: cut
    assert str(err.value) == f"max_num_seqs={repr('9' * 59)[:57]}... is not an integer"


def test_a_vllm_spec_is_built_with_the_flags_vllm_parses() -> None:
    """`_vllm` called at test time, not only at import: the registry is built when the module is
    imported, before a mutation run switches a mutant on, so only a call here checks the builder."""
    from daemon.actuators.params import _vllm

    assert _vllm("max_loras", "int", "adapters per batch", min=1, max=8) == ParamSpec(
        name="max_loras",
        type="int",
        help="adapters per batch",
        flag="--max-loras",
        negative_flag=None,
        min=1,
        max=8,
    )
    # vLLM's BooleanOptionalAction: both spellings, the negative one with `no-` after the dashes.
    assert _vllm("enforce_eager", "bool", "no CUDA graphs") == ParamSpec(
        name="enforce_eager",
        type="bool",
        help="no CUDA graphs",
        flag="--enforce-eager",
        negative_flag="--no-enforce-eager",
    )
    assert _vllm("kv_cache_dtype", "enum", "dtype", choices=("auto", "fp8")).choices == ("auto", "fp8")
