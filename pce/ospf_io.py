"""The PCE's OSPF shell: the sans-I/O :class:`gmpls.ospf.router.OspfRouter` on one raw IP
socket (protocol 89) of the control LAN, so the PCE hears the LSAs the nodes flood.

Receiving: a raw socket bound to the interface (SO_BINDTODEVICE), member of AllSPFRouters
(224.0.0.5), and of AllDRouters (224.0.0.6) while DR or Backup (RFC 2328 §8.1); each
datagram arrives with its IP header, whose source and destination are passed to the
router with the OSPF payload. Sending:
the kernel builds the IP header (TTL 1 for multicast, TOS 0xC0). Timers: one
``loop.call_at`` re-armed from the router's :class:`SetTimer` actions. The router's LSDB
listener feeds the TED.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Interface

from daemonkit.ospf import find_interface
from gmpls.ospf.constants import ALL_D_ROUTERS, ALL_SPF_ROUTERS, IP_PROTO_OSPF
from gmpls.ospf.fsm import IfState
from gmpls.ospf.router import (
    InterfaceChanged,
    InterfaceConfig,
    OspfRouter,
    Send,
    SetTimer,
    Timer,
)

log = logging.getLogger("pce.ospf")


def interface_of(address: IPv4Address) -> tuple[str, IPv4Interface]:
    """The interface holding ``address`` and its prefix (the node agent's lookup)."""
    name, iface, _mtu = find_interface(address)
    return name, iface


class OspfShell:
    def __init__(self, router: OspfRouter, iface: InterfaceConfig) -> None:
        self.router = router
        self.iface = iface
        self.sock: socket.socket | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.rx = 0
        self.tx = 0
        self.errors = 0
        self.in_alldrouters = False

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, IP_PROTO_OSPF)
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.iface.name.encode())
        local = self.iface.address.ip.packed
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, local)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0xC0)
        # AllDRouters only while DR or Backup (RFC 2328 §8.1): see _membership
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, ALL_SPF_ROUTERS.packed + local)
        self.sock = s
        loop.add_reader(s.fileno(), self._readable)
        self._apply(self.router.add_interface(self.iface, loop.time()))

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.sock is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None

    def _readable(self) -> None:
        assert self.sock is not None
        loop = asyncio.get_running_loop()
        for _ in range(64):
            try:
                pkt, _ = self.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self.errors += 1
                log.warning("ospf receive error", extra={"event": "ospf_rx_error", "error": str(e)})
                return
            if len(pkt) < 20:
                continue
            ihl = (pkt[0] & 0x0F) * 4
            src, dst = IPv4Address(pkt[12:16]), IPv4Address(pkt[16:20])
            if src == self.iface.address.ip:
                continue
            self.rx += 1
            try:
                acts = self.router.receive(self.iface.name, pkt[ihl:], src, loop.time(), dst)
            except Exception:  # the core promises not to raise; never let a packet kill us
                self.errors += 1
                log.exception("ospf core failed on a packet", extra={"event": "ospf_bug"})
                continue
            self._apply(acts)

    def _membership(self, want: bool) -> None:
        """Join or leave AllDRouters (224.0.0.6) on the interface."""
        if self.sock is None or want == self.in_alldrouters:
            return
        opt = socket.IP_ADD_MEMBERSHIP if want else socket.IP_DROP_MEMBERSHIP
        try:
            self.sock.setsockopt(
                socket.IPPROTO_IP, opt, ALL_D_ROUTERS.packed + self.iface.address.ip.packed
            )
            self.in_alldrouters = want
        except OSError as e:
            self.errors += 1
            log.warning("AllDRouters membership", extra={"event": "ospf_mcast", "error": str(e)})

    def _tick(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        self._apply(self.router.handle(Timer(), loop.time()))

    def _apply(self, actions: Sequence[object]) -> None:
        loop = asyncio.get_running_loop()
        for a in actions:
            if isinstance(a, Send) and self.sock is not None:
                try:
                    self.sock.sendto(a.data, (str(a.dst), 0))
                    self.tx += 1
                except OSError as e:
                    self.errors += 1
                    log.warning(
                        "ospf send error", extra={"event": "ospf_tx_error", "error": str(e)}
                    )
            elif isinstance(a, InterfaceChanged):
                self._membership(a.new in (IfState.DR, IfState.BACKUP))
                log.info(
                    "ospf interface state",
                    extra={"event": "ospf_if", "state": a.new.name, "dr": str(a.dr)},
                )
            elif isinstance(a, SetTimer):
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                if a.at is not None:
                    self._timer = loop.call_at(a.at, self._tick)
