"""The strict topology loader (gmpls/topology.py): every problem named by file, path, reason."""

from __future__ import annotations

import copy
import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gmpls.topology import DeterministicKeys, TopologyError, load, parse

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "topologies" / "paper.yaml"


@pytest.fixture
def doc() -> dict[str, Any]:
    return yaml.safe_load(PAPER.read_text())


def problems(d: Any) -> list[str]:
    with pytest.raises(TopologyError) as e:
        parse(d, "t.yaml")
    assert str(e.value) == "\n".join(e.value.problems)
    return e.value.problems


# --- the paper topology is docs/design.md#the-testbed ---------------------------------


def test_paper_topology_is_the_papers_testbed() -> None:
    t = load(PAPER)
    assert t.name == "paper" and t.prefix == "qk" and t.path == PAPER
    assert {d: str(x.subnet) for d, x in t.domains.items()} == {
        "ctrl": "10.1.1.0/24",
        "qa": "10.2.1.0/24",
        "qb": "10.2.2.0/24",
        "ka": "10.11.2.0/24",
        "kb": "10.11.3.0/24",
        "sync": "10.11.1.0/24",
        "ea": "10.3.0.0/24",
        "eb": "10.3.0.0/24",
    }
    assert len(t.hosts) == 13
    # the client hosts behind the QE ends, on their access domains (one shared subnet)
    assert t.access_domain("tn1") == t.domains["ea"] and t.domains["eb"].access == "tn5"
    assert [(h.name, str(h.interfaces["ea"])) for h in t.access_hosts("tn1")] == [
        ("ha", "10.3.0.1")
    ]
    assert [str(h.interfaces["eb"]) for h in t.access_hosts("tn5")] == ["10.3.0.2"]
    assert t.access_domain("tn3") is None and t.access_hosts("tn3") == []
    assert len(t.channels_of("tn1")) == 8 and len(t.channels_of("tn2")) == 24
    assert [str(t.control_address(f"tn{i}")) for i in range(1, 6)] == [
        f"10.1.1.{i}" for i in range(1, 6)
    ]
    assert str(t.control_address("pce")) == "10.1.1.200"
    assert str(t.control_address("client")) == "10.1.1.100"
    assert {h.name for h in t.hosts.values() if h.qe.capable} == {"tn1", "tn5"}
    assert t.hosts["etsiA"].serves == "tn1" and t.hosts["etsiB"].serves == "tn5"
    assert {str(a) for a in t.hosts["etsiA"].interfaces.values()} == {
        "10.2.1.11",
        "10.11.2.1",
        "10.11.1.11",
    }
    assert [(x.local_if, x.remote, x.remote_if) for x in t.te_links_of("tn2")] == [
        (1, "tn3", 2),
        (2, "tn1", 1),
        (3, "tn4", 1),
    ]
    assert all(len(x.lambdas) == 8 for x in t.te_links)
    assert {x.metric for x in t.te_links} == {10, 30}
    assert t.qkd.deterministic == DeterministicKeys()  # no key material shipped


def test_every_address_is_inside_its_domain_and_unique() -> None:
    t = load(PAPER)
    seen = set()
    for h in t.hosts.values():
        for d, a in h.interfaces.items():
            assert a in t.domains[d].subnet
            assert a not in seen
            seen.add(a)


# --- errors -----------------------------------------------------------------------------


def test_unknown_keys_at_every_level(doc: dict[str, Any]) -> None:
    doc["colour"] = "blue"
    doc["domains"]["ctrl"]["vlan"] = 7
    doc["hosts"]["tn2"]["asn"] = 65000
    doc["te_links"][0]["colour"] = "red"
    doc["ospf"]["hello"] = 3
    got = problems(doc)
    assert "t.yaml: colour: unknown key (allowed: " in got[0]
    assert any(p.startswith("t.yaml: domains.ctrl.vlan: unknown key") for p in got)
    assert any(p.startswith("t.yaml: hosts.tn2.asn: unknown key") for p in got)
    assert any(p.startswith("t.yaml: te_links[0].colour: unknown key") for p in got)
    assert any(p.startswith("t.yaml: ospf.hello: unknown key") for p in got)
    assert len(got) == 5


