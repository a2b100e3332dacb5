"""The CLI grammar every daemon shares (daemonkit/cli.py): abbreviations, ambiguity, ``?``
context help, completion, the result status, the same messages everywhere; and every
daemon's command table: each ``show`` has a text and a json form, ``show
running-config`` exists, commands taking arguments say their syntax."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import Iterator
from ipaddress import IPv4Interface
from pathlib import Path

import pytest

from compose.cliclient import run_command
from daemonkit.cli import FAILED, CliServer, CommandTable, Failed, Reply
from gmpls.qe_service.model import QeServiceError
from gmpls.topology import Topology, load
from gmpls.units import bps_text
from node_agent.daemon import NodeDaemon
from node_agent.ospf_te import OspfTeAgent
from pce.daemon import PceDaemon, config_from_topology
from qkd_proxy.daemon import Ports, ProxyDaemon, km_from_topology

ROOT = Path(__file__).resolve().parents[1]


def table() -> CommandTable:
    t = CommandTable()
    for words in (
        "show ip ospf neighbor",
        "show ip ospf interface",
        "show ip ospf database",
        "show ip ospf database opaque-area",
        "show ip ospf route",
        "show mpls lsp",
        "show version",
    ):
        t.register(words, lambda args, w=words: {"cmd": w, "args": args}, f"help {words}", text=str)
    t.register("qe-service create", lambda a: {"a": a}, "new service", args="dst A.B.C.D [wait]")
    t.register("qe-service delete", lambda a: Failed({"gone": a}), "tear down", args="ID")
    t.register("show qe-service", lambda a: {"a": a}, "services", text=str, args="[ID]")
    return t


def ex(t: CommandTable, line: str) -> Reply:
    return asyncio.run(t.execute(line))


def test_unambiguous_abbreviations_name_the_command() -> None:
    t = table()
    assert ex(t, "sh ip ospf nei") == Reply(str({"cmd": "show ip ospf neighbor", "args": []}))
    assert "show ip ospf route" in ex(t, "s i o r").text
    # an exact word wins over a longer one it prefixes; arguments follow the command
    assert "'cmd': 'show ip ospf database'" in ex(t, "sh ip o data").text
    assert "opaque-area" in ex(t, "sh ip o data op").text
    assert ex(t, "sh qe 7").text == "{'a': ['7']}"
    assert json.loads(ex(t, "sh ver json").text)["cmd"] == "show version"


def test_ambiguous_unknown_incomplete_are_clear_and_fail() -> None:
    t = table()
    r = ex(t, "sh ip ospf d")  # database only: fine; 'i' is interface only
    assert r.status == 0
    r = ex(t, "show q")  # qe-service only
    assert r.status == 0
    t.register("show qkd links", lambda a: {}, "links", text=str)
    r = ex(t, "sh q")
    assert r == Reply("% Ambiguous command: sh q (q: qe-service, qkd)", 1)
    assert ex(t, "show bogus") == Reply("% Unknown command: show bogus", 1)
    assert ex(t, "show ip") == Reply("% Incomplete command: show ip", 1)
    r = ex(t, "qe-service create")  # its arguments are required: the whole syntax
    assert r.status == 1
    assert r.text.splitlines() == [
        "% Incomplete command: qe-service create",
        "usage: qe-service create dst A.B.C.D [wait]",
    ]
    assert json.loads(ex(t, "show bogus json").text) == {"error": "% Unknown command: show bogus"}


def test_question_mark_lists_the_next_words_with_help() -> None:
    t = table()
    lines = ex(t, "sh ip ospf ?").text.splitlines()
    assert [w.split()[0] for w in lines] == ["database", "interface", "neighbor", "route"]
    assert lines[2].split(None, 1)[1] == "help show ip ospf neighbor"
    assert ex(t, "sh ip ospf d?").text.split() == [
        "database",
        "help",
        "show",
        "ip",
        "ospf",
        "database",
    ]
    end = ex(t, "show ip ospf database ?").text.splitlines()
    assert [w.split()[0] for w in end] == ["opaque-area", "json", "<cr>"]
    assert ex(t, "qe-service create ?").text.split(None, 4)[:4] == [
        "dst",
        "A.B.C.D",
        "[wait]",
        "new",
    ]
    top = ex(t, "help").text  # everything, with the syntax of the arguments
    assert "qe-service create dst A.B.C.D [wait] [json]" in top
    first = [w.split()[0] for w in ex(t, "?").text.splitlines()]
    assert first == ["exit", "help", "qe-service", "quit", "show", "terminal"]
    assert ex(t, "show nothing ?") == Reply("% Unknown command: show nothing", 1)


def test_completion_candidates() -> None:
    t = table()
    assert ex(t, "terminal complete sh ip o").text == "ospf"
    assert ex(t, "ter comp show ip ospf ").text.split() == [
        "database",
        "interface",
        "neighbor",
        "route",
    ]
    assert ex(t, "terminal complete show version ").text == "json"
    assert ex(t, "terminal complete ").text.split() == [
        "exit",
        "help",
        "qe-service",
        "quit",
        "show",
        "terminal",
    ]
    assert ex(t, "terminal complete show bogus ").text == ""


def test_rates_print_as_the_user_meant_them() -> None:
    f32 = struct.unpack("!f", struct.pack("!f", 1e12 / 8))[0] * 8  # 1T through PCEP
    assert f32 == 999999995904
    assert [bps_text(x) for x in (f32, 1e12, 10e9, 2.5e9, 13.7e6, 1000, 999, 0)] == [
        "1 Tb/s",
        "1 Tb/s",
        "10 Gb/s",
        "2.5 Gb/s",
        "13.7 Mb/s",
        "1 kb/s",
        "999 b/s",
        "0 b/s",
    ]


def test_a_failed_outcome_is_shown_and_fails() -> None:
    t = table()
    r = ex(t, "qe-service delete 3")
    assert r.status == 1 and json.loads(r.text) == {"gone": ["3"]}


def test_a_refused_request_is_answered_and_only_a_fault_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A command refused as asked (bad arguments, an unknown ID: RequestRefused) is
    answered with its reason and logs nothing; any other exception is the daemon's fault:
    answered too, and logged with its traceback."""

    def refuse(args: list[str]) -> object:
        raise QeServiceError(f"no QE service {args[0]}")

    def crash(args: list[str]) -> object:
        raise KeyError(args[0])

    t = CommandTable()
    t.register("qe-service delete", refuse, "tear down", args="ID")
    t.register("qe-service crash", crash, "a bug", args="ID")
    with caplog.at_level("DEBUG", logger="daemonkit.cli"):
        r = ex(t, "qe-service delete 800 json")
        assert r.status == FAILED and json.loads(r.text) == {"error": "no QE service 800"}
        assert ex(t, "qe-service delete 801").text == "% error: no QE service 801"
        assert caplog.records == []
        assert ex(t, "qe-service crash 5").status == FAILED
    (rec,) = caplog.records
    assert rec.getMessage() == "cli command failed" and rec.exc_info is not None


