"""Rates as people write them: ``bps_text(1e12) == "1 Tb/s"``.

A bandwidth crosses PCEP and RSVP as an IEEE 754 single (RFC 5440 §7.7, RFC 3471
§3.1.2): ``1T`` comes back as 999999995904 b/s. Six significant digits, below a single's
precision, give back what the user wrote.
"""

from __future__ import annotations

_UNITS = (("Tb/s", 1e12), ("Gb/s", 1e9), ("Mb/s", 1e6), ("kb/s", 1e3))


def bps_text(bps: float) -> str:
    """``bps`` bits per second with a unit and at most six significant digits."""
    for unit, div in _UNITS:
        if abs(bps) >= div:
            return f"{bps / div:.6g} {unit}"
    return f"{bps:.6g} b/s"
