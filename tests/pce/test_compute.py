"""Path computation (pce/compute.py): CSPF, wavelength continuity with Yen's k shortest
paths, the QE constraint, and the Fig. 9 ERO golden bytes."""

from __future__ import annotations

import itertools
import random
from ipaddress import IPv4Address
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gmpls import qe
from gmpls.ero import Ipv4Prefix, Label, QeSubobject, Unnumbered, lambda_label
from gmpls.ospf.lsa import LSA
from gmpls.pcep import examples as ex
from gmpls.pcep.objects import Ero
from gmpls.topology import load
from pce.compute import Graph, NoPathReason, PathComputer, PathRequest, dijkstra, yen
from pce.synth import topology_lsas
from pce.ted import Ted
from tests.support.pce_graphs import graph, rid

PAPER = Path(__file__).resolve().parents[2] / "topologies" / "paper.yaml"
TN = {i: IPv4Address(f"10.1.1.{i}") for i in range(1, 6)}


@pytest.fixture
def paper() -> PathComputer:
    ted = Ted()
    for lsa in topology_lsas(load(PAPER)):
        ted.install(LSA.decode(lsa.encode()))
    return PathComputer(ted)


def test_fig9_golden_bytes(paper: PathComputer) -> None:
    r = paper.compute(PathRequest(TN[1], TN[5], qe=ex.PAPER_QE))
    assert r.ok and r.channel == 1 and r.cost == 40 and r.candidates == 1
    assert r.nodes == tuple(TN[i] for i in range(1, 6))
    raw = Ero(r.ero).encode()
    qe_sub = bytes([103, 76, 0, 0]) + bytes(64) + bytes([2, 10, 0, 32, 1, 0, 0x03, 0xE8])
    label = bytes.fromhex("0308000222000001")  # generalized label, DWDM 100 GHz, n = 1

    def unn(n: int, i: int) -> bytes:
        return bytes.fromhex("040c00000a0101") + bytes([n]) + i.to_bytes(4, "big")

    expected = (
        bytes.fromhex("071000f4")
        + unn(1, 1) + qe_sub + label
        + unn(2, 1) + label
        + unn(3, 3) + label
        + unn(4, 3) + label
        + bytes.fromhex("01080a01010520" "00")
        + qe_sub
    )  # fmt: skip
    assert raw == expected
    assert r.ero == ex.fig9_ero()


def test_bypass_when_tn3_excluded_or_gone(paper: PathComputer) -> None:
    r = paper.compute(PathRequest(TN[1], TN[5], qe=ex.PAPER_QE, exclude_nodes=frozenset({TN[3]})))
    assert r.ok and r.nodes == (TN[1], TN[2], TN[4], TN[5]) and r.cost == 50
    assert [s for s in r.ero if isinstance(s, Unnumbered)] == [
        Unnumbered(TN[1], 1),
        Unnumbered(TN[2], 3),
        Unnumbered(TN[4], 3),
    ]
    r2 = paper.compute(PathRequest(TN[1], TN[5], exclude_links=frozenset({(TN[2], 1)})))
    assert r2.nodes == (TN[1], TN[2], TN[4], TN[5])
    assert not any(isinstance(s, QeSubobject) for s in r2.ero)  # no QE asked, none given


def test_qe_incapable_endpoints(paper: PathComputer) -> None:
    r = paper.compute(PathRequest(TN[2], TN[5], qe=ex.PAPER_QE))
    assert r.reason is NoPathReason.SOURCE_NOT_QE_CAPABLE and "10.1.1.2" in r.detail
    r = paper.compute(PathRequest(TN[1], TN[4], qe=ex.PAPER_QE))
    assert r.reason is NoPathReason.QE_DESTINATION_NOT_QE_CAPABLE
    # without QE the same request is fine
    assert paper.compute(PathRequest(TN[2], TN[4])).ok


