"""The node agent's QE service: the sans-I/O :class:`gmpls.qe_service.core.QeServiceCore`
on asyncio (the workflow itself is there and in docs/qe-service.md).

:class:`QeService` is a thin shell. It feeds the core one event at a time and carries out
what comes back:

* :class:`~gmpls.qe_service.events.RequestPath` → a task awaiting the **PCC**
  (:class:`daemonkit.pcep.PcepClient`, one PCEP session to the PCE, kept up with backoff),
  whose answer is fed back as ``PathReply`` / ``PcepFailed``;
* the ETSI 004 calls → a task awaiting the **ETSI GS QKD 004 client**
  (:class:`daemonkit.etsi004.Etsi004Client`) toward the node's key proxy, answered with
  ``EtsiReply`` (an exception becomes a reply without status);
* ``CreateLsp`` / ``DeleteLsp`` / ``ToRsvp`` → the **RSVP-TE shell**
  (:class:`node_agent.rsvp.RsvpAgent`), whose actions come back through
  :meth:`QeService.on_rsvp_action` (its ``on_action``) as events;
* ``AdvertiseLink`` → OSPF (re-originate the TE LSA), ``ServiceChanged`` → whoever
  waits (``qe-service wait``) and, for a service this node heads, a state report to a
  stateful PCE (RFC 8231 PCRpt through the PCC: PLSP-ID = tunnel ID, the route signalled,
  going-up while signalling, up, removed when failed or down), ``Log`` → one log line
  with the node in front;

and keeps one timer armed at ``core.next_timer()``. Events the actions cause (RSVP's
answers arrive synchronously) are queued and fed in order, never into the core while it
is handling another. The CLI commands are in :mod:`node_agent.qe_cli`.

The shell's I/O seams are :meth:`QeService.now`, :meth:`~QeService.arm_timer`,
:meth:`~QeService.request_path`, :meth:`~QeService.call_etsi` and
:meth:`~QeService.wait`: tests/support/memlab.py replaces those five to run this same shell,
and the real PCE computation, RSVP, proxy and IDQ3P cores, on one virtual clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import replace
from ipaddress import IPv4Address
from typing import Any, Protocol

from daemonkit.daemon import cancel
from daemonkit.pcep import LspStatus
from daemonkit.timer import CoreTimer
from gmpls import ero, qe
from gmpls.dataplane.core import COUNTERS as DATAPLANE_COUNTERS
from gmpls.errors import DecodeError
from gmpls.pcep.constants import (
    ERR_INITIATE_INTERNAL,
    ERR_INITIATE_UNACCEPTABLE,
    ERR_UPDATE_UNKNOWN_PLSP,
    LspState,
)
from gmpls.pcep.messages import LspEntry
from gmpls.pcep.objects import EndPointsIpv4
from gmpls.pcep.qemetrics import qe_params_from_metrics
from gmpls.qe_service import events as E
from gmpls.qe_service.core import QeServiceCore
from gmpls.qe_service.model import (
    FINISHED,
    REROUTING,
    SIGNALLING,
    UP,
    QeServiceError,
    Service,
)
from gmpls.rsvp import events as RE
from gmpls.rsvp.core import RsvpCore
from gmpls.topology import Topology
from node_agent import qe_cli

log = logging.getLogger("node_agent.qe_service")

#: key sessions a node agent opens or joins at once (the others queue in the core): each
#: is three datagrams to the proxy, so a burst stays within a UDP receive buffer
MAX_KEYING = 64
#: the actions that carry a setup or a teardown to a peer (the PCE, the key manager, the
#: next RSVP hop), carried out at once; the others wait for the end of the feed
#: (:meth:`QeService.feed`)
NOW = (
    E.RequestPath,
    E.EtsiOpen,
    E.EtsiConnect,
    E.EtsiGetKey,
    E.EtsiClose,
    E.CreateLsp,
    E.DeleteLsp,
    E.ToRsvp,
)


# --- what the shell talks to (real classes fit; tests may give in-memory ones) ---------


class RsvpLike(Protocol):
    core: RsvpCore

    def feed(self, event: RE.Event) -> list[RE.Action]: ...
    def status(self) -> dict[str, object]: ...


class ReplyLike(Protocol):
    @property
    def ok(self) -> bool: ...
    @property
    def ero(self) -> tuple[ero.Subobject, ...]: ...
    @property
    def reason(self) -> str: ...
    @property
    def relay(self) -> tuple[IPv4Address, ...]: ...


class PccLike(Protocol):
    """What the shell asks of the PCC (:class:`daemonkit.pcep.PcepClient`)."""

    @property
    def is_up(self) -> bool: ...
    async def request(
        self,
        src: IPv4Address,
        dst: IPv4Address,
        qe_params: qe.QeParams,
        bandwidth: float,
        *,
        timeout: float,
    ) -> ReplyLike: ...


class EtsiLike(Protocol):
    """What the shell asks of the ETSI 004 client (:class:`daemonkit.etsi004.Etsi004Client`)."""

    async def open(
        self,
        destination: IPv4Address,
        key_handle: bytes | None,
        key_length: int,
        *,
        relay: tuple[IPv4Address, ...] = (),
    ) -> tuple[Any, bytes]: ...
    async def connect(self, key_handle: bytes) -> Any: ...
    async def get_key(
        self, key_handle: bytes, expect_index: int | None = None
    ) -> tuple[Any, int, bytes]: ...
    async def close(self, key_handle: bytes) -> Any: ...


class DataplaneLike(Protocol):
    """What the shell hands the keys to (:class:`node_agent.dataplane.Dataplane`)."""

    def on_key(self, a: E.DataplaneKey) -> None: ...
    def on_stop(self, a: E.DataplaneStop) -> None: ...
    def status(self, service_id: str) -> dict[str, Any]: ...
    def attach(self, cc: Any) -> None: ...
    def detach(self, lsp: Any) -> None: ...


class QeService:
    """The QE services of one node: the core, and the I/O it asks for."""

    def __init__(
        self,
        *,
        name: str,
        router_id: IPv4Address,
        rsvp: RsvpLike,
        pcc: PccLike | None,
        etsi: EtsiLike | None,
        link_resources: Callable[[int, tuple[int, ...]], None] | None = None,
        **core_options: Any,
    ) -> None:
        self.name = name
        self.router_id = router_id
        self.rsvp = rsvp
        self.pcc = pcc
        self.etsi = etsi
        self.link_resources = link_resources
        #: the node's data plane (node_agent.dataplane.Dataplane), None: no access port
        self.dataplane: DataplaneLike | None = None
        self.core = QeServiceCore(
            name=name,
            router_id=router_id,
            free_lambdas=rsvp.core.free,
            has_pce=pcc is not None,
            has_proxy=etsi is not None,
            wall_offset=time.time() - time.monotonic(),
            **core_options,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: deque[E.Event] = deque()
        #: actions held until the events of the feed running are all handled (:data:`NOW`)
        self._later: deque[E.Action] = deque()
        self._feeding = False
        self._last = 0.0
        self._timer = CoreTimer(self._fire)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        #: the route signalled for each tunnel this node heads (what it reports to the PCE)
        self._routes: dict[int, tuple[ero.Subobject, ...]] = {}
        #: services a PCE initiated (RFC 8281): service ID -> the PCInitiate's SRP-ID
        self._initiated: dict[str, int] = {}
        #: the SRP-ID of the PCUpd a service is moving for (its next report names it)
        self._updating: dict[str, int] = {}
        #: services gone whose LSP RSVP still tears down (graceful deletion): tunnel ID ->
        #: (service ID, the GOING-DOWN report); reported removed when RSVP holds nothing of
        #: the tunnel, from this report: by then the core may have forgotten the service
        #: (it keeps the last KEEP_FINISHED, and a burst of deletions finishes more)
        self._tearing: dict[int, tuple[str, LspStatus]] = {}
        self._do: dict[type, Callable[[Any], object]] = {
            E.RequestPath: self.request_path,
            E.EtsiOpen: self.call_etsi,
            E.EtsiConnect: self.call_etsi,
            E.EtsiGetKey: self.call_etsi,
            E.EtsiClose: self.call_etsi,
            E.CreateLsp: self._create_lsp,
            E.DeleteLsp: lambda a: self.rsvp.feed(RE.DeleteLsp(a.tunnel_id, a.graceful, a.lsp_id)),
            E.ToRsvp: lambda a: self.rsvp.feed(a.event),
            E.AdvertiseLink: self._advertise,
            E.DataplaneKey: self._dataplane_key,
            E.DataplaneStop: self._dataplane_stop,
            E.ServiceChanged: self._wake,
            E.Log: self._log,
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
                stateful=True,
                instantiation=True,
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
            site_names={topo.site_id(km): km for km in topo.sites},
            # the head opens its key session while the PCReq is out, with a handle of its
            # own, and both ends send OPEN, CONNECT and GET_KEY together; bursts are not
            # held behind a small window (docs/qe-service.md#setup-stages)
            pipeline_keying=True,
            random_bytes=secrets.token_bytes,
            max_keying=MAX_KEYING,
        )
        agent.on_action = svc.on_rsvp_action
        if pcc is not None:
            pcc.on_initiate = svc.on_initiate
            pcc.on_update = svc.on_update
        return svc

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the RSVP shell (when it has a ``start``), the PCC and the ETSI client."""
        self._loop = asyncio.get_running_loop()
        self._timer.start(self._loop)
        for part in (self.rsvp, self.pcc, self.etsi):
            start = getattr(part, "start", None)
            if start is not None:
                await start()
        self.arm_timer()
        log.info("qe service started", extra={"node": self.name, "event": "qe_start"})

    async def stop(self) -> None:
        """Tear down the services this node heads (PathTear, QKD_CLOSE), close the key
        sessions of those it ends (its neighbours learn of its going by Hello), then stop."""
        self.feed(E.Shutdown())
        pending = [t for t in self._tasks if not t.done()]
        if pending:  # let the QKD_CLOSEs go out (bounded)
            await asyncio.wait(pending, timeout=2.0)
        self._timer.cancel()
        await cancel(self._tasks)
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
        log.info(
            "qe service stopped",
            extra={"node": self.name, "event": "qe_stop", "counters": dict(self.core.counters)},
        )

    # --- what the CLI uses (node_agent.qe_cli.QeNode) -----------------------------------

    def now(self) -> float:
        return self._loop.time() if self._loop is not None else time.monotonic()

    @property
    def pcep_up(self) -> bool:
        return self.pcc is not None and self.pcc.is_up

    def rsvp_status(self) -> dict[str, Any]:
        return self.rsvp.status()

    def dataplane_json(self, s: Service) -> dict[str, Any]:
        """The data-plane fields of ``show qe-service json`` (docs/dataplane.md): the
        counters, ``key_index`` (the index the data plane sends under, once it does) and
        ``dataplane`` (the ports in use, or why none)."""
        if self.dataplane is None:
            out: dict[str, Any] = dict.fromkeys(DATAPLANE_COUNTERS, 0)
            out["dataplane"] = "no access port"
            return out
        return self.dataplane.status(s.id)

    def feed(self, event: E.Event, now: float | None = None) -> list[E.Action]:
        """Hand the core ``event`` and carry out its actions, then the events those bring
        back, in order. The actions of :data:`NOW` (a PCReq, an ETSI 004 call, a Path or
        a Resv) are carried out at once; the others (reports to the PCE and the CLI's
        waiters, log lines, TE LSAs, the data plane's keys) once every event of this feed
        is handled, in order, so that none of them delays a setup's next message (all
        before the event loop runs again: nothing reads a socket in between). Returns the
        actions of ``event``; a CLI request the core refuses raises
        :class:`gmpls.qe_service.model.QeServiceError` (nothing changed)."""
        if self._feeding:
            self._queue.append(event)
            return []
        self._feeding = True
        try:
            actions = self.core.handle(event, self._clock(now))
            self._carry_out(actions)
            while self._queue or self._later:
                if not self._queue:
                    self._do_one(self._later.popleft())
                    continue
                ev = self._queue.popleft()
                try:
                    more = self.core.handle(ev, self._clock())
                except Exception:  # a bug in the core must not take the node down
                    log.exception("qe core failed", extra={"node": self.name, "qe_event": ev})
                    continue
                self._carry_out(more)
        finally:
            self._later.clear()  # only left by an exception out of the core's first event
            self._feeding = False
            self.arm_timer()
        return actions

    def _clock(self, at_least: float | None = None) -> float:
        """The time to tell the core: never earlier than what it was told last."""
        self._last = max(self._last, self.now(), at_least or 0.0)
        return self._last

    def on_rsvp_action(self, a: RE.Action) -> None:
        """The RSVP shell's ``on_action``: QE hooks, LSP state, TE link resources; a
        head's or tail's cross-connect goes to the data plane (docs/dataplane.md)."""
        dp = self.dataplane
        if dp is not None and isinstance(a, RE.CrossConnect):
            dp.attach(a)
        elif dp is not None and isinstance(a, RE.CrossConnectRemoved):
            dp.detach(a.lsp)
        ev = E.rsvp_event(self.rsvp.core, a)
        if ev is not None:
            self.feed(ev)
        tid = a.lsp.tunnel_id if isinstance(a, RE.LspDown) else None
        if tid in self._tearing and not self.rsvp.core.tunnel_in_use(tid):
            self._removed(*self._tearing.pop(tid))

    async def wait(self, sid: str, timeout: float = 30.0) -> Service:
        """Until service ``sid`` is up or has failed (or ``timeout`` seconds pass)."""
        s = self.core.find(sid)
        loop = asyncio.get_running_loop()
        deadline = self.now() + timeout
        while s.state not in (UP, *FINISHED):
            left = deadline - self.now()
            if left <= 0:
                break
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.setdefault(sid, []).append(fut)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fut, left)
        return s

    # --- carrying out the core's actions ------------------------------------------------

    def _carry_out(self, actions: list[E.Action]) -> None:
        for a in actions:
            if isinstance(a, NOW):
                self._do_one(a)
            else:
                self._later.append(a)

    def _do_one(self, a: E.Action) -> None:
        try:
            self._do[type(a)](a)
        except Exception:
            log.exception("qe action failed", extra={"node": self.name, "action": type(a).__name__})

    def _create_lsp(self, a: E.CreateLsp) -> None:
        if not a.make_before_break:
            self._routes[a.tunnel_id] = a.route
        try:
            self.rsvp.feed(
                RE.CreateLsp(
                    a.tunnel_id,
                    a.route,
                    None,
                    a.bandwidth_bps,
                    a.name,
                    make_before_break=a.make_before_break,
                    bidirectional=a.bidirectional,
                )
            )
        except ValueError as e:
            self._queue.append(E.CreateLspFailed(a.tunnel_id, str(e)))

    def _dataplane_key(self, a: E.DataplaneKey) -> None:
        if self.dataplane is not None:
            self.dataplane.on_key(a)

    def _dataplane_stop(self, a: E.DataplaneStop) -> None:
        if self.dataplane is not None:
            self.dataplane.on_stop(a)

    def _advertise(self, a: E.AdvertiseLink) -> None:
        if self.link_resources is not None:
            self.link_resources(a.local_if, a.free_lambdas)

    def _wake(self, a: E.ServiceChanged) -> None:
        for fut in self._waiters.pop(a.service_id, []):
            if not fut.done():
                fut.set_result(None)
        self._report(a.service_id)

    def on_initiate(self, entry: LspEntry) -> tuple[int, int] | None:
        """A PCInitiate entry (RFC 8281 §5.3): a QE service created as ``qe-service create``
        would (to the END-POINTS destination, with the QE METRICs' parameters; the path is
        asked of the PCE as for any service), or released (SRP R flag: the LSP named by its
        PLSP-ID, which must be one a PCE initiated). None when taken, else the PCErr code."""
        srp = entry.srp
        assert srp is not None  # the decoder requires it (6, 10)
        if srp.remove:
            s = self.core.heads.get(entry.lsp.plsp_id)
            if s is None or s.id not in self._initiated:
                return ERR_UPDATE_UNKNOWN_PLSP
            self.feed(E.Delete(s.id))
            return None
        ep = entry.endpoints
        try:
            params = qe_params_from_metrics(entry.attributes.metrics)
        except DecodeError:
            params = None
        if not isinstance(ep, EndPointsIpv4) or params is None:
            return ERR_INITIATE_UNACCEPTABLE
        bw = entry.attributes.bandwidth.bandwidth * 8 if entry.attributes.bandwidth else 0.0
        try:
            sid = qe_cli.created(self.feed(E.Create(ep.destination, params, bw, delegate=True)))
        except QeServiceError:
            return ERR_INITIATE_INTERNAL
        self._initiated[sid] = srp.srp_id
        return None

    def on_update(self, entry: LspEntry) -> tuple[int, int] | None:
        """A PCUpd entry of a delegated LSP (RFC 8231 §6.2; the PCC checked the PLSP-ID
        and the delegation): the service moves to the ERO make-before-break
        (:class:`gmpls.qe_service.events.Update`). One the core refuses is reported with
        LSP-ERROR-CODE 4 (unacceptable parameters) and the reason, under the update's
        SRP-ID, the LSP unchanged. Returns None (a PCErr only for what the PCC refuses)."""
        assert entry.srp is not None  # the decoder requires it (6, 10)
        s = self.core.heads.get(entry.lsp.plsp_id)
        if s is None:
            return ERR_UPDATE_UNKNOWN_PLSP
        route = entry.ero.subobjects if entry.ero is not None else ()
        self._updating[s.id] = entry.srp.srp_id
        try:
            self.feed(E.Update(s.tunnel_id, tuple(route)))
        except QeServiceError as e:
            self._report(s.id, error=(LSP_ERROR_UNACCEPTABLE, str(e)))
        return None

    def _report(self, sid: str, error: tuple[int, str] | None = None) -> None:
        """Report the LSP of a service this node heads to a stateful PCE (a PCC with a
        ``report`` method; a stateless session drops it, a later one synchronises it)."""
        report = getattr(self.pcc, "report", None)
        try:
            s = self.core.find(sid)
        except QeServiceError:
            return
        route = self.core.route_of(s.tunnel_id) or self._routes.get(s.tunnel_id)
        gone = s.deleted or s.state in FINISHED
        if route is None and gone and s.id in self._initiated:
            route = ()  # an initiated service that failed before signalling: say so
        if report is None or s.role != "head" or route is None:
            return
        state = _LSP_STATES.get(s.state)
        if state is None and not gone:
            return
        # the key session IDs stay between the ends: the PCE gets the QE parameters only
        route = tuple(
            replace(x, session_id=qe.ZERO_SESSION_ID) if isinstance(x, ero.QeSubobject) else x
            for x in route
        )
        srp_id = self._initiated.get(s.id)
        reply_to = srp_id or 0
        if s.id in self._updating and (s.update_route is None or error is not None):
            reply_to = self._updating.pop(s.id)  # the result of the move (RFC 8231 §6.1)
            if error is None and s.move_error:
                error = (LSP_ERROR_SIGNALLING, f"move failed: {s.move_error}")
        if error is None and s.state in FINISHED and s.error:
            error = (LSP_ERROR_SIGNALLING if s.code else LSP_ERROR_UNKNOWN, s.error)
        code, text = error or (0, "")
        tearing = gone and self.rsvp.core.tunnel_in_use(s.tunnel_id)
        if tearing:
            # RSVP still holds the LSP's lambdas (a graceful deletion's round trip): the
            # PCE keeps them in use until the report that removes it (RFC 8231 GOING-DOWN)
            state = LspState.GOING_DOWN
        lsp = LspStatus(s.tunnel_id, f"qe-{self.name}-{s.id}", self.router_id, s.peer,
                        s.tunnel_id, state or LspState.DOWN, route, reply_to,
                        srp_id is not None, s.relay, s.delegated, code, text,
                        s.lsp.lsp_id if s.lsp else 1)  # fmt: skip
        if tearing:
            self._tearing[s.tunnel_id] = (s.id, lsp)
            report(lsp)
        elif gone:
            self._removed(s.id, lsp)
        else:
            report(lsp)

    def _removed(self, sid: str, lsp: LspStatus) -> None:
        """Report ``lsp`` (of service ``sid``) removed and forget what was kept for it."""
        report = getattr(self.pcc, "report", None)
        if report is not None:
            report(replace(lsp, state=LspState.DOWN), remove=True)
        self._routes.pop(lsp.tunnel_id, None)
        self._initiated.pop(sid, None)
        self._updating.pop(sid, None)

    def _log(self, a: E.Log) -> None:
        level = logging.WARNING if a.warning else logging.INFO
        log.log(level, a.message, extra={"node": self.name, **a.fields})

    def request_path(self, a: E.RequestPath) -> None:
        pcc = self.pcc
        assert pcc is not None

        async def ask() -> None:
            try:
                reply = await pcc.request(a.src, a.dst, a.params, a.bandwidth, timeout=a.timeout)
            except Exception as e:
                self.feed(E.PcepFailed(a.cid, str(e)))
                return
            relay = tuple(reply.relay)
            self.feed(E.PathReply(a.cid, reply.ok, tuple(reply.ero), reply.reason, relay))

        self._spawn(ask(), f"pcreq {a.cid}")

    def call_etsi(self, a: E.EtsiCall) -> None:
        async def call() -> None:
            try:
                reply = await _etsi(self.etsi, a)
            except (TimeoutError, OSError) as e:
                reply = E.EtsiReply(a.cid, None, error=f"proxy unreachable ({e})")
            except Exception as e:
                reply = E.EtsiReply(a.cid, None, error=str(e) or type(e).__name__)
            self.feed(reply)

        self._spawn(call(), f"{type(a).__name__} {a.cid}")

    def _spawn(self, coro: Awaitable[Any], what: str) -> None:
        async def run() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("qe task failed", extra={"node": self.name, "task": what})

        t = asyncio.ensure_future(run())
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # --- the one timer ------------------------------------------------------------------

    def arm_timer(self) -> None:
        self._timer.arm(self.core.next_timer())

    def _fire(self, at: float) -> None:
        # asyncio may run a timer a clock-resolution early: never tell the core less
        self.feed(E.Tick(), max(self.now(), at))


