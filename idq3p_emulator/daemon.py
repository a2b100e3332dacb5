"""The IDQ3P emulator daemon: a thin asyncio shell around :class:`Idq3pServer`.

``python -m idq3p_emulator --topology FILE --host NAME --seed-file FILE`` (the daemon
skeleton of :mod:`daemonkit.daemon` around :class:`EmulatorDaemon`) reads the host (kind
idq3p) and its QKD link (``Topology.qkd_link_of_idq``: the pair, the rate and the buffer;
a legacy ``pair`` link takes them from ``qkd:``), binds UDP 5323 on the host's
address and serves until SIGTERM/SIGINT. The key material is the pair's seed file (both
emulators of a pair get the same one; ``qkdnet up`` makes it fresh), a shared key file
(``--key-file``), or the seed pinned in the topology (``qkd.deterministic.seed``, insecure,
for reproducible tests); with none of them the daemon refuses to start (exit status 2).
Logs are JSON lines and never contain key bytes or the seed.

The device's marks (how far it handed keys out; docs/idq3p.md#restarts) live in
``STATE_DIR/NAME.marks`` with ``--state-dir``, else beside the seed or key file
(``FILE.NAME.marks``); they are written atomically (temporary file, fsync, rename, fsync
of the folder) before any key they cover is sent. Time is the wall clock: seed material
follows the clock both devices of a pair share.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from daemonkit import netns
from daemonkit.daemon import ConfigError, stopped
from daemonkit.ratelog import RateLimitedLog
from gmpls import topology
from gmpls.qkd import idq3p as codec
from idq3p_emulator import model
from idq3p_emulator.core import CACHE_BYTES, Idq3pServer
from idq3p_emulator.events import Datagram, Persist
from idq3p_emulator.store import FileSource, KeySource, KeyStore, Marks, SeedSource

log = logging.getLogger("idq3p_emulator")


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    name: str
    pair: str
    address: str
    port: int
    own_stream: int
    rate_bps: float
    buffer_bits: int
    seed: bytes = field(repr=False)
    key_file: Path | None = None
    seed_file: Path | None = None
    cache_bytes: int = CACHE_BYTES


def config_from_topology(
    topo: topology.Topology,
    host: str,
    port: int = codec.PORT,
    key_file: Path | None = None,
    rate_bps: float | None = None,
    buffer_bits: int | None = None,
    bind: str | None = None,
    seed: bytes | None = None,
) -> EmulatorConfig:
    """The emulator of ``host``; ``seed`` (the pair's seed file) replaces the topology's
    ``qkd.deterministic.seed``."""
    h = topo.host(host)
    link = topo.qkd_link_of_idq(host)
    if h.kind != "idq3p" or link is None:
        raise ValueError(f"{host} is a {h.kind}, not an idq3p host of a QKD link")
    pair = link.pair_of(host)
    address = bind or str(next(iter(h.interfaces.values())))
    return EmulatorConfig(
        name=host,
        pair=pair,
        address=address,
        port=port,
        own_stream=0 if host < pair else 1,
        rate_bps=link.rate_bps if rate_bps is None else float(rate_bps),
        buffer_bits=link.buffer_bits if buffer_bits is None else buffer_bits,
        seed=topo.qkd.deterministic.seed if seed is None else seed,
        key_file=key_file,
    )


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: Idq3pServer, drops: RateLimitedLog, marks: MarksFile | None) -> None:
        self.server = server
        self.drops = drops  # lines about bad requests, rate-limited (docs/design.md#logs)
        self.marks = marks
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        peer = {"peer": f"{addr[0]}:{addr[1]}"}
        malformed = self.server.counters["malformed"]
        try:
            actions = self.server.handle(Datagram(data, addr), time.time())
        except Exception:  # never crash on a packet
            self.drops.log(logging.ERROR, "request failed", peer, exc_info=True)
            return
        if self.server.counters["malformed"] != malformed:
            self.drops.log(logging.INFO, "malformed request", peer)
        for a in actions:
            if isinstance(a, Persist):
                if not self._persist(a):
                    return  # the keys after it are not covered: never send them
            elif self.transport is not None:
                self.transport.sendto(a.data, a.addr)

    def _persist(self, a: Persist) -> bool:
        if self.marks is None:
            return True
        try:
            self.marks.save(a.marks)
        except OSError as e:
            self.server.store.dirty = True  # try again with the next request
            self.server.counters["persist_failed"] = (
                self.server.counters.get("persist_failed", 0) + 1
            )
            self.drops.log(logging.ERROR, "marks not saved, answer dropped", {"error": str(e)})
            return False
        return True


class MarksFile:
    """Where a device's :class:`Marks` live, saved atomically: a temporary file in the same
    folder, fsync, rename over the old one, fsync of the folder."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self, source: KeySource, stream: int) -> Marks:
        """The marks of this material and stream (fresh ones if there are none or they
        belong to other material); ``ValueError`` if the file is not a marks file."""
        fresh = Marks(source.material_id, stream)
        if not self.path.exists():
            return fresh
        return Marks.decode(self.path.read_bytes()).for_material(source.material_id, stream)

    def save(self, data: bytes) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def marks_file(cfg: EmulatorConfig, state_dir: Path | None) -> MarksFile | None:
    """``STATE_DIR/NAME.marks``, else beside the key or seed file; None for a seed pinned
    in the topology without ``--state-dir`` (a test set-up: nothing kept)."""
    if state_dir is not None:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return MarksFile(state_dir / f"{cfg.name}.marks")
    material = cfg.key_file or cfg.seed_file
    if material is None:
        return None
    return MarksFile(material.with_name(f"{material.name}.{cfg.name}.marks"))


#: why an emulator without key material does not start
NO_KEY_MATERIAL = (
    "no key material: give --seed-file FILE (`qkdnet up` makes one per pair) or --key-file "
    "FILE, or pin qkd.deterministic.seed in the topology (insecure, for tests only)"
)


def key_source(cfg: EmulatorConfig) -> KeySource:
    """The key material: the key file (``OSError``/``ValueError`` when it cannot be read
    or is not one), else the seed; :class:`ConfigError` when there is neither."""
    if cfg.key_file is not None:
        return FileSource.from_file_bytes(cfg.key_file.read_bytes())
    if not cfg.seed:
        raise ConfigError(NO_KEY_MATERIAL)
    return SeedSource(cfg.seed)


def build_server(
    cfg: EmulatorConfig, now: float, source: KeySource | None = None, marks: Marks | None = None
) -> Idq3pServer:
    store = KeyStore(
        source or key_source(cfg), cfg.own_stream, cfg.rate_bps, cfg.buffer_bits, now, marks
    )
    return Idq3pServer(store, cache_bytes=cfg.cache_bytes)


class EmulatorDaemon:
    """One emulated device: its UDP socket around an :class:`Idq3pServer`, started and
    stopped by the daemon skeleton (:mod:`daemonkit.daemon`). Stopping logs the counters
    and writes them to ``STATE_DIR/NAME.counters.json``."""

    def __init__(self, cfg: EmulatorConfig, state_dir: Path | None = None) -> None:
        self.cfg = cfg
        self.state_dir = state_dir
        self.source = key_source(cfg)  # read now: a bad key file is a config error
        self.marks_file = marks_file(cfg, state_dir)
        self.marks: Marks | None = None
        if self.marks_file is not None:  # a bad or unwritable marks file is one too
            self.marks = self.marks_file.load(self.source, cfg.own_stream)
            self.marks_file.save(self.marks.encode())
        self.server: Idq3pServer | None = None
        self.drops: RateLimitedLog | None = None
        self.transport: asyncio.BaseTransport | None = None

    async def start(self) -> None:
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        self.server = server = build_server(cfg, time.time(), self.source, self.marks)
        self.drops = drops = RateLimitedLog(log, {"host": cfg.name}, clock=loop.time)
        self.transport, _ = await netns.datagram_endpoint(
            lambda: _Protocol(server, drops, self.marks_file), (cfg.address, cfg.port)
        )
        log.info(
            "listening",
            extra={
                "host": cfg.name,
                "pair": cfg.pair,
                "addr": f"{cfg.address}:{cfg.port}",
                "stream": cfg.own_stream,
                "rate_bps": cfg.rate_bps,
                "buffer_bits": cfg.buffer_bits,
                "source": "key-file" if cfg.key_file else "seed",
                "marks": str(self.marks_file.path) if self.marks_file else None,
                "started_wall": time.time(),
            },
        )

    async def stop(self) -> None:
        if self.server is None:
            return
        if self.transport is not None:
            self.transport.close()
        if self.drops is not None:
            self.drops.close()
        stopped(log, self.cfg.name, self.server.counters, self.state_dir)


def link_rate(args: Any) -> float | None:
    """The rate from the link model when ``--fibre-km`` is given, else None."""
    if args.fibre_km is None:
        return None
    return model.rate_for(
        args.fibre_km,
        args.db_per_km,
        args.extra_loss_db,
        args.detector_efficiency,
        args.dark_count,
    )
