"""A DataTable for rows that change every second.

DataTable keys every rendered cell by one counter that *any* update bumps. With live values that
means one changed cell throws away the rendering of every other cell: each frame after a 1 Hz
update, and each key press that repaints (a screen switch, the filter bar opening) re-renders every
visible cell through Rich, ~40 ms for a 100-row table at 160x48. The fixes here:

- Each cell is cached under its own version, bumped only when that cell is written, so a repaint
  re-renders only cells whose values changed (a cursor move, a layout change: none at all).
- Each body row's finished line is kept likewise, under the row's version (`_render_line`).
- A changed one-line text cell is rendered directly, not through Rich's generic layout
  pipeline (`_render_text_cell`).
- DataTable's own caches are sized to a few screens: with live values their keys never repeat,
  and at the default sizes (10,000 cells, 1,000 rows and lines) they held ~100 MB of dead entries
  with 100 targets before evicting anything.

These are DataTable internals (`_render_cell`, `_render_line` and the cache attributes); textual is pinned exactly
in pyproject.toml, and tests/tui/test_livetable.py checks the cached and the stock rendering agree.
"""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.geometry import Region
from textual.strip import Strip
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import CellType, ColumnKey, RowKey

CELLS = 2000  # ~4 screens of 50 rows x 10 columns
LINES = 200
_LINE_JOIN = Text("\n")
_NULL = Style()


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
        self._row_versions: dict[RowKey, int] = {}
        # One finished line per body row (its key, its Strip); see _render_line.
        self._row_strips: dict[tuple[RowKey, int], tuple[tuple[object, ...], Strip]] = {}
        self._style_epoch = 0  # bumped on every style update: cursor and hover rows re-render
        self._frame: tuple[tuple[int, ...], dict[int, Style]] | None = None
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
        self._row_versions.clear()
        self._row_strips.clear()

    def update_cell(
        self,
        row_key: RowKey | str,
        column_key: ColumnKey | str,
        value: CellType,
        *,
        update_width: bool = False,
    ) -> None:
        super().update_cell(row_key, column_key, value, update_width=update_width)
        key = (
            RowKey(row_key) if isinstance(row_key, str) else row_key,
            ColumnKey(column_key) if isinstance(column_key, str) else column_key,
        )
        self._cell_versions[key] = self._cell_versions.get(key, 0) + 1
        self._row_versions[key[0]] = self._row_versions.get(key[0], 0) + 1

    def _clear_caches(self) -> None:  # clear() calls it
        super()._clear_caches()
        self._forget_cells()

    def notify_style_update(self) -> None:
        # Textual calls this on every focus change too (for `:focus` rules). An ordinary cell's
        # look is fully given by the row style in its key; only the cursor and hover cells take
        # DataTable's component styles, so only they are re-rendered (they are kept apart).
        self._styled_cells.clear()
        self._style_epoch += 1
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
    def render_lines(self, crop: Region) -> list[Strip]:
        self._frame = None  # column widths and row styles, worked out once per frame
        return super().render_lines(crop)

    def _frame_values(self, base_style: Style) -> tuple[tuple[int, ...], dict[int, Style]]:
        if self._frame is None:
            widths = (self._row_label_column_width, *(c.get_render_width(self) for c in self.ordered_columns))
            styles = {parity: self._get_row_style(parity, base_style) for parity in (0, 1)}
            self._frame = (widths, styles)
        return self._frame

    def _render_line(self, y: int, x1: int, x2: int, base_style: Style) -> Strip:
        """A body row's finished line, kept until that row, its styles or the layout change.

        DataTable keys its line cache by a counter that any update bumps, so after the 1 Hz
        update (or a focus change, which clears it) every visible row is assembled again from
        its cells. Here a row's line is kept under what it is drawn from: the row's version
        (bumped when one of its cells is written), its position, the column widths and the row
        style; the cursor and hover rows also under the focus state and a style epoch, since
        only they take DataTable's component styles. Rows with labels, fixed rows or columns,
        and cell or column cursors take the stock path.
        """
        try:
            row_key, line_no = self._get_offsets(y)
        except LookupError:
            return super()._render_line(y, x1, x2, base_style)
        row_index = self._row_locations.get(row_key)
        if (
            row_index is None
            or self.cursor_type != "row"
            or self.fixed_rows
            or self.fixed_columns
            or self._labelled_row_exists
        ):
            return super()._render_line(y, x1, x2, base_style)
        widths, row_styles = self._frame_values(base_style)
        cursor = self.cursor_coordinate.row == row_index
        hover = self.hover_coordinate.row == row_index
        styled = cursor or hover
        key = (
            self._generation,
            self._row_versions.get(row_key, 0),
            row_index,
            x1,
            x2,
            self.size.width,
            base_style,
            row_styles[row_index % 2] if self.zebra_stripes else None,
            widths,
            self.cell_padding,
            cursor,
            hover,
            self.show_cursor,
            self._show_hover_cursor,
            (self._pseudo_class_state, self._style_epoch) if styled else None,
        )
        kept = self._row_strips.get((row_key, line_no))
        if kept is not None and kept[0] == key:
            return kept[1]
        strip = super()._render_line(y, x1, x2, base_style)
        self._row_strips[(row_key, line_no)] = (key, strip)
        return strip

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> Any:
        if row_index < 0 or column_index < 0:  # header and label cells: few, leave them to DataTable
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        # row_index is part of the key because the rendered segments carry it (mouse clicks map
        # back to rows through it), so a row that moves (sorting, a row removed above) re-renders.
        key = (
            self._generation,
            row_index,
            column_index,
            row_key,
            column_key,
            self._cell_versions.get((row_key, column_key), 0),
            base_style,
            width,
            self.cell_padding,
            cursor,
            hover,
            self._show_hover_cursor,
        )
        cache = self._styled_cells if cursor or hover else self._live_cells
        lines = cache.get(key)
        if lines is None:
            lines = self._render_text_cell(row_index, column_index, base_style, width, cursor, hover)
            if lines is None:
                lines = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
            if cache is self._styled_cells and len(cache) > 4 * len(self.columns) + 8:
                cache.clear()  # a screenful of cursor moves: keep only what the next frame needs
            cache[key] = lines
        return lines

    def _render_text_cell(
        self, row_index: int, column_index: int, base_style: Style, width: int, cursor: bool, hover: bool
    ) -> list[list[Segment]] | None:
        """DataTable's rendering of a one-line text cell, without Rich's generic layout pipeline.

        The stock path renders `Styled(Padding(cell))` through `Console.render_lines`: wrapping,
        measuring, padding and cropping machinery for what, on a one-line row, is a text cropped
        to the column and padded with a space each side. This builds those same segments directly
        (~2.5x faster per cell; a live row changes most of its cells every second). Anything else
        (several lines, tabs, wide characters, justified or ellipsised text, taller rows) returns
        None and takes the stock path. tests/tui/test_livetable.py checks both give equal segments.
        """
        row_key = self._row_locations.get_key(row_index)
        row = self.rows.get(row_key)
        if row is None or row.height != 1 or row.auto_height:
            return None
        cell = self._get_row_renderables(row_index).cells[column_index]
        if not isinstance(cell, Text):
            return None
        plain = cell.plain
        if (
            "\n" in plain
            or "\t" in plain
            or cell.justify not in (None, "default", "left")
            or cell.overflow not in (None, "fold", "crop")
            or cell_len(plain) != len(plain)
        ):
            return None
        component_style, post_style = self._get_styles_to_render_cell(
            False,
            False,
            row_index < self.fixed_rows or column_index < self.fixed_columns,
            hover,
            cursor,
            self.show_cursor,
            self._show_hover_cursor,
            self.cursor_foreground_priority == "css",
            self.cursor_background_priority == "css",
        )
        pre_style = base_style + Style.from_meta({"row": row_index, "column": column_index}) + component_style
        pad = self.cell_padding
        # Joining moves the text's own style into a span, as Rich's Text rendering does.
        segments = list(_LINE_JOIN.join([cell]).render(self.app.console, end=""))
        line = Segment.adjust_line_length(segments, max(0, width - 2 * pad), pad=True)
        if pad:
            blank = Segment(" " * pad, _NULL)
            line = [blank, *line, blank]
        return [list(Segment.apply_style(line, pre_style, post_style))]
