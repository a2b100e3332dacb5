"""The QKD network in a topology (gmpls/topology.py): sites, ``qkd_links``, the legacy form
turned into one link, and every problem named by file, path and reason."""

from __future__ import annotations

import copy
import ipaddress
from pathlib import Path
from typing import Any

import pytest

from gmpls.qkd import ratemodel
from gmpls.topology import QkdLink, TopologyError, load, parse
from tests.compose.test_topology import _GONE, edit

ROOT = Path(__file__).resolve().parents[2]
IP = ipaddress.IPv4Address


def _three_sites() -> dict[str, Any]:
    """km1 - km2 - km3 in a line; km2 serves n2 and n5; n1 and n3 are QE capable."""
    hosts: dict[str, Any] = {
        "pce": {"kind": "pce", "router_id": "10.1.1.200", "interfaces": {"ctrl": "10.1.1.200"}},
    }
    for i in (1, 2, 3, 5):
        hosts[f"n{i}"] = {
            "kind": "node",
            "router_id": f"10.1.1.{i}",
            "interfaces": {
                "ctrl": f"10.1.1.{i}",
                f"a{min(i, 3) if i != 5 else 2}": f"10.2.{i}.1" if i != 5 else "10.2.2.5",
            },
        }
    hosts["n1"]["qe"] = {"capable": True, "proxy": "km1"}
    hosts["n3"]["qe"] = {"capable": True, "proxy": "km3"}
    for i in (1, 2, 3):
        hosts[f"km{i}"] = {
            "kind": "qkd-proxy",
            "interfaces": {f"a{i}": f"10.2.{i}.11", f"k{i}": f"10.11.{i}.1", "kms": f"10.12.0.{i}"},
            "serves": f"n{i}",
        }
    hosts["km2"]["serves"] = ["n2", "n5"]
    for name, dom, addr in (
        ("q12a", "k1", "10.11.1.12"),
        ("q12b", "k2", "10.11.2.12"),
        ("q23a", "k2", "10.11.2.23"),
        ("q23b", "k3", "10.11.3.23"),
    ):
        hosts[name] = {"kind": "idq3p", "interfaces": {dom: addr}}
    domains = {"ctrl": {"subnet": "10.1.1.0/24"}, "kms": {"subnet": "10.12.0.0/24"}}
    for i in (1, 2, 3):
        domains[f"a{i}"] = {"subnet": f"10.2.{i}.0/24"}
        domains[f"k{i}"] = {"subnet": f"10.11.{i}.0/24"}
    return {
        "name": "three",
        "domains": domains,
        "hosts": hosts,
        "qkd": {"secret_key_rate_bps": 5000, "buffer_bits": 4096},
        "qkd_links": [
            {"a": "km1", "b": "km2", "a_idq": "q12a", "b_idq": "q12b", "fibre_km": 12},
            {
                "a": "km2",
                "b": "km3",
                "a_idq": "q23a",
                "b_idq": "q23b",
                "rate_bps": 2000,
                "buffer_bits": 1048576,
            },
        ],
    }


@pytest.fixture
def doc() -> dict[str, Any]:
    return _three_sites()


def problems(d: Any) -> list[str]:
    with pytest.raises(TopologyError) as e:
        parse(d, "t.yaml")
    return e.value.problems


