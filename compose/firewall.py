"""The iptables rules a testbed adds, for both backends.

On a host where the kernel passes bridged frames to iptables (``br_netfilter``, on by
Docker), a testbed lets the frames that stay inside one of its bridges through with one
ACCEPT rule per bridge (:func:`accept_within`): the namespace backend in ``FORWARD``, the
Docker backend in ``DOCKER-USER``. Every rule carries a comment naming the testbed, so its
rules are found (:func:`listing`) and removed (:func:`remove`) by that comment alone, after
a crash too.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess

#: the iptables command: ``iptables`` unless :func:`use_backend_of` found the chain in the
#: other backend (a container's iptables-nft on a host whose Docker uses iptables-legacy)
IPTABLES = ["iptables"]


def iptables(args: list[str]) -> subprocess.CompletedProcess[str]:
    """``iptables -w ARGS`` (waiting for the xtables lock), output captured, never raising."""
    return subprocess.run([*IPTABLES, "-w", *args], capture_output=True, text=True, check=False)


def use_backend_of(chain: str) -> bool:
    """Make :func:`iptables` the command (``iptables``, else ``iptables-legacy``) in whose
    tables ``chain`` exists; False when neither has it (or iptables is not installed)."""
    for cmd in ("iptables", "iptables-legacy"):
        if shutil.which(cmd) is None:
            continue
        r = subprocess.run([cmd, "-w", "-S", chain], capture_output=True, check=False)
        if r.returncode == 0:
            IPTABLES[:] = [cmd]
            return True
    return False


def accept_within(bridge: str, comment: str) -> list[str]:
    """The rule (without its chain) accepting frames that enter and leave ``bridge``."""
    return ["-i", bridge, "-o", bridge, "-m", "comment", "--comment", comment, "-j", "ACCEPT"]


def listing(chain: str, comment: str) -> list[str]:
    """The rules of ``chain`` carrying ``comment``, as ``iptables -S`` prints them (none
    when iptables is not installed)."""
    if shutil.which("iptables") is None:
        return []
    lines = iptables(["-S", chain]).stdout.splitlines()
    return [ln for ln in lines if ln.startswith("-A ") and comment in shlex.split(ln)]


def remove(chain: str, comment: str) -> list[list[str]]:
    """Delete every rule of ``chain`` carrying ``comment``; the rules deleted."""
    removed = []
    for line in listing(chain, comment):
        rule = shlex.split(line)[1:]
        if iptables(["-D", *rule]).returncode == 0:
            removed.append(rule)
    return removed
