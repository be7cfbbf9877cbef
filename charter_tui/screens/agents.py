"""Screen 2, Agents: watched files, the selected file's call DAG, a call's prompt, the cache plan
and the restructuring diff.

The DAG comes from the last *successful* compile: while the file on disk has a syntax error the
screen shows the error's position in a red banner above the last good graph, so the picture a
user is working from does not vanish mid-edit.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.cells import cell_len
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Static

from charter_tui.render import numbers
from charter_tui.render import text as render_text
from charter_tui.render.dag import BADGES, badges_by_call, legend, render_dag
from charter_tui.screens.base import ViewScreen
from charter_tui.widgets.panel import Panel
from charter_tui.state import parse_result
from charter_tui.widgets.filterbar import matches
from charter_tui.widgets.livetable import LiveTable
from charter_tui.widgets.tables import selected_key, sync_rows
from daemon.optimizer.context import smallest_vllm_block
from daemon.paths import agent_label
from daemon.optimizer.settings import read_settings

# The watcher reports `file:line:col: message`; Python's own messages say `line N`.
_FILE_POSITION = re.compile(r":(\d+):(\d+): ")
_POSITION = re.compile(r"line (\d+)(?:,? col(?:umn)? (\d+))?")


def error_position(error: str) -> str:
    m = _FILE_POSITION.search(error) or _POSITION.search(error)
    if not m:
        return ""
    return f"line {m.group(1)}" + (f", col {m.group(2)}" if m.group(2) else "")


def short_position(error: str) -> str:
    """`error_position` as `line:col` (`27:12`), for the files list where room is short."""
    m = _FILE_POSITION.search(error) or _POSITION.search(error)
    if not m:
        return ""
    return m.group(1) + (f":{m.group(2)}" if m.group(2) else "")


def ellipsize(text: str, width: int) -> str:
    """`text` in at most `width` cells, its end replaced by `…` when cut."""
    if cell_len(text) <= width:
        return text
    out = ""
    for ch in text:
        if cell_len(out + ch) > width - 1:
            break
        out += ch
    return out + "…"


def short_path(path: str, width: int) -> str:
    """`path` in `width` cells, its leading directories replaced by `…` where it is longer
    (`…/agents/document_processor.py`): cut only at a `/`, never inside a name. A file name that is
    alone longer than `width` is kept whole (after `…/`)."""
    if width <= 0 or cell_len(path) <= width:
        return path
    parts = path.split("/")
    for i in range(1, len(parts)):
        tail = "…/" + "/".join(parts[i:])
        if cell_len(tail) <= width:
            return tail
    return "…/" + parts[-1]


# The files list's columns, and the order they give way in when the list is narrower than its
# rows (80 columns: the left pane is 40): the call count first (the calls table below lists the
# selected file's calls), then the patterns (the DAG and its legend show them too).
FILE_COLUMNS = ("file", "status", "calls", "patterns")
_DROPPED_FIRST = ("calls", "patterns")
NAME_MIN = 12  # a file name is cut (with `…`) to no fewer cells than this before a column goes


@dataclass(frozen=True)
class FileRow:
    name: str
    status: Text  # "✓ ok", "✗ line 27, col 12", "waiting"
    short_status: Text  # the same where room is short: "✗ 27:12"
    calls: str
    patterns: Text
    anti: bool  # an anti-pattern was found (marked by the name when the patterns column is dropped)


@dataclass(frozen=True)
class FileLayout:
    columns: tuple[str, ...]
    name_width: int  # names longer than this are cut with `…`
    short_status: bool

    def cells(self, row: FileRow) -> list[str | Text]:
        name: str | Text = ellipsize(row.name, self.name_width)
        if row.anti and "patterns" not in self.columns:
            mark = " !"
            name = Text(ellipsize(row.name, self.name_width - len(mark)))
            name.append(mark, style="bold red")
        by_key: dict[str, str | Text] = {
            "file": name,
            "status": row.short_status if self.short_status else row.status,
            "calls": row.calls,
            "patterns": row.patterns,
        }
        return [by_key[c] for c in self.columns]


def file_layout(width: int, rows: Sequence[FileRow], padding: int = 1) -> FileLayout:
    """The columns of the files list that fit in `width` cells, each heading and value whole but the
    file names: all four with room (or before the width is known, `width` 0); else the short error
    position (`✗ 27:12`), then names cut to `NAME_MIN`, then fewer columns (`_DROPPED_FIRST`)."""

    def natural(column: str, short: bool) -> int:
        values: list[str] = [column]
        for r in rows:
            values.append(
                {
                    "file": r.name,
                    "status": (r.short_status if short else r.status).plain,
                    "calls": r.calls,
                    "patterns": r.patterns.plain,
                }[column]
            )
        return max(cell_len(v) for v in values)

    columns: tuple[str, ...] = FILE_COLUMNS
    names = natural("file", False)
    if width <= 0:
        return FileLayout(columns, names, False)
    dropped = list(_DROPPED_FIRST)
    while True:
        for short in (False, True):
            room = width - 2 * padding * len(columns) - sum(natural(c, short) for c in columns if c != "file")
            if room >= names:
                return FileLayout(columns, names, short)
        if room >= NAME_MIN or not dropped:
            return FileLayout(columns, max(len("file"), room), True)
        gone = dropped.pop(0)
        columns = tuple(c for c in columns if c != gone)


class FilesTable(LiveTable):
    """The watched files, fitted to the table's width (`file_layout`): a new width redraws them."""

    def on_resize(self) -> None:
        if isinstance(self.screen, AgentsScreen):
            self.screen.refresh_view(frozenset({"compile"}))


