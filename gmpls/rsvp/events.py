"""The events an :class:`~gmpls.rsvp.core.RsvpCore` takes and the actions it returns (the
contract of :mod:`gmpls.core`: ``handle(event, now) -> list[Action]``).

Events: :class:`Received` (an RSVP message from a neighbour), :class:`CreateLsp` and
:class:`DeleteLsp` (the head's calls), :class:`QeSessionReady` / :class:`QeFailed` (the
answers to the QKD hooks) and :class:`gmpls.core.Tick` (the time of ``next_timer()`` has
come). Actions: :class:`Send`, :class:`LinkResources`, :class:`NeedQeSession`,
:class:`QeJoin`, :class:`QeClose`, :class:`LspUp` / :class:`LspDown`,
:class:`NeighborUp` / :class:`NeighborDown`, :class:`CrossConnect` /
:class:`CrossConnectRemoved` (the data path of an LSP at this node; the node answers a
cross-connect it could not install with :class:`CrossConnectFailed`) (see
:mod:`gmpls.rsvp.core`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from gmpls import ero, qe
from gmpls.core import Tick
from gmpls.rsvp.message import Message

# --- events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LspKey:
    """An LSP: its SESSION (tunnel end, tunnel ID, extended tunnel ID) and its sender
    (SENDER_TEMPLATE / FILTER_SPEC: address, LSP ID)."""

    tunnel_end: IPv4Address
    tunnel_id: int
    ext_tunnel_id: IPv4Address
    sender: IPv4Address
    lsp_id: int
    #: the hash, computed once: LspKey is the key of every per-LSP dict and heap, looked
    #: up many times per message and timer
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # the addresses as integers: IPv4Address.__hash__ formats a hex string each time
        # (equal keys still hash equal)
        key = (
            int(self.tunnel_end),
            self.tunnel_id,
            int(self.ext_tunnel_id),
            int(self.sender),
            self.lsp_id,
        )
        object.__setattr__(self, "_hash", hash(key))

    def __str__(self) -> str:
        return f"{self.ext_tunnel_id}->{self.tunnel_end}#{self.tunnel_id}/{self.lsp_id}"

    def __hash__(self) -> int:
        return self._hash


@dataclass(frozen=True, slots=True)
class Received:
    """An RSVP message (the IP payload) from ``src`` (the IP source address).

    ``more``: the shell read more messages at once and hands them next; the core then
    holds the MESSAGE_ID_ACKs it owes until a message without ``more`` (or any other
    event), and sends each neighbour one Ack message carrying them all (RFC 2961 §4.4).
    The messages a received one triggers still go at once."""

    src: IPv4Address
    data: bytes
    more: bool = False


@dataclass(frozen=True, slots=True)
class QeSessionReady:
    """The ETSI 004 session of ``lsp`` is open (head) or joined (tail)."""

    lsp: LspKey
    key_handle: bytes


@dataclass(frozen=True, slots=True)
class QeFailed:
    lsp: LspKey
    reason: str


@dataclass(frozen=True, slots=True)
class CreateLsp:
    """Head: signal an LSP along ``route`` (the PCE's ERO, this node first).

    ``qe_params`` None means: take them from the QE subobject behind this node in
    ``route`` (the PCE put them there); a QE subobject there with a zero session ID
    starts the QE procedure. ``bidirectional`` asks for a lambda in each direction
    (UPSTREAM_LABEL); an ERO Label subobject with the U bit names the upstream lambda. Errors found in the ERO end in :class:`LspDown` with the
    RSVP code, no message is sent. :meth:`~gmpls.rsvp.core.RsvpCore.handle` raises
    ValueError for a tunnel ID in use, unless ``make_before_break``: then the new LSP
    (a new LSP ID) joins the tunnel's session beside the one in place (RFC 3209 §4.6.4,
    shared explicit style), which the head removes with ``DeleteLsp(tunnel, lsp_id)``
    once the new one is up. Each LSP holds its own lambdas (a lambda is a whole channel:
    a link the two paths share carries both, on different lambdas).
    """

    tunnel_id: int
    route: Sequence[ero.Subobject]
    qe_params: qe.QeParams | None = None
    bandwidth_bps: float = 0.0
    name: str = ""
    #: a bidirectional LSP (RFC 3473 §3): an upstream lambda too, on every link
    bidirectional: bool = False
    #: a new LSP of a tunnel in use (make-before-break, RFC 3209 §4.6.4)
    make_before_break: bool = False


@dataclass(frozen=True, slots=True)
class DeleteLsp:
    """Head: tear down tunnel ``tunnel_id`` (PathTear, labels and key released).

    ``graceful``: RFC 3473 §7.2 deletion of an LSP that is up: first a Path with
    ADMIN_STATUS R and D (deletion in progress), then the PathTear once the Resv echoes
    the D bit, or after one refresh period without it. ``lsp_id``: that LSP of the
    tunnel only (the old one after a make-before-break); None: all of them."""

    tunnel_id: int
    graceful: bool = False
    lsp_id: int | None = None


@dataclass(frozen=True, slots=True)
class CrossConnectFailed:
    """The node could not install the :class:`CrossConnect` of ``lsp`` (``reason``, for
    the log): the LSP fails here like a label it cannot allocate (PathErr 24/9 upstream
    with Path_State_Removed, PathTear downstream; at the head :class:`LspDown`)."""

    lsp: LspKey
    reason: str


Event = Received | QeSessionReady | QeFailed | CreateLsp | DeleteLsp | CrossConnectFailed | Tick


# --- actions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``data`` (RSVP, IP protocol 46) to ``dst`` with IP TTL ``ttl``."""

    dst: IPv4Address
    data: bytes
    message: Message = field(compare=False, repr=False)
    ttl: int = 255


