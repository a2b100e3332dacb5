"""The ETSI GS QKD 014 V1.1.1 interface of a key manager, sans-I/O (docs/etsi014.md).

:class:`Etsi014Core` takes HTTPS requests already parsed by the shell's HTTP library (with
the SAE ID of the client certificate) and answers them with the spec's JSON objects and
HTTP codes. It holds no key of its own: it is an ETSI 004 client of its key manager,
calling it from the internal address :data:`ADDR`, so 014 and 004 draw on the same pool
and a key is delivered once, whichever interface asks:

* **master side** (``enc_keys``): one ETSI 004 session per (master SAE, slave SAE, key
  size), opened toward the slave's node under the handle its pair nonce derives
  (:mod:`.keyid`); key *i* of the session is returned with the key ID that names
  (nonce, size, *i*);
* **slave side** (``dec_keys``): the key ID and the two SAE IDs give the same handle; the
  core joins that session (naming :data:`NODE`, the 014 interface's router ID, as its
  opener) and takes keys in order, holding those fetched ahead of the asked index until
  asked. An index below what was fetched and no longer held has been delivered.

Authorisation: an SAE is known by its certificate's ID and must be served by this key
manager (401 otherwise); ``enc_keys`` and ``status`` name a slave SAE served by another key
manager (400 otherwise); ``dec_keys`` names such a master. A key ID answers only for the
slave its master named (any other SAE derives a handle that names nothing: 400, as an
unknown key ID). Pure: no I/O, no clock (``now`` is passed in).
"""

from __future__ import annotations

import base64
import heapq
import itertools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from gmpls.core import Tick
from gmpls.errors import DecodeError
from gmpls.qkd import etsi004 as etsi
from gmpls.qkd.etsi004 import Status
from gmpls.qkd.etsi014 import keyid
from gmpls.qkd.etsi014.events import (
    Action,
    Call004,
    Event,
    HttpRequest,
    HttpResponse,
    Log,
    Reply004,
)

#: the 014 interface's source address into its key manager (no datagram has it)
ADDR: tuple[str, int] = ("0.0.0.14", 14)
#: the router ID the 014 interface's sessions name as their opener (master side)
NODE = IPv4Address("0.0.0.14")
DEFAULT_KEY_SIZE = 256
MIN_KEY_SIZE = 8
MAX_KEY_SIZE = 8 * keyid.MAX_SIZE_BYTES
MAX_KEY_PER_REQUEST = 1024
#: V1.1.1 additional_slave_SAE_IDs: not supported (one slave per key)
MAX_SAE_ID_COUNT = 0
_PATH = re.compile(r"^/api/v1/keys/([^/]+)/(status|enc_keys|dec_keys)$")


