"""PCEP code points (RFC 5440 §6, §7, §9; IANA "PCEP Numbers")."""

from __future__ import annotations

from enum import IntEnum

#: RFC 5440 §6.1 — the only protocol version
VERSION = 1
#: TCP port (RFC 5440 §5)
PORT = 4189
COMMON_HEADER_LEN = 4
OBJECT_HEADER_LEN = 4
TLV_HEADER_LEN = 4
MAX_MESSAGE_LEN = 0xFFFF


class MsgType(IntEnum):
    """RFC 5440 §6.1 message types."""

    OPEN = 1
    KEEPALIVE = 2
    PCREQ = 3
    PCREP = 4
    PCNTF = 5
    PCERR = 6
    CLOSE = 7
    #: RFC 8231 §6.1, §6.2 and RFC 8281 §5.1
    PCRPT = 10
    PCUPD = 11
    PCINITIATE = 12


class ObjClass(IntEnum):
    """RFC 5440 §7 object classes."""

    OPEN = 1
    RP = 2
    NO_PATH = 3
    END_POINTS = 4
    BANDWIDTH = 5
    METRIC = 6
    ERO = 7
    RRO = 8
    LSPA = 9
    IRO = 10
    SVEC = 11
    NOTIFICATION = 12
    PCEP_ERROR = 13
    LOAD_BALANCING = 14
    CLOSE = 15
    #: RFC 8231 §7.3, §7.2
    LSP = 32
    SRP = 33


class TlvType(IntEnum):
    """RFC 5440 §7.5, §7.14, §7.15 TLVs."""

    NO_PATH_VECTOR = 1
    OVERLOAD_DURATION = 2
    REQ_MISSING = 3
    #: RFC 8231 §7.1.1, §7.3.2, §7.3.1, §7.3.3
    STATEFUL_PCE_CAPABILITY = 16
    SYMBOLIC_PATH_NAME = 17
    IPV4_LSP_IDENTIFIERS = 18
    LSP_ERROR_CODE = 20
    #: RFC 8664 §4.1.2 (a sub-TLV of PATH-SETUP-TYPE-CAPABILITY)
    SR_PCE_CAPABILITY = 26
    #: RFC 8408 §3, §4
    PATH_SETUP_TYPE = 28
    PATH_SETUP_TYPE_CAPABILITY = 34
    #: this project's NO-PATH reason (experimental range 65504-65535, RFC 8356; docs/pcep.md)
    NO_PATH_REASON = 65504


class ErrorType(IntEnum):
    """RFC 5440 §9.12 PCEP-ERROR Error-Types."""

    SESSION_FAILURE = 1
    CAPABILITY_NOT_SUPPORTED = 2
    UNKNOWN_OBJECT = 3
    NOT_SUPPORTED_OBJECT = 4
    POLICY_VIOLATION = 5
    MANDATORY_OBJECT_MISSING = 6
    SYNC_REQUEST_MISSING = 7
    UNKNOWN_REQUEST_REFERENCE = 8
    SECOND_SESSION = 9
    INVALID_OBJECT = 10
    #: RFC 8231 §8.5, RFC 8408 §7, RFC 8281 §8.4
    INVALID_OPERATION = 19
    LSP_STATE_SYNC = 20
    INVALID_PATH_SETUP_TYPE = 21
    LSP_INSTANTIATION = 24


# (Error-Type, Error-value) pairs used by this implementation (RFC 5440 §9.12)
ERR_INVALID_OPEN = (1, 1)  # reception of an invalid Open message or a non-Open message
ERR_NO_OPEN = (1, 2)  # no Open message received before the OpenWait timer expired
ERR_NON_NEGOTIABLE = (1, 3)  # unacceptable and non-negotiable session characteristics
ERR_NEGOTIABLE = (1, 4)  # unacceptable but negotiable session characteristics
ERR_SECOND_OPEN_UNACCEPTABLE = (1, 5)  # second Open with still unacceptable characteristics
ERR_PCERR_UNACCEPTABLE = (1, 6)  # PCErr proposing unacceptable session characteristics
ERR_NO_KEEPALIVE = (1, 7)  # no Keepalive or PCErr before the KeepWait timer expired
ERR_UNKNOWN_CLASS = (3, 1)
ERR_UNKNOWN_TYPE = (3, 2)
ERR_UNSUPPORTED_CLASS = (4, 1)
ERR_UNSUPPORTED_TYPE = (4, 2)
ERR_RP_MISSING = (6, 1)
ERR_RRO_MISSING = (6, 2)
ERR_END_POINTS_MISSING = (6, 3)
ERR_SVEC_REQUEST_MISSING = (7, 0)
ERR_UNKNOWN_REQUEST = (8, 0)
ERR_SECOND_SESSION = (9, 0)
ERR_P_FLAG_NOT_SET = (10, 1)
# RFC 8231 §8.5 / RFC 8281 §8.4 / RFC 8408 §7
ERR_LSP_MISSING = (6, 8)
ERR_ERO_MISSING = (6, 9)
ERR_SRP_MISSING = (6, 10)
ERR_LSP_IDENTIFIERS_MISSING = (6, 11)
ERR_SYMBOLIC_NAME_MISSING = (10, 8)
ERR_UPDATE_NOT_DELEGATED = (19, 1)  # update of an LSP not delegated to the PCE
ERR_UPDATE_NOT_STATEFUL = (19, 2)  # update though the PCE did not advertise stateful
ERR_UPDATE_UNKNOWN_PLSP = (19, 3)  # update of an unknown PLSP-ID
ERR_REPORT_NOT_STATEFUL = (19, 5)  # report though stateful was not negotiated
ERR_REPORT_UNPROCESSABLE = (20, 1)  # the PCE cannot process an (otherwise valid) report
ERR_UNSUPPORTED_PST = (21, 1)
ERR_MISMATCHED_PST = (21, 2)
ERR_INITIATE_UNACCEPTABLE = (24, 1)
ERR_INITIATE_INTERNAL = (24, 2)
ERR_INITIATE_SIGNALLING = (24, 3)


