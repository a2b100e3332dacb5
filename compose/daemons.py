"""Which daemon runs on which kind of host, and the config files the non-Python ones need.

The table (``PYTHON_KINDS`` and ``plan``):

=========== ====================================================================
kind        processes
=========== ====================================================================
node        ``python -m node_agent``
pce         ``python -m pce``
qkd-proxy   ``python -m qkd_proxy``
idq3p       ``python -m idq3p_emulator``
client      none (a place to run ``telnet``, ``qkdnet exec``, tests)
frr         FRR ``zebra`` then ``ospfd``, with generated ``zebra.conf``/``ospfd.conf``
bird        BIRD 2 ``bird -f``, with a generated ``bird.conf``
=========== ====================================================================

Python daemons get ``--topology FILE --host NAME --log-file RUN/NAME.log`` (the common
flags of :mod:`daemonkit.daemon`); their stdout and stderr go to ``RUN/NAME.out``. Emulators
also get their pair's seed file in ``RUN/secrets/`` (``--seed-file``), key managers the KM
channel key of each of their QKD links (one ``--sync-key-file`` each): see
:mod:`compose.keyfiles`.

Config generation for FRR and BIRD is a hook: ``register_config("frr", fn)`` (or
``NetnsTestbed(..., config_generators={"frr": fn})``) replaces the built-in generator, where
``fn(topology, host, workdir) -> {file name: text}``.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from compose import keyfiles, pki
from compose.state import index_dir
from gmpls.dataplane.names import ACCESS_IF
from gmpls.topology import Host, Topology

PYTHON_KINDS: dict[str, str] = {
    "node": "node_agent",
    "pce": "pce",
    "qkd-proxy": "qkd_proxy",
    "idq3p": "idq3p_emulator",
}
FRR_DIR = Path("/usr/lib/frr")

ConfigGenerator = Callable[[Topology, Host, Path], dict[str, str]]
CONFIG_GENERATORS: dict[str, ConfigGenerator] = {}


def register_config(kind: str, fn: ConfigGenerator) -> None:
    """Replace the config generator of ``kind`` ("frr" or "bird") for every testbed."""
    CONFIG_GENERATORS[kind] = fn


@dataclass(frozen=True)
class Launch:
    """One process to start inside the host's namespace."""

    name: str  # short label: "node_agent", "zebra", "ospfd", "bird"
    argv: list[str]
    out: Path  # where its stdout and stderr go
    log: Path  # the log it writes itself
    wait_for: Path | None = None  # start only once this path exists (ospfd waits for zebra)
    env: dict[str, str] = field(default_factory=dict)


#: kinds that run no daemon, and why
NO_DAEMON = {
    "client": "client hosts run no daemon",
    "host": "client hosts of an access domain run no daemon",
}


def dataplane_args(topo: Topology, host: str) -> list[str]:
    """``--access-if access`` for a node with an access domain (its data-plane port)."""
    if topo.host(host).kind == "node" and topo.access_domain(host) is not None:
        return ["--access-if", ACCESS_IF]
    return []


def plan(
    topo: Topology,
    host: Host,
    topo_file: Path,
    run_dir: Path,
    generators: dict[str, ConfigGenerator] | None = None,
) -> list[Launch] | str:
    """The processes to start for ``host``, or a string saying why there are none."""
    gens = {**CONFIG_GENERATORS, **(generators or {})}
    name = host.name
    if host.kind in NO_DAEMON:
        return NO_DAEMON[host.kind]
    if host.kind in PYTHON_KINDS:
        pkg = PYTHON_KINDS[host.kind]
        log = run_dir / f"{name}.log"
        argv = [sys.executable, "-m", pkg, "--topology", str(topo_file), "--host", name]
        argv += ["--log-file", str(log)]
        argv += keyfiles.daemon_args(topo, name, run_dir / keyfiles.FOLDER)
        argv += pki.daemon_args(topo, name, run_dir / pki.FOLDER)
        argv += dataplane_args(topo, name)
        return [Launch(pkg, argv, run_dir / f"{name}.out", log, env={"PYTHONUNBUFFERED": "1"})]
    if host.kind == "frr":
        return _frr_plan(topo, host, run_dir, gens)
    if host.kind == "bird":
        workdir = run_dir / f"bird-{name}"
        workdir.mkdir(parents=True, exist_ok=True)
        for fname, text in gens["bird"](topo, host, workdir).items():
            (workdir / fname).write_text(text)
        bird = shutil.which("bird") or "/usr/sbin/bird"
        if not Path(bird).exists():
            return "BIRD is not installed"
        argv = [bird, "-f", "-c", str(workdir / "bird.conf"), "-s", str(workdir / "bird.ctl")]
        argv += ["-P", str(workdir / "bird.pid")]
        return [Launch("bird", argv, run_dir / f"{name}.bird.out", run_dir / f"{name}.bird.log")]
    return f"no daemon is defined for kind {host.kind}"


def frr_runtime_dir(prefix: str, host: str) -> Path:
    """Where an FRR host's config, sockets, pid files and logs live.

    FRR drops to the ``frr`` user after start (and refuses to run as root unless root is
    in the ``frrvty`` group), so these files cannot sit in a run directory the ``frr`` user
    may not be able to reach (pytest's are 0700). They live under the global index
    directory instead (``/run/qkdnet/PREFIX/frr-HOST``), with symlinks to the logs and to
    the directory in the run directory. ``vtysh --vty_socket`` that directory talks to them.
    """
    return index_dir() / prefix / f"frr-{host}"


