"""The Textual app. It embeds the daemon on its own event loop and only reads what the daemon publishes."""

from __future__ import annotations

import asyncio

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Header, Static

from daemon.config import LoadedConfig
from daemon.service import DaemonService


class CharterApp(App[None]):
    TITLE = "charter-tui"
    CSS_PATH = "charter.tcss"
    BINDINGS = [Binding("q", "quit", "Quit", id="quit")]

    def __init__(self, loaded: LoadedConfig, *, readonly: bool = False, embed_daemon: bool = True) -> None:
        super().__init__()
        self.loaded = loaded
        self.readonly = readonly
        self.embed_daemon = embed_daemon
        self.daemon = DaemonService(loaded)
        self._stop = asyncio.Event()

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="main"):
            yield Static("Targets", classes="section-title")
            yield DataTable(id="targets", cursor_type="row")
            yield Static("Watched agent files", classes="section-title")
            yield DataTable(id="watched", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "read-only" if self.readonly else self.loaded.database_url
        targets = self.query_one("#targets", DataTable)
        targets.add_columns("name", "engine", "url")
        for t in self.loaded.config.targets:
            targets.add_row(t.name, t.engine, t.url, key=t.name)
        if not self.loaded.config.targets:
            targets.add_row("(no targets configured)", "", "`charter-tui config path`")
        watched = self.query_one("#watched", DataTable)
        watched.add_columns("path")
        for path in self.loaded.config.watch.paths:
            watched.add_row(path, key=path)
        if not self.loaded.config.watch.paths:
            watched.add_row("(no watch paths configured)")
        if self.embed_daemon:
            self.run_worker(self.daemon.run(self._stop), name="daemon", exit_on_error=False)

    async def action_quit(self) -> None:
        self._stop.set()
        await self.workers.wait_for_complete()
        self.exit()
