"""gmpls/pcep."""
