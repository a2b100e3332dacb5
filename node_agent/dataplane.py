"""The encrypted data plane at a QE service's ends: the asyncio shell of
:class:`gmpls.dataplane.core.DataplaneEnd` (docs/dataplane.md).

At the head and the tail of a layer-1/2 QE service the node sits between its client
host's access port (``access``, raw AF_PACKET, promiscuous: every frame of the client
is the service's) and the LSP's channels (``te{I}l{n}``, one veth per TE link and
lambda): frames from the access port are sealed and sent on the outgoing channel, QE
frames (EtherType 0x88B5) from the incoming channel are opened and sent on the access
port. Transit nodes never see a frame in user space (their cross-connects are tc rules).

What :class:`Dataplane` is told:

* by the RSVP shell (w14b's wiring): :meth:`~Dataplane.attach` a ``CrossConnect`` (role
  head or tail: the channels), :meth:`~Dataplane.detach` an LSP;
* by the QE service shell: :meth:`~Dataplane.on_key` (``DataplaneKey``: the key of index
  *k*, kept in the core's AEAD object only) and :meth:`~Dataplane.on_stop`
  (``DataplaneStop``); it reports the bytes it encrypted and decrypted through
  ``on_traffic`` (``DataplaneTraffic``, what drives volume refresh).

Port mode: one service per access port. A second service attached while the port is
taken is keyed but shows ``access port busy`` and carries nothing.

Draining: each readable socket is read at most :data:`BATCH` frames per turn of the event
loop, so the control plane (OSPF, RSVP, the CLI) keeps its turns under a flood.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import logging
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any, Protocol

from daemonkit import netns
from daemonkit.ratelog import RateLimitedLog
from daemonkit.timer import CoreTimer
from gmpls.dataplane import events as DE
from gmpls.dataplane.core import COUNTERS, DataplaneEnd, Dropped
from gmpls.dataplane.crypto import CipherKeyError
from gmpls.dataplane.frame import ETH_LEN, ETHERTYPE, HEADER_LEN, TAG_LEN, eth_header
from gmpls.dataplane.names import channel_ifname
from gmpls.qe_service import events as QE

log = logging.getLogger("node_agent.dataplane")

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_IGNORE_OUTGOING = 23
SIOCGIFHWADDR = 0x8927
#: frames read from one socket per turn of the event loop
BATCH = 64
#: the channels' MTU (docs/dataplane.md): the largest access frame a channel carries
CHANNEL_MTU = 1600
MAX_PLAIN = CHANNEL_MTU - HEADER_LEN - TAG_LEN
#: receive buffers: an access frame one byte past what a channel carries is oversize
#: (a GSO frame of 64 KiB arrives cut to this, still oversize); a channel frame whole
RECV_ACCESS = ETH_LEN + MAX_PLAIN + 1
RECV_CHANNEL = ETH_LEN + CHANNEL_MTU + 64
#: the destination MAC of channel frames (a channel is a point-to-point wire)
CHANNEL_DST = b"\xff" * 6
#: counters of the shell itself (the core counts the cryptography)
SHELL_COUNTERS = ("oversize", "tx_errors", "not_forwarded")


class ChannelLike(Protocol):
    @property
    def local_if(self) -> int: ...
    @property
    def lam(self) -> int: ...


class CrossConnectLike(Protocol):
    """``gmpls.rsvp.events.CrossConnect`` (w14b)."""

    @property
    def lsp(self) -> Any: ...
    @property
    def role(self) -> str: ...
    @property
    def fwd_in(self) -> ChannelLike | None: ...
    @property
    def fwd_out(self) -> ChannelLike | None: ...
    @property
    def rev_in(self) -> ChannelLike | None: ...
    @property
    def rev_out(self) -> ChannelLike | None: ...


def _ifname(c: ChannelLike | None) -> str | None:
    return None if c is None else channel_ifname(c.local_if, c.lam)


def open_raw(ifname: str, proto: int, *, promisc: bool = False) -> socket.socket:
    """A non-blocking AF_PACKET socket on ``ifname`` receiving EtherType ``proto``
    (0: nothing, a socket to send with; ETH_P_ALL: everything but what is sent out)."""
    # Made with protocol 0 (no packet hook yet) and given its EtherType by bind: a socket
    # made with one registers a hook on every interface at once, and bind must take it off
    # again, which waits for an RCU grace period (16-28 ms measured) with the loop stopped.
    with netns.inside():
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        s.bind((ifname, proto))
        s.setblocking(False)
        if proto == ETH_P_ALL:
            s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        if promisc:
            mreq = netns.if_nametoindex(ifname).to_bytes(4, "little") + (
                PACKET_MR_PROMISC.to_bytes(2, "little") + bytes(10)
            )
            s.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    except OSError:
        s.close()
        raise
    return s


#: closes packet sockets off the event loop: the kernel's packet_release waits for an RCU
#: grace period (8-16 ms measured) each time, and a session has up to four of them
_closer: concurrent.futures.ThreadPoolExecutor | None = None


def close_later(sock: socket.socket) -> concurrent.futures.Future[None]:
    """Close ``sock`` in a worker thread (its reader must be removed already)."""
    global _closer
    if _closer is None:
        _closer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="packet-close")
    return _closer.submit(sock.close)


def _mac(ifname: str) -> bytes:
    """The Ethernet address of ``ifname`` (SIOCGIFHWADDR in the daemon's namespace: /sys
    shows the namespace it was mounted in, not necessarily ours), zeros if unknown."""
    try:
        with netns.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            req = struct.pack("256s", ifname.encode()[:15])
            return fcntl.ioctl(s.fileno(), SIOCGIFHWADDR, req)[18:24]
    except OSError:
        return bytes(6)


@dataclass(eq=False)
class _Session:
    """One LSP's data path at this end."""

    lsp: Any
    service_id: str
    head: bool
    end: DataplaneEnd | None = None
    cc: CrossConnectLike | None = None
    tx_if: str | None = None
    rx_if: str | None = None
    tx: socket.socket | None = None
    rx: socket.socket | None = None
    eth: bytes = b""
    why: str = "waiting for the cross-connect"
    timer: CoreTimer | None = None
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SHELL_COUNTERS, 0))


