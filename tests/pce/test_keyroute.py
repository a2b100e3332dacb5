"""Key-aware relay paths (pce/keyroute.py) on hand-made QKD site graphs."""

from __future__ import annotations

import random
from dataclasses import dataclass
from ipaddress import IPv4Address

import pytest

from gmpls import qe
from pce.keyroute import (
    Commitment,
    Draw,
    KeyLedger,
    QkdGraph,
    consumption_bps,
    link_key,
    link_weight,
    links_json,
    relay_path,
    site_of,
)


def S(n: int) -> IPv4Address:
    return IPv4Address(f"10.1.1.{n}")


@dataclass(frozen=True)
class Ad:
    local_site: IPv4Address
    far_site: IPv4Address
    rate_bps: int = 1000
    stock_bits: int = 10_000
    buffer_bits: int = 10_000
    up: bool = True


def graph(*links: tuple[int, int] | tuple[int, int, dict[str, object]]) -> QkdGraph:
    """Both ends advertise each link (a, b[, fields])."""
    ads = []
    for link in links:
        a, b = link[0], link[1]
        kw: dict[str, object] = link[2] if len(link) == 3 else {}  # type: ignore[misc]
        ads += [Ad(S(a), S(b), **kw), Ad(S(b), S(a), **kw)]  # type: ignore[arg-type]
    return QkdGraph.from_ads(ads)


#: mesh6's QKD graph: ring 1-2-3-4-5-6-1 and the chord 2-5
MESH6 = [(1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 1), (2, 5)]


def test_same_site() -> None:
    r = relay_path(graph(*MESH6), S(1), S(1), 10_000, {})
    assert r.ok and r.sites == (S(1),) and r.hops == ()


def test_adjacent_sites() -> None:
    r = relay_path(graph(*MESH6), S(1), S(2), 256, {})
    assert r.ok and r.sites == (S(1), S(2)) and r.bottleneck_bps == 1000


def test_relay_through_two_trusted_sites() -> None:
    r = relay_path(graph(*MESH6), S(1), S(4), 256, {})
    assert r.ok and len(r.sites) == 4 and r.sites[0] == S(1) and r.sites[-1] == S(4)
    # three 3-hop paths (via 2-3, 2-5, 6-5): equal weights, the lowest site IDs win
    assert r.sites == (S(1), S(2), S(3), S(4))


def test_insufficient_rate() -> None:
    r = relay_path(graph(*MESH6), S(1), S(4), 1500, {})
    assert not r.ok and r.sites == ()
    assert r.reason.startswith("insufficient key rate")
    assert "1 kb/s free" in r.reason and r.bottleneck_bps == 1000


def test_committed_rate_counts() -> None:
    g = graph(*MESH6)
    used = {(S(1), S(2)): 900.0}
    r = relay_path(g, S(1), S(4), 256, used)
    assert r.ok and r.sites == (S(1), S(6), S(5), S(4))


def test_link_down_is_avoided() -> None:
    g = graph((1, 2, {"up": False}), *MESH6[1:])
    r = relay_path(g, S(1), S(4), 256, {})
    assert r.ok and S(2) not in r.sites and r.sites == (S(1), S(6), S(5), S(4))
    alone = graph((1, 2, {"up": False}))
    r = relay_path(alone, S(1), S(2), 1, {})
    assert not r.ok and "no QKD link path that is up" in r.reason and r.bottleneck_bps is None


def test_one_sided_link_not_used() -> None:
    g = QkdGraph.from_ads([Ad(S(1), S(2))])
    assert not g.links[link_key(S(1), S(2))].two_way
    assert not relay_path(g, S(1), S(2), 1, {}).ok


