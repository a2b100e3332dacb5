"""``qkdnet compose render --format containerlab``: the lab validates against containerlab's
published schema (tests/compose/data/clab.schema.json, vendored with its source and
licence) and describes the same testbed as the compose file: the same addresses, the same
daemon command lines, the same secret files."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from compose import clab, clabnode, keyfiles, render, topogen
from gmpls.topology import Topology, load

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((Path(__file__).parent / "data" / "clab.schema.json").read_text())
VALIDATOR = jsonschema.Draft7Validator(SCHEMA)


def _ring(tmp_path: Path) -> Path:
    out = tmp_path / "ring12.yaml"
    out.write_text(topogen.dump(topogen.generate("ring", 12, qe=True)))
    return out


def _topologies(tmp_path: Path) -> list[Topology]:
    return [
        load(ROOT / "topologies" / "paper.yaml"),
        load(ROOT / "topologies" / "mesh6.yaml"),
        load(_ring(tmp_path)),
    ]


def _errors(doc: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(doc)]


def test_the_vendored_schema_is_containerlabs() -> None:
    # the meta-schema, without its regex format check: some of containerlab's patterns use
    # Go's \\p{L} classes, which Python's re does not know (none is on a key we write)
    jsonschema.Draft7Validator(jsonschema.Draft7Validator.META_SCHEMA).validate(SCHEMA)
    assert SCHEMA["$id"] == "https://containerlab.dev/clab.schema.json"
    assert "linux" in SCHEMA["definitions"]["node-config"]["properties"]["kind"]["enum"]


def test_the_schema_rejects_what_containerlab_would() -> None:
    """The validation can fail: a misspelt kind, a key containerlab does not know."""
    assert _errors({"name": "x", "topology": {"nodes": {"a": {"kind": "linx"}}}})
    assert _errors({"name": "x", "topology": {"nodes": {"a": {"kind": "linux", "cmnd": "x"}}}})
    assert _errors({"name": "x", "topology": {"nodes": {"a b": {"kind": "linux"}}}})


@pytest.mark.parametrize("domains", clab.DOMAIN_MODES)
def test_labs_validate_against_the_schema(tmp_path: Path, domains: str) -> None:
    for topo in _topologies(tmp_path):
        text = clab.render_lab(topo, tmp_path, domains=domains)
        doc = yaml.safe_load(text)
        assert _errors(doc) == [], topo.name
        assert doc["name"] == f"{topo.prefix}-{topo.name}"


def _wrapped(cmd: str) -> tuple[dict[str, str], list[str]]:
    """The addresses a node's wrapper sets and the command it then runs."""
    argv = shlex.split(cmd)
    assert argv[:3] == ["python", "-m", "compose.clabnode"]
    cut = argv.index("--")
    addrs = dict(a.split("=") for a in argv[4:cut:2])
    assert argv[3:cut:2] == ["--addr"] * len(addrs)
    return addrs, argv[cut + 1 :]


def test_same_addresses_commands_and_secrets_as_the_compose_file(tmp_path: Path) -> None:
    for topo in _topologies(tmp_path):
        doc = yaml.safe_load(clab.render_lab(topo, tmp_path))
        compose = yaml.safe_load(render.render(topo, tmp_path))["services"]
        nodes = doc["topology"]["nodes"]
        for h in topo.hosts.values():
            node = nodes[h.name]
            addrs, daemon = _wrapped(node["cmd"])
            assert daemon == compose[h.name]["command"], h.name
            want = {d: f"{a}/{topo.domains[d].subnet.prefixlen}" for d, a in h.interfaces.items()}
            assert addrs == want
            secrets = [v for v in compose[h.name]["volumes"] if "/secrets/" in v]
            assert [b for b in node["binds"] if "/secrets/" in b] == secrets
            assert node["sysctls"] == compose[h.name]["sysctls"]
        # one link per (host, domain), each host end named after its domain
        links = [tuple(x["endpoints"]) for x in doc["topology"]["links"]]
        want_ends = {f"{h.name}:{d}" for h in topo.hosts.values() for d in h.interfaces}
        assert {a for a, _ in links} == want_ends and len(links) == len(want_ends)
        far = [b.split(":")[1] for _, b in links]
        assert len(set(far)) == len(far)  # host-side veths: unique names
        assert all(len(x) <= clab.IFNAME_MAX for x in far)
        for d in topo.domains:
            assert nodes[render.bridge_name(topo.prefix, d)]["kind"] == "bridge"


def test_switch_mode_has_point_to_point_links_only(tmp_path: Path) -> None:
    topo = load(ROOT / "topologies" / "paper.yaml")
    doc = yaml.safe_load(clab.render_lab(topo, tmp_path, domains="switch"))
    nodes = doc["topology"]["nodes"]
    assert all(n["kind"] == "linux" for n in nodes.values())
    sw = nodes["ctrl-sw"]
    argv = shlex.split(sw["cmd"])
    ports = [argv[i + 1] for i, x in enumerate(argv) if x == "--port"]
    assert ports == sorted(h.name for h in topo.hosts.values() if "ctrl" in h.interfaces)
    ends = [e for x in doc["topology"]["links"] for e in x["endpoints"]]
    assert "ctrl-sw:tn1" in ends and "tn1:ctrl" in ends


def test_no_key_material_in_the_lab(tmp_path: Path) -> None:
    topo = load(ROOT / "topologies" / "paper.yaml")
    keyfiles.write(topo, tmp_path / "secrets")
    text = clab.render_lab(topo, tmp_path)
    for f in (tmp_path / "secrets").iterdir():
        assert f.read_bytes().hex() not in text


def test_cli_writes_the_lab(tmp_path: Path) -> None:
    out = tmp_path / "paper.clab.yml"
    paper = ROOT / "topologies" / "paper.yaml"
    argv = [sys.executable, "-m", "compose.cli", "compose", "render", str(paper)]
    r = subprocess.run(
        [*argv, "--format", "containerlab", "-o", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert f"{len(load(paper).hosts)} nodes" in r.stdout
    assert _errors(yaml.safe_load(out.read_text())) == []


def test_wrapper_arguments() -> None:
    name, iface = clabnode.parse_addr("ctrl=10.1.1.1/24")
    assert name == "ctrl" and str(iface) == "10.1.1.1/24"
    for bad in ("ctrl", "ctrl=10.1.1.1/33", "=10.1.1.1/24", "averyveryverylongname=1.2.3.4/8"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"IFNAME|33"):
            clabnode.parse_addr(bad)
    with pytest.raises(SystemExit):
        clabnode.main(["--addr", "ctrl=10.1.1.1/24"])  # no command, no bridge
