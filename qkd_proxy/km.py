"""The key manager of a site, sans-I/O: ``handle(event, now) -> actions``
(docs/qkd-network.md).

A :class:`KeyManager` serves the node(s) of its site over ETSI 004 and holds one
:class:`~qkd_proxy.core.ProxyCore` per QKD link of the site: each link core keeps its own
authenticated KM channel (gmpls.qkd.sync, its own secret and epochs), its own IDQ3P
device and the direct sessions toward the far site's nodes, exactly as the one proxy of
the paper did. The key manager

* routes every datagram to its link: a KM-channel frame by its source (the far KM), a
  device reply by its source (the link's emulator), an SAE request by its destination
  (QKD_OPEN) or its key_handle (the link whose core holds the session);
* polls each link's emulator with IDQ3P STATUS (``status_poll``, about once a second) and
  greets each far KM as often, so it knows each link's stock and whether it is up (the
  emulator answered and the far KM was heard within ``dead_after``);
* answers the site's nodes' KM status requests (gmpls.qkd.kmstatus, UDP 5425);
* relays keys between sites that share no QKD link (trusted-node relay, one-time pad hop by
  hop). The relay is a client of the link cores' own ETSI 004 interface: on every hop the
  two KMs hold a session of their own (the *hop session*, opened by the upstream KM from the
  internal address :data:`INTERNAL`, joined by the downstream KM), so index i of a relay
  is index i of every hop session and each hop consumes the key length per key. The relay
  messages (gmpls.qkd.sync RELAY_*) travel on the KM channels, authenticated like the rest.

Key bytes and relay payloads never reach a log event.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import itertools
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from gmpls.core import Tick
from gmpls.errors import DecodeError, EncodeError
from gmpls.qkd import etsi004 as etsi
from gmpls.qkd import idq3p as idq
from gmpls.qkd import kmstatus as ks
from gmpls.qkd import sync
from gmpls.qkd.etsi004 import Status
from gmpls.qkd.etsi014.core import ADDR as ETSI014
from gmpls.qkd.etsi014.core import NODE as NODE014
from qkd_proxy.core import ProxyConfig, ProxyCore, handle_hex
from qkd_proxy.events import Action, Addr, Channel, Datagram, Event, Greet, Log, RelayOut, Send
from qkd_proxy.replies import ReplyCache

#: the source address of the key manager's own calls into its link cores (hop sessions);
#: no datagram from the network has it
INTERNAL: Addr = ("0.0.0.0", 0)
_INTERNAL_IP = IPv4Address(INTERNAL[0])
#: the key manager's ETSI 014 interface calls in from ETSI014 (docs/etsi014.md): its
#: sessions name NODE014 as their opener, and only it may join those
_ETSI014_IP = IPv4Address(ETSI014[0])
#: RELAY_KEY indexes a relay remembers to tell a repeat (at least)
MAX_SEEN = 4096
#: a hop key out of stock is asked again after this long (s)
RETRY = 0.25
R = sync.Result


@dataclass(frozen=True, slots=True)
class KmLink:
    """One QKD link of the site: its link core's config (far KM, KM channel, secret,
    device), the far site's ID, and its secret-key rate and buffer (0: as the emulator
    tells them)."""

    name: str
    proxy: ProxyConfig
    far_site: IPv4Address
    rate_bps: int = 0
    buffer_bits: int = 0


@dataclass(frozen=True, slots=True)
class KmConfig:
    name: str
    #: the site's ID: the router ID of its site node
    site: IPv4Address
    #: every address of every node this site serves (the only users of ETSI 004 and status)
    served_addrs: frozenset[IPv4Address]
    #: the router IDs of the nodes served here
    served_nodes: frozenset[IPv4Address]
    links: tuple[KmLink, ...]
    #: every QKD link of the network, as the two site IDs (the relay graph)
    graph: tuple[tuple[IPv4Address, IPv4Address], ...]
    #: node router ID -> its site ID; any node address -> its router ID
    site_of_node: Mapping[IPv4Address, IPv4Address]
    node_of_addr: Mapping[IPv4Address, IPv4Address]
    status_poll: float = 1.0
    dead_after: float = 3.5
    get_deadline: float = 8.0
    cache_per_client: int = 4096
    #: a relay not open at both ends is closed after this long without a call of its
    #: node (s), as an idle session is (docs/etsi004.md#sessions)
    relay_idle: float = 120.0


@dataclass(slots=True, eq=False)
class _Link:
    """A link's live state: its core, what its emulator said last and when."""

    link: KmLink
    core: ProxyCore
    far_nodes: frozenset[IPv4Address]
    emu_bits: int = 0
    emu_rate: int | None = None
    emu_buffer: int | None = None
    emu_heard: float | None = None
    poll_rid: int = 0
    relays: int = 0  # relays whose hop sessions use this link

    def stream(self) -> tuple[int, int]:
        """(rate b/s, buffer bits) of this end's key stream: what the sessions this KM
        opens over the link draw from. The device says (IDQ3P STATUS); until it has, the
        topology's figures halved, as a pair of emulators shares a link evenly between
        its two ends' streams (docs/idq3p.md#rate-and-buffer)."""
        if self.emu_rate is not None and self.emu_buffer is not None:
            return self.emu_rate, self.emu_buffer
        return self.link.rate_bps // 2, self.link.buffer_bits // 2

    @property
    def name(self) -> str:
        return self.link.name


