"""Values are validated before anything runs: injection, newlines, unknown names, out-of-range numbers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pydantic import ValidationError

from daemon.actuators import validate_changes
from daemon.actuators.base import ActuatorError
from daemon.actuators.command import CommandActuator
from daemon.actuators.params import TRITON_PARAMS, VLLM_PARAMS, InvalidChange
from daemon.actuators.triton import apply_to_config, read_from_config, triton_value
from daemon.actuators.vllm import argv_value, edit_argv
from daemon.config import CommandActuatorConfig, CommandParamRule, LaunchConfig, RolloutConfig, TargetConfig
from daemon.actuators.change import Change

VLLM = TargetConfig(
    name="v", url="http://127.0.0.1:8000", engine="vllm", launch=LaunchConfig(argv=["python"])
)
TRITON = TargetConfig(name="t", url="http://127.0.0.1:8001", engine="triton", models=["textgen"])
CFG = RolloutConfig()


@pytest.mark.parametrize(
    ("target", "param", "value", "why"),
    [
        (VLLM, "max_num_seqs", "8; rm -rf /", "shell characters"),
        (VLLM, "max_num_seqs", "8\n--trust-remote-code", "shell characters"),
        (VLLM, "max_num_seqs", "$(reboot)", "shell characters"),
        (VLLM, "max_num_seqs", "`id`", "shell characters"),
        (VLLM, "max_num_seqs", "0", "below the minimum"),
        (VLLM, "max_num_seqs", "-4", "below the minimum"),
        (VLLM, "max_num_seqs", "99999999", "above the maximum"),
        (VLLM, "max_num_seqs", "8.5", "not an integer"),
        (VLLM, "max_num_seqs", 1e300, "not an integer"),
        (VLLM, "gpu_memory_utilization", "1.5", "above the maximum"),
        (VLLM, "gpu_memory_utilization", "nan", "not a number"),
        (VLLM, "gpu_memory_utilization", float("inf"), "finite"),
        (VLLM, "block_size", "7", "not one of"),
        (VLLM, "enable_prefix_caching", "maybe", "not a boolean"),
        (VLLM, "kv_cache_dtype", "--trust-remote-code", "must not start with '-'"),
        (VLLM, "trust_remote_code", "true", "unknown vllm parameter"),
        (VLLM, "max_num_seqs; rm", "1", "not a parameter name"),
        (TRITON, "variant", "a b", "shell characters"),
        (TRITON, "variant", "x" * 65, "does not match"),
        (TRITON, "delay_ms_per_token", "", "1-256 characters"),
        (TRITON, "kv_cache_free_gpu_mem_fraction", "0", "below the minimum"),
        (TRITON, "batch_scheduler_policy", "fastest", "not one of"),
        (TRITON, "backend", "python", "unknown triton parameter"),
        (TRITON, "delay_ms_per_token", None, "has type NoneType"),
    ],
)
def test_bad_values_are_refused(target: TargetConfig, param: str, value: object, why: str) -> None:
    with pytest.raises(InvalidChange, match=why):
        validate_changes(target, [{"param": param, "value": value}], CFG)


def test_good_values_are_typed_and_names_normalized() -> None:
    changes = validate_changes(
        VLLM,
        [
            {"param": "--max-num-seqs", "value": "16"},
            {"param": "enable-prefix-caching", "value": "false"},
            {"param": "gpu_memory_utilization", "value": "0.45"},
        ],
        CFG,
    )
    assert [(c.param, c.value) for c in changes] == [
        ("max_num_seqs", 16),
        ("enable_prefix_caching", False),
        ("gpu_memory_utilization", 0.45),
    ]
    triton = validate_changes(TRITON, [{"param": "delay_ms_per_token", "value": 40}], CFG)
    assert triton == [Change(param="delay_ms_per_token", value=40, model="textgen")]


def test_a_json_boolean_for_a_string_setting_is_written_in_lower_case() -> None:
    """`true` from a JSON body lands in a string setting as the text Triton's parameters expect."""
    on, off = (validate_changes(TRITON, [{"param": "variant", "value": v}], CFG)[0] for v in (True, False))
    assert (on.value, off.value) == ("true", "false")


def test_the_scheduling_policy_takes_vllms_two_policies_only() -> None:
    """`priority` is what the tracing client's priority hints need (executor/hints.py)."""
    [change] = validate_changes(VLLM, [{"param": "--scheduling-policy", "value": "priority"}], CFG)
    assert (change.param, change.value) == ("scheduling_policy", "priority")
    assert validate_changes(VLLM, [{"param": "scheduling_policy", "value": "fcfs"}], CFG)[0].value == "fcfs"
    assert VLLM_PARAMS["scheduling_policy"].flag == "--scheduling-policy"
    with pytest.raises(InvalidChange, match="not one of fcfs, priority"):
        validate_changes(VLLM, [{"param": "scheduling_policy", "value": "lifo"}], CFG)


