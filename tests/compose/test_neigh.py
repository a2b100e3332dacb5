"""The neighbour table all namespaces share (compose.neigh): a 300-node lab overflowed its
default limit of 1,024 entries and the kernel dropped OSPF Hellos and PCEP SYNs
(docs/scale.md); ``up`` now raises the limits to what the topology needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from compose import neigh, topogen
from compose.netns import NetnsTestbed
from gmpls.topology import Topology, load


def gen(tmp_path: Path, shape: str, n: int) -> Path:
    out = tmp_path / f"{shape}{n}.yaml"
    out.write_text(topogen.dump(topogen.generate(shape, n, qe=True, ospf="p2p")))
    return out


def sent_to(t: Topology) -> int:
    """The next hops the daemons of ``t`` send to: on every point-to-point OSPF interface
    224.0.0.5 and the peer, RSVP to the TE neighbour at both ends of each TE link, PCEP
    from every node to the PCE and back (3,994 on grid300, whose lab held 4,051 entries,
    counted with ``ip neigh`` in every namespace)."""
    p2p = sum(
        1
        for h in t.hosts.values()
        for d in h.interfaces
        if d != t.control_domain and t.ospf_network(d) == "point-to-point"
    )
    return 2 * p2p + 2 * len(t.te_links) + 2 * len(t.of_kind("node"))


def test_a_300_node_grid_needs_more_than_the_default_limit(tmp_path: Path) -> None:
    t = load(gen(tmp_path, "grid", 300))
    assert sent_to(t) > 1024  # the kernel's default gc_thresh3: the lab did not converge
    assert neigh.entries_needed(t) >= sent_to(t)


def test_a_small_lab_changes_nothing(tmp_path: Path) -> None:
    t = load(gen(tmp_path, "ring", 12))
    assert sent_to(t) <= neigh.entries_needed(t) <= 512  # the default gc_thresh2


def limits(root: Path, thresh2: int, thresh3: int) -> Path:
    root.mkdir()
    (root / "gc_thresh2").write_text(f"{thresh2}\n")
    (root / "gc_thresh3").write_text(f"{thresh3}\n")
    return root


def read(root: Path) -> tuple[int, int]:
    return int((root / "gc_thresh2").read_text()), int((root / "gc_thresh3").read_text())


def test_limits_are_raised_never_lowered(tmp_path: Path) -> None:
    root = limits(tmp_path / "neigh", 512, 1024)
    assert neigh.raise_limits(4000, root) == [("gc_thresh2", 512, 4000), ("gc_thresh3", 1024, 8000)]
    assert neigh.raise_limits(100, root) == []
    assert neigh.raise_limits(4000, root) == []
    assert read(root) == (4000, 8000)


def test_up_makes_room_for_a_large_lab_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = limits(tmp_path / "neigh", 512, 1024)
    monkeypatch.setattr(neigh, "NEIGH_DIR", root)
    said: list[str] = []
    bed = NetnsTestbed(gen(tmp_path, "grid", 300), tmp_path / "run", progress=said.append)
    bed._neighbour_limits()  # what up does before the namespaces are made
    need = neigh.entries_needed(bed.topology)
    assert read(root) == (need, 2 * need)
    assert said and "gc_thresh3 1024 -> " in said[0]


def test_up_warns_when_it_cannot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(neigh, "NEIGH_DIR", tmp_path / "absent")
    said: list[str] = []
    bed = NetnsTestbed(gen(tmp_path, "grid", 300), tmp_path / "run", progress=said.append)
    bed._neighbour_limits()
    assert said and said[0].startswith("[") and "warning: cannot check" in said[0]


def test_make_room_without_a_prefix_as_the_docker_guard_says_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain ``docker compose up`` of a large lab: the guard (compose/guard.py) calls
    :func:`compose.neigh.make_room` with its own voice, no prefix."""
    root = limits(tmp_path / "neigh", 512, 1024)
    said: list[str] = []
    t = load(gen(tmp_path, "grid", 300))
    neigh.make_room(t, said.append, root=root)
    assert read(root) == (neigh.entries_needed(t), 2 * neigh.entries_needed(t))
    assert said[0].startswith("neighbour table (shared by all namespaces")
