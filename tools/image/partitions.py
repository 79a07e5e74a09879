"""The base image's layout: an MBR (dos) partition table with a FAT boot and an ext4 root partition.

The table is read with ``sfdisk --json``; the file systems are then checked by their own signatures
(FAT boot sector, ext superblock), because a partition type byte says nothing about what is inside.
"""

import json
import os
import struct
import subprocess

SECTOR = 512
# MBR type bytes of FAT partitions (sfdisk prints them in lower-case hex without 0x).
FAT_TYPES = ("1", "4", "6", "b", "c", "e")
LINUX_TYPE = "83"
EXT_MAGIC = 0xEF53
EXT4_INCOMPAT_EXTENTS = 0x40
EXT4_INCOMPAT_64BIT = 0x80


class BaseImageError(Exception):
    """BASE is not something the builder can work on; the message is one line for the user."""


class Partition:
    __slots__ = ("number", "offset", "size", "type")

    def __init__(self, number, offset, size, type_):
        self.number = number
        self.offset = offset
        self.size = size
        self.type = type_

    def __repr__(self):
        return "Partition({}, offset={}, size={}, type={})".format(self.number, self.offset, self.size, self.type)


class Layout:
    __slots__ = ("boot", "root")

    def __init__(self, boot, root):
        self.boot = boot
        self.root = root


def _read_at(path, offset, length):
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def _fat_kind(path, part):
    """'FAT32'/'FAT16'/'FAT12' when the partition starts with a FAT boot sector, else None."""
    sector = _read_at(path, part.offset, SECTOR)
    if len(sector) < SECTOR or sector[510:512] != b"\x55\xaa":
        return None
    for start in (82, 54):  # FAT32 keeps its type string at 82, FAT12/16 at 54
        label = sector[start : start + 8].rstrip()
        if label in (b"FAT32", b"FAT16", b"FAT12"):
            return label.decode()
    return None


def _ext_blocks(path, part):
    """(block_count, block_size, is_ext4) when the partition holds an ext2/3/4 superblock, else None."""
    sb = _read_at(path, part.offset + 1024, 1024)
    if len(sb) < 1024 or struct.unpack_from("<H", sb, 56)[0] != EXT_MAGIC:
        return None
    blocks = struct.unpack_from("<I", sb, 4)[0]
    log_block = struct.unpack_from("<I", sb, 24)[0]
    incompat = struct.unpack_from("<I", sb, 96)[0]
    if incompat & EXT4_INCOMPAT_64BIT:
        blocks |= struct.unpack_from("<I", sb, 0x150)[0] << 32
    if log_block > 6:
        return None
    return blocks, 1024 << log_block, bool(incompat & EXT4_INCOMPAT_EXTENTS)


def read_partition_table(path):
    """The partitions of `path` as sfdisk reports them; BaseImageError when there is no MBR table."""
    if not os.path.isfile(path):
        raise BaseImageError("{}: no such file".format(path))
    head = _read_at(path, 0, 6)
    for magic, tool in ((b"\xfd7zXZ\x00", "xz -dk"), (b"PK\x03\x04", "unzip"), (b"\x1f\x8b", "gunzip -k")):
        if head.startswith(magic):
            raise BaseImageError("{}: compressed image; decompress it first ({} {})".format(path, tool, path))
    try:
        done = subprocess.run(["sfdisk", "--json", path], capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError as exc:
        raise BaseImageError("sfdisk is not installed (Debian package fdisk)") from exc
    if done.returncode != 0 or not done.stdout.strip():
        raise BaseImageError("{}: no partition table (expected MBR with a FAT boot and an ext4 root)".format(path))
    try:
        table = json.loads(done.stdout)["partitiontable"]
    except (ValueError, KeyError) as exc:
        raise BaseImageError("{}: sfdisk output not understood".format(path)) from exc
    label = table.get("label")
    if label != "dos":
        raise BaseImageError("{}: partition table is {}, expected MBR (dos) like Raspberry Pi OS".format(path, label))
    sector = int(table.get("sectorsize", SECTOR))
    image_size = os.path.getsize(path)
    parts = []
    for index, entry in enumerate(table.get("partitions", []), start=1):
        part = Partition(index, int(entry["start"]) * sector, int(entry["size"]) * sector, str(entry["type"]).lower())
        if part.offset + part.size > image_size:
            raise BaseImageError("{}: partition {} extends past the end of the file".format(path, index))
        parts.append(part)
    return parts


def read_layout(path):
    """The boot and root partitions of a Raspberry Pi OS-like image, or BaseImageError saying why not."""
    parts = read_partition_table(path)
    boot = None
    root = None
    for part in parts:
        if boot is None and part.type in FAT_TYPES:
            if _fat_kind(path, part) is None:
                raise BaseImageError(
                    "{}: partition {} has a FAT type but holds no FAT file system".format(path, part.number)
                )
            boot = part
        elif root is None and part.type == LINUX_TYPE:
            ext = _ext_blocks(path, part)
            if ext is None or not ext[2]:
                continue
            if ext[0] * ext[1] > part.size:
                raise BaseImageError(
                    "{}: the ext4 file system in partition {} is larger than the partition".format(path, part.number)
                )
            root = part
    if boot is None:
        raise BaseImageError("{}: no FAT boot partition (expected MBR type c, FAT32 `bootfs`)".format(path))
    if root is None:
        raise BaseImageError("{}: no ext4 root partition (expected MBR type 83, ext4 `rootfs`)".format(path))
    return Layout(boot, root)
