"""``qkdnet``: bring the testbed up and down, look inside it, break it on purpose.

One argparse tree for every command; the testbed commands talk to a backend through
:class:`compose.backend.Testbed` only, chosen by ``--backend`` (``netns``, the default, or
``docker``). See ``docs/qkdnet.md`` for every command with examples.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from compose import (
    clab,
    clients,
    converge,
    demo,
    draw,
    keyfiles,
    pki,
    probes,
    render,
    topogen,
    wireshark,
)
from compose.backend import Testbed, TestbedError, did_you_mean, quiet
from compose.cliclient import CliError
from compose.daemons import NO_DAEMON
from compose.docker import DockerTestbed, firewall_add, firewall_remove
from compose.netns import NetnsTestbed
from gmpls.topology import TopologyError, load

BACKENDS: dict[str, type[Testbed]] = {"netns": NetnsTestbed, "docker": DockerTestbed}


def _progress(line: str) -> None:
    print(line, flush=True)


def _backend(args: argparse.Namespace) -> type[Testbed]:
    return BACKENDS[args.backend]


def _several(cls: type[Testbed], up: list[str], hint: str) -> TestbedError:
    return TestbedError(f"several {cls.label}s are up ({', '.join(up)}); {hint}")


def _prefix(args: argparse.Namespace, cls: type[Testbed]) -> str:
    """The testbed a command is about: --prefix, the prefix of --topology, $QKDNET_PREFIX,
    or the only one that is up."""
    prefix = args.prefix
    if not prefix and args.topology:
        prefix = load(args.topology).prefix
    prefix = prefix or os.environ.get("QKDNET_PREFIX")
    up = cls.prefixes_up()
    if prefix:
        if up and prefix not in up:
            raise TestbedError(
                f"no {cls.label} with prefix {prefix!r} is up (up: {', '.join(up)})"
                + did_you_mean(str(prefix), up)
            )
        return str(prefix)
    if not up:
        raise TestbedError(f"no {cls.label} is up (qkdnet up{cls.option} TOPOLOGY)")
    if len(up) > 1:
        raise _several(cls, up, "choose one with --prefix")
    return up[0]


def _select(args: argparse.Namespace) -> Testbed:
    cls = _backend(args)
    return cls.attach(_prefix(args, cls), progress=_progress)


# --- the testbed commands ---------------------------------------------------------------


def _quiet_if_json(args: argparse.Namespace) -> Callable[[str], None]:
    """Progress lines on stdout, none with ``--json`` (stdout is one JSON object then)."""
    return quiet if getattr(args, "json", False) else _progress


def cmd_up(args: argparse.Namespace) -> int:
    cls = _backend(args)
    progress = _quiet_if_json(args)
    if args.pack is not None and cls is not NetnsTestbed:
        raise TestbedError("--pack is for the namespace backend (one container per host)")
    kw: dict[str, Any] = {"pack": args.pack} if args.pack is not None else {}
    tb = cls(args.topology_file, args.run_dir, prefix=args.prefix, progress=progress, **kw)
    tb.up(start_daemons=not args.no_daemons)
    out: dict[str, object] = {"prefix": tb.prefix, "backend": tb.backend, "up": True}
    rc = 0
    # with --wait the wait itself watches the daemons (and ends at the first death)
    if not args.no_daemons and _died_at_start(tb, SETTLE if args.wait is None else 0.0):
        return 1
    if args.wait is not None and not args.no_daemons:
        snap, took = converge.wait(tb, progress, timeout=args.wait)
        out["converge"] = {**snap.as_json(), "seconds": round(took, 1)}
        if snap.dead and _died_at_start(tb, settle=0.0):
            return 1
        rc = 0 if snap.converged else _not_converged(snap, args.wait)
    if args.json:
        print(json.dumps(out, indent=1))
    return rc


#: seconds ``up`` watches the daemons it started before it calls the bring-up good
SETTLE = 2.0


def _died_at_start(tb: Testbed, settle: float = SETTLE) -> bool:
    """After ``up``: watch the daemons for ``settle`` s; when one died, name each with the
    last line of its output on stderr, take the testbed down again, and say so (True)."""
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:  # every death of the settle time, not the first
        time.sleep(0.2)
    dead = converge.dead_daemons(tb)
    if not dead:
        return False
    for h, why in sorted(dead.items()):
        print(f"qkdnet up: {h}: {why}", file=sys.stderr)
    print(
        f"qkdnet up: {len(dead)} daemon(s) died at start; taking {tb.prefix} down again "
        f"(their output stays in {tb.run_dir})",
        file=sys.stderr,
    )
    tb.down()
    return True


def _not_converged(snap: converge.Snapshot, timeout: float) -> int:
    if snap.dead:
        again = ", ".join(f"qkdnet start {h}" for h in sorted(snap.dead))
        print(f"qkdnet: not ready, a daemon died: {snap.line()}; restart: {again}", file=sys.stderr)
        return 1
    print(f"qkdnet: not converged within {timeout:g} s: {snap.line()}", file=sys.stderr)
    return 1


def cmd_wait(args: argparse.Namespace) -> int:
    progress = _quiet_if_json(args)
    tb = _backend(args).attach(_prefix(args, _backend(args)), progress=progress)
    snap, took = converge.wait(tb, progress, timeout=args.timeout)
    if args.json:
        print(json.dumps({**snap.as_json(), "seconds": round(took, 1)}, indent=1))
    return 0 if snap.converged else _not_converged(snap, args.timeout)


def cmd_down(args: argparse.Namespace) -> int:
    cls = _backend(args)
    prefixes: list[str] = []
    if args.prefix:
        prefixes = [args.prefix]
    elif args.topology_file:
        try:
            prefixes = [load(args.topology_file).prefix]
        except TopologyError as e:
            raise TestbedError(
                f"{e}\n(use --prefix to take down a testbed by its prefix)"
            ) from None
    else:
        up = cls.prefixes_up()
        if args.all or len(up) == 1:
            prefixes = up
        elif not up:
            print(f"no {cls.label} is up")
            return 0
        else:
            raise _several(cls, up, "name one (TOPOLOGY or --prefix) or use --all")
    for p in prefixes:
        cls.remove(p, _progress)
        print(f"[{p}] down", flush=True)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    cls = _backend(args)
    if args.all:
        out = {}
        for p in cls.prefixes_up():
            try:
                out[p] = cls.attach(p).status()
            except TestbedError as e:
                out[p] = {"prefix": p, "error": str(e)}
        print(json.dumps(out, indent=1) if args.json else all_table(out, cls.label))
        return 0
    st = _select(args).status()
    print(json.dumps(st, indent=1) if args.json else cls.format_status(st))
    return 0


def all_table(beds: dict[str, dict[str, Any]], label: str) -> str:
    """``qkdnet status --all``: one row per host of every testbed that is up."""
    if not beds:
        return f"no {label} is up"
    rows = [("PREFIX", "TOPOLOGY", "HOST", "KIND", "ADDRESS", "DAEMON")]
    for p, st in beds.items():
        if "error" in st:
            rows.append((p, "?", "-", "-", "-", str(st["error"])))
            continue
        for h, info in st.get("hosts", {}).items():
            ifs: list[dict[str, Any]] = list(info.get("interfaces", {}).values())
            addr = str(ifs[0].get("address", "-")) if ifs else "-"
            rows.append((p, str(st.get("name")), h, info["kind"], addr, _daemon_word(info)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5]
        for r in rows
    )


def _daemon_word(info: dict[str, Any]) -> str:
    """One word or so for a host's daemon: running, DEAD, never started, -."""
    ds = info.get("daemons")
    if isinstance(ds, list) and ds:
        return ", ".join(
            f"{d['name']} running" if d["running"] else f"{d['name']} DEAD" for d in ds
        )
    if "state" in info:  # the Docker backend: the container is the daemon
        return str(info["state"])
    return "-" if info.get("kind") == "client" else f"none ({info.get('note') or 'stopped'})"


