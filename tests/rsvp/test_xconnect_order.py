"""The cross-connect worker (node_agent.xconnect) without a kernel: the jobs queued during
a burst go to the worker thread together, in order, and a job that fails is cleaned up
before the next one runs, as when they ran one at a time."""

from __future__ import annotations

import asyncio
import threading
from ipaddress import IPv4Address

from gmpls.rsvp import events as E
from node_agent.tcnl import TcOp
from node_agent.xconnect import CrossConnects

TN1 = IPv4Address("10.1.1.1")


def _lsp(n: int) -> E.LspKey:
    return E.LspKey(IPv4Address("10.1.1.5"), n, TN1, TN1, 1)


def _xc(n: int, src: tuple[int, int], dst: tuple[int, int]) -> E.CrossConnect:
    return E.CrossConnect(_lsp(n), "transit", E.Channel(*src), E.Channel(*dst), None, None)


class Kernel:
    """A runner that keeps which channels have a qdisc and a redirect, as the kernel
    would, and fails a redirect to a channel that does not exist or from one without a
    qdisc; it records every operation and the thread it ran in."""

    def __init__(self, missing: set[str]) -> None:
        self.missing = missing
        self.qdisc: set[str] = set()
        self.redirect: dict[str, str] = {}
        self.ops: list[str] = []
        self.threads: set[int] = set()
        self.runs = 0

    def run(self, ops: list[TcOp]) -> str | None:
        self.runs += 1
        if any(op.verb == "redirect" for op in ops):  # a job (not a clean-up)
            self.threads.add(threading.get_ident())
        for op in ops:
            self.ops.append(op.line())
            if op.verb == "del":
                self.qdisc.discard(op.dev)
                self.redirect.pop(op.dev, None)
            elif op.verb == "add":
                self.qdisc.add(op.dev)
            elif op.verb == "unredirect":
                self.redirect.pop(op.dev, None)
            elif op.to in self.missing or op.dev not in self.qdisc:
                return f"{op.what()}: no such device"
            else:
                self.redirect[op.dev] = op.to
        return None

    async def run_async(self, ops: list[TcOp]) -> str | None:
        return self.run(ops)

    def close(self) -> None:
        return None


def test_a_burst_runs_in_order_and_a_failure_is_cleaned_up_before_the_next_job() -> None:
    k = Kernel(missing={"te3l99"})
    failed: list[E.LspKey] = []

    async def main() -> CrossConnects:
        xc = CrossConnects("tn3", tc=k, on_failure=lambda lsp, _why: failed.append(lsp))
        await xc.start()
        xc.apply(_xc(1, (2, 1), (3, 99)))  # fails: te3l99 does not exist
        xc.apply(_xc(2, (2, 2), (3, 2)))
        xc.apply(_xc(3, (2, 1), (3, 1)))  # te2l1 again: its qdisc went with the failure
        for n in range(4, 40):
            xc.apply(_xc(n, (2, n), (3, n)))
        for _ in range(200):
            if xc.counters["xc_installed"] + xc.counters["xc_failures"] == 39:
                break
            await asyncio.sleep(0.01)
        await xc.stop()
        return xc

    xc = asyncio.run(main())
    # one at a time, the kernel sees: job 1 and the clean-up of its half-made qdisc,
    # then job 2, then job 3, which finds no qdisc on te2l1 and fails in turn
    assert k.ops[:9] == [
        "qdisc del dev te2l1 clsact",
        "qdisc add dev te2l1 clsact",
        "filter add dev te2l1 ingress protocol all prio 1 u32 match u32 0 0 "
        "action mirred egress redirect dev te3l99",
        "qdisc del dev te2l1 clsact",
        "qdisc del dev te2l2 clsact",
        "qdisc add dev te2l2 clsact",
        "filter add dev te2l2 ingress protocol all prio 1 u32 match u32 0 0 "
        "action mirred egress redirect dev te3l2",
        "filter del dev te2l1 ingress protocol all prio 1",
        "filter add dev te2l1 ingress protocol all prio 1 u32 match u32 0 0 "
        "action mirred egress redirect dev te3l1",
    ]
    assert failed == [_lsp(1), _lsp(3)] and xc.counters["xc_installed"] == 37
    assert threading.get_ident() not in k.threads  # no job on the event loop's thread
    # the 39 jobs, the two clean-ups, and at stop the 37 removals and the qdiscs
    assert k.runs == 39 + 2 + 37 + 1 and not k.redirect and not k.qdisc
