"""A small stand-in for Raspberry Pi OS Lite with the same layout, built without root.

MBR; partition 1 FAT32 `bootfs` (type c) with config.txt and cmdline.txt; partition 2 ext4 `rootfs`
(type 83) with /etc/os-release, /etc/fstab, /etc/passwd, /etc/group, /etc/shadow, /etc/gshadow and
/etc/systemd/system. Made with sfdisk, mkfs.vfat, mcopy and `mkfs.ext4 -d`; the image is sparse.
Also the helpers the tests use to look inside an image with mtools and debugfs.
"""

import hashlib
import json
import os
import subprocess

MIB = 1024 * 1024
BOOT_START = 1 * MIB
BOOT_SIZE = 64 * MIB
ROOT_START = BOOT_START + BOOT_SIZE
ROOT_SIZE = 64 * MIB

CONFIG_TXT = """\
# For more options and information see
# http://rptl.io/configtxt

# Uncomment some or all of these to enable the optional hardware interfaces
#dtparam=i2c_arm=on
#dtparam=i2s=on
#dtparam=spi=on

# Enable audio (loads snd_bcm2835)
dtparam=audio=on

[cm4]
otg_mode=1

[all]
"""

ROOT_FILES = {
    "etc/os-release": 'PRETTY_NAME="Raspbian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=raspbian\n',
    "etc/fstab": (
        "proc            /proc           proc    defaults          0       0\n"
        "PARTUUID=5e3da3da-01  /boot/firmware  vfat    defaults          0       2\n"
        "PARTUUID=5e3da3da-02  /               ext4    defaults,noatime  0       1\n"
    ),
    "etc/passwd": (
        "root:x:0:0:root:/root:/bin/bash\n"
        "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
        "systemd-network:x:998:998:systemd Network Management:/:/usr/sbin/nologin\n"
        "pi:x:1000:1000:,,,:/home/pi:/bin/bash\n"
    ),
    "etc/group": ("root:x:0:\ndaemon:x:1:\naudio:x:29:pi\nshadow:x:42:\nsystemd-network:x:998:\npi:x:1000:\n"),
    "etc/shadow": "root:*:19700:0:99999:7:::\ndaemon:*:19700:0:99999:7:::\npi:$y$j9T$x$y:19700:0:99999:7:::\n",
    "etc/gshadow": "root:*::\ndaemon:*::\naudio:*::pi\nshadow:*::\nsystemd-network:!*::\npi:!::\n",
}


def run(args, **kwargs):
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    return subprocess.run(args, check=True, capture_output=True, timeout=60, env=env, **kwargs)


def make_base(directory, root_files=None, config_txt=CONFIG_TXT):
    """Build the stand-in at directory/base.img and return its path."""
    root_files = ROOT_FILES if root_files is None else root_files
    image = os.path.join(directory, "base.img")
    root_src = os.path.join(directory, "rootfs-src")
    os.makedirs(os.path.join(root_src, "etc", "systemd", "system"))
    for rel, text in root_files.items():
        path = os.path.join(root_src, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o640 if rel.endswith("shadow") else 0o644)
    with open(image, "wb") as f:
        f.truncate(ROOT_START + ROOT_SIZE)
    table = "label: dos\nstart={}, size={}, type=c\nstart={}, size={}, type=83\n".format(
        BOOT_START // 512, BOOT_SIZE // 512, ROOT_START // 512, ROOT_SIZE // 512
    )
    run(["sfdisk", "-q", image], input=table.encode())
    boot_fs = os.path.join(directory, "bootfs.img")
    with open(boot_fs, "wb") as f:
        f.truncate(BOOT_SIZE)
    run(["mkfs.vfat", "-F", "32", "-n", "bootfs", boot_fs])
    boot_src = os.path.join(directory, "bootfs-src")
    os.makedirs(boot_src)
    cmdline = "console=serial0,115200 root=PARTUUID=5e3da3da-02\n"
    for name, text in (("config.txt", config_txt), ("cmdline.txt", cmdline)):
        if text is None:
            continue
        with open(os.path.join(boot_src, name), "w") as f:
            f.write(text)
        run(["mcopy", "-i", boot_fs, os.path.join(boot_src, name), "::/" + name])
    root_fs = os.path.join(directory, "rootfs.img")
    with open(root_fs, "wb") as f:
        f.truncate(ROOT_SIZE)
    run(["mkfs.ext4", "-q", "-L", "rootfs", "-E", "root_owner=0:0", "-d", root_src, root_fs])
    splice(image, BOOT_START, boot_fs)
    splice(image, ROOT_START, root_fs)
    os.unlink(boot_fs)
    os.unlink(root_fs)
    return image


def splice(image, offset, part_file):
    """Write part_file into image at offset, keeping holes for zero blocks (like dd conv=sparse,notrunc)."""
    chunk = MIB
    zero = bytes(chunk)
    with open(part_file, "rb") as src, open(image, "r+b") as dst:
        position = offset
        while True:
            block = src.read(chunk)
            if not block:
                break
            if block != zero[: len(block)]:
                dst.seek(position)
                dst.write(block)
            position += len(block)


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def partition_offsets(image):
    table = json.loads(run(["sfdisk", "--json", image]).stdout)["partitiontable"]
    return [(p["start"] * 512, p["size"] * 512) for p in table["partitions"]]


def partition_bytes(image, number):
    offset, size = partition_offsets(image)[number - 1]
    with open(image, "rb") as f:
        f.seek(offset)
        return f.read(size)


def fat_read(image, path):
    """A file from the boot partition with mcopy, or None."""
    offset = partition_offsets(image)[0][0]
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    done = subprocess.run(
        ["mcopy", "-n", "-i", "{}@@{}".format(image, offset), "::" + path, "-"],
        capture_output=True,
        timeout=60,
        env=env,
        check=False,
    )
    return done.stdout if done.returncode == 0 else None


def fat_names(image):
    offset = partition_offsets(image)[0][0]
    out = run(["mdir", "-b", "-i", "{}@@{}".format(image, offset), "::/"]).stdout.decode()
    return sorted(line.rsplit("/", 1)[-1] for line in out.split())


def debugfs(image, command, offset=None):
    if offset is None:
        offset = partition_offsets(image)[1][0]
    done = subprocess.run(
        ["debugfs", "-R", command, "{}?offset={}".format(image, offset)], capture_output=True, timeout=60, check=False
    )
    return done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")


def ext_read(image, path):
    out, err = debugfs(image, "stat " + path)
    if "File not found" in err:
        return None
    return subprocess.run(
        ["debugfs", "-R", "cat " + path, "{}?offset={}".format(image, partition_offsets(image)[1][0])],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout


def ext_stat(image, path, offset=None):
    """(type, mode, uid, gid, fast link target or None) from debugfs stat, or None."""
    out, err = debugfs(image, "stat " + path, offset)
    if "File not found" in err or "Type:" not in out:
        return None
    words = out.replace(":", " ").split()
    kind = words[words.index("Type") + 1]
    mode = int(words[words.index("Mode") + 1], 8)
    uid = int(words[words.index("User") + 1])
    gid = int(words[words.index("Group") + 1])
    target = None
    for line in out.splitlines():
        if line.startswith("Fast link dest:"):
            target = line.split(":", 1)[1].strip().strip('"')
    return kind, mode, uid, gid, target


def ext_names(image, path):
    out, _ = debugfs(image, "ls -p " + path)
    names = []
    for line in out.splitlines():
        fields = line.split("/")
        if len(fields) >= 7 and fields[5] not in (".", ".."):
            names.append(fields[5])
    return sorted(names)
