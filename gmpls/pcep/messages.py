"""PCEP messages (RFC 5440 §6): the common header and the message grammars.

Common header (§6.1)::

    Ver(3)=1 Flags(5) | Message-Type(8) | Message-Length(16, header included)

A message body is a run of objects (:mod:`gmpls.pcep.objects`); each message class groups
them following its RBNF grammar (§6.2 to §6.8). The grammars are applied leniently on order
within a request/response (a PCE accepts an LSPA after the BANDWIDTH) but strictly on
what is mandatory: a missing RP is (6, 1), an Open message without an OPEN object
(1, 1) — raised as :class:`~gmpls.errors.DecodeError` with that ``code``; a request of a
PCReq without END-POINTS (6, 3) or with an RP or END-POINTS lacking the P flag (10, 1) is
set aside in :attr:`PCReq.rejected` with that code, the other requests decoded. Objects that
fit nowhere (unknown classes in particular) are kept, in order, in ``others`` so the
session can apply the P-flag rules (§7.2) and an encoder can re-emit them.

A framing error (bad version, impossible length) raises a ``DecodeError`` without a
code: the stream cannot be trusted any more and the session closes with reason 3.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any, ClassVar, Protocol

from gmpls.errors import DecodeError, EncodeError
from gmpls.pcep.constants import (
    COMMON_HEADER_LEN,
    ERR_END_POINTS_MISSING,
    ERR_ERO_MISSING,
    ERR_INVALID_OPEN,
    ERR_LSP_MISSING,
    ERR_P_FLAG_NOT_SET,
    ERR_RP_MISSING,
    ERR_SRP_MISSING,
    MAX_MESSAGE_LEN,
    VERSION,
    MsgType,
)
from gmpls.pcep.objects import (
    RP,
    Bandwidth,
    CloseObject,
    EndPointsIpv4,
    EndPointsIpv6,
    Ero,
    ErrorObject,
    Iro,
    Lspa,
    LspObject,
    Metric,
    NoPath,
    Notification,
    OpenObject,
    PcepObject,
    Rro,
    Srp,
    Svec,
    decode_objects,
    unprocessable,
)
from gmpls.pcep.relay import relay_of
from gmpls.wire import Reader, u8, u16

EndPoints = EndPointsIpv4 | EndPointsIpv6


class Message(Protocol):
    @property
    def msg_type(self) -> int: ...

    def encode(self) -> bytes: ...


def _frame(msg_type: int, body: bytes, flags: int = 0) -> bytes:
    length = COMMON_HEADER_LEN + len(body)
    if length > MAX_MESSAGE_LEN:
        raise EncodeError("pcep.header.length", f"message of {length} bytes > 65535")
    return u8((VERSION << 5) | (flags & 0x1F)) + u8(msg_type) + u16(length) + body


def _enc(objs: tuple[PcepObject | None, ...] | list[PcepObject | None]) -> bytes:
    return b"".join(o.encode() for o in objs if o is not None)


class _Typed:
    __slots__ = ()
    TYPE: ClassVar[int]

    @property
    def msg_type(self) -> int:
        return self.TYPE


# Open, Keepalive, Close ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Open(_Typed):
    """RFC 5440 §6.2: <Open Message> ::= <Common Header> <OPEN>."""

    TYPE: ClassVar[int] = MsgType.OPEN
    open: OpenObject = field(default_factory=OpenObject)
    others: tuple[PcepObject, ...] = ()

    def encode(self) -> bytes:
        return _frame(self.TYPE, self.open.encode() + _enc(self.others))

    @classmethod
    def from_objects(cls, objs: list[PcepObject], where: str) -> Open:
        if not objs or not isinstance(objs[0], OpenObject):
            raise DecodeError(where, "Open message without an OPEN object", ERR_INVALID_OPEN)
        return cls(objs[0], tuple(objs[1:]))


@dataclass(frozen=True, slots=True)
class Keepalive(_Typed):
    """RFC 5440 §6.3: <Keepalive Message> ::= <Common Header>."""

    TYPE: ClassVar[int] = MsgType.KEEPALIVE
    others: tuple[PcepObject, ...] = ()

    def encode(self) -> bytes:
        return _frame(self.TYPE, _enc(self.others))

    @classmethod
    def from_objects(cls, objs: list[PcepObject], where: str) -> Keepalive:
        return cls(tuple(objs))


@dataclass(frozen=True, slots=True)
class Close(_Typed):
    """RFC 5440 §6.8: <Close Message> ::= <Common Header> <CLOSE>."""

    TYPE: ClassVar[int] = MsgType.CLOSE
    close: CloseObject = field(default_factory=CloseObject)
    others: tuple[PcepObject, ...] = ()

    def encode(self) -> bytes:
        return _frame(self.TYPE, self.close.encode() + _enc(self.others))

    @classmethod
    def from_objects(cls, objs: list[PcepObject], where: str) -> Close:
        if not objs or not isinstance(objs[0], CloseObject):
            raise DecodeError(where, "Close message without a CLOSE object")
        return cls(objs[0], tuple(objs[1:]))


# PCReq ---------------------------------------------------------------------------------


class RequestError(DecodeError):
    """A DecodeError about one request of a PCReq: ``rp`` is its RP object, so the PCErr
    can name the request (RFC 5440 §6.7 <request-id-list>)."""

    def __init__(self, field: str, reason: str, code: tuple[int, int] | None, rp: RP) -> None:
        super().__init__(field, reason, code)
        self.rp = rp


@dataclass(frozen=True, slots=True)
class Request:
    """RFC 5440 §6.4::

    <request> ::= <RP> <END-POINTS> [<LSPA>] [<BANDWIDTH>] [<metric-list>]
                  [<RRO>[<BANDWIDTH>]] [<IRO>] [<LOAD-BALANCING>]
    """

    rp: RP
    endpoints: EndPoints
    lspa: Lspa | None = None
    bandwidth: Bandwidth | None = None
    metrics: tuple[Metric, ...] = ()
    rro: Rro | None = None
    rro_bandwidth: Bandwidth | None = None
    iro: Iro | None = None
    others: tuple[PcepObject, ...] = ()

    def objects(self) -> list[PcepObject | None]:
        if self.rro_bandwidth is not None and self.rro is None:
            raise EncodeError("pcep.PCReq.request.rro_bandwidth", "a BANDWIDTH after no RRO")
        return [
            self.rp,
            self.endpoints,
            self.lspa,
            self.bandwidth,
            *self.metrics,
            self.rro,
            self.rro_bandwidth,
            self.iro,
            *self.others,
        ]

    def unprocessable(self) -> tuple[int, int] | None:
        """The PCErr code owed for the first object with P set this PCE cannot process."""
        for o in self.others:
            code = unprocessable(o)
            if code is not None:
                return code
        return None


def _request(objs: list[PcepObject], where: str) -> Request:
    rp = objs[0]
    assert isinstance(rp, RP)
    if not rp.p:
        raise RequestError(f"{where}.RP.p", "RP object without the P flag", ERR_P_FLAG_NOT_SET, rp)
    endpoints: EndPoints | None = None
    lspa: Lspa | None = None
    bw: Bandwidth | None = None
    rro_bw: Bandwidth | None = None
    rro: Rro | None = None
    iro: Iro | None = None
    metrics: list[Metric] = []
    others: list[PcepObject] = []
    for o in objs[1:]:
        if isinstance(o, (EndPointsIpv4, EndPointsIpv6)) and endpoints is None:
            endpoints = o
        elif isinstance(o, Lspa) and lspa is None:
            lspa = o
        elif isinstance(o, Bandwidth) and rro is not None and rro_bw is None:
            rro_bw = o
        elif isinstance(o, Bandwidth) and rro is None and bw is None:
            bw = o
        elif isinstance(o, Metric):
            metrics.append(o)
        elif isinstance(o, Rro) and rro is None:
            rro = o
        elif isinstance(o, Iro) and iro is None:
            iro = o
        else:
            others.append(o)
    if endpoints is None:
        raise RequestError(
            f"{where}.END-POINTS",
            f"request {rp.request_id} without an END-POINTS object",
            ERR_END_POINTS_MISSING,
            rp,
        )
    if not endpoints.p:
        raise RequestError(
            f"{where}.END-POINTS.p", "END-POINTS object without the P flag", ERR_P_FLAG_NOT_SET, rp
        )
    return Request(rp, endpoints, lspa, bw, tuple(metrics), rro, rro_bw, iro, tuple(others))


def _split_at_rp(objs: list[PcepObject]) -> tuple[list[PcepObject], list[list[PcepObject]]]:
    """Objects before the first RP, then one group per RP (the RP first)."""
    head: list[PcepObject] = []
    groups: list[list[PcepObject]] = []
    for o in objs:
        if isinstance(o, RP):
            groups.append([o])
        elif groups:
            groups[-1].append(o)
        else:
            head.append(o)
    return head, groups


@dataclass(frozen=True, slots=True)
class RejectedRequest:
    """A request of a received PCReq that breaks its grammar (no END-POINTS, P flag
    cleared): its RP and the PCErr code owed for it (RFC 5440 §6.7 names it by its RP)."""

    rp: RP
    code: tuple[int, int]
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PCReq(_Typed):
    """RFC 5440 §6.4: <PCReq Message> ::= <Common Header> [<svec-list>] <request-list>.

    One malformed request does not spoil the others: the decoder keeps the well-formed
    requests in ``requests`` and the others in ``rejected`` (never encoded), so the PCE
    answers the first ones and sends a PCErr naming each of the second."""

    TYPE: ClassVar[int] = MsgType.PCREQ
    requests: tuple[Request, ...]
    svecs: tuple[Svec, ...] = ()
    others: tuple[PcepObject, ...] = ()
    rejected: tuple[RejectedRequest, ...] = ()

    def encode(self) -> bytes:
        objs: list[PcepObject | None] = [*self.svecs, *self.others]
        for req in self.requests:
            objs.extend(req.objects())
        return _frame(self.TYPE, _enc(objs))

    @classmethod
    def from_objects(cls, objs: list[PcepObject], where: str) -> PCReq:
        head, groups = _split_at_rp(objs)
        svecs = tuple(o for o in head if isinstance(o, Svec))
        others = tuple(o for o in head if not isinstance(o, Svec))
        if not groups:
            raise DecodeError(f"{where}.RP", "PCReq without an RP object", ERR_RP_MISSING)
        requests: list[Request] = []
        rejected: list[RejectedRequest] = []
        for g in groups:
            try:
                requests.append(_request(g, where))
            except RequestError as e:
                assert e.code is not None
                rejected.append(RejectedRequest(e.rp, e.code, str(e)))
        return cls(tuple(requests), svecs, others, tuple(rejected))


# PCRep ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attributes:
    """RFC 5440 §6.5: <attribute-list> ::= [<LSPA>] [<BANDWIDTH>] [<metric-list>] [<IRO>]."""

    lspa: Lspa | None = None
    bandwidth: Bandwidth | None = None
    metrics: tuple[Metric, ...] = ()
    iro: Iro | None = None

    def objects(self) -> list[PcepObject | None]:
        return [self.lspa, self.bandwidth, *self.metrics, self.iro]


class _AttrBuilder:
    __slots__ = ("bandwidth", "iro", "lspa", "metrics")

    def __init__(self) -> None:
        self.lspa: Lspa | None = None
        self.bandwidth: Bandwidth | None = None
        self.metrics: list[Metric] = []
        self.iro: Iro | None = None

    def take(self, o: PcepObject) -> bool:
        if isinstance(o, Lspa) and self.lspa is None:
            self.lspa = o
        elif isinstance(o, Bandwidth) and self.bandwidth is None:
            self.bandwidth = o
        elif isinstance(o, Metric):
            self.metrics.append(o)
        elif isinstance(o, Iro) and self.iro is None:
            self.iro = o
        else:
            return False
        return True

    def build(self) -> Attributes:
        return Attributes(self.lspa, self.bandwidth, tuple(self.metrics), self.iro)


@dataclass(frozen=True, slots=True)
class Path:
    """RFC 5440 §6.5: <path> ::= <ERO><attribute-list>."""

    ero: Ero
    attributes: Attributes = field(default_factory=Attributes)


@dataclass(frozen=True, slots=True)
class Response:
    """RFC 5440 §6.5: <response> ::= <RP> [<NO-PATH>] [<attribute-list>] [<path-list>]."""

    rp: RP
    no_path: NoPath | None = None
    attributes: Attributes = field(default_factory=Attributes)
    paths: tuple[Path, ...] = ()
    others: tuple[PcepObject, ...] = ()

    @property
    def relay(self) -> tuple[IPv4Address, ...]:
        """The key relay path of this response (site IDs, head site first), from the
        RELAY-PATH TLV of its RP object (:mod:`gmpls.pcep.relay`); ``()`` without one."""
        return relay_of(self.rp.tlvs)

    def objects(self) -> list[PcepObject | None]:
        out: list[PcepObject | None] = [self.rp, self.no_path, *self.attributes.objects()]
        for p in self.paths:
            out.append(p.ero)
            out.extend(p.attributes.objects())
        out.extend(self.others)
        return out


def _response(objs: list[PcepObject]) -> Response:
    rp = objs[0]
    assert isinstance(rp, RP)
    no_path: NoPath | None = None
    attrs = _AttrBuilder()
    paths: list[tuple[Ero, _AttrBuilder]] = []
    others: list[PcepObject] = []
    for o in objs[1:]:
        if isinstance(o, NoPath) and no_path is None and not paths:
            no_path = o
        elif isinstance(o, Ero):
            paths.append((o, _AttrBuilder()))
        elif not (paths[-1][1] if paths else attrs).take(o):
            others.append(o)
    return Response(
        rp, no_path, attrs.build(), tuple(Path(e, a.build()) for e, a in paths), tuple(others)
    )


@dataclass(frozen=True, slots=True)
class PCRep(_Typed):
    """RFC 5440 §6.5: <PCRep Message> ::= <Common Header> <response-list>."""

    TYPE: ClassVar[int] = MsgType.PCREP
    responses: tuple[Response, ...]
    others: tuple[PcepObject, ...] = ()

    def encode(self) -> bytes:
        objs: list[PcepObject | None] = list(self.others)
        for r in self.responses:
            objs.extend(r.objects())
        return _frame(self.TYPE, _enc(objs))

    @classmethod
    def from_objects(cls, objs: list[PcepObject], where: str) -> PCRep:
        head, groups = _split_at_rp(objs)
        if not groups:
            raise DecodeError(f"{where}.RP", "PCRep without an RP object", ERR_RP_MISSING)
        return cls(tuple(_response(g) for g in groups), tuple(head))


# PCErr and PCNtf -----------------------------------------------------------------------


def _encode_groups(
    groups: Iterable[tuple[tuple[PcepObject, ...], tuple[PcepObject, ...]]], where: str, kind: str
) -> list[PcepObject | None]:
    """The objects of a list of ``[<request-id-list>] <kind-list>`` groups (PCErr §6.7,
    PCNtf §6.6): every group has a ``kind`` object, only the first may lack RPs."""
    objs: list[PcepObject | None] = []
    for n, (rps, items) in enumerate(groups):
        if not items:
            raise EncodeError(f"{where}.{kind}", f"a group without {kind}")
        if n and not rps:
            raise EncodeError(f"{where}.rps", "only the first group may lack RPs")
        objs.extend(rps)
        objs.extend(items)
    return objs


def _decode_groups(
    objs: list[PcepObject], kind: type, where: str, name: str
) -> tuple[list[tuple[tuple[Any, ...], tuple[Any, ...]]], list[PcepObject]]:
    """The ``(RPs, kind objects)`` groups of a PCErr or PCNtf, and the objects that are
    neither; a message without a ``kind`` object is an error. SRP objects name stateful
    requests the way RPs name requests (RFC 8231 §6.3 <stateful-request-id-list>)."""
    groups: list[tuple[tuple[Any, ...], tuple[Any, ...]]] = []
    rps: list[PcepObject] = []
    items: list[PcepObject] = []
    rest: list[PcepObject] = []
    for o in objs:
        if isinstance(o, (RP, Srp)):
            if items:
                groups.append((tuple(rps), tuple(items)))
                rps, items = [], []
            rps.append(o)
        elif isinstance(o, kind):
            items.append(o)
        else:
            rest.append(o)
    if not items:
        raise DecodeError(f"{where}.{name}", f"{where} without a {name} object")
    groups.append((tuple(rps), tuple(items)))
    return groups, rest


@dataclass(frozen=True, slots=True)
class ErrorBlock:
    """RFC 5440 §6.7: <error> ::= [<request-id-list>] <error-obj-list>; RFC 8231 §6.3 adds
    [<stateful-request-id-list>] (SRP objects) in place of the RPs."""

    errors: tuple[ErrorObject, ...]
    rps: tuple[RP | Srp, ...] = ()


@dataclass(frozen=True, slots=True)
class PCErr(_Typed):
    """RFC 5440 §6.7::

    <PCErr Message> ::= <Common Header> ( <error-obj-list> [<Open>] ) | <error> [<error-list>]
    """

    TYPE: ClassVar[int] = MsgType.PCERR
    blocks: tuple[ErrorBlock, ...]
    open: OpenObject | None = None
    others: tuple[PcepObject, ...] = ()

    @classmethod
    def of(
        cls, code: tuple[int, int], rps: tuple[RP, ...] = (), open: OpenObject | None = None
    ) -> PCErr:
        """One PCEP-ERROR ``code``, optionally about requests ``rps`` (P flag cleared)."""
        rps = tuple(RP(r.request_id, r.flags, r.tlvs, p=False) for r in rps)
        return cls((ErrorBlock((ErrorObject(*code),), rps),), open)

    @property
    def codes(self) -> list[tuple[int, int]]:
        return [e.code for b in self.blocks for e in b.errors]

    def encode(self) -> bytes:
        groups = ((b.rps, b.errors) for b in self.blocks)
        objs = _encode_groups(groups, "pcep.PCErr", "PCEP-ERROR")
        return _frame(self.TYPE, _enc([*objs, self.open, *self.others]))

    @classmethod
    def from_objects(cls, objs: list[PcepObject], where: str) -> PCErr:
        groups, rest = _decode_groups(objs, ErrorObject, where, "PCEP-ERROR")
        open_ = next((o for o in rest if isinstance(o, OpenObject)), None)
        others = tuple(o for o in rest if o is not open_)
        return cls(tuple(ErrorBlock(errs, rps) for rps, errs in groups), open_, others)


@dataclass(frozen=True, slots=True)
class Notify:
    """RFC 5440 §6.6: <notify> ::= [<request-id-list>] <notification-list>."""

    notifications: tuple[Notification, ...]
    rps: tuple[RP, ...] = ()


@dataclass(frozen=True, slots=True)
class PCNtf(_Typed):
    """RFC 5440 §6.6: <PCNtf Message> ::= <Common Header> <notify-list>."""

    TYPE: ClassVar[int] = MsgType.PCNTF
    notifies: tuple[Notify, ...]
    others: tuple[PcepObject, ...] = ()

    def encode(self) -> bytes:
        groups = ((n.rps, n.notifications) for n in self.notifies)
        objs = _encode_groups(groups, "pcep.PCNtf", "NOTIFICATION")
        return _frame(self.TYPE, _enc([*objs, *self.others]))

    @classmethod
    def from_objects(cls, objs: list[PcepObject], where: str) -> PCNtf:
        groups, rest = _decode_groups(objs, Notification, where, "NOTIFICATION")
        return cls(tuple(Notify(ntfs, rps) for rps, ntfs in groups), tuple(rest))


# PCRpt, PCUpd, PCInitiate (RFC 8231 §6.1, §6.2, RFC 8281 §5.1) ----------------------------


@dataclass(frozen=True, slots=True)
class LspEntry:
    """One LSP of a stateful message, the three grammars in one shape::

        <state-report>   ::= [<SRP>] <LSP> <path>                          (PCRpt)
        <update-request> ::= <SRP> <LSP> <path>                            (PCUpd)
        <PCE-initiated-lsp-request> ::= <SRP> <LSP> [<END-POINTS>] <ERO>
                                        [<attribute-list>] | <SRP> <LSP>   (PCInitiate)
        <path> ::= <intended-path> [<actual-attribute-list> <actual-path>]
                   <intended-attribute-list>

    The intended path is the ERO, the actual path the RRO, the attribute lists those of
    RFC 5440 (:class:`Attributes`); ``actual`` is the list before the RRO. Each message
    checks which parts it requires (:meth:`PCRpt.from_objects` and the others)."""

    lsp: LspObject
    srp: Srp | None = None
    ero: Ero | None = None
    attributes: Attributes = field(default_factory=Attributes)
    rro: Rro | None = None
    actual: Attributes = field(default_factory=Attributes)
    endpoints: EndPoints | None = None
    others: tuple[PcepObject, ...] = ()

    @property
    def relay(self) -> tuple[IPv4Address, ...]:
        """The key relay path of this LSP, from the RELAY-PATH TLV of its LSP object
        (:mod:`gmpls.pcep.relay`); ``()`` without one."""
        return relay_of(self.lsp.tlvs)

    def objects(self) -> list[PcepObject | None]:
        out: list[PcepObject | None] = [self.srp, self.lsp, self.endpoints, self.ero]
        if self.rro is not None:
            out += [*self.actual.objects(), self.rro]
        return [*out, *self.attributes.objects(), *self.others]


def _lsp_entry(objs: list[PcepObject]) -> LspEntry | None:
    """The entry of one group of :func:`_split_lsp_entries`; None without an LSP object."""
    srp = objs[0] if isinstance(objs[0], Srp) else None
    lsp = next((o for o in objs if isinstance(o, LspObject)), None)
    if lsp is None:
        return None
    ero: Ero | None = None
    rro: Rro | None = None
    endpoints: EndPoints | None = None
    actual = Attributes()
    attrs = _AttrBuilder()
    others: list[PcepObject] = []
    for o in objs:
        if o is srp or o is lsp:
            continue
        if isinstance(o, Ero) and ero is None:
            ero = o
        elif isinstance(o, Rro) and rro is None:
            rro, actual, attrs = o, attrs.build(), _AttrBuilder()
        elif isinstance(o, (EndPointsIpv4, EndPointsIpv6)) and endpoints is None and ero is None:
            endpoints = o
        elif not attrs.take(o):
            others.append(o)
    return LspEntry(lsp, srp, ero, attrs.build(), rro, actual, endpoints, tuple(others))


def _split_lsp_entries(
    objs: list[PcepObject], where: str
) -> tuple[list[PcepObject], list[LspEntry]]:
    """Objects before the first SRP or LSP, then the entries: an SRP opens one, an LSP
    opens one unless it follows the SRP that opened the current one. A group without an
    LSP object is (6, 8) (RFC 8231 §8.5)."""
    head: list[PcepObject] = []
    groups: list[list[PcepObject]] = []
    for o in objs:
        opens = isinstance(o, Srp) or (
            isinstance(o, LspObject)
            and (not groups or any(isinstance(x, LspObject) for x in groups[-1]))
        )
        if opens:
            groups.append([o])
        elif groups:
            groups[-1].append(o)
        else:
            head.append(o)
    entries = []
    for g in groups:
        entry = _lsp_entry(g)
        if entry is None:
            raise DecodeError(f"{where}.LSP", f"{where} without an LSP object", ERR_LSP_MISSING)
        entries.append(entry)
    if not entries:
        raise DecodeError(f"{where}.LSP", f"{where} without an LSP object", ERR_LSP_MISSING)
    return head, entries


def _require(entries: list[LspEntry], where: str, srp: bool, ero: bool) -> None:
    """RFC 8231 §8.5 mandatory objects: SRP (6, 10), ERO (6, 9); RFC 8281 §5.1: a
    PCInitiate deletion (SRP R flag) has no ERO."""
    for e in entries:
        if srp and e.srp is None:
            raise DecodeError(f"{where}.SRP", f"{where} without an SRP object", ERR_SRP_MISSING)
        removal = e.srp is not None and e.srp.remove
        if ero and e.ero is None and not removal:
            raise DecodeError(f"{where}.ERO", f"{where} without an ERO object", ERR_ERO_MISSING)


class _Stateful(_Typed):
    """A message that is a list of :class:`LspEntry` (PCRpt, PCUpd, PCInitiate)."""

    __slots__ = ()
    #: whether every entry needs an SRP object
    NEEDS_SRP: ClassVar[bool]
    entries: tuple[LspEntry, ...]
    others: tuple[PcepObject, ...]

    def encode(self) -> bytes:
        objs: list[PcepObject | None] = list(self.others)
        for e in self.entries:
            objs.extend(e.objects())
        return _frame(self.TYPE, _enc(objs))

    @classmethod
    def from_objects(cls, objs: list[PcepObject], where: str) -> Any:
        head, entries = _split_lsp_entries(objs, where)
        _require(entries, where, cls.NEEDS_SRP, ero=True)
        return cls(tuple(entries), tuple(head))  # type: ignore[call-arg]


@dataclass(frozen=True, slots=True)
class PCRpt(_Stateful):
    """RFC 8231 §6.1: <PCRpt Message> ::= <Common Header> <state-report-list>."""

    TYPE: ClassVar[int] = MsgType.PCRPT
    NEEDS_SRP: ClassVar[bool] = False
    entries: tuple[LspEntry, ...]
    others: tuple[PcepObject, ...] = ()


@dataclass(frozen=True, slots=True)
class PCUpd(_Stateful):
    """RFC 8231 §6.2: <PCUpd Message> ::= <Common Header> <update-request-list>."""

    TYPE: ClassVar[int] = MsgType.PCUPD
    NEEDS_SRP: ClassVar[bool] = True
    entries: tuple[LspEntry, ...]
    others: tuple[PcepObject, ...] = ()


@dataclass(frozen=True, slots=True)
class PCInitiate(_Stateful):
    """RFC 8281 §5.1: <PCInitiate Message> ::= <Common Header>
    <PCE-initiated-lsp-list>."""

    TYPE: ClassVar[int] = MsgType.PCINITIATE
    NEEDS_SRP: ClassVar[bool] = True
    entries: tuple[LspEntry, ...]
    others: tuple[PcepObject, ...] = ()


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    """A message type this codec does not know (RFC 5440 §6.9 counts them per minute)."""

    type: int
    body: bytes = b""

    @property
    def msg_type(self) -> int:
        return self.type

    def encode(self) -> bytes:
        return _frame(self.type, self.body)


_MESSAGES: dict[int, type] = {
    MsgType.OPEN: Open,
    MsgType.KEEPALIVE: Keepalive,
    MsgType.PCREQ: PCReq,
    MsgType.PCREP: PCRep,
    MsgType.PCNTF: PCNtf,
    MsgType.PCERR: PCErr,
    MsgType.CLOSE: Close,
    MsgType.PCRPT: PCRpt,
    MsgType.PCUPD: PCUpd,
    MsgType.PCINITIATE: PCInitiate,
}

AnyMessage = (
    Open
    | Keepalive
    | PCReq
    | PCRep
    | PCNtf
    | PCErr
    | Close
    | PCRpt
    | PCUpd
    | PCInitiate
    | UnknownMessage
)


def frame_length(buf: bytes | bytearray) -> int | None:
    """Length of the message at the start of ``buf`` from its common header, None if
    fewer than four bytes are there. Raises DecodeError (no code) on a header that cannot
    start a message (wrong version, length below 4)."""
    if len(buf) < COMMON_HEADER_LEN:
        return None
    version = buf[0] >> 5
    if version != VERSION:
        raise DecodeError("pcep.header.version", f"version {version} is not {VERSION}")
    length = int.from_bytes(buf[2:4], "big")
    if length < COMMON_HEADER_LEN:
        raise DecodeError("pcep.header.length", f"{length} < {COMMON_HEADER_LEN}")
    return length


def decode_message(data: bytes) -> AnyMessage:
    """Decode exactly one PCEP message (RFC 5440 §6)."""
    length = frame_length(data)
    if length is None:
        raise DecodeError("pcep.header", f"truncated: {len(data)} bytes")
    if length != len(data):
        raise DecodeError("pcep.header.length", f"says {length}, message has {len(data)} bytes")
    mtype = data[1]
    cls = _MESSAGES.get(mtype)
    if cls is None:
        return UnknownMessage(mtype, bytes(data[4:]))
    where = f"pcep.{MsgType(mtype).name}"
    objs = decode_objects(Reader(bytes(data), where, COMMON_HEADER_LEN))
    msg: AnyMessage = cls.from_objects(objs, where)  # type: ignore[attr-defined]
    return msg


class Framer:
    """Splits a TCP byte stream into whole PCEP messages (push bytes, pull frames)."""

    __slots__ = ("_buf", "error")

    def __init__(self) -> None:
        self._buf = bytearray()
        #: the framing error met after the frames last returned (the stream is lost)
        self.error: DecodeError | None = None

    def feed(self, data: bytes) -> list[bytes]:
        """Append ``data``; return the complete frames now available (raw bytes).

        When the stream stops being framed correctly, the frames before the damage are
        returned first and :attr:`error` is set; the next call raises it. A call that
        finds the damage before any frame raises DecodeError (no code) at once.
        """
        if self.error is not None:
            raise self.error
        self._buf += data
        out: list[bytes] = []
        while True:
            try:
                n = frame_length(self._buf)
            except DecodeError as e:
                if out:
                    self.error = e
                    return out
                self.error = e
                raise
            if n is None or len(self._buf) < n:
                return out
            out.append(bytes(self._buf[:n]))
            del self._buf[:n]

    @property
    def pending(self) -> int:
        return len(self._buf)


__all__ = [
    "AnyMessage",
    "Attributes",
    "Close",
    "EndPoints",
    "ErrorBlock",
    "Framer",
    "Keepalive",
    "LspEntry",
    "Message",
    "Notify",
    "Open",
    "PCErr",
    "PCInitiate",
    "PCNtf",
    "PCRep",
    "PCReq",
    "PCRpt",
    "PCUpd",
    "Path",
    "RejectedRequest",
    "Request",
    "RequestError",
    "Response",
    "UnknownMessage",
    "decode_message",
    "frame_length",
]