async def _etsi(etsi: EtsiLike | None, a: E.EtsiCall) -> E.EtsiReply:
    """Carry out one ETSI 004 call; its answer as the core's event."""
    assert etsi is not None
    if isinstance(a, E.EtsiOpen):
        st, handle = await etsi.open(a.destination, a.key_handle, a.key_length, relay=a.relay)
        return E.EtsiReply(a.cid, int(st), key_handle=bytes(handle))
    if isinstance(a, E.EtsiConnect):
        return E.EtsiReply(a.cid, int(await etsi.connect(a.key_handle)))
    if isinstance(a, E.EtsiGetKey):
        st, idx, key = await etsi.get_key(a.key_handle, a.index)
        return E.EtsiReply(a.cid, int(st), key_index=int(idx), key=bytes(key))
    return E.EtsiReply(a.cid, int(await etsi.close(a.key_handle)))


# --- plugging into the node agent daemon -------------------------------------------------


def setup(daemon: Any) -> QeService:
    """Wire RSVP-TE and the QE service into a :class:`node_agent.daemon.NodeDaemon`
    (unless it runs ``--ospf-only``):
    the RSVP shell and the QE service become a component, the CLI gets the QE and RSVP
    commands, and every ``LinkResources`` action of the RSVP core re-originates the TE
    LSA of that link with its free wavelengths (so the PCE's TED shows what is in use)."""

    def link_resources(local_if: int, free: tuple[int, ...]) -> None:
        daemon.ospf.set_link_resources(local_if, available_lambdas=free)

    svc = QeService.from_topology(daemon.topo, daemon.host, link_resources=link_resources)
    access_if = getattr(daemon, "access_if", None)
    if access_if:
        from node_agent.dataplane import Dataplane

        def traffic(sid: str, nbytes: int) -> None:
            svc.feed(E.DataplaneTraffic(sid, nbytes))

        dp = Dataplane(access_if, node=daemon.host, router_id=svc.router_id, on_traffic=traffic)
        svc.dataplane = dp
        svc.core.has_dataplane = True
        daemon.dataplane = dp
        daemon.add_component(dp)  # stopped after the QE service (its DataplaneStops)
    qe_cli.register(daemon.cli, svc)
    daemon.add_component(svc)
    return svc


#: service state -> the LSP's operational state reported (RFC 8231 §7.3 O field)
_LSP_STATES = {SIGNALLING: LspState.GOING_UP, UP: LspState.UP, REROUTING: LspState.DOWN}
#: RFC 8231 §7.3.3 LSP-ERROR-CODE values the node agents report
LSP_ERROR_UNKNOWN, LSP_ERROR_UNACCEPTABLE, LSP_ERROR_SIGNALLING = 1, 4, 8