def test_each_end_advertises_its_direction() -> None:
    """A link is two directions: a hop from x to y draws on x's stream, so it is x's
    rate, stock and buffer that count, and what is committed from x to y."""
    g = QkdGraph.from_ads([Ad(S(1), S(2), 900, 500), Ad(S(2), S(1), 1000, 400, up=True)])
    lk = g.links[link_key(S(1), S(2))]
    assert (lk.up, lk.two_way) == (True, True)
    assert lk.draw(S(1)) == Draw(900, 500, 10_000) and lk.draw(S(2)) == Draw(1000, 400, 10_000)
    assert relay_path(g, S(1), S(2), 950, {}).reason.startswith("insufficient key rate")
    assert relay_path(g, S(2), S(1), 950, {}).sites == (S(2), S(1))
    assert relay_path(g, S(1), S(2), 10, {}, key_bits=450).sites == (S(1), S(2))
    assert not relay_path(g, S(2), S(1), 10, {}, key_bits=450).ok  # 400 bits in 2's stock


def test_commitments_count_per_direction() -> None:
    """Services from 1 to 2 fill direction (1, 2) only: one from 2 to 1 still fits."""
    g = graph((1, 2))
    full = {(S(1), S(2)): 1000.0}
    assert not relay_path(g, S(1), S(2), 10, full).ok
    assert relay_path(g, S(2), S(1), 1000, full).sites == (S(2), S(1))
    led = KeyLedger()
    led.commit(S(1), S(3), (S(1), S(2), S(3)), 300, 0)
    led.commit(S(3), S(1), (S(3), S(2), S(1)), 200, 0)
    assert led.committed() == {(S(1), S(2)): 300, (S(2), S(3)): 300,
                               (S(3), S(2)): 200, (S(2), S(1)): 200}  # fmt: skip


def test_empty_stock_is_infeasible() -> None:
    g = graph((1, 2, {"stock_bits": 100}), (2, 3), (1, 3, {"rate_bps": 2000}))
    assert relay_path(g, S(1), S(2), 10, {}, key_bits=256).sites == (S(1), S(3), S(2))


def test_headroom_and_stock_break_ties() -> None:
    """Among paths of equal hops the one with more free rate wins."""
    used = {(S(1), S(2)): 500.0}
    assert relay_path(graph(*MESH6), S(1), S(4), 256, used).sites == (S(1), S(6), S(5), S(4))
    low = graph((1, 2, {"stock_bits": 1_000}), *MESH6[1:])
    assert relay_path(low, S(1), S(4), 256, {}).sites == (S(1), S(6), S(5), S(4))


def test_a_loaded_direct_link_loses_to_a_detour() -> None:
    """The direct link would be nearly full and its store nearly empty: 1 + 0.75 + 0.9
    weighs more than two idle, full links (2 x 1.15)."""
    g = graph((1, 2, {"stock_bits": 1_000}), (1, 3), (3, 2))
    used = {(S(1), S(2)): 800.0}
    assert relay_path(g, S(1), S(2), 150, used).sites == (S(1), S(3), S(2))
    assert relay_path(g, S(1), S(2), 150, {}).sites == (S(1), S(2))
    assert relay_path(g, S(1), S(2), 150, used, policy="fewest-hop").sites == (S(1), S(2))


def test_fewest_hop_refuses_what_key_aware_reroutes() -> None:
    g = graph((1, 2, {"rate_bps": 100}), (1, 3), (3, 2))
    assert relay_path(g, S(1), S(2), 500, {}).sites == (S(1), S(3), S(2))
    r = relay_path(g, S(1), S(2), 500, {}, policy="fewest-hop")
    assert not r.ok and "fewest-hop" in r.reason


def test_fewest_feasible_ignores_headroom() -> None:
    used = {(S(1), S(2)): 500.0}
    g = graph(*MESH6)
    assert relay_path(g, S(1), S(4), 256, used).sites == (S(1), S(6), S(5), S(4))
    plain = relay_path(g, S(1), S(4), 256, used, policy="fewest-feasible")
    assert plain.sites == (S(1), S(2), S(3), S(4))
    assert relay_path(g, S(1), S(4), 600, used, policy="fewest-feasible").sites[1] == S(6)


