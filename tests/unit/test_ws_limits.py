"""The per-connection limits on websocket actions (hubbub/realtime/limits.py), with the time
passed in."""

from __future__ import annotations

from hubbub.realtime.limits import TYPING_BURST, ActionBudget, TypingGate, Verdict


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


def test_typing_passes_a_burst_then_one_per_interval() -> None:
    gate = TypingGate(1.25)
    assert [gate.allow(100.0) for _ in range(TYPING_BURST + 2)] == [True] * TYPING_BURST + [
        False,
        False,
    ]
    assert not gate.allow(101.0)
    assert gate.allow(101.3)  # 1.3 s later: one more
    assert not gate.allow(101.4)
    assert [gate.allow(1000.0) for _ in range(TYPING_BURST + 1)] == [True] * TYPING_BURST + [False]


def test_typing_as_the_clients_send_it_always_passes() -> None:
    # One every 3 s while typing, and one right after each post (every 5 s here, for 5 min).
    gate = TypingGate(1.25)
    times = sorted([i * 3.0 for i in range(100)] + [i * 5.0 + 0.1 for i in range(60)])
    assert all(gate.allow(t) for t in times)


def test_zero_interval_lets_every_typing_through() -> None:
    off = TypingGate(0)
    assert all(off.allow(0.0) for _ in range(100))
