"""Scale curves: bring-up, OSPF convergence next to FRR, memory and idle CPU per node, QE
setup latency across the diameter, at 10, 100, 300 and 1,000 nodes (issue 17, docs/scale.md).

Run (root): ``.venv/bin/python bench/scale.py [--quick] [--sizes 10,100,300,1000]
[--shapes ring,grid,random] [--pack N] [--setups K] [--json FILE] [--plot FILE]``;
``--quick``: 10 and 100 nodes only. ``--replot FILE`` redraws the table and the plot from
a figures file written by ``--json`` (no root, no lab).

For each shape and size, two labs, one after the other:

* **the testbed** (prefix ``sc``): ``qkdnet topo gen SHAPE --nodes N --qe --ospf p2p``
  (node agents tn1..tnN with OSPF over every link's /30, ``--ospf lan``: on the control
  LAN; the PCE, a client, the QE ends at the two ends of the network's diameter) brought up in namespaces by compose/netns.py. *bring-up*: from the
  start of ``up`` until the PCE's TED holds every node and the head's PCEP session is up
  (``qkdnet demo``'s wait). Then, after a few quiet seconds, *RSS* and *PSS* (proportional
  set size: shared pages split between the processes sharing them) of all the lab's daemon
  processes, and their CPU over an idle window, each divided by N. Then *QE setup*:
  ``--setups`` services one after the other from the client to the head, across the
  diameter to the tail (``qe-service create ... wait``), each created and deleted; the head's
  own ``setup_ms``, p50 and p99.
* **OSPF convergence**, bench/ospf_converge.py's run (prefix ``ob``): the same shape as
  point-to-point links, our OSPF speaker and then FRR's ospfd with the same timers (hello 1 s,
  dead 4 s, retransmit 2 s), from links up until every router holds the same router LSAs of
  all N routers.

``--pack N``: N daemons per process (0: one process per daemon). Default: 0 below 100
nodes; from 100 nodes on, N/(2 x CPUs) rounded up, that is two processes per CPU for our
OSPF routers, and for the testbed when compose/netns.py has pack mode (``qkdnet up
--pack``). Everything runs on this one machine: the figures are for comparison between
sizes and with FRR, not absolutes.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SIZES = (10, 100, 300, 1000)
QUICK_SIZES = (10, 100)
SHAPES = ("ring", "grid", "random")
PREFIX = "sc"
#: the services of one QE setup run (the paper's parameters, as ``qkdnet demo``)
SETUP_PARAMS = "key-length 32 layer 2 algorithm 10 refresh time 1000"
IDLE_WINDOW = 10.0
SETTLE = 5.0

#: the columns of the table: (key in a run's figures, heading, format)
COLUMNS = (
    ("shape", "shape", "{}"),
    ("nodes", "nodes", "{}"),
    ("links", "links", "{}"),
    ("pack", "pack", "{}"),
    ("bringup_s", "up s", "{:.1f}"),
    ("ospf_ours_s", "ospf s", "{:.2f}"),
    ("ospf_frr_s", "frr s", "{:.2f}"),
    ("ospf_ratio", "ours/frr", "{:.2f}"),
    ("rss_mib_per_node", "RSS MiB/n", "{:.1f}"),
    ("pss_mib_per_node", "PSS MiB/n", "{:.1f}"),
    ("idle_cpu_pct_per_node", "idle CPU%/n", "{:.2f}"),
    ("qe_hops", "QE hops", "{}"),
    ("qe_p50_ms", "QE p50 ms", "{:.1f}"),
    ("qe_p99_ms", "QE p99 ms", "{:.1f}"),
)


# ---------------------------------------------------------------- arguments


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10 and 100 nodes only")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument(
        "--pack", type=int, default=None, help="daemons per process (0: one each; default: auto)"
    )
    ap.add_argument(
        "--ospf",
        choices=("p2p", "lan"),
        default="p2p",
        help="the testbed's OSPF: over the links' /30s (default) or on the control LAN",
    )
    ap.add_argument("--setups", type=int, default=20, help="QE services per size (sequential)")
    ap.add_argument("--timeout", type=float, default=180.0, help="OSPF convergence timeout, s")
    ap.add_argument("--skip", default="", help="comma-separated parts to leave out: lab,ospf,frr")
    ap.add_argument("--log-dir", default="/tmp/qkdnet-scale")
    ap.add_argument("--json", help="write the figures to this file")
    ap.add_argument("--plot", help="draw the curves into this file (.svg or .png)")
    ap.add_argument("--replot", help="table and plot from this figures file; no lab")
    a = ap.parse_args(argv)
    a.size_list = list(QUICK_SIZES) if a.quick else [int(x) for x in a.sizes.split(",") if x]
    a.shape_list = [s for s in a.shapes.split(",") if s]
    bad = [s for s in a.shape_list if s not in SHAPES]
    if bad:
        ap.error(f"unknown shape(s) {', '.join(bad)} (one of {', '.join(SHAPES)})")
    a.skip_set = {s for s in a.skip.split(",") if s}
    if a.skip_set - {"lab", "ospf", "frr"}:
        ap.error("--skip takes lab, ospf, frr")
    return a


def pack_for(n: int, pack: int | None, cpus: int | None = None) -> int:
    """Daemons per process at ``n`` nodes: ``pack`` when given, else 0 below 100 and
    two processes per CPU from 100 on."""
    if pack is not None:
        return pack
    if n < 100:
        return 0
    return math.ceil(n / (2 * (cpus or os.cpu_count() or 1)))


def testbed_packs() -> bool:
    """Whether compose/netns.py's testbed takes ``pack`` (``qkdnet up --pack``)."""
    from compose.backend import TestbedOptions
    from compose.netns import NetnsTestbed

    return "pack" in inspect.signature(NetnsTestbed.__init__).parameters or "pack" in getattr(
        TestbedOptions, "__annotations__", {}
    )


