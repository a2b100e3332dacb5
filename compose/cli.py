"""``qkdnet``: bring the testbed up and down, look inside it, break it on purpose.

See ``docs/qkdnet.md`` for every command with examples.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from compose import demo, render, topogen
from compose import docker as dockerbackend
from compose import netns as nsbackend
from compose.cliclient import CliError
from compose.netns import Testbed, TestbedError, teardown
from compose.state import indexed, load_state
from gmpls.topology import TopologyError, load

BACKENDS = ("netns", "docker")


def _progress(line: str) -> None:
    print(line, flush=True)


def _need_root() -> None:
    if os.geteuid() != 0:
        raise TestbedError("needs root (network namespaces, bridges, nftables)")


def _select(args: argparse.Namespace) -> Testbed:
    """The running testbed the command is about: --topology, --prefix, $QKDNET_PREFIX, or
    the only one that is up."""
    _need_root()
    prefix = getattr(args, "prefix", None)
    topo_arg = getattr(args, "topology", None)
    if topo_arg and not prefix:
        prefix = load(topo_arg).prefix
    prefix = prefix or os.environ.get("QKDNET_PREFIX")
    if not prefix:
        up = indexed()
        if not up:
            raise TestbedError("no testbed is up (qkdnet up TOPOLOGY)")
        if len(up) > 1:
            raise TestbedError(
                f"several testbeds are up ({', '.join(sorted(up))}); choose one with --prefix"
            )
        prefix = next(iter(up))
    return Testbed.attach(prefix, progress=_progress)


def _backend(args: argparse.Namespace, command: str) -> int | None:
    """Run ``command`` on the docker backend when ``--backend docker`` was given: the
    module ``compose.docker`` provides ``cmd_up``/``cmd_down``/``cmd_status(args)``."""
    if getattr(args, "backend", "netns") == "netns":
        return None
    fn = getattr(dockerbackend, f"cmd_{command}", None)
    if fn is None:
        raise TestbedError(f"the docker backend has no {command} command")
    return int(fn(args))


def cmd_up(args: argparse.Namespace) -> int:
    if (rc := _backend(args, "up")) is not None:
        return rc
    _need_root()
    tb = Testbed(args.topology_file, args.run_dir, prefix=args.prefix, progress=_progress)
    tb.up(start_daemons=not args.no_daemons)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    if (rc := _backend(args, "down")) is not None:
        return rc
    _need_root()
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
        up = indexed()
        if args.all or len(up) == 1:
            prefixes = sorted(up)
        elif not up:
            print("no testbed is up")
            return 0
        else:
            raise TestbedError(
                f"several testbeds are up ({', '.join(sorted(up))}); "
                "name one (TOPOLOGY or --prefix) or use --all"
            )
    for p in prefixes:
        path = indexed().get(p)
        state = load_state(path) if path else None
        teardown(p, state, _progress)
        print(f"[{p}] down", flush=True)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    if (rc := _backend(args, "status")) is not None:
        return rc
    if args.all or (not args.prefix and not args.topology and len(indexed()) > 1):
        out = {}
        for p in sorted(indexed()):
            try:
                out[p] = Testbed.attach(p).status()
            except TestbedError as e:
                out[p] = {"prefix": p, "error": str(e)}
        if args.json:
            print(json.dumps(out, indent=1))
        else:
            for st in out.values():
                _print_status(st)
        return 0
    st = _select(args).status()
    if args.json:
        print(json.dumps(st, indent=1))
    else:
        _print_status(st)
    return 0


def _print_status(st: dict[str, Any]) -> None:
    if "error" in st:
        print(f"[{st['prefix']}] {st['error']}")
        return
    print(f"testbed {st['name']} prefix {st['prefix']}: {st['status']}  (run dir {st['run_dir']})")
    print(f"  {'DOMAIN':<8} {'SUBNET':<16} {'BRIDGE':<14} {'STATE':<8} IMPAIRMENT")
    for d, info in st["domains"].items():
        imp = nsbackend._describe(info["impairment"]) if info["impairment"] else ""
        print(f"  {d:<8} {info['subnet']:<16} {info['bridge']:<14} {info['state']:<8} {imp}")
    print(f"  {'HOST':<8} {'KIND':<9} {'NETNS':<13} {'INTERFACES':<40} DAEMON")
    for h, info in st["hosts"].items():
        if info["daemons"]:
            daemon = ", ".join(
                f"{d['name']} pid {d['pid']}{'' if d['running'] else ' (dead)'}"
                for d in info["daemons"]
            )
        else:
            daemon = "-" if info["kind"] == "client" else f"none ({info['note'] or 'stopped'})"
        ifs = ", ".join(
            f"{dn} {i['address']}{'' if i['state'] == 'up' else ' [' + i['state'] + ']'}"
            for dn, i in info["interfaces"].items()
        )
        ns = info["netns"] if info["netns_exists"] else f"{info['netns']}?"
        print(f"  {h:<8} {info['kind']:<9} {ns:<13} {ifs:<40} {daemon}")


def cmd_exec(args: argparse.Namespace) -> int:
    if (rc := _backend(args, "exec")) is not None:
        return rc
    argv = list(args.argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        raise TestbedError("nothing to run: qkdnet exec HOST -- CMD [ARGS...]")
    tb = _select(args)
    try:
        return tb.exec(args.host, argv).returncode
    except FileNotFoundError:
        print(f"qkdnet exec: {argv[0]}: command not found", file=sys.stderr)
        return 127


def cmd_stop(args: argparse.Namespace) -> int:
    if (rc := _backend(args, "stop")) is not None:
        return rc
    tb = _select(args)
    if not tb.stop(args.host):
        print(f"{args.host}: no daemon was running")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    if (rc := _backend(args, "start")) is not None:
        return rc
    tb = _select(args)
    return 0 if tb.start(args.host) or tb.topology.host(args.host).kind == "client" else 1


def cmd_link(args: argparse.Namespace) -> int:
    if getattr(args, "backend", "netns") != "netns":
        raise TestbedError(
            "link is only available on the netns backend (docker: use docker network disconnect / tc inside the container)"
        )
    _select(args).link(args.host, args.domain, args.state == "up")
    return 0


def cmd_impair(args: argparse.Namespace) -> int:
    if getattr(args, "backend", "netns") != "netns":
        raise TestbedError(
            "impair is only available on the netns backend (docker: use docker network disconnect / tc inside the container)"
        )
    tb = _select(args)
    if args.clear:
        tb.clear_impair(args.domain)
        return 0
    if args.loss is None and args.delay is None:
        raise TestbedError("give --loss PCT and/or --delay MS [--jitter MS], or --clear")
    tb.impair(args.domain, args.loss, args.delay, args.jitter)
    return 0


def cmd_cli(args: argparse.Namespace) -> int:
    if (rc := _backend(args, "cli")) is not None:
        return rc
    tb = _select(args)
    print(tb.cli(args.host, args.command, via=args.via, timeout=args.timeout))
    return 0


def cmd_ping(args: argparse.Namespace) -> int:
    if (rc := _backend(args, "ping")) is not None:
        return rc
    tb = _select(args)
    dst = tb.address(args.target)
    ok = tb.ping(args.host, args.target, timeout=args.timeout, count=args.count)
    print(f"{args.host} -> {dst}: {'reachable' if ok else 'no reply'}")
    return 0 if ok else 1


def cmd_topo_gen(args: argparse.Namespace) -> int:
    doc = topogen.generate(
        args.shape,
        args.nodes,
        seed=args.seed,
        lambdas=args.lambdas,
        prefix=args.prefix,
        name=args.name,
        qe=args.qe,
    )
    text = topogen.dump(doc)
    out = Path(args.out)
    out.write_text(text)
    topo = load(out)  # what we write must load
    print(
        f"{out}: {args.shape} of {args.nodes} nodes, {len(topo.te_links)} TE links, "
        f"control subnet {topo.domains[topo.control_domain].subnet}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qkdnet", description="QKD-enabled GMPLS testbed in network namespaces"
    )
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    sel = argparse.ArgumentParser(add_help=False)
    sel.add_argument("-p", "--prefix", help="the testbed's prefix (default: the only one up)")
    sel.add_argument("-t", "--topology", help="the testbed's topology file (for its prefix)")
    sel.add_argument("--backend", choices=BACKENDS, default="netns")

    s = sub.add_parser("up", help="build the testbed and start its daemons")
    s.add_argument("topology_file", metavar="TOPOLOGY")
    s.add_argument("--run-dir", help="logs and state (default ./run/NAME)")
    s.add_argument("--no-daemons", action="store_true", help="network only")
    s.add_argument("-p", "--prefix", help="override the topology's name prefix")
    s.add_argument("--backend", choices=BACKENDS, default="netns")
    s.set_defaults(fn=cmd_up)

    s = sub.add_parser("down", help="remove a testbed (idempotent, works after a crash)")
    s.add_argument("topology_file", nargs="?", metavar="TOPOLOGY")
    s.add_argument("-p", "--prefix")
    s.add_argument("--all", action="store_true", help="every testbed in the index")
    s.add_argument("--backend", choices=BACKENDS, default="netns")
    s.set_defaults(fn=cmd_down)

    s = sub.add_parser("status", parents=[sel], help="what exists and runs")
    s.add_argument("--json", action="store_true")
    s.add_argument("--all", action="store_true", help="every testbed that is up")
    s.set_defaults(fn=cmd_status)

    s = sub.add_parser("exec", parents=[sel], help="run a command inside a host")
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

    s = sub.add_parser("cli", parents=[sel], help="one command on a host's telnet CLI")
    s.add_argument("host")
    s.add_argument("command")
    s.add_argument("--from", dest="via", metavar="HOST", help="connect from this host")
    s.add_argument("--timeout", type=float, default=10.0)
    s.set_defaults(fn=cmd_cli)

    s = sub.add_parser("ping", parents=[sel], help="ICMP echo from a host (no ping needed)")
    s.add_argument("host")
    s.add_argument("target", help="host name or IPv4 address")
    s.add_argument("-c", "--count", type=int, default=3)
    s.add_argument("--timeout", type=float, default=1.0)
    s.set_defaults(fn=cmd_ping)

    s = sub.add_parser("topo", help="topology tools")
    tsub = s.add_subparsers(dest="topo_cmd", required=True, metavar="SUBCOMMAND")
    g = tsub.add_parser("gen", help="write a larger topology (control LAN + TE links)")
    g.add_argument("shape", choices=topogen.SHAPES)
    g.add_argument("--nodes", type=int, required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--lambdas", type=int, default=8)
    g.add_argument("--prefix", default="qk")
    g.add_argument("--name", help="topology name (default SHAPEN, e.g. ring20)")
    g.add_argument("--qe", action="store_true", help="add the QKD side at the first and last node")
    g.set_defaults(fn=cmd_topo_gen)

    render.add_parser(sub)  # compose render | firewall
    demo.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except (TestbedError, TopologyError, CliError, KeyError, ValueError, OSError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"qkdnet {args.cmd}: {msg}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
