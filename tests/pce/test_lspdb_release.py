"""The lambda ledger trusts a removal report over an older TE LSA (pce/lspdb.py, issue 17):
the lambdas of an LSP its head reported removed are free for path computation until a TE
LSA newer than the removal describes the link, on the paper topology (8 lambdas per link)
whose nodes advertise their lambdas only when the test says (as OSPF-TE's MinLSInterval
makes them lag)."""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import IPv4Address
from pathlib import Path

from gmpls.ero import Ipv4Prefix, Label, Subobject, Unnumbered, lambda_label
from gmpls.ospf.constants import INITIAL_SEQUENCE, LsType
from gmpls.ospf.lsa import LSA
from gmpls.ospf.te import TeLinkParams, TeLSA, link_tlv, te_lsa_id
from gmpls.pcep import constants as C
from gmpls.pcep import messages as M
from gmpls.pcep import objects as O
from gmpls.pcep import tlv as T
from gmpls.topology import Topology, load
from pce.compute import PathComputer
from pce.lspdb import LinkKey, LspDb, route_lambdas
from pce.service import PceService
from pce.synth import OPTS, topology_lsas
from pce.ted import Ted

PAPER = Path(__file__).resolve().parents[2] / "topologies" / "paper.yaml"
TN = {i: IPv4Address(f"10.1.1.{i}") for i in range(1, 6)}
PCC = "10.1.1.1"
Lambdas = list[tuple[LinkKey, int]]


class Lab:
    """A stateful PCE on the paper topology, and its nodes' TE LSAs sent on demand."""

    def __init__(self, hold: float = 30.0) -> None:
        self.topo: Topology = load(PAPER)
        self.ted = Ted()
        self.ted.load(topology_lsas(self.topo))
        self.lsps = LspDb(hold=hold)
        self.service = PceService(PathComputer(self.ted), lsps=self.lsps)
        self.seq = INITIAL_SEQUENCE
        self.rid = 0

    def path(self, now: float, src: int = 1, dst: int = 5) -> Lambdas | None:
        """The (link, lambda) of the path computed for ``src`` -> ``dst`` (None: NO-PATH)."""
        self.rid += 1
        req = M.Request(O.RP(self.rid), O.EndPointsIpv4(TN[src], TN[dst]))
        resp, _ = self.service.answer(req, now=now)
        return route_lambdas(resp.paths[0].ero.subobjects) if resp.paths else None

    def report(self, plsp: int, lambdas: Lambdas, now: float, *, src: int = 1, dst: int = 5,
               state: int = C.LspState.UP, remove: bool = False, pcc: str = PCC,
               labels: bool = True) -> None:  # fmt: skip
        """The head's PCRpt of LSP ``plsp`` on ``lambdas`` (an ERO of unnumbered hops and
        labels, as the PCE computed it; the hops alone without ``labels``)."""
        ids = T.Ipv4LspIdentifiersTlv(TN[src], plsp, plsp, TN[src], TN[dst])
        flags = O.lsp_flags(delegate=True, state=state, remove=remove)
        lsp = O.LspObject(plsp, flags, (T.SymbolicPathNameTlv(f"lsp-{plsp}".encode()), ids))
        route = (*ero_of(lambdas, labels), Ipv4Prefix(TN[dst], 32))
        msg = M.PCRpt((M.LspEntry(lsp, ero=O.Ero(route)),))
        assert self.lsps.report(pcc, msg, now) == []

    def advertise(self, used: Mapping[LinkKey, set[int]], only: set[LinkKey] | None = None) -> None:
        """Every node re-originates its TE LSAs (those of ``only`` links when given), listing
        free what ``used`` does not name on the link or its reverse (a lambda is held at
        both ends of its link)."""
        self.seq += 1
        for h in self.topo.of_kind("node"):
            assert h.router_id is not None
            for link in self.topo.te_links_of(h.name):
                key = (h.router_id, link.local_if)
                if only is not None and key not in only:
                    continue
                busy = used.get(key, set()) | used.get(
                    (link.remote_router_id, link.remote_if), set()
                )
                params = TeLinkParams(
                    local_id=link.local_if,
                    remote_id=link.remote_if,
                    remote_router=link.remote_router_id,
                    te_metric=link.metric,
                    max_bandwidth=1e9,
                    max_reservable=1e9,
                    unreserved=(1e9,) * 8,
                    channels=tuple(c for c in link.lambdas if c not in busy),
                )
                body = TeLSA((link_tlv(params),))
                lsa = LSA.build(LsType.OPAQUE_AREA, te_lsa_id(link.local_if), h.router_id,
                                self.seq, body, options=OPTS)  # fmt: skip
                self.ted.install(lsa)


