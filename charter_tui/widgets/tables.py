"""Keep a DataTable in step with a list of rows without losing the user's place.

Live screens redraw several times a second; clearing and refilling a table each time would
reset the cursor and flicker. When the row keys are unchanged only changed cells are written;
when rows come or go, the table is rebuilt and the cursor put back on the same key.

A plain `str` cell is written as `Text(str)`: DataTable would otherwise read it as Rich markup, and a
model name, title or path from a server or a user is text to show, never markup to interpret.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist

Cell = str | Text
Row = tuple[str, Sequence[Cell]]


def selected_key(table: DataTable) -> str | None:
    if table.row_count == 0:
        return None
    try:
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
    except CellDoesNotExist:
        return None
    return key.value


def sync_rows(table: DataTable, rows: Sequence[Row]) -> None:
    keys = [k for k, _ in rows]
    if keys == [rk.value for rk in table.rows]:
        write_cells(table, rows)
        return
    keep = selected_key(table)
    table.clear()
    for key, cells in rows:
        table.add_row(*(literal(c) for c in cells), key=key)
    if keep is not None and keep in keys:
        table.move_cursor(row=keys.index(keep), animate=False)


def sync_visible_rows(
    table: DataTable, keys: Sequence[str], cells_for: Callable[[str], Sequence[Cell]], margin: int = 5
) -> None:
    """`sync_rows` for big live tables: when the rows are the same, build and write only the rows
    on screen (plus `margin`). With 100 targets at 1 Hz that is most of a redraw's cost saved;
    rows scrolled into view are drawn then (the screen redraws on `LiveTable.Scrolled`)."""
    if list(keys) != [rk.value for rk in table.rows]:
        sync_rows(table, [(k, cells_for(k)) for k in keys])
        return
    first, last = visible_rows(table, margin)
    write_cells(table, [(k, cells_for(k)) for k in keys[first:last]])


def visible_rows(table: DataTable, margin: int = 0) -> tuple[int, int]:
    """[first, last) indices of the rows on screen, widened by `margin`; all rows before layout."""
    height = table.scrollable_content_region.height
    if height <= 0:
        return 0, table.row_count
    first = int(table.scroll_y)  # rows are one line high here
    return max(0, first - margin), min(table.row_count, first + height + margin)


def write_cells(table: DataTable, rows: Sequence[Row]) -> None:
    """Write the cells that changed, for rows already in the table."""
    columns = list(table.columns)
    for key, cells in rows:
        for col_key, value in zip(columns, map(literal, cells)):
            try:
                old = table.get_cell(key, col_key)
            except (CellDoesNotExist, RowDoesNotExist):
                old = None
            old_plain, new_plain = _plain(old), _plain(value)
            if old_plain != new_plain or (isinstance(value, Text) and old != value):
                # Widen the column only when the value got longer (sparklines appear after the
                # first samples); measuring every update would cost a full column scan each time.
                grow = len(new_plain or "") > len(old_plain or "")
                table.update_cell(key, col_key, value, update_width=grow)


def literal(cell: Cell) -> Text:
    """A cell as text to show as it is (a str is never parsed as markup)."""
    return Text(cell) if isinstance(cell, str) else cell


def _plain(v: object) -> str | None:
    if v is None:
        return None
    return v.plain if isinstance(v, Text) else str(v)