class Dataplane:
    """The data plane of one node (see the module docstring). ``access_if`` None: the
    node has no client host, so no data plane (services show ``no access port``)."""

    def __init__(
        self,
        access_if: str | None,
        *,
        node: str = "",
        router_id: IPv4Address | None = None,
        on_traffic: Callable[[str, int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        opener: Callable[..., socket.socket] | None = None,
    ) -> None:
        self.access_if = access_if
        #: ``open_raw(ifname, proto, promisc=...)``; tests give sockets of their own
        self.opener = opener or open_raw
        self.node = node
        self.router_id = router_id
        self.on_traffic = on_traffic
        self.clock = clock
        self.sessions: dict[Any, _Session] = {}
        #: the session that has the access port (port mode)
        self.owner: _Session | None = None
        self._access_rx: socket.socket | None = None
        self._access_tx: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: sockets being closed by :func:`close_later` (``stop`` waits for them)
        self._closing: set[asyncio.Future[None]] = set()
        self._ratelog = RateLimitedLog(log, {"node": node})

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for s in self.sessions.values():
            if s.timer is not None:
                s.timer.start(self._loop)
            self._arm(s)

    async def stop(self) -> None:
        for s in list(self.sessions.values()):
            self._close_session(s)
        self.sessions.clear()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        self._ratelog.close()

    # --- what the RSVP shell tells (the contract of docs/dataplane.md) ------------------

    def attach(self, cc: CrossConnectLike) -> None:
        """The LSP's channels at this node (head or tail; transit is not ours)."""
        if cc.role not in ("head", "tail"):
            return
        s = self._session(cc.lsp, head=cc.role == "head")
        s.cc = cc
        if cc.role == "head":
            tx_if, rx_if = _ifname(cc.fwd_out), _ifname(cc.rev_in)
        else:
            tx_if, rx_if = _ifname(cc.rev_out), _ifname(cc.fwd_in)
        if (tx_if, rx_if) == (s.tx_if, s.rx_if) and (s.tx or s.rx):
            return  # the same cross-connect again
        self._close_channels(s)
        s.tx_if, s.rx_if = tx_if, rx_if
        self._open(s)

    def detach(self, lsp: Any) -> None:
        s = self.sessions.get(lsp)
        if s is None:
            return
        s.cc = None
        self._close_channels(s)
        s.why = "waiting for the cross-connect"
        if s.end is None or not s.end.keys:
            self._forget(s)

    # --- what the QE service shell tells --------------------------------------------------

    def on_key(self, a: QE.DataplaneKey) -> None:
        head = self.router_id is not None and a.lsp.sender == self.router_id
        s = self._session(a.lsp, head=head, service_id=a.service_id)
        if s.end is None:
            try:
                s.end = DataplaneEnd(service_id=a.service_id, head=s.head, algorithm=a.algorithm)
            except CipherKeyError as e:
                s.why = str(e)
                return
        self._run(s, s.end.handle(DE.InstallKey(a.index, a.key), self.clock()))
        if s.end.error:
            s.why = s.end.error

    def on_stop(self, a: QE.DataplaneStop) -> None:
        s = self.sessions.get(a.lsp)
        if s is None:
            return
        if s.end is not None:
            self._run(s, s.end.handle(DE.Stop(), self.clock()))
        if s.cc is None:
            self._forget(s)

    def status(self, service_id: str) -> dict[str, Any]:
        """``show qe-service json``'s data-plane fields of service ``service_id``."""
        s = next((x for x in self.sessions.values() if x.service_id == service_id), None)
        out: dict[str, Any] = dict.fromkeys(COUNTERS, 0)
        out.update(dict.fromkeys(SHELL_COUNTERS, 0))
        if s is None:
            out["dataplane"] = "no access port" if self.access_if is None else "not attached"
            return out
        if s.end is not None:
            out.update(s.end.counters)
            out["key_index"] = s.end.tx_index
            out["rx_keys"] = sorted(s.end.keys)
        out.update(s.counters)
        running = s is self.owner and (s.tx is not None or s.rx is not None)
        out["dataplane"] = (
            {"access": self.access_if, "tx": s.tx_if, "rx": s.rx_if} if running else s.why
        )
        return out

    # --- sessions ---------------------------------------------------------------------------

    def _session(self, lsp: Any, *, head: bool, service_id: str = "") -> _Session:
        s = self.sessions.get(lsp)
        if s is None:
            s = self.sessions[lsp] = _Session(lsp, service_id, head)
            s.timer = CoreTimer(self._ticker(s))
            if self._loop is not None:
                s.timer.start(self._loop)
        if service_id:
            s.service_id = service_id
        return s

    def _open(self, s: _Session) -> None:
        if self.access_if is None:
            s.why = "no access port"
            return
        if self.owner is not None and self.owner is not s:
            s.why = "access port busy"
            return
        if s.tx_if is None or s.rx_if is None:
            # the head signals only the service that holds its port bidirectional
            s.why = "one-way LSP: the access port goes to a bidirectional service"
            return
        try:
            if self._access_rx is None:
                self._access_rx = self.opener(self.access_if, ETH_P_ALL, promisc=True)
                self._access_tx = self.opener(self.access_if, 0)
            if s.tx_if is not None:
                s.tx = self.opener(s.tx_if, 0)
                s.eth = eth_header(CHANNEL_DST, _mac(s.tx_if))
            if s.rx_if is not None:
                s.rx = self.opener(s.rx_if, ETHERTYPE)
        except OSError as e:
            s.why = f"cannot open the channels: {e}"
            self._close_channels(s)
            log.warning(
                "dataplane attach failed",
                extra={"node": self.node, "lsp": str(s.lsp), "why": str(e)},
            )
            return
        self.owner = s
        loop = self._loop or asyncio.get_running_loop()
        if s.rx is not None:
            loop.add_reader(s.rx.fileno(), self._channel_readable, s)
        if s.tx is not None and self._access_rx is not None:
            loop.add_reader(self._access_rx.fileno(), self._access_readable, s)
        log.info(
            "dataplane attached",
            extra={"node": self.node, "lsp": str(s.lsp), "service": s.service_id,
                   "tx": s.tx_if or "", "rx": s.rx_if or "", "access": self.access_if},
        )  # fmt: skip

    def _close_channels(self, s: _Session) -> None:
        for sock in (s.tx, s.rx):
            self._discard(sock)
        s.tx = s.rx = None
        if self.owner is s:
            self.owner = None
            self._discard(self._access_rx)
            self._discard(self._access_tx)
            self._access_rx = self._access_tx = None
            self._next_owner()

    def _discard(self, sock: socket.socket | None) -> None:
        """Stop reading ``sock`` and close it without stopping the loop (:func:`close_later`)."""
        if sock is None:
            return
        if self._loop is None:
            sock.close()
            return
        self._loop.remove_reader(sock.fileno())
        self._closing.add(fut := asyncio.wrap_future(close_later(sock), loop=self._loop))
        fut.add_done_callback(self._closing.discard)

    def _next_owner(self) -> None:
        """The port is free: the next attached session waiting for it takes it."""
        for s in self.sessions.values():
            if s.cc is not None and s.why == "access port busy":
                self._open(s)
                return

    def _close_session(self, s: _Session) -> None:
        if s.end is not None:
            self._run(s, s.end.handle(DE.Stop(), self.clock()))
        self._close_channels(s)
        if s.timer is not None:
            s.timer.cancel()

    def _forget(self, s: _Session) -> None:
        self._close_session(s)
        self.sessions.pop(s.lsp, None)

    # --- the hot paths -----------------------------------------------------------------------

    def _access_readable(self, s: _Session) -> None:
        """Frames from the client: seal each, send it on the outgoing channel."""
        rx, tx, end = self._access_rx, s.tx, s.end
        if rx is None or tx is None:
            return
        if end is not None:  # the time this batch works at (and what is due by then)
            self._run(s, end.handle(DE.Tick(), self.clock()))
        eth = s.eth
        for _ in range(BATCH):
            try:
                frame = rx.recv(RECV_ACCESS)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                self._drop(s, "access_recv", str(e))
                break
            if end is None:
                s.counters["not_forwarded"] += 1
                continue
            if len(frame) > MAX_PLAIN:
                s.counters["oversize"] += 1  # GSO/TSO left on: the channel cannot carry it
                self._drop(s, "oversize", f"{len(frame)} bytes")
                continue
            try:
                wire = end.seal(frame, eth)
            except Dropped as d:
                self._drop(s, d.reason, d.detail)
                continue
            try:
                tx.send(wire)
            except OSError as e:
                s.counters["tx_errors"] += 1
                self._drop(s, "tx_error", str(e))
        self._arm(s)

    def _channel_readable(self, s: _Session) -> None:
        """QE frames from the channel: open each, send the frame on the access port."""
        rx, out, end = s.rx, self._access_tx, s.end
        if rx is None:
            return
        if end is not None:
            self._run(s, end.handle(DE.Tick(), self.clock()))
        for _ in range(BATCH):
            try:
                wire = rx.recv(RECV_CHANNEL)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                self._drop(s, "channel_recv", str(e))
                break
            if end is None:
                s.counters["not_forwarded"] += 1
                continue
            try:
                frame = end.open(memoryview(wire)[ETH_LEN:])
            except Dropped as d:
                self._drop(s, d.reason, d.detail)
                continue
            if frame is None:
                continue  # an announcement
            if out is None:
                s.counters["not_forwarded"] += 1
                continue
            try:
                out.send(frame)
            except OSError as e:
                s.counters["tx_errors"] += 1
                self._drop(s, "tx_error", str(e))
        self._arm(s)

    def _drop(self, s: _Session, reason: str, detail: str) -> None:
        self._ratelog.log(
            logging.WARNING,
            f"dataplane drop {reason}",
            {"lsp": str(s.lsp), "service": s.service_id, "why": detail},
        )

    # --- the core's actions and timer -------------------------------------------------------

    def _run(self, s: _Session, actions: list[DE.Action]) -> None:
        for a in actions:
            if isinstance(a, DE.Send):
                if s.tx is not None:
                    with contextlib.suppress(OSError):
                        s.tx.send(s.eth + a.pdu)
            elif isinstance(a, DE.Traffic):
                if self.on_traffic is not None and s.service_id:
                    self.on_traffic(s.service_id, a.nbytes)
            else:
                level = logging.WARNING if a.warning else logging.INFO
                log.log(level, a.message, extra={"node": self.node, **a.fields})
        self._arm(s)

    def _arm(self, s: _Session) -> None:
        if s.timer is not None and s.end is not None:
            s.timer.arm(s.end.next_timer())

    def _ticker(self, s: _Session) -> Callable[[float], None]:
        return lambda at: self._tick(s, at)

    def _tick(self, s: _Session, at: float) -> None:
        if s.end is not None:
            self._run(s, s.end.handle(DE.Tick(), max(self.clock(), at)))
