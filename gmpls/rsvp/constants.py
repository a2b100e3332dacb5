"""RSVP-TE code points: message types, object classes, error codes (RFC 2205, 3209, 3473).

Values are the IANA "Resource Reservation Protocol (RSVP) Parameters" registry entries.
"""

from __future__ import annotations

from enum import IntEnum

#: RSVP version in the common header (RFC 2205 §3.1.1)
RSVP_VERSION = 1
#: IP protocol number of RSVP
IPPROTO_RSVP = 46


class MsgType(IntEnum):
    """Message types (RFC 2205 §3.1.1, RFC 3209 §5.1 Hello, RFC 3473 §4.3 Notify)."""

    PATH = 1
    RESV = 2
    PATH_ERR = 3
    RESV_ERR = 4
    PATH_TEAR = 5
    RESV_TEAR = 6
    RESV_CONF = 7
    #: RFC 2961 §3: several messages to one neighbour in one IP datagram
    BUNDLE = 12
    #: RFC 2961 §4.4: acknowledges MESSAGE_IDs
    ACK = 13
    #: RFC 2961 §5: summary refresh, the Message IDs of unchanged state
    SREFRESH = 15
    HELLO = 20
    NOTIFY = 21


class ClassNum(IntEnum):
    """Object class numbers."""

    SESSION = 1
    RSVP_HOP = 3
    INTEGRITY = 4
    TIME_VALUES = 5
    ERROR_SPEC = 6
    SCOPE = 7
    STYLE = 8
    FLOWSPEC = 9
    FILTER_SPEC = 10
    SENDER_TEMPLATE = 11
    SENDER_TSPEC = 12
    ADSPEC = 13
    POLICY_DATA = 14
    RESV_CONFIRM = 15
    LABEL = 16
    LABEL_REQUEST = 19
    EXPLICIT_ROUTE = 20
    RECORD_ROUTE = 21
    HELLO = 22
    MESSAGE_ID = 23
    MESSAGE_ID_ACK = 24
    MESSAGE_ID_LIST = 25
    UPSTREAM_LABEL = 35
    LABEL_SET = 36
    SUGGESTED_LABEL = 129
    NOTIFY_REQUEST = 195
    ADMIN_STATUS = 196
    SESSION_ATTRIBUTE = 207


class ErrorCode(IntEnum):
    """ERROR_SPEC error codes (RFC 2205 App. B, RFC 3209 §7, RFC 3473 §13)."""

    CONFIRMATION = 0
    ADMISSION_CONTROL_FAILURE = 1
    POLICY_CONTROL_FAILURE = 2
    NO_PATH_INFORMATION = 3
    NO_SENDER_INFORMATION = 4
    CONFLICTING_STYLE = 5
    UNKNOWN_STYLE = 6
    SERVICE_PREEMPTED = 12
    UNKNOWN_OBJECT_CLASS = 13
    UNKNOWN_CTYPE = 14
    API_ERROR = 20
    TRAFFIC_CONTROL_ERROR = 21
    TRAFFIC_CONTROL_SYSTEM_ERROR = 22
    RSVP_SYSTEM_ERROR = 23
    ROUTING_PROBLEM = 24
    NOTIFY_ERROR = 25
    #: private/experimental code (outside every IETF-assigned error code; RFC 3936 §2.3
    #: keeps the top of the 8-bit space out of standards assignment). The QE service
    #: errors of docs/rsvp.md live here.
    QE_ERROR = 252


class RoutingProblem(IntEnum):
    """Error values of ``ROUTING_PROBLEM`` (24): RFC 3209 §7.3, RFC 3473 §13."""

    BAD_EXPLICIT_ROUTE = 1
    BAD_STRICT_NODE = 2
    BAD_LOOSE_NODE = 3
    BAD_INITIAL_SUBOBJECT = 4
    NO_ROUTE = 5
    UNACCEPTABLE_LABEL = 6
    RRO_LOOP = 7
    NON_RSVP_ROUTER = 8
    LABEL_ALLOCATION_FAILURE = 9
    UNSUPPORTED_L3PID = 10
    LABEL_SET = 11
    SWITCHING_TYPE = 12
    UNSUPPORTED_ENCODING = 14
    UNSUPPORTED_LINK_PROTECTION = 15