def ero_of(lambdas: Lambdas, labels: bool = True) -> list[Subobject]:
    out: list[Subobject] = []
    for (router, ifid), ch in lambdas:
        out += (
            [Unnumbered(router, ifid), Label(lambda_label(ch))]
            if labels
            else [Unnumbered(router, ifid)]
        )
    return out


def in_use(*paths: Lambdas) -> dict[LinkKey, set[int]]:
    out: dict[LinkKey, set[int]] = {}
    for p in paths:
        for link, ch in p:
            out.setdefault(link, set()).add(ch)
    return out


def channels(p: Lambdas | None) -> set[int]:
    assert p is not None, "NO-PATH"
    return {ch for _, ch in p}


def test_bursts_of_eight_one_after_the_other_all_get_paths() -> None:
    """Eight LSPs fill the path's links; the nodes advertise them used; the heads report
    them removed and no newer TE LSA comes: the next burst of eight gets them again, round
    after round (before: the second burst found NO-PATH, the TED lagging)."""
    lab = Lab()
    t = 0.0
    for rnd in range(6):
        burst = [lab.path(t) for _ in range(8)]
        assert all(p is not None for p in burst), f"round {rnd}: NO-PATH"
        paths = [p for p in burst if p is not None]
        assert sorted(ch for p in paths for ch in channels(p)) == list(range(1, 9))
        assert lab.path(t) is None  # the ninth: every lambda held (reservations)
        for i, p in enumerate(paths):
            lab.report(100 * rnd + i + 1, p, t + 0.1)
        lab.advertise(in_use(*paths))  # what the nodes say while the LSPs are up
        for i, p in enumerate(paths):
            lab.report(100 * rnd + i + 1, p, t + 0.5, remove=True)
        t += 1.0  # faster than MinLSInterval: no TE LSA after the removals
    assert lab.lsps.counters.released == 6 * 8 * 4 * 2  # LSPs x links x directions


def test_create_and_delete_cycles_with_the_ted_behind() -> None:
    """Sequential create + delete, each LSP up and advertised before it goes, the TE LSA
    after its removal never coming: all get lambda 1."""
    lab = Lab()
    for i in range(1, 41):
        p = lab.path(i)
        assert channels(p) == {1}
        assert p is not None
        lab.report(i, p, i + 0.1)
        lab.advertise(in_use(p))
        lab.report(i, p, i + 0.2, remove=True)


def test_going_down_holds_the_lambdas_and_the_removal_after_it_frees_them() -> None:
    """A graceful deletion: the head reports the LSP going down while RSVP tears it down
    (its lambdas still held: a path computed then does not get them), then removed (they
    are free before the TE LSAs say so, as after an LSP reported up). Going down after
    down, or after going up, frees nothing."""
    lab = Lab()
    a = lab.path(0)
    assert a is not None and channels(a) == {1}
    lab.report(1, a, 0.1)
    lab.advertise(in_use(a))
    lab.report(1, a, 0.2, state=C.LspState.GOING_DOWN)
    assert channels(lab.path(1)) == {2}
    lab.report(1, a, 0.3, state=C.LspState.GOING_DOWN, remove=True)
    assert lab.lsps.freed(0.4)[a[0][0]] == {1}
    b = lab.path(40)  # the release is over (hold 30 s): lambda 1 is used as the TED says
    assert b is not None and channels(b) == {2}
    lab.report(2, b, 40.1, state=C.LspState.GOING_UP)
    lab.report(2, b, 40.2, state=C.LspState.GOING_DOWN)
    lab.report(2, b, 40.3, state=C.LspState.GOING_DOWN, remove=True)
    assert lab.lsps.freed(40.4) == {}


def test_a_freed_lambda_is_not_given_while_another_lsp_holds_it() -> None:
    lab = Lab()
    a = lab.path(0)
    assert channels(a) == {1} and a is not None
    lab.report(1, a, 0.1)
    lab.advertise(in_use(a))
    lab.report(1, a, 0.2, remove=True)
    # another PCC's LSP on lambda 1 over the same links (reported after the removal)
    lab.report(7, a, 0.3, pcc="10.1.1.9")
    assert channels(lab.path(1)) == {2}
    lab.report(7, a, 1.1, pcc="10.1.1.9", remove=True)
    # a path just computed holds its lambda (reserved): the next one gets another (2 is
    # the reservation of the path computed at 1)
    assert channels(lab.path(2)) == {1}
    assert channels(lab.path(2)) == {3}


