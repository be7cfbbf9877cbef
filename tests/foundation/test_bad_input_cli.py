"""Hostile input at the config / CLI / store edge, through the installed `charter-tui` (issue 13).

Every case runs the real console script in a subprocess with its own XDG dirs and asserts: exit 2,
exactly one line on stderr naming the thing (file, key, database, argument) and the reason, no
traceback, and nothing written: the files the test made are byte-for-byte unchanged and no new
file appeared. A hang (FIFO, catastrophic backtracking, an infinite timeout) fails by the
subprocess timeout instead of blocking the suite.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

CHARTER = Path(sys.executable).parent / "charter-tui"
# Generous: a loaded 2-core box starts Python slowly; a real hang runs far past it anyway.
HANG_S = 60


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` with its bytes (None for directories and special files)."""
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = p.read_bytes() if p.is_file() and not p.is_symlink() else None
    return out


def run_cli(
    home: Path, *args: str, env: dict[str, str] | None = None, user: int | None = None
) -> subprocess.CompletedProcess[str]:
    assert CHARTER.exists(), f"the console script is not installed at {CHARTER}"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CHARTER_TUI_", "XDG_"))}
    base.update(
        {
            f"XDG_{kind}_HOME": str(home / "xdg" / kind.lower())
            for kind in ("CONFIG", "DATA", "STATE", "CACHE")
        }
    )
    base.update(env or {})
    prefix = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] if user is not None else []
    return subprocess.run(
        [*prefix, str(CHARTER), *args],
        capture_output=True,
        text=True,
        env=base,
        timeout=HANG_S,
        stdin=subprocess.DEVNULL,
    )


