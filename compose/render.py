"""``qkdnet compose render TOPOLOGY``: the docker-compose.yml of a topology.

One service per host and one network per domain, so that ``docker compose up`` (or
Debian's ``docker-compose``) runs the same testbed as the namespace backend:

- every service runs the one image (``qkdnet:latest``); the role is the command, by kind
  (``python -m node_agent --topology /etc/qkdnet/paper.yaml --host tn1``, see
  :data:`compose.daemons.PYTHON_KINDS`); a client host runs ``sleep infinity`` (it is the
  place to ``telnet`` from). The topology file is mounted read-only at
  ``/etc/qkdnet/NAME.yaml`` (the image also carries a copy of ``topologies/``).
- the key material is no part of the file: each emulator mounts read-only its pair's seed
  file only, each key manager the KM channel key of each of its QKD links only
  (``./secrets/A-B.seed`` or ``.sync`` next to the compose file, at
  ``/run/qkdnet/secrets/``), given by ``--seed-file`` / one ``--sync-key-file`` each (see
  :mod:`compose.keyfiles`). The guard service writes fresh files there on every ``up``.
- the first service, ``qkdnet-guard`` (:func:`guard_service`, :mod:`compose.guard`), adds
  the firewall rules below and writes the secrets; every host service ``depends_on`` it
  being healthy, and it removes both when ``down`` stops it, last.
- container ``PREFIX-HOST`` (``qk-tn1``), hostname ``HOST``; GMPLS roles (node, pce) get
  ``NET_ADMIN`` and ``NET_RAW`` (raw OSPF and RSVP sockets, multicast membership);
  ``init: true`` so that SIGTERM reaches the daemon and ``docker stop`` is quick; IPv6 off
  and IP forwarding off in every container (no routing between domains, no link-local
  chatter in captures).
- each domain is a bridge network with ``internal: true`` (no NAT, no route out), its
  subnet fixed through IPAM, its gateway (the host's address on the bridge) the highest
  address no host uses — Docker would take ``.1``, which is ``tn1`` — and its Linux bridge
  named ``PREFIX_DOMAIN`` (``qk_ctrl``) so it can be captured on the host. The underscore
  keeps these names apart from the namespace backend's ``PREFIX-...`` names.

The file uses compose format version ``2.4``: Debian's docker-compose 1.29 accepts IPAM
gateways, ``init`` and ``sysctls`` in it (its 3.x schemas reject the gateway), and
``docker compose`` (v2) reads it as the Compose Specification.

On hosts whose kernel hands bridged frames to iptables (``br_netfilter``, which Docker
turns on), Docker's isolation rule for internal networks drops multicast (OSPF's
224.0.0.5/6 is not inside the subnet), so the testbed needs one ACCEPT rule per bridge in
``DOCKER-USER``: the guard adds them (see :mod:`compose.docker`, docs/docker.md).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

import yaml

from compose import keyfiles, pki
from compose.daemons import NO_DAEMON, PYTHON_KINDS, dataplane_args
from gmpls.topology import Topology

IMAGE = "qkdnet:latest"
COMPOSE_VERSION = "2.4"
#: where the topology file is mounted (and where the image keeps its copies)
CONTAINER_TOPOLOGY_DIR = "/etc/qkdnet"
#: where an emulator or proxy finds its secret file
CONTAINER_SECRETS_DIR = "/run/qkdnet/secrets"
#: kinds that open raw sockets (OSPF, IP protocol 89; RSVP, 46) and join multicast groups
GMPLS_KINDS = ("node", "pce")
LABEL = "org.qkdnet"
#: the service that adds the firewall rules and writes the secrets (:mod:`compose.guard`);
#: host names cannot contain ``-``, so it never clashes with a host
GUARD = "qkdnet-guard"
#: the file its healthcheck tests (:data:`compose.guard.READY`)
GUARD_READY = "/run/qkdnet-guard.ready"


class _Flow(list[str]):
    """A list of scalars written on one line (``[python, -m, node_agent, ...]``)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(
    _Flow, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True)
)


class RenderError(ValueError):
    """The topology cannot be expressed as a compose file (the message says why)."""


def container_name(prefix: str, host: str) -> str:
    return f"{prefix}-{host}"


def bridge_name(prefix: str, domain: str) -> str:
    """The Linux bridge Docker creates for ``domain`` (at most 4 + 1 + 8 = 13 bytes)."""
    return f"{prefix}_{domain}"


