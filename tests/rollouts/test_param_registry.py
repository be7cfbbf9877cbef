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
        "unknown vllm parameter 'max-num-sequences'; known: " + ", ".join(sorted(VLLM_PARAMS)))


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


@pytest.mark.parametrize(("spec", "shown"), [
    (ParamSpec("n", "int", "h", min=1, max=65536), "int in [1, 65536]"),
    (ParamSpec("f", "float", "h", min=0.05), "float in [0.05, inf]"),
    (ParamSpec("f", "float", "h", max=0.5), "float in [-inf, 0.5]"),
    (ParamSpec("e", "enum", "h", choices=("a", "b")), "one of a|b"),
    (ParamSpec("b", "bool", "h"), "bool"),
    (ParamSpec("s", "string", "h"), "string"),
])
def test_describe_says_type_and_range(spec: ParamSpec, shown: str) -> None:
    assert spec.describe() == shown
