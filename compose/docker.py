"""The Docker backend: the testbed as a Compose project of ``qkdnet:latest`` containers.

:class:`DockerTestbed` implements :class:`compose.backend.Testbed`, so that ``qkdnet ...
--backend docker`` and the demo drive it as they drive the namespace backend. Faults on
links and domains (``link``, ``impair``) are the namespace backend's only.

How it talks to Docker — two tools, each where it is the better one:

- **the Compose CLI** (``docker compose`` when the v2 plugin exists, else Debian's
  ``docker-compose``; ``$QKDNET_COMPOSE`` overrides) brings the project up and down from
  the rendered compose file (:mod:`compose.render`), so the backend runs exactly what a user
  runs by hand, and ``docker compose ps/logs`` work on it;
- **the Docker SDK** (the ``docker`` package) for everything after that: status, logs,
  stop/start/kill of one container, files out of containers (captures), and the sweep
  that makes ``down`` idempotent and crash-proof (containers and networks labelled
  ``org.qkdnet.prefix=PREFIX``, whatever project created them);
- ``exec`` runs ``docker exec`` as a subprocess, so it takes the same keywords as
  ``subprocess.run`` (``capture_output``, ``text``, ``input``, ``timeout``, ``check``) like
  the namespace backend's ``exec``. A ``timeout`` ends the client, not the process in the
  container.

The firewall: Docker turns on ``br_netfilter``, so frames crossing a bridge go through
iptables, and its isolation rule for an internal network drops any packet whose
destination is outside the subnet: OSPF's multicast 224.0.0.5/6 among them. ``up`` inserts
one rule per domain bridge in ``DOCKER-USER`` (``-i qk_ctrl -o qk_ctrl -j ACCEPT``, comment
``qkdnet-docker:PREFIX``): traffic inside a domain passes, nothing crosses domains (in and
out are the same bridge). ``down`` removes them.

Captures (:meth:`DockerTestbed.capture_start` / :meth:`capture_stop`) come from tcpdump
inside the containers: on every member of a domain, its outgoing packets only (``-Q out``),
merged by timestamp into one pcap per domain, so each packet appears once — as the bridge
would show it, without capturing on the host.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import os
import re
import shlex
import shutil
import struct
import subprocess
import tarfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Unpack

import docker
from docker.errors import APIError, NotFound

from compose import channels, firewall, keyfiles, neigh, nsutil, pki, render
from compose.backend import (
    Capture,
    Progress,
    RunDir,
    Testbed,
    TestbedError,
    TestbedOptions,
    TopologySource,
    load_topology,
    quiet,
)
from compose.cliclient import CliError, CliOutput
from gmpls.dataplane.names import ACCESS_IF
from gmpls.topology import Topology

FW_CHAIN = "DOCKER-USER"
_PROJECT_LABEL = "com.docker.compose.project"
_FILES_LABEL = "com.docker.compose.project.config_files"
_WORKDIR_LABEL = "com.docker.compose.project.working_dir"
CAPTURE_DIR = "/tmp"  # inside the containers; world-writable (tcpdump may drop to its user)
#: one command on a CLI from inside a container: its output, exit status the command's
#: (0 or 1), 2 when the CLI cannot be reached
_CLI_SCRIPT = (
    "import socket, sys\n"
    "from compose.cliclient import CliError, run_command\n"
    "try:\n"
    "    out = run_command(socket.socket(), (sys.argv[1], int(sys.argv[2])), sys.argv[3],"
    " float(sys.argv[4]))\n"
    "except CliError as e:\n"
    "    print(f'cli: {e}', file=sys.stderr)\n"
    "    sys.exit(2)\n"
    "print(out)\n"
    "sys.exit(out.status)\n"
)


class DockerError(TestbedError):
    """A Docker testbed operation that cannot be done; the message says why and what to do."""


def _client() -> docker.DockerClient:
    try:
        client = docker.from_env()
        client.ping()
    except Exception as e:
        raise DockerError(f"cannot reach the Docker Engine: {e}") from None
    return client


def compose_command() -> list[str]:
    """The Compose CLI: ``$QKDNET_COMPOSE``, else ``docker compose`` (v2 plugin) when it
    answers, else ``docker-compose`` (v1, Debian's package)."""
    env = os.environ.get("QKDNET_COMPOSE")
    if env:
        return shlex.split(env)
    if shutil.which("docker"):
        r = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, check=False
        )
        if r.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise DockerError("neither `docker compose` nor `docker-compose` is installed")


def compose_env() -> dict[str, str]:
    """The environment the Compose CLI runs in: ours without ``PYTHONPATH``. Debian's
    ``docker-compose`` (v1) is a Python program whose own package is named ``compose``,
    as ours is: with this checkout on ``PYTHONPATH`` it would import ours and die."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


# --- firewall -------------------------------------------------------------------------


def fw_comment(prefix: str) -> str:
    return f"qkdnet-docker:{prefix}"


def firewall_add(topo: Topology) -> list[str]:
    """Insert the intra-bridge ACCEPT rules of ``topo``'s domains at the top of DOCKER-USER
    (idempotent). Returns the bridges covered; none when the host has no iptables or Docker
    does not use it (no DOCKER-USER chain)."""
    if not firewall.use_backend_of(FW_CHAIN):
        return []
    done = []
    for d in topo.domains:
        bridge = render.bridge_name(topo.prefix, d)
        rule = firewall.accept_within(bridge, fw_comment(topo.prefix))
        if firewall.iptables(["-C", FW_CHAIN, *rule]).returncode != 0:
            r = firewall.iptables(["-I", FW_CHAIN, "1", *rule])
            if r.returncode != 0:
                raise DockerError(f"iptables -I {FW_CHAIN} for {bridge}: {r.stderr.strip()}")
        done.append(bridge)
    return done


def firewall_remove(prefix: str) -> int:
    """Remove every DOCKER-USER rule carrying ``prefix``'s comment; returns how many."""
    firewall.use_backend_of(FW_CHAIN)
    return len(firewall.remove(FW_CHAIN, fw_comment(prefix)))