def cmd_exec(args: argparse.Namespace) -> int:
    argv = list(args.argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    tb = _select(args)
    tb.check_host(args.host)
    if not argv:  # a shell in the host, as Mininet's `xterm`/`mnexec` give one
        shell = os.environ.get("SHELL") or "/bin/bash"
        if tb.backend != "netns":
            shell = "/bin/sh"
        print(
            f"qkdnet exec: a shell in {args.host} ({tb.backend}); `exit` leaves it", file=sys.stderr
        )
        argv = [shell]
    try:
        return tb.interact(args.host, argv)
    except FileNotFoundError:
        print(f"qkdnet exec: {argv[0]}: command not found", file=sys.stderr)
        return 127


def cmd_stop(args: argparse.Namespace) -> int:
    tb = _select(args)
    if not tb.stop(tb.check_host(args.host)):
        print(f"{args.host}: no daemon was running")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    tb = _select(args)
    tb.check_host(args.host)
    return 0 if tb.start(args.host) or tb.topology.host(args.host).kind in NO_DAEMON else 1


def cmd_link(args: argparse.Namespace) -> int:
    tb = _select(args)
    tb.link(tb.check_host(args.host), tb.check_domain(args.domain), args.state == "up")
    return 0


def cmd_impair(args: argparse.Namespace) -> int:
    tb = _select(args)
    tb.check_domain(args.domain)
    if args.clear:
        given = [
            o
            for o, v in (("--loss", args.loss), ("--delay", args.delay), ("--jitter", args.jitter))
            if v is not None
        ]
        if given:
            raise TestbedError(f"--clear removes every impairment: it takes no {', '.join(given)}")
        tb.clear_impair(args.domain)
        return 0
    if args.loss is None and args.delay is None:
        raise TestbedError("give --loss PCT and/or --delay MS [--jitter MS], or --clear")
    tb.impair(args.domain, args.loss, args.delay, args.jitter)
    return 0


#: the CLI's words after which an address is expected: a host name there is replaced by
#: its address (its router ID, else its control address)
ADDRESS_WORDS = ("dst", "src", "head", "tail", "destination", "source", "neighbor", "peer")
#: a CLI answer line that reports an error (every daemon's CLI starts those with "% ")
ERROR_LINE = re.compile(r"^% ", re.M)


def with_addresses(tb: Testbed, command: str) -> str:
    """``command`` with each host name that follows one of :data:`ADDRESS_WORDS` replaced
    by the host's address: ``qe-service create dst tn5`` -> ``... dst 10.1.1.5``."""
    words = command.split(" ")
    topo = tb.topology
    for i in range(1, len(words)):
        if words[i - 1].lower() in ADDRESS_WORDS and words[i] in topo.hosts:
            h = topo.host(words[i])
            words[i] = str(h.router_id) if h.router_id is not None else tb.address(words[i])
    return " ".join(words)


def cli_failure(command: str, out: str) -> str | None:
    """Why a CLI answer is a failure (an error line, a service that ended failed), or
    None. The daemons' result status replaces this where the client has it."""
    status = getattr(out, "status", None)
    if status is not None:
        return None if status == 0 else "the command failed"
    m = ERROR_LINE.search(out)
    if m:
        return out[m.start() :].splitlines()[0]
    if re.search(r"\bwait\b", command) and "qe-service" in command:
        for line in out.splitlines():
            cols = line.split()
            if (len(cols) > 2 and cols[2] == "failed") or '"state": "failed"' in line:
                return "the QE service ended failed"
    return None


def cmd_cli(args: argparse.Namespace) -> int:
    tb = _select(args)
    tb.check_host(args.host)
    if args.via:
        tb.check_reach(args.via, args.host)
    if not args.command:  # an interactive session (compose/cliclient.py)
        return tb.cli_session(args.host, via=args.via)
    command = with_addresses(tb, " ".join(args.command))
    try:
        out = tb.cli(args.host, command, via=args.via, timeout=args.timeout)
    except CliError as e:
        raise CliError(f"{e}{_why_no_answer(tb, args.host)}") from None
    print(out)
    why = cli_failure(command, out)
    if why is None:
        return 0
    status = getattr(out, "status", None)
    if status is None:
        print(f"qkdnet cli: {args.host}: {why}", file=sys.stderr)
    return int(status) if isinstance(status, int) and status > 0 else 1


def _why_no_answer(tb: Testbed, host: str) -> str:
    """For a CLI that does not answer: the host's daemon is dead or was never started,
    why, and the command that starts it."""
    try:
        info = tb.status()["hosts"][host]
    except (TestbedError, KeyError, OSError):
        return ""
    again = f"qkdnet start {host} -p {tb.prefix}"
    for d in info.get("daemons", []):
        if not d.get("running", True):
            said = "; ".join(d.get("why", [])) or "it wrote nothing"
            return f"\n{host}'s {d['name']} is dead ({d.get('exit', '?')}): {said}\nrestart it: {again}"
    if "daemons" in info and not info["daemons"]:
        return f"\n{host} runs no daemon ({info.get('note') or 'not started'}); start it: {again}"
    return ""


def cmd_ping(args: argparse.Namespace) -> int:
    tb = _select(args)
    return probes.ping(tb, args.host, args.target, args.count, args.timeout, _progress)


def cmd_pingall(args: argparse.Namespace) -> int:
    return probes.pingall(_select(args), args.domain, args.timeout, _progress)


def cmd_demo(args: argparse.Namespace) -> int:
    out = sys.stderr if args.json else sys.stdout

    def progress(line: str) -> None:
        print(line, file=out, flush=True)

    topo = load(args.topology_file)  # a bad file is reported before anything is built
    cls = _backend(args)
    prefix = args.prefix or topo.prefix
    attached = prefix in cls.prefixes_up()
    if attached:  # `docker compose up`, an earlier `qkdnet up`: run on it
        bed = cls.attach(prefix, progress=progress)
        if bed.topology.name != topo.name:
            raise TestbedError(
                f"{cls.label} {prefix} is up with topology {bed.topology.name}, not {topo.name}"
            )
        progress(f"[demo] {cls.label} {prefix} is up ({bed.topology.path}): the demo runs on it")
    else:
        bed = cls(args.topology_file, args.run_dir, prefix=args.prefix, progress=progress)
    try:
        result, roles = demo.run(
            bed,
            progress,
            capture_dir=Path(args.capture) if args.capture is not None else None,
            keep=args.keep,
            timeout=args.timeout,
            svg=Path(args.svg) if args.svg is not None else None,
            attached=attached,
        )
    except demo.DemoError as e:
        print(f"qkdnet demo: {e}", file=sys.stderr)
        return 1
    commands = wireshark.tshark_commands(result.captures)
    if args.json:
        print(json.dumps({**result.as_json(), "tshark": commands}, indent=2))
    else:
        print(demo.render(result, roles), flush=True)
        if commands:
            print("read the captures with the qkdnet Wireshark plugin (docs/wireshark.md):")
            for argv in commands.values():
                print("  " + shlex.join(argv))
    fps = list(result.fingerprints.values())
    return 0 if fps and None not in fps and len(set(fps)) == 1 else 1


# --- files: compose render | firewall, topo gen -------------------------------------------


def cmd_compose_render(args: argparse.Namespace) -> int:
    topo = load(args.topology_file)
    out = None if args.output in (None, "-") else Path(args.output)
    where = out.parent if out else Path.cwd()
    if args.format == "containerlab":
        text = clab.render_lab(topo, where, image=args.image, domains=args.domains)
    else:
        text = render.render(topo, where, image=args.image)
    if out is None:
        sys.stdout.write(text)
        return 0
    if args.check:
        current = out.read_text() if out.exists() else None
        if current != text:
            print(
                f"{out} is out of date with {args.topology_file}; run `qkdnet compose render "
                f"{args.topology_file} -o {out}`",
                file=sys.stderr,
            )
            return 1
        print(f"{out} is up to date")
        return 0
    out.write_text(text)
    what = "nodes" if args.format == "containerlab" else "services"
    print(
        f"{out}: {len(topo.hosts)} {what}, {sum(d.access is None for d in topo.domains.values())} networks "
        f"(topology {topo.name}, image {args.image})"
    )
    return 0


def cmd_compose_secrets(args: argparse.Namespace) -> int:
    topo = load(args.topology_file)
    out = Path(args.output)
    made = keyfiles.write(topo, out)
    made += pki.write(topo, out / pki.FOLDER)  # the ETSI 014 CA and certificates
    print(f"{out}: {len(made)} fresh secret files (mode 0600) for {topo.name}")
    return 0


def cmd_compose_firewall(args: argparse.Namespace) -> int:
    topo = load(args.topology_file)
    if args.remove:
        n = firewall_remove(topo.prefix)
        print(f"removed {n} DOCKER-USER rule(s) for prefix {topo.prefix}")
    else:
        rules = firewall_add(topo)
        print(f"DOCKER-USER: intra-bridge ACCEPT for {', '.join(rules) or 'nothing'}")
    return 0


def cmd_topo_gen(args: argparse.Namespace) -> int:
    doc = topogen.generate(
        args.shape,
        args.nodes,
        seed=args.seed,
        lambdas=args.lambdas,
        prefix=args.prefix,
        name=args.name,
        qe=args.qe,
        kind=args.kind,
        p2p=args.p2p,
        ospf=args.ospf,
        qkd=args.qkd,
        qkd_sites=args.qkd_sites,
        timers=args.timers,
    )
    text = topogen.dump(doc)
    out = Path(args.out)
    if out.exists() and not args.force:
        raise TestbedError(f"{out} exists; --force overwrites it")
    out.write_text(text)
    topo = load(out)  # what we write must load
    print(
        f"{out}: {args.shape} of {args.nodes} nodes, {len(topo.te_links)} TE links, "
        f"control subnet {topo.domains[topo.control_domain].subnet}"
        + (f", {len(topo.sites)} sites, {len(topo.qkd_links)} QKD links" if args.qkd else "")
    )
    return 0


def cmd_topo_validate(args: argparse.Namespace) -> int:
    try:
        topo = load(args.topology_file)
    except TopologyError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        n = len(e.problems)
        print(f"{args.topology_file}: {n} problem{'s' if n > 1 else ''}", file=sys.stderr)
        return 1
    print(
        f"{args.topology_file}: OK: topology {topo.name}, prefix {topo.prefix}, "
        f"{len(topo.hosts)} hosts, {len(topo.domains)} domains, {len(topo.te_links)} TE links"
    )
    return 0


def _node_numbers(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in v.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r} is not a list of node numbers (1,4,7)") from None


def cmd_wireshark_install(args: argparse.Namespace) -> int:
    dest = wireshark.install(Path(args.folder) if args.folder else None)
    print(f"{dest}: installed; Wireshark and tshark load it when they start")
    return 0


def cmd_topo_draw(args: argparse.Namespace) -> int:
    topo = load(args.topology_file)
    lsps, note = None, "LSPs not asked for"
    if not args.no_live:
        lsps, note = draw.live_lsps(topo, _backend(args), required=args.live, prefix=args.prefix)
    title = f"{topo.name} ({args.topology_file})"
    if lsps is not None:
        title += f", LSPs of the running testbed {args.prefix or topo.prefix!r}"
    draw.write(Path(args.out), topo, lsps, title)
    print(
        f"{args.out}: {len(topo.hosts)} hosts, {len(topo.domains)} domains, "
        f"{len(topo.te_links)} TE links, {len(draw.qkd_links(topo))} QKD link(s); {note}"
    )
    return 0


# --- the parser ------------------------------------------------------------------------------


def _testbed_options() -> argparse.ArgumentParser:
    """The options of every command that acts on a running testbed."""
    sel = argparse.ArgumentParser(add_help=False)
    sel.add_argument("-p", "--prefix", help="the testbed's prefix (default: the only one up)")
    sel.add_argument("-t", "--topology", help="the testbed's topology file (for its prefix)")
    sel.add_argument("--backend", choices=BACKENDS, default="netns")
    return sel


def _add_testbed_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sel = _testbed_options()

    s = sub.add_parser("up", help="build the testbed and start its daemons")
    s.add_argument("topology_file", metavar="TOPOLOGY")
    s.add_argument("--run-dir", help="logs and state (default ./run/NAME)")
    s.add_argument("--no-daemons", action="store_true", help="network only")
    s.add_argument(
        "--pack",
        type=int,
        metavar="N",
        help="run N Python daemons per process, each with its sockets in its own host's "
        "namespace (large topologies; docs/scale.md)",
    )
    s.add_argument("-p", "--prefix", help="override the topology's name prefix")
    s.add_argument("--backend", choices=BACKENDS, default="netns")
    s.add_argument(
        "--wait",
        type=float,
        nargs="?",
        const=120.0,
        metavar="S",
        help="then wait (default 120 s) until OSPF and the PCE's TED have converged",
    )
    s.add_argument("--json", action="store_true", help="no progress; one JSON object")
    s.set_defaults(fn=cmd_up)

    s = sub.add_parser(
        "wait", parents=[sel], help="wait until OSPF and the PCE's TED have converged"
    )
    s.add_argument("--timeout", type=float, default=120.0, metavar="S")
    s.add_argument("--json", action="store_true", help="no progress; one JSON object")
    s.set_defaults(fn=cmd_wait)

    s = sub.add_parser("down", help="remove a testbed (idempotent, works after a crash)")
    s.add_argument("topology_file", nargs="?", metavar="TOPOLOGY")
    s.add_argument("-p", "--prefix")
    s.add_argument("--all", action="store_true", help="every testbed in the index")
    s.add_argument("--backend", choices=BACKENDS, default="netns")
    s.set_defaults(fn=cmd_down)

    s = sub.add_parser("status", parents=[sel], help="what exists and runs")
    s.add_argument("--json", action="store_true")
    s.add_argument("--all", action="store_true", help="one table of every testbed that is up")
    s.set_defaults(fn=cmd_status)

    s = sub.add_parser(
        "exec", parents=[sel], help="run a command inside a host (none: a shell there)"
    )
    s.add_argument("host")
    s.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ...")
    s.set_defaults(fn=cmd_exec)

    for name, fn, hlp in (
        ("stop", cmd_stop, "stop a host's daemon"),
        ("start", cmd_start, "start a host's daemon"),
    ):
        s = sub.add_parser(name, parents=[sel], help=hlp)
        s.add_argument("host")
        s.set_defaults(fn=fn)

    s = sub.add_parser("link", parents=[sel], help="cut a host off a domain, or reconnect it")
    s.add_argument("host")
    s.add_argument("domain")
    s.add_argument("state", choices=("down", "up"))
    s.set_defaults(fn=cmd_link)

    s = sub.add_parser("impair", parents=[sel], help="loss/delay/jitter on a domain")
    s.add_argument("domain")
    s.add_argument("--loss", type=float, metavar="PCT", help="random loss, percent (nftables)")
    s.add_argument("--delay", type=float, metavar="MS", help="delay (netem)")
    s.add_argument("--jitter", type=float, metavar="MS", help="jitter (netem, with --delay)")
    s.add_argument("--clear", action="store_true", help="remove the domain's impairments")
    s.set_defaults(fn=cmd_impair)

    _add_probe_commands(sub, sel)
    _add_demo_command(sub)


def _add_probe_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], sel: argparse.ArgumentParser
) -> None:
    """cli, ping, pingall, etsi, pcc: talking to a running testbed."""
    s = sub.add_parser(
        "cli", parents=[sel], help="a command on a host's CLI, or an interactive session"
    )
    s.add_argument("host")
    s.add_argument(
        "command",
        nargs="*",
        help="the command's words (no quotes needed); none: an interactive session",
    )
    s.add_argument("--from", dest="via", metavar="HOST", help="connect from this host")
    s.add_argument("--timeout", type=float, default=10.0)
    s.set_defaults(fn=cmd_cli)

    s = sub.add_parser("ping", parents=[sel], help="ICMP echo from a host: RTT and loss")
    s.add_argument("host")
    s.add_argument("target", help="host name or IPv4 address")
    s.add_argument("-c", "--count", type=_positive, default=3)
    s.add_argument("--timeout", type=float, default=1.0, help="seconds per reply")
    s.set_defaults(fn=cmd_ping)

    s = sub.add_parser("pingall", parents=[sel], help="every pair of hosts sharing a domain")
    s.add_argument("--domain", help="only this domain")
    s.add_argument("--timeout", type=float, default=1.0, help="seconds per reply")
    s.set_defaults(fn=cmd_pingall)
    clients.add_commands(sub, sel, _select)


