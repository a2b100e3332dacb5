"""The speaker's receive path (daemonkit.ospf.OspfSpeaker._readable): Hellos, Database
Descriptions, LS Acks and LS Updates go to the core as they arrive (it defers the LSAs to
install), LS Requests wait in the backlog, whose slices also hand the core
ProcessUpdates. In a 300-node lab (docs/scale.md) database exchanges stalled for minutes
when DDs and acks waited behind hundreds of LS Updates: the masters retransmitted
unanswered DDs, the neighbours unacknowledged LSUs, into the backlog they were waiting
behind."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

from daemonkit.ospf import OspfSpeaker
from gmpls.ospf import events as E
from gmpls.ospf.constants import PacketType

OWN, PEER = IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")


class Socket:
    """Hands out the datagrams it was given, then would block."""

    def __init__(self, datagrams: list[bytes]) -> None:
        self.datagrams = datagrams

    def recvfrom(self, size: int) -> tuple[bytes, Any]:
        if not self.datagrams:
            raise BlockingIOError
        return self.datagrams.pop(0), None


class Router:
    """Records the packet type of every packet it is handed (0 for ProcessUpdates), holds
    every LS Update as deferred until ProcessUpdates; no actions."""

    name = "r1"

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.defer_updates = False
        self.waiting = 0

    def handle(self, event: Any, now: float) -> list[Any]:
        if isinstance(event, E.Received):
            self.seen.append(event.data[1])
            self.waiting += event.data[1] == PacketType.LS_UPDATE
        elif isinstance(event, E.ProcessUpdates):
            self.seen.append(0)
            self.waiting = max(0, self.waiting - event.packets)
        return []

    def updates_waiting(self) -> int:
        return self.waiting

    def next_timer(self) -> None:
        return None


def datagram(kind: int) -> bytes:
    """An IPv4 header from PEER and the first bytes of an OSPF packet of type ``kind``."""
    ip = bytes([0x45, 0xC0, 0, 24, 0, 0, 0, 0, 1, 89, 0, 0]) + PEER.packed + OWN.packed
    return ip + bytes([2, kind, 0, 4])


def test_hellos_dds_acks_and_updates_are_handed_over_before_the_backlog() -> None:
    async def run() -> tuple[list[int], list[int]]:
        router = Router()
        iface = E.InterfaceConfig(name="p1", address=IPv4Interface("10.0.0.1/30"))
        speaker = OspfSpeaker(router, iface)  # type: ignore[arg-type]
        assert router.defer_updates  # the speaker has the core defer its updates
        speaker._loop = asyncio.get_running_loop()
        T = PacketType
        kinds = [T.LS_UPDATE, T.LS_UPDATE, T.LS_REQUEST, T.DB_DESCRIPTION, T.LS_ACK, T.HELLO]
        speaker.socks["p1"] = Socket([datagram(k) for k in kinds])  # type: ignore[assignment]
        speaker._readable("p1")
        at_once = list(router.seen)
        await asyncio.sleep(0)  # one turn: the backlog's first slice
        await asyncio.sleep(0)
        return at_once, router.seen

    at_once, all_seen = asyncio.run(run())
    T = PacketType
    assert at_once == [T.LS_UPDATE, T.LS_UPDATE, T.DB_DESCRIPTION, T.LS_ACK, T.HELLO]
    # one slice: the LS Request, then the deferred updates (ProcessUpdates, shown as 0)
    assert all_seen == [*at_once, T.LS_REQUEST, 0]
