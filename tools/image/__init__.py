"""SD-card image builder: Raspberry Pi OS Lite in, a Sotto desk phone image out (issue 7).

Offline, without loop mounts or root: the builder copies BASE next to OUT, reads the partition table
with sfdisk, edits the FAT boot partition with mtools (``-i IMAGE@@OFFSET``) and the ext4 root
partition with debugfs (``IMAGE?offset=N``: e2fsprogs' Unix I/O manager takes the partition's byte
offset as an I/O option, so the file system is edited in place inside the image copy, with no
extraction and no second copy), then renames the copy to OUT.

Modules: ``partitions`` (layout checks), ``fat`` (mtools), ``ext4`` (debugfs), ``accounts``
(/etc/passwd, group, shadow, gshadow text), ``payload`` (what Sotto installs, shared with
tools/install.py), ``build`` (the whole build).
"""
