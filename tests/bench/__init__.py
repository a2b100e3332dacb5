"""Tests of the benchmark scripts' pure parts (bench/ is scripts, not a package)."""