@dataclass(slots=True, eq=False)
class Relay:
    """One relay as this KM sees it: head (pos 0), a trusted site, or tail (last)."""

    handle: bytes
    path: tuple[IPv4Address, ...]
    pos: int
    opener: IPv4Address
    destination: IPv4Address
    key_length: int
    up: _Link | None = None
    down: _Link | None = None
    up_hop: bytes = b""
    down_hop: bytes = b""
    up_txid: int = 0  # the upstream RELAY_OPEN to answer
    result: sync.Result | None = None  # our answer to it, once decided
    state: str = "opening"  # opening, open, failed
    fail: Status = Status.NO_QKD_CONNECTION
    owner: str | None = None  # the SAE's address (head and tail)
    open_waiter: tuple[Addr, int, etsi.QoS] | None = None
    peer_connected: bool = False
    seen: set[int] = field(default_factory=set)  # RELAY_KEY indexes received
    payloads: dict[int, bytes] = field(default_factory=dict)
    up_keys: dict[int, bytes] = field(default_factory=dict)
    e2e: dict[int, bytes] = field(default_factory=dict)  # trusted site: to pass on
    down_keys: dict[int, bytes] = field(default_factory=dict)
    keys: dict[int, bytes] = field(default_factory=dict)  # tail: for the SAE
    next_index: int = 0
    last_used: float = 0.0  # the last call of its node (or its creation)
    waiting: deque[list[Any]] = field(default_factory=deque)  # [addr, rid, deadline, done]
    connecting: list[list[Any]] = field(default_factory=list)

    @property
    def tail(self) -> bool:
        return self.pos == len(self.path) - 1

    def __repr__(self) -> str:
        return f"Relay({handle_hex(self.handle)}…, pos={self.pos}, state={self.state})"


@dataclass(frozen=True, slots=True)
class _Call:
    """An internal ETSI call of the key manager into a link core, and why it was made."""

    kind: str  # open_down, join_up, get_head, get_up, get_down, close
    handle: bytes
    sae: tuple[Addr, int] | None = None
    #: a hop key out of stock is asked again until then (0: not yet out of stock)
    until: float = 0.0


def _get_key(rid: int, hop: bytes) -> etsi.Request:
    return etsi.GetKey(rid, hop)


def _relay_key(txid: int, h: bytes, index: int, payload: bytes = b"") -> sync.RelayRequest:
    return sync.RelayKey(txid, h, index, payload)


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def _status_of(result: sync.Result) -> Status:
    if result == R.INSUFFICIENT_KEY:
        return Status.INSUFFICIENT_KEY
    if result == R.IN_USE:
        return Status.HANDLE_IN_USE
    return Status.NO_QKD_CONNECTION


def _result_of(st: Status) -> sync.Result:
    return R.INSUFFICIENT_KEY if st == Status.INSUFFICIENT_KEY else R.NO_QKD_CONNECTION


