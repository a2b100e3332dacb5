"""The sync channel's anti-replay window across a peer restart (new epoch)."""

from __future__ import annotations

from gmpls.qkd.sync import ReplayWindow


def test_restarted_peer_starts_a_fresh_window() -> None:
    w = ReplayWindow()
    old = 5 << 32
    for i in range(1, 10):
        assert w.check(old + i)
        w.update(old + i)
    new = 9 << 32  # the peer restarted: its epoch moved the high 32 bits
    assert w.check(new + 1)
    w.update(new + 1)
    assert w.highest == new + 1
    assert w._bits == 1  # a fresh window, not a shift by ~2**34 bits
    assert not w.check(new + 1)  # replay of the newcomer's frame
    assert not w.check(old + 9)  # the old life's frames are out of the window
    assert w.check(new + 3)
    w.update(new + 3)
    assert w.check(new + 2)  # out of order within the window is still fine


def test_duplicate_and_too_old_rejected() -> None:
    w = ReplayWindow(size=64)
    for s in (1, 2, 3, 100):
        w.update(s)
    assert not w.check(100)
    assert not w.check(3)  # 97 behind: outside a 64-wide window
    assert w.check(99)
