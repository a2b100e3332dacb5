"""``python -m idq3p_emulator``: the daemon, or ``keygen`` for a pair's shared material.

python -m idq3p_emulator --topology topologies/paper.yaml --host idqA
python -m idq3p_emulator keygen --seed                # a fresh qkd.key_seed
python -m idq3p_emulator keygen --out pair.key --bytes 1048576
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from pathlib import Path

from gmpls import topology
from gmpls.logfmt import setup_logging
from gmpls.qkd import idq3p as codec
from idq3p_emulator.daemon import config_from_topology, link_rate, serve
from idq3p_emulator.store import make_keyfile


def keygen(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m idq3p_emulator keygen")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--seed", action="store_true", help="print a fresh random key seed")
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["keygen"]:
        return keygen(argv[1:])
    p = argparse.ArgumentParser(prog="python -m idq3p_emulator", description=__doc__)
    p.add_argument("--topology", required=True, type=Path)
    p.add_argument("--host", required=True)
    p.add_argument("--log-file")
    p.add_argument("--state-dir", type=Path)
    p.add_argument("--port", type=int, default=codec.PORT)
    p.add_argument("--bind", help="address to bind (default: the host's address)")
    p.add_argument("--key-file", type=Path, help="shared key file instead of qkd.key_seed")
    p.add_argument("--rate-bps", type=float, help="override qkd.secret_key_rate_bps")
    p.add_argument("--buffer-bits", type=int, help="override qkd.buffer_bits")
    m = p.add_argument_group("link model (docs/qkd-rate-model.md), used when --fibre-km is set")
    m.add_argument("--fibre-km", type=float)
    m.add_argument("--db-per-km", type=float, default=0.2)
    m.add_argument("--extra-loss-db", type=float, default=0.0)
    m.add_argument("--detector-efficiency", type=float)
    m.add_argument("--dark-count", type=float)
    a = p.parse_args(argv)
    setup_logging(a.log_file)
    topo = topology.load(a.topology)
    rate = link_rate(a)
    if rate is None:
        rate = a.rate_bps
    cfg = config_from_topology(topo, a.host, a.port, a.key_file, rate, a.buffer_bits, a.bind)
    asyncio.run(serve(cfg, a.state_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
