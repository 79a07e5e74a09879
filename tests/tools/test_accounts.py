"""The sotto system user in passwd/group/shadow/gshadow text."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tools.image import accounts

PASSWD = (
    "root:x:0:0:root:/root:/bin/bash\n"
    "systemd-network:x:998:998::/:/usr/sbin/nologin\n"
    "pi:x:1000:1000::/home/pi:/bin/bash\n"
)
GROUP = "root:x:0:\naudio:x:29:pi\ngpio:x:997:pi\nsystemd-network:x:998:\npi:x:1000:\n"
SHADOW = "root:*:19700:0:99999:7:::\npi:!:19700:0:99999:7:::\n"
GSHADOW = "root:*::\naudio:*::pi\ngpio:!::pi\npi:!::\n"


def add(base=None):
    base = base or accounts.Accounts(PASSWD, GROUP, SHADOW, GSHADOW)
    return accounts.ensure_system_user(base, "sotto", "/var/lib/sotto", ("audio", "gpio", "i2c"))


def test_creates_user_group_and_memberships():
    result, uid, gid = add()
    assert (uid, gid) == (999, 999)  # highest id free in both passwd and group
    assert "sotto:x:999:999:Sotto desk phone:/var/lib/sotto:/usr/sbin/nologin" in result.passwd.splitlines()
    groups = result.group.splitlines()
    assert "audio:x:29:pi,sotto" in groups and "gpio:x:997:pi,sotto" in groups and "sotto:x:999:" in groups
    assert "i2c:x:996:sotto" in groups  # created: 998/997 taken, 999 is sotto's
    assert result.shadow.endswith("sotto:!*:::::::\n")
    assert "gpio:!::pi,sotto" in result.gshadow.splitlines() and "i2c:!::sotto" in result.gshadow.splitlines()
    assert result.passwd.startswith(PASSWD) and result.shadow.startswith(SHADOW)


def test_second_run_changes_nothing_and_keeps_ids():
    once, uid, gid = add()
    twice, uid2, gid2 = add(once)
    assert (twice.passwd, twice.group, twice.shadow, twice.gshadow) == (
        once.passwd,
        once.group,
        once.shadow,
        once.gshadow,
    )
    assert (uid, gid) == (uid2, gid2)


def test_without_shadow_files():
    result, _, _ = add(accounts.Accounts(PASSWD, GROUP))
    assert result.shadow is None and result.gshadow is None
    assert ":*:999:" in result.passwd  # no shadow: the password field itself is locked


def test_existing_group_named_sotto_is_reused():
    base = accounts.Accounts(PASSWD, GROUP + "sotto:x:500:\n", SHADOW, GSHADOW)
    result, uid, gid = add(base)
    assert gid == 500 and uid == 500
    assert result.group.count("sotto:x:") == 1


def test_inconsistent_files_are_refused():
    base = accounts.Accounts(PASSWD + "sotto:x:990:29::/var/lib/sotto:/usr/sbin/nologin\n", GROUP, SHADOW, GSHADOW)
    with pytest.raises(accounts.AccountsError):
        add(base)


def test_remove_restores_the_original():
    added, _, _ = add()
    removed = accounts.remove_system_user(added, "sotto")
    assert removed.passwd == PASSWD and removed.shadow == SHADOW
    assert "sotto" not in removed.group and "sotto" not in removed.gshadow
    assert "audio:x:29:pi" in removed.group.splitlines()


@given(st.sets(st.integers(min_value=100, max_value=999), max_size=50))
def test_ids_never_collide(taken):
    passwd = "".join("u{0}:x:{0}:{0}::/:/bin/false\n".format(n) for n in sorted(taken))
    group = "".join("g{0}:x:{0}:\n".format(n) for n in sorted(taken))
    result, uid, gid = add(accounts.Accounts(passwd, group, "", ""))
    assert uid not in taken and gid not in taken
    gids = [int(line.split(":")[2]) for line in result.group.splitlines()]
    assert len(gids) == len(set(gids))
