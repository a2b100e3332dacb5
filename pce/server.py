"""The PCEP server: a thin asyncio shell around :class:`gmpls.pcep.session.Session`.

One task per TCP connection on port 4189. Each task feeds the bytes it reads to its own
session, writes what the session returns, re-arms one timeout for the session's next
timer, and hands delivered PCReqs to the :class:`~pce.service.PceService`. A connection's
failure (bad bytes, a slow or vanished peer, even a bug) ends that connection only: the
task catches everything, logs it with the peer in front, and closes its own socket.

RFC 5440 §6.2 (second session): when ``one_session_per_peer`` is set, a connection from
an address that already has a session is answered PCErr (9, 0) and closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from daemonkit.daemon import cancel
from daemonkit.pcep import serve_session
from daemonkit.ratelog import RateLimitedLog
from gmpls.pcep import events as E
from gmpls.pcep.constants import ERR_SECOND_SESSION, PORT
from gmpls.pcep.messages import PCErr, PCReq
from gmpls.pcep.session import Role, Session, SessionConfig, State
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
            "requests": c.requests_rx,
            "errors_tx": c.errors_tx,
            "unknown_messages": c.unknown_messages,
            "unknown_requests": c.unknown_requests,
            "malformed": c.malformed,
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
        self._ids = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
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

    def sessions_json(self) -> list[dict[str, Any]]:
        now = asyncio.get_running_loop().time()
        return [c.as_json(now) for c in self.connections.values()]

    # -- per connection -----------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
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
                log.info(
                    "session up",
                    extra={
                        "event": "up",
                        "peer": conn.session.peer,
                        "keepalive": a.peer.keepalive,
                        "deadtimer": a.peer.deadtimer,
                    },
                )
            elif isinstance(a, E.Disconnect):
                conn.closed_reason = a.reason

    def _answer(self, conn: Connection, msg: PCReq, now: float) -> list[E.Action]:
        rep, errors, outcomes = self.service.handle(msg)
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


def perf_clock() -> float:
    return time.perf_counter()
