"""ETSI GS QKD 014 V1.1.1 (REST-based key delivery) as a sans-I/O core (docs/etsi014.md):
:mod:`.keyid` (key IDs and the ETSI 004 sessions they name), :mod:`.events`, :mod:`.core`."""
