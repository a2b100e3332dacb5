"""The decoy-BB84 secret-key rate model (docs/qkd-rate-model.md).

It lives in :mod:`gmpls.qkd.ratemodel`, where the topology loader can reach it (a
``qkd_links`` entry with ``fibre_km`` takes its rate from it); this module keeps the
emulator's old import path.
"""

from gmpls.qkd.ratemodel import CALIBRATED, PUBLISHED, LinkModel, h2, max_fibre_km, rate_for

__all__ = ["CALIBRATED", "PUBLISHED", "LinkModel", "h2", "max_fibre_km", "rate_for"]
