"""IDQ3P emulator, issue 12 items 2 and 5, in memory: no key repeats across a restart of
either box of a pair, by GET_NEXT_KEY or GET_KEY_BY_ID and in any order of requests; no key
served by ID before the pair released it; the response cache bounded in bytes; the delivered
ranges in an O(log n) structure.

A box here is an :class:`Idq3pServer` whose saved marks are the bytes of the last
:class:`Persist` it returned (what the daemon writes to disk before it sends the answer
that follows); a restart is a new server built from them, as after a crash.
"""

from __future__ import annotations

import itertools
import random

import pytest

from gmpls.qkd import idq3p as codec
from idq3p_emulator.core import CACHE_BYTES, Idq3pServer
from idq3p_emulator.events import Datagram, Persist, Send
from idq3p_emulator.store import (
    FileSource,
    IntervalSet,
    KeySource,
    KeyStore,
    Marks,
    SeedSource,
    key_id,
    make_keyfile,
    split_key_id,
)

RATE = 8e6  # b/s: 500 kB/s per stream
BUFFER = 1 << 23  # bits: 512 kB per stream
CLIENT = ("10.11.2.1", 40000)


class Box:
    """One emulator of the pair; ``saved`` is what it last persisted."""

    def __init__(self, source: KeySource, stream: int, now: float, saved: bytes | None) -> None:
        fresh = Marks(source.material_id, stream)
        marks = (
            fresh if saved is None else Marks.decode(saved).for_material(source.material_id, stream)
        )
        self.source, self.stream = source, stream
        self.srv = Idq3pServer(KeyStore(source, stream, RATE, BUFFER, now, marks))
        self.saved = marks.encode()  # the daemon saves its marks when it starts
        self.rid = 0

    def restart(self, now: float) -> Box:
        return Box(self.source, self.stream, now, self.saved)

    def ask(self, msg: codec.AnyMessage, now: float) -> codec.AnyMessage:
        actions = self.srv.handle(Datagram(codec.encode(msg), CLIENT), now)
        assert isinstance(actions[-1], Send)
        for a in actions[:-1]:
            assert isinstance(a, Persist)
            self.saved = a.marks  # saved before the answer goes out
        return codec.decode(actions[-1].data)

    def next_keys(self, key_bytes: int, count: int, now: float) -> list[codec.Key]:
        self.rid += 1
        r = self.ask(codec.GetNextKey(self.rid, key_bytes, count), now)
        assert isinstance(r, codec.Keys)
        return list(r.keys)

    def by_id(self, ids: list[int], key_bytes: int, now: float) -> codec.Keys:
        self.rid += 1
        r = self.ask(codec.GetKeyById(self.rid, key_bytes, tuple(ids)), now)
        assert isinstance(r, codec.Keys)
        return r


class Ledger:
    """Every key each box delivered, as byte ranges of the streams."""

    def __init__(self) -> None:
        self.ranges: dict[str, list[tuple[int, int, int]]] = {"A": [], "B": []}
        self.material: dict[tuple[int, int, int], bytes] = {}

    def add(self, box: str, keys: list[codec.Key], key_bytes: int) -> None:
        for k in keys:
            stream, off = split_key_id(k.key_id)
            r = (stream, off, off + key_bytes)
            self.ranges[box].append(r)
            same = self.material.setdefault(r, k.material) == k.material
            assert same, f"range {r} delivered with two values"  # never print the key

    def assert_no_repeat(self) -> None:
        """No box delivered any byte of a stream twice."""
        for box, ranges in self.ranges.items():
            ranges = sorted(ranges)
            for (s1, _, e1), (s2, o2, _) in itertools.pairwise(ranges):
                assert s1 != s2 or o2 >= e1, f"{box} delivered stream {s1} bytes twice"


def repeats(after: list[codec.Key], before: list[codec.Key]) -> int:
    """How many keys of ``after`` were in ``before`` (a count: a failure prints no key)."""
    return len({k.material for k in after} & {k.material for k in before})


def sources() -> list[tuple[str, KeySource]]:
    return [
        ("seed", SeedSource(b"restart-test-seed")),
        ("keyfile", FileSource.from_file_bytes(make_keyfile(random.Random(5).randbytes(1 << 22)))),
    ]