class TrafficControlError(IntEnum):
    """Error values of ``TRAFFIC_CONTROL_ERROR`` (21), RFC 2205 App. B."""

    SERVICE_CONFLICT = 1
    SERVICE_UNSUPPORTED = 2
    BAD_FLOWSPEC = 3
    BAD_TSPEC = 4


class QeError(IntEnum):
    """Error values of the private ``QE_ERROR`` code (docs/rsvp.md)."""

    #: the head could not get a key session from its ETSI 004 proxy
    HEAD_NO_KEY = 1
    #: the tail could not open/join the key session named by the QE subobject
    TAIL_JOIN_FAILED = 2
    #: a QE subobject with bad parameters (unknown algorithm, layer...)
    BAD_PARAMETERS = 3
    #: the node is named as a QE endpoint but is not QE capable
    NOT_QE_CAPABLE = 4
    #: the QE destination got a QE subobject whose session ID is still zero
    NO_SESSION_ID = 5


class Style(IntEnum):
    """STYLE option vectors (RFC 2205 App. A.7, low 5 bits)."""

    WF = 0x11
    FF = 0x0A
    SE = 0x12


class LspEncoding(IntEnum):
    """LSP encoding types (RFC 3471 §3.1.1), also in OSPF-TE's Interface Switching
    Capability Descriptor (RFC 4203 §1.4)."""

    PACKET = 1
    ETHERNET = 2
    PDH = 3
    SDH = 5
    DIGITAL_WRAPPER = 7
    LAMBDA = 8
    FIBER = 9
    FIBER_CHANNEL = 11


class SwitchingType(IntEnum):
    """Switching types (RFC 3471 §3.1.1), OSPF-TE's switching capabilities (RFC 4203 §1.4)."""

    PSC1 = 1
    PSC2 = 2
    PSC3 = 3
    PSC4 = 4
    L2SC = 51
    TDM = 100
    LSC = 150
    FSC = 200


#: G-PID Ethernet (RFC 3471 §3.1.1): the QE service carries layer-2 frames on the lambda
GPID_ETHERNET = 33
#: G-PID Lambda
GPID_LAMBDA = 37

#: ERROR_SPEC flags (RFC 2205 App. A.5, RFC 3473 §4.5)
ES_IN_PLACE = 0x01
ES_NOT_GUILTY = 0x02
ES_PATH_STATE_REMOVED = 0x04

#: SESSION_ATTRIBUTE flags (RFC 3209 §4.7.1)
SA_LOCAL_PROTECTION = 0x01
SA_LABEL_RECORDING = 0x02
SA_SE_STYLE = 0x04


#: the error values of the codes that have named ones
ERROR_VALUES: dict[int, type[IntEnum]] = {
    ErrorCode.ROUTING_PROBLEM: RoutingProblem,
    ErrorCode.TRAFFIC_CONTROL_ERROR: TrafficControlError,
    ErrorCode.QE_ERROR: QeError,
}


def _words(name: str) -> str:
    return name.replace("_", " ").lower().replace("qe ", "QE ").replace("rsvp", "RSVP")


def error_text(code: int, value: int) -> str:
    """An ERROR_SPEC's code and value in words: ``error_text(24, 5)`` is ``"routing
    problem: no route"``; an unknown code or value is given by its number."""
    try:
        what = _words(ErrorCode(code).name)
    except ValueError:
        return f"error code {code}, value {value}"
    values = ERROR_VALUES.get(code)
    if values is None:
        return what if value == 0 else f"{what}, value {value}"
    try:
        return f"{what}: {_words(values(value).name)}"
    except ValueError:
        return f"{what}: value {value}"
