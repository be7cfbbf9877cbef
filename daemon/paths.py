"""Where charter-tui keeps its files: XDG dirs via platformdirs, each overridable by an env var.

`charter-tui config path` prints these, so a user never has to guess.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from platformdirs import PlatformDirs

APP_NAME = "charter-tui"
_dirs = PlatformDirs(APP_NAME, appauthor=False)

ENV_CONFIG = "CHARTER_TUI_CONFIG"
ENV_DATABASE_URL = "CHARTER_TUI_DATABASE_URL"
ENV_LOG_FILE = "CHARTER_TUI_LOG_FILE"


@dataclass(frozen=True)
class Locations:
    config_file: Path
    data_dir: Path
    state_dir: Path
    cache_dir: Path

    @property
    def default_database_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'charter.db'}"

    @property
    def default_log_file(self) -> Path:
        return self.state_dir / "charter-tui.log"

    @property
    def testkit_dir(self) -> Path:
        return Path(os.environ.get("CHARTER_TESTKIT_DIR") or self.cache_dir / "testkit")


def locations(config_override: str | os.PathLike[str] | None = None) -> Locations:
    """Resolve paths: explicit `--config` beats $CHARTER_TUI_CONFIG beats the XDG config dir."""
    config = config_override or os.environ.get(ENV_CONFIG) or Path(_dirs.user_config_dir) / "config.toml"
    return Locations(
        config_file=Path(config).expanduser(),
        data_dir=Path(_dirs.user_data_dir),
        state_dir=Path(_dirs.user_state_dir),
        cache_dir=Path(_dirs.user_cache_dir),
    )


def repo_data_dir() -> Path:
    """The bundled `data/` (sample agents, default config): in the source tree, or inside the wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "data", here.parent / "charter_tui" / "_data"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("charter-tui's bundled data/ directory is missing from this installation")
