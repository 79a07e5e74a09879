"""The keys of one ZRTP exchange (RFC 6189 §4.3, §4.4.1.4, §4.5): retained-secret IDs and their
matching, s0, and every key derived from it.

Apart from the engine because key derivation is pure arithmetic on the exchange's transcript: stated
once, in the RFC's order, it can be read against the RFC and checked against the conformance vectors
without the state machine. The engine keeps only what the result means (a cache mismatch, the keys of
each direction).

API:
- secret_ids(hash_name, secrets, role_label, rng) -> [rs1ID, rs2ID] for our DHPart (§4.3.1): an
  absent secret gets a random ID.
- match_secret(hash_name, ours, peer_dhpart, peer_label) -> the first of `ours` whose ID the peer's
  DHPart carries, or None (§4.3.2).
- derive(hash_name, cipher, dh_result, s1, transcript, zidi, zidr) -> dict of the session keys
  (§4.5.2, §4.5.3), the retained secret rs1 (§4.6.1) and the SAS value (§4.5.2).
- srtp_directions(keys, role) -> ((send key, salt), (receive key, salt)).
"""

from firmware.zrtp import kdf, sas

INITIATOR_LABEL = b"Initiator"
RESPONDER_LABEL = b"Responder"


def secret_ids(hash_name, secrets, role_label, rng):
    # §4.3.1: rs1IDr = MAC(rs1, "Responder") etc.; no secret: a random ID the peer cannot match.
    return [kdf.secret_id(hash_name, secret, role_label) if secret else bytes(rng(8)) for secret in secrets]


def match_secret(hash_name, ours, peer_dhpart, peer_label):
    """§4.3.2: compare the peer's rs1/rs2 IDs (computed with the peer's role label) with our secrets."""
    for their_id in (peer_dhpart.rs1_id, peer_dhpart.rs2_id):
        for secret in ours:
            if secret and kdf.secret_id(hash_name, secret, peer_label) == their_id:
                return secret
    return None


def derive(hash_name, cipher, dh_result, s1, transcript, zidi, zidr):
    """`transcript` is (responder's Hello, Commit, DHPart1, DHPart2), raw, in that order (§4.4.1.4)."""
    total_hash = kdf.zrtp_hash(hash_name, b"".join(transcript))
    context = zidi + zidr + total_hash
    # No auxiliary or PBX secrets (s2, s3 null).
    s0 = kdf.compute_s0(hash_name, dh_result, zidi, zidr, total_hash, s1, None, None)
    hash_len = kdf.hash_length(hash_name)
    key_len = kdf.CIPHER_KEY_LENGTHS[cipher]

    def derived(label, length):
        return kdf.kdf(hash_name, s0, label, context, length)

    return {
        "mackeyi": derived(b"Initiator HMAC key", hash_len),
        "mackeyr": derived(b"Responder HMAC key", hash_len),
        "zrtpkeyi": derived(b"Initiator ZRTP key", key_len),
        "zrtpkeyr": derived(b"Responder ZRTP key", key_len),
        "srtpkeyi": derived(b"Initiator SRTP master key", key_len),
        "srtpsalti": derived(b"Initiator SRTP master salt", kdf.SRTP_SALT_LENGTH),
        "srtpkeyr": derived(b"Responder SRTP master key", key_len),
        "srtpsaltr": derived(b"Responder SRTP master salt", kdf.SRTP_SALT_LENGTH),
        "rs1": derived(b"retained secret", 32),
        "sas": sas.sas_value(hash_name, s0, context),
        "s1_matched": s1 is not None,
    }


def srtp_directions(keys, role):
    initiator = (keys["srtpkeyi"], keys["srtpsalti"])
    responder = (keys["srtpkeyr"], keys["srtpsaltr"])
    return (initiator, responder) if role == "initiator" else (responder, initiator)