@pytest.mark.parametrize("name, source", sources(), ids=lambda x: x if isinstance(x, str) else "")
def test_no_key_repeats_across_restarts_of_either_box_in_any_order(
    name: str, source: KeySource
) -> None:
    rng = random.Random(12)
    now = 1000.0
    boxes = {"A": Box(source, 0, now, None), "B": Box(source, 1, now, None)}
    other = {"A": "B", "B": "A"}
    handed: dict[str, list[tuple[int, int]]] = {"A": [], "B": []}  # (key ID, size) as next
    led = Ledger()
    by_id_ok = restarts = 0
    for _ in range(600):
        now += rng.choice((0.0, 0.001, 0.05, 0.3))
        side = rng.choice("AB")
        op = rng.random()
        if op < 0.08:  # a crash and a restart of one box
            boxes[side] = boxes[side].restart(now)
            restarts += 1
        elif op < 0.5:
            size = rng.choice((16, 32))
            keys = boxes[side].next_keys(size, rng.randint(1, 40), now)
            led.add(side, keys, size)
            handed[side] += [(k.key_id, size) for k in keys]
        else:  # by ID at the other box: any IDs its pair handed out, old ones too, shuffled
            pool = handed[other[side]][-rng.choice((40, 100_000)) :]  # recent ones, or any
            if not pool:
                continue
            size = rng.choice([s for _, s in pool[-50:]])
            ids = [kid for kid, _ in rng.sample(pool, min(len(pool), rng.randint(1, 12)))]
            r = boxes[side].by_id(ids, size, now)
            led.add(side, list(r.keys), size)
            by_id_ok += len(r.keys)
    led.assert_no_repeat()
    # the run did what it claims: restarts of both, keys both ways, refusals after restarts
    assert restarts >= 20 and by_id_ok > 200
    assert all(len(r) > 500 for r in led.ranges.values())


def test_a_restarted_box_hands_out_none_of_its_earlier_keys_and_its_pair_refuses_none() -> None:
    src = SeedSource(b"restart-test-seed")
    a, b = Box(src, 0, 10.0, None), Box(src, 1, 10.0, None)
    before = a.next_keys(32, 100, 11.0)
    assert len(before) == 100
    a = a.restart(11.0)  # the same moment: the clock alone would not move it on
    after = a.next_keys(32, 100, 12.0)
    assert after and repeats(after, before) == 0
    # the pair box serves the new keys by ID: the skipped reservation is never asked for
    r = b.by_id([k.key_id for k in after], 32, 12.0)
    assert r.status == codec.Status.OK and [k.material for k in r.keys] == [
        k.material for k in after
    ]


def test_a_restarted_box_refuses_by_id_what_it_served_before() -> None:
    src = SeedSource(b"restart-test-seed")
    a, b = Box(src, 0, 10.0, None), Box(src, 1, 10.0, None)
    keys = a.next_keys(32, 50, 11.0)
    served = b.by_id([k.key_id for k in keys[:30]], 32, 11.0)
    assert served.status == codec.Status.OK and len(served.keys) == 30
    b = b.restart(11.0)
    again = b.by_id([k.key_id for k in keys], 32, 11.5)  # the served 30 and the 20 others
    assert again.keys == () and again.status == codec.Status.UNKNOWN_KEY_ID
    assert b.srv.counters["unknown_id"] == 50
    fresh = a.next_keys(32, 10, 12.0)  # keys handed out after the restart are served
    assert len(b.by_id([k.key_id for k in fresh], 32, 12.0).keys) == 10


def test_without_marks_the_pair_clock_still_moves_fresh_keys_on() -> None:
    """A seed pinned for tests and no --state-dir: no marks, but a box restarted later on
    the pair's clock starts at the position of its start."""
    src = SeedSource(b"s")
    a = KeyStore(src, 0, RATE, BUFFER, 10.0)
    first = a.next_keys(32, 1000, 11.0)
    a = KeyStore(src, 0, RATE, BUFFER, 11.0)
    again = {m for _, m in a.next_keys(32, 1000, 12.0)}
    assert len(again & {m for _, m in first}) == 0  # a count: never print key bytes


# --- item 5: released keys only ----------------------------------------------------------
def test_a_future_key_by_id_is_refused_counted_and_served_once_released() -> None:
    src = SeedSource(b"future")
    a, b = Box(src, 0, 100.0, None), Box(src, 1, 100.0, None)
    (key,) = a.next_keys(32, 1, 101.0)
    _, off = split_key_id(key.key_id)
    ahead = key_id(0, off + 500_000)  # one second of the stream ahead of what was released
    r = b.by_id([key.key_id, ahead], 32, 101.0)
    assert r.status == codec.Status.INSUFFICIENT_KEY
    assert [k.key_id for k in r.keys] == [key.key_id]  # the released one is delivered
    assert b.srv.counters["future_id"] == 1 and b.srv.counters["keys_by_id"] == 1
    far = b.by_id([key_id(0, 1 << 62)], 32, 101.0)
    assert far.keys == () and far.status == codec.Status.INSUFFICIENT_KEY
    assert b.srv.counters["future_id"] == 2
    # not taken: once the pair has released it (and handed it out), it is served
    later = b.by_id([ahead], 32, 102.5)
    assert later.status == codec.Status.OK
    assert later.keys[0].material == src.material(0, off + 500_000, 32)


