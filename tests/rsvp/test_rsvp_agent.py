"""node_agent/rsvp.py on real raw IP protocol 46 sockets: five agents on the loopback
addresses 127.0.1.1..5 (traffic never leaves the host), the paper chain of TE links, the
Fig. 9 ERO; a capture of the loopback read by tshark shows the Path/Resv ladder.

Needs root (raw sockets), hence the ``netns`` marker; tshark for the capture check.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from gmpls.rsvp import events as E
from gmpls.rsvp import examples as ex
from gmpls.rsvp.core import RsvpCore
from gmpls.topology import LocalTeLink
from node_agent.rsvp import RsvpAgent, _ipv4_payload
from tests.support import captures

pytestmark = pytest.mark.netns

LINKS = [("tn1", 1, "tn2", 2), ("tn2", 1, "tn3", 2), ("tn3", 3, "tn4", 2), ("tn4", 3, "tn5", 1)]
LAMBDAS = tuple(range(1, 9))


def ctrl(name: str) -> IPv4Address:
    return IPv4Address(f"127.0.1.{name[2:]}")


def rid(name: str) -> IPv4Address:
    return IPv4Address(f"10.1.1.{name[2:]}")


def te_links(name: str) -> list[LocalTeLink]:
    out = []
    for a, ai, b, bi in LINKS:
        for here, hi, there, ti in ((a, ai, b, bi), (b, bi, a, ai)):
            if here == name:
                out.append(LocalTeLink(hi, there, rid(there), ti, ctrl(there), 10, 1e5, LAMBDAS))
    return out


class Node:
    def __init__(self, name: str) -> None:
        self.name = name
        self.actions: list[E.Action] = []
        self.changed = asyncio.Event()
        core = RsvpCore(rid(name), ctrl(name), te_links(name), hello_ms=200, name=name)
        self.agent = RsvpAgent(core, on_action=self.on_action)

    def on_action(self, a: E.Action) -> None:
        self.actions.append(a)
        self.changed.set()
        loop = asyncio.get_running_loop()
        if isinstance(a, E.NeedQeSession):
            loop.call_soon(self.agent.feed, E.QeSessionReady(a.lsp, b"\x5a" * 64))
        elif isinstance(a, E.QeJoin):
            loop.call_soon(self.agent.feed, E.QeSessionReady(a.lsp, a.key_handle))

    async def wait_for(self, kind: type, timeout: float = 10.0) -> E.Action:
        async def _wait() -> E.Action:
            while True:
                for a in self.actions:
                    if isinstance(a, kind):
                        return a
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(_wait(), timeout)


@pytest.fixture
async def nodes() -> AsyncIterator[dict[str, Node]]:
    assert os.geteuid() == 0, "raw sockets need root"
    ns = {f"tn{i}": Node(f"tn{i}") for i in range(1, 6)}
    try:
        for n in ns.values():
            await n.agent.start()
        yield ns
    finally:
        for n in ns.values():
            await n.agent.stop(teardown=False)


@pytest.fixture
def capture(tmp_path: Path) -> Iterator[Path]:
    tcpdump = shutil.which("tcpdump")
    assert tcpdump, "tcpdump is required (make setup installs it)"
    pcap = tmp_path / "lo.pcap"
    proc = subprocess.Popen(
        [
            tcpdump,
            "-i",
            "lo",
            "--immediate-mode",
            "-U",
            "-w",
            str(pcap),
            "ip proto 46 and net 127.0.1.0/24",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        proc.stderr.readline()  # "listening on lo ..." once it captures
        yield pcap
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def _captured(pcap: Path, src: IPv4Address, dst: IPv4Address, msg: int) -> None:
    """Wait (up to 10 s) until ``pcap`` holds an RSVP message of type ``msg`` from ``src``
    to ``dst``."""
    for _ in range(200):
        if any(
            p.proto == 46 and p.src == src and p.dst == dst and p.payload[1:2] == bytes([msg])
            for p in captures.packets(pcap)
        ):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no RSVP message {msg} from {src} to {dst} in {pcap}")


async def test_paper_lsp_over_raw_sockets(nodes: dict[str, Node], capture: Path) -> None:
    head, tail = nodes["tn1"], nodes["tn5"]
    await nodes["tn2"].wait_for(E.NeighborUp)
    head.agent.create_lsp(1, ex.fig9_ero(), None, 10e9)
    up = await head.wait_for(E.LspUp)
    assert isinstance(up, E.LspUp) and len(up.route) == 8
    join = await tail.wait_for(E.QeJoin)
    assert isinstance(join, E.QeJoin) and join.key_handle == b"\x5a" * 64
    for name in ("tn2", "tn3", "tn4"):
        assert nodes[name].agent.core.lsp_table()[0]["state"] == "up"
    head.agent.delete_lsp(1)
    await tail.wait_for(E.LspDown)
    await tail.wait_for(E.QeClose)
    for n in nodes.values():
        assert not n.agent.core.psbs
        for link in te_links(n.name):
            assert n.agent.core.free_lambdas(link.local_if) == LAMBDAS
    status = nodes["tn3"].agent.status()
    neighbors = status["neighbors"]
    assert isinstance(neighbors, list)
    assert {x["address"] for x in neighbors} == {"127.0.1.2", "127.0.1.4"}
    assert all(x["up"] for x in neighbors)
    # the tail saw the last PathTear; wait until tcpdump has written it too (a loaded
    # machine may take longer than any fixed pause)
    await _captured(capture, IPv4Address("127.0.1.4"), IPv4Address("127.0.1.5"), 5)
    tshark = shutil.which("tshark")
    assert tshark
    out = subprocess.run(
        [
            tshark,
            "-r",
            str(capture),
            "-Y",
            "rsvp.msg != 20",  # no Hellos
            "-T",
            "fields",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "rsvp.msg",
            "-e",
            "_ws.malformed",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    rows = [tuple(line.split("\t")[:3]) for line in out if line]
    # every trigger message was acknowledged (RFC 2961 MESSAGE_ID_ACK), hop by hop
    acks = [r for r in rows if r[2] == "13"]
    ladder = [r for r in rows if r[2] != "13"]
    # (an Ack may cover several MESSAGE_IDs and a slow Ack causes one retransmission, so
    # directions are compared, and a retransmitted trigger counts once in the ladder)
    assert {(a[1], a[0]) for a in acks} == {r[:2] for r in ladder}
    ladder = list(dict.fromkeys(ladder))
    chain = [f"127.0.1.{i}" for i in range(1, 6)]
    path = [(chain[i], chain[i + 1], "1") for i in range(4)]
    resv = [(chain[i + 1], chain[i], "2") for i in range(3, -1, -1)]
    tear = [(chain[i], chain[i + 1], "5") for i in range(4)]
    assert ladder == path + resv + tear
    assert all(line.split("\t")[3] == "" for line in out if line)


def test_ipv4_payload_parser() -> None:
    assert _ipv4_payload(b"") is None
    assert _ipv4_payload(b"\x60" + bytes(39)) is None  # IPv6
    hdr = bytes([0x45, 0, 0, 24]) + bytes(5) + bytes([46]) + bytes(2)
    pkt = hdr + IPv4Address("1.2.3.4").packed + IPv4Address("5.6.7.8").packed + b"abcd"
    assert _ipv4_payload(pkt) == (IPv4Address("1.2.3.4"), IPv4Address("5.6.7.8"), b"abcd")
    assert _ipv4_payload(pkt[:9] + b"\x59" + pkt[10:]) is None  # OSPF
