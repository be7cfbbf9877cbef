"""The one-line bar at the top of every screen: the screens by number, live status, read-only badge."""

from __future__ import annotations

from rich.text import Text

from charter_tui.widgets.panel import Panel

# (mode, number key, label) in the order of the number keys.
SCREENS: tuple[tuple[str, str, str], ...] = (
    ("instances", "1", "Instances"),
    ("agents", "2", "Agents"),
    ("cache", "3", "Cache"),
    ("bottlenecks", "4", "Bottlenecks"),
    ("rollouts", "5", "Rollouts"),
)


class TopBar(Panel):
    DEFAULT_CSS = """
    TopBar {
        height: 1;
        background: $panel;
        color: $text;
    }
    """

    def render_bar(
        self, current: str, status: str, readonly: bool, counts: dict[str, int], badge: str = ""
    ) -> None:
        """`counts` adds a number after a screen's name (pending rollouts, active bottlenecks);
        `badge`, when given, is shown before the status (the demo's synthetic traffic)."""
        bar = Text(" charter ", style="bold reverse")
        for mode, key, label in SCREENS:
            style = "bold reverse" if mode == current else ""
            bar.append(" ")
            bar.append(f"{key}", style="bold cyan")
            bar.append(f" {label}", style=style)
            if counts.get(mode):
                bar.append(f"({counts[mode]})", style="bold yellow")
        right = Text()
        if readonly:
            right.append(" READ-ONLY ", style="bold white on dark_red")
            right.append(" ")
        if badge:
            right.append(f" {badge} ", style="bold black on yellow")
            right.append(" ")
        right.append(status, style="green" if status.startswith("●") else "yellow")
        width = self.size.width or 80
        pad = max(1, width - len(bar.plain) - len(right.plain) - 1)
        bar.append(" " * pad)
        bar.append_text(right)
        self.update(bar)
