"""A site node's advertisement of its site's QKD links in OSPF-TE, as a sans-I/O core:
:mod:`.events` (what goes in and out), :mod:`.core` (polling the key manager, the
hysteresis, one TE LSA per link). The asyncio shell is ``node_agent/qkd_links.py``;
docs/ospf-te.md#advertising-the-qkd-links describes the behaviour."""
