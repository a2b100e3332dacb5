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
:class:`LspDown` (the service state), :class:`NeighborUp` / :class:`NeighborDown`.

State per LSP (key :class:`LspKey` = SESSION + SENDER_TEMPLATE): a Path state block
(:class:`Psb`: what came from upstream, the ERO still to go, the links and lambdas
used) and a Resv state block (:class:`Rsb`: what came back from downstream).

Procedures and their sources:

* ERO (RFC 3209 §4.3.4, RFC 3477, RFC 3473 §5.1.1): the node removes the leading
  subobjects that name it (an Unnumbered subobject with its router ID — its outgoing
  interface — or its /32 prefix) together with the Label and QE subobjects right behind
  them. The next subobject names the next hop; the node's outgoing interface must lead
  there over a TE link (else 24/2 "Bad strict node"); a first subobject that is not this
  node is 24/4 "Bad initial subobject"; loose hops are not routed (24/3).
* Labels: lambda labels (RFC 6205). The explicit label behind a node's outgoing interface
  is checked and held on that link and sent to the next node as a one-label LABEL_SET;
  with no explicit label the node offers all its free lambdas. The downstream node picks
  the first label of the set that is free on its side and returns it in the Resv LABEL.
  A label not on the link is 24/6 "Unacceptable label value"; an explicit label in use,
  or a LABEL_SET with no free label, is 24/11 "Routing problem / Label set"
  (RFC 3473 §2.6, §5.1.1); a Resv label the upstream node did not offer is 24/6 (ResvErr).
* Soft state (RFC 2205 §3.7): Path and Resv are refreshed every R ms (no jitter: the
  core is deterministic); state not refreshed for L = (K + 0.5) * 1.5 * R times out.
* Errors and teardown (RFC 2205 §3.6-3.9): PathErr goes upstream hop by hop to the head,
  which reports :class:`LspDown` and sends PathTear; ResvErr goes downstream; PathTear
  removes state downstream, ResvTear removes Resv state upstream and makes the head
  tear the LSP down.
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

import heapq
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Address
from typing import Protocol

