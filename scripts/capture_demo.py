"""Capture every screen of `make run` (the demo) in a real terminal, after a minute of its traffic.

    .venv/bin/python scripts/capture_demo.py docs/captures/demo [--wait-s 60]

Starts `make run` in a detached tmux session at 160x48 with fresh XDG config, data and state dirs
(a first-time user: no config, so the demo starts its own vLLM CPU server and drives the bundled
agent against it), waits until the top bar shows the demo traffic running and `--wait-s` more
seconds have passed, then saves `tmux capture-pane` of screens 1 to 5 as text, and quits with `q`.
By hand, not in `make test`: it takes about two minutes (one of them vLLM starting on 2 cores).
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SESSION = "charter-demo-capture"
SCREENS = (("1", "instances"), ("2", "agents"), ("3", "cache"), ("4", "bottlenecks"), ("5", "rollouts"))


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


def pane() -> str:
    return tmux("capture-pane", "-p", "-t", SESSION)


def wait_for(pattern: str, timeout_s: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = re.search(pattern, pane())
        if found:
            return found
        time.sleep(1)
    sys.exit(f"capture_demo: no {pattern!r} on screen after {timeout_s:.0f} s; the screen was:\n{pane()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="directory for the captures (created)")
    parser.add_argument("--wait-s", type=float, default=60.0, help="traffic time before capturing")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="charter-demo-"))
    env = {f"XDG_{d.upper()}_HOME": str(home / d) for d in ("config", "data", "state")}
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    command = f"cd {shlex.quote(str(REPO))} && env {exports} TERM=xterm-256color make run"
    subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
    tmux("new-session", "-d", "-s", SESSION, "-x", "160", "-y", "48", command)
    try:
        wait_for(r"DEMO traffic · [1-9]\d* runs", 600)
        started = time.monotonic()
        time.sleep(args.wait_s)
        for key, name in SCREENS:
            tmux("send-keys", "-t", SESSION, key)
            time.sleep(2)
            (args.out / f"{name}.txt").write_text(pane().rstrip() + "\n")
        runs = wait_for(r"DEMO traffic · (\d+) runs", 10).group(1)
        print(
            f"captured {len(SCREENS)} screens after {time.monotonic() - started:.0f} s of traffic ({runs} runs)"
        )
        tmux("send-keys", "-t", SESSION, "q")
        time.sleep(5)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
