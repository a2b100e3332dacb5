"""``qkdnet topo draw TOPOLOGY --out FILE.svg``: a picture of a topology, laid out by
Graphviz (``dot``, Debian package graphviz).

What is drawn (docs/qkdnet.md#topo-draw):

* each IP domain as a wide box, a bus with its subnet; a grey line from every host on it,
  labelled with the host's address there;
* each host by kind (GMPLS nodes as boxes, QE-capable ones with a thick border, the PCE as
  a hexagon, the client as an ellipse, ETSI 004 proxies as components, IDQ3P emulators
  as cylinders, FRR/BIRD routers as grey boxes);
* each TE link as a thick blue line: interface IDs at its ends, metric and wavelengths;
* each QKD link as a thick purple line between its two emulators, with its secret-key rate;
* with a running testbed, each LSP hop as a red arrow with its wavelength (``show mpls
  lsp json`` at every node).

The DOT source is built here (:func:`dot_source`, pure: testable without Graphviz) and
``dot -Tsvg`` lays it out (:func:`to_svg`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compose.backend import Testbed, TestbedError
from compose.cliclient import CliError
from gmpls.topology import Topology

#: (shape, style, fill) of each host kind
KIND_STYLE = {
    "node": ("box", "filled", "#cfe2f3"),
    "pce": ("hexagon", "filled", "#d9ead3"),
    "client": ("ellipse", "filled", "#f3f3f3"),
    "qkd-proxy": ("component", "filled", "#fce5cd"),
    "idq3p": ("cylinder", "filled", "#ead1dc"),
    "frr": ("box", "filled", "#d9d9d9"),
    "bird": ("box", "filled", "#d9d9d9"),
}
TE_COLOUR = "#1f5fbf"
QKD_COLOUR = "#8a2be2"
LSP_COLOUR = "#d0021b"
LSP_COMMAND = "show mpls lsp json"

Lsps = Mapping[str, list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class QkdLinkView:
    """What the drawing needs of one QKD link, whichever way the topology gives it."""

    name: str
    a: str
    b: str
    a_idq: str | None
    b_idq: str | None
    rate_bps: float


def q(s: object) -> str:
    """A DOT quoted string (an ID or a label; ``\\n`` in ``s`` stays a line break)."""
    text = str(s).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


def channels(lambdas: Iterable[int]) -> str:
    """``1-8``, ``1-3,7``: the wavelength channels, runs collapsed."""
    out: list[str] = []
    run: list[int] = []
    for n in sorted(set(lambdas)):
        if run and n == run[-1] + 1:
            run.append(n)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [n]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def rate(bps: float) -> str:
    for unit, div in (("Gb/s", 1e9), ("Mb/s", 1e6), ("kb/s", 1e3)):
        if bps >= div:
            return f"{bps / div:g} {unit}"
    return f"{bps:g} b/s"


def qkd_links(topo: Topology) -> list[QkdLinkView]:
    """The topology's ``qkd_links`` when it has them, else the legacy form: proxies that
    name a ``peer`` (and each its ``idq``), at the topology's ``qkd`` rate."""
    links = getattr(topo, "qkd_links", None)
    if links is not None:
        return [
            QkdLinkView(
                str(getattr(x, "name", f"{x.a}-{x.b}")),
                x.a,
                x.b,
                getattr(x, "a_idq", None),
                getattr(x, "b_idq", None),
                float(getattr(x, "rate_bps", topo.qkd.secret_key_rate_bps)),
            )
            for x in links
        ]
    out: list[QkdLinkView] = []
    seen: set[tuple[str, str]] = set()
    for h in topo.of_kind("qkd-proxy"):
        if h.peer is None or h.peer not in topo.hosts:
            continue
        a, b = sorted((h.name, h.peer))
        if (a, b) in seen:
            continue
        seen.add((a, b))
        out.append(
            QkdLinkView(
                f"{a}-{b}",
                a,
                b,
                topo.host(a).idq,
                topo.host(b).idq,
                float(topo.qkd.secret_key_rate_bps),
            )
        )
    return out


def _levels(topo: Topology) -> dict[str, int]:
    """Distance of every domain and host from the control domain (hosts and domains
    alternate), so that edges point away from it and dot ranks them top to bottom."""
    level = {f"d:{topo.control_domain}": 0}
    frontier = [f"d:{topo.control_domain}"]
    while frontier:
        nxt: list[str] = []
        for item in frontier:
            kind, name = item.split(":", 1)
            if kind == "d":
                near = [f"h:{h.name}" for h in topo.hosts.values() if name in h.interfaces]
            else:
                near = [f"d:{d}" for d in topo.host(name).interfaces]
            for n in near:
                if n not in level:
                    level[n] = level[item] + 1
                    nxt.append(n)
        frontier = nxt
    return level


