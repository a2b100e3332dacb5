"""The node agent's quantum-encrypted (QE) service: the paper's end-to-end workflow
(DESIGN §3.4, Fig. 2 and Fig. 6) glued together from the protocol pieces.

One :class:`QeService` per node. It holds

* the **PCC** (:class:`pce.client.PcepClient`, RFC 5440): one PCEP session to the PCE,
  kept up with reconnection and exponential backoff;
* the **RSVP-TE shell** (:class:`node_agent.rsvp.RsvpAgent` around the sans-I/O
  :class:`gmpls.rsvp.core.RsvpCore`); this module is its ``on_action`` callback;
* the **ETSI GS QKD 004 client** (:class:`qkd_proxy.client.Etsi004Client`) toward the
  node's key proxy, when the node is QE capable.

Workflow at the head (``qe-service create dst 10.1.1.5 ...`` on the CLI):

1. PCReq with the QE METRIC objects (DESIGN §3.2) → PCRep with the Fig. 9 ERO;
2. ``create_lsp(tunnel, ero)``: the core finds our QE subobject with a zero session ID
   and asks for a key session (``NeedQeSession``);
3. QKD_OPEN(destination = the QE destination's router ID, key length) → key_handle,
   QKD_CONNECT_NONBLOCK (status 0, or 1 "peer not connected yet"), QKD_GET_KEY → key 0;
   ``QeSessionReady(handle)``: the core writes the handle into the destination's QE
   subobject and sends Path;
4. at the tail the core finds its QE subobject with that handle (``QeJoin``):
   QKD_OPEN(destination = the head's router ID, the same handle) / CONNECT / GET_KEY →
   key 0 (the same bytes, the proxies synchronise), ``QeSessionReady`` → Resv;
5. the service is **up** at the head when the Resv arrives (``LspUp``).

Key refresh (no signalling): every ``refresh`` period (type 1, ms) or every ``V`` MiB of
traffic (type 2; bytes are counted by ``qe-service traffic ID BYTES`` or a simulated rate
``qe-service traffic ID rate BPS``, given at both ends) each end fetches the next key
under the same handle. Refresh *k* makes an end hold key index *k*: a refresh that fails
(no key yet) is made up at the next one, so the two ends' indices stay in step and index
*k* is the same key at both ends (the proxies bind index *k* to one key ID).

Teardown: ``qe-service delete ID`` → PathTear; both ends get ``QeClose`` from their core
and send QKD_CLOSE. Failures (docs/qe-service.md): the head cannot get a key session →
``LspDown`` 252/1 (nothing sent); the tail cannot join → PathErr 252/2 and the head tears
down; whatever was opened is closed. An explicit label found busy (24/11: the PCE's TED
lags our OSPF re-origination) is retried once with the label subobjects removed, so each
hop chooses from the offered Label_Set (RFC 3473 §2.6).

Keys live only in :class:`Service` objects in memory; logs and the CLI show the key
index, an 8-hex-digit key_handle prefix and SHA-256 fingerprints (16 hex digits).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any, Protocol

from gmpls import ero, qe
from gmpls.rsvp import core as C
from gmpls.rsvp.constants import ErrorCode, QeError, RoutingProblem
from gmpls.topology import Topology

log = logging.getLogger("node_agent.qe_service")

MIB = 1 << 20
#: how many (index, fingerprint) pairs a service remembers for ``show qe-service``
HISTORY = 32
#: finished services kept for ``show qe-service`` (the newest)
KEEP_FINISHED = 64
#: ETSI 004 status values (docs/etsi004.md)
ETSI_OK, ETSI_PEER_NOT_CONNECTED = 0, 1
ETSI_STATUS = {
    0: "SUCCESSFUL",
    1: "PEER_NOT_CONNECTED",
    2: "GK_INSUFFICIENT_KEY_AVAILABLE",
    3: "GK_PEER_NOT_CONNECTED",
    4: "NO_QKD_CONNECTION_AVAILABLE",
    5: "OPEN_CONNECT_FAILED_KSID_ALREADY_IN_USE",
    6: "TIMEOUT_ERROR",
    7: "OC_QOS_NOT_SATISFIABLE",
}
LABEL_BUSY = (ErrorCode.ROUTING_PROBLEM, RoutingProblem.LABEL_SET)
#: a Resv label the head offered but meanwhile held for another LSP (RFC 3209 §4.1.1 sense)
LABEL_TAKEN = (ErrorCode.ROUTING_PROBLEM, RoutingProblem.UNACCEPTABLE_LABEL)
#: signalling attempts per service when labels collide (the PCE's, then local ones)
LABEL_ATTEMPTS = 4

#: service states
COMPUTING, KEYING, SIGNALLING, UP, FAILED, DOWN = (
    "computing",
    "keying",
    "signalling",
    "up",
    "failed",
    "down",
)
FINISHED = (FAILED, DOWN)


def fingerprint(key: bytes) -> str:
    """The first 16 hex digits of the key's SHA-256 (what the CLI shows; never the key)."""
    return hashlib.sha256(key).hexdigest()[:16]


# --- what the service talks to (real classes fit; tests give in-memory ones) -------------


class RsvpLike(Protocol):
    core: C.RsvpCore

    def create_lsp(
        self,
        tunnel_id: int,
        route: Sequence[ero.Subobject],
        qe_params: qe.QeParams | None,
        bandwidth_bps: float,
        *,
        name: str = "",
    ) -> list[C.Action]: ...
    def delete_lsp(self, tunnel_id: int) -> list[C.Action]: ...
    def feed(self, event: C.Event) -> list[C.Action]: ...
    def status(self) -> dict[str, object]: ...


class ReplyLike(Protocol):
    @property
    def ok(self) -> bool: ...
    @property
    def ero(self) -> tuple[ero.Subobject, ...]: ...
    @property
    def reason(self) -> str: ...


class PccLike(Protocol):
    @property
    def is_up(self) -> bool: ...
    async def request(
        self,
        src: IPv4Address | str,
        dst: IPv4Address | str,
        qe_params: qe.QeParams | None = None,
        bandwidth: float = 0.0,
        *,
        timeout: float = 10.0,
    ) -> ReplyLike: ...


