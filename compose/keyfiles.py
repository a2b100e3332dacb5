"""The testbed's key material: fresh random secrets per bring-up, handed over by file.

No key material is written in a topology (unless it pins some under the insecure
``qkd.deterministic`` setting, for reproducible tests). ``qkdnet up`` writes, into the run
directory's ``secrets/`` (mode 0700, each file 0600), from :func:`secrets.token_bytes`:

- one 32-byte seed per QKD link's IDQ3P emulator pair, ``A-B.seed`` (the emulators' names
  sorted); both emulators read it (``python -m idq3p_emulator ... --seed-file FILE``), so
  they derive the same key stream, which nobody without the file can compute;
- one 32-byte KM channel key per QKD link, ``X-Y.sync`` (the two key managers' names
  sorted, i.e. the link's name); each key manager gets one ``--sync-key-file FILE`` per
  link it has, the flag repeated in the order of ``Topology.qkd_links_of`` (the key
  manager maps a file to its link by the file's name).

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


def files(topo: Topology) -> dict[str, tuple[tuple[str, str], ...]]:
    """``{host: ((flag, file name), ...)}`` for every emulator and key manager whose key
    material is not pinned in the topology: an emulator's seed, a key manager's KM channel
    key of each of its QKD links."""
    det = topo.qkd.deterministic
    out: dict[str, tuple[tuple[str, str], ...]] = {}
    for link in topo.qkd_links:
        if not det.seed:
            seed = _pair_file(link.a_idq, link.b_idq, "seed")
            out[link.a_idq] = out[link.b_idq] = (("--seed-file", seed),)
        if not det.sync_key:
            sync = ("--sync-key-file", f"{link.name}.sync")
            for km in (link.a, link.b):
                out[km] = (*out.get(km, ()), sync)
    return out


def daemon_args(topo: Topology, host: str, folder: str | os.PathLike[str]) -> list[str]:
    """The flags that hand ``host`` its secret files in ``folder`` (none for other hosts)."""
    return [x for flag, name in files(topo).get(host, ()) for x in (flag, f"{folder}/{name}")]


def write(topo: Topology, folder: Path) -> list[Path]:
    """Make ``folder`` (mode 0700) and a fresh secret file (0600) for each pair of
    :func:`files`, replacing any of an earlier bring-up; the files written."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    out = []
    for name in sorted({f for fs in files(topo).values() for _, f in fs}):
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