# ---------------------------------------------------------------- table and plot


def table(figures: dict[str, Any]) -> str:
    """The figures as a fixed-width text table (a cell is ``-`` when not measured and
    ``timeout``/``failed`` with the reason when it was and did not finish)."""
    rows = [[h for _, h, _ in COLUMNS]]
    for run in figures["runs"]:
        row = []
        for key, _, fmt in COLUMNS:
            v = run.get(key)
            if v is None:
                row.append(str(run.get(key + "_note", "-")))
            else:
                row.append(fmt.format(v))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = []
    for r in rows:
        lines.append("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
    head = [
        f"qkdnet scale, {figures.get('machine', '?')}",
        *lines,
    ]
    notes = list(figures.get("notes") or [])
    for run in figures["runs"]:
        for key in ("lab_error", "bringup_error", "ospf_error", "qe_errors"):
            if run.get(key):
                notes.append(f"{run['shape']}{run['nodes']} {key}: {run[key]}")
    return "\n".join(head + [f"note: {x}" for x in notes])


#: the plot's panels: (title, y label, [(key, line style, label suffix)], log y)
PANELS = (
    ("bring-up (up until the PCE has every node)", "s", [("bringup_s", "-", "")], False),
    (
        "OSPF convergence (point-to-point, hello 1 s)",
        "s",
        [("ospf_ours_s", "-", " ours"), ("ospf_frr_s", "--", " FRR")],
        False,
    ),
    (
        "memory per node",
        "MiB",
        [("rss_mib_per_node", "-", " RSS"), ("pss_mib_per_node", ":", " PSS")],
        False,
    ),
    ("idle CPU per node", "% of one CPU", [("idle_cpu_pct_per_node", "-", "")], False),
    (
        "QE setup across the diameter",
        "ms",
        [("qe_p50_ms", "-", " p50"), ("qe_p99_ms", "--", " p99")],
        False,
    ),
)


def plot(figures: dict[str, Any], path: Path) -> None:
    """Draw one panel per figure against the number of nodes (log scale), a line per
    shape; an unmeasured or timed-out point is left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shapes = sorted({r["shape"] for r in figures["runs"]}, key=_shape_order)
    colours = {s: f"C{i}" for i, s in enumerate(shapes)}
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    flat = list(axes.flat)
    for ax, (title, unit, series, logy) in zip(flat, PANELS, strict=False):
        for shape in shapes:
            runs = sorted((r for r in figures["runs"] if r["shape"] == shape), key=_nodes)
            for key, style, suffix in series:
                pts = [(r["nodes"], r[key]) for r in runs if r.get(key) is not None]
                if pts:
                    xs, ys = zip(*pts, strict=True)
                    ax.plot(xs, ys, style, marker="o", color=colours[shape], label=shape + suffix)
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("nodes")
        ax.set_ylabel(unit)
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    last = flat[-1]
    last.axis("off")
    last.text(0, 1, _plot_note(figures), va="top", fontsize=9, family="monospace", wrap=True)
    fig.suptitle(f"qkdnet scale ({figures.get('machine', '?')})")
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None} if str(path).endswith(".svg") else None)
    plt.close(fig)


def _plot_note(figures: dict[str, Any]) -> str:
    lines = ["not converged / not run:"]
    for r in figures["runs"]:
        for key, _, _ in COLUMNS:
            note = r.get(key + "_note")
            if note:
                lines.append(f" {r['shape']}{r['nodes']} {key}: {note}")
    return "\n".join(lines if len(lines) > 1 else [])


def _shape_order(s: str) -> int:
    return SHAPES.index(s) if s in SHAPES else len(SHAPES)


def _nodes(r: dict[str, Any]) -> int:
    return int(r["nodes"])


# ---------------------------------------------------------------- measuring


def _sibling(name: str) -> ModuleType:
    """bench/NAME.py (bench is scripts, not a package)."""
    mod = sys.modules.get(f"bench_{name}")
    if mod is None:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
    return mod


def _proc_cpu_s(pid: int) -> float | None:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def _proc_mem_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process, KiB."""
    out = {"Rss:": 0, "Pss:": 0}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            w = line.split()
            if w and w[0] in out:
                out[w[0]] = int(w[1])
    except OSError:
        pass
    return out["Rss:"], out["Pss:"]


def idle_figures(pids: set[int], n: int, window: float) -> dict[str, float]:
    """Memory and CPU of the processes ``pids`` over ``window`` seconds, per node."""
    c0 = {p: _proc_cpu_s(p) for p in pids}
    t0 = time.monotonic()
    time.sleep(window)
    c1 = {p: _proc_cpu_s(p) for p in pids}
    dt = time.monotonic() - t0
    cpu = sum((c1[p] or 0.0) - (c0[p] or 0.0) for p in pids if c0[p] is not None)
    mem = [_proc_mem_kib(p) for p in pids]
    return {
        "processes": len(pids),
        "rss_mib_per_node": sum(r for r, _ in mem) / 1024 / n,
        "pss_mib_per_node": sum(p for _, p in mem) / 1024 / n,
        "idle_cpu_pct_per_node": 100.0 * cpu / dt / n,
    }


def qe_setups(tb: Any, roles: Any, k: int) -> dict[str, Any]:
    """``k`` sequential QE services from the head to the tail; the head's setup times."""
    dst = tb.topology.host(roles.tail).router_id
    setups: list[float] = []
    hops = None
    errors: list[str] = []
    for _ in range(k):
        out = json.loads(
            tb.cli(
                roles.head,
                f"qe-service create dst {dst} {SETUP_PARAMS} wait json",
                via=roles.client,
                timeout=60,
            )
        )
        svc = (out.get("services") or [{}])[0]
        if svc.get("state") == "up":
            setups.append(float(svc["setup_ms"]))
            hops = len(svc.get("path") or []) - 1 if svc.get("path") else hops
        else:
            errors.append(str(out.get("error") or svc.get("error")))
        if svc.get("id") is not None:
            tb.cli(roles.head, f"qe-service delete {svc['id']}", via=roles.client, timeout=30)
    res: dict[str, Any] = {"qe_hops": hops, "qe_failed": len(errors)}
    if setups:
        s = sorted(setups)
        res["qe_p50_ms"] = statistics.median(s)
        res["qe_p99_ms"] = s[min(len(s) - 1, int(0.99 * len(s)))]
    else:
        res["qe_p50_ms_note"] = res["qe_p99_ms_note"] = "failed"
    if errors:
        res["qe_errors"] = sorted(set(errors))[:3]
    return res


def measure_lab(
    shape: str, n: int, pack: int, a: argparse.Namespace, log_dir: Path
) -> dict[str, Any]:
    """The testbed of ``n`` nodes: bring-up, idle memory and CPU, QE setups."""
    from compose import topogen
    from compose.backend import quiet
    from compose.demo import Roles, wait_for_control_plane
    from compose.netns import NetnsTestbed, teardown
    from gmpls.topology import load

    doc = topogen.generate(shape, n, prefix=PREFIX, qe=True, ospf=a.ospf)
    path = log_dir / f"lab-{shape}{n}.yaml"
    path.write_text(topogen.dump(doc))
    topo = load(path)
    roles = Roles.of(topo)
    teardown(PREFIX, progress=quiet)
    kw: dict[str, Any] = {"prefix": PREFIX, "progress": quiet}
    if pack:
        kw["pack"] = pack
    tb = NetnsTestbed(topo, log_dir / f"lab-{shape}{n}", **kw)
    res: dict[str, Any] = {"links": len(topo.te_links)}
    try:
        t0 = time.monotonic()
        tb.up()
        res["started_s"] = time.monotonic() - t0
        try:
            wait_for_control_plane(tb, roles, quiet, timeout=max(120.0, 1.5 * n))
            res["bringup_s"] = time.monotonic() - t0
        except Exception as e:
            res["bringup_s_note"] = "timeout"
            res["bringup_error"] = str(e)[:200]
            return res
        time.sleep(SETTLE)
        pids = {d.pid for h in topo.hosts for d in tb.running(h)}
        res.update(idle_figures(pids, n, IDLE_WINDOW))
        res.update(qe_setups(tb, roles, a.setups))
    finally:
        tb.down()
    return res


def measure_ospf(shape: str, n: int, pack: int, a: argparse.Namespace) -> dict[str, Any]:
    oc = _sibling("ospf_converge")
    log_dir = Path(a.log_dir) / "ospf"
    log_dir.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {}
    for impl in ("ours", "frr"):
        if impl in a.skip_set or (impl == "ours" and "ospf" in a.skip_set):
            continue
        t, links = oc.run_one(
            impl, shape, n, 1, 4, a.timeout, log_dir, pack if impl == "ours" else 0
        )
        res["links"] = links
        key = f"ospf_{impl}_s"
        if t is None:
            res[key + "_note"] = f"not in {a.timeout:g} s"
        else:
            res[key] = t
    if res.get("ospf_ours_s") and res.get("ospf_frr_s"):
        res["ospf_ratio"] = res["ospf_ours_s"] / res["ospf_frr_s"]
    return res


def machine() -> str:
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // (1024 * 1024)
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs, {mem} GiB, Python {platform.python_version()}"


def _part(run_fig: dict[str, Any], name: str, fn: Any, *args: Any) -> None:
    """One part of a run; its failure is recorded and the next part runs."""
    try:
        run_fig.update(fn(*args))
    except Exception as e:
        run_fig[f"{name}_error"] = f"{type(e).__name__}: {e}"[:300]
        print(f"  {run_fig['shape']}{run_fig['nodes']} {name}: {run_fig[f'{name}_error']}")


def run(a: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {"machine": machine(), "runs": [], "notes": []}
    figures["notes"].append(
        "testbed OSPF over the links' /30s (control LAN passive)"
        if a.ospf == "p2p"
        else "testbed OSPF on the control LAN (one broadcast domain, a DR)"
    )
    packs = testbed_packs()
    if not packs:
        figures["notes"].append(
            "the testbed ran one process per daemon (compose/netns.py has no pack mode yet)"
        )
    log_dir = Path(a.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    for n in a.size_list:
        for shape in a.shape_list:
            pack = pack_for(n, a.pack)
            run_fig: dict[str, Any] = {"shape": shape, "nodes": n, "pack": pack}
            figures["runs"].append(run_fig)
            if "lab" not in a.skip_set:
                _part(run_fig, "lab", measure_lab, shape, n, pack if packs else 0, a, log_dir)
            _part(run_fig, "ospf", measure_ospf, shape, n, pack, a)
            print(table({**figures, "runs": [run_fig], "notes": []}).splitlines()[2], flush=True)
            if a.json:
                Path(a.json).write_text(json.dumps(figures, indent=1) + "\n")
    return figures


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.replot:
        figures = json.loads(Path(a.replot).read_text())
    else:
        if os.geteuid() != 0:
            print("bench/scale.py needs root (network namespaces)", file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            # an index of our own: `qkdnet down` elsewhere cannot take the bench's lab away
            # (readable by FRR's user: its sockets and logs live under the index)
            Path(tmp).chmod(0o755)
            os.environ["QKDNET_INDEX"] = str(Path(tmp) / "index")
            Path(tmp, "index").mkdir()
            figures = run(a)
    print(table(figures))
    if a.json and not a.replot:
        Path(a.json).write_text(json.dumps(figures, indent=1) + "\n")
    if a.plot:
        plot(figures, Path(a.plot))
        print(f"plot: {a.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