def assert_refused(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    err = result.stderr
    assert result.returncode == 2, (result.returncode, err[-2000:], result.stdout[-500:])
    assert "Traceback" not in err, err[-2000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1, err[-2000:]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "xdg").mkdir()
    return tmp_path


# --- the config file itself ---------------------------------------------------------------------


def test_deeply_nested_toml_is_one_error_line(home: Path) -> None:
    path = home / "deep.toml"
    path.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    before = snapshot(home)
    assert_refused(run_cli(home, "--config", str(path), "config", "show"), str(path), "nested too deeply")
    assert snapshot(home) == before


def test_a_300_character_path_is_refused_by_name(home: Path) -> None:
    path = home / ("c" * 300 + ".toml")
    before = snapshot(home)
    line = assert_refused(run_cli(home, "--config", str(path), "config", "show"), "300", "max 255")
    assert str(home) in line
    assert snapshot(home) == before


def test_dev_zero_as_the_config_is_not_read(home: Path) -> None:
    before = snapshot(home)
    assert_refused(
        run_cli(home, "--config", "/dev/zero", "config", "show"), "/dev/zero", "not a regular file"
    )
    assert snapshot(home) == before


def test_a_fifo_as_the_config_does_not_hang(home: Path) -> None:
    fifo = home / "config.toml"
    os.mkfifo(fifo)
    before = snapshot(home)
    assert_refused(run_cli(home, "--config", str(fifo), "config", "show"), str(fifo), "not a regular file")
    assert snapshot(home) == before


def test_a_directory_as_the_config_is_refused(home: Path) -> None:
    assert_refused(run_cli(home, "--config", str(home / "xdg"), "config", "show"), "not a regular file")


def test_an_oversized_config_is_refused_unread(home: Path) -> None:
    path = home / "big.toml"
    path.write_text("# padding\n" * 200_000)  # 2 MB of comments: valid TOML, not a config
    before = snapshot(home)
    assert_refused(run_cli(home, "--config", str(path), "config", "show"), str(path), "max 1048576")
    assert snapshot(home) == before


def test_a_config_that_is_not_utf8_is_refused(home: Path) -> None:
    path = home / "bin.toml"
    path.write_bytes(b"[daemon]\nreadonly = \xff\xfe\n")
    assert_refused(run_cli(home, "--config", str(path), "config", "show"), str(path), "not UTF-8")


CONFIG_CASES = [
    # pydantic's lax mode took all three of these as if they were right.
    ('[daemon]\nreadonly = "yes"\n', "daemon.readonly", "valid boolean"),
    ("[watch]\ndebounce_ms = true\n", "watch.debounce_ms", "valid integer"),
    ('[mqtt]\nport = "1883"\n', "mqtt.port", "valid integer"),
    ("[thresholds]\nmin_prefix_queries = 2.0\n", "thresholds.min_prefix_queries", "valid integer"),
    (
        '[[targets]]\nname = "a"\nurl = "http://h:8000\\r\\nX-Injected: 1"\n',
        "targets[0].url",
        "control character",
    ),
    ('[[targets]]\nname = "a"\nurl = "http://h:8000/\\u0000"\n', "targets[0].url", "control character"),
    ('[[targets]]\nname = "a"\nurl = "http://h 8000"\n', "targets[0].url", "whitespace"),
    ('[[targets]]\nname = "a"\nurl = "ftp://h"\n', "targets[0].url", "not an http(s) URL"),
    (
        '[[targets]]\nname = "a"\nurl = "http://h"\nmetrics_url = " http://h:8002"\n',
        "targets[0].metrics_url",
        "whitespace",
    ),
    ('[[targets]]\nname = "a"\nurl = "http://h"\ntimeout_s = inf\n', "targets[0].timeout_s", "finite number"),
    ("[daemon]\npoll_interval_s = nan\n", "daemon.poll_interval_s", "finite number"),
    (
        '[rollouts.commands.k]\napply = ["x"]\nread = ["x"]\n[rollouts.commands.k.params.p]\ntype = "string"\n'
        'pattern = "(("\n',
        "rollouts.commands.k.params.p.pattern",
        "not a valid RE2 regular expression",
    ),
    (
        '[rollouts.commands.k]\napply = ["x"]\nread = ["x"]\n[rollouts.commands.k.params.p]\ntype = "string"\n'
        'pattern = "(a)\\\\1"\n',
        "rollouts.commands.k.params.p.pattern",
        "not a valid RE2 regular expression",
    ),
    (
        '[rollouts.commands.k]\napply = ["x"]\nread = ["x"]\n[rollouts.commands.k.params.p]\ntype = "string"\n'
        f'pattern = "{"a" * 300}"\n',
        "rollouts.commands.k.params.p.pattern",
        "max 256",
    ),
    # A key with a newline in it stays on one line of stderr.
    ('[daemon]\n"poll\\ninterval" = 1\n', "daemon.poll\\ninterval", "unknown key"),
]


@pytest.mark.parametrize(
    ("text", "key", "reason"), CONFIG_CASES, ids=[c[1] + ":" + c[2] for c in CONFIG_CASES]
)
def test_bad_config_values_are_one_line_naming_file_key_and_reason(
    home: Path, text: str, key: str, reason: str
) -> None:
    path = home / "bad.toml"
    path.write_text(text)
    before = snapshot(home)
    assert_refused(run_cli(home, "--config", str(path), "config", "show"), str(path), key, reason)
    assert snapshot(home) == before


def test_toml_ints_still_fill_float_fields(home: Path) -> None:
    path = home / "ok.toml"
    path.write_text(
        '[daemon]\npoll_interval_s = 2\n[[targets]]\nname = "a"\nurl = "http://h:1"\ntimeout_s = 3\n'
    )
    result = run_cli(home, "--config", str(path), "config", "show", "--json")
    assert result.returncode == 0, result.stderr
    assert '"poll_interval_s": 2.0' in result.stdout and '"timeout_s": 3.0' in result.stdout


# --- rule patterns at `rollouts propose` --------------------------------------------------------


def _command_target_config(home: Path, rule: str) -> Path:
    path = home / "c.toml"
    path.write_text(
        '[[targets]]\nname = "k"\nurl = "http://127.0.0.1:9"\n'
        f'[rollouts.commands.k]\napply = ["true", "{{value}}"]\nread = ["true"]\n'
        f'[rollouts.commands.k.params.p]\ntype = "string"\n{rule}\n'
    )
    return path


def test_a_backtracking_pattern_cannot_hang_propose(home: Path) -> None:
    # (a+)+ against a^40 b takes 2^40 steps with Python's re; RE2 answers at once.
    config = _command_target_config(home, 'pattern = "(a+)+"')
    db = f"sqlite:///{home / 'c.db'}"
    result = run_cli(
        home,
        "--config",
        str(config),
        "rollouts",
        "propose",
        "--target",
        "k",
        "--set",
        "p=" + "a" * 40 + "b",
        env={"CHARTER_TUI_DATABASE_URL": db},
    )
    assert_refused(result, "p=", "does not match")


@pytest.mark.parametrize(
    ("rule", "value", "why"),
    [
        ("", "../../../etc/passwd", "does not match"),  # the default pattern no longer takes '/'
        ('pattern = "[a-z./]{1,64}"', "../../../etc/passwd", "'..' path segment"),
        ('pattern = "[a-z./]{1,64}"', "models/../../secret", "'..' path segment"),
        ('pattern = "[a-z./]{1,64}"', "/etc/passwd", "absolute path"),
        ("", ".hidden", "does not match"),
    ],
)
def test_path_like_values_are_confined(home: Path, rule: str, value: str, why: str) -> None:
    config = _command_target_config(home, rule)
    db = f"sqlite:///{home / 'c.db'}"
    result = run_cli(
        home,
        "--config",
        str(config),
        "rollouts",
        "propose",
        "--target",
        "k",
        "--set",
        f"p={value}",
        "--dry-run",
        env={"CHARTER_TUI_DATABASE_URL": db},
    )
    assert_refused(result, why)
    assert not (home / "c.db").exists(), "a dry run opens no database"


# --- the store ----------------------------------------------------------------------------------


def test_an_explicit_database_in_a_missing_directory_is_an_error_and_creates_nothing(home: Path) -> None:
    url = f"sqlite:///{home / 'nowhere' / 'sub' / 'c.db'}"
    before = snapshot(home)
    assert_refused(
        run_cli(home, "rollouts", "list", env={"CHARTER_TUI_DATABASE_URL": url}), url, "does not exist"
    )
    assert snapshot(home) == before


def test_the_default_xdg_data_dir_is_created(home: Path) -> None:
    # Listing creates nothing (see below); a command that writes creates the database where XDG says.
    assert_refused(run_cli(home, "rollouts", "approve", "1"), "rollout 1")
    assert (home / "xdg" / "data" / "charter-tui" / "charter.db").is_file()
    listed = run_cli(home, "rollouts", "list")
    assert listed.returncode == 0 and listed.stdout.startswith("no rollouts"), listed.stderr


def test_a_file_that_is_not_sqlite_is_left_alone(home: Path) -> None:
    path = home / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 100)
    before = snapshot(home)
    assert_refused(
        run_cli(home, "rollouts", "list", env={"CHARTER_TUI_DATABASE_URL": f"sqlite:///{path}"}),
        str(path),
        "not a SQLite database",
    )
    assert snapshot(home) == before


