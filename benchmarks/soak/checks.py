"""The soak's invariants, watched all along and checked at the end.

Sources: the daemon's SQLite database (rollouts, audit log, compile records), its own /metrics
exporter (per-target polls and missed polls, per daemon life: counters restart with the process),
/proc (RSS) and the knob files.
"""

from __future__ import annotations

import json
import re
import sqlite3
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.soak.rig import KNOBS, DaemonProc, TargetSpec

ACTIVE = {"APPROVED", "CANARY", "VALIDATING", "ROLLING_OUT", "PAUSED", "FAILED"}
FINAL = {"COMPLETED", "ROLLED_BACK", "REJECTED"}
SERIES = re.compile(
    r'^(charter_polls_missed_total|charter_scrape_duration_seconds_count)\{target="([^"]+)"\} (\S+)$', re.M
)


@dataclass
class Violation:
    at_s: float
    kind: str
    text: str


@dataclass
class Observer:
    daemon: DaemonProc
    specs: list[TargetSpec]
    started: float
    stuck_bound_s: float = 120.0
    rss_bound_bytes: int = 600 * 1024 * 1024
    db_bound_bytes: int = 512 * 1024 * 1024
    violations: list[Violation] = field(default_factory=list)
    rss: list[tuple[float, int, int]] = field(default_factory=list)  # (t, bytes, daemon life)
    db: list[tuple[float, int]] = field(default_factory=list)
    # A daemon's first seconds (migrations, recovery, first poll of every target, first compile of
    # every watched file) are reported apart: counted from the first read after this many seconds.
    startup_grace_s: float = 10.0
    # per daemon life (index = start number): "first"/"last" read -> target -> (polls, missed)
    lives: dict[int, dict[str, dict[str, tuple[float, float]]]] = field(default_factory=dict)
    _stuck: dict[int, tuple[str, float]] = field(default_factory=dict)  # id -> (state, up-seconds in it)
    _reported_stuck: set[int] = field(default_factory=set)
    _last_tick: float = 0.0
    exporter_failures: int = 0
    # (t, daemon life, healthy polls, healthy missed) at each read: when misses happen, not just how many
    poll_series: list[tuple[float, int, int, int]] = field(default_factory=list)

    def violation(self, kind: str, text: str) -> None:
        self.violations.append(Violation(round(time.monotonic() - self.started, 1), kind, text))

    # --- sampling ------------------------------------------------------------------------------
    def tick(self) -> None:
        now = time.monotonic()
        dt = now - self._last_tick if self._last_tick else 0.0
        self._last_tick = now
        up = self.daemon.up and now - self.daemon.started_at > self.startup_grace_s
        if up:
            self._read_exporter()
            rss = self.daemon.rss_bytes()
            if rss is not None:
                self.rss.append((now - self.started, rss, self.daemon.starts))
                if rss > self.rss_bound_bytes:
                    self.violation(
                        "rss",
                        f"daemon RSS {rss / 2**20:.0f} MiB over the {self.rss_bound_bytes / 2**20:.0f} MiB bound",
                    )
        size = self.db_bytes()
        self.db.append((now - self.started, size))
        if size > self.db_bound_bytes:
            self.violation(
                "db_size",
                f"database {size / 2**20:.0f} MiB over the {self.db_bound_bytes / 2**20:.0f} MiB bound",
            )
        self._check_stuck(dt if up else 0.0)

    def db_bytes(self) -> int:
        return sum(
            p.stat().st_size for p in (self.daemon.db, Path(str(self.daemon.db) + "-wal")) if p.exists()
        )

    def _read_exporter(self) -> None:
        try:
            page = httpx.get(f"http://127.0.0.1:{self.daemon.metrics_port}/metrics", timeout=5).text
        except httpx.HTTPError:
            self.exporter_failures += 1
            return
        reads = self.lives.setdefault(self.daemon.starts, {})
        life: dict[str, tuple[float, float]] = {}
        for name, target, value in SERIES.findall(page):
            polls, missed = life.get(target, (0.0, 0.0))
            if name == "charter_polls_missed_total":
                missed = float(value)
            else:
                polls = float(value)
            life[target] = (polls, missed)
        reads.setdefault("first", life)
        reads["last"] = life
        healthy = {s.name for s in self.specs if s.healthy}
        first = reads["first"]
        self.poll_series.append(
            (
                round(time.monotonic() - self.started, 1),
                self.daemon.starts,
                int(sum(v[0] - first.get(k, (0, 0))[0] for k, v in life.items() if k in healthy)),
                int(sum(v[1] - first.get(k, (0, 0))[1] for k, v in life.items() if k in healthy)),
            )
        )

    def rollouts(self) -> list[dict[str, Any]]:
        try:
            with sqlite3.connect(self.daemon.db, timeout=10) as conn:
                rows = conn.execute(
                    "SELECT id, state, targets, changes, previous_config FROM rollout ORDER BY id"
                ).fetchall()
        except sqlite3.Error:
            return []
        return [
            {
                "id": r[0],
                "state": r[1],
                "targets": json.loads(r[2]),
                "changes": json.loads(r[3]),
                "previous": json.loads(r[4]),
            }
            for r in rows
        ]

    def _check_stuck(self, up_dt: float) -> None:
        for r in self.rollouts():
            if r["state"] not in ACTIVE:
                self._stuck.pop(r["id"], None)
                continue
            state, spent = self._stuck.get(r["id"], (r["state"], 0.0))
            spent = spent + up_dt if state == r["state"] else 0.0
            self._stuck[r["id"]] = (r["state"], spent)
            if spent > self.stuck_bound_s and r["id"] not in self._reported_stuck:
                self._reported_stuck.add(r["id"])
                self.violation(
                    "stuck", f"rollout {r['id']} in {r['state']} for {spent:.0f}s of daemon up-time"
                )

    def active_ids(self) -> dict[int, str]:
        return {r["id"]: r["state"] for r in self.rollouts() if r["state"] in ACTIVE}

    # --- final checks -----------------------------------------------------------------------------
    def final_checks(self, workdir: Path, allowed_actors: set[str]) -> None:
        rows = self.rollouts()
        with sqlite3.connect(self.daemon.db, timeout=10) as conn:
            approved = {
                int(r[0])
                for r in conn.execute(
                    "SELECT DISTINCT entity_id FROM audit_event WHERE entity = 'rollout' AND action = 'approve'"
                )
            }
            actors = conn.execute(
                "SELECT entity_id, actor, action FROM audit_event WHERE entity = 'rollout'"
            ).fetchall()
        for rid, actor, action in actors:
            if actor not in allowed_actors:
                self.violation(
                    "foreign_actor", f"rollout {rid}: {action} by {actor!r}, not an allowed identity"
                )
            if actor == "team" and action != "propose":
                self.violation("foreign_actor", f"rollout {rid}: {action} by team, which may only propose")
        expected = {k: "8" for k in KNOBS}
        for r in rows:
            if r["id"] in approved and r["state"] not in ("COMPLETED", "ROLLED_BACK"):
                self.violation("not_final", f"approved rollout {r['id']} ended {r['state']}")
            elif r["state"] not in FINAL:
                self.violation("not_final", f"rollout {r['id']} left in {r['state']}")
            for t in r["targets"]:
                recorded = r["previous"].get(t, {}).get("values", {}).get("batch")
                if recorded is not None and str(recorded) != expected[t]:
                    self.violation(
                        "record",
                        f"rollout {r['id']}: previous_config of {t} says batch={recorded}, "
                        f"but it ran {expected[t]} then",
                    )
                if r["state"] == "COMPLETED":
                    expected[t] = str(r["changes"][0]["value"])
        for k in KNOBS:
            real = json.loads((workdir / f"{k}.json").read_text())["batch"]
            if real != expected[k]:
                self.violation(
                    "knob_mismatch", f"{k} runs batch={real}; the rollout records say {expected[k]}"
                )

    def poll_figures(self) -> dict[str, Any]:
        """Healthy targets' polls and missed polls after each start-up window (summed over the daemon's
        lives), and apart from them the misses counted by the end of each start-up window."""
        healthy = {s.name for s in self.specs if s.healthy}
        polls = missed = startup_missed = 0.0
        missed_by: dict[str, float] = {}
        for reads in self.lives.values():
            first, last = reads["first"], reads["last"]
            for target, (p, m) in last.items():
                if target not in healthy:
                    continue
                p0, m0 = first.get(target, (0.0, 0.0))
                polls += p - p0
                missed += m - m0
                startup_missed += m0
                if m - m0:
                    missed_by[target] = missed_by.get(target, 0.0) + m - m0
        others = {
            s.name: int(sum(r["last"].get(s.name, (0.0, 0.0))[0] for r in self.lives.values()))
            for s in self.specs
            if not s.healthy
        }
        return {
            "healthy_targets": len(healthy),
            "healthy_polls": int(polls),
            "healthy_missed": int(missed),
            "missed_by_target": missed_by,
            "startup_missed": int(startup_missed),
            "startup_grace_s": self.startup_grace_s,
            "other_polls": others,
            "daemon_lives_read": len(self.lives),
        }

    def missed_windows(self, gap_s: float = 30.0) -> list[tuple[float, float, int]]:
        """When healthy polls were missed: (from s, to s, missed) runs of the 2-second reads in which the
        count rose, a gap of more than `gap_s` starting a new run. A burst every target shares points at the
        machine (or the loop) at that moment; a steady trickle at the daemon."""
        windows: list[list[float]] = []
        previous: dict[int, int] = {}
        for at, life, _, missed in self.poll_series:
            rose = missed - previous.get(life, 0)
            previous[life] = missed
            if rose <= 0:
                continue
            if windows and at - windows[-1][1] <= gap_s:
                windows[-1][1], windows[-1][2] = at, windows[-1][2] + rose
            else:
                windows.append([at, at, rose])
        return [(w[0], w[1], int(w[2])) for w in windows]

    def check_polls(self) -> None:
        figures = self.poll_figures()
        if figures["healthy_missed"]:
            when = "; ".join(f"{a:.0f}-{b:.0f} s: {n}" for a, b, n in self.missed_windows()[:5])
            self.violation(
                "missed_polls",
                f"{figures['healthy_missed']} missed polls of healthy targets "
                f"(when: {when or 'at start-up'}): "
                f"{json.dumps(figures['missed_by_target'])[:300]}",
            )
        if not figures["healthy_polls"]:
            self.violation("no_polls", "no poll of a healthy target was ever counted")

    def rss_life_max_mib(self) -> list[float]:
        """The largest RSS of each daemon life, in order: growth across lives would be a leak that
        the SIGKILLs hide from any one life."""
        out: dict[int, int] = {}
        for _, v, life in self.rss:
            out[life] = max(out.get(life, 0), v)
        return [round(out[k] / 2**20, 1) for k in sorted(out)]

    def rss_trend(self) -> tuple[float | None, float]:
        """RSS slope (bytes/hour) over the longest daemon life (SIGKILLs restart it), and that life's length."""
        lives: dict[int, list[tuple[float, int]]] = {}
        for t, v, life in self.rss:
            lives.setdefault(life, []).append((t, v))
        if not lives:
            return None, 0.0
        longest = max(lives.values(), key=lambda s: s[-1][0] - s[0][0])
        return self.trend_per_hour(longest), longest[-1][0] - longest[0][0]

    @staticmethod
    def trend_per_hour(series: list[tuple[float, int]]) -> float | None:
        """Least-squares slope (units per hour) over the second half of the series (past warm-up)."""
        half = series[len(series) // 2 :]
        if len(half) < 10:
            return None
        xs, ys = [t for t, _ in half], [v for _, v in half]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        var = sum((x - mx) ** 2 for x in xs)
        return None if var == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var * 3600