from gmpls import ero, qe
from gmpls.core import Tick
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
)
from gmpls.rsvp.events import (
    Action,
    CreateLsp,
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
from gmpls.rsvp.message import Message
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
    ero_out: tuple[ero.Subobject, ...] = ()
    rro_in: tuple[ero.Subobject, ...] = ()
    forward: tuple[O.RsvpObject, ...] = ()  # unknown 11bbbbbb objects, forwarded
    qe_params: qe.QeParams | None = None
    qe_dst: IPv4Address | None = None
    key_handle: bytes | None = None
    qe_pending: bool = False
    expires: float | None = None  # None: never (head)
    next_refresh: float | None = None
    path_msg: Message | None = None
    #: head: when an LSP still without Resv is given up (setup timeout)
    setup_deadline: float | None = None


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


@dataclass(slots=True)
class Neighbor:
    address: IPv4Address
    their_instance: int = 0
    last_heard: float | None = None
    up: bool = False
    next_hello: float = 0.0
    #: declared down by Hello and not heard since: no Path is sent toward it
    failed: bool = False


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


# --- the core ----------------------------------------------------------------------------


class RsvpCore:
    """RSVP-TE for one node. ``te_links``: this node's TE links (local_if, remote router
    ID, remote_if, remote control address, lambdas as RFC 6205 channel indices)."""

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
        self.lifetime = (keep_multiplier + 0.5) * 1.5 * self.refresh
        self.hello = hello_ms / 1000.0
        self.instance = instance or 1
        self.qe_capable = qe_capable
        self.name = name or str(router_id)
        self.free: dict[int, set[int]] = {i: set(link.lambdas) for i, link in self.links.items()}
        self._lambdas: dict[int, frozenset[int]] = {
            i: frozenset(link.lambdas) for i, link in self.links.items()
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
        #: lines about malformed messages, which anyone on a link can send: rate-limited
        self._bad_lines = LogLimiter()
        self._next_lsp_id = 1
        #: O(1) indexes over ``psbs``: (ext tunnel ID, tunnel ID) -> its LSPs; insertion
        #: order (the order ``psbs`` iterates in); per-LSP timers in a heap of (deadline,
        #: seq, key) whose entry for a key is live while ``_sched[key]`` holds its deadline
        self._tunnels: dict[tuple[IPv4Address, int], set[LspKey]] = {}
        self._order: dict[LspKey, int] = {}
        self._seq = 0
        self._due: list[tuple[float, int, LspKey]] = []
        self._sched: dict[LspKey, float] = {}
        self._dirty: set[int] = set()
        self._out: list[Action] = []
        self._started = False

    # --- the one entry point ----------------------------------------------------------

    def handle(self, event: Event, now: float) -> list[Action]:
        # the head's CreateLsp and DeleteLsp answer with what they caused alone; every
        # other event also runs the timers due at ``now``
        if isinstance(event, CreateLsp):
            if self.tunnel_in_use(event.tunnel_id):
                raise ValueError(f"tunnel {event.tunnel_id} is in use")
            self._begin(now)
            self._create_lsp(event, now)
            return self._end()
        self._begin(now)
        if isinstance(event, DeleteLsp):
            self._delete_lsp(event.tunnel_id)
            return self._end()
        if isinstance(event, Received):
            self._receive(event.src, event.data, now)
        elif isinstance(event, QeSessionReady):
            self._qe_ready(event, now)
        elif isinstance(event, QeFailed):
            self._qe_failed(event, now)
        elif not isinstance(event, Tick):
            raise TypeError(f"not an RSVP core event: {event!r}")
        self._timers(now)
        return self._end()

    def next_timer(self) -> float | None:
        """When :class:`~gmpls.core.Tick` is next due (None: nothing pending)."""
        times: list[float] = [p.next_at for p in self.pending.values()]
        top = self._top()  # every RSB has its PSB: the heap holds the timers of both
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

    def lsp_table(self) -> list[dict[str, object]]:
        """A snapshot of every LSP at this node, for the CLI (no key material)."""
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
                    "qe": p.qe_params is not None,
                    "key_handle_prefix": p.key_handle[:4].hex() if p.key_handle else None,
                    "route": [str(s) for s in rsb.route] if rsb else [],
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
            r = self._process_ero(list(route), head=True)
            if r.tail:
                raise _rp(RoutingProblem.BAD_EXPLICIT_ROUTE, "the ERO leads nowhere past us")
            self._take_route(psb, r)
            if r.own_qe is not None:
                params = ev.qe_params or r.own_qe.params()
                self._qe_head(psb, r.own_qe, params)
            self._check_out_label(psb)
        except _Fail as f:
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

    def _delete_lsp(self, tunnel_id: int) -> None:
        """Head: tear down tunnel ``tunnel_id`` (PathTear, labels and key released)."""
        keys = self._tunnels.get((self.router_id, tunnel_id), set())
        for key in sorted(keys, key=self._order.__getitem__):
            psb = self.psbs.get(key)
            if psb is not None and psb.role == HEAD:
                self._teardown(psb, "deleted", None, send_tear=True)

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
        if self.psbs.pop(key, None) is None:
            return
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
        """(Re)enter the LSP's earliest timer in the heap (after a timer moved earlier;
        a timer that moved later is corrected when its old entry comes to the top)."""
        t = self._deadline(key)
        if t is None:
            self._sched.pop(key, None)
        elif self._sched.get(key) != t:
            self._sched[key] = t
            self._seq += 1
            heapq.heappush(self._due, (t, self._seq, key))

    def _top(self) -> float | None:
        """The earliest LSP timer: stale heap entries (LSP gone, timer moved) are dropped
        or re-entered at their LSP's real deadline until the top one is right."""
        due = self._due
        while due:
            t, _, key = due[0]
            if self._sched.get(key) != t:
                heapq.heappop(due)
                continue
            real = self._deadline(key)
            if real == t:
                return t
            heapq.heappop(due)
            del self._sched[key]
            if real is not None:
                self._schedule(key)
        return None

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
        i = lih or 0
        tlvs = (O.IfIdTlv.if_index(self.router_id, i),) if lih is not None else ()
        return O.RsvpHopIfId(self.control_address, i, tlvs)

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

    # --- ERO (RFC 3209 §4.3.4, RFC 3477, RFC 3473 §5.1.1) ------------------------------

    def _names_me(self, s: ero.Subobject) -> bool:
        if isinstance(s, ero.Unnumbered):
            return s.router_id == self.router_id
        if isinstance(s, ero.Ipv4Prefix):
            return s.prefix_len == 32 and s.address in (self.router_id, self.control_address)
        return False

    def _process_ero(self, route: list[ero.Subobject], head: bool = False) -> _Route:
        if not route:
            raise _rp(RoutingProblem.BAD_EXPLICIT_ROUTE, "empty EXPLICIT_ROUTE")
        if not self._names_me(route[0]):
            if route[0].loose:
                raise _rp(RoutingProblem.BAD_LOOSE_NODE, "loose hops are not routed")
            raise _rp(RoutingProblem.BAD_INITIAL_SUBOBJECT, f"first subobject {route[0]}")
        i = 0
        out_if: int | None = None
        down_label: int | None = None
        own_qe: ero.QeSubobject | None = None
        while i < len(route) and self._names_me(route[i]):
            s = route[i]
            if isinstance(s, ero.Unnumbered):
                out_if = s.interface_id
            i += 1
            while i < len(route) and isinstance(route[i], ero.Label | ero.QeSubobject):
                t = route[i]
                if isinstance(t, ero.QeSubobject):
                    if own_qe is not None:
                        raise _rp(RoutingProblem.BAD_EXPLICIT_ROUTE, "two QE subobjects")
                    own_qe = t
                elif isinstance(t, ero.Label) and not t.upstream:
                    if t.loose:
                        raise _rp(RoutingProblem.BAD_EXPLICIT_ROUTE, "loose label subobject")
                    down_label = t.label
                i += 1
        rest = route[i:]
        if not rest:
            if down_label is not None:
                raise _rp(RoutingProblem.BAD_EXPLICIT_ROUTE, "label with no outgoing link")
            return _Route(True, None, None, [], None, own_qe)
        nxt = rest[0]
        if nxt.loose:
            raise _rp(RoutingProblem.BAD_LOOSE_NODE, f"loose next hop {nxt}")
        if isinstance(nxt, ero.Unnumbered):
            nrid = nxt.router_id
        elif isinstance(nxt, ero.Ipv4Prefix):
            nrid = nxt.address
        else:
            raise _rp(RoutingProblem.BAD_EXPLICIT_ROUTE, f"next subobject {nxt!r} is no node")
        if out_if is not None:
            link = self.links.get(out_if)
            if link is None or link.remote_router_id != nrid:
                raise _rp(RoutingProblem.BAD_STRICT_NODE, f"no TE link {out_if} to {nrid}")
        else:
            cands = [lk for lk in self.links.values() if lk.remote_router_id == nrid]
            if not cands:
                raise _rp(RoutingProblem.BAD_STRICT_NODE, f"{nrid} is not a TE neighbour")
            link = cands[0]
            out_if = link.local_if
        if down_label is not None and not self._valid_label(out_if, down_label):
            raise _rp(
                RoutingProblem.UNACCEPTABLE_LABEL,
                f"label 0x{down_label:08x} is not a lambda of link {out_if}",
            )
        return _Route(False, out_if, link, list(rest), down_label, own_qe)

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
            psb.out_labels = tuple(ero.lambda_label(n) for n in free)

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
            O.TimeValues(int(self.refresh * 1000)),
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
        objs += psb.forward
        return Message(MsgType.PATH, tuple(objs))

    def _send_path_first(self, psb: Psb, now: float) -> None:
        assert psb.nhop is not None
        psb.state = "path-sent"
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
            rec.append(ero.Label(psb.in_label, flags=0x01))
        objs: list[O.RsvpObject] = [
            psb.session,
            self._hop(psb.in_if),
            O.TimeValues(int(self.refresh * 1000)),
            O.StyleObj(style),
            O.Flowspec(psb.tspec.tspec),
            O.FilterSpec(psb.template.sender, psb.template.lsp_id),
        ]
        if psb.in_label is not None:
            objs.append(O.GeneralizedLabel(psb.in_label))
        objs.append(O.RecordRoute((*rec, *rsb.route)))
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
            O.StyleObj(Style.SE),
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
        resv_tear: bool = False,
    ) -> None:
        """Remove the LSP's state here: labels back, key session closed, PathTear
        downstream (``send_tear``) and/or ResvTear upstream (``resv_tear``)."""
        key = psb.key
        self._drop_psb(key)
        self.rsbs.pop(key, None)
        self._sched.pop(key, None)
        # the LSP's Path and Resv are void; errors already sent keep being retransmitted
        self._cancel(key, types=(MsgType.PATH, MsgType.RESV))
        self._release(psb.in_if, psb.in_label)
        self._release(psb.out_if, psb.out_label)
        if psb.key_handle is not None and psb.qe_params is not None and not psb.qe_pending:
            self._emit(QeClose(key, psb.key_handle))
        if send_tear and psb.nhop is not None and psb.state != "qe-wait":
            msg = Message(
                MsgType.PATH_TEAR,
                (psb.session, self._hop(psb.out_if), psb.template),
            )
            self._trigger(psb.nhop, msg)
        if resv_tear and psb.phop is not None:
            msg = Message(
                MsgType.RESV_TEAR,
                (
                    psb.session,
                    self._hop(psb.in_if),
                    O.StyleObj(Style.SE),
                    O.FilterSpec(psb.template.sender, psb.template.lsp_id),
                ),
            )
            self._trigger(psb.phop, msg)
        self._emit(LspDown(key, psb.role, reason, code))

    # --- messages in ------------------------------------------------------------------

    def _receive(self, src: IPv4Address, data: bytes, now: float) -> None:
        self.stats["rx"] += 1
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
        t = msg.msg_type
        mid = msg.get(O.MessageId)
        if mid is not None and mid.flags & ACK_DESIRED:
            ack = Message(MsgType.ACK, (O.MessageIdAck(mid.message_id, mid.epoch),))
            self._send(src, ack)
        if t == MsgType.ACK:
            self._rx_ack(src, msg)
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
        else:
            self.stats["rx_dropped"] += 1

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
        for a in msg.all(O.MessageIdAck):
            p = self.pending.get(a.message_id)
            if p is not None and p.dst == src and a.epoch == self.epoch:
                del self.pending[a.message_id]
                self.stats["acks_rx"] += 1

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
                old.expires = now + self.lifetime
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
            expires=now + self.lifetime,
        )
        try:
            self._admit_path(psb, src, hop, msg, rro)
        except _Fail as f:
            self._release(psb.in_if, psb.in_label)  # the incoming label, if already held
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
        label = self._in_label(in_if, msg.get(O.LabelSet))
        self._hold(in_if, label)
        psb.in_label = label
        route_obj = msg.get(O.ExplicitRoute)
        if route_obj is None:
            raise _rp(RoutingProblem.BAD_EXPLICIT_ROUTE, "no EXPLICIT_ROUTE")
        r = self._process_ero(list(route_obj.subobjects))
        psb.role = TAIL if r.tail else TRANSIT
        tunnel_end = psb.session.tunnel_end
        if r.tail and tunnel_end not in (self.router_id, self.control_address):
            raise _rp(RoutingProblem.NO_ROUTE, f"ERO ends here, tunnel ends at {tunnel_end}")
        self._take_route(psb, r)
        psb.rro_in = rro.subobjects if rro else ()
        psb.forward = tuple(o for o in msg.objects if isinstance(o, O.UnknownObject))
        if r.own_qe is not None:
            self._qe_join(psb, r.own_qe)
        self._check_out_label(psb)

    def _in_label(self, in_if: int, offered: O.LabelSet | None) -> int:
        """The label of the incoming link (RFC 3473 §2.6): the first label of the
        upstream LABEL_SET that is a lambda of the link and free here, else (no set) the
        first free lambda."""
        if offered is not None and offered.action == 0:
            # the first usable label that is free (one pass, stops at it)
            free_here = self.free[in_if]
            usable = False
            for x in offered.labels:
                if self._valid_label(in_if, x):
                    usable = True
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
            rsb.expires = now + self.lifetime
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
            now + self.lifetime,
        )
        self.rsbs[key] = rsb
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
        es = msg.by_class(6)
        code = (es.code, es.value) if isinstance(es, O.ErrorSpec | O.ErrorSpecIfId) else None
        node = es.node if isinstance(es, O.ErrorSpec | O.ErrorSpecIfId) else src
        if psb.role == HEAD:
            self._teardown(psb, f"PathErr {code} from {node}", code, send_tear=True)
        elif psb.phop is not None:
            self.stats["path_err_sent"] += 1
            self._trigger(psb.phop, msg)

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
        self._teardown(psb, "PathTear", None, send_tear=True)

    def _rx_resv_tear(self, src: IPv4Address, msg: Message, now: float) -> None:
        key = self._key(msg, msg.get(O.FilterSpec))
        psb = self.psbs.get(key) if key else None
        if psb is None or psb.nhop not in (src, _hop_addr(msg)):
            self.stats["rx_dropped"] += 1
            return
        if psb.role == HEAD:
            self._teardown(psb, "ResvTear", None, send_tear=True)
        else:
            self._teardown(psb, "ResvTear", None, send_tear=True, resv_tear=True)

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

    def _due_psbs(self, now: float) -> list[Psb]:
        """The LSPs with a timer due at ``now``, in ``psbs`` order (as a scan would)."""
        keys: list[LspKey] = []
        while True:
            t = self._top()
            if t is None or t > now:
                break
            _, _, key = heapq.heappop(self._due)
            del self._sched[key]
            keys.append(key)
        keys.sort(key=self._order.__getitem__)
        return [self.psbs[k] for k in keys]

    def _lsp_timers(self, psb: Psb, now: float) -> None:
        """One LSP's timers (RFC 2205 §3.7): setup timeout, state timeouts, refreshes."""
        if psb.setup_deadline is not None and now >= psb.setup_deadline:
            # no Resv within the state lifetime L: give the setup up
            self._teardown(psb, "setup timeout: no Resv", None, send_tear=True)
            return
        if psb.expires is not None and now >= psb.expires:
            # RFC 2205 §3.7: path state timed out; tell downstream
            self._teardown(psb, "path state timeout", None, send_tear=True)
            return
        rsb = self.rsbs.get(psb.key)
        if rsb is not None and rsb.expires is not None and now >= rsb.expires:
            self._teardown(psb, "resv state timeout", None, send_tear=True, resv_tear=True)
            return
        if psb.next_refresh is not None and now >= psb.next_refresh and psb.path_msg:
            assert psb.nhop is not None
            self._send(psb.nhop, psb.path_msg)
            psb.next_refresh = now + self.refresh
        if (
            rsb is not None
            and rsb.resv_msg is not None
            and rsb.next_refresh is not None
            and now >= rsb.next_refresh
            and psb.phop is not None
        ):
            self._send(psb.phop, rsb.resv_msg)
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