def test_status_lines_over_the_wire_only_when_asked() -> None:
    async def main() -> None:
        server = CliServer(table(), "tn9")
        port = await server.start("127.0.0.1", 0)
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            assert await r.readuntil(b"tn9# ") == b"tn9# "
            w.write(b"show bogus\r\n")
            assert await r.readuntil(b"tn9# ") == b"% Unknown command: show bogus\r\ntn9# "
            w.write(b"terminal status\r\nshow bogus\r\nshow version\r\n")
            assert await r.readuntil(b"tn9# ") == b"@status 0\r\ntn9# "
            assert await r.readuntil(b"tn9# ") == (
                b"% Unknown command: show bogus\r\n@status 1\r\ntn9# "
            )
            assert (await r.readuntil(b"tn9# ")).endswith(b"\r\n@status 0\r\ntn9# ")
            w.close()
            # the client asks for it and gives it back as the output's status
            loop = asyncio.get_running_loop()
            addr = ("127.0.0.1", port)
            out = await loop.run_in_executor(None, run_command, socket.socket(), addr, "sh x")
            assert (out, out.status) == ("% Unknown command: sh x", 1)
            out = await loop.run_in_executor(None, run_command, socket.socket(), addr, "sh ver")
            assert out.status == 0 and "show version" in out
        finally:
            await server.stop()

    asyncio.run(main())


# --- every daemon's table ----------------------------------------------------------------


@pytest.fixture(scope="module")
def topo() -> Topology:
    return load(ROOT / "topologies" / "paper.yaml")


def daemon_tables(topo: Topology) -> Iterator[tuple[str, CommandTable]]:
    iface = ("lo", IPv4Interface(f"{topo.control_address('tn1')}/24"), 1500)
    node = NodeDaemon(topo, "tn1", ospf=OspfTeAgent.from_topology(topo, "tn1", interface=iface))
    yield "node_agent", node.cli
    yield "pce", PceDaemon(topo, config_from_topology(topo, "pce", ted_source="static")).cli
    keys = {k.name: b"k" * 16 for k in topo.qkd_links_of("etsiA")}
    cfg, binds = km_from_topology(topo, "etsiA", keys, Ports())
    yield "qkd_proxy", ProxyDaemon(cfg, binds, Ports(), None, None).cli


def test_every_daemons_commands_have_text_json_help_and_a_running_config(topo: Topology) -> None:
    for name, t in daemon_tables(topo):
        words = {" ".join(c.words) for c in t.commands()}
        assert "show running-config" in words, name
        for c in t.commands():
            assert c.help and ":" not in c.help.split()[0], (name, c.words)  # syntax in args
            if c.words[0] == "show":
                assert c.text is not None, f"{name}: {' '.join(c.words)} has no text form"
            assert c.words[-1] != "json"
        cfg = asyncio.run(t.execute("show running-config"))
        assert cfg.status == 0 and cfg.text.startswith("hostname "), name
        assert json.loads(asyncio.run(t.execute("sh run json")).text)["lines"][0].startswith(
            "hostname "
        )


def test_the_node_prints_text_without_json(topo: Topology) -> None:
    t = dict(daemon_tables(topo))["node_agent"]
    for line in ("show version", "show ip ospf te-link"):
        text = asyncio.run(t.execute(line)).text
        assert not text.lstrip().startswith("{"), (line, text)
        assert isinstance(json.loads(asyncio.run(t.execute(f"{line} json")).text), dict)
    assert "100 Gb/s" in asyncio.run(t.execute("sh ip os te")).text
    r = asyncio.run(t.execute("qe-service create"))
    assert r.status == 1 and "[bandwidth B] [delegate] [wait]" in r.text
