"""Moving delegated LSPs (RFC 8231 §5.8.2 PCUpd), pure: which LSPs need a new path and
the PCUpd entry that carries it.

An LSP delegated to this PCE (D flag in its last report, the PCC's session up) is
recomputed when its path is no longer valid in the TED — a link it names is no longer
usable (either direction gone, an end dead) or its tail is gone (:func:`route_valid`) —
and when its head reports it down (the TED may lag: then the same path comes back and no
update is sent). The new path is computed as for a PCReq from the LSP's head to its tail
with the QE parameters of its QE subobject; its lambdas are reserved in the ledger until
the head reports the LSP on it (:meth:`pce.lspdb.LspDb.reserve`). The operator may move an
LSP whose path is still valid (``qe-service update``), avoiding nodes if asked.

One update per LSP is outstanding at a time: the next waits for the head's report naming
the update's SRP-ID, its PCErr, or ``LspDb.update_wait`` seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address

from gmpls.ero import Subobject, Unnumbered
from gmpls.pcep.constants import LspState, PathSetupType
from gmpls.pcep.messages import Attributes, LspEntry, Request
from gmpls.pcep.objects import RP, EndPointsIpv4, Ero, LspObject, Srp, lsp_flags
from gmpls.pcep.qemetrics import qe_metrics
from gmpls.pcep.tlv import SymbolicPathNameTlv
from pce.lspdb import LinkKey, Lsp, LspDb, route_lambdas
from pce.service import PceService
from pce.ted import Ted


def route_valid(route: Sequence[Subobject], ted: Ted, tail: IPv4Address | None) -> bool:
    """Whether every TE link the route names (each unnumbered hop: router, outgoing
    interface) is usable in the TED and its tail is an alive TE node."""
    return _valid(route, {lk.key for lk in ted.links()}, ted, tail)


def _valid(
    route: Sequence[Subobject], usable: set[LinkKey], ted: Ted, tail: IPv4Address | None
) -> bool:
    hops = [(s.router_id, s.interface_id) for s in route if isinstance(s, Unnumbered)]
    if any(h not in usable for h in hops):
        return False
    return tail is None or ted.resolve(tail) is not None


def candidates(lsps: LspDb, ted: Ted, now: float) -> list[Lsp]:
    """The delegated RSVP-TE LSPs to recompute now: reported down, or whose path the
    TED no longer holds, with no update outstanding."""
    out: list[Lsp] = []
    usable: set[LinkKey] | None = None
    for lsp in lsps.all():
        if not (lsp.delegated and lsp.pcc_up and lsp.pst == PathSetupType.RSVP_TE):
            continue
        if lsp.head is None or lsp.tail is None or lsps.update_outstanding(lsp, now):
            continue
        if lsp.state == LspState.DOWN:
            out.append(lsp)
            continue
        if usable is None:
            usable = {lk.key for lk in ted.links()}
        if not _valid(lsp.route, usable, ted, lsp.tail):
            out.append(lsp)
    return out


def compute_update(
    lsp: Lsp,
    service: PceService,
    lsps: LspDb,
    now: float,
    *,
    avoid: Iterable[IPv4Address] = (),
    force: bool = False,
) -> LspEntry | None:
    """The PCUpd entry moving ``lsp`` to a newly computed path (None when there is no
    path, noted in ``lsp.error``, or when the path found is the one it has, unless
    ``force``). The path's lambdas are reserved and the update marked outstanding."""
    assert lsp.head is not None and lsp.tail is not None
    params = lsp.qe
    metrics = qe_metrics(params) if params is not None else ()
    req = Request(RP(1), EndPointsIpv4(lsp.head, lsp.tail), metrics=metrics)
    resp, outcome = service.answer(req, exclude_nodes=frozenset(avoid), now=now, reserve=False)
    if not resp.paths:
        lsp.error = f"no new path: {outcome.result.detail or outcome.result.reason}"
        return None
    ero = resp.paths[0].ero.subobjects
    if not force and _same(ero, lsp.route):
        return None
    srp_id = lsps.new_srp_id()
    lsps.reserve(lsp.head, lsp.tail, route_lambdas(ero), now)
    lsps.update_sent(lsp, srp_id, now)
    flags = lsp_flags(delegate=True, admin=True)
    obj = LspObject(lsp.plsp_id, flags, (SymbolicPathNameTlv(lsp.name.encode()),))
    return LspEntry(obj, Srp(srp_id), Ero(ero), Attributes(metrics=metrics))


def _same(a: Sequence[Subobject], b: Sequence[Subobject]) -> bool:
    """The same hops and lambdas (the QE subobjects' session IDs aside)."""
    return [x for x in a if isinstance(x, Unnumbered)] == [
        x for x in b if isinstance(x, Unnumbered)
    ] and route_lambdas(a) == route_lambdas(b)


__all__ = ["candidates", "compute_update", "route_valid"]
