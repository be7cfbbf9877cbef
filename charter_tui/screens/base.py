"""What every live screen shares: the top bar, the key hints line, the `/` filter and `esc` back.

A `ViewScreen` draws itself from `app.state` in `refresh_view(changed)`. The app calls it for
the active screen, at most a few times a second, and not while a modal is open; when a screen
comes back into view (`on_screen_resume`) it redraws everything, since it skipped the updates it
could not be seen for. The exception is Instances, which the app keeps drawn while covered
(`draw_hidden`), so it has nothing to catch up on.
"""

from __future__ import annotations

from abc import abstractmethod

from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Input

from charter_tui.widgets.filterbar import FilterBar
from charter_tui.widgets.keybar import KeyBar
from charter_tui.render import numbers
from charter_tui.widgets.topbar import TopBar

if TYPE_CHECKING:
    from charter_tui.app import CharterApp

ALL = frozenset(
    {
        "instance",
        "sample",
        "bottleneck",
        "compile",
        "recommendation",
        "rollout",
        "audit",
        "daemon",
        "clock",
        "bench",
        "gpu",
        "fleet",
    }
)


class ViewScreen(Screen[None]):
    MODE: ClassVar[str] = ""
    TITLE_TEXT: ClassVar[str] = ""
    # Kinds of state this screen shows; other changes do not redraw it.
    WATCHES: ClassVar[frozenset[str]] = ALL
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", id="filter", key_display="/"),
        Binding("escape", "back", "Back", id="back", key_display="esc"),
    ]

    filter_text: str = ""
    # Set once the screen (and every subclass's on_mount, which adds table columns) has mounted:
    # a resume or refresh that arrives before then would draw rows into tables with no columns.
    _view_ready: bool = False
    _predrawn: bool = False

    @property
    def charter(self) -> CharterApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield TopBar(id="topbar")
        yield from self.compose_body()
        # The filter opens on the bottom line, beside the key hints: a line of fixed height, so
        # opening or closing it re-lays out that line only, not the tables above it.
        with Horizontal(id="bottom-line"):
            yield FilterBar(on_change=self._apply_filter)
            yield KeyBar()

    @abstractmethod
    def compose_body(self) -> ComposeResult:
        """The screen's own widgets, between the top bar and the footer (each screen defines it)."""
        raise NotImplementedError

    # --- drawing ------------------------------------------------------------------------------
    def refresh_view(self, changed: set[str] | frozenset[str]) -> None:
        """Redraw the parts showing `changed` kinds of state (ALL after a resume)."""
        if not self._view_ready:
            return
        self.draw_topbar()
        if changed & self.WATCHES:
            with self.app.batch_update():
                self.draw(changed)

    @abstractmethod
    def draw(self, changed: set[str] | frozenset[str]) -> None:
        """Redraw from `self.charter.state` (each screen defines it; never called while hidden)."""
        raise NotImplementedError

    def draw_topbar(self) -> None:
        state = self.charter.state
        counts = {
            "rollouts": sum(1 for r in state.pending_rollouts() if r.state == "PENDING_APPROVAL"),
            "bottlenecks": sum(1 for b in state.bottlenecks.values() if b.active),
        }
        up = sum(1 for i in state.instances.values() if i.state.value == "UP")
        health = state.daemon_health
        if state.daemon_status == "error":
            status = "▲ daemon error"
        elif health is not None and health.summary() != "ok":
            status = f"▲ {health.summary()}"  # a loop crashed and restarts, or keeps crashing
        else:
            status = f"● {up}/{len(state.instances)} up"
        status = self._remote_status(status)
        self.query_one(TopBar).render_bar(
            self.MODE, status, self.charter.readonly, counts, self.charter.traffic_badge(self.size.width)
        )

    def _remote_status(self, status: str) -> str:
        """Attached over MQTT: which daemon the screen shows, and whether what it shows can be stale."""
        fleet, now = self.charter.fleet, self.charter.clock()
        down_since = self.charter.source.link_down_since()
        daemon = fleet.current_id
        if down_since is not None:  # the broker is away: nothing new arrives, from any daemon
            return f"▲ broker unreachable for {numbers.age(down_since, now)}: data may be stale; reconnecting"
        if daemon is None:
            return status
        online = self.charter.state.online
        if online is not None and not online.online:
            status = f"▲ {daemon} offline ({online.reason})"
        ids = fleet.ids()
        where = f"{daemon} {ids.index(daemon) + 1}/{len(ids)}" if fleet.is_fleet else daemon
        return f"{where} · {status}"

    def on_mount(self) -> None:
        # Runs after the subclass's on_mount (Textual dispatches along the MRO, subclass first).
        self._view_ready = True
        self.refresh_view(ALL)

    def predraw(self) -> None:
        """Draw everything now, while hidden, because the app is about to show this screen."""
        self.refresh_view(ALL)
        self._predrawn = True

    def draw_hidden(self, changed: set[str] | frozenset[str]) -> None:
        """Draw while another screen covers this one, so it shows in one frame when uncovered.
        Only the app's home screen (Instances) is drawn this way; `warm` renders its lines."""
        self.refresh_view(changed)
        self.warm()

    def warm(self) -> None:
        """Render what the next frame will need (screens drawn while hidden override it)."""

    def on_screen_resume(self) -> None:
        if self._predrawn:  # drawn an instant ago, just before the switch
            self._predrawn = False
            return
        if self.charter.home_is_current(self):
            return  # kept drawn while covered
        self.refresh_view(ALL)

    def on_resize(self) -> None:
        self.refresh_view(ALL)

    # --- filter and back ------------------------------------------------------------------------
    def action_filter(self) -> None:
        bar = self.query_one(FilterBar)
        bar.add_class("-active")
        bar.focus()

    def _apply_filter(self, value: str) -> None:
        text = value.strip()
        if text != self.filter_text:
            self.filter_text = text
            self.refresh_view(ALL)

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self) -> None:
        self.focus_main()

    def action_back(self) -> None:
        bar = self.query_one(FilterBar)
        if bar.has_class("-active") or self.filter_text:
            bar.value = ""  # redraws the rows unfiltered (see _apply_filter)
            bar.remove_class("-active")
            self.focus_main()
        elif len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    def focus_main(self) -> None:
        tables = list(self.query(DataTable))
        if tables:
            tables[0].focus()