def test_qe_destination_elsewhere_on_path() -> None:
    """A QE destination that is an intermediate node gets its QE subobject after its own
    unnumbered hop (and the far end none)."""
    ted = graph({1: True, 2: True, 3: False}, [(1, 1, 2, 1, 10, [4]), (2, 2, 3, 1, 10, [4])])
    r = PathComputer(ted).compute(
        PathRequest(rid(1), rid(3), qe=ex.PAPER_QE, qe_destination=rid(2))
    )
    sub = QeSubobject.from_params(ex.PAPER_QE)
    lab = Label(lambda_label(4))
    assert r.ero == (
        Unnumbered(rid(1), 1), sub, lab, Unnumbered(rid(2), 2), sub, lab, Ipv4Prefix(rid(3), 32)
    )  # fmt: skip


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        (qe.QeParams(algorithm=99), NoPathReason.UNKNOWN_ALGORITHM),
        (qe.QeParams(enc_layer=7), NoPathReason.UNKNOWN_LAYER),
        (qe.QeParams(refresh_type=9), NoPathReason.BAD_QE_PARAMETERS),
        (qe.QeParams(key_length=0), NoPathReason.BAD_QE_PARAMETERS),
    ],
)
def test_unknown_qe_values(paper: PathComputer, params: qe.QeParams, reason: NoPathReason) -> None:
    r = paper.compute(PathRequest(TN[1], TN[5], qe=params))
    assert r.reason is reason and r.detail


def test_unknown_and_same_endpoints(paper: PathComputer) -> None:
    assert paper.compute(PathRequest(IPv4Address("10.9.9.9"), TN[5])).reason is (
        NoPathReason.UNKNOWN_SOURCE
    )
    assert paper.compute(PathRequest(TN[1], IPv4Address("10.9.9.9"))).reason is (
        NoPathReason.UNKNOWN_DESTINATION
    )
    assert paper.compute(PathRequest(TN[1], TN[1])).reason is NoPathReason.SAME_END_POINTS


def test_disconnected() -> None:
    ted = graph(
        {1: True, 2: True, 3: True, 4: True}, [(1, 1, 2, 1, 10, [1]), (3, 1, 4, 1, 10, [1])]
    )
    r = PathComputer(ted).compute(PathRequest(rid(1), rid(4)))
    assert r.reason is NoPathReason.NO_ROUTE


def test_first_fit_lowest_common_channel() -> None:
    ted = graph(
        {1: True, 2: True, 3: True}, [(1, 1, 2, 1, 10, [2, 5, 7]), (2, 2, 3, 1, 10, [5, 7, 8])]
    )
    r = PathComputer(ted).compute(PathRequest(rid(1), rid(3)))
    assert r.channel == 5
    assert Label(lambda_label(5)) in r.ero


def test_no_common_wavelength_on_shortest_takes_next() -> None:
    """1-2-4 is shortest but its links share no channel; 1-3-4 (longer) shares channel 6."""
    links = [
        (1, 1, 2, 1, 10, [1, 2]),
        (2, 2, 4, 1, 10, [3, 4]),
        (1, 2, 3, 1, 20, [6]),
        (3, 2, 4, 2, 20, [6, 7]),
    ]
    r = PathComputer(graph({i: True for i in range(1, 5)}, links)).compute(
        PathRequest(rid(1), rid(4))
    )
    assert r.ok and r.nodes == (rid(1), rid(3), rid(4)) and r.channel == 6 and r.candidates == 2


def test_no_common_wavelength_anywhere() -> None:
    links = [
        (1, 1, 2, 1, 10, [1]),
        (2, 2, 3, 1, 10, [2]),
        (1, 2, 4, 1, 50, [3]),
        (4, 2, 3, 2, 5, [4]),
    ]
    r = PathComputer(graph({i: True for i in range(1, 5)}, links)).compute(
        PathRequest(rid(1), rid(3))
    )
    assert r.reason is NoPathReason.NO_COMMON_WAVELENGTH and r.candidates == 2


def test_k_limits_the_search() -> None:
    """Six parallel two-hop routes; only the sixth shortest has a common channel."""
    links = []
    for i in range(6):
        mid = 10 + i
        last = [9] if i == 5 else [2]
        links += [
            (1, i + 1, mid, 1, 10 + i, [1, 9]),
            (mid, 2, 2, i + 1, 10, last if i == 5 else [3]),
        ]
    qe_map = {1: True, 2: True, **{10 + i: False for i in range(6)}}
    pc = PathComputer(graph(qe_map, links))
    assert pc.compute(PathRequest(rid(1), rid(2))).reason is NoPathReason.NO_COMMON_WAVELENGTH
    r = pc.compute(PathRequest(rid(1), rid(2), k=6))
    assert r.ok and r.nodes == (rid(1), rid(15), rid(2)) and r.candidates == 6


