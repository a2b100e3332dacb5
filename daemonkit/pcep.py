"""An asyncio PCC (RFC 5440): the client node agents, tests and ``python -m pce.client``
use to ask the PCE.

``PcepClient`` keeps one PCEP session to the PCE up: it connects, exchanges Open and
Keepalive (through the sans-I/O :class:`gmpls.pcep.session.Session`), sends keepalives,
and reconnects with exponential backoff when the session drops. :meth:`PcepClient.request`
sends one PCReq and waits for its PCRep::

    async with PcepClient("10.1.1.200") as pcc:
        reply = await pcc.request(src, dst, qe_params, bandwidth=0.0)
        if reply.ok:
            ero = reply.ero        # the Fig. 9 subobjects
        else:
            print(reply.reason)    # NO-PATH: vector bits and the PCE's reason text

A request in flight when the session drops fails with :class:`PcepError`; the client
does not resend it (path computation is cheap; the caller decides).

With ``stateful=True`` the client is a stateful PCC (RFC 8231): its Open carries
STATEFUL-PCE-CAPABILITY (U), :meth:`PcepClient.report` sends a PCRpt for one of its LSPs
(:class:`LspStatus`) and remembers it, and each time a stateful session comes up it
synchronises: every remembered LSP with S set, then the end-of-sync marker (§5.6). An LSP
is delegated (D) when its :class:`LspStatus` says so; every sync delegates it again (after
a session loss delegation is back with the PCC, RFC 8231 §5.7.5). A PCUpd entry for a
delegated LSP goes to ``on_update``, which returns None (taken: the LSP's next report
carries the update's SRP-ID) or the PCErr code to refuse it with; one for an LSP this PCC
does not know is refused with (19, 3), for one not delegated with (19, 1) (§5.8.2).
With ``instantiation=True`` too it advertises I (RFC 8281)
and hands each PCInitiate entry to ``on_initiate``, which returns None (taken: its LSP will
be reported with the SRP-ID and the C flag) or the PCErr code to refuse it with (the
client sends it naming the SRP, §5.3).

:func:`serve_session` runs a session over one TCP connection: the client's, and each of
the PCE server's (``pce/server.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from types import TracebackType
from typing import Any

from daemonkit import netns
from daemonkit.daemon import cancel
from gmpls import qe
from gmpls.core import Tick
from gmpls.ero import Subobject
from gmpls.pcep import events as E
from gmpls.pcep.constants import (
    ERR_INITIATE_UNACCEPTABLE,
    ERR_UPDATE_NOT_DELEGATED,
    ERR_UPDATE_UNKNOWN_PLSP,
    PORT,
    STATEFUL_FLAG_I,
    STATEFUL_FLAG_U,
    LspState,
)
from gmpls.pcep.messages import (
    ErrorBlock,
    LspEntry,
    PCErr,
    PCInitiate,
    PCRep,
    PCReq,
    PCRpt,
    PCUpd,
    Request,
    Response,
)
from gmpls.pcep.objects import (
    RP,
    Bandwidth,
    EndPointsIpv4,
    Ero,
    ErrorObject,
    LspObject,
    NoPath,
    Srp,
    lsp_flags,
)
from gmpls.pcep.qemetrics import qe_metrics
from gmpls.pcep.relay import with_relay
from gmpls.pcep.session import Role, Session, SessionConfig, State
from gmpls.pcep.tlv import (
    Ipv4LspIdentifiersTlv,
    LspErrorCodeTlv,
    NoPathReasonTlv,
    SymbolicPathNameTlv,
    find_tlv,
)

log = logging.getLogger("daemonkit.pcep")


class PcepError(RuntimeError):
    """The request could not be answered: session down, PCErr, or timeout."""


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to one request: an ERO, or a NO-PATH with its reasons."""

    request_id: int
    response: Response

    @property
    def ok(self) -> bool:
        return self.response.no_path is None and bool(self.response.paths)

    @property
    def ero(self) -> tuple[Subobject, ...]:
        return self.response.paths[0].ero.subobjects if self.response.paths else ()

    @property
    def no_path(self) -> NoPath | None:
        return self.response.no_path

    @property
    def relay(self) -> tuple[IPv4Address, ...]:
        """The key relay path the PCE chose (site IDs, head site first), or ()."""
        return self.response.relay

    @property
    def reason(self) -> str:
        """The PCE's explanation (NO-PATH-REASON TLV) or the NO-PATH-VECTOR bits."""
        np = self.response.no_path
        if np is None:
            return "" if self.ok else "empty reply"
        t = find_tlv(np.tlvs, NoPathReasonTlv)
        if isinstance(t, NoPathReasonTlv):
            return t.text
        return f"no path (vector 0x{np.vector:x})"


