"""gmpls/ospf."""