def gateway(topo: Topology, domain: str) -> ipaddress.IPv4Address:
    """The highest host address of ``domain``'s subnet that no host of the topology uses."""
    subnet = topo.domains[domain].subnet
    used = {h.interfaces[domain] for h in topo.hosts.values() if domain in h.interfaces}
    # walk down from the last usable address; hosts() would build the whole list
    addr = subnet.broadcast_address - 1
    while addr > subnet.network_address:
        if addr not in used:
            return addr
        addr -= 1
    raise RenderError(f"domain {domain} ({subnet}) has no free address for the Docker gateway")


def command(topo: Topology, host: str, topology_in_container: str) -> list[str]:
    """The container command of ``host``: its daemon by kind."""
    h = topo.host(host)
    if h.kind in NO_DAEMON:
        return ["sleep", "infinity"]
    if h.kind in PYTHON_KINDS:
        pkg = PYTHON_KINDS[h.kind]
        argv = ["python", "-m", pkg, "--topology", topology_in_container, "--host", host]
        argv += keyfiles.daemon_args(topo, host, CONTAINER_SECRETS_DIR)
        return (
            argv
            + pki.daemon_args(topo, host, f"{CONTAINER_SECRETS_DIR}/{pki.FOLDER}")
            + dataplane_args(topo, host)
        )
    raise RenderError(
        f"hosts.{host}: kind {h.kind} has no container role (the image carries the project's "
        "daemons only; run FRR/BIRD hosts with the namespace backend)"
    )


def guard_service(
    topo: Topology, topology_mount: str, image: str, secrets_mount: str
) -> dict[str, Any]:
    """The ``qkdnet-guard`` service (:mod:`compose.guard`): on the host's network with
    ``NET_ADMIN`` to add the DOCKER-USER rules, writing fresh secrets into the secrets
    folder; healthy once both are done; removes both when stopped."""
    inside = f"{CONTAINER_TOPOLOGY_DIR}/{topo.name}.yaml"
    secrets_inside = CONTAINER_SECRETS_DIR
    return {
        "image": image,
        "container_name": container_name(topo.prefix, GUARD),
        "init": True,
        "network_mode": "host",
        "cap_add": _Flow(["NET_ADMIN", "NET_RAW"]),
        "command": _Flow(
            ["python", "-m", "compose.guard", "--topology", inside, "--secrets", secrets_inside]
        ),
        "volumes": [
            f"{topology_mount}:{inside}:ro",
            f"{secrets_mount}:{CONTAINER_SECRETS_DIR}",
        ],
        "healthcheck": {
            "test": _Flow(["CMD", "test", "-e", GUARD_READY]),
            "interval": "1s",
            "timeout": "5s",
            "retries": 120,
        },
        "stop_grace_period": "10s",
        "labels": {
            f"{LABEL}.topology": topo.name,
            f"{LABEL}.prefix": topo.prefix,
            f"{LABEL}.role": GUARD,
        },
    }


def _depends_on(previous: str | None) -> dict[str, Any]:
    """A host waits for the guard, and for the host before it (``previous``): a chain, so
    that Compose starts and stops the hosts one at a time. Docker 20.10 loses
    endpoint-count updates when many endpoints of one network go at once, and ``down``
    then cannot remove the network ("has active endpoints" with nothing attached, until
    dockerd restarts; moby/moby#43286)."""
    out: dict[str, Any] = {GUARD: {"condition": "service_healthy"}}
    if previous is not None:
        out[previous] = {"condition": "service_started"}
    return out


