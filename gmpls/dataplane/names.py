"""Kernel names of the data plane inside a node (pure; docs/dataplane.md).

A TE link is emulated by one channel per lambda: a veth pair between the two nodes'
namespaces (or containers). Each end is named after its own node's TE link interface ID
``I`` (the ``a_if``/``b_if`` of the topology, the number in router-id:interface-id) and the
lambda ``n`` (the RFC 6205 channel index): ``te{I}l{n}``, a negative ``n`` written ``m``
and its magnitude (``te1lm3``). The access port toward the node's client host is
:data:`ACCESS_IF`.
"""

from __future__ import annotations

#: the node's port on its access domain (no address: it carries the client's frames)
ACCESS_IF = "access"
#: the longest Linux interface name (IFNAMSIZ - 1)
IFNAMSIZ = 15


def channel_ifname(local_if: int, lam: int) -> str:
    """The channel of lambda ``lam`` on the TE link whose interface ID here is
    ``local_if``: ``te1l3``, ``te2lm4``. Raises ValueError when it would not fit a Linux
    interface name (an interface ID above 10**7)."""
    name = channel_name_unchecked(local_if, lam)
    if local_if < 0 or len(name) > IFNAMSIZ:
        raise ValueError(f"channel name {name} is longer than {IFNAMSIZ} characters")
    return name


def channel_name_unchecked(local_if: int, lam: int) -> str:
    """:func:`channel_ifname` without the length check (for error messages)."""
    return f"te{local_if}l{'m' if lam < 0 else ''}{abs(lam)}"
