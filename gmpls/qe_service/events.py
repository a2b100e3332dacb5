"""What goes into the QE service core and what comes out of it (see :mod:`.core`).

Events in: the CLI's requests (:class:`Create`, :class:`Delete`, :class:`AddTraffic`,
:class:`SetRate`), the data plane's traffic (:class:`DataplaneTraffic`), the node agent stopping (:class:`Shutdown`), the answers to what the
core asked for (:class:`PathReply` / :class:`PcepFailed` for a PCReq, :class:`EtsiReply`
for an ETSI GS QKD 004 call, :class:`CreateLspFailed` when RSVP refuses an LSP), the
RSVP core's actions passed on by the shell (:data:`RsvpEvent`), and
:class:`gmpls.core.Tick`.

Actions out: a PCReq (:class:`RequestPath`), ETSI 004 calls (:class:`EtsiOpen`,
:class:`EtsiConnect`, :class:`EtsiGetKey`, :class:`EtsiClose`), RSVP commands
(:class:`CreateLsp`, :class:`DeleteLsp`, :class:`ToRsvp`), a TE link's free lambdas for
OSPF (:class:`AdvertiseLink`), the keys for the data plane (:class:`DataplaneKey`,
:class:`DataplaneStop`), and what the node reports (:class:`ServiceChanged`,
:class:`Log`). Every call the shell carries out for the core has a correlation ID
(``cid``) that its answer repeats.

Key bytes travel in two places only, both kept out of ``repr``: :attr:`EtsiReply.key`
(from the proxy) and :attr:`DataplaneKey.key` (to the node's data plane, in memory).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from gmpls import ero, qe
from gmpls.core import Tick
from gmpls.rsvp import events as RE
from gmpls.rsvp.core import RsvpCore

# --- events: the CLI and the node agent -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Create:
    """``qe-service create``: a new QE service from this node to ``destination``."""

    destination: IPv4Address
    params: qe.QeParams
    bandwidth_bps: float = 0.0
    #: delegate the LSP to the stateful PCE (RFC 8231 D flag): it may move it
    delegate: bool = False


@dataclass(frozen=True, slots=True)
class Delete:
    """``qe-service delete ID`` (head only)."""

    service_id: str


@dataclass(frozen=True, slots=True)
class Update:
    """A stateful PCE's new path for the delegated service heading tunnel ``tunnel_id``
    (RFC 8231 PCUpd): signalled make-before-break, keeping the key session. Refused
    (:class:`~gmpls.qe_service.model.QeServiceError`, nothing changed) when the service
    is unknown, not delegated, not up or rerouting, already moving, or when the route
    changes its ends or QE parameters."""

    tunnel_id: int
    route: tuple[ero.Subobject, ...]


@dataclass(frozen=True, slots=True)
class AddTraffic:
    """``qe-service traffic ID BYTES``: bytes encrypted under the service's key."""

    service_id: str
    nbytes: int


@dataclass(frozen=True, slots=True)
class SetRate:
    """``qe-service traffic ID rate BPS``: a constant simulated traffic rate (bit/s)."""

    service_id: str
    rate_bps: float


@dataclass(frozen=True, slots=True)
class DataplaneTraffic:
    """The data plane encrypted and decrypted ``nbytes`` bytes of service ``service_id``
    at this end since its last report: what drives volume refresh (docs/dataplane.md)."""

    service_id: str
    nbytes: int


@dataclass(frozen=True, slots=True)
class Shutdown:
    """The node agent stops: delete the services it heads, close those it ends."""


# --- events: answers to the core's calls ----------------------------------------------


@dataclass(frozen=True, slots=True)
class PathReply:
    """The PCE's answer to :class:`RequestPath` ``cid``: an ERO, or NO-PATH and why;
    ``relay`` is the key relay path the PCE chose (site IDs, head site first; empty when
    it gave none)."""

    cid: int
    ok: bool
    ero: tuple[ero.Subobject, ...] = ()
    reason: str = ""
    relay: tuple[IPv4Address, ...] = ()


