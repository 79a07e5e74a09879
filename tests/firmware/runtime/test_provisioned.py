"""`sotto run` applies a provisioned configuration only when no call is up (the end-to-end version with the
real sotto and kamailio is tests/interop/test_sotto_provisioned.py)."""

import types

from firmware import config as configuration
from firmware.runtime.provisioned import ProvisionedRun


class _Provisioner:
    last_error = None


def _run(old, new):
    run = ProvisionedRun(old, types.SimpleNamespace(config=None), lambda args, config: config)
    run.provisioner = _Provisioner()
    endpoint = types.SimpleNamespace(settings=old)
    run.calls = types.SimpleNamespace(call_id="call-1", endpoint=endpoint, settings=old)
    run.driver = types.SimpleNamespace(
        phone=types.SimpleNamespace(speed_dial=[("1", "sip:old@x"), ("*43", "sip:echo@127.0.0.1:5")]),
        feed=lambda event, now: None,
    )
    run.loop = types.SimpleNamespace(now=lambda: 0.0)
    run.pending = new
    return run


def test_a_new_configuration_waits_for_the_call_to_end():
    old = configuration.validate({"media": {"codecs": ["PCMU"]}})
    new = configuration.validate(
        {"media": {"codecs": ["G722"]}, "dial": {"domain": "office.example", "speed_dial": {"2": "sip:b@x"}}}
    )
    run = _run(old, new)
    run.apply_when_idle()
    assert run.calls.settings is old and run.applied == 0  # mid-call: nothing changes
    run.calls.call_id = None
    run.apply_when_idle()
    assert run.applied == 1
    assert run.calls.settings.media.codecs == ["G722"]
    assert run.calls.endpoint.settings is run.calls.settings  # same account: swapped in place
    assert run.driver.phone.dial_domain == "office.example"
    assert run.driver.phone.speed_dial == [("2", "sip:b@x"), ("*43", "sip:echo@127.0.0.1:5")]  # echo line kept
    run.apply_when_idle()
    assert run.applied == 1  # nothing pending any more
