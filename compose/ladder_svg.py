"""The message ladder as an SVG sequence diagram (``qkdnet demo --svg FILE``).

One lane per host, one arrow per message, top to bottom in capture order, each labelled
with its name and its time from the first PCReq: the paper's Fig. 6, complete. The rungs
come from the captures tshark reads (:mod:`compose.ladder`): PCEP and RSVP (and the RI LSA)
on the control LAN, ETSI 004 between each QE node and its proxy, the proxies' sync
channel, IDQ3P between each proxy and its emulator.

The SVG is written by hand (a few lines, rectangles and text), every label escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from ipaddress import IPv4Address
from pathlib import Path

from compose import ladder as L
from gmpls.topology import Topology

#: arrow colour of each protocol (also the legend's order)
COLOURS = {
    "CLI": "#333333",
    "OSPF": "#7f7f7f",
    "PCEP": "#1f5fbf",
    "RSVP": "#2e8b2e",
    "ETSI": "#d2691e",
    "sync": "#8a2be2",
    "IDQ3P": "#c0143c",
}
#: what each protocol is, for the legend
MEANING = {
    "CLI": "telnet CLI (the request)",
    "OSPF": "OSPF-TE (RI LSA)",
    "PCEP": "PCEP",
    "RSVP": "RSVP-TE",
    "ETSI": "ETSI GS QKD 004",
    "sync": "proxies' sync channel",
    "IDQ3P": "IDQ3P",
}
_MULTICAST = {"224.0.0.5": "AllSPFRouters", "224.0.0.6": "AllDRouters"}

#: a white outline under each label, so that it reads over the lanes it crosses
_HALO = {"stroke": "white", "stroke_width": "3", "paint_order": "stroke"}

LANE_W = 118
ROW_H = 24
TOP = 96
LEFT = 80


def host_of(topo: Topology) -> dict[str, str]:
    """Address -> host name, for every interface of every host."""
    out = {str(a): h.name for h in topo.hosts.values() for a in h.interfaces.values()}
    out.update(_MULTICAST)
    return out


def collect(
    topo: Topology, ctrl_pcap: Path, qkd_pcaps: Iterable[Path], *, tail: str | None = None
) -> list[L.Rung]:
    """The rungs of the whole workflow, host names for addresses, timed from the first
    PCReq: the control LAN's ladder (:func:`compose.ladder.ladder`, with the RI LSA of
    ``tail`` first when given), the QE service commands on the CLI from the last
    ``qe-service create`` before the PCReq on, and every QKD message from the PCReq on."""
    decoded = L.decode(ctrl_pcap)
    t0 = L.first_pcreq(decoded)
    if t0 is None:
        return []
    ri_from = str(topo.control_address(tail)) if tail else None
    rows = [(t0 + r.t_ms / 1000, r) for r in L.ladder(ctrl_pcap, ri_from=ri_from, decoded=decoded)]
    cli = L.decode_cli(ctrl_pcap, {h.cli_port for h in topo.hosts.values() if h.cli_port})
    start = max((t for t, r in cli if t <= t0 and " create" in r.msg), default=t0)
    rows += [(t, r) for t, r in cli if t >= start]
    for pcap in qkd_pcaps:
        rows += [(t, r) for t, r in L.decode_qkd(pcap) if t >= t0]
    rows.sort(key=lambda tr: tr[0])
    names = host_of(topo)
    return [
        L.Rung(
            round((t - t0) * 1000, 3),
            names.get(r.src, r.src),
            names.get(r.dst, r.dst),
            r.proto,
            r.msg,
        )
        for t, r in rows
    ]


def lanes(topo: Topology, rungs: Iterable[L.Rung]) -> list[str]:
    """Left to right: the client (when a message names it), the head's emulator and proxy,
    the nodes in file order with the PCE after the head, the tail's proxy and emulator;
    then anyone else a message names."""
    rungs = list(rungs)
    named = {x for r in rungs for x in (r.src, r.dst)}
    nodes = [h.name for h in topo.of_kind("node", "frr", "bird")]
    qe = [h.name for h in topo.of_kind("node") if h.qe.capable]

    def chain(node: str) -> list[str]:
        proxy = topo.host(node).qe.proxy
        idq = topo.host(proxy).idq if proxy and proxy in topo.hosts else None
        return [x for x in (proxy, idq) if x]

    order: list[str] = [h.name for h in topo.of_kind("client") if h.name in named]
    if qe:
        order += list(reversed(chain(qe[0])))
    head = qe[0] if qe else nodes[0] if nodes else None
    for n in nodes:
        order.append(n)
        if n == head:
            order += [h.name for h in topo.of_kind("pce")]
    if len(qe) > 1:
        order += chain(qe[-1])
    order += [h.name for h in topo.of_kind("pce") if h.name not in order]
    for r in rungs:
        for x in (r.src, r.dst):
            if x not in order:
                order.append(x)
    return order


def _kind(topo: Topology, lane: str) -> str:
    if lane in topo.hosts:
        return topo.host(lane).kind
    try:
        IPv4Address(lane)
        return "address"
    except ValueError:
        return "group"


def _text(x: float, y: float, s: str, **attrs: str) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{escape(v)}"' for k, v in attrs.items())
    return f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{escape(s)}</text>'


def render(
    topo: Topology, rungs: list[L.Rung], title: str = "", order: list[str] | None = None
) -> str:
    """The SVG document of ``rungs`` (lanes: ``order``, default :func:`lanes`)."""
    lanes_ = order if order is not None else lanes(topo, rungs)
    x = {h: LEFT + LANE_W // 2 + i * LANE_W for i, h in enumerate(lanes_)}
    width = LEFT + LANE_W * len(lanes_) + 20
    bottom = TOP + ROW_H * (len(rungs) + 1)
    height = bottom + 30 + 18 * ((len(COLOURS) + 2) // 3)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        "<defs>",
        *(
            f'<marker id="arrow-{p}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
            f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
            f'fill="{c}"/></marker>'
            for p, c in COLOURS.items()
        ),
        "</defs>",
        f'<rect width="{width}" height="{height}" fill="white"/>',
        _text(10, 20, title or f"{topo.name}: message ladder", font_size="14", font_weight="bold"),
        _text(10, TOP - 8, "t (ms)", font_weight="bold"),
    ]
    for h, cx in x.items():
        out.append(
            f'<g class="lane" id="lane-{escape(h)}">'
            f'<rect x="{cx - 48}" y="34" width="96" height="36" rx="4" fill="#eef2f7" '
            f'stroke="#445"/>{_text(cx, 50, h, text_anchor="middle", font_weight="bold")}'
            f"{_text(cx, 64, _kind(topo, h), text_anchor='middle', font_size='9')}"
            f'<line x1="{cx}" y1="70" x2="{cx}" y2="{bottom}" stroke="#99a" '
            f'stroke-dasharray="4 3"/></g>'
        )
    for i, r in enumerate(rungs):
        out.append(_arrow(r, x, TOP + ROW_H * i + ROW_H // 2))
    out += _legend(bottom + 20)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _arrow(r: L.Rung, x: Mapping[str, int], y: int) -> str:
    colour = COLOURS.get(r.proto, "#000")
    marker = f"arrow-{r.proto}" if r.proto in COLOURS else "arrow-OSPF"
    x1, x2 = x[r.src], x[r.dst]
    if x1 == x2:  # to itself (never on a LAN, but keep it drawable)
        x2 = x1 + LANE_W // 3
    lo, hi = min(x1, x2), max(x1, x2)
    label = f"{r.proto} {r.msg}"
    if hi - lo > LANE_W:  # room enough: over the middle of the arrow
        tx, anchor = (lo + hi) / 2, "middle"
    elif hi > (max(x.values()) + LANE_W // 2) / 2:  # right half: run the label leftwards
        tx, anchor = hi - 4, "end"
    else:
        tx, anchor = lo + 4, "start"
    return (
        f'<g class="msg" data-proto="{escape(r.proto)}" data-msg="{escape(r.msg)}" '
        f'data-src="{escape(r.src)}" data-dst="{escape(r.dst)}" data-t-ms="{r.t_ms:.3f}">'
        + _text(LEFT - 10, y + 4, f"{r.t_ms:.3f}", text_anchor="end")
        + f'<line x1="{x1}" y1="{y + 5}" x2="{x2}" y2="{y + 5}" stroke="{colour}" '
        f'stroke-width="1.5" marker-end="url(#{marker})"/>'
        + _text(tx, y + 1, label, text_anchor=anchor, fill=colour, **_HALO)
        + "</g>"
    )


def _legend(y: int) -> list[str]:
    out = []
    for i, (p, c) in enumerate(COLOURS.items()):
        lx, ly = 10 + (i % 3) * 220, y + 18 * (i // 3)
        out.append(
            f'<line x1="{lx}" y1="{ly}" x2="{lx + 30}" y2="{ly}" stroke="{c}" '
            f'stroke-width="2" marker-end="url(#arrow-{p})"/>'
        )
        out.append(_text(lx + 38, ly + 4, MEANING[p]))
    return out


def write(
    path: Path,
    topo: Topology,
    ctrl_pcap: Path,
    qkd_pcaps: Iterable[Path],
    *,
    tail: str | None = None,
    title: str = "",
) -> list[L.Rung]:
    """Read the captures, write the SVG at ``path``; the rungs drawn."""
    rungs = collect(topo, ctrl_pcap, qkd_pcaps, tail=tail)
    path.write_text(render(topo, rungs, title))
    return rungs
