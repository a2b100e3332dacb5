"""The data-plane shell (node_agent/dataplane.py) in one event loop, its raw sockets
replaced by socket pairs (the ``opener`` seam): a head and a tail wired back to back, fed
keys as the QE service feeds them and cross-connects as RSVP gives them. No namespace:
the fast tier covers the shell; tests/dataplane/test_dataplane_pair_netns.py runs it on
AF_PACKET sockets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

import pytest

from gmpls.dataplane.frame import ETHERTYPE, HEADER_LEN, decode_header
from gmpls.qe_service import events as QE
from gmpls.rsvp.events import LspKey
from node_agent.dataplane import ETH_P_ALL, Dataplane

TN1, TN5 = IPv4Address("10.1.1.1"), IPv4Address("10.1.1.5")
LSP = LspKey(TN5, 1, TN1, TN1, 1)
KEY0, KEY1 = bytes(range(32)), bytes(range(1, 33))
FRAME = bytes.fromhex("0200000000020200000000010800") + b"qkdnet-marker" * 20


@dataclass(frozen=True)
class Ch:
    local_if: int
    lam: int


@dataclass(frozen=True)
class Cc:
    lsp: Any
    role: str
    fwd_in: Ch | None
    fwd_out: Ch | None
    rev_in: Ch | None
    rev_out: Ch | None


def pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    for s in (a, b):
        s.setblocking(False)
    return a, b


class Wire:
    """ha = [access] head [te1l1 fwd, te1l2 rev] tail [access] = hb."""

    def __init__(self) -> None:
        self.ha, self.head_access = pair()
        self.hb, self.tail_access = pair()
        self.fwd = pair()  # head's te1l1 -> tail's te1l1
        self.rev = pair()  # tail's te1l2 -> head's te1l2
        self.taps: list[bytes] = []

    def opener(self, role: str) -> Callable[..., socket.socket]:
        table = {
            "head": {("access", ETH_P_ALL): self.head_access, ("access", 0): self.head_access,
                     ("te1l1", 0): self.fwd[0], ("te1l2", ETHERTYPE): self.rev[1]},
            "tail": {("access", ETH_P_ALL): self.tail_access, ("access", 0): self.tail_access,
                     ("te1l1", ETHERTYPE): self.fwd[1], ("te1l2", 0): self.rev[0]},
        }[role]  # fmt: skip

        def opener(ifname: str, proto: int, promisc: bool = False) -> socket.socket:
            return table[(ifname, proto)]

        return opener


async def recv(s: socket.socket, timeout: float = 5.0) -> bytes:
    loop = asyncio.get_running_loop()
    return await asyncio.wait_for(loop.sock_recv(s, 65535), timeout)


@pytest.fixture
async def wired() -> tuple[Wire, Dataplane, Dataplane, dict[str, int]]:
    w = Wire()
    traffic: dict[str, int] = {"head": 0, "tail": 0}

    def count(role: str) -> Callable[[str, int], None]:
        return lambda sid, n: traffic.__setitem__(role, traffic[role] + n)

    head = Dataplane("access", node="tn1", router_id=TN1, opener=w.opener("head"),
                     on_traffic=count("head"))  # fmt: skip
    tail = Dataplane("access", node="tn5", router_id=TN5, opener=w.opener("tail"),
                     on_traffic=count("tail"))  # fmt: skip
    await head.start()
    await tail.start()
    for dp, sid in ((head, "1"), (tail, "10.1.1.1:1")):
        dp.on_key(QE.DataplaneKey(LSP, sid, 0, 10, KEY0))
    head.attach(Cc(LSP, "head", None, Ch(1, 1), Ch(1, 2), None))
    tail.attach(Cc(LSP, "tail", Ch(1, 1), None, None, Ch(1, 2)))
    return w, head, tail, traffic


async def test_frames_cross_encrypted_both_ways(wired: Any) -> None:
    w, head, tail, _ = wired
    # the keys went in before the cross-connects: no announcement could leave yet
    for _ in range(3):
        w.ha.send(FRAME)
        assert await recv(w.hb) == FRAME
        w.hb.send(FRAME[::-1])
        assert await recv(w.ha) == FRAME[::-1]
    h, t = head.status("1"), tail.status("10.1.1.1:1")
    assert h["frames_encrypted"] == t["frames_decrypted"] == 3
    assert t["frames_encrypted"] == h["frames_decrypted"] == 3
    assert h["dataplane"] == {"access": "access", "tx": "te1l1", "rx": "te1l2"}
    assert t["dataplane"] == {"access": "access", "tx": "te1l2", "rx": "te1l1"}
    assert h["key_index"] == t["key_index"] == 0


async def test_the_channel_carries_ciphertext_only(wired: Any) -> None:
    w, _head, _tail, _ = wired
    asyncio.get_running_loop().remove_reader(w.fwd[1].fileno())  # the test reads te1l1
    w.ha.send(FRAME)
    wire = await recv(w.fwd[1])
    assert wire[12:14] == ETHERTYPE.to_bytes(2, "big") and b"qkdnet-marker" not in wire
    h = decode_header(wire[14:])
    assert (h.direction, h.algorithm, h.key_index) == (0, 10, 0)
    assert len(wire) == 14 + HEADER_LEN + len(FRAME) + 16


async def test_rekey_announcement_moves_both_ends(wired: Any) -> None:
    w, head, tail, _ = wired
    head.on_key(QE.DataplaneKey(LSP, "1", 1, 10, KEY1))
    tail.on_key(QE.DataplaneKey(LSP, "10.1.1.1:1", 1, 10, KEY1))
    for _ in range(50):  # the announcements cross (polled, no fixed wait)
        if head.status("1")["key_index"] == tail.status("10.1.1.1:1")["key_index"] == 1:
            break
        await asyncio.sleep(0.01)
    assert head.status("1")["key_index"] == tail.status("10.1.1.1:1")["key_index"] == 1
    w.ha.send(FRAME)
    assert await recv(w.hb) == FRAME
    assert tail.status("10.1.1.1:1")["announces_received"] >= 1


async def test_traffic_is_reported_and_stop_forgets_keys(wired: Any) -> None:
    w, head, _tail, traffic = wired
    for _ in range(5):
        w.ha.send(FRAME)
        await recv(w.hb)
    for _ in range(100):
        if traffic["head"] == 5 * len(FRAME) and traffic["tail"] == 5 * len(FRAME):
            break
        await asyncio.sleep(0.02)
    assert traffic == {"head": 5 * len(FRAME), "tail": 5 * len(FRAME)}
    head.on_stop(QE.DataplaneStop(LSP, "1"))
    assert head.sessions[LSP].end is not None and head.sessions[LSP].end.keys == {}
    head.detach(LSP)
    assert LSP not in head.sessions
    assert head.status("1")["dataplane"] == "not attached"


async def test_a_second_service_finds_the_access_port_busy(wired: Any) -> None:
    _w, head, _tail, _ = wired
    other = LspKey(TN5, 2, TN1, TN1, 1)
    head.on_key(QE.DataplaneKey(other, "2", 0, 10, KEY0))
    head.attach(Cc(other, "head", None, Ch(1, 3), Ch(1, 4), None))
    assert head.status("2")["dataplane"] == "access port busy"
    assert head.status("1")["dataplane"]["tx"] == "te1l1"


async def test_no_access_port_and_a_short_key() -> None:
    dp = Dataplane(None, node="tn2")
    await dp.start()
    assert dp.status("9")["dataplane"] == "no access port"
    dp.on_key(QE.DataplaneKey(LSP, "9", 0, 10, bytes(8)))
    st = dp.status("9")
    assert st["key_errors"] == 1 and "too short" in st["dataplane"]
    await dp.stop()


def test_the_demo_finds_the_client_hosts_behind_the_ends() -> None:
    from compose.demo import Roles, client_hosts
    from gmpls.topology import load
    from tests.support.e2elab import PAPER

    topo = load(PAPER)
    assert client_hosts(topo, Roles.of(topo)) == ("ha", "hb", "10.3.0.2")