def test_model_must_exist_and_a_change_may_not_repeat() -> None:
    with pytest.raises(InvalidChange, match="serves no model 'other'"):
        validate_changes(TRITON, [{"param": "variant", "value": "a", "model": "other"}], CFG)
    with pytest.raises(InvalidChange, match="set twice"):
        validate_changes(
            VLLM, [{"param": "max_num_seqs", "value": 4}, {"param": "max-num-seqs", "value": 5}], CFG
        )
    with pytest.raises(InvalidChange, match="only Triton targets take a model"):
        validate_changes(VLLM, [{"param": "max_num_seqs", "value": 4, "model": "m"}], CFG)


def test_engine_without_actuator_is_refused() -> None:
    auto = TargetConfig(name="a", url="http://127.0.0.1:9")
    # The default: the refusal says what to add, and how to find out which engine it is.
    with pytest.raises(
        InvalidChange, match=r'add engine = "vllm" or engine = "triton".*charter-tui probe http://127'
    ):
        validate_changes(auto, [{"param": "max_num_seqs", "value": 4}], CFG)
    sglang = TargetConfig(name="s", url="http://127.0.0.1:9", engine="sglang")
    with pytest.raises(InvalidChange, match="no actuator for engine 'sglang'"):
        validate_changes(sglang, [{"param": "max_num_seqs", "value": 4}], CFG)


@given(st.text(min_size=1, max_size=40))
def test_no_accepted_value_contains_unsafe_characters(text: str) -> None:
    for spec in list(VLLM_PARAMS.values()) + list(TRITON_PARAMS.values()):
        try:
            value = spec.coerce(text)
        except InvalidChange:
            continue
        rendered = str(value)
        assert not any(c in rendered for c in " \t\r\n;|&$`'\"<>(){}\\*?!#~"), (spec.name, text)
        assert not rendered.startswith("-") or spec.type in ("int", "float")


def test_edit_argv_replaces_every_spelling_and_reads_back() -> None:
    argv = [
        "python",
        "-m",
        "vllm",
        "--max-num-seqs",
        "256",
        "--max_num_seqs=128",
        "--enable-prefix-caching",
        "--port",
        "8",
    ]
    out = edit_argv(argv, Change(param="max_num_seqs", value=4))
    assert out == ["python", "-m", "vllm", "--enable-prefix-caching", "--port", "8", "--max-num-seqs", "4"]
    out = edit_argv(out, Change(param="enable_prefix_caching", value=False))
    assert out == ["python", "-m", "vllm", "--port", "8", "--max-num-seqs", "4", "--no-enable-prefix-caching"]
    assert argv_value(out, "max_num_seqs") == "4"
    assert argv_value(out, "enable_prefix_caching") is False
    assert argv_value(out, "block_size") is None


def test_triton_override_is_built_from_the_current_config() -> None:
    current = {
        "name": "m",
        "parameters": {"variant": {"string_value": "a"}},
        "instance_group": [{"kind": "KIND_CPU", "count": 1}],
    }
    out = apply_to_config(current, Change(param="enable_kv_cache_reuse", value=True, model="m"))
    out = apply_to_config(out, Change(param="instance_group.count", value=2, model="m"))
    assert out["parameters"] == {
        "variant": {"string_value": "a"},
        "enable_kv_cache_reuse": {"string_value": "true"},
    }
    assert out["instance_group"] == [{"kind": "KIND_CPU", "count": 2}]
    assert current["parameters"] == {"variant": {"string_value": "a"}}, (
        "the snapshot itself is never modified"
    )
    for name, spec in TRITON_PARAMS.items():  # every registry entry has a way into a config
        sample = {
            "int": spec.min or 1,
            "float": 0.5,
            "bool": True,
            "enum": (spec.choices or ("x",))[0],
            "string": "x",
        }[spec.type]
        change = Change(param=name, value=sample, model="m")
        # ... and reads back out of it as written: what a rollback's diff shows as restored.
        written = triton_value(change)
        expected = written["string_value"] if isinstance(written, dict) else sample
        assert read_from_config(apply_to_config(current, change), change) == expected
        assert read_from_config(current, change) == {"variant": "a", "instance_group.count": 1}.get(name)


# --- command actuator rules: linear-time patterns, path confinement (issue 13) -------------------


def _command_target(rule: CommandParamRule) -> tuple[TargetConfig, RolloutConfig]:
    target = TargetConfig(name="k", url="http://127.0.0.1:9")
    commands = CommandActuatorConfig(apply=["true"], read=["true"], params={"p": rule})
    return target, RolloutConfig(commands={"k": commands})


