"""The state machine: every allowed edge, every refused one, and what commands may do."""

from __future__ import annotations

import itertools

import pytest

from daemon.rollouts.machine import (
    COMMAND_FROM,
    TRANSITIONS,
    IllegalTransition,
    check_command,
    check_transition,
    resume_target,
)
from daemon.rollouts.model import ACTIVE_STATES, TERMINAL_STATES, RolloutState as S

EXPECTED_EDGES = {
    (S.PENDING_APPROVAL, S.APPROVED),
    (S.PENDING_APPROVAL, S.REJECTED),
    (S.APPROVED, S.CANARY),
    (S.CANARY, S.VALIDATING),
    (S.VALIDATING, S.ROLLING_OUT),
    (S.ROLLING_OUT, S.COMPLETED),
    (S.APPROVED, S.PAUSED),
    (S.CANARY, S.PAUSED),
    (S.VALIDATING, S.PAUSED),
    (S.ROLLING_OUT, S.PAUSED),
    (S.PAUSED, S.APPROVED),
    (S.PAUSED, S.CANARY),
    (S.PAUSED, S.VALIDATING),
    (S.PAUSED, S.ROLLING_OUT),
    (S.APPROVED, S.FAILED),
    (S.CANARY, S.FAILED),
    (S.VALIDATING, S.FAILED),
    (S.ROLLING_OUT, S.FAILED),
    (S.PAUSED, S.FAILED),
    (S.FAILED, S.ROLLED_BACK),
    # A rollback a person asked for is its own state, not a failure (issue 15 item 4).
    (S.APPROVED, S.ROLLING_BACK),
    (S.CANARY, S.ROLLING_BACK),
    (S.VALIDATING, S.ROLLING_BACK),
    (S.ROLLING_OUT, S.ROLLING_BACK),
    (S.PAUSED, S.ROLLING_BACK),
    (S.COMPLETED, S.ROLLING_BACK),
    (S.ROLLING_BACK, S.ROLLED_BACK),
}


def test_transition_table_is_exactly_the_documented_graph() -> None:
    actual = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert actual == EXPECTED_EDGES
    assert set(TRANSITIONS) == set(S)


@pytest.mark.parametrize(("a", "b"), sorted(itertools.product(S, S)))
def test_check_transition_allows_only_edges(a: S, b: S) -> None:
    if (a, b) in EXPECTED_EDGES:
        check_transition(a, b)
    else:
        with pytest.raises(IllegalTransition, match=f"cannot go from {a.value} to {b.value}"):
            check_transition(a, b)


def test_terminal_states_have_no_way_out_and_every_active_state_can_fail() -> None:
    for state in (S.REJECTED, S.ROLLED_BACK):
        assert TRANSITIONS[state] == frozenset()
    for state in ACTIVE_STATES - {S.FAILED, S.ROLLING_BACK}:
        assert S.FAILED in TRANSITIONS[state] and S.ROLLING_BACK in TRANSITIONS[state], state
    assert S.COMPLETED in TERMINAL_STATES


def test_second_approval_is_refused_with_a_reason() -> None:
    check_command("approve", S.PENDING_APPROVAL, 7)
    with pytest.raises(
        IllegalTransition, match=r"cannot approve rollout 7: it is APPROVED \(it was already approved\)"
    ):
        check_command("approve", S.APPROVED, 7)
    with pytest.raises(IllegalTransition, match="it is final"):
        check_command("reject", S.ROLLED_BACK, 7)


def test_commands_only_lead_along_edges() -> None:
    destinations = {
        "approve": S.APPROVED,
        "reject": S.REJECTED,
        "pause": S.PAUSED,
        "rollback": S.ROLLING_BACK,
    }
    for action, sources in COMMAND_FROM.items():
        if action == "resume":
            continue
        for source in sources:
            assert destinations[action] in TRANSITIONS[source], (action, source)


def test_resume_goes_back_except_past_an_undecided_validation() -> None:
    assert resume_target(S.CANARY, "manual") == S.CANARY
    assert resume_target(S.VALIDATING, "manual") == S.VALIDATING
    assert resume_target(S.VALIDATING, "inconclusive") == S.ROLLING_OUT
    assert resume_target(None, None) == S.APPROVED