def test_duplicate_address(doc: dict[str, Any]) -> None:
    doc["hosts"]["tn3"]["interfaces"]["ctrl"] = "10.1.1.2"
    assert problems(doc) == [
        "t.yaml: hosts.tn3.interfaces.ctrl: 10.1.1.2 is already used by hosts.tn2.interfaces.ctrl"
    ]


def test_duplicate_router_id(doc: dict[str, Any]) -> None:
    doc["hosts"]["tn3"]["router_id"] = "10.1.1.2"
    assert problems(doc) == [
        "t.yaml: hosts.tn3.router_id: 10.1.1.2 is already the router ID of tn2"
    ]


def test_te_link_to_an_undeclared_node(doc: dict[str, Any]) -> None:
    doc["te_links"][2]["b"] = "tn9"
    assert problems(doc) == ["t.yaml: te_links[2].b: no host 'tn9' is declared"]


def test_te_link_to_a_host_that_is_not_a_node(doc: dict[str, Any]) -> None:
    doc["te_links"][0]["b"] = "pce"
    assert problems(doc) == ["t.yaml: te_links[0].b: pce is a pce, not a node or frr or bird"]


def test_te_link_interface_used_twice_and_loop(doc: dict[str, Any]) -> None:
    doc["te_links"].append({"a": "tn1", "a_if": 1, "b": "tn1", "b_if": 9})
    got = problems(doc)
    assert "t.yaml: te_links[5].a_if: tn1:1 is already used by te_links[0]" in got
    assert "t.yaml: te_links[5]: a TE link joins two different nodes, not tn1 to itself" in got


def test_address_outside_its_subnet(doc: dict[str, Any]) -> None:
    doc["hosts"]["tn1"]["interfaces"]["qa"] = "10.2.2.1"
    assert problems(doc) == [
        "t.yaml: hosts.tn1.interfaces.qa: 10.2.2.1 is outside the domain's subnet 10.2.1.0/24"
    ]


def test_network_and_broadcast_addresses(doc: dict[str, Any]) -> None:
    doc["hosts"]["tn2"]["interfaces"]["ctrl"] = "10.1.1.0"
    doc["hosts"]["tn3"]["interfaces"]["ctrl"] = "10.1.1.255"
    got = problems(doc)
    assert len(got) == 2 and all("network or broadcast address of 10.1.1.0/24" in p for p in got)


@pytest.mark.parametrize("bad", ["10.1.1", "10.1.1.256", "10.1.1.1/24", "fe80::1", 17, True])
def test_bad_ipv4(doc: dict[str, Any], bad: Any) -> None:
    doc["hosts"]["tn3"]["router_id"] = bad
    assert problems(doc) == [f"t.yaml: hosts.tn3.router_id: {bad!r} is not an IPv4 address"]


def test_bad_subnet(doc: dict[str, Any]) -> None:
    doc["domains"]["sync"]["subnet"] = "10.11.1.1/24"  # host bits set
    got = problems(doc)
    assert got[0].startswith("t.yaml: domains.sync.subnet: '10.11.1.1/24' is not an IPv4 subnet")


def test_overlapping_domains(doc: dict[str, Any]) -> None:
    doc["domains"]["sync"]["subnet"] = "10.2.0.0/16"
    doc["hosts"]["etsiA"]["interfaces"]["sync"] = "10.2.9.11"
    doc["hosts"]["etsiB"]["interfaces"]["sync"] = "10.2.9.15"
    got = problems(doc)
    assert got == [
        "t.yaml: domains.sync.subnet: 10.2.0.0/16 overlaps domain qa's 10.2.1.0/24",
        "t.yaml: domains.sync.subnet: 10.2.0.0/16 overlaps domain qb's 10.2.2.0/24",
    ]


