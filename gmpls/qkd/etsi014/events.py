"""The events an :class:`~gmpls.qkd.etsi014.core.Etsi014Core` takes and the actions it
returns (the contract of :mod:`gmpls.core`).

Events: :class:`HttpRequest` (one HTTPS request, already parsed by the shell's HTTP
library, with the SAE ID of its client certificate), :class:`Reply004` (an ETSI 004 answer
of the key manager to the core's own call), :class:`gmpls.core.Tick`. Actions:
:class:`HttpResponse` (status and JSON object: the shell sends it), :class:`Call004` (an
ETSI 004 request to feed into the key manager from :data:`~.core.ADDR`), :class:`Log`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gmpls.core import Tick


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """Event: ``method`` ``path`` with the query's (name, value) pairs and the body, from
    the SAE whose client certificate named ``sae`` (None: no certificate). ``stream``
    identifies the request in the answer."""

    stream: int
    sae: str | None
    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Reply004:
    """Event: the key manager's ETSI 004 answer (bytes) to one of our :class:`Call004`."""

    data: bytes


Event = HttpRequest | Reply004 | Tick


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """Action: answer request ``stream`` with ``status`` and the JSON object ``body``
    (a key container holds key bytes: never log it)."""

    stream: int
    status: int
    body: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class Call004:
    """Action: feed this ETSI 004 request (bytes) into the key manager, from ``ADDR``."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Log:
    """One log line; ``fields`` never hold key bytes. ``limited``: about refused input,
    written rate-limited."""

    event: str
    fields: Mapping[str, Any]
    limited: bool = False


Action = HttpResponse | Call004 | Log

__all__ = ["Action", "Call004", "Event", "HttpRequest", "HttpResponse", "Log", "Reply004", "Tick"]
