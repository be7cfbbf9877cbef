"""A DataTable for rows that change every second.

DataTable caches rendered cells keyed by its update counter, so with live values every refresh
adds new entries and the old ones are never hit again; its default caches (10,000 cells, 1,000
rows and lines) then fill with dead entries and hold ~100 MB with 100 targets before they start
evicting. A screenful is all that is ever reused, so these caches are sized to a few screens.
The cache attributes are DataTable internals (textual is pinned exactly, see pyproject).
"""

from __future__ import annotations

from typing import Any

from textual.cache import LRUCache
from textual.widgets import DataTable

CELLS = 2000  # ~4 screens of 50 rows x 10 columns
LINES = 200


class LiveTable(DataTable):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cell_render_cache = LRUCache(CELLS)
        self._row_render_cache = LRUCache(LINES)
        self._row_renderable_cache = LRUCache(LINES)
        self._line_cache = LRUCache(LINES)