@dataclass(frozen=True, slots=True)
class PcepFailed:
    """No answer to :class:`RequestPath` ``cid`` (session down, timeout)."""

    cid: int
    error: str


@dataclass(frozen=True, slots=True)
class EtsiReply:
    """The proxy's answer to ETSI 004 call ``cid``. ``status`` None: no answer at all
    (``error`` says why, e.g. the proxy is unreachable). ``key_handle`` answers
    QKD_OPEN; ``key_index`` and ``key`` answer QKD_GET_KEY."""

    cid: int
    status: int | None
    key_handle: bytes = b""
    key_index: int = 0
    key: bytes = field(default=b"", repr=False)
    error: str = ""


@dataclass(frozen=True, slots=True)
class CreateLspFailed:
    """RSVP refused :class:`CreateLsp` for ``tunnel_id`` outright (e.g. tunnel in use)."""

    tunnel_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class TailJoin:
    """RSVP's :class:`QeJoin` with the RECORD_ROUTE the Path brought to this node (the
    route a tail service shows)."""

    join: RE.QeJoin
    recorded_route: tuple[ero.Subobject, ...] = ()


#: what the RSVP core emits and the shell passes on (QeJoin arrives as :class:`TailJoin`)
RsvpEvent = (
    RE.NeedQeSession
    | TailJoin
    | RE.QeClose
    | RE.LspUp
    | RE.LspDown
    | RE.LinkResources
    | RE.NeighborUp
    | RE.NeighborDown
)

Event = (
    Create
    | Delete
    | Update
    | AddTraffic
    | SetRate
    | DataplaneTraffic
    | Shutdown
    | PathReply
    | PcepFailed
    | EtsiReply
    | CreateLspFailed
    | RsvpEvent
    | Tick
)

# --- actions ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestPath:
    """Send a PCReq ``src`` → ``dst`` with the QE METRIC objects; ``bandwidth`` in
    bytes/s (0: no BANDWIDTH object). Answer: :class:`PathReply` or :class:`PcepFailed`."""

    cid: int
    src: IPv4Address
    dst: IPv4Address
    params: qe.QeParams
    bandwidth: float
    timeout: float


@dataclass(frozen=True, slots=True)
class EtsiOpen:
    """QKD_OPEN toward ``destination``: a new session (``key_handle`` None) or join one.
    ``relay``: the key relay path for the key manager (``Open.relay``, site IDs, head site
    first, tail site last; empty: the key manager decides)."""

    cid: int
    destination: IPv4Address
    key_handle: bytes | None
    key_length: int
    relay: tuple[IPv4Address, ...] = ()


@dataclass(frozen=True, slots=True)
class EtsiConnect:
    """QKD_CONNECT_NONBLOCK."""

    cid: int
    key_handle: bytes


@dataclass(frozen=True, slots=True)
class EtsiGetKey:
    """QKD_GET_KEY: the next key of the session, which must be key ``index`` (the answer
    with another index is an error, not a key)."""

    cid: int
    key_handle: bytes
    index: int = 0


@dataclass(frozen=True, slots=True)
class EtsiClose:
    """QKD_CLOSE."""

    cid: int
    key_handle: bytes


EtsiCall = EtsiOpen | EtsiConnect | EtsiGetKey | EtsiClose


@dataclass(frozen=True, slots=True)
class CreateLsp:
    """RSVP: signal tunnel ``tunnel_id`` along ``route`` (the QE parameters are in its QE
    subobjects). Refused outright: answer :class:`CreateLspFailed`."""

    tunnel_id: int
    route: tuple[ero.Subobject, ...]
    bandwidth_bps: float
    name: str
    #: a second LSP of the tunnel beside the one in place (RFC 3209 §4.6.4)
    make_before_break: bool = False
    #: both directions reserved (RFC 3473 §3): layer-1 and layer-2 services
    bidirectional: bool = False


