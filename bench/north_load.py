"""The proxy's northbound side under load, in memory (docs/etsi004.md#waiting-calls).

Run: ``.venv/bin/python bench/north_load.py [--quick]``. Two proxy cores and two IDQ3P
emulators wired on the virtual clock of the tests (tests/support/qkd_net.py); times are
the CPU spent inside ``ProxyCore.handle`` (wall clock, this machine). Prints:

* the cost of one QKD_GET_KEY with no waiting call, and with 30,000 QKD_CONNECT_BLOCKINGs
  waiting on the same proxy (waiters in one deadline heap: the figure should not grow);
* the memory still held after an OPEN flood from 100,000 addresses the proxy does not
  serve, and after a flood of OPENs from the served node itself (bounded by the
  per-client session limit and response cache): Python allocations (tracemalloc) of both
  proxies and both emulators, and the process's resident size (VmRSS) at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from ipaddress import IPv4Address
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gmpls.qkd import etsi004 as etsi
from qkd_proxy.core import ProxyCore
from qkd_proxy.events import Channel, Datagram, Event
from tests.support.qkd_net import TN1_QA, TN5, Net

A1 = (TN1_QA, 1000)


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Timed:
    """Wraps a core's ``handle`` to record the time each GET_KEY datagram takes in it."""

    def __init__(self, core: ProxyCore) -> None:
        self.core = core
        self.inner = core.handle
        self.get_key: list[float] = []
        core.handle = self  # type: ignore[method-assign]

    def __call__(self, ev: Event, now: float) -> list:
        t0 = time.perf_counter()
        out = self.inner(ev, now)
        dt = time.perf_counter() - t0
        if (
            isinstance(ev, Datagram)
            and ev.channel is Channel.NORTH
            and ev.data[1:2] == bytes([etsi.MsgType.GET_KEY])
        ):
            self.get_key.append(dt)
        return out


def _open(net: Net) -> bytes:
    r = net.call("A", A1, etsi.Open(net.rng.randrange(1 << 31), TN5, etsi.QoS(32)))
    assert isinstance(r, etsi.OpenReply) and r.status == etsi.Status.SUCCESSFUL, r
    return r.key_handle


def get_key_cost(waiters: int, gets: int) -> tuple[float, float]:
    """(median, p99) µs of one GET_KEY inside the core with ``waiters`` blocked CONNECTs."""
    net = Net()
    h = _open(net)
    blocked = _open(net)  # never joined: its CONNECT_BLOCKINGs wait
    for i in range(waiters):
        net.sae_send("A", A1, etsi.ConnectBlocking(1_000_000 + i, blocked, 25_000))
    net.sim.run(0.01)
    core = net.proxy["A"]
    assert len(core.pending_north) == waiters
    for i in range(200):  # warm-up: the pool filled, the first blocks bound
        net.call("A", A1, etsi.GetKey(2_000_000 + i, h))
    timed = Timed(core)
    for i in range(gets):
        net.sae_send("A", A1, etsi.GetKey(3_000_000 + i, h))
        if i % 50 == 49:
            net.sim.run(0.002)
    net.sim.run(0.5)
    t = sorted(timed.get_key)
    return statistics.median(t) * 1e6, t[int(len(t) * 0.99) - 1] * 1e6


def held_kib(before: int) -> int:
    return (tracemalloc.get_traced_memory()[0] - before) // 1024


def stranger_flood(n: int) -> dict[str, int]:
    tracemalloc.start()
    core = Net().proxy["A"]
    first = IPv4Address("10.200.0.0")
    before = tracemalloc.get_traced_memory()[0]
    for i in range(n):
        data = etsi.encode(etsi.Open(i, TN5, etsi.QoS(32)))
        core.handle(Datagram(Channel.NORTH, data, (str(first + i), 5424)), i * 1e-5)
    held = held_kib(before)
    tracemalloc.stop()
    return {
        "opens": n,
        "held_kib": held,
        "sessions": len(core.sessions),
        "cached_answers": len(core.cache),
        "refused": core.counters["refused"],
    }


def served_flood(n: int) -> dict[str, int]:
    tracemalloc.start()
    net = Net()
    core = net.proxy["A"]
    before = tracemalloc.get_traced_memory()[0]
    for i in range(n):
        net.sae_send("A", (TN1_QA, 1000 + i % 50), etsi.Open(i, TN5, etsi.QoS(32)))
        if i % 200 == 199:
            net.sim.run(0.01)
            net.wire.clear()  # the harness's own records: not the proxy's memory
            net.inbox.clear()
            net.logs.clear()
    net.sim.run(1.0)
    net.wire.clear()
    net.inbox.clear()
    net.logs.clear()
    held = held_kib(before)
    tracemalloc.stop()
    keys = sum(s.bound_upto for s in core.sessions.values())
    return {
        "opens": n,
        "held_kib": held,
        "sessions": len(core.sessions),
        "session_limit": core.counters.get("session_limit", 0),
        "cached_answers": len(core.cache),
        "keys_bound": keys,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller counts")
    a = ap.parse_args()
    waiters = 3_000 if a.quick else 30_000
    gets = 1_000 if a.quick else 5_000
    print("GET_KEY inside ProxyCore.handle (µs, median / p99):")
    for w in (0, waiters):
        med, p99 = get_key_cost(w, gets)
        print(f"  {w:>6} blocked CONNECT_BLOCKING waiters: {med:8.1f} / {p99:8.1f}")
    flood = 10_000 if a.quick else 100_000
    print(f"OPEN flood from {flood:,} addresses the proxy does not serve:")
    print("  " + ", ".join(f"{k} {v:,}" for k, v in stranger_flood(flood).items()))
    n = 2_000 if a.quick else 20_000
    print(f"OPEN flood of {n:,} from the served node's address:")
    print("  " + ", ".join(f"{k} {v:,}" for k, v in served_flood(n).items()))
    print(f"VmRSS at the end: {rss_kib():,} KiB")


if __name__ == "__main__":
    main()
