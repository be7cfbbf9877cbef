"""Fixtures for the TUI tests: an app over a real Bus fed with deterministic daemon data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from charter_tui.app import CharterApp
from charter_tui.compose import pinned_app
from daemon.config import LoadedConfig, load_config
from tests.tui.fixtures import fixed_clock, publish_all
from tests.tui.helpers import write_config


@pytest.fixture
def make_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., LoadedConfig]:
    monkeypatch.setenv("CHARTER_TUI_DATABASE_URL", f"sqlite:///{tmp_path / 'tui.db'}")

    def make(body: str = "") -> LoadedConfig:
        return load_config(write_config(tmp_path, body))

    return make


@pytest.fixture
def make_app(make_loaded: Callable[..., LoadedConfig]) -> Callable[..., CharterApp]:
    """An app whose bus already carries the fixture data (daemon not running: data is pinned)."""

    def make(*, readonly: bool = False, config: str = "", data: bool = True) -> CharterApp:
        app = pinned_app(make_loaded(config), readonly=readonly, clock=fixed_clock)
        if data:
            publish_all(app.source.bus)
        return app

    return make