def test_links_sites_and_the_model_api(doc: dict[str, Any]) -> None:
    t = parse(doc, "t.yaml")
    l12 = QkdLink("km1-km2", "km1", "km2", "q12a", "q12b", ratemodel.rate_for(12.0), 4096, 12.0)
    l23 = QkdLink("km2-km3", "km2", "km3", "q23a", "q23b", 2000.0, 1048576)
    assert t.qkd_links == (l12, l23)
    assert t.qkd_links_of("km2") == (l12, l23) and t.qkd_links_of("km3") == (l23,)
    assert t.qkd_links_of("n1") == ()
    assert t.served_by("km2") == ("n2", "n5") and t.hosts["km2"].serves == "n2"
    assert t.served_by("km1") == ("n1",) and t.served_by("n1") == ()
    assert [t.site_of(n) for n in ("n1", "n2", "n5", "n3", "pce")] == [
        "km1",
        "km2",
        "km2",
        "km3",
        None,
    ]
    assert t.site_id("km2") == IP("10.1.1.2") and t.site_by_id(IP("10.1.1.3")) == "km3"
    assert t.site_by_id(IP("10.1.1.5")) is None  # n5 is in km2's site, not a site node
    with pytest.raises(KeyError):
        t.site_id("n1")
    assert t.qkd_link_of_idq("q23b") == l23 and t.qkd_link_of_idq("km1") is None
    assert t.qkd_link_between("km3", "km2") == l23 and t.qkd_link_between("km1", "km3") is None
    assert (l12.far("km1"), l12.far("km2"), l12.idq_of("km2"), l12.pair_of("q12b")) == (
        "km2",
        "km1",
        "q12b",
        "q12a",
    )


def test_a_link_without_a_rate_takes_the_qkd_defaults(doc: dict[str, Any]) -> None:
    del doc["qkd_links"][0]["fibre_km"]
    link = parse(doc, "t.yaml").qkd_links[0]
    assert (link.rate_bps, link.buffer_bits, link.fibre_km) == (5000.0, 4096, None)


def test_the_modelled_rate_falls_with_the_fibre(doc: dict[str, Any]) -> None:
    rates = []
    for km, db in ((5, 0.2), (40, 0.2), (40, 0.25)):
        doc["qkd_links"][0].update(fibre_km=km, db_per_km=db, extra_loss_db=1)
        rates.append(parse(doc, "t.yaml").qkd_links[0].rate_bps)
    assert rates[0] > rates[1] > rates[2] > 0
    assert rates[1] == ratemodel.rate_for(40.0, 0.2, 1.0)


def test_the_paper_topology_has_one_legacy_link() -> None:
    t = load(ROOT / "topologies" / "paper.yaml")
    assert t.qkd_links == (
        QkdLink("etsiA-etsiB", "etsiA", "etsiB", "idqA", "idqB", 13_700_000.0, 1 << 26),
    )
    assert t.served_by("etsiA") == ("tn1",) and t.site_of("tn5") == "etsiB"
    assert t.site_id("etsiB") == IP("10.1.1.5")
    assert t.qkd_link_of_idq("idqA") is t.qkd_links[0]


def test_serves_as_a_name_or_a_list_loads_the_same(doc: dict[str, Any]) -> None:
    doc["hosts"]["km1"]["serves"] = ["n1"]
    assert parse(doc, "t.yaml").served_by("km1") == ("n1",)


L0, L1 = "qkd_links[0]", "qkd_links[1]"
NO_LINK_KM1 = "hosts.km1: a key manager needs a QKD link: name it in qkd_links"
NO_LINK_Q12B = "hosts.q12b: an emulator needs a QKD link: name it in qkd_links"

