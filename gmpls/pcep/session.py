"""The PCEP session, sans-I/O (RFC 5440 §6.2-§6.9, §7.3, Appendix A).

One :class:`Session` per TCP connection, for either role (PCC or PCE). It keeps the
contract of :mod:`gmpls.core`: every input is an event of :mod:`gmpls.pcep.events` fed to
:meth:`Session.handle` with the time passed in (TCP up or down, received bytes, the
application's messages and close, :class:`~gmpls.core.Tick`), and it returns action
lists; it never touches a socket or a clock. The asyncio shells (``pce/server.py``,
``daemonkit/pcep.py``) write the :class:`Send` bytes, close the connection on
:class:`Disconnect`, hand :class:`Deliver` messages to the application, and feed
:class:`~gmpls.core.Tick` at :meth:`Session.next_timer`.

The state machine of Appendix A, as a table (state, event) -> next state; the action is
the method named in the middle column::

    IDLE        tcp_connected        send_open           -> OPEN_WAIT
    OPEN_WAIT   open_ok              send_keepalive      -> KEEP_WAIT | UP (LocalOK)
    OPEN_WAIT   open_negotiable      pcerr_1_4           -> OPEN_WAIT  (OpenRetry)
    OPEN_WAIT   open_unacceptable    pcerr_and_close     -> IDLE
    OPEN_WAIT   keepalive            remember_local_ok   -> OPEN_WAIT  (after the peer's Open)
    OPEN_WAIT   keepalive            pcerr_1_1_close     -> IDLE       (before the peer's Open)
    OPEN_WAIT   pcerr_negotiation    renegotiate         -> OPEN_WAIT | IDLE
    OPEN_WAIT   other_message        pcerr_1_1_close     -> IDLE
    OPEN_WAIT   open_wait_expired    pcerr_1_2_close     -> IDLE
    KEEP_WAIT   keepalive            local_ok            -> UP
    KEEP_WAIT   pcerr_negotiation    renegotiate         -> KEEP_WAIT | IDLE
    KEEP_WAIT   other_message        pcerr_1_1_close     -> IDLE
    KEEP_WAIT   keep_wait_expired    pcerr_1_7_close     -> IDLE
    UP          message              deliver             -> UP
    UP          keepalive_due        send_keepalive      -> UP
    UP          dead_timer_expired   close_2             -> IDLE
    UP          close                disconnect          -> IDLE
    UP          malformed            close_3             -> IDLE
    UP          PCRpt (PCE)          deliver | pcerr_19_5 -> UP     (stateful, RFC 8231)
    UP          PCUpd (PCC)          deliver | pcerr_19_2 -> UP
    UP          PCInitiate (PCC)     deliver             -> UP      (I negotiated, RFC 8281)
    UP          too_many_unknown     close_4 / close_5   -> IDLE
    any         tcp_closed           -                   -> IDLE

TCPPending (the PCC's connect in progress) lives in the shell, which feeds
:class:`ConnectionMade` when TCP is up. In every state a decode error carrying a
PCEP error code is answered with that PCErr (and, before UP, the session is closed);
one without a code means the byte stream cannot be trusted: Close (reason 3) in UP,
PCErr (1, 1) before it.

Stateful PCEP (RFC 8231 §5.4, RFC 8281 §4.1, RFC 8408 §3): a speaker configured with
``SessionConfig.stateful`` flags puts STATEFUL-PCE-CAPABILITY and PATH-SETUP-TYPE-CAPABILITY
(its ``path_setup_types``) in its Open; the session is stateful when both Opens carry the
capability (:attr:`Session.stateful`, the flags both set). A PCE answers a request whose RP
names a path setup type it does not handle with PCErr (21, 1) naming the request (RFC 8408
§4), and delivers the others.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from gmpls.core import Tick
from gmpls.errors import DecodeError
from gmpls.pcep.constants import (
    ERR_INVALID_OPEN,
    ERR_NEGOTIABLE,
    ERR_NO_KEEPALIVE,
    ERR_NO_OPEN,
    ERR_NON_NEGOTIABLE,
    ERR_PCERR_UNACCEPTABLE,
    ERR_REPORT_NOT_STATEFUL,
    ERR_SECOND_OPEN_UNACCEPTABLE,
    ERR_UNKNOWN_REQUEST,
    ERR_UNSUPPORTED_PST,
    ERR_UPDATE_NOT_STATEFUL,
    STATEFUL_FLAG_I,
    CloseReason,
    PathSetupType,
)
from gmpls.pcep.events import (
    Action,
    CloseSession,
    ConnectionLost,
    ConnectionMade,
    Deliver,
    Disconnect,
    Event,
    Received,
    Send,
    SendMessage,
    SessionUp,
)
from gmpls.pcep.messages import (
    AnyMessage,
    Close,
    Framer,
    Keepalive,
    Open,
    PCErr,
    PCInitiate,
    PCRep,
    PCReq,
    PCRpt,
    PCUpd,
    Request,
    RequestError,
    UnknownMessage,
    decode_message,
)
from gmpls.pcep.objects import CloseObject, OpenObject
from gmpls.pcep.tlv import (
    PathSetupTypeCapabilityTlv,
    PathSetupTypeTlv,
    StatefulCapabilityTlv,
    find_tlv,
)


class State(enum.Enum):
    IDLE = "Idle"
    OPEN_WAIT = "OpenWait"
    KEEP_WAIT = "KeepWait"
    UP = "Up"


class Role(enum.Enum):
    PCC = "pcc"
    PCE = "pce"


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Local session parameters (RFC 5440 §7.3, §6.9 and Appendix A timers, seconds)."""

    keepalive: int = 30
    deadtimer: int = 120
    sid: int = 0
    open_wait: float = 60.0
    keep_wait: float = 60.0
    #: acceptable peer Keepalive range; a peer keepalive of 0 (it sends none) is accepted
    #: when ``accept_no_keepalive``, whatever its DeadTimer (RFC 5440 §7.3: then no
    #: Keepalive is expected and no DeadTimer runs)
    min_peer_keepalive: int = 1
    max_peer_keepalive: int = 255
    accept_no_keepalive: bool = True
    #: propose acceptable values with PCErr (1, 4) rather than refuse with (1, 3)
    negotiate: bool = True
    #: RFC 5440 §6.9 MAX-UNKNOWN-MESSAGES / MAX-UNKNOWN-REQUESTS, per minute
    max_unknown_messages: int = 5
    max_unknown_requests: int = 5
    #: STATEFUL-PCE-CAPABILITY flags to advertise (RFC 8231 U, RFC 8281 I); 0 = stateless
    stateful: int = 0
    #: the path setup types this speaker handles (RFC 8408), advertised when stateful
    path_setup_types: tuple[int, ...] = (PathSetupType.RSVP_TE,)

    def open_object(self) -> OpenObject:
        tlvs: tuple[StatefulCapabilityTlv | PathSetupTypeCapabilityTlv, ...] = ()
        if self.stateful:
            tlvs = (
                StatefulCapabilityTlv(self.stateful),
                PathSetupTypeCapabilityTlv(self.path_setup_types),
            )
        return OpenObject(self.keepalive, self.deadtimer, self.sid, tlvs=tlvs)

    def acceptable(self, peer: OpenObject) -> bool:
        if peer.keepalive == 0:
            return self.accept_no_keepalive
        return (
            self.min_peer_keepalive <= peer.keepalive <= self.max_peer_keepalive
            and peer.deadtimer >= peer.keepalive
        )

    def proposal(self, peer: OpenObject) -> OpenObject:
        """Values we would accept, closest to the peer's (sent in PCErr (1, 4))."""
        ka = min(max(peer.keepalive, self.min_peer_keepalive), self.max_peer_keepalive)
        return OpenObject(ka, min(4 * ka, 255), peer.sid)