def test_missing_references(doc: dict[str, Any]) -> None:
    doc["hosts"]["tn1"]["qe"]["proxy"] = "etsiC"
    doc["hosts"]["etsiA"]["idq"] = "idqZ"
    doc["hosts"]["idqB"]["pair"] = "idqA2"
    del doc["hosts"]["etsiB"]["peer"]
    got = problems(doc)
    assert "t.yaml: hosts.tn1.qe.proxy: no host 'etsiC' is declared" in got
    assert "t.yaml: hosts.etsiA.idq: no host 'idqZ' is declared" in got
    assert "t.yaml: hosts.idqB.pair: no host 'idqA2' is declared" in got
    assert "t.yaml: hosts.etsiB.peer: is required" in got
    assert "t.yaml: hosts.etsiA.peer: etsiB's peer is None, not etsiA" in got


def test_reference_to_the_wrong_kind(doc: dict[str, Any]) -> None:
    doc["hosts"]["etsiA"]["idq"] = "tn2"
    got = problems(doc)
    assert "t.yaml: hosts.etsiA.idq: tn2 is a node, not a idq3p" in got


def test_interface_on_an_undeclared_domain(doc: dict[str, Any]) -> None:
    doc["hosts"]["tn2"]["interfaces"]["data"] = "10.9.9.9"
    assert problems(doc) == ["t.yaml: hosts.tn2.interfaces.data: no domain 'data' is declared"]


def test_router_needs_a_control_address(doc: dict[str, Any]) -> None:
    doc["hosts"]["tn2"]["interfaces"] = {"qa": "10.2.1.2"}
    assert problems(doc) == [
        "t.yaml: hosts.tn2.interfaces: a node needs an address on the control domain ctrl"
    ]


def test_names_and_prefix(doc: dict[str, Any]) -> None:
    doc["prefix"] = "QK-1"
    doc["hosts"]["averyverylongname"] = copy.deepcopy(doc["hosts"]["client"])
    doc["domains"]["lo"] = {"subnet": "10.99.0.0/24"}
    got = problems(doc)
    assert got[0].startswith("t.yaml: prefix: 'QK-1' must be 1-4 lowercase letters or digits")
    assert any(
        p.startswith("t.yaml: hosts.averyverylongname: 'averyverylongname' is not a name")
        for p in got
    )
    assert (
        "t.yaml: domains.lo: 'lo' is the loopback interface inside every host; choose another name"
        in got
    )


def test_every_problem_is_reported_at_once(doc: dict[str, Any]) -> None:
    doc["hosts"]["tn3"]["router_id"] = "10.1.1"
    doc["hosts"]["tn4"]["kind"] = "switch"
    doc["te_links"][1]["metric"] = 0
    doc["ospf"]["dead_interval"] = 1
    got = problems(doc)
    assert "t.yaml: hosts.tn3.router_id: '10.1.1' is not an IPv4 address" in got
    assert any(p.startswith("t.yaml: hosts.tn4.kind: 'switch' is not a host kind") for p in got)
    assert "t.yaml: te_links[1].metric: 0 is out of range 1..16777215" in got
    assert "t.yaml: ospf.dead_interval: 1 must exceed hello_interval 1" in got


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="cannot read"):
        load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(TopologyError, match=r"^bad\.yaml: line \d+: "):
        load(bad)


def test_duplicate_keys_in_the_file_are_errors(tmp_path: Path) -> None:
    text = PAPER.read_text()
    i = text.index("  tn2:\n")
    dup = tmp_path / "dup.yaml"
    dup.write_text(
        text[:i] + "  tn2:\n    kind: client\n    interfaces: {ctrl: 10.1.1.77}\n" + text[i:]
    )
    with pytest.raises(TopologyError) as e:
        load(dup)
    line = text[:i].count("\n") + 4
    assert e.value.problems == [f"dup.yaml: line {line}: duplicate key 'tn2'"]


