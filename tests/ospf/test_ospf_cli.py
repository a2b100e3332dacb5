"""The node agent's CLI command table and the FRR-style OSPF views (no sockets)."""

from __future__ import annotations

import asyncio
import json

import pytest

from daemonkit.cli import CommandTable, strip_telnet
from gmpls.ospf import examples as ex
from gmpls.ospf import show
from gmpls.ospf.events import OriginateOpaque
from tests.support.ospf_lab import Lab


def run(table: CommandTable, line: str) -> str | None:
    return asyncio.run(table.run(line))


def test_command_table_json_text_args_and_errors() -> None:
    t = CommandTable()
    t.register("show thing", lambda args: {"args": args}, "a thing", text=lambda d: f"T{d}")

    async def slow(args: list[str]) -> str:
        return "async ok"

    t.register("show slow", slow, "a coroutine")
    t.register("boom", lambda args: 1 / 0, "fails")
    assert json.loads(run(t, "show thing json") or "") == {"args": []}
    assert run(t, "show thing a b") == "T{'args': ['a', 'b']}"
    assert run(t, "show slow") == "async ok"
    assert (run(t, "show nothing") or "").startswith("% Unknown command")
    assert (run(t, "boom") or "").startswith("% error")
    assert json.loads(run(t, "boom json") or "")["error"]
    assert run(t, "exit") is None
    assert "show thing [json]" in (run(t, "help") or "")
    with pytest.raises(RuntimeError):
        t.register("show thing", lambda args: None, "again")


def test_strip_telnet() -> None:
    assert strip_telnet(b"\xff\xfd\x01show\xff\xfa\x18\x00\xff\xf0 ip\r\n") == b"show ip\r\n"


def test_views_of_a_converged_lan() -> None:
    lab = Lab()
    rs = []
    for i in (1, 2, 3):
        r = lab.router(f"10.1.1.{i}")
        lab.connect("ctrl", r, f"10.1.1.{i}/24")
        rs.append(r)
    lab.start()
    lab.feed(rs[0], OriginateOpaque(10, ex.ri_lsa().header.ls_id, ex.ri_lsa().body))
    lab.feed(rs[0], OriginateOpaque(10, ex.te_link_lsa().header.ls_id, ex.te_link_lsa().body))
    lab.run_until_converged(60)
    r = rs[1]
    nb = show.neighbors(r, lab.now)
    assert nb["neighbors"]["10.1.1.3"][0]["state"] == "Full/DR"
    assert "Full/DR" in show.neighbors_text(nb)
    itf = show.interfaces(r, lab.now)["interfaces"]["ctrl"]
    assert itf["state"] == "Backup" and itf["drAddress"] == "10.1.1.3"
    assert itf["counters"]["bad_checksum"] == 0
    assert "Dropped:" in show.interfaces_text(show.interfaces(r, lab.now))
    db = show.database(r, lab.now)
    assert len(db["areas"]["0.0.0.0"]["routerLinkStates"]) == 3
    assert "Router Link States" in show.database_text(db)
    opq = show.opaque(r, lab.now)["areas"]["0.0.0.0"]["opaqueAreaLinkStates"]
    ri = next(e for e in opq if e["opaqueType"] == 4)
    assert ri["routerInformation"]["qeCapable"] is True
    assert ri["routerInformation"]["tlvs"] == [{"informationalCapabilities": "0x12000000"}]
    te = next(e for e in opq if e["opaqueType"] == 1)
    link = te["trafficEngineering"][0]["link"]
    assert link["availableLambdas"] == list(range(1, 9))
    assert link["localInterfaceId"] == 1 and link["remoteInterfaceId"] == 2
    assert "QE capable: True" in show.opaque_text(show.opaque(r, lab.now))
    rt = show.routes(r)
    assert rt["10.1.1.0/24"]["nexthops"] == [{"ip": " ", "directlyAttachedTo": "ctrl"}]
    assert "directly attached to ctrl" in show.routes_text(rt)