class _Window:
    """Events in the last 60 seconds (RFC 5440 §6.9 limits are per minute)."""

    __slots__ = ("times",)

    def __init__(self) -> None:
        self.times: deque[float] = deque()

    def add(self, now: float) -> int:
        self.times.append(now)
        while self.times and self.times[0] <= now - 60.0:
            self.times.popleft()
        return len(self.times)


@dataclass(slots=True)
class Counters:
    rx: int = 0
    tx: int = 0
    keepalives_rx: int = 0
    keepalives_tx: int = 0
    requests_rx: int = 0
    replies_rx: int = 0
    errors_rx: int = 0
    errors_tx: int = 0
    unknown_messages: int = 0
    unknown_requests: int = 0
    malformed: int = 0


class Session:
    """One PCEP session endpoint (either role)."""

    def __init__(self, role: Role, config: SessionConfig | None = None, peer: str = "") -> None:
        self.role = role
        self.config = config or SessionConfig()
        self.peer = peer
        self.state = State.IDLE
        self.local_open = self.config.open_object()
        self.peer_open: OpenObject | None = None
        self.local_ok = False
        self.remote_ok = False
        self.open_retry = 0
        self.counters = Counters()
        self.close_reason = ""
        self._framer = Framer()
        self._open_wait_at: float | None = None
        self._keep_wait_at: float | None = None
        self._dead_at: float | None = None
        self._keepalive_at: float | None = None
        self._unknown_msgs = _Window()
        self._unknown_reqs = _Window()
        #: PCC: request IDs sent and not answered yet
        self.pending: set[int] = set()
        self.up_since: float | None = None

    # -- the one entry point ----------------------------------------------------------------

    def handle(self, event: Event, now: float) -> list[Action]:
        """Process ``event`` at ``now``; return what to do, in order."""
        if isinstance(event, Received):
            return self._receive(event.data, now)
        if isinstance(event, Tick):
            return self._timers(now)
        if isinstance(event, SendMessage):
            return self._send_message(event.msg, now)
        if isinstance(event, ConnectionMade):
            return self._connection_made(now)
        if isinstance(event, ConnectionLost):
            if self.state is not State.IDLE:
                self._to_idle("TCP connection lost")
            return []
        if isinstance(event, CloseSession):
            if self.state is State.IDLE:
                return []
            return self._close(event.reason, now, "closed locally")
        raise TypeError(f"not a PCEP session event: {event!r}")

    def next_timer(self) -> float | None:
        """When :class:`~gmpls.core.Tick` is next due (None: no timer running)."""
        if self.state is State.OPEN_WAIT:
            return self._open_wait_at
        if self.state is State.KEEP_WAIT:
            return self._keep_wait_at
        if self.state is State.UP:
            ts = [t for t in (self._dead_at, self._keepalive_at) if t is not None]
            return min(ts) if ts else None
        return None

    @property
    def is_up(self) -> bool:
        return self.state is State.UP

    @property
    def stateful(self) -> int | None:
        """The STATEFUL-PCE-CAPABILITY flags both Opens set (RFC 8231 §5.4: the session is
        stateful when both advertise the capability), None when it is not stateful."""
        if self.peer_open is None:
            return None
        mine = find_tlv(self.local_open.tlvs, StatefulCapabilityTlv)
        theirs = find_tlv(self.peer_open.tlvs, StatefulCapabilityTlv)
        if not isinstance(mine, StatefulCapabilityTlv):
            return None
        if not isinstance(theirs, StatefulCapabilityTlv):
            return None
        return mine.flags & theirs.flags

    # -- internals ------------------------------------------------------------------------

    def _connection_made(self, now: float) -> list[Action]:
        """TCP is established (RFC 5440 §6.2): send Open, start the OpenWait timer."""
        if self.state is not State.IDLE:
            return []
        self.state = State.OPEN_WAIT
        self._open_wait_at = now + self.config.open_wait
        return [self._send(Open(self.local_open), now)]

    def _receive(self, data: bytes, now: float) -> list[Action]:
        """Bytes from TCP; any split."""
        if self.state is State.IDLE:
            return []
        try:
            frames = self._framer.feed(data)
        except DecodeError as e:
            return self._malformed(e, now)
        out: list[Action] = []
        for frame in frames:
            if self.state is State.IDLE:
                break
            try:
                msg = decode_message(frame)
            except DecodeError as e:
                out.extend(self._bad_message(e, now))
                continue
            out.extend(self._message(msg, now))
        if self._framer.error is not None and self.state is not State.IDLE:
            out.extend(self._malformed(self._framer.error, now))
        return out

    def _timers(self, now: float) -> list[Action]:
        """Run the timers that are due at ``now``."""
        out: list[Action] = []
        if self.state is State.OPEN_WAIT and _due(self._open_wait_at, now):
            out.append(self._send(PCErr.of(ERR_NO_OPEN), now))
            out.append(self._disconnect("OpenWait timer expired"))
        elif self.state is State.KEEP_WAIT and _due(self._keep_wait_at, now):
            out.append(self._send(PCErr.of(ERR_NO_KEEPALIVE), now))
            out.append(self._disconnect("KeepWait timer expired"))
        elif self.state is State.UP:
            if _due(self._dead_at, now):
                out.extend(self._close(CloseReason.DEADTIMER_EXPIRED, now, "DeadTimer expired"))
            elif _due(self._keepalive_at, now):
                out.append(self._send(Keepalive(), now))
        return out

    def _send_message(self, msg: AnyMessage, now: float) -> list[Action]:
        """An application message (PCReq, PCRep, PCNtf, PCErr) on an Up session."""
        if self.state is not State.UP:
            raise RuntimeError(f"PCEP session with {self.peer} is {self.state.value}, not Up")
        if isinstance(msg, PCReq):
            self.pending.update(r.rp.request_id for r in msg.requests)
        return [self._send(msg, now)]

    def _send(self, msg: AnyMessage, now: float) -> Send:
        self.counters.tx += 1
        if isinstance(msg, Keepalive):
            self.counters.keepalives_tx += 1
        if isinstance(msg, PCErr):
            self.counters.errors_tx += 1
        if self.state is State.UP and self.local_open.keepalive:
            self._keepalive_at = now + self.local_open.keepalive
        return Send(msg.encode(), msg)

    def _disconnect(self, reason: str) -> Disconnect:
        self._to_idle(reason)
        return Disconnect(reason)

    def _to_idle(self, reason: str) -> None:
        self.state = State.IDLE
        self.close_reason = reason
        self._open_wait_at = self._keep_wait_at = self._dead_at = self._keepalive_at = None
        self.up_since = None

    def _close(self, reason: int, now: float, text: str) -> list[Action]:
        msg = Close(CloseObject(reason=reason))
        return [self._send(msg, now), self._disconnect(f"{text} (Close reason {reason})")]

    def _malformed(self, e: DecodeError, now: float) -> list[Action]:
        """The stream cannot be framed any more."""
        self.counters.malformed += 1
        if self.state is State.UP:
            return self._close(CloseReason.MALFORMED_MESSAGE, now, f"malformed message: {e}")
        return [
            self._send(PCErr.of(ERR_INVALID_OPEN), now),
            self._disconnect(f"invalid message before Up: {e}"),
        ]

    def _bad_message(self, e: DecodeError, now: float) -> list[Action]:
        """A framed message whose body does not decode."""
        if self.state is not State.UP:
            return self._malformed(e, now)
        if e.code is None:
            return self._malformed(e, now)
        self.counters.malformed += 1
        self._rx_alive(now)
        rps = (e.rp,) if isinstance(e, RequestError) else ()
        return [self._send(PCErr.of(e.code, rps=rps), now)]

    def _rx_alive(self, now: float) -> None:
        self.counters.rx += 1
        if self.state is State.UP and self._peer_deadtimer():
            self._dead_at = now + self._peer_deadtimer()

    def _peer_deadtimer(self) -> int:
        """The peer's DeadTimer, 0 (none runs) when it sends no Keepalives: RFC 5440 §7.3
        ignores the DeadTimer of an Open whose Keepalive is 0."""
        peer = self.peer_open
        return peer.deadtimer if peer is not None and peer.keepalive else 0

    def _message(self, msg: AnyMessage, now: float) -> list[Action]:
        handler = _TABLE.get((self.state, _event_of(msg)))
        if handler is None:
            return self._unexpected(msg, now)
        return handler(self, msg, now)

    def _unexpected(self, msg: AnyMessage, now: float) -> list[Action]:
        self.counters.rx += 1
        if isinstance(msg, Close):
            self._to_idle(f"peer closed (reason {msg.close.reason})")
            return [Disconnect(self.close_reason)]
        if self.state in (State.OPEN_WAIT, State.KEEP_WAIT):
            return [
                self._send(PCErr.of(ERR_INVALID_OPEN), now),
                self._disconnect(f"{type(msg).__name__} before the session was up"),
            ]
        # UP: an unknown message type, or one that this role does not take
        self.counters.unknown_messages += 1
        self._rx_alive(now)
        if self._unknown_msgs.add(now) > self.config.max_unknown_messages:
            return self._close(
                CloseReason.TOO_MANY_UNKNOWN_MESSAGES, now, "too many unrecognised messages"
            )
        return []

    # OpenWait / KeepWait --------------------------------------------------------------

    def _on_open(self, msg: AnyMessage, now: float) -> list[Action]:
        assert isinstance(msg, Open)
        self.counters.rx += 1
        peer = msg.open
        if self.remote_ok:  # a second Open once accepted
            return [
                self._send(PCErr.of(ERR_INVALID_OPEN), now),
                self._disconnect("second Open after acceptance"),
            ]
        if not self.config.acceptable(peer):
            if not self.config.negotiate:
                return [
                    self._send(PCErr.of(ERR_NON_NEGOTIABLE), now),
                    self._disconnect(f"unacceptable Open {peer.keepalive}/{peer.deadtimer}"),
                ]
            self.open_retry += 1
            if self.open_retry > 1:
                return [
                    self._send(PCErr.of(ERR_SECOND_OPEN_UNACCEPTABLE), now),
                    self._disconnect("second Open still unacceptable"),
                ]
            self._open_wait_at = now + self.config.open_wait
            return [self._send(PCErr.of(ERR_NEGOTIABLE, open=self.config.proposal(peer)), now)]
        self.peer_open = peer
        self.remote_ok = True
        out: list[Action] = [self._send(Keepalive(), now)]
        if self.local_ok:
            out.extend(self._up(now))
        else:
            self.state = State.KEEP_WAIT
            self._keep_wait_at = now + self.config.keep_wait
        return out

    def _on_keepalive_open_wait(self, msg: AnyMessage, now: float) -> list[Action]:
        """A Keepalive in OpenWait acknowledges our Open only once the peer's own Open came
        (it was unacceptable and we proposed other values, §6.2): before that the peer
        broke the order of Appendix A, PCErr (1, 1) and close."""
        if self.open_retry == 0:
            return self._unexpected(msg, now)
        return self._on_keepalive_wait(msg, now)

    def _on_keepalive_wait(self, msg: AnyMessage, now: float) -> list[Action]:
        self.counters.rx += 1
        self.counters.keepalives_rx += 1
        self.local_ok = True
        if self.remote_ok:
            return self._up(now)
        return []

    def _on_pcerr_wait(self, msg: AnyMessage, now: float) -> list[Action]:
        """PCErr during establishment: (1, 4) with an OPEN proposing values (§6.2)."""
        assert isinstance(msg, PCErr)
        self.counters.rx += 1
        self.counters.errors_rx += 1
        if ERR_NEGOTIABLE in msg.codes and msg.open is not None and not self.local_ok:
            proposal = msg.open
            if proposal.keepalive == 0 or proposal.deadtimer >= proposal.keepalive:
                self.local_open = replace(
                    self.local_open, keepalive=proposal.keepalive, deadtimer=proposal.deadtimer
                )
                if self.state is State.KEEP_WAIT:
                    self._keep_wait_at = now + self.config.keep_wait
                return [self._send(Open(self.local_open), now)]
            return [
                self._send(PCErr.of(ERR_PCERR_UNACCEPTABLE), now),
                self._disconnect("peer proposed unacceptable session characteristics"),
            ]
        self._to_idle(f"PCErr {msg.codes} during session establishment")
        return [Disconnect(self.close_reason)]

    def _up(self, now: float) -> list[Action]:
        assert self.peer_open is not None
        self.state = State.UP
        self.up_since = now
        self._open_wait_at = self._keep_wait_at = None
        if self._peer_deadtimer():
            self._dead_at = now + self._peer_deadtimer()
        if self.local_open.keepalive:
            self._keepalive_at = now + self.local_open.keepalive
        return [SessionUp(self.local_open, self.peer_open)]

    # Up ----------------------------------------------------------------------------

    def _on_keepalive_up(self, msg: AnyMessage, now: float) -> list[Action]:
        self._rx_alive(now)
        self.counters.keepalives_rx += 1
        return []

    def _on_close_up(self, msg: AnyMessage, now: float) -> list[Action]:
        assert isinstance(msg, Close)
        self.counters.rx += 1
        self._to_idle(f"peer closed (reason {msg.close.reason})")
        return [Disconnect(self.close_reason)]

    def _on_pcreq(self, msg: AnyMessage, now: float) -> list[Action]:
        """PCE: answer malformed requests (no END-POINTS, P flag cleared) and requests with
        unprocessable objects (P set, RFC 5440 §7.2) with a PCErr naming their RP; deliver
        the others, so one bad request does not leave the good ones unanswered."""
        assert isinstance(msg, PCReq)
        self._rx_alive(now)
        if self.role is not Role.PCE:
            return self._unexpected_counted(now)
        self.counters.requests_rx += len(msg.requests) + len(msg.rejected)
        out: list[Action] = []
        for bad in msg.rejected:
            self.counters.malformed += 1
            out.append(self._send(PCErr.of(bad.code, rps=(bad.rp,)), now))
        good = []
        for req in msg.requests:
            code = req.unprocessable()
            if code is None and self._pst_of(req) not in self.config.path_setup_types:
                out.append(self._send(PCErr.of(ERR_UNSUPPORTED_PST, rps=(req.rp,)), now))
                continue
            if code is None:
                good.append(req)
                continue
            out.append(self._send(PCErr.of(code, rps=(req.rp,)), now))
            out.extend(self._count_unknown_request(now))
            if self.state is State.IDLE:
                return out
        if good:
            out.append(Deliver(replace(msg, requests=tuple(good), rejected=())))
        return out

    def _on_pcrep(self, msg: AnyMessage, now: float) -> list[Action]:
        """PCC: a reply for a request we did not send is an unknown request (§6.9)."""
        assert isinstance(msg, PCRep)
        self._rx_alive(now)
        if self.role is not Role.PCC:
            return self._unexpected_counted(now)
        self.counters.replies_rx += len(msg.responses)
        out: list[Action] = []
        known = []
        for resp in msg.responses:
            rid = resp.rp.request_id
            if rid in self.pending:
                self.pending.discard(rid)
                known.append(resp)
            else:
                out.append(self._send(PCErr.of(ERR_UNKNOWN_REQUEST, rps=(resp.rp,)), now))
                out.extend(self._count_unknown_request(now))
                if self.state is State.IDLE:
                    return out
        if known:
            out.append(Deliver(replace(msg, responses=tuple(known))))
        return out

    @staticmethod
    def _pst_of(req: Request) -> int:
        t = find_tlv(req.rp.tlvs, PathSetupTypeTlv)
        return t.pst if isinstance(t, PathSetupTypeTlv) else PathSetupType.RSVP_TE

    def _on_stateful(self, msg: AnyMessage, now: float) -> list[Action]:
        """PCRpt at a PCE, PCUpd and PCInitiate at a PCC (RFC 8231 §6, RFC 8281 §5): on a
        session that is not stateful a PCRpt is PCErr (19, 5) and a PCUpd (19, 2)
        (RFC 8231 §8.5); a PCInitiate needs the I flag on both sides; anything else (a
        message this role does not take) is unrecognised (RFC 5440 §6.9)."""
        self._rx_alive(now)
        flags = self.stateful
        takes = isinstance(msg, PCRpt) == (self.role is Role.PCE)
        if not takes:
            return self._unexpected_counted(now)
        if flags is None and isinstance(msg, PCRpt):
            return [self._send(PCErr.of(ERR_REPORT_NOT_STATEFUL), now)]
        if flags is None and isinstance(msg, PCUpd):
            return [self._send(PCErr.of(ERR_UPDATE_NOT_STATEFUL), now)]
        if isinstance(msg, PCInitiate) and not (flags or 0) & STATEFUL_FLAG_I:
            return self._unexpected_counted(now)
        return [Deliver(msg)]

    def _on_app_message(self, msg: AnyMessage, now: float) -> list[Action]:
        self._rx_alive(now)
        if isinstance(msg, PCErr):
            self.counters.errors_rx += 1
        return [Deliver(msg)]

    def _unexpected_counted(self, now: float) -> list[Action]:
        self.counters.unknown_messages += 1
        if self._unknown_msgs.add(now) > self.config.max_unknown_messages:
            return self._close(
                CloseReason.TOO_MANY_UNKNOWN_MESSAGES, now, "too many unrecognised messages"
            )
        return []

    def _count_unknown_request(self, now: float) -> list[Action]:
        self.counters.unknown_requests += 1
        if self._unknown_reqs.add(now) > self.config.max_unknown_requests:
            return self._close(
                CloseReason.TOO_MANY_UNKNOWN_REQUESTS, now, "too many unknown requests"
            )
        return []


