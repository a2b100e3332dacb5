"""The log-line budget of dropped input (gmpls.ratelimit), its logging side
(daemonkit.ratelog) and the RSVP core that uses it, on a virtual clock."""

from __future__ import annotations

import logging
from ipaddress import IPv4Address

import pytest

from daemonkit.ratelog import SUPPRESSED, RateLimitedLog
from gmpls.ratelimit import LogLimiter
from gmpls.rsvp import events as E
from gmpls.rsvp.core import RsvpCore


def test_burst_then_rate_and_every_line_held_back_is_reported() -> None:
    lim = LogLimiter(rate=2.0, burst=5, interval=10.0)
    written = [lim.admit("malformed", 0.0) for _ in range(3000)]  # a flood at one instant
    assert written[:5] == [0] * 5 and written[5:] == [None] * 2995
    assert lim.next_timer() == 10.0 and lim.summaries(9.9) == []
    assert lim.admit("malformed", 0.5) == 2995  # one token back: the line says how many
    assert lim.admit("other", 0.5) == 0  # each reason has its own bucket
    assert lim.admit("malformed", 0.5) is None
    assert lim.summaries(10.5) == [("malformed", 1)] and lim.next_timer() is None
    assert lim.admit("malformed", 100.0) == 0  # refilled, nothing pending


def test_flush_reports_what_is_left() -> None:
    lim = LogLimiter(rate=1.0, burst=1)
    assert [lim.admit("x", 0.0) for _ in range(4)] == [0, None, None, None]
    assert lim.flush() == [("x", 3)] and lim.flush() == []


@pytest.mark.parametrize("bad", [(0.0, 1, 1.0), (1.0, 0, 1.0), (1.0, 1, 0.0)])
def test_bad_parameters(bad: tuple[float, int, float]) -> None:
    with pytest.raises(ValueError):
        LogLimiter(*bad)


def test_rate_limited_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    logger = logging.getLogger("test.ratelog")
    rl = RateLimitedLog(logger, {"host": "h"}, LogLimiter(1.0, 3, 5.0), clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="test.ratelog"):
        for i in range(3000):
            rl.log(logging.INFO, "malformed request", {"n": i})
        now[0] = 1.0  # one token back
        rl.log(logging.INFO, "malformed request", {"n": -1})
        rl.log(logging.INFO, "malformed request", {"n": -2})
        rl.close()
    recs = caplog.records
    assert [r.getMessage() for r in recs] == ["malformed request"] * 4 + [SUPPRESSED]
    fields = [vars(r) for r in recs]
    assert fields[3]["suppressed"] == 2997 and fields[3]["host"] == "h"
    assert fields[4]["reason"] == "malformed request" and fields[4]["suppressed"] == 1


def test_rsvp_core_logs_malformed_messages_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    a = IPv4Address("10.0.0.1")
    core = RsvpCore(a, a, [])
    with caplog.at_level(logging.INFO, logger="gmpls.rsvp.core"):
        for i in range(3000):  # one second of garbage: version 1, then nonsense
            core.handle(E.Received(IPv4Address("10.9.9.9"), b"\x10\x01" + bytes(6)), i / 3000)
    lines = [r for r in caplog.records if "bad RSVP message" in r.getMessage()]
    assert core.stats["rx_errors"] == 3000
    assert 20 <= len(lines) <= 20 + 2 * 1 + 1  # the burst, then 2 a second
