"""The per-connection limits on websocket actions (hubbub/realtime/limits.py), with the time
passed in."""

from __future__ import annotations

from hubbub.realtime.limits import TYPING_KEYS, ActionBudget, TypingGate, Verdict


def test_budget_allows_a_burst_then_refuses_then_closes_a_client_that_goes_on() -> None:
    budget = ActionBudget(0.0, rate=10, burst=5)
    assert [budget.take(0.0) for _ in range(5)] == [Verdict.RUN] * 5
    assert [budget.take(0.0) for _ in range(5)] == [Verdict.REFUSE] * 5
    assert budget.take(0.0) is Verdict.CLOSE


def test_budget_refills_at_its_rate_and_a_pause_forgives() -> None:
    budget = ActionBudget(0.0, rate=10, burst=5)
    for _ in range(5):
        budget.take(0.0)
    assert budget.take(0.0) is Verdict.REFUSE
    assert budget.take(0.1) is Verdict.RUN  # one token after 100 ms
    assert budget.take(0.1) is Verdict.REFUSE
    assert budget.refused == 1
    assert [budget.take(10.0) for _ in range(5)] == [Verdict.RUN] * 5  # capped at the burst
    assert budget.take(10.0) is Verdict.REFUSE


def test_a_steady_client_under_the_rate_is_never_refused() -> None:
    budget = ActionBudget(0.0, rate=10, burst=5)
    assert all(budget.take(i * 0.1) is Verdict.RUN for i in range(1000))


def test_typing_is_coalesced_per_channel_and_thread() -> None:
    gate = TypingGate(2.5)
    assert gate.allow("c1", "", 0.0)
    assert not gate.allow("c1", "", 1.0)
    assert gate.allow("c1", "root", 1.0)
    assert gate.allow("c2", "", 1.0)
    assert gate.allow("c1", "", 2.5)


def test_typing_gate_memory_is_bounded_and_zero_disables_it() -> None:
    gate = TypingGate(2.5)
    for i in range(10 * TYPING_KEYS):
        assert gate.allow(f"c{i}", "", 0.0)
    assert gate._last is not None and len(gate._last) == TYPING_KEYS
    off = TypingGate(0)
    assert all(off.allow("c", "", 0.0) for _ in range(10))
