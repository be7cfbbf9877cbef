"""The instance detail's plots over time (issue 16 item 2): a shared time axis, gaps where the target was
silent, and its rollout and bottleneck events as annotations, explained in the legend."""

from __future__ import annotations

from charter_tui.app import CharterApp
from charter_tui.render.plot import ago, time_columns
from tests.tui.helpers import screen_text, settle, static_text


def test_columns_are_time_and_a_silence_stays_a_gap() -> None:
    times = [0, 5, 10, 15, 20, 60, 65]  # polled every 5 s, then nothing from 20 s to 60 s
    values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    cols = time_columns(times, values, 0.0, 70.0, 14)  # 5 s per column
    assert cols[:5] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert cols[5] == 5.0  # one interval later: still the last sample (within 2.5 polls)
    assert cols[7:12] == [None] * 5  # 35-60 s: the server said nothing; drawn as nothing
    assert cols[12:] == [6.0, 7.0]
    sparse = time_columns([0, 30], [1.0, 2.0], 0.0, 30.0, 30)  # one poll per 30 columns: filled between
    assert None not in sparse
    assert [ago(s) for s in (300, 150, 0, 3600, 5400, 86400)] == [
        "-5m",
        "-2m30s",
        "now",
        "-1h",
        "-1h30m",
        "-24h",
    ]


async def test_the_detail_shows_its_events_on_the_time_axis(make_app) -> None:
    app: CharterApp = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(app, pilot)
        await pilot.press("down", "down", "enter")
        await settle(app, pilot)
        time_panel = static_text(app, "#plot-time")
        axis, legend = time_panel.splitlines()[:2]
        assert axis.lstrip().startswith("└-5m") and axis.rstrip().endswith("now") and "-2m30s" in axis
        name = static_text(app, "#detail-header").split()[0]
        assert "opened" in legend or "rollout #" in legend, (name, legend)
        # Each event in the legend is a line through the plots at its column.
        assert "┊" in static_text(app, "#plot-ttft_p95_s")
        assert "┊" in screen_text(app)
