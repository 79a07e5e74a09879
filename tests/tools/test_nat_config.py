"""`[sip] public_address`: the NAT mapping as a configuration key (a phone made from the image has no
command line to pass --public-address on)."""

import pytest

from firmware import config
from firmware.errors import ConfigError


def test_public_address_key_is_validated():
    settings = config.validate({"sip": {"listen": "0.0.0.0:5060", "public_address": "203.0.113.7:40000"}}, "t")
    assert settings.sip.public_address == "203.0.113.7:40000"
    assert config.validate({}, "t").sip.public_address == ""
    with pytest.raises(ConfigError):
        config.validate({"sip": {"public_address": "host:notaport"}}, "t")


def test_the_template_documents_it():
    assert '# public_address = ""' in config.DEFAULT_TEMPLATE
