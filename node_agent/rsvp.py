"""The node agent's RSVP-TE shell: the sans-I/O :class:`gmpls.rsvp.core.RsvpCore` on a raw
IP protocol 46 socket bound to the node's control address (RFC 2205 §3.1: RSVP directly
over IP; RFC 3473: out-of-band control channel, messages hop by hop to the neighbour's
control address, so no router alert is needed).

This file is the only place with I/O for RSVP: it feeds datagrams and timer ticks into the
core and carries out its :class:`Send` actions; every other action (QE hooks, TE link
resources, LSP and neighbour state) goes to the ``on_action`` callback the daemon gives,
which answers the QE hooks later through :meth:`RsvpAgent.feed`::

    agent = RsvpAgent.from_topology(topo, "tn1", on_action=daemon.rsvp_action)
    await agent.start()
    agent.create_lsp(tunnel_id, ero, None, 10e9)
    ...
    agent.feed(QeSessionReady(lsp, key_handle))
    await agent.stop()          # PathTear for the LSPs this node heads, then close

Time: the core's clock is ``loop.time()`` (monotonic seconds); the shell keeps one timer
armed at ``core.next_timer()``. Logs: one line per message and event, with ``node``,
``peer``, ``msg`` and ``lsp`` as extra fields (JSON in the daemon); key handles appear
only as an 8-hex-digit prefix, keys never reach this module. The per-message lines
("rsvp rx", "rsvp tx") and the lines of actions another line already tells of
(LinkResources, cross-connects, QE hooks: :data:`_SAID_ELSEWHERE`) are DEBUG
(``--debug``): at INFO they were most of a node's log volume and a good part of its CPU
per LSP; LSP states and neighbour changes stay at INFO.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from ipaddress import IPv4Address

from daemonkit import netns
from daemonkit.timer import CoreTimer
from gmpls import ero, qe
from gmpls.core import Tick
from gmpls.rsvp import events as E
from gmpls.rsvp.constants import IPPROTO_RSVP, MsgType
from gmpls.rsvp.core import RsvpCore
from gmpls.rsvp.objects import SessionLspTunnelV4
from gmpls.topology import Topology
from node_agent.xconnect import CrossConnects

log = logging.getLogger("node_agent.rsvp")

#: IP TOS for RSVP: DSCP CS6 (internetwork control)
TOS_CS6 = 0xC0
RECV_SIZE = 65535
#: at most this many messages read before the core sees them (and sends the Acks owed)
READ_BATCH = 64


def _ipv4_payload(packet: bytes) -> tuple[IPv4Address, IPv4Address, bytes] | None:
    """(source, destination, payload) of a raw IPv4 datagram, or None if it is not one."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    total = int.from_bytes(packet[2:4], "big")
    if ihl < 20 or len(packet) < ihl or packet[9] != IPPROTO_RSVP:
        return None
    end = total if ihl <= total <= len(packet) else len(packet)
    return IPv4Address(packet[12:16]), IPv4Address(packet[16:20]), packet[ihl:end]


def status_of(
    core: RsvpCore,
    now: float,
    counters: Mapping[str, int] | None = None,
    wall_offset: float = 0.0,
    xconnect: CrossConnects | None = None,
) -> dict[str, object]:
    """LSPs (each with the cross-connect installed for it here, or None), neighbours and
    counters (``counters``, the cross-connects' and the core's) for ``show mpls lsp`` /
    ``show rsvp neighbor``, neighbours' silence measured at ``now``; no key material. The
    LSPs' setup stages are wall-clock times (``now`` + ``wall_offset``)."""
    xcs = xconnect.table() if xconnect is not None else {}
    lsps = [
        {**row, "cross_connect": xcs.get(str(row["lsp"]))} for row in core.lsp_table(wall_offset)
    ]
    if xconnect is not None:
        counters = {**(counters or {}), **xconnect.counters}
    return {
        "lsps": lsps,
        "neighbors": [
            {
                "address": str(n.address),
                "up": n.up,
                "instance": n.their_instance,
                "last_heard_s": None if n.last_heard is None else round(now - n.last_heard, 3),
            }
            for n in sorted(core.neighbors.values(), key=lambda n: n.address)
        ],
        "counters": {**(counters or {}), **core.stats},
    }


