"""Provisioning from a server, the desk-phone way (issue 15): the phone fetches `<mac>.toml`, then
`common.toml`, each with an Ed25519 detached signature (`<file>.sig`) made with the key whose public half
is pinned on the boot partition, and merges them over its local configuration.

The core (document, merge, schedule) is sans-I/O and MicroPython-clean: the TOML parser and the Ed25519
verify function are injected by the shell (firmware/runtime/provisioning.py), since tomllib and
`cryptography` are host-only.
"""