@dataclass(frozen=True, slots=True)
class DeleteLsp:
    """RSVP: tear tunnel ``tunnel_id`` down (only its LSP ``lsp_id`` when given: the old
    one after a make-before-break); ``graceful``: RFC 3473 §7.2 (ADMIN_STATUS D first, so
    the tail knows the deletion is meant)."""

    tunnel_id: int
    lsp_id: int | None = None
    graceful: bool = False


@dataclass(frozen=True, slots=True)
class ToRsvp:
    """Feed the RSVP core the answer to its QE hook."""

    event: RE.QeSessionReady | RE.QeFailed


@dataclass(frozen=True, slots=True)
class AdvertiseLink:
    """OSPF: re-originate TE link ``local_if``'s LSA with these free lambdas (coalesced:
    the last value within the core's ``link_batch`` seconds)."""

    local_if: int
    free_lambdas: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class DataplaneKey:
    """The data plane of ``lsp`` (service ``service_id``) takes key ``index`` for
    ``algorithm``: index 0 once keyed, k+1 at each refresh. The key stays in memory (kept
    out of ``repr``); the node hands it to its data-plane shell and nowhere else."""

    lsp: RE.LspKey
    service_id: str
    index: int
    algorithm: int
    key: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class DataplaneStop:
    """The service ends here (or leaves LSP ``lsp``): the data plane forgets its keys."""

    lsp: RE.LspKey
    service_id: str


@dataclass(frozen=True, slots=True)
class ServiceChanged:
    """Service ``service_id`` changed (state, key, counters): wake whoever waits on it."""

    service_id: str
    state: str


@dataclass(frozen=True, slots=True)
class Log:
    """One log line: ``message`` and ``fields`` (never key bytes); ``warning`` or info."""

    message: str
    fields: Mapping[str, Any]
    warning: bool = False


Action = (
    RequestPath
    | EtsiOpen
    | EtsiConnect
    | EtsiGetKey
    | EtsiClose
    | CreateLsp
    | DeleteLsp
    | ToRsvp
    | AdvertiseLink
    | DataplaneKey
    | DataplaneStop
    | ServiceChanged
    | Log
)

__all__ = [
    "Action",
    "AddTraffic",
    "AdvertiseLink",
    "Create",
    "CreateLsp",
    "CreateLspFailed",
    "DataplaneKey",
    "DataplaneStop",
    "DataplaneTraffic",
    "Delete",
    "DeleteLsp",
    "EtsiCall",
    "EtsiClose",
    "EtsiConnect",
    "EtsiGetKey",
    "EtsiOpen",
    "EtsiReply",
    "Event",
    "Log",
    "PathReply",
    "PcepFailed",
    "RequestPath",
    "RsvpEvent",
    "ServiceChanged",
    "SetRate",
    "Shutdown",
    "TailJoin",
    "Tick",
    "ToRsvp",
    "Update",
    "rsvp_event",
]


def rsvp_event(rsvp: RsvpCore, action: object) -> RsvpEvent | None:
    """The event the QE core takes for an action of this node's RSVP core (None: not its
    business, e.g. Send). QeJoin becomes :class:`TailJoin` with the RECORD_ROUTE of the
    LSP's Path state: the one place that reads the RSVP core's state."""
    if isinstance(action, RE.QeJoin):
        psb = rsvp.psbs.get(action.lsp)
        return TailJoin(action, psb.rro_in if psb is not None else ())
    if isinstance(action, _RSVP_PASSED_ON):
        return action
    return None


_RSVP_PASSED_ON = (
    RE.NeedQeSession,
    RE.QeClose,
    RE.LspUp,
    RE.LspDown,
    RE.LinkResources,
    RE.NeighborUp,
    RE.NeighborDown,
)
