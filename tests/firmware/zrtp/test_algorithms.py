"""One default algorithm list (issue 12 item 3): what it holds, who uses it, what it picks with real
peers' default offers (RFC 6189 §4.1.2)."""

import pytest

from firmware import config
from firmware.zrtp import algorithms, kdf, keyagreement, sas
from firmware.zrtp.engine import Preferences
from tests.firmware.zrtp.pair import pair, run


def test_everything_implemented_is_listed_once():
    assert set(algorithms.IMPLEMENTED["hash"]) == set(kdf.HASHES)
    assert set(algorithms.IMPLEMENTED["cipher"]) == set(kdf.CIPHER_KEY_LENGTHS)
    assert set(algorithms.IMPLEMENTED["auth_tag"]) == set(kdf.AUTH_TAGS)
    assert set(algorithms.IMPLEMENTED["key_agreement"]) == set(keyagreement.KEY_AGREEMENTS)
    assert set(algorithms.IMPLEMENTED["sas"]) == set(sas.SAS_TYPES)
    for kind in algorithms.KINDS:
        assert len(set(algorithms.IMPLEMENTED[kind])) == len(algorithms.IMPLEMENTED[kind])


def test_cpython_runs_everything_and_offers_it_all():
    assert algorithms.SUPPORTED == algorithms.IMPLEMENTED
    assert algorithms.DEFAULTS["key_agreement"] == ("X255", "EC25", "X448", "EC38", "DH3k", "DH2k")


def test_default_order_follows_measured_cost_except_the_weak_dh2k_last():
    order = algorithms.DEFAULTS["key_agreement"]
    strong = [name for name in order if name != "DH2k"]
    assert [algorithms.COST[name] for name in strong] == sorted(algorithms.COST[name] for name in strong)
    assert order[-1] == "DH2k"


def test_config_and_engine_defaults_are_the_one_list():
    settings = config.load(None)
    z = settings.zrtp
    prefs = Preferences()
    assert z.key_agreements == prefs.key_agreements == list(algorithms.DEFAULTS["key_agreement"])
    assert z.hashes == prefs.hashes == list(algorithms.DEFAULTS["hash"])
    assert z.ciphers == prefs.ciphers == list(algorithms.DEFAULTS["cipher"])
    assert z.auth_tags == prefs.auth_tags == list(algorithms.DEFAULTS["auth_tag"])
    assert z.sas == prefs.sas_types == list(algorithms.DEFAULTS["sas"])


@pytest.mark.parametrize(
    "peer_key_agreements,expected",
    [
        (["EC25", "DH3k", "DH2k", "EC38"], "EC25"),  # a GNU ZRTP-style offer: EC25 first, no X255
        (["DH3k"], "DH3k"),  # linphone's default offer (DH3k, Mult)
        (["X255", "DH3k"], "X255"),  # linphone configured for X255
        (["DH2k", "DH3k"], "DH2k"),  # first choices DH3k (ours) vs DH2k: §4.1.2 takes the faster
        (["X448", "EC38"], "X448"),
    ],
)
@pytest.mark.parametrize("seed", [10, 11, 12, 13])
def test_default_offer_against_typical_peers(peer_key_agreements, expected, seed):
    # Whichever side wins the Commit contention (the seed varies it), both land on the same choice.
    a, b = pair(seed=seed, prefs_b=Preferences(key_agreements=peer_key_agreements))
    run(a, b)
    assert a.secure() and b.secure()
    assert a.secure()[0].key_agreement == b.secure()[0].key_agreement == expected