def _host_node(topo: Topology, name: str, bus: str | None = None) -> str:
    """The host's box; its address on ``bus`` (a domain drawn without lines) in it."""
    h = topo.host(name)
    shape, style, fill = KIND_STYLE.get(h.kind, ("box", "filled", "white"))
    lines = [h.name] if h.kind == h.name else [h.name, h.kind]
    if h.router_id is not None:
        lines.append(f"router ID {h.router_id}")
    if bus is not None and bus in h.interfaces and h.interfaces[bus] != h.router_id:
        lines.append(f"{bus} {h.interfaces[bus]}")
    pen = "1"
    if h.qe.capable:
        lines.append(f"QE capable (proxy {h.qe.proxy})" if h.qe.proxy else "QE capable")
        pen = "3"
    if h.serves:
        lines.append(f"serves {h.serves}")
    return (
        f"  {q('h:' + name)} [label={q(chr(10).join(lines))}, shape={shape}, "
        f'style="{style}", fillcolor={q(fill)}, penwidth={pen}];'
    )


def _domain_node(topo: Topology, name: str, lines: bool = True) -> str:
    """The domain's bus; without ``lines`` (too many hosts) it says who is on it."""
    d = topo.domains[name]
    members = sum(1 for h in topo.hosts.values() if name in h.interfaces)
    label = f"{name} {d.subnet}" + (f"\n{d.description}" if d.description else "")
    if not lines:
        label += f"\n{members} hosts (their address on it in their boxes)"
        members = 2
    return (
        f'  {q("d:" + name)} [label={q(label)}, shape=box, style="rounded,filled", '
        f'fillcolor="#fff2cc", width={max(2.0, 1.1 * members):.1f}, fontsize=11];'
    )


def _lsp_edges(topo: Topology, lsps: Lsps) -> list[str]:
    """One red arrow per LSP hop: the node's outgoing interface and wavelength."""
    out = []
    qe = {r.get("lsp") for rows in lsps.values() for r in rows if r.get("qe")}
    for node, rows in sorted(lsps.items()):
        links = {x.local_if: x for x in topo.te_links_of(node)}
        for r in rows:
            link = links.get(r.get("out_if"))  # type: ignore[arg-type]
            if link is None or r.get("out_lambda") is None:
                continue
            label = f"LSP {r.get('tunnel_id')} \u03bb{r['out_lambda']}"
            if r.get("qe") or r.get("lsp") in qe:  # transit nodes do not know: their ends do
                label += " QE"
            if r.get("bidirectional"):
                label += " (bidir)"
            out.append(
                f"  {q('h:' + node)} -> {q('h:' + link.remote)} [label={q(label)}, "
                f"color={q(LSP_COLOUR)}, fontcolor={q(LSP_COLOUR)}, penwidth=2, "
                "constraint=false, fontsize=9];"
            )
    return out


#: up to this many routers, dot lays them out in one row under the control LAN; more are
#: placed by neato (spring model) and the control LAN's lines to every host are left out
ROW_MAX = 8


def _membership(topo: Topology, level: Mapping[str, int], skip: str | None) -> list[str]:
    """A grey line from each host to each domain it sits on (but ``skip``), labelled with
    its address there, pointing away from the control domain."""
    out = []
    for h in topo.hosts.values():
        for d, addr in h.interfaces.items():
            if d == skip:
                continue
            a, b = f"d:{d}", f"h:{h.name}"
            if level.get(a, 99) > level.get(b, 99):
                a, b = b, a
            out.append(f'  {q(a)} -> {q(b)} [label={q(addr)}, color="#999999"];')
    return out


def _te_edges(topo: Topology) -> list[str]:
    out = []
    for x in topo.te_links:
        label = f"metric {x.metric}" + (f"\n\u03bb {channels(x.lambdas)}" if x.lambdas else "")
        out.append(
            f"  {q('h:' + x.a)} -> {q('h:' + x.b)} [label={q(label)}, taillabel={q(x.a_if)}, "
            f"headlabel={q(x.b_if)}, color={q(TE_COLOUR)}, fontcolor={q(TE_COLOUR)}, "
            "penwidth=3];"
        )
    return out


