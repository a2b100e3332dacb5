"""The LSAs the GMPLS nodes of a topology originate, synthesised offline.

What a node agent advertises for itself (docs/design.md#router-information-capability-bits): a
Router Information LSA with the
TE bit and, when QE capable, the QE bit; a TE LSA with its Router Address TLV; one TE LSA
per TE link (RFC 3630 Link TLV with the RFC 4203 unnumbered identifiers, TE metric,
bandwidths, and the available DWDM channels). Used by tests, by ``bench/pce_speed.py`` on
generated topologies, and by ``python -m pce --static-ted`` (no OSPF) for offline use.
"""

from __future__ import annotations

from collections.abc import Iterator

from gmpls.ospf.constants import INITIAL_SEQUENCE, LsType, Options
from gmpls.ospf.lsa import LSA
from gmpls.ospf.ri import RouterInfoLSA, capabilities, ri_lsa_id
from gmpls.ospf.te import RouterAddress, TeLinkParams, TeLSA, link_tlv, te_lsa_id
from gmpls.topology import Topology

OPTS = Options.E | Options.O


def node_lsas(topo: Topology, name: str) -> Iterator[LSA]:
    host = topo.host(name)
    rid = host.router_id
    assert rid is not None
    ri = RouterInfoLSA((capabilities(te=True, qe_capable=host.qe.capable),))
    yield LSA.build(LsType.OPAQUE_AREA, ri_lsa_id(0), rid, INITIAL_SEQUENCE, ri, options=OPTS)
    yield LSA.build(
        LsType.OPAQUE_AREA,
        te_lsa_id(0),
        rid,
        INITIAL_SEQUENCE,
        TeLSA((RouterAddress(rid),)),
        options=OPTS,
    )
    for link in topo.te_links_of(name):
        bw = link.bandwidth_mbps * 1e6 / 8
        params = TeLinkParams(
            local_id=link.local_if,
            remote_id=link.remote_if,
            remote_router=link.remote_router_id,
            te_metric=link.metric,
            max_bandwidth=bw,
            max_reservable=bw,
            unreserved=(bw,) * 8,
            channels=tuple(link.lambdas),
        )
        yield LSA.build(
            LsType.OPAQUE_AREA,
            te_lsa_id(link.local_if),
            rid,
            INITIAL_SEQUENCE,
            TeLSA((link_tlv(params),)),
            options=OPTS,
        )


def topology_lsas(topo: Topology) -> list[LSA]:
    """The RI and TE LSAs of every GMPLS node (kind ``node``) of ``topo``."""
    out: list[LSA] = []
    for h in topo.of_kind("node"):
        out.extend(node_lsas(topo, h.name))
    return out
