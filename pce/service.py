"""The PCE's request handling, pure: PCReq in, PCRep out (RFC 5440 §6.4, §6.5, §7.5).

For each request of a PCReq (the session has already answered those with unprocessable
objects, RFC 5440 §7.2):

- END-POINTS (IPv4) give source and destination; IPv6 end points are outside this TED
  (NO-PATH, unknown source/destination bits);
- BANDWIDTH (type 1) is the bandwidth constraint, in bytes per second;
- METRIC objects of the QE types (docs/design.md#qe-metric-types) make it a QE request; an
  IGP (1), TE (2) or hop-count (3) METRIC with the B flag is an upper bound; with the C
  flag the computed value is returned;
- the LSPA's affinities and setup priority prune links; its L flag (local protection)
  with P cannot be met (no TE link advertises protection): NO-PATH;
- the RP B flag (bidirectional) asks for a path whose reverse links meet the constraints
  too, with the same wavelength free both ways;
- an IRO's nodes and links are passed in order (docs/pce.md);
- LOAD-BALANCING or an unknown object with the P flag never gets here (the session
  answers PCErr, RFC 5440 §7.2); a METRIC with P of an unknown type or asking to optimise
  another metric than TE, or another object with P out of place, gets NO-PATH, reason
  UNSUPPORTED_REQUEST.

A QE request whose two ends belong to known key-management sites also gets a key relay
path over the QKD site graph (:mod:`pce.keyroute`): its consumption must fit every link
(else NO-PATH, reason INSUFFICIENT_KEY_RATE), it is committed on those links, and the
path rides in the RP object's RELAY-PATH TLV (:mod:`gmpls.pcep.relay`) when it crosses at
least one QKD link.

A path comes back as <RP><ERO>[BANDWIDTH][METRIC...]; no path as <RP><NO-PATH> with the
NO-PATH-VECTOR bits RFC 5440 defines (unknown source 0x4 / destination 0x2) and this
project's NO-PATH-REASON TLV (code and text, docs/pcep.md), the C flag set and the
unsatisfied constraints (QE metrics, BANDWIDTH) attached when a constraint failed.
"""

from __future__ import annotations

import statistics
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address
from typing import Any

from gmpls.errors import DecodeError
from gmpls.pcep.constants import (
    ERR_SVEC_REQUEST_MISSING,
    LSPA_FLAG_L,
    METRIC_FLAG_B,
    METRIC_FLAG_C,
    NO_PATH_FLAG_C,
    RP_FLAG_B,
    SVEC_FLAG_L,
    SVEC_FLAG_N,
    LspState,
    MetricType,
    NoPathVector,
)
from gmpls.pcep.messages import Attributes, ErrorBlock, Path, PCErr, PCRep, PCReq, Request, Response
from gmpls.pcep.objects import RP, Bandwidth, EndPointsIpv4, Ero, ErrorObject, Metric, NoPath, Svec
from gmpls.pcep.qemetrics import is_qe_metric, qe_params_from_metrics
from gmpls.pcep.relay import with_relay
from gmpls.pcep.tlv import NoPathReasonTlv, NoPathVectorTlv, ReqMissingTlv
from pce.compute import NoPathReason, PathComputer, PathRequest, PathResult
from pce.keyroute import (
    KeyLedger,
    Policy,
    RelayResult,
    consumption_bps,
    relay_path,
    site_of,
)
from pce.lspdb import LspDb, route_lambdas

_CONSTRAINT_REASONS = {
    NoPathReason.SOURCE_NOT_QE_CAPABLE,
    NoPathReason.QE_DESTINATION_NOT_QE_CAPABLE,
    NoPathReason.NO_ROUTE,
    NoPathReason.NO_COMMON_WAVELENGTH,
    NoPathReason.UNKNOWN_ALGORITHM,
    NoPathReason.UNKNOWN_LAYER,
    NoPathReason.BAD_QE_PARAMETERS,
    NoPathReason.QE_DESTINATION_NOT_ON_PATH,
    NoPathReason.UNSUPPORTED_REQUEST,
    NoPathReason.INSUFFICIENT_KEY_RATE,
}
_QE_REASONS = {
    NoPathReason.INSUFFICIENT_KEY_RATE,
    NoPathReason.SOURCE_NOT_QE_CAPABLE,
    NoPathReason.QE_DESTINATION_NOT_QE_CAPABLE,
    NoPathReason.UNKNOWN_ALGORITHM,
    NoPathReason.UNKNOWN_LAYER,
    NoPathReason.BAD_QE_PARAMETERS,
    NoPathReason.QE_DESTINATION_NOT_ON_PATH,
}


