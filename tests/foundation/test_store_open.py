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


def test_a_new_database_that_fails_to_open_is_removed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Store, "_check_writable", _fail_writable)
    with pytest.raises(UserError) as info:
        Store(f"sqlite:///{tmp_path / 'new.db'}")
    message = str(info.value)
    assert "new.db" in message and "disk I/O error" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == [], "no half-made database, WAL or SHM file is left"


def test_an_existing_database_that_fails_to_open_is_kept_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
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


def test_a_reader_sees_what_the_running_writer_committed_and_writes_nothing(tmp_path: Path) -> None:
    """`Store(readonly=True)` beside a live daemon's store: the latest commits (still in the WAL) are
    read, and any write through the reader fails at SQLite, not by convention."""
    from daemon.models import AuditEvent

    url = f"sqlite:///{tmp_path / 'c.db'}"
    writer = Store(url)
    try:
        writer.add_all([AuditEvent(actor="daemon", entity="daemon", entity_id="-", action="start")])
        reader = Store(url, readonly=True)
        try:
            assert [e.action for e in reader.all(AuditEvent)] == ["start"]
            with pytest.raises(OperationalError, match="readonly"):
                reader.add_all([AuditEvent(actor="x", entity="daemon", entity_id="-", action="stop")])
        finally:
            reader.close()
    finally:
        writer.close()


def test_a_reader_refuses_an_older_schema_instead_of_migrating_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    Store(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE schema_info SET version = 1"))
    engine.dispose()
    with pytest.raises(UserError, match="schema version 1.*start the daemon once to migrate it"):
        Store(url, readonly=True)
    with sa.create_engine(url).connect() as conn:
        assert conn.execute(sa.text("SELECT version FROM schema_info")).scalar_one() == 1


def _half_created(path: Path) -> None:
    """What another process creating the database leaves for a moment: SQLite commits each CREATE TABLE
    on its own, so `schema_info` exists before its row is inserted."""
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE schema_info (id INTEGER PRIMARY KEY, version INTEGER, updated_at FLOAT)")


def test_an_open_while_another_process_creates_the_database_waits_for_its_row(tmp_path: Path) -> None:
    import sqlite3
    import threading

    from daemon.store import SCHEMA_VERSION

    path = tmp_path / "charter.db"
    _half_created(path)

    def finish() -> None:
        with sqlite3.connect(path) as conn:
            conn.execute("INSERT INTO schema_info VALUES (1, ?, 0)", (SCHEMA_VERSION,))

    timer = threading.Timer(0.5, finish)
    timer.start()
    try:
        store = Store(f"sqlite:///{path}")  # was: "No row was found when one was required"
    finally:
        timer.join()
    assert store.schema_version() == SCHEMA_VERSION
    store.close()


def test_a_schema_info_that_never_gets_its_row_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import daemon.store

    monkeypatch.setattr(daemon.store, "SCHEMA_WAIT_S", 0.3)
    path = tmp_path / "charter.db"
    _half_created(path)
    with pytest.raises(UserError, match="schema_info table has no row after 0 s: another process began"):
        Store(f"sqlite:///{path}")
    assert path.exists(), "a database this open did not create is left as it was"
