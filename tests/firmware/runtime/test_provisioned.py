"""`sotto run` applies a provisioned configuration only when no call is up (the end-to-end version with the
real sotto and kamailio is tests/interop/test_sotto_provisioned.py)."""

import types

from firmware import config as configuration
from firmware.runtime.provisioned import ProvisionedRun


class _Provisioner:
    last_error = None

    def download_if_idle(self):
        pass

    def fetch_now(self):
        pass


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


def test_a_verified_firmware_is_handed_to_the_installer_only_when_no_call_is_up(tmp_path):
    from firmware.runtime import update

    settings = configuration.validate({"media": {"codecs": ["PCMU"]}})
    run = _run(settings, None)
    spool = tmp_path / "update"
    spool.mkdir()
    run._on_firmware(str(spool / "sotto-2.tar"), "2")
    run.apply_when_idle()
    assert not (spool / update.REQUEST_FILE).exists()  # mid-call: the installer restarts the phone
    run.calls.call_id = None
    run.apply_when_idle()
    assert update.read_request(str(spool)) == ("sotto-2.tar", "2")
    assert run.firmware_requested == "2" and run.pending_firmware is None


def test_the_installer_s_refusal_or_roll_back_is_shown_at_the_next_start(tmp_path):
    shown = []
    run = _run(configuration.validate({}), None)
    run.driver.feed = lambda event, now: shown.append(event)
    run.provisioner.firmware_result = {"status": "rolled-back", "version": "2", "message": "did not start"}
    run.provisioner.start = lambda: None
    run.loop.add_signal_handler = lambda signum, handler: None
    run.attach(run.calls, run.driver, None)
    assert [event.reason for event in shown] == ["firmware 2 rolled back: did not start"]