def _due(t: float | None, now: float) -> bool:
    return t is not None and now >= t


def _event_of(msg: AnyMessage) -> str:
    if isinstance(msg, UnknownMessage):
        return "unknown"
    return type(msg).__name__


Handler = Callable[[Session, AnyMessage, float], list[Action]]

#: (state, received message) -> handler; a missing entry is :meth:`Session._unexpected`
#: (PCErr (1, 1) and close before Up; counted as unrecognised in Up, §6.9).
_TABLE: dict[tuple[State, str], Handler] = {
    (State.OPEN_WAIT, "Open"): Session._on_open,
    (State.OPEN_WAIT, "Keepalive"): Session._on_keepalive_open_wait,
    (State.OPEN_WAIT, "PCErr"): Session._on_pcerr_wait,
    (State.KEEP_WAIT, "Keepalive"): Session._on_keepalive_wait,
    (State.KEEP_WAIT, "PCErr"): Session._on_pcerr_wait,
    (State.KEEP_WAIT, "Open"): Session._on_open,
    (State.UP, "Keepalive"): Session._on_keepalive_up,
    (State.UP, "Close"): Session._on_close_up,
    (State.UP, "PCReq"): Session._on_pcreq,
    (State.UP, "PCRep"): Session._on_pcrep,
    (State.UP, "PCNtf"): Session._on_app_message,
    (State.UP, "PCErr"): Session._on_app_message,
    (State.UP, "PCRpt"): Session._on_stateful,
    (State.UP, "PCUpd"): Session._on_stateful,
    (State.UP, "PCInitiate"): Session._on_stateful,
}

__all__ = [
    "Counters",
    "Role",
    "Session",
    "SessionConfig",
    "State",
]
