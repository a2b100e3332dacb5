"""The namespace backend: one network namespace per host, one bridge per domain.

:class:`NetnsTestbed` implements :class:`compose.backend.Testbed`. For a topology with
prefix ``qk`` it creates, through pyroute2 (netlink):

- a Linux bridge per domain in the root namespace (``qk-ctrl``): no IP address, STP off,
  forward delay 0 (it forwards at once), multicast snooping off (so OSPF's 224.0.0.5/6 is
  flooded to every port) and IPv6 off (no link-local chatter in captures);
- a namespace per host (``qk-tn1``) with ``lo`` up and IPv6 off;
- a veth pair per (host, domain): the root end (``qk-tn1-ctrl``) is a bridge port, the
  other end is created directly inside the namespace and named after the domain (``ctrl``),
  with the host's address and the domain's prefix length; a node's end on its access
  domain is named ``access`` and has no address;
- the optical layer (:mod:`compose.channels`): a veth pair per TE link and lambda, both
  ends inside the two nodes' namespaces (``te1l3``), offloads off on them and on the
  access links.

Nothing routes between bridges, so domains are isolated as in the paper. When the kernel
passes bridged frames to iptables (``br_netfilter``, as on any host running Docker, whose
FORWARD policy is DROP), one ACCEPT rule per bridge, commented ``qkdnet:PREFIX``, lets the
testbed's own traffic through; it is removed with the testbed.

Then the daemons start inside the namespaces (:mod:`compose.daemons`). Every step is written
to ``RUN/state.json`` before the next begins, so :func:`teardown` can remove everything
after a crash; it also sweeps anything named ``PREFIX-...`` and every process still inside
one of the testbed's namespaces.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import select
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Unpack

from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

from compose import channels, cliclient, daemons, firewall, names, neigh, nsutil, pki
from compose.backend import (
    Capture,
    Progress,
    RunDir,
    Testbed,
    TestbedError,
    TestbedOptions,
    TopologySource,
)
from compose.state import Daemon, State, forget_index, index_dir, indexed, load_state
from gmpls.dataplane.names import ACCESS_IF

log = logging.getLogger("compose.netns")

_Socket = socket.socket  # (inside the class, ``socket`` is the method)
#: a Linux bridge has at most this many ports (BR_MAX_PORTS)
MAX_BRIDGE_PORTS = 1024
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _need_root() -> None:
    if os.geteuid() != 0:
        raise TestbedError("needs root (network namespaces, bridges, nftables)")


def _log_progress(line: str) -> None:
    log.info("%s", line)


# --- firewall (br_netfilter) ------------------------------------------------------------


def _bridge_calls_iptables() -> bool:
    try:
        return Path("/proc/sys/net/bridge/bridge-nf-call-iptables").read_text().strip() == "1"
    except OSError:
        return False


# --- sysctl helpers ---------------------------------------------------------------------


def _disable_ipv6_root(ifname: str) -> None:
    with contextlib.suppress(OSError):
        Path(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6").write_text("1")


# --- teardown (needs no topology: state file plus a sweep by prefix) --------------------


def teardown(prefix: str, state: State | None = None, progress: Progress = _log_progress) -> None:
    """Remove everything a testbed with ``prefix`` created. Idempotent; works from the state
    file, from a partial one, or from nothing at all (sweep of ``PREFIX-*`` names)."""
    if state is None:
        path = indexed().get(prefix)
        state = load_state(path) if path else None
    spaces = sorted(
        set(state.namespaces if state else ())
        | {n for n in nsutil.list_netns() if names.owns(prefix, n)}
    )
    # 1. daemons we recorded, then anything else still running inside our namespaces
    recorded = {d.pid: d.started for ds in (state.daemons.values() if state else ()) for d in ds}
    recorded.update({d.pid: d.started for d in (state.packs if state else ())})
    if recorded:
        live = {p: s for p, s in recorded.items() if nsutil.alive(p, s)}
        if live:
            progress(f"[{prefix}] stopping {len(live)} daemon process(es)")
            killed = nsutil.terminate(live)
            if killed:
                progress(f"[{prefix}] SIGKILL for pid(s) {', '.join(map(str, killed))}")
    strays = nsutil.pids_in_netns(spaces)
    if strays:
        progress(f"[{prefix}] stopping {len(strays)} other process(es) inside the namespaces")
        nsutil.terminate({p: nsutil.start_time(p) for p in strays})
    # 2. impairments
    _nft_apply(prefix, {})
    # 3. namespaces: the kernel then destroys their interfaces in one batch, and with
    #    each veth its root end (deleting veths one by one costs ~20 ms each)
    for ns in spaces:
        with contextlib.suppress(FileNotFoundError, OSError):
            netns.remove(ns)
    if spaces:
        progress(f"[{prefix}] removed {len(spaces)} namespace(s)")
    # 4. links: wait for those veths to go, delete what is left (root ends whose
    #    namespace was already gone, bridges)
    removed_links = 0
    with IPRoute() as ipr:
        deadline = time.monotonic() + (10.0 if spaces else 0.0)
        while True:
            links = _owned_links(ipr, prefix)
            if not any(kind == "veth" for kind, _, _ in links) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        for _kind, _name, index in sorted(links, key=lambda x: x[0] == "bridge"):
            with contextlib.suppress(NetlinkError):
                ipr.link("del", index=index)
                removed_links += 1
    if removed_links:
        progress(f"[{prefix}] removed {removed_links} bridge(s) and stray veth(s)")
    # 5. firewall rules
    rules = firewall.remove("FORWARD", names.fw_comment(prefix))
    if rules:
        progress(f"[{prefix}] removed {len(rules)} iptables FORWARD rule(s)")
    # 6. FRR runtime files (kept as copies in the run directory)
    _collect_runtime(prefix, state)
    # 7. state
    if state is not None:
        state.status = "down"
        state.daemons = {}
        state.forget()
    forget_index(prefix)
    left = leftovers(prefix)
    if left:
        raise TestbedError(f"[{prefix}] could not remove: {', '.join(left)}")


def _owned_links(ipr: IPRoute, prefix: str) -> list[tuple[str | None, str, int]]:
    """(kind, name, index) of every root-namespace link named ``PREFIX-...``."""
    out = []
    for link in ipr.get_links():
        ifname = link.get_attr("IFLA_IFNAME")
        if ifname and names.owns(prefix, ifname):
            info = link.get_attr("IFLA_LINKINFO")
            out.append((info.get_attr("IFLA_INFO_KIND") if info else None, ifname, link["index"]))
    return out


def _collect_runtime(prefix: str, state: State | None) -> None:
    """Move FRR's runtime directories (see ``daemons.frr_runtime_dir``) into the run dir."""
    rt_root = index_dir() / prefix
    if not rt_root.is_dir():
        return
    if state is not None:
        for d in rt_root.iterdir():
            dest = Path(state.run_dir) / d.name
            with contextlib.suppress(OSError):
                if dest.is_symlink():
                    dest.unlink()
                if not dest.exists():
                    shutil.copytree(d, dest, ignore=shutil.ignore_patterns("*.api", "*.vty"))
    shutil.rmtree(rt_root, ignore_errors=True)


