"""The sans-I/O OSPFv2 speaker: interfaces, neighbors, LSDB, flooding and SPF of one
router in one area (RFC 2328 with RFC 5250 opaque LSAs).

It keeps the contract of :mod:`gmpls.core`: every input is an event of
:mod:`gmpls.ospf.events` fed to :meth:`OspfRouter.handle` with the current time (a
received packet, an interface coming up or going down, an opaque LSA to originate or
flush, :class:`~gmpls.core.Tick` when the time of :meth:`OspfRouter.next_timer` has
come); every call returns the actions to carry out, in order. Listeners added with
:meth:`OspfRouter.add_lsdb_listener` are also called, synchronously, for every LSDB
change (the PCE's TED subscribes this way).

Sections of RFC 2328 are cited where each rule is implemented.
"""

from __future__ import annotations

import itertools
import logging
import struct
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from ipaddress import IPv4Address, IPv4Network
from typing import Any, TypeVar

from gmpls.core import Tick
from gmpls.errors import DecodeError
from gmpls.ospf import packet as P
from gmpls.ospf import spf
from gmpls.ospf.constants import (
    ALL_D_ROUTERS,
    ALL_SPF_ROUTERS,
    HEADER_LEN,
    INITIAL_SEQUENCE,
    LS_REFRESH_TIME,
    LSA_HEADER_LEN,
    MAX_AGE,
    MAX_SEQUENCE,
    MIN_LS_ARRIVAL,
    MIN_LS_INTERVAL,
    OPAQUE_TYPES,
    ZERO,
    AuType,
    DDFlags,
    LsType,
    Options,
    PacketType,
    RouterLinkType,
)
from gmpls.ospf.events import (
    Action,
    Event,
    FlushOpaque,
    InterfaceChanged,
    InterfaceConfig,
    InterfaceDown,
    InterfaceUp,
    LsdbChanged,
    NeighborChanged,
    OriginateOpaque,
    ProcessUpdates,
    Received,
    RoutesChanged,
    Send,
)
from gmpls.ospf.fsm import (
    IF_TRANSITIONS,
    NBR_TRANSITIONS,
    IfAction,
    IfEvent,
    IfState,
    NbrAction,
    NbrEvent,
    NbrState,
)
from gmpls.ospf.lsa import (
    LSA,
    LSAHeader,
    LSAKey,
    NetworkLSA,
    RouterLink,
    RouterLSA,
    compare_fields,
    compare_instances,
)
from gmpls.ospf.lsdb import LSDB, Entry

log = logging.getLogger("gmpls.ospf")

IP_HEADER_LEN = 20
#: cryptographic sequence numbers count quarter seconds since 2025-01-01 00:00 UTC: 32 bits
#: last 34 years, and a burst of packets faster than 4 per second is absorbed within seconds
CRYPTO_EPOCH = 1_735_689_600
CRYPTO_TICKS_PER_SECOND = 4
KNOWN_LS_TYPES = frozenset({1, 2, 3, 4, 5, 9, 10, 11})

#: interface states in which received packets are dropped (and nothing is flooded)
_SILENT = (IfState.DOWN, IfState.LOOPBACK)
_EXCHANGE, _FULL = NbrState.EXCHANGE, NbrState.FULL
_O = int(Options.O)

LsdbListener = Callable[[LSAKey, LSA | None], None]

# ---------------------------------------------------------------- per-peer state


@dataclass(eq=False)
class Neighbor:
    """The neighbor data structure of RFC 2328 §10."""

    router_id: IPv4Address
    address: IPv4Address
    state: NbrState = NbrState.DOWN
    priority: int = 0
    options: int = 0  # from its Hellos
    dd_options: int | None = None  # from the DD that settled master/slave (RFC 5250 O bit)
    dr: IPv4Address = ZERO
    bdr: IPv4Address = ZERO
    master: bool = True  # True: WE are master of the exchange
    dd_seq: int = 0
    last_rcvd: tuple[int, int, int] | None = None  # (flags, options, seq) of the last DD
    last_sent: P.Encoded | None = None  # the body of the last DD we sent (retransmission)
    last_sent_more: bool = True
    #: the database summary list (§10.3): LSA headers as bytes, aged when it was made
    summary: list[bytes] = field(default_factory=list)
    requests: dict[LSAKey, LSAHeader] = field(default_factory=dict)
    requests_sent: set[LSAKey] = field(default_factory=set)
    rxmt: dict[LSAKey, LSA] = field(default_factory=dict)
    #: LSAs received from this neighbor, newer than the database's, waiting to be
    #: processed (the router's ``defer_updates``; :meth:`OspfRouter._recv_lsa`)
    pending: dict[LSAKey, LSA] = field(default_factory=dict)
    inactivity_at: float | None = None
    dd_rxmt_at: float | None = None
    lsr_rxmt_at: float | None = None
    lsu_rxmt_at: float | None = None
    crypto_seq: int = 0
    last_change: float = 0.0


@dataclass(eq=False)
class Interface:
    """The interface data structure of RFC 2328 §9, with drop counters."""

    config: InterfaceConfig
    state: IfState = IfState.DOWN
    dr: IPv4Address = ZERO
    bdr: IPv4Address = ZERO
    neighbors: dict[IPv4Address, Neighbor] = field(default_factory=dict)
    hello_at: float | None = None
    wait_at: float | None = None
    #: LSAs to acknowledge (delayed, §13.5): their headers as received go out
    acks: list[LSA] = field(default_factory=list)
    ack_at: float | None = None
    counters: dict[str, int] = field(default_factory=dict)
    crypto_seq: int = 0
    #: the last Hello sent and its bytes, sent again while nothing in it changes
    hello_sent: tuple[P.Hello, bytes] | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def ip(self) -> IPv4Address:
        return self.config.address.ip

    @property
    def p2p(self) -> bool:
        return self.config.network_type == "point-to-point"

    def count(self, what: str) -> None:
        self.counters[what] = self.counters.get(what, 0) + 1


COUNTERS = (
    "rx_packets",
    "tx_packets",
    "bad_checksum",
    "bad_lsa_checksum",
    "unusable_lsa",
    "bad_version",
    "wrong_area",
    "auth_mismatch",
    "auth_replay",
    "truncated",
    "malformed",
    "hello_mismatch",
    "mtu_mismatch",
    "bad_source",
    "unknown_neighbor",
    "not_dr",
    "own_packet",
)


def _elect(
    me: tuple[IPv4Address, IPv4Address, int, IPv4Address, IPv4Address],
    others: list[tuple[IPv4Address, IPv4Address, int, IPv4Address, IPv4Address]],
) -> tuple[IPv4Address, IPv4Address]:
    """RFC 2328 §9.4 steps 2-4. Candidates are (router id, address, priority, declared DR,
    declared BDR); returns (DR address, BDR address). Routers with priority 0 are not
    candidates; the highest (priority, router id) wins each tie."""

    def run(
        cands: list[tuple[IPv4Address, IPv4Address, int, IPv4Address, IPv4Address]],
    ) -> tuple[IPv4Address, IPv4Address]:
        elig = [c for c in cands if c[2] > 0]
        # step 2: BDR among the routers not declaring themselves DR
        not_dr = [c for c in elig if c[3] != c[1]]
        declaring_bdr = [c for c in not_dr if c[4] == c[1]]
        pool = declaring_bdr or not_dr
        bdr = max(pool, key=lambda c: (c[2], int(c[0])))[1] if pool else ZERO
        # step 3: DR among the routers declaring themselves DR, else the new BDR
        declaring_dr = [c for c in elig if c[3] == c[1]]
        dr = max(declaring_dr, key=lambda c: (c[2], int(c[0])))[1] if declaring_dr else bdr
        return dr, bdr

    dr, bdr = run([me, *others])
    rid, addr, prio, my_dr, my_bdr = me
    was_dr, was_bdr = my_dr == addr, my_bdr == addr
    is_dr, is_bdr = dr == addr, bdr == addr
    if (was_dr, was_bdr) != (is_dr, is_bdr):
        # step 4: our own role changed: repeat steps 2 and 3 with our new declaration
        dr, bdr = run([(rid, addr, prio, dr, bdr), *others])
    return dr, bdr


# ---------------------------------------------------------------- the router


