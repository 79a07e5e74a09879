"""The ZRTP hash chain and commitments (RFC 6189 §9, §4.4.1.1, §8.1.1): how each message proves it
comes from the same endpoint as the one before it.

Apart from the engine because these checks are the protocol's defence against a man in the middle
inserting or altering messages, and each is one line of the RFC: every one is stated once here, and
the state machine only asks "authentic or not".

§9: each endpoint draws H0 at random and sends H3 = hash(H2), H2 = hash(H1), H1 = hash(H0) (the
implicit SHA-256, §5.1.2.2) in Hello, Commit, DHPart and Confirm, each message MACed with the next
link it has not revealed yet. Revealing a link later proves the earlier message was authentic.

API:
- new_chain(rng) -> (h0, h1, h2, h3), a fresh chain for one exchange (H0 is revealed in Confirm, so a
  chain is never used twice).
- commit_authentic(commit, peer_hello): the Commit's H2 hashes to the Hello's H3 and keys its MAC.
- dhpart1_authentic(dhpart1, peer_hello): the responder's DHPart1 H1 hashes to that H2 and H3.
- dhpart2_authentic(dhpart2, commit): the initiator's DHPart2 H1 hashes to its Commit's H2.
- h0_authentic(h0, peer_dhpart): the H0 revealed in Confirm hashes to the peer's DHPart H1.
- hvi(hash_name, dhpart2_raw, responder_hello_raw) -> the 32-byte hash commitment of §4.4.1.1.
- hello_hash(hello_raw) -> the hex SHA-256 of a Hello, as in a=zrtp-hash (§8.1).
"""

import binascii

from firmware.zrtp import kdf


def new_chain(rng):
    h0 = bytes(rng(32))
    h1 = kdf.implicit_hash(h0)
    h2 = kdf.implicit_hash(h1)
    h3 = kdf.implicit_hash(h2)
    return h0, h1, h2, h3


def commit_authentic(commit, peer_hello):
    # §9: H2 must hash to the H3 of the Hello, and then the Hello's MAC (keyed with H2) must hold.
    return kdf.implicit_hash(commit.h2) == peer_hello.h3 and peer_hello.verify_mac(commit.h2)


def dhpart1_authentic(dhpart1, peer_hello):
    # §9: the responder sent no Commit, so its H1 is checked against its Hello: H1 -> H2 -> H3.
    h2 = kdf.implicit_hash(dhpart1.h1)
    return kdf.implicit_hash(h2) == peer_hello.h3 and peer_hello.verify_mac(h2)


def dhpart2_authentic(dhpart2, commit):
    # §9: the initiator's H1 hashes to the H2 of its Commit, and keys the Commit's MAC.
    return kdf.implicit_hash(dhpart2.h1) == commit.h2 and commit.verify_mac(dhpart2.h1)


def h0_authentic(h0, peer_dhpart):
    # §9: the H0 inside the peer's Confirm hashes to the H1 of its DHPart, and keys that DHPart's MAC.
    return kdf.implicit_hash(h0) == peer_dhpart.h1 and peer_dhpart.verify_mac(h0)


def hvi(hash_name, dhpart2_raw, responder_hello_raw):
    # §4.4.1.1: hvi = hash(initiator's DHPart2 || responder's Hello), truncated to 256 bits.
    return kdf.zrtp_hash(hash_name, dhpart2_raw + responder_hello_raw)[:32]


def hello_hash(hello_raw):
    return binascii.hexlify(kdf.implicit_hash(hello_raw)).decode()