def test_weight_terms() -> None:
    (lk,) = graph((1, 2, {"stock_bits": 5_000})).links.values()
    assert link_weight(lk.draw(S(1)), 500, 0) == pytest.approx(1 + 0.5 + 0.5)
    assert link_weight(lk.draw(S(2)), 500, 500) == pytest.approx(1 + 1.0 + 0.5)


def test_site_of() -> None:
    g = graph(*MESH6)
    assert site_of(g, S(1)) == S(1)
    assert site_of(g, S(9)) is None
    assert site_of(g, S(9), {S(9): S(3)}) == S(3)


@pytest.mark.parametrize(
    ("params", "bandwidth", "bps"),
    [
        (qe.QeParams(key_length=32, refresh_value=1000), 0.0, 256.0),
        (qe.QeParams(key_length=32, refresh_value=100), 0.0, 2560.0),
        (qe.QeParams(key_length=32, refresh_value=0), 0.0, 0.0),
        (qe.QeParams(key_length=16, refresh_type=qe.RefreshType.NONE), 0.0, 0.0),
        (qe.QeParams(key_length=32, refresh_type=qe.RefreshType.VOLUME_MIB, refresh_value=10),
         10 * 2**20 * 4, 1024.0),
        (qe.QeParams(key_length=32, refresh_type=qe.RefreshType.VOLUME_MIB, refresh_value=10),
         0.0, 256.0),
        (qe.QeParams(key_length=32, algorithm=qe.Algorithm.ONE_TIME_PAD), 1000.0, 8000.0),
    ],
)  # fmt: skip
def test_consumption(params: qe.QeParams, bandwidth: float, bps: float) -> None:
    assert consumption_bps(params, bandwidth) == pytest.approx(bps)


def test_ledger_hold_and_reports() -> None:
    led = KeyLedger(hold=30)
    path = (S(1), S(2), S(3))
    led.commit(S(1), S(3), path, 256, now=0)
    led.commit(S(1), S(3), path, 100, now=10)
    led.commit(S(1), S(1), (S(1),), 100, now=10)  # same site: nothing to commit
    assert led.committed() == {(S(1), S(2)): 356, (S(2), S(3)): 356}
    # at 35 s the first is past its hold; the head reports one live LSP: the newest stays
    # by its hold anyway, so the report keeps none of the older ones... unless two are live
    led.expire(35, {(S(1), S(3)): 2})
    assert len(led.commitments) == 2
    led.expire(35, {(S(1), S(3)): 1})
    assert [c.bps for c in led.commitments] == [100]
    led.expire(41, {(S(1), S(3)): 1})  # past both holds: the reported one stays
    assert [c.bps for c in led.commitments] == [100]
    led.expire(41, {})  # reported removed: released
    assert led.committed() == {} and led.released_total == 2


def test_ledger_totals_and_expiry_match_a_fresh_count() -> None:
    """The ledger keeps its totals as commitments come and go and looks at the live
    services only once some hold has passed: what it answers is what summing every
    commitment still held, and expiring by the rule, gives."""
    rng = random.Random(11)
    led = KeyLedger(hold=5)
    asked = 0

    def live() -> dict[tuple[IPv4Address, IPv4Address], int]:
        nonlocal asked
        asked += 1
        return {(S(1), S(3)): 3, (S(2), S(4)): 1}

    paths = [(S(1), S(2), S(3)), (S(2), S(3), S(4)), (S(1), S(4))]
    now = 0.0
    for _ in range(400):
        now += rng.uniform(0, 0.1)
        p = rng.choice(paths)
        led.commit(p[0], p[-1], p, rng.choice((64.0, 100.5, 256.0)), now)
        if rng.random() < 0.05 and led.commitments:
            led.release(rng.choice(led.commitments))
        before = list(led.commitments)
        led.expire(now, live)
        if now < 5:
            assert asked == 0  # no hold has passed: nothing to look at
        lv, asked = live(), asked - 1  # the test's own look
        want: list[Commitment] = []
        per_pair: dict[tuple[IPv4Address, IPv4Address], int] = {}
        for c in sorted(before, key=lambda c: c.since, reverse=True):
            pair = (c.head, c.tail)
            if c.until > now or per_pair.get(pair, 0) < lv.get(pair, 0):
                want.append(c)
                per_pair[pair] = per_pair.get(pair, 0) + 1
        assert led.commitments == sorted(want, key=lambda c: c.since)
        fresh: dict[tuple[IPv4Address, IPv4Address], float] = {}
        for c in led.commitments:
            for h in c.hops:
                fresh[h] = fresh.get(h, 0.0) + c.bps
        assert led.committed() == pytest.approx(fresh)
    assert asked > 0 and led.released_total > 0


