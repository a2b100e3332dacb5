"""``qkdnet topo gen``: generated topologies load, have the promised shape, are reproducible."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

from compose import topogen
from gmpls.topology import Topology, load, parse

ROOT = Path(__file__).resolve().parents[2]


def gen(tmp_path: Path, shape: str, n: int, **kw: object) -> Topology:
    out = tmp_path / f"{shape}{n}.yaml"
    out.write_text(topogen.dump(topogen.generate(shape, n, **kw)))  # type: ignore[arg-type]
    return load(out)


def graph(t: Topology) -> nx.MultiGraph:
    g = nx.MultiGraph()
    g.add_nodes_from(h.name for h in t.of_kind("node"))
    g.add_edges_from((x.a, x.b) for x in t.te_links)
    return g


@pytest.mark.parametrize("n", [3, 12, 251])
def test_ring(tmp_path: Path, n: int) -> None:
    t = gen(tmp_path, "ring", n)
    g = graph(t)
    assert len(t.te_links) == n and all(d == 2 for _, d in g.degree())
    assert nx.is_connected(g)
    assert all(x.metric == 10 and x.lambdas == tuple(range(1, 9)) for x in t.te_links)


def test_grid(tmp_path: Path) -> None:
    t = gen(tmp_path, "grid", 12)  # 4 wide: rows of 4, 4, 4
    g = graph(t)
    assert nx.is_connected(g)
    assert len(t.te_links) == 3 * 3 + 2 * 4  # 3 links per row, 4 per column pair
    assert max(d for _, d in g.degree()) == 4


@pytest.mark.parametrize("n", [2, 30, 300])
def test_random_is_connected_and_reproducible(tmp_path: Path, n: int) -> None:
    a = topogen.generate("random", n, seed=7)
    b = topogen.generate("random", n, seed=7)
    c = topogen.generate("random", n, seed=8)
    assert a == b and (n == 2 or a != c)
    t = gen(tmp_path, "random", n, seed=7)
    assert nx.is_connected(graph(t))
    assert len(t.te_links) == min(round(1.5 * n), n * (n - 1) // 2)


def test_control_subnet_grows_past_250_nodes(tmp_path: Path) -> None:
    small = gen(tmp_path, "ring", 250)
    big = gen(tmp_path, "ring", 251)
    assert str(small.domains["ctrl"].subnet) == "10.1.1.0/24"
    assert str(big.domains["ctrl"].subnet) == "10.1.0.0/16"
    assert str(big.control_address("tn251")) == "10.1.0.251"
    assert str(big.control_address("pce")) == "10.1.255.253"


def test_interface_ids_are_unique_per_node(tmp_path: Path) -> None:
    t = gen(tmp_path, "random", 40, seed=3)
    for node in t.of_kind("node"):
        ids = [x.local_if for x in t.te_links_of(node.name)]
        assert ids == list(range(1, len(ids) + 1))


def test_qe_option_adds_the_qkd_side(tmp_path: Path) -> None:
    t = gen(tmp_path, "ring", 10, qe=True, lambdas=4)
    assert {h.name for h in t.hosts.values() if h.qe.capable} == {"tn1", "tn6"}
    assert t.hosts["etsiA"].serves == "tn1" and t.hosts["etsiB"].serves == "tn6"
    assert set(t.domains) == {"ctrl", "qa", "qb", "ka", "kb", "sync", "etn1", "etn6"}
    # a client host behind each QE end, on its access domain
    assert [
        (h.name, str(h.interfaces[f"e{n}"])) for n in ("tn1", "tn6") for h in t.access_hosts(n)
    ] == [
        ("htn1", "10.3.0.1"),
        ("htn6", "10.3.0.2"),
    ]
    assert all(len(x.lambdas) == 4 for x in t.te_links)


def test_p2p_links_are_domains_of_their_own(tmp_path: Path) -> None:
    """--p2p --kind frr (bench/ospf_converge.py): every link is also a /30 with its two
    ends on it, and the routers are FRR hosts."""
    t = gen(tmp_path, "grid", 9, kind="frr", p2p=True)
    assert {h.kind for h in t.hosts.values() if h.name.startswith("tn")} == {"frr"}
    p2p = {d: x for d, x in t.domains.items() if d.startswith("p")}
    assert len(p2p) == len(t.te_links) == 12
    for k, link in enumerate(t.te_links, 1):
        net = t.domains[f"p{k}"].subnet
        assert net.prefixlen == 30 and net.subnet_of(topogen.P2P_SPACE)
        members = {
            h.name: h.interfaces[f"p{k}"] for h in t.hosts.values() if f"p{k}" in h.interfaces
        }
        assert members == {link.a: net.network_address + 1, link.b: net.network_address + 2}
    assert gen(tmp_path, "ring", 5).domains.keys() == {"ctrl"}  # not without --p2p


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="--nodes"):
        topogen.generate("ring", 1)
    with pytest.raises(ValueError, match="unknown shape"):
        topogen.generate("star", 5)
    with pytest.raises(ValueError, match="--kind"):
        topogen.generate("ring", 5, kind="quagga")
    with pytest.raises(ValueError, match="--qe and --qkd need"):
        topogen.generate("ring", 5, kind="frr", qe=True)


def test_cli_topo_gen(tmp_path: Path) -> None:
    out = tmp_path / "g.yaml"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "compose.cli",
            "topo",
            "gen",
            "grid",
            "--nodes",
            "9",
            "--out",
            str(out),
            "--prefix",
            "ct",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    assert "grid of 9 nodes, 12 TE links" in r.stdout
    t = load(out)
    assert t.prefix == "ct" and t.name == "grid9"


def test_qkd_adds_a_site_per_node_and_a_link_per_te_link(tmp_path: Path) -> None:
    plain = gen(tmp_path, "random", 30, seed=7)
    t = gen(tmp_path, "random", 30, seed=7, qkd=True, qe=True)
    assert t.te_links == plain.te_links  # the TE graph is the one without --qkd
    assert [t.site_of(f"tn{i}") for i in range(1, 31)] == [f"km{i}" for i in range(1, 31)]
    assert {frozenset((x.a[2:], x.b[2:])) for x in t.qkd_links} == {
        frozenset((x.a[2:], x.b[2:])) for x in t.te_links
    }
    lengths = [x.fibre_km for x in t.qkd_links]
    assert all(x is not None and 5 <= x <= 40 for x in lengths) and len(set(lengths)) > 20
    a, b = topogen.qe_ends(topogen._edges("random", 30, random.Random(7)), 30)
    assert {h.name for h in t.hosts.values() if h.qe.capable} == {f"tn{a}", f"tn{b}"}
    assert t.host(f"tn{b}").qe.proxy == f"km{b}"
    again = gen(tmp_path, "random", 30, seed=7, qkd=True, qe=True)
    other = gen(tmp_path, "random", 30, seed=8, qkd=True, qe=True)
    assert again.qkd_links == t.qkd_links
    assert [x.fibre_km for x in other.qkd_links] != lengths


def test_qkd_sites_are_joined_along_te_paths_through_no_other_site(tmp_path: Path) -> None:
    t = gen(tmp_path, "ring", 8, qkd=True, qkd_sites=(1, 3, 6))
    assert t.served_by("km3") == ("tn3",) and t.site_of("tn2") is None
    assert sorted(x.name for x in t.qkd_links) == ["km1-km3", "km1-km6", "km3-km6"]
    g = graph(t)
    for x in t.qkd_links:  # two or three TE hops of 5..40 km each
        hops = nx.shortest_path_length(g, f"tn{x.a[2:]}", f"tn{x.b[2:]}")
        assert x.fibre_km is not None and 5 * hops <= x.fibre_km <= 40 * hops


def test_qkd_bad_arguments() -> None:
    with pytest.raises(ValueError, match="--qkd-sites"):
        topogen.generate("ring", 5, qkd=True, qkd_sites=(3,))
    with pytest.raises(ValueError, match="--qkd-sites"):
        topogen.generate("ring", 5, qkd=True, qkd_sites=(1, 9))
    with pytest.raises(ValueError, match="--qe and --qkd need"):
        topogen.generate("ring", 5, kind="bird", qkd=True)


def test_cli_topo_gen_qkd(tmp_path: Path) -> None:
    out = tmp_path / "q.yaml"
    args = ["topo", "gen", "ring", "--nodes", "6", "--out", str(out), "--qkd"]
    r = subprocess.run(
        [sys.executable, "-m", "compose.cli", *args, "--qkd-sites", "1,2,4"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    assert (
        "ring of 6 nodes, 6 TE links, control subnet 10.1.1.0/24, 3 sites, 3 QKD links" in r.stdout
    )
    assert load(out).served_by("km4") == ("tn4",)


@pytest.mark.parametrize(
    ("shape", "nodes", "ends", "hops"),
    [
        ("ring", 30, ("tn1", "tn16"), 15),
        ("ring", 7, ("tn1", "tn4"), 3),
        ("grid", 16, ("tn1", "tn16"), 6),
    ],
)
def test_qe_ends_are_the_diameter(
    tmp_path: Path, shape: str, nodes: int, ends: tuple[str, str], hops: int
) -> None:
    """``--qe`` puts the QE ends as far apart as the network allows (issue 18: a ring of 30
    had them next to each other), and the PCE is never the DR (OSPF priority 0)."""
    t = gen(tmp_path, shape, nodes, qe=True)
    assert tuple(sorted((h.name for h in t.hosts.values() if h.qe.capable), key=len)) == ends
    g = graph(t)
    assert len(nx.shortest_path(g, *ends)) - 1 == hops
    assert t.host("pce").ospf_priority == 0


def test_qe_ends_on_a_random_graph_are_a_farthest_pair(tmp_path: Path) -> None:
    t = gen(tmp_path, "random", 40, seed=3, qe=True)
    g = nx.Graph()
    for x in t.te_links:
        g.add_edge(x.a, x.b, weight=x.metric)
    dist = dict(nx.all_pairs_dijkstra_path_length(g))
    diameter = max(d for row in dist.values() for d in row.values())
    a, b = (h.name for h in t.hosts.values() if h.qe.capable)
    assert dist[a][b] == diameter
    big = topogen.qe_ends(topogen._edges("ring", 1000, random.Random(1)), 1000)
    assert big == (1, 501)  # above EXACT_DIAMETER: the double sweep, exact on a ring


def test_ospf_p2p_runs_ospf_on_the_links_and_the_pce_on_a_link_to_tn1(tmp_path: Path) -> None:
    t = gen(tmp_path, "grid", 9, ospf="p2p", qe=True)
    assert t.ospf_network("ctrl") == "passive"
    links = [d for d in t.domains if d.startswith("p") and d != "pce1"]
    assert len(links) == len(t.te_links) == 12
    assert all(t.ospf_network(d) == "point-to-point" for d in [*links, "pce1"])
    assert t.ospf_domains("pce") == ["pce1"] and "pce1" in t.ospf_domains("tn1")
    g = nx.Graph()
    for d in [*links, "pce1"]:
        ends = [h.name for h in t.hosts.values() if d in h.interfaces]
        g.add_edge(*ends)
    assert nx.is_connected(g) and set(g) == {f"tn{i}" for i in range(1, 10)} | {"pce"}
    # every router keeps its control address: PCEP, RSVP and the CLIs stay on the LAN
    assert all("ctrl" in t.host(h).interfaces for h in g)


def test_timers_by_size_unless_asked() -> None:
    """Small labs get 1 s Hellos; from SCALE_FROM nodes on OSPF's own defaults, a 30 s
    retransmit interval and 5 s RSVP Hellos (a 300-node grid converged with those, not
    with the fast ones: docs/scale.md)."""

    def timers(n: int, which: str = "auto") -> tuple[int, int, int, int]:
        doc = topogen.generate("ring", n, timers=which)
        o, r = doc["ospf"], doc["rsvp"]
        return o["hello_interval"], o["dead_interval"], o["retransmit_interval"], r["hello_ms"]

    assert timers(topogen.SCALE_FROM - 1) == (1, 4, 2, 1000)
    assert timers(topogen.SCALE_FROM) == (10, 40, 30, 5000)
    assert timers(300, "fast") == (1, 4, 2, 1000)
    assert timers(10, "scale") == (10, 40, 30, 5000)
    spf = topogen.generate("ring", topogen.SCALE_FROM)["ospf"]
    assert (spf["spf_delay_ms"], spf["spf_hold_ms"], spf["spf_max_hold_ms"]) == (500, 2000, 30000)
    assert (
        parse(topogen.generate("ring", topogen.SCALE_FROM), "g.yaml").ospf.spf_max_hold_ms == 30000
    )
    with pytest.raises(ValueError, match="--timers slow"):
        topogen.generate("ring", 10, timers="slow")