def test_refusals_after_approval_say_what_happened() -> None:
    for state in (S.CANARY, S.COMPLETED, S.FAILED):
        with pytest.raises(IllegalTransition, match="already approved"):
            check_command("approve", state, 3)
    with pytest.raises(IllegalTransition, match="rollback. undoes it"):
        check_command("reject", S.ROLLING_OUT, 3)
    with pytest.raises(IllegalTransition, match="it is final"):
        check_command("approve", S.ROLLED_BACK, 3)
    with pytest.raises(IllegalTransition, match=r"resume needs PAUSED"):
        check_command("resume", S.CANARY, 3)


def test_a_refused_transition_lists_what_the_state_allows() -> None:
    with pytest.raises(IllegalTransition) as err:
        check_transition(S.CANARY, S.COMPLETED)
    assert str(err.value) == (
        "cannot go from CANARY to COMPLETED: CANARY allows FAILED, PAUSED, ROLLING_BACK, VALIDATING"
    )
    with pytest.raises(IllegalTransition) as err:
        check_transition(S.REJECTED, S.APPROVED)
    assert str(err.value) == "cannot go from REJECTED to APPROVED: REJECTED allows nothing (it is final)"


@pytest.mark.parametrize(
    ("action", "state", "message"),
    [
        ("reject", S.REJECTED, "cannot reject rollout 5: it is REJECTED (it was already rejected)"),
        (
            "rollback",
            S.ROLLED_BACK,
            "cannot rollback rollout 5: it is ROLLED_BACK (it was already rolled back)",
        ),
        ("rollback", S.FAILED, "cannot rollback rollout 5: it is FAILED (its rollback is already under way)"),
        ("approve", S.REJECTED, "cannot approve rollout 5: it is REJECTED (it is final)"),
        (
            "reject",
            S.CANARY,
            "cannot reject rollout 5: it is CANARY (it was already approved; `rollback` undoes it)",
        ),
        (
            "pause",
            S.PENDING_APPROVAL,
            "cannot pause rollout 5: it is PENDING_APPROVAL (pause needs APPROVED, CANARY, ROLLING_OUT, VALIDATING)",
        ),
    ],
)
def test_each_refusal_says_exactly_why(action: str, state: S, message: str) -> None:
    """The whole message, as the CLI and the TUI show it: each hint belongs to its own action and state."""
    with pytest.raises(IllegalTransition) as err:
        check_command(action, state, 5)  # type: ignore[arg-type]
    assert str(err.value) == message


@pytest.mark.parametrize("progress", ["restoring", "failed"])
@pytest.mark.parametrize("state", list(S))
def test_allowed_actions_are_exactly_what_apply_command_accepts(tmp_path, state: S, progress: str) -> None:
    """What a UI offers (`allowed_actions`) and what the daemon does (`apply_command`) agree in every state,
    including FAILED, whose rollback is refused while a restore runs and is a retry once a restore gave up."""
    from daemon.models import Rollout
    from daemon.rollouts import commands as cmd
    from daemon.rollouts.machine import ACTIONS
    from daemon.rollouts.repo import RolloutRepo
    from daemon.store import Store

    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    repo = RolloutRepo(store)
    for action in ACTIONS:
        row = Rollout(
            title="t",
            state=state.value,
            targets=["a"],
            changes=[{"param": "batch", "value": 8}],
            stage_detail={"progress": {"a": {"status": progress}}, "paused_from": "CANARY"},
        )
        row = store.merge(row)
        offered = action in cmd.allowed_actions(row)
        try:
            cmd.apply_command(repo, action, row.id, actor="t")
            accepted = True
        except IllegalTransition:
            accepted = False
        assert offered == accepted, f"{action} on {state.value} (restore {progress}): offered={offered}"
    store.close()


def test_a_second_rollback_says_the_first_is_under_way() -> None:
    """A person's rollback goes through ROLLING_BACK (issue 15 item 4); asking again while it runs is
    refused with what is happening, not a list of states (kills the survivors of `make mutation` on the
    ROLLING_BACK hint)."""
    for state in (S.ROLLING_BACK, S.FAILED):
        with pytest.raises(
            IllegalTransition,
            match=rf"^cannot rollback rollout 5: it is {state.value} \(its rollback is already under way\)$",
        ):
            check_command("rollback", state, 5)