class KeyManager:
    def __init__(self, cfg: KmConfig, random_bytes: Callable[[int], bytes], now: float) -> None:
        self.cfg = cfg
        self.random_bytes = random_bytes
        self.links: dict[str, _Link] = {}
        for kl in cfg.links:
            pc = dataclasses.replace(
                kl.proxy,
                local_node_addrs=kl.proxy.local_node_addrs | {_INTERNAL_IP, _ETSI014_IP},
                peer_nodes=kl.proxy.peer_nodes | {NODE014},
                node_of_addr={**kl.proxy.node_of_addr, _ETSI014_IP: NODE014},
            )
            far = frozenset({pc.peer_node, *pc.peer_nodes})
            self.links[kl.name] = _Link(kl, ProxyCore(pc, random_bytes, now), far)
        self._by_sync = {ln.core.cfg.peer_sync: ln for ln in self.links.values()}
        self._by_idq = {ln.core.cfg.idq: ln for ln in self.links.values()}
        self._by_site = {ln.link.far_site: ln for ln in self.links.values()}
        self._by_node = {n: ln for ln in self.links.values() for n in ln.far_nodes}
        self.relays: dict[bytes, Relay] = {}
        self.node_of_addr = {**cfg.node_of_addr, _ETSI014_IP: NODE014}
        self._calls: dict[int, _Call] = {}
        self._rid = itertools.count(1)
        self.cache = ReplyCache(cfg.cache_per_client)
        self.pending_north: dict[tuple[Addr, int], bytes] = {}
        self._timeq: list[tuple[float, int, list[Any], bytes]] = []
        self._tseq = itertools.count()
        self._poll_at = now
        self._now = now
        self._out: list[Action] = []
        self.counters: dict[str, int] = {
            "north_malformed": 0,
            "north_duplicates": 0,  # repeats answered here (the link cores count theirs)
            "refused": 0,
            "sync_foreign": 0,
            "south_foreign": 0,
            "status_requests": 0,
            "status_refused": 0,
            "status_malformed": 0,
            "relays_opened": 0,
            "relays_failed": 0,
            "relays_closed": 0,
            "relay_keys": 0,
            "relay_foreign": 0,
            "relay_bad": 0,
        }

    # --- the one entry point ----------------------------------------------------------
    def handle(self, event: Event, now: float) -> list[Action]:
        self._out = []
        self._now = now
        if isinstance(event, Datagram):
            ch = event.channel
            if ch is Channel.NORTH:
                self._north(event.data, event.addr, now)
            elif ch is Channel.SYNC:
                self._from_peer(event, now)
            elif ch is Channel.SOUTH:
                self._from_device(event, now)
            else:
                self._status_in(event.data, event.addr)
        elif isinstance(event, Tick):
            self._timers(now)
        else:
            raise TypeError(f"not a key manager event: {event!r}")
        out, self._out = self._out, []
        return out

    def next_timer(self) -> float | None:
        times = [self._poll_at]
        times += [t for ln in self.links.values() if (t := ln.core.next_timer()) is not None]
        q = self._timeq
        while q and q[0][2][3]:
            heapq.heappop(q)
        if q:
            times.append(q[0][0])
        return min(times)

    def all_counters(self) -> dict[str, int]:
        out = dict(self.counters)
        for ln in self.links.values():
            for k, v in ln.core.all_counters().items():
                out[k] = out.get(k, 0) + v
        out["relays"] = len(self.relays)
        return out

    # --- plumbing -----------------------------------------------------------------------
    def _log(self, event: str, limited: bool = False, **fields: Any) -> None:
        self._out.append(Log(event, fields, limited))

    def _feed(self, ln: _Link, event: Event, now: float) -> None:
        self._take(ln, ln.core.handle(event, now), now)

    def _take(self, ln: _Link, actions: list[Action], now: float) -> None:
        """The link core's actions: its answers to our own calls are ours to handle, its
        log lines get the link's name, the rest goes out; then its relay messages."""
        for a in actions:
            if isinstance(a, Send) and a.channel is Channel.NORTH and a.addr == INTERNAL:
                self._internal_reply(ln, a.data, now)
            elif isinstance(a, Log):
                self._out.append(Log(a.event, {"link": ln.name, **a.fields}, a.limited))
            else:
                self._out.append(a)
        while ln.core.relay_inbox:
            msg, failed = ln.core.relay_inbox.pop(0)
            self._relay_in(ln, msg, failed, now)

    def _call(
        self, ln: _Link, make: Callable[[int], etsi.Request], call: _Call, now: float
    ) -> None:
        rid = next(self._rid) & 0xFFFFFFFF
        self._calls[rid] = call
        self._feed(ln, Datagram(Channel.NORTH, etsi.encode(make(rid)), INTERNAL), now)

    def _internal_reply(self, ln: _Link, data: bytes, now: float) -> None:
        msg = etsi.decode(data)  # made by our own core
        call = self._calls.pop(msg.request_id, None)
        if call is None or not isinstance(msg, etsi.OpenReply | etsi.GetKeyReply):
            return
        r = self.relays.get(call.handle)
        if r is None:
            if isinstance(msg, etsi.OpenReply) and msg.status == Status.SUCCESSFUL:
                self._close_hop(ln, msg.key_handle, now)  # the relay is gone meanwhile
            return
        if isinstance(msg, etsi.GetKeyReply):
            self._key_reply(r, ln, call, msg, now)
        elif isinstance(msg, etsi.OpenReply):
            self._hop_opened(r, ln, call, msg, now)

    def _relay_send(
        self, ln: _Link | None, make: Callable[[int], sync.RelayRequest], now: float
    ) -> None:
        if ln is not None:
            self._feed(ln, RelayOut(make(0)), now)

    def _relay_answer(self, ln: _Link, msg: sync.RelayResp | sync.RelayAck, now: float) -> None:
        self._feed(ln, RelayOut(msg, request=False), now)

    def _close_hop(self, ln: _Link | None, hop: bytes, now: float) -> None:
        if ln is not None and hop:
            self._call(ln, lambda rid: etsi.Close(rid, hop), _Call("close", b""), now)

    # --- links: routing, liveness, stock ------------------------------------------------
    def _from_peer(self, event: Datagram, now: float) -> None:
        ln = self._by_sync.get(event.addr)
        if ln is None:
            self.counters["sync_foreign"] += 1
            self._log(
                "sync frame rejected", True, peer=f"{event.addr[0]}:{event.addr[1]}", why="source"
            )
            return
        self._feed(ln, event, now)

    def _from_device(self, event: Datagram, now: float) -> None:
        ln = self._by_idq.get(event.addr)
        if ln is None:
            self.counters["south_foreign"] += 1
            self._log(
                "device reply dropped", True, peer=f"{event.addr[0]}:{event.addr[1]}", why="source"
            )
            return
        if ln.poll_rid:
            try:
                msg = idq.decode(event.data)
            except DecodeError:
                msg = None
            if isinstance(msg, idq.StatusReply) and msg.request_id == ln.poll_rid:
                ln.poll_rid = 0
                ln.emu_heard = now
                ln.emu_bits = msg.bits_available
                ln.emu_rate, ln.emu_buffer = msg.rate_bps, msg.buffer_bits
                return
        self._feed(ln, event, now)

    def _up(self, ln: _Link, now: float) -> bool:
        """The link is up: its emulator answered and its far KM was heard lately."""
        dead = self.cfg.dead_after
        heard = ln.core.last_heard
        return (
            ln.emu_heard is not None
            and now - ln.emu_heard <= dead
            and heard is not None
            and now - heard <= dead
        )

    def link_status(self) -> tuple[ks.LinkStatus, ...]:
        """The site's links as of the last event (the KM status reply's records)."""
        now = self._now
        out = []
        for ln in self.links.values():
            # this end's stream, not the link's rate: the site node advertises what this
            # end can draw (docs/ospf-te.md#the-qkd-link-tlv)
            rate, buf = ln.stream()
            out.append(
                ks.LinkStatus(
                    far_site=ln.link.far_site,
                    name=ln.name[: ks.NAME_LEN],
                    up=self._up(ln, now),
                    rate_bps=min(int(rate), 0xFFFFFFFF),
                    stock_bits=ln.emu_bits + ln.core.pool_bits(),
                    buffer_bits=buf,
                    used_bits=ln.core.counters["bits_delivered"],
                    services=min(len(ln.core.sessions), 0xFFFF),
                )
            )
        return tuple(out)

    def show_links(self) -> list[dict[str, Any]]:
        """``show qkd links json``: one object per link, as of the last event (no key
        material)."""
        now = self._now
        rows = []
        for ln, st in zip(self.links.values(), self.link_status(), strict=True):
            rows.append(
                {
                    "name": st.name,
                    "far_site": str(st.far_site),
                    "far_km": ln.core.cfg.peer_name,
                    "up": st.up,
                    # this end's stream (what it draws and advertises) and the link's
                    "rate_bps": st.rate_bps,
                    "stock_bits": st.stock_bits,
                    "buffer_bits": st.buffer_bits,
                    "link_rate_bps": ln.link.rate_bps or 2 * st.rate_bps,
                    "used_bits": st.used_bits,
                    "services": st.services,
                    "relays": ln.relays,
                    "emulator_heard": ln.emu_heard is not None
                    and now - ln.emu_heard <= self.cfg.dead_after,
                    "peer_heard": ln.core.last_heard is not None
                    and now - ln.core.last_heard <= self.cfg.dead_after,
                }
            )
        return rows

    def show_relays(self) -> list[dict[str, Any]]:
        """``show qkd relays json``: the relays this key manager is on (no key material)."""
        rows = []
        for r in self.relays.values():
            role = "head" if r.pos == 0 else "tail" if r.tail else "trusted"
            rows.append(
                {
                    "handle": handle_hex(r.handle),
                    "role": role,
                    "state": r.state,
                    "path": [str(x) for x in r.path],
                    "opener": str(r.opener),
                    "destination": str(r.destination),
                    "key_length": r.key_length,
                    "up_link": r.up.name if r.up is not None else None,
                    "down_link": r.down.name if r.down is not None else None,
                    "node_joined": r.owner is not None,
                    "keys": r.next_index,
                }
            )
        return rows

    def _status_in(self, data: bytes, addr: Addr) -> None:
        if IPv4Address(addr[0]) not in self.cfg.served_addrs:
            self.counters["status_refused"] += 1
            self._log("status request refused", True, peer=addr[0])
            return
        try:
            msg = ks.decode(data)
        except DecodeError as e:
            self.counters["status_malformed"] += 1
            self._log("status request dropped", True, peer=addr[0], error=str(e))
            return
        if not isinstance(msg, ks.LinksRequest):
            self.counters["status_malformed"] += 1
            return
        self.counters["status_requests"] += 1
        reply = ks.LinksReply(msg.request_id, self.link_status())
        self._out.append(Send(Channel.STATUS, ks.encode(reply), addr))

    def _timers(self, now: float) -> None:
        for ln in self.links.values():
            due = ln.core.next_timer()
            if due is not None and now >= due:
                self._feed(ln, Tick(), now)
        if now >= self._poll_at:
            self._poll_at = now + self.cfg.status_poll
            for ln in self.links.values():
                self._poll(ln, now)
            self._expire_idle(now)
        self._expire(now)

    def _expire_idle(self, now: float) -> None:
        """Close the relays of this end that are not open at both ends and idle (a tail
        never joined, or a failed relay its node forgot)."""
        for r in list(self.relays.values()):
            end = r.pos == 0 or r.tail
            both = r.owner is not None and r.peer_connected and r.state == "open"
            if end and not both and now - r.last_used > self.cfg.relay_idle:
                self._log("relay expired", handle=handle_hex(r.handle), state=r.state)
                self._end(r, R.OK, None, now)

    def _poll(self, ln: _Link, now: float) -> None:
        rid = int.from_bytes(self.random_bytes(4), "big") or 1
        ln.poll_rid = rid
        data = idq.encode(idq.StatusRequest(rid, 32))
        self._out.append(Send(Channel.SOUTH, data, ln.core.cfg.idq))
        self._feed(ln, Greet(), now)

    # --- northbound ---------------------------------------------------------------------
    def _north(self, data: bytes, addr: Addr, now: float) -> None:
        served = IPv4Address(addr[0]) in self.cfg.served_addrs and addr != INTERNAL
        if not served and addr != ETSI014:
            self._refuse(data, addr)
            return
        try:
            msg = etsi.decode(data)
        except DecodeError as e:
            self.counters["north_malformed"] += 1
            self._log("malformed request", True, peer=f"{addr[0]}:{addr[1]}", error=str(e))
            return
        if isinstance(msg, etsi.Reply):
            self.counters["north_malformed"] += 1
            return
        if (
            isinstance(msg, etsi.Open)
            and msg.destination == NODE014
            and not self._may_join(msg, addr)
        ):
            self._out.append(
                Send(
                    Channel.NORTH,
                    etsi.encode(etsi.status_reply(msg, Status.NO_QKD_CONNECTION)),
                    addr,
                )
            )
            return
        # a repeat gets the answer the first one got, whoever answered it: a GET_KEY that
        # overtook its session's OPEN (lost, then resent) is answered status 4 up here,
        # and its repeat, once the OPEN is in, must not take the session's first key
        answered = self._answered(addr, data)
        if answered is not None:
            self.counters["north_duplicates"] += 1
            self._out.append(Send(Channel.NORTH, answered, addr))
            return
        if (addr, msg.request_id) in self.pending_north:
            self.counters["north_duplicates"] += 1
            return
        ln = self._route(msg)
        if ln is not None:
            self._feed(ln, Datagram(Channel.NORTH, data, addr), now)
        else:
            self._relay_north(msg, data, addr, now)

    def _answered(self, addr: Addr, data: bytes) -> bytes | None:
        """The answer already sent to this very request (its bytes), by this layer or a
        link core, if it is still kept."""
        cached = self.cache.get(addr, data)
        for ln in self.links.values():
            if cached is not None:
                break
            cached = ln.core.cache.get(addr, data)
        return cached

    def _route(self, msg: etsi.Request) -> _Link | None:
        """The link core that serves ``msg``, or None: the relay layer does."""
        h = msg.key_handle
        if h in self.relays:
            return None
        ln = self._session_link(h)
        if isinstance(msg, etsi.Open) and (ln is None or h == etsi.ZERO_HANDLE):
            return self._by_node.get(msg.destination)
        return ln

    def _session_link(self, h: bytes) -> _Link | None:
        for ln in self.links.values():
            if h in ln.core.sessions:
                return ln
        return None

    def _may_join(self, msg: etsi.Open, addr: Addr) -> bool:
        """An OPEN naming the 014 interface as its peer: only the 014 interface joins,
        and only a session (or relay) the far key manager made (it never creates one)."""
        if addr != ETSI014:
            self.counters["refused"] += 1
            self._log("refused", True, peer=addr[0], why="014 session")
            return False
        h = msg.key_handle
        return h != etsi.ZERO_HANDLE and (h in self.relays or self._session_link(h) is not None)

    def stock_toward(self, site: IPv4Address) -> tuple[int, int]:
        """(stock bits, buffer bits) of the link toward ``site``: the direct one, else
        the first hop of the relay path (0, 0: none up)."""
        ln = self._by_site.get(site)
        if ln is None:
            path = self._path_to(site, self._now)
            ln = self._by_site.get(path[1]) if len(path) > 1 else None
        if ln is None:
            return 0, 0
        return ln.emu_bits + ln.core.pool_bits(), ln.stream()[1]

    def _refuse(self, data: bytes, addr: Addr) -> None:
        try:
            msg = etsi.decode(data)
        except DecodeError:
            self.counters["north_malformed"] += 1
            return
        if isinstance(msg, etsi.Reply):
            return
        self.counters["refused"] += 1
        self._log("refused", True, peer=addr[0], why="not served")
        reply = etsi.status_reply(msg, Status.NO_QKD_CONNECTION)
        self._out.append(Send(Channel.NORTH, etsi.encode(reply), addr))

    def _reply(self, addr: Addr, msg: etsi.Reply) -> None:
        try:
            data = etsi.encode(msg)
        except EncodeError:
            return
        request = self.pending_north.pop((addr, msg.request_id), None)
        if request is not None:
            self.cache.put(addr, request, data)
        self._out.append(Send(Channel.NORTH, data, addr))

    def _relay_north(self, msg: etsi.Request, data: bytes, addr: Addr, now: float) -> None:
        self.pending_north[(addr, msg.request_id)] = data
        if isinstance(msg, etsi.Open):
            self._sae_open(msg, addr, now)
            return
        r = self.relays.get(msg.key_handle)
        if r is None or r.owner != addr[0]:
            self._reply(addr, etsi.status_reply(msg, Status.NO_QKD_CONNECTION))
            return
        r.last_used = now
        if isinstance(msg, etsi.GetKey):
            self._sae_get(r, msg, addr, now)
        elif isinstance(msg, etsi.ConnectNonblock | etsi.ConnectBlocking):
            self._sae_connect(r, msg, addr, now)
        else:
            self._reply(addr, etsi.status_reply(msg, Status.SUCCESSFUL))
            self._log("relay closed", handle=handle_hex(r.handle), by="sae", keys=r.next_index)
            self._end(r, R.OK, None, now)

    # --- relay: opening -----------------------------------------------------------------
    def _path_to(self, dest_site: IPv4Address, now: float) -> tuple[IPv4Address, ...]:
        """The fewest-hop path from this site to ``dest_site`` over the QKD graph, its
        first hop over a live link of ours (empty: none)."""
        adj: dict[IPv4Address, list[IPv4Address]] = {}
        for a, b in self.cfg.graph:
            adj.setdefault(a, []).append(b)
            adj.setdefault(b, []).append(a)
        me = self.cfg.site
        prev: dict[IPv4Address, IPv4Address] = {}
        frontier = [s for s in sorted(self._by_site) if self._up(self._by_site[s], now)]
        for s in frontier:
            prev[s] = me
        while frontier and dest_site not in prev:
            nxt = []
            for s in frontier:
                for t in sorted(adj.get(s, ())):
                    if t not in prev and t != me:
                        prev[t] = s
                        nxt.append(t)
            frontier = nxt
        if dest_site not in prev:
            return ()
        path = [dest_site]
        while path[-1] != me:
            path.append(prev[path[-1]])
        return tuple(reversed(path))

    def _valid_path(self, path: tuple[IPv4Address, ...], dest_site: IPv4Address) -> bool:
        edges = {frozenset(e) for e in self.cfg.graph}
        return (
            len(path) >= 2
            and path[0] == self.cfg.site
            and path[-1] == dest_site
            and len(set(path)) == len(path)
            and all(frozenset(p) in edges for p in itertools.pairwise(path))
        )

    def _sae_open(self, msg: etsi.Open, addr: Addr, now: float) -> None:
        h = msg.key_handle
        r = self.relays.get(h) if h != etsi.ZERO_HANDLE else None
        length = msg.qos.requested_length or 32
        granted = etsi.QoS(length, msg.qos.max_bps, msg.qos.priority, msg.qos.timeout_ms)
        if r is not None:
            self._sae_join(r, msg, addr, granted)
            return
        dest_site = self.cfg.site_of_node.get(msg.destination)
        if (
            (h != etsi.ZERO_HANDLE and addr != ETSI014)
            or dest_site is None
            or length > idq.MAX_KEY_BYTES
        ):
            self._log("no route", peer=addr[0], destination=str(msg.destination))
            self._reply(addr, etsi.status_reply(msg, Status.NO_QKD_CONNECTION))
            return
        path = msg.relay or self._path_to(dest_site, now)
        ln = self._by_site.get(path[1]) if len(path) > 1 else None
        if not self._valid_path(path, dest_site) or ln is None or not self._up(ln, now):
            self.counters["relays_failed"] += 1
            self._log(
                "relay refused",
                peer=addr[0],
                destination=str(msg.destination),
                path=",".join(map(str, path)),
                why="no live relay path",
            )
            self._reply(addr, etsi.status_reply(msg, Status.NO_QKD_CONNECTION))
            return
        while h in self.relays or h == etsi.ZERO_HANDLE:  # the 014 interface names its own
            h = self.random_bytes(etsi.HANDLE_LEN)
        opener = self.node_of_addr.get(IPv4Address(addr[0]), self.cfg.site)
        r = Relay(h, path, 0, opener, msg.destination, length, down=ln, owner=addr[0])
        r.last_used = now
        r.open_waiter = (addr, msg.request_id, granted)
        self.relays[h] = r
        self._open_down(r, ln, now)

    def _sae_join(self, r: Relay, msg: etsi.Open, addr: Addr, granted: etsi.QoS) -> None:
        """The tail's SAE opens the relay the head made (or an SAE repeats its OPEN)."""
        if r.owner == addr[0]:
            self._reply(addr, etsi.OpenReply(msg.request_id, Status.SUCCESSFUL, r.handle, granted))
            return
        node = self.node_of_addr.get(IPv4Address(addr[0]))
        if addr == ETSI014 and r.opener == NODE014:
            node = r.destination  # the 014 interface joins for the slave SAE's node
        ok = (
            r.tail
            and r.owner is None
            and r.state == "open"
            and node == r.destination
            and msg.destination == r.opener
            and granted.requested_length == r.key_length
        )
        if not ok:
            self.counters["refused"] += 1
            self._reply(addr, etsi.status_reply(msg, Status.HANDLE_IN_USE))
            return
        r.owner = addr[0]
        r.last_used = self._now
        self._log("relay joined", peer=addr[0], handle=handle_hex(r.handle))
        self._reply(addr, etsi.OpenReply(msg.request_id, Status.SUCCESSFUL, r.handle, granted))
        h = r.handle
        self._relay_send(r.up, lambda tx: sync.RelayOpened(tx, h), self._now)

    def _open_down(self, r: Relay, ln: _Link, now: float) -> None:
        """Open the hop session toward the next site (answered in :meth:`_hop_opened`)."""
        ln.relays += 1
        r.down = ln
        peer = ln.core.cfg.peer_node
        qos = etsi.QoS(r.key_length)
        self._call(ln, lambda rid: etsi.Open(rid, peer, qos), _Call("open_down", r.handle), now)

    def _hop_opened(
        self, r: Relay, ln: _Link, call: _Call, msg: etsi.OpenReply, now: float
    ) -> None:
        if msg.status != Status.SUCCESSFUL:
            self._fail_open(r, R.NO_QKD_CONNECTION, now)
            return
        if call.kind == "join_up":
            r.up_hop = msg.key_handle
            if r.tail:
                r.state = "open"
                r.peer_connected = True
                self._log(
                    "relay open",
                    handle=handle_hex(r.handle),
                    role="tail",
                    path=",".join(map(str, r.path)),
                )
                self._answer_up(r, R.OK, now)
                return
            nxt = self._by_site.get(r.path[r.pos + 1])
            if nxt is None or not self._up(nxt, now):
                self._fail_open(r, R.NO_QKD_CONNECTION, now)
                return
            self._open_down(r, nxt, now)
            return
        r.down_hop = hop = msg.key_handle
        h, op, dest, n, path = r.handle, r.opener, r.destination, r.key_length, r.path
        self._relay_send(ln, lambda tx: sync.RelayOpen(tx, h, hop, op, dest, n, path), now)

    def _answer_up(self, r: Relay, result: sync.Result, now: float) -> None:
        r.result = result
        if r.up is not None:
            self._relay_answer(r.up, sync.RelayResp(r.up_txid, r.handle, result), now)

    def _fail_open(self, r: Relay, result: sync.Result, now: float) -> None:
        """The relay could not be opened from here on: say so upstream (or to the SAE)."""
        self.counters["relays_failed"] += 1
        self._log(
            "relay failed",
            handle=handle_hex(r.handle),
            result=result.name,
            path=",".join(map(str, r.path)),
        )
        if r.open_waiter is not None:
            addr, rid, qos = r.open_waiter
            r.open_waiter = None
            self._reply(addr, etsi.OpenReply(rid, _status_of(result), r.handle, qos))
        self._answer_up(r, result, now)
        if r.down is not None and r.down_hop:
            # whatever the next sites made of it is undone (a silent one hears nothing)
            h = r.handle
            self._relay_send(r.down, lambda tx: sync.RelayClose(tx, h, result), now)
        self._forget(r, now)

    def _forget(self, r: Relay, now: float) -> None:
        if self.relays.get(r.handle) is r:
            del self.relays[r.handle]
        for ln, hop in ((r.up, r.up_hop), (r.down, r.down_hop)):
            if ln is not None:
                ln.relays = max(0, ln.relays - 1)
                self._close_hop(ln, hop, now)
        r.up_hop = r.down_hop = b""
        self._answer_waiters(r, r.fail)
        r.keys.clear()
        r.e2e.clear()
        r.up_keys.clear()
        r.down_keys.clear()
        r.payloads.clear()

    # --- relay: messages from the neighbours --------------------------------------------
    def _relay_in(self, ln: _Link, msg: sync.RelayMessage, failed: bool, now: float) -> None:
        if failed:
            self._relay_failed_tx(ln, msg, now)
        elif isinstance(msg, sync.RelayOpen):
            self._on_relay_open(ln, msg, now)
        elif isinstance(msg, sync.RelayResp):
            self._on_relay_resp(ln, msg, now)
        elif isinstance(msg, sync.RelayKey):
            self._on_relay_key(ln, msg, now)
        elif isinstance(msg, sync.RelayClose):
            self._on_relay_close(ln, msg, now)
        elif isinstance(msg, sync.RelayOpened):
            self._on_relay_opened(ln, msg, now)
        # RelayAck: the hop got it; nothing else to do

    def _neighbour(self, ln: _Link, h: bytes, txid: int, now: float) -> Relay | None:
        """The relay ``h`` if ``ln`` is one of its hops; else answer UNKNOWN_HANDLE."""
        r = self.relays.get(h)
        if r is not None and ln in (r.up, r.down):
            return r
        if r is not None:
            self.counters["relay_foreign"] += 1
            self._log(
                "relay frame refused", True, link=ln.name, handle=handle_hex(h), why="not a hop"
            )
        self._relay_answer(ln, sync.RelayAck(txid, h, R.UNKNOWN_HANDLE), now)
        return None

    def _on_relay_open(self, ln: _Link, m: sync.RelayOpen, now: float) -> None:
        h = m.relay_handle
        r = self.relays.get(h)
        if r is not None:
            if r.up is ln and r.up_txid == m.txid and r.result is not None:
                self._answer_up(r, r.result, now)  # our answer was lost: again
            elif r.up is not ln or r.up_txid != m.txid:
                self._relay_answer(ln, sync.RelayResp(m.txid, h, R.IN_USE), now)
            return
        me = self.cfg.site
        pos = m.path.index(me) if me in m.path else 0
        ok = (
            pos > 0
            and m.path[pos - 1] == ln.link.far_site
            and 1 <= m.key_length <= idq.MAX_KEY_BYTES
            and len(set(m.path)) == len(m.path)
            and m.hop_handle in ln.core.sessions
            and (pos < len(m.path) - 1 or m.destination in self.cfg.served_nodes)
        )
        if not ok:
            self.counters["relay_bad"] += 1
            self._log("relay refused", True, link=ln.name, handle=handle_hex(h), why="bad open")
            self._relay_answer(ln, sync.RelayResp(m.txid, h, R.NO_ROUTE), now)
            return
        r = Relay(h, m.path, pos, m.opener, m.destination, m.key_length, up=ln, up_txid=m.txid)
        r.last_used = now
        self.relays[h] = r
        ln.relays += 1
        peer, qos, hop = ln.core.cfg.peer_node, etsi.QoS(m.key_length), m.hop_handle
        self._call(ln, lambda rid: etsi.Open(rid, peer, qos, hop), _Call("join_up", h), now)

    def _on_relay_resp(self, ln: _Link, m: sync.RelayResp, now: float) -> None:
        r = self.relays.get(m.relay_handle)
        if r is None or r.down is not ln or r.state != "opening":
            return
        if m.result != R.OK:
            self._fail_open(r, m.result, now)
            return
        r.state = "open"
        self._answer_up(r, R.OK, now)
        if r.open_waiter is not None:
            self.counters["relays_opened"] += 1
            addr, rid, qos = r.open_waiter
            r.open_waiter = None
            self._log(
                "relay open",
                handle=handle_hex(r.handle),
                role="head",
                path=",".join(map(str, r.path)),
            )
            self._reply(addr, etsi.OpenReply(rid, Status.SUCCESSFUL, r.handle, qos))

    def _relay_failed_tx(self, ln: _Link, msg: sync.RelayMessage, now: float) -> None:
        """A relay request of ours got no answer: the hop's far KM is silent."""
        r = self.relays.get(msg.relay_handle)
        if r is None:
            return
        if isinstance(msg, sync.RelayOpen) and r.state == "opening":
            self._fail_open(r, R.NO_QKD_CONNECTION, now)
        elif isinstance(msg, sync.RelayKey):
            self._break(r, R.NO_QKD_CONNECTION, ln, now)

    def _on_relay_opened(self, ln: _Link, m: sync.RelayOpened, now: float) -> None:
        r = self._neighbour(ln, m.relay_handle, m.txid, now)
        if r is None:
            return
        self._relay_answer(ln, sync.RelayAck(m.txid, r.handle), now)
        if r.pos == 0:
            r.peer_connected = True
            for w in r.connecting:
                if not w[3]:
                    w[3] = True
                    self._reply(w[0], etsi.ConnectBlockingReply(w[1], Status.SUCCESSFUL, r.handle))
            r.connecting.clear()
        elif ln is r.down:
            h = r.handle
            self._relay_send(r.up, lambda tx: sync.RelayOpened(tx, h), now)

    def _on_relay_close(self, ln: _Link, m: sync.RelayClose, now: float) -> None:
        r = self._neighbour(ln, m.relay_handle, m.txid, now)
        if r is None:
            return
        self._relay_answer(ln, sync.RelayAck(m.txid, r.handle), now)
        self._log("relay closed", handle=handle_hex(r.handle), by=ln.name, result=m.result.name)
        self._end(r, m.result, ln, now)

    def _end(self, r: Relay, result: sync.Result, came_from: _Link | None, now: float) -> None:
        """The relay is over here: pass RELAY_CLOSE on away from ``came_from``, close our
        hop sessions. An SAE's relay that failed stays (failed) until its SAE closes it."""
        h = r.handle
        for nb in (r.up, r.down):
            if nb is not None and nb is not came_from:
                self._relay_send(nb, lambda tx: sync.RelayClose(tx, h, result), now)
        if result == R.OK:
            self.counters["relays_closed"] += 1
            self._forget(r, now)
            return
        self.counters["relays_failed"] += 1
        r.state, r.fail = "failed", _status_of(result)
        if r.owner is None or (r.pos > 0 and not r.tail):
            self._forget(r, now)
            return
        self._answer_waiters(r, r.fail)
        saved = r.owner
        self._forget(r, now)
        r.owner, r.up, r.down = saved, None, None  # nothing left on the links
        self.relays[h] = r  # its SAE hears the status until it closes

    def _break(self, r: Relay, result: sync.Result, came_from: _Link | None, now: float) -> None:
        self._log(
            "relay failed",
            handle=handle_hex(r.handle),
            result=result.name,
            path=",".join(map(str, r.path)),
        )
        self._end(r, result, came_from, now)

    # --- relay: keys ----------------------------------------------------------------------
    def _sae_get(self, r: Relay, msg: etsi.GetKey, addr: Addr, now: float) -> None:
        if r.state != "open":
            self._reply(
                addr,
                etsi.GetKeyReply(
                    msg.request_id, r.fail if r.state == "failed" else Status.NO_QKD_CONNECTION
                ),
            )
            return
        if r.pos == 0:
            assert r.down is not None
            hop, sae = r.down_hop, (addr, msg.request_id)
            self._call(
                r.down, lambda rid: etsi.GetKey(rid, hop), _Call("get_head", r.handle, sae), now
            )
            return
        w: list[Any] = [addr, msg.request_id, now + self.cfg.get_deadline, False]
        r.waiting.append(w)
        heapq.heappush(self._timeq, (w[2], next(self._tseq), w, r.handle))
        self._serve(r)

    def _serve(self, r: Relay) -> None:
        """The tail: answer its SAE's waiting GET_KEYs in order while keys are here."""
        while r.waiting:
            w = r.waiting[0]
            if not w[3]:
                key = r.keys.pop(r.next_index, None)
                if key is None:
                    return
                w[3] = True
                self.counters["relay_keys"] += 1
                self._reply(w[0], etsi.GetKeyReply(w[1], Status.SUCCESSFUL, r.next_index, key))
                r.next_index += 1
            r.waiting.popleft()

    def _answer_waiters(self, r: Relay, st: Status) -> None:
        for w in r.waiting:
            if not w[3]:
                w[3] = True
                self._reply(w[0], etsi.GetKeyReply(w[1], st))
        r.waiting.clear()
        for w in r.connecting:
            if not w[3]:
                w[3] = True
                self._reply(w[0], etsi.ConnectBlockingReply(w[1], st, r.handle))
        r.connecting.clear()

    def _sae_connect(
        self, r: Relay, msg: etsi.ConnectNonblock | etsi.ConnectBlocking, addr: Addr, now: float
    ) -> None:
        if r.peer_connected and r.state == "open":
            self._reply(addr, etsi.status_reply(msg, Status.SUCCESSFUL))
        elif isinstance(msg, etsi.ConnectBlocking) and msg.timeout_ms > 0 and r.state == "open":
            w: list[Any] = [addr, msg.request_id, now + min(msg.timeout_ms / 1000, 30.0), False]
            r.connecting.append(w)
            heapq.heappush(self._timeq, (w[2], next(self._tseq), w, r.handle))
        elif isinstance(msg, etsi.ConnectBlocking):
            self._reply(addr, etsi.status_reply(msg, Status.TIMEOUT))
        else:
            self._reply(addr, etsi.status_reply(msg, Status.PEER_NOT_CONNECTED))

    def _expire(self, now: float) -> None:
        q = self._timeq
        while q and q[0][0] <= now:
            _, _, w, h = heapq.heappop(q)
            if w[3]:
                continue
            w[3] = True
            r = self.relays.get(h)
            if w[0] == "retry":
                if r is not None and r.state == "open":
                    self._hop_get(r, w[1], now, until=w[2])
                continue
            if r is not None and w in r.connecting:
                r.connecting.remove(w)
                self._reply(w[0], etsi.ConnectBlockingReply(w[1], Status.TIMEOUT, h))
            else:
                self._reply(w[0], etsi.GetKeyReply(w[1], Status.TIMEOUT))
            if r is not None:
                while r.waiting and r.waiting[0][3]:
                    r.waiting.popleft()

    def _on_relay_key(self, ln: _Link, m: sync.RelayKey, now: float) -> None:
        r = self._neighbour(ln, m.relay_handle, m.txid, now)
        if r is None:
            return
        want = 0 if r.pos == 1 else r.key_length
        if ln is not r.up or len(m.payload) != want or r.state != "open":
            self.counters["relay_bad"] += 1
            self._relay_answer(ln, sync.RelayAck(m.txid, r.handle, R.NOT_AUTHORIZED), now)
            return
        self._relay_answer(ln, sync.RelayAck(m.txid, r.handle), now)
        if m.index in r.seen:
            return  # a repeat: its answer was lost
        r.seen.add(m.index)
        if len(r.seen) > 2 * MAX_SEEN:  # forget the oldest: repeats come soon or never
            r.seen = set(sorted(r.seen)[-MAX_SEEN:])
        r.payloads[m.index] = m.payload
        self._hop_get(r, "get_up", now)

    def _hop_get(self, r: Relay, kind: str, now: float, until: float = 0.0) -> None:
        """Ask the hop session before (``get_up``) or after (``get_down``) for its next key."""
        ln, hop = (r.up, r.up_hop) if kind == "get_up" else (r.down, r.down_hop)
        if ln is not None:
            get = functools.partial(_get_key, hop=hop)
            self._call(ln, get, _Call(kind, r.handle, until=until), now)

    def _key_reply(
        self, r: Relay, ln: _Link, call: _Call, msg: etsi.GetKeyReply, now: float
    ) -> None:
        if call.kind == "get_head":
            assert call.sae is not None
            addr, rid = call.sae
            self._reply(addr, etsi.GetKeyReply(rid, msg.status, msg.index, msg.key))
            if msg.status == Status.SUCCESSFUL:
                self.counters["relay_keys"] += 1
                h, i = r.handle, msg.index
                self._relay_send(r.down, lambda tx: sync.RelayKey(tx, h, i), now)
            return
        if msg.status == Status.INSUFFICIENT_KEY and now < (call.until or now + 1):
            # the hop's link is out of key for now: ask again (the hop session's index
            # does not move on a failure) for half the tail's wait, so the tail's node
            # hears why before its own call times out
            until = call.until or now + self.cfg.get_deadline / 2
            w: list[Any] = ["retry", call.kind, until, False]
            heapq.heappush(self._timeq, (now + RETRY, next(self._tseq), w, r.handle))
            return
        if msg.status != Status.SUCCESSFUL:
            self._break(r, _result_of(msg.status), None, now)
            return
        if call.kind == "get_up":
            r.up_keys[msg.index] = msg.key
        else:
            r.down_keys[msg.index] = msg.key
        self._advance(r, now)

    def _advance(self, r: Relay, now: float) -> None:
        """Turn the keys of the hops that are here into end-to-end keys (and pass them on)."""
        for i in sorted(set(r.up_keys) & set(r.payloads)):
            if i not in r.up_keys or i not in r.payloads:
                continue  # taken by a nested call meanwhile
            up, pad = r.up_keys.pop(i), r.payloads.pop(i)
            key = up if r.pos == 1 else _xor(pad, up)
            if r.tail:
                r.keys[i] = key
            else:
                r.e2e[i] = key
                assert r.down is not None
                self._hop_get(r, "get_down", now)
        for i in sorted(set(r.e2e) & set(r.down_keys)):
            if i not in r.e2e or i not in r.down_keys:
                continue
            payload = _xor(r.e2e.pop(i), r.down_keys.pop(i))
            self.counters["relay_keys"] += 1
            send = functools.partial(_relay_key, h=r.handle, index=i, payload=payload)
            self._relay_send(r.down, send, now)
        if r.tail:
            self._serve(r)
