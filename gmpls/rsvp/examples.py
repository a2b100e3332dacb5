"""The paper's RSVP-TE messages (docs/design.md#signalling-and-key-synchronisation): the Path
tn1 sends to tn2 for the QE LSP
tn1 → tn5 over the Fig. 9 ERO, and the Resv tn2 returns. Used by the tshark tests, the
benchmarks and the fuzzer as golden seeds.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from gmpls import ero, qe
from gmpls.rsvp import constants as C
from gmpls.rsvp.message import Message
from gmpls.rsvp.objects import (
    AdminStatus,
    ErrorSpec,
    ErrorSpecIfId,
    ExplicitRoute,
    FilterSpec,
    Flowspec,
    GeneralizedLabel,
    GeneralizedLabelRequest,
    HelloRequest,
    IfIdTlv,
    LabelSet,
    MessageId,
    MessageIdAck,
    MessageIdList,
    MessageIdNack,
    RecordRoute,
    ResvConfirm,
    RsvpHopIfId,
    SenderTemplate,
    SenderTspec,
    SessionAttribute,
    SessionLspTunnelV4,
    StyleObj,
    TimeValues,
    TokenBucket,
)

TN = {i: IPv4Address(f"10.1.1.{i}") for i in range(1, 6)}
#: the lambda the PCE chose on every hop (RFC 6205 channel n=1, 193.2 THz)
LAMBDA = ero.lambda_label(1)
#: a filled session ID (ETSI 004 key_handle) as tn1 writes it for tn5
SESSION_ID = bytes(range(0xA0, 0xA0 + qe.SESSION_ID_LEN))
#: 10 Gb/s in bytes per second
BANDWIDTH = 1.25e9
TUNNEL_ID = 1
LSP_ID = 1


def fig9_ero(session_id: bytes = qe.ZERO_SESSION_ID) -> list[ero.Subobject]:
    """The Fig. 9 ERO as the PCE returns it; ``session_id`` fills tn5's QE subobject."""
    q = qe.QeParams()
    lbl = ero.Label(LAMBDA)
    return [
        ero.Unnumbered(TN[1], 1),
        ero.QeSubobject.from_params(q),
        lbl,
        ero.Unnumbered(TN[2], 1),
        lbl,
        ero.Unnumbered(TN[3], 3),
        lbl,
        ero.Unnumbered(TN[4], 3),
        lbl,
        ero.Ipv4Prefix(TN[5], 32),
        ero.QeSubobject.from_params(q, session_id),
    ]


def paper_path() -> Message:
    """The Path tn1 → tn2: tn1's own subobjects (10.1.1.1:1, its QE subobject and the
    label for its link) removed, the label carried as a one-label LABEL_SET."""
    route = fig9_ero(SESSION_ID)[3:]
    return Message(
        C.MsgType.PATH,
        (
            SessionLspTunnelV4(TN[5], TUNNEL_ID, TN[1]),
            RsvpHopIfId(TN[1], 1, (IfIdTlv.if_index(TN[1], 1),)),
            TimeValues(30000),
            ExplicitRoute(tuple(route)),
            GeneralizedLabelRequest(C.LspEncoding.LAMBDA, C.SwitchingType.LSC, C.GPID_ETHERNET),
            LabelSet((LAMBDA,)),
            SessionAttribute("qe-tn1-tn5", 7, 7, C.SA_LABEL_RECORDING | C.SA_SE_STYLE),
            SenderTemplate(TN[1], LSP_ID),
            SenderTspec(TokenBucket.for_bandwidth(BANDWIDTH)),
            RecordRoute((ero.Unnumbered(TN[1], 1),)),
        ),
    )


def paper_resv() -> Message:
    """The Resv tn2 → tn1 granting the lambda on link tn1:1 - tn2:2."""
    return Message(
        C.MsgType.RESV,
        (
            SessionLspTunnelV4(TN[5], TUNNEL_ID, TN[1]),
            RsvpHopIfId(TN[2], 2, (IfIdTlv.if_index(TN[2], 2),)),
            TimeValues(30000),
            StyleObj(C.Style.SE),
            Flowspec(TokenBucket.for_bandwidth(BANDWIDTH)),
            FilterSpec(TN[1], LSP_ID),
            GeneralizedLabel(LAMBDA),
            RecordRoute(
                (
                    ero.Unnumbered(TN[2], 2),
                    ero.Label(LAMBDA),
                    ero.Unnumbered(TN[3], 2),
                    ero.Label(LAMBDA),
                    ero.Unnumbered(TN[4], 2),
                    ero.Label(LAMBDA),
                    ero.Unnumbered(TN[5], 1),
                    ero.Label(LAMBDA),
                )
            ),
        ),
    )