def test_rsvp_hello_zero_is_kept(doc: dict[str, Any]) -> None:
    doc["rsvp"]["hello_ms"] = 0
    assert parse(doc, "t.yaml").rsvp.hello_ms == 0


def test_empty_document() -> None:
    got = problems(None)
    assert "t.yaml: name: is required" in got
    assert "t.yaml: domains: at least one domain is required" in got


_GONE = object()  # as a value in an edit: delete the key


def edit(d: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Set (or, with _GONE, delete) the value at a dotted path; ``[i]`` picks a list item."""
    *parents, last = path.replace("[", ".[").split(".")
    node: Any = d
    for key in parents:
        node = node[int(key[1:-1])] if key.startswith("[") else node[key]
    k: Any = int(last[1:-1]) if last.startswith("[") else last
    if value is _GONE:
        del node[k]
    else:
        node[k] = value
    return d


# Each problem the loader can report that the tests above do not: one edit of the paper
# topology, and every line it must give (nothing more).
EDITS: list[tuple[str, Any, list[str]]] = [
    ("ospf", [1], ["ospf: must be a mapping, not list"]),
    (
        "hosts.client",
        "x",
        [
            "hosts.client: must be a mapping, not str",
            "hosts.client.kind: is required",
            "hosts.client.interfaces: a host needs at least one interface",
        ],
    ),
    ("name", "", ["name: '' is not a non-empty string"]),
    ("te_links[0].bandwidth_mbps", -5, ["te_links[0].bandwidth_mbps: -5 is not a positive number"]),
    ("hosts.tn1.qe.capable", "yes", ["hosts.tn1.qe.capable: 'yes' is not true or false"]),
    ("hosts.tn1.qe.key", 1, ["hosts.tn1.qe.key: unknown key (allowed: capable, proxy)"]),
    (
        "qkd.deterministic",
        {"sync_key": "zz"},
        ["qkd.deterministic.sync_key: 'zz' is not a hex string"],
    ),
    (
        "qkd.deterministic",
        {"sync_key": "00ff"},
        ["qkd.deterministic.sync_key: must be at least 16 bytes (32 hex digits)"],
    ),
    ("qkd.deterministic", {"seed": ""}, ["qkd.deterministic.seed: '' is not a non-empty string"]),
    (
        "qkd.key_seed",
        "paper-testbed-2017",
        [
            "qkd.key_seed: removed: keys come from fresh random files that `qkdnet up` makes; "
            "to pin a key seed for reproducible tests use qkd.deterministic.seed (insecure)"
        ],
    ),
    (
        "qkd.sync_secret",
        "00" * 32,
        [
            "qkd.sync_secret: removed: keys come from fresh random files that `qkdnet up` makes; "
            "to pin a sync key for reproducible tests use qkd.deterministic.sync_key (insecure)"
        ],
    ),
    ("rsvp.refresh_ms", "30s", ["rsvp.refresh_ms: '30s' is not an integer"]),
    (
        "te_links[0].lambdas",
        [1, 2**15],
        ["te_links[0].lambdas: must be a list of DWDM channel numbers n (16-bit signed)"],
    ),
    ("te_links[0].lambdas", [1, 1], ["te_links[0].lambdas: lists a channel twice"]),
    ("te_links", {"a": "tn1"}, ["te_links: must be a list"]),
    ("te_links[0].a_if", _GONE, ["te_links[0].a_if: is required"]),
    (
        "domains.sync.subnet",
        _GONE,
        [
            "domains.sync.subnet: is required",
            "hosts.etsiA.interfaces.sync: no domain 'sync' is declared",
            "hosts.etsiB.interfaces.sync: no domain 'sync' is declared",
            "hosts.etsiA.peer: etsiB shares no domain with etsiA",
            "hosts.etsiB.peer: etsiA shares no domain with etsiB",
        ],
    ),
    (
        "control_domain",
        "qa",
        [
            f"hosts.{h}.interfaces: a {k} needs an address on the control domain qa"
            for h, k in [
                ("tn2", "node"),
                ("tn3", "node"),
                ("tn4", "node"),
                ("tn5", "node"),
                ("pce", "pce"),
            ]
        ],
    ),
    (
        "control_domain",
        "mgmt",
        [
            "control_domain: 'mgmt' is not a declared domain",
            *(
                f"hosts.{h}.interfaces: a {k} needs an address on the control domain mgmt"
                for h, k in [
                    ("tn1", "node"),
                    ("tn2", "node"),
                    ("tn3", "node"),
                    ("tn4", "node"),
                    ("tn5", "node"),
                    ("pce", "pce"),
                ]
            ),
        ],
    ),
    (
        "hosts.client.interfaces",
        {},
        ["hosts.client.interfaces: a host needs at least one interface"],
    ),
    ("hosts.client.kind", _GONE, ["hosts.client.kind: is required"]),
    ("hosts.tn2.router_id", _GONE, ["hosts.tn2.router_id: is required"]),
    (
        "hosts.client.router_id",
        "10.1.1.99",
        ["hosts.client.router_id: a client host has no router ID"],
    ),
    (
        "hosts.pce.qe",
        {"capable": False},
        ["hosts.pce.qe: only a node can be QE capable, this is a pce"],
    ),
    (
        "hosts.idqA.peer",
        "etsiB",
        [
            "hosts.idqA.peer: only a qkd-proxy host has peer",
            "hosts.idqA.peer: etsiB's peer is etsiA, not idqA",
            "hosts.idqA.peer: etsiB shares no domain with idqA",
        ],
    ),
    ("hosts.etsiA.serves", None, ["hosts.etsiA.serves: is required"]),  # null is left out
    (
        "hosts.idqB.pair",
        _GONE,
        [
            "hosts.idqB.pair: is required",
            "hosts.idqA.pair: idqB's pair is None, not idqA",
        ],
    ),
    (
        "hosts.tn1.qe.proxy",
        _GONE,
        [
            "hosts.tn1.qe.proxy: a QE capable node needs the ETSI 004 proxy that serves it",
            "hosts.etsiA.serves: tn1's qe.proxy is None, not etsiA",
        ],
    ),
    (
        "hosts.etsiB.serves",
        "tn1",
        [
            "hosts.etsiB.serves: tn1's qe.proxy is etsiA, not etsiB",
            "hosts.tn5.qe.proxy: etsiB does not serve tn5 (its serves: tn1)",
        ],
    ),
    ("hosts.etsiA.idq", "idqB", ["hosts.etsiA.idq: idqB shares no domain with etsiA"]),
    ("hosts.idqA.pair", "idqA", ["hosts.idqB.pair: idqA's pair is idqA, not idqB"]),
    # a host whose kind is wrong gets that one problem, not others that depend on its kind
    (
        "hosts.tn4.kind",
        "switch",
        [
            "hosts.tn4.kind: 'switch' is not a host kind"
            " (node, pce, client, qkd-proxy, idq3p, frr, bird, host)"
        ],
    ),
    # access domains and client hosts
    ("domains.ea.access", "tn9", ["domains.ea.access: no host 'tn9' is declared"]),
    ("domains.ea.access", "pce", ["domains.ea.access: pce is a pce, not a node"]),
    ("domains.eb.access", "tn1", ["domains.eb.access: tn1 already has the access domain ea"]),
    (
        "domains.eb.subnet",
        "10.3.0.0/25",
        ["domains.eb.subnet: 10.3.0.0/25 overlaps domain ea's 10.3.0.0/24"],
    ),
    (
        "domains.ea.subnet",
        "10.1.1.0/24",
        [
            "domains.ea.subnet: 10.1.1.0/24 overlaps domain ctrl's 10.1.1.0/24",
            "hosts.ha.interfaces.ea: 10.3.0.1 is outside the domain's subnet 10.1.1.0/24",
        ],
    ),
    (
        "hosts.tn2.interfaces.ea",
        "10.3.0.9",
        [
            "hosts.tn2.interfaces.ea: ea is an access domain: only hosts of kind host sit on "
            "it (its node tn1 joins it by its port access)"
        ],
    ),
    (
        "hosts.ha.interfaces",
        {"ea": "10.3.0.1", "eb": "10.3.0.3"},
        ["hosts.ha.interfaces: a host of kind host has one interface, on an access domain"],
    ),
    (
        "hosts.hb.interfaces",
        {"qb": "10.2.2.77"},
        ["hosts.hb.interfaces.qb: qb is not an access domain (no access: NODE)"],
    ),
    ("hosts.ha.router_id", "10.3.0.1", ["hosts.ha.router_id: a host host has no router ID"]),
]


def test_access_domain_as_control_domain(doc: dict[str, Any]) -> None:
    assert "t.yaml: control_domain: ea is an access domain" in problems(
        edit(doc, "control_domain", "ea")
    )


def test_channel_names_must_fit_an_interface_name(doc: dict[str, Any]) -> None:
    doc["te_links"][0]["a_if"] = 4294967295
    doc["te_links"][0]["lambdas"] = [1, -32768]
    assert problems(doc) == [
        "t.yaml: te_links[0].a_if: the channel of lambda -32768 would be te4294967295lm32768, "
        "longer than the 15 characters of a Linux interface name; choose a smaller interface ID"
    ]


@pytest.mark.parametrize(("path", "value", "expected"), EDITS, ids=[e[0] for e in EDITS])
def test_each_problem_is_named_exactly(
    doc: dict[str, Any], path: str, value: Any, expected: list[str]
) -> None:
    assert sorted(problems(edit(doc, path, value))) == sorted(f"t.yaml: {p}" for p in expected)


def test_a_document_that_is_not_a_mapping() -> None:
    assert problems([1, 2]) == [
        "t.yaml: must be a mapping, not list",
        "t.yaml: name: is required",
        "t.yaml: domains: at least one domain is required",
    ]


def test_null_is_the_same_as_left_out(doc: dict[str, Any]) -> None:
    """``key: ~`` means the default, wherever it stands (but a required key stays required)."""
    for path in (
        "prefix",
        "ospf",
        "rsvp.hello_ms",
        "hosts.tn2.cli_port",
        "hosts.client.qe",
        "hosts.tn2.serves",
        "te_links[0].lambdas",
        "domains.ctrl.description",
    ):
        edit(doc, path, None)
    t = parse(doc, "t.yaml")
    assert t.prefix == "qk" and t.ospf.hello_interval == 10 and t.rsvp.hello_ms == 1000
    assert t.hosts["tn2"].cli_port is None and t.hosts["tn2"].serves is None
    assert t.te_links[0].lambdas == () and t.domains["ctrl"].description == ""


def test_every_key_of_the_schema_is_documented() -> None:
    """docs/topology.md names every key the loader's schema tables accept."""
    from gmpls import topology as tp

    text = (ROOT / "docs" / "topology.md").read_text()

    def keys(spec: Any) -> set[str]:
        if isinstance(spec, tp._Record):
            return {k.name for k in spec.keys}.union(*(keys(k.spec) for k in spec.keys))
        if isinstance(spec, tp._MapOf | tp._ListOf):
            return keys(spec.item)
        return set()

    documented = set(re.findall(r"`([a-z0-9_.]+)`", text))
    documented |= {part for name in documented for part in name.split(".")}
    assert keys(tp._TOP) - documented == set()


def test_deterministic_keys_load_as_bytes(doc: dict[str, Any]) -> None:
    doc["qkd"]["deterministic"] = {"seed": "test-seed", "sync_key": "0f" * 32}
    det = parse(doc, "t.yaml").qkd.deterministic
    assert det == DeterministicKeys(seed=b"test-seed", sync_key=bytes([15]) * 32)
    assert "test-seed" not in repr(det) and "0f0f" not in repr(det)


def test_control_address_and_shared_domain() -> None:
    t = load(PAPER)
    assert t.shared_domain("tn1", "etsiA") == "qa"
    assert t.shared_domain("etsiA", "etsiB") == "sync"
    assert t.shared_domain("tn1", "tn2") == "ctrl"
    assert t.shared_domain("tn2", "idqA") is None
    with pytest.raises(KeyError):
        t.control_address("etsiA")
    assert t.by_router_id(ipaddress.IPv4Address("10.1.1.3")).name == "tn3"  # type: ignore[union-attr]


# --- where OSPF runs ---------------------------------------------------------------------


def test_ospf_runs_on_the_control_lan_by_default(doc: dict[str, Any]) -> None:
    topo = parse(doc, "t.yaml")
    assert topo.ospf_network("ctrl") == "broadcast" and topo.ospf_network("qa") == "passive"
    assert topo.ospf_domains("tn1") == ["ctrl"]


def test_ospf_point_to_point_domains_and_a_passive_control_lan(doc: dict[str, Any]) -> None:
    doc["domains"]["ctrl"]["ospf"] = "passive"
    doc["domains"]["p1"] = {"subnet": "10.128.0.0/30", "ospf": "point-to-point"}
    doc["domains"]["p2"] = {"subnet": "10.128.0.4/30", "ospf": "point-to-point"}
    for h, d, a in (("tn1", "p1", 1), ("tn2", "p1", 2), ("tn2", "p2", 5), ("pce", "p2", 6)):
        doc["hosts"][h]["interfaces"][d] = f"10.128.0.{a}"
    # tn3, tn4 and tn5 are on the passive control LAN only: they speak OSPF nowhere
    assert problems(doc) == [
        f"t.yaml: hosts.{h}.interfaces: speaks OSPF on none of its domains (each one is passive)"
        for h in ("tn3", "tn4", "tn5")
    ]
    for h in ("tn3", "tn4", "tn5"):
        doc["domains"][f"x{h}"] = {"subnet": f"10.129.0.{4 * int(h[2])}/30", "ospf": "broadcast"}
        doc["hosts"][h]["interfaces"][f"x{h}"] = f"10.129.0.{4 * int(h[2]) + 1}"
    topo = parse(doc, "t.yaml")
    assert topo.ospf_domains("tn2") == ["p1", "p2"]
    assert topo.ospf_domains("pce") == ["p2"]
    assert topo.ospf_network("ctrl") == "passive"


def test_a_point_to_point_domain_joins_two_routers(doc: dict[str, Any]) -> None:
    doc["domains"]["qa"]["ospf"] = "point-to-point"  # tn1 and the key manager etsiA
    doc["domains"]["ea"]["ospf"] = "broadcast"
    doc["domains"]["ctrl"]["ospf"] = "mesh"
    assert problems(doc) == [
        "t.yaml: domains.ctrl.ospf: 'mesh' is not an OSPF network type "
        "(broadcast, point-to-point, passive)",
        "t.yaml: domains.qa.ospf: a point-to-point domain joins two routers, qa has 1 (tn1)",
        "t.yaml: domains.ea.ospf: an access domain carries client traffic, not OSPF",
    ]


def test_ospf_spf_throttling_and_flood_pacing_from_the_topology(doc: dict[str, Any]) -> None:
    doc.setdefault("ospf", {}).update(
        {"spf_delay_ms": 100, "spf_hold_ms": 1000, "spf_max_hold_ms": 10000, "flood_pace_ms": 0}
    )
    timers = parse(doc, "t.yaml").ospf.router_timers()
    assert timers == {"spf_delay": 0.1, "spf_hold": 1.0, "spf_max_hold": 10.0, "flood_pace": 0.0}
    doc["ospf"]["spf_hold_ms"] = -1
    assert problems(doc) == ["t.yaml: ospf.spf_hold_ms: -1 is out of range 0..600000"]
