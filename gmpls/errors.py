"""The one error type every codec raises for malformed input, and the one for a request
a caller asked wrongly.

A :class:`DecodeError` names the field that was wrong (``"pcep.METRIC.length"``), says
why, and carries the protocol's own error code where one exists (PCEP error-type/value,
RSVP error code/value, OSPF has none), so the session layer can turn it straight into
the protocol's error message, as ExaBGP turns a decode error into a Notify.
"""

from __future__ import annotations


class DecodeError(ValueError):
    """Malformed input from the wire: the remote side's fault."""

    def __init__(self, field: str, reason: str, code: tuple[int, int] | None = None) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        #: protocol error code (type, value) to answer with, e.g. PCEP (1, 1); None if none
        self.code = code


class EncodeError(ValueError):
    """A value that cannot be put on the wire: the local caller's fault."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class RequestRefused(Exception):
    """A request refused as asked (a CLI command with bad arguments, an unknown ID): the
    caller's fault, nothing changed. The CLI answers with the message and logs no
    traceback: only other exceptions are faults of the daemon."""
