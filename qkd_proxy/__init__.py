"""qkd_proxy."""