def test_a_lambda_held_in_the_reverse_direction_is_not_free() -> None:
    """A node holds an LSP's lambda on its interface whichever way the LSP goes: a
    reported LSP tn5 -> tn1 on lambda 1 keeps it from tn1 -> tn5, freed or not."""
    lab = Lab()
    back = lab.path(0, src=5, dst=1)
    assert channels(back) == {1} and back is not None
    lab.report(1, back, 0.1, src=5, dst=1, pcc="10.1.1.5")
    assert channels(lab.path(1)) == {2}


def test_a_newer_te_lsa_is_the_truth_again() -> None:
    """After the removal, a TE LSA of the first link that still lists lambda 1 used (an
    LSP the PCE does not know of, or one advertised before the removal) wins on that
    link; one listing it free changes nothing; the other links keep the freed lambda."""
    lab = Lab()
    a = lab.path(0)
    assert a is not None
    lab.report(1, a, 0.1)
    lab.advertise(in_use(a))
    lab.report(1, a, 0.2, remove=True)
    assert lab.lsps.freed(0.3)[a[0][0]] == {1}
    first = a[0][0]
    lab.advertise(in_use(a), only={first})
    assert first not in lab.lsps.freed(0.4) and lab.lsps.counters.releases_superseded == 1
    assert channels(lab.path(1)) == {2}
    assert lab.lsps.freed(1)[a[1][0]] == {1}  # still free past tn2
    lab.advertise({}, only={first})  # the node lets it go at last
    assert channels(lab.path(2)) == {1}


def test_a_freed_lambda_no_link_lists_free() -> None:
    """Every link of the TED lists lambda 1 used (the graph's lowest channel is 2): the
    freed lambda 1 is offered all the same."""
    lab = Lab()
    a = lab.path(0)
    assert a is not None
    lab.report(1, a, 0.1)
    lab.advertise({lk.key: {1} for lk in lab.ted.links()})
    assert lab.service.computer.graph.base == 2
    lab.report(1, a, 0.2, remove=True)
    assert channels(lab.path(1)) == {1}


def test_only_an_lsp_that_was_up_frees_its_lambdas_and_for_hold_seconds() -> None:
    """An LSP removed before it was up may have failed on a lambda someone else holds:
    it frees nothing. A release lapses after the hold time (a stateless head that took
    the lambda since reports nothing): the TED's word again."""
    lab = Lab(hold=5.0)
    a = lab.path(0)
    assert a is not None
    lab.report(1, a, 0.1, state=C.LspState.GOING_UP)
    lab.advertise(in_use(a))
    lab.report(1, a, 0.2, remove=True)
    assert lab.lsps.freed(0.3) == {} and channels(lab.path(10)) == {2}
    b = lab.path(20)  # lambda 2 again: the reservation at 10 is over
    assert channels(b) == {2} and b is not None
    lab.report(2, b, 20.1)
    lab.advertise(in_use(a, b))
    lab.report(2, b, 20.2, remove=True)
    assert channels(lab.path(21)) == {2}
    assert lab.lsps.freed(25.2) == {} and lab.lsps.counters.releases_expired == 8
    assert channels(lab.path(40)) == {3}  # the TED lists 1 and 2 used


def test_a_report_without_labels_ends_one_reservation() -> None:
    """The head found the PCE's lambda still busy on its own link (its graceful deletion
    of the LSP before still holds it) and signalled the same hops without labels: its
    report ends the oldest reservation of those hops, once (not again when reported up),
    instead of leaving it for the hold time."""
    lab = Lab()
    a, b = lab.path(0), lab.path(0)
    assert channels(a) == {1} and channels(b) == {2} and a is not None
    lab.report(1, a, 0.1, state=C.LspState.GOING_UP, labels=False)
    lab.report(1, a, 0.2, labels=False)
    assert [{ch for _, ch in r.lambdas} for r in lab.lsps.reservations] == [{2}]
    assert lab.lsps.counters.reservations_confirmed == 1
    assert channels(lab.path(1)) == {1}  # neither the label-less LSP nor 2's reservation