class OspfRouter:
    """One OSPFv2 router in one area. See the module docstring for the API."""

    def __init__(
        self,
        router_id: IPv4Address | str,
        area: IPv4Address | str = "0.0.0.0",
        *,
        stub_networks: tuple[tuple[IPv4Network, int], ...] = (),
        name: str = "",
        spf_delay: float = 0.05,
        spf_hold: float = 0.2,
        spf_max_hold: float = 5.0,
        flood_pace: float = 0.01,
        wall_clock: float = 0.0,
        defer_updates: bool = False,
    ) -> None:
        self.router_id = IPv4Address(router_id)
        self.area = IPv4Address(area)
        self.name = name or str(self.router_id)
        #: the options of our Database Description packets: E, and O (RFC 5250 §3: opaque
        #: capable); Hellos carry E only (:attr:`hello_options`), the O bit belongs to DDs
        self.options = Options.E | Options.O
        self.stub_networks = stub_networks
        #: the local interface on each stub network, for the routing table's next hops
        self.stub_names: dict[IPv4Network, str] = {}
        self.interfaces: dict[str, Interface] = {}
        self.lsdb = LSDB()
        self.routes: dict[IPv4Network, spf.Route] = {}
        self._wanted: dict[LSAKey, tuple[Any, int]] = {}
        self._originated_at: dict[LSAKey, float] = {}
        #: own LSAs whose MaxSequenceNumber instance is being flushed (§12.1.6)
        self._wrapping: set[LSAKey] = set()
        self._pending: dict[LSAKey, float] = {}
        self._out: list[Action] = []
        self._changed: list[LSAKey] = []
        self._if_events: list[tuple[Interface, IfEvent]] = []
        self._listeners: list[LsdbListener] = []
        self._spf_dirty = False
        self._router_lsa_dirty = False
        self._next_age_check: float | None = None
        self.spf_runs = 0
        #: SPF throttling like FRR's ``timers throttle spf DELAY INITIAL MAX`` (see
        #: :meth:`_spf_schedule`): a run comes ``spf_delay`` after a change; a change within
        #: the hold time of the last run waits for the hold time to end, and the hold time
        #: doubles with each such change (as Cisco's; FRR's grows linearly) up to
        #: ``spf_max_hold``; it falls back to ``spf_hold`` once a change comes after it
        self.spf_delay = spf_delay
        self.spf_hold = spf_hold
        self.spf_max_hold = max(spf_max_hold, spf_hold)
        self._spf_mult = 1
        self._spf_at: float | None = None
        #: flood pacing: LSAs flooded within ``flood_pace`` seconds of the first one queued
        #: leave together, in as few LS Updates as the MTU allows (0: at the end of the
        #: event that flooded them)
        self.flood_pace = flood_pace
        self._flood_at: float | None = None
        #: LSAs to flood by interface name: the instance, and whether it must go even if
        #: no neighbor there still waits for it (a flood back that is the sender's implied
        #: acknowledgment, §13.5); the destination is the interface's when they leave
        self._flood_queue: dict[str, dict[LSAKey, tuple[LSA, bool]]] = {}
        self._last_spf = float("-inf")
        #: defer the LSAs of received LS Updates that need installing to
        #: :class:`~gmpls.ospf.events.ProcessUpdates` (a busy shell's backlog): duplicates
        #: and older instances are answered as they arrive, a copy of an instance already
        #: waiting is not processed twice (:meth:`_recv_lsa`)
        self.defer_updates = defer_updates
        #: the deferred LSAs: one group per LS Update, with its interface and neighbor
        self._updates: deque[tuple[Interface, Neighbor, list[LSA]]] = deque()
        #: received LSAs deferred, copies dropped because the same or a newer instance from
        #: the same neighbor was waiting, waiting instances replaced by a newer one; LSAs
        #: retransmitted (RxmtInterval passed unacknowledged)
        self.lsu_counters = dict.fromkeys(
            ("deferred", "dropped_waiting", "superseded", "retransmitted"), 0
        )
        #: the time of the event being handled
        self._now = 0.0
        #: wall-clock time (Unix seconds) at ``now`` = 0; the shell sets it (the core never
        #: reads a clock); it drives the cryptographic sequence numbers (RFC 2328 §D.4.3)
        self.wall_clock = wall_clock

    # ------------------------------------------------------------ public API

    def add_lsdb_listener(self, fn: LsdbListener) -> None:
        """Call ``fn(key, lsa)`` for every installed LSA, ``fn(key, None)`` on removal."""
        self._listeners.append(fn)

    def handle(self, event: Event, now: float) -> list[Action]:
        self._now = now
        if isinstance(event, Received):
            iface = self.interfaces.get(event.ifname)
            if iface is not None and iface.state not in _SILENT and not iface.config.passive:
                self._receive(iface, bytes(event.data), _ip(event.src), _ip(event.dst), now)
        elif isinstance(event, Tick):
            self._timers(now)
        elif isinstance(event, InterfaceUp):
            self._interface_up(event.config, now)
        elif isinstance(event, InterfaceDown):
            iface = self.interfaces.get(event.name)
            if iface is not None:
                self._if_event(iface, IfEvent.INTERFACE_DOWN, now)
        elif isinstance(event, OriginateOpaque):
            key = LSAKey(event.ls_type, IPv4Address(event.ls_id), self.router_id)
            if event.ls_type not in OPAQUE_TYPES:
                raise ValueError(f"LS type {event.ls_type} is not an opaque type")
            self._originate(key, event.body, event.options, now)
        elif isinstance(event, FlushOpaque):
            self._flush_own(LSAKey(event.ls_type, IPv4Address(event.ls_id), self.router_id), now)
        elif isinstance(event, ProcessUpdates):
            self._process_updates(event.packets, now)
        else:
            raise TypeError(f"not an OSPF event: {event!r}")
        return self._finish(now)

    def next_timer(self) -> float | None:
        # plain comparisons, no lists: the shell asks after every event it hands over
        best: float | None = None
        for iface in self.interfaces.values():
            for t in (iface.hello_at, iface.wait_at, iface.ack_at):
                if t is not None and (best is None or t < best):
                    best = t
            for n in iface.neighbors.values():
                for t in (n.inactivity_at, n.dd_rxmt_at, n.lsr_rxmt_at, n.lsu_rxmt_at):
                    if t is not None and (best is None or t < best):
                        best = t
        for t in self._pending.values():
            if best is None or t < best:
                best = t
        for t in self._originated_at.values():
            t += LS_REFRESH_TIME
            if best is None or t < best:
                best = t
        for t in (self._next_age_check, self._spf_at, self._flood_at):
            if t is not None and (best is None or t < best):
                best = t
        return best

    # read-only views for CLIs and tests

    @property
    def hello_options(self) -> int:
        """The options of our Hellos: those of our DDs without the O bit, which RFC 5250
        gives to Database Description packets only (FRR logs "O-bit abuse?" otherwise)."""
        return self.options & ~Options.O

    def updates_waiting(self) -> int:
        """How many received LS Updates have LSAs waiting for
        :class:`~gmpls.ospf.events.ProcessUpdates` (``defer_updates``; some may turn out
        to have nothing left to do)."""
        return len(self._updates)

    def neighbors(self) -> list[tuple[Interface, Neighbor]]:
        return [(i, n) for i in self.interfaces.values() for n in i.neighbors.values()]

    def own(self, key: LSAKey) -> bool:
        return self._self_originated(key)

    # ------------------------------------------------------------ plumbing

    def _finish(self, now: float) -> list[Action]:
        for _ in range(100):
            if not self._if_events:
                break
            events, self._if_events = self._if_events, []
            for iface, ev in events:
                self._if_event(iface, ev, now)
        if self._router_lsa_dirty:
            self._router_lsa_dirty = False
            self._originate_router_lsa(now)
            for iface in self.interfaces.values():
                self._update_network_lsa(iface, now)
        if self._flood_queue:
            if self._flood_at is None:
                self._flood_at = now + self.flood_pace
            if now >= self._flood_at:
                self._flood_at = None
                self._send_floods(now)
        if self._spf_dirty:
            if self._spf_at is None:
                self._spf_at = self._spf_schedule(now)
            if now >= self._spf_at:
                self._spf_dirty = False
                self._spf_at = None
                self._last_spf = now
                self._run_spf()
        if self._changed:
            keys = tuple(dict.fromkeys(self._changed))
            self._changed = []
            self._out.append(LsdbChanged(keys))
            # incremental: the earliest expiry can only move earlier by these installs (a
            # stale, too early value just makes _age() look and recompute it)
            t = self._next_age_check
            for k in keys:
                e = self.lsdb.get(k)
                if e is None:
                    continue
                x = e.expires_at()
                if x is None:
                    x = now + 1.0  # a MaxAge LSA waiting for removal (§14)
                t = x if t is None else min(t, x)
            self._next_age_check = t
        out = self._out
        self._out = []
        return out

    def _send_floods(self, now: float) -> None:
        """Send the flood queue (§13.3 (5)): per interface and destination, LS Updates as
        full as the MTU allows, each LSA with its current age plus InfTransDelay. An LSA
        no neighbor on the interface still has on its retransmission list (all have
        acknowledged it, or sent it to us meanwhile: an implied acknowledgment) is left
        out, unless it is a flood back that acknowledges its sender."""
        queue, self._flood_queue = self._flood_queue, {}
        #: the LSA's bytes aged by each interface's InfTransDelay, encoded once per delay
        #: (by id: an LSA's own hash decodes its body)
        aged: dict[tuple[int, int], bytes] = {}
        for ifname, lsas in queue.items():
            iface = self.interfaces.get(ifname)
            if iface is None or iface.state in _SILENT:
                continue
            delay = iface.config.transmit_delay
            out = []
            for key, (lsa, must) in lsas.items():
                if not must and not _awaited(iface, key, lsa):
                    continue
                data = aged.get((id(lsa), delay))
                if data is None:
                    e = self.lsdb.get(key)
                    age = e.age(now) if e is not None and e.lsa is lsa else lsa.header.age
                    data = aged[id(lsa), delay] = lsa.encode_aged(age + delay)
                out.append(data)
            if out:
                self._send_lsus(iface, self._flood_dst(iface), out)

    def _flood_will_go(self, iface: Interface, key: LSAKey, lsa: LSA) -> bool:
        """False when ``lsa`` waits in the flood queue of ``iface`` and no neighbor there
        waits for it any more (:meth:`_send_floods` will leave it out); True otherwise."""
        q = self._flood_queue.get(iface.name)
        queued = q.get(key) if q else None
        if queued is None or queued[0] is not lsa or queued[1]:
            return True
        return _awaited(iface, key, lsa)

    def _spf_schedule(self, now: float) -> float:
        """When SPF runs after a change at ``now`` (FRR's ospf_spf_calculate_schedule):
        ``spf_delay`` after it, or at the end of the current hold time if that is later;
        a change within the hold time lengthens the next one."""
        hold = min(self.spf_hold * self._spf_mult, self.spf_max_hold)
        elapsed = now - self._last_spf
        if elapsed < hold:
            if hold < self.spf_max_hold:
                self._spf_mult *= 2
            return now + max(self.spf_delay, hold - elapsed)
        self._spf_mult = 1
        return now + self.spf_delay

    def _age_check_time(self, now: float) -> float | None:
        """When the LSDB next needs attention: an LSA reaching MaxAge, or (one second from
        now) MaxAge LSAs waiting to be removed (§14)."""
        t = self.lsdb.next_expiry()
        if any(e.lsa.header.age >= MAX_AGE for _, e in self.lsdb.entries()):
            t = now + 1.0 if t is None else min(t, now + 1.0)
        return t

    def _next_crypto_seq(self, last: int, now: float) -> int:
        """The cryptographic sequence number of our next packet (RFC 2328 §D.4.3: it never
        decreases, also across a restart, or neighbours drop our packets as replays).
        Like FRR it follows the wall clock: quarter seconds since :data:`CRYPTO_EPOCH`,
        or one more than the last when we send faster than that."""
        ticks = int((self.wall_clock + now - CRYPTO_EPOCH) * CRYPTO_TICKS_PER_SECOND)
        return min(max(ticks, last + 1), 0xFFFFFFFF)

    def _send(self, iface: Interface, dst: IPv4Address, body: Any) -> None:
        pkt = P.Packet(self.router_id, self.area, body)
        auth = iface.config.auth
        if auth.autype == AuType.SIMPLE:
            data = P.Packet(self.router_id, self.area, body, P.Auth.simple(auth.key)).encode()
        elif auth.autype == AuType.CRYPTOGRAPHIC:
            iface.crypto_seq = self._next_crypto_seq(iface.crypto_seq, self._now)
            data = P.sign_md5(pkt, auth.key_id, iface.crypto_seq, auth.key)
        else:
            data = pkt.encode()
        iface.count("tx_packets")
        self._out.append(Send(iface.name, dst, data))

    def _flood_dst(self, iface: Interface) -> IPv4Address:
        """§13.3 (5): AllSPFRouters from the DR/BDR and on p2p, else AllDRouters."""
        if iface.p2p or iface.state in (IfState.DR, IfState.BACKUP):
            return ALL_SPF_ROUTERS
        return ALL_D_ROUTERS

    def _notify(self, key: LSAKey, lsa: LSA | None) -> None:
        self._changed.append(key)
        for fn in self._listeners:
            fn(key, lsa)

    def _install(self, lsa: LSA, now: float) -> None:
        """§13.2: install, note whether the routing table must be recalculated (only
        Router and Network LSAs are compared with the old instance: SPF reads no other)."""
        spf = lsa.header.ls_type in (1, 2)
        if self.lsdb.install(lsa, now, compare=spf) and spf:
            self._spf_dirty = True
        self._notify(lsa.key, lsa)

    def _remove(self, key: LSAKey) -> None:
        e = self.lsdb.remove(key)
        if e is not None:
            if key.ls_type in (1, 2):
                self._spf_dirty = True
            self._notify(key, None)

    # ------------------------------------------------------------ interface FSM (§9.3)

    def _interface_up(self, config: InterfaceConfig, now: float) -> None:
        if config.name in self.interfaces:
            self._if_event(self.interfaces[config.name], IfEvent.INTERFACE_DOWN, now)
        iface = Interface(config)
        iface.counters = dict.fromkeys(COUNTERS, 0)
        self.interfaces[config.name] = iface
        self._if_event(iface, IfEvent.INTERFACE_UP, now)

    def _set_if_state(self, iface: Interface, new: IfState) -> None:
        old = iface.state
        if old != new:
            iface.state = new
            log.info(
                "%s ospf interface %s %s -> %s (DR %s BDR %s)",
                self.name,
                iface.name,
                old.name,
                new.name,
                iface.dr,
                iface.bdr,
            )
            self._out.append(InterfaceChanged(iface.name, old, new, iface.dr, iface.bdr))
            self._router_lsa_dirty = True

    def _if_event(self, iface: Interface, ev: IfEvent, now: float) -> None:
        entry = _transition(IF_TRANSITIONS, iface.state, ev, self.name, "interface", iface.name)
        if entry is None:
            return
        action, nxt = entry
        if action == IfAction.START:
            if iface.config.passive:
                self._set_if_state(
                    iface, IfState.DROTHER if not iface.p2p else IfState.POINT_TO_POINT
                )
                return
            iface.hello_at = now
            if iface.p2p:
                self._set_if_state(iface, IfState.POINT_TO_POINT)
            elif iface.config.priority == 0:
                self._set_if_state(iface, IfState.DROTHER)
            else:
                iface.wait_at = now + iface.config.dead_interval
                self._set_if_state(iface, IfState.WAITING)
        elif action == IfAction.ELECT:
            iface.wait_at = None
            self._elect(iface, now)
        elif action == IfAction.RESET:
            for n in list(iface.neighbors.values()):
                self._nbr_event(iface, n, NbrEvent.KILL_NBR, now)
            iface.hello_at = iface.wait_at = iface.ack_at = None
            iface.dr = iface.bdr = ZERO
            iface.acks.clear()
            if nxt is not None:
                self._set_if_state(iface, nxt)
            self._router_lsa_dirty = True
        elif nxt is not None:
            self._set_if_state(iface, nxt)

    def _elect(self, iface: Interface, now: float) -> None:
        """§9.4 on a broadcast network; then AdjOK? if the DR or BDR changed (step 7)."""
        me = (self.router_id, iface.ip, iface.config.priority, iface.dr, iface.bdr)
        others = [
            (n.router_id, n.address, n.priority, n.dr, n.bdr)
            for n in iface.neighbors.values()
            if n.state >= NbrState.TWO_WAY
        ]
        old = (iface.dr, iface.bdr)
        iface.dr, iface.bdr = _elect(me, others)
        if iface.dr == iface.ip:
            self._set_if_state(iface, IfState.DR)
        elif iface.bdr == iface.ip:
            self._set_if_state(iface, IfState.BACKUP)
        else:
            self._set_if_state(iface, IfState.DROTHER)
        if (iface.dr, iface.bdr) != old:
            log.info(
                "%s ospf interface %s elected DR %s BDR %s",
                self.name,
                iface.name,
                iface.dr,
                iface.bdr,
            )
            self._out.append(
                InterfaceChanged(iface.name, iface.state, iface.state, iface.dr, iface.bdr)
            )
            self._router_lsa_dirty = True
            for n in list(iface.neighbors.values()):
                if n.state >= NbrState.TWO_WAY:
                    self._nbr_event(iface, n, NbrEvent.ADJ_OK, now)

    # ------------------------------------------------------------ neighbor FSM (§10.3)

    def _adjacency_ok(self, iface: Interface, n: Neighbor) -> bool:
        """§10.4: form an adjacency on p2p, or when either end is the DR or BDR."""
        if iface.p2p:
            return True
        return (
            iface.dr == iface.ip
            or iface.bdr == iface.ip
            or n.address == iface.dr
            or n.address == iface.bdr
        )

    def _set_nbr_state(self, iface: Interface, n: Neighbor, new: NbrState, now: float) -> None:
        old = n.state
        if old == new:
            return
        n.state = new
        n.last_change = now
        log.info(
            "%s ospf neighbor %s (%s) on %s %s -> %s",
            self.name,
            n.router_id,
            n.address,
            iface.name,
            old.name,
            new.name,
        )
        self._out.append(NeighborChanged(iface.name, n.router_id, n.address, old, new))
        two_way = NbrState.TWO_WAY
        if (old >= two_way) != (new >= two_way):
            self._if_events.append((iface, IfEvent.NEIGHBOR_CHANGE))
        if (old == NbrState.FULL) != (new == NbrState.FULL):
            self._router_lsa_dirty = True

    def _nbr_event(self, iface: Interface, n: Neighbor, ev: NbrEvent, now: float) -> None:
        entry = _transition(NBR_TRANSITIONS, n.state, ev, self.name, "neighbor", n.router_id)
        if entry is None:
            return
        action, nxt = entry
        dead = iface.config.dead_interval
        if (
            action in (NbrAction.START_INACTIVITY, NbrAction.RESTART_INACTIVITY)
            or action == NbrAction.SEND_HELLO
        ):
            n.inactivity_at = now + dead
        elif action == NbrAction.DECIDE_ADJACENCY:
            if self._adjacency_ok(iface, n):
                self._set_nbr_state(iface, n, NbrState.EXSTART, now)
                self._start_exchange(iface, n, now)
            else:
                self._set_nbr_state(iface, n, NbrState.TWO_WAY, now)
            return
        elif action == NbrAction.NEGOTIATED:
            self._set_nbr_state(iface, n, NbrState.EXCHANGE, now)
            self._build_summary(iface, n, now)
            return
        elif action == NbrAction.EXCHANGE_DONE:
            n.dd_rxmt_at = None
            if n.requests:
                self._set_nbr_state(iface, n, NbrState.LOADING, now)
                self._send_lsr(iface, n, now)
            else:
                self._set_nbr_state(iface, n, NbrState.FULL, now)
            return
        elif action == NbrAction.RESTART_EXCHANGE:
            self._clear_lists(n)
            self._set_nbr_state(iface, n, NbrState.EXSTART, now)
            self._start_exchange(iface, n, now)
            return
        elif action == NbrAction.REEVALUATE:
            ok = self._adjacency_ok(iface, n)
            if n.state == NbrState.TWO_WAY and ok:
                self._set_nbr_state(iface, n, NbrState.EXSTART, now)
                self._start_exchange(iface, n, now)
            elif n.state >= NbrState.EXSTART and not ok:
                self._clear_lists(n)
                n.dd_rxmt_at = n.lsr_rxmt_at = n.lsu_rxmt_at = None
                self._set_nbr_state(iface, n, NbrState.TWO_WAY, now)
            return
        elif action == NbrAction.CLEAR_LISTS:
            self._clear_lists(n)
            n.dd_rxmt_at = n.lsr_rxmt_at = n.lsu_rxmt_at = None
        elif action == NbrAction.KILL:
            self._clear_lists(n)
            n.inactivity_at = n.dd_rxmt_at = n.lsr_rxmt_at = n.lsu_rxmt_at = None
            self._set_nbr_state(iface, n, NbrState.DOWN, now)
            iface.neighbors.pop(n.router_id, None)
            return
        if nxt is not None:
            self._set_nbr_state(iface, n, nxt, now)

    def _clear_lists(self, n: Neighbor) -> None:
        n.summary.clear()
        n.requests.clear()
        n.requests_sent.clear()
        n.rxmt.clear()
        n.pending.clear()
        n.last_sent = None
        n.last_rcvd = None

    # ------------------------------------------------------------ receive (§8.2)

    def _receive(
        self, iface: Interface, data: bytes, src: IPv4Address, dst: IPv4Address, now: float
    ) -> None:
        iface.count("rx_packets")
        try:
            pkt = P.decode(data)
        except DecodeError as e:
            if e.field == "ospf.header.checksum":
                iface.count("bad_checksum")
            elif e.field == "ospf.header.version":
                iface.count("bad_version")
            elif "truncated" in e.reason or "length" in e.field:
                iface.count("truncated")
            else:
                iface.count("malformed")
            log.debug("%s dropped packet from %s on %s: %s", self.name, src, iface.name, e)
            return
        if pkt.router_id == self.router_id or src == iface.ip:
            iface.count("own_packet")
            return
        if pkt.area_id != self.area:
            iface.count("wrong_area")
            return
        if dst == ALL_D_ROUTERS and iface.state not in (IfState.DR, IfState.BACKUP):
            iface.count("not_dr")
            return
        if not self._auth_ok(iface, pkt, data):
            iface.count("auth_mismatch")
            return
        if not self._crypto_seq_ok(iface, pkt):
            iface.count("auth_replay")
            return
        if not iface.p2p and src not in iface.config.address.network:
            iface.count("bad_source")
            return
        body = pkt.body
        if isinstance(body, P.Hello):
            self._recv_hello(iface, pkt.router_id, src, body, now)
            self._crypto_seq_ok(iface, pkt)  # note the sequence of a neighbour just met
            return
        n = iface.neighbors.get(pkt.router_id)
        if n is None:
            iface.count("unknown_neighbor")
            return
        if isinstance(body, P.DatabaseDescription):
            self._recv_dd(iface, n, body, now)
        elif isinstance(body, P.LSRequest):
            self._recv_lsr(iface, n, body, now)
        elif isinstance(body, P.LSUpdate):
            self._recv_lsu(iface, n, body, now)
        elif isinstance(body, P.LSAck):
            self._recv_ack(iface, n, body, now)

    def _auth_ok(self, iface: Interface, pkt: P.Packet, data: bytes) -> bool:
        """RFC 2328 Appendix D: the AuType must match; simple password compared; keyed
        MD5 digest verified (the sequence number: :meth:`_crypto_seq_ok`)."""
        cfg = iface.config.auth
        if pkt.auth.autype != cfg.autype:
            return False
        if cfg.autype == AuType.SIMPLE:
            return pkt.auth.data == cfg.key[:8].ljust(8, b"\x00")
        if cfg.autype == AuType.CRYPTOGRAPHIC:
            return pkt.auth.key_id == cfg.key_id and P.verify_md5(data, cfg.key)
        return True

    def _crypto_seq_ok(self, iface: Interface, pkt: P.Packet) -> bool:
        """RFC 2328 §D.4.3: the cryptographic sequence number of a neighbour never
        decreases; a lower one than the last accepted is a replay (equal is accepted, as
        FRR does). Notes the number of an accepted packet."""
        if pkt.auth.autype != AuType.CRYPTOGRAPHIC:
            return True
        n = iface.neighbors.get(pkt.router_id)
        if n is None:
            return True
        if pkt.auth.crypto_seq < n.crypto_seq:
            log.debug(
                "%s dropped packet from %s on %s: crypto sequence %d < %d",
                self.name,
                pkt.router_id,
                iface.name,
                pkt.auth.crypto_seq,
                n.crypto_seq,
            )
            return False
        n.crypto_seq = pkt.auth.crypto_seq
        return True

    # ------------------------------------------------------------ Hello (§9.5, §10.5)

    def _send_hello(self, iface: Interface) -> None:
        nbrs = tuple(
            sorted(
                (n.router_id for n in iface.neighbors.values() if n.state >= NbrState.INIT),
                key=int,
            )
        )
        mask = IPv4Address(int(iface.config.address.netmask))
        hello = P.Hello(
            mask,
            iface.config.hello_interval,
            self.hello_options,
            iface.config.priority,
            iface.config.dead_interval,
            iface.dr,
            iface.bdr,
            nbrs,
        )
        if iface.config.auth.autype == AuType.CRYPTOGRAPHIC:  # a new sequence number each
            self._send(iface, ALL_SPF_ROUTERS, hello)
            return
        sent = iface.hello_sent
        if sent is not None and sent[0] == hello:  # unchanged: the same bytes again
            iface.count("tx_packets")
            self._out.append(Send(iface.name, ALL_SPF_ROUTERS, sent[1]))
            return
        self._send(iface, ALL_SPF_ROUTERS, hello)
        iface.hello_sent = (hello, self._out[-1].data)  # type: ignore[union-attr]

    def _recv_hello(
        self, iface: Interface, rid: IPv4Address, src: IPv4Address, h: P.Hello, now: float
    ) -> None:
        cfg = iface.config
        if not iface.p2p and h.network_mask != IPv4Address(int(cfg.address.netmask)):
            iface.count("hello_mismatch")
            return
        if h.hello_interval != cfg.hello_interval or h.dead_interval != cfg.dead_interval:
            iface.count("hello_mismatch")
            return
        if (h.options & Options.E) != (self.options & Options.E):
            iface.count("hello_mismatch")
            return
        n = iface.neighbors.get(rid)
        if n is None:
            n = Neighbor(rid, src, last_change=now)
            iface.neighbors[rid] = n
        n.address = src
        old_prio, old_dr, old_bdr = n.priority, n.dr, n.bdr
        n.priority, n.options = h.priority, h.options
        n.dr, n.bdr = (ZERO, ZERO) if iface.p2p else (h.dr, h.bdr)
        self._nbr_event(iface, n, NbrEvent.HELLO_RECEIVED, now)
        if self.router_id in h.neighbors:
            self._nbr_event(iface, n, NbrEvent.TWO_WAY_RECEIVED, now)
        else:
            self._nbr_event(iface, n, NbrEvent.ONE_WAY_RECEIVED, now)
            return
        if iface.p2p:
            return
        if old_prio != n.priority:
            self._if_events.append((iface, IfEvent.NEIGHBOR_CHANGE))
        if h.dr == src and h.bdr == ZERO and iface.state == IfState.WAITING:
            self._if_events.append((iface, IfEvent.BACKUP_SEEN))
        elif (h.dr == src) != (old_dr == src):
            self._if_events.append((iface, IfEvent.NEIGHBOR_CHANGE))
        if h.bdr == src and iface.state == IfState.WAITING:
            self._if_events.append((iface, IfEvent.BACKUP_SEEN))
        elif (h.bdr == src) != (old_bdr == src):
            self._if_events.append((iface, IfEvent.NEIGHBOR_CHANGE))

    # ------------------------------------------------------------ DD exchange (§10.6, §10.8)

    def _start_exchange(self, iface: Interface, n: Neighbor, now: float) -> None:
        """Entering ExStart: increment the DD sequence number, claim to be master and send
        an empty DD with I, M and MS set, retransmitted every RxmtInterval."""
        n.dd_seq = (int(now * 1000) + int(self.router_id)) & 0xFFFFFFFF or 1
        n.master = True
        n.last_rcvd = None
        n.last_sent_more = True
        n.dd_options = None
        dd = _dd_body(iface.config.mtu, self.options, DDFlags.I | DDFlags.M | DDFlags.MS, n.dd_seq)
        self._send_dd(iface, n, dd, now)

    def _send_dd(self, iface: Interface, n: Neighbor, dd: P.Encoded, now: float) -> None:
        n.last_sent = dd
        self._send(iface, n.address, dd)
        n.dd_rxmt_at = now + iface.config.rxmt_interval if n.master else None

    def _build_summary(self, iface: Interface, n: Neighbor, now: float) -> None:
        """§10.3 NegotiationDone: the database summary list; MaxAge LSAs go to the
        retransmission list instead. Opaque LSAs only to opaque-capable neighbors."""
        n.summary = summary = []
        opaque = _opaque_capable(n)
        for key, e in self.lsdb.entries():
            if not opaque and key.ls_type in OPAQUE_TYPES:
                continue
            age = e.age(now)
            if age >= MAX_AGE:
                n.rxmt[key] = e.lsa
                if n.lsu_rxmt_at is None:
                    n.lsu_rxmt_at = now + iface.config.rxmt_interval
            else:
                summary.append(e.lsa.encode_aged(age)[:LSA_HEADER_LEN])

    def _next_dd(self, iface: Interface, n: Neighbor, flags: int) -> P.Encoded:
        room = (iface.config.mtu - IP_HEADER_LEN - HEADER_LEN - 8) // LSA_HEADER_LEN
        chunk, n.summary = n.summary[:room], n.summary[room:]
        n.last_sent_more = bool(n.summary)
        if n.last_sent_more:
            flags |= DDFlags.M
        return _dd_body(iface.config.mtu, self.options, flags, n.dd_seq, chunk)

    def _recv_dd(
        self, iface: Interface, n: Neighbor, dd: P.DatabaseDescription, now: float
    ) -> None:
        """Receiving a Database Description packet (§10.6), by the neighbor's state."""
        if dd.mtu > iface.config.mtu:
            iface.count("mtu_mismatch")
            return
        if n.state == NbrState.INIT:
            self._nbr_event(iface, n, NbrEvent.TWO_WAY_RECEIVED, now)
        if n.state in (NbrState.DOWN, NbrState.ATTEMPT, NbrState.INIT, NbrState.TWO_WAY):
            return  # Down, Attempt: rejected; 2-Way (Init with no adjacency to form): ignored
        this = (dd.flags, dd.options, dd.dd_seq)
        if n.state == NbrState.EXSTART:
            accepted = self._dd_exstart(iface, n, dd, this, now)
        elif n.state == NbrState.EXCHANGE:
            accepted = self._dd_exchange(iface, n, dd, this, now)
        else:
            self._dd_loading_or_full(iface, n, this, now)
            accepted = False
        if accepted:
            self._dd_accept(iface, n, dd, this, now)

    def _dd_exstart(
        self,
        iface: Interface,
        n: Neighbor,
        dd: P.DatabaseDescription,
        this: tuple[int, int, int],
        now: float,
    ) -> bool:
        """ExStart: the master/slave negotiation (§10.6). True when this router is master
        and the packet is to be accepted as the first of the exchange."""
        i_bit, m_bit, ms_bit = _dd_bits(dd)
        if i_bit and m_bit and ms_bit and not dd.headers and int(n.router_id) > int(self.router_id):
            # the neighbor is master: we are slave and adopt its sequence number
            n.master = False
            n.dd_seq = dd.dd_seq
            n.dd_options = dd.options
            n.dd_rxmt_at = None
            self._nbr_event(iface, n, NbrEvent.NEGOTIATION_DONE, now)
            n.last_rcvd = this
            self._send_dd(iface, n, self._next_dd(iface, n, 0), now)
            return False
        if (
            not i_bit
            and not ms_bit
            and dd.dd_seq == n.dd_seq
            and int(n.router_id) < int(self.router_id)
        ):
            # the neighbor is slave: it acknowledges our sequence number
            n.master = True
            n.dd_options = dd.options
            self._nbr_event(iface, n, NbrEvent.NEGOTIATION_DONE, now)
            return True
        return False

    def _dd_exchange(
        self,
        iface: Interface,
        n: Neighbor,
        dd: P.DatabaseDescription,
        this: tuple[int, int, int],
        now: float,
    ) -> bool:
        """Exchange (§10.6): a duplicate is answered (slave) or discarded (master); a wrong
        MS bit, an I bit, changed options or an unexpected sequence number is
        SeqNumberMismatch. True when the packet is the next one in the sequence."""
        if this == n.last_rcvd:
            self._dd_duplicate(iface, n)
            return False
        i_bit, _, ms_bit = _dd_bits(dd)
        if ms_bit == n.master or i_bit or dd.options != n.dd_options:
            self._nbr_event(iface, n, NbrEvent.SEQ_NUMBER_MISMATCH, now)
            return False
        expected = n.dd_seq if n.master else (n.dd_seq + 1) & 0xFFFFFFFF
        if dd.dd_seq != expected:
            self._nbr_event(iface, n, NbrEvent.SEQ_NUMBER_MISMATCH, now)
            return False
        return True

    def _dd_loading_or_full(
        self, iface: Interface, n: Neighbor, this: tuple[int, int, int], now: float
    ) -> None:
        """Loading or Full (§10.6): only a duplicate is expected (answered by the slave);
        anything else is SeqNumberMismatch."""
        if this == n.last_rcvd:
            self._dd_duplicate(iface, n)
            return
        self._nbr_event(iface, n, NbrEvent.SEQ_NUMBER_MISMATCH, now)

    def _dd_duplicate(self, iface: Interface, n: Neighbor) -> None:
        """A duplicate DD: the slave sends its last DD again, the master discards it."""
        if not n.master and n.last_sent is not None:
            self._resend_dd(iface, n)

    def _dd_accept(
        self,
        iface: Interface,
        n: Neighbor,
        dd: P.DatabaseDescription,
        this: tuple[int, int, int],
        now: float,
    ) -> None:
        """The packet is accepted (§10.6, "the next packet in the sequence"): an unknown LS
        type is SeqNumberMismatch, the LSA headers newer than our copies go to the request
        list; then the master sends the next DD or ends the exchange, and the slave answers
        with its next DD (sent as §10.8 says)."""
        n.last_rcvd = this
        for h in dd.headers:
            if h.ls_type not in KNOWN_LS_TYPES:
                self._nbr_event(iface, n, NbrEvent.SEQ_NUMBER_MISMATCH, now)
                return
            key = h.key
            e = self.lsdb.get(key)
            if e is None or _newer_than_copy(h, e, now):
                n.requests[key] = h
        m_bit = bool(dd.flags & DDFlags.M)
        if n.master:
            n.dd_seq = (n.dd_seq + 1) & 0xFFFFFFFF
            if not n.last_sent_more and not m_bit:
                self._nbr_event(iface, n, NbrEvent.EXCHANGE_DONE, now)
            else:
                self._send_dd(iface, n, self._next_dd(iface, n, DDFlags.MS), now)
        else:
            n.dd_seq = dd.dd_seq
            self._send_dd(iface, n, self._next_dd(iface, n, 0), now)
            if not m_bit and not n.last_sent_more:
                self._nbr_event(iface, n, NbrEvent.EXCHANGE_DONE, now)
        if n.state == NbrState.EXCHANGE and n.requests and not n.requests_sent:
            self._send_lsr(iface, n, now)

    def _resend_dd(self, iface: Interface, n: Neighbor) -> None:
        assert n.last_sent is not None
        self._send(iface, n.address, n.last_sent)

    # ------------------------------------------------------------ LS Request (§10.7, §10.9)

    def _send_lsr(self, iface: Interface, n: Neighbor, now: float) -> None:
        room = (iface.config.mtu - IP_HEADER_LEN - HEADER_LEN) // 12
        # not asked again: what the neighbor sent and waits to be processed (deferred)
        wanted = (k for k in n.requests if k not in n.pending) if n.pending else iter(n.requests)
        keys = list(itertools.islice(wanted, room))
        n.requests_sent = set(keys)
        if not keys:
            n.lsr_rxmt_at = None
            return
        self._send(iface, n.address, P.LSRequest(tuple(keys)))
        n.lsr_rxmt_at = now + iface.config.rxmt_interval

    def _recv_lsr(self, iface: Interface, n: Neighbor, lsr: P.LSRequest, now: float) -> None:
        if n.state < NbrState.EXCHANGE:
            return
        lsas = []
        for key in lsr.requests:
            e = self.lsdb.get(key)
            if e is None:
                self._nbr_event(iface, n, NbrEvent.BAD_LS_REQ, now)
                return
            lsas.append(self._aged_for_send(iface, e, now))
        self._send_lsus(iface, n.address, lsas)

    def _aged_for_send(self, iface: Interface, e: Entry, now: float) -> bytes:
        """The LSA's bytes with its age incremented by InfTransDelay (§13.3 (5))."""
        return e.lsa.encode_aged(e.age(now) + iface.config.transmit_delay)

    def _send_lsus(self, iface: Interface, dst: IPv4Address, lsas: list[bytes]) -> None:
        """LS Updates of LSAs already encoded, as few as the MTU allows."""
        room = iface.config.mtu - IP_HEADER_LEN - HEADER_LEN - 4
        batch: list[bytes] = []
        size = 0
        for a in lsas:
            if batch and size + len(a) > room:
                self._send(iface, dst, P.ls_update_payload(batch))
                batch, size = [], 0
            batch.append(a)
            size += len(a)
        if batch:
            self._send(iface, dst, P.ls_update_payload(batch))

    # ------------------------------------------------------------ LS Update (§13)

    def _any_exchanging(self) -> bool:
        return any(n.state in (NbrState.EXCHANGE, NbrState.LOADING) for _, n in self.neighbors())

    def _recv_lsu(self, iface: Interface, n: Neighbor, lsu: P.LSUpdate, now: float) -> None:
        """§13: each LSA of an LS Update in turn (:meth:`_recv_lsa`), the direct
        acknowledgments in one LS Ack. With :attr:`defer_updates` the LSAs newer than the
        database's copies wait for :class:`~gmpls.ospf.events.ProcessUpdates`, as one
        group per packet; what the database already answers (a duplicate: an implied or
        direct acknowledgment; an older instance: ours sent back) is done at once."""
        if n.state < NbrState.EXCHANGE:
            return
        direct_acks: list[LSA] = []
        later: list[LSA] | None = [] if self.defer_updates else None
        for lsa in lsu.lsas:
            if not self._recv_lsa(iface, n, lsa, now, direct_acks, later):
                return  # BadLSReq: the exchange starts again, nothing acknowledged
        if direct_acks:
            self._send(iface, n.address, _ack_body(direct_acks))
        if later:
            self._updates.append((iface, n, later))
        self._check_loading(iface, n, now)

    def _recv_lsa(
        self,
        iface: Interface,
        n: Neighbor,
        lsa: LSA,
        now: float,
        direct_acks: list[LSA],
        later: list[LSA] | None,
    ) -> bool:
        """§13 steps (1)-(8) for one received LSA; False when it is a bad LS request (the
        caller drops the rest of the packet). Given ``later`` (deferring), an LSA newer than
        the database's copy is not installed but put there and on the neighbor's
        :attr:`Neighbor.pending`; a copy of an instance already waiting from the same
        neighbor, or an older one, is dropped unacknowledged (the waiting one will be
        acknowledged when it is installed), a newer one replaces it."""
        h = lsa.header
        key = lsa.key
        if not lsa.checksum_ok:
            # (1) a bad LSA checksum: this LSA is discarded, the others are processed
            iface.count("bad_lsa_checksum")
            log.debug("%s dropped LSA %s from %s: bad checksum", self.name, key, n.router_id)
            return True
        if h.ls_type not in KNOWN_LS_TYPES:
            return True  # (2) unknown LS type
        if later is not None and n.pending:
            held = n.pending.get(key)
            if held is not None:
                if compare_instances(h, held.header) <= 0:
                    self.lsu_counters["dropped_waiting"] += 1
                    return True
                del n.pending[key]  # superseded: dropped as if lost
                self.lsu_counters["superseded"] += 1
        e = self.lsdb.get(key)
        # (4) MaxAge, not in the database, nobody exchanging: acknowledge and discard
        if h.age >= MAX_AGE and e is None and not self._any_exchanging():
            direct_acks.append(lsa)
            return True
        if e is None:
            cmp = 1
        else:  # compared with the database copy at its current age (no header made)
            cur_age = e.age(now)
            cur = e.lsa.header
            cmp = compare_fields(h.seq, h.checksum, h.age, cur.seq, cur.checksum, cur_age)
        if cmp > 0:
            # (5)(a) MinLSArrival
            if e is not None and now - e.installed < MIN_LS_ARRIVAL:
                return True
            if later is not None:
                n.pending[key] = lsa
                later.append(lsa)
                self.lsu_counters["deferred"] += 1
            else:
                self._install_newer(iface, n, lsa, now)
            return True
        # (6) an instance we requested but older or equal: BadLSReq
        if key in n.requests:
            self._nbr_event(iface, n, NbrEvent.BAD_LS_REQ, now)
            return False
        assert e is not None
        if cmp == 0:
            # (7) the same instance: implied acknowledgment or direct ack
            mine = n.rxmt.pop(key, None)
            if mine is not None:
                if (iface.state == IfState.BACKUP and n.address == iface.dr) or (
                    self._flood_queue and not self._flood_will_go(iface, key, mine)
                ):
                    # Table 19, and: our flooding of it has not left yet and now will
                    # not (_send_floods), so it does not acknowledge theirs
                    self._delayed_ack(iface, lsa, now)
            else:
                direct_acks.append(lsa)
            return True
        # (8) the database copy is more recent: send it back (unless MaxAge/MaxSeq)
        if cur_age >= MAX_AGE and cur.seq == MAX_SEQUENCE:
            return True
        if now - e.installed >= MIN_LS_ARRIVAL:
            self._send_lsus(iface, n.address, [self._aged_for_send(iface, e, now)])
        return True

    def _install_newer(self, iface: Interface, n: Neighbor, lsa: LSA, now: float) -> None:
        """§13 (5)(b)-(f): a received instance newer than the database's."""
        key = lsa.key
        # (5)(c) remove the old copy from the retransmission lists (done first: the
        # lists are keyed by LSA, so (b) puts the new instance in its place),
        # (b) flood the new one, (d) install it
        for i in self.interfaces.values():
            for m in i.neighbors.values():
                m.rxmt.pop(key, None)
        flooded_back = self._flood(lsa, iface, n, now)
        self._install_received(iface, n, lsa, flooded_back, now)
        # (5)(e) acknowledge (§13.5): a delayed ack unless it was flooded back out;
        # the Backup DR acks only what came from the DR (the DR acks the rest)
        if not flooded_back and (iface.state != IfState.BACKUP or n.address == iface.dr):
            self._delayed_ack(iface, lsa, now)
        # (5)(f) a self-originated LSA (§13.4)
        if self._self_originated(key):
            self._self_originated_received(lsa, now)

    def _process_updates(self, packets: int, now: float) -> None:
        """:class:`~gmpls.ospf.events.ProcessUpdates`: the deferred LSAs of up to
        ``packets`` received LS Updates, each still waiting (not replaced by a newer copy
        from the same neighbor, its adjacency not reset) compared with the database again
        (it may have changed meanwhile) and processed as §13 says; the direct
        acknowledgments of a group in one LS Ack, as for a packet. A group with nothing
        left waiting does not count."""
        done = 0
        while self._updates and done < packets:
            iface, n, lsas = self._updates.popleft()
            if (
                self.interfaces.get(iface.name) is not iface
                or iface.state in _SILENT
                or iface.neighbors.get(n.router_id) is not n
                or n.state < NbrState.EXCHANGE
            ):
                continue
            direct_acks: list[LSA] = []
            live = False
            for lsa in lsas:
                if n.pending.get(lsa.key) is not lsa:
                    continue
                del n.pending[lsa.key]
                live = True
                if not self._recv_lsa(iface, n, lsa, now, direct_acks, None):
                    break
            else:
                if direct_acks:
                    self._send(iface, n.address, _ack_body(direct_acks))
                self._check_loading(iface, n, now)
            done += live

    def _install_received(
        self, iface: Interface, n: Neighbor, lsa: LSA, flooded_back: bool, now: float
    ) -> None:
        """§13 (5)(d): install a received instance. Its body is not looked at (§13 does
        not), except for the Router and Network LSAs SPF reads: one of those that does not
        decode is counted here; opaque bodies are left to their users (the PCE's TED)."""
        self._install(lsa, now)
        if lsa.header.ls_type in (LsType.ROUTER, LsType.NETWORK) and not lsa.usable:
            iface.count("unusable_lsa")
            log.debug(
                "%s LSA %s from %s not decodable: %s",
                self.name,
                lsa.key,
                n.router_id,
                lsa.body.reason,
            )
        log.debug(
            "%s installed %s seq %x from %s (flooded back: %s)",
            self.name,
            lsa.key,
            lsa.header.seq & 0xFFFFFFFF,
            n.router_id,
            flooded_back,
        )

    def _check_loading(self, iface: Interface, n: Neighbor, now: float) -> None:
        if n.state not in (NbrState.EXCHANGE, NbrState.LOADING):
            return
        n.requests_sent &= set(n.requests)
        if n.state == NbrState.LOADING and not n.requests:
            n.lsr_rxmt_at = None
            self._nbr_event(iface, n, NbrEvent.LOADING_DONE, now)
        elif n.requests and not n.requests_sent:
            self._send_lsr(iface, n, now)

    def _flood(
        self, lsa: LSA, from_iface: Interface | None, from_nbr: Neighbor | None, now: float
    ) -> bool:
        """§13.3: put ``lsa`` on the retransmission list of every adjacency that should
        get it and send it; True if it went back out of the receiving interface."""
        key = lsa.key
        opaque = key.ls_type in OPAQUE_TYPES
        flooded_back = False
        for iface in self.interfaces.values():
            if iface.state in _SILENT or iface.config.passive:
                continue
            added = False
            for m in list(iface.neighbors.values()):
                if m.state < _EXCHANGE:
                    continue
                if opaque and not (m.options if m.dd_options is None else m.dd_options) & _O:
                    continue  # not opaque capable (RFC 5250 §3, as _opaque_capable says)
                if m.requests and m.state < _FULL and key in m.requests:
                    req = m.requests[key]
                    if _newer(req, lsa.header):
                        continue
                    del m.requests[key]
                    self._check_loading(iface, m, now)
                    if not _newer(lsa.header, req):
                        continue
                if m is from_nbr:
                    continue
                m.rxmt[key] = lsa
                if m.lsu_rxmt_at is None:
                    m.lsu_rxmt_at = now + iface.config.rxmt_interval
                added = True
            if not added:
                continue
            if iface is from_iface and from_nbr is not None:
                if not iface.p2p and from_nbr.address in (iface.dr, iface.bdr):
                    continue
                if iface.state == IfState.BACKUP:
                    continue
                flooded_back = True
            # queued: the LSAs flooded within the pacing interval leave in as few LS
            # Updates as the MTU allows (_finish, _send_floods); a newer instance queued
            # before the older left replaces it
            q = self._flood_queue.get(iface.name)
            if q is None:
                q = self._flood_queue[iface.name] = {}
            prev = q.get(key)
            must = flooded_back and iface is from_iface
            q[key] = (lsa, must or (prev is not None and prev[0] is lsa and prev[1]))
        return flooded_back

    def _delayed_ack(self, iface: Interface, lsa: LSA, now: float) -> None:
        iface.acks.append(lsa)
        if iface.ack_at is None:
            iface.ack_at = now + min(1.0, iface.config.rxmt_interval / 2)

    def _recv_ack(self, iface: Interface, n: Neighbor, ack: P.LSAck, now: float) -> None:
        """§13.7: remove acknowledged instances from the retransmission list."""
        if n.state < NbrState.EXCHANGE:
            return
        for h in ack.headers:
            key = h.key
            mine = n.rxmt.get(key)
            if mine is not None and compare_instances(h, mine.header) == 0:
                del n.rxmt[key]
        if not n.rxmt:
            n.lsu_rxmt_at = None

    # ------------------------------------------------------------ origination (§12.4, §13.4)

    def _self_originated(self, key: LSAKey) -> bool:
        if key.adv_router == self.router_id:
            return True
        return key.ls_type == LsType.NETWORK and any(
            i.ip == key.ls_id for i in self.interfaces.values()
        )

    def _self_originated_received(self, lsa: LSA, now: float) -> None:
        """§13.4: a newer instance of our own LSA came back: re-originate what we want
        with a higher sequence number, or flush what we no longer originate."""
        key = lsa.key
        wanted = self._wanted.get(key)
        if wanted is not None and key.adv_router == self.router_id:
            self._originated_at.pop(key, None)  # no MinLSInterval wait for this one
            self._originate(key, wanted[0], wanted[1], now, force=True)
        elif lsa.header.age < MAX_AGE:
            self._premature_age(key, now)

    def _originate(
        self, key: LSAKey, body: Any, options: int, now: float, force: bool = False
    ) -> None:
        self._wanted[key] = (body, options)
        e = self.lsdb.get(key)
        if (
            e is not None
            and not force
            and e.age(now) < MAX_AGE
            and e.lsa.body == body
            and e.lsa.header.options == options
        ):
            self._pending.pop(key, None)
            return
        last = self._originated_at.get(key)
        # compared as the deadline itself: ``now - last < 5`` can hold at ``now == last + 5``
        # (rounding), and the timer set for then would fire again and again
        if last is not None and now < last + MIN_LS_INTERVAL:
            self._pending[key] = last + MIN_LS_INTERVAL  # §12.4: at most once per MinLSInterval
            return
        self._pending.pop(key, None)
        if key in self._wrapping:
            return  # the MaxSequenceNumber instance is being flushed; see _age
        seq = INITIAL_SEQUENCE
        if e is not None:
            if e.lsa.header.seq >= MAX_SEQUENCE:
                self._wrap(key, now)
                return
            seq = e.lsa.header.seq + 1
        lsa = LSA.build(key.ls_type, key.ls_id, key.adv_router, seq, body, options=options)
        self._originated_at[key] = now
        for _, m in self.neighbors():
            m.rxmt.pop(key, None)
        self._install(lsa, now)
        self._flood(lsa, None, None, now)

    def _wrap(self, key: LSAKey, now: float) -> None:
        """§12.1.6: the sequence number would pass MaxSequenceNumber. The instance with
        MaxSequenceNumber is flushed first (premature aging, §14.1); once every adjacency
        has acknowledged it and it has left the database (:meth:`_age`), the LSA is
        originated again with InitialSequenceNumber."""
        log.info("%s LSA %s reached MaxSequenceNumber: flushing it first", self.name, key)
        self._wrapping.add(key)
        self._originated_at.pop(key, None)  # no refresh of the instance being flushed
        self._premature_age(key, now)

    def _premature_age(self, key: LSAKey, now: float) -> None:
        """§14.1: flush an LSA by flooding it with age MaxAge."""
        e = self.lsdb.get(key)
        if e is None or e.age(now) >= MAX_AGE:
            return
        lsa = e.lsa.with_age(MAX_AGE)
        for _, m in self.neighbors():
            m.rxmt.pop(key, None)
        self._install(lsa, now)
        self._flood(lsa, None, None, now)

    def _flush_own(self, key: LSAKey, now: float) -> None:
        self._wanted.pop(key, None)
        self._pending.pop(key, None)
        self._originated_at.pop(key, None)
        self._premature_age(key, now)

    def _router_lsa_body(self) -> RouterLSA:
        """§12.4.1: one link per interface state."""
        links: list[RouterLink] = []
        for iface in self.interfaces.values():
            cfg = iface.config
            net = cfg.address.network
            stub = RouterLink(
                net.network_address, IPv4Address(int(net.netmask)), RouterLinkType.STUB, cfg.cost
            )
            if iface.state == IfState.DOWN:
                continue
            if cfg.passive or iface.state == IfState.LOOPBACK:
                links.append(stub)
            elif iface.p2p:
                for n in iface.neighbors.values():
                    if n.state == NbrState.FULL:
                        links.append(
                            RouterLink(
                                n.router_id, iface.ip, RouterLinkType.POINT_TO_POINT, cfg.cost
                            )
                        )
                links.append(stub)
            elif iface.state == IfState.WAITING:
                links.append(stub)
            else:
                full_dr = any(
                    n.state == NbrState.FULL and n.address == iface.dr
                    for n in iface.neighbors.values()
                )
                me_dr_adjacent = iface.state == IfState.DR and any(
                    n.state == NbrState.FULL for n in iface.neighbors.values()
                )
                if full_dr or me_dr_adjacent:
                    links.append(RouterLink(iface.dr, iface.ip, RouterLinkType.TRANSIT, cfg.cost))
                else:
                    links.append(stub)
        for prefix, cost in self.stub_networks:
            links.append(
                RouterLink(
                    prefix.network_address,
                    IPv4Address(int(prefix.netmask)),
                    RouterLinkType.STUB,
                    cost,
                )
            )
        return RouterLSA(0, tuple(links))

    def _originate_router_lsa(self, now: float) -> None:
        key = LSAKey(LsType.ROUTER, self.router_id, self.router_id)
        self._originate(key, self._router_lsa_body(), Options.E, now)

    def _update_network_lsa(self, iface: Interface, now: float) -> None:
        """§12.4.2: the DR originates a Network LSA when fully adjacent to some router."""
        key = LSAKey(LsType.NETWORK, iface.ip, self.router_id)
        full = sorted(
            (n.router_id for n in iface.neighbors.values() if n.state == NbrState.FULL), key=int
        )
        if iface.state == IfState.DR and full and not iface.p2p:
            body = NetworkLSA(
                IPv4Address(int(iface.config.address.netmask)), (self.router_id, *full)
            )
            self._originate(key, body, Options.E, now)
        elif key in self._wanted or (
            (e := self.lsdb.get(key)) is not None and e.age(now) < MAX_AGE
        ):
            self._flush_own(key, now)

    # ------------------------------------------------------------ timers

    def _timers(self, now: float) -> None:
        for iface in list(self.interfaces.values()):
            if iface.hello_at is not None and iface.hello_at <= now:
                self._send_hello(iface)
                iface.hello_at = now + iface.config.hello_interval
            if iface.wait_at is not None and iface.wait_at <= now:
                iface.wait_at = None
                self._if_event(iface, IfEvent.WAIT_TIMER, now)
            if iface.ack_at is not None and iface.ack_at <= now:
                iface.ack_at = None
                acks, iface.acks = iface.acks, []
                if acks:
                    room = (iface.config.mtu - IP_HEADER_LEN - HEADER_LEN) // LSA_HEADER_LEN
                    for i in range(0, len(acks), room):
                        self._send(iface, self._flood_dst(iface), _ack_body(acks[i : i + room]))
            for n in list(iface.neighbors.values()):
                if n.inactivity_at is not None and n.inactivity_at <= now:
                    self._nbr_event(iface, n, NbrEvent.INACTIVITY_TIMER, now)
                    continue
                if n.dd_rxmt_at is not None and n.dd_rxmt_at <= now:
                    if (
                        n.master
                        and n.state in (NbrState.EXSTART, NbrState.EXCHANGE)
                        and n.last_sent
                    ):
                        self._resend_dd(iface, n)
                        n.dd_rxmt_at = now + iface.config.rxmt_interval
                    else:
                        n.dd_rxmt_at = None
                if n.lsr_rxmt_at is not None and n.lsr_rxmt_at <= now:
                    n.requests_sent.clear()
                    self._send_lsr(iface, n, now)
                if n.lsu_rxmt_at is not None and n.lsu_rxmt_at <= now:
                    self._retransmit(iface, n, now)
        # LSDB: MinLSInterval-deferred originations, refresh, aging (§12.4, §14)
        for key, at in list(self._pending.items()):
            if at <= now:
                del self._pending[key]
                if key in self._wanted:
                    body, options = self._wanted[key]
                    self._originate(key, body, options, now)
        for key, at in list(self._originated_at.items()):
            if at + LS_REFRESH_TIME <= now:
                if key in self._wanted:
                    body, options = self._wanted[key]
                    self._originate(key, body, options, now, force=True)
                else:
                    del self._originated_at[key]
        # the LSDB scan only when an LSA may have reached MaxAge or one waits for removal
        # (_next_age_check is kept by _finish and _age; a Tick for a Hello skips it)
        if self._next_age_check is not None and now >= self._next_age_check:
            self._age(now)

    def _retransmit(self, iface: Interface, n: Neighbor, now: float) -> None:
        if not n.rxmt or n.state < NbrState.EXCHANGE:
            n.lsu_rxmt_at = None
            return
        lsas = []
        for key, lsa in n.rxmt.items():
            e = self.lsdb.get(key)
            if e is not None and e.lsa.header.seq == lsa.header.seq:
                lsas.append(self._aged_for_send(iface, e, now))
            else:
                lsas.append(lsa.encode())
        self.lsu_counters["retransmitted"] += len(lsas)
        self._send_lsus(iface, n.address, lsas)
        n.lsu_rxmt_at = now + iface.config.rxmt_interval

    def _age(self, now: float) -> None:
        """§14: LSAs reaching MaxAge are flooded; MaxAge LSAs no longer on any
        retransmission list are removed once no neighbor is exchanging databases."""
        exchanging = self._any_exchanging()
        for key, e in self.lsdb.entries():
            if e.lsa.header.age < MAX_AGE and e.age(now) >= MAX_AGE:
                lsa = e.lsa.with_age(MAX_AGE)
                self._install(lsa, now)
                self._flood(lsa, None, None, now)
            elif (
                e.lsa.header.age >= MAX_AGE
                and not exchanging
                and not any(key in m.rxmt for _, m in self.neighbors())
            ):
                self._remove(key)
                if key not in self._wanted:
                    self._originated_at.pop(key, None)
                    self._wrapping.discard(key)
                elif key in self._wrapping:
                    # §12.1.6: the MaxSequenceNumber instance is gone everywhere
                    self._wrapping.discard(key)
                    self._originated_at.pop(key, None)
                    body, options = self._wanted[key]
                    self._originate(key, body, options, now, force=True)
        self._next_age_check = self._age_check_time(now)

    # ------------------------------------------------------------ SPF (§16)

    def _neighbor_address(self, ifname: str, rid: IPv4Address) -> IPv4Address | None:
        iface = self.interfaces.get(ifname)
        n = iface.neighbors.get(rid) if iface else None
        return n.address if n else None

    def _run_spf(self) -> None:
        self.spf_runs += 1
        ifs = [
            (i.name, i.config.address)
            for i in self.interfaces.values()
            if i.state not in (IfState.DOWN, IfState.LOOPBACK)
        ]
        # router and network LSAs only: the opaque ones (TE, RI, QKD links: most of a
        # large lab's LSDB) carry no topology for the route computation
        entries = [e.lsa for k, e in self.lsdb.entries() if k.ls_type in _SPF_TYPES]
        routes = spf.compute(
            entries, self.router_id, ifs, self._neighbor_address, self.area, self.stub_names
        )
        if routes != self.routes:
            self.routes = routes
            self._out.append(RoutesChanged(routes))