class EtsiLike(Protocol):
    async def open(
        self,
        destination: IPv4Address | str,
        key_handle: bytes | None = None,
        key_length: int = 32,
        max_bps: int = 0,
        priority: int = 0,
        timeout_ms: int = 0,
    ) -> tuple[Any, bytes]: ...
    async def connect(self, key_handle: bytes, timeout_ms: int | None = None) -> Any: ...
    async def get_key(self, key_handle: bytes) -> tuple[Any, int, bytes]: ...
    async def close(self, key_handle: bytes) -> Any: ...


class QeServiceError(RuntimeError):
    """A CLI request that cannot be carried out (bad arguments, unknown service)."""


class _EtsiFailure(Exception):
    def __init__(self, call: str, status: int | None, detail: str = "") -> None:
        self.call = call
        self.status = status
        name = ETSI_STATUS.get(status, str(status)) if status is not None else ""
        text = f"{call} status {status} {name}" if status is not None else f"{call}: {detail}"
        super().__init__(text)


# --- one service -------------------------------------------------------------------------


@dataclass(eq=False)
class Service:
    """One QE service at this node (head or tail). ``key`` stays in memory only."""

    id: str
    role: str  # "head" or "tail"
    peer: IPv4Address  # head: the destination; tail: the head
    params: qe.QeParams
    bandwidth_bps: float = 0.0
    tunnel_id: int = 0
    state: str = COMPUTING
    lsp: C.LspKey | None = None
    path: list[str] = field(default_factory=list)
    key_handle: bytes | None = None
    key: bytes | None = field(default=None, repr=False)
    key_index: int | None = None
    refresh_count: int = 0
    refresh_failures: int = 0
    target_index: int = 0
    bytes_counted: int = 0
    rate_bps: float = 0.0
    error: str = ""
    code: tuple[int, int] | None = None
    labels: str = "pce"  # "pce": the PCE's explicit labels; "local": chosen hop by hop
    attempts: int = 0
    created: float = 0.0
    created_wall: float = 0.0
    up_at: float | None = None
    history: deque[tuple[int, str]] = field(default_factory=lambda: deque(maxlen=HISTORY))
    changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    refresh_timer: asyncio.TimerHandle | None = field(default=None, repr=False)
    refresh_anchor: float = 0.0
    refresh_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    closing: bool = False
    deleted: bool = False

    @property
    def fingerprint(self) -> str | None:
        return fingerprint(self.key) if self.key is not None else None

    def touch(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    def take_key(self, index: int, key: bytes) -> None:
        self.key = key
        self.key_index = index
        self.history.append((index, fingerprint(key)))

    def as_json(self, now: float) -> dict[str, Any]:
        p = self.params
        return {
            "id": self.id,
            "role": self.role,
            "state": self.state,
            "destination" if self.role == "head" else "source": str(self.peer),
            "tunnel_id": self.tunnel_id,
            "lsp": str(self.lsp) if self.lsp else None,
            "path": self.path,
            "key_length": p.key_length,
            "layer": p.enc_layer,
            "algorithm": p.algorithm,
            "refresh": {
                "type": {0: "none", 1: "time", 2: "volume"}.get(p.refresh_type, p.refresh_type),
                "value": p.refresh_value,
            },
            "bandwidth_bps": self.bandwidth_bps,
            "key_handle_prefix": self.key_handle[:4].hex() if self.key_handle else None,
            "key_index": self.key_index,
            "fingerprint": self.fingerprint,
            "refresh_count": self.refresh_count,
            "refresh_failures": self.refresh_failures,
            "keys": [{"index": i, "fingerprint": f} for i, f in self.history],
            "bytes": self.bytes_counted,
            "labels": self.labels,
            "setup_ms": None
            if self.up_at is None
            else round((self.up_at - self.created) * 1000, 3),
            "age_s": round(now - self.created, 3),
            "created_at": round(self.created_wall, 6),
            "error": self.error or None,
            "code": list(self.code) if self.code else None,
        }


# --- the service -------------------------------------------------------------------------


class QeService:
    """The QE services of one node (see the module docstring)."""

    def __init__(
        self,
        *,
        name: str,
        router_id: IPv4Address,
        rsvp: RsvpLike,
        pcc: PccLike | None,
        etsi: EtsiLike | None,
        link_resources: Callable[[int, tuple[int, ...]], None] | None = None,
        pcep_timeout: float = 10.0,
        retry_busy_label: bool = True,
        link_batch: float = 0.02,
        max_keying: int = 16,
    ) -> None:
        self.name = name
        self.router_id = IPv4Address(router_id)
        self.rsvp = rsvp
        self.pcc = pcc
        self.etsi = etsi
        self.link_resources = link_resources
        self.pcep_timeout = pcep_timeout
        self.retry_busy_label = retry_busy_label
        self.link_batch = link_batch
        self._keying = asyncio.Semaphore(max_keying)
        self._link_pending: dict[int, tuple[int, ...]] = {}
        self.heads: dict[int, Service] = {}  # by tunnel ID
        self.tails: dict[C.LspKey, Service] = {}
        #: the ERO each head service was signalled on (for the busy-label retry)
        self._routes: dict[int, tuple[ero.Subobject, ...]] = {}
        self.finished: deque[Service] = deque(maxlen=KEEP_FINISHED)
        self._next_tunnel = 1
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.counters: dict[str, int] = {
            "created": 0,
            "up": 0,
            "failed": 0,
            "deleted": 0,
            "label_retries": 0,
            "labels_local": 0,
            "etsi_open": 0,
            "etsi_close": 0,
            "etsi_errors": 0,
            "keys": 0,
            "refreshes": 0,
        }

    # --- building it from a topology (what node_agent.daemon calls) ---------------------

    @classmethod
    def from_topology(
        cls,
        topo: Topology,
        host: str,
        *,
        link_resources: Callable[[int, tuple[int, ...]], None] | None = None,
        instance: int | None = None,
        etsi_deadline: float = 6.0,
        pce_backoff: tuple[float, float] = (0.5, 30.0),
    ) -> QeService:
        """The QE service of ``host`` with its RSVP shell, PCC and ETSI 004 client.

        ``instance`` is the RSVP Hello source instance (default: from the wall clock, so a
        restarted daemon is seen as new, RFC 3209 §5.2)."""
        from daemonkit.etsi004 import Etsi004Client
        from daemonkit.pcep import PcepClient
        from node_agent.rsvp import RsvpAgent

        h = topo.host(host)
        assert h.router_id is not None, f"{host} has no router ID"
        inst = instance if instance is not None else (int(time.time() * 10) & 0x7FFFFFFF) or 1
        agent = RsvpAgent.from_topology(topo, host, instance=inst)
        pcc: PcepClient | None = None
        pces = topo.of_kind("pce")
        if pces:
            pcc = PcepClient(
                str(topo.control_address(pces[0].name)),
                local_address=str(topo.control_address(host)),
                backoff=pce_backoff,
            )
        etsi: Etsi004Client | None = None
        if h.qe.capable and h.qe.proxy:
            dom = topo.shared_domain(host, h.qe.proxy)
            if dom is None:
                raise ValueError(f"{host} shares no domain with its proxy {h.qe.proxy}")
            proxy_addr = str(topo.host(h.qe.proxy).interfaces[dom])
            etsi = Etsi004Client(
                (proxy_addr, 5424), (str(h.interfaces[dom]), 0), deadline=etsi_deadline
            )
        svc = cls(
            name=host,
            router_id=h.router_id,
            rsvp=agent,
            pcc=pcc,
            etsi=etsi,
            link_resources=link_resources,
        )
        agent.on_action = svc.on_rsvp_action
        return svc

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the RSVP shell (when it has a ``start``), the PCC and the ETSI client."""
        self._loop = asyncio.get_running_loop()
        start = getattr(self.rsvp, "start", None)
        if start is not None:
            await start()
        pstart = getattr(self.pcc, "start", None)
        if pstart is not None:
            await pstart()
        estart = getattr(self.etsi, "start", None)
        if estart is not None:
            await estart()
        log.info("qe service started", extra={"node": self.name, "event": "qe_start"})

    async def stop(self) -> None:
        """Tear down the services this node heads (PathTear, QKD_CLOSE), close the key
        sessions of those it ends (its neighbours learn of its going by Hello), then stop."""
        for s in list(self.heads.values()):
            if s.state not in FINISHED:
                with contextlib.suppress(Exception):
                    self.delete(s.id)
        for s in list(self.tails.values()):
            if s.state not in FINISHED and s.key_handle is not None:
                self._spawn(self._close_handle(s.key_handle, s.lsp), f"close {s.id}")
                self._finish(s, DOWN, "node agent stopping")
        # let the QKD_CLOSEs go out (bounded)
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=2.0)
        for s in [*self.heads.values(), *self.tails.values()]:
            self._stop_refresh(s)
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        stop = getattr(self.rsvp, "stop", None)
        if stop is not None:
            await stop(teardown=False)
        pclose = getattr(self.pcc, "close", None)
        if pclose is not None:
            with contextlib.suppress(Exception):
                await pclose()
        eclose = getattr(self.etsi, "close_socket", None)
        if eclose is not None:
            eclose()
        for s in [*self.heads.values(), *self.tails.values()]:
            s.key = None
        log.info(
            "qe service stopped",
            extra={"node": self.name, "event": "qe_stop", "counters": dict(self.counters)},
        )

    def _now(self) -> float:
        loop = self._loop or asyncio.get_event_loop()
        return loop.time()

    def _spawn(self, coro: Awaitable[Any], what: str) -> asyncio.Task[Any]:
        async def run() -> Any:
            try:
                return await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("qe task failed", extra={"node": self.name, "task": what})
                return None

        t = asyncio.ensure_future(run())
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    # --- the API the CLI uses -----------------------------------------------------------

    def create(
        self, dst: IPv4Address | str, params: qe.QeParams, bandwidth_bps: float = 0.0
    ) -> Service:
        """Start a QE service toward ``dst``; returns at once (state ``computing``)."""
        if self.pcc is None:
            raise QeServiceError("no PCE in the topology: cannot compute a path")
        tid = self._allocate_tunnel()
        now = self._now()
        s = Service(
            str(tid),
            "head",
            IPv4Address(dst),
            params,
            bandwidth_bps,
            tunnel_id=tid,
            created=now,
            created_wall=time.time(),
        )
        self.heads[tid] = s
        self.counters["created"] += 1
        log.info(
            "qe service create",
            extra={
                "node": self.name,
                "event": "create",
                "service": s.id,
                "dst": str(dst),
                "key_length": params.key_length,
                "layer": params.enc_layer,
                "algorithm": params.algorithm,
                "refresh_type": params.refresh_type,
                "refresh_value": params.refresh_value,
            },
        )
        self._spawn(self._compute_and_signal(s), f"create {s.id}")
        return s

    def delete(self, sid: str) -> Service:
        s = self.find(sid)
        if s.role != "head":
            raise QeServiceError(f"service {sid} is headed by {s.peer}: delete it there")
        if s.state in FINISHED:
            return s
        s.deleted = True
        log.info("qe service delete", extra={"node": self.name, "event": "delete", "service": sid})
        if s.state == COMPUTING:
            self._finish(s, DOWN, "deleted before the PCE answered")
        else:
            self.rsvp.delete_lsp(s.tunnel_id)
            if s.state not in FINISHED:  # no LspDown came (nothing was signalled)
                self._finish(s, DOWN, "deleted")
        self.counters["deleted"] += 1
        return s

    def find(self, sid: str) -> Service:
        for s in (*self.heads.values(), *self.tails.values(), *reversed(self.finished)):
            if s.id == sid:
                return s
        raise QeServiceError(f"no QE service {sid}")

    def services(self) -> list[Service]:
        live = list(self.heads.values()) + list(self.tails.values())
        ids = {id(s) for s in live}
        return live + [s for s in self.finished if id(s) not in ids]

    async def wait(self, sid: str, timeout: float = 30.0) -> Service:
        """Until service ``sid`` is up or has failed (or ``timeout`` seconds pass)."""
        s = self.find(sid)
        deadline = self._now() + timeout
        while s.state not in (UP, *FINISHED):
            left = deadline - self._now()
            if left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(s.changed.wait(), left)
        return s

    def add_traffic(self, sid: str, nbytes: int) -> Service:
        """Count ``nbytes`` of encrypted traffic (volume refresh, refresh type 2)."""
        s = self.find(sid)
        if nbytes < 0:
            raise QeServiceError("traffic cannot be negative")
        s.bytes_counted += nbytes
        self._volume_check(s)
        return s

    def set_rate(self, sid: str, rate_bps: float) -> Service:
        """Simulate ``rate_bps`` bits per second of traffic (counted every 100 ms)."""
        s = self.find(sid)
        s.rate_bps = max(0.0, rate_bps)
        if s.rate_bps and s.state == UP:
            self._spawn(self._rate_loop(s), f"rate {s.id}")
        return s

    def _allocate_tunnel(self) -> int:
        for _ in range(0xFFFF):
            tid = self._next_tunnel
            self._next_tunnel = self._next_tunnel % 0xFFFF + 1
            if tid not in self.heads and not self.rsvp.core.tunnel_in_use(tid):
                return tid
        raise QeServiceError("no free tunnel ID")

    # --- head: PCReq → create_lsp -------------------------------------------------------

    async def _compute_and_signal(self, s: Service) -> None:
        assert self.pcc is not None
        try:
            reply = await self.pcc.request(
                self.router_id,
                s.peer,
                s.params,
                s.bandwidth_bps / 8.0,
                timeout=self.pcep_timeout,
            )
        except Exception as e:
            self._finish(s, FAILED, f"PCEP: {e}")
            return
        if s.state in FINISHED:
            return  # deleted meanwhile
        if not reply.ok:
            self._finish(s, FAILED, f"NO-PATH: {reply.reason}")
            return
        route = tuple(reply.ero)
        s.path = _route_nodes(route)
        if self.retry_busy_label and not self._own_label_free(route):
            # the PCE chose a lambda we hold already on our own link (its TED lags our
            # OSPF re-origination): the same ERO without labels, each hop choosing
            route = tuple(x for x in route if not isinstance(x, ero.Label))
            s.labels = "local"
            self.counters["labels_local"] += 1
        self._signal(s, route)

    def _own_label_free(self, route: Sequence[ero.Subobject]) -> bool:
        """Whether the explicit label the ERO gives for this node's outgoing interface
        (the Label subobject right after our Unnumbered subobject) is free here."""
        core = self.rsvp.core
        out_if: int | None = None
        for x in route:
            if isinstance(x, ero.Unnumbered):
                if x.router_id != self.router_id:
                    break
                out_if = x.interface_id
            elif isinstance(x, ero.Label) and out_if is not None and not x.upstream:
                return ero.lambda_channel(x.label) in core.free.get(out_if, set())
            elif not isinstance(x, ero.QeSubobject | ero.Label):
                break
        return True

    def _signal(self, s: Service, route: tuple[ero.Subobject, ...]) -> None:
        s.attempts += 1
        s.state = KEYING
        s.touch()
        log.info(
            "qe service signal",
            extra={
                "node": self.name,
                "event": "signal",
                "service": s.id,
                "path": " ".join(s.path),
                "labels": s.labels,
            },
        )
        s.lsp = None
        self._routes[s.tunnel_id] = route
        try:
            self.rsvp.create_lsp(
                s.tunnel_id, route, None, s.bandwidth_bps, name=f"qe-{self.name}-{s.id}"
            )
        except ValueError as e:
            self._finish(s, FAILED, f"RSVP: {e}")

    # --- RSVP actions -----------------------------------------------------------------

    def on_rsvp_action(self, a: C.Action) -> None:
        """The RSVP shell's ``on_action``: QE hooks, LSP state, TE link resources."""
        if isinstance(a, C.LinkResources):
            self._link_changed(a.local_if, a.free_lambdas)
        elif isinstance(a, C.NeedQeSession):
            s = self._head_of(a.lsp)
            if s is not None:
                s.lsp = a.lsp
                s.key_handle = None
            self._spawn(self._keyed(self._open_head(a, s)), f"open {a.lsp}")
        elif isinstance(a, C.QeJoin):
            self._spawn(self._keyed(self._join_tail(a)), f"join {a.lsp}")
        elif isinstance(a, C.QeClose):
            self._on_close(a)
        elif isinstance(a, C.LspUp):
            self._on_up(a)
        elif isinstance(a, C.LspDown):
            self._on_down(a)

    def _link_changed(self, local_if: int, free: tuple[int, ...]) -> None:
        """Hand the free lambdas of a TE link to OSPF, coalesced: the last value within
        ``link_batch`` seconds is re-advertised once (OSPF re-originates a TE LSA at most
        every MinLSInterval anyway), so signalling never waits on LSA origination."""
        if self.link_resources is None:
            return
        first = local_if not in self._link_pending
        self._link_pending[local_if] = free
        if first:
            loop = self._loop or asyncio.get_event_loop()
            loop.call_later(self.link_batch, self._link_flush, local_if)

    def _link_flush(self, local_if: int) -> None:
        free = self._link_pending.pop(local_if, None)
        if free is None or self.link_resources is None:
            return
        try:
            self.link_resources(local_if, free)
        except Exception:
            log.exception("link resources update failed", extra={"node": self.name})

    def _head_of(self, lsp: C.LspKey) -> Service | None:
        if lsp.ext_tunnel_id != self.router_id:
            return None
        s = self.heads.get(lsp.tunnel_id)
        if s is not None and s.state not in FINISHED:
            return s
        return None

    def _feed(self, ev: C.Event) -> None:
        self.rsvp.feed(ev)

    async def _keyed(self, coro: Awaitable[None]) -> None:
        """At most ``max_keying`` key sessions being opened or joined at once: a burst of
        services queues here instead of flooding the proxy (whose answers would then
        come after the ETSI client's deadline)."""
        async with self._keying:
            await coro

    async def _open_head(self, a: C.NeedQeSession, s: Service | None) -> None:
        if self.etsi is None:
            self._feed(C.QeFailed(a.lsp, "this node has no ETSI 004 proxy"))
            return
        handle: bytes | None = None
        try:
            st, handle = await self._etsi(
                "QKD_OPEN", self.etsi.open(a.dst_router_id, None, a.params.key_length)
            )
            self.counters["etsi_open"] += 1
            if int(st) != ETSI_OK:
                handle = None
                raise _EtsiFailure("QKD_OPEN", int(st))
            idx, key = await self._connect_and_get(handle)
        except _EtsiFailure as e:
            self.counters["etsi_errors"] += 1
            if handle is not None:
                await self._close_handle(handle, a.lsp)
            if s is not None:
                s.error = f"ETSI 004 {e}"
            log.warning(
                "qe key session failed",
                extra={"node": self.name, "event": "qe_fail", "lsp": str(a.lsp), "why": str(e)},
            )
            self._feed(C.QeFailed(a.lsp, str(e)))
            return
        self.counters["keys"] += 1
        live = self._head_of(a.lsp)
        if live is None or live.lsp != a.lsp:
            # the service went away meanwhile: the core answers QeSessionReady with QeClose
            self._feed(C.QeSessionReady(a.lsp, handle))
            return
        live.key_handle = handle
        live.take_key(idx, key)
        live.state = SIGNALLING
        live.touch()
        log.info(
            "qe key session open",
            extra={
                "node": self.name,
                "event": "qe_open",
                "service": live.id,
                "lsp": str(a.lsp),
                "key_handle_prefix": handle[:4].hex(),
                "key_index": idx,
            },
        )
        self._feed(C.QeSessionReady(a.lsp, handle))

    async def _join_tail(self, a: C.QeJoin) -> None:
        old = self.tails.get(a.lsp)
        s = Service(
            f"{a.lsp.ext_tunnel_id}:{a.lsp.tunnel_id}",
            "tail",
            a.lsp.sender,
            a.params,
            tunnel_id=a.lsp.tunnel_id,
            state=KEYING,
            lsp=a.lsp,
            key_handle=a.key_handle,
            created=self._now(),
            created_wall=time.time(),
        )
        if old is not None and old.state not in FINISHED:
            self._finish(old, DOWN, "replaced by a new Path")
        psb = self.rsvp.core.psbs.get(a.lsp)
        if psb is not None:
            s.path = [*_rro_nodes(psb.rro_in), str(self.router_id)]
        self.tails[a.lsp] = s
        if self.etsi is None:
            self._feed(C.QeFailed(a.lsp, "this node has no ETSI 004 proxy"))
            self._finish(s, FAILED, "no ETSI 004 proxy", (ErrorCode.QE_ERROR, 2))
            return
        opened = False
        try:
            st, _h = await self._etsi(
                "QKD_OPEN", self.etsi.open(a.lsp.sender, a.key_handle, a.params.key_length)
            )
            self.counters["etsi_open"] += 1
            if int(st) != ETSI_OK:
                raise _EtsiFailure("QKD_OPEN", int(st))
            opened = True
            idx, key = await self._connect_and_get(a.key_handle)
        except _EtsiFailure as e:
            self.counters["etsi_errors"] += 1
            if opened:
                await self._close_handle(a.key_handle, a.lsp)
            log.warning(
                "qe join failed",
                extra={"node": self.name, "event": "qe_fail", "lsp": str(a.lsp), "why": str(e)},
            )
            self._finish(s, FAILED, f"ETSI 004 {e}", (ErrorCode.QE_ERROR, 2))
            self._feed(C.QeFailed(a.lsp, str(e)))
            return
        self.counters["keys"] += 1
        if s.state in FINISHED or self.tails.get(a.lsp) is not s:
            self._feed(C.QeSessionReady(a.lsp, a.key_handle))  # the core answers QeClose
            return
        s.take_key(idx, key)
        s.state = SIGNALLING
        s.touch()
        log.info(
            "qe key session joined",
            extra={
                "node": self.name,
                "event": "qe_join",
                "service": s.id,
                "lsp": str(a.lsp),
                "key_handle_prefix": a.key_handle[:4].hex(),
                "key_index": idx,
            },
        )
        self._feed(C.QeSessionReady(a.lsp, a.key_handle))

    async def _connect_and_get(self, handle: bytes) -> tuple[int, bytes]:
        """QKD_CONNECT_NONBLOCK and QKD_GET_KEY, pipelined (the proxy serves GET_KEY on an
        open handle whether or not the peer has connected, docs/etsi004.md): one round
        trip to the proxy instead of two. Status 1 (peer not connected yet) is fine for
        CONNECT at the head: the tail opens only when the Path reaches it."""
        assert self.etsi is not None
        results: tuple[Any, ...] = await asyncio.gather(
            self._etsi("QKD_CONNECT_NONBLOCK", self.etsi.connect(handle)),
            self._etsi("QKD_GET_KEY", self.etsi.get_key(handle)),
            return_exceptions=True,
        )
        for r in results:
            if isinstance(r, BaseException):
                raise r
        conn, got = results
        if int(conn) not in (ETSI_OK, ETSI_PEER_NOT_CONNECTED):
            raise _EtsiFailure("QKD_CONNECT_NONBLOCK", int(conn))
        st, idx, key = got
        if int(st) != ETSI_OK:
            raise _EtsiFailure("QKD_GET_KEY", int(st))
        return int(idx), bytes(key)

    async def _etsi(self, call: str, aw: Awaitable[Any]) -> Any:
        try:
            return await aw
        except TimeoutError as e:
            raise _EtsiFailure(call, None, f"proxy unreachable ({e})") from None
        except OSError as e:
            raise _EtsiFailure(call, None, f"proxy unreachable ({e})") from None

    async def _close_handle(self, handle: bytes, lsp: C.LspKey | None) -> None:
        if self.etsi is None:
            return
        try:
            st = await self.etsi.close(handle)
            self.counters["etsi_close"] += 1
            log.info(
                "qe key session closed",
                extra={
                    "node": self.name,
                    "event": "qe_close",
                    "lsp": str(lsp) if lsp else "",
                    "key_handle_prefix": handle[:4].hex(),
                    "status": int(st),
                },
            )
        except Exception as e:
            self.counters["etsi_errors"] += 1
            log.warning(
                "QKD_CLOSE failed",
                extra={
                    "node": self.name,
                    "event": "qe_close_fail",
                    "key_handle_prefix": handle[:4].hex(),
                    "why": str(e),
                },
            )

    def _on_close(self, a: C.QeClose) -> None:
        s = self._service_of(a.lsp)
        if s is not None and s.key_handle == a.key_handle:
            self._stop_refresh(s)
            s.key = None
        self._spawn(self._close_handle(a.key_handle, a.lsp), f"close {a.lsp}")

    def _service_of(self, lsp: C.LspKey) -> Service | None:
        s = self.tails.get(lsp)
        if s is not None:
            return s
        h = self.heads.get(lsp.tunnel_id) if lsp.ext_tunnel_id == self.router_id else None
        if h is not None and h.lsp is None:
            h.lsp = lsp  # the first action of a new LSP (e.g. a local failure in create)
        if h is not None and h.lsp == lsp:
            return h
        return None

    def _on_up(self, a: C.LspUp) -> None:
        s = self._service_of(a.lsp) if a.role in ("head", "tail") else None
        if s is None or s.state in FINISHED:
            return
        s.state = UP
        s.up_at = self._now()
        if a.role == "head":
            self.counters["up"] += 1
            if a.route:
                s.path = [str(self.router_id), *_rro_nodes(a.route, reverse=False)]
        log.info(
            "qe service up",
            extra={
                "node": self.name,
                "event": "up",
                "service": s.id,
                "role": a.role,
                "lsp": str(a.lsp),
                "path": " ".join(s.path),
                "setup_ms": round((s.up_at - s.created) * 1000, 3),
            },
        )
        self._start_refresh(s)
        s.touch()

    def _on_down(self, a: C.LspDown) -> None:
        s = self._service_of(a.lsp)
        if s is None or s.state in FINISHED:
            return
        if (
            a.role == "head"
            and a.code in (LABEL_BUSY, LABEL_TAKEN)
            and self.retry_busy_label
            and s.attempts < LABEL_ATTEMPTS
            and not s.deleted
            and s.tunnel_id in self._routes
        ):
            # the PCE's explicit label is in use (its TED lags our OSPF re-origination),
            # or a label offered in a Label_Set was taken meanwhile by a concurrent LSP:
            # again without label subobjects, each hop picking from the Label_Set
            route = tuple(x for x in self._routes[s.tunnel_id] if not isinstance(x, ero.Label))
            s.labels = "local"
            s.key_handle = None
            s.key = None
            self.counters["label_retries"] += 1
            log.info(
                "qe service retry without explicit labels",
                extra={
                    "node": self.name,
                    "event": "retry",
                    "service": s.id,
                    "why": a.reason,
                    "attempt": s.attempts + 1,
                },
            )
            loop = self._loop or asyncio.get_event_loop()
            loop.call_soon(self._signal, s, route)
            return
        state = DOWN if a.code is None else FAILED
        if s.deleted:
            state = DOWN
        self._finish(s, state, a.reason, a.code)

    def _finish(
        self, s: Service, state: str, reason: str, code: tuple[int, int] | None = None
    ) -> None:
        if s.state in FINISHED:
            return
        self._stop_refresh(s)
        s.state = state
        if state == FAILED:
            self.counters["failed"] += 1
            s.error = f"{s.error}; {reason}" if s.error and s.error not in reason else reason
            s.code = code or s.code
        elif not s.error:
            s.error = "" if reason in ("deleted", "PathTear") else reason
        s.key = None
        if s.role == "head":
            self._routes.pop(s.tunnel_id, None)
            if self.heads.get(s.tunnel_id) is s:
                del self.heads[s.tunnel_id]
        elif s.lsp is not None and self.tails.get(s.lsp) is s:
            del self.tails[s.lsp]
        self.finished.append(s)
        log.info(
            "qe service finished",
            extra={
                "node": self.name,
                "event": state,
                "service": s.id,
                "role": s.role,
                "reason": reason,
                "code": str(code) if code else "",
            },
        )
        s.touch()

    # --- key refresh (no signalling) --------------------------------------------------

    def _start_refresh(self, s: Service) -> None:
        p = s.params
        s.refresh_anchor = self._now()
        s.target_index = s.key_index or 0
        if p.refresh_type == qe.RefreshType.TIME_MS and p.refresh_value > 0:
            self._arm_refresh(s)
        elif p.refresh_type == qe.RefreshType.VOLUME_MIB and s.rate_bps:
            self._spawn(self._rate_loop(s), f"rate {s.id}")

    def _arm_refresh(self, s: Service) -> None:
        loop = self._loop or asyncio.get_event_loop()
        period = s.params.refresh_value / 1000.0
        k = s.target_index + 1
        s.refresh_timer = loop.call_at(s.refresh_anchor + k * period, self._refresh_due, s)

    def _refresh_due(self, s: Service) -> None:
        s.refresh_timer = None
        if s.state != UP:
            return
        s.target_index += 1
        self._arm_refresh(s)
        self._spawn(self._catch_up(s), f"refresh {s.id}")

    def _stop_refresh(self, s: Service) -> None:
        if s.refresh_timer is not None:
            s.refresh_timer.cancel()
            s.refresh_timer = None
        s.closing = True

    def _volume_check(self, s: Service) -> None:
        p = s.params
        if p.refresh_type != qe.RefreshType.VOLUME_MIB or p.refresh_value <= 0 or s.state != UP:
            return
        target = s.bytes_counted // (p.refresh_value * MIB)
        if target > s.target_index:
            s.target_index = int(target)
            self._spawn(self._catch_up(s), f"refresh {s.id}")

    async def _rate_loop(self, s: Service) -> None:
        tick = 0.1
        while s.state == UP and s.rate_bps > 0:
            await asyncio.sleep(tick)
            s.bytes_counted += int(s.rate_bps / 8 * tick)
            self._volume_check(s)

    async def _catch_up(self, s: Service) -> None:
        """Fetch keys under the service's handle until it holds index ``target_index``."""
        async with s.refresh_lock:
            while (
                s.state == UP
                and s.key_handle is not None
                and self.etsi is not None
                and (s.key_index is None or s.key_index < s.target_index)
            ):
                try:
                    st, idx, key = await self._etsi("QKD_GET_KEY", self.etsi.get_key(s.key_handle))
                except _EtsiFailure as e:
                    st, idx, key, why = None, 0, b"", str(e)
                else:
                    why = f"QKD_GET_KEY status {int(st)} {ETSI_STATUS.get(int(st), '')}"
                if st is None or int(st) != ETSI_OK:
                    s.refresh_failures += 1
                    log.warning(
                        "qe key refresh failed",
                        extra={
                            "node": self.name,
                            "event": "refresh_fail",
                            "service": s.id,
                            "why": why,
                        },
                    )
                    return  # made up at the next refresh
                if s.state != UP:
                    return
                s.take_key(idx, key)
                s.refresh_count += 1
                self.counters["refreshes"] += 1
                log.info(
                    "qe key refreshed",
                    extra={
                        "node": self.name,
                        "event": "refresh",
                        "service": s.id,
                        "key_index": idx,
                    },
                )
                s.touch()

    # --- CLI --------------------------------------------------------------------------

    def register(self, table: Any) -> None:
        """Register the commands in the node's telnet CLI command table
        (:class:`node_agent.cli.CommandTable`)."""
        table.register(
            "qe-service create",
            self._cli_create,
            "dst A.B.C.D [key-length N] [layer 1|2|3] [algorithm N] "
            "[refresh time|volume|none V] [bandwidth B] [wait]: new QE service",
            text=_render_services,
        )
        table.register(
            "qe-service delete",
            self._cli_delete,
            "ID: tear a QE service down",
            text=_render_services,
        )
        table.register(
            "qe-service wait",
            self._cli_wait,
            "ID [timeout S]: until the service is up or failed",
            text=_render_services,
        )
        table.register(
            "qe-service traffic",
            self._cli_traffic,
            "ID BYTES | ID rate BPS: count traffic for volume refresh",
            text=_render_services,
        )
        table.register(
            "show qe-service",
            self._cli_show,
            "[ID]: QE services, keys by fingerprint",
            text=_render_services,
        )
        table.register("show mpls lsp", self._cli_lsps, "RSVP-TE LSPs", text=_render_lsps)
        table.register(
            "show rsvp neighbor",
            self._cli_neighbors,
            "RSVP neighbours (Hello)",
            text=_render_neighbors,
        )

    async def _cli_create(self, args: list[str]) -> dict[str, Any]:
        dst, params, bw, wait = parse_create(args)
        s = self.create(dst, params, bw)
        if wait:
            await self.wait(s.id)
        return {"services": [s.as_json(self._now())]}

    def _cli_delete(self, args: list[str]) -> dict[str, Any]:
        if len(args) != 1:
            raise QeServiceError("usage: qe-service delete ID")
        s = self.delete(args[0])
        return {"services": [s.as_json(self._now())]}

    async def _cli_wait(self, args: list[str]) -> dict[str, Any]:
        if len(args) not in (1, 3) or (len(args) == 3 and args[1] != "timeout"):
            raise QeServiceError("usage: qe-service wait ID [timeout S]")
        timeout = float(args[2]) if len(args) == 3 else 30.0
        s = await self.wait(args[0], timeout)
        return {"services": [s.as_json(self._now())]}

    def _cli_traffic(self, args: list[str]) -> dict[str, Any]:
        if len(args) == 2:
            s = self.add_traffic(args[0], _int_arg("BYTES", args[1]))
        elif len(args) == 3 and args[1] == "rate":
            s = self.set_rate(args[0], _bandwidth(args[2]))
        else:
            raise QeServiceError("usage: qe-service traffic ID BYTES | ID rate BPS")
        return {"services": [s.as_json(self._now())]}

    def _cli_show(self, args: list[str]) -> dict[str, Any]:
        now = self._now()
        if args:
            return {"services": [self.find(args[0]).as_json(now)]}
        return {
            "node": self.name,
            "router_id": str(self.router_id),
            "pcep": "up" if self.pcc is not None and self.pcc.is_up else "down",
            "services": [s.as_json(now) for s in self.services()],
            "counters": dict(self.counters),
        }

    def _cli_lsps(self, args: list[str]) -> dict[str, Any]:
        st = self.rsvp.status()
        return {"node": self.name, "lsps": st["lsps"]}

    def _cli_neighbors(self, args: list[str]) -> dict[str, Any]:
        st = self.rsvp.status()
        return {"node": self.name, "neighbors": st["neighbors"], "counters": st["counters"]}


# --- helpers -----------------------------------------------------------------------------


def _route_nodes(route: Sequence[ero.Subobject]) -> list[str]:
    """The router IDs an ERO names, in order, each once."""
    out: list[str] = []
    for s in route:
        rid = None
        if isinstance(s, ero.Unnumbered):
            rid = str(s.router_id)
        elif isinstance(s, ero.Ipv4Prefix):
            rid = str(s.address)
        if rid is not None and (not out or out[-1] != rid):
            out.append(rid)
    return out


def _rro_nodes(route: Sequence[ero.Subobject], reverse: bool = True) -> list[str]:
    nodes = _route_nodes(route)
    return list(reversed(nodes)) if reverse else nodes


def _int_arg(name: str, v: str) -> int:
    try:
        return int(v)
    except ValueError:
        raise QeServiceError(f"{name} must be a whole number, not {v!r}") from None


_UNITS = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


def _bandwidth(v: str) -> float:
    """Bits per second: ``10G``, ``100M``, ``2.5g``, ``1000``."""
    t = v.strip().lower().removesuffix("bps")
    unit = t[-1] if t and t[-1] in "kmgt" else ""
    try:
        x = float(t[: len(t) - len(unit)]) * _UNITS[unit]
    except ValueError:
        raise QeServiceError(f"bad bandwidth {v!r} (e.g. 10G, 100M)") from None
    if not math.isfinite(x) or x < 0:
        raise QeServiceError(f"bad bandwidth {v!r}")
    return x


def parse_create(args: list[str]) -> tuple[IPv4Address, qe.QeParams, float, bool]:
    """``dst A.B.C.D [key-length N] [layer L] [algorithm N] [refresh time|volume|none V]
    [bandwidth B] [wait]`` → (destination, parameters, bandwidth in bit/s, wait)."""
    words = list(args)
    dst: IPv4Address | None = None
    kw: dict[str, int] = {}
    bw = 0.0
    wait = False
    i = 0
    while i < len(words):
        w = words[i]
        nxt = words[i + 1] if i + 1 < len(words) else None
        if w == "wait":
            wait = True
            i += 1
            continue
        if nxt is None:
            raise QeServiceError(f"{w!r} needs a value")
        if w == "dst":
            try:
                dst = IPv4Address(nxt)
            except ValueError:
                raise QeServiceError(f"dst {nxt!r} is not an IPv4 address") from None
        elif w == "key-length":
            kw["key_length"] = _int_arg("key-length", nxt)
        elif w == "layer":
            kw["enc_layer"] = _int_arg("layer", nxt)
        elif w == "algorithm":
            kw["algorithm"] = _int_arg("algorithm", nxt)
        elif w == "refresh":
            types = {"time": 1, "volume": 2, "none": 0}
            if nxt not in types:
                raise QeServiceError("refresh takes time, volume or none")
            kw["refresh_type"] = types[nxt]
            if nxt == "none":
                kw["refresh_value"] = 0
                i += 2
                continue
            if i + 2 >= len(words):
                raise QeServiceError(f"refresh {nxt} needs a value")
            kw["refresh_value"] = _int_arg("refresh value", words[i + 2])
            i += 3
            continue
        elif w == "bandwidth":
            bw = _bandwidth(nxt)
        else:
            raise QeServiceError(f"unknown argument {w!r}")
        i += 2
    if dst is None:
        raise QeServiceError("usage: qe-service create dst A.B.C.D [...]")
    return dst, qe.QeParams(**kw), bw, wait


def _render_services(data: dict[str, Any]) -> str:
    rows = data.get("services", [])
    head = ""
    if "node" in data:
        head = f"QE services at {data['node']} ({data['router_id']}), PCEP session {data['pcep']}\n"
    if not rows:
        return head + "no QE services"
    lines = [
        f"{'ID':<12} {'role':<5} {'state':<11} {'peer':<15} {'handle':<9} {'idx':>4} "
        f"{'fingerprint':<16} {'refr':>4}  path"
    ]
    for r in rows:
        peer = r.get("destination") or r.get("source") or ""
        idx = "-" if r["key_index"] is None else str(r["key_index"])
        lines.append(
            f"{r['id']:<12} {r['role']:<5} {r['state']:<11} {peer:<15} "
            f"{r['key_handle_prefix'] or '-':<9} {idx:>4} {r['fingerprint'] or '-':<16} "
            f"{r['refresh_count']:>4}  {' '.join(r['path'])}"
        )
        if r.get("error"):
            code = f" (code {r['code'][0]}/{r['code'][1]})" if r.get("code") else ""
            lines.append(f"{'':<12} error{code}: {r['error']}")
    return head + "\n".join(lines)


def _render_lsps(data: dict[str, Any]) -> str:
    rows = data["lsps"]
    if not rows:
        return "no LSPs"
    lines = [f"{'LSP':<30} {'role':<8} {'state':<12} {'in':<8} {'out':<8} {'handle':<9}"]
    for r in rows:
        inn = f"{r['in_if']}/{r['in_lambda']}" if r["in_if"] is not None else "-"
        out = f"{r['out_if']}/{r['out_lambda']}" if r["out_if"] is not None else "-"
        lines.append(
            f"{r['lsp']:<30} {r['role']:<8} {r['state']:<12} {inn:<8} {out:<8} "
            f"{r['key_handle_prefix'] or '-':<9}"
        )
    return "\n".join(lines)


def _render_neighbors(data: dict[str, Any]) -> str:
    lines = [f"{'neighbor':<15} {'state':<5} {'instance':>10} {'last heard (s)':>15}"]
    for n in data["neighbors"]:
        lines.append(
            f"{n['address']:<15} {'up' if n['up'] else 'down':<5} {n['instance']:>10} "
            f"{'-' if n['last_heard_s'] is None else n['last_heard_s']:>15}"
        )
    return "\n".join(lines)


def refresh_type_name(t: int) -> str:
    return {0: "none", 1: "time", 2: "volume"}.get(t, str(t))


__all__ = [
    "QeError",
    "QeService",
    "QeServiceError",
    "Service",
    "fingerprint",
    "parse_create",
]


# --- plugging into the node agent daemon -------------------------------------------------


def setup(daemon: Any) -> QeService:
    """Wire RSVP-TE and the QE service into a :class:`node_agent.daemon.NodeDaemon`
    (called through its ``ext_*`` extension hook, node_agent/ext_qe_service.py):
    the RSVP shell and the QE service become a component, the CLI gets the QE and RSVP
    commands, and every ``LinkResources`` action of the RSVP core re-originates the TE
    LSA of that link with its free wavelengths (so the PCE's TED shows what is in use)."""

    def link_resources(local_if: int, free: tuple[int, ...]) -> None:
        daemon.ospf.set_link_resources(local_if, available_lambdas=free)

    svc = QeService.from_topology(daemon.topo, daemon.host, link_resources=link_resources)
    svc.register(daemon.cli)
    daemon.add_component(svc)
    return svc
