"""Where charter-tui keeps its files: XDG dirs via platformdirs, each overridable by an env var.

`charter-tui config path` prints these, so a user never has to guess.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from platformdirs import PlatformDirs

from daemon.errors import ConfigError, UserError

APP_NAME = "charter-tui"
_dirs = PlatformDirs(APP_NAME, appauthor=False)

ENV_CONFIG = "CHARTER_TUI_CONFIG"
ENV_DATABASE_URL = "CHARTER_TUI_DATABASE_URL"
ENV_LOG_FILE = "CHARTER_TUI_LOG_FILE"
ENV_DISCOVER = "CHARTER_TUI_DISCOVER"  # overrides [daemon] discover (0/1)

# Linux's limits (PATH_MAX counts the NUL, NAME_MAX is per component): past them every call fails
# with ENAMETOOLONG, so say so once, up front, instead of from whichever call meets it first.
MAX_PATH_CHARS = 4095
MAX_NAME_CHARS = 255


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


def path_problem(path: str | os.PathLike[str]) -> str | None:
    """Why `path` can never name a file here (too long, a NUL byte), or None."""
    text = os.fspath(path)
    if "\x00" in text:
        return "path contains a NUL byte"
    if len(text) > MAX_PATH_CHARS:
        return f"path is {len(text)} characters long (max {MAX_PATH_CHARS})"
    longest = max((len(part) for part in text.split("/")), default=0)
    if longest > MAX_NAME_CHARS:
        return f"path has a {longest}-character name (max {MAX_NAME_CHARS} per name)"
    return None


def check_path(path: str | os.PathLike[str]) -> None:
    """ConfigError naming `path` if it can never be a config file's path."""
    problem = path_problem(path)
    if problem:
        raise ConfigError(os.fspath(path), "", problem)


def default_data_dir() -> Path:
    """The XDG data dir: the one directory charter-tui creates for a database without being asked."""
    return Path(_dirs.user_data_dir)


def locations(config_override: str | os.PathLike[str] | None = None) -> Locations:
    """Resolve paths: explicit `--config` beats $CHARTER_TUI_CONFIG beats the XDG config dir."""
    config = config_override or os.environ.get(ENV_CONFIG) or Path(_dirs.user_config_dir) / "config.toml"
    check_path(config)
    try:
        config_file = Path(config).expanduser()
    except RuntimeError as exc:  # `~nosuchuser/...`: no home directory to expand to
        raise UserError(f"config path {str(config)!r}: {exc}") from None
    return Locations(
        config_file=config_file,
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


# File names that say little by themselves: an agent split over a package is often `agent.py` or
# `main.py`, and two projects' `agent.py` must not read as one file.
_GENERIC_NAMES = frozenset(
    {
        "agent.py",
        "agents.py",
        "main.py",
        "app.py",
        "run.py",
        "graph.py",
        "chain.py",
        "pipeline.py",
        "workflow.py",
    }
    | {"__init__.py", "__main__.py", "prompts.py"}
)


def agent_label(path: str) -> str:
    """How an agent file is named where space is short (a table row, a recommendation's title): its
    file name, with its directory when the name alone is generic (`research_graph/agent.py`). The whole
    path is shown where there is room for it."""
    pure = Path(path)
    if not pure.name:
        return path
    if pure.name in _GENERIC_NAMES and pure.parent.name:
        return f"{pure.parent.name}/{pure.name}"
    return pure.name