#: the LSA types the route computation reads
_SPF_TYPES = frozenset({LsType.ROUTER, LsType.NETWORK})

_S = TypeVar("_S", bound=Enum)
_E = TypeVar("_E", bound=Enum)


def _transition(
    table: Mapping[tuple[_S, _E], tuple[str, _S | None]],
    state: _S,
    ev: _E,
    router: str,
    kind: str,
    who: object,
) -> tuple[str, _S | None] | None:
    """The (action, next state) of an FSM table (:mod:`gmpls.ospf.fsm`) for ``ev`` in
    ``state``; None, logged, where the table has no entry (the event is ignored there)."""
    entry = table.get((state, ev))
    if entry is None:
        log.debug("%s %s %s: event %s ignored in %s", router, kind, who, ev.name, state.name)
    return entry


def _ip(a: IPv4Address | str) -> IPv4Address:
    """``a`` as an address (IPv4Address of an IPv4Address formats and parses it again)."""
    return a if isinstance(a, IPv4Address) else IPv4Address(a)


def _awaited(iface: Interface, key: LSAKey, lsa: LSA) -> bool:
    """Some neighbor on ``iface`` still has this instance on its retransmission list."""
    return any(m.rxmt.get(key) is lsa for m in iface.neighbors.values())


def _opaque_capable(n: Neighbor) -> bool:
    """RFC 5250 §3: the O bit of the neighbor's Database Description (or Hello)."""
    opts = n.dd_options if n.dd_options is not None else n.options
    return bool(opts & Options.O)