@pytest.mark.parametrize(
    ("rule", "value", "why"),
    [
        (CommandParamRule(type="string"), "../../../etc/passwd", "does not match"),
        (CommandParamRule(type="string"), "/etc/passwd", "does not match"),
        (CommandParamRule(type="string"), "..", "does not match"),
        (
            CommandParamRule(type="string", pattern="[a-z./]{1,64}"),
            "../../../etc/passwd",
            "'..' path segment",
        ),
        (CommandParamRule(type="string", pattern="[a-z./]{1,64}"), "a/b/..", "'..' path segment"),
        (CommandParamRule(type="string", pattern="[a-z./]{1,64}"), "/etc/passwd", "absolute path"),
        (
            CommandParamRule(type="string", pattern="[a-z./]{1,64}", allow_absolute_paths=True),
            "/a/../etc",
            "'..' path segment",
        ),
    ],
)
def test_command_string_values_are_confined(rule: CommandParamRule, value: str, why: str) -> None:
    target, cfg = _command_target(rule)
    with pytest.raises(InvalidChange, match=why):
        validate_changes(target, [{"param": "p", "value": value}], cfg)


def test_confined_rules_still_take_what_they_allow() -> None:
    target, cfg = _command_target(CommandParamRule(type="string"))
    assert (
        validate_changes(target, [{"param": "p", "value": "model-v2:q4@x+y"}], cfg)[0].value
        == "model-v2:q4@x+y"
    )
    target, cfg = _command_target(CommandParamRule(type="string", pattern="[a-z./]{1,64}"))
    assert (
        validate_changes(target, [{"param": "p", "value": "models/a..b/c.d"}], cfg)[0].value
        == "models/a..b/c.d"
    )
    target, cfg = _command_target(
        CommandParamRule(type="string", pattern="[a-z./]{1,64}", allow_absolute_paths=True)
    )
    assert (
        validate_changes(target, [{"param": "p", "value": "/srv/models/a"}], cfg)[0].value == "/srv/models/a"
    )


def test_a_backtracking_rule_pattern_is_matched_in_linear_time() -> None:
    # With Python's re this is 2^40 steps (the test never ends); RE2 has no backtracking to explode.
    target, cfg = _command_target(CommandParamRule(type="string", pattern="(a+)+"))
    with pytest.raises(InvalidChange, match="does not match"):
        validate_changes(target, [{"param": "p", "value": "a" * 40 + "b"}], cfg)


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("((", "missing \\)"),
        ("(a)\\1", "invalid escape"),
        ("(?=a)a", "invalid perl operator"),
        ("a" * 257, "max 256"),
    ],
)
def test_rule_patterns_are_checked_when_the_config_loads(pattern: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        CommandParamRule(type="string", pattern=pattern)


async def test_command_actuator_never_applies_a_value_outside_its_rule(tmp_path) -> None:
    # A restore applies the value `read` printed before the change: a script's output is checked too.
    target, cfg = _command_target(CommandParamRule(type="string"))
    log = tmp_path / "applied"
    commands = CommandActuatorConfig(
        apply=["sh", "-c", f'echo "$0" >> {log}', "{value}"],
        read=["echo", "old"],
        params={"p": CommandParamRule(type="string")},
    )
    actuator = CommandActuator(target, [Change(param="p", value="new")], commands)
    with pytest.raises(ActuatorError, match="refusing to apply p='../../etc/passwd'"):
        await actuator.converge({"values": {"p": "../../etc/passwd"}})
    with pytest.raises(ActuatorError, match="refusing to apply p='--force'"):
        await actuator.converge({"values": {"p": "--force"}})
    assert not log.exists(), "nothing ran"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("on", True),
        (" Yes ", True),
        ("1", True),
        ("TRUE", True),
        ("off", False),
        ("No", False),
        ("0", False),
        (" false", False),
        ("maybe", None),
        ("", None),
        (None, None),
        (16, None),
    ],
)
def test_as_bool_reads_a_boolean_written_any_way(value: object, expected: bool | None) -> None:
    from daemon.actuators.params import as_bool

    assert as_bool(value) is expected


def test_a_vllm_setting_the_configured_argv_gives_is_its_value_before_the_change(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The recorded flags are only those beyond the configured argv; a setting the argv itself gives
    (`--max-model-len 4096`) is that value before the change, not "(default)" (a new user saw the TUI say
    "(default)" and the dry run "null -> 1000000")."""
    from daemon.actuators.vllm import VllmRelaunchActuator

    target = TargetConfig(
        name="v",
        url="http://127.0.0.1:9",
        engine="vllm",
        launch=LaunchConfig(argv=["vllm", "serve", "m", "--max-model-len", "4096"]),
    )
    actuator = VllmRelaunchActuator(
        target,
        [Change(param="max_model_len", value=1000000), Change(param="max_num_seqs", value=8)],
        state_dir=tmp_path,
    )
    assert actuator.values_in({"flags": {}}) == {"max_model_len": "4096", "max_num_seqs": None}
    assert actuator.values_in(actuator.desired({"flags": {}})) == {
        "max_model_len": "1000000",
        "max_num_seqs": "8",
    }