def leftovers(prefix: str) -> list[str]:
    """Everything with this prefix that exists now: namespaces, links, nft table, rules."""
    out = [f"namespace {n}" for n in nsutil.list_netns() if names.owns(prefix, n)]
    with IPRoute() as ipr:
        for link in ipr.get_links():
            ifname = link.get_attr("IFLA_IFNAME")
            if ifname and names.owns(prefix, ifname):
                out.append(f"link {ifname}")
    if _nft_has_table(prefix):
        out.append(f"nft table bridge {names.nft_table(prefix)}")
    return out


# --- nftables impairments ---------------------------------------------------------------


def _nft(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nft", "-f", "-"], input=script, capture_output=True, text=True, check=False
    )


def _nft_has_table(prefix: str) -> bool:
    if shutil.which("nft") is None:
        return False
    r = subprocess.run(
        ["nft", "list", "table", "bridge", names.nft_table(prefix)],
        capture_output=True,
        text=True,
        check=False,
    )
    return r.returncode == 0


def _nft_apply(prefix: str, loss: dict[str, tuple[float, list[str]]]) -> None:
    """Replace the prefix's bridge-family table with one drop rule per impaired domain:
    frames entering the domain's bridge from any of ``ports`` are dropped with the given
    probability (numgen random, 0.01 % steps). An empty ``loss`` deletes the table."""
    if shutil.which("nft") is None:
        if loss:
            raise TestbedError("nft (nftables) is not installed; packet loss needs it")
        return
    table = names.nft_table(prefix)
    script = f"add table bridge {table}\ndelete table bridge {table}\n"
    rules = []
    for domain, (pct, ports) in sorted(loss.items()):
        if pct <= 0 or not ports:
            continue
        threshold = min(10000, round(pct * 100))
        port_set = ", ".join(f'"{p}"' for p in ports)
        chance = "" if threshold >= 10000 else f"numgen random mod 10000 < {threshold} "
        rules.append(
            f'    iifname {{ {port_set} }} {chance}counter drop comment "loss {domain} {pct:g}%"'
        )
    if rules:
        script += (
            f"table bridge {table} {{\n  chain forward {{\n"
            "    type filter hook forward priority 0; policy accept;\n"
            + "\n".join(rules)
            + "\n  }\n}\n"
        )
    r = _nft(script)
    if r.returncode != 0:
        raise TestbedError(f"nft failed: {r.stderr.strip()}")


# --- the testbed ------------------------------------------------------------------------


@dataclass(frozen=True)
class Interface:
    host: str
    domain: str
    address: str
    prefixlen: int
    veth: str  # root end
    inner: str  # name inside the namespace


