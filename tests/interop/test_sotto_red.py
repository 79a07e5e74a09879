"""RFC 2198 redundancy between two real `sotto` processes: negotiated in SDP and used on the wire.

Both run in a network namespace this test creates, on its loopback, where an nftables rule drops every
7th RTP/RTCP datagram (the UDP payload's first octet 0x80: RTP version 2, SRTP included; ZRTP's is 0x10
and SIP's a letter, so signalling and key agreement are untouched). 7 is odd, so the losses alternate
between the two directions: each side loses every 7th of its packets, each loss alone. With RED each
lost frame is rebuilt from the next packet ("recovered" in the JSON summary); with `redundancy = false`
on one side RED is not negotiated and every loss is concealed instead.
"""

import os
import shutil
import subprocess
import time

import pytest

from tests.interop import sotto

pytestmark = pytest.mark.interop

BOB_PORT, ALICE_PORT = 5062, 5064
DROP_EVERY_7TH_RTP = """
table inet sotto_red {
  chain out {
    type filter hook output priority 0; policy accept;
    meta l4proto udp @th,64,8 0x80 numgen inc mod 7 0 counter drop
  }
}
"""


def _run(*args, **kwargs):
    return subprocess.run(list(args), check=True, capture_output=True, text=True, timeout=10, **kwargs)


def _in(namespace, command):
    return ["ip", "netns", "exec", namespace, *command]


def _start(namespace, args, home):
    return subprocess.Popen(
        _in(namespace, sotto.sotto_command(*args)),
        cwd=sotto.ROOT,
        env=sotto.environment(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_bound(namespace, port, process, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("sotto exited before listening: {}".format(process.communicate()))
        listing = _run(*_in(namespace, ["ss", "-Hunl", "sport = :{}".format(port)])).stdout
        if listing.strip():
            return
        time.sleep(0.1)
    raise AssertionError("sotto did not listen on UDP {} within {} s".format(port, timeout))


def _lossy_call(tmp_path, bob_config_text=None):
    for tool in ("ip", "nft", "ss"):
        if shutil.which(tool) is None:
            pytest.fail("`{}` is needed (iproute2, nftables): run `make test`".format(tool))
    namespace = "sotto-red-{}".format(os.getpid())
    processes = []
    try:
        _run("ip", "netns", "add", namespace)
        _run("ip", "-n", namespace, "link", "set", "lo", "up")
        _run(*_in(namespace, ["nft", "-f", "-"]), input=DROP_EVERY_7TH_RTP)
        bob_args = ["answer", "--listen", "127.0.0.1:{}".format(BOB_PORT), "--timeout", "30"]
        bob_args += ["--cache", str(tmp_path / "bob.cache"), "--codecs", "G722"]
        if bob_config_text is not None:
            config = tmp_path / "bob.toml"
            config.write_text(bob_config_text)
            bob_args += ["--config", str(config)]
        bob = _start(namespace, bob_args, tmp_path / "bob-home")
        processes.append(bob)
        _wait_bound(namespace, BOB_PORT, bob)
        alice_args = ["call", "sip:bob@127.0.0.1:{}".format(BOB_PORT), "--listen", "127.0.0.1:{}".format(ALICE_PORT)]
        alice_args += ["--timeout", "30", "--duration", "4", "--cache", str(tmp_path / "alice.cache")]
        alice_args += ["--codecs", "G722"]
        alice = _start(namespace, alice_args, tmp_path / "alice-home")
        processes.append(alice)
        results = sotto.finish(alice, 45), sotto.finish(bob, 45)
        dropped = _run(*_in(namespace, ["nft", "list", "ruleset"])).stdout
        return results, dropped
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=10)


def test_red_is_negotiated_and_rebuilds_lone_losses(tmp_path):
    ((rc_a, alice, err_a), (rc_b, bob, err_b)), ruleset = _lossy_call(tmp_path)
    assert rc_a == 0 and rc_b == 0, err_a[-3000:] + err_b[-3000:]
    assert "packets 0 " not in ruleset  # the rule did drop
    for summary in (alice, bob):
        assert summary["codec"] == "G722" and summary["secure"] is True
        rtp = summary["rtp"]
        assert rtp["received"] > 100 and rtp["auth_failures"] == 0
        # About one packet in 7 is lost; most come back from the next packet's redundant block.
        assert rtp["recovered"] >= 10, rtp
        assert rtp["recovered"] > rtp["concealed"], rtp


def test_without_red_on_one_side_the_losses_are_concealed(tmp_path):
    ((rc_a, alice, err_a), (rc_b, bob, err_b)), _ = _lossy_call(tmp_path, "[media]\nredundancy = false\n")
    assert rc_a == 0 and rc_b == 0, err_a[-3000:] + err_b[-3000:]
    for summary in (alice, bob):
        rtp = summary["rtp"]
        assert rtp["recovered"] == 0, rtp
        assert rtp["concealed"] >= 10, rtp