def test_links_json() -> None:
    g = graph(*MESH6)
    led = KeyLedger()
    led.commit(S(1), S(4), (S(1), S(2), S(3), S(4)), 256, 0)
    d = links_json(g, led)
    rows = {(r["from"], r["to"]): r for r in d["links"]}
    row = rows[("10.1.1.1", "10.1.1.2")]
    assert row["committed_bps"] == 256 and row["free_bps"] == 744
    assert row["services"] == ["10.1.1.1->10.1.1.4"]
    back = rows[("10.1.1.2", "10.1.1.1")]
    assert back["committed_bps"] == 0 and back["free_bps"] == 1000 and back["services"] == []
    assert len(d["links"]) == 14 and d["sites"][0] == "10.1.1.1"


def _feasible_reachable(g: QkdGraph, src: IPv4Address, dst: IPv4Address, need: float,
                        used: dict[tuple[IPv4Address, IPv4Address], float]) -> bool:  # fmt: skip
    """Plain BFS over the directions that fit: is ``dst`` reachable?"""
    seen, todo = {src}, [src]
    while todo:
        here = todo.pop()
        for lk in g.links.values():
            if here not in (lk.a, lk.b):
                continue
            nxt = lk.other(here)
            free = lk.draw(here).rate_bps - used.get((here, nxt), 0)
            if lk.usable and free >= need and nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return dst in seen


@pytest.mark.parametrize("seed", range(40))
def test_random_graphs_against_bfs(seed: int) -> None:
    """On random graphs: key-aware finds a path exactly when one of feasible links exists
    (checked by BFS); the path is simple, joins its ends, uses only feasible links, and has
    at least the fewest-feasible hops and at most three times as many (a link weighs 1 to 3)."""
    rng = random.Random(seed)
    n = rng.randint(2, 12)
    pairs = {tuple(sorted(rng.sample(range(1, n + 1), 2))) for _ in range(rng.randint(1, 3 * n))}
    ads = []
    for a, b in pairs:
        up = rng.random() > 0.15
        for x, y in ((a, b), (b, a)):
            if (x, y) == (b, a) and rng.random() < 0.1:
                continue  # one-sided
            kw = {"rate_bps": rng.randint(0, 2000), "up": up}
            ads.append(Ad(S(x), S(y), **kw))  # type: ignore[arg-type]
    g = QkdGraph.from_ads(ads)
    used = {h: float(rng.randint(0, 1000)) for h, _ in g.hops() if rng.random() < 0.5}
    src, dst = S(rng.randint(1, n)), S(rng.randint(1, n))
    need = float(rng.randint(0, 1500))
    r = relay_path(g, src, dst, need, used)
    assert r.ok == _feasible_reachable(g, src, dst, need, used)
    if r.ok:
        assert r.sites[0] == src and r.sites[-1] == dst and len(set(r.sites)) == len(r.sites)
        for h in r.hops:
            lk = g.links[link_key(*h)]
            assert lk.usable and lk.draw(h[0]).rate_bps - used.get(h, 0) >= need
        plain = relay_path(g, src, dst, need, used, policy="fewest-feasible")
        assert plain.ok and len(plain.sites) <= len(r.sites) <= 3 * len(plain.sites)
    else:
        assert r.reason.startswith("insufficient key rate") and r.sites == ()