class CloseReason(IntEnum):
    """RFC 5440 §7.17 CLOSE object reasons."""

    NO_EXPLANATION = 1
    DEADTIMER_EXPIRED = 2
    MALFORMED_MESSAGE = 3
    TOO_MANY_UNKNOWN_REQUESTS = 4
    TOO_MANY_UNKNOWN_MESSAGES = 5


class MetricType(IntEnum):
    """RFC 5440 §7.8 metric types (the QE types 251..255 are in :mod:`gmpls.qe`)."""

    IGP = 1
    TE = 2
    HOP_COUNT = 3


#: RFC 5440 §7.5 NO-PATH Nature of Issue
NI_NO_PATH = 0
NI_PCE_CHAIN_BROKEN = 1
#: RFC 5440 §7.5 NO-PATH flags: C = unsatisfied constraints listed
NO_PATH_FLAG_C = 0x8000


class NoPathVector(IntEnum):
    """RFC 5440 §7.5 NO-PATH-VECTOR TLV bits (bit 31 is the least significant)."""

    PCE_UNAVAILABLE = 0x1
    UNKNOWN_DESTINATION = 0x2
    UNKNOWN_SOURCE = 0x4


#: RFC 5440 §7.4 RP flags
RP_PRI_MASK = 0x07
RP_FLAG_R = 0x08  # reoptimisation
RP_FLAG_B = 0x10  # bi-directional
RP_FLAG_O = 0x20  # strict/loose: loose path acceptable

#: RFC 5440 §7.8 METRIC flags
METRIC_FLAG_B = 0x01  # bound
METRIC_FLAG_C = 0x02  # computed metric requested

#: RFC 5440 §7.13.2 SVEC flags
SVEC_FLAG_L = 0x01  # link diverse
SVEC_FLAG_N = 0x02  # node diverse
SVEC_FLAG_S = 0x04  # SRLG diverse

#: RFC 5440 §7.11 LSPA flags
LSPA_FLAG_L = 0x01  # local protection desired

#: RFC 8231 §7.1.1 STATEFUL-PCE-CAPABILITY flags: U (LSP update), RFC 8281 §4.1 I
#: (instantiation); the others (RFC 8232 S, T, D, F) are not implemented here
STATEFUL_FLAG_U = 0x01
STATEFUL_FLAG_S = 0x02
STATEFUL_FLAG_I = 0x04

#: RFC 8231 §7.3 LSP object flags (the low 12 bits after the PLSP-ID): Delegate, Sync,
#: Remove, Administrative, Operational (3 bits), RFC 8281 §5.3.1 Create
LSP_FLAG_D = 0x001
LSP_FLAG_S = 0x002
LSP_FLAG_R = 0x004
LSP_FLAG_A = 0x008
LSP_O_SHIFT = 4
LSP_O_MASK = 0x070
LSP_FLAG_C = 0x080

#: RFC 8281 §5.2 SRP flag R: remove the LSP
SRP_FLAG_R = 0x01


class LspState(IntEnum):
    """RFC 8231 §7.3 LSP object O field (operational state)."""

    DOWN = 0
    UP = 1
    ACTIVE = 2
    GOING_DOWN = 3
    GOING_UP = 4


class PathSetupType(IntEnum):
    """RFC 8408 §3 (IANA "PCEP Path Setup Types")."""

    RSVP_TE = 0
    SR = 1
    SRV6 = 3


#: RFC 5440 §7.14 notification types / values
NT_PENDING_CANCELLED = 1
NT_OVERLOAD = 2