def _positive(v: str) -> int:
    try:
        n = int(v)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{v!r} is not a positive count")
    return n


def _add_demo_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser(
        "demo",
        help="the paper's workflow end to end: QE service tn1 -> tn5, ladder, fingerprints",
        description=demo.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("topology_file", metavar="TOPOLOGY")
    s.add_argument("--backend", choices=BACKENDS, default="netns")
    s.add_argument("--capture", metavar="DIR", help="keep one pcap per domain in DIR")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--svg", metavar="FILE", help="draw the whole message ladder there (SVG)")
    s.add_argument("--keep", action="store_true", help="leave the testbed up afterwards")
    s.add_argument("-p", "--prefix", help="override the topology's name prefix")
    s.add_argument("--run-dir", help="logs and state (default ./run/NAME)")
    s.add_argument(
        "--timeout", type=float, default=90.0, help="seconds to wait for OSPF and the PCE"
    )
    s.set_defaults(fn=cmd_demo)


def _add_file_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("compose", help="Docker Compose files for a topology")
    csub = p.add_subparsers(dest="compose_cmd", required=True, metavar="SUBCOMMAND")
    r = csub.add_parser(
        "render", help="write the docker-compose.yml (or a containerlab lab) of a topology"
    )
    r.add_argument("topology_file", metavar="TOPOLOGY")
    r.add_argument(
        "--format",
        choices=("compose", "containerlab"),
        default="compose",
        help="a Compose file (default) or a containerlab topology (docs/containerlab.md)",
    )
    r.add_argument(
        "--domains",
        choices=clab.DOMAIN_MODES,
        default="bridge",
        help="containerlab: a domain is a host bridge (default) or a switch container "
        "(point-to-point links only: multi-host, clabernetes)",
    )
    r.add_argument("-o", "--output", help="file to write (default: standard output)")
    r.add_argument(
        "--image", default=render.IMAGE, help=f"image of every service (default {render.IMAGE})"
    )
    r.add_argument("--check", action="store_true", help="do not write; exit 1 if OUTPUT differs")
    r.set_defaults(fn=cmd_compose_render)
    k = csub.add_parser(
        "secrets",
        help="fresh key material for a plain `docker compose up` (a seed per emulator pair, "
        "a KM channel key per QKD link)",
    )
    k.add_argument("topology_file", metavar="TOPOLOGY")
    k.add_argument(
        "-o",
        "--output",
        default=keyfiles.FOLDER,
        help="folder (default ./secrets, next to the compose file)",
    )
    k.set_defaults(fn=cmd_compose_secrets)
    f = csub.add_parser(
        "firewall",
        help="allow traffic inside each domain's bridge (DOCKER-USER; needed for multicast "
        "when br_netfilter is on)",
    )
    f.add_argument("topology_file", metavar="TOPOLOGY")
    f.add_argument("--remove", action="store_true", help="remove the rules instead")
    f.set_defaults(fn=cmd_compose_firewall)

    w = sub.add_parser("wireshark", help="the Wireshark plugin of the project")
    wsub = w.add_subparsers(dest="wireshark_cmd", required=True, metavar="SUBCOMMAND")
    i = wsub.add_parser(
        "install",
        help="copy wireshark/qkdnet.lua into the personal Lua plugin folder "
        f"(~/{wireshark.PERSONAL_FOLDER})",
    )
    i.add_argument("--folder", help="copy it here instead")
    i.set_defaults(fn=cmd_wireshark_install)
    _add_topo_commands(sub)


def _add_topo_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("topo", help="topology tools")
    tsub = s.add_subparsers(dest="topo_cmd", required=True, metavar="SUBCOMMAND")
    g = tsub.add_parser("gen", help="write a larger topology (control LAN + TE links)")
    g.add_argument("shape", choices=topogen.SHAPES)
    g.add_argument("--nodes", type=int, required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--lambdas", type=int, default=8)
    g.add_argument("--prefix", default="qk")
    g.add_argument("--name", help="topology name (default SHAPEN, e.g. ring20)")
    g.add_argument(
        "--qe", action="store_true", help="add the QKD side at the two nodes farthest apart"
    )
    g.add_argument(
        "--qkd",
        action="store_true",
        help="add a QKD network: a key manager per site, QKD links along the TE links",
    )
    g.add_argument(
        "--qkd-sites",
        type=_node_numbers,
        default=(),
        metavar="1,4,7",
        help="with --qkd: the nodes that get a site (default: every node)",
    )
    g.add_argument("--kind", choices=topogen.KINDS, default="node", help="what the routers run")
    g.add_argument(
        "--p2p", action="store_true", help="also one /30 domain per link (point-to-point IP links)"
    )
    g.add_argument(
        "--ospf",
        choices=topogen.OSPF_MODES,
        default="lan",
        help="where OSPF runs: the control LAN (default), or p2p: point-to-point on every "
        "link's /30 (implies --p2p; for hundreds of nodes)",
    )
    g.add_argument(
        "--timers",
        choices=("auto", *topogen.TIMERS),
        default="auto",
        help=f"OSPF and RSVP timers: fast (1 s Hellos), scale (OSPF 10/40 s, retransmit 30 s, "
        f"SPF hold up to 30 s, RSVP Hellos 5 s); auto (default): scale from "
        f"{topogen.SCALE_FROM} nodes on",
    )
    g.set_defaults(fn=cmd_topo_gen)
    v = tsub.add_parser("validate", help="load a topology file: OK, or every problem (exit 1)")
    v.add_argument("topology_file", metavar="TOPOLOGY")
    v.set_defaults(fn=cmd_topo_validate)
    d = tsub.add_parser("draw", help="draw a topology (SVG by Graphviz; LSPs of a running one)")
    d.add_argument("topology_file", metavar="TOPOLOGY")
    d.add_argument("--out", required=True, metavar="FILE.svg", help="SVG (or DOT: FILE.dot)")
    live = d.add_mutually_exclusive_group()
    live.add_argument(
        "--live", action="store_true", help="the LSPs of its running testbed, or fail"
    )
    live.add_argument("--no-live", action="store_true", help="never ask a running testbed")
    d.add_argument("--backend", choices=BACKENDS, default="netns")
    d.add_argument("-p", "--prefix", help="the running testbed's prefix (default: the file's)")
    d.set_defaults(fn=cmd_topo_draw)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qkdnet", description="QKD-enabled GMPLS testbed in network namespaces or containers"
    )
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    _add_testbed_commands(sub)
    _add_file_commands(sub)
    return p


class _PipeSafe(io.TextIOBase):
    """stdout that survives its reader going away (``qkdnet status | head``): on the first
    broken pipe, file descriptor 1 becomes /dev/null and the command carries on (a
    testbed half brought up must not be abandoned because ``head`` had read enough)."""

    def __init__(self, inner: io.TextIOBase) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        try:
            return self.inner.write(text)
        except BrokenPipeError:
            self._devnull()
            return len(text)

    def flush(self) -> None:
        try:
            self.inner.flush()
        except BrokenPipeError:
            self._devnull()

    def _devnull(self) -> None:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, self.inner.fileno())
        os.close(null)

    def fileno(self) -> int:
        return self.inner.fileno()

    def isatty(self) -> bool:
        return self.inner.isatty()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stdout = sys.stdout
    if isinstance(stdout, io.TextIOBase) and not isinstance(stdout, _PipeSafe):
        sys.stdout = _PipeSafe(stdout)
    try:
        return int(args.fn(args))
    except (TestbedError, TopologyError, CliError, KeyError, ValueError, OSError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"qkdnet {args.cmd}: {msg}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        sys.stdout = stdout


if __name__ == "__main__":
    sys.exit(main())
