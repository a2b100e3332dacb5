"""The layers, enforced by package (read from the source with :mod:`ast`, imports inside
functions included):

0. ``gmpls`` — pure: codecs and sans-I/O protocol cores;
1. ``daemonkit`` — the one shared asyncio layer (daemon skeleton, CLI server, OSPF speaker,
   PCEP and ETSI 004 clients);
2. the daemons ``node_agent``, ``pce``, ``qkd_proxy``, ``idq3p_emulator``;
3. ``compose`` — the ``qkdnet`` command.

A module imports only its own layer or below; no daemon imports another daemon; the pure
modules (all of gmpls, and the sans-I/O cores kept in the daemon packages) never import an
I/O module; and no two modules of the product import each other, directly or round a
longer loop. The checks are functions of a source root, so the tests at the end prove
that they catch a planted daemon-to-daemon import, an upward import, I/O in a pure module
and a cycle.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: layer of each top-level package of the product
LAYER = {
    "gmpls": 0,
    "daemonkit": 1,
    "node_agent": 2,
    "pce": 2,
    "qkd_proxy": 2,
    "idq3p_emulator": 2,
    "compose": 3,
}
DAEMONS = frozenset(pkg for pkg, layer in LAYER.items() if layer == 2)
#: what a pure module never imports (top-level names)
IO_MODULES = frozenset(
    {
        "asyncio",
        "socket",
        "threading",
        "subprocess",
        "selectors",
        "asyncio_dgram",
        "pyroute2",
        "docker",
    }
)
#: the sans-I/O modules of the daemon packages; every module of gmpls is pure too
PURE_IN_DAEMONS = (
    "qkd_proxy/core.py",
    "qkd_proxy/events.py",
    "idq3p_emulator/core.py",
    "idq3p_emulator/events.py",
    "idq3p_emulator/store.py",
    "idq3p_emulator/model.py",
    "pce/compute.py",
    "pce/ted.py",
    "pce/synth.py",
)


# --- the import graph -------------------------------------------------------------------


def modules(root: Path, packages: Iterable[str] = LAYER) -> dict[str, Path]:
    """Module name -> file, for every ``.py`` file of ``packages`` under ``root``."""
    out: dict[str, Path] = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def imported_names(path: Path, module: str) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every import in ``path`` (module ``module``): ``from a.b
    import c`` gives ``a.b.c`` (a module, or a name in ``a.b``), relative imports are
    resolved, and imports inside functions count like the others."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            for a in node.names:
                yield node.lineno, f"{base}.{a.name}" if a.name != "*" else base


def resolve(name: str, known: dict[str, Path]) -> str | None:
    """The product module ``name`` refers to: itself, or its longest known prefix (``from
    gmpls.pcep import Open`` is an import of ``gmpls.pcep``); None outside the product."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the product modules it imports."""
    known = modules(root)
    graph: dict[str, set[str]] = {m: set() for m in known}
    for mod, path in known.items():
        for _, name in imported_names(path, mod):
            target = resolve(name, known)
            if target is not None and target != mod:
                graph[mod].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                out.append(sorted(scc))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


# --- the checks -------------------------------------------------------------------------


def layer_violations(root: Path) -> list[str]:
    """Upward imports and imports between two daemon packages."""
    out = []
    for mod, path in modules(root).items():
        pkg = mod.split(".")[0]
        for line, name in imported_names(path, mod):
            top = name.split(".")[0]
            if top not in LAYER or top == pkg:
                continue
            where = f"{path.relative_to(root)}:{line} imports {name}"
            if LAYER[top] > LAYER[pkg]:
                out.append(f"{where} (upward: layer {LAYER[top]} from layer {LAYER[pkg]})")
            elif pkg in DAEMONS and top in DAEMONS:
                out.append(f"{where} (one daemon package importing another)")
    return out


def pure_files(root: Path) -> list[Path]:
    return sorted((root / "gmpls").rglob("*.py")) + [root / p for p in PURE_IN_DAEMONS]


def io_violations(root: Path) -> list[str]:
    """Imports of an I/O module in a pure module."""
    out = []
    known = modules(root)
    by_path = {p: m for m, p in known.items()}
    for path in pure_files(root):
        for line, name in imported_names(path, by_path[path]):
            if name.split(".")[0] in IO_MODULES:
                out.append(f"{path.relative_to(root)}:{line} imports {name} (I/O in a pure module)")
    return out


