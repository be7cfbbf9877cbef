"""The Cache screen's benchmark rows: one stored `charter-tui bench` run per agent and target.

Each row puts what the run measured (hit share naive and optimized) next to the ceiling measured on
the same prompts, so "% of ceiling" says how much of the reachable caching the plan got, and the
speedup says what that was worth in makespan.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from rich.text import Text

from charter_tui.render import numbers
from daemon.paths import agent_label
from daemon.bench.records import BenchRunView, warm_beyond_ceiling
from daemon.models import Instance
from daemon.redaction import redact_text, redact_url

# (label, key) of the table's columns, in order. Short labels (the section title says they are hit
# shares) keep agent, target and every number inside 80 columns; the error comes last, so a long
# one scrolls off to the right instead of pushing the numbers off.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("agent", "agent"),
    ("target", "target"),
    ("when", "when"),
    ("naive", "naive"),
    ("opt", "opt"),
    ("ceiling", "ceil"),
    ("of ceil", "of"),
    ("speedup", "speedup"),
    ("error", "error"),
)
# The real syntax (`charter-tui bench --help`); it fits 78 columns so it stays one line at 80x24.
HINT = Text.assemble(
    ("no benchmark runs yet — run ", "dim"),
    ("charter-tui bench AGENT --inputs FILE --target URL", "dim bold"),
)
ERROR_CHARS = 60


def row_key(run: BenchRunView) -> str:
    return f"{run.agent}@{run.target}"


def target_label(url: str, instances: Iterable[Instance]) -> str:
    """The configured instance's name when the bench target is one of them, else `host:port`."""
    wanted = redact_url(url).rstrip("/")  # instance URLs are stored redacted
    for inst in instances:
        if redact_url(inst.url).rstrip("/") == wanted:
            return inst.name
    parts = urlsplit(redact_url(url))
    return parts.netloc.rpartition("@")[2] or redact_url(url)


def _of_ceiling(v: float | None) -> Text:
    if warm_beyond_ceiling(v):
        return Text("over (warm)", style="yellow")
    style = "" if v is None else "green" if v >= 0.9 else "yellow" if v >= 0.6 else "red"
    return Text(numbers.percent(v), style=style)


def _speedup(v: float | None) -> Text:
    if v is None:
        return Text(numbers.DASH)
    # Within 5% either way is run-to-run noise on a shared box, not a win or a loss.
    return Text(f"{v:.2f}×", style="green" if v > 1.05 else "red" if v < 0.95 else "")


def _error(error: str | None) -> Text:
    if not error:
        return Text("")
    # The error quotes the bench target's URL, credentials included when it had some.
    first = redact_text(error.strip().splitlines()[0] if error.strip() else error)
    return Text(first if len(first) <= ERROR_CHARS else first[: ERROR_CHARS - 1] + "…", style="red")


def bench_row(
    run: BenchRunView, instances: Iterable[Instance], now: float
) -> tuple[str, Sequence[str | Text]]:
    naive, opt, best = run.summaries.get("naive"), run.summaries.get("optimized"), run.best
    # A failed run is marked on the agent too: the error column may be scrolled off at 80 columns.
    agent = Text(
        ("✗ " if run.error else "") + agent_label(run.agent), style="bold red" if run.error else "bold"
    )
    return row_key(run), [
        agent,
        target_label(run.target, instances),
        numbers.age(run.started_at, now),
        numbers.percent(naive.hit_share if naive else None),
        numbers.percent(opt.hit_share if opt else None),
        numbers.percent(best.ceiling_share if best else None),
        _of_ceiling(run.of_ceiling),
        _speedup(run.speedup),
        _error(run.error),
    ]