def firewall_rules(prefix: str) -> list[str]:
    """The DOCKER-USER rules of ``prefix`` as ``iptables -S`` prints them."""
    firewall.use_backend_of(FW_CHAIN)
    return firewall.listing(FW_CHAIN, fw_comment(prefix))


# --- finding and removing testbeds (needs no topology) -------------------------------


def _by_prefix(prefix: str) -> dict[str, str]:
    return {"label": f"{render.LABEL}.prefix={prefix}"}


def running_prefixes() -> dict[str, str]:
    """The prefixes of the Docker testbeds that exist (any container labelled with one),
    each with its Compose project."""
    out: dict[str, str] = {}
    for c in _client().containers.list(all=True, filters={"label": f"{render.LABEL}.prefix"}):
        out.setdefault(c.labels[f"{render.LABEL}.prefix"], c.labels.get(_PROJECT_LABEL, ""))
    return out


def leftovers(prefix: str) -> list[str]:
    """Containers, networks, access bridges and firewall rules of ``prefix`` that exist
    now."""
    client = _client()
    flt = _by_prefix(prefix)
    left = [f"container {c.name}" for c in client.containers.list(all=True, filters=flt)]
    left += [f"network {n.name}" for n in client.networks.list(filters=flt)]
    left += [f"link {name}" for name, _ in _access_links(prefix)]
    left += [f"rule {r}" for r in firewall_rules(prefix)]
    return left


# --- the optical layer and the access links (added by qkdnet, not by Compose) ---------


#: the alias (IFLA_IFALIAS) of the links qkdnet adds for the access domains of ``prefix``
def _access_alias(prefix: str) -> str:
    return f"qkdnet-access:{prefix}"


def _access_links(prefix: str) -> list[tuple[str, int]]:
    """(name, index) of the root-namespace links qkdnet made for ``prefix``'s access
    domains (their alias says so)."""
    from pyroute2 import IPRoute

    out = []
    with IPRoute() as ipr:
        for link in ipr.get_links():
            if link.get_attr("IFLA_IFALIAS") == _access_alias(prefix):
                out.append((str(link.get_attr("IFLA_IFNAME")), int(link["index"])))
    return out


def remove_access_bridges(prefix: str) -> int:
    """Delete the root-namespace links qkdnet made for ``prefix``'s access domains."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    n = 0
    with IPRoute() as ipr:
        for _, index in _access_links(prefix):
            with contextlib.suppress(NetlinkError):
                ipr.link("del", index=index)
                n += 1
    return n


def access_veth(prefix: str, host: str, domain: str) -> str:
    """The root end of the veth joining ``host`` to access domain ``domain``'s bridge:
    ``PREFIX_HOST_DOMAIN`` when that fits 15 bytes, else ``PREFIX_`` and a hash."""
    name = f"{prefix}_{host}_{domain}"
    if len(name) <= 15:
        return name
    import hashlib

    digest = hashlib.sha1(f"{host}/{domain}".encode()).hexdigest()
    return f"{prefix}_{digest[: 15 - len(prefix) - 1]}"


def _compose_file_of(labels: dict[str, str]) -> Path | None:
    """The compose file a container was created from, by Compose's labels: docker-compose
    v1 records it as given (relative to its working directory, also a label)."""
    first = labels.get(_FILES_LABEL, "").split(",")[0]
    if not first:
        return None
    return Path(labels.get(_WORKDIR_LABEL, "/"), first)


def teardown(
    prefix: str,
    project: str | None = None,
    compose_file: Path | None = None,
    progress: Progress = quiet,
) -> None:
    """Remove everything of the Docker testbed ``prefix``. Idempotent; works after a crash
    and without the topology.

    1. every container is disconnected from the testbed's networks, **one endpoint at a
       time**: Docker 20.10 loses endpoint-count updates when many endpoints of one network
       go at once (parallel stops in ``compose down``), and a network whose count never
       returns to 0 "has active endpoints" with nothing attached until dockerd restarts;
    2. ``compose down`` when the compose file is known (given, or read from the labels);
    3. every container and network labelled ``org.qkdnet.prefix=PREFIX`` whichever project
       made it (network removal retried briefly, as Docker releases endpoints
       asynchronously);
    4. the firewall rules.
    """
    client = _client()
    flt = _by_prefix(prefix)
    containers = client.containers.list(all=True, filters=flt)
    if compose_file is None and containers:
        compose_file = _compose_file_of(containers[0].labels)
        project = project or containers[0].labels.get(_PROJECT_LABEL)
    for n in client.networks.list(filters=flt):
        with contextlib.suppress(NotFound):
            n.reload()
            for cid in n.attrs.get("Containers") or {}:
                with contextlib.suppress(APIError):
                    n.disconnect(cid, force=True)
    if compose_file is not None and compose_file.exists() and project:
        argv = [*compose_command(), "-p", project, "-f", str(compose_file)]
        r = subprocess.run(
            [*argv, "down", "--remove-orphans", "-t", "5"],
            capture_output=True,
            text=True,
            check=False,
            env=compose_env(),
        )
        if r.returncode != 0:
            progress(f"[{prefix}] compose down: {(r.stderr or r.stdout).strip()[:300]}")
    for c in client.containers.list(all=True, filters=flt):
        with contextlib.suppress(NotFound):
            c.remove(force=True)
            progress(f"[{prefix}] removed container {c.name}")
    for n in client.networks.list(filters=flt):
        for attempt in range(10):
            try:
                n.remove()
                progress(f"[{prefix}] removed network {n.name}")
                break
            except NotFound:
                break
            except APIError as e:
                if "active endpoints" not in str(e) or attempt == 9:
                    progress(f"[{prefix}] network {n.name}: {e}")
                    break
                time.sleep(0.5)
    k = remove_access_bridges(prefix)
    if k:
        progress(f"[{prefix}] removed {k} access bridge(s)")
    k = firewall_remove(prefix)
    if k:
        progress(f"[{prefix}] removed {k} DOCKER-USER rule(s)")
    left = leftovers(prefix)
    if left:
        stuck = [x for x in left if x.startswith("network ")]
        hint = (
            "; a network that 'has active endpoints' with no container attached is Docker "
            "20.10's lost endpoint count, which only a restart of dockerd clears"
            if stuck
            else ""
        )
        raise DockerError(f"[{prefix}] could not remove: {', '.join(left)}{hint}")


def subnet_conflicts(topo: Topology) -> list[str]:
    """Docker networks (of other testbeds or anything else) whose subnets overlap the
    topology's domains: Docker refuses to create a network over them."""
    out = []
    for n in _client().networks.list():
        for cfg in (n.attrs.get("IPAM") or {}).get("Config") or []:
            try:
                net = ipaddress.ip_network(cfg.get("Subnet", ""), strict=False)
            except ValueError:
                continue
            for d in topo.domains.values():
                if d.access is None and net.version == 4 and net.overlaps(d.subnet):
                    out.append(f"{d.name} {d.subnet} overlaps Docker network {n.name} ({net})")
    return out


