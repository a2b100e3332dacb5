"""The QE service of one node, sans-I/O: the paper's end-to-end workflow (docs/qe-service.md).

:class:`QeServiceCore` keeps the contract of :mod:`gmpls.core`: ``handle(event, now) ->
actions`` and ``next_timer()``. It never awaits, reads a clock or opens a socket; its
shell (``node_agent/qe_service.py``) carries out the actions — a PCReq, ETSI GS QKD 004
calls, RSVP commands, an OSPF re-advertisement — and feeds back their answers and the
RSVP core's actions as events (:mod:`gmpls.qe_service.events`).

At the head (``Create``):

1. :class:`RequestPath` (PCReq with the QE METRIC objects) → :class:`PathReply` with the
   Fig. 9 ERO; NO-PATH fails the service with the PCE's reason;
2. :class:`CreateLsp`: the RSVP core finds our QE subobject with a zero session ID and
   asks for a key session (``NeedQeSession``);
3. QKD_OPEN(destination = the QE destination's router ID) → key_handle, then
   QKD_CONNECT_NONBLOCK and QKD_GET_KEY together (one round trip; CONNECT status 1
   "peer not connected" is expected at the head) → key index 0; ``QeSessionReady``
   (:class:`ToRsvp`): the RSVP core writes the handle into the ERO and sends Path;
4. at the tail the RSVP core finds its QE subobject with that handle (``QeJoin``, fed as
   :class:`TailJoin`): QKD_OPEN(the head's router ID, the same handle) / CONNECT /
   GET_KEY → key index 0, the same bytes; ``QeSessionReady`` → Resv;
5. ``LspUp`` at the head: the service is up.

With ``pipeline_keying`` (the node agents') the head keys while the PCReq is out: at
``Create`` it names a key_handle (``random_bytes``) and sends QKD_OPEN, CONNECT and
GET_KEY together; ``NeedQeSession`` takes that session and Path goes at once with its
handle (``LspUp`` waits for the key; a key that fails then is ``QeFailed``: RSVP tears the
LSP down, 252/1), unless the PCRep's relay path crosses other sites, the early session failed, or the
service ended first: then it is closed (and step 3 runs). The tail sends its OPEN,
CONNECT and GET_KEY together too; calls that overtook the OPEN (status 4) are asked
again once.

Key refresh (no signalling): refresh *k* makes an end hold key index *k* — every
``refresh`` ms (type 1, from when the service came up at that end) or every ``V`` MiB
counted (type 2: :class:`AddTraffic`, :class:`SetRate`, given at both ends). A refresh
that fails is counted and made up at the next one: the end fetches until it holds the
target index, so both ends' indices stay in step.

Failures: the head cannot get a key session → ``QeFailed`` (the RSVP core: LspDown
252/1, nothing sent); the tail cannot join → ``QeFailed`` (PathErr 252/2, the head tears
down); whatever was opened is closed first. An explicit label found busy (24/11: the
PCE's TED lags our OSPF re-origination) or taken meanwhile (24/6) is retried with the
label subobjects removed, each hop choosing from the Label_Set (RFC 3473 §2.6), up to
:data:`LABEL_ATTEMPTS` attempts. At most ``max_keying`` key sessions are opened or
joined at once; the others queue. The last :data:`KEEP_FINISHED` finished services stay
listed.

Keys live only in :class:`gmpls.qe_service.model.Service` objects; the :class:`Log`
actions carry the key index, an 8-hex-digit handle prefix, never key bytes. This node is
assumed to be the only one heading LSPs on its RSVP core (tunnel IDs are allocated here).
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address
from typing import Any

from gmpls import ero
from gmpls.deadlines import Deadlines
from gmpls.qe import EncLayer, QeParams, RefreshType
from gmpls.qe_service import events as E
from gmpls.qe_service.model import (
    COMPUTING,
    DOWN,
    FAILED,
    KEYED,
    KEYING,
    MIB,
    REROUTING,
    SIGNALLING,
    UP,
    QeServiceError,
    Service,
    route_nodes,
)
from gmpls.qkd.etsi004 import HANDLE_LEN, ZERO_HANDLE
from gmpls.rsvp import events as RE
from gmpls.rsvp.constants import ErrorCode, QeError, RoutingProblem

#: finished services kept for ``show qe-service`` (the newest)
KEEP_FINISHED = 64
#: ETSI 004 V1.1.1 status values (docs/etsi004.md)
ETSI_OK, ETSI_PEER_NOT_CONNECTED, ETSI_NO_CONNECTION = 0, 1, 4
ETSI_STATUS = {
    0: "SUCCESSFUL",
    1: "PEER_NOT_CONNECTED",
    2: "GK_INSUFFICIENT_KEY_AVAILABLE",
    3: "GK_PEER_NOT_CONNECTED",
    4: "NO_QKD_CONNECTION_AVAILABLE",
    5: "OPEN_CONNECT_FAILED_KSID_ALREADY_IN_USE",
    6: "TIMEOUT_ERROR",
}
#: an explicit label in use, or no free label in the Label_Set (RFC 3473 §2.6)
LABEL_BUSY = (ErrorCode.ROUTING_PROBLEM, RoutingProblem.LABEL_SET)
#: a Resv label the head offered but meanwhile held for another LSP (RFC 3209 §4.1.1 sense)
LABEL_TAKEN = (ErrorCode.ROUTING_PROBLEM, RoutingProblem.UNACCEPTABLE_LABEL)
#: signalling attempts per service when labels collide (the PCE's, then local ones)
LABEL_ATTEMPTS = 4
TAIL_JOIN_FAILED = (ErrorCode.QE_ERROR, QeError.TAIL_JOIN_FAILED)
#: a simulated traffic rate is counted every RATE_TICK seconds
RATE_TICK = 0.1
NO_PROXY = "this node has no ETSI 004 proxy"
#: layer 3 (IP) encryption is not built: refused at a head or tail with a data plane
LAYER3_REFUSED = (
    "QE layer 3 (IP) encryption is not built: the data plane encrypts Ethernet frames"
    " (use layer 2, or layer 1)"
)
#: a refresh that failed for lack of key: GK_INSUFFICIENT_KEY_AVAILABLE, or no answer
#: (the proxy's own wait for key ran past the client's deadline)
NO_KEY = (2, None)


#: what an ETSI 004 status means for the service, where the name alone does not say it
ETSI_CAUSE = {
    4: "the proxy has no QKD connection for it: an unknown or closed key_handle, or its peer"
    " proxy or key source does not answer (the proxy's log says which)",
}


def etsi_failure(call: str, reply: E.EtsiReply) -> str:
    """``QKD_GET_KEY status 2 GK_INSUFFICIENT_KEY_AVAILABLE (why)``, or why there was no
    answer."""
    if reply.status is None:
        return f"{call}: {reply.error}"
    name = ETSI_STATUS.get(reply.status, str(reply.status))
    cause = ETSI_CAUSE.get(reply.status)
    return f"{call} status {reply.status} {name}" + (f" ({cause})" if cause else "")


def index_failure(reply: E.EtsiReply, want: int) -> str:
    """A key with another index than the one asked for: the two ends would disagree."""
    return f"QKD_GET_KEY index {reply.key_index}, expected {want}"


@dataclass(slots=True)
class _Keying:
    """A key session being opened (head) or joined (tail)."""

    lsp: RE.LspKey | None
    head: bool
    destination: IPv4Address
    params: QeParams
    service: Service | None = None
    handle: bytes | None = None  # head: once opened; tail: the handle to join
    recorded_route: tuple[ero.Subobject, ...] = ()
    opened: bool = False
    connect: E.EtsiReply | None = None
    got: E.EtsiReply | None = None
    failure: str = ""
    #: when the key session was asked for (head: NeedQeSession; tail: the Path came in)
    queued: float = 0.0
    #: OPEN, CONNECT and GET_KEY went out together (the handle was known beforehand)
    pipelined: bool = False
    #: CONNECT and GET_KEY were sent again once (they had overtaken the OPEN)
    reissued: bool = False
    #: head: opened at ``Create``, while the PCReq is out (``lsp`` None until RSVP asks)
    early: bool = False
    #: early and no longer wanted: its session is closed (at once: the handle is ours)
    abandoned: bool = False
    #: its QKD_CLOSE went out already
    closed: bool = False
    #: keyed, or failed: the late answers of its calls are ignored
    ended: bool = False
    key_index: int = 0
    key: bytes | None = field(default=None, repr=False)
    #: head, early: Path went out with the handle before the key was in
    signalled: bool = False
    #: head, early and signalled: the Resv came before the key (``up`` waits for it)
    up: RE.LspUp | None = None


@dataclass(slots=True)
class _Call:
    """An outstanding call the shell carries out for us (by correlation ID)."""

    kind: str  # "path", "open", "connect", "get_key", "refresh", "close"
    service: Service | None = None
    index: int = 0  # get_key, refresh: the key index asked for
    job: _Keying | None = None
    lsp: RE.LspKey | None = None
    handle: bytes = b""


class QeServiceCore:
    """The QE services of one node (see the module docstring).

    ``free_lambdas``: this node's TE links and their free lambdas now (kept up to date
    from the RSVP core's ``LinkResources``); ``has_pce`` / ``has_proxy``: whether the
    node has a PCE to ask and an ETSI 004 proxy to call; ``wall_offset``: wall-clock time
    minus the ``now`` clock, for the ``created_at`` the CLI shows."""

    # long: the core's settings and tables, one per line
    def __init__(
        self,
        *,
        name: str,
        router_id: IPv4Address,
        free_lambdas: Mapping[int, Iterable[int]] | None = None,
        has_pce: bool = True,
        has_proxy: bool = True,
        wall_offset: float = 0.0,
        pcep_timeout: float = 10.0,
        retry_busy_label: bool = True,
        link_batch: float = 0.02,
        max_keying: int = 16,
        site_names: Mapping[IPv4Address, str] | None = None,
        reroute_hold: float = 10.0,
        has_dataplane: bool = False,
        pipeline_keying: bool = False,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self.name = name
        #: the key managers by site ID, to name a relay path's sites in ``show``
        self.site_names: dict[IPv4Address, str] = dict(site_names or {})
        self.router_id = IPv4Address(router_id)
        self.has_pce = has_pce
        self.has_proxy = has_proxy
        self.wall_offset = wall_offset
        self.pcep_timeout = pcep_timeout
        self.retry_busy_label = retry_busy_label
        self.link_batch = link_batch
        self.max_keying = max_keying
        #: the head opens its key session at ``Create``, while the PCReq is out, with a
        #: key_handle of its own (:meth:`_early_open`), and both ends send OPEN, CONNECT
        #: and GET_KEY together; the CSPRNG that makes the handles
        self.pipeline_keying = pipeline_keying
        self.random_bytes = random_bytes
        #: the early key sessions not handed to RSVP yet, by tunnel ID
        self._early: dict[int, _Keying] = {}
        #: early sessions whose Path went out before their key came, by tunnel ID
        self._keying_for: dict[int, _Keying] = {}
        #: seconds a service whose LSP failed keeps its key session for a new LSP
        self.reroute_hold = reroute_hold
        #: this node encrypts at its access port (docs/dataplane.md): layer 3 is refused
        self.has_dataplane = has_dataplane
        #: the head service that holds the access port (:meth:`_claims_port`)
        self._port_holder: str | None = None
        self.free: dict[int, frozenset[int]] = {
            i: frozenset(f) for i, f in (free_lambdas or {}).items()
        }
        self.heads: dict[int, Service] = {}  # by tunnel ID
        self.tails: dict[RE.LspKey, Service] = {}
        self.finished: deque[Service] = deque(maxlen=KEEP_FINISHED)
        #: every service :meth:`find` can name: the live ones and those in ``finished``
        self._by_id: dict[str, Service] = {}
        #: the ERO each head service was signalled on (for the busy-label retry)
        self._routes: dict[int, tuple[ero.Subobject, ...]] = {}
        self._next_tunnel = 1
        self._calls: dict[int, _Call] = {}
        self._cid = 0
        self._keying: deque[_Keying] = deque()
        self._keying_active = 0
        #: TE links whose free lambdas go to OSPF: local_if -> (when, free lambdas)
        self._links_due: dict[int, tuple[float, tuple[int, ...]]] = {}
        #: the live services' timers (refresh, rate, hold; gmpls.deadlines): entered
        #: wherever one is set or moves earlier (:meth:`_schedule`)
        self._timers_due: Deadlines[Service] = Deadlines(self._deadline)
        self._now = 0.0
        self._out: list[E.Action] = []
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
            "refresh_no_key": 0,
            "rerouting": 0,
            "moved": 0,
            "moves_failed": 0,
        }
        self._on: dict[type, Callable[[Any], None]] = {
            E.Create: self._create,
            E.Delete: self._delete,
            E.Update: self._update,
            E.AddTraffic: self._add_traffic,
            E.SetRate: self._set_rate,
            E.DataplaneTraffic: self._dataplane_traffic,
            E.Shutdown: self._shutdown,
            E.PathReply: self._path_reply,
            E.PcepFailed: self._pcep_failed,
            E.EtsiReply: self._etsi_reply,
            E.CreateLspFailed: self._create_lsp_failed,
            RE.NeedQeSession: self._need_session,
            E.TailJoin: self._tail_join,
            RE.QeClose: self._on_close,
            RE.LspUp: self._on_up,
            RE.LspDown: self._on_down,
            RE.LinkResources: self._link_changed,
            RE.NeighborUp: _ignore,
            RE.NeighborDown: _ignore,
            E.Tick: _ignore,
        }

    # --- the contract of gmpls.core -------------------------------------------------

    def handle(self, event: E.Event, now: float) -> list[E.Action]:
        """Process ``event`` at ``now``. A CLI request that cannot be carried out raises
        :class:`QeServiceError` and changes nothing."""
        self._now = now
        self._out = []
        self._on[type(event)](event)
        self._timers(now)
        out, self._out = self._out, []
        return out

    def next_timer(self) -> float | None:
        times = [due for due, _ in self._links_due.values()]
        top = self._timers_due.top()
        if top is not None:
            times.append(top)
        return min(times) if times else None

    # --- queries (the CLI's) --------------------------------------------------------

    def find(self, sid: str) -> Service:
        s = self._by_id.get(sid)
        if s is None:
            raise QeServiceError(f"no QE service {sid}")
        return s

    def route_of(self, tunnel_id: int) -> tuple[ero.Subobject, ...] | None:
        """The route the LSP of head tunnel ``tunnel_id`` was signalled on (the new one
        once a move is up)."""
        return self._routes.get(tunnel_id)

    def services(self) -> list[Service]:
        live = self._live()
        ids = {id(s) for s in live}
        return live + [s for s in self.finished if id(s) not in ids]

    def _live(self) -> list[Service]:
        return [*self.heads.values(), *self.tails.values()]

    # --- plumbing -------------------------------------------------------------------

    def _log(self, message: str, warning: bool = False, **fields: Any) -> None:
        self._out.append(E.Log(message, fields, warning))

    def _changed(self, s: Service) -> None:
        self._out.append(E.ServiceChanged(s.id, s.state))

    def _call(self, make: Callable[[int], E.Action], call: _Call) -> None:
        self._cid += 1
        self._calls[self._cid] = call
        self._out.append(make(self._cid))

    def _timers(self, now: float) -> None:
        for local_if, (due, free) in list(self._links_due.items()):
            if due <= now:
                del self._links_due[local_if]
                self._out.append(E.AdvertiseLink(local_if, free))
        for s in self._timers_due.pop_due(now):
            if self._deadline(s) is None:
                continue  # ended, or its timers stopped, by another's timer just now
            while s.refresh_at is not None and s.refresh_at <= now:
                self._refresh_due(s)
            while s.rate_at is not None and s.rate_at <= now:
                self._rate_tick(s)
            if s.state == REROUTING and s.hold_until is not None and s.hold_until <= now:
                self._hold_expired(s)
            self._schedule(s)

    def _deadline(self, s: Service) -> float | None:
        """The service's earliest timer, None when it has none or is no longer live."""
        live = (
            self.heads.get(s.tunnel_id) is s
            if s.role == "head"
            else s.lsp is not None and self.tails.get(s.lsp) is s
        )
        times = [t for t in (s.refresh_at, s.rate_at, s.hold_until) if t is not None]
        return min(times) if live and times else None

    def _schedule(self, s: Service) -> None:
        """(Re)enter the service's earliest timer: wherever one is set or moves earlier
        (one that moved later, or a service that ended, is corrected when its old entry
        comes to the top), so that neither the next timer nor a tick scans every service."""
        self._timers_due.enter(s)

    # --- the CLI's requests ---------------------------------------------------------

    def _create(self, ev: E.Create) -> None:
        if not self.has_pce:
            raise QeServiceError("no PCE in the topology: cannot compute a path")
        p = ev.params
        if self.has_dataplane and p.enc_layer == EncLayer.IP:
            raise QeServiceError(LAYER3_REFUSED)
        tid = self._allocate_tunnel()
        s = Service(
            str(tid),
            "head",
            IPv4Address(ev.destination),
            p,
            ev.bandwidth_bps,
            tunnel_id=tid,
            created=self._now,
            created_wall=self._now + self.wall_offset,
            delegated=ev.delegate,
        )
        self.heads[tid] = s
        self._by_id[s.id] = s
        self._schedule(s)
        s.stage("pcreq", self._now)
        self.counters["created"] += 1
        self._log(
            "qe service create",
            event="create",
            service=s.id,
            dst=str(s.peer),
            key_length=p.key_length,
            layer=p.enc_layer,
            algorithm=p.algorithm,
            refresh_type=p.refresh_type,
            refresh_value=p.refresh_value,
        )
        self._changed(s)
        bw = s.bandwidth_bps / 8.0
        self._call(
            lambda cid: E.RequestPath(cid, self.router_id, s.peer, p, bw, self.pcep_timeout),
            _Call("path", service=s),
        )
        if self.pipeline_keying and self.has_proxy:
            self._early_open(s)

    def _early_open(self, s: Service) -> None:
        """Open the head's key session now, while the PCReq is out: a key_handle of our
        own (ETSI 004 lets the caller name it), so OPEN, CONNECT and GET_KEY go out
        together; RSVP's ``NeedQeSession`` takes the session once the PCRep is in
        (:meth:`_need_session`). A relay path in the PCRep, a failure, or the service
        ending first: the session is closed and, if still wanted, opened the usual way."""
        handle = ZERO_HANDLE
        while handle == ZERO_HANDLE:
            handle = self.random_bytes(HANDLE_LEN)
        job = _Keying(None, True, s.peer, s.params, s, handle, queued=self._now, early=True)
        self._early[s.tunnel_id] = job
        self._queue_keying(job)

    def _allocate_tunnel(self) -> int:
        for _ in range(0xFFFF):
            tid = self._next_tunnel
            self._next_tunnel = self._next_tunnel % 0xFFFF + 1
            if tid not in self.heads:
                return tid
        raise QeServiceError("no free tunnel ID")

    def _delete(self, ev: E.Delete, graceful: bool = True) -> None:
        """Delete a service this node heads; its LSP gracefully (RFC 3473 §7.2, so the
        tail knows the deletion is meant and closes its key session at once) unless
        ``graceful`` is false (the node agent stopping: PathTear now)."""
        s = self.find(ev.service_id)
        if s.role != "head":
            raise QeServiceError(f"service {s.id} is headed by {s.peer}: delete it there")
        if s.finished:
            return
        s.deleted = True
        self._log("qe service delete", event="delete", service=s.id)
        if s.state == COMPUTING:
            self._finish(s, DOWN, "deleted before the PCE answered")
        else:
            if s.state == REROUTING and s.update_route is None and s.key_handle is not None:
                self._close(s.key_handle, None)  # no LSP holds it: RSVP will not
            self._out.append(E.DeleteLsp(s.tunnel_id, graceful=graceful))
            self._finish(s, DOWN, "deleted")
        self.counters["deleted"] += 1

    def _add_traffic(self, ev: E.AddTraffic) -> None:
        s = self.find(ev.service_id)
        if ev.nbytes < 0:
            raise QeServiceError("traffic cannot be negative")
        s.bytes_counted += ev.nbytes
        self._volume_check(s)

    def _dataplane_traffic(self, ev: E.DataplaneTraffic) -> None:
        """Real traffic: bytes the data plane encrypted and decrypted at this end."""
        s = next((x for x in self._live() if x.id == ev.service_id), None)
        if s is None or ev.nbytes <= 0:
            return  # the service ended meanwhile
        s.bytes_counted += ev.nbytes
        s.bytes_dataplane += ev.nbytes
        self._volume_check(s)

    def _set_rate(self, ev: E.SetRate) -> None:
        s = self.find(ev.service_id)
        s.rate_bps = max(0.0, ev.rate_bps)
        if s.rate_bps and s.state in KEYED and s.rate_at is None:
            s.rate_at = self._now + RATE_TICK
            self._schedule(s)

    def _shutdown(self, ev: E.Shutdown) -> None:
        """Delete the services this node heads (PathTear, QKD_CLOSE), close the key
        sessions of those it ends (its neighbours learn of its going by Hello)."""
        for s in list(self.heads.values()):
            if not s.finished:
                self._delete(E.Delete(s.id), graceful=False)
        for s in list(self.tails.values()):
            if not s.finished and s.key_handle is not None:
                self._close(s.key_handle, s.lsp)
                self._finish(s, DOWN, "node agent stopping")
        for s in self._live():
            self._stop_refresh(s)
            self._dp_stop(s)
            s.key = None

    # --- head: PCReq → create_lsp ---------------------------------------------------

    def _path_reply(self, ev: E.PathReply) -> None:
        call = self._calls.pop(ev.cid, None)
        s = call.service if call is not None else None
        if s is None or s.finished:
            return  # deleted meanwhile
        s.stage("pcrep", self._now)
        if not ev.ok:
            self._finish(s, FAILED, f"NO-PATH: {ev.reason}")
            return
        route = tuple(ev.ero)
        s.path = route_nodes(route)
        s.relay = tuple(ev.relay)
        if self.retry_busy_label and not self._own_label_free(route):
            # the PCE chose a lambda we hold already on our own link (its TED lags our
            # OSPF re-origination): the same ERO without labels, each hop choosing
            route = _without_labels(route)
            s.labels = "local"
            self.counters["labels_local"] += 1
        self._signal(s, route)

    def _pcep_failed(self, ev: E.PcepFailed) -> None:
        call = self._calls.pop(ev.cid, None)
        if call is not None and call.service is not None:
            self._finish(call.service, FAILED, f"PCEP: {ev.error}")

    def _own_label_free(self, route: Sequence[ero.Subobject]) -> bool:
        """Whether the explicit label the ERO gives for this node's outgoing interface
        (the Label subobject right after our Unnumbered subobject) is free here."""
        out_if: int | None = None
        for x in route:
            if isinstance(x, ero.Unnumbered):
                if x.router_id != self.router_id:
                    break
                out_if = x.interface_id
            elif isinstance(x, ero.Label) and out_if is not None and not x.upstream:
                return ero.lambda_channel(x.label) in self.free.get(out_if, frozenset())
            elif not isinstance(x, ero.QeSubobject | ero.Label):
                break
        return True

    def _signal(self, s: Service, route: tuple[ero.Subobject, ...]) -> None:
        s.attempts += 1
        s.state = KEYING
        self._changed(s)
        self._log(
            "qe service signal",
            event="signal",
            service=s.id,
            path=" ".join(s.path),
            labels=s.labels,
        )
        s.lsp = None
        self._routes[s.tunnel_id] = route
        name = f"qe-{self.name}-{s.id}"
        bidir = self._claims_port(s)
        self._out.append(
            E.CreateLsp(s.tunnel_id, route, s.bandwidth_bps, name, bidirectional=bidir)
        )

    def _claims_port(self, s: Service) -> bool:
        """Whether ``s`` is signalled bidirectional: a layer-1/2 service at a head with a
        data plane that holds the access port, which carries one service at a time (port
        mode, docs/dataplane.md). The first such service holds it while it lives; the
        others need no reverse lambdas, so a burst of services does not take two lambdas
        per link each for frames that could not flow."""
        if not (self.has_dataplane and _bidirectional(s.params)):
            return False
        holder = self._port_holder
        if holder is not None and holder != s.id:
            other = next((x for x in self.heads.values() if x.id == holder), None)
            if other is not None and other.state not in (FAILED, DOWN):
                return False
        self._port_holder = s.id
        return True

    def _create_lsp_failed(self, ev: E.CreateLspFailed) -> None:
        s = self.heads.get(ev.tunnel_id)
        if s is not None and s.update_route is not None:
            self._move_failed(s, f"RSVP: {ev.reason}")
        elif s is not None:
            self._finish(s, FAILED, f"RSVP: {ev.reason}")

    # --- key sessions: opened at the head, joined at the tail -----------------------

    def _need_session(self, a: RE.NeedQeSession) -> None:
        s = self._head_of(a.lsp)
        early = self._early.pop(s.tunnel_id, None) if s is not None else None
        if s is not None:
            s.lsp = a.lsp
            s.key_handle = None
            s.stage("session_asked", self._now)
        if early is not None:
            usable = (
                not early.failure
                and early.destination == a.dst_router_id
                and early.params.key_length == a.params.key_length
                # a direct QKD link (two sites, or one): what the early OPEN without a
                # relay path got; a relay through other sites is opened with its path
                and not (s is not None and len(s.relay) > 2)
            )
            if usable:
                early.lsp = a.lsp
                if not early.ended and s is not None:
                    self._signal_early(s, early)
                    return  # keyed when its calls are answered, before the service is up
                self._hand_over(early)  # keyed already: Path goes now
                return
            self._abandon(early)
        job = _Keying(a.lsp, True, a.dst_router_id, a.params, service=s, queued=self._now)
        self._queue_keying(job)

    def _signal_early(self, s: Service, job: _Keying) -> None:
        """Path now: the handle is ours already, the key need only be in before the Resv
        makes the service up. Should it fail, RSVP tears the LSP down (252/1)."""
        assert job.lsp is not None and job.handle is not None
        job.signalled = True
        self._keying_for[s.tunnel_id] = job
        s.key_handle = job.handle
        s.stage("path_out", self._now)
        s.state = SIGNALLING
        self._changed(s)
        self._out.append(E.ToRsvp(RE.QeSessionReady(job.lsp, job.handle)))

    def _abandon(self, job: _Keying) -> None:
        """An early session nobody will use: closed (now, or once its calls are answered)."""
        job.abandoned = True
        sent = job.pipelined and not job.ended  # its OPEN is out: CLOSE follows it in order
        if job.handle is not None and (sent or (job.ended and not job.failure)):
            job.closed = True
            self._close(job.handle, None)

    def _tail_join(self, ev: E.TailJoin) -> None:
        a = ev.join
        moving = self._moving_tail(a)
        if moving is not None:
            self._reattach(moving, ev)
            return
        job = _Keying(
            a.lsp,
            False,
            a.lsp.sender,
            a.params,
            handle=a.key_handle,
            recorded_route=ev.recorded_route,
            queued=self._now,
        )
        self._queue_keying(job)

    def _queue_keying(self, job: _Keying) -> None:
        """At most ``max_keying`` key sessions being opened or joined at once: a burst of
        services queues here instead of flooding the proxy (whose answers would then
        come after the ETSI client's deadline)."""
        self._keying.append(job)
        self._next_keying()

    def _keying_done(self) -> None:
        self._keying_active -= 1
        self._next_keying()

    def _next_keying(self) -> None:
        while self._keying and self._keying_active < self.max_keying:
            self._keying_active += 1
            self._start_keying(self._keying.popleft())

    def _start_keying(self, job: _Keying) -> None:
        if job.abandoned:  # an early session given up before it went out
            job.ended = True
            self._keying_done()
            return
        if not job.head:
            assert job.lsp is not None
            job.service = self._new_tail(job)
            if self.has_dataplane and job.params.enc_layer == EncLayer.IP:
                self._finish(job.service, FAILED, LAYER3_REFUSED, TAIL_JOIN_FAILED)
                self._out.append(E.ToRsvp(RE.QeFailed(job.lsp, LAYER3_REFUSED)))
                self._keying_done()
                return
        if not self.has_proxy:
            assert job.lsp is not None  # no early session without a proxy
            if job.service is not None and not job.head:
                self._finish(job.service, FAILED, "no ETSI 004 proxy", TAIL_JOIN_FAILED)
            self._out.append(E.ToRsvp(RE.QeFailed(job.lsp, NO_PROXY)))
            self._keying_done()
            return
        handle = job.handle if (job.early or not job.head) else None
        if job.service is not None:
            job.service.stage("etsi_open", self._now)
        relay = _relay_for_open(job.service.relay if job.head and job.service else ())
        self._call(
            lambda cid: E.EtsiOpen(cid, job.destination, handle, job.params.key_length, relay),
            _Call("open", job=job),
        )
        if handle is not None and self.pipeline_keying:
            # the handle is known: CONNECT and GET_KEY right behind the OPEN (one datagram
            # stream, in order; the proxy holds a GET_KEY until the peer confirmed)
            job.pipelined = True
            self._connect_and_get(job, handle)

    def _connect_and_get(self, job: _Keying, handle: bytes) -> None:
        """QKD_CONNECT_NONBLOCK and QKD_GET_KEY together (one round trip; CONNECT status 1
        "peer not connected" is expected at the head)."""
        self._call(lambda cid: E.EtsiConnect(cid, handle), _Call("connect", job=job))
        self._call(lambda cid: E.EtsiGetKey(cid, handle, 0), _Call("get_key", job=job))

    def _new_tail(self, job: _Keying) -> Service:
        lsp = job.lsp
        assert job.handle is not None and lsp is not None
        s = Service(
            f"{lsp.ext_tunnel_id}:{lsp.tunnel_id}",
            "tail",
            lsp.sender,
            job.params,
            tunnel_id=lsp.tunnel_id,
            state=KEYING,
            lsp=lsp,
            key_handle=job.handle,
            created=job.queued,
            created_wall=job.queued + self.wall_offset,
        )
        s.stage("path_in", job.queued)
        old = self.tails.get(lsp)
        if old is not None and not old.finished:
            self._finish(old, DOWN, "replaced by a new Path")
        s.path = [*reversed(route_nodes(job.recorded_route)), str(self.router_id)]
        self.tails[lsp] = s
        self._by_id[s.id] = s  # after the one it replaces was finished
        self._schedule(s)
        return s

    def _etsi_reply(self, r: E.EtsiReply) -> None:
        call = self._calls.pop(r.cid, None)
        if call is None:
            return
        if call.kind == "refresh":
            assert call.service is not None
            self._refreshed(call.service, r, call.index)
        elif call.kind == "close":
            self._closed(call, r)
        else:
            assert call.job is not None
            self._keying_reply(call.kind, call.job, r)

    def _keying_reply(self, kind: str, job: _Keying, r: E.EtsiReply) -> None:
        if job.ended:
            return  # a pipelined call answered after the job failed
        if kind == "open":
            if job.service is not None:
                job.service.stage("etsi_opened", self._now)
            self._opened(job, r)
        elif kind == "connect":
            job.connect = r
        else:
            job.got = r
        if kind != "open" and job.service is not None:
            job.service.stage("etsi_connected" if kind == "connect" else "etsi_got_key", self._now)
        if job.ended or not job.opened or job.connect is None or job.got is None:
            return
        c, g = job.connect, job.got
        again = job.pipelined and not job.reissued and not job.abandoned
        if again and ETSI_NO_CONNECTION in (c.status, g.status):
            # the CONNECT or GET_KEY reached the proxy before the OPEN (a lost and
            # retransmitted OPEN): asked again, once, now that the OPEN is answered
            job.reissued = True
            assert job.handle is not None
            if g.status == ETSI_NO_CONNECTION:
                job.connect = job.got = None
                self._connect_and_get(job, job.handle)
            else:
                job.connect = None
                self._call(
                    lambda cid: E.EtsiConnect(cid, job.handle or b""), _Call("connect", job=job)
                )
            return
        # the failures in the order the calls went out: CONNECT, then GET_KEY
        if c.status is None:
            self._keying_failed(job, etsi_failure("QKD_CONNECT_NONBLOCK", c))
        elif g.status is None:
            self._keying_failed(job, etsi_failure("QKD_GET_KEY", g))
        elif c.status not in (ETSI_OK, ETSI_PEER_NOT_CONNECTED):
            self._keying_failed(job, etsi_failure("QKD_CONNECT_NONBLOCK", c))
        elif g.status != ETSI_OK:
            self._keying_failed(job, etsi_failure("QKD_GET_KEY", g))
        elif g.key_index != 0:
            self._keying_failed(job, index_failure(g, 0))
        else:
            self._keyed(job, g.key_index, g.key)

    def _opened(self, job: _Keying, r: E.EtsiReply) -> None:
        if r.status is None:
            self._keying_failed(job, etsi_failure("QKD_OPEN", r))
            return
        self.counters["etsi_open"] += 1
        if r.status != ETSI_OK:
            self._keying_failed(job, etsi_failure("QKD_OPEN", r))
            return
        if job.pipelined:
            if r.key_handle and r.key_handle != job.handle:
                self._keying_failed(job, "QKD_OPEN answered with another key_handle")
                return
            job.opened = True
            return
        if job.head:
            job.handle = r.key_handle
        job.opened = True
        handle = job.handle
        assert handle is not None
        # CONNECT and GET_KEY pipelined: the proxy serves GET_KEY on an open handle
        # whether or not the peer has connected (docs/etsi004.md), so one round trip
        self._connect_and_get(job, handle)

    def _keying_failed(self, job: _Keying, why: str) -> None:
        self.counters["etsi_errors"] += 1
        job.failure = why
        job.ended = True
        if job.opened and job.handle is not None and not job.closed:
            self._close(job.handle, job.lsp, job)  # then _keying_gave_up
        else:
            self._keying_gave_up(job)

    def _keying_gave_up(self, job: _Keying) -> None:
        why = job.failure
        fields = {"event": "qe_fail", "lsp": str(job.lsp), "why": why}
        if job.lsp is None:  # early, RSVP has not asked yet: it will open anew
            self._log("qe early key session failed", warning=True, **fields)
            self._keying_done()
            return
        if job.head:
            if job.service is not None:
                job.service.error = f"ETSI 004 {why}"
                if self._keying_for.get(job.service.tunnel_id) is job:
                    del self._keying_for[job.service.tunnel_id]
            self._log("qe key session failed", warning=True, **fields)
        else:
            self._log("qe join failed", warning=True, **fields)
            assert job.service is not None
            self._finish(job.service, FAILED, f"ETSI 004 {why}", TAIL_JOIN_FAILED)
        self._out.append(E.ToRsvp(RE.QeFailed(job.lsp, why)))
        self._keying_done()

    def _keyed(self, job: _Keying, index: int, key: bytes) -> None:
        self.counters["keys"] += 1
        job.ended = True
        job.key_index, job.key = index, key
        if job.abandoned:
            assert job.handle is not None
            if not job.closed:
                self._close(job.handle, None)
            self._keying_done()
        elif job.lsp is None:
            self._keying_done()  # early: kept until RSVP asks for it (_need_session)
        else:
            self._hand_over(job)
            self._keying_done()

    def _hand_over(self, job: _Keying) -> None:
        """The key is in: the service takes it and RSVP goes on (Path at the head, Resv at
        the tail)."""
        assert job.handle is not None and job.lsp is not None and job.key is not None
        index, key = job.key_index, job.key
        job.key = None
        s = self._head_of(job.lsp) if job.head else job.service
        live = s is not None and (
            s.lsp == job.lsp if job.head else not s.finished and self.tails.get(job.lsp) is s
        )
        if job.signalled and s is not None and self._keying_for.get(s.tunnel_id) is job:
            del self._keying_for[s.tunnel_id]
        if s is not None and live and job.signalled:
            self._take_key(s, index, key)  # Path went out already
            self._log("qe key session open", event="qe_open", service=s.id, lsp=str(job.lsp),
                      key_handle_prefix=job.handle[:4].hex(), key_index=index)  # fmt: skip
            if job.up is not None:
                self._on_up(job.up)  # the Resv came first
            return
        if job.signalled:
            return  # the service went meanwhile: RSVP gave the session back already
        if s is not None and live:
            s.key_handle = job.handle
            self._take_key(s, index, key)
            s.stage("path_out" if job.head else "resv_out", self._now)
            s.state = SIGNALLING
            self._changed(s)
            self._log(
                "qe key session open" if job.head else "qe key session joined",
                event="qe_open" if job.head else "qe_join",
                service=s.id,
                lsp=str(job.lsp),
                key_handle_prefix=job.handle[:4].hex(),
                key_index=index,
            )
        # a service gone meanwhile: the RSVP core answers QeSessionReady with QeClose
        self._out.append(E.ToRsvp(RE.QeSessionReady(job.lsp, job.handle)))

    def _close(self, handle: bytes, lsp: RE.LspKey | None, job: _Keying | None = None) -> None:
        if not self.has_proxy:
            return
        self._call(
            lambda cid: E.EtsiClose(cid, handle), _Call("close", job=job, lsp=lsp, handle=handle)
        )

    def _closed(self, call: _Call, r: E.EtsiReply) -> None:
        prefix = call.handle[:4].hex()
        if r.status is None:
            self.counters["etsi_errors"] += 1
            self._log(
                "QKD_CLOSE failed",
                warning=True,
                event="qe_close_fail",
                key_handle_prefix=prefix,
                why=r.error,
            )
        else:
            self.counters["etsi_close"] += 1
            self._log(
                "qe key session closed",
                event="qe_close",
                lsp=str(call.lsp) if call.lsp else "",
                key_handle_prefix=prefix,
                status=r.status,
            )
        if call.job is not None:
            self._keying_gave_up(call.job)

    # --- RSVP: the LSP's life -------------------------------------------------------

    def _head_of(self, lsp: RE.LspKey) -> Service | None:
        if lsp.ext_tunnel_id != self.router_id:
            return None
        s = self.heads.get(lsp.tunnel_id)
        return s if s is not None and not s.finished else None

    def _service_of(self, lsp: RE.LspKey) -> Service | None:
        s = self.tails.get(lsp)
        if s is not None:
            return s
        h = self.heads.get(lsp.tunnel_id) if lsp.ext_tunnel_id == self.router_id else None
        if h is None:
            return None
        if h.update_route is not None and lsp != h.lsp:
            if h.next_lsp is None:
                h.next_lsp = lsp  # the first action of the LSP a move signals
            return h if h.next_lsp == lsp else None
        if h.lsp is None:
            h.lsp = lsp  # the first action of a new LSP (e.g. a local failure in create)
        return h if h.lsp == lsp else None

    def _on_close(self, a: RE.QeClose) -> None:
        s = self._service_of(a.lsp)
        if s is not None and s.key_handle == a.key_handle:
            if s.lsp != a.lsp:
                return  # a failed move's LSP: the service keeps the session
            if self._may_keep(s):
                s.close_pending = True  # the LspDown that follows decides
                return
            self._stop_refresh(s)
            self._dp_stop(s)
            s.key = None
        elif s is None and self._held(a.key_handle):
            return  # the old LSP of a service that moved keeping its key session
        self._close(a.key_handle, a.lsp)

    def _held(self, handle: bytes) -> bool:
        return any(s.key_handle == handle and s.state in KEYED for s in self._live())

    def _on_up(self, a: RE.LspUp) -> None:
        s = self._service_of(a.lsp) if a.role in ("head", "tail") else None
        if s is None or s.finished:
            return
        if a.role == "head" and s.next_lsp == a.lsp:
            self._moved(s, a)
            return
        waiting = self._keying_for.get(s.tunnel_id) if a.role == "head" else None
        if waiting is not None and waiting.lsp == a.lsp:
            waiting.up = a  # Path went before the head's key: up once it is in
            return
        if s.up_at is not None:  # a tail whose service moved to this LSP: keys go on
            s.state = UP
            s.hold_until = None
            s.prev_lsp = None
            self._changed(s)
            return
        s.state = UP
        s.up_at = self._now
        s.stage("up", self._now)
        if a.role == "head":
            self.counters["up"] += 1
            if a.route:
                s.path = [str(self.router_id), *route_nodes(a.route)]
        self._log(
            "qe service up",
            event="up",
            service=s.id,
            role=a.role,
            lsp=str(a.lsp),
            path=" ".join(s.path),
            setup_ms=round((s.up_at - s.created) * 1000, 3),
        )
        self._start_refresh(s)
        self._changed(s)

    def _on_down(self, a: RE.LspDown) -> None:
        s = self._service_of(a.lsp)
        if s is None:
            for t in self.tails.values():
                if t.prev_lsp == a.lsp:
                    t.prev_lsp = None  # the LSP a move left is gone: no falling back
        if s is None or s.finished:
            return
        if s.role == "tail" and s.prev_lsp is not None and s.lsp == a.lsp:
            self._fall_back(s, a.reason)
            return
        if a.role == "head" and s.update_route is not None and s.lsp != a.lsp:
            self._move_failed(s, a.reason)
            return
        if a.role == "head" and a.code in (LABEL_BUSY, LABEL_TAKEN) and self._may_retry(s):
            # the PCE's explicit label is in use (its TED lags our OSPF re-origination),
            # or a label offered in a Label_Set was taken meanwhile by a concurrent LSP:
            # again without label subobjects, each hop picking from the Label_Set
            s.labels = "local"
            s.key_handle = None
            s.key = None
            self.counters["label_retries"] += 1
            self._log(
                "qe service retry without explicit labels",
                event="retry",
                service=s.id,
                why=a.reason,
                attempt=s.attempts + 1,
            )
            self._signal(s, _without_labels(self._routes[s.tunnel_id]))
            return
        if s.close_pending and self._may_hold(s, a):
            self._hold(s, a.reason)
            return
        if s.close_pending and s.key_handle is not None:
            s.close_pending = False
            self._close(s.key_handle, a.lsp)
        state = DOWN if a.code is None or s.deleted else FAILED
        self._finish(s, state, a.reason, a.code)

    def _may_retry(self, s: Service) -> bool:
        return (
            self.retry_busy_label
            and s.attempts < LABEL_ATTEMPTS
            and not s.deleted
            and s.up_at is None
            and s.tunnel_id in self._routes
        )

    # --- moving a service: rerouting after a failure, make-before-break ------------

    def _may_keep(self, s: Service) -> bool:
        """Whether the service may keep its key session when its LSP goes: a tail (it
        cannot tell a failure upstream from the head's own PathTear) or a delegated head,
        once up."""
        return (
            self.reroute_hold > 0
            and s.state in KEYED
            and not s.deleted
            and (s.role == "tail" or s.delegated)
        )

    def _may_hold(self, s: Service, a: RE.LspDown) -> bool:
        """A kept session is held unless the LSP ended on purpose (the head's graceful
        deletion) or for a QE reason."""
        qe_error = a.code is not None and a.code[0] == ErrorCode.QE_ERROR
        return self._may_keep(s) and not qe_error and a.reason != "deleted"

    def _hold(self, s: Service, why: str) -> None:
        """The LSP is gone, the key session stays for ``reroute_hold`` seconds: the head
        waits for its PCE's new path (PCUpd), the tail for a Path of the same tunnel with
        the same key handle."""
        s.close_pending = False
        s.state = REROUTING
        s.hold_until = self._now + self.reroute_hold
        self._schedule(s)
        if s.role == "head":
            s.lsp = None
        self.counters["rerouting"] += 1
        self._log(
            "qe service rerouting: key session held",
            warning=True,
            event="rerouting",
            service=s.id,
            role=s.role,
            why=why,
            hold_s=self.reroute_hold,
        )
        self._changed(s)

    def _hold_expired(self, s: Service) -> None:
        s.hold_until = None
        why = f"no new LSP within {self.reroute_hold:g} s"
        if s.update_route is not None:
            self._out.append(E.DeleteLsp(s.tunnel_id))  # RSVP gives the session back
        elif s.key_handle is not None:
            self._close(s.key_handle, s.lsp)
        self._finish(s, FAILED if s.role == "head" else DOWN, why)

    def _update(self, ev: E.Update) -> None:
        """A new path from the PCE (see :class:`~gmpls.qe_service.events.Update`): the
        key handle goes into both QE subobjects, so neither end opens a new session."""
        s = self.heads.get(ev.tunnel_id)
        if s is None or s.finished:
            raise QeServiceError(f"no QE service heads tunnel {ev.tunnel_id}")
        if not s.delegated:
            raise QeServiceError(f"service {s.id} is not delegated")
        if s.state not in KEYED or s.key_handle is None or s.update_route is not None:
            why = "moving already" if s.update_route is not None else s.state
            raise QeServiceError(f"service {s.id} cannot move now ({why})")
        ends = _qe_ends(ev.route)
        if ends != [(self.router_id, s.params), (s.peer, s.params)]:
            raise QeServiceError(f"the new path changes the ends or QE parameters of {s.id}")
        handle = s.key_handle
        route = tuple(
            replace(x, session_id=handle) if isinstance(x, ero.QeSubobject) else x for x in ev.route
        )
        s.update_route = route
        s.next_lsp = None
        s.move_error = ""
        self._log(
            "qe service move",
            event="move",
            service=s.id,
            path=" ".join(route_nodes(route)),
            make_before_break=s.lsp is not None,
        )
        name = f"qe-{self.name}-{s.id}"
        bidir = self._claims_port(s)
        self._out.append(E.CreateLsp(s.tunnel_id, route, s.bandwidth_bps, name, True, bidir))

    def _moved(self, s: Service, a: RE.LspUp) -> None:
        """The new LSP of a move is up: the old one (if any) goes, the key stays."""
        old = s.lsp
        assert s.update_route is not None
        self._routes[s.tunnel_id] = s.update_route
        s.lsp, s.next_lsp, s.update_route = a.lsp, None, None
        s.state = UP
        s.hold_until = None
        s.moves += 1
        self.counters["moved"] += 1
        if a.route:
            s.path = [str(self.router_id), *route_nodes(a.route)]
        if old is not None:
            self._out.append(E.DataplaneStop(old, s.id))
            self._out.append(E.DeleteLsp(s.tunnel_id, lsp_id=old.lsp_id))
        self._dp_key(s)
        self._log("qe service moved", event="moved", service=s.id, lsp=str(a.lsp),
                  path=" ".join(s.path))  # fmt: skip
        self._changed(s)

    def _move_failed(self, s: Service, why: str) -> None:
        """The new LSP failed: the service stays on its old LSP (or keeps rerouting)."""
        s.update_route = None
        s.next_lsp = None
        s.move_error = why
        self.counters["moves_failed"] += 1
        self._log("qe service move failed", warning=True, event="move_fail", service=s.id,
                  why=why)  # fmt: skip
        self._changed(s)

    def _reattach(self, s: Service, ev: E.TailJoin) -> None:
        """Tail: a Path of the same tunnel with the service's key handle (the head moved
        it): the service follows the new LSP, its key session and key unchanged."""
        lsp = ev.join.lsp
        if s.lsp is not None and self.tails.get(s.lsp) is s:
            del self.tails[s.lsp]
        old = self.tails.get(lsp)
        if old is not None and not old.finished:
            self._finish(old, DOWN, "replaced by a new Path")
        s.prev_lsp = s.lsp if s.state == UP else None
        if s.lsp is not None:
            self._out.append(E.DataplaneStop(s.lsp, s.id))
        s.lsp = lsp
        self.tails[lsp] = s
        self._schedule(s)
        self._dp_key(s)
        s.path = [*reversed(route_nodes(ev.recorded_route)), str(self.router_id)]
        s.moves += 1
        self.counters["moved"] += 1
        self._log("qe service moved", event="moved", service=s.id, role="tail", lsp=str(lsp))
        self._changed(s)
        assert s.key_handle is not None
        self._out.append(E.ToRsvp(RE.QeSessionReady(lsp, s.key_handle)))

    def _fall_back(self, s: Service, why: str) -> None:
        """Tail: the new LSP of a move failed before it was up; the old one still is."""
        assert s.prev_lsp is not None and s.lsp is not None
        if self.tails.get(s.lsp) is s:
            del self.tails[s.lsp]
        s.lsp, s.prev_lsp = s.prev_lsp, None
        self.tails[s.lsp] = s
        self._schedule(s)
        s.close_pending = False
        self._log("qe service move failed", warning=True, event="move_fail", service=s.id,
                  role="tail", why=why)  # fmt: skip
        self._changed(s)

    def _moving_tail(self, join: RE.QeJoin) -> Service | None:
        """The tail service a Path of the same tunnel and key handle continues."""
        new = join.lsp
        for s in self.tails.values():
            old = s.lsp
            if (
                old is not None
                and old != new
                and s.state in KEYED
                and s.key_handle == join.key_handle
                and (old.tunnel_end, old.tunnel_id, old.ext_tunnel_id, old.sender)
                == (new.tunnel_end, new.tunnel_id, new.ext_tunnel_id, new.sender)
            ):
                return s
        return None

    def _finish(
        self, s: Service, state: str, reason: str, code: tuple[int, int] | None = None
    ) -> None:
        if s.finished:
            return
        early = self._early.pop(s.tunnel_id, None) if s.role == "head" else None
        if s.role == "head":
            self._keying_for.pop(s.tunnel_id, None)
        if early is not None and early.service is s:
            self._abandon(early)
        self._stop_refresh(s)
        s.state = state
        if state == FAILED:
            self.counters["failed"] += 1
            # the first cause is kept; a later reason that only repeats it (the RSVP
            # teardown carrying the same ETSI 004 failure) is not added a second time
            known = s.error.removeprefix("ETSI 004 ") if s.error else ""
            if not s.error or s.error in reason:
                s.error = reason
            elif known not in reason:
                s.error = f"{s.error}; {reason}"
            s.code = code or s.code
        elif not s.error:
            s.error = "" if reason in ("deleted", "PathTear") else reason
        self._dp_stop(s)
        s.key = None
        if s.role == "head":
            self._routes.pop(s.tunnel_id, None)
            if self.heads.get(s.tunnel_id) is s:
                del self.heads[s.tunnel_id]
        elif s.lsp is not None and self.tails.get(s.lsp) is s:
            del self.tails[s.lsp]
        if len(self.finished) == self.finished.maxlen:  # the oldest is forgotten
            old = self.finished[0]
            if self._by_id.get(old.id) is old:
                del self._by_id[old.id]
        self.finished.append(s)
        self._log(
            "qe service finished",
            event=state,
            service=s.id,
            role=s.role,
            reason=reason,
            code=str(code) if code else "",
        )
        self._changed(s)

    def _link_changed(self, a: RE.LinkResources) -> None:
        """Note a TE link's free lambdas and hand them to OSPF, coalesced: the last value
        within ``link_batch`` seconds is re-advertised once (OSPF re-originates a TE LSA
        at most every MinLSInterval anyway), so signalling never waits on an LSA."""
        self.free[a.local_if] = frozenset(a.free_lambdas)
        due = self._links_due.get(a.local_if, (self._now + self.link_batch, ()))[0]
        self._links_due[a.local_if] = (due, a.free_lambdas)

    # --- key refresh (no signalling) ------------------------------------------------

    def _start_refresh(self, s: Service) -> None:
        p = s.params
        s.refresh_anchor = self._now
        s.target_index = s.key_index or 0
        if p.refresh_type == RefreshType.TIME_MS and p.refresh_value > 0:
            self._arm_refresh(s)
        elif p.refresh_type == RefreshType.VOLUME_MIB and s.rate_bps and s.rate_at is None:
            s.rate_at = self._now + RATE_TICK
            self._schedule(s)

    def _arm_refresh(self, s: Service) -> None:
        period = s.params.refresh_value / 1000.0
        s.refresh_at = s.refresh_anchor + (s.target_index + 1) * period
        self._schedule(s)

    def _refresh_due(self, s: Service) -> None:
        s.refresh_at = None
        if s.state not in KEYED:
            return
        s.target_index += 1
        self._arm_refresh(s)
        self._catch_up(s)

    def _stop_refresh(self, s: Service) -> None:
        s.refresh_at = None
        s.rate_at = None

    def _rate_tick(self, s: Service) -> None:
        assert s.rate_at is not None
        if s.state not in KEYED or s.rate_bps <= 0:
            s.rate_at = None
            return
        s.rate_at += RATE_TICK
        s.bytes_counted += int(s.rate_bps / 8 * RATE_TICK)
        self._volume_check(s)

    def _volume_check(self, s: Service) -> None:
        p = s.params
        if p.refresh_type != RefreshType.VOLUME_MIB or p.refresh_value <= 0 or s.state not in KEYED:
            return
        target = s.bytes_counted // (p.refresh_value * MIB)
        if target > s.target_index:
            s.target_index = int(target)
            self._catch_up(s)

    def _catch_up(self, s: Service) -> None:
        """Fetch keys under the service's handle until it holds index ``target_index``,
        one GET_KEY at a time (a catch-up asked for meanwhile runs after it)."""
        if s.fetching:
            s.fetch_again = True
            return
        s.fetch_again = False
        handle = s.key_handle
        if (
            s.state in KEYED
            and handle is not None
            and self.has_proxy
            and (s.key_index is None or s.key_index < s.target_index)
        ):
            s.fetching = True
            want = 0 if s.key_index is None else s.key_index + 1
            call = _Call("refresh", service=s, index=want)
            self._call(lambda cid: E.EtsiGetKey(cid, handle, want), call)

    def _take_key(self, s: Service, index: int, key: bytes) -> None:
        s.take_key(index, key)
        self._dp_key(s)

    def _dp_key(self, s: Service) -> None:
        """Hand the service's current key to this node's data plane."""
        if s.lsp is not None and s.key is not None and s.key_index is not None:
            alg = s.params.algorithm
            self._out.append(E.DataplaneKey(s.lsp, s.id, s.key_index, alg, s.key))

    def _dp_stop(self, s: Service) -> None:
        if s.lsp is not None and s.key is not None:
            self._out.append(E.DataplaneStop(s.lsp, s.id))

    def _refreshed(self, s: Service, r: E.EtsiReply, want: int) -> None:
        s.fetching = False
        if r.status != ETSI_OK or r.key_index != want:
            s.refresh_failures += 1
            if r.status == ETSI_OK:  # a key, but not the one asked for: never taken
                self.counters["etsi_errors"] += 1
                why = index_failure(r, want)
            else:
                why = etsi_failure("QKD_GET_KEY", r)
            no_key = r.status in NO_KEY
            if no_key:  # the key managers ran out of key (or did not answer)
                s.refresh_no_key += 1
                self.counters["refresh_no_key"] += 1
            s.refresh_error = why
            self._log(
                "qe key refresh failed",
                warning=True,
                event="refresh_fail",
                service=s.id,
                why=why,
                no_key=no_key,
                key_index=want,
            )
            if s.fetch_again:  # made up now; otherwise at the next refresh
                self._catch_up(s)
            return
        if s.state not in KEYED:
            return
        self._take_key(s, r.key_index, r.key)
        s.refresh_error = ""
        s.refresh_count += 1
        self.counters["refreshes"] += 1
        self._log("qe key refreshed", event="refresh", service=s.id, key_index=r.key_index)
        self._changed(s)
        self._catch_up(s)


