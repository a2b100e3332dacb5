"""The QE service (the paper's end-to-end quantum-encrypted service) as a sans-I/O core:
:mod:`.events` (what goes in and out), :mod:`.model` (one service, its keys in memory
only), :mod:`.core` (the workflow). The asyncio shell is ``node_agent/qe_service.py``;
docs/qe-service.md describes the behaviour."""
