"""The life cycle as pure functions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ptx_chain_node.coordination.states import (
    ALLOWED,
    CollabState,
    Facts,
    InvalidTransition,
    next_state,
    transition,
)

S = CollabState


def facts(**kw: object) -> Facts:
    base = {
        "expected": 3,
        "min_parties": 3,
        "allow_partial_run": False,
        "confirmed": 0,
        "approved": 0,
        "outputs": 1,
        "deadline": None,
    }
    base.update(kw)
    return Facts(**base)  # type: ignore[arg-type]


def test_transitions_follow_the_life_cycle() -> None:
    assert transition(S.OPEN, S.READY) is S.READY
    assert transition(S.READY, S.RUNNING) is S.RUNNING
    assert transition(S.RUNNING, S.DONE) is S.DONE
    for terminal in (S.DONE, S.FAILED, S.EXPIRED):
        for target in S:
            with pytest.raises(InvalidTransition) as info:
                transition(terminal, target)
            assert info.value.status == 409
    with pytest.raises(InvalidTransition):
        transition(S.OPEN, S.RUNNING)  # only through ready
    with pytest.raises(InvalidTransition):
        transition(S.RUNNING, S.OPEN)


def test_next_state_decisions() -> None:
    assert next_state(S.OPEN, facts(confirmed=2, approved=2), 0) is S.OPEN
    assert next_state(S.OPEN, facts(confirmed=3, approved=3), 0) is S.READY
    assert next_state(S.READY, facts(confirmed=3, approved=3), 0) is S.RUNNING
    assert next_state(S.READY, facts(confirmed=3, approved=2), 0) is S.READY  # approval missing
    assert next_state(S.READY, facts(confirmed=3, approved=3, outputs=0), 0) is S.READY
    assert next_state(S.READY, facts(confirmed=2, approved=2), 0) is S.OPEN  # a withdrawal
    late = facts(confirmed=2, approved=2, deadline=10.0)
    assert next_state(S.OPEN, late, 9.0) is S.OPEN
    assert next_state(S.OPEN, late, 10.0) is S.EXPIRED
    partial = facts(confirmed=2, approved=2, deadline=10.0, allow_partial_run=True, min_parties=2)
    assert next_state(S.OPEN, partial, 10.0) is S.READY
    assert next_state(S.READY, partial, 10.0) is S.RUNNING
    assert next_state(S.OPEN, facts(**{**partial.__dict__, "approved": 1}), 10.0) is S.EXPIRED
    assert next_state(S.RUNNING, facts(confirmed=3, approved=3, deadline=1.0), 99.0) is S.RUNNING


@given(
    state=st.sampled_from(list(S)),
    confirmed=st.integers(0, 5),
    approved=st.integers(0, 5),
    outputs=st.integers(0, 2),
    partial=st.booleans(),
    deadline=st.one_of(st.none(), st.floats(0, 20)),
    now=st.floats(0, 20),
)
def test_next_state_only_takes_allowed_steps(
    state: CollabState,
    confirmed: int,
    approved: int,
    outputs: int,
    partial: bool,
    deadline: float | None,
    now: float,
) -> None:
    f = facts(
        confirmed=confirmed,
        approved=min(approved, confirmed),
        outputs=outputs,
        allow_partial_run=partial,
        min_parties=2,
        deadline=deadline,
    )
    target = next_state(state, f, now)
    assert target is state or target in ALLOWED[state]
    if target is S.RUNNING and state is not S.RUNNING:
        assert outputs > 0
        assert f.approved >= (2 if partial else 3)
