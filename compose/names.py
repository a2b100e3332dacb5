"""Kernel names of everything a testbed creates, all derived from the topology's prefix.

Linux interface names are at most 15 bytes (``IFNAMSIZ - 1``). Namespaces are named
``PREFIX-HOST`` (``qk-tn1``), bridges ``PREFIX-DOMAIN`` (``qk-ctrl``), the root end of the
veth pair of a host on a domain ``PREFIX-HOST-DOMAIN`` (``qk-tn1-ctrl``) when that fits,
otherwise ``PREFIX-`` followed by a hash of ``HOST/DOMAIN`` long enough to fill 15 bytes.
The end inside the namespace is named after the domain (``ctrl``, ``qa``).

Host and domain names are at most 8 characters and the prefix at most 4 (the loader
enforces both), so namespace and bridge names always fit; a hashed veth name is always
longer than any bridge name and has no second dash, so the forms never collide.
"""

from __future__ import annotations

import hashlib

IFNAMSIZ = 15


def netns_name(prefix: str, host: str) -> str:
    return f"{prefix}-{host}"


def bridge_name(prefix: str, domain: str) -> str:
    return f"{prefix}-{domain}"


def veth_name(prefix: str, host: str, domain: str) -> str:
    """Root-namespace end of the veth pair joining ``host`` to ``domain``'s bridge."""
    name = f"{prefix}-{host}-{domain}"
    if len(name) <= IFNAMSIZ:
        return name
    digest = hashlib.sha1(f"{host}/{domain}".encode()).hexdigest()
    return f"{prefix}-{digest[: IFNAMSIZ - len(prefix) - 1]}"


def nft_table(prefix: str) -> str:
    """The nftables table (bridge family) holding a testbed's impairments."""
    return f"{prefix}_qkdnet"


def fw_comment(prefix: str) -> str:
    """The comment on the iptables rules a testbed adds (see ``compose.netns``)."""
    return f"qkdnet:{prefix}"


def owns(prefix: str, name: str) -> bool:
    """True when ``name`` is one this prefix creates (``PREFIX-...``)."""
    return name.startswith(f"{prefix}-")
