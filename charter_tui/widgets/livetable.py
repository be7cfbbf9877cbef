"""A DataTable for rows that change every second.

DataTable keys every rendered cell by one counter that *any* update bumps. With live values that
means one changed cell throws away the rendering of every other cell: each frame after a 1 Hz
update, and each key press that repaints (a screen switch, the filter bar opening) re-renders every
visible cell through Rich, ~40 ms for a 100-row table at 160x48. Two fixes here:

- Each cell is cached under its own version, bumped only when that cell is written, so a repaint
  re-renders only cells whose values changed (a cursor move, a layout change: none at all).
- DataTable's own caches are sized to a few screens: with live values their keys never repeat,
  and at the default sizes (10,000 cells, 1,000 rows and lines) they held ~100 MB of dead entries
  with 100 targets before evicting anything.

These are DataTable internals (`_render_cell` and the cache attributes); textual is pinned exactly
in pyproject.toml, and tests/tui/test_livetable.py checks the cached and the stock rendering agree.
"""

from __future__ import annotations

from typing import Any

from rich.style import Style
from textual.cache import LRUCache
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import CellType, ColumnKey, RowKey

CELLS = 2000  # ~4 screens of 50 rows x 10 columns
LINES = 200


class LiveTable(DataTable):
    class Scrolled(Message):
        """The rows on screen changed: screens that draw only visible rows redraw (see tables.py)."""

        def __init__(self, table: LiveTable) -> None:
            super().__init__()
            self.table = table

        @property
        def control(self) -> LiveTable:
            return self.table

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Set before DataTable's __init__, which may already clear caches (and so call ours).
        self._live_cells: LRUCache[tuple[object, ...], Any] = LRUCache(CELLS)
        self._cell_versions: dict[tuple[RowKey, ColumnKey], int] = {}
        # Bumped whenever keys stop meaning what they meant (clear, rows or columns removed).
        self._generation = 0
        self._styled_cells: dict[tuple[object, ...], Any] = {}  # the cursor's and hover's cells
        super().__init__(*args, **kwargs)
        self._cell_render_cache = LRUCache(LINES)  # now only header cells miss our own cache
        self._row_render_cache = LRUCache(LINES)
        self._row_renderable_cache = LRUCache(LINES)
        self._line_cache = LRUCache(LINES)

    # --- invalidation ---------------------------------------------------------------------------
    def _forget_cells(self) -> None:
        self._generation += 1
        self._cell_versions.clear()
        self._live_cells.clear()
        self._styled_cells.clear()

    def update_cell(self, row_key: RowKey | str, column_key: ColumnKey | str, value: CellType, *,
                    update_width: bool = False) -> None:
        super().update_cell(row_key, column_key, value, update_width=update_width)
        key = (RowKey(row_key) if isinstance(row_key, str) else row_key,
               ColumnKey(column_key) if isinstance(column_key, str) else column_key)
        self._cell_versions[key] = self._cell_versions.get(key, 0) + 1

    def _clear_caches(self) -> None:  # clear() calls it
        super()._clear_caches()
        self._forget_cells()

    def notify_style_update(self) -> None:
        # Textual calls this on every focus change too (for `:focus` rules). An ordinary cell's
        # look is fully given by the row style in its key; only the cursor and hover cells take
        # DataTable's component styles, so only they are re-rendered (they are kept apart).
        self._styled_cells.clear()
        super().notify_style_update()

    def remove_row(self, row_key: RowKey | str) -> None:
        super().remove_row(row_key)
        self._forget_cells()

    def remove_column(self, column_key: ColumnKey | str) -> None:
        super().remove_column(column_key)
        self._forget_cells()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if round(old_value) != round(new_value):
            self.post_message(self.Scrolled(self))

    # --- rendering ------------------------------------------------------------------------------
    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False) -> Any:
        if row_index < 0 or column_index < 0:  # header and label cells: few, leave them to DataTable
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        # row_index is part of the key because the rendered segments carry it (mouse clicks map
        # back to rows through it), so a row that moves (sorting, a row removed above) re-renders.
        key = (self._generation, row_index, column_index, row_key, column_key,
               self._cell_versions.get((row_key, column_key), 0), base_style, width, self.cell_padding,
               cursor, hover, self._show_hover_cursor)
        cache = self._styled_cells if cursor or hover else self._live_cells
        lines = cache.get(key)
        if lines is None:
            lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
            if cache is self._styled_cells and len(cache) > 4 * len(self.columns) + 8:
                cache.clear()  # a screenful of cursor moves: keep only what the next frame needs
            cache[key] = lines
        return lines