class NetnsTestbed(Testbed):
    """A topology brought up in network namespaces.

    >>> tb = NetnsTestbed("topologies/paper.yaml", "run/paper", prefix="xx")  # doctest: +SKIP
    >>> tb.up(start_daemons=False); tb.exec("tn1", ["ip", "-br", "addr"]); tb.down()

    ``prefix`` overrides the topology's (a copy of the file with the new prefix is written
    to the run directory and given to the daemons), so tests never clash with a user's
    running testbed. ``config_generators`` replaces the FRR/BIRD config generators of
    :mod:`compose.routers` for this testbed.
    """

    backend: ClassVar[str] = "netns"
    label: ClassVar[str] = "testbed"
    option: ClassVar[str] = ""

    def __init__(
        self,
        topology: TopologySource,
        run_dir: RunDir = None,
        *,
        config_generators: dict[str, daemons.ConfigGenerator] | None = None,
        pack: int | None = None,
        **options: Unpack[TestbedOptions],
    ) -> None:
        options["progress"] = options.get("progress") or _log_progress
        super().__init__(topology, run_dir, **options)
        self.generators = config_generators or {}
        if pack is not None and pack < 0:
            raise TestbedError(f"--pack {pack}: the number of daemons per process is at least 1")
        #: ``up --pack N``: N Python daemons per process (None or 0: one process each)
        self.pack = pack or None
        self.topo_file: Path = self.topology.path  # type: ignore[assignment]
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._capture: _BridgeCapture | None = None
        self.state = load_state(self.run_dir / "state.json") or State(
            self.prefix, self.topology.name, str(self.topo_file), str(self.run_dir)
        )

    # --- finding testbeds ---------------------------------------------------------------
    @classmethod
    def attach(cls, prefix: str, progress: Progress | None = None) -> NetnsTestbed:
        """The testbed that is up with ``prefix`` (from the global index)."""
        _need_root()
        path = indexed().get(prefix)
        st = load_state(path) if path else None
        if st is None:
            raise TestbedError(f"no testbed with prefix {prefix!r} is up (index: {index_dir()})")
        try:
            tb = cls(st.topology, st.run_dir, prefix=st.prefix, progress=progress)
        except Exception as e:  # the topology file is gone or broken
            raise TestbedError(f"testbed {prefix!r}: cannot load {st.topology}: {e}") from None
        tb.state = st
        return tb

    @classmethod
    def prefixes_up(cls) -> list[str]:
        """The prefixes in the global index (:func:`compose.state.indexed`)."""
        return sorted(indexed())

    @classmethod
    def remove(cls, prefix: str, progress: Progress = _log_progress) -> None:
        _need_root()
        path = indexed().get(prefix)
        teardown(prefix, load_state(path) if path else None, progress)

    # --- names --------------------------------------------------------------------------
    def netns(self, host: str) -> str:
        self.check_host(host)
        return names.netns_name(self.prefix, host)

    def bridge(self, domain: str) -> str:
        self.check_domain(domain)
        return names.bridge_name(self.prefix, domain)

    def interfaces(self) -> list[Interface]:
        """Every (host, domain) veth; a node's port on its access domain is named
        ``access`` and has no address (``address`` empty)."""
        out = []
        for h in self.topology.hosts.values():
            for d, addr in h.interfaces.items():
                plen = self.topology.domains[d].subnet.prefixlen
                veth = names.veth_name(self.prefix, h.name, d)
                out.append(Interface(h.name, d, str(addr), plen, veth, d))
            acc = self.topology.access_domain(h.name)
            if acc is not None:
                veth = names.veth_name(self.prefix, h.name, acc.name)
                out.append(Interface(h.name, acc.name, "", 0, veth, ACCESS_IF))
        return out

    def ports(self, domain: str) -> list[str]:
        """The root veth ends attached to ``domain``'s bridge."""
        self.bridge(domain)
        return [i.veth for i in self.interfaces() if i.domain == domain]

    # --- up -----------------------------------------------------------------------------
    def up(self, start_daemons: bool = True, capture: Capture | None = None) -> NetnsTestbed:
        """Build bridges, namespaces and veths, start the captures (tcpdump on the bridges,
        before any daemon: they hold everything from the first packet on), then the daemons.
        On any failure everything built so far is removed again and the error re-raised."""
        _need_root()
        p = self.prefix
        left = leftovers(p)
        if left:
            raise TestbedError(
                f"prefix {p!r} is already in use ({', '.join(left[:4])}"
                f"{', ...' if len(left) > 4 else ''}); run `qkdnet down --prefix {p}` first"
            )
        for d in self.topology.domains:
            n = len(self.ports(d))
            if n > MAX_BRIDGE_PORTS:
                raise TestbedError(
                    f"domain {d} has {n} hosts; a Linux bridge takes at most {MAX_BRIDGE_PORTS}"
                )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.state = State(p, self.topology.name, str(self.topo_file), str(self.run_dir))
        self.state.up_pid = os.getpid()
        self.state.save()
        t0 = time.monotonic()
        with self._building():
            self.make_secrets()
            self._build()
            if capture is not None:
                self.capture_start(capture.domains, capture.out_dir)
            if start_daemons:
                self.start_all()
            self.state.status = "up"
            self.state.save()
        self.progress(
            f"[{p}] up: {len(self.state.namespaces)} namespaces, {len(self.state.bridges)} "
            f"bridges, {len(self.state.veths)} veths in {time.monotonic() - t0:.2f} s; "
            f"run dir {self.run_dir}"
        )
        return self

    def _build(self) -> None:
        p, st, topo = self.prefix, self.state, self.topology
        fw = _bridge_calls_iptables() and shutil.which("iptables") is not None
        self._neighbour_limits()
        with IPRoute() as ipr:
            bridge_index: dict[str, int] = {}
            for d in topo.domains.values():
                br = names.bridge_name(p, d.name)
                st.bridges.append(br)
                st.save()
                ipr.link(
                    "add",
                    ifname=br,
                    kind="bridge",
                    br_stp_state=0,
                    br_forward_delay=0,
                    br_mcast_snooping=0,
                )
                idx = ipr.link_lookup(ifname=br)[0]
                _disable_ipv6_root(br)
                ipr.link("set", index=idx, state="up")
                bridge_index[d.name] = idx
                extra = ""
                if fw:
                    rule = ["FORWARD", *firewall.accept_within(br, names.fw_comment(p))]
                    r = firewall.iptables(["-I", *rule])
                    if r.returncode != 0:
                        raise TestbedError(f"iptables -I {' '.join(rule)}: {r.stderr.strip()}")
                    st.fw_rules.append(rule)
                    st.save()
                    extra = ", iptables FORWARD accept (br_netfilter)"
                self.progress(f"[{p}] bridge {br:<13} {d.name} {d.subnet}{extra}")
            by_host: dict[str, list[Interface]] = {}
            for i in self.interfaces():
                by_host.setdefault(i.host, []).append(i)
            for h in topo.hosts.values():
                ns = names.netns_name(p, h.name)
                # recorded before they exist: teardown takes absent names in its stride
                st.namespaces.append(ns)
                st.veths += [i.veth for i in by_host.get(h.name, [])]
                st.save()
                nsutil.create_netns(ns)
                nsutil.write_sysctl_in(
                    ns,
                    {
                        "net/ipv6/conf/all/disable_ipv6": "1",
                        "net/ipv6/conf/default/disable_ipv6": "1",
                    },
                )
                for i in by_host.get(h.name, []):
                    ipr.link(
                        "add", ifname=i.veth, kind="veth", peer={"ifname": i.inner, "net_ns_fd": ns}
                    )
                    idx = ipr.link_lookup(ifname=i.veth)[0]
                    _disable_ipv6_root(i.veth)
                    ipr.link("set", index=idx, master=bridge_index[i.domain], state="up")
                with nsutil.iproute_in(ns) as nsr:
                    nsr.link("set", index=nsr.link_lookup(ifname="lo")[0], state="up")
                    for i in by_host.get(h.name, []):
                        j = nsr.link_lookup(ifname=i.inner)[0]
                        if i.address:
                            nsr.addr("add", index=j, address=i.address, prefixlen=i.prefixlen)
                        nsr.link("set", index=j, state="up")
                addrs = ", ".join(
                    f"{i.inner} {i.address}/{i.prefixlen}" if i.address else i.inner
                    for i in by_host.get(h.name, [])
                )
                self.progress(f"[{p}] host   {h.name:<8} {h.kind:<9} netns {ns}: {addrs}")
        self._build_dataplane()

    def _neighbour_limits(self) -> None:
        """Make room in the kernel's neighbour table, which all namespaces share
        (:mod:`compose.neigh`): past its limit packets to new next hops are dropped."""
        neigh.make_room(self.topology, self.progress, self.prefix)

    def _build_dataplane(self) -> None:
        """The channels (a veth pair per TE link and lambda, between the nodes'
        namespaces), then offloads off on them and on both ends of the access links."""
        p, topo = self.prefix, self.topology
        t0 = time.monotonic()
        chans = channels.pairs(topo)

        def ns_path(host: str) -> str:
            return str(nsutil.netns_path(names.netns_name(p, host)))

        channels.build(chans, ns_path)
        per_ns = channels.names_by_node(chans)
        root_ends = []
        for i in self.interfaces():
            if self.topology.domains[i.domain].access is not None:
                per_ns.setdefault(i.host, []).append(i.inner)
                root_ends.append(i.veth)
        try:
            channels.offloads_off_all(per_ns, ns_path, root_ends)
        except RuntimeError as e:
            raise TestbedError(f"{e}") from None
        if chans or root_ends:
            self.progress(
                f"[{p}] optical layer: {len(chans)} channel(s) (veth pairs, MTU "
                f"{channels.CHANNEL_MTU}), offloads off, in {time.monotonic() - t0:.2f} s"
            )

    # --- daemons ------------------------------------------------------------------------
    def start_all(self, hosts: Iterable[str] | None = None) -> None:
        """Start the daemons of ``hosts`` (default: every host); their logs of an earlier
        run in the same run directory are removed first (``qkdnet start HOST`` later appends
        to the same run's logs)."""
        chosen = list(self.topology.hosts if hosts is None else hosts)
        for h in chosen:
            self.topology.host(h)
            for pattern in (f"{h}.log", f"{h}.out", f"{h}.*.log", f"{h}.*.out"):
                for old in self.run_dir.glob(pattern):
                    with contextlib.suppress(OSError):
                        old.unlink()
        started = []
        groups = self._pack_groups(chosen)
        packed = {h for g in groups for h in g}
        for h in chosen:
            if h not in packed:
                started += self._start(h)
        for hosts in groups:
            started += self._start_pack(hosts)
        if started:
            # a daemon that dies at once (bad flag, import error) is reported now, not later
            time.sleep(0.3)
            self._check_started(started)

    def _check_started(self, started: list[tuple[str, Daemon]]) -> None:
        for host, d in started:
            proc = self._procs.get(d.pid)
            code = proc.poll() if proc is not None else None
            if proc is None and not nsutil.alive(d.pid, d.started):
                code = -1
            if code is None:
                continue
            words = _last_words(self.out_file(host, d.name), Path(d.log), 1)
            tail = f": {words[-1]}" if words else ""
            self.progress(
                f"[{self.prefix}] daemon {host:<8} {d.name} exited at once ({code}){tail}"
            )
            self.state.daemons[host] = [x for x in self.state.daemons.get(host, []) if x is not d]
            self.state.skipped[host] = f"{d.name} exited with code {code}{tail}"
        self.state.save()

    def _start(self, host: str, extra_args: Sequence[str] = ()) -> list[tuple[str, Daemon]]:
        h = self.topology.host(host)
        plan = daemons.plan(self.topology, h, self.topo_file, self.run_dir, self.generators)
        if isinstance(plan, str):
            self.state.skipped[host] = plan
            self.state.save()
            if h.kind not in daemons.NO_DAEMON:
                self.progress(f"[{self.prefix}] daemon {host:<8} not started: {plan}")
            return []
        self.state.skipped.pop(host, None)
        out = []
        for launch in plan:
            if launch.wait_for is not None:
                deadline = time.monotonic() + 5.0
                while not launch.wait_for.exists() and time.monotonic() < deadline:
                    time.sleep(0.02)
            argv = [*launch.argv, *extra_args]
            proc = self.popen(
                host,
                argv,
                stdout=open(launch.out, "ab"),  # noqa: SIM115 (the child keeps it)
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.run_dir,
                env={**os.environ, **launch.env, **self._pythonpath()},
            )
            d = Daemon(launch.name, argv, proc.pid, nsutil.start_time(proc.pid), str(launch.log))
            self.state.daemons.setdefault(host, []).append(d)
            self.state.save()
            self.progress(
                f"[{self.prefix}] daemon {host:<8} {launch.name} pid {proc.pid} log {launch.log}"
            )
            out.append((host, d))
        return out

    # --- pack mode: many Python daemons per process (docs/scale.md) ------------------------
    def _pack_groups(self, hosts: Sequence[str]) -> list[list[str]]:
        """The hosts of Python daemons, in order, cut into groups of ``pack``."""
        if not self.pack:
            return []
        py = [h for h in hosts if self.topology.host(h).kind in daemons.PYTHON_KINDS]
        return [py[i : i + self.pack] for i in range(0, len(py), self.pack)]

    def _start_pack(self, hosts: Sequence[str]) -> list[tuple[str, Daemon]]:
        """One ``python -m compose.pack`` process for the daemons of ``hosts``, started in
        the root namespace: each daemon opens its sockets in its own host's namespace."""
        name = f"pack-{len(self.state.packs)}"
        members, launches = [], {}
        for h in hosts:
            plan = daemons.plan(self.topology, self.topology.host(h), self.topo_file, self.run_dir)
            assert not isinstance(plan, str) and len(plan) == 1
            launch = launches[h] = plan[0]
            pkg = launch.argv[2]  # [python, -m, PACKAGE, ARG...]
            members.append({"host": h, "netns": self.netns(h), "package": pkg,
                            "argv": launch.argv[3:]})  # fmt: skip
        spec = self.run_dir / f"{name}.json"
        spec.write_text(json.dumps({"members": members}, indent=1))
        ctl, log, out = (self.run_dir / f"{name}{ext}" for ext in (".ctl", ".log", ".out"))
        argv = [sys.executable, "-m", "compose.pack", str(spec), "--control", str(ctl)]
        argv += ["--log-file", str(log)]
        proc = subprocess.Popen(
            argv,
            stdout=open(out, "ab"),  # noqa: SIM115 (the child keeps it)
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.run_dir,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self._pythonpath()},
        )
        self._procs[proc.pid] = proc
        started = nsutil.start_time(proc.pid)
        self.state.packs.append(Daemon(name, argv, proc.pid, started, str(log)))
        out_list = []
        for h in hosts:
            launch = launches[h]
            d = Daemon(launch.name, launch.argv, proc.pid, started, str(launch.log))
            self.state.daemons[h] = [d]
            self.state.packed[h] = name
            self.state.skipped.pop(h, None)
            out_list.append((h, d))
        self.state.save()
        self.progress(
            f"[{self.prefix}] {name} pid {proc.pid}: {len(hosts)} daemons "
            f"({', '.join(hosts[:4])}{', ...' if len(hosts) > 4 else ''}) log {log}"
        )
        return out_list

    def _start_packed(self, host: str, extra_args: Sequence[str]) -> list[int]:
        pack = next(p for p in self.state.packs if p.name == self.state.packed[host])
        if not nsutil.alive(pack.pid, pack.started):
            raise TestbedError(f"{host}: its pack {pack.name} (pid {pack.pid}) is not running")
        self._pack_control(host, shlex.join(["start", host, *extra_args]))
        plan = daemons.plan(self.topology, self.topology.host(host), self.topo_file, self.run_dir)
        assert not isinstance(plan, str)
        argv = [*plan[0].argv, *extra_args]
        self.state.daemons[host] = [
            Daemon(plan[0].name, argv, pack.pid, pack.started, str(plan[0].log))
        ]
        self.state.skipped.pop(host, None)
        self.state.save()
        self.progress(f"[{self.prefix}] daemon {host:<8} started in {pack.name} (pid {pack.pid})")
        return [pack.pid]

    def _pack_control(self, host: str, request: str) -> str:
        """Send one request to the pack of ``host`` (``compose.pack``'s control socket);
        its answer without ``ok ``, or :class:`TestbedError` with its error."""
        name = self.state.packed[host]
        path = self.run_dir / f"{name}.ctl"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(30)
                s.connect(str(path))
                s.sendall(request.encode() + b"\n")
                answer = s.makefile("r").readline().strip()
        except OSError as e:
            raise TestbedError(f"{host}: its pack {name} does not answer ({e})") from None
        word, _, rest = answer.partition(" ")
        if word != "ok":
            raise TestbedError(f"{host}: {rest or answer or 'no answer from ' + name}")
        return rest

    @staticmethod
    def _pythonpath() -> dict[str, str]:
        old = os.environ.get("PYTHONPATH")
        root = str(PROJECT_ROOT)
        return {"PYTHONPATH": root if not old else f"{root}{os.pathsep}{old}"}

    def running(self, host: str) -> list[Daemon]:
        return [d for d in self.state.daemons.get(host, []) if nsutil.alive(d.pid, d.started)]

    def stop(self, host: str) -> dict[int, int | None]:
        """Stop the host's daemon (SIGTERM, SIGKILL after 3 s): {pid: exit status} of the
        processes stopped; the status is known for those this object started."""
        self.topology.host(host)
        ds = self.state.daemons.get(host, [])
        pids = {d.pid: d.started for d in ds}
        if host in self.state.packed:  # its pack stops it; the pack and the others run on
            if self.running(host):
                self._pack_control(host, f"stop {host}")
            pids = {}
            self.state.daemons[host] = []
            self.state.skipped[host] = "stopped by qkdnet stop"
            self.state.save()
            self.progress(f"[{self.prefix}] daemon {host:<8} stopped ({self.state.packed[host]})")
            return {d.pid: None for d in ds}
        nsutil.terminate(pids)
        out: dict[int, int | None] = {}
        for pid in pids:
            proc = self._procs.pop(pid, None)
            out[pid] = None
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    out[pid] = proc.wait(timeout=1)
        self.state.daemons[host] = []
        if pids:
            self.state.skipped[host] = "stopped by qkdnet stop"
        self.state.save()
        if pids:
            self.progress(
                f"[{self.prefix}] daemon {host:<8} stopped (pid {', '.join(map(str, pids))})"
            )
        return out

    def start(self, host: str, extra_args: Sequence[str] = ()) -> list[int]:
        """Start the host's daemon again, its command line followed by ``extra_args``; an
        error if it is running. Returns the pids running now."""
        self.topology.host(host)
        if self.running(host):
            raise TestbedError(f"{host}: daemon already running (qkdnet stop {host} first)")
        if host in self.state.packed:
            return self._start_packed(host, extra_args)
        started = self._start(host, extra_args)
        if started:
            time.sleep(0.3)
            self._check_started(started)
        return [d.pid for _, d in started if nsutil.alive(d.pid, d.started)]

    # --- processes in a host ------------------------------------------------------------
    def popen(self, host: str, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        """``subprocess.Popen`` inside the host's namespace (extra keywords passed on)."""
        if "preexec_fn" in kw:
            raise TypeError("popen sets preexec_fn itself")
        with nsutil.closing_preexec(self.netns(host)) as enter:
            proc = subprocess.Popen(list(argv), preexec_fn=enter, **kw)
        self._procs[proc.pid] = proc
        return proc

    def exec(self, host: str, argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[Any]:
        """``subprocess.run`` inside the host's namespace (``check``, ``capture_output``,
        ``text``, ``timeout``... passed on)."""
        if "preexec_fn" in kw:
            raise TypeError("exec sets preexec_fn itself")
        with nsutil.closing_preexec(self.netns(host)) as enter:
            return subprocess.run(list(argv), preexec_fn=enter, **kw)

    def interact(self, host: str, argv: Sequence[str]) -> int:
        """Run ``argv`` inside the host's namespace, this terminal attached; its status."""
        return self.exec(host, argv).returncode

    def socket(
        self,
        host: str,
        family: int = socket.AF_INET,
        type: int = socket.SOCK_STREAM,
        proto: int = 0,
    ) -> socket.socket:
        """A socket living in the host's namespace (the calling thread returns at once)."""
        return nsutil.socket_in(self.netns(host), family, type, proto)

    def ping(self, host: str, target: str, timeout: float = 1.0, count: int = 1) -> bool:
        """ICMP echo from ``host`` to ``target`` (host name or address); True when any of
        ``count`` requests is answered within ``timeout`` seconds each."""
        return any(rtt is not None for rtt in self.probe(host, target, count, timeout, 0.0, True))

    def probe(
        self,
        host: str,
        target: str,
        count: int = 3,
        timeout: float = 1.0,
        interval: float = 0.2,
        first: bool = False,
    ) -> list[float | None]:
        """``count`` ICMP echo requests from ``host`` to ``target`` (host name or address),
        ``interval`` s apart: the round-trip time of each in ms, None when no reply came
        within ``timeout`` s (``first``: stop at the first reply)."""
        dst = self.address(target, self._shared_domain(host, target))
        out: list[float | None] = []
        with self.socket(host, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as s:
            ident = (os.getpid() + id(s)) & 0xFFFF
            for seq in range(1, count + 1):
                if seq > 1 and interval > 0:
                    time.sleep(interval)
                out.append(self._echo_once(s, dst, ident, seq, timeout))
                if first and out[-1] is not None:
                    break
        return out

    def _shared_domain(self, host: str, target: str) -> str | None:
        """The domain to reach ``target`` on from ``host``: the control domain when both
        are on it, else the first domain they share (None: ``target`` is an address)."""
        topo = self.topology
        if target not in topo.hosts:
            return None
        mine, theirs = topo.host(host).interfaces, topo.host(target).interfaces
        shared = [d for d in theirs if d in mine]
        if topo.control_domain in shared:
            return topo.control_domain
        return shared[0] if shared else None

    @staticmethod
    def _echo_once(s: _Socket, dst: str, ident: int, seq: int, timeout: float) -> float | None:
        t0 = time.monotonic()
        try:
            s.sendto(_echo(ident, seq), (dst, 0))
        except OSError:  # no route: as unreachable as no answer
            return None
        deadline = t0 + timeout
        while (left := deadline - time.monotonic()) > 0:
            r, _, _ = select.select([s], [], [], left)
            if not r:
                break
            data, (src, _) = s.recvfrom(2048)
            ihl = (data[0] & 0x0F) * 4
            typ, _, _, rid, rseq = struct.unpack("!BBHHH", data[ihl : ihl + 8])
            if typ == 0 and src == dst and rid == ident and rseq == seq:
                return (time.monotonic() - t0) * 1000.0
        return None

    def cli(
        self, host: str, command: str, via: str | None = None, timeout: float = 10.0
    ) -> cliclient.CliOutput:
        """Send one command to the host's telnet CLI and return its output (with the
        command's ``status``). The connection is made from ``via`` (a host name; default
        the host itself) to the host's control address and ``cli_port``."""
        h = self.topology.host(self.check_host(host))
        if h.cli_port is None:
            raise TestbedError(f"{host} has no cli_port")
        src = via or host
        self.check_reach(src, host)
        sock = self.socket(src, socket.AF_INET, socket.SOCK_STREAM)
        return cliclient.run_command(sock, (self.address(host), h.cli_port), command, timeout)

    def cli_session(self, host: str, via: str | None = None) -> int:
        """An interactive session on the host's CLI from ``via`` (default the host
        itself), on this terminal; its exit status."""
        h = self.topology.host(host)
        if h.cli_port is None:
            raise TestbedError(f"{host} has no cli_port")
        sock = self.socket(via or host, socket.AF_INET, socket.SOCK_STREAM)
        return cliclient.interactive(sock, (self.address(host), h.cli_port))

    # --- faults -------------------------------------------------------------------------
    def link(self, host: str, domain: str, up: bool) -> None:
        """Cut ``host`` off ``domain`` (its bridge port goes down: the host sees no carrier)
        or reconnect it."""
        self.set_links([(host, domain)], up)

    def set_links(self, ends: Iterable[tuple[str, str]], up: bool) -> None:
        """:meth:`link` for many (host, domain) pairs at once (one netlink socket, one
        state write): what a benchmark uses to bring every link up at one instant."""
        ends = list(ends)
        veths = []
        for host, domain in ends:
            if domain not in self.topology.host(host).interfaces:
                raise TestbedError(f"{host} has no interface on {domain}")
            veths.append(names.veth_name(self.prefix, host, domain))
        with IPRoute() as ipr:
            for veth in veths:
                found = ipr.link_lookup(ifname=veth)
                if not found:
                    raise TestbedError(f"{veth} does not exist (is the testbed up?)")
                ipr.link("set", index=found[0], state="up" if up else "down")
        for host, domain in ends:
            key = [host, domain]
            if up and key in self.state.links_down:
                self.state.links_down.remove(key)
            elif not up and key not in self.state.links_down:
                self.state.links_down.append(key)
        self.state.save()
        word = "up" if up else "down"
        if len(ends) == 1:
            self.progress(f"[{self.prefix}] link {ends[0][0]} {ends[0][1]} {word} ({veths[0]})")
        else:
            self.progress(f"[{self.prefix}] {len(ends)} links {word}")

    def impair(
        self,
        domain: str,
        loss: float | None = None,
        delay_ms: float | None = None,
        jitter_ms: float | None = None,
    ) -> None:
        """Random loss (percent, nftables) and delay/jitter (ms, netem, where the kernel
        has it) on every port of ``domain``'s bridge. Delay is applied as frames leave the
        bridge toward each host, so a frame is delayed once on its way across."""
        ports = self.ports(domain)
        if loss is not None and not 0 <= loss <= 100:
            raise TestbedError(f"--loss {loss} is not a percentage")
        if jitter_ms and not delay_ms:
            raise TestbedError("--jitter needs --delay")
        if delay_ms:
            self._netem(ports, delay_ms, jitter_ms or 0.0)
        before = dict(self.state.impairments.get(domain, {}))
        imp = self.state.impairments.setdefault(domain, {})
        if loss is not None:
            imp["loss"] = loss
        if delay_ms:
            imp["delay_ms"] = delay_ms
            imp["jitter_ms"] = jitter_ms or 0.0
        try:
            self._apply_loss()
        except TestbedError:
            self.state.impairments[domain] = before
            raise
        self.state.save()
        self.progress(f"[{self.prefix}] impair {domain}: {_describe(imp)}")

    def clear_impair(self, domain: str) -> None:
        ports = self.ports(domain)
        imp = self.state.impairments.pop(domain, {})
        if imp.get("delay_ms"):
            with IPRoute() as ipr:
                for port in ports:
                    for idx in ipr.link_lookup(ifname=port):
                        with contextlib.suppress(NetlinkError):
                            ipr.tc("del", index=idx, handle="1:0")
        self._apply_loss()
        self.state.save()
        self.progress(f"[{self.prefix}] impair {domain}: cleared")

    def dropped(self) -> dict[str, int]:
        """Frames dropped by each domain's loss impairment since impairments last changed
        (the counters of the nftables rules, which are rewritten on every change)."""
        if not _nft_has_table(self.prefix):
            return {}
        table = names.nft_table(self.prefix)
        r = subprocess.run(
            ["nft", "-j", "list", "table", "bridge", table],
            capture_output=True,
            text=True,
            check=False,
        )
        if r.returncode != 0:
            raise TestbedError(f"nft list table bridge {table}: {r.stderr.strip()}")
        out: dict[str, int] = {}
        for item in json.loads(r.stdout).get("nftables", []):
            rule = item.get("rule") or {}
            words = str(rule.get("comment", "")).split()
            if words[:1] != ["loss"] or len(words) < 2:
                continue
            for expr in rule.get("expr", []):
                if "counter" in expr:
                    out[words[1]] = out.get(words[1], 0) + int(expr["counter"]["packets"])
        return out

    def _apply_loss(self) -> None:
        loss = {
            d: (float(imp["loss"]), self.ports(d))
            for d, imp in self.state.impairments.items()
            if imp.get("loss")
        }
        _nft_apply(self.prefix, loss)

    def _netem(self, ports: list[str], delay_ms: float, jitter_ms: float) -> None:
        if shutil.which("modprobe"):
            subprocess.run(["modprobe", "-q", "sch_netem"], capture_output=True, check=False)
        done: list[int] = []
        with IPRoute() as ipr:
            for port in ports:
                idx = ipr.link_lookup(ifname=port)[0]
                try:
                    ipr.tc(
                        "replace",
                        "netem",
                        index=idx,
                        handle="1:0",
                        delay=int(delay_ms * 1000),
                        jitter=int(jitter_ms * 1000),
                    )
                except NetlinkError as e:
                    for j in done:
                        with contextlib.suppress(NetlinkError):
                            ipr.tc("del", index=j, handle="1:0")
                    if e.code in (2, 95):  # ENOENT, EOPNOTSUPP: no such qdisc kind
                        raise TestbedError(
                            "netem is not available in this kernel (CONFIG_NET_SCH_NETEM is "
                            "off and no sch_netem module): delay and jitter cannot be applied; "
                            "packet loss (--loss, nftables) works without it"
                        ) from None
                    raise TestbedError(f"tc netem on {port}: {e}") from None
                done.append(idx)

    # --- status -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """What exists and runs now, per host and domain (JSON-serialisable)."""
        spaces = set(nsutil.list_netns())
        with IPRoute() as ipr:
            links = {}
            for link in ipr.get_links():
                ifname = link.get_attr("IFLA_IFNAME")
                if ifname and names.owns(self.prefix, ifname):
                    links[ifname] = str(link.get_attr("IFLA_OPERSTATE")).lower()
        hosts = {}
        for h in self.topology.hosts.values():
            ns = names.netns_name(self.prefix, h.name)
            hosts[h.name] = {
                "kind": h.kind,
                "netns": ns,
                "netns_exists": ns in spaces,
                "interfaces": {
                    d: {
                        "address": f"{a}/{self.topology.domains[d].subnet.prefixlen}",
                        "veth": (v := names.veth_name(self.prefix, h.name, d)),
                        "state": links.get(v, "absent"),
                    }
                    for d, a in h.interfaces.items()
                },
                "daemons": [
                    self._daemon_status(h.name, d) for d in self.state.daemons.get(h.name, [])
                ],
                "note": self.state.skipped.get(h.name, "")
                or (
                    "never started"
                    if h.kind != "client" and not self.state.daemons.get(h.name)
                    else ""
                ),
            }
        domains = {
            d.name: {
                "subnet": str(d.subnet),
                "bridge": (b := names.bridge_name(self.prefix, d.name)),
                "state": links.get(b, "absent"),
                "impairment": self.state.impairments.get(d.name, {}),
            }
            for d in self.topology.domains.values()
        }
        return {
            "prefix": self.prefix,
            "topology": str(self.topo_file),
            "name": self.topology.name,
            "run_dir": str(self.run_dir),
            "status": self.state.status,
            "domains": domains,
            "hosts": hosts,
            "links_down": self.state.links_down,
            "etsi014": pki.status(self.topology, self.run_dir / pki.FOLDER),
        }

    def out_file(self, host: str, daemon: str) -> Path:
        """Where the daemon ``daemon`` of ``host`` writes its stdout and stderr."""
        if host in self.state.packed:
            return self.run_dir / f"{self.state.packed[host]}.out"
        if daemon in daemons.PYTHON_KINDS.values():
            return self.run_dir / f"{host}.out"
        return self.run_dir / f"{host}.{daemon}.out"

    def _daemon_status(self, host: str, d: Daemon) -> dict[str, Any]:
        running = nsutil.alive(d.pid, d.started)
        out: dict[str, Any] = {"name": d.name, "pid": d.pid, "running": running, "log": d.log}
        if not running:
            proc = self._procs.get(d.pid)
            code = proc.poll() if proc is not None else None
            out["exit"] = _exit_text(code)
            out["why"] = _last_words(self.out_file(host, d.name), Path(d.log))
            out["output"] = str(self.out_file(host, d.name))
        return out

    @staticmethod
    def format_status(st: dict[str, Any]) -> str:
        lines = [
            f"testbed {st['name']} prefix {st['prefix']}: {st['status']}  "
            f"(run dir {st['run_dir']})",
            f"  {'DOMAIN':<8} {'SUBNET':<16} {'BRIDGE':<14} {'STATE':<8} IMPAIRMENT",
        ]
        for d, info in st["domains"].items():
            imp = _describe(info["impairment"]) if info["impairment"] else ""
            lines.append(
                f"  {d:<8} {info['subnet']:<16} {info['bridge']:<14} {info['state']:<8} {imp}"
            )
        lines.append(f"  {'HOST':<8} {'KIND':<9} {'NETNS':<13} {'INTERFACES':<40} DAEMON")
        for h, info in st["hosts"].items():
            if info["daemons"]:
                daemon = ", ".join(
                    f"{d['name']} pid {d['pid']}"
                    + ("" if d["running"] else f" DEAD ({d.get('exit', 'exit status unknown')})")
                    for d in info["daemons"]
                )
            else:
                daemon = (
                    "-"
                    if info["kind"] in daemons.NO_DAEMON
                    else f"none ({info['note'] or 'stopped'})"
                )
            ifs = ", ".join(
                f"{dn} {i['address']}{'' if i['state'] == 'up' else ' [' + i['state'] + ']'}"
                for dn, i in info["interfaces"].items()
            )
            ns = info["netns"] if info["netns_exists"] else f"{info['netns']}?"
            lines.append(f"  {h:<8} {info['kind']:<9} {ns:<13} {ifs:<40} {daemon}")
        lines += dead_daemon_lines(st)
        return "\n".join(lines)

    # --- captures -----------------------------------------------------------------------
    def capture_start(self, domains: Sequence[str], out_dir: Path) -> None:
        """tcpdump on each domain's bridge in the root namespace: every frame crossing the
        domain, once."""
        if self._capture is not None:
            raise TestbedError("a capture is already running (capture_stop first)")
        cap = _BridgeCapture({d: self.bridge(d) for d in domains}, Path(out_dir))
        cap.start()
        self._capture = cap
        self.progress(f"[{self.prefix}] capturing {', '.join(domains)} into {out_dir}")

    def capture_file(self, domain: str) -> Path:
        """The live pcap of ``domain`` (tcpdump writes each packet as it sees it)."""
        if self._capture is None or domain not in self._capture.files:
            raise TestbedError(f"no capture is running on {domain}")
        return self._capture.files[domain]

    def capture_stop(self) -> dict[str, Path]:
        cap, self._capture = self._capture, None
        if cap is None:
            return {}
        files = cap.stop()
        lost = {d: n for d, n in cap.dropped.items() if n}
        if lost:
            self.progress(f"[{self.prefix}] tcpdump: frames dropped by the kernel: {lost}")
        return files

    # --- down ---------------------------------------------------------------------------
    def down(self) -> None:
        try:
            self.capture_stop()
        finally:
            teardown(self.prefix, self.state, self.progress)
            for proc in self._procs.values():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=1)
            self._procs.clear()


class _BridgeCapture:
    """tcpdump on each domain's bridge in the root namespace. ``--immediate-mode -U``: each
    packet reaches the file as it is seen."""

    def __init__(self, bridges: dict[str, str], out_dir: Path, buffer_kib: int = 32768) -> None:
        self.bridges = bridges
        self.out_dir = out_dir
        self.buffer_kib = buffer_kib
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.files: dict[str, Path] = {}
        #: frames the kernel dropped per domain (tcpdump's count when it stopped)
        self.dropped: dict[str, int] = {}

    def _err(self, domain: str) -> Path:
        return self.out_dir / f".{domain}.tcpdump.err"

    def start(self, timeout: float = 10.0) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for domain, br in self.bridges.items():
            path = self.out_dir / f"{domain}.pcap"
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            argv = ["tcpdump", "-i", br, "-n", "-s", "0", "-U", "--immediate-mode", "-Z", "root"]
            argv += ["-B", str(self.buffer_kib)]  # a loaded machine must not drop frames
            argv += ["-w", str(path)]
            with open(self._err(domain), "wb") as errf:
                self.procs[domain] = subprocess.Popen(
                    argv, stdout=subprocess.DEVNULL, stderr=errf, stdin=subprocess.DEVNULL
                )
            self.files[domain] = path
        deadline = time.monotonic() + timeout
        for domain, proc in self.procs.items():
            err = self._err(domain)
            while b"listening on" not in err.read_bytes():
                if proc.poll() is not None or time.monotonic() > deadline:
                    why = err.read_text(errors="replace").strip()
                    self.stop()
                    raise TestbedError(f"tcpdump on {self.bridges[domain]} did not start: {why}")
                time.sleep(0.02)

    def stop(self) -> dict[str, Path]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for domain in self.procs:
            err = self._err(domain)
            with contextlib.suppress(FileNotFoundError):
                m = re.search(r"(\d+) packets? dropped by kernel", err.read_text(errors="replace"))
                self.dropped[domain] = int(m.group(1)) if m else 0
                err.unlink()
        self.procs.clear()
        return dict(self.files)


def _exit_text(code: int | None) -> str:
    """What a dead daemon's exit status says, in words."""
    if code is None:
        return "exit status unknown: it was started by another qkdnet command"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _last_words(out: Path, log: Path, n: int = 3) -> list[str]:
    """The last ``n`` lines a dead daemon wrote to stdout/stderr (a traceback, its one-line
    error), else the message of its last log line; empty when it said nothing."""
    with contextlib.suppress(OSError):
        lines = [ln for ln in out.read_text(errors="replace").splitlines() if ln.strip()]
        if lines:
            return lines[-n:]
    with contextlib.suppress(OSError):
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        if lines:
            try:
                rec = json.loads(lines[-1])
                return [f"last log line: {rec.get('level', '')} {rec.get('msg', lines[-1])}"]
            except ValueError:
                return [f"last log line: {lines[-1]}"]
    return []


def dead_daemon_lines(st: dict[str, Any]) -> list[str]:
    """For ``qkdnet status``: each dead daemon, why (its last words) and how to restart it."""
    out = []
    for h, info in st["hosts"].items():
        for d in info["daemons"]:
            if d["running"]:
                continue
            out.append(f"  {h}: {d['name']} (pid {d['pid']}) is dead, {d.get('exit', '?')}")
            out += [f"    | {line}" for line in d.get("why", [])]
            if not d.get("why"):
                out.append(f"    | it wrote nothing ({d.get('output', 'no output file')})")
            out.append(f"    restart: qkdnet start {h} -p {st['prefix']}")
    return out


def _describe(imp: dict[str, float]) -> str:
    parts = []
    if imp.get("loss"):
        parts.append(f"loss {imp['loss']:g}%")
    if imp.get("delay_ms"):
        parts.append(f"delay {imp['delay_ms']:g} ms")
        if imp.get("jitter_ms"):
            parts.append(f"jitter {imp['jitter_ms']:g} ms")
    return ", ".join(parts) or "none"


def _echo(ident: int, seq: int) -> bytes:
    payload = b"qkdnet-ping"
    hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    data = hdr + payload
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return struct.pack("!BBHHH", 8, 0, ~total & 0xFFFF, ident, seq) + payload
