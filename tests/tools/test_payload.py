"""config.txt editing, the configuration template, mount unit names, the boot mount point."""

import tomllib

from hypothesis import given
from hypothesis import strategies as st

from tools.image import payload

LINE = "dtparam=i2c_arm=on"


def active_common(text):
    """Lines that set i2c_arm where they apply to every model."""
    section = ""
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].lower()
        elif section in ("", "all") and stripped.startswith("dtparam=i2c_arm"):
            found.append(stripped)
    return found


def test_uncomments_raspberry_pi_os_line_in_place():
    text = "# comment\n#dtparam=i2c_arm=on\n#dtparam=spi=on\n[cm4]\notg_mode=1\n[all]\n"
    assert payload.enable_i2c(text) == "# comment\ndtparam=i2c_arm=on\n#dtparam=spi=on\n[cm4]\notg_mode=1\n[all]\n"


def test_turns_off_into_on_and_drops_duplicates():
    text = "dtparam=i2c_arm=off\ndtparam=audio=on\n[all]\ndtparam=i2c_arm=on\ndtparam=i2c_arm\n"
    assert payload.enable_i2c(text) == "dtparam=i2c_arm=on\ndtparam=audio=on\n[all]\n"


def test_appends_under_all_when_absent_and_leaves_model_sections_alone():
    text = "dtparam=audio=on\n[pi4]\ndtparam=i2c_arm=off\n"
    assert payload.enable_i2c(text) == "dtparam=audio=on\n[pi4]\ndtparam=i2c_arm=off\n[all]\ndtparam=i2c_arm=on\n"
    assert payload.enable_i2c("") == LINE + "\n"
    assert payload.enable_i2c("[all]\nx=1") == "[all]\nx=1\n" + LINE + "\n"


def test_keeps_windows_line_endings():
    assert payload.enable_i2c("#dtparam=i2c_arm=on\r\narm_64bit=1\r\n") == "dtparam=i2c_arm=on\r\narm_64bit=1\r\n"


config_lines = st.lists(
    st.sampled_from(
        [
            "dtparam=i2c_arm=on",
            "dtparam=i2c_arm=off",
            "#dtparam=i2c_arm=on",
            "dtparam=i2c_arm",
            "dtparam=spi=on",
            "[all]",
            "[cm4]",
            "[pi5]",
            "# comment",
            "",
            "  dtparam=i2c_arm=on  ",
            "arm_64bit=1",
        ]
    ),
    max_size=12,
)


@given(config_lines)
def test_i2c_enabled_exactly_once_and_idempotent(lines):
    text = "\n".join(lines) + "\n"
    once = payload.enable_i2c(text)
    assert active_common(once) == [LINE]
    assert payload.enable_i2c(once) == once
    # Model-specific lines are untouched.
    assert [line for line in once.splitlines() if "spi" in line] == [line for line in lines if "spi" in line]


def test_template_is_a_valid_configuration_with_the_device_settings():
    text = payload.config_template("sim")
    config = payload.validate_config_text(text, "sotto.toml")
    assert config.board.name == "sim"
    assert config.data.dir == payload.DATA_DIR
    assert config.sip.listen == "0.0.0.0:5060"
    # Without --board the board stays a commented choice (the firmware's default applies).
    assert "name" not in tomllib.loads(payload.config_template(None)).get("board", {})


def test_mount_unit_name_matches_the_shipped_unit():
    assert payload.mount_unit_name(payload.DATA_DIR) in payload.UNITS


def test_boot_mount_point():
    assert payload.boot_mount_point("PARTUUID=x-01  /boot/firmware  vfat defaults 0 2\n") == "/boot/firmware"
    assert payload.boot_mount_point("PARTUUID=x-01  /boot  vfat defaults 0 2\n") == "/boot"
    assert payload.boot_mount_point("# nothing\n") == "/boot/firmware"
    assert payload.unit_text("var-lib-sotto.mount", "/boot").count("/boot/firmware") == 0


def test_source_tree_leaves_out_tests_and_caches():
    rels = [rel for rel, _, _ in payload.source_tree()]
    assert "firmware/__init__.py" in rels and "tools/systemd/sotto.service" in rels
    assert not [r for r in rels if r.startswith("tests") or "__pycache__" in r or r.endswith(".pyc")]
