"""The key hints line at the bottom: the active bindings of this screen as one line of text.

Textual's `Footer` rebuilds one child widget per key every time the bindings change, which is on
every focus change and every screen switch: mounting and styling those widgets was the largest
cost of a screen switch, and their churn grew the process by ~0.5 MB per switch. This bar is one
widget that re-renders a line of text, and only when the hints actually differ.
"""

from __future__ import annotations

from rich.text import Text
from textual.screen import Screen

from charter_tui.widgets.panel import Panel


# Binding ids of the hints a narrow bar drops, first to last: each is on every screen and in `?`.
DROPPED_FIRST = ("filter", "back", "palette")


def _width(hints: list[tuple[str, str, bool, str | None]]) -> int:
    return sum(len(key) + len(description) + 3 for key, description, _, _ in hints)


class KeyBar(Panel):
    COMPONENT_CLASSES = {"keybar--key", "keybar--description", "keybar--disabled"}
    DEFAULT_CSS = """
    KeyBar {
        height: 1;
        width: 1fr;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        color: $footer-foreground;
        background: $footer-background;
        .keybar--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        .keybar--description {
            color: $footer-description-foreground;
        }
        .keybar--disabled {
            text-style: dim;
        }
    }
    """

    def __init__(self) -> None:
        super().__init__(id="keybar")
        self._shown: list[tuple[str, str, bool]] | None = None

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        # After the first refresh: the screen's other widgets, which `check_action` may look at
        # to decide which keys apply, are not all mounted yet.
        self.call_after_refresh(self.show_bindings)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen) -> None:
        if screen is self.screen:
            self.show_bindings()

    def hints(self) -> list[tuple[str, str, bool]]:
        """(key as displayed, description, enabled) of each shown binding, one per action."""
        return [(key, description, enabled) for key, description, enabled, _ in self._hints()]

    def _hints(self) -> list[tuple[str, str, bool, str | None]]:
        out: list[tuple[str, str, bool, str | None]] = []
        seen: set[str] = set()
        for active in self.screen.active_bindings.values():
            binding = active.binding
            if not binding.show or not binding.description or binding.action in seen:
                continue
            seen.add(binding.action)
            out.append((self.app.get_key_display(binding), binding.description, active.enabled, binding.id))
        return out

    def fitted(self, width: int) -> list[tuple[str, str, bool]]:
        """The hints that fit in `width` columns: on a narrow terminal the generic ones (`/` filter, `esc`
        back, `:` commands, in that order) give way first, so the screen's own keys and `q` Quit stay in
        sight (`?` lists every key)."""
        hints = self._hints()
        for droppable in DROPPED_FIRST:
            if width <= 0 or _width(hints) <= width:
                break
            hints = [h for h in hints if h[3] != droppable]
        return [(key, description, enabled) for key, description, enabled, _ in hints]

    def on_resize(self) -> None:
        self.show_bindings()

    def show_bindings(self) -> None:
        hints = self.fitted(self.size.width)
        if hints == self._shown:
            return
        self._shown = hints
        key_style = self.get_component_rich_style("keybar--key", partial=True)
        description_style = self.get_component_rich_style("keybar--description", partial=True)
        disabled_style = self.get_component_rich_style("keybar--disabled", partial=True)
        line = Text(no_wrap=True, overflow="ellipsis")
        for key, description, enabled in hints:
            extra = disabled_style if not enabled else None
            line.append(f" {key} ", key_style + extra if extra else key_style)
            line.append(f"{description} ", description_style + extra if extra else description_style)
        self.update(line)

    def notify_style_update(self) -> None:  # theme change: re-render with the new colours
        super().notify_style_update()
        self._shown = None
        if self.is_mounted:
            self.show_bindings()
