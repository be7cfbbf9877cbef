"""The daemons a TUI shows: one `DaemonState` per daemon, and which daemon the per-daemon screens show.

In-process there is one daemon (key `LOCAL`). Attached to a broker (`tui --connect`) every daemon that
publishes gets a state of its own, filled from its own topics (`Event.daemon`), so two boxes' `local-vllm`,
or their rollouts numbered 3, never mix. The Instances screen shows every daemon, grouped; Agents, Cache,
Bottlenecks and Rollouts show the selected one (`d` moves on); a command goes to the selected daemon, the
one whose rollout is on screen. Plain Python, no Textual: testable alone, like `DaemonState`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from charter_tui.state import DaemonState
from daemon.bus import Event

LOCAL = ""  # the embedded daemon's key (events without a daemon id)


@dataclass
class Fleet:
    states: dict[str, DaemonState] = field(default_factory=dict)
    selected: str | None = None  # None: the first daemon (by id), or the local one

    def state_of(self, daemon: str | None) -> DaemonState:
        return self.states.setdefault(daemon or LOCAL, DaemonState())

    def apply(self, event: Event) -> str | None:
        """Apply `event` to its daemon's state; returns the kind that changed (`fleet` for a new daemon)."""
        new = (event.daemon or LOCAL) not in self.states
        kind = self.state_of(event.daemon).apply(event)
        return "fleet" if new and event.daemon else kind

    def ids(self) -> list[str]:
        """The remote daemons heard from, sorted (empty in-process)."""
        return sorted(d for d in self.states if d != LOCAL)

    @property
    def current_id(self) -> str | None:
        """The daemon the per-daemon screens show and commands go to (None: the local one)."""
        ids = self.ids()
        if self.selected in ids:
            return self.selected
        return ids[0] if ids else None

    @property
    def current(self) -> DaemonState:
        return self.state_of(self.current_id)

    @property
    def is_fleet(self) -> bool:
        """More than one daemon to tell apart on screen."""
        return len(self.ids()) > 1

    def select(self, daemon: str) -> None:
        if daemon in self.states:
            self.selected = daemon

    def select_next(self) -> str | None:
        ids = self.ids()
        if not ids:
            return None
        current = self.current_id
        self.selected = ids[(ids.index(current) + 1) % len(ids)] if current in ids else ids[0]
        return self.selected


def row_key(daemon: str, name: str = "") -> str:
    """A table row of one daemon's target (`box-1/vllm-a`), or the daemon's own summary row (`box-1/`).
    Daemon ids have no '/', so the first one splits it back."""
    return f"{daemon}/{name}"


def split_row_key(key: str) -> tuple[str, str]:
    daemon, _, name = key.partition("/")
    return daemon, name
