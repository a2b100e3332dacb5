"""The ETSI GS QKD 004 proxy, sans-I/O: ``handle(event, now) -> actions``.

One :class:`ProxyCore` is one proxy of a QKD link (docs/design.md#the-qkd-side). It keeps the
contract of
:mod:`gmpls.core`: it takes datagrams from three channels and :class:`~gmpls.core.Tick`
(the events of :mod:`qkd_proxy.events`) with the time, returns datagrams to send and log
events, and tells its next timer through :meth:`ProxyCore.next_timer`:

* NORTH: ETSI 004 requests from applications (SAEs), answered per request ID from a
  response cache so a retransmission never consumes a second key (gmpls.qkd.etsi004);
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
order; index i is the same key at both ends. Nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from gmpls.cache import ResponseCache
from gmpls.core import Tick
from gmpls.errors import DecodeError, EncodeError
from gmpls.qkd import etsi004 as etsi
from gmpls.qkd import idq3p as idq
from gmpls.qkd import sync
from gmpls.qkd.etsi004 import Status
from qkd_proxy.events import Action, Addr, Channel, Datagram, Event, Log, Send


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
    bind_block: int = 64
    prefetch: int = 512
    sync_rto: float = 0.02
    sync_rto_max: float = 0.2
    sync_deadline: float = 4.0
    south_rto: float = 0.03
    south_rto_max: float = 0.25
    south_deadline: float = 2.0
    get_deadline: float = 8.0
    cache_size: int = 65536


@dataclass(slots=True)
class _Waiter:
    addr: Addr
    request_id: int
    deadline: float


@dataclass(slots=True)
class Session:
    handle: bytes
    master: bool
    opener: IPv4Address
    destination: IPv4Address
    key_length: int
    owner: str | None = None
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
    connect_waiters: list[_Waiter] = field(default_factory=list)
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
        self.cache = ResponseCache(cfg.cache_size)
        self.pending_north: set[tuple[Addr, int]] = set()
        self.pools: dict[int, _Pool] = {}
        self.sync_tx: dict[int, _Tx] = {}
        self.south_tx: dict[int, _Tx] = {}
        # greet the peer at once: a HELLO, resent like a request until we hear its epoch,
        # so a session opened right after a start does not wait for a stale frame's answer
        rto = cfg.sync_rto / 2  # doubled before it is first sent
        greeting = _Tx(Channel.SYNC, sync.Hello(), now, rto, now + cfg.sync_deadline, "hello")
        self.sync_tx[GREETING] = greeting
        self._txid = 0
        self._out: list[Action] = []
        self.counters: dict[str, int] = {
            "north_requests": 0,
            "north_duplicates": 0,
            "north_malformed": 0,
            "keys_delivered": 0,
            "refused": 0,
            "insufficient": 0,
            "sync_foreign": 0,
            "sync_retransmits": 0,
            "south_retransmits": 0,
            "south_malformed": 0,
            "south_foreign": 0,
            "south_unmatched": 0,
        }
        self.started = now
        self._due: float | None = now  # earliest timer, as computed after the last event
        #: handles of the sessions that may have GET_KEY or CONNECT_BLOCKING waiters (the
        #: only sessions with a timer): next_timer looks at these, not at every session
        self._watch: set[bytes] = set()

    # --- the one entry point ----------------------------------------------------------
    def handle(self, event: Event, now: float) -> list[Action]:
        self._out = []
        if isinstance(event, Datagram):
            if event.channel is Channel.NORTH:
                self._north(event.data, event.addr, now)
            elif event.channel is Channel.SYNC:
                self._sync_in(event.data, event.addr, now)
            else:
                self._south_in(event.data, event.addr, now)
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
        times = [t.next_at for t in self.sync_tx.values()]
        times += [t.next_at for t in self.south_tx.values()]
        for h in list(self._watch):
            s = self.sessions.get(h)
            if s is None or not (s.waiting or s.connect_waiters):
                self._watch.discard(h)
                continue
            if s.waiting:
                times.append(s.waiting[0].deadline)
            times += [w.deadline for w in s.connect_waiters]
        return min(times) if times else None

    # --- small helpers ----------------------------------------------------------------
    def _log(self, event: str, **fields: Any) -> None:
        self._out.append(Log(event, fields))

    def _log_dropped(self, event: str, **fields: Any) -> None:
        """A line about input dropped or refused: the shell rate-limits these per event."""
        self._out.append(Log(event, fields, limited=True))

    def _reply(self, addr: Addr, msg: etsi.Reply) -> None:
        data = etsi.encode(msg)
        key = (addr, msg.request_id)
        self.cache.put(key, data)
        self.pending_north.discard(key)
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
    def _north(self, data: bytes, addr: Addr, now: float) -> None:
        hdr = etsi.peek_header(data)
        if hdr is not None:
            key = (addr, hdr[1])
            cached = self.cache.get(key)
            if cached is not None:
                self.counters["north_duplicates"] += 1
                self._out.append(Send(Channel.NORTH, cached, addr))
                return
            if key in self.pending_north:
                self.counters["north_duplicates"] += 1
                return  # still working on it; the answer will come
        try:
            msg = etsi.decode(data)
        except DecodeError as e:
            self.counters["north_malformed"] += 1
            self._log_dropped("malformed request", peer=f"{addr[0]}:{addr[1]}", error=str(e))
            return
        if not isinstance(
            msg, etsi.Open | etsi.ConnectNonblock | etsi.ConnectBlocking | etsi.GetKey | etsi.Close
        ):
            self.counters["north_malformed"] += 1
            return
        self.counters["north_requests"] += 1
        if isinstance(msg, etsi.GetKey):
            self._get_key(msg, addr, now)
        elif isinstance(msg, etsi.Open):
            self._open(msg, addr, now)
        elif isinstance(msg, etsi.ConnectNonblock | etsi.ConnectBlocking):
            self._connect(msg, addr, now)
        else:
            self._close(msg, addr, now)

    def _owned(self, h: bytes, addr: Addr, reply: Callable[[Status], etsi.Reply]) -> Session | None:
        """The session if ``addr`` may use it; otherwise answer with an error status."""
        s = self.sessions.get(h)
        if s is None or s.local_closed:
            self._reply(addr, reply(Status.NO_QKD_CONNECTION))
            return None
        if s.owner != addr[0]:
            self.counters["refused"] += 1
            self._log("refused", peer=addr[0], handle=handle_hex(h), owner=s.owner or "")
            self._reply(addr, reply(Status.HANDLE_IN_USE))
            return None
        return s

    def _open(self, msg: etsi.Open, addr: Addr, now: float) -> None:
        rid = msg.request_id
        qos = msg.qos
        length = qos.requested_length or self.cfg.default_key_length

        def fail(st: Status) -> None:
            self._reply(addr, etsi.OpenReply(rid, st, msg.key_handle, qos))

        if length > idq.MAX_KEY_BYTES:
            fail(Status.QOS_NOT_MET)
            return
        granted = etsi.QoS(length, qos.max_bps, qos.priority, qos.timeout_ms)
        if msg.destination != self.cfg.peer_node:
            self._log("no route", peer=addr[0], destination=str(msg.destination))
            fail(Status.NO_QKD_CONNECTION)
            return
        ip = IPv4Address(addr[0])
        h = msg.key_handle
        s = self.sessions.get(h) if h != etsi.ZERO_HANDLE else None
        if s is not None:
            if s.owner == addr[0] and not s.local_closed:
                self._reply(addr, etsi.OpenReply(rid, Status.SUCCESSFUL, h, granted))
                return
            if s.owner is not None or s.master:
                self.counters["refused"] += 1
                self._log("refused", peer=addr[0], handle=handle_hex(h), why="in use")
                fail(Status.HANDLE_IN_USE)
                return
            # a session the peer created: only the named destination joins it
            if ip not in self.cfg.local_node_addrs or msg.destination != s.opener:
                self.counters["refused"] += 1
                self._log("refused", peer=addr[0], handle=handle_hex(h), why="not destination")
                fail(Status.HANDLE_IN_USE)
                return
            if s.key_length != length:
                fail(Status.QOS_NOT_MET)
                return
            s.owner = addr[0]
            self._sync_request(sync.Opened(self._next_txid(), h), now, kind="opened")
            self._log("session joined", peer=addr[0], handle=handle_hex(h))
            self._reply(addr, etsi.OpenReply(rid, Status.SUCCESSFUL, h, granted))
            self._pump(s, now)
            return
        if h == etsi.ZERO_HANDLE:
            h = self.random_bytes(etsi.HANDLE_LEN)
            while h in self.sessions or h == etsi.ZERO_HANDLE:
                h = self.random_bytes(etsi.HANDLE_LEN)
        opener = self.cfg.node_of_addr.get(ip, self.cfg.local_node)
        s = Session(h, True, opener, msg.destination, length, owner=addr[0])
        s.open_waiter = (addr, rid, granted)
        self.sessions[h] = s
        self.pending_north.add((addr, rid))
        self._sync_request(
            sync.Create(self._next_txid(), h, opener, msg.destination, length),
            now,
            kind="create",
            handle=h,
        )
        self._warm(length, now)

    def _connect(
        self, msg: etsi.ConnectNonblock | etsi.ConnectBlocking, addr: Addr, now: float
    ) -> None:
        blocking = isinstance(msg, etsi.ConnectBlocking)
        rcls = etsi.ConnectBlockingReply if blocking else etsi.ConnectNonblockReply
        h = msg.key_handle
        s = self._owned(h, addr, lambda st: rcls(msg.request_id, st, h))
        if s is None:
            return
        if s.peer_connected:
            self._reply(addr, rcls(msg.request_id, Status.SUCCESSFUL, h))
        elif isinstance(msg, etsi.ConnectBlocking) and msg.timeout_ms > 0:
            self.pending_north.add((addr, msg.request_id))
            s.connect_waiters.append(_Waiter(addr, msg.request_id, now + msg.timeout_ms / 1000))
            self._watch.add(h)
        elif blocking:
            self._reply(addr, rcls(msg.request_id, Status.TIMEOUT, h))
        else:
            self._reply(addr, rcls(msg.request_id, Status.PEER_NOT_CONNECTED, h))

    def _close(self, msg: etsi.Close, addr: Addr, now: float) -> None:
        h = msg.key_handle
        s = self._owned(h, addr, lambda st: etsi.CloseReply(msg.request_id, st, h))
        if s is None:
            return
        s.local_closed = True
        for w in s.waiting:
            self._reply(w.addr, etsi.GetKeyReply(w.request_id, Status.NO_QKD_CONNECTION))
        s.waiting.clear()
        self._sync_request(sync.Close(self._next_txid(), h), now, kind="close", handle=h)
        self._reply(addr, etsi.CloseReply(msg.request_id, Status.SUCCESSFUL, h))
        self._log("session closed", peer=addr[0], handle=handle_hex(h), keys=s.next_index)
        if s.peer_closed or not s.confirmed:
            self._drop(s)

    def _drop(self, s: Session) -> None:
        self.sessions.pop(s.handle, None)
        for p in self.pools.values():
            p.starving.discard(s.handle)
        s.keys.clear()

    def _get_key(self, msg: etsi.GetKey, addr: Addr, now: float) -> None:
        s = self._owned(msg.key_handle, addr, lambda st: etsi.GetKeyReply(msg.request_id, st))
        if s is None:
            return
        if not s.waiting and self._deliver(s, addr, msg.request_id, now):
            return
        self.pending_north.add((addr, msg.request_id))
        s.waiting.append(_Waiter(addr, msg.request_id, now + self.cfg.get_deadline))
        self._watch.add(s.handle)
        self._pump(s, now)

    def _deliver(self, s: Session, addr: Addr, rid: int, now: float) -> bool:
        idx = s.next_index
        key = s.keys.pop(idx, None)
        if key is None:
            return False
        s.next_index = idx + 1
        self.counters["keys_delivered"] += 1
        self._reply(addr, etsi.GetKeyReply(rid, Status.SUCCESSFUL, idx, key))
        if s.master:
            self._prune(s)
            if s.bound_upto - s.next_index < self.cfg.bind_block // 2:
                self._bind_more(s, s.next_index + self.cfg.bind_block - 1, now)
        else:
            s.bindings.pop(idx, None)
            if s.fetch_from - s.next_index < 2 * self.cfg.bind_block:
                self._fetch_bound(s, now)
        return True

    def _serve_waiting(self, s: Session, now: float) -> None:
        while s.waiting:
            w = s.waiting[0]
            if not self._deliver(s, w.addr, w.request_id, now):
                break
            s.waiting.popleft()

    def _pump(self, s: Session, now: float) -> None:
        """Answer waiting GET_KEYs in order while keys are here; otherwise get more."""
        self._serve_waiting(s, now)
        if not s.waiting:
            return
        idx = s.next_index
        if s.master:
            self._bind_more(s, idx + self.cfg.bind_block - 1, now)
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
        if st is Status.INSUFFICIENT_KEY:
            self.counters["insufficient"] += len(s.waiting)
        for w in s.waiting:
            self._reply(w.addr, etsi.GetKeyReply(w.request_id, st))
        s.waiting.clear()

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
        """Bind indexes up to ``upto`` (at least) from the pool; True if ``upto`` is bound."""
        if s.bound_upto > upto:
            return True
        p = self._pool(s.key_length)
        want = max(upto + 1 - s.bound_upto, self.cfg.bind_block)
        n = min(want, len(p.keys), sync.MAX_IDS)
        if n > 0:
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
        ids = tuple(s.bindings[i] for i in range(index, min(s.bound_upto, index + sync.MAX_IDS)))
        self._sync_send(sync.AllocResp(txid, s.handle, sync.Result.OK, index, s.key_length, ids))

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
        if self.sync.peer_epoch != heard:
            self._log("sync peer epoch", peer=addr[0], epoch=f"{self.sync.peer_epoch:016x}")
            self.sync_tx.pop(GREETING, None)  # answered
            self._resend_sync(now)  # sealed for the peer's epoch now, not the one before
        if isinstance(msg, sync.Hello):
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
            if isinstance(msg, sync.CreateResp):
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
        for tx in self.sync_tx.values():
            self._send_tx(tx)
            tx.next_at = now + tx.rto

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
            if msg.destination != self.cfg.local_node:
                self._sync_send(sync.CreateResp(msg.txid, h, R.NO_ROUTE))
                return
            s = Session(h, False, msg.opener, msg.destination, msg.key_length)
            s.confirmed = True
            s.peer_connected = True
            self.sessions[h] = s
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
            # both opened this handle at once and the peer allocates: follow it
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
            if s.master:
                self._warm(s.key_length, now)
                self._bind_more(s, self.cfg.bind_block - 1, now)
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
        for w in s.connect_waiters:
            self._reply(
                w.addr, etsi.ConnectBlockingReply(w.request_id, Status.SUCCESSFUL, s.handle)
            )
        s.connect_waiters.clear()

    # --- timers -----------------------------------------------------------------------
    def _timers(self, now: float) -> None:
        self._retransmit(self.sync_tx, now, self.cfg.sync_rto_max)
        self._retransmit(self.south_tx, now, self.cfg.south_rto_max)
        for s in list(self.sessions.values()):
            while s.waiting and s.waiting[0].deadline <= now:
                w = s.waiting.popleft()
                self._reply(w.addr, etsi.GetKeyReply(w.request_id, Status.TIMEOUT))
            keep = []
            for w in s.connect_waiters:
                if w.deadline <= now:
                    self._reply(
                        w.addr, etsi.ConnectBlockingReply(w.request_id, Status.TIMEOUT, s.handle)
                    )
                else:
                    keep.append(w)
            s.connect_waiters = keep

    def _retransmit(self, table: dict[int, _Tx], now: float, rto_max: float) -> None:
        """Resend the requests of ``table`` (sync or south) that are due, each time after
        twice the wait (at most ``rto_max``); one past its deadline has failed."""
        for key, tx in list(table.items()):
            if tx.next_at > now:
                continue
            sync_channel = tx.channel is Channel.SYNC
            if now >= tx.deadline:
                del table[key]
                (self._sync_failed if sync_channel else self._south_failed)(tx, now)
                continue
            self.counters[f"{tx.channel.value}_retransmits"] += 1
            self._send_tx(tx)
            tx.rto = min(tx.rto * 2, rto_max)
            tx.next_at = now + tx.rto

    def _sync_failed(self, tx: _Tx, now: float) -> None:
        self._log("peer proxy unreachable", kind=tx.kind)
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
