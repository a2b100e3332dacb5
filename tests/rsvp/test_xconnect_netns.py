"""The node agent's cross-connects in the kernel (node_agent/xconnect.py) on a namespace of
their own with three channels: a bidirectional transit cross-connect becomes two tc
redirects, frames follow them, removal takes the redirects off (the channel's clsact qdisc
stays for the next one), stop leaves no clsact qdisc, a missing channel is a failure
counted and reported with its cause, and head/tail ones go to the data plane.
Each test runs with both ways of installing them: rtnetlink from the daemon's namespace
(node_agent/tcnl.py, what the node agent uses) and the ``tc`` command. Needs root (netns
marker)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest

from compose import nsutil
from daemonkit import netns
from gmpls.rsvp import events as E
from node_agent.tcnl import NetlinkTc
from node_agent.xconnect import CrossConnects, Runner, TcRules

pytestmark = pytest.mark.netns

NS = "xcx-node"
LSP = E.LspKey(IPv4Address("10.1.1.5"), 1, IPv4Address("10.1.1.1"), IPv4Address("10.1.1.1"), 1)
C = E.Channel
#: tn3 of the paper: link 2 toward tn2, link 3 toward tn4
XC = E.CrossConnect(LSP, "transit", C(2, 1), C(3, 1), C(3, 2), C(2, 2))


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=30)


@pytest.fixture(scope="module")
def ns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    sh("ip", "netns", "del", NS, check=False)
    sh("ip", "netns", "add", NS)
    try:
        # te2l1 <-> te3l1 and te2l2 <-> te3l2 are the two ends of veth pairs inside one
        # namespace, standing in for the channels toward tn2 and tn4
        for lam in (1, 2):
            sh("ip", "-n", NS, "link", "add", f"te2l{lam}", "type", "veth", "peer", f"x2l{lam}")
            sh("ip", "-n", NS, "link", "add", f"te3l{lam}", "type", "veth", "peer", f"x3l{lam}")
        for i in ("te2l1", "te2l2", "te3l1", "te3l2", "x2l1", "x2l2", "x3l1", "x3l2"):
            sh("ip", "-n", NS, "link", "set", i, "up")
        yield NS
    finally:
        sh("ip", "netns", "del", NS, check=False)


@pytest.fixture(params=["netlink", "tc"])
def runner(request: pytest.FixtureRequest, ns: str) -> Iterator[Runner]:
    """The runner of the test; with rtnetlink the test runs as a daemon of namespace NS
    (:mod:`daemonkit.netns`: the runner makes its socket there)."""
    if request.param == "tc":
        yield TcRules(("ip", "netns", "exec", ns, "tc"))
        return
    token = netns.NETNS.set(ns)
    try:
        yield NetlinkTc()
    finally:
        netns.NETNS.reset(token)


def _redirect_of(ifname: str) -> str | None:
    r = sh("ip", "netns", "exec", NS, "tc", "-j", "filter", "show", "dev", ifname, "ingress")
    for f in json.loads(r.stdout or "[]"):
        for a in f.get("options", {}).get("actions", []):
            return str(a["to_dev"])
    return None


def _clsact(ifname: str) -> bool:
    return "clsact" in sh("ip", "netns", "exec", NS, "tc", "qdisc", "show", "dev", ifname).stdout


def test_transit_cross_connect_installed_and_removed_without_a_loop(runner: Runner) -> None:
    xc = CrossConnects("tn3", ["te2l1", "te2l2", "te3l1", "te3l2"], tc=runner)
    xc.apply(XC)
    assert _redirect_of("te2l1") == "te3l1" and _redirect_of("te3l2") == "te2l2"
    assert xc.table() == {
        str(LSP): {
            "role": "transit",
            "installed": "tc",
            "fwd": {"in": "te2l1", "out": "te3l1"},
            "rev": {"in": "te3l2", "out": "te2l2"},
        }
    }
    # frames follow the redirect: those sent into x2l1 arrive on te2l1 and leave on te3l1,
    # so its peer x3l1 counts them as received
    before = _rx_packets("x3l1")
    with nsutil.socket_in(NS, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)) as tx:
        tx.bind(("x2l1", 0))
        frame = b"\xff" * 6 + b"\x02" + b"\x00" * 5 + b"\x88\xb5" + b"marker" * 10
        for _ in range(5):
            tx.send(frame)
    assert _rx_packets("x3l1") >= before + 5
    xc.apply(E.CrossConnectRemoved(LSP))
    assert _redirect_of("te2l1") is None and _redirect_of("te3l2") is None
    assert _clsact("te2l1") and _clsact("te3l2")  # kept for the next cross-connect
    # the next one on the same channel: its filter only, and one filter (not two)
    other = E.LspKey(LSP.tunnel_end, 2, LSP.ext_tunnel_id, LSP.sender, 1)
    xc.apply(E.CrossConnect(other, "transit", C(2, 1), C(3, 2), None, None))
    assert _redirect_of("te2l1") == "te3l2" and _filters("te2l1") == 1
    xc.apply(E.CrossConnect(other, "transit", C(2, 1), C(3, 1), None, None))  # replaced
    assert _redirect_of("te2l1") == "te3l1" and _filters("te2l1") == 1
    xc.apply(E.CrossConnectRemoved(other))
    assert _redirect_of("te2l1") is None
    assert xc.counters == {"xc_installed": 3, "xc_removed": 3, "xc_failures": 0}
    asyncio.run(xc.stop())
    assert not _clsact("te2l1") and not _clsact("te3l2")


def _filters(ifname: str) -> int:
    r = sh("ip", "netns", "exec", NS, "tc", "-j", "filter", "show", "dev", ifname, "ingress")
    return sum(1 for f in json.loads(r.stdout or "[]") if f.get("options", {}).get("actions"))


def _rx_packets(ifname: str) -> int:
    r = sh("ip", "-n", NS, "-j", "-s", "link", "show", ifname)
    return int(json.loads(r.stdout)[0]["stats64"]["rx"]["packets"])


def test_a_missing_channel_is_a_failure_with_its_cause(runner: Runner) -> None:
    failures: list[tuple[E.LspKey, str]] = []
    xc = CrossConnects("tn3", tc=runner, on_failure=lambda k, why: failures.append((k, why)))
    bad = E.CrossConnect(LSP, "transit", C(2, 1), C(3, 7), None, None)
    xc.apply(bad)
    ((lsp, why),) = failures
    assert lsp == LSP and "te3l7" in why and why.startswith("tc filter")
    assert xc.counters["xc_failures"] == 1 and xc.table() == {}
    assert not _clsact("te2l1")  # what was half made is gone


def test_in_the_event_loop_start_sweeps_and_stop_removes(runner: Runner) -> None:
    attached: list[object] = []

    class Plane:
        def attach(self, cc: E.CrossConnect) -> None:
            attached.append(cc)

        def detach(self, lsp: E.LspKey) -> None:
            attached.append(lsp)

    async def run() -> None:
        sh("ip", "netns", "exec", NS, "tc", "qdisc", "add", "dev", "te3l1", "clsact")
        xc = CrossConnects("tn3", ["te2l1", "te3l1"], tc=runner, dataplane=Plane())
        await xc.start()
        assert not _clsact("te3l1")  # left by an earlier run: swept
        xc.apply(XC)
        other = E.LspKey(LSP.tunnel_end, 2, LSP.ext_tunnel_id, LSP.sender, 1)
        head = E.CrossConnect(other, "head", None, C(3, 2), None, None)
        xc.apply(head)
        assert attached == [head]
        for _ in range(200):  # the tc job runs in a task
            if xc.counters["xc_installed"] == 2:
                break
            await asyncio.sleep(0.05)
        assert _redirect_of("te2l1") == "te3l1"
        await xc.stop()
        assert not _clsact("te2l1") and not _clsact("te3l2")
        assert attached[-1] == head.lsp and xc.table() == {}

    asyncio.run(run())
