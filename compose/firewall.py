"""The Docker testbed's firewall rules: one ACCEPT rule per domain bridge in DOCKER-USER.

Docker turns on ``br_netfilter``, so frames crossing a bridge go through iptables, and its
isolation rule for an internal network drops any packet whose destination is outside the
subnet: OSPF's multicast 224.0.0.5/6 among them. One rule per domain bridge (``-i qk_ctrl
-o qk_ctrl -j ACCEPT``, comment ``qkdnet-docker:PREFIX``) lets traffic inside a domain pass;
nothing crosses domains (in and out are the same bridge). ``qkdnet up --backend docker``
adds them and ``down`` removes them (:mod:`compose.docker`); ``qkdnet compose firewall``
does it for a plain ``docker compose up`` (:mod:`compose.render`).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Iterable

from compose.netns import TestbedError

FW_CHAIN = "DOCKER-USER"


class FirewallError(TestbedError):
    """iptables refused a rule (the message has its error)."""


def fw_comment(prefix: str) -> str:
    return f"qkdnet-docker:{prefix}"


def _iptables(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", "-w", *args], capture_output=True, text=True, check=False)


def _fw_rule(prefix: str, bridge: str) -> list[str]:
    comment = ["-m", "comment", "--comment", fw_comment(prefix)]
    return ["-i", bridge, "-o", bridge, *comment, "-j", "ACCEPT"]


def firewall_add(prefix: str, bridges: Iterable[str]) -> list[str]:
    """Insert the intra-bridge ACCEPT rules of ``bridges`` (a testbed's domains, see
    :func:`compose.render.bridges`) at the top of DOCKER-USER (idempotent), with
    ``prefix``'s comment. Returns the bridges covered; none when the host has no iptables
    or Docker does not use it (no DOCKER-USER chain)."""
    if shutil.which("iptables") is None or _iptables(["-S", FW_CHAIN]).returncode != 0:
        return []
    done = []
    for bridge in bridges:
        rule = _fw_rule(prefix, bridge)
        if _iptables(["-C", FW_CHAIN, *rule]).returncode != 0:
            r = _iptables(["-I", FW_CHAIN, "1", *rule])
            if r.returncode != 0:
                raise FirewallError(f"iptables -I {FW_CHAIN} for {bridge}: {r.stderr.strip()}")
        done.append(bridge)
    return done


def firewall_remove(prefix: str) -> int:
    """Remove every DOCKER-USER rule carrying ``prefix``'s comment; returns how many."""
    if shutil.which("iptables") is None:
        return 0
    listing = _iptables(["-S", FW_CHAIN])
    n = 0
    for line in listing.stdout.splitlines():
        words = shlex.split(line)
        mine = words[:2] == ["-A", FW_CHAIN] and fw_comment(prefix) in words
        if mine and _iptables(["-D", *words[1:]]).returncode == 0:
            n += 1
    return n


def firewall_rules(prefix: str) -> list[str]:
    """The DOCKER-USER rules of ``prefix`` as ``iptables -S`` prints them."""
    if shutil.which("iptables") is None:
        return []
    listing = _iptables(["-S", FW_CHAIN])
    return [ln for ln in listing.stdout.splitlines() if fw_comment(prefix) in shlex.split(ln)]
