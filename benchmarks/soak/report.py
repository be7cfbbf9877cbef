"""The soak's markdown report, from its result dict (every figure is one the run measured)."""

from __future__ import annotations

from typing import Any


def _deep(records: list[dict[str, Any]]) -> str:
    errors = sorted({x["error"] for x in records if not x["ok"]})
    return f"{len(records)} records, {sum(x['ok'] for x in records)} ok" + (
        f"; errors: {errors}" if errors else ""
    )


def render(r: dict[str, Any]) -> str:
    v = r["violations"]
    polls = r["polls"]
    lines = [
        "# Soak: the daemon among 100 targets, with faults, rollouts and junk commands",
        "",
        f"- command: `.venv/bin/python {r['command']}`",
        f"- machine: {r['machine']}; finished {r['date']}",
        f"- minutes soaked: **{r['minutes_soaked']}** ({r['fault_minutes']} with faults, then settling)",
        f"- targets: {r['targets']['total']} ({', '.join(f'{n} {k}' for k, n in r['targets']['kinds'].items())}); "
        f"{r['targets']['healthy']} healthy (replayed, never stopped); polled every {r['poll_interval_s']} s",
        f"- **invariant violations: {len(v)}**",
        "",
        "## Faults injected",
        "",
        "| kind | count |",
        "| --- | ---: |",
        *[f"| {k} | {n} |" for k, n in r["faults"].items()],
        f"| watched-file edits | {sum(r['edits'].values())} ({', '.join(f'{n} {k}' for k, n in r['edits'].items())}) |",
        "",
        f"The daemon was started {r['daemon_starts']} times (1 + one per SIGKILL).",
        "",
        "## Rollouts",
        "",
        "| final state | count |",
        "| --- | ---: |",
        *[f"| {k} | {n} |" for k, n in sorted(r["rollouts_by_state"].items())],
        "",
        f"Proposed: {r['proposed']['cli']} via the CLI, {r['proposed']['mqtt']} via signed MQTT. "
        f"Commands: {', '.join(f'{k} {n}' for k, n in sorted(r['commands'].items()))}. "
        f"MQTT commands that got no answer (a fault in between; retried through the CLI): {r['mqtt_unanswered']}.",
        "",
        "Interrupted by a SIGKILL (state when the daemon was killed -> how it ended):",
        "",
    ]
    if r["interrupted"]:
        lines += ["| rollout | at SIGKILL | final |", "| ---: | --- | --- |"]
        lines += [f"| {k} | {x['at_kill']} | {x['final']} |" for k, x in r["interrupted"].items()]
    else:
        lines.append("none")
    junk = r["junk"]
    lines += [
        "",
        "## Polls",
        "",
        f"- healthy targets ({polls['healthy_targets']}): **{polls['healthy_polls']:,} polls, "
        f"{polls['healthy_missed']} missed** (the daemon's own `charter_scrape_duration_seconds_count` and "
        "`charter_polls_missed_total`, summed over its lives; read every 2 s while it was up, from the end of "
        f"each start-up window of {polls['startup_grace_s']:g} s after the daemon logs `daemon running`)",
        f"- when healthy polls were missed (seconds into the run: missed): "
        f"{'; '.join(f'{a:.0f}-{b:.0f} s: {n}' for a, b, n in r.get('missed_windows', [])) or 'never'}",
        f"- missed by the end of the start-up windows (all lives together; not counted above): "
        f"{polls['startup_missed']}",
        "- the others (hostile, knob, stopped-and-started): "
        + ", ".join(f"{k} {n:,}" for k, n in polls["other_polls"].items()),
        f"- exporter reads that failed: {r['exporter_failures']}",
        f"- {_stalls(r.get('loop_stalls'))}",
        f"- machine load average at the end (1, 5, 15 min): {_load(r.get('load_average'))}",
        "",
        "## Memory and database",
        "",
        f"- daemon RSS (sampled every 2 s once out of start-up): min {r['rss_mib']['min']} MiB, max "
        f"{r['rss_mib']['max']} MiB; the largest RSS of each daemon life, first to last: "
        f"{r['rss_mib'].get('life_max', 'not recorded')}",
        f"- database (file + WAL): min {r['db_mib']['min']} MiB, max {r['db_mib']['max']} MiB; trend "
        f"{r['db_mib']['trend_mib_per_h']} MiB/h over the second half of the run (raw samples are kept "
        "`raw_retention_hours` = 24 h, so within an hour the file only grows)",
        "",
        "## Commands that must be refused",
        "",
        f"- sent: {', '.join(f'{k} {n}' for k, n in sorted(junk['sent'].items())) or 'none'}",
        f"- refused with a reason: {junk['refused']}; no answer (broker or daemon going down meanwhile): "
        f"{junk['unanswered']}; **carried out: {len(junk['accepted'])}**",
        "",
        "## Watched agent files",
        "",
        f"- compile records: {r['compiles']['records']} ({r['compiles']['ok']} ok; the others are the syntax "
        f"errors put in on purpose); the 20-deep loop file: {_deep(r['compiles']['deep_loops'])}",
        f"- the daemon's exit status on the final SIGTERM: {r['daemon_exit_on_sigterm']}",
        "",
        "## Invariant violations",
        "",
    ]
    if v:
        lines += ["| at s | kind | what |", "| ---: | --- | --- |"]
        lines += [f"| {x['at_s']} | {x['kind']} | {x['text'].replace('|', '/')} |" for x in v]
    else:
        lines.append("none")
    if r["driver_errors"]:
        lines += ["", "## Driver notes", "", *[f"- {e}" for e in r["driver_errors"]]]
    lines += ["", "## Fault log", "", "```text", *r["fault_log"], "```", ""]
    return "\n".join(lines)


def _stalls(stalls: dict[str, Any] | None) -> str:
    if stalls is None:
        return "event-loop stalls: not recorded"
    if not stalls["count"]:
        return "event-loop stalls over 1 s (the daemon's watchdog, daemon/stall.py): none"
    return (
        f"event-loop stalls over 1 s (the daemon's watchdog, daemon/stall.py): {stalls['count']}, "
        f"longest {stalls['max_s']:.2f} s, {stalls['total_s']:.1f} s in all; "
        f"{stalls['whole_process']} with the whole process held (no CPU or the GIL kept)"
    )


def _load(load: list[float] | None) -> str:
    return "not recorded" if not load else ", ".join(f"{x:.2f}" for x in load)