def _qkd_edges(topo: Topology) -> list[str]:
    out = []
    for k in qkd_links(topo):
        a, b = k.a_idq or k.a, k.b_idq or k.b
        label = f"QKD link {k.name}\n{rate(k.rate_bps)}"
        out.append(
            f"  {q('h:' + a)} -> {q('h:' + b)} [label={q(label)}, color={q(QKD_COLOUR)}, "
            f'fontcolor={q(QKD_COLOUR)}, penwidth=3, style="bold,dashed", constraint=false];'
        )
    return out


def dot_source(topo: Topology, lsps: Lsps | None = None, title: str | None = None) -> str:
    """The topology as a DOT digraph (``lsps``: ``show mpls lsp json``'s rows per node)."""
    level = _levels(topo)
    te = [h.name for h in topo.of_kind("node", "frr", "bird")]
    row = len(te) <= ROW_MAX
    layout = "newrank=true" if row else 'layout=neato, overlap=false, splines=true, sep="+8"'
    lines = [
        f"digraph {q(topo.name)} {{",
        f"  graph [label={q(title or topo.name)}, labelloc=t, fontsize=16, "
        f'fontname="sans-serif", nodesep=0.35, ranksep=0.55, {layout}];',
        '  node [fontname="sans-serif", fontsize=10];',
        '  edge [fontname="sans-serif", fontsize=8, arrowhead=none];',
    ]
    bus = None if row else topo.control_domain
    lines += [_domain_node(topo, d, lines=d != bus) for d in topo.domains]
    lines += [_host_node(topo, h, bus) for h in topo.hosts]
    lines += _membership(topo, level, bus)
    if row and te and len({level.get(f"h:{n}") for n in te}) == 1:
        lines.append("  { rank=same; " + " ".join(q("h:" + n) for n in te) + " }")
    lines += _te_edges(topo) + _qkd_edges(topo) + _lsp_edges(topo, lsps or {})
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_svg(dot: str) -> str:
    """Lay ``dot`` out with Graphviz; the SVG document."""
    exe = shutil.which("dot")
    if exe is None:
        raise OSError("Graphviz's dot is not installed (make setup installs graphviz)")
    return subprocess.run(
        [exe, "-Tsvg"], input=dot, capture_output=True, text=True, check=True, timeout=60
    ).stdout


# --- a running testbed: its LSPs ------------------------------------------------------


def lsps_of(bed: Testbed) -> dict[str, list[dict[str, Any]]]:
    """``show mpls lsp json`` at every GMPLS node of the testbed: {node: rows}."""
    out: dict[str, list[dict[str, Any]]] = {}
    for h in bed.topology.of_kind("node"):
        out[h.name] = list(json.loads(bed.cli(h.name, LSP_COMMAND, timeout=5)).get("lsps", []))
    return out


def live_lsps(
    topo: Topology, cls: type[Testbed], *, required: bool, prefix: str | None = None
) -> tuple[dict[str, list[dict[str, Any]]] | None, str]:
    """The LSPs of the running testbed of ``topo`` (``prefix``, default the topology's;
    same topology name), and a note saying where they come from or why there are none.
    ``required`` (``--live``): a testbed that is not up, or does not answer, is an error
    instead of a note."""
    prefix = prefix or topo.prefix
    try:
        if prefix not in cls.prefixes_up():
            raise TestbedError(f"no {cls.label} with prefix {prefix!r} is up")
        bed = cls.attach(prefix)
        if bed.topology.name != topo.name:
            raise TestbedError(
                f"the {cls.label} {prefix!r} runs topology {bed.topology.name!r}, not {topo.name!r}"
            )
        lsps = lsps_of(bed)
    except (TestbedError, CliError, OSError, ValueError) as e:
        if required:
            raise TestbedError(f"--live: {e}") from None
        return None, f"no LSPs drawn ({e})"
    n = sum(len(v) for v in lsps.values())
    return lsps, f"LSPs of {cls.label} {prefix!r}: {n} row(s) at {len(lsps)} node(s)"


def write(path: Path, topo: Topology, lsps: Lsps | None = None, title: str | None = None) -> str:
    """Write the picture at ``path``: SVG, or the DOT source when ``path`` ends in
    ``.dot``. Returns what was written."""
    dot = dot_source(topo, lsps, title)
    text = dot if path.suffix == ".dot" else to_svg(dot)
    path.write_text(text)
    return text
