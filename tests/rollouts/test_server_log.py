"""The root cause of a failed relaunch, quoted instead of the log's last lines (issue 15 item 5).

The logs below are written here in the shape vLLM 0.x prints a failed engine start (an engine-core
process error, then the API server's wrapper); tests/rollouts/test_vllm.py checks the same on a real
failed relaunch of the kit's server.
"""

from __future__ import annotations

from daemon.actuators.server_log import RELAUNCH_MARKER, last_lines, root_cause

FAILED_START = """\
INFO 12-05 10:00:01 [api_server.py:1] vLLM API server version 0.32.0
(EngineCore_DP0 pid=4121) ERROR 12-05 10:00:04 [core.py:708] EngineCore failed to start.
(EngineCore_DP0 pid=4121) ERROR 12-05 10:00:04 [core.py:708] Traceback (most recent call last):
(EngineCore_DP0 pid=4121) ERROR 12-05 10:00:04 [core.py:708]   File "core.py", line 699, in run_engine_core
(EngineCore_DP0 pid=4121) ERROR 12-05 10:00:04 [core.py:708] ValueError: block_size 16 is not supported by the CPU attention backend; use a multiple of 32
Traceback (most recent call last):
  File "api_server.py", line 12, in <module>
RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}
"""


def test_the_first_real_exception_is_the_cause_not_the_wrapper_at_the_end() -> None:
    assert root_cause(FAILED_START) == (
        "ValueError: block_size 16 is not supported by the CPU attention backend; use a multiple of 32"
    )
    assert last_lines(FAILED_START, 1).startswith("RuntimeError: Engine core initialization failed")


def test_a_validation_errors_reason_on_the_next_lines_is_part_of_the_cause() -> None:
    log = (
        "pydantic_core._pydantic_core.ValidationError: 1 validation error for ModelConfig\n"
        "  Value error, max_model_len 1048576 exceeds the model's 4096 positions [type=value_error]\n"
        "    For further information visit https://errors.pydantic.dev/2/v/value_error\n"
    )
    assert root_cause(log) == (
        "ValidationError: 1 validation error for ModelConfig Value error, max_model_len 1048576 exceeds "
        "the model's 4096 positions [type=value_error]"
    )


def test_qualified_names_are_shortened_and_long_causes_bounded() -> None:
    log = "pydantic_core._pydantic_core.ValidationError: 1 validation error for ModelConfig " + "x" * 1000
    cause = root_cause(log)
    assert cause is not None and cause.startswith("ValidationError: 1 validation error for ModelConfig")
    assert len(cause) == 400 and cause.endswith("…")


def test_no_exception_no_cause_and_the_marker_is_the_one_the_launcher_writes() -> None:
    assert root_cause("INFO started\nINFO Killed\n") is None
    assert root_cause("RuntimeError: Engine core initialization failed. See root cause above.") is None
    assert last_lines("", 5) == "(no log)"
    assert RELAUNCH_MARKER == "--- charter-tui relaunch at "  # tests/rollouts/test_vllm.py counts it
