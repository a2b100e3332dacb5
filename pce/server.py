"""The PCEP server: a thin asyncio shell around :class:`gmpls.pcep.session.Session`.

One task per TCP connection on port 4189. Each task feeds the bytes it reads to its own
session, writes what the session returns, re-arms one timeout for the session's next
timer, and hands delivered PCReqs to the :class:`~pce.service.PceService`. A connection's
failure (bad bytes, a slow or vanished peer, even a bug) ends that connection only: the
task catches everything, logs it with the peer in front, and closes its own socket.

RFC 5440 §6.2 (second session): when ``one_session_per_peer`` is set, a connection from
an address that already has a session is answered PCErr (9, 0) and closed.

Stateful sessions (RFC 8231): the PCRpts of a PCC go to the service's
:class:`~pce.lspdb.LspDb` under the PCC's address, which starts a state synchronisation
when the session comes up and returns the delegations when it ends; a report the DB
refuses is answered with a PCErr naming its SRP when it has one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from daemonkit import netns
from daemonkit.daemon import cancel
from daemonkit.pcep import nodelay, serve_session
from daemonkit.ratelog import RateLimitedLog
from gmpls import qe
from gmpls.ero import Unnumbered
from gmpls.pcep import events as E
from gmpls.pcep.constants import ERR_SECOND_SESSION, PORT, SRP_FLAG_R, STATEFUL_FLAG_I, LspState
from gmpls.pcep.messages import (
    Attributes,
    ErrorBlock,
    LspEntry,
    PCErr,
    PCInitiate,
    PCReq,
    PCRpt,
    PCUpd,
    Request,
)
from gmpls.pcep.objects import (
    RP,
    EndPointsIpv4,
    ErrorObject,
    LspObject,
    Srp,
    lsp_flags,
)
from gmpls.pcep.qemetrics import qe_metrics
from gmpls.pcep.session import Role, Session, SessionConfig, State
from gmpls.pcep.tlv import SymbolicPathNameTlv
from pce import updates
from pce.lspdb import Initiation, Lsp
from pce.service import PceService

log = logging.getLogger("pce.server")


@dataclass(slots=True)
class Connection:
    id: int
    peer: tuple[str, int]
    session: Session
    writer: asyncio.StreamWriter
    opened: float
    closed_reason: str = ""

    def as_json(self, now: float) -> dict[str, Any]:
        s = self.session
        c = s.counters
        return {
            "id": self.id,
            "peer": f"{self.peer[0]}:{self.peer[1]}",
            "state": s.state.value,
            "uptime_s": round(now - self.opened, 1),
            "keepalive": s.local_open.keepalive,
            "peer_keepalive": s.peer_open.keepalive if s.peer_open else None,
            "peer_deadtimer": s.peer_open.deadtimer if s.peer_open else None,
            "peer_sid": s.peer_open.sid if s.peer_open else None,
            "rx": c.rx,
            "tx": c.tx,
            "keepalives_rx": c.keepalives_rx,
            "keepalives_tx": c.keepalives_tx,
            "requests": c.requests_rx,
            "errors_tx": c.errors_tx,
            "unknown_messages": c.unknown_messages,
            "unknown_requests": c.unknown_requests,
            "malformed": c.malformed,
            "stateful": s.stateful is not None,
        }


@dataclass(slots=True)
class ServerStats:
    accepted: int = 0
    rejected_second_session: int = 0
    rejected_limit: int = 0
    closed: int = 0
    failures: int = 0
    close_reasons: dict[str, int] = field(default_factory=dict)


class PcepServer:
    def __init__(
        self,
        service: PceService,
        config: SessionConfig | None = None,
        *,
        host: str = "0.0.0.0",
        port: int = PORT,
        one_session_per_peer: bool = True,
        max_sessions: int = 1024,
        drain_timeout: float = 10.0,
    ) -> None:
        self.drain_timeout = drain_timeout
        self.service = service
        self.config = config or SessionConfig()
        self.host = host
        self.port = port
        self.one_session_per_peer = one_session_per_peer
        self.max_sessions = max_sessions
        self.connections: dict[int, Connection] = {}
        self.stats = ServerStats()
        #: refused connections, which anyone may cause at will: logged rate-limited
        self.refusals = RateLimitedLog(log, {"event": "reject"})
        #: LSP reports refused, which a PCC may send at will: logged rate-limited
        self.bad_reports = RateLimitedLog(log, {"event": "pcrpt"})
        self._ids = itertools.count(1)
        #: called after every PCRpt is taken in (the daemon wakes who waits on an LSP state)
        self.on_report: Callable[[], None] | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, sock=netns.listening(self.host, self.port)
        )
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        log.info("pcep listening", extra={"event": "listen", "addr": self.host, "port": self.port})

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        loop = asyncio.get_running_loop()
        for conn in list(self.connections.values()):
            if conn.session.state is not State.IDLE:
                self._apply(conn, conn.session.handle(E.CloseSession(), loop.time()))
        await cancel(self._tasks)
        if self._server is not None:
            await self._server.wait_closed()
        self.refusals.close()
        self.bad_reports.close()

    def sessions_json(self) -> list[dict[str, Any]]:
        now = asyncio.get_running_loop().time()
        return [c.as_json(now) for c in self.connections.values()]

    # -- per connection -----------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        nodelay(writer)
        peer = writer.get_extra_info("peername") or ("?", 0)
        peer = (str(peer[0]), int(peer[1]))
        try:
            if len(self.connections) >= self.max_sessions:
                self.stats.rejected_limit += 1
                self.refusals.log(logging.WARNING, "session limit reached", {"peer": peer[0]})
                return
            if self.one_session_per_peer and any(
                c.peer[0] == peer[0] for c in self.connections.values()
            ):
                self.stats.rejected_second_session += 1
                self.refusals.log(logging.WARNING, "second session refused", {"peer": peer[0]})
                writer.write(PCErr.of(ERR_SECOND_SESSION).encode())
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.drain(), 1.0)
                return
            await self._serve(reader, writer, peer)
        except Exception:
            self.stats.failures += 1
            log.exception("session failure", extra={"event": "failure", "peer": peer[0]})
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: tuple[str, int]
    ) -> None:
        loop = asyncio.get_running_loop()
        session = Session(Role.PCE, self.config, peer=f"{peer[0]}:{peer[1]}")
        conn = Connection(next(self._ids), peer, session, writer, loop.time())
        self.connections[conn.id] = conn
        self.stats.accepted += 1
        log.info("tcp connected", extra={"event": "connect", "peer": conn.session.peer})
        try:
            ended = await serve_session(
                session, reader, writer, functools.partial(self._apply, conn), self.drain_timeout
            )
            if ended:
                conn.closed_reason = ended
        except (ConnectionError, OSError) as e:
            session.handle(E.ConnectionLost(), loop.time())
            conn.closed_reason = f"TCP error: {e}"
        finally:
            self.connections.pop(conn.id, None)
            self.stats.closed += 1
            if self.service.lsps is not None and session.stateful is not None:
                self.service.lsps.session_down(peer[0], loop.time())
            reason = conn.closed_reason or session.close_reason or "closed"
            key = reason.split(":")[0].split(" (")[0]
            self.stats.close_reasons[key] = self.stats.close_reasons.get(key, 0) + 1
            log.info(
                "session closed", extra={"event": "close", "peer": session.peer, "reason": reason}
            )

    def _apply(self, conn: Connection, actions: list[E.Action]) -> None:
        loop = asyncio.get_running_loop()
        for a in actions:
            if isinstance(a, E.Send):
                conn.writer.write(a.data)
            elif isinstance(a, E.Deliver):
                if isinstance(a.msg, PCReq):
                    self._apply(conn, self._answer(conn, a.msg, loop.time()))
                elif isinstance(a.msg, PCRpt):
                    self._apply(conn, self._report(conn, a.msg, loop.time()))
                elif isinstance(a.msg, PCErr) and self.service.lsps is not None:
                    for b in a.msg.blocks:
                        for srp in (x for x in b.rps if isinstance(x, Srp)):
                            self.service.lsps.srp_refused(srp.srp_id, _codes(b))
                else:
                    log.info(
                        "message from pcc",
                        extra={
                            "event": "rx",
                            "peer": conn.session.peer,
                            "msg": type(a.msg).__name__,
                        },
                    )
            elif isinstance(a, E.SessionUp):
                stateful = conn.session.stateful
                if stateful is not None and self.service.lsps is not None:
                    self.service.lsps.session_up(conn.peer[0], loop.time())
                log.info(
                    "session up",
                    extra={
                        "event": "up",
                        "peer": conn.session.peer,
                        "keepalive": a.peer.keepalive,
                        "deadtimer": a.peer.deadtimer,
                        "stateful": stateful,
                    },
                )
            elif isinstance(a, E.Disconnect):
                conn.closed_reason = a.reason

    def _report(self, conn: Connection, msg: PCRpt, now: float) -> list[E.Action]:
        """A PCRpt into the LSP database; a PCErr for each report it refuses."""
        lsps = self.service.lsps
        if lsps is None:
            return []
        refused = lsps.report(conn.peer[0], msg, now)
        if self.on_report is not None:
            self.on_report()
        for e in msg.entries:
            lsp = e.lsp
            log.info(
                "end of sync" if lsp.end_of_sync else "lsp report",
                extra={
                    "event": "pcrpt",
                    "peer": conn.session.peer,
                    "plsp_id": lsp.plsp_id,
                    "lsp": lsp.name or None,
                    "sync": lsp.sync,
                    "remove": lsp.remove,
                    "delegated": lsp.delegated,
                    "state": int(lsp.state),
                    "pst": e.srp.pst if e.srp is not None else 0,
                },
            )
        if any(e.lsp.delegated and e.lsp.state == LspState.DOWN for e in msg.entries):
            self.recompute(now)  # a delegated LSP down: the PCE finds it a new path
        if conn.session.state is not State.UP:
            return []
        out: list[E.Action] = []
        for code, entry in refused:
            srps = (entry.srp,) if entry.srp is not None else ()
            err = PCErr((ErrorBlock((ErrorObject(*code),), srps),))
            fields = {"peer": conn.session.peer, "code": list(code)}
            self.bad_reports.log(logging.WARNING, "lsp report refused", fields)
            out.extend(conn.session.handle(E.SendMessage(err), now))
        return out

    # -- PCE-initiated QE services (RFC 8281) ----------------------------------------------

    def _head_session(self, head: IPv4Address) -> Connection | None:
        """The Up session, stateful with I on both sides, of the PCC at ``head`` (its
        address, or the head of an LSP it reported)."""
        lsps = self.service.lsps
        for c in self.connections.values():
            s = c.session
            if not (s.is_up and (s.stateful or 0) & STATEFUL_FLAG_I):
                continue
            mine = lsps.lsps.get(c.peer[0], {}) if lsps is not None else {}
            if c.peer[0] == str(head) or any(x.head == head for x in mine.values()):
                return c
        return None

    def initiate(
        self, head: IPv4Address, tail: IPv4Address, params: qe.QeParams, now: float
    ) -> Initiation:
        """Ask ``head`` to set up a QE service to ``tail`` (PCInitiate with the path this PCE
        computes, not reserved: the head asks for its path as for any service). Raises
        ValueError when there is no such session or no path."""
        lsps = self.service.lsps
        conn = self._head_session(head)
        if lsps is None or conn is None:
            raise ValueError(f"no stateful PCEP session with instantiation to {head}")
        srp_id = lsps.new_srp_id()
        metrics = qe_metrics(params)
        req = Request(RP(srp_id), EndPointsIpv4(head, tail), metrics=metrics)
        resp, outcome = self.service.answer(req, now=now, reserve=False)
        if not resp.paths:
            raise ValueError(f"no path {head} -> {tail}: {outcome.result.detail}")
        name = f"qe-init-{srp_id}"
        lsp = LspObject(0, lsp_flags(delegate=True, admin=True, create=True),
                        (SymbolicPathNameTlv(name.encode()),))  # fmt: skip
        entry = LspEntry(lsp, Srp(srp_id), resp.paths[0].ero, Attributes(metrics=metrics),
                         endpoints=EndPointsIpv4(head, tail))  # fmt: skip
        ini = lsps.initiations[srp_id] = Initiation(srp_id, head, tail, name)
        self._apply(conn, conn.session.handle(E.SendMessage(PCInitiate((entry,))), now))
        log.info("pcinitiate", extra={"event": "initiate", "peer": conn.session.peer,
                                      "srp_id": srp_id, "dst": str(tail)})  # fmt: skip
        return ini

    def release(self, srp_id: int, now: float) -> Initiation:
        """Remove the service initiation ``srp_id`` made (PCInitiate with the SRP R flag
        and its PLSP-ID, RFC 8281 §5.4)."""
        lsps = self.service.lsps
        ini = lsps.initiations.get(srp_id) if lsps is not None else None
        if lsps is None or ini is None or ini.plsp_id is None:
            raise ValueError(f"no initiated QE service {srp_id} with a reported LSP")
        conn = self._head_session(ini.head)
        if conn is None:
            raise ValueError(f"no stateful PCEP session with instantiation to {ini.head}")
        release = LspEntry(LspObject(ini.plsp_id), Srp(srp_id, SRP_FLAG_R))
        ini.state = "releasing"
        self._apply(conn, conn.session.handle(E.SendMessage(PCInitiate((release,))), now))
        return ini

    # -- moving delegated LSPs (RFC 8231 PCUpd) ------------------------------------------

    def _pcc_session(self, pcc: str) -> Connection | None:
        """The Up stateful session of the PCC at address ``pcc``."""
        for c in self.connections.values():
            if c.peer[0] == pcc and c.session.is_up and c.session.stateful is not None:
                return c
        return None

    def recompute(self, now: float) -> int:
        """Send a PCUpd for each delegated LSP whose path is gone from the TED or that its
        head reports down, when a new path is found (:mod:`pce.updates`); the count sent."""
        lsps = self.service.lsps
        if lsps is None:
            return 0
        sent = 0
        for lsp in updates.candidates(lsps, self.service.computer.ted, now):
            conn = self._pcc_session(lsp.pcc)
            if conn is None:
                continue
            entry = updates.compute_update(lsp, self.service, lsps, now)
            if entry is not None:
                self._send_update(conn, lsp, entry, now)
                sent += 1
        return sent

    def move(self, pcc: str, plsp_id: int, avoid: list[IPv4Address], now: float) -> Lsp:
        """The operator's move (``qe-service update``): a new path for a delegated LSP,
        avoiding ``avoid``, sent even when its path is still valid. Raises ValueError."""
        lsps = self.service.lsps
        lsp = lsps.find(pcc, plsp_id) if lsps is not None else None
        if lsps is None or lsp is None:
            raise ValueError(f"no LSP {plsp_id} of PCC {pcc}")
        conn = self._pcc_session(pcc)
        if not lsp.delegated or conn is None or lsp.head is None or lsp.tail is None:
            raise ValueError(f"LSP {plsp_id} of {pcc} is not delegated to this PCE")
        if lsps.update_outstanding(lsp, now):
            raise ValueError(f"an update of LSP {plsp_id} is outstanding (SRP {lsp.update_srp})")
        entry = updates.compute_update(lsp, self.service, lsps, now, avoid=avoid, force=True)
        if entry is None:
            raise ValueError(f"no new path for LSP {plsp_id}: {lsp.error}")
        self._send_update(conn, lsp, entry, now)
        return lsp

    def _send_update(self, conn: Connection, lsp: Lsp, entry: LspEntry, now: float) -> None:
        self._apply(conn, conn.session.handle(E.SendMessage(PCUpd((entry,))), now))
        assert entry.ero is not None and entry.srp is not None
        path = [str(s.router_id) for s in entry.ero.subobjects if isinstance(s, Unnumbered)]
        log.info("pcupd", extra={"event": "update", "peer": conn.session.peer,
                                 "plsp_id": lsp.plsp_id, "lsp": lsp.name,
                                 "srp_id": entry.srp.srp_id, "path": path})  # fmt: skip

    def _answer(self, conn: Connection, msg: PCReq, now: float) -> list[E.Action]:
        rep, errors, outcomes = self.service.handle(msg, now)
        for o in outcomes:
            r = o.result
            log.info(
                "path computed" if r.ok else "no path",
                extra={
                    "event": "pcreq",
                    "peer": conn.session.peer,
                    "request_id": o.request_id,
                    "src": o.source,
                    "dst": o.destination,
                    "path": [str(n) for n in r.nodes],
                    "channel": r.channel,
                    "relay": [str(x) for x in o.relay] or None,
                    "key_bps": o.key_bps,
                    "reason": r.reason.name if r.reason else None,
                    "detail": r.detail or None,
                    "compute_ms": round(o.seconds * 1e3, 3),
                },
            )
        if conn.session.state is not State.UP:
            return []
        out: list[E.Action] = []
        for err in errors:
            out.extend(conn.session.handle(E.SendMessage(err), now))
        if rep is not None:
            out.extend(conn.session.handle(E.SendMessage(rep), now))
        return out


def _codes(block: ErrorBlock) -> list[tuple[int, int]]:
    return [e.code for e in block.errors]


def perf_clock() -> float:
    return time.perf_counter()
