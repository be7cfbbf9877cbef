"""Approval-gated config rollouts: proposal -> approval -> canary -> validation -> rollout, with rollback.

Modules (import them directly; this package imports nothing of its own):
- `model`       typed views of the Rollout row's JSON (states, changes, per-target progress, comparison)
- `machine`     the transition table and what each person's command may do
- `repo`        persistence: locked read-modify-write of a rollout plus its audit event, in one transaction
- `validation`  canary vs baseline on named signals (pure)
- `commands`    propose/approve/reject/pause/resume/rollback as audited transitions (CLI, TUI, bus)
- `journal`     how the daemon writes a rollout: each step persisted with its audit event, then published
- `command_handler`  bus commands: verified, allowed or refused, audited, answered with a `CommandResult`
- `canary`      which samples judge a canary: the canary window and its baseline, read from the store
- `recovery`    after a crash: every active rollout reconciled with what its targets really run
- `manager`     the daemon loop that carries rollouts out on real servers, stage by stage
"""
