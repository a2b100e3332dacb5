"""The testbed's key material: fresh random secrets per bring-up, handed over by file.

No key material is written in a topology (unless it pins some under the insecure
``qkd.deterministic`` setting, for reproducible tests). ``qkdnet up`` writes, into the run
directory's ``secrets/`` (mode 0700, each file 0600), from :func:`secrets.token_bytes`:

- one 32-byte seed per IDQ3P emulator pair, ``A-B.seed`` (the pair's names sorted); both
  emulators read it (``python -m idq3p_emulator ... --seed-file FILE``), so they derive
  the same key stream, which nobody without the file can compute;
- one 32-byte sync key per proxy pair, ``A-B.sync``; both proxies read it
  (``python -m qkd_proxy ... --sync-key-file FILE``).

:func:`daemon_args` gives a host's flags, :func:`write` makes the files. A part the
topology pins (``qkd.deterministic.seed`` or ``.sync_key``) gets no file, and the daemons
use the pinned value. The files' bytes are never printed or logged.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from gmpls.topology import Topology

#: the folder of the secrets, in the run directory (and next to a rendered compose file)
FOLDER = "secrets"
#: bytes of each seed and sync key
SIZE = 32


def _pair_file(a: str, b: str, suffix: str) -> str:
    x, y = sorted((a, b))
    return f"{x}-{y}.{suffix}"


def files(topo: Topology) -> dict[str, tuple[str, str]]:
    """``{host: (flag, file name)}`` for every emulator and proxy whose key material is not
    pinned in the topology."""
    det = topo.qkd.deterministic
    out: dict[str, tuple[str, str]] = {}
    for h in topo.hosts.values():
        if h.kind == "idq3p" and h.pair is not None and not det.seed:
            out[h.name] = ("--seed-file", _pair_file(h.name, h.pair, "seed"))
        elif h.kind == "qkd-proxy" and h.peer is not None and not det.sync_key:
            out[h.name] = ("--sync-key-file", _pair_file(h.name, h.peer, "sync"))
    return out


def daemon_args(topo: Topology, host: str, folder: str | os.PathLike[str]) -> list[str]:
    """The flags that hand ``host`` its secret file in ``folder`` (none for other hosts)."""
    f = files(topo).get(host)
    return [] if f is None else [f[0], f"{folder}/{f[1]}"]


def write(topo: Topology, folder: Path) -> list[Path]:
    """Make ``folder`` (mode 0700) and a fresh secret file (0600) for each pair of
    :func:`files`, replacing any of an earlier bring-up; the files written."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    out = []
    for name in sorted({f for _, f in files(topo).values()}):
        path = folder / name
        if path.is_dir():  # what Docker leaves when it bind-mounts a file that is missing
            path.rmdir()
        tmp = folder / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(SIZE))
        os.replace(tmp, path)
        out.append(path)
    return out