def _session() -> SessionLspTunnelV4:
    return SessionLspTunnelV4(TN[5], TUNNEL_ID, TN[1])


def path_err() -> Message:
    """tn3 → tn2: the explicit label is busy on its link (24/11 Routing problem/Label set)."""
    return Message(
        C.MsgType.PATH_ERR,
        (
            _session(),
            ErrorSpecIfId(
                TN[3],
                C.ErrorCode.ROUTING_PROBLEM,
                C.RoutingProblem.LABEL_SET,
                0,
                (IfIdTlv.if_index(TN[3], 2),),
            ),
            SenderTemplate(TN[1], LSP_ID),
            SenderTspec(TokenBucket.for_bandwidth(BANDWIDTH)),
        ),
    )


def resv_err() -> Message:
    """tn1 → tn2: the label in the Resv is not acceptable (24/6)."""
    return Message(
        C.MsgType.RESV_ERR,
        (
            _session(),
            RsvpHopIfId(TN[1], 1, (IfIdTlv.if_index(TN[1], 1),)),
            ErrorSpec(TN[1], C.ErrorCode.ROUTING_PROBLEM, C.RoutingProblem.UNACCEPTABLE_LABEL),
            StyleObj(C.Style.SE),
            Flowspec(TokenBucket.for_bandwidth(BANDWIDTH)),
            FilterSpec(TN[1], LSP_ID),
        ),
    )


def path_tear() -> Message:
    return Message(
        C.MsgType.PATH_TEAR,
        (
            _session(),
            RsvpHopIfId(TN[1], 1, (IfIdTlv.if_index(TN[1], 1),)),
            SenderTemplate(TN[1], LSP_ID),
        ),
    )


def resv_tear() -> Message:
    return Message(
        C.MsgType.RESV_TEAR,
        (
            _session(),
            RsvpHopIfId(TN[2], 2, (IfIdTlv.if_index(TN[2], 2),)),
            StyleObj(C.Style.SE),
            FilterSpec(TN[1], LSP_ID),
        ),
    )


def resv_conf() -> Message:
    return Message(
        C.MsgType.RESV_CONF,
        (
            _session(),
            ErrorSpec(TN[1], 0, 0),
            ResvConfirm(TN[5]),
            StyleObj(C.Style.SE),
            Flowspec(TokenBucket.for_bandwidth(BANDWIDTH)),
            FilterSpec(TN[1], LSP_ID),
        ),
    )


def hello() -> Message:
    """RFC 3209 §5: a Hello REQUEST, sent with TTL 1."""
    return Message(C.MsgType.HELLO, (HelloRequest(0x1234, 0x5678),), send_ttl=1)


def notify() -> Message:
    """RFC 3473 §4.3: tn3 tells the head tn1 its LSP is administratively down."""
    return Message(
        C.MsgType.NOTIFY,
        (
            MessageId(7, 1, 0),
            ErrorSpec(TN[3], C.ErrorCode.NOTIFY_ERROR, 3),
            _session(),
            AdminStatus(AdminStatus.REFLECT | AdminStatus.ADMIN_DOWN),
            SenderTemplate(TN[1], LSP_ID),
            SenderTspec(TokenBucket.for_bandwidth(BANDWIDTH)),
        ),
    )


def ack() -> Message:
    """RFC 2961 §4.4: tn2 acknowledges the Path tn1 sent with MESSAGE_ID 1."""
    return Message(C.MsgType.ACK, (MessageIdAck(1, 101),), flags=1)


def srefresh() -> Message:
    """RFC 2961 §5: tn1 refreshes the state it sent tn2 with Message IDs 1, 3 and 4 in one
    summary refresh, acknowledging tn2's Message ID 2 on the way (§4.6)."""
    return Message(
        C.MsgType.SREFRESH, (MessageIdAck(2, 102), MessageIdList((1, 3, 4), 101)), flags=1
    )


def bundle() -> Message:
    """RFC 2961 §3: tn2 bundles its Resv and an Ack that NACKs tn1's Message ID 9 (§5.4:
    no state of that ID here, send the full message)."""
    nack = Message(C.MsgType.ACK, (MessageIdNack(9, 101),), flags=1)
    return Message(C.MsgType.BUNDLE, (), flags=1, parts=(paper_resv(), nack))


def all_examples() -> dict[str, Message]:
    return {
        "path": paper_path(),
        "resv": paper_resv(),
        "path_err": path_err(),
        "resv_err": resv_err(),
        "path_tear": path_tear(),
        "resv_tear": resv_tear(),
        "resv_conf": resv_conf(),
        "hello": hello(),
        "notify": notify(),
        "ack": ack(),
        "srefresh": srefresh(),
        "bundle": bundle(),
    }