class CompileStatus(Panel):
    """The selected file's header; its path is shortened to the panel's width, so a new width redraws it."""

    def on_resize(self) -> None:
        if isinstance(self.screen, AgentsScreen):
            self.screen.refresh_view(frozenset({"compile"}))


def watched_paths(configured: list[str]) -> list[str]:
    """Configured watch paths expanded to the .py files under them (before their first compile)."""
    out: list[str] = []
    for p in configured:
        # Resolved, as the watcher names files in its compile records, so a file is listed once.
        path = Path(p).expanduser().resolve()
        if path.is_dir():
            out += [str(f) for f in sorted(path.rglob("*.py")) if "__pycache__" not in f.parts]
        elif path.suffix == ".py":
            out.append(str(path))
    return out


class AgentsScreen(ViewScreen):
    MODE = "agents"
    WATCHES = frozenset({"compile", "instance"})  # instance: a server's block size shapes the plan
    WATCH_RESCAN_S = 10.0

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="body"):
            with Vertical(id="agents-left"):
                yield FilesTable(id="files", cursor_type="row")
                yield LiveTable(id="calls", cursor_type="row")
            with VerticalScroll(id="agent-detail"):
                yield CompileStatus(id="compile-status")
                yield Static("DAG", classes="section-title")
                with VerticalScroll(id="dag-scroll"):
                    yield Panel(id="dag", expand=False, shrink=False)
                yield Panel(id="legend")
                yield Static("Prompt", classes="section-title")
                yield Panel(id="prompt")
                yield Static("Cache plan", classes="section-title")
                yield Panel(id="plan")
                yield Static("Restructuring", classes="section-title")
                yield Panel(id="fixes")

    def on_mount(self) -> None:
        files = self.query_one("#files", DataTable)
        self._layout: FileLayout | None = None
        calls = self.query_one("#calls", DataTable)
        calls.add_column("call", key="call")
        calls.add_column("where", key="where")
        calls.add_column("tok", key="tok")
        calls.add_column("static", key="static")
        files.focus()
        self._drawn: tuple[object, ...] | None = None

    def _paths(self) -> list[str]:
        # Files not compiled yet are listed too (as "waiting"); the directory scan is cached
        # because draw() runs several times a second.
        now = time.monotonic()
        if now - getattr(self, "_scanned_at", -1e9) > self.WATCH_RESCAN_S:
            self._scanned_at = now
            self._scanned = watched_paths(self.charter.watch_paths)
        compiled = list(self.charter.state.compiles)
        extra = [p for p in self._scanned if p not in self.charter.state.compiles]
        return sorted(compiled) + extra

    def draw(self, changed: set[str] | frozenset[str]) -> None:
        state = self.charter.state
        files = self.query_one("#files", DataTable)
        rows: list[tuple[str, FileRow]] = []
        for path in self._paths():
            view = state.compiles.get(path)
            name = agent_label(path)
            if not matches(self.filter_text, path):
                continue
            if view is None:
                waiting = Text("waiting", style="dim")
                rows.append((path, FileRow(name, waiting, waiting, "-", Text("-"), False)))
                continue
            result = parse_result(view)
            if view.latest.ok:
                status = short = Text("✓ ok", style="green")
            else:
                error = view.latest.error or ""
                status = Text(f"✗ {error_position(error) or 'error'}", style="bold red")
                short = Text(f"✗ {short_position(error) or 'error'}", style="bold red")
            n_calls = str(len(result.calls)) if result else "-"
            pats = (
                " ".join(sorted({BADGES.get(f.kind, f.kind.value[:3]) for f in result.patterns}))
                if result
                else "-"
            )
            anti = bool(result and any(f.anti_pattern for f in result.patterns))
            rows.append(
                (path, FileRow(name, status, short, n_calls, Text(pats, style="red" if anti else ""), anti))
            )
        layout = file_layout(self._files_width(files, len(rows)), [r for _, r in rows], files.cell_padding)
        if layout != self._layout:
            # Auto-width columns only ever widen, so a new layout (a resize) builds them anew.
            keep = selected_key(files)
            files.clear(columns=True)
            for column in layout.columns:
                files.add_column(column, key=column)
            self._layout = layout
            sync_rows(files, [(path, layout.cells(row)) for path, row in rows])
            keys = [path for path, _ in rows]
            if keep in keys:
                files.move_cursor(row=keys.index(keep), animate=False)
        else:
            sync_rows(files, [(path, layout.cells(row)) for path, row in rows])
        self._draw_file()

    @staticmethod
    def _files_width(files: DataTable[object], n_rows: int) -> int:
        """The cells the files list has for its columns: its width, less its scroll bar when the rows
        overflow it (0 before the first layout: then nothing is fitted)."""
        width = files.size.width
        if width and files.size.height and n_rows + 1 > files.size.height:
            width -= files.styles.scrollbar_size_vertical
        return width

    @on(DataTable.RowHighlighted, "#files")
    def _file_highlighted(self) -> None:
        self._draw_file()

    @on(DataTable.RowHighlighted, "#calls")
    def _call_highlighted(self) -> None:
        self._draw_file()

    def selected_path(self) -> str | None:
        return selected_key(self.query_one("#files", DataTable))

    def _draw_file(self) -> None:
        path = self.selected_path()
        view = self.charter.state.compiles.get(path) if path else None
        result = parse_result(view)
        calls_table = self.query_one("#calls", DataTable)
        status = self.query_one("#compile-status", Static)
        if path is None:
            status.update(Text("No watched agent files. Add paths to [watch] in the config.", style="dim"))
            self._clear_detail()
            sync_rows(calls_table, [])
            return
        header = Text(short_path(path, status.content_region.width), style="bold")
        if view is None:
            header.append("\nnot compiled yet", style="dim")
        else:
            header.append(f"  compiled {numbers.clock(view.latest.compiled_at)} UTC", style="dim")
            if not view.latest.ok:
                header.append("\n")
                pos = error_position(view.latest.error or "")
                header.append(f" ✗ {pos or 'error'}: {view.latest.error} ", style="bold white on red")
                if result is not None:
                    header.append(
                        "\n showing the last good compile"
                        + (f" ({numbers.clock(view.last_good.compiled_at)} UTC)" if view.last_good else ""),
                        style="yellow",
                    )
        if result is not None:
            est = result.estimates
            header.append(
                f"\n{len(result.calls)} calls · {est.prompt_tokens_total} prompt tok "
                f"({est.static_tokens_total} static) · {est.tokenizer}",
                style="dim",
            )
        status.update(header)
        if result is None:
            self._clear_detail()
            sync_rows(calls_table, [])
            return

        badges = badges_by_call(result)
        call_rows: list[tuple[str, list[str | Text]]] = []
        for c in result.calls:
            share = c.static_prefix_tokens / c.prompt_tokens if c.prompt_tokens else 0.0
            label = Text(c.id, style="bold")
            if any(b.startswith("!") for b in badges.get(c.id, [])):
                label.append(" !", style="bold red")
            call_rows.append(
                (
                    c.id,
                    [
                        label,
                        f"{c.function.rsplit('.', 1)[-1]}:{c.line}",
                        str(c.prompt_tokens),
                        numbers.percent(share),
                    ],
                )
            )
        sync_rows(calls_table, call_rows)
        call_id = selected_key(calls_table)
        blocks = self._smallest_blocks()
        key = (
            path,
            call_id,
            view.last_good.compiled_at if view and view.last_good else None,
            view.latest.content_hash if view else None,
            tuple(sorted(blocks.items())),
        )
        if key == self._drawn:
            return  # the DAG is the costliest thing here; skip it when nothing it shows changed
        self._drawn = key
        self.query_one("#dag", Static).update(render_dag(result, call_id))
        self.query_one("#legend", Static).update(legend(result))
        try:
            call = result.call(call_id) if call_id else None
        except KeyError:
            call = None
        prompt = render_text.prompt(call) if call else Text("select a call", style="dim")
        if call is not None:
            inputs = [f"{e.source}→{','.join(e.variables)}" for e in result.edges if e.target == call.id]
            if inputs:
                prompt.append("\ninputs: " + "  ".join(inputs), style="cyan")
            for f in result.patterns:
                if call.id in f.calls:
                    prompt.append(
                        f"\n[{f.kind.value}] {f.message}", style="red" if f.anti_pattern else "green"
                    )
        self.query_one("#prompt", Static).update(prompt)
        self.query_one("#plan", Static).update(render_text.cache_plan(result.plan, blocks))
        self.query_one("#fixes", Static).update(render_text.fixes(result))

    def _smallest_blocks(self) -> dict[str, int]:
        """Each vLLM target's smallest KV block, from what its server reported (see `cache_plan`)."""
        configured = {t.name: t for t in self.charter.loaded.config.targets}
        out = {}
        for name, inst in self.charter.state.instances.items():
            if inst.engine == "vllm" and (inst.info or {}).get("cache_config"):
                settings = read_settings(configured.get(name), "vllm", inst.info or {})
                out[name] = smallest_vllm_block(settings)
        return out

    def _clear_detail(self) -> None:
        self._drawn = None
        for wid in ("#dag", "#legend", "#prompt", "#plan", "#fixes"):
            self.query_one(wid, Static).update("")
