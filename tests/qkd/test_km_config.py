"""The key manager's config from a topology (qkd_proxy.daemon.km_from_topology): mesh6's
sites with several links, the paper's one link, and the KM channel keys by file name."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import pytest

from daemonkit.daemon import ConfigError
from gmpls.topology import load
from qkd_proxy.daemon import keys_from_files, km_from_topology

ROOT = Path(__file__).resolve().parents[2]
MESH6 = load(ROOT / "topologies" / "mesh6.yaml")
PAPER = load(ROOT / "topologies" / "paper.yaml")
K = b"k" * 32


def test_mesh6_km2_has_three_links_and_the_whole_graph() -> None:
    keys = {"km1-km2": K, "km2-km3": K + b"3", "km2-km5": K + b"5"}
    cfg, binds = km_from_topology(MESH6, "km2", keys)
    assert cfg.site == IPv4Address("10.1.1.2")
    assert [x.name for x in cfg.links] == ["km1-km2", "km2-km3", "km2-km5"]
    by = {x.name: x for x in cfg.links}
    assert by["km2-km3"].far_site == IPv4Address("10.1.1.3")
    assert by["km2-km3"].proxy.sync_secret == K + b"3"
    assert by["km2-km3"].proxy.peer_sync == ("10.12.0.3", 5626)
    assert by["km2-km3"].proxy.idq == ("10.11.2.23", 5323)
    assert by["km1-km2"].proxy.wins_tie is False and by["km2-km3"].proxy.wins_tie is True
    assert len(cfg.graph) == 7
    assert cfg.site_of_node[IPv4Address("10.1.1.4")] == IPv4Address("10.1.1.4")
    assert IPv4Address("10.2.2.1") in cfg.served_addrs
    assert binds.north == ("10.2.2.11",) and binds.sync == ("10.12.0.2",)
    assert binds.south_of_idq[("10.11.2.25", 5323)] == "10.11.2.1"


def test_a_link_without_a_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="km2-km5"):
        km_from_topology(MESH6, "km2", {"km1-km2": K, "km2-km3": K})


def test_the_paper_is_one_link() -> None:
    cfg, binds = km_from_topology(PAPER, "etsiA", {"etsiA-etsiB": K})
    (link,) = cfg.links
    assert link.far_site == IPv4Address("10.1.1.5")
    assert link.proxy.peer_sync == ("10.11.1.15", 5626)
    assert binds.north == ("10.2.1.11",)


def test_key_files_are_picked_by_name(tmp_path: Path) -> None:
    a, b = tmp_path / "km1-km2.sync", tmp_path / "km2-km3.sync"
    a.write_bytes(K)
    b.write_bytes(K + b"x")
    assert keys_from_files([a, b]) == {"km1-km2": K, "km2-km3": K + b"x"}
