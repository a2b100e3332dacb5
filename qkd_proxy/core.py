"""The ETSI GS QKD 004 proxy, sans-I/O: ``handle(event, now) -> actions``.

One :class:`ProxyCore` is one proxy of a QKD link (docs/design.md#the-qkd-side). It keeps the
contract of
:mod:`gmpls.core`: it takes datagrams from three channels and :class:`~gmpls.core.Tick`
(the events of :mod:`qkd_proxy.events`) with the time, returns datagrams to send and log
events, and tells its next timer through :meth:`ProxyCore.next_timer`:

* NORTH: ETSI 004 requests from applications (SAEs) of the node this proxy serves (any
  other address is refused, status 4, and nothing kept), a repeat answered from a
  per-client response cache (qkd_proxy.replies) so a retransmission never consumes a
  second key (gmpls.qkd.etsi004); GET_KEY and CONNECT_BLOCKING waits and idle sessions
  in one deadline heap;
* SYNC: the authenticated channel to the peer proxy (gmpls.qkd.sync): sessions are
  created and confirmed, and the proxy that *allocates* a session's keys tells the other
  which key ID goes with which index (BIND); the other asks for indexes it lacks (ALLOC);
* SOUTH: the IDQ3P device (gmpls.qkd.idq3p): the allocating proxy takes fresh keys
  in batches (GET_NEXT_KEY, prefetched into a pool per key length), the other fetches the
  bound key IDs (GET_KEY_BY_ID) as soon as the BIND arrives, so GET_KEY rarely waits.

Session rules (docs/etsi004.md §Sessions): the proxy where a session was opened first
allocates (simultaneous opens of one handle: the lower sync address allocates); only the
SAE address that opened a handle may use it, and at the peer only an address of the
named destination node may open it. Every SAE of a session gets indexes 0, 1, 2, ... in
order; index i is the same key at both ends (a GET_KEY waits until the peer has
confirmed the session, so a simultaneous open cannot serve keys the follower would not
have). Keys are bound when asked for, a few first. Nothing here reads a clock or does I/O.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from gmpls.core import Tick
from gmpls.deadlines import Deadlines
from gmpls.errors import DecodeError, EncodeError
from gmpls.qkd import etsi004 as etsi
from gmpls.qkd import idq3p as idq
from gmpls.qkd import sync
from gmpls.qkd.etsi004 import Status
from qkd_proxy.events import Action, Addr, Channel, Datagram, Event, Greet, Log, RelayOut, Send
from qkd_proxy.replies import ReplyCache


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    name: str
    #: router ID of the node this proxy serves and all of that node's addresses
    local_node: IPv4Address
    local_node_addrs: frozenset[IPv4Address]
    #: router ID of the node the peer proxy serves (the only reachable destination)
    peer_node: IPv4Address
    #: any address of a topology node -> its router ID (to name the opener of a session)
    node_of_addr: Mapping[IPv4Address, IPv4Address]
    #: the peer proxy's sync address and port (the only source of sync frames) and name
    #: (with ``name``, it picks the HMAC key of each direction of the sync channel)
    peer_sync: Addr
    peer_name: str
    #: the IDQ3P device's address and port (the only source of device replies)
    idq: Addr
    sync_secret: bytes = field(repr=False)
    #: this proxy allocates when both open one handle at once (lower sync address)
    wins_tie: bool
    default_key_length: int = 32
    #: keys bound to a session at once, at most; a session's first binding is
    #: ``bind_first`` keys, doubling with each binding up to ``bind_block``
    bind_block: int = 64
    bind_first: int = 4
    prefetch: int = 512
    sync_rto: float = 0.02
    sync_rto_max: float = 0.2
    sync_deadline: float = 4.0
    south_rto: float = 0.03
    south_rto_max: float = 0.25
    south_deadline: float = 2.0
    get_deadline: float = 8.0
    #: the longest QKD_CONNECT_BLOCKING wait (s); a session's QoS timeout may shorten it
    connect_max_wait: float = 30.0
    #: answers kept per client address to answer retransmissions (docs/etsi004.md)
    cache_per_client: int = 4096
    #: sessions one client address may hold at once
    max_sessions_per_client: int = 256
    #: a session not open at both ends is closed after this long without a request (s)
    session_idle: float = 120.0
    #: a key manager's site serves more nodes: the other nodes served here and by the
    #: peer (router IDs; ``local_node`` and ``peer_node`` are the sites' first nodes)
    local_nodes: frozenset[IPv4Address] = frozenset()
    peer_nodes: frozenset[IPv4Address] = frozenset()


@dataclass(slots=True, eq=False)
class _Waiter:
    """A GET_KEY or QKD_CONNECT_BLOCKING not answered yet (in the timer heap until
    ``deadline``; ``done`` once answered)."""

    addr: Addr
    request_id: int
    deadline: float
    handle: bytes
    blocking: bool = False  # QKD_CONNECT_BLOCKING, else QKD_GET_KEY
    done: bool = False


@dataclass(slots=True)
class Session:
    handle: bytes
    master: bool
    opener: IPv4Address
    destination: IPv4Address
    key_length: int
    owner: str | None = None
    #: the QoS timeout of the owner's QKD_OPEN (s; 0: none): bounds its calls' waits
    timeout: float = 0.0
    last_used: float = 0.0  # the last request of its SAE (or its creation)
    bind_ahead: int = 0  # master: keys the next binding takes at least (0: bind_first)
    confirmed: bool = False
    peer_connected: bool = False
    local_closed: bool = False
    peer_closed: bool = False
    next_index: int = 0
    bound_upto: int = 0  # master: first index not yet bound
    acked_upto: int = 0  # master: every index below is known to the peer
    acked: dict[int, int] = field(default_factory=dict)  # master: acked BIND start -> end
    pruned_upto: int = 0  # master: bindings below are forgotten
    fetch_from: int = 0  # responder: first index not yet fetched from the device
    bindings: dict[int, int] = field(default_factory=dict)  # index -> key ID
    keys: dict[int, bytes] = field(default_factory=dict)  # index -> key, for the local SAE
    fetching: dict[int, int] = field(default_factory=dict)  # responder: key ID -> index
    alloc_tx: int | None = None  # responder: outstanding ALLOC
    pending_allocs: list[tuple[int, int]] = field(default_factory=list)  # master: (txid, index)
    waiting: deque[_Waiter] = field(default_factory=deque)  # GET_KEYs not yet answered
    #: QKD_CONNECT_BLOCKINGs not yet answered (an ordered set)
    connect_waiters: dict[_Waiter, None] = field(default_factory=dict)
    open_waiter: tuple[Addr, int, etsi.QoS] | None = None

    def __repr__(self) -> str:
        return f"Session({self.handle[:8].hex()}…, master={self.master}, next={self.next_index})"


@dataclass(slots=True)
class _Pool:
    keys: deque[tuple[int, bytes]] = field(default_factory=deque)
    inflight: int | None = None
    retry_after: float = 0.0
    starving: set[bytes] = field(default_factory=set)  # handles waiting for keys


@dataclass(slots=True)
class _Tx:
    """An outstanding request we retransmit until answered or ``deadline``."""

    channel: Channel
    msg: Any  # sync.SyncMessage (resealed each time) or bytes (IDQ3P, resent as is)
    next_at: float
    rto: float
    deadline: float
    kind: str = ""
    length: int = 0
    handle: bytes = b""
    start: int = 0
    end: int = 0


#: how many retransmitted device request IDs are remembered to tell late duplicates
RESENT_KEPT = 1024

#: the key of the start-up HELLO in ``sync_tx`` (a txid is never 0)
GREETING = 0


def handle_hex(h: bytes) -> str:
    """Short form of a key_handle for logs (a handle is an identifier, not key material)."""
    return h[:8].hex()


class ProxyCore:
    def __init__(self, cfg: ProxyConfig, random_bytes: Callable[[int], bytes], now: float) -> None:
        self.cfg = cfg
        self.random_bytes = random_bytes
        # a random epoch per start: frames captured before a restart of either end are
        # stale after it, and a restart in the same second is as new as any other
        self.sync = sync.SyncCodec(cfg.sync_secret, cfg.name, cfg.peer_name, _epoch(random_bytes))
        self._hello_at = float("-inf")  # when we last answered a stale frame with a HELLO
        self.sessions: dict[bytes, Session] = {}
        self._served: tuple[ProxyConfig, frozenset[str]] = (cfg, frozenset())
        self.cache = ReplyCache(cfg.cache_per_client)
        #: (client, request ID) -> the request, until it is answered
        self.pending_north: dict[tuple[Addr, int], bytes] = {}
        self.sessions_of: dict[str, int] = {}  # client address -> sessions it holds
        self.pools: dict[int, _Pool] = {}
        self.sync_tx: dict[int, _Tx] = {}
        self.south_tx: dict[int, _Tx] = {}
        #: when each outstanding request of ``sync_tx`` / ``south_tx`` is next resent, one
        #: heap: a burst of sessions has hundreds outstanding, and the next timer is asked
        #: after every event
        self._tx_due: Deadlines[tuple[Channel, int]] = Deadlines(self._tx_deadline)
        #: IDs of device requests sent more than once (the newest :data:`RESENT_KEPT`): a
        #: second answer to one of them is a late duplicate (``south_late``), not a forgery
        self.south_resent: dict[int, None] = {}
        # greet the peer at once: a HELLO, resent like a request until we hear its epoch,
        # so a session opened right after a start does not wait for a stale frame's answer
        rto = cfg.sync_rto / 2  # doubled before it is first sent
        greeting = _Tx(Channel.SYNC, sync.Hello(), now, rto, now + cfg.sync_deadline, "hello")
        self.sync_tx[GREETING] = greeting
        self._tx_due.enter((Channel.SYNC, GREETING))
        self._txid = 0
        self._out: list[Action] = []
        #: relay messages for the key manager above (qkd_proxy.km): requests from the
        #: peer, answers to ours, and (``failed``) ours that got no answer in time
        self.relay_inbox: list[tuple[sync.RelayMessage, bool]] = []
        #: when a genuine frame of the peer was last accepted (None: never)
        self.last_heard: float | None = None
        self.counters: dict[str, int] = {
            "north_requests": 0,
            "north_duplicates": 0,
            "north_malformed": 0,
            "keys_delivered": 0,
            "bits_delivered": 0,
            "refused": 0,
            "session_limit": 0,
            "sessions_expired": 0,
            "insufficient": 0,
            "sync_foreign": 0,
            "sync_retransmits": 0,
            "south_retransmits": 0,
            "south_malformed": 0,
            "south_foreign": 0,
            "south_unmatched": 0,
            "south_late": 0,
        }
        self.started = now
        self._due: float | None = now  # earliest timer, as computed after the last event
        #: the north timers, a heap of (time, sequence, item): a waiter's deadline or a
        #: session's idle check; answered waiters stay until they come up (``done``)
        self._timeq: list[tuple[float, int, _Waiter | Session]] = []
        self._tseq = itertools.count()
        self._compact_at = 1024

    # --- the one entry point ----------------------------------------------------------
    def handle(self, event: Event, now: float) -> list[Action]:
        self._out = []
        if isinstance(event, Datagram):
            if event.channel is Channel.NORTH:
                self._north(event.data, event.addr, now)
            elif event.channel is Channel.SYNC:
                self._sync_in(event.data, event.addr, now)
            elif event.channel is Channel.SOUTH:
                self._south_in(event.data, event.addr, now)
            # STATUS is the key manager's (qkd_proxy.km), never a link core's
        elif isinstance(event, RelayOut):
            self._relay_out(event, now)
        elif isinstance(event, Greet):
            self._sync_send(sync.Hello())
        elif not isinstance(event, Tick):
            raise TypeError(f"not a proxy event: {event!r}")
        if self._due is not None and now >= self._due:
            self._timers(now)
        out = self._out
        self._due = self._earliest()
        self._out = []
        return out

    def all_counters(self) -> dict[str, int]:
        out = dict(self.counters)
        out.update({f"sync_{k}": v for k, v in self.sync.counters.items()})
        out["sessions"] = len(self.sessions)
        return out

    def next_timer(self) -> float | None:
        """When :class:`~gmpls.core.Tick` is next due (None: no timer)."""
        return self._due

    def _earliest(self) -> float | None:
        due = self._tx_due.top()
        q = self._timeq
        while q and isinstance(q[0][2], _Waiter) and q[0][2].done:
            heapq.heappop(q)
        if q and (due is None or q[0][0] < due):
            return q[0][0]
        return due

    def _tx_table(self, channel: Channel) -> dict[int, _Tx]:
        return self.sync_tx if channel is Channel.SYNC else self.south_tx

    def _tx_deadline(self, key: tuple[Channel, int]) -> float | None:
        tx = self._tx_table(key[0]).get(key[1])
        return None if tx is None else tx.next_at

    # --- small helpers ----------------------------------------------------------------
    def _log(self, event: str, **fields: Any) -> None:
        self._out.append(Log(event, fields))

    def _log_dropped(self, event: str, **fields: Any) -> None:
        """A line about input dropped or refused: the shell rate-limits these per event."""
        self._out.append(Log(event, fields, limited=True))

    def _reply(self, addr: Addr, msg: etsi.Reply) -> None:
        data = etsi.encode(msg)
        request = self.pending_north.pop((addr, msg.request_id), None)
        if request is not None:
            self.cache.put(addr, request, data)
        self._out.append(Send(Channel.NORTH, data, addr))

    def _next_txid(self) -> int:
        self._txid = (self._txid + 1) & 0xFFFFFFFF or 1
        return self._txid

    def _sync_send(self, msg: sync.SyncMessage) -> None:
        self._out.append(Send(Channel.SYNC, self.sync.seal(msg), self.cfg.peer_sync))

    def _sync_request(self, msg: sync.SyncRequest, now: float, **kw: Any) -> None:
        rto, deadline = self.cfg.sync_rto, now + self.cfg.sync_deadline
        self._request(
            self.sync_tx, msg.txid, _Tx(Channel.SYNC, msg, now + rto, rto, deadline, **kw)
        )

    def _south_request(self, msg: idq.AnyMessage, now: float, **kw: Any) -> None:
        rto, deadline = self.cfg.south_rto, now + self.cfg.south_deadline
        data = idq.encode(msg)
        self._request(
            self.south_tx, msg.request_id, _Tx(Channel.SOUTH, data, now + rto, rto, deadline, **kw)
        )

    def _request(self, table: dict[int, _Tx], key: int, tx: _Tx) -> None:
        """Send ``tx`` and keep it under ``key`` (its answer's ID) to retransmit until answered."""
        table[key] = tx
        self._tx_due.enter((tx.channel, key))
        self._send_tx(tx)

    def _send_tx(self, tx: _Tx) -> None:
        if tx.channel is Channel.SYNC:
            self._sync_send(tx.msg)  # sealed each time: a new sequence number
        else:
            self._out.append(Send(Channel.SOUTH, tx.msg, self.cfg.idq))

    def _next_rid(self) -> int:
        """An unpredictable IDQ3P request ID, not one of a request still outstanding: a
        forged reply has to guess it (the source is checked too, :meth:`_south_in`)."""
        rid = int.from_bytes(self.random_bytes(4), "big")
        while rid == 0 or rid in self.south_tx:
            rid = rid % 0xFFFFFFFF + 1  # the next free one: still unpredictable
        return rid

    def _pool(self, length: int) -> _Pool:
        p = self.pools.get(length)
        if p is None:
            p = self.pools[length] = _Pool()
        return p

    # --- northbound -------------------------------------------------------------------
    def served(self) -> frozenset[str]:
        """The addresses that may use this proxy: those of the node it serves."""
        cfg, addrs = self._served
        if cfg is not self.cfg or not addrs:
            addrs = frozenset(str(a) for a in self.cfg.local_node_addrs)
            self._served = (self.cfg, addrs)
        return addrs

    def _north(self, data: bytes, addr: Addr, now: float) -> None:
        if addr[0] not in self.served():
            self._refuse_stranger(data, addr)
            return
        hdr = etsi.peek_header(data)
        if hdr is not None:
            cached = self.cache.get(addr, data)
            if cached is not None:
                self.counters["north_duplicates"] += 1
                self._out.append(Send(Channel.NORTH, cached, addr))
                return
            if (addr, hdr[1]) in self.pending_north:
                self.counters["north_duplicates"] += 1
                return  # still working on it; the answer will come
        msg = self._decode_request(data, addr)
        if msg is None:
            return
        self.counters["north_requests"] += 1
        self.pending_north[(addr, msg.request_id)] = data
        if isinstance(msg, etsi.GetKey):
            self._get_key(msg, addr, now)
        elif isinstance(msg, etsi.Open):
            self._open(msg, addr, now)
        elif isinstance(msg, etsi.ConnectNonblock | etsi.ConnectBlocking):
            self._connect(msg, addr, now)
        else:
            self._close(msg, addr, now)

    def _decode_request(self, data: bytes, addr: Addr) -> etsi.Request | None:
        try:
            msg = etsi.decode(data)
        except DecodeError as e:
            self.counters["north_malformed"] += 1
            self._log_dropped("malformed request", peer=f"{addr[0]}:{addr[1]}", error=str(e))
            return None
        if not isinstance(
            msg, etsi.Open | etsi.ConnectNonblock | etsi.ConnectBlocking | etsi.GetKey | etsi.Close
        ):
            self.counters["north_malformed"] += 1
            return None
        return msg

    def _refuse_stranger(self, data: bytes, addr: Addr) -> None:
        """A request from an address of a node this proxy does not serve: status 4 ("no
        QKD connection available") to any call, counted; nothing is kept, not even the
        answer (a repeat is refused again, at no cost)."""
        msg = self._decode_request(data, addr)
        if msg is None:
            return
        self.counters["refused"] += 1
        self._log_dropped("refused", peer=addr[0], why="not served")
        reply = etsi.status_reply(msg, Status.NO_QKD_CONNECTION)
        self._out.append(Send(Channel.NORTH, etsi.encode(reply), addr))

    def _owned(self, msg: etsi.Request, addr: Addr, now: float) -> Session | None:
        """The session of ``msg`` if ``addr`` may use it; otherwise answer status 4 (5 is
        OPEN's alone in ETSI 004: an address that does not own the handle has no QKD
        connection under it)."""
        s = self.sessions.get(msg.key_handle)
        if s is None or s.local_closed:
            self._reply(addr, etsi.status_reply(msg, Status.NO_QKD_CONNECTION))
            return None
        if s.owner != addr[0]:
            self.counters["refused"] += 1
            self._log_dropped(
                "refused", peer=addr[0], handle=handle_hex(s.handle), owner=s.owner or ""
            )
            self._reply(addr, etsi.status_reply(msg, Status.NO_QKD_CONNECTION))
            return None
        s.last_used = now
        return s

    def _open(self, msg: etsi.Open, addr: Addr, now: float) -> None:
        qos = msg.qos
        length = qos.requested_length or self.cfg.default_key_length
        granted = etsi.QoS(length, qos.max_bps, qos.priority, qos.timeout_ms)
        if length > idq.MAX_KEY_BYTES:
            # V1.1.1 has no "QoS not satisfiable" (V2.1.1's 7): no connection for this QoS
            self._reply(addr, etsi.status_reply(msg, Status.NO_QKD_CONNECTION))
            return
        if msg.destination != self.cfg.peer_node and msg.destination not in self.cfg.peer_nodes:
            self._log("no route", peer=addr[0], destination=str(msg.destination))
            self._reply(addr, etsi.status_reply(msg, Status.NO_QKD_CONNECTION))
            return
        h = msg.key_handle
        s = self.sessions.get(h) if h != etsi.ZERO_HANDLE else None
        if s is not None and s.owner == addr[0] and not s.local_closed:
            s.last_used = now
            self._reply(addr, etsi.OpenReply(msg.request_id, Status.SUCCESSFUL, h, granted))
        elif s is not None and (s.owner is not None or s.master):
            self._refuse_open(msg, addr, "in use")
        elif self.sessions_of.get(addr[0], 0) >= self.cfg.max_sessions_per_client:
            self.counters["session_limit"] += 1
            self._log_dropped("refused", peer=addr[0], why="session limit")
            self._reply(addr, etsi.status_reply(msg, Status.NO_QKD_CONNECTION))
        elif s is not None:
            self._join(s, msg, addr, granted, now)
        else:
            self._create(msg, addr, granted, now)

    def _refuse_open(self, msg: etsi.Open, addr: Addr, why: str) -> None:
        self.counters["refused"] += 1
        self._log_dropped("refused", peer=addr[0], handle=handle_hex(msg.key_handle), why=why)
        self._reply(addr, etsi.status_reply(msg, Status.HANDLE_IN_USE))

    def _own(self, s: Session, addr: Addr, qos: etsi.QoS, now: float) -> None:
        s.owner = addr[0]
        s.timeout = qos.timeout_ms / 1000
        s.last_used = now
        self.sessions_of[addr[0]] = self.sessions_of.get(addr[0], 0) + 1

    def _join(self, s: Session, msg: etsi.Open, addr: Addr, granted: etsi.QoS, now: float) -> None:
        """OPEN of a session the peer created: only its named destination joins it."""
        if msg.destination != s.opener:
            self._refuse_open(msg, addr, "not destination")
            return
        if s.key_length != granted.requested_length:
            self._reply(addr, etsi.status_reply(msg, Status.NO_QKD_CONNECTION))
            return
        h = s.handle
        self._own(s, addr, granted, now)
        self._sync_request(sync.Opened(self._next_txid(), h), now, kind="opened")
        self._log("session joined", peer=addr[0], handle=handle_hex(h))
        self._reply(addr, etsi.OpenReply(msg.request_id, Status.SUCCESSFUL, h, granted))
        self._pump(s, now)

    def _create(self, msg: etsi.Open, addr: Addr, granted: etsi.QoS, now: float) -> None:
        """OPEN of a new session: this proxy allocates; answered when the peer confirms.
        Nothing is drawn from the device or bound until a GET_KEY asks."""
        h = msg.key_handle
        if h == etsi.ZERO_HANDLE:
            h = self.random_bytes(etsi.HANDLE_LEN)
            while h in self.sessions or h == etsi.ZERO_HANDLE:
                h = self.random_bytes(etsi.HANDLE_LEN)
        opener = self.cfg.node_of_addr.get(IPv4Address(addr[0]), self.cfg.local_node)
        s = Session(h, True, opener, msg.destination, granted.requested_length)
        self._own(s, addr, granted, now)
        s.open_waiter = (addr, msg.request_id, granted)
        self.sessions[h] = s
        self._arm_idle(s, now + self.cfg.session_idle)
        self._sync_request(
            sync.Create(self._next_txid(), h, opener, msg.destination, s.key_length),
            now,
            kind="create",
            handle=h,
        )

    def _max_wait(self, s: Session, limit: float) -> float:
        """``limit`` (s), shortened to the session's QoS timeout if it has one."""
        return min(limit, s.timeout) if s.timeout > 0 else limit

    def _connect(
        self, msg: etsi.ConnectNonblock | etsi.ConnectBlocking, addr: Addr, now: float
    ) -> None:
        s = self._owned(msg, addr, now)
        if s is None:
            return
        blocking = isinstance(msg, etsi.ConnectBlocking)
        if s.peer_connected:
            self._reply(addr, etsi.status_reply(msg, Status.SUCCESSFUL))
        elif isinstance(msg, etsi.ConnectBlocking) and msg.timeout_ms > 0:
            wait = min(msg.timeout_ms / 1000, self._max_wait(s, self.cfg.connect_max_wait))
            w = _Waiter(addr, msg.request_id, now + wait, s.handle, blocking=True)
            s.connect_waiters[w] = None
            self._wait(w)
        elif blocking:
            self._reply(addr, etsi.status_reply(msg, Status.TIMEOUT))
        else:
            self._reply(addr, etsi.status_reply(msg, Status.PEER_NOT_CONNECTED))

    def _close(self, msg: etsi.Close, addr: Addr, now: float) -> None:
        s = self._owned(msg, addr, now)
        if s is None:
            return
        self._end(s, now)
        self._reply(addr, etsi.status_reply(msg, Status.SUCCESSFUL))
        self._log("session closed", peer=addr[0], handle=handle_hex(s.handle), keys=s.next_index)

    def _end(self, s: Session, now: float) -> None:
        """The local SAE is done with ``s`` (QKD_CLOSE, or idle): its waiters are
        answered (status 4), the peer is told."""
        s.local_closed = True
        self._answer_waiters(s, Status.NO_QKD_CONNECTION)
        h = s.handle
        self._sync_request(sync.Close(self._next_txid(), h), now, kind="close", handle=h)
        if s.peer_closed or not s.confirmed:
            self._drop(s)

    def _drop(self, s: Session) -> None:
        """Forget ``s``; whatever still waits on it is answered (status 4)."""
        if self.sessions.get(s.handle) is not s:
            return
        del self.sessions[s.handle]
        if s.owner is not None:
            n = self.sessions_of.get(s.owner, 0) - 1
            if n > 0:
                self.sessions_of[s.owner] = n
            else:
                self.sessions_of.pop(s.owner, None)
        for p in self.pools.values():
            p.starving.discard(s.handle)
        self._answer_waiters(s, Status.NO_QKD_CONNECTION)
        if s.open_waiter is not None:
            addr, rid, qos = s.open_waiter
            s.open_waiter = None
            self._reply(addr, etsi.OpenReply(rid, Status.NO_QKD_CONNECTION, s.handle, qos))
        s.keys.clear()

    def _get_key(self, msg: etsi.GetKey, addr: Addr, now: float) -> None:
        s = self._owned(msg, addr, now)
        if s is None:
            return
        # until the peer confirms the session a GET_KEY waits: in a simultaneous OPEN of
        # one handle, which end allocates (and so which key is index 0) is not known yet
        if s.confirmed and not s.waiting and self._deliver(s, addr, msg.request_id, now):
            return
        deadline = now + self._max_wait(s, self.cfg.get_deadline)
        w = _Waiter(addr, msg.request_id, deadline, s.handle)
        s.waiting.append(w)
        self._wait(w)
        self._pump(s, now)

    def _deliver(self, s: Session, addr: Addr, rid: int, now: float) -> bool:
        idx = s.next_index
        key = s.keys.pop(idx, None)
        if key is None:
            return False
        s.next_index = idx + 1
        self.counters["keys_delivered"] += 1
        self.counters["bits_delivered"] += 8 * len(key)
        self._reply(addr, etsi.GetKeyReply(rid, Status.SUCCESSFUL, idx, key))
        if s.master:
            self._prune(s)
            if s.bound_upto - s.next_index < s.bind_ahead // 2:
                self._bind_more(s, s.bound_upto, now)
        else:
            s.bindings.pop(idx, None)
            if s.fetch_from - s.next_index < 2 * self.cfg.bind_block:
                self._fetch_bound(s, now)
        return True

    def _serve_waiting(self, s: Session, now: float) -> None:
        while s.waiting:
            w = s.waiting[0]
            if not w.done:
                if not self._deliver(s, w.addr, w.request_id, now):
                    break
                w.done = True
            s.waiting.popleft()

    def _pump(self, s: Session, now: float) -> None:
        """Answer waiting GET_KEYs in order while keys are here; otherwise get more (a
        session not confirmed yet waits for its confirmation)."""
        if not s.confirmed:
            return
        self._serve_waiting(s, now)
        if not s.waiting:
            return
        idx = s.next_index
        if s.master:
            self._bind_more(s, idx, now)
            self._serve_waiting(s, now)
            if s.waiting:
                self._starve(s, now)
        elif s.peer_closed and idx not in s.bindings:
            self._fail_waiting(s, Status.GET_KEY_PEER_NOT_CONNECTED)
        elif idx in s.bindings:
            self._fetch_bound(s, now)
        elif s.alloc_tx is None:
            txid = self._next_txid()
            s.alloc_tx = txid
            self._sync_request(sync.Alloc(txid, s.handle, idx), now, kind="alloc", handle=s.handle)

    def _fail_waiting(self, s: Session, st: Status) -> None:
        """Answer every waiting GET_KEY of ``s`` with ``st``."""
        live = [w for w in s.waiting if not w.done]
        s.waiting.clear()
        if st is Status.INSUFFICIENT_KEY:
            self.counters["insufficient"] += len(live)
        for w in live:
            w.done = True
            self._reply(w.addr, etsi.GetKeyReply(w.request_id, st))

    def _answer_waiters(self, s: Session, st: Status) -> None:
        """Answer every GET_KEY and QKD_CONNECT_BLOCKING waiting on ``s`` with ``st``."""
        self._fail_waiting(s, st)
        self._answer_connect(s, st)

    def _answer_connect(self, s: Session, st: Status) -> None:
        waiters = list(s.connect_waiters)
        s.connect_waiters.clear()
        for w in waiters:
            w.done = True
            self._reply(w.addr, etsi.ConnectBlockingReply(w.request_id, st, s.handle))

    # --- north timers: waiters' deadlines and idle sessions, one heap -----------------
    def _wait(self, w: _Waiter) -> None:
        heapq.heappush(self._timeq, (w.deadline, next(self._tseq), w))
        if len(self._timeq) >= self._compact_at:
            self._compact()

    def _arm_idle(self, s: Session, at: float) -> None:
        heapq.heappush(self._timeq, (at, next(self._tseq), s))

    def _compact(self) -> None:
        """Drop the heap entries of answered waiters and forgotten sessions (amortized:
        the heap is rebuilt when it has doubled since the last time)."""
        q = [e for e in self._timeq if self._live(e[2])]
        heapq.heapify(q)
        self._timeq = q
        self._compact_at = max(1024, 2 * len(q))

    def _live(self, item: _Waiter | Session) -> bool:
        if isinstance(item, Session):
            return self.sessions.get(item.handle) is item
        return not item.done

    def _expire(self, now: float) -> None:
        q = self._timeq
        while q and q[0][0] <= now:
            _, _, item = heapq.heappop(q)
            if isinstance(item, Session):
                self._idle_check(item, now)
            elif not item.done:
                self._time_out(item)

    def _time_out(self, w: _Waiter) -> None:
        w.done = True
        s = self.sessions.get(w.handle)
        if w.blocking:
            if s is not None:
                s.connect_waiters.pop(w, None)
            self._reply(w.addr, etsi.ConnectBlockingReply(w.request_id, Status.TIMEOUT, w.handle))
            return
        if s is not None:
            while s.waiting and s.waiting[0].done:
                s.waiting.popleft()
        self._reply(w.addr, etsi.GetKeyReply(w.request_id, Status.TIMEOUT))

    def _idle_check(self, s: Session, now: float) -> None:
        """A session not open at both ends and unused for ``session_idle`` is closed here
        (as by QKD_CLOSE) and the peer told; one open at both ends lives until closed."""
        if self.sessions.get(s.handle) is not s:
            return
        idle = self.cfg.session_idle
        due = s.last_used + idle
        if due > now:
            self._arm_idle(s, due)
            return
        both = s.owner is not None and s.peer_connected and not s.peer_closed
        busy = s.waiting or s.connect_waiters or s.open_waiter is not None
        if (both and not s.local_closed) or busy:
            self._arm_idle(s, now + idle)
            return
        self.counters["sessions_expired"] += 1
        self._log("session expired", handle=handle_hex(s.handle), owner=s.owner or "")
        if s.owner is not None and not s.local_closed:
            self._end(s, now)
            self._arm_idle(s, now + idle)  # forgotten when the peer answers, or then
            return
        self._drop(s)
        if not s.peer_closed:
            h = s.handle
            self._sync_request(sync.Close(self._next_txid(), h), now, kind="close", handle=h)

    # --- master: key pool and binding -------------------------------------------------
    def _warm(self, length: int, now: float) -> None:
        p = self._pool(length)
        if p.inflight is None and len(p.keys) < self.cfg.prefetch // 2 and now >= p.retry_after:
            self._fetch_next(length, now)

    def _fetch_next(self, length: int, now: float) -> None:
        p = self._pool(length)
        if p.inflight is not None:
            return
        fit = max(1, (idq.MAX_DATAGRAM - 64) // (length + 8))
        rid = self._next_rid()
        p.inflight = rid
        self._south_request(
            idq.GetNextKey(rid, length, min(self.cfg.prefetch, fit, idq.MAX_KEYS)),
            now,
            kind="next",
            length=length,
        )

    def _bind_more(self, s: Session, upto: int, now: float) -> bool:
        """Bind indexes up to ``upto`` from the pool, and at least ``bind_ahead`` of them
        (``bind_first`` for a session's first binding, doubling to ``bind_block``: a
        bounded prefetch); True if ``upto`` is bound."""
        if s.bound_upto > upto:
            return True
        p = self._pool(s.key_length)
        ahead = s.bind_ahead or self.cfg.bind_first
        want = max(upto + 1 - s.bound_upto, ahead)
        n = min(want, len(p.keys), sync.MAX_IDS)
        if n > 0:
            s.bind_ahead = min(2 * ahead, self.cfg.bind_block)
            start = s.bound_upto
            ids = []
            for i in range(start, start + n):
                kid, material = p.keys.popleft()
                s.bindings[i] = kid
                s.keys[i] = material
                ids.append(kid)
            s.bound_upto = start + n
            self._sync_request(
                sync.Bind(self._next_txid(), s.handle, start, s.key_length, tuple(ids)),
                now,
                kind="bind",
                handle=s.handle,
                start=start,
                end=start + n,
            )
        self._warm(s.key_length, now)
        return s.bound_upto > upto

    def _starve(self, s: Session, now: float) -> None:
        p = self._pool(s.key_length)
        p.starving.add(s.handle)
        self._fetch_next(s.key_length, now)

    def _prune(self, s: Session) -> None:
        """Forget bindings both the local SAE and the peer are done with (master)."""
        low = min(s.next_index, s.acked_upto)
        for i in range(s.pruned_upto, low):
            s.bindings.pop(i, None)
        s.pruned_upto = max(s.pruned_upto, low)

    def _pool_filled(self, length: int, ok: bool, now: float) -> None:
        p = self._pool(length)
        starving = [self.sessions[h] for h in sorted(p.starving) if h in self.sessions]
        p.starving.clear()
        for s in starving:
            if ok:
                self._answer_allocs(s, now)
                self._pump(s, now)
            else:
                # the device has no key: say so now rather than let the caller wait
                for txid, _ in s.pending_allocs:
                    self._sync_send(sync.AllocResp(txid, s.handle, sync.Result.INSUFFICIENT_KEY))
                s.pending_allocs.clear()
                if s.waiting and s.next_index not in s.keys:
                    self._fail_waiting(s, Status.INSUFFICIENT_KEY)

    def _answer_allocs(self, s: Session, now: float) -> None:
        keep = []
        for txid, index in s.pending_allocs:
            if self._bind_more(s, index, now):
                self._send_alloc_resp(s, txid, index)
            else:
                keep.append((txid, index))
        s.pending_allocs = keep
        if keep:
            self._starve(s, now)

    def _send_alloc_resp(self, s: Session, txid: int, index: int) -> None:
        # an Alloc sent again (its answer late) may ask for indexes both ends are done
        # with, whose bindings are pruned: the answer starts at the first one still held
        start = max(index, s.pruned_upto)
        ids = tuple(s.bindings[i] for i in range(start, min(s.bound_upto, start + sync.MAX_IDS)))
        self._sync_send(sync.AllocResp(txid, s.handle, sync.Result.OK, start, s.key_length, ids))

    # --- responder: fetch bound keys by ID --------------------------------------------
    def _install(self, s: Session, start: int, ids: tuple[int, ...], now: float) -> None:
        for i, kid in enumerate(ids, start):
            if i >= s.next_index and i not in s.bindings:
                s.bindings[i] = kid
        self._fetch_bound(s, now)

    def _fetch_bound(self, s: Session, now: float) -> None:
        """Fetch the bound keys of the next few blocks from the device, in index order."""
        i = max(s.fetch_from, s.next_index)
        limit = s.next_index + 4 * self.cfg.bind_block
        todo = []
        while i < limit and i in s.bindings:
            kid = s.bindings[i]
            if i not in s.keys and kid not in s.fetching:
                todo.append((i, kid))
            i += 1
        s.fetch_from = i
        step = min(max(1, (idq.MAX_DATAGRAM - 64) // (s.key_length + 8)), idq.MAX_KEYS)
        for k in range(0, len(todo), step):
            chunk = todo[k : k + step]
            for i, kid in chunk:
                s.fetching[kid] = i
            self._south_request(
                idq.GetKeyById(self._next_rid(), s.key_length, tuple(kid for _, kid in chunk)),
                now,
                kind="byid",
                length=s.key_length,
                handle=s.handle,
            )

    # --- southbound -------------------------------------------------------------------
    def _south_in(self, data: bytes, addr: Addr, now: float) -> None:
        if addr != self.cfg.idq:
            self.counters["south_foreign"] += 1
            self._log_dropped("device reply dropped", peer=f"{addr[0]}:{addr[1]}", why="source")
            return
        try:
            msg = idq.decode(data)
        except DecodeError as e:
            self.counters["south_malformed"] += 1
            self._log_dropped("device reply dropped", why="malformed", error=str(e))
            return
        tx = self.south_tx.get(msg.request_id)
        if tx is None and msg.request_id in self.south_resent:
            # the device answered a request we had sent twice: its other answer came first
            self.counters["south_late"] += 1
            return
        if tx is None or not _answers(tx, msg):
            # a late duplicate, or forged: nothing outstanding has this ID and shape
            self.counters["south_unmatched"] += 1
            self._log_dropped("device reply dropped", why="unmatched", request_id=msg.request_id)
            return
        del self.south_tx[msg.request_id]
        if tx.kind == "next":
            p = self._pool(tx.length)
            p.inflight = None
            ok = isinstance(msg, idq.Keys) and msg.status == idq.Status.OK and bool(msg.keys)
            if ok and isinstance(msg, idq.Keys):
                p.keys.extend((k.key_id, k.material) for k in msg.keys)
            else:
                p.retry_after = now + 0.1
                self._log("device has no key", length=tx.length)
            self._pool_filled(tx.length, ok, now)
        elif tx.kind == "byid":
            s = self.sessions.get(tx.handle)
            if s is None or not isinstance(msg, idq.Keys):
                return
            got = set()
            for k in msg.keys:
                i = s.fetching.pop(k.key_id, None)
                if i is not None and i >= s.next_index:
                    s.keys[i] = k.material
                got.add(k.key_id)
            if msg.status != idq.Status.OK and isinstance(tx.msg, bytes):
                asked = idq.decode(tx.msg)
                assert isinstance(asked, idq.GetKeyById)
                lost = [kid for kid in asked.key_ids if kid not in got]
                for kid in lost:
                    s.fetching.pop(kid, None)
                self._log("device lacks bound keys", handle=handle_hex(s.handle), n=len(lost))
                if s.waiting and s.next_index not in s.keys and not s.fetching:
                    self._fail_waiting(s, Status.NO_QKD_CONNECTION)
            self._pump(s, now)

    def _south_failed(self, tx: _Tx, now: float) -> None:
        self._log("device unreachable", kind=tx.kind)
        if tx.kind == "next":
            p = self._pool(tx.length)
            p.inflight = None
            p.retry_after = now + 0.5
            for h in list(p.starving):
                s = self.sessions.get(h)
                if s is not None:
                    self._fail_waiting(s, Status.NO_QKD_CONNECTION)
            p.starving.clear()
        elif tx.kind == "byid":
            s = self.sessions.get(tx.handle)
            if s is not None:
                s.fetching.clear()
                s.fetch_from = s.next_index
                self._fail_waiting(s, Status.NO_QKD_CONNECTION)

    # --- sync channel -----------------------------------------------------------------
    def _sync_in(self, data: bytes, addr: Addr, now: float) -> None:
        if addr != self.cfg.peer_sync:
            self.counters["sync_foreign"] += 1
            self._log_dropped("sync frame rejected", peer=f"{addr[0]}:{addr[1]}", why="source")
            return
        heard = self.sync.peer_epoch
        try:
            msg = self.sync.open(data)
        except sync.StaleError as e:
            self._log_dropped("sync frame rejected", peer=addr[0], error=str(e))
            self._hello(e.sender_epoch, now)
            return
        except DecodeError as e:
            self._log_dropped("sync frame rejected", peer=addr[0], error=str(e))
            return
        self.last_heard = now
        if self.sync.peer_epoch != heard:
            self._log("sync peer epoch", peer=addr[0], epoch=f"{self.sync.peer_epoch:016x}")
            self.sync_tx.pop(GREETING, None)  # answered
            self._resend_sync(now)  # sealed for the peer's epoch now, not the one before
        if isinstance(msg, sync.Hello):
            return
        if isinstance(msg, sync.RELAY_REQUESTS):
            self.relay_inbox.append((msg, False))
            return
        if isinstance(msg, sync.Create):
            self._on_create(msg, now)
        elif isinstance(msg, sync.Bind):
            s = self.sessions.get(msg.key_handle)
            if s is None or s.master:
                self._sync_send(sync.Ack(msg.txid, msg.key_handle, sync.Result.UNKNOWN_HANDLE))
                return
            self._sync_send(sync.Ack(msg.txid, msg.key_handle))
            self._install(s, msg.start_index, msg.key_ids, now)
        elif isinstance(msg, sync.Alloc):
            s = self.sessions.get(msg.key_handle)
            if s is None or not s.master:
                self._sync_send(
                    sync.AllocResp(msg.txid, msg.key_handle, sync.Result.UNKNOWN_HANDLE)
                )
                return
            if self._bind_more(s, msg.index, now):
                self._send_alloc_resp(s, msg.txid, msg.index)
            elif all(t != msg.txid for t, _ in s.pending_allocs):
                s.pending_allocs.append((msg.txid, msg.index))
                self._starve(s, now)
        elif isinstance(msg, sync.Opened):
            s = self.sessions.get(msg.key_handle)
            if s is None:
                self._sync_send(sync.Ack(msg.txid, msg.key_handle, sync.Result.UNKNOWN_HANDLE))
                return
            self._sync_send(sync.Ack(msg.txid, msg.key_handle))
            self._peer_connected(s)
        elif isinstance(msg, sync.Close):
            self._on_close(msg, now)
        else:
            tx = self.sync_tx.pop(msg.txid, None)
            if tx is None:
                return  # answer to a retransmission already answered
            if isinstance(msg, sync.RelayResp | sync.RelayAck):
                self.relay_inbox.append((msg, False))
            elif isinstance(msg, sync.CreateResp):
                self._on_create_resp(msg, now)
            elif isinstance(msg, sync.AllocResp):
                self._on_alloc_resp(msg, now)
            elif isinstance(msg, sync.Ack) and tx.kind == "close":
                s = self.sessions.get(tx.handle)
                if s is not None and s.local_closed and msg.result != sync.Result.OK:
                    self._drop(s)
            elif isinstance(msg, sync.Ack) and tx.kind == "bind":
                s = self.sessions.get(tx.handle)
                if s is not None and msg.result == sync.Result.OK:
                    s.acked[tx.start] = tx.end
                    while s.acked_upto in s.acked:
                        s.acked_upto = s.acked.pop(s.acked_upto)
                    self._prune(s)

    def _hello(self, to_epoch: int, now: float) -> None:
        """Answer a stale frame: tell its sender our epoch (at most once per ``sync_rto``,
        so replayed frames cannot make us flood the peer)."""
        if now < self._hello_at + self.cfg.sync_rto:
            return
        self._hello_at = now
        frame = self.sync.seal(sync.Hello(), to_epoch)
        self._out.append(Send(Channel.SYNC, frame, self.cfg.peer_sync))

    def _resend_sync(self, now: float) -> None:
        """Retransmit every outstanding sync request now (a new epoch was heard)."""
        for txid, tx in self.sync_tx.items():
            self._send_tx(tx)
            tx.next_at = now + tx.rto
            self._tx_due.enter((Channel.SYNC, txid))

    def _on_close(self, msg: sync.Close, now: float) -> None:
        s = self.sessions.get(msg.key_handle)
        if s is None:
            self._sync_send(sync.Ack(msg.txid, msg.key_handle, sync.Result.UNKNOWN_HANDLE))
            return
        s.peer_closed = True
        s.peer_connected = False
        self._log("peer closed", handle=handle_hex(s.handle))
        if s.local_closed or s.owner is None:
            self._drop(s)
            # tell the peer the session is gone here, so it can forget it too
            self._sync_send(sync.Ack(msg.txid, msg.key_handle, sync.Result.UNKNOWN_HANDLE))
        else:
            self._sync_send(sync.Ack(msg.txid, msg.key_handle))
            self._pump(s, now)

    def _on_create(self, msg: sync.Create, now: float) -> None:
        h = msg.key_handle
        s = self.sessions.get(h)
        R = sync.Result
        if s is None:
            if (
                msg.destination != self.cfg.local_node
                and msg.destination not in self.cfg.local_nodes
            ):
                self._sync_send(sync.CreateResp(msg.txid, h, R.NO_ROUTE))
                return
            s = Session(h, False, msg.opener, msg.destination, msg.key_length, last_used=now)
            s.confirmed = True
            s.peer_connected = True
            self.sessions[h] = s
            self._arm_idle(s, now + self.cfg.session_idle)
            self._log("session created by peer", handle=handle_hex(h), opener=str(msg.opener))
            self._sync_send(sync.CreateResp(msg.txid, h, R.OK))
            return
        mirror = (
            s.opener == msg.destination
            and s.destination == msg.opener
            and s.key_length == msg.key_length
        )
        same = (
            not s.master
            and s.opener == msg.opener
            and s.destination == msg.destination
            and s.key_length == msg.key_length
        )
        if same or (mirror and not s.master):
            self._sync_send(sync.CreateResp(msg.txid, h, R.OK))
        elif mirror and s.master and (s.confirmed or self.cfg.wins_tie):
            self._sync_send(sync.CreateResp(msg.txid, h, R.JOINED))
            self._peer_connected(s)
        elif mirror and s.master:
            # both opened this handle at once and the peer allocates: follow it (nothing
            # is bound here: GET_KEYs wait until the peer confirms, then ask it)
            s.master = False
            s.peer_connected = True
            self._sync_send(sync.CreateResp(msg.txid, h, R.OK))
        else:
            self._sync_send(sync.CreateResp(msg.txid, h, R.IN_USE))

    def _on_create_resp(self, msg: sync.CreateResp, now: float) -> None:
        s = self.sessions.get(msg.key_handle)
        if s is None or s.open_waiter is None:
            return
        addr, rid, qos = s.open_waiter
        s.open_waiter = None
        R = sync.Result
        if msg.result in (R.OK, R.JOINED):
            s.confirmed = True
            if msg.result == R.JOINED:
                s.master = False
                s.peer_connected = True
            self._log(
                "session open",
                peer=addr[0],
                handle=handle_hex(s.handle),
                allocates=s.master,
                destination=str(s.destination),
            )
            self._reply(addr, etsi.OpenReply(rid, Status.SUCCESSFUL, s.handle, qos))
            self._pump(s, now)  # the GET_KEYs held until now; keys are bound as asked
            return
        st = Status.NO_QKD_CONNECTION if msg.result == R.NO_ROUTE else Status.HANDLE_IN_USE
        self._log("open refused by peer", handle=handle_hex(s.handle), result=msg.result.name)
        self._drop(s)
        self._reply(addr, etsi.OpenReply(rid, st, msg.key_handle, qos))

    def _on_alloc_resp(self, msg: sync.AllocResp, now: float) -> None:
        s = self.sessions.get(msg.key_handle)
        if s is None or s.master:
            return
        s.alloc_tx = None
        if msg.result == sync.Result.OK:
            self._install(s, msg.start_index, msg.key_ids, now)
            self._pump(s, now)
        elif msg.result == sync.Result.INSUFFICIENT_KEY:
            if s.next_index not in s.bindings:
                self._fail_waiting(s, Status.INSUFFICIENT_KEY)
        else:
            self._fail_waiting(s, Status.NO_QKD_CONNECTION)

    def _peer_connected(self, s: Session) -> None:
        s.peer_connected = True
        self._answer_connect(s, Status.SUCCESSFUL)

    # --- timers -----------------------------------------------------------------------
    def _timers(self, now: float) -> None:
        self._retransmit(now)
        self._expire(now)

    def _retransmit(self, now: float) -> None:
        """Resend the requests (sync or south) that are due, each time after twice the
        wait (at most the channel's ``rto_max``); one past its deadline has failed."""
        for channel, key in self._tx_due.pop_due(now):
            table = self._tx_table(channel)
            tx = table.get(key)
            if tx is None:  # answered or failed by an earlier one of this tick
                continue
            sync_channel = channel is Channel.SYNC
            if now >= tx.deadline:
                del table[key]
                (self._sync_failed if sync_channel else self._south_failed)(tx, now)
                continue
            self.counters[f"{channel.value}_retransmits"] += 1
            if not sync_channel:
                self._resent(key)
            self._send_tx(tx)
            rto_max = self.cfg.sync_rto_max if sync_channel else self.cfg.south_rto_max
            tx.rto = min(tx.rto * 2, rto_max)
            tx.next_at = now + tx.rto
            self._tx_due.enter((channel, key))

    def _resent(self, request_id: int) -> None:
        self.south_resent[request_id] = None
        if len(self.south_resent) > RESENT_KEPT:
            del self.south_resent[next(iter(self.south_resent))]

    def _sync_failed(self, tx: _Tx, now: float) -> None:
        self._log("peer proxy unreachable", kind=tx.kind)
        if isinstance(tx.msg, sync.RELAY_REQUESTS):
            self.relay_inbox.append((tx.msg, True))
            return
        s = self.sessions.get(tx.handle) if tx.handle else None
        if s is None:
            return
        if tx.kind == "create" and s.open_waiter is not None:
            addr, rid, qos = s.open_waiter
            s.open_waiter = None
            self._drop(s)
            self._reply(addr, etsi.OpenReply(rid, Status.NO_QKD_CONNECTION, s.handle, qos))
            # the peer may have made its side and only the answers were lost: undo it
            self._sync_send(sync.Close(self._next_txid(), s.handle))
        elif tx.kind == "alloc":
            s.alloc_tx = None
            self._fail_waiting(s, Status.NO_QKD_CONNECTION)

    # --- the key manager's events (qkd_proxy.km) ------------------------------------
    def _relay_out(self, event: RelayOut, now: float) -> None:
        if event.request:
            msg = dataclasses.replace(event.msg, txid=self._next_txid())
            self._sync_request(msg, now, kind="relay")
        else:
            self._sync_send(event.msg)

    def pool_bits(self) -> int:
        """Key bits drawn from the device and not yet bound to a session."""
        return sum(8 * length * len(p.keys) for length, p in self.pools.items())


def _epoch(random_bytes: Callable[[int], bytes]) -> int:
    """A random, non-zero 64-bit sync epoch."""
    return int.from_bytes(random_bytes(8), "big") or 1


def _answers(tx: _Tx, msg: idq.AnyMessage) -> bool:
    """Whether ``msg`` has the shape of an answer to ``tx`` (KEYS of the asked length, or
    an ERROR); its request ID already matched."""
    if isinstance(msg, idq.Error):
        return True
    return isinstance(msg, idq.Keys) and msg.key_bytes == tx.length


def encode_error_safe(msg: etsi.Reply) -> bytes | None:
    try:
        return etsi.encode(msg)
    except EncodeError:
        return None