class RsvpAgent:
    """RSVP-TE on one node: a raw socket, one timer, and the core."""

    def __init__(
        self,
        core: RsvpCore,
        *,
        on_action: Callable[[E.Action], None] | None = None,
        bind: IPv4Address | None = None,
        device: str | None = None,
    ) -> None:
        self.core = core
        self.on_action = on_action
        self.bind = bind or core.control_address
        self.device = device
        self.sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer = CoreTimer(self._tick)
        self._ttl: int | None = None  # the socket's IP_TTL now (set only when it changes)
        #: the node's cross-connects (None: the actions only go to ``on_action``)
        self.xconnect: CrossConnects | None = None
        self.counters: dict[str, int] = {"rx": 0, "tx": 0, "rx_ignored": 0, "tx_errors": 0}

    @classmethod
    def from_topology(
        cls,
        topo: Topology,
        host: str,
        *,
        on_action: Callable[[E.Action], None] | None = None,
        instance: int = 1,
    ) -> RsvpAgent:
        """The agent of ``host``: its router ID, control address, TE links and the
        topology's RSVP timers (R, K, Hello). ``instance``: the RFC 3209 Hello source
        instance, which must change when the daemon restarts (e.g. from the start time)."""
        h = topo.host(host)
        assert h.router_id is not None, f"{host} has no router ID"
        core = RsvpCore(
            h.router_id,
            topo.control_address(host),
            topo.te_links_of(host),
            refresh_ms=topo.rsvp.refresh_ms,
            keep_multiplier=topo.rsvp.keep_multiplier,
            hello_ms=topo.rsvp.hello_ms,
            instance=instance,
            qe_capable=h.qe.capable,
            name=host,
        )
        return cls(core, on_action=on_action)

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._timer.start(self._loop)
        s = netns.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_RSVP)
        try:
            s.setblocking(False)
            if self.device:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.device.encode())
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, TOS_CS6)
            s.bind((str(self.bind), 0))
        except OSError:
            s.close()
            raise
        self.sock = s
        self._loop.add_reader(s.fileno(), self._readable)
        if self.xconnect is not None:
            self.xconnect.on_failure = self._xc_failed
            await self.xconnect.start()
        log.info(
            "rsvp listening",
            extra={"node": self.core.name, "address": str(self.bind)},
        )
        self._apply(self.core.handle(Tick(), self._now()))

    async def stop(self, teardown: bool = True) -> None:
        """Tear down the LSPs this node heads (PathTear goes out), then close."""
        if teardown and self.sock is not None:
            for tid in sorted(
                {p.key.tunnel_id for p in self.core.psbs.values() if p.role == "head"}
            ):
                self._apply(self.core.handle(E.DeleteLsp(tid), self._now()))
        self._timer.cancel()
        if self.sock is not None:
            if self._loop is not None:
                self._loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        if self.xconnect is not None:
            await self.xconnect.stop()

    # --- API for the daemon -------------------------------------------------------------

    def create_lsp(
        self,
        tunnel_id: int,
        route: Sequence[ero.Subobject],
        qe_params: qe.QeParams | None,
        bandwidth_bps: float,
        *,
        name: str = "",
        bidirectional: bool = False,
    ) -> list[E.Action]:
        """Signal an LSP (see :class:`~gmpls.rsvp.events.CreateLsp`); returns the core's
        actions, already carried out."""
        ev = E.CreateLsp(tunnel_id, route, qe_params, bandwidth_bps, name, bidirectional)
        return self.feed(ev)

    def delete_lsp(self, tunnel_id: int, *, graceful: bool = False) -> list[E.Action]:
        """Tear the LSP down (see :class:`~gmpls.rsvp.events.DeleteLsp`)."""
        return self.feed(E.DeleteLsp(tunnel_id, graceful))

    def feed(self, event: E.Event) -> list[E.Action]:
        """Hand the core an event (the QE answers QeSessionReady and QeFailed, CreateLsp,
        DeleteLsp)."""
        return self._apply(self.core.handle(event, self._now()))

    def status(self) -> dict[str, object]:
        """:func:`status_of` the core, with the socket's counters."""
        now = self._now()
        return status_of(self.core, now, self.counters, time.time() - now, self.xconnect)

    # --- plumbing -----------------------------------------------------------------------

    def _now(self) -> float:
        loop = self._loop or asyncio.get_event_loop()
        return loop.time()

    def _readable(self) -> None:
        """Read what the socket holds (up to :data:`READ_BATCH` messages), then hand them
        to the core in order, each but the last with ``more``: the core sends the Acks
        it owes for the whole read together, one Ack message per neighbour."""
        assert self.sock is not None
        batch: list[tuple[IPv4Address, bytes]] = []
        while len(batch) < READ_BATCH:
            try:
                packet, _ = self.sock.recvfrom(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                log.warning("rsvp recv failed: %s", e, extra={"node": self.core.name})
                break
            parsed = _ipv4_payload(packet)
            if parsed is None:
                self.counters["rx_ignored"] += 1
                continue
            src, dst, payload = parsed
            if dst != self.bind or src == self.bind:
                # a raw socket sees every protocol-46 datagram delivered to this host
                self.counters["rx_ignored"] += 1
                continue
            batch.append((src, payload))
        for i, (src, payload) in enumerate(batch):
            self.counters["rx"] += 1
            ev = E.Received(src, payload, more=i < len(batch) - 1)
            try:
                actions = self.core.handle(ev, self._now())
            except Exception:  # a bug in the core must not kill the daemon
                log.exception(
                    "rsvp core failed on a message from %s",
                    src,
                    extra={"node": self.core.name, "peer": str(src)},
                )
                continue
            self._apply(actions, rx=(src, payload))

    def _log_rx(self, src: IPv4Address, payload: bytes) -> None:
        if len(payload) >= 2 and payload[1] != 20:  # Hellos are not logged one by one
            log.debug(
                "rsvp rx",
                extra={"node": self.core.name, "peer": str(src), "rsvp_msg": _msg_name(payload[1])},
            )

    def _apply(
        self, actions: list[E.Action], rx: tuple[IPv4Address, bytes] | None = None
    ) -> list[E.Action]:
        """Carry out the core's actions: the messages that carry signalling on first, then
        the other actions in order (a tail's QE join asks its key manager at once), then
        the Acks, which only stop a retransmission 0.5 s away, then the log lines of the
        received and sent messages, so neither an Ack nor a log line delays the next
        step."""
        sent: list[E.Send] = []
        acks: list[E.Send] = []
        for a in actions:
            if isinstance(a, E.Send):
                (acks if a.message.msg_type == MsgType.ACK else sent).append(a)
        sent = [a for a in sent if self._send(a)]
        self._carry_out(actions)
        sent += [a for a in acks if self._send(a)]
        if log.isEnabledFor(logging.DEBUG):
            if rx is not None:
                self._log_rx(*rx)
            for a in sent:
                self._log_tx(a)
        self._arm()
        return actions

    def _carry_out(self, actions: list[E.Action]) -> None:
        for a in actions:
            if not isinstance(a, E.Send):
                self._log_action(a)
                if self.xconnect is not None and isinstance(
                    a, E.CrossConnect | E.CrossConnectRemoved
                ):
                    self.xconnect.apply(a)
                if self.on_action is not None:
                    try:
                        self.on_action(a)
                    except Exception:
                        log.exception("rsvp action handler failed", extra={"node": self.core.name})

    def _xc_failed(self, lsp: E.LspKey, reason: str) -> None:
        """A cross-connect could not be installed: the LSP fails here (PathErr 24/9)."""
        if self.sock is None:
            return
        try:
            self._apply(self.core.handle(E.CrossConnectFailed(lsp, reason), self._now()))
        except Exception:
            log.exception(
                "rsvp core failed on a cross-connect failure", extra={"node": self.core.name}
            )

    def _send(self, a: E.Send) -> bool:
        if self.sock is None:
            return False
        try:
            if a.ttl != self._ttl:
                self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, a.ttl)
                self._ttl = a.ttl
            self.sock.sendto(a.data, (str(a.dst), 0))
            self.counters["tx"] += 1
        except OSError as e:
            self.counters["tx_errors"] += 1
            if e.errno not in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EAGAIN):
                log.warning("rsvp send to %s failed: %s", a.dst, e, extra={"node": self.core.name})
            return False
        return True

    def _log_tx(self, a: E.Send) -> None:
        if a.message.msg_type != 20:
            lsp = ""
            with contextlib.suppress(Exception):
                s = a.message.get(SessionLspTunnelV4)
                lsp = f"{s.extended_tunnel_id}->{s.tunnel_end}#{s.tunnel_id}" if s else ""
            log.debug(
                "rsvp tx",
                extra={
                    "node": self.core.name,
                    "peer": str(a.dst),
                    "rsvp_msg": a.message.name,
                    "lsp": lsp,
                },
            )

    def _log_action(self, a: E.Action) -> None:
        level = logging.DEBUG if isinstance(a, _SAID_ELSEWHERE) else logging.INFO
        if not log.isEnabledFor(level):
            return
        extra: dict[str, object] = {"node": self.core.name, "action": type(a).__name__}
        if isinstance(
            a,
            E.LspUp
            | E.LspDown
            | E.NeedQeSession
            | E.QeJoin
            | E.QeClose
            | E.CrossConnect
            | E.CrossConnectRemoved,
        ):
            extra["lsp"] = str(a.lsp)
        if isinstance(a, E.LspDown):
            extra["reason"] = a.reason
            extra["code"] = str(a.code)
        if isinstance(a, E.QeJoin | E.QeClose):
            extra["key_handle_prefix"] = a.key_handle[:4].hex()
        if isinstance(a, E.NeighborUp | E.NeighborDown):
            extra["peer"] = str(a.address)
        if isinstance(a, E.LinkResources):
            extra["local_if"] = a.local_if
            extra["free_lambdas"] = ",".join(map(str, a.free_lambdas))
        log.log(level, "rsvp %s", type(a).__name__, extra=extra)

    def _arm(self) -> None:
        if self.sock is not None:
            self._timer.arm(self.core.next_timer())

    def _tick(self, deadline: float) -> None:
        try:
            # asyncio may run a timer a clock-resolution early: never tell the core less
            actions = self.core.handle(Tick(), max(self._now(), deadline))
        except Exception:
            log.exception("rsvp core failed on a timer", extra={"node": self.core.name})
            actions = []
        self._apply(actions)


#: actions whose lines are DEBUG: another line at INFO says what they did. A TE link's free
#: lambdas change twice per LSP and hop (OSPF re-originates the TE LSA, the QE service
#: coalesces); a cross-connect is logged as installed or removed, with its channels,
#: where it is carried out (node_agent/xconnect.py); the key session's open, join and
#: close by the QE service (with the handle's prefix)
_SAID_ELSEWHERE = (
    E.LinkResources,
    E.CrossConnect,
    E.CrossConnectRemoved,
    E.NeedQeSession,
    E.QeJoin,
    E.QeClose,
)


def _msg_name(t: int) -> str:
    try:
        return MsgType(t).name
    except ValueError:
        return str(t)
