"""The encrypted data plane of a QE service, sans-I/O: the frame format
(:mod:`.frame`), the cipher keys and replay window (:mod:`.crypto`), one end of a
service (:mod:`.core`) and its events (:mod:`.events`). docs/dataplane.md."""