# One edit of the three-site topology, and every line it must give (nothing more).
EDITS: list[tuple[str, Any, list[str]]] = [
    (f"{L0}.a", "km9", [f"{L0}.a: no host 'km9' is declared", NO_LINK_KM1]),
    (f"{L0}.a", "n1", [f"{L0}.a: n1 is a node, not a qkd-proxy", NO_LINK_KM1]),
    (f"{L0}.b_idq", "q99", [f"{L0}.b_idq: no host 'q99' is declared", NO_LINK_Q12B]),
    (f"{L0}.b_idq", "km2", [f"{L0}.b_idq: km2 is a qkd-proxy, not a idq3p", NO_LINK_Q12B]),
    (
        f"{L0}.a_idq",
        _GONE,
        [
            f"{L0}.a_idq: is required",
            "hosts.q12a: an emulator needs a QKD link: name it in qkd_links",
        ],
    ),
    (
        f"{L0}.b",
        "km1",
        [
            f"{L0}: a QKD link joins two different key managers, not km1 to itself",
            f"{L0}.b_idq: q12b shares no domain with km1",
        ],
    ),
    (
        f"{L1}.a_idq",
        "q12b",
        [
            f"{L1}.a_idq: q12b is already {L0}.b_idq",
            "hosts.q23a: an emulator needs a QKD link: name it in qkd_links",
        ],
    ),
    (
        f"{L0}.b_idq",
        "q12a",
        [
            f"{L0}.b_idq: q12a is already {L0}.a_idq",
            f"{L0}.b_idq: q12a shares no domain with km2",
            "hosts.q12b: an emulator needs a QKD link: name it in qkd_links",
        ],
    ),
    (
        f"{L0}.a_idq",
        "q23b",
        [
            f"{L0}.a_idq: q23b shares no domain with km1",
            f"{L1}.b_idq: q23b is already {L0}.a_idq",
            "hosts.q12a: an emulator needs a QKD link: name it in qkd_links",
        ],
    ),
    ("hosts.km3.interfaces.kms", _GONE, [f"{L1}: km2 and km3 share no domain (their KM channel)"]),
    (f"{L1}.rate_bps", 0, [f"{L1}.rate_bps: 0 is not a positive number"]),
    (f"{L1}.rate_bps", -5, [f"{L1}.rate_bps: -5 is not a positive number"]),
    (
        f"{L1}.rate_bps",
        2**32,
        [
            f"{L1}.rate_bps: 4294967296 b/s is above 4294967295 (the u32 of the OSPF-TE QKD link TLV)"
        ],
    ),
    (f"{L1}.buffer_bits", 0, [f"{L1}.buffer_bits: 0 is out of range 8..1099511627776"]),
    (f"{L1}.fibre_km", 20, [f"{L1}: give rate_bps (fixed) or fibre_km (modelled), not both"]),
    (f"{L1}.db_per_km", 0.3, [f"{L1}.db_per_km: applies to fibre_km, which is not given"]),
    (f"{L0}.fibre_km", -1, [f"{L0}.fibre_km: -1 is not a number >= 0"]),
    (
        f"{L0}.fibre_km",
        300,
        [
            f"{L0}.fibre_km: 300 km at 0.2 dB/km (+0 dB) yields no secret key in the decoy-BB84"
            " model, which reaches 216.1 km (docs/qkd-rate-model.md)"
        ],
    ),
    (
        f"{L0}.colour",
        "blue",
        [
            f"{L0}.colour: unknown key (allowed: a, b, a_idq, b_idq, rate_bps, fibre_km, db_per_km, extra_loss_db, buffer_bits)"
        ],
    ),
    (
        "hosts.km3.serves",
        "n2",
        [
            "hosts.km3.serves: n2 is already served by km2 (a node belongs to one site)",
            "hosts.km3.serves: n2 shares no domain with km3",
            "hosts.n3.qe.proxy: km3 does not serve n3 (its serves: n2)",
        ],
    ),
    ("hosts.km2.serves", ["n2", "n1"], ["hosts.km2.serves: n1's qe.proxy is km1, not km2"]),
    ("hosts.km2.serves", ["n2", "n2"], ["hosts.km2.serves: names a node twice"]),
    ("hosts.km2.serves", [], ["hosts.km2.serves: names no node"]),
    ("hosts.km2.serves", ["n2", "pce"], ["hosts.km2.serves: pce is a pce, not a node"]),
    (
        "hosts.n1.qe.proxy",
        "km2",
        [
            "hosts.km1.serves: n1's qe.proxy is km2, not km1",
            "hosts.n1.qe.proxy: km2 does not serve n1 (its serves: n2, n5)",
            "hosts.n1.qe.proxy: km2 shares no domain with n1",
        ],
    ),
    (
        "hosts.km1.idq",
        "q12a",
        [
            f"{L0}.a: km1 gives idq/peer (the legacy form of one QKD link); a key manager is in qkd_links or gives idq and peer, not both",
            "hosts.km1.peer: is required",
        ],
    ),
    (
        "hosts.q12a.pair",
        "q12b",
        [
            f"{L0}.a_idq: q12a gives pair (the legacy form); leave it out",
            "hosts.q12a.pair: q12b's pair is None, not q12a",
        ],
    ),
]