@dataclass(frozen=True, slots=True)
class LspStatus:
    """One LSP as a stateful PCC reports it (RFC 8231 §6.1): its PLSP-ID (the tunnel ID
    here), symbolic name, head and tail, operational state and the route signalled."""

    plsp_id: int
    name: str
    head: IPv4Address
    tail: IPv4Address
    tunnel_id: int
    state: LspState = LspState.UP
    route: tuple[Subobject, ...] = ()
    #: the SRP-ID of the PCInitiate that created it (RFC 8281 §5.3), 0 for the PCC's own
    srp_id: int = 0
    #: created by a PCE (the C flag, RFC 8281 §5.3.1; such LSPs are delegated to it)
    initiated: bool = False
    #: the key relay path the LSP's key session uses (site IDs, head site first), in the
    #: LSP object's RELAY-PATH TLV (docs/pcep.md#the-relay-path-tlv); () for none
    relay: tuple[IPv4Address, ...] = ()
    #: delegated to the PCE (the D flag, RFC 8231 §5.7)
    delegated: bool = False
    #: why the LSP is down or failed: RFC 8231 §7.3.3 LSP-ERROR-CODE (0: none) and the
    #: text, carried in this project's reason TLV (65504, the NO-PATH-REASON format)
    error_code: int = 0
    error: str = ""
    #: the LSP ID of its IPV4-LSP-IDENTIFIERS (a move makes a new one)
    lsp_id: int = 1

    def entry(self, *, sync: bool = False, remove: bool = False) -> LspEntry:
        """The state report: the SRP (SRP-ID 0 when unsolicited), the LSP with its
        identifiers (and why it failed, when it did), the ERO."""
        ids = Ipv4LspIdentifiersTlv(
            self.head, self.lsp_id, self.tunnel_id & 0xFFFF, self.head, self.tail
        )
        flags = lsp_flags(
            sync=sync,
            remove=remove,
            admin=not remove,
            state=self.state,
            delegate=(self.initiated or self.delegated) and not remove,
            create=self.initiated,
        )
        tlvs: tuple[Any, ...] = (SymbolicPathNameTlv(self.name.encode()), ids)
        if self.error_code:
            tlvs += (LspErrorCodeTlv(self.error_code),)
        if self.error:
            tlvs += (NoPathReasonTlv(self.error_code, self.error[:200]),)
        tlvs = with_relay(tlvs, self.relay)
        return LspEntry(LspObject(self.plsp_id, flags, tlvs), Srp(self.srp_id), Ero(self.route))