def cycle_violations(root: Path) -> list[str]:
    return [" <-> ".join(c) for c in cycles(import_graph(root))]


# --- the product ------------------------------------------------------------------------


def test_the_layers_hold() -> None:
    assert layer_violations(ROOT) == []


def test_pure_modules_do_no_io() -> None:
    assert all(p.is_file() for p in pure_files(ROOT)), "a pure module moved: update the list"
    assert io_violations(ROOT) == []


def test_no_import_cycle_between_modules() -> None:
    assert cycle_violations(ROOT) == []


def test_every_package_of_the_product_has_a_layer() -> None:
    """The packages pyproject.toml installs are those with a layer; the only other package
    at the root is the tests'."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    product = sorted(p.removesuffix("*") for p in include)
    assert sorted(LAYER) == product
    packages = sorted(p.parent.name for p in ROOT.glob("*/__init__.py"))
    assert packages == sorted([*product, "tests"])


# --- the checker catches what it must ---------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name in LAYER:
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "__init__.py").write_text("")
    for p in PURE_IN_DAEMONS:
        (root / p).write_text("")
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "gmpls/wire.py": "import struct\n",
            "daemonkit/cli.py": "import asyncio\nfrom gmpls import wire\n",
            "pce/daemon.py": "from daemonkit.cli import CliServer\nfrom . import ted\n",
            "pce/ted.py": "from gmpls.wire import Reader\n",
            "compose/cli.py": "import pce.daemon\n",
        },
    )
    assert layer_violations(root) == []
    assert io_violations(root) == []
    assert cycle_violations(root) == []


def test_a_daemon_importing_another_daemon_is_caught(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "node_agent/daemon.py": "import asyncio\n",
            "pce/daemon.py": "def f():\n    from node_agent.daemon import NodeDaemon\n",
        },
    )
    assert layer_violations(root) == [
        "pce/daemon.py:2 imports node_agent.daemon.NodeDaemon "
        "(one daemon package importing another)"
    ]


def test_an_upward_import_is_caught(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"daemonkit/ospf.py": "from pce import ted\n"})
    assert layer_violations(root) == [
        "daemonkit/ospf.py:1 imports pce.ted (upward: layer 2 from layer 1)"
    ]


def test_io_in_a_pure_module_is_caught(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {"gmpls/qkd/core.py": "import socket\n", "pce/ted.py": "\n\nimport asyncio.queues\n"},
    )
    assert io_violations(root) == [
        "gmpls/qkd/core.py:1 imports socket (I/O in a pure module)",
        "pce/ted.py:3 imports asyncio.queues (I/O in a pure module)",
    ]


def test_a_cycle_is_caught(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "compose/docker.py": "from compose import render\n",
            "compose/render.py": "def f():\n    from .firewall import add\n",
            "compose/firewall.py": "from compose.docker import DockerError\n",
            "compose/cli.py": "from compose import docker\n",
            "gmpls/a.py": "from gmpls import b\n",
            "gmpls/b.py": "import gmpls.a\n",
        },
    )
    assert cycle_violations(root) == [
        "compose.docker <-> compose.firewall <-> compose.render",
        "gmpls.a <-> gmpls.b",
    ]


@pytest.mark.parametrize(
    ("module", "text", "imports"),
    [
        ("gmpls.pcep.session", "from . import messages\n", ["gmpls.pcep.messages"]),
        ("gmpls.pcep", "from .session import Session\n", ["gmpls.pcep.session.Session"]),
        ("gmpls.pcep.session", "from ..wire import Reader\n", ["gmpls.wire.Reader"]),
        ("gmpls.pcep.session", "if x:\n    import gmpls.ero as e\n", ["gmpls.ero"]),
    ],
)
def test_relative_and_nested_imports_are_resolved(
    tmp_path: Path, module: str, text: str, imports: list[str]
) -> None:
    name = module.replace(".", "/")
    path = tmp_path / (f"{name}/__init__.py" if module == "gmpls.pcep" else f"{name}.py")
    path.parent.mkdir(parents=True)
    path.write_text(text)
    assert [n for _, n in imported_names(path, module)] == imports