def _dd_bits(dd: P.DatabaseDescription) -> tuple[bool, bool, bool]:
    """The I (init), M (more) and MS (master) bits of a Database Description packet."""
    return bool(dd.flags & DDFlags.I), bool(dd.flags & DDFlags.M), bool(dd.flags & DDFlags.MS)


def _newer(a: LSAHeader, b: LSAHeader) -> bool:
    """True when ``a`` is a more recent instance than ``b`` (RFC 2328 §13.1)."""
    return compare_instances(a, b) > 0


def _newer_than_copy(h: LSAHeader, e: Entry, now: float) -> bool:
    """True when ``h`` is a more recent instance than the database copy ``e`` at its
    current age (§13.1; no header is made for the copy)."""
    c = e.lsa.header
    return compare_fields(h.seq, h.checksum, h.age, c.seq, c.checksum, e.age(now)) > 0


_DD_FIXED = struct.Struct("!HBBI")


def _dd_body(
    mtu: int, options: int, flags: int, seq: int, headers: Sequence[bytes] = ()
) -> P.Encoded:
    """A Database Description body (§A.3.3) of LSA headers already encoded: the bytes
    :class:`~gmpls.ospf.packet.DatabaseDescription` encodes."""
    payload = _DD_FIXED.pack(mtu, options, flags, seq) + b"".join(headers)
    return P.Encoded(PacketType.DB_DESCRIPTION, payload)


def _ack_body(lsas: list[LSA]) -> P.Encoded:
    """An LS Ack body (§A.3.6): the headers of ``lsas`` as received."""
    return P.Encoded(PacketType.LS_ACK, b"".join(a.header_bytes() for a in lsas))


__all__ = [
    "COUNTERS",
    "Interface",
    "LsdbListener",
    "Neighbor",
    "OspfRouter",
]