def compose_doc(
    topo: Topology,
    topology_mount: str,
    image: str = IMAGE,
    daemons: bool = True,
    secrets_mount: str = f"./{keyfiles.FOLDER}",
) -> dict[str, Any]:
    """The compose document as plain data. ``topology_mount`` is the host-side path of the
    topology file as the compose file names it (relative to the compose file's folder).
    Without ``daemons`` every container sleeps (the network only, like ``up --no-daemons``).
    ``secrets_mount`` is the host-side folder of the secret files, named the same way."""
    inside = f"{CONTAINER_TOPOLOGY_DIR}/{topo.name}.yaml"
    services: dict[str, Any] = {GUARD: guard_service(topo, topology_mount, image, secrets_mount)}
    secret_files = keyfiles.files(topo) if daemons else {}
    pki_files = pki.files(topo) if daemons else {}
    previous: str | None = None
    for h in topo.hosts.values():
        svc: dict[str, Any] = {
            "image": image,
            "container_name": container_name(topo.prefix, h.name),
            "hostname": h.name,
            "init": True,
            "command": _Flow(command(topo, h.name, inside) if daemons else ["sleep", "infinity"]),
        }
        if h.kind in GMPLS_KINDS:
            svc["cap_add"] = _Flow(["NET_ADMIN", "NET_RAW"])
        svc["sysctls"] = {
            "net.ipv4.ip_forward": "0",
            "net.ipv6.conf.all.disable_ipv6": "1",
            "net.ipv6.conf.default.disable_ipv6": "1",
        }
        svc["volumes"] = [f"{topology_mount}:{inside}:ro"]
        for _, f in secret_files.get(h.name, ()):
            svc["volumes"].append(f"{secrets_mount}/{f}:{CONTAINER_SECRETS_DIR}/{f}:ro")
        for f in pki_files.get(h.name, ()):
            p = f"{pki.FOLDER}/{f}"
            svc["volumes"].append(f"{secrets_mount}/{p}:{CONTAINER_SECRETS_DIR}/{p}:ro")
        ip_domains = {d: a for d, a in h.interfaces.items() if topo.domains[d].access is None}
        if ip_domains:
            svc["networks"] = {d: {"ipv4_address": str(a)} for d, a in sorted(ip_domains.items())}
        else:  # a client host of an access domain: its link comes from qkdnet (docs/docker.md)
            svc["network_mode"] = "none"
        svc["depends_on"] = _depends_on(previous)
        previous = h.name
        svc["labels"] = {
            f"{LABEL}.topology": topo.name,
            f"{LABEL}.prefix": topo.prefix,
            f"{LABEL}.host": h.name,
            f"{LABEL}.kind": h.kind,
        }
        services[h.name] = svc
    networks: dict[str, Any] = {}
    for d in topo.domains.values():
        if d.access is not None:
            continue  # not a Docker network: two access domains may share a subnet
        networks[d.name] = {
            "driver": "bridge",
            "internal": True,
            "driver_opts": {
                "com.docker.network.bridge.name": bridge_name(topo.prefix, d.name),
                # no address on the host's side of the bridge: the gateway is a placeholder
                # that answers nothing, so the host is no way out of a domain either
                "com.docker.network.bridge.inhibit_ipv4": "true",
            },
            "ipam": {
                "driver": "default",
                "config": [{"subnet": str(d.subnet), "gateway": str(gateway(topo, d.name))}],
            },
            "labels": {
                f"{LABEL}.topology": topo.name,
                f"{LABEL}.prefix": topo.prefix,
                f"{LABEL}.domain": d.name,
            },
        }
    return {"version": COMPOSE_VERSION, "services": services, "networks": networks}


def mount_path(topology_file: Path, compose_dir: Path) -> str:
    """The topology file as the compose file should name it: relative to the compose file's
    folder (``./topologies/paper.yaml``) when that is possible, else absolute."""
    try:
        rel = os.path.relpath(topology_file.resolve(), compose_dir.resolve())
    except ValueError:
        return str(topology_file.resolve())
    return rel if rel.startswith("..") else f"./{rel}"


def render(
    topo: Topology, compose_dir: Path | str = ".", image: str = IMAGE, daemons: bool = True
) -> str:
    """The text of the compose file for ``topo`` (loaded from a file), to be written into
    ``compose_dir`` (its secret files in ``compose_dir/secrets``)."""
    if topo.path is None:
        raise RenderError("the topology must be loaded from a file (the containers mount it)")
    mount = mount_path(topo.path, Path(compose_dir))
    doc = compose_doc(topo, mount, image, daemons)
    shown = mount if not mount.startswith("./") else mount[2:]
    header = (
        f"# Generated from the topology {topo.name!r} by\n"
        f"#   qkdnet compose render {shown} -o docker-compose.yml\n"
        "# Do not edit: change the topology and render again (a test checks it is current).\n"
        "# Run it with `docker compose up -d` or `docker-compose up -d` (as root or in the\n"
        "# docker group), stop it with `docker compose down`: the qkdnet-guard service adds the\n"
        "# DOCKER-USER rules multicast needs and writes fresh key material into ./secrets/\n"
        "# before any daemon starts, and removes both when stopped. The image comes from\n"
        "# `make image`. See docs/docker.md.\n"
    )
    body = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)
    return header + body