def _frr_plan(
    topo: Topology, host: Host, run_dir: Path, gens: dict[str, ConfigGenerator]
) -> list[Launch] | str:
    zebra, ospfd = FRR_DIR / "zebra", FRR_DIR / "ospfd"
    if not (zebra.exists() and ospfd.exists()):
        return f"FRR is not installed ({zebra}, {ospfd})"
    name = host.name
    rt = frr_runtime_dir(topo.prefix, name)
    if rt.exists():
        shutil.rmtree(rt)
    rt.mkdir(parents=True)
    for fname, text in gens["frr"](topo, host, rt).items():
        (rt / fname).write_text(text)
    _chown_tree(rt, "frr", "frr")
    link = run_dir / f"frr-{name}"
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link)  # the last run's, copied in by its teardown (netns._collect_runtime)
    link.symlink_to(rt)
    zsock = rt / "zserv.api"
    out = []
    for daemon, exe in (("zebra", zebra), ("ospfd", ospfd)):
        log = rt / f"{daemon}.log"
        argv = [str(exe), "-f", str(rt / f"{daemon}.conf"), "-i", str(rt / f"{daemon}.pid")]
        argv += ["-z", str(zsock), "--vty_socket", str(rt), "-A", "127.0.0.1", "-P", "0"]
        argv += ["--log", f"file:{log}"]
        out.append(
            Launch(
                daemon,
                argv,
                run_dir / f"{name}.{daemon}.out",
                log,
                wait_for=zsock if daemon == "ospfd" else None,
            )
        )
    return out


def _chown_tree(path: Path, user: str, group: str) -> None:
    try:
        shutil.chown(path, user, group)
        for p in path.iterdir():
            shutil.chown(p, user, group)
    except (LookupError, PermissionError):
        pass  # no frr user: FRR is then not installed the Debian way; it will say so


# --- built-in config generators ---------------------------------------------------------


def _stubs(topo: Topology, host: Host) -> list[str]:
    """The host's passive domains (the ones it speaks no OSPF on): OSPF stub networks
    (advertised, no adjacency), as the node agent advertises its own."""
    speaks = topo.ospf_domains(host.name)
    return [d for d in host.interfaces if d not in speaks]


def frr_config(
    topo: Topology, host: Host, workdir: Path, *, link_params: Sequence[str] = ()
) -> dict[str, str]:
    """zebra.conf and ospfd.conf for an FRR peer on the control LAN: OSPFv2 with the
    topology's timers, opaque LSAs, Router Information (RFC 7770) and TE (RFC 3630); its
    other domains are passive stub networks. ``link_params`` are more ``link-params``
    lines of the control interface (``metric 20``, ``max-bw 1.25e+09``...), for a
    generator that wraps this one (``functools.partial``)."""
    o = topo.ospf
    rid = host.router_id
    params = "".join(f"  {line}\n" for line in link_params)
    speaks = topo.ospf_domains(host.name)
    zebra = f"hostname {host.name}\n!\n" + "".join(
        f"interface {d}\n link-params\n  enable\n{params} exit-link-params\n!\n" for d in speaks
    )
    stubs = _stubs(topo, host)
    interfaces = [
        line
        for d in speaks
        for line in (
            f"interface {d}",
            f" ip ospf network {topo.ospf_network(d)}",
            f" ip ospf hello-interval {o.hello_interval}",
            f" ip ospf dead-interval {o.dead_interval}",
            f" ip ospf retransmit-interval {o.retransmit_interval}",
            f" ip ospf transmit-delay {o.transmit_delay}",
            f" ip ospf priority {host.ospf_priority}",
            "!",
        )
    ]
    ospfd = "\n".join(
        [
            f"hostname {host.name}",
            "!",
            *interfaces,
            "router ospf",
            f" ospf router-id {rid}",
            *[f" network {topo.domains[d].subnet} area {o.area}" for d in speaks],
            *[f" network {topo.domains[d].subnet} area {o.area}" for d in stubs],
            *[f" passive-interface {d}" for d in stubs],
            f" timers throttle spf {o.spf_delay_ms} {o.spf_hold_ms} {o.spf_max_hold_ms}",
            " capability opaque",
            " mpls-te on",
            f" mpls-te router-address {rid}",
            " router-info area",
            "!",
            "",
        ]
    )
    return {"zebra.conf": zebra, "ospfd.conf": ospfd}


def bird_config(topo: Topology, host: Host, workdir: Path) -> dict[str, str]:
    """bird.conf for a BIRD 2 OSPFv2 peer with the topology's timers on the domains it
    speaks OSPF on (the control LAN by default); its other domains are stub interfaces."""
    o = topo.ospf
    stubs = "".join(f'    interface "{d}" {{ stub yes; }};\n' for d in _stubs(topo, host))
    kinds = {"broadcast": "broadcast", "point-to-point": "ptp"}
    active = "".join(
        f"""\
    interface "{d}" {{
      type {kinds[topo.ospf_network(d)]};
      hello {o.hello_interval};
      dead {o.dead_interval};
      retransmit {o.retransmit_interval};
      transmit delay {o.transmit_delay};
      priority {host.ospf_priority};
    }};
"""
        for d in topo.ospf_domains(host.name)
    )
    text = f"""\
router id {host.router_id};
log "{workdir.parent / f"{host.name}.bird.log"}" all;
protocol device {{ scan time 1; }}
protocol ospf v2 ospf1 {{
  ipv4 {{ import all; export none; }};
  area {o.area} {{
{active}{stubs}  }};
}}
"""
    return {"bird.conf": text}


CONFIG_GENERATORS.update(frr=frr_config, bird=bird_config)