def _bidirectional(p: QeParams) -> bool:
    """Layer-1 and layer-2 services carry the access port's frames both ways (asked for by
    a head with a data plane; without one no frame flows, one lambda per link is enough)."""
    return p.enc_layer in (EncLayer.OPTICAL, EncLayer.ETHERNET)


def _ignore(event: object) -> None:
    """Events the QE service has nothing to do with (neighbours: RSVP tears the LSPs
    through them down and says so with LspDown)."""


def _relay_for_open(relay: Sequence[IPv4Address]) -> tuple[IPv4Address, ...]:
    """The relay path as QKD_OPEN carries it: two sites or more (head and tail); one site
    (both ends at one site) or none: empty, the key manager decides."""
    return tuple(relay) if len(relay) >= 2 else ()


def _qe_ends(route: Sequence[ero.Subobject]) -> list[tuple[IPv4Address, QeParams]]:
    """(node, parameters) of each QE subobject of ``route``: the node named right
    before it (the QE source, then the QE destination in the Fig. 9 ERO)."""
    out: list[tuple[IPv4Address, QeParams]] = []
    node: IPv4Address | None = None
    for x in route:
        if isinstance(x, ero.Unnumbered):
            node = x.router_id
        elif isinstance(x, ero.Ipv4Prefix):
            node = x.address
        elif isinstance(x, ero.QeSubobject) and node is not None:
            out.append((node, x.params()))
    return out


def _without_labels(route: Sequence[ero.Subobject]) -> tuple[ero.Subobject, ...]:
    return tuple(x for x in route if not isinstance(x, ero.Label))
