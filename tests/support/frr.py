"""FRR ospfd beside our daemons in a namespace testbed: its vty (``vtysh --vty_socket``
of the FRR host's runtime directory) and the LSDBs and neighbours of both, in one form
(tests/ospf/test_ospf_interop.py, tests/compose/test_pack_netns.py)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from compose import daemons
from compose.netns import NetnsTestbed


def ours_json(tb: NetnsTestbed, host: str, cmd: str) -> Any:
    return json.loads(tb.cli(host, cmd + " json"))


def vtysh(tb: NetnsTestbed, cmd: str, host: str = "fr1") -> str:
    vty = daemons.frr_runtime_dir(tb.prefix, host)
    return subprocess.run(
        ["vtysh", "--vty_socket", str(vty), "-c", cmd],
        capture_output=True,
        text=True,
        check=True,
        timeout=20,
    ).stdout


def vtysh_json(tb: NetnsTestbed, cmd: str) -> Any:
    return json.loads(vtysh(tb, cmd + " json"))


def ours_nbrs(tb: NetnsTestbed, host: str) -> dict[str, str]:
    nb = ours_json(tb, host, "show ip ospf neighbor")["neighbors"]
    return {rid: e[0]["nbrState"] for rid, e in nb.items()}


def frr_nbrs(tb: NetnsTestbed) -> dict[str, str]:
    nb = vtysh_json(tb, "show ip ospf neighbor")["neighbors"]
    return {rid: e[0]["nbrState"].split("/")[0] for rid, e in nb.items()}


def lsdb_ours(tb: NetnsTestbed, host: str) -> set[tuple[str, str, str, str]]:
    db = ours_json(tb, host, "show ip ospf database")["areas"]["0.0.0.0"]
    types = {"routerLinkStates": "1", "networkLinkStates": "2", "opaqueAreaLinkStates": "10"}
    return {
        (types[sec], e["lsId"], e["advertisedRouter"], e["sequenceNumber"] + "/" + e["checksum"])
        for sec, entries in db.items()
        for e in entries
    }


def lsdb_frr(tb: NetnsTestbed) -> set[tuple[str, str, str, str]]:
    """FRR's LSDB: router and network LSAs from ``show ip ospf database json``, opaque
    ones from ``show ip ospf database opaque-area json``."""
    area = vtysh_json(tb, "show ip ospf database")["areas"]["0.0.0.0"]
    opq = vtysh_json(tb, "show ip ospf database opaque-area")
    entries: list[tuple[str, dict[str, Any]]] = []
    for sec, items in area.items():
        low = sec.lower()
        if isinstance(items, list) and ("router" in low or "network" in low or "net" in low):
            t = "1" if "router" in low else "2"
            entries += [(t, e) for e in items]
    entries += [("10", e) for e in opq["areaLocalOpaqueLsa"]["areas"]["0.0.0.0"]]
    out = set()
    for t, e in entries:
        lsid = e.get("lsId") or e.get("linkStateId")
        adv = e.get("advertisedRouter") or e.get("advertisingRouter")
        seq = (e.get("sequenceNumber") or e.get("lsaSeqNumber", "")).lower()
        # FRR prints the checksum without leading zeros ("778"), we and BIRD with ("0778")
        out.add((t, lsid, adv, f"{seq}/{int(e['checksum'], 16):04x}"))
    return out
