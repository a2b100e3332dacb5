"""``qkdnet compose render TOPOLOGY --format containerlab``: the topology as a containerlab lab.

A lab that outgrows one machine can run on containerlab (its multi-host VXLAN links) or on
clabernetes (containerlab topologies on Kubernetes). The lab file (``NAME.clab.yml``,
containerlab's schema: ``schemas/clab.schema.json`` in its repository, checked by a test)
describes the same testbed as :mod:`compose.render`'s compose file:

- every host is a ``kind: linux`` node on the project's image (``qkdnet:latest``, from
  ``make image``: ``image-pull-policy: never``), running the same daemon command line as
  the Docker backend (:func:`compose.render.command`), wrapped by :mod:`compose.clabnode`:
  containerlab starts a node before it plugs its links in, and the daemons find their
  interfaces by address, so the wrapper waits for the node's interfaces, gives each its
  address from the topology, brings it up and only then ``exec``s the daemon;
- interface ``D`` of a node (named after its domain ``D``, at most 8 characters) carries
  the node's address on ``D``, as in the topology;
- each domain is one of two things (``--domains``):

  ``bridge`` (the default) a containerlab ``bridge`` node named like the Docker backend's
    bridge (``PREFIX_DOMAIN``, e.g. ``qk_ctrl``), which must exist on the host before
    ``clab deploy`` (``ip link add qk_ctrl type bridge``); one veth link per member;
  ``switch`` a ``linux`` node ``DOMAIN-sw`` on the same image, whose interfaces (named
    after the member hosts) the wrapper joins into one Linux bridge inside it. Every link
    is then point to point between two containers, which is what clabernetes and
    containerlab's multi-host (VXLAN) links can carry; a bridge node is local to one host.

- the topology file and the secret files are bind-mounted read-only as in the compose file
  (paths relative to the lab file's folder: ``./secrets`` comes from ``qkdnet compose
  secrets``); GMPLS kinds and the wrapper get ``NET_ADMIN`` and ``NET_RAW``; IP forwarding
  and IPv6 are off in every node.

Containerlab gives every node a management interface (``eth0`` on its management
network) too: the daemons do not use it, as they bind by address.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml

from compose import keyfiles, pki, render
from gmpls.topology import Topology

#: ``--domains`` choices
DOMAIN_MODES = ("bridge", "switch")
#: Linux's IFNAMSIZ - 1: the longest interface name
IFNAME_MAX = 15
SYSCTLS = {
    "net.ipv4.ip_forward": "0",
    "net.ipv6.conf.all.disable_ipv6": "1",
    "net.ipv6.conf.default.disable_ipv6": "1",
}
WRAPPER = ["python", "-m", "compose.clabnode"]


def lab_name(topo: Topology) -> str:
    return f"{topo.prefix}-{topo.name}"


def switch_name(domain: str) -> str:
    """The ``linux`` node that is ``domain``'s bridge in ``switch`` mode (host names carry
    no ``-``, so it never clashes with a host)."""
    return f"{domain}-sw"


def host_veth(topo: Topology, host: str, domain: str, n: int) -> str:
    """The host-side end of ``host``'s link to bridge ``domain`` (``bridge`` mode):
    ``PREFIX-HOST-DOMAIN`` when it fits in an interface name, else ``PREFIXvN``."""
    name = f"{topo.prefix}-{host}-{domain}"
    return name if len(name) <= IFNAME_MAX else f"{topo.prefix}v{n}"


def node_command(topo: Topology, host: str, daemons: bool = True) -> list[str]:
    """The node's command: the wrapper, the addresses it sets, then the daemon's command
    line exactly as the compose file has it."""
    h = topo.host(host)
    inside = f"{render.CONTAINER_TOPOLOGY_DIR}/{topo.name}.yaml"
    argv = [*WRAPPER]
    for d, a in sorted(h.interfaces.items()):
        argv += ["--addr", f"{d}={a}/{topo.domains[d].subnet.prefixlen}"]
    daemon = render.command(topo, host, inside) if daemons else ["sleep", "infinity"]
    return [*argv, "--", *daemon]


def switch_command(members: list[str]) -> list[str]:
    return [*WRAPPER, "--bridge", "br0", *(x for m in members for x in ("--port", m))]


def _node(topo: Topology, host: str, image: str, mount: str, secrets: str, daemons: bool) -> dict:
    h = topo.host(host)
    inside = f"{render.CONTAINER_TOPOLOGY_DIR}/{topo.name}.yaml"
    binds = [f"{mount}:{inside}:ro"]
    if daemons:
        for _, f in keyfiles.files(topo).get(host, ()):
            binds.append(f"{secrets}/{f}:{render.CONTAINER_SECRETS_DIR}/{f}:ro")
        for f in pki.files(topo).get(host, ()):
            p = f"{pki.FOLDER}/{f}"
            binds.append(f"{secrets}/{p}:{render.CONTAINER_SECRETS_DIR}/{p}:ro")
    return {
        "kind": "linux",
        "image": image,
        "image-pull-policy": "never",
        "cmd": shlex.join(node_command(topo, host, daemons)),
        "cap-add": ["NET_ADMIN", "NET_RAW"],
        "sysctls": dict(SYSCTLS),
        "binds": binds,
        "labels": {
            f"{render.LABEL}.topology": topo.name,
            f"{render.LABEL}.prefix": topo.prefix,
            f"{render.LABEL}.host": host,
            f"{render.LABEL}.kind": h.kind,
        },
    }


def lab_doc(
    topo: Topology,
    topology_mount: str,
    image: str = render.IMAGE,
    *,
    domains: str = "bridge",
    daemons: bool = True,
    secrets_mount: str = f"./{keyfiles.FOLDER}",
) -> dict[str, Any]:
    """The containerlab topology as plain data (see the module docstring).
    ``topology_mount`` and ``secrets_mount`` are host-side paths as the lab file names
    them (relative to its folder)."""
    if domains not in DOMAIN_MODES:
        raise render.RenderError(f"--domains {domains}: one of {', '.join(DOMAIN_MODES)}")
    nodes: dict[str, Any] = {}
    for h in topo.hosts.values():
        nodes[h.name] = _node(topo, h.name, image, topology_mount, secrets_mount, daemons)
    links: list[dict[str, Any]] = []
    n = 0
    for d in topo.domains.values():
        members = sorted(h.name for h in topo.hosts.values() if d.name in h.interfaces)
        if domains == "bridge":
            br = render.bridge_name(topo.prefix, d.name)
            nodes[br] = {"kind": "bridge", "labels": {f"{render.LABEL}.domain": d.name}}
            for m in members:
                n += 1
                far = host_veth(topo, m, d.name, n)
                links.append({"endpoints": [f"{m}:{d.name}", f"{br}:{far}"]})
        else:
            sw = switch_name(d.name)
            nodes[sw] = {
                "kind": "linux",
                "image": image,
                "image-pull-policy": "never",
                "cmd": shlex.join(switch_command(members)),
                "cap-add": ["NET_ADMIN"],
                "sysctls": dict(SYSCTLS),
                "labels": {f"{render.LABEL}.prefix": topo.prefix, f"{render.LABEL}.domain": d.name},
            }
            links += [{"endpoints": [f"{m}:{d.name}", f"{sw}:{m}"]} for m in members]
    return {
        "name": lab_name(topo),
        "topology": {"nodes": nodes, "links": links},
    }


def render_lab(
    topo: Topology,
    lab_dir: Path | str = ".",
    image: str = render.IMAGE,
    *,
    domains: str = "bridge",
    daemons: bool = True,
) -> str:
    """The text of the containerlab file for ``topo`` (loaded from a file), to be written
    into ``lab_dir`` (its secret files in ``lab_dir/secrets``)."""
    if topo.path is None:
        raise render.RenderError("the topology must be loaded from a file (the nodes mount it)")
    mount = render.mount_path(topo.path, Path(lab_dir))
    doc = lab_doc(topo, mount, image, domains=domains, daemons=daemons)
    shown = mount if not mount.startswith("./") else mount[2:]
    bridges = [render.bridge_name(topo.prefix, d) for d in topo.domains]
    header = [
        f"# Generated from the topology {topo.name!r} by",
        f"#   qkdnet compose render {shown} --format containerlab --domains {domains}",
        "# A containerlab topology (docs/containerlab.md). Before `clab deploy -t FILE`:",
        "#   make image  (or load qkdnet:latest on every host)",
        f"#   qkdnet compose secrets {shown} -o secrets",
    ]
    if domains == "bridge":
        header.append("#   on the host, one Linux bridge per domain, up:")
        header += [f"#     ip link add {b} type bridge && ip link set {b} up" for b in bridges]
        header.append(
            f"#   qkdnet compose firewall {shown}  (Docker hosts: multicast across bridges)"
        )
    body = yaml.dump(doc, Dumper=render._Dumper, sort_keys=False, width=1000)
    return "\n".join(header) + "\n" + body