@dataclass(slots=True)
class Statistics:
    """What ``show pce statistics`` prints."""

    requests: int = 0
    replies: int = 0
    paths: int = 0
    no_paths: int = 0
    qe_requests: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    #: recent compute times, seconds (the last 10,000)
    times: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))

    def as_json(self) -> dict[str, Any]:
        ts = sorted(self.times)

        def pct(p: float) -> float | None:
            return round(ts[min(len(ts) - 1, int(p * len(ts)))] * 1e3, 3) if ts else None

        return {
            "requests": self.requests,
            "replies": self.replies,
            "paths": self.paths,
            "no_paths": self.no_paths,
            "qe_requests": self.qe_requests,
            "no_path_reasons": dict(self.reasons),
            "compute_ms": {
                "count": len(ts),
                "mean": round(statistics.fmean(ts) * 1e3, 3) if ts else None,
                "p50": pct(0.5),
                "p99": pct(0.99),
                "max": round(ts[-1] * 1e3, 3) if ts else None,
            },
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request's result, for logs."""

    request_id: int
    source: str
    destination: str
    result: PathResult
    seconds: float
    #: the key relay path (site IDs) and the service's key consumption (b/s), when computed
    relay: tuple[IPv4Address, ...] = ()
    key_bps: float | None = None


class PceService:
    """Answers PCReqs from a :class:`PathComputer`; ``clock`` (optional) times them.

    With an :class:`~pce.lspdb.LspDb` (the stateful PCE) the lambdas of reported LSPs and of
    paths just computed are not free: each path computed reserves its lambdas there. Those
    of LSPs reported removed are, until the TED hears a newer TE LSA: the ledger overlays
    the computer's TED (its :attr:`~pce.lspdb.LspDb.te`, set here when unset).

    ``keys`` is the ledger of key consumption committed on QKD links (a new one, with the
    LSP database's hold time, by default); ``qkd_sites`` maps a node that is not its
    site's site node to its site ID (:func:`pce.keyroute.site_of`)."""

    def __init__(
        self,
        computer: PathComputer,
        clock: Callable[[], float] | None = None,
        lsps: LspDb | None = None,
        keys: KeyLedger | None = None,
        qkd_sites: Mapping[IPv4Address, IPv4Address] | None = None,
    ) -> None:
        self.computer = computer
        self.clock = clock
        self.lsps = lsps
        if lsps is not None and lsps.te is None:
            lsps.te = computer.ted
        self.keys = keys if keys is not None else KeyLedger(lsps.hold if lsps else 30.0)
        self.qkd_sites = dict(qkd_sites or {})
        #: how relay paths are chosen ("fewest-hop" is the benchmark's baseline)
        self.relay_policy: Policy = "key-aware"
        self.stats = Statistics()
        #: the node router IDs the TED should hold once OSPF has converged (the daemon sets
        #: them from the topology): an unknown source or destination while the TED lacks
        #: some says so (:meth:`_convergence`)
        self.expected_nodes: frozenset[IPv4Address] = frozenset()

    def handle(
        self, msg: PCReq, now: float = 0.0
    ) -> tuple[PCRep | None, list[PCErr], list[Outcome]]:
        """Answer a PCReq: one PCRep with a response per request, and PCErrs for SVECs
        whose requests are not all in this message (RFC 5440 §7.13.2: Error-Type 7 with a
        REQ-MISSING TLV per missing request; the present ones are named by their RPs and
        not computed). Requests of a complete SVEC with the L or N flag are computed in
        SVEC order, each avoiding the links (L) or transit nodes (N) of those before it:
        sequential diverse routing, not a joint optimum."""
        by_id = {r.rp.request_id: r for r in msg.requests}
        errors: list[PCErr] = []
        skipped: set[int] = set()
        diverse: dict[int, Svec] = {}
        for sv in msg.svecs:
            missing = [i for i in sv.request_ids if i not in by_id]
            if missing:
                present = tuple(by_id[i].rp for i in sv.request_ids if i in by_id)
                errors.append(
                    PCErr(
                        (
                            ErrorBlock(
                                tuple(
                                    ErrorObject(*ERR_SVEC_REQUEST_MISSING, tlvs=(ReqMissingTlv(i),))
                                    for i in missing
                                ),
                                tuple(RP(r.request_id, r.flags, p=False) for r in present),
                            ),
                        )
                    )
                )
                skipped.update(sv.request_ids)
            elif sv.flags & (SVEC_FLAG_L | SVEC_FLAG_N):
                for i in sv.request_ids:
                    diverse[i] = sv
        responses = []
        outcomes = []
        avoid_links: dict[int, set[tuple[IPv4Address, int]]] = {}
        avoid_nodes: dict[int, set[IPv4Address]] = {}
        for req in msg.requests:
            rid = req.rp.request_id
            if rid in skipped:
                continue
            group = diverse.get(rid)
            key = id(group)
            resp, outcome = self.answer(
                req,
                exclude_links=frozenset(avoid_links.get(key, ())) if group else frozenset(),
                exclude_nodes=frozenset(avoid_nodes.get(key, ())) if group else frozenset(),
                now=now,
            )
            responses.append(resp)
            outcomes.append(outcome)
            if group is not None and outcome.result.ok:
                hops = outcome.result.hops
                if group.flags & SVEC_FLAG_L:
                    links = avoid_links.setdefault(key, set())
                    for h in hops:
                        links.add((h.router, h.interface))
                        links.add((h.remote_router, h.remote_interface))
                if group.flags & SVEC_FLAG_N:
                    avoid_nodes.setdefault(key, set()).update(h.remote_router for h in hops[:-1])
        self.stats.replies += 1
        return (PCRep(tuple(responses)) if responses else None), errors, outcomes

    def answer(
        self,
        req: Request,
        exclude_links: frozenset[tuple[IPv4Address, int]] = frozenset(),
        exclude_nodes: frozenset[IPv4Address] = frozenset(),
        now: float = 0.0,
        reserve: bool = True,
    ) -> tuple[Response, Outcome]:
        """Answer one request. ``reserve`` False (a PCInitiate's path, which the head
        will ask for again, or a PCUpd's for a service whose key rate is committed
        already): nothing is reserved or committed and the key rate refuses nothing."""
        self.stats.requests += 1
        t0 = self.clock() if self.clock else 0.0
        result = self._compute(req, exclude_links, exclude_nodes, now)
        relay = self._relay(req, result, now) if result.ok else None
        if relay is not None and not relay[0].ok:
            if reserve:
                result = PathResult(
                    reason=NoPathReason.INSUFFICIENT_KEY_RATE, detail=relay[0].reason
                )
            else:  # a path for an existing service (PCUpd) or one the head will ask for
                relay = None
        dt = (self.clock() - t0) if self.clock else 0.0
        self.stats.times.append(dt)
        sites = relay[0].sites if relay is not None and len(relay[0].sites) > 1 else ()
        rp = RP(req.rp.request_id, req.rp.flags, tlvs=with_relay((), sites), p=True)
        ep = req.endpoints
        outcome = Outcome(
            req.rp.request_id,
            str(ep.source),
            str(ep.destination),
            result,
            dt,
            relay[0].sites if relay is not None else (),
            relay[1] if relay is not None else None,
        )
        if result.ok:
            self.stats.paths += 1
            if self.lsps is not None and reserve and isinstance(ep, EndPointsIpv4):
                self.lsps.reserve(ep.source, ep.destination, route_lambdas(result.ero), now)
            if relay is not None and reserve:
                self.keys.commit(result.nodes[0], result.nodes[-1], sites, relay[1], now)
            return Response(rp, paths=(Path(Ero(result.ero), self._attributes(req, result)),)), (
                outcome
            )
        assert result.reason is not None
        self.stats.no_paths += 1
        self.stats.reasons[result.reason.name] += 1
        return self._no_path(rp, req, result), outcome

    # -- internals ----------------------------------------------------------------------

    def _relay(
        self, req: Request, result: PathResult, now: float
    ) -> tuple[RelayResult, float] | None:
        """The key relay path of a QE request whose path was found, and its consumption
        (b/s); None when it is no QE request or an end's site is not known."""
        params = qe_params_from_metrics(req.metrics)  # _compute has checked them
        if params is None or not result.nodes:
            return None
        graph = self.computer.ted.qkd_graph()
        head, tail = result.nodes[0], result.destination or result.nodes[-1]
        src = site_of(graph, head, self.qkd_sites)
        dst = site_of(graph, tail, self.qkd_sites)
        if src is None or dst is None:
            return None
        bw = req.bandwidth.bandwidth if req.bandwidth is not None else 0.0
        need = consumption_bps(params, max(bw, 0.0))
        self.keys.expire(now, self.live_services)
        committed = self.keys.committed()
        key_bits = 8 * params.key_length
        found = relay_path(graph, src, dst, need, committed, key_bits, self.relay_policy)
        return found, need

    def live_services(self) -> Counter[tuple[IPv4Address, IPv4Address]]:
        """QE LSPs the heads report and not down, per (head, tail): their committed key
        rate stays past the hold time (:class:`pce.keyroute.KeyLedger`)."""
        out: Counter[tuple[IPv4Address, IPv4Address]] = Counter()
        for lsp in self.lsps.all() if self.lsps is not None else ():
            if lsp.qe is not None and lsp.state != LspState.DOWN and lsp.head and lsp.tail:
                out[(lsp.head, lsp.tail)] += 1
        return out

    def _compute(
        self,
        req: Request,
        exclude_links: frozenset[tuple[IPv4Address, int]] = frozenset(),
        exclude_nodes: frozenset[IPv4Address] = frozenset(),
        now: float = 0.0,
    ) -> PathResult:
        ep = req.endpoints
        if not isinstance(ep, EndPointsIpv4):
            return PathResult(
                reason=NoPathReason.UNKNOWN_SOURCE, detail="IPv6 end points are not in the TED"
            )
        try:
            params = qe_params_from_metrics(req.metrics)
        except DecodeError as e:
            return PathResult(reason=NoPathReason.BAD_QE_PARAMETERS, detail=e.reason)
        if params is not None:
            self.stats.qe_requests += 1
        unsupported = _unsupported(req)
        if unsupported:
            return PathResult(reason=NoPathReason.UNSUPPORTED_REQUEST, detail=unsupported)
        bw = req.bandwidth.bandwidth if req.bandwidth is not None else 0.0
        preq = PathRequest(
            ep.source,
            ep.destination,
            bandwidth=max(bw, 0.0),
            qe=params,
            exclude_nodes=exclude_nodes,
            exclude_links=exclude_links,
            **_constraints(req),
        )
        held = self.lsps.held(now) if self.lsps is not None else None
        freed = self.lsps.freed(now) if self.lsps is not None else None
        result = self.computer.compute(preq, held, freed)
        if result.reason in (NoPathReason.UNKNOWN_SOURCE, NoPathReason.UNKNOWN_DESTINATION):
            return replace(result, detail=f"{result.detail}{self._convergence()}")
        return result

    def _convergence(self) -> str:
        """For an unknown end point: how complete the TED is against the topology's nodes
        ("; TED has 3/5 nodes; OSPF still converging"), empty when nothing is expected."""
        want = self.expected_nodes
        if not want:
            return ""
        have = len(want & set(self.computer.ted.nodes()))
        tail = "; OSPF still converging, try again" if have < len(want) else ""
        return f"; TED has {have}/{len(want)} nodes{tail}"

    def _attributes(self, req: Request, result: PathResult) -> Attributes:
        metrics = []
        for m in req.metrics:
            if m.flags & METRIC_FLAG_C and not is_qe_metric(m):
                value = _metric_value(m.metric_type, result)
                if value is not None:
                    metrics.append(Metric(m.metric_type, float(value)))
        bw = Bandwidth(req.bandwidth.bandwidth) if req.bandwidth is not None else None
        return Attributes(bandwidth=bw, metrics=tuple(metrics))

    def _no_path(self, rp: RP, req: Request, result: PathResult) -> Response:
        reason = result.reason
        assert reason is not None
        vector = 0
        if reason is NoPathReason.UNKNOWN_SOURCE:
            vector |= NoPathVector.UNKNOWN_SOURCE
        elif reason is NoPathReason.UNKNOWN_DESTINATION:
            vector |= NoPathVector.UNKNOWN_DESTINATION
        tlvs: tuple[Any, ...] = (
            NoPathVectorTlv(vector),
            NoPathReasonTlv(int(reason), f"{reason.name.lower()}: {result.detail}"[:200]),
        )
        flags = NO_PATH_FLAG_C if reason in _CONSTRAINT_REASONS else 0
        attrs = Attributes()
        if reason in _QE_REASONS:
            attrs = Attributes(metrics=tuple(m for m in req.metrics if is_qe_metric(m)))
        elif reason in (NoPathReason.NO_ROUTE, NoPathReason.NO_COMMON_WAVELENGTH):
            bounds = tuple(m for m in req.metrics if m.flags & METRIC_FLAG_B)
            attrs = Attributes(req.lspa, req.bandwidth, bounds, req.iro)
        return Response(rp, no_path=NoPath(0, flags, tlvs), attributes=attrs)


def _metric_value(metric_type: int, result: PathResult) -> int | None:
    if metric_type == MetricType.IGP:
        return result.igp
    if metric_type == MetricType.TE:
        return result.cost
    if metric_type == MetricType.HOP_COUNT:
        return len(result.hops)
    return None


def _unsupported(req: Request) -> str:
    """Why the request holds an object with the P flag this PCE cannot honour ("" when
    none): a METRIC of a type it does not know, or one without B asking to optimise
    another metric than the TE metric (RFC 5440 §7.8), or an object out of place."""
    for m in req.metrics:
        if not m.p or is_qe_metric(m) or m.metric_type == MetricType.TE:
            continue
        if m.metric_type not in _BOUNDS:
            return f"METRIC type {m.metric_type} is not supported by this PCE"
        if not m.flags & METRIC_FLAG_B:
            return f"this PCE optimises the TE metric only, not METRIC type {m.metric_type}"
    for obj in req.others:
        if obj.p:
            return f"{type(obj).__name__} constraints are not supported by this PCE"
    return ""


_BOUNDS: dict[int, str] = {
    MetricType.IGP: "max_igp",
    MetricType.TE: "max_te",
    MetricType.HOP_COUNT: "max_hops",
}


def _constraints(req: Request) -> dict[str, Any]:
    """The request's constraints as :class:`PathRequest` fields: the LSPA (affinities and
    setup priority always; the L flag only with P, having no protected links), the RP B
    flag, METRIC bounds (B flag; the tightest of repeated ones) and the IRO."""
    out: dict[str, Any] = {"bidirectional": bool(req.rp.flags & RP_FLAG_B)}
    if req.lspa is not None:
        a = req.lspa
        out.update(
            exclude_any=a.exclude_any,
            include_any=a.include_any,
            include_all=a.include_all,
            setup_priority=min(a.setup_priority, 7),
            local_protection=a.p and bool(a.flags & LSPA_FLAG_L),
        )
    for m in req.metrics:
        name = _BOUNDS.get(m.metric_type)
        if name is not None and m.flags & METRIC_FLAG_B:
            out[name] = min(out.get(name, m.value), m.value)
    if req.iro is not None:
        out["include"] = req.iro.subobjects
    return out
