"""PCEP (RFC 5440): wire codec, QE service request helpers and the sans-I/O session.

- :mod:`gmpls.pcep.constants` — message types, object classes, error codes
- :mod:`gmpls.pcep.tlv` — TLVs (NO-PATH-VECTOR, OVERLOAD-DURATION, REQ-MISSING, unknown)
- :mod:`gmpls.pcep.objects` — objects (§7), P-flag rules (:func:`unprocessable`)
- :mod:`gmpls.pcep.messages` — messages and their grammars (§6), stream framing
- :mod:`gmpls.pcep.qemetrics` — the QE METRIC objects of docs/design.md#qe-metric-types
"""

from gmpls.pcep.constants import CloseReason, MsgType, NoPathVector, ObjClass
from gmpls.pcep.messages import (
    AnyMessage,
    Attributes,
    Close,
    ErrorBlock,
    Framer,
    Keepalive,
    Notify,
    Open,
    Path,
    PCErr,
    PCNtf,
    PCRep,
    PCReq,
    Request,
    Response,
    UnknownMessage,
    decode_message,
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
    Metric,
    NoPath,
    Notification,
    OpenObject,
    Rro,
    Svec,
    UnknownObject,
    unprocessable,
)
from gmpls.pcep.qemetrics import is_qe_metric, qe_metrics, qe_params_from_metrics
from gmpls.pcep.tlv import (
    NoPathReasonTlv,
    NoPathVectorTlv,
    OverloadDurationTlv,
    ReqMissingTlv,
)
from gmpls.tlv import UnknownTlv

__all__ = [
    "RP",
    "AnyMessage",
    "Attributes",
    "Bandwidth",
    "Close",
    "CloseObject",
    "CloseReason",
    "EndPointsIpv4",
    "EndPointsIpv6",
    "Ero",
    "ErrorBlock",
    "ErrorObject",
    "Framer",
    "Iro",
    "Keepalive",
    "Lspa",
    "Metric",
    "MsgType",
    "NoPath",
    "NoPathReasonTlv",
    "NoPathVector",
    "NoPathVectorTlv",
    "Notification",
    "Notify",
    "ObjClass",
    "Open",
    "OpenObject",
    "OverloadDurationTlv",
    "PCErr",
    "PCNtf",
    "PCRep",
    "PCReq",
    "Path",
    "ReqMissingTlv",
    "Request",
    "Response",
    "Rro",
    "Svec",
    "UnknownMessage",
    "UnknownObject",
    "UnknownTlv",
    "decode_message",
    "is_qe_metric",
    "qe_metrics",
    "qe_params_from_metrics",
    "unprocessable",
]
