"""``python -m idq3p_emulator``: the daemon (see :mod:`idq3p_emulator.daemon`; the common
flags and exit statuses are those of :mod:`daemonkit.daemon`), or ``keygen`` for a pair's
shared material.

python -m idq3p_emulator --topology topologies/paper.yaml --host idqA --seed-file idqA-idqB.seed
python -m idq3p_emulator keygen --seed                # a fresh random seed, in hex
python -m idq3p_emulator keygen --out pair.key --bytes 1048576
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from daemonkit import daemon
from gmpls.qkd import idq3p as codec
from gmpls.topology import Topology
from idq3p_emulator.core import CACHE_BYTES
from idq3p_emulator.daemon import EmulatorDaemon, config_from_topology, link_rate
from idq3p_emulator.store import make_keyfile


def keygen(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m idq3p_emulator keygen")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--seed", action="store_true", help="print a fresh random seed (hex)")
    g.add_argument("--out", type=Path, help="write a key file for both devices of a pair")
    p.add_argument("--bytes", type=int, default=1 << 20, help="material in the key file")
    a = p.parse_args(argv)
    if a.seed:
        print(secrets.token_hex(32))
        return 0
    if a.bytes < 2:
        p.error("--bytes must be at least 2")
    data = make_keyfile(secrets.token_bytes(a.bytes))
    fd = os.open(a.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    print(f"{a.out}: {a.bytes} bytes of key material (two streams of {a.bytes // 2})")
    return 0


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=codec.PORT)
    p.add_argument("--bind", help="address to bind (default: the host's address)")
    p.add_argument(
        "--seed-file",
        type=Path,
        help="the pair's seed (raw bytes, at least 16; `qkdnet up` makes it)",
    )
    p.add_argument("--key-file", type=Path, help="the pair's shared key file (used, not the seed)")
    p.add_argument("--rate-bps", type=float, help="override the QKD link's rate")
    p.add_argument("--buffer-bits", type=int, help="override the QKD link's buffer")
    p.add_argument(
        "--cache-bytes",
        type=int,
        default=CACHE_BYTES,
        help="bound of the response cache, in bytes of answers (default 4 MiB)",
    )
    m = p.add_argument_group("link model (docs/qkd-rate-model.md), used when --fibre-km is set")
    m.add_argument("--fibre-km", type=float)
    m.add_argument("--db-per-km", type=float, default=0.2)
    m.add_argument("--extra-loss-db", type=float, default=0.0)
    m.add_argument("--detector-efficiency", type=float)
    m.add_argument("--dark-count", type=float)


def _build(a: argparse.Namespace, topo: Topology) -> EmulatorDaemon:
    rate = link_rate(a)
    if rate is None:
        rate = a.rate_bps
    seed = daemon.read_secret(a.seed_file) if a.seed_file is not None else None
    cfg = config_from_topology(
        topo, a.host, a.port, a.key_file, rate, a.buffer_bits, a.bind, seed=seed
    )
    if a.cache_bytes <= 0:
        raise ValueError("--cache-bytes must be positive")
    cfg = replace(cfg, seed_file=a.seed_file, cache_bytes=a.cache_bytes)
    return EmulatorDaemon(cfg, a.state_dir)


#: what ``python -m idq3p_emulator`` runs (and ``qkdnet up --pack N`` packs)
SPEC = daemon.Spec("idq3p_emulator", "idq3p", _build, __doc__, _arguments)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["keygen"]:
        return keygen(argv[1:])
    return SPEC.main(argv)


if __name__ == "__main__":
    sys.exit(main())