def test_bandwidth_constraint() -> None:
    links = [(1, 1, 2, 1, 10, [1]), (2, 2, 3, 1, 10, [1]), (1, 2, 3, 2, 100, [1])]
    ted = graph({1: True, 2: True, 3: True}, links, bw={(2, 2): 1e6, (3, 1): 1e6})
    pc = PathComputer(ted)
    assert pc.compute(PathRequest(rid(1), rid(3), bandwidth=1e5)).nodes == (rid(1), rid(2), rid(3))
    assert pc.compute(PathRequest(rid(1), rid(3), bandwidth=1e8)).nodes == (rid(1), rid(3))
    assert pc.compute(PathRequest(rid(1), rid(3), bandwidth=1e12)).reason is NoPathReason.NO_ROUTE


def test_graph_recompiled_only_on_ted_change(paper: PathComputer) -> None:
    g1 = paper.graph
    assert paper.graph is g1
    paper.ted.version += 1
    assert paper.graph is not g1


# Yen against networkx on random graphs ----------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(4, 12))
def test_yen_matches_networkx(seed: int, n: int) -> None:
    rng = random.Random(seed)
    links = []
    used: set[tuple[int, int]] = set()
    ifs = dict.fromkeys(range(1, n + 1), 0)
    for _ in range(n * 2):
        a, b = rng.sample(range(1, n + 1), 2)
        if (a, b) in used or (b, a) in used:
            continue
        used.add((a, b))
        ifs[a] += 1
        ifs[b] += 1
        links.append((a, ifs[a], b, ifs[b], rng.randint(1, 20), [1]))
    ted = graph(dict.fromkeys(range(1, n + 1), True), links)
    g = Graph.from_ted(ted)
    s, d = g.index[rid(1)], g.index[rid(n)]
    usable = [True] * len(g.links)
    first = dijkstra(g, s, d, usable)
    G = nx.Graph()
    for a, _, b, _, w, _ in links:
        G.add_edge(a, b, weight=w)
    if first is None:
        assert not (G.has_node(1) and G.has_node(n) and nx.has_path(G, 1, n))
        return
    ours = [c for c, _ in yen(g, s, d, usable, 5, first)]
    theirs = [
        nx.path_weight(G, p, "weight")
        for _, p in zip(range(5), nx.shortest_simple_paths(G, 1, n, "weight"), strict=False)
    ]
    assert ours == theirs


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 30), st.floats(0.0, 0.3))
def test_bidirectional_matches_dijkstra(seed: int, n: int, holes: float) -> None:
    """Same cost as one-way Dijkstra (and a valid path) on random graphs, some links
    unusable."""
    from pce.compute import bidirectional

    rng = random.Random(seed)
    links = []
    ifs = dict.fromkeys(range(1, n + 1), 0)
    for _ in range(n * 2):
        a, b = rng.sample(range(1, n + 1), 2)
        ifs[a] += 1
        ifs[b] += 1
        links.append((a, ifs[a], b, ifs[b], rng.randint(1, 9), [1]))
    g = Graph.from_ted(graph(dict.fromkeys(range(1, n + 1), True), links))
    usable = [rng.random() >= holes for _ in g.links]
    for _ in range(5):
        a, b = rng.sample(sorted(g.index.values()), 2)
        one = dijkstra(g, a, b, usable)
        two = bidirectional(g, a, b, usable)
        assert (one is None) == (two is None)
        if one is not None and two is not None:
            assert one[0] == two[0]
            path = two[1]
            assert g.link_from[path[0]] == a and g.link_to[path[-1]] == b
            assert all(g.link_to[x] == g.link_from[y] for x, y in itertools.pairwise(path))
            assert all(usable[j] for j in path) and sum(g.metric[j] for j in path) == two[0]