def test_by_id_refuses_keys_dropped_before_the_box_started() -> None:
    src = SeedSource(b"old")
    b = Box(src, 1, 1000.0, None)
    released = int(RATE / 2 * 1000.0) // 8
    old = key_id(0, released - BUFFER // 16 - 64)  # older than one buffer at its start
    r = b.by_id([old], 32, 1000.5)
    assert r.status == codec.Status.UNKNOWN_KEY_ID and b.srv.counters["unknown_id"] == 1


def test_key_file_ids_past_its_end_are_unknown() -> None:
    src = FileSource.from_file_bytes(make_keyfile(bytes(4096)))
    b = Box(src, 1, 0.0, None)
    r = b.by_id([key_id(0, 2048 - 16)], 32, 1.0)
    assert r.status == codec.Status.UNKNOWN_KEY_ID and b.srv.counters["future_id"] == 0


def test_the_response_cache_stays_under_its_byte_bound() -> None:
    src = SeedSource(b"cache")
    srv = Idq3pServer(KeyStore(src, 1, 1e9, 1 << 30, 0.0))
    sent = 0
    for i in range(4096):
        ids = tuple(key_id(0, (i * 16 + j) * 1024) for j in range(16))
        out = srv.handle(
            Datagram(codec.encode(codec.GetKeyById(i, 1024, ids)), ("10.11.3.1", i % 7)), 1000.0
        )
        (reply,) = out
        assert isinstance(reply, Send)
        sent += len(reply.data)
        assert srv.cache.nbytes <= CACHE_BYTES
    assert srv.counters["keys_by_id"] == 4096 * 16
    assert sent > 15 * CACHE_BYTES  # without the bound the cache would hold all of it
    assert srv.cache.nbytes == sum(len(srv.cache.get(k) or b"") for k in list(srv.cache._d))
    # the newest answers are still there: a repeat is answered from the cache
    req = codec.encode(codec.GetKeyById(4095, 1024, (key_id(0, 0),)))
    assert srv.handle(Datagram(req, ("10.11.3.1", 4095 % 7)), 1000.0)[0].data == reply.data
    assert srv.counters["duplicates"] == 1


# --- the delivered ranges ----------------------------------------------------------------
def test_interval_set_agrees_with_a_plain_set_of_bytes() -> None:
    for trial in range(200):
        rng = random.Random(trial)
        s, ref = IntervalSet(random.Random(trial)), set()
        for _ in range(80):
            a = rng.randrange(0, 300)
            b = a + rng.randrange(1, 16)
            hit = any(x in ref for x in range(a, b))
            assert s.overlaps(a, b) == hit, (trial, a, b)
            if not hit or rng.random() < 0.5:
                s.add(a, b)
                ref.update(range(a, b))
        assert len(s) == sum(1 for x in ref if x - 1 not in ref)  # touching ranges merged


def test_interval_set_stays_shallow_with_scattered_ranges() -> None:
    """O(log n) per lookup and insert: the tree's depth, not a timing."""
    rng = random.Random(3)
    s = IntervalSet(random.Random(4))
    n = 50_000
    for _ in range(n):
        o = rng.randrange(1 << 40) * 32
        if not s.overlaps(o, o + 32):
            s.add(o, o + 32)
    assert len(s) > n - 10
    assert s.depth() <= 4 * n.bit_length()  # a list would be n deep; a treap about 2.5 log n
    for i in range(n):  # sequential ranges merge into one
        s.add((1 << 50) + 32 * i, (1 << 50) + 32 * (i + 1))
    assert len(s) <= n + 1


def test_marks_round_trip_and_belong_to_their_material() -> None:
    m = Marks("abc", 1, 4096, 8192)
    assert Marks.decode(m.encode()) == m
    assert m.for_material("abc", 1) is m
    assert m.for_material("other", 1) == Marks("other", 1)
    for bad in (b"", b"{}", b'{"material": "x", "stream": 2, "own": 0, "other": 0}', b"\xff"):
        with pytest.raises(ValueError):
            Marks.decode(bad)


def test_short_and_long_reads_of_seed_material_are_one_keystream() -> None:
    """Short reads (a key by ID) go block by block, long ones through AES-CTR: same bytes."""
    src = SeedSource(b"keystream")
    rng = random.Random(9)
    for _ in range(200):
        stream, off, n = rng.randrange(2), rng.randrange(1 << 50), rng.randrange(1, 200)
        whole = src.material(stream, off - off % 16, 4096)  # long: CTR from the block
        assert src.material(stream, off, n) == whole[off % 16 : off % 16 + n]