@dataclass(frozen=True, slots=True)
class LinkResources:
    """The free lambdas (RFC 6205 channel indices) of TE link ``local_if`` changed."""

    local_if: int
    free_lambdas: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class NeedQeSession:
    """Head: open an ETSI 004 session toward ``dst_router_id``; answer with
    :class:`QeSessionReady` (64-byte key handle) or :class:`QeFailed`."""

    lsp: LspKey
    dst_router_id: IPv4Address
    params: qe.QeParams


@dataclass(frozen=True, slots=True)
class QeJoin:
    """QE destination: join the ETSI 004 session ``key_handle``; answer with
    :class:`QeSessionReady` or :class:`QeFailed`."""

    lsp: LspKey
    key_handle: bytes
    params: qe.QeParams


@dataclass(frozen=True, slots=True)
class QeClose:
    """The LSP is gone: close the ETSI 004 session ``key_handle``."""

    lsp: LspKey
    key_handle: bytes


@dataclass(frozen=True, slots=True)
class LspUp:
    """Head: Resv arrived, the LSP is up; ``route`` is the Resv's RECORD_ROUTE. Tail:
    Resv sent."""

    lsp: LspKey
    role: str
    route: tuple[ero.Subobject, ...] = ()


@dataclass(frozen=True, slots=True)
class LspDown:
    """The LSP failed or was torn down here; ``code`` is the RSVP (code, value)."""

    lsp: LspKey
    role: str
    reason: str
    code: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class NeighborUp:
    address: IPv4Address


@dataclass(frozen=True, slots=True)
class NeighborDown:
    address: IPv4Address
    reason: str


@dataclass(frozen=True, slots=True)
class Channel:
    """One lambda of one TE link at this node: the kernel channel
    ``gmpls.dataplane.names.channel_ifname(local_if, lam)``."""

    local_if: int  # TE link local interface ID at this node
    lam: int  # lambda (RFC 6205 channel index n)


@dataclass(frozen=True, slots=True)
class CrossConnect:
    """Install the data path of LSP ``lsp`` at this node. ``role``: "head", "transit" or
    "tail". Downstream direction: frames arrive on ``fwd_in`` and leave on ``fwd_out``;
    upstream direction (bidirectional LSPs): arrive on ``rev_in``, leave on ``rev_out``.
    At the head fwd_in and rev_out are None (the access side), at the tail fwd_out and rev_in
    are None. Unidirectional LSPs: rev_in = rev_out = None.

    Emitted once the LSP's lambdas here are reserved (head and transit: the Resv accepted;
    tail: the Resv sent), again with the new values if they change, and followed by
    :class:`CrossConnectRemoved` when the LSP's state (or its Resv state) goes."""

    lsp: LspKey
    role: str
    fwd_in: Channel | None
    fwd_out: Channel | None
    rev_in: Channel | None
    rev_out: Channel | None

    def channels(self) -> tuple[Channel, ...]:
        """The channels in use, in the order fwd_in, fwd_out, rev_in, rev_out."""
        return tuple(
            c for c in (self.fwd_in, self.fwd_out, self.rev_in, self.rev_out) if c is not None
        )


@dataclass(frozen=True, slots=True)
class CrossConnectRemoved:
    """Remove the data path of ``lsp`` at this node (see :class:`CrossConnect`)."""

    lsp: LspKey


Action = (
    Send
    | LinkResources
    | NeedQeSession
    | QeJoin
    | QeClose
    | LspUp
    | LspDown
    | NeighborUp
    | NeighborDown
    | CrossConnect
    | CrossConnectRemoved
)

__all__ = [
    "Action",
    "Channel",
    "CreateLsp",
    "CrossConnect",
    "CrossConnectFailed",
    "CrossConnectRemoved",
    "DeleteLsp",
    "Event",
    "LinkResources",
    "LspDown",
    "LspKey",
    "LspUp",
    "NeedQeSession",
    "NeighborDown",
    "NeighborUp",
    "QeClose",
    "QeFailed",
    "QeJoin",
    "QeSessionReady",
    "Received",
    "Send",
]