@pytest.mark.parametrize(("path", "value", "expected"), EDITS, ids=[e[0] for e in EDITS])
def test_each_qkd_problem_is_named_exactly(
    doc: dict[str, Any], path: str, value: Any, expected: list[str]
) -> None:
    assert sorted(problems(edit(doc, path, value))) == sorted(f"t.yaml: {p}" for p in expected)


def test_a_duplicate_link(doc: dict[str, Any]) -> None:
    doc["hosts"]["q12c"] = {"kind": "idq3p", "interfaces": {"k1": "10.11.1.13"}}
    doc["hosts"]["q12d"] = {"kind": "idq3p", "interfaces": {"k2": "10.11.2.13"}}
    doc["qkd_links"].append({"a": "km2", "b": "km1", "a_idq": "q12d", "b_idq": "q12c"})
    assert problems(doc) == [
        "t.yaml: qkd_links[2]: km1-km2 is already qkd_links[0]"
        " (one QKD link per pair of key managers)"
    ]


def test_a_key_manager_or_emulator_in_no_link(doc: dict[str, Any]) -> None:
    doc["hosts"]["km4"] = copy.deepcopy(doc["hosts"]["km3"])
    doc["hosts"]["km4"]["interfaces"] = {"kms": "10.12.0.4", "ctrl": "10.1.1.44"}
    doc["hosts"]["n4"] = {
        "kind": "node",
        "router_id": "10.1.1.4",
        "interfaces": {"ctrl": "10.1.1.4"},
    }
    doc["hosts"]["km4"]["serves"] = "n4"
    doc["hosts"]["q99"] = {"kind": "idq3p", "interfaces": {"k3": "10.11.3.99"}}
    assert sorted(problems(doc)) == [
        "t.yaml: hosts.km4: a key manager needs a QKD link: name it in qkd_links",
        "t.yaml: hosts.q99: an emulator needs a QKD link: name it in qkd_links",
    ]


def test_legacy_and_new_links_in_one_file(doc: dict[str, Any]) -> None:
    """A legacy proxy pair next to qkd_links: both load, the legacy link first; an emulator
    of the legacy pair cannot also be in qkd_links."""
    doc["domains"]["sy"] = {"subnet": "10.13.0.0/24"}
    doc["hosts"]["n6"] = {
        "kind": "node",
        "router_id": "10.1.1.6",
        "interfaces": {"ctrl": "10.1.1.6", "sy": "10.13.0.6"},
    }
    doc["hosts"]["n7"] = {
        "kind": "node",
        "router_id": "10.1.1.7",
        "interfaces": {"ctrl": "10.1.1.7", "sy": "10.13.0.7"},
    }
    for x, y, n in (("P", "Q", "n6"), ("Q", "P", "n7")):
        doc["hosts"][f"km{x}"] = {
            "kind": "qkd-proxy",
            "interfaces": {"sy": f"10.13.0.{ord(x)}"},
            "serves": n,
            "idq": f"q{x}",
            "peer": f"km{y}",
        }
        doc["hosts"][f"q{x}"] = {
            "kind": "idq3p",
            "interfaces": {"sy": f"10.13.0.{ord(x) + 100}"},
            "pair": f"q{y}",
        }
    t = parse(doc, "t.yaml")
    assert [x.name for x in t.qkd_links] == ["kmP-kmQ", "km1-km2", "km2-km3"]
    assert t.qkd_links[0].rate_bps == 5000.0 and t.qkd_links[0].buffer_bits == 4096
    doc["qkd_links"][1]["a_idq"] = "qP"
    assert "t.yaml: qkd_links[1].a_idq: qP gives pair (the legacy form); leave it out" in problems(
        doc
    )


