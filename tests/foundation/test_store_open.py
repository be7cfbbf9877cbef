"""Opening the store is all or nothing: a database that cannot be used leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from daemon.errors import UserError
from daemon.store import Store


def _fail_writable(self: Store) -> None:
    raise OperationalError("UPDATE schema_info", {}, Exception("disk I/O error\nsecond line"))


def test_a_new_database_that_fails_to_open_is_removed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Store, "_check_writable", _fail_writable)
    with pytest.raises(UserError) as info:
        Store(f"sqlite:///{tmp_path / 'new.db'}")
    message = str(info.value)
    assert "new.db" in message and "disk I/O error" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == [], "no half-made database, WAL or SHM file is left"


def test_an_existing_database_that_fails_to_open_is_kept_as_it_was(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.db"
    Store(f"sqlite:///{path}").close()
    before = path.read_bytes()
    monkeypatch.setattr(Store, "_check_writable", _fail_writable)
    with pytest.raises(UserError, match="disk I/O error"):
        Store(f"sqlite:///{path}")
    assert path.exists() and path.read_bytes() == before


def test_a_read_only_connection_is_refused_at_open(tmp_path: Path) -> None:
    # SQLite's own read-only mode: the same refusal a read-only file gets, whoever runs the test.
    path = tmp_path / "c.db"
    Store(f"sqlite:///{path}").close()
    before = path.read_bytes()
    with pytest.raises(UserError, match="read-only"):
        Store(f"sqlite:///file:{path}?mode=ro&uri=true")
    assert path.read_bytes() == before


def test_a_newer_schema_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    Store(f"sqlite:///{path}").close()
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE schema_info SET version = 999"))
    engine.dispose()
    before = path.read_bytes()
    with pytest.raises(UserError, match="newer than this charter-tui"):
        Store(f"sqlite:///{path}")
    assert path.read_bytes() == before