def nodelay(writer: asyncio.StreamWriter) -> bool:
    """Turn Nagle's algorithm off on a PCEP connection: a PCReq or PCRep is one small
    write that must leave at once, not wait for the ACK of the previous segment
    (asyncio's TCP transports set it too; saying it here keeps it whatever the
    transport). Whether the socket has it now."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return False
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))


class PcepClient:
    """One PCC session to a PCE, kept up with reconnection and backoff."""

    def __init__(
        self,
        host: str,
        port: int = PORT,
        *,
        config: SessionConfig | None = None,
        local_address: str | None = None,
        backoff: tuple[float, float] = (0.5, 30.0),
        connect_timeout: float = 5.0,
        reconnect: bool = True,
        stateful: bool = False,
        instantiation: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        flags = (STATEFUL_FLAG_U | (STATEFUL_FLAG_I if instantiation else 0)) if stateful else 0
        self.config = config or SessionConfig(keepalive=30, deadtimer=120, stateful=flags)
        #: takes a PCInitiate entry: None when taken, else the PCErr code refusing it
        self.on_initiate: Callable[[LspEntry], tuple[int, int] | None] | None = None
        #: takes a PCUpd entry of a delegated LSP: None when taken, else the PCErr code
        self.on_update: Callable[[LspEntry], tuple[int, int] | None] | None = None
        #: the LSPs reported and not removed, by PLSP-ID (synchronised at each session up)
        self.lsps: dict[int, LspStatus] = {}
        self.local_address = local_address
        self.backoff = backoff
        self.connect_timeout = connect_timeout
        self.reconnect = reconnect
        self.session: Session | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._up = asyncio.Event()
        self._pending: dict[int, asyncio.Future[Response]] = {}
        self._ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.connects = 0
        self.last_error = ""

    # -- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> PcepClient:
        await self.start()
        await self.wait_up()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"pcc-{self.host}")

    async def wait_up(self, timeout: float = 10.0) -> None:
        if self._up.is_set():
            return
        try:
            await asyncio.wait_for(self._up.wait(), timeout)
        except TimeoutError:
            raise PcepError(
                f"no PCEP session with {self.host}:{self.port} ({self.last_error})"
            ) from None

    @property
    def is_up(self) -> bool:
        return self._up.is_set()

    async def close(self) -> None:
        self._closing = True
        loop = asyncio.get_running_loop()
        if self.session is not None and self.session.state is not State.IDLE:
            self._apply(self.session.handle(E.CloseSession(), loop.time()))
            if self._writer is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._writer.drain(), 1.0)
        if self._task is not None:
            await cancel([self._task])
            self._task = None
        self._fail_pending("client closed")

    # -- requests -----------------------------------------------------------------------

    async def request(
        self,
        src: IPv4Address | str,
        dst: IPv4Address | str,
        qe_params: qe.QeParams | None = None,
        bandwidth: float = 0.0,
        *,
        timeout: float = 10.0,
    ) -> Reply:
        """Ask for a path ``src`` → ``dst`` (bandwidth in bytes/s; QE metrics when
        ``qe_params`` is given) and wait for the reply."""
        req = self.build_request(next(self._ids), src, dst, qe_params, bandwidth)
        (resp,) = await self.send_requests((req,), timeout=timeout)
        return Reply(req.rp.request_id, resp)

    @staticmethod
    def build_request(
        request_id: int,
        src: IPv4Address | str,
        dst: IPv4Address | str,
        qe_params: qe.QeParams | None = None,
        bandwidth: float = 0.0,
    ) -> Request:
        return Request(
            RP(request_id & 0xFFFFFFFF or 1),
            EndPointsIpv4(IPv4Address(src), IPv4Address(dst)),
            bandwidth=Bandwidth(bandwidth) if bandwidth else None,
            metrics=qe_metrics(qe_params) if qe_params is not None else (),
        )

    def next_request_id(self) -> int:
        return next(self._ids)

    @property
    def stateful(self) -> bool:
        """Whether the session is up and stateful (both Opens advertised it)."""
        return self.is_up and self.session is not None and self.session.stateful is not None

    def report(self, lsp: LspStatus, *, remove: bool = False) -> bool:
        """Remember ``lsp`` (forget it with ``remove``) and report it now when the session is
        stateful; True when a PCRpt went out. A later session synchronises it anyway. A
        report equal to the last one of that LSP is not sent again: a PCC reports changes
        of the LSP's state (RFC 8231 §6.1), not every event of its key session (a refresh)."""
        if remove:
            known = self.lsps.pop(lsp.plsp_id, None)
            if known is None and not lsp.initiated:
                return False  # never reported; but a PCInitiate is answered (RFC 8281 §5.3)
        else:
            if self.lsps.get(lsp.plsp_id) == lsp:
                return False
            self.lsps[lsp.plsp_id] = lsp
        return self._send_reports([lsp.entry(remove=remove)])

    def _synchronise(self) -> None:
        """RFC 8231 §5.6: every LSP with S set, then the end-of-sync marker."""
        entries = [x.entry(sync=True) for _, x in sorted(self.lsps.items())]
        entries.append(LspEntry(LspObject(0), ero=Ero()))
        self._send_reports(entries)

    def _send_reports(self, entries: list[LspEntry]) -> bool:
        if not self.stateful or self._loop is None:
            return False
        assert self.session is not None
        msg = PCRpt(tuple(entries))
        self._apply(self.session.handle(E.SendMessage(msg), self._loop.time()))
        return True

    async def send_requests(
        self, requests: tuple[Request, ...], *, timeout: float = 10.0
    ) -> list[Response]:
        """Send one PCReq with ``requests``; wait for a response to each."""
        await self.wait_up(timeout)
        loop = asyncio.get_running_loop()
        futs = []
        for r in requests:
            fut: asyncio.Future[Response] = loop.create_future()
            self._pending[r.rp.request_id] = fut
            futs.append(fut)
        assert self.session is not None
        try:
            self._apply(self.session.handle(E.SendMessage(PCReq(requests)), loop.time()))
        except RuntimeError as e:
            for r in requests:
                self._pending.pop(r.rp.request_id, None)
            raise PcepError(str(e)) from None
        try:
            async with asyncio.timeout(timeout):
                return [await f for f in futs]
        except TimeoutError:
            raise PcepError(f"no reply from {self.host} within {timeout} s") from None
        finally:
            for r in requests:
                self._pending.pop(r.rp.request_id, None)

    # -- the connection loop ------------------------------------------------------------

    async def _run(self) -> None:
        delay = self.backoff[0]
        while not self._closing:
            try:
                up_before = self.connects
                await self._connect_and_serve()
                if self.connects > up_before and self._was_up:
                    delay = self.backoff[0]
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.last_error = f"{type(e).__name__}: {e}"
                log.info("pcep connect failed", extra={"event": "retry", "error": self.last_error})
            self._up.clear()
            self._fail_pending(self.last_error or "session down")
            if self._closing or not self.reconnect:
                return
            await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
            delay = min(delay * 2, self.backoff[1])

    _was_up = False

    async def _connect_and_serve(self) -> None:
        self._was_up = False
        local = (self.local_address, 0) if self.local_address else None
        sock = await asyncio.wait_for(
            netns.connected(self.host, self.port, local), self.connect_timeout
        )
        reader, writer = await asyncio.open_connection(sock=sock)
        self.connects += 1
        nodelay(writer)
        self._writer = writer
        self.session = session = Session(Role.PCC, self.config, peer=f"{self.host}:{self.port}")
        try:
            ended = await serve_session(session, reader, writer, self._apply)
            if ended:
                self.last_error = ended
        finally:
            self._up.clear()
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            self._writer = None

    def _apply(self, actions: list[E.Action]) -> None:
        for a in actions:
            if isinstance(a, E.Send):
                if self._writer is not None:
                    self._writer.write(a.data)
            elif isinstance(a, E.SessionUp):
                self._was_up = True
                self._up.set()
                self._loop = asyncio.get_running_loop()
                if self.stateful:
                    self._synchronise()
                log.info(
                    "pcep session up",
                    extra={"event": "up", "peer": self.host, "keepalive": a.peer.keepalive},
                )
            elif isinstance(a, E.Deliver):
                self._deliver(a)
            elif isinstance(a, E.Disconnect):
                self.last_error = a.reason
                self._up.clear()

    def _deliver(self, a: E.Deliver) -> None:
        msg = a.msg
        if isinstance(msg, PCRep):
            for resp in msg.responses:
                fut = self._pending.get(resp.rp.request_id)
                if fut is not None and not fut.done():
                    fut.set_result(resp)
        elif isinstance(msg, PCErr):
            for block in msg.blocks:
                codes = [e.code for e in block.errors]
                rps = [r for r in block.rps if isinstance(r, RP)]
                if block.rps and not rps:
                    continue  # about stateful requests (SRP objects), not path requests
                ids = [rp.request_id for rp in rps] or list(self._pending)
                for rid in ids:
                    fut = self._pending.get(rid)
                    if fut is not None and not fut.done():
                        fut.set_exception(PcepError(f"PCErr {codes} for request {rid}"))
        elif isinstance(msg, PCInitiate):
            for entry in msg.entries:
                self._initiate(entry)
        elif isinstance(msg, PCUpd):
            for entry in msg.entries:
                self._update(entry)
        else:
            log.info("pcep message", extra={"event": "rx", "msg": type(msg).__name__})

    def _initiate(self, entry: LspEntry) -> None:
        """RFC 8281 §5.3: hand the entry over, or refuse it with a PCErr naming its SRP."""
        take = self.on_initiate
        code = ERR_INITIATE_UNACCEPTABLE if take is None else take(entry)
        log.info("pcinitiate", extra={"event": "initiate", "lsp": entry.lsp.name, "refused": code})
        self._refuse(entry, code)

    def _update(self, entry: LspEntry) -> None:
        """RFC 8231 §5.8.2: an update of an LSP delegated to the PCE goes to
        ``on_update``; one of an unknown or not delegated LSP is refused (PCErr naming
        the SRP)."""
        known = self.lsps.get(entry.lsp.plsp_id)
        take = self.on_update
        if known is None:
            code: tuple[int, int] | None = ERR_UPDATE_UNKNOWN_PLSP
        elif not (known.delegated or known.initiated) or take is None:
            code = ERR_UPDATE_NOT_DELEGATED
        else:
            code = take(entry)
        log.info("pcupd", extra={"event": "update", "plsp_id": entry.lsp.plsp_id, "refused": code})
        self._refuse(entry, code)

    def _refuse(self, entry: LspEntry, code: tuple[int, int] | None) -> None:
        if code is not None and self.session is not None and self._loop is not None:
            srps = (entry.srp,) if entry.srp is not None else ()
            err = PCErr((ErrorBlock((ErrorObject(*code),), srps),))
            self._apply(self.session.handle(E.SendMessage(err), self._loop.time()))

    def _fail_pending(self, why: str) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(PcepError(f"session down: {why}"))


async def serve_session(
    session: Session,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    apply: Callable[[list[E.Action]], object],
    drain_timeout: float | None = None,
) -> str:
    """Run ``session`` over its TCP connection until it is Idle: the connection's bytes and
    the timer's ticks in, its actions to ``apply`` (which writes its Sends). Returns why the
    connection ended it ("" when the session closed itself): the peer closed it, or does not
    read what is written (still more than 64 KiB after ``drain_timeout`` s; None: wait)."""
    loop = asyncio.get_running_loop()
    apply(session.handle(E.ConnectionMade(), loop.time()))
    while session.state is not State.IDLE:
        if writer.transport.get_write_buffer_size() > 65536:
            try:
                async with asyncio.timeout(drain_timeout):
                    await writer.drain()
            except TimeoutError:
                session.handle(E.ConnectionLost(), loop.time())
                return "peer does not read its replies"
        try:
            async with asyncio.timeout_at(session.next_timer()):
                data = await reader.read(65536)
        except TimeoutError:
            apply(session.handle(Tick(), loop.time()))
            continue
        if not data:
            session.handle(E.ConnectionLost(), loop.time())
            return "peer closed the TCP connection"
        apply(session.handle(E.Received(data), loop.time()))
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.drain(), 1.0)
    return ""