def test_a_legacy_pair_whose_emulators_are_not_paired(tmp_path: Path) -> None:
    import yaml

    d = yaml.safe_load((ROOT / "topologies" / "paper.yaml").read_text())
    d["domains"]["kc"] = {"subnet": "10.11.4.0/24"}
    d["hosts"]["idqC"] = {"kind": "idq3p", "interfaces": {"kc": "10.11.4.2"}, "pair": "idqD"}
    d["hosts"]["idqD"] = {"kind": "idq3p", "interfaces": {"kc": "10.11.4.3"}, "pair": "idqC"}
    d["hosts"]["etsiB"]["interfaces"]["kc"] = "10.11.4.1"
    d["hosts"]["etsiB"]["idq"] = "idqC"
    assert sorted(problems(d)) == [
        "t.yaml: hosts.etsiA.idq: idqA's pair is idqB, not idqC (etsiB's idq)",
    ]


def test_each_emulator_runs_at_its_links_rate_and_buffer(doc: dict[str, Any]) -> None:
    from idq3p_emulator.daemon import config_from_topology

    t = parse(doc, "t.yaml")
    got = {
        q: (c.pair, c.own_stream, c.rate_bps, c.buffer_bits)
        for q in ("q12a", "q12b", "q23a", "q23b")
        for c in [config_from_topology(t, q, seed=b"s" * 16)]
    }
    r12 = ratemodel.rate_for(12.0)
    assert got == {
        "q12a": ("q12b", 0, r12, 4096),
        "q12b": ("q12a", 1, r12, 4096),
        "q23a": ("q23b", 0, 2000.0, 1048576),
        "q23b": ("q23a", 1, 2000.0, 1048576),
    }
    assert config_from_topology(t, "q23a", rate_bps=7, buffer_bits=64).rate_bps == 7.0
    with pytest.raises(ValueError, match="not an idq3p host of a QKD link"):
        config_from_topology(t, "km1")
    paper = load(ROOT / "topologies" / "paper.yaml")
    a = config_from_topology(paper, "idqA", seed=b"s" * 16)
    assert (a.pair, a.rate_bps, a.buffer_bits) == ("idqB", 13_700_000.0, 1 << 26)


def test_one_seed_per_emulator_pair_and_one_sync_key_per_link(
    doc: dict[str, Any], tmp_path: Path
) -> None:
    from compose import keyfiles

    t = parse(doc, "t.yaml")
    assert keyfiles.daemon_args(t, "q23b", "S") == ["--seed-file", "S/q23a-q23b.seed"]
    assert keyfiles.daemon_args(t, "km1", "S") == ["--sync-key-file", "S/km1-km2.sync"]
    assert keyfiles.daemon_args(t, "km2", "S") == [
        "--sync-key-file",
        "S/km1-km2.sync",
        "--sync-key-file",
        "S/km2-km3.sync",
    ]
    assert keyfiles.daemon_args(t, "n2", "S") == []
    made = keyfiles.write(t, tmp_path / "s")
    assert [p.name for p in made] == [
        "km1-km2.sync",
        "km2-km3.sync",
        "q12a-q12b.seed",
        "q23a-q23b.seed",
    ]
    assert len({p.read_bytes() for p in made}) == 4


def test_docker_mounts_every_secret_file_of_a_key_manager(doc: dict[str, Any]) -> None:
    from compose import render

    t = parse(doc, "t.yaml")
    svc = render.compose_doc(t, "./three.yaml")["services"]
    mounts = [v for v in svc["km2"]["volumes"] if "secrets" in v]
    assert mounts == [
        f"./secrets/{f}:{render.CONTAINER_SECRETS_DIR}/{f}:ro"
        for f in ("km1-km2.sync", "km2-km3.sync", "pki/ca.pem", "pki/km2.pem", "pki/km2.key")
    ]
    assert list(svc["km2"]["command"])[-6:] == [
        "--sync-key-file",
        f"{render.CONTAINER_SECRETS_DIR}/km1-km2.sync",
        "--sync-key-file",
        f"{render.CONTAINER_SECRETS_DIR}/km2-km3.sync",
        "--pki-dir",
        f"{render.CONTAINER_SECRETS_DIR}/pki",
    ]
    # an SAE gets its ETSI 014 client certificate, nothing else
    assert [v for v in svc["n2"]["volumes"] if "secrets" in v] == [
        f"./secrets/pki/{f}:{render.CONTAINER_SECRETS_DIR}/pki/{f}:ro"
        for f in ("ca.pem", "n2.pem", "n2.key")
    ]


