"""SVG snapshots of every screen at 80x24 and 160x48, from pinned data (fixed clock, no blink).

Update after checking the report: `.venv/bin/pytest tests/tui/test_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import pytest

from tests.tui.helpers import settle

SIZES = [(80, 24), (160, 48)]
SCREENS = [("instances", "1"), ("agents", "2"), ("cache", "3"), ("bottlenecks", "4"), ("rollouts", "5")]


def _before(*keys: str):  # type: ignore[no-untyped-def]
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        app = pilot.app
        await settle(app, pilot)
        for key in keys:
            await pilot.press(key)
            await settle(app, pilot)

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("screen,key", SCREENS, ids=[s for s, _ in SCREENS])
def test_screen(snap_compare, make_app, screen: str, key: str, size: tuple[int, int]) -> None:
    # The cursor starts on the target with the most to show, so the panels are not empty.
    keys = [key] + (["down", "down"] if screen in ("instances", "cache") else [])
    assert snap_compare(make_app(), terminal_size=size, run_before=_before(*keys))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_instance_detail(snap_compare, make_app, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=_before("down", "down", "enter"))


def test_confirm_dialog(snap_compare, make_app) -> None:
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=_before("5", "a"))


def test_help(snap_compare, make_app) -> None:
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=_before("question_mark"))


def test_readonly_rollouts(snap_compare, make_app) -> None:
    assert snap_compare(make_app(readonly=True), terminal_size=(80, 24), run_before=_before("5"))


def test_agents_syntax_error(snap_compare, make_app) -> None:
    from daemon.bus import topic
    from tests.tui.fixtures import AGENT_PATH, syntax_error_record

    app = make_app()
    app.source.bus.publish(topic("compile", AGENT_PATH), syntax_error_record())
    assert snap_compare(app, terminal_size=(80, 24), run_before=_before("2"))


def _gpu_app(make_app, available: bool = True):  # type: ignore[no-untyped-def]
    """The pinned app plus a GPU reading: the H200 under load as NVML reported it (tests/nvml_replay.py),
    its one process matched to vllm-a; or the no-driver line this machine gets from the real library."""
    from daemon.gpu import GPU_TOPIC, GpuStatus, read_gpus
    from tests.nvml_replay import RecordedNvml, recording
    from tests.tui.fixtures import NOW

    app = make_app()
    if available:
        status = read_gpus(RecordedNvml(recording()["snapshots"][1]), NOW - 1)
        status.devices[0].processes[0].target = "vllm-a"
    else:
        reason = "NVML could not start (NVML Shared Library Not Found)"
        status = GpuStatus(ts=NOW - 1, available=False, reason=reason)
    app.source.bus.publish(GPU_TOPIC, status)
    return app


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_gpu_strip(snap_compare, make_app, size: tuple[int, int]) -> None:
    assert snap_compare(_gpu_app(make_app), terminal_size=size, run_before=_before("down", "down"))


def test_gpu_strip_without_a_driver(snap_compare, make_app) -> None:
    assert snap_compare(_gpu_app(make_app, available=False), terminal_size=(80, 24), run_before=_before())
