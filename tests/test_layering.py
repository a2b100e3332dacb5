"""The layering of STYLE.md: protocol cores are pure, and nothing imports upward.

gmpls/ and the protocol modules of qkd_proxy/ and idq3p_emulator/ never import asyncio,
socket, threading, subprocess or selectors; the daemons never import compose/.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IO_MODULES = {
    "asyncio",
    "socket",
    "threading",
    "subprocess",
    "selectors",
    "asyncio_dgram",
    "pyroute2",
    "docker",
}
#: layer of each top-level package: a module may import only its own layer or below
LAYER = {"gmpls": 0, "idq3p_emulator": 1, "qkd_proxy": 1, "pce": 1, "node_agent": 1, "compose": 2}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def _pure_files() -> list[Path]:
    files = list((ROOT / "gmpls").rglob("*.py"))
    for pkg in ("qkd_proxy", "idq3p_emulator"):
        proto = ROOT / pkg / "protocol"
        if proto.is_dir():
            files += proto.rglob("*.py")
        files += [
            p
            for p in (ROOT / pkg).glob("*.py")
            if p.stem
            in {
                "codec",
                "core",
                "events",
                "session",
                "store",
                "sync",
                "wire",
                "messages",
                "cache",
                "model",
            }
        ]
    return sorted(files)


@pytest.mark.parametrize("path", _pure_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_protocol_cores_do_no_io(path: Path) -> None:
    bad = {m for m in _imports(path) if m.split(".")[0] in IO_MODULES}
    assert not bad, f"{path.relative_to(ROOT)} imports I/O modules {sorted(bad)}"


@pytest.mark.parametrize("pkg", sorted(LAYER), ids=str)
def test_nothing_imports_upward(pkg: str) -> None:
    for path in (ROOT / pkg).rglob("*.py"):
        for mod in _imports(path):
            top = mod.split(".")[0]
            if top in LAYER:
                assert LAYER[top] <= LAYER[pkg], f"{path.relative_to(ROOT)} imports {mod} (upward)"