def test_mesh6_is_six_sites_in_a_ring_with_a_chord() -> None:
    t = load(ROOT / "topologies" / "mesh6.yaml")
    assert t.name == "mesh6" and t.prefix == "m6"
    nodes = [f"n{i}" for i in range(1, 7)]
    assert [t.site_of(n) for n in nodes] == [f"km{i}" for i in range(1, 7)]
    assert [str(t.site_id(f"km{i}")) for i in range(1, 7)] == [f"10.1.1.{i}" for i in range(1, 7)]
    pairs = {frozenset((x.a, x.b)) for x in t.qkd_links}
    ring = {frozenset((f"km{i}", f"km{i % 6 + 1}")) for i in range(1, 7)}
    assert pairs == ring | {frozenset(("km2", "km5"))}
    lengths = [x.fibre_km for x in t.qkd_links]
    assert len(set(lengths)) == 7 and all(x is not None and 5 <= x <= 40 for x in lengths)
    assert len({x.rate_bps for x in t.qkd_links}) == 7
    assert {h.name for h in t.hosts.values() if h.qe.capable} == {"n1", "n4"}
    assert t.qkd_link_between("km1", "km4") is None
    assert all("kms" in t.host(f"km{i}").interfaces for i in range(1, 7))
    assert str(t.control_address("pce")) == "10.1.1.200" and t.host("pce").ospf_priority == 0
    assert str(t.control_address("client")) == "10.1.1.100"
    te = {frozenset((x.a, x.b)) for x in t.te_links}
    assert te == {frozenset((f"n{i}", f"n{i % 6 + 1}")) for i in range(1, 7)}
    assert all(x.lambdas == tuple(range(1, 9)) for x in t.te_links)


def test_mesh6_renders_for_docker() -> None:
    from compose import render

    t = load(ROOT / "topologies" / "mesh6.yaml")
    doc = render.compose_doc(t, "./mesh6.yaml")
    # the 30 hosts and the guard that writes the secrets and the firewall rules
    assert set(doc["services"]) == set(t.hosts) | {render.GUARD} and len(t.hosts) == 30
    assert len(doc["networks"]) == 14
    km2 = doc["services"]["km2"]
    syncs = [v.split(":")[0] for v in km2["volumes"] if v.endswith(".sync:ro")]
    assert syncs == [f"./secrets/{x}.sync" for x in ("km1-km2", "km2-km3", "km2-km5")]
    assert list(km2["command"]).count("--sync-key-file") == 3
    assert km2["networks"] == {
        "a2": {"ipv4_address": "10.2.2.11"},
        "k2": {"ipv4_address": "10.11.2.1"},
        "kms": {"ipv4_address": "10.12.0.2"},
    }
    seeds = [v for v in doc["services"]["q25b"]["volumes"] if v.endswith(".seed:ro")]
    assert seeds == [f"./secrets/q25a-q25b.seed:{render.CONTAINER_SECRETS_DIR}/q25a-q25b.seed:ro"]


def test_the_models_reach_is_where_the_rate_ends() -> None:
    for db, extra in ((0.2, 0.0), (0.25, 3.0)):
        reach = ratemodel.max_fibre_km(db, extra)
        assert ratemodel.rate_for(reach, db, extra) > 0
        assert ratemodel.rate_for(reach + 0.1, db, extra) == 0
    assert ratemodel.max_fibre_km(0.2) == 216.1
    assert ratemodel.max_fibre_km(0.2, extra_loss_db=100) == 0.0