def test_a_directory_as_the_database_is_refused(home: Path) -> None:
    url = f"sqlite:///{home / 'xdg'}"
    assert_refused(
        run_cli(home, "rollouts", "list", env={"CHARTER_TUI_DATABASE_URL": url}), "not a regular file"
    )


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another user can reach (pytest's tmp_path is 0700): for the read-only cases."""
    path = Path(tempfile.mkdtemp(prefix="charter-ro-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for p in [path, *path.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        shutil.rmtree(path)


def _read_only_user() -> int | None:
    """Root ignores file modes: run the CLI as `nobody` then, so a read-only file is read-only."""
    if os.geteuid() != 0:
        return None
    if shutil.which("setpriv") is None:
        pytest.fail("running as root, and setpriv (util-linux) is missing to drop to an unprivileged user")
    return 65534


def _make_database(db: Path) -> None:
    from daemon.store import Store

    Store(f"sqlite:///{db}").close()  # as the daemon would: WAL mode, the schema, closed cleanly


def test_a_read_only_database_lists_but_refuses_every_write(shared_dir: Path) -> None:
    """The daemon's database, readable by the user but not writable: reading commands answer (the
    file opened read-only), writing ones are one line naming the file and the reason; nothing changes."""
    db = shared_dir / "c.db"
    _make_database(db)
    for p in shared_dir.rglob("*"):
        p.chmod(0o555 if p.is_dir() else 0o444)
    shared_dir.chmod(0o555)
    before = snapshot(shared_dir)
    env = {"CHARTER_TUI_DATABASE_URL": f"sqlite:///{db}"}
    listed = run_cli(shared_dir, "rollouts", "list", "--all", env=env, user=_read_only_user())
    assert (listed.returncode, listed.stdout.strip(), listed.stderr) == (0, "no rollouts", "")
    shown_one = run_cli(shared_dir, "rollouts", "show", "1", env=env, user=_read_only_user())
    assert_refused(shown_one, "rollout 1")  # read fine; there is no rollout 1
    approved = run_cli(shared_dir, "rollouts", "approve", "1", env=env, user=_read_only_user())
    assert_refused(approved, str(db), "read-only")
    assert snapshot(shared_dir) == before


def test_listing_before_the_daemon_ever_ran_creates_nothing(shared_dir: Path) -> None:
    db = shared_dir / "never.db"
    before = snapshot(shared_dir)
    listed = run_cli(shared_dir, "rollouts", "list", env={"CHARTER_TUI_DATABASE_URL": f"sqlite:///{db}"})
    assert listed.returncode == 0 and "does not exist yet" in listed.stdout, listed.stderr
    assert snapshot(shared_dir) == before and not db.exists()


def test_a_new_database_in_a_read_only_directory_is_an_error(shared_dir: Path) -> None:
    (shared_dir / "xdg").mkdir()
    shared_dir.chmod(0o555)
    db = shared_dir / "new.db"
    before = snapshot(shared_dir)
    result = run_cli(
        shared_dir,
        "rollouts",
        "approve",
        "1",
        env={"CHARTER_TUI_DATABASE_URL": f"sqlite:///{db}"},
        user=_read_only_user(),
    )
    assert_refused(result, str(db), "cannot be opened or created")
    assert snapshot(shared_dir) == before


def test_a_database_password_is_not_printed(home: Path) -> None:
    url = "postgresql://charter:hunter2@127.0.0.1:1/charter"
    line = assert_refused(
        run_cli(home, "rollouts", "list", env={"CHARTER_TUI_DATABASE_URL": url}), "127.0.0.1"
    )
    assert "hunter2" not in line


# --- probe --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["ftp://nowhere"], ["URL", "not an http(s) URL"]),
        (["http://h:8000\r\nX-Injected: 1"], ["URL", "control character"]),
        (["http://h 8000"], ["URL", "whitespace"]),
        (["http://127.0.0.1:9", "--metrics-url", "gopher://h"], ["--metrics-url", "not an http(s) URL"]),
        (["http://127.0.0.1:9", "--timeout", "inf"], ["--timeout", "finite"]),
        (["http://127.0.0.1:9", "--timeout", "nan"], ["--timeout", "finite"]),
        (["http://127.0.0.1:9", "--timeout", "1e9"], ["--timeout", "300"]),
        (["http://127.0.0.1:9", "--timeout", "0"], ["--timeout", "(0, 300]"]),
        (["http://127.0.0.1:9", "--interval", "inf"], ["--interval", "finite"]),
        (["http://127.0.0.1:9", "--interval", "-1"], ["--interval", "[0, 3600]"]),
    ],
)
def test_probe_refuses_bad_arguments_in_one_line(home: Path, args: list[str], needles: list[str]) -> None:
    before = snapshot(home)
    line = assert_refused(run_cli(home, "probe", *args), "probe:", *needles)
    assert "pydantic" not in line and "errors.pydantic.dev" not in line
    assert snapshot(home) == before
