"""The sans-I/O RSVP-TE signalling core of one GMPLS node (RFC 2205, 3209, 3473, 3477).

It keeps the contract of :mod:`gmpls.core`: inputs are events of :mod:`gmpls.rsvp.events`,
outputs are actions; time is always passed in (seconds, float) and the core never reads a
clock, opens a socket or sleeps::

    core = RsvpCore(router_id, control_address, te_links, refresh_ms=30000)
    actions = core.handle(CreateLsp(tunnel_id, ero, qe_params, bandwidth_bps), now)
    actions = core.handle(Received(src, data), now)
    actions = core.handle(Tick(), now)          # at core.next_timer()
    actions = core.handle(QeSessionReady(lsp, key_handle), now)

Actions: :class:`Send` (bytes to a neighbour's control address), :class:`LinkResources`
(free lambdas of a TE link changed: re-originate the TE LSA), :class:`NeedQeSession`,
:class:`QeJoin`, :class:`QeClose` (the QKD hooks: the node talks to its ETSI 004 proxy and
answers with :class:`QeSessionReady` / :class:`QeFailed`), :class:`LspUp` /
:class:`LspDown` (the service state), :class:`NeighborUp` / :class:`NeighborDown`,
:class:`CrossConnect` / :class:`CrossConnectRemoved` (the LSP's data path here: the
lambdas in and out, per direction; the node answers one it cannot install with
:class:`CrossConnectFailed`, which fails the LSP with 24/9).

State per LSP (key :class:`LspKey` = SESSION + SENDER_TEMPLATE): a Path state block
(:class:`Psb`: what came from upstream, the ERO still to go, the links and lambdas
used) and a Resv state block (:class:`Rsb`: what came back from downstream).

Procedures and their sources:

* ERO (RFC 3209 §4.3.4, RFC 3477, RFC 3473 §5.1.1): the node removes the leading
  subobjects that name it (an Unnumbered subobject with its router ID — its outgoing
  interface — or an IPv4 prefix it is part of: its /32 or an abstract node) together with
  the Label and QE subobjects right behind them (one label per direction; an upstream
  label only on a bidirectional LSP; else 24/1). The next subobject names the next hop;
  the node's outgoing interface must lead there over a TE link (else 24/2 "Bad strict
  node"); a first subobject that is not this node is 24/4 "Bad initial subobject"; loose
  hops are not routed (24/3).
* Labels: lambda labels (RFC 6205). The explicit label behind a node's outgoing interface
  is checked and held on that link and sent to the next node as a one-label LABEL_SET;
  with no explicit label the node offers all its free lambdas. The downstream node picks
  the first label of the set that is free on its side and returns it in the Resv LABEL.
  A label not on the link is 24/6 "Unacceptable label value"; an explicit label in use,
  or a LABEL_SET with no free label, is 24/11 "Routing problem / Label set"
  (RFC 3473 §2.6, §5.1.1; all four actions: lists and ranges, inclusive and exclusive);
  a Resv label the upstream node did not offer is 24/6 (ResvErr). A bidirectional LSP
  (RFC 3473 §3) also holds an upstream lambda on each link, sent as UPSTREAM_LABEL and
  checked and held downstream (24/6 when unusable).
* Soft state (RFC 2205 §3.7): Path and Resv are refreshed every R ms (no jitter: the
  core is deterministic); state not refreshed for L = (K + 0.5) * 1.5 * R times out, R
  being the refresh period the neighbour that sent it put in its TIME_VALUES.
* Refresh reduction (RFC 2961): a refresh toward a neighbour that is refresh-reduction
  capable and acknowledged the message goes as its Message ID in a Srefresh; Srefresh
  received refreshes per Message ID and NACKs the unknown ones; a NACK makes the full
  message go again; Bundles received are processed sub-message by sub-message; a
  MESSAGE_ID_ACK counts in any message.
* Errors and teardown (RFC 2205 §3.6-3.9): PathErr goes upstream hop by hop (taken from
  the next hop only; relayed with Path_State_Removed cleared, RFC 3473 §4.5) to the
  head, which reports :class:`LspDown` and sends PathTear; ResvErr goes downstream;
  PathTear removes state downstream; ResvTear (and a Resv state timeout) removes only
  the Resv state, hop by hop upstream, and makes the head tear the LSP down. Objects of
  class 11bbbbbb (ADMIN_STATUS, NOTIFY_REQUEST, unknown) are passed on unchanged;
  ADMIN_STATUS D gives the graceful deletion of RFC 3473 §7.2.
* Hello (RFC 3209 §5): REQUEST every hello interval to every TE neighbour, ACK in
  reply; a neighbour heard once and then silent for 3.5 intervals, or whose source
  instance changes, has failed: the LSPs through it are torn down, upstream learns by a
  PathErr (24/5, Path_State_Removed), downstream by a PathTear.
* QE (docs/design.md#signalling-and-key-synchronisation): the head whose own subobjects are
  followed by a QE subobject with a
  zero session ID emits :class:`NeedQeSession` and sends Path once it has the key handle,
  written into the QE subobject of the QE destination (the next QE subobject of the
  ERO). A node that finds its own QE subobject with a non-zero session ID emits
  :class:`QeJoin` and holds its Resv until :class:`QeSessionReady`. Failures are PathErr
  with the private error code 252 (docs/rsvp.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address
from typing import Protocol

from gmpls import ero, qe
from gmpls.core import Tick
from gmpls.deadlines import Deadlines
from gmpls.errors import DecodeError
from gmpls.ratelimit import LogLimiter
from gmpls.rsvp import objects as O
from gmpls.rsvp.constants import (
    ES_PATH_STATE_REMOVED,
    GPID_ETHERNET,
    SA_LABEL_RECORDING,
    SA_SE_STYLE,
    ErrorCode,
    LspEncoding,
    MsgType,
    QeError,
    RoutingProblem,
    Style,
    SwitchingType,
    error_text,
)
from gmpls.rsvp.events import (
    Action,
    Channel,
    CreateLsp,
    CrossConnect,
    CrossConnectFailed,
    CrossConnectRemoved,
    DeleteLsp,
    Event,
    LinkResources,
    LspDown,
    LspKey,
    LspUp,
    NeedQeSession,
    NeighborDown,
    NeighborUp,
    QeClose,
    QeFailed,
    QeJoin,
    QeSessionReady,
    Received,
    Send,
)
from gmpls.rsvp.message import Message, bundle_parts
from gmpls.wire import Reader

log = logging.getLogger("gmpls.rsvp.core")

#: RFC 3209 §5.3: a neighbour is declared down after 3.5 missed Hello intervals
HELLO_DEAD_FACTOR = 3.5
#: RFC 2961 §6.2 rapid retransmission: first interval Rf (s), delta 1 (doubling), limit Rl
RETX_FIRST = 0.5
RETX_LIMIT = 3
#: MESSAGE_ID flag ACK_Desired (RFC 2961 §4.1); common header flag "refresh (overhead)
#: reduction capable" (RFC 2961 §2)
ACK_DESIRED = 0x01
RR_CAPABLE = 0x01
#: Message IDs per Srefresh or per Ack of NACKs: 8 + 8 + 4 x 360 bytes fit an Ethernet MTU
MAX_IDS = 360
#: the Message_Identifier space (RFC 2961 §4.5: compared as 32-bit serial numbers)
ID_SPACE = 1 << 32
#: the MESSAGE_ID_LIST C-Types a Srefresh may carry (RFC 2961 §5.1)
ID_LISTS = (O.MessageIdList, O.MessageIdSrcList, O.MessageIdMcastList)
#: the STYLE object of each reservation style, made once (encoded once)
_STYLES = {s: O.StyleObj(s) for s in Style}


class TeLinkLike(Protocol):
    """A TE link seen from this node (:class:`gmpls.topology.LocalTeLink` fits)."""

    @property
    def local_if(self) -> int: ...
    @property
    def remote_router_id(self) -> IPv4Address: ...
    @property
    def remote_if(self) -> int: ...
    @property
    def remote_control(self) -> IPv4Address: ...
    @property
    def lambdas(self) -> tuple[int, ...]: ...


# --- state -------------------------------------------------------------------------------

HEAD, TRANSIT, TAIL = "head", "transit", "tail"


@dataclass(slots=True)
class Psb:
    """Path state (RFC 2205 §2.4 PSB) of one LSP at this node."""

    key: LspKey
    role: str
    state: str  # "qe-wait", "path-sent", "resv-wait-qe", "up"
    session: O.SessionLspTunnelV4
    template: O.SenderTemplate
    tspec: O.SenderTspec
    label_request: O.GeneralizedLabelRequest
    session_attribute: O.SessionAttribute | O.SessionAttributeRa | None
    phop: IPv4Address | None = None  # upstream control address (None at the head)
    in_if: int | None = None  # local interface of the incoming TE link
    in_label: int | None = None  # lambda label held on the incoming link
    nhop: IPv4Address | None = None  # downstream control address (None at the tail)
    out_if: int | None = None
    out_labels: tuple[int, ...] = ()  # labels offered downstream (LABEL_SET)
    out_label: int | None = None  # label held on the outgoing link
    out_explicit: bool = False
    #: bidirectional LSP (RFC 3473 §3): the upstream labels held on each link
    bidir: bool = False
    in_up_label: int | None = None
    out_up_label: int | None = None
    ero_out: tuple[ero.Subobject, ...] = ()
    rro_in: tuple[ero.Subobject, ...] = ()
    forward: tuple[O.RsvpObject, ...] = ()  # 11bbbbbb objects (ADMIN_STATUS...), forwarded
    qe_params: qe.QeParams | None = None
    qe_dst: IPv4Address | None = None
    key_handle: bytes | None = None
    qe_pending: bool = False
    expires: float | None = None  # None: never (head)
    #: RFC 2205 §3.7 lifetime L of the Path state, from the upstream's refresh period
    lifetime: float = 0.0
    next_refresh: float | None = None
    path_msg: Message | None = None
    #: RFC 2961 refresh reduction: (Message ID, objects) of the Path the next hop
    #: acknowledged, and per message type (PATH, RESV) the (neighbour, epoch, Message ID)
    #: that installed the Path state from upstream and the Resv state from downstream
    path_acked: tuple[int, tuple[O.RsvpObject, ...]] | None = None
    rx_ids: dict[int, tuple[IPv4Address, int, int]] = field(default_factory=dict)
    #: head: when an LSP still without Resv is given up (setup timeout)
    setup_deadline: float | None = None
    #: when the setup passed here (the ``now`` given): "path_in", "path_out", "resv_in",
    #: "resv_out", each the first time (``show mpls lsp json``, the demo's ladder of stages)
    stages: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class Rsb:
    """Resv state (RFC 2205 §2.4 RSB): what came from downstream, and what went up."""

    key: LspKey
    label: int | None
    route: tuple[ero.Subobject, ...]
    flowspec: O.Flowspec | None
    expires: float | None
    resv_msg: Message | None = None  # the Resv this node sends upstream
    next_refresh: float | None = None
    #: 11bbbbbb objects of the Resv (ADMIN_STATUS...), forwarded upstream
    forward: tuple[O.RsvpObject, ...] = ()
    #: RFC 2205 §3.7 lifetime L, from the downstream's refresh period
    lifetime: float = 0.0
    #: (Message ID, objects) of the Resv the previous hop acknowledged (RFC 2961 §5)
    resv_acked: tuple[int, tuple[O.RsvpObject, ...]] | None = None


@dataclass(slots=True)
class Neighbor:
    address: IPv4Address
    their_instance: int = 0
    last_heard: float | None = None
    up: bool = False
    next_hello: float = 0.0
    #: declared down by Hello and not heard since: no Path is sent toward it
    failed: bool = False
    #: its last message had the refresh-reduction-capable flag (RFC 2961 §2)
    rr_capable: bool = False


@dataclass(slots=True)
class _Pending:
    """A trigger message waiting for its MESSAGE_ID_ACK (RFC 2961 §6)."""

    dst: IPv4Address
    lsp: LspKey | None
    data: bytes
    message: Message
    next_at: float
    interval: float
    left: int


class _Fail(Exception):
    """An RSVP error detected while processing a message: (code, value) and why."""

    def __init__(self, code: int, value: int, reason: str) -> None:
        super().__init__(reason)
        self.code = (code, value)
        self.reason = reason


def _rp(value: int, reason: str) -> _Fail:
    return _Fail(ErrorCode.ROUTING_PROBLEM, value, reason)


def _qe_fail(value: int, reason: str) -> _Fail:
    return _Fail(ErrorCode.QE_ERROR, value, reason)


def _lambda_label_request(msg: Message) -> O.GeneralizedLabelRequest:
    """The Path's generalized LABEL_REQUEST (RFC 3473 §2.1), which must ask for a lambda
    LSP: switching type LSC, encoding Lambda."""
    lr = msg.get(O.GeneralizedLabelRequest)
    if lr is None:
        raise _rp(RoutingProblem.SWITCHING_TYPE, "no generalized LABEL_REQUEST")
    if lr.switching != SwitchingType.LSC:
        raise _rp(RoutingProblem.SWITCHING_TYPE, f"switching type {lr.switching}")
    if lr.encoding != LspEncoding.LAMBDA:
        raise _rp(RoutingProblem.UNSUPPORTED_ENCODING, f"encoding {lr.encoding}")
    return lr


@dataclass(slots=True)
class _Route:
    """The result of processing the ERO at this node."""

    tail: bool
    out_if: int | None
    link: TeLinkLike | None
    rest: list[ero.Subobject]
    down_label: int | None
    own_qe: ero.QeSubobject | None
    #: the explicit upstream label (ERO Label subobject with the U bit, RFC 3473 §5.1.1)
    up_label: int | None = None


# --- the core ----------------------------------------------------------------------------


class RsvpCore:
    """RSVP-TE for one node. ``te_links``: this node's TE links (local_if, remote router
    ID, remote_if, remote control address, lambdas as RFC 6205 channel indices)."""

    # long: the core's settings and tables, one per line
    def __init__(
        self,
        router_id: IPv4Address,
        control_address: IPv4Address,
        te_links: Iterable[TeLinkLike],
        *,
        refresh_ms: int = 30000,
        keep_multiplier: int = 3,
        hello_ms: int = 1000,
        instance: int = 1,
        qe_capable: bool = True,
        reliable: bool = True,
        name: str = "",
    ) -> None:
        self.router_id = IPv4Address(router_id)
        self.control_address = IPv4Address(control_address)
        self.links: dict[int, TeLinkLike] = {link.local_if: link for link in te_links}
        self.refresh = refresh_ms / 1000.0
        self.keep = keep_multiplier
        self.lifetime = (keep_multiplier + 0.5) * 1.5 * self.refresh
        self.hello = hello_ms / 1000.0
        self.instance = instance or 1
        self.qe_capable = qe_capable
        self.name = name or str(router_id)
        self.free: dict[int, set[int]] = {i: set(link.lambdas) for i, link in self.links.items()}
        self._lambdas: dict[int, frozenset[int]] = {
            i: frozenset(link.lambdas) for i, link in self.links.items()
        }
        #: each link's RFC 6205 label by lambda, in channel order (made once, not per Path)
        self._labels: dict[int, dict[int, int]] = {
            i: {n: ero.lambda_label(n) for n in sorted(link.lambdas)}
            for i, link in self.links.items()
        }
        self.psbs: dict[LspKey, Psb] = {}
        self.rsbs: dict[LspKey, Rsb] = {}
        self.neighbors: dict[IPv4Address, Neighbor] = {}
        for link in self.links.values():
            self.neighbors.setdefault(link.remote_control, Neighbor(link.remote_control))
        self.stats: dict[str, int] = {
            "rx": 0,
            "tx": 0,
            "rx_errors": 0,
            "rx_dropped": 0,
            "path_err_sent": 0,
            "resv_err_sent": 0,
        }
        #: RFC 2961 reliable delivery of trigger messages (MESSAGE_ID + Ack)
        self.reliable = reliable
        self.epoch = self.instance & 0xFFFFFF
        self.pending: dict[int, _Pending] = {}
        self._next_msg_id = 1
        self._now = 0.0
        self.stats.update({"retransmits": 0, "retransmit_give_up": 0, "acks_rx": 0})
        #: MESSAGE_ID_ACKs owed per neighbour, sent at the end of a read (Received.more)
        self._acks_owed: dict[IPv4Address, list[O.RsvpObject]] = {}
        self.stats["acks_tx"] = 0
        self.stats.update({"bundles_rx": 0, "srefresh_rx": 0, "srefresh_tx": 0})
        self.stats.update({"nacks_rx": 0, "nacks_tx": 0, "xc_failures": 0})
        #: RFC 2961 §5: (neighbour, Message ID) -> (PATH or RESV, LSP) of the state that
        #: neighbour installed here with it; the Message IDs to summary-refresh, per neighbour
        self._rx_ids: dict[tuple[IPv4Address, int], tuple[int, LspKey]] = {}
        self._srefresh_due: dict[IPv4Address, list[int]] = {}
        #: lines about malformed messages, which anyone on a link can send: rate-limited
        self._bad_lines = LogLimiter()
        self._next_lsp_id = 1
        #: O(1) indexes over ``psbs``: (ext tunnel ID, tunnel ID) -> its LSPs; insertion
        #: order (the order ``psbs`` iterates in); per-LSP timers (gmpls.deadlines)
        self._tunnels: dict[tuple[IPv4Address, int], set[LspKey]] = {}
        self._order: dict[LspKey, int] = {}
        self._seq = 0
        self._lsp_timers_due: Deadlines[LspKey] = Deadlines(self._deadline)
        self._dirty: set[int] = set()
        #: the cross-connect last emitted per LSP, and the LSPs whose state changed during
        #: this event (their cross-connect is compared at its end, :meth:`_cross_connects`)
        self._xc: dict[LspKey, CrossConnect] = {}
        self._xc_touched: set[LspKey] = set()
        self._out: list[Action] = []
        self._started = False
        #: objects this node's messages carry alike, made once: sent again, the same
        #: object is encoded once (gmpls.rsvp.objects: the bytes by object)
        self._time_values = O.TimeValues(int(self.refresh * 1000))
        self._hops: dict[int | None, O.RsvpHopIfId] = {}

    # --- the one entry point ----------------------------------------------------------

    def handle(self, event: Event, now: float) -> list[Action]:
        # the head's CreateLsp and DeleteLsp answer with what they caused alone; every
        # other event also runs the timers due at ``now``
        if isinstance(event, CreateLsp):
            if self.tunnel_in_use(event.tunnel_id) and not event.make_before_break:
                raise ValueError(f"tunnel {event.tunnel_id} is in use")
            self._begin(now)
            self._create_lsp(event, now)
            return self._end()
        self._begin(now)
        if isinstance(event, DeleteLsp):
            self._delete_lsp(event.tunnel_id, event.graceful, event.lsp_id)
            return self._end()
        if isinstance(event, Received):
            self._receive(event.src, event.data, now)
        elif isinstance(event, QeSessionReady):
            self._qe_ready(event, now)
        elif isinstance(event, QeFailed):
            self._qe_failed(event, now)
        elif isinstance(event, CrossConnectFailed):
            self._xc_failed(event)
        elif not isinstance(event, Tick):
            raise TypeError(f"not an RSVP core event: {event!r}")
        self._timers(now)
        if not (isinstance(event, Received) and event.more):
            self._send_acks()
        return self._end()

    def _send_acks(self) -> None:
        """The MESSAGE_ID_ACKs owed, one Ack message per neighbour (RFC 2961 §4.4: an Ack
        message carries any number of them), after the messages the received ones
        triggered."""
        for dst, acks in self._acks_owed.items():
            self.stats["acks_tx"] += len(acks)
            for i in range(0, len(acks), MAX_IDS):
                self._send(dst, Message(MsgType.ACK, tuple(acks[i : i + MAX_IDS])))
        self._acks_owed.clear()

    def next_timer(self) -> float | None:
        """When :class:`~gmpls.core.Tick` is next due (None: nothing pending)."""
        times: list[float] = [p.next_at for p in self.pending.values()]
        if self._acks_owed:  # a read whose last message never came (the shell's bug)
            times.append(self._now)
        top = self._lsp_timers_due.top()  # every RSB has its PSB: both their timers
        if top is not None:
            times.append(top)
        if self.hello > 0:
            for n in self.neighbors.values():
                times.append(n.next_hello)
                if n.up and n.last_heard is not None:
                    times.append(n.last_heard + HELLO_DEAD_FACTOR * self.hello)
        return min(times) if times else None

    def tunnel_in_use(self, tunnel_id: int) -> bool:
        """Whether this node heads (or holds state of) an LSP of its tunnel ``tunnel_id``."""
        return bool(self._tunnels.get((self.router_id, tunnel_id)))

    def free_lambdas(self, local_if: int) -> tuple[int, ...]:
        return tuple(sorted(self.free.get(local_if, ())))

    def lsp_table(self, wall_offset: float = 0.0) -> list[dict[str, object]]:
        """A snapshot of every LSP at this node, for the CLI (no key material); the setup
        stages as ``now + wall_offset``."""
        out: list[dict[str, object]] = []
        for key, p in sorted(self.psbs.items(), key=lambda kv: str(kv[0])):
            rsb = self.rsbs.get(key)
            out.append(
                {
                    "lsp": str(key),
                    "tunnel_id": key.tunnel_id,
                    "role": p.role,
                    "state": p.state,
                    "phop": str(p.phop) if p.phop else None,
                    "nhop": str(p.nhop) if p.nhop else None,
                    "in_if": p.in_if,
                    "in_lambda": None if p.in_label is None else ero.lambda_channel(p.in_label),
                    "out_if": p.out_if,
                    "out_lambda": None if p.out_label is None else ero.lambda_channel(p.out_label),
                    "bidirectional": p.bidir,
                    "in_up_lambda": _channel(p.in_up_label),
                    "out_up_lambda": _channel(p.out_up_label),
                    "qe": p.qe_params is not None,
                    "key_handle_prefix": p.key_handle[:4].hex() if p.key_handle else None,
                    "route": [ero.hop_text(s) for s in rsb.route] if rsb else [],
                    "stages": {k: round(t + wall_offset, 6) for k, t in p.stages.items()},
                }
            )
        return out

    # --- head: create and delete LSPs -------------------------------------------------

    def _create_lsp(self, ev: CreateLsp, now: float) -> None:
        """See :class:`~gmpls.rsvp.events.CreateLsp`."""
        tunnel_id, route, name = ev.tunnel_id, ev.route, ev.name
        lsp_id = self._next_lsp_id
        self._next_lsp_id = self._next_lsp_id % 0xFFFF + 1
        end = _route_end(route)
        key = LspKey(end or IPv4Address(0), tunnel_id, self.router_id, self.router_id, lsp_id)
        tb = O.TokenBucket.for_bandwidth(ev.bandwidth_bps / 8.0)
        psb = Psb(
            key,
            HEAD,
            "path-sent",
            O.SessionLspTunnelV4(key.tunnel_end, tunnel_id, self.router_id),
            O.SenderTemplate(self.router_id, lsp_id),
            O.SenderTspec(tb),
            O.GeneralizedLabelRequest(LspEncoding.LAMBDA, SwitchingType.LSC, GPID_ETHERNET),
            O.SessionAttribute(name or f"lsp-{tunnel_id}", 7, 7, SA_LABEL_RECORDING | SA_SE_STYLE),
        )
        try:
            if end is None:
                raise _rp(RoutingProblem.BAD_EXPLICIT_ROUTE, "the ERO names no destination")
            psb.bidir = ev.bidirectional
            r = self._process_ero(list(route), head=True, bidir=psb.bidir)
            if r.tail:
                raise _rp(RoutingProblem.BAD_EXPLICIT_ROUTE, "the ERO leads nowhere past us")
            self._take_route(psb, r)
            if r.own_qe is not None:
                params = ev.qe_params or r.own_qe.params()
                self._qe_head(psb, r.own_qe, params)
            self._check_out_label(psb)
            self._out_upstream_label(psb, r.up_label)
        except _Fail as f:
            self._release_labels(psb)
            self._emit(LspDown(key, HEAD, f.reason, f.code))
            return
        self._add_psb(psb)
        psb.setup_deadline = now + self.lifetime
        self._schedule(key)
        if psb.qe_pending:
            psb.state = "qe-wait"
            assert psb.qe_dst is not None and psb.qe_params is not None
            self._emit(NeedQeSession(key, psb.qe_dst, psb.qe_params))
        else:
            self._send_path_first(psb, now)

    def _delete_lsp(
        self, tunnel_id: int, graceful: bool = False, lsp_id: int | None = None
    ) -> None:
        """Head: tear down tunnel ``tunnel_id`` (PathTear, labels and key released), an
        LSP that is up first gracefully if asked (:meth:`_delete_gracefully`); with
        ``lsp_id`` that LSP of the tunnel only."""
        keys = self._tunnels.get((self.router_id, tunnel_id), set())
        for key in sorted(keys, key=self._order.__getitem__):
            psb = self.psbs.get(key)
            if psb is None or psb.role != HEAD or lsp_id not in (None, key.lsp_id):
                continue
            if graceful and psb.nhop is not None and psb.state in ("up", "deleting"):
                self._delete_gracefully(psb)
            else:
                self._teardown(psb, "deleted", None, send_tear=True)

    def _delete_gracefully(self, psb: Psb) -> None:
        """RFC 3473 §7.2.1 ingress-initiated deletion: a Path with ADMIN_STATUS R and D
        tells every node the LSP is going (no alarms); the tail echoes it in its Resv,
        and that Resv makes the head send PathTear (:meth:`_resv_update`). Without the
        echo within one refresh period R the PathTear goes anyway."""
        if psb.state == "deleting":
            return
        assert psb.nhop is not None
        psb.state = "deleting"
        admin = O.AdminStatus(O.AdminStatus.REFLECT | O.AdminStatus.DELETION)
        psb.forward = (*(o for o in psb.forward if not isinstance(o, O.AdminStatus)), admin)
        psb.path_msg = self._path_message(psb)
        psb.setup_deadline = self._now + self.refresh
        self._schedule(psb.key)
        self._trigger(psb.nhop, psb.path_msg)

    # --- plumbing ---------------------------------------------------------------------

    def _begin(self, now: float) -> None:
        self._now = now
        if not self._started:
            self._started = True
            for n in self.neighbors.values():
                n.next_hello = now
        self._out = []

    def _end(self) -> list[Action]:
        for i in sorted(self._dirty):
            self._out.append(LinkResources(i, self.free_lambdas(i)))
        self._dirty.clear()
        self._cross_connects()
        out, self._out = self._out, []
        return out

    def _emit(self, a: Action) -> None:
        self._out.append(a)

    # --- indexes: tunnels and per-LSP timers ------------------------------------------

    def _add_psb(self, psb: Psb) -> None:
        key = psb.key
        self.psbs[key] = psb
        self._seq += 1
        self._order[key] = self._seq
        self._tunnels.setdefault((key.ext_tunnel_id, key.tunnel_id), set()).add(key)

    def _drop_psb(self, key: LspKey) -> None:
        self._xc_touched.add(key)
        psb = self.psbs.pop(key, None)
        if psb is None:
            return
        for src, _, mid in psb.rx_ids.values():
            self._rx_ids.pop((src, mid), None)
        self._order.pop(key, None)
        t = (key.ext_tunnel_id, key.tunnel_id)
        keys = self._tunnels.get(t)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._tunnels[t]

    def _deadline(self, key: LspKey) -> float | None:
        """The earliest timer of one LSP (Path/Resv refresh, state timeout, setup)."""
        p = self.psbs.get(key)
        if p is None:
            return None
        times = [t for t in (p.expires, p.next_refresh, p.setup_deadline) if t is not None]
        r = self.rsbs.get(key)
        if r is not None:
            times += [t for t in (r.expires, r.next_refresh) if t is not None]
        return min(times) if times else None

    def _schedule(self, key: LspKey) -> None:
        """(Re)enter the LSP's earliest timer (after a timer moved earlier; one that moved
        later is corrected when its old entry comes to the top)."""
        self._xc_touched.add(key)
        self._lsp_timers_due.enter(key)

    def _send(self, dst: IPv4Address, msg: Message, ttl: int = 255) -> None:
        if self.reliable and not msg.flags & RR_CAPABLE:
            msg = replace(msg, flags=msg.flags | RR_CAPABLE)
        self.stats["tx"] += 1
        self._emit(Send(dst, msg.encode(), msg, ttl))

    def _trigger(self, dst: IPv4Address, msg: Message) -> None:
        """Send a trigger message (Path, Resv, Tear, Err: new state, not a refresh).

        With ``reliable`` it carries a MESSAGE_ID with ACK_Desired and is retransmitted
        after Rf, 2Rf, 4Rf until acknowledged (RFC 2961 §6.2); a newer trigger for the
        same LSP and neighbour supersedes the older one."""
        objs = tuple(o for o in msg.objects if not isinstance(o, O.MessageId))
        if not self.reliable:
            self._send(dst, replace(msg, objects=objs))
            return
        lsp = _msg_key(msg)
        if lsp is not None:
            self._cancel(lsp, dst)
        mid = self._next_msg_id
        self._next_msg_id = self._next_msg_id % 0xFFFFFFFF + 1
        msg = Message(
            msg.msg_type,
            (O.MessageId(mid, self.epoch, ACK_DESIRED), *objs),
            msg.send_ttl,
            msg.flags | RR_CAPABLE,
        )
        self._send(dst, msg)
        data = self._out[-1].data  # type: ignore[union-attr]
        self.pending[mid] = _Pending(
            dst, lsp, data, msg, self._now + RETX_FIRST, RETX_FIRST, RETX_LIMIT
        )

    def _cancel(
        self, lsp: LspKey, dst: IPv4Address | None = None, types: tuple[int, ...] = ()
    ) -> None:
        """Stop retransmitting the pending triggers of ``lsp`` (to ``dst``, of ``types``)."""
        for mid, p in list(self.pending.items()):
            if (
                p.lsp == lsp
                and (dst is None or p.dst == dst)
                and (not types or p.message.msg_type in types)
            ):
                del self.pending[mid]

    def _hop(self, lih: int | None) -> O.RsvpHopIfId:
        hop = self._hops.get(lih)
        if hop is None:
            i = lih or 0
            tlvs = (O.IfIdTlv.if_index(self.router_id, i),) if lih is not None else ()
            hop = self._hops[lih] = O.RsvpHopIfId(self.control_address, i, tlvs)
        return hop

    # --- cross-connects (the data path of each LSP here) ------------------------------

    def cross_connect(self, key: LspKey) -> CrossConnect | None:
        """The cross-connect LSP ``key`` needs here now, or None: once its lambdas are
        reserved (head and transit: the Resv accepted; tail: the Resv sent)."""
        p = self.psbs.get(key)
        if p is None:
            return None
        if p.role == TAIL:
            if p.state != "up":
                return None
        elif key not in self.rsbs or p.out_label is None:
            return None
        return CrossConnect(
            key,
            p.role,
            _chan(p.in_if, p.in_label),
            _chan(p.out_if, p.out_label),
            _chan(p.out_if, p.out_up_label),
            _chan(p.in_if, p.in_up_label),
        )

    def _cross_connects(self) -> None:
        """Emit what changed for the LSPs touched by this event: a new or changed
        :class:`CrossConnect`, or :class:`CrossConnectRemoved` for one that is no longer
        wanted (LSP gone, Resv state gone)."""
        if not self._xc_touched:
            return
        for key in sorted(self._xc_touched, key=str):
            want, had = self.cross_connect(key), self._xc.get(key)
            if want == had:
                continue
            if want is None:
                del self._xc[key]
                self._out.append(CrossConnectRemoved(key))
            else:
                self._xc[key] = want
                self._out.append(want)
        self._xc_touched.clear()

    def _xc_failed(self, ev: CrossConnectFailed) -> None:
        """The node could not install the LSP's cross-connect: the LSP fails here as
        with a lambda it cannot allocate (24/9), upstream told by PathErr with
        Path_State_Removed, downstream by PathTear."""
        psb = self.psbs.get(ev.lsp)
        if psb is None:
            return
        code = (int(ErrorCode.ROUTING_PROBLEM), int(RoutingProblem.LABEL_ALLOCATION_FAILURE))
        reason = f"cross-connect failed: {ev.reason}"
        self.stats["xc_failures"] += 1
        if psb.role != HEAD:
            self._path_err(psb, code, reason, state_removed=True)
        self._teardown(psb, reason, code, send_tear=True)

    # --- labels -----------------------------------------------------------------------

    def _valid_label(self, local_if: int, label: int) -> bool:
        n = ero.lambda_channel(label)
        return n in self._lambdas[local_if] and ero.lambda_label(n) == label

    def _hold(self, local_if: int, label: int) -> bool:
        n = ero.lambda_channel(label)
        if n not in self.free[local_if]:
            return False
        self.free[local_if].discard(n)
        self._dirty.add(local_if)
        return True

    def _release(self, local_if: int | None, label: int | None) -> None:
        if local_if is None or label is None or local_if not in self.links:
            return
        n = ero.lambda_channel(label)
        if n in self.links[local_if].lambdas and n not in self.free[local_if]:
            self.free[local_if].add(n)
            self._dirty.add(local_if)

    def _release_labels(self, psb: Psb) -> None:
        """Give back every label the LSP holds here (both directions, both links)."""
        self._release(psb.in_if, psb.in_label)
        self._release(psb.out_if, psb.out_label)
        self._release(psb.in_if, psb.in_up_label)
        self._release(psb.out_if, psb.out_up_label)

    def _in_upstream_label(self, in_if: int, label: int) -> int:
        """The UPSTREAM_LABEL of a bidirectional Path (RFC 3473 §3.2): a lambda of the
        incoming link free here, then held; else "Unacceptable label value" (24/6)."""
        if not self._valid_label(in_if, label) or not self._hold(in_if, label):
            raise _rp(
                RoutingProblem.UNACCEPTABLE_LABEL,
                f"upstream lambda {ero.lambda_channel(label)} unusable on link {in_if}",
            )
        return label

    def _out_upstream_label(self, psb: Psb, explicit: int | None) -> None:
        """A bidirectional LSP's upstream label on the outgoing link (RFC 3473 §3.2):
        the ERO's explicit upstream label (24/6 if in use), else the last free lambda
        (24/9 if none: the PCE and the Label_Set hand out downstream lambdas from the
        first, so concurrent setups meet only on a full link), which leaves the Label_Set
        offered downstream; held, sent as UPSTREAM_LABEL."""
        if not psb.bidir or psb.out_if is None:
            return
        if explicit is None:
            spare = self.free_lambdas(psb.out_if)
            if not spare:
                raise _rp(RoutingProblem.LABEL_ALLOCATION_FAILURE, "no upstream lambda")
            explicit = ero.lambda_label(spare[-1])
        if not self._hold(psb.out_if, explicit):
            raise _rp(
                RoutingProblem.UNACCEPTABLE_LABEL,
                f"upstream lambda {ero.lambda_channel(explicit)} of link {psb.out_if} in use",
            )
        psb.out_up_label = explicit
        if not psb.out_explicit:
            psb.out_labels = tuple(x for x in psb.out_labels if x != explicit)
            if not psb.out_labels:
                raise _rp(RoutingProblem.LABEL_SET, f"no free lambda on link {psb.out_if}")

    # --- ERO (RFC 3209 §4.3.4, RFC 3477, RFC 3473 §5.1.1) ------------------------------

    def _names_me(self, s: ero.Subobject) -> bool:
        """Whether ``s`` names this node: an Unnumbered interface of ours, or an IPv4
        prefix containing our router ID or control address — a /32, or an abstract node
        such as a /24 this node is part of (RFC 3209 §4.3.4.1)."""
        if isinstance(s, ero.Unnumbered):
            return s.router_id == self.router_id
        if isinstance(s, ero.Ipv4Prefix):
            return _in_prefix(self.router_id, s) or _in_prefix(self.control_address, s)
        return False

    def _process_ero(
        self, route: list[ero.Subobject], head: bool = False, bidir: bool = False
    ) -> _Route:
        if not route:
            raise _rp(RoutingProblem.BAD_EXPLICIT_ROUTE, "empty EXPLICIT_ROUTE")
        if not self._names_me(route[0]):
            if route[0].loose:
                raise _rp(RoutingProblem.BAD_LOOSE_NODE, "loose hops are not routed")
            raise _rp(RoutingProblem.BAD_INITIAL_SUBOBJECT, f"first subobject {route[0]}")
        i = 0
        out_if: int | None = None
        own: list[ero.Subobject] = []
        while i < len(route) and self._names_me(route[i]):
            s = route[i]
            if isinstance(s, ero.Unnumbered):
                out_if = s.interface_id
            i += 1
            while i < len(route) and isinstance(route[i], ero.Label | ero.QeSubobject):
                own.append(route[i])
                i += 1
        down_label, up_label, own_qe = _own_subobjects(own, bidir)
        rest = route[i:]
        if not rest:
            if down_label is not None or up_label is not None:
                raise _rp(RoutingProblem.BAD_EXPLICIT_ROUTE, "label with no outgoing link")
            return _Route(True, None, None, [], None, own_qe)
        nxt = rest[0]
        if nxt.loose:
            raise _rp(RoutingProblem.BAD_LOOSE_NODE, f"loose next hop {nxt}")
        if not isinstance(nxt, ero.Unnumbered | ero.Ipv4Prefix):
            raise _rp(RoutingProblem.BAD_EXPLICIT_ROUTE, f"next subobject {nxt!r} is no node")
        if out_if is not None:
            link = self.links.get(out_if)
            if link is None or not _in_node(link.remote_router_id, nxt):
                raise _rp(RoutingProblem.BAD_STRICT_NODE, f"no TE link {out_if} to {nxt}")
        else:
            cands = [lk for lk in self.links.values() if _in_node(lk.remote_router_id, nxt)]
            if not cands:
                raise _rp(RoutingProblem.BAD_STRICT_NODE, f"{nxt} is not a TE neighbour")
            link = cands[0]
            out_if = link.local_if
        for label in (down_label, up_label):
            if label is not None and not self._valid_label(out_if, label):
                raise _rp(
                    RoutingProblem.UNACCEPTABLE_LABEL,
                    f"label 0x{label:08x} is not a lambda of link {out_if}",
                )
        return _Route(False, out_if, link, list(rest), down_label, own_qe, up_label)

    def _take_route(self, psb: Psb, r: _Route) -> None:
        psb.ero_out = tuple(r.rest)
        if r.link is not None:
            n = self.neighbors.get(r.link.remote_control)
            if n is not None and n.failed:
                raise _rp(
                    RoutingProblem.NO_ROUTE, f"next hop {r.link.remote_control} is down (Hello)"
                )
            psb.out_if = r.out_if
            psb.nhop = r.link.remote_control
        if r.down_label is not None:
            psb.out_labels = (r.down_label,)
            psb.out_explicit = True

    def _check_out_label(self, psb: Psb) -> None:
        """Hold the explicit label, or prepare the label set of all free lambdas."""
        if psb.out_if is None:
            return
        if psb.out_explicit:
            label = psb.out_labels[0]
            if not self._hold(psb.out_if, label):
                raise _rp(
                    RoutingProblem.LABEL_SET,
                    f"lambda {ero.lambda_channel(label)} of link {psb.out_if} is in use",
                )
            psb.out_label = label
        else:
            free = self.free_lambdas(psb.out_if)
            if not free:
                raise _rp(RoutingProblem.LABEL_SET, f"no free lambda on link {psb.out_if}")
            labels = self._labels[psb.out_if]
            psb.out_labels = tuple(labels[n] for n in free)

    # --- QE ---------------------------------------------------------------------------

    def _qe_head(self, psb: Psb, own: ero.QeSubobject, params: qe.QeParams) -> None:
        if not self.qe_capable:
            raise _qe_fail(QeError.NOT_QE_CAPABLE, "this node is not QE capable")
        problems = params.problems()
        if problems:
            raise _qe_fail(QeError.BAD_PARAMETERS, "; ".join(problems))
        psb.qe_params = params
        if own.has_session:
            # the caller already holds a session: use it
            psb.key_handle = own.session_id
            return
        dst = _qe_destination(psb.ero_out)
        if dst is None:
            raise _qe_fail(QeError.BAD_PARAMETERS, "no QE destination subobject in the ERO")
        psb.qe_dst = dst[0]
        psb.qe_pending = True

    def _qe_ready(self, ev: QeSessionReady, now: float) -> None:
        psb = self.psbs.get(ev.lsp)
        if psb is None or not psb.qe_pending:
            # the LSP went away meanwhile: give the session back
            self._emit(QeClose(ev.lsp, ev.key_handle))
            return
        if len(ev.key_handle) != qe.SESSION_ID_LEN or ev.key_handle == qe.ZERO_SESSION_ID:
            self._qe_failed(QeFailed(ev.lsp, "key handle is not 64 non-zero bytes"), now)
            self._emit(QeClose(ev.lsp, ev.key_handle))
            return
        psb.qe_pending = False
        psb.key_handle = ev.key_handle
        if psb.role == HEAD:
            dst = _qe_destination(psb.ero_out)
            assert dst is not None
            idx = dst[1]
            eo = list(psb.ero_out)
            old = eo[idx]
            assert isinstance(old, ero.QeSubobject)
            eo[idx] = replace(old, session_id=ev.key_handle)
            psb.ero_out = tuple(eo)
            self._send_path_first(psb, now)
        elif psb.role == TAIL:
            self._send_resv_up(psb, self._tail_rsb(psb), now)
        else:
            rsb = self.rsbs.get(psb.key)
            if rsb is not None:
                self._send_resv_up(psb, rsb, now)

    def _qe_failed(self, ev: QeFailed, now: float) -> None:
        psb = self.psbs.get(ev.lsp)
        if psb is None:
            return
        if psb.role == HEAD:
            self._teardown(psb, f"QE: {ev.reason}", (ErrorCode.QE_ERROR, QeError.HEAD_NO_KEY), True)
        else:
            code = (ErrorCode.QE_ERROR, QeError.TAIL_JOIN_FAILED)
            self._path_err(psb, code, f"QE: {ev.reason}", state_removed=True)
            self._teardown(psb, f"QE: {ev.reason}", code, send_tear=True)

    # --- messages out -----------------------------------------------------------------

    def _path_message(self, psb: Psb) -> Message:
        objs: list[O.RsvpObject] = [
            psb.session,
            self._hop(psb.out_if),
            self._time_values,
            O.ExplicitRoute(psb.ero_out),
            psb.label_request,
        ]
        if psb.out_labels:
            objs.append(O.LabelSet(psb.out_labels))
        if psb.session_attribute is not None:
            objs.append(psb.session_attribute)
        objs += [psb.template, psb.tspec]
        rec: list[ero.Subobject] = []
        if psb.out_if is not None:
            rec.append(ero.Unnumbered(self.router_id, psb.out_if))
        objs.append(O.RecordRoute((*rec, *psb.rro_in)))
        if psb.out_up_label is not None:
            objs.append(O.UpstreamLabel(psb.out_up_label))
        objs += psb.forward
        return Message(MsgType.PATH, tuple(objs))

    def _send_path_first(self, psb: Psb, now: float) -> None:
        assert psb.nhop is not None
        psb.state = "path-sent"
        psb.stages.setdefault("path_out", now)
        psb.path_msg = self._path_message(psb)
        psb.next_refresh = now + self.refresh
        self._schedule(psb.key)
        self._trigger(psb.nhop, psb.path_msg)

    def _resv_message(self, psb: Psb, rsb: Rsb) -> Message:
        style = (
            Style.SE
            if psb.session_attribute is None or psb.session_attribute.flags & SA_SE_STYLE
            else Style.FF
        )
        rec: list[ero.Subobject] = []
        if psb.in_if is not None:
            rec.append(ero.Unnumbered(self.router_id, psb.in_if))
        if psb.in_label is not None:
            rec.append(ero.Label(psb.in_label))  # per-link label: not global
        objs: list[O.RsvpObject] = [
            psb.session,
            self._hop(psb.in_if),
            self._time_values,
            _STYLES[style],
            O.Flowspec(psb.tspec.tspec),
            O.FilterSpec(psb.template.sender, psb.template.lsp_id),
        ]
        if psb.in_label is not None:
            objs.append(O.GeneralizedLabel(psb.in_label))
        objs.append(O.RecordRoute((*rec, *rsb.route)))
        objs += _reflected(psb.forward) if psb.role == TAIL else rsb.forward
        return Message(MsgType.RESV, tuple(objs))

    def _tail_rsb(self, psb: Psb) -> Rsb:
        rsb = self.rsbs.get(psb.key)
        if rsb is None:
            rsb = Rsb(psb.key, None, (), None, None)
            self.rsbs[psb.key] = rsb
        return rsb

    def _send_resv_up(self, psb: Psb, rsb: Rsb, now: float) -> None:
        assert psb.phop is not None
        first = psb.state != "up"
        psb.stages.setdefault("resv_out", now)
        rsb.resv_msg = self._resv_message(psb, rsb)
        rsb.next_refresh = now + self.refresh
        self._schedule(psb.key)
        psb.state = "up"
        self._trigger(psb.phop, rsb.resv_msg)
        if first and psb.role == TAIL:
            self._emit(LspUp(psb.key, TAIL, ()))

    def _error_spec(
        self, code: tuple[int, int], flags: int = 0, local_if: int | None = None
    ) -> O.ErrorSpecIfId:
        tlvs = (O.IfIdTlv.if_index(self.router_id, local_if),) if local_if is not None else ()
        return O.ErrorSpecIfId(self.router_id, code[0], code[1], flags, tlvs)

    def _path_err_to(
        self,
        dst: IPv4Address,
        session: O.RsvpObject,
        template: O.RsvpObject | None,
        tspec: O.RsvpObject | None,
        code: tuple[int, int],
        flags: int = 0,
        local_if: int | None = None,
    ) -> None:
        objs: list[O.RsvpObject] = [session, self._error_spec(code, flags, local_if)]
        objs += [o for o in (template, tspec) if o is not None]
        self.stats["path_err_sent"] += 1
        self._trigger(dst, Message(MsgType.PATH_ERR, tuple(objs)))

    def _path_err(
        self, psb: Psb, code: tuple[int, int], reason: str, state_removed: bool = False
    ) -> None:
        log.info("%s: PathErr %s %s: %s", self.name, psb.key, code, reason)
        if psb.phop is None:
            return
        flags = ES_PATH_STATE_REMOVED if state_removed else 0
        self._path_err_to(psb.phop, psb.session, psb.template, psb.tspec, code, flags, psb.in_if)

    def _resv_err_to(
        self,
        dst: IPv4Address,
        session: O.RsvpObject,
        filt: O.FilterSpec | None,
        code: tuple[int, int],
        local_if: int | None = None,
    ) -> None:
        objs: list[O.RsvpObject] = [
            session,
            self._hop(local_if),
            self._error_spec(code, 0, local_if),
            _STYLES[Style.SE],
        ]
        if filt is not None:
            objs.append(filt)
        self.stats["resv_err_sent"] += 1
        self._trigger(dst, Message(MsgType.RESV_ERR, tuple(objs)))

    def _teardown(
        self,
        psb: Psb,
        reason: str,
        code: tuple[int, int] | None,
        send_tear: bool,
    ) -> None:
        """Remove the LSP's state here: labels back, key session closed, PathTear
        downstream (``send_tear``)."""
        key = psb.key
        self._drop_psb(key)
        self.rsbs.pop(key, None)
        self._lsp_timers_due.forget(key)
        # the LSP's Path and Resv are void; errors already sent keep being retransmitted
        self._cancel(key, types=(MsgType.PATH, MsgType.RESV))
        self._release_labels(psb)
        if psb.key_handle is not None and psb.qe_params is not None and not psb.qe_pending:
            self._emit(QeClose(key, psb.key_handle))
        if send_tear and psb.nhop is not None and psb.state != "qe-wait":
            msg = Message(
                MsgType.PATH_TEAR,
                (psb.session, self._hop(psb.out_if), psb.template),
            )
            self._trigger(psb.nhop, msg)
        self._emit(LspDown(key, psb.role, reason, code))

    # --- messages in ------------------------------------------------------------------

    def _receive(self, src: IPv4Address, data: bytes, now: float) -> None:
        self.stats["rx"] += 1
        if data[1:2] == bytes([MsgType.BUNDLE]):
            self._rx_bundle(src, data, now)
            return
        try:
            msg = Message.decode(data)
        except DecodeError as e:
            self.stats["rx_errors"] += 1
            held = self._bad_lines.admit("bad RSVP message", now)
            if held is not None:  # the count of lines held back goes with the next one
                log.info(
                    "%s: bad RSVP message from %s: %s",
                    self.name,
                    src,
                    e,
                    extra={"suppressed": held} if held else None,
                )
            if e.code is not None:
                self._answer_malformed(src, data, e.code)
            return
        self._process(src, msg, now)

    def _rx_bundle(self, src: IPv4Address, data: bytes, now: float) -> None:
        """A Bundle (RFC 2961 §3.4): each sub-message is processed as if it had come
        alone from ``src`` (a bad one is answered or dropped on its own); a Bundle inside
        a Bundle is dropped."""
        try:
            parts = bundle_parts(data)
        except DecodeError as e:
            self.stats["rx_errors"] += 1
            log.info("%s: bad RSVP Bundle from %s: %s", self.name, src, e)
            return
        self.stats["bundles_rx"] += 1
        for part in parts:
            if part[1] == MsgType.BUNDLE:
                self.stats["rx_dropped"] += 1
            else:
                self._receive(src, part, now)

    def _process(self, src: IPv4Address, msg: Message, now: float) -> None:
        """One decoded message: its MESSAGE_ID acknowledged, the MESSAGE_ID_ACK/NACK
        objects it carries processed whatever its type (RFC 2961 §4.6), then the message."""
        n = self.neighbors.get(src)
        if n is not None:
            n.rr_capable = bool(msg.flags & RR_CAPABLE)
        t = msg.msg_type
        mid = msg.get(O.MessageId)
        if mid is not None and mid.flags & ACK_DESIRED:
            self._acks_owed.setdefault(src, []).append(O.MessageIdAck(mid.message_id, mid.epoch))
        self._rx_ack(src, msg)
        if t == MsgType.SREFRESH:
            self._rx_srefresh(src, msg, now)
        elif t == MsgType.HELLO:
            self._rx_hello(src, msg, now)
        elif t == MsgType.PATH:
            self._rx_path(src, msg, now)
        elif t == MsgType.RESV:
            self._rx_resv(src, msg, now)
        elif t == MsgType.PATH_ERR:
            self._rx_path_err(src, msg, now)
        elif t == MsgType.RESV_ERR:
            self._rx_resv_err(src, msg, now)
        elif t == MsgType.PATH_TEAR:
            self._rx_path_tear(src, msg, now)
        elif t == MsgType.RESV_TEAR:
            self._rx_resv_tear(src, msg, now)
        elif t != MsgType.ACK:  # an Ack is its MESSAGE_ID_ACK/NACK objects: done above
            self.stats["rx_dropped"] += 1
        if mid is not None and t in (MsgType.PATH, MsgType.RESV):
            self._note_rx_id(src, t, msg, mid)

    def _answer_malformed(self, src: IPv4Address, data: bytes, code: tuple[int, int]) -> None:
        """A Path or Resv the codec rejected with an RSVP code: answer with PathErr or
        ResvErr when its SESSION (and sender) can still be read (RFC 2205 §3.10)."""
        found = _salvage(data)
        session = found.get("session")
        if session is None or len(data) < 2:
            return
        if data[1] == MsgType.PATH:
            self._path_err_to(src, session, found.get("template"), found.get("tspec"), code)
        elif data[1] == MsgType.RESV:
            filt = found.get("filter")
            self._resv_err_to(src, session, filt if isinstance(filt, O.FilterSpec) else None, code)

    def _rx_ack(self, src: IPv4Address, msg: Message) -> None:
        """The MESSAGE_ID_ACK and MESSAGE_ID_NACK objects of any message (RFC 2961 §4.6)."""
        for a in msg.all(O.MessageIdAck):
            p = self.pending.get(a.message_id)
            if p is not None and p.dst == src and a.epoch == self.epoch:
                del self.pending[a.message_id]
                self.stats["acks_rx"] += 1
                self._acked(p, a.message_id)
        nacks = {n.message_id for n in msg.all(O.MessageIdNack) if n.epoch == self.epoch}
        if nacks:
            self._rx_nacks(src, nacks)

    # --- refresh reduction (RFC 2961 §5) and state lifetime (RFC 2205 §3.7) -------------

    def _renew(self, state: Psb | Rsb, msg: Message, now: float) -> None:
        """Path or Resv state from a neighbour lives L = (K + 0.5) x 1.5 x R, R the
        neighbour's refresh period from the message's TIME_VALUES (RFC 2205 §3.7); a
        TIME_VALUES of 0 counts as our own R."""
        tv = msg.get(O.TimeValues)
        r = tv.refresh_ms / 1000.0 if tv is not None and tv.refresh_ms else self.refresh
        state.lifetime = (self.keep + 0.5) * 1.5 * r
        state.expires = now + state.lifetime

    def _acked(self, p: _Pending, mid: int) -> None:
        """The neighbour acknowledged a Path or Resv trigger: from now on that message is
        refreshed by its Message ID while it stays the same (RFC 2961 §5)."""
        psb = self.psbs.get(p.lsp) if p.lsp is not None else None
        if psb is None:
            return
        sent = (mid, tuple(o for o in p.message.objects if not isinstance(o, O.MessageId)))
        rsb = self.rsbs.get(psb.key)
        if p.message.msg_type == MsgType.PATH and p.dst == psb.nhop:
            psb.path_acked = sent
        elif p.message.msg_type == MsgType.RESV and p.dst == psb.phop and rsb is not None:
            rsb.resv_acked = sent

    def _refresh(
        self,
        dst: IPv4Address,
        msg: Message,
        acked: tuple[int, tuple[O.RsvpObject, ...]] | None,
    ) -> None:
        """Refresh the Path or Resv ``msg`` sent to ``dst``: by its Message ID in the next
        Srefresh when ``dst`` is refresh-reduction capable and acknowledged this very
        message, else by sending it whole (RFC 2961 §5)."""
        n = self.neighbors.get(dst)
        if acked is not None and acked[1] == msg.objects and n is not None and n.rr_capable:
            self._srefresh_due.setdefault(dst, []).append(acked[0])
        else:
            self._send(dst, msg)

    def _send_srefresh(self) -> None:
        """The Srefresh messages of the refreshes due now, one MESSAGE_ID_LIST each."""
        for dst, ids in self._srefresh_due.items():
            for i in range(0, len(ids), MAX_IDS):
                lst = O.MessageIdList(tuple(ids[i : i + MAX_IDS]), self.epoch)
                self.stats["srefresh_tx"] += 1
                self._send(dst, Message(MsgType.SREFRESH, (lst,)))
        self._srefresh_due.clear()

    def _note_rx_id(self, src: IPv4Address, t: int, msg: Message, mid: O.MessageId) -> None:
        """Remember the Message ID of the Path or Resv that installed or refreshed state
        from ``src``, unless an older one (out of order, RFC 2961 §4.5): a Srefresh
        naming it refreshes that state."""
        key = _msg_key(msg)
        psb = self.psbs.get(key) if key is not None else None
        if key is None or psb is None or self._rx_state(t, key) is None:
            return
        old = psb.rx_ids.get(t)
        if old is not None:
            if old[:2] == (src, mid.epoch) and not _newer(mid.message_id, old[2]):
                return
            self._rx_ids.pop((old[0], old[2]), None)
        psb.rx_ids[t] = (src, mid.epoch, mid.message_id)
        self._rx_ids[(src, mid.message_id)] = (t, key)

    def _rx_state(self, t: int, key: LspKey) -> Psb | Rsb | None:
        """The state a neighbour installs here with a Path (a PSB, not the head's own) or
        a Resv (an RSB)."""
        if t == MsgType.PATH:
            psb = self.psbs.get(key)
            return psb if psb is not None and psb.role != HEAD else None
        return self.rsbs.get(key)

    def _rx_srefresh(self, src: IPv4Address, msg: Message, now: float) -> None:
        """A Srefresh (RFC 2961 §5.3, §5.4): each listed Message ID refreshes the state ``src``
        installed with it as a full refresh would; the IDs of no state here (or of another
        epoch) are answered with MESSAGE_ID_NACKs, so ``src`` sends those messages whole."""
        self.stats["srefresh_rx"] += 1
        nacks: list[O.RsvpObject] = []
        for lst in (o for o in msg.objects if isinstance(o, ID_LISTS)):
            for mid in lst.message_ids:
                if not self._refresh_id(src, lst.epoch, mid, now):
                    nacks.append(O.MessageIdNack(mid, lst.epoch))
        self.stats["nacks_tx"] += len(nacks)
        for i in range(0, len(nacks), MAX_IDS):
            self._send(src, Message(MsgType.ACK, tuple(nacks[i : i + MAX_IDS])))

    def _refresh_id(self, src: IPv4Address, epoch: int, mid: int, now: float) -> bool:
        """Refresh the state ``src`` installed with Message ID ``mid``; False if none."""
        entry = self._rx_ids.get((src, mid))
        if entry is None:
            return False
        t, key = entry
        state, psb = self._rx_state(t, key), self.psbs.get(key)
        if state is None or psb is None or psb.rx_ids.get(t) != (src, epoch, mid):
            return False
        if state.expires is not None:
            state.expires = now + state.lifetime
        return True

    def _rx_nacks(self, src: IPv4Address, nacks: set[int]) -> None:
        """``src`` has no state of these Message IDs of our Srefresh (RFC 2961 §5.4): the
        Path or Resv goes whole again, as a trigger with a new Message ID. One pass over
        the LSPs per message: NACKs come only after a neighbour lost state."""
        self.stats["nacks_rx"] += len(nacks)
        for psb in list(self.psbs.values()):
            rsb = self.rsbs.get(psb.key)
            if psb.nhop == src and _nacked(psb.path_acked, nacks) and psb.path_msg:
                psb.path_acked = None
                self._trigger(src, psb.path_msg)
            if rsb and psb.phop == src and _nacked(rsb.resv_acked, nacks) and rsb.resv_msg:
                rsb.resv_acked = None
                self._trigger(src, rsb.resv_msg)

    def _key(self, msg: Message, sender: O.FilterSpec | O.SenderTemplate | None) -> LspKey | None:
        s = msg.get(O.SessionLspTunnelV4)
        if s is None or sender is None:
            return None
        return LspKey(s.tunnel_end, s.tunnel_id, s.extended_tunnel_id, sender.sender, sender.lsp_id)

    def _in_link(self, src: IPv4Address, hop: O.RsvpObject | None) -> int | None:
        if isinstance(hop, O.RsvpHopIfId):
            di = hop.data_interface()
            if di is not None:
                for lk in self.links.values():
                    if lk.remote_router_id == di[0] and lk.remote_if == di[1]:
                        return lk.local_if
                return None
        addr = hop.address if isinstance(hop, O.RsvpHop | O.RsvpHopIfId) else src
        for lk in self.links.values():
            if lk.remote_control in (addr, src):
                return lk.local_if
        return None

    def _rx_path(self, src: IPv4Address, msg: Message, now: float) -> None:
        """A Path message (RFC 2205 §3.1.3): the PSB of a known LSP is refreshed; a new
        LSP is admitted (:meth:`_admit_path`) and its PSB installed, or refused with a
        PathErr to the previous hop."""
        template = msg.get(O.SenderTemplate)
        tspec = msg.get(O.SenderTspec)
        session = msg.get(O.SessionLspTunnelV4)
        key = self._key(msg, template)
        if key is None or tspec is None or session is None or template is None:
            self.stats["rx_dropped"] += 1
            return
        hop = msg.by_class(3)
        phop = hop.address if isinstance(hop, O.RsvpHop | O.RsvpHopIfId) else src
        rro = msg.get(O.RecordRoute)
        if rro is not None and any(self._names_me(x) for x in rro.subobjects):
            # RFC 3209 §4.4.3: our own address in the RRO means a routing loop
            code = (ErrorCode.ROUTING_PROBLEM, RoutingProblem.RRO_LOOP)
            self._path_err_to(phop, session, template, tspec, code)
            return
        old = self.psbs.get(key)
        if old is not None:
            # a refresh: the state lives on (the head's never times out)
            if old.role != HEAD:
                self._renew(old, msg, now)
                self._path_update(old, msg, now)
            return
        psb = Psb(
            key,
            TRANSIT,
            "path-sent",
            session,
            template,
            tspec,
            O.GeneralizedLabelRequest(0, 0, 0),
            msg.get(O.SessionAttribute) or msg.get(O.SessionAttributeRa),
            phop=phop,
        )
        psb.stages["path_in"] = now
        self._renew(psb, msg, now)
        try:
            self._admit_path(psb, src, hop, msg, rro)
        except _Fail as f:
            self._release_labels(psb)  # what it already held
            log.info("%s: Path %s refused: %s", self.name, key, f.reason)
            self._path_err_to(phop, session, template, tspec, f.code, 0, psb.in_if)
            return
        self._install_psb(psb, now)

    def _admit_path(
        self,
        psb: Psb,
        src: IPv4Address,
        hop: O.RsvpObject | None,
        msg: Message,
        rro: O.RecordRoute | None,
    ) -> None:
        """A new LSP's Path, step by step; raises :class:`_Fail` at the first problem: the
        generalized label request (RFC 3473 §2.1), the incoming TE link and its label
        (held), the ERO (RFC 3209 §4.3.4) and the node's role, a QE subobject of this node
        (joined), the label on the outgoing link."""
        psb.label_request = _lambda_label_request(msg)
        in_if = self._in_link(src, hop)
        if in_if is None:
            raise _rp(RoutingProblem.BAD_STRICT_NODE, f"no TE link from {psb.phop}")
        psb.in_if = in_if
        up = msg.get(O.UpstreamLabel)
        if up is not None:
            psb.bidir = True
            psb.in_up_label = self._in_upstream_label(in_if, up.label)
        label = self._in_label(in_if, msg.all(O.LabelSet))
        self._hold(in_if, label)
        psb.in_label = label
        route_obj = msg.get(O.ExplicitRoute)
        if route_obj is None:
            raise _rp(RoutingProblem.BAD_EXPLICIT_ROUTE, "no EXPLICIT_ROUTE")
        r = self._process_ero(list(route_obj.subobjects), bidir=psb.bidir)
        psb.role = TAIL if r.tail else TRANSIT
        tunnel_end = psb.session.tunnel_end
        if r.tail and tunnel_end not in (self.router_id, self.control_address):
            raise _rp(RoutingProblem.NO_ROUTE, f"ERO ends here, tunnel ends at {tunnel_end}")
        self._take_route(psb, r)
        psb.rro_in = rro.subobjects if rro else ()
        psb.forward = _forwarded(msg)
        if r.own_qe is not None:
            self._qe_join(psb, r.own_qe)
        self._check_out_label(psb)
        self._out_upstream_label(psb, r.up_label)

    def _in_label(self, in_if: int, sets: Sequence[O.LabelSet]) -> int:
        """The label of the incoming link (RFC 3473 §2.6): the first label of the
        upstream's Label_Set (:func:`_label_set`) that is free here, else (no set) the
        first free lambda."""
        if sets:
            free_here = self.free[in_if]
            usable = _label_set(sets, tuple(self._labels[in_if].values()))
            for x in usable:
                if ero.lambda_channel(x) in free_here:
                    return x
            if not usable:
                raise _rp(RoutingProblem.LABEL_SET, "no label of the LABEL_SET is usable")
            raise _rp(RoutingProblem.LABEL_SET, "every label of the LABEL_SET is in use")
        lambdas = self.free_lambdas(in_if)
        if not lambdas:
            raise _rp(RoutingProblem.LABEL_ALLOCATION_FAILURE, "no free lambda")
        return ero.lambda_label(lambdas[0])

    def _install_psb(self, psb: Psb, now: float) -> None:
        """Install an admitted LSP's PSB: the tail answers with Resv (once its QE session
        is joined), a transit node sends Path on; a pending QE join is asked for."""
        self._add_psb(psb)
        self._schedule(psb.key)
        if psb.role == TAIL:
            if psb.qe_pending:
                psb.state = "resv-wait-qe"
            else:
                self._send_resv_up(psb, self._tail_rsb(psb), now)
        else:
            self._send_path_first(psb, now)
        if psb.qe_pending:
            assert psb.key_handle is not None and psb.qe_params is not None
            self._emit(QeJoin(psb.key, psb.key_handle, psb.qe_params))

    def _qe_join(self, psb: Psb, own: ero.QeSubobject) -> None:
        if not self.qe_capable:
            raise _qe_fail(QeError.NOT_QE_CAPABLE, "this node is not QE capable")
        params = own.params()
        problems = params.problems()
        if problems:
            raise _qe_fail(QeError.BAD_PARAMETERS, "; ".join(problems))
        if not own.has_session:
            raise _qe_fail(QeError.NO_SESSION_ID, "QE subobject with a zero session ID")
        psb.qe_params = params
        psb.key_handle = own.session_id
        psb.qe_pending = True

    def _rx_resv(self, src: IPv4Address, msg: Message, now: float) -> None:
        filt = msg.get(O.FilterSpec)
        key = self._key(msg, filt)
        session = msg.by_class(1)
        if key is None or session is None:
            self.stats["rx_dropped"] += 1
            return
        psb = self.psbs.get(key)
        if psb is None or psb.nhop is None:
            self._resv_err_to(src, session, filt, (ErrorCode.NO_PATH_INFORMATION, 0))
            return
        rsb = self.rsbs.get(key)
        if rsb is not None:
            self._renew(rsb, msg, now)
            self._resv_update(psb, rsb, msg, now)
            return
        glabel = msg.get(O.GeneralizedLabel)
        label = glabel.label if glabel is not None else None
        assert psb.out_if is not None
        if (
            label is None
            or label not in psb.out_labels
            or (psb.out_label is None and not self._hold(psb.out_if, label))
            or (psb.out_label is not None and psb.out_label != label)
        ):
            code = (ErrorCode.ROUTING_PROBLEM, RoutingProblem.UNACCEPTABLE_LABEL)
            self._resv_err_to(src, session, filt, code, psb.out_if)
            if psb.role == HEAD:
                self._teardown(psb, "unacceptable label in Resv", code, send_tear=True)
            else:
                self._path_err(psb, code, "unacceptable label in Resv", state_removed=True)
                self._teardown(psb, "unacceptable label in Resv", code, send_tear=True)
            return
        psb.out_label = label
        rro = msg.get(O.RecordRoute)
        rsb = Rsb(
            key,
            label,
            rro.subobjects if rro else (),
            msg.get(O.Flowspec),
            None,
            forward=_forwarded(msg),
        )
        self._renew(rsb, msg, now)
        self.rsbs[key] = rsb
        psb.stages.setdefault("resv_in", now)
        self._schedule(key)
        if psb.role == HEAD:
            psb.state = "up"
            psb.setup_deadline = None
            self._emit(LspUp(key, HEAD, rsb.route))
        elif not psb.qe_pending:
            self._send_resv_up(psb, rsb, now)
        else:
            psb.state = "resv-wait-qe"

    def _rx_path_err(self, src: IPv4Address, msg: Message, now: float) -> None:
        key = self._key(msg, msg.get(O.SenderTemplate))
        psb = self.psbs.get(key) if key else None
        if psb is None or key is None:
            self.stats["rx_dropped"] += 1
            return
        if src != psb.nhop:
            # a PathErr travels upstream only: from anyone but our next hop it is bogus
            # (relaying it would bounce it between two nodes)
            self.stats["rx_dropped"] += 1
            log.info("%s: PathErr for %s from %s, not our next hop", self.name, key, src)
            return
        es = msg.by_class(6)
        code = (es.code, es.value) if isinstance(es, O.ErrorSpec | O.ErrorSpecIfId) else None
        node = es.node if isinstance(es, O.ErrorSpec | O.ErrorSpecIfId) else src
        if psb.role == HEAD:
            words = f" {error_text(*code)}" if code is not None else ""
            self._teardown(psb, f"PathErr {code}{words} from {node}", code, send_tear=True)
        elif psb.phop is not None:
            self.stats["path_err_sent"] += 1
            self._trigger(psb.phop, _state_kept(msg))

    def _rx_resv_err(self, src: IPv4Address, msg: Message, now: float) -> None:
        key = self._key(msg, msg.get(O.FilterSpec))
        psb = self.psbs.get(key) if key else None
        if psb is None or key is None:
            self.stats["rx_dropped"] += 1
            return
        if psb.nhop is not None:
            self._trigger(psb.nhop, msg)
        else:
            es = msg.by_class(6)
            code = (es.code, es.value) if isinstance(es, O.ErrorSpec | O.ErrorSpecIfId) else None
            log.info("%s: ResvErr %s for %s", self.name, code, key)

    def _rx_path_tear(self, src: IPv4Address, msg: Message, now: float) -> None:
        key = self._key(msg, msg.get(O.SenderTemplate))
        psb = self.psbs.get(key) if key else None
        if psb is None or psb.role == HEAD or psb.phop not in (src, _hop_addr(msg)):
            self.stats["rx_dropped"] += 1
            return
        # after ADMIN_STATUS D the head deletes the LSP on purpose (RFC 3473 §7.2): say so
        # (a plain PathTear may also come from a node whose upstream neighbour failed)
        deleted = any(
            isinstance(o, O.AdminStatus) and o.bits & O.AdminStatus.DELETION for o in psb.forward
        )
        self._teardown(psb, "deleted" if deleted else "PathTear", None, send_tear=True)

    def _rx_resv_tear(self, src: IPv4Address, msg: Message, now: float) -> None:
        key = self._key(msg, msg.get(O.FilterSpec))
        psb = self.psbs.get(key) if key else None
        if psb is None or psb.nhop not in (src, _hop_addr(msg)):
            self.stats["rx_dropped"] += 1
            return
        self._resv_gone(psb, "ResvTear")

    def _path_update(self, psb: Psb, msg: Message, now: float) -> None:
        """A Path refresh whose 11bbbbbb objects changed (ADMIN_STATUS, RFC 3473 §7.2):
        new state, so it goes downstream at once (a trigger); the tail answers with a
        Resv reflecting the new ADMIN_STATUS."""
        forward = _forwarded(msg)
        if forward == psb.forward:
            return
        psb.forward = forward
        if psb.nhop is not None and psb.path_msg is not None:
            psb.path_msg = self._path_message(psb)
            self._trigger(psb.nhop, psb.path_msg)
        elif psb.role == TAIL and psb.state == "up":
            self._send_resv_up(psb, self._tail_rsb(psb), now)

    def _resv_update(self, psb: Psb, rsb: Rsb, msg: Message, now: float) -> None:
        """A Resv refresh whose 11bbbbbb objects changed: forwarded upstream at once;
        at the head an ADMIN_STATUS with the D bit (deletion, RFC 3473 §7.2) ends the
        LSP with a PathTear."""
        forward = _forwarded(msg)
        if forward == rsb.forward:
            return
        rsb.forward = forward
        if psb.role == HEAD:
            admin = msg.get(O.AdminStatus)
            if admin is not None and admin.bits & O.AdminStatus.DELETION:
                self._teardown(psb, "deleted", None, send_tear=True)
        elif psb.state == "up":
            self._send_resv_up(psb, rsb, now)

    def _resv_gone(self, psb: Psb, reason: str) -> None:
        """The reservation from downstream is gone (ResvTear, Resv state timeout). RFC
        2205 §3.1.6, §3.7: only the Resv state is removed and a ResvTear goes upstream;
        the Path state (and the labels held with it) stays, so a new Resv can restore
        the LSP. The head, whose service is down without a reservation, tears the LSP
        down (our choice: the RFCs leave the sender's reaction to it)."""
        if psb.role == HEAD:
            self._teardown(psb, reason, None, send_tear=True)
            return
        if self.rsbs.pop(psb.key, None) is None:
            return
        self._cancel(psb.key, types=(MsgType.RESV,))
        psb.state = "path-sent"
        self._schedule(psb.key)
        if psb.phop is not None:
            tear = Message(
                MsgType.RESV_TEAR,
                (
                    psb.session,
                    self._hop(psb.in_if),
                    _STYLES[Style.SE],
                    O.FilterSpec(psb.template.sender, psb.template.lsp_id),
                ),
            )
            self._trigger(psb.phop, tear)
        log.info("%s: Resv state of %s removed: %s", self.name, psb.key, reason)

    # --- Hello (RFC 3209 §5) ----------------------------------------------------------

    def _rx_hello(self, src: IPv4Address, msg: Message, now: float) -> None:
        h = msg.by_class(22)
        assert isinstance(h, O.HelloRequest | O.HelloAck)
        if isinstance(h, O.HelloRequest):
            ack = Message(MsgType.HELLO, (O.HelloAck(self.instance, h.src_instance),), 1)
            self._send(src, ack, ttl=1)
        n = self.neighbors.get(src)
        if n is None:
            # not a TE neighbour: answered, but no state kept for it
            return
        if h.src_instance == 0:
            return
        if n.their_instance and h.src_instance != n.their_instance:
            self._neighbor_failed(n, "neighbour restarted (new instance)")
        if isinstance(h, O.HelloAck) and h.dst_instance not in (0, self.instance):
            return
        n.their_instance = h.src_instance
        n.last_heard = now
        n.failed = False
        if not n.up:
            n.up = True
            self._emit(NeighborUp(src))

    def _neighbor_failed(self, n: Neighbor, reason: str) -> None:
        n.up = False
        n.failed = True
        n.last_heard = None
        n.their_instance = 0
        self._emit(NeighborDown(n.address, reason))
        for mid, p in list(self.pending.items()):
            if p.dst == n.address:
                del self.pending[mid]
        code = (ErrorCode.ROUTING_PROBLEM, RoutingProblem.NO_ROUTE)
        for psb in list(self.psbs.values()):
            if psb.nhop == n.address:
                why = f"next hop {n.address} down: {reason}"
                if psb.role != HEAD:
                    self._path_err(psb, code, why, state_removed=True)
                self._teardown(psb, why, code, send_tear=False)
            elif psb.phop == n.address:
                self._teardown(psb, f"previous hop {n.address} down: {reason}", code, True)

    # --- timers -----------------------------------------------------------------------

    def _timers(self, now: float) -> None:
        for mid, p in list(self.pending.items()):
            if now < p.next_at:
                continue
            if p.left <= 0:
                del self.pending[mid]
                self.stats["retransmit_give_up"] += 1
                log.info("%s: no Ack for %s to %s", self.name, p.message.name, p.dst)
                continue
            p.left -= 1
            p.interval *= 2
            p.next_at = now + p.interval
            self.stats["retransmits"] += 1
            self.stats["tx"] += 1
            self._emit(Send(p.dst, p.data, p.message))
        if self.hello > 0:
            for n in list(self.neighbors.values()):
                if (
                    n.up
                    and n.last_heard is not None
                    and now >= n.last_heard + HELLO_DEAD_FACTOR * self.hello
                ):
                    self._neighbor_failed(n, "Hello timeout")
                if now >= n.next_hello:
                    req = Message(
                        MsgType.HELLO, (O.HelloRequest(self.instance, n.their_instance),), 1
                    )
                    self._send(n.address, req, ttl=1)
                    n.next_hello = now + self.hello
        for psb in self._due_psbs(now):
            if psb.key not in self.psbs:
                continue
            self._lsp_timers(psb, now)
            if psb.key in self.psbs:
                self._schedule(psb.key)
        self._send_srefresh()

    def _due_psbs(self, now: float) -> list[Psb]:
        """The LSPs with a timer due at ``now``, in ``psbs`` order (as a scan would)."""
        keys = self._lsp_timers_due.pop_due(now)
        keys.sort(key=self._order.__getitem__)
        return [self.psbs[k] for k in keys]

    def _lsp_timers(self, psb: Psb, now: float) -> None:
        """One LSP's timers (RFC 2205 §3.7): setup timeout, state timeouts, refreshes."""
        if psb.setup_deadline is not None and now >= psb.setup_deadline:
            # no Resv within the state lifetime L: give the setup up
            why = "deleted" if psb.state == "deleting" else "setup timeout: no Resv"
            self._teardown(psb, why, None, send_tear=True)
            return
        if psb.expires is not None and now >= psb.expires:
            # RFC 2205 §3.7: path state timed out; tell downstream
            self._teardown(psb, "path state timeout", None, send_tear=True)
            return
        rsb = self.rsbs.get(psb.key)
        if rsb is not None and rsb.expires is not None and now >= rsb.expires:
            self._resv_gone(psb, "resv state timeout")
            if psb.role == HEAD:
                return
            rsb = None
        if psb.next_refresh is not None and now >= psb.next_refresh and psb.path_msg:
            assert psb.nhop is not None
            self._refresh(psb.nhop, psb.path_msg, psb.path_acked)
            psb.next_refresh = now + self.refresh
        if (
            rsb is not None
            and rsb.resv_msg is not None
            and rsb.next_refresh is not None
            and now >= rsb.next_refresh
            and psb.phop is not None
        ):
            self._refresh(psb.phop, rsb.resv_msg, rsb.resv_acked)
            rsb.next_refresh = now + self.refresh


# --- helpers -----------------------------------------------------------------------------


def _route_end(route: Sequence[ero.Subobject]) -> IPv4Address | None:
    """The destination: the last node-naming subobject of the ERO."""
    for s in reversed(route):
        if isinstance(s, ero.Ipv4Prefix):
            return s.address
        if isinstance(s, ero.Unnumbered):
            return s.router_id
    return None


def _qe_destination(route: Sequence[ero.Subobject]) -> tuple[IPv4Address, int] | None:
    """(router ID of the QE destination, index of its QE subobject) in the ERO still
    to go: the first QE subobject, named by the node subobject before it."""
    last: IPv4Address | None = None
    for i, s in enumerate(route):
        if isinstance(s, ero.Unnumbered):
            last = s.router_id
        elif isinstance(s, ero.Ipv4Prefix):
            last = s.address
        elif isinstance(s, ero.QeSubobject):
            return (last, i) if last is not None else None
    return None


def _msg_key(msg: Message) -> LspKey | None:
    s = msg.get(O.SessionLspTunnelV4)
    sender = msg.get(O.SenderTemplate) or msg.get(O.FilterSpec)
    if s is None or sender is None:
        return None
    return LspKey(s.tunnel_end, s.tunnel_id, s.extended_tunnel_id, sender.sender, sender.lsp_id)


def _state_kept(msg: Message) -> Message:
    """A PathErr as a node that keeps its Path state relays it: Path_State_Removed
    cleared (RFC 3473 §4.5; the head's PathTear removes the state)."""
    objs = tuple(
        replace(o, flags=o.flags & ~ES_PATH_STATE_REMOVED)
        if isinstance(o, O.ErrorSpec | O.ErrorSpecIfId)
        else o
        for o in msg.objects
    )
    return replace(msg, objects=objs)


def _label_set(sets: Sequence[O.LabelSet], link: Sequence[int]) -> list[int]:
    """The labels of a link (``link``, in channel order) that a Label_Set allows, in order
    of preference (RFC 3473 §2.6.1, RFC 3471 §3.5): the labels of the inclusive lists
    (action 0) in their order, then the link's lambdas in the inclusive ranges (action
    2); with no inclusive object every lambda of the link; minus the exclusive lists
    (1) and ranges (3). A range is two labels, start and end, of the same RFC 6205
    grid, spacing and identifier; the channel indices between them are in it. A
    Label_Set we cannot parse (unknown action, range not of two such labels) is
    "Routing problem/Label Set" (24/11)."""
    ranges: dict[int, list[tuple[int, int, int]]] = {2: [], 3: []}
    for s in sets:
        if s.action in (2, 3):
            if len(s.labels) != 2 or s.labels[0] >> 16 != s.labels[1] >> 16:
                raise _rp(RoutingProblem.LABEL_SET, f"bad LABEL_SET range {s.labels}")
            lo, hi = (ero.lambda_channel(x) for x in s.labels)
            ranges[s.action].append((s.labels[0] >> 16, lo, hi))
        elif s.action not in (0, 1):
            raise _rp(RoutingProblem.LABEL_SET, f"unknown LABEL_SET action {s.action}")
    on_link = set(link)

    def in_ranges(x: int, action: int) -> bool:
        n = ero.lambda_channel(x)
        return any(x >> 16 == top and lo <= n <= hi for top, lo, hi in ranges[action])

    listed = [x for s in sets if s.action == 0 for x in s.labels]
    if listed or ranges[2]:
        wanted = [x for x in listed if x in on_link]
        if ranges[2]:
            wanted += [x for x in link if in_ranges(x, 2)]
    else:
        wanted = list(link)
    excluded = {x for s in sets if s.action == 1 for x in s.labels}
    # dict.fromkeys: in order, each label once (a set per label, not a scan of the list)
    out = [x for x in dict.fromkeys(wanted) if x not in excluded]
    return [x for x in out if not in_ranges(x, 3)] if ranges[3] else out


def _forwarded(msg: Message) -> tuple[O.RsvpObject, ...]:
    """The objects a node passes on unchanged (RFC 2205 §3.10: class 11bbbbbb): the
    unknown ones, NOTIFY_REQUEST (we send no Notify) and ADMIN_STATUS (RFC 3473 §7.2);
    SESSION_ATTRIBUTE, also 11bbbbbb, is kept and re-sent by the PSB itself."""
    return tuple(
        o
        for o in msg.objects
        if o.class_num >> 6 == 0b11 and o.class_num != O.SessionAttribute.class_num
    )


def _reflected(forward: Sequence[O.RsvpObject]) -> tuple[O.RsvpObject, ...]:
    """What the tail echoes in its Resv: an ADMIN_STATUS of the Path with the R bit, R
    cleared (RFC 3473 §7.2)."""
    return tuple(
        O.AdminStatus(o.bits & ~O.AdminStatus.REFLECT)
        for o in forward
        if isinstance(o, O.AdminStatus) and o.bits & O.AdminStatus.REFLECT
    )


def _channel(label: int | None) -> int | None:
    return None if label is None else ero.lambda_channel(label)


def _chan(local_if: int | None, label: int | None) -> Channel | None:
    """The channel of a lambda label held on a TE link, or None (no link, no label)."""
    if local_if is None or label is None:
        return None
    return Channel(local_if, ero.lambda_channel(label))


def _in_prefix(addr: IPv4Address, s: ero.Ipv4Prefix) -> bool:
    if not 0 <= s.prefix_len <= 32:
        return False
    shift = 32 - s.prefix_len
    return int(addr) >> shift == int(s.address) >> shift


def _in_node(router_id: IPv4Address, s: ero.Unnumbered | ero.Ipv4Prefix) -> bool:
    """Whether router ``router_id`` is (part of) the node ``s`` names."""
    if isinstance(s, ero.Unnumbered):
        return s.router_id == router_id
    return _in_prefix(router_id, s)


def _own_subobjects(
    own: Sequence[ero.Subobject], bidir: bool
) -> tuple[int | None, int | None, ero.QeSubobject | None]:
    """(downstream label, upstream label, QE subobject) from the Label and QE
    subobjects behind this node's own subobjects. RFC 3473 §5.1.1: at most one label
    per direction, an upstream label (U bit) only on a bidirectional LSP, no loose
    label; otherwise "Bad EXPLICIT_ROUTE object" (24/1). One QE subobject at most."""
    down: int | None = None
    up: int | None = None
    own_qe: ero.QeSubobject | None = None
    for t in own:
        if isinstance(t, ero.QeSubobject):
            if own_qe is not None:
                raise _rp(RoutingProblem.BAD_EXPLICIT_ROUTE, "two QE subobjects")
            own_qe = t
            continue
        assert isinstance(t, ero.Label)
        if t.loose:
            raise _rp(RoutingProblem.BAD_EXPLICIT_ROUTE, "loose label subobject")
        if t.upstream and not bidir:
            raise _rp(RoutingProblem.BAD_EXPLICIT_ROUTE, "upstream label, unidirectional LSP")
        if (up if t.upstream else down) is not None:
            raise _rp(RoutingProblem.BAD_EXPLICIT_ROUTE, "two labels for one direction")
        if t.upstream:
            up = t.label
        else:
            down = t.label
    return down, up, own_qe


def _nacked(acked: tuple[int, tuple[O.RsvpObject, ...]] | None, nacks: set[int]) -> bool:
    return acked is not None and acked[0] in nacks


def _newer(a: int, b: int) -> bool:
    """Message ID ``a`` came after ``b`` (32-bit serial number order, RFC 2961 §4.5)."""
    return 0 < (a - b) % ID_SPACE < ID_SPACE // 2


def _hop_addr(msg: Message) -> IPv4Address | None:
    h = msg.by_class(3)
    return h.address if isinstance(h, O.RsvpHop | O.RsvpHopIfId) else None


def _salvage(data: bytes) -> dict[str, O.RsvpObject]:
    """SESSION, SENDER_TEMPLATE, SENDER_TSPEC, FILTER_SPEC of a message the codec
    rejected, read object by object, skipping what does not decode."""
    want = {
        (1, 7): ("session", O.SessionLspTunnelV4),
        (11, 7): ("template", O.SenderTemplate),
        (12, 2): ("tspec", O.SenderTspec),
        (10, 7): ("filter", O.FilterSpec),
    }
    out: dict[str, O.RsvpObject] = {}
    pos = 8
    while pos + 4 <= len(data):
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 4 or length % 4 or pos + length > len(data):
            break
        entry = want.get((data[pos + 2], data[pos + 3]))
        if entry is not None and entry[0] not in out:
            try:
                r = Reader(data, "salvage", pos + 4, pos + length)
                out[entry[0]] = entry[1].decode_body(r)  # type: ignore[attr-defined]
            except DecodeError:
                pass
        pos += length
    return out
