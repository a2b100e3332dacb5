"""The guard of a Docker testbed: the first service of every rendered compose file.

``python -m compose.guard --topology FILE --secrets DIR`` runs in the ``qkdnet-guard``
service (the project's image, ``network_mode: host``, ``NET_ADMIN``), so that a plain
``docker compose up -d`` / ``docker-compose up -d`` needs no other command:

1. it inserts the testbed's intra-bridge ACCEPT rules in the host's ``DOCKER-USER`` chain
   (:func:`compose.docker.firewall_add`: without them Docker drops the OSPF multicast
   between containers), and raises the kernel's neighbour table limits when the lab needs
   more than they allow (:func:`compose.neigh.make_room`; it says so when /proc/sys is
   read-only in its container);
2. it writes fresh key material into ``DIR`` (:func:`compose.keyfiles.write`; the
   compose file mounts ``./secrets`` there, and each emulator and proxy mounts its own file
   from it read-only);
3. it marks itself ready (:data:`READY`), which its healthcheck tests; every other service
   ``depends_on`` it with ``condition: service_healthy``, so no daemon starts before its
   secret and the rules exist;
4. it waits for SIGTERM (``docker compose down`` stops it last, as everything depends on
   it), then removes the rules, the secret files and the access bridges qkdnet added, and exits 0: ``down`` leaves nothing
   behind.

The rules carry the testbed's comment (``qkdnet-docker:PREFIX``), so ``qkdnet down
--backend docker`` removes them too if the guard never got its SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from compose import docker as qdocker
from compose import firewall, keyfiles, neigh, pki, render
from compose.backend import TestbedError
from gmpls.topology import Topology, load

#: the file the guard's healthcheck looks for (inside its container)
READY = Path(render.GUARD_READY)


def _say(line: str) -> None:
    print(f"qkdnet-guard: {line}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m compose.guard", description=__doc__)
    p.add_argument("--topology", required=True, help="the testbed's topology file")
    p.add_argument("--secrets", required=True, type=Path, help="folder for the secret files")
    p.add_argument("--ready", type=Path, default=READY, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    topo = load(args.topology)
    # block the stop signals first: one arriving while we set up is handled below
    stops = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    made: list[Path] = []
    try:
        return _serve(topo, args.secrets, args.ready, stops, made)
    except (TestbedError, OSError) as e:
        _say(f"cannot guard {topo.name}: {e}")
        return 1
    finally:
        with contextlib.suppress(FileNotFoundError):
            args.ready.unlink()
        for f in made:
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
        with contextlib.suppress(OSError):  # the PKI's folder, once empty
            (args.secrets / pki.FOLDER).rmdir()
        n = qdocker.firewall_remove(topo.prefix)
        _say(f"removed {n} DOCKER-USER rule(s) and {len(made)} secret file(s)")
        # the access domains' bridges qkdnet added (compose down stops the guard last)
        with contextlib.suppress(OSError, ImportError):
            if k := qdocker.remove_access_bridges(topo.prefix):
                _say(f"removed {k} access link(s) qkdnet had added")


def _serve(
    topo: Topology, secrets: Path, ready: Path, stops: set[signal.Signals], made: list[Path]
) -> int:
    """Steps 1-4 up to the SIGTERM; the secret files written are appended to ``made``."""
    bridges = qdocker.firewall_add(topo)
    if bridges:
        _say(f"DOCKER-USER: ACCEPT inside {', '.join(bridges)} ({firewall.IPTABLES[0]})")
    else:
        _say("no DOCKER-USER chain on this host: no rule needed")
    neigh.make_room(topo, _say)  # a large lab's neighbour entries (compose.neigh)
    made += keyfiles.write(topo, secrets)
    made += pki.write(topo, secrets / pki.FOLDER)  # the ETSI 014 CA and certificates
    _say(f"{len(made)} fresh secret files for {topo.name} (prefix {topo.prefix})")
    ready.touch()
    _say("ready; waiting for SIGTERM (docker compose down)")
    signal.sigwait(stops)
    return 0


if __name__ == "__main__":
    sys.exit(main())
