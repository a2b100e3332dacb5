"""gmpls/deadlines.py: the heap of the cores' per-key timers, against a scan of every key
on random schedules (deadlines set, moved earlier and later, keys gone)."""

from __future__ import annotations

import random

from gmpls.deadlines import Deadlines


def test_moved_later_and_gone_keys_need_no_bookkeeping() -> None:
    when: dict[str, float | None] = {"a": 5.0, "b": 3.0}
    d = Deadlines(when.get)
    d.enter("a")
    d.enter("b")
    assert d.top() == 3.0 and len(d) == 2
    when["b"] = 9.0  # moved later: not entered again
    assert d.top() == 5.0
    when["a"] = None  # gone
    assert d.top() == 9.0 and len(d) == 1
    when["b"] = 1.0  # moved earlier: entered again
    d.enter("b")
    assert d.pop_due(0.5) == [] and d.pop_due(1.0) == ["b"] and d.top() is None
    d.enter("b")
    d.forget("b")
    assert d.top() is None and len(d) == 0


def test_the_same_as_a_scan_of_every_key() -> None:
    rng = random.Random(17)
    when: dict[int, float | None] = {}
    d = Deadlines(when.get)
    now = 0.0
    for _ in range(3000):
        k = rng.randrange(40)
        old = when.get(k)
        op = rng.random()
        if op < 0.5:
            when[k] = now + rng.uniform(0, 10)
            if old is None or when[k] < old:  # the owner's rule: enter when earlier
                d.enter(k)
        elif op < 0.6:
            when[k] = None
        else:
            now += rng.uniform(0, 1)
            due = d.pop_due(now)
            expect = sorted(k for k, t in when.items() if t is not None and t <= now)
            assert sorted(due) == expect
            for k in due:  # their timers ran: each gets a later one, or none
                when[k] = now + rng.uniform(0.1, 5) if rng.random() < 0.5 else None
                d.enter(k)
        live = [t for t in when.values() if t is not None]
        assert d.top() == (min(live) if live else None)