# --- pcap merging ---------------------------------------------------------------------


def merge_pcaps(blobs: Iterable[bytes]) -> bytes:
    """Merge classic pcap files (same link type) into one, records ordered by timestamp
    (stable: equal timestamps keep their file order). Empty inputs are skipped."""
    header: bytes | None = None
    linktype: int | None = None
    records: list[tuple[int, int, int, bytes]] = []
    for n, blob in enumerate(blobs):
        if len(blob) < 24:
            continue
        magic = blob[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            endian = "<"
        elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            endian = ">"
        else:
            raise ValueError(f"capture {n}: not a pcap file (magic {magic.hex()})")
        lt = struct.unpack(endian + "I", blob[20:24])[0]
        if header is None:
            header, linktype = blob[:24], lt
        elif lt != linktype or blob[:4] != header[:4]:
            raise ValueError(f"capture {n}: link type or timestamp format differs")
        off = 24
        while off + 16 <= len(blob):
            sec, frac, incl, _orig = struct.unpack(endian + "IIII", blob[off : off + 16])
            end = off + 16 + incl
            if end > len(blob):
                break  # a record cut short (the capture was killed mid-write)
            records.append((sec, frac, n, blob[off:end]))
            off = end
    if header is None:
        return b""
    records.sort(key=lambda r: (r[0], r[1]))  # sort is stable: file order for ties
    return header + b"".join(r[3] for r in records)


# --- the testbed ----------------------------------------------------------------------


@dataclass
class _Capture:
    host: str
    domain: str
    ifname: str
    path: str  # inside the container


class DockerTestbed(Testbed):
    """A topology brought up as a Compose project.

    >>> tb = DockerTestbed("topologies/paper.yaml", project="qkdtest")   # doctest: +SKIP
    >>> tb.up(); tb.exec("tn1", ["ip", "-br", "addr"]); tb.kill("tn3"); tb.down()

    ``compose_file`` is used as it is (the checked-in ``docker-compose.yml``); without it
    the file is rendered into ``run_dir`` (default ``run/docker-NAME``). Container and
    bridge names come from the topology's prefix; ``prefix`` overrides it (a copy of the
    topology is written to ``run_dir``), so tests never touch a user's ``qk`` testbed. Two
    testbeds of one topology cannot run at once all the same: Docker refuses networks with
    overlapping subnets.
    """

    backend: ClassVar[str] = "docker"
    label: ClassVar[str] = "Docker testbed"
    option: ClassVar[str] = " --backend docker"
    run_name: ClassVar[str] = "docker-{name}"
    faults_hint: ClassVar[str] = " (use docker network disconnect / tc inside the container)"

    def __init__(
        self,
        topology: TopologySource,
        run_dir: RunDir = None,
        *,
        project: str | None = None,
        compose_file: str | os.PathLike[str] | None = None,
        image: str = render.IMAGE,
        **options: Unpack[TestbedOptions],
    ) -> None:
        topo = load_topology(topology)
        if compose_file is not None and options.get("prefix") not in (None, topo.prefix):
            raise DockerError("give either a compose file or a prefix to render one with")
        # under another prefix the containers mount the copy of the topology it writes
        super().__init__(topo, run_dir, **options)
        self.project = project or f"qkdnet-{self.prefix}"
        self.compose_file = Path(compose_file).resolve() if compose_file else None
        self.image = image
        self._captures: list[_Capture] = []
        self._capture_dir: Path | None = None
        self._docker: docker.DockerClient | None = None

    # --- finding testbeds -------------------------------------------------------------
    @classmethod
    def attach(cls, prefix: str, progress: Progress | None = None) -> DockerTestbed:
        """The Docker testbed that is up with ``prefix``: project, compose file and topology
        are read back from the containers' labels and mounts."""
        client = _client()
        found = client.containers.list(
            all=True, filters={"label": f"{render.LABEL}.prefix={prefix}"}
        )
        if not found:
            raise DockerError(f"no Docker testbed with prefix {prefix!r} is up")
        labels = found[0].labels
        topo_file = None
        for m in found[0].attrs.get("Mounts", []):
            if str(m.get("Destination", "")).startswith(render.CONTAINER_TOPOLOGY_DIR + "/"):
                topo_file = m.get("Source")
        if topo_file is None or not Path(topo_file).exists():
            raise DockerError(f"testbed {prefix!r}: its topology file {topo_file} is not readable")
        tb = cls(
            topo_file,
            project=labels.get(_PROJECT_LABEL),
            compose_file=_compose_file_of(labels),
            progress=progress,
        )
        tb._docker = client
        tb.complete_dataplane()
        return tb

    def complete_dataplane(self) -> None:
        """A testbed that ``docker compose up`` started has no optical layer and no access
        links (Compose cannot make them): add them (:meth:`add_dataplane`) the first time
        qkdnet attaches to it with every container running. Nothing when they are there
        (the first channel exists in its node) or when containers are still starting (a
        later command adds them)."""
        chans = channels.pairs(self.topology)
        if not chans and not any(d.access for d in self.topology.domains.values()):
            return
        try:
            flt = {"label": f"{render.LABEL}.prefix={self.prefix}"}
            if any(
                c.status != "running" for c in self.docker.containers.list(all=True, filters=flt)
            ):
                return
            if chans:
                with nsutil.iproute_in(self.ns_path(chans[0].a)) as nsr:
                    if nsr.link_lookup(ifname=chans[0].a_name):
                        return
        except (DockerError, OSError):
            return
        self.progress(f"[{self.prefix}] adding what Compose cannot make: the data plane")
        self.add_dataplane()

    @classmethod
    def prefixes_up(cls) -> list[str]:
        """The prefixes of the Docker testbeds with any container (:func:`running_prefixes`)."""
        return sorted(running_prefixes())

    @classmethod
    def remove(cls, prefix: str, progress: Progress = quiet) -> None:
        teardown(prefix, progress=progress)

    @property
    def docker(self) -> docker.DockerClient:
        if self._docker is None:
            self._docker = _client()
        return self._docker

    # --- names ------------------------------------------------------------------------
    def container_name(self, host: str) -> str:
        self.topology.host(host)
        return render.container_name(self.prefix, host)

    def bridge(self, domain: str) -> str:
        if domain not in self.topology.domains:
            raise DockerError(f"{self.topology.name}: no domain {domain!r}")
        return render.bridge_name(self.prefix, domain)

    def container(self, host: str) -> Any:
        try:
            return self.docker.containers.get(self.container_name(host))
        except NotFound:
            raise DockerError(
                f"{host}: container {self.container_name(host)} does not exist"
            ) from None

    def leftovers(self) -> list[str]:
        """Containers, networks and firewall rules of this prefix that exist now."""
        return leftovers(self.prefix)

    def _compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert self.compose_file is not None
        argv = [*compose_command(), "-p", self.project, "-f", str(self.compose_file), *args]
        r = subprocess.run(argv, capture_output=True, text=True, check=False, env=compose_env())
        if check and r.returncode != 0:
            raise DockerError(f"{shlex.join(argv)} failed:\n{(r.stderr or r.stdout).strip()}")
        return r

    def _compose_up(self) -> None:
        """``compose up -d --no-build``, its output passed on line by line as progress (the
        containers are created one after the other: a large topology takes a while)."""
        assert self.compose_file is not None
        argv = [*compose_command(), "-p", self.project, "-f", str(self.compose_file)]
        argv += ["up", "-d", "--no-build"]
        tail: list[str] = []
        with subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=compose_env(),
        ) as proc:
            assert proc.stdout is not None
            for raw in proc.stdout:
                # v1 redraws its lines with ANSI escapes and carriage returns
                line = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", raw).replace("\r", "\n")
                for part in filter(None, (x.strip() for x in line.split("\n"))):
                    tail = [*tail[-19:], part]
                    self.progress(f"[{self.prefix}] compose: {part}")
        if proc.returncode != 0:
            raise DockerError(f"{shlex.join(argv)} failed:\n" + "\n".join(tail))

    # --- up ---------------------------------------------------------------------------
    def up(
        self, start_daemons: bool = True, capture: Capture | None = None, timeout: float = 60.0
    ) -> DockerTestbed:
        """Render (unless a compose file was given), ``compose up -d`` (its guard service adds
        the firewall rules and writes fresh secrets first: :mod:`compose.guard`; each line
        Compose prints is passed to ``progress``), and wait until every container runs; then start the captures (the containers
        run their daemons from the start, so the first packets may be missed). Without
        ``start_daemons`` every container sleeps (a rendered file only). On failure
        everything is removed again."""
        p = self.prefix
        try:
            self.docker.images.get(self.image)
        except NotFound:
            raise DockerError(f"image {self.image} is missing: run `make image`") from None
        left = [x for x in self.leftovers() if not x.startswith("rule ")]
        clash = subnet_conflicts(self.topology)
        if clash and not left:
            raise DockerError(
                "subnets taken: " + "; ".join(clash) + " (another testbed of this topology is"
                " up, or a stale network: `docker network rm` it)"
            )
        if left:
            raise DockerError(
                f"prefix {p!r} is in use ({', '.join(left[:4])}{', ...' if len(left) > 4 else ''});"
                f" run `qkdnet down --backend docker --prefix {p}` first"
            )
        if self.compose_file is None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.compose_file = self.run_dir / "docker-compose.yml"
            text = render.render(self.topology, self.run_dir, self.image, daemons=start_daemons)
            self.compose_file.write_text(text)
        t0 = time.monotonic()
        # containers share the kernel's neighbour table as namespaces do (compose.neigh)
        neigh.make_room(self.topology, self.progress, p)
        with self._building():
            self.progress(f"[{p}] {shlex.join(compose_command())} -p {self.project} up -d")
            self._compose_up()
            self.wait_running(timeout=timeout)
            self.add_dataplane()
            if capture is not None:
                self.capture_start(capture.domains, capture.out_dir)
        self.progress(
            f"[{p}] up: {len(self.topology.hosts)} containers, "
            f"{sum(d.access is None for d in self.topology.domains.values())} networks in {time.monotonic() - t0:.1f} s (project {self.project}, "
            f"{self.compose_file})"
        )
        return self

    def ns_path(self, host: str) -> str:
        """The network namespace of ``host``'s running container (``/proc/PID/ns/net``)."""
        pid = int(self.container(host).attrs["State"].get("Pid") or 0)
        if pid <= 0:
            raise DockerError(f"{host}: the container is not running")
        return f"/proc/{pid}/ns/net"

    def add_dataplane(self) -> None:
        """What Compose cannot make: the optical layer (a veth pair per TE link and lambda
        between the nodes' containers, :mod:`compose.channels`) and the access domains (a
        bridge ``PREFIX_DOMAIN`` made here, since Docker refuses two networks on one subnet,
        with the node's port ``access`` and each client host's interface on it), offloads
        off on all of them. Idempotent for the access links is not needed: ``up`` runs it
        once on fresh containers."""
        from pyroute2 import IPRoute

        p, topo = self.prefix, self.topology
        t0 = time.monotonic()
        chans = channels.pairs(topo)
        paths: dict[str, str] = {}

        def ns(host: str) -> str:
            if host not in paths:
                paths[host] = self.ns_path(host)
            return paths[host]

        channels.build(chans, ns)
        per_ns = channels.names_by_node(chans)
        alias = _access_alias(p)
        roots = []
        with IPRoute() as ipr:
            for d in topo.domains.values():
                if d.access is None:
                    continue
                br = render.bridge_name(p, d.name)
                ipr.link("add", ifname=br, kind="bridge", br_stp_state=0, br_forward_delay=0)
                bidx = ipr.link_lookup(ifname=br)[0]
                ipr.link("set", index=bidx, ifalias=alias, state="up")
                ends = [(d.access, ACCESS_IF, None)] + [
                    (h.name, d.name, h.interfaces[d.name]) for h in topo.access_hosts(d.access)
                ]
                for host, inner, addr in ends:
                    root = access_veth(p, host, d.name)
                    fd = os.open(ns(host), os.O_RDONLY)
                    try:
                        ipr.link(
                            "add",
                            ifname=root,
                            kind="veth",
                            peer={"ifname": inner, "net_ns_fd": fd},
                        )
                    finally:
                        os.close(fd)
                    ridx = ipr.link_lookup(ifname=root)[0]
                    ipr.link("set", index=ridx, ifalias=alias, master=bidx, state="up")
                    roots.append(root)
                    with nsutil.iproute_in(ns(host)) as nsr:
                        j = nsr.link_lookup(ifname=inner)[0]
                        if addr is not None:
                            nsr.addr(
                                "add", index=j, address=str(addr), prefixlen=d.subnet.prefixlen
                            )
                        nsr.link("set", index=j, state="up")
                    per_ns.setdefault(host, []).append(inner)
        try:
            channels.offloads_off_all(per_ns, ns, roots)
        except RuntimeError as e:
            raise DockerError(f"{e}") from None
        if chans or roots:
            self.progress(
                f"[{p}] optical layer: {len(chans)} channel(s) between the containers, "
                f"{len(roots)} access link(s), in {time.monotonic() - t0:.2f} s"
            )

    def wait_running(self, hosts: Iterable[str] | None = None, timeout: float = 60.0) -> None:
        """Wait until the containers of ``hosts`` (default: all) are running; a container that
        exits meanwhile is an error carrying its last log lines."""
        pending = set(hosts or self.topology.hosts)
        total = len(pending)
        deadline = time.monotonic() + timeout
        while pending:
            for h in sorted(pending):
                c = self.container(h)
                state = c.attrs["State"]
                if state.get("Running"):
                    pending.discard(h)
                    n = total - len(pending)
                    self.progress(f"[{self.prefix}] {n:>3}/{total} {h:<8} running ({self.role(h)})")
                elif state.get("Status") in ("exited", "dead"):
                    tail = c.logs(tail=5).decode(errors="replace").strip()
                    raise DockerError(
                        f"{h}: container exited with code {state.get('ExitCode')}:\n{tail}"
                    )
            if pending:
                if time.monotonic() > deadline:
                    raise DockerError(
                        f"not running after {timeout:.0f} s: {', '.join(sorted(pending))}"
                    )
                time.sleep(0.2)

    def role(self, host: str) -> str:
        """What the container runs: ``client``; ``idle`` (``up --no-daemons``); else the
        daemon's command (``python -m node_agent``)."""
        if self.topology.host(host).kind in ("client", "host"):
            return self.topology.host(host).kind
        cmd = list(self.container(host).attrs["Config"].get("Cmd") or [])
        if cmd[:2] == ["sleep", "infinity"]:
            return "idle"
        return " ".join(cmd[:3])

    # --- down -------------------------------------------------------------------------
    def down(self) -> None:
        """Remove the project (:func:`teardown`). Idempotent."""
        self._captures = []
        teardown(self.prefix, self.project, self.compose_file, self.progress)

    # --- processes in a host ----------------------------------------------------------
    def exec(self, host: str, argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[Any]:
        """``subprocess.run`` of ``docker exec CONTAINER ARGV`` (keywords passed on)."""
        interactive = ["-i"] if "input" in kw or kw.get("stdin") is not None else []
        cmd = ["docker", "exec", *interactive, self.container_name(host), *argv]
        return subprocess.run(cmd, **kw)

    def popen(self, host: str, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        """``subprocess.Popen`` of ``docker exec -i CONTAINER ARGV``."""
        return subprocess.Popen(["docker", "exec", "-i", self.container_name(host), *argv], **kw)

    def interact(self, host: str, argv: Sequence[str]) -> int:
        """``docker exec -it`` (``-i`` when this is no terminal); the command's status."""
        tty = ["-it"] if os.isatty(0) else ["-i"]
        return subprocess.run(["docker", "exec", *tty, self.container_name(host), *argv]).returncode

    def logs(self, host: str) -> str:
        """Everything the host's container wrote to stdout and stderr (its daemon's log)."""
        return str(self.container(host).logs().decode(errors="replace"))

    # --- the daemon is the container: stop, start, kill -------------------------------
    def stop(self, host: str, timeout: int = 5) -> dict[int, int | None]:
        """SIGTERM to the host's daemon (SIGKILL after ``timeout`` s): {pid: exit code} of
        the container's process when it was running."""
        c = self.container(host)
        pid = int(c.attrs["State"].get("Pid") or 0) if c.attrs["State"].get("Running") else 0
        c.stop(timeout=timeout)
        self.progress(f"[{self.prefix}] {host} stopped")
        if not pid:
            return {}
        c.reload()
        return {pid: c.attrs["State"].get("ExitCode")}

    def start(self, host: str, timeout: float = 30.0) -> list[int]:
        """Start the host's container again (same addresses) and wait until it runs; the
        pid of its process."""
        c = self.container(host)
        c.reload()
        if c.attrs["State"].get("Running"):
            raise DockerError(f"{host}: already running (qkdnet stop {host} first)")
        c.start()
        self.wait_running([host], timeout=timeout)
        c.reload()
        return [int(c.attrs["State"]["Pid"])]

    def kill(self, host: str, signal: str = "SIGKILL") -> None:
        """``docker kill``: the daemon dies at once, as a crashed node would."""
        self.container(host).kill(signal=signal)
        self.progress(f"[{self.prefix}] {host} killed ({signal})")

    # --- looking inside ---------------------------------------------------------------
    def ping(self, host: str, target: str, timeout: float = 1.0, count: int = 1) -> bool:
        """ICMP echo (iputils ``ping``) from inside ``host``; True when any reply comes."""
        dst = self.address(target)
        w = max(1, round(timeout))
        r = self.exec(
            host,
            ["ping", "-n", "-q", "-c", str(count), "-W", str(w), dst],
            capture_output=True,
            text=True,
            check=False,
            timeout=count * (w + 1) + 10,
        )
        return r.returncode == 0

    def probe(
        self,
        host: str,
        target: str,
        count: int = 3,
        timeout: float = 1.0,
        interval: float = 0.2,
        first: bool = False,
    ) -> list[float | None]:
        """iputils ``ping`` inside ``host``: each echo's RTT in ms, None when lost."""
        dst = self.address(target)
        w = max(1, round(timeout))
        argv = ["ping", "-n", "-c", str(count), "-W", str(w), "-i", f"{max(interval, 0.2):g}"]
        r = self.exec(
            host,
            [*argv, dst],
            capture_output=True,
            text=True,
            check=False,
            timeout=count * (w + interval + 1) + 10,
        )
        got = {
            int(m.group(1)): float(m.group(2))
            for m in re.finditer(r"icmp_seq=(\d+) .*time=([\d.]+) ms", r.stdout)
        }
        out = [got.get(seq) for seq in range(1, count + 1)]
        if first:
            hit = next((i for i, x in enumerate(out) if x is not None), None)
            out = out if hit is None else out[: hit + 1]
        return out

    def cli(
        self,
        host: str,
        command: str,
        via: str | None = None,
        timeout: float = 10.0,
        port: int | None = None,
    ) -> CliOutput:
        """One command on the host's telnet CLI, connecting from the container of ``via``
        (default: the host itself) to the host's control address and ``cli_port`` (or
        ``port``)."""
        port = port or self.topology.host(self.check_host(host)).cli_port
        if port is None:
            raise DockerError(f"{host} has no cli_port")
        if via:
            self.check_reach(via, host)
        argv = ["python", "-c", _CLI_SCRIPT, self.address(host), str(port), command]
        r = self.exec(
            via or host,
            [*argv, str(timeout)],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout + 15,
        )
        if r.returncode not in (0, 1):
            raise CliError(r.stderr.strip().removeprefix("cli: ") or f"exit {r.returncode}")
        return CliOutput(str(r.stdout).rstrip("\n"), r.returncode)

    def cli_session(self, host: str, via: str | None = None) -> int:
        """An interactive session on the host's CLI, run in the container of ``via``
        (default: the host itself); its exit status."""
        port = self.topology.host(host).cli_port
        if port is None:
            raise DockerError(f"{host} has no cli_port")
        argv = ["python", "-m", "compose.cliclient", self.address(host), str(port)]
        return self.interact(via or host, argv)

    def interfaces(self, host: str) -> dict[str, str]:
        """The container's IPv4 addresses and the interface each is on (``ip -o -4 addr``)."""
        r = self.exec(
            host, ["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True
        )
        out = {}
        for line in r.stdout.splitlines():
            words = line.split()
            # "12: eth0    inet 10.1.1.1/24 brd 10.1.1.255 scope global eth0..."
            if len(words) >= 4 and words[2] == "inet":
                out[words[3].split("/")[0]] = words[1].split("@")[0]
        return out

    def ifname(self, host: str, domain: str) -> str:
        """The interface inside ``host``'s container that is on ``domain`` (Docker names them
        eth0, eth1... in an order of its own)."""
        addr = self.address(host, domain)
        found = self.interfaces(host).get(addr)
        if found is None:
            raise DockerError(f"{host}: no interface carries {addr} ({domain})")
        return found

    def status(self) -> dict[str, Any]:
        """What exists and runs now, per host and domain (JSON-serialisable)."""
        flt = {"label": f"{render.LABEL}.prefix={self.prefix}"}
        containers = {c.name: c for c in self.docker.containers.list(all=True, filters=flt)}
        networks = {
            n.attrs.get("Labels", {}).get(f"{render.LABEL}.domain"): n
            for n in self.docker.networks.list(filters=flt)
        }
        hosts: dict[str, Any] = {}
        for h in self.topology.hosts.values():
            c = containers.get(render.container_name(self.prefix, h.name))
            state = c.attrs["State"] if c is not None else {}
            nets = c.attrs["NetworkSettings"]["Networks"] if c is not None else {}
            actual = {}
            for net in nets.values():
                for d, n in networks.items():
                    if n.id == net.get("NetworkID"):
                        actual[d] = net.get("IPAddress")
            if h.kind == "host" and state.get("Running"):  # its access link is qkdnet's
                found = self.interfaces(h.name)
                for d, a in h.interfaces.items():
                    if found.get(str(a)) == d:
                        actual[d] = str(a)
            hosts[h.name] = {
                "kind": h.kind,
                "container": render.container_name(self.prefix, h.name),
                "state": state.get("Status", "absent"),
                "exit_code": state.get("ExitCode"),
                "role": self.role(h.name) if state.get("Running") else None,
                "interfaces": {
                    d: {"address": str(a), "actual": actual.get(d) or None}
                    for d, a in h.interfaces.items()
                },
            }
        domains: dict[str, dict[str, Any]] = {}
        access_links = {name for name, _ in _access_links(self.prefix)}
        for d in self.topology.domains.values():
            if d.access is not None:
                br = render.bridge_name(self.prefix, d.name)
                domains[d.name] = {
                    "subnet": str(d.subnet),
                    "network": None,
                    "bridge": br,
                    "access": d.access,
                    "state": "present" if br in access_links else "absent",
                }
                continue
            n = networks.get(d.name)
            cfg = (n.attrs.get("IPAM", {}).get("Config") or [{}])[0] if n is not None else {}
            domains[d.name] = {
                "subnet": str(d.subnet),
                "network": n.name if n is not None else None,
                "bridge": render.bridge_name(self.prefix, d.name),
                "gateway": cfg.get("Gateway"),
                "internal": bool(n.attrs.get("Internal")) if n is not None else None,
                "state": "present" if n is not None else "absent",
            }
        running = sum(1 for x in hosts.values() if x["state"] == "running")
        return {
            "backend": "docker",
            "prefix": self.prefix,
            "name": self.topology.name,
            "topology": str(self.topology.path),
            "project": self.project,
            "compose_file": str(self.compose_file) if self.compose_file else None,
            "status": "up"
            if running == len(hosts)
            else ("down" if not containers else f"partial ({running}/{len(hosts)} running)"),
            "domains": domains,
            "hosts": hosts,
            "firewall": firewall_rules(self.prefix),
            # the guard writes the PKI beside the secrets of the compose file
            "etsi014": pki.status(
                self.topology,
                (self.compose_file.parent if self.compose_file else self.run_dir)
                / keyfiles.FOLDER
                / pki.FOLDER,
            ),
        }

    @staticmethod
    def format_status(st: dict[str, Any]) -> str:
        lines = [
            f"testbed {st['name']} prefix {st['prefix']}: {st['status']}  (docker project "
            f"{st['project']}, {st['compose_file']})",
            f"  {'DOMAIN':<8} {'SUBNET':<16} {'BRIDGE':<10} {'GATEWAY':<14} NETWORK",
        ]
        for d, info in st["domains"].items():
            lines.append(
                f"  {d:<8} {info['subnet']:<16} {info['bridge']:<10} "
                f"{info.get('gateway') or '-':<14} "
                f"{info['network'] or ('access of ' + info['access'] if info.get('access') else 'absent')}"
            )
        lines.append(
            f"  {'HOST':<8} {'KIND':<9} {'CONTAINER':<12} {'STATE':<8} {'INTERFACES':<40} ROLE"
        )
        for h, info in st["hosts"].items():
            ifs = ", ".join(
                f"{d} {i['address']}" + ("" if i["actual"] == i["address"] else f" [{i['actual']}]")
                for d, i in info["interfaces"].items()
            )
            state = info["state"] + (f" {info['exit_code']}" if info["state"] == "exited" else "")
            lines.append(
                f"  {h:<8} {info['kind']:<9} {info['container']:<12} {state:<8} {ifs:<40} "
                f"{info['role'] or '-'}"
            )
        if st["firewall"]:
            lines.append(f"  DOCKER-USER: {len(st['firewall'])} intra-bridge ACCEPT rule(s)")
        return "\n".join(lines)

    # --- captures ---------------------------------------------------------------------
    def capture_start(self, domains: Sequence[str], out_dir: Path, timeout: float = 10.0) -> None:
        """Start tcpdump in every running member of each domain, on its interface there,
        outgoing packets only; returns once every one is listening. The pcaps are merged
        into ``OUT_DIR/DOMAIN.pcap`` by :meth:`capture_file` and :meth:`capture_stop`.

        ``--immediate-mode`` matters: with libpcap's default TPACKET_V3 ring, packets wait
        in a block until it fills or times out, and the ones still waiting when tcpdump is
        stopped are lost; ``-U`` then writes each packet to the file as it comes."""
        if self._captures:
            raise DockerError("a capture is already running (capture_stop first)")
        started: list[_Capture] = []
        self._capture_dir = Path(out_dir)
        for d in domains:
            self.bridge(d)
            for h in self.topology.hosts.values():
                if d not in h.interfaces or not self.container(h.name).attrs["State"].get(
                    "Running"
                ):
                    continue
                ifname = self.ifname(h.name, d)
                base = f"{CAPTURE_DIR}/qkdcap-{d}"
                script = (
                    f"rm -f {base}.pcap {base}.err; echo $$ > {base}.pid; "
                    f"exec tcpdump -i {ifname} -Q out --immediate-mode -U -n -s 0 -Z root "
                    f"-w {base}.pcap "
                    f"2> {base}.err"
                )
                self.container(h.name).exec_run(["sh", "-c", script], detach=True)
                started.append(_Capture(h.name, d, ifname, f"{base}.pcap"))
        self._captures = started
        deadline = time.monotonic() + timeout
        for cap in started:
            err = cap.path.removesuffix(".pcap") + ".err"
            while True:
                r = self.container(cap.host).exec_run(["cat", err])
                if b"listening on" in r.output:
                    break
                if time.monotonic() > deadline:
                    raise DockerError(
                        f"tcpdump in {cap.host} on {cap.domain} did not start: "
                        f"{r.output.decode(errors='replace').strip()}"
                    )
                time.sleep(0.1)
        self.progress(f"[{self.prefix}] capturing on {len(started)} interface(s)")

    def capture_file(self, domain: str) -> Path:
        """What the members of ``domain`` captured so far, merged into ``OUT_DIR/DOMAIN.pcap``
        (tcpdump writes each packet as it goes: ``-U``)."""
        caps = [cap for cap in self._captures if cap.domain == domain]
        if not caps or self._capture_dir is None:
            raise DockerError(f"no capture is running on {domain}")
        return self._merge(domain, caps)

    def capture_stop(self) -> dict[str, Path]:
        """Stop the captures and write one pcap per domain (``OUT_DIR/DOMAIN.pcap``, each
        packet once, by time). A container that died meanwhile (``kill``) still gives what
        it captured until then."""
        caps, self._captures = self._captures, []
        if not caps:
            return {}
        for cap in caps:
            c = self.container(cap.host)
            if c.attrs["State"].get("Running"):
                base = cap.path.removesuffix(".pcap")
                c.exec_run(
                    [
                        "sh",
                        "-c",
                        f"kill -INT $(cat {base}.pid) 2>/dev/null; "
                        f"for i in $(seq 50); do kill -0 $(cat {base}.pid) 2>/dev/null || exit 0; "
                        "sleep 0.1; done",
                    ]
                )
        written = {}
        for d in dict.fromkeys(cap.domain for cap in caps):
            written[d] = self._merge(d, [cap for cap in caps if cap.domain == d])
        self.progress(f"[{self.prefix}] captures: {', '.join(str(p) for p in written.values())}")
        return written

    def _merge(self, domain: str, caps: list[_Capture]) -> Path:
        assert self._capture_dir is not None
        self._capture_dir.mkdir(parents=True, exist_ok=True)
        path = self._capture_dir / f"{domain}.pcap"
        path.write_bytes(merge_pcaps(self._read_file(cap.host, cap.path) for cap in caps))
        return path

    def _read_file(self, host: str, path: str) -> bytes:
        """A file out of the host's container (running or not), via the archive API."""
        try:
            stream, _ = self.container(host).get_archive(path)
        except NotFound:
            return b""
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.next()
            f = tar.extractfile(member) if member is not None else None
            return f.read() if f is not None else b""