class Refused(Exception):
    """A request answered with an error object: ``status`` (400, 401, 503) and message."""

    def __init__(self, status: int, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details


@dataclass(frozen=True, slots=True)
class Sae:
    """An SAE of the network: its ID (its certificate's CN), the key manager serving it,
    and the router ID its keys' ETSI 004 sessions name (the node of its site)."""

    name: str
    kme: str
    node: IPv4Address


@dataclass(frozen=True, slots=True)
class Etsi014Config:
    kme: str
    saes: Mapping[str, Sae]
    key_size: int = DEFAULT_KEY_SIZE
    max_key_per_request: int = MAX_KEY_PER_REQUEST
    #: a request not answered by then gets 503 (s)
    deadline: float = 10.0
    #: keys a slave session fetches ahead of those asked for, at most
    hold_max: int = 4096


@dataclass(slots=True, eq=False)
class _Want:
    """One HTTP request being served."""

    stream: int
    deadline: float
    kind: str  # enc, dec
    number: int = 0
    size_bytes: int = 0
    keys: dict[int, bytes] = field(default_factory=dict)  # enc: index -> key
    ids: list[keyid.KeyId] = field(default_factory=list)  # dec: in the asked order
    joins: list[_Join] = field(default_factory=list)  # dec: the sessions of ids
    retried: bool = False
    done: bool = False


@dataclass(slots=True, eq=False)
class _Pair:
    """Master side: the session of (master, slave, size)."""

    master: str
    slave: str
    size_bytes: int
    nonce: int
    handle: bytes
    open: bool = False
    queue: list[_Want] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class _Join:
    """Slave side: a session the master's key manager opened, joined here."""

    handle: bytes
    size_bytes: int
    open: bool = False
    top: int = 0  # every index below arrived (GET_KEY answers come in order)
    inflight: int = 0
    held: dict[int, bytes] = field(default_factory=dict)
    wants: list[_Want] = field(default_factory=list)


def _error(message: str, **details: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"message": message}
    if details:
        out["details"] = [{k: v} for k, v in details.items()]
    return out


def _int(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, str):
        if not value.isdigit():
            raise Refused(400, f"{name} is not an integer", **{name: value})
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise Refused(400, f"{name} is not an integer")
    if not lo <= value <= hi:
        raise Refused(400, f"{name} is not in {lo}..{hi}", **{name: value})
    return value


class Etsi014Core:
    def __init__(
        self,
        cfg: Etsi014Config,
        random_bytes: Callable[[int], bytes],
        stock: Callable[[str], tuple[int, int]] = lambda kme: (0, 0),
    ) -> None:
        self.cfg = cfg
        self.random_bytes = random_bytes
        #: the key manager's stock toward a key manager: (stock bits, buffer bits)
        self.stock = stock
        self.pairs: dict[tuple[str, str, int], _Pair] = {}
        self.joins: dict[bytes, _Join] = {}
        self._calls: dict[int, tuple[str, _Pair | _Join, _Want | None]] = {}
        self._rid = itertools.count(1)
        self._timeq: list[tuple[float, int, _Want]] = []
        self._tseq = itertools.count()
        self._out: list[Action] = []
        self.counters: dict[str, int] = {
            "requests": 0,
            "unauthorized": 0,
            "bad_requests": 0,
            "unavailable": 0,
            "keys_enc": 0,
            "keys_dec": 0,
        }

    # --- the one entry point ----------------------------------------------------------
    def handle(self, event: Event, now: float) -> list[Action]:
        self._out = []
        if isinstance(event, HttpRequest):
            self._request(event, now)
        elif isinstance(event, Reply004):
            self._reply004(event.data, now)
        elif isinstance(event, Tick):
            self._expire(now)
        else:
            raise TypeError(f"not an ETSI 014 event: {event!r}")
        out, self._out = self._out, []
        return out

    def next_timer(self) -> float | None:
        q = self._timeq
        while q and q[0][2].done:
            heapq.heappop(q)
        return q[0][0] if q else None

    # --- requests ---------------------------------------------------------------------
    def _request(self, ev: HttpRequest, now: float) -> None:
        self.counters["requests"] += 1
        m = _PATH.match(ev.path)
        if m is None:
            self._answer(ev.stream, 404, _error("no such resource", path=ev.path))
            return
        other, what = m.group(1), m.group(2)
        allowed = ("GET",) if what == "status" else ("GET", "POST")
        if ev.method not in allowed:
            self._answer(ev.stream, 405, _error(f"{ev.method} is not allowed on {what}"))
            return
        try:
            me = self._caller(ev.sae)
            peer = self._peer(other, "master" if what == "dec_keys" else "slave")
            if what == "status":
                self._answer(ev.stream, 200, self._status(me, peer))
            elif what == "enc_keys":
                self._enc(ev, me, peer, now)
            else:
                self._dec(ev, me, peer, now)
        except Refused as e:
            self._refuse(ev, e)

    def _refuse(self, ev: HttpRequest, e: Refused) -> None:
        name = {401: "unauthorized", 400: "bad_requests"}.get(e.status, "unavailable")
        self.counters[name] += 1
        self._log("request refused", True, sae=ev.sae or "", path=ev.path, status=e.status)
        self._answer(ev.stream, e.status, _error(e.message, **e.details))

    def _caller(self, sae: str | None) -> Sae:
        if sae is None:
            raise Refused(401, "no client certificate")
        me = self.cfg.saes.get(sae)
        if me is None:
            raise Refused(401, "unknown SAE", SAE_ID=sae)
        if me.kme != self.cfg.kme:
            raise Refused(401, "SAE not served by this KME", SAE_ID=sae)
        return me

    def _peer(self, name: str, role: str) -> Sae:
        peer = self.cfg.saes.get(name)
        if peer is None:
            raise Refused(400, f"unknown {role} SAE", **{f"{role}_SAE_ID": name})
        if peer.kme == self.cfg.kme:
            raise Refused(400, f"{role} SAE served by this KME: no QKD link between them")
        return peer

    def _status(self, me: Sae, slave: Sae) -> dict[str, Any]:
        size = self.cfg.key_size
        stock, buffer = self.stock(slave.kme)
        return {
            "source_KME_ID": self.cfg.kme,
            "target_KME_ID": slave.kme,
            "master_SAE_ID": me.name,
            "slave_SAE_ID": slave.name,
            "key_size": size,
            # the link's stock (the emulator's and the pool drawn ahead), at most its buffer
            "stored_key_count": min(stock, buffer or stock) // size,
            "max_key_count": buffer // size,
            "max_key_per_request": self.cfg.max_key_per_request,
            "max_key_size": MAX_KEY_SIZE,
            "min_key_size": MIN_KEY_SIZE,
            "max_SAE_ID_count": MAX_SAE_ID_COUNT,
        }

    @staticmethod
    def _body(ev: HttpRequest) -> dict[str, Any]:
        try:
            body = json.loads(ev.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise Refused(400, "the request body is not JSON") from None
        if not isinstance(body, dict):
            raise Refused(400, "the request body is not a JSON object")
        return body

    def _key_request(self, ev: HttpRequest) -> tuple[int, int]:
        """(number, size in bits) of a Get key request (GET query or POST Key request)."""
        if ev.method == "GET":
            q = dict(ev.query)
            number, size = q.get("number", "1"), q.get("size", str(self.cfg.key_size))
        else:
            body = self._body(ev)
            if body.get("additional_slave_SAE_IDs"):
                raise Refused(400, "additional_slave_SAE_IDs: max_SAE_ID_count is 0")
            if body.get("extension_mandatory"):
                raise Refused(400, "not all extension_mandatory parameters are supported")
            number, size = body.get("number", 1), body.get("size", self.cfg.key_size)
        n = _int(number, "number", 1, self.cfg.max_key_per_request)
        bits = _int(size, "size", MIN_KEY_SIZE, MAX_KEY_SIZE)
        if bits % 8:
            raise Refused(400, "size is not a multiple of 8", size=bits)
        return n, bits

    # --- master side: enc_keys --------------------------------------------------------
    def _enc(self, ev: HttpRequest, me: Sae, slave: Sae, now: float) -> None:
        n, bits = self._key_request(ev)
        w = _Want(ev.stream, now + self.cfg.deadline, "enc", n, bits // 8)
        self._arm(w)
        self._enc_start(w, me.name, slave, now)

    def _enc_start(self, w: _Want, master: str, slave: Sae, now: float) -> None:
        key = (master, slave.name, w.size_bytes)
        p = self.pairs.get(key)
        if p is None:
            nonce = int.from_bytes(self.random_bytes(8), "big")
            h = keyid.session_handle(nonce, master, slave.name, w.size_bytes)
            p = self.pairs[key] = _Pair(master, slave.name, w.size_bytes, nonce, h)
            qos = etsi.QoS(w.size_bytes)
            self._call(lambda rid: etsi.Open(rid, slave.node, qos, h), ("open", p, None))
        if p.open:
            self._draw(p, w)
        else:
            p.queue.append(w)

    def _draw(self, p: _Pair, w: _Want) -> None:
        h = p.handle
        for _ in range(w.number - len(w.keys)):
            self._call(lambda rid: etsi.GetKey(rid, h), ("get", p, w))

    def _pair_opened(self, p: _Pair, msg: etsi.OpenReply, now: float) -> None:
        queue, p.queue = p.queue, []
        if msg.status != Status.SUCCESSFUL:
            self._drop_pair(p)
            for w in queue:
                self._fail(w, 503, "no QKD connection to the slave SAE's KME", msg.status)
            return
        p.open = True
        self._log("014 session open", master=p.master, slave=p.slave, size=p.size_bytes * 8)
        for w in queue:
            if not w.done:
                self._draw(p, w)

    def _enc_key(self, p: _Pair, w: _Want, msg: etsi.GetKeyReply, now: float) -> None:
        if msg.status == Status.SUCCESSFUL:
            if w.done:
                return  # answered (timed out or failed): this key is lost, never reused
            w.keys[msg.index] = msg.key
            if len(w.keys) == w.number:
                self._enc_done(p, w)
            return
        if msg.status in (Status.NO_QKD_CONNECTION, Status.GET_KEY_PEER_NOT_CONNECTED):
            self._drop_pair(p)  # closed under us (idle, or the link failed): a new one next
            if not w.done and not w.keys and not w.retried:
                w.retried = True
                slave = self.cfg.saes[p.slave]
                self._enc_start(w, p.master, slave, now)
                return
        self._fail(w, 503, "no key to be had from the QKD network", msg.status)

    def _enc_done(self, p: _Pair, w: _Want) -> None:
        keys = []
        for i in sorted(w.keys):
            kid = keyid.encode(keyid.KeyId(p.nonce, p.size_bytes, i))
            keys.append({"key_ID": str(kid), "key": base64.b64encode(w.keys[i]).decode()})
        w.keys.clear()
        w.done = True
        self.counters["keys_enc"] += len(keys)
        self._log("keys delivered", master=p.master, slave=p.slave, to="master", count=len(keys))
        self._answer(w.stream, 200, {"keys": keys})

    def _drop_pair(self, p: _Pair) -> None:
        if self.pairs.get((p.master, p.slave, p.size_bytes)) is p:
            del self.pairs[(p.master, p.slave, p.size_bytes)]

    # --- slave side: dec_keys ---------------------------------------------------------
    def _key_ids(self, ev: HttpRequest) -> list[str]:
        if ev.method == "GET":
            ids = [v for k, v in ev.query if k == "key_ID"]
            if len(ids) != 1:
                raise Refused(400, "give one key_ID")
            return ids
        body = self._body(ev)
        items = body.get("key_IDs")
        if not isinstance(items, list) or not items:
            raise Refused(400, "key_IDs is not a non-empty array")
        if len(items) > self.cfg.max_key_per_request:
            raise Refused(400, f"more than {self.cfg.max_key_per_request} key_IDs")
        out = []
        for it in items:
            if not isinstance(it, dict) or not isinstance(it.get("key_ID"), str):
                raise Refused(400, "a key_IDs item has no key_ID")
            out.append(it["key_ID"])
        return out

    def _dec(self, ev: HttpRequest, me: Sae, master: Sae, now: float) -> None:
        texts = self._key_ids(ev)
        if len(set(texts)) != len(texts):
            raise Refused(400, "a key_ID is asked twice")
        w = _Want(ev.stream, now + self.cfg.deadline, "dec")
        for t in texts:
            k = keyid.decode(t)
            if k is None:
                raise Refused(400, "unknown key_ID", key_ID=t)
            w.ids.append(k)
        for k in w.ids:
            h = keyid.session_handle(k.nonce, master.name, me.name, k.size_bytes)
            j = self.joins.get(h)
            if j is None:
                j = self.joins[h] = _Join(h, k.size_bytes)
                self._join(j)
            w.joins.append(j)
            if w not in j.wants:
                j.wants.append(w)
        self._arm(w)
        self._dec_try(w)

    def _join(self, j: _Join) -> None:
        h, qos = j.handle, etsi.QoS(j.size_bytes)
        self._call(lambda rid: etsi.Open(rid, NODE, qos, h), ("join", j, None))

    def _dec_try(self, w: _Want) -> None:
        """Answer ``w`` if every key it asks is here, refuse it if one cannot be had,
        else make sure the keys up to the highest asked index are on their way."""
        if w.done or any(not j.open for j in w.joins):
            return
        need: dict[_Join, int] = {}
        for k, j in zip(w.ids, w.joins, strict=True):
            if k.index in j.held:
                continue
            if k.index < j.top:
                self._fail(w, 400, "key_ID already delivered", None, key_ID=str(k))
                return
            if k.index - j.top >= self.cfg.hold_max:
                self._fail(w, 400, "unknown key_ID", None, key_ID=str(k))
                return
            need[j] = max(need.get(j, 0), k.index + 1)
        if need:
            for j, upto in need.items():
                self._fetch(j, upto)
            return
        keys = []
        for k, j in zip(w.ids, w.joins, strict=True):
            keys.append({"key_ID": str(k), "key": base64.b64encode(j.held.pop(k.index)).decode()})
        w.done = True
        self._unwait(w)
        self.counters["keys_dec"] += len(keys)
        self._log("keys delivered", to="slave", count=len(keys))
        self._answer(w.stream, 200, {"keys": keys})

    def _fetch(self, j: _Join, upto: int) -> None:
        h = j.handle
        while j.top + j.inflight < upto:
            j.inflight += 1
            self._call(lambda rid: etsi.GetKey(rid, h), ("fetch", j, None))

    def _joined(self, j: _Join, msg: etsi.OpenReply) -> None:
        if msg.status != Status.SUCCESSFUL:
            self.joins.pop(j.handle, None)
            for w in list(j.wants):
                key_id = next(str(k) for k, x in zip(w.ids, w.joins, strict=True) if x is j)
                self._fail(w, 400, "unknown key_ID", None, key_ID=key_id)
            return
        j.open = True
        self._log("014 session joined", size=j.size_bytes * 8)
        for w in list(j.wants):
            self._dec_try(w)

    def _fetched(self, j: _Join, msg: etsi.GetKeyReply) -> None:
        j.inflight -= 1
        if msg.status == Status.SUCCESSFUL:
            j.held[msg.index] = msg.key
            j.top = max(j.top, msg.index + 1)
            for w in list(j.wants):
                self._dec_try(w)
            return
        if msg.status in (Status.NO_QKD_CONNECTION, Status.GET_KEY_PEER_NOT_CONNECTED):
            self.joins.pop(j.handle, None)
        for w in list(j.wants):
            self._fail(w, 503, "no key to be had from the QKD network", msg.status)

    def _unwait(self, w: _Want) -> None:
        for j in w.joins:
            if w in j.wants:
                j.wants.remove(w)

    # --- ETSI 004 plumbing ------------------------------------------------------------
    def _call(
        self,
        make: Callable[[int], etsi.Request],
        what: tuple[str, _Pair | _Join, _Want | None],
    ) -> None:
        rid = next(self._rid) & 0xFFFFFFFF
        self._calls[rid] = what
        self._out.append(Call004(etsi.encode(make(rid))))

    def _reply004(self, data: bytes, now: float) -> None:
        try:
            msg = etsi.decode(data)
        except DecodeError:
            return  # made by our own key manager: cannot happen
        what = self._calls.pop(msg.request_id, None)
        if what is None:
            return
        _, obj, w = what
        if isinstance(obj, _Pair) and isinstance(msg, etsi.OpenReply):
            self._pair_opened(obj, msg, now)
        elif isinstance(obj, _Pair) and isinstance(msg, etsi.GetKeyReply) and w is not None:
            self._enc_key(obj, w, msg, now)
        elif isinstance(obj, _Join) and isinstance(msg, etsi.OpenReply):
            self._joined(obj, msg)
        elif isinstance(obj, _Join) and isinstance(msg, etsi.GetKeyReply):
            self._fetched(obj, msg)

    # --- answers and timers -----------------------------------------------------------
    def _arm(self, w: _Want) -> None:
        heapq.heappush(self._timeq, (w.deadline, next(self._tseq), w))

    def _expire(self, now: float) -> None:
        q = self._timeq
        while q and (q[0][0] <= now or q[0][2].done):
            _, _, w = heapq.heappop(q)
            if not w.done:
                self._fail(w, 503, "timed out waiting for key", None)

    def _fail(
        self, w: _Want, status: int, message: str, why: Status | None, **details: Any
    ) -> None:
        if w.done:
            return
        w.done = True
        w.keys.clear()
        self._unwait(w)
        self.counters["bad_requests" if status == 400 else "unavailable"] += 1
        if why is not None:
            details["etsi004_status"] = why.name
        self._log("request failed", True, kind=w.kind, status=status, why=message)
        self._answer(w.stream, status, _error(message, **details))

    def _answer(self, stream: int, status: int, body: Mapping[str, Any]) -> None:
        self._out.append(HttpResponse(stream, status, body))

    def _log(self, event: str, limited: bool = False, **fields: Any) -> None:
        self._out.append(Log(event, fields, limited))

    def all_counters(self) -> dict[str, int]:
        out = {f"etsi014_{k}": v for k, v in self.counters.items()}
        out["etsi014_sessions"] = len(self.pairs) + len(self.joins)
        return out


__all__ = ["ADDR", "NODE", "Etsi014Config", "Etsi014Core", "Sae", "Tick"]
