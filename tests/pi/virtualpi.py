"""A virtual Raspberry Pi: a Raspberry Pi OS Lite-like arm64 image run under qemu-system-aarch64.

The base (what Raspberry Pi OS Lite would be) is made from Debian's arm64 bookworm packages with
mmdebstrap, in the Raspberry Pi OS layout (MBR; FAT `bootfs` with config.txt and cmdline.txt mounted on
/boot/firmware; ext4 `rootfs`; PARTUUIDs in /etc/fstab and cmdline.txt), and cached in CACHE keyed by
everything that decides it. `make image` then turns it into a phone image exactly as for a real card.

The base also carries the test bench, which is not Sotto and which a real Pi would not have:
- vpi-agent.service: a root shell on the virtio console /dev/hvc0 that the host drives (Guest.sh);
- snd-aloop: an ALSA loopback card for the microphone side (QEMU's usb-audio is a speaker only);
- /etc/asound.conf: ALSA's "default" plays to the USB audio card and records from the loopback.

Boot: QEMU's `virt` machine with Debian's arm64 kernel and initrd read from the image's own root file
system, the image as a virtio disk, a user-mode (slirp) network inside a network namespace the test
makes (so the guest reaches nothing but that namespace's loopback), SIP and RTP forwarded to it.
"""

import base64
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time

MIB = 1024 * 1024
SUITE = "bookworm"
# Raspberry Pi OS Lite's share of what the phone touches: systemd, udev, python3 3.11, ALSA, i2c-tools.
BASE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "udev",
    "kmod",
    "dbus",
    "linux-image-arm64",
    "initramfs-tools",
    "python3",
    "libasound2",
    "alsa-utils",
    "i2c-tools",
    "iproute2",
    "procps",
)
# The initramfs only needs to find the virtio disk: a short list instead of MODULES=most, which takes
# minutes under qemu-user.
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk", "ext4")
PARTUUID = "5e3da3da"
BOOT_SIZE = 128 * MIB
ROOT_EXTRA = 900 * MIB  # room for the phone's environment (archive and unpacked venv)
FORMAT = "2"
FAST_DPKG = ["--dpkgopt=force-unsafe-io"] + [
    "--dpkgopt=path-exclude=/usr/share/{}/*".format(d) for d in ("man", "doc", "info", "locale")
]

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
CMDLINE = "console=serial0,115200 console=tty1 root=PARTUUID={}-02 rootfstype=ext4 fsck.repair=yes rootwait\n"

AGENT = r"""#!/bin/sh
# The test bench's root shell on the virtio console: one command per line, each answered by its output
# and a line "__VPI_DONE__ <exit code>".
exec </dev/hvc0 >/dev/hvc0 2>&1
stty raw -echo
echo __VPI_READY__
while IFS= read -r line; do
    sh -c "$line"
    echo "__VPI_DONE__ $?"
done
"""
AGENT_UNIT = """\
[Unit]
Description=virtual Pi test bench: root shell on /dev/hvc0 (not part of Sotto)
DefaultDependencies=no
After=systemd-udevd.service dev-hvc0.device
Wants=dev-hvc0.device

[Service]
ExecStart=/usr/local/sbin/vpi-agent
Restart=always

[Install]
WantedBy=sysinit.target
"""
ASOUND_CONF = """\
# virtual Pi bench: play to the USB audio card (QEMU usb-audio), record from the ALSA loopback.
pcm.!default {
    type asym
    playback.pcm "plughw:CARD=Audio,DEV=0"
    capture.pcm "plughw:CARD=Loopback,DEV=1"
}
"""


class VirtualPiError(Exception):
    pass


def log(message):
    print("virtual-pi: {}".format(message), flush=True)


def _run(args, timeout=1800, **kwargs):
    try:
        done = subprocess.run(args, timeout=timeout, check=False, capture_output=True, **kwargs)
    except FileNotFoundError as exc:
        raise VirtualPiError("{} is not installed (make test-pi installs it)".format(args[0])) from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout or b"").decode("utf-8", "replace").strip().splitlines()[-5:]
        raise VirtualPiError("{} failed ({}): {}".format(" ".join(args[:2]), done.returncode, " | ".join(tail)))
    return done


def base_key():
    parts = (SUITE, FORMAT, PARTUUID, CONFIG_TXT, CMDLINE, AGENT, AGENT_UNIT, ASOUND_CONF) + BASE_PACKAGES
    return hashlib.sha256("\0".join(parts + INITRAMFS_MODULES).encode()).hexdigest()[:16]


def _hooks():
    """mmdebstrap hooks (shell, $1 = the new root): initramfs settings before the kernel is installed,
    then the Raspberry Pi OS layout and the bench."""
    modules = "\\n".join(INITRAMFS_MODULES)
    # mkinitramfs reads /etc/initramfs-tools/modules (a conffile: writing it first would make dpkg ask)
    # and /usr/share/initramfs-tools/modules.d/*, not /etc/initramfs-tools/modules.d.
    essential = [
        'mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d"',
        'echo MODULES=list > "$1/etc/initramfs-tools/conf.d/virtual-pi.conf"',
        'printf "{}\\n" > "$1/usr/share/initramfs-tools/modules.d/virtual-pi"'.format(modules),
    ]
    fstab = (
        "proc /proc proc defaults 0 0\\n"
        "PARTUUID={p}-01 /boot/firmware vfat defaults 0 2\\n"
        "PARTUUID={p}-02 / ext4 defaults,noatime 0 1\\n"
    ).format(p=PARTUUID)
    customize = [
        'printf "{}" > "$1/etc/fstab"'.format(fstab),
        'echo raspberrypi > "$1/etc/hostname"',
        'mkdir -p "$1/boot/firmware"',
        'echo snd_aloop > "$1/etc/modules-load.d/virtual-pi.conf"',
        # Raspberry Pi OS's groups for the hardware (the sotto user joins them); i2c-tools makes i2c.
        'chroot "$1" groupadd -rf gpio',
        'chroot "$1" groupadd -rf i2c',
    ]
    return essential, customize


def _write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, mode)


def build_base(cache):
    """The cached base image (path). Cold: mmdebstrap under qemu-user, then the two file systems."""
    os.makedirs(cache, exist_ok=True)
    image = os.path.join(cache, "base-{}.img".format(base_key()))
    if os.path.exists(image):
        return image
    work = tempfile.mkdtemp(prefix="vpi-base-", dir=cache)
    try:
        root = os.path.join(work, "root")
        essential, customize = _hooks()
        args = [
            "mmdebstrap",
            "--quiet",
            "--arch=arm64",
            "--variant=minbase",
            "--include=" + ",".join(BASE_PACKAGES),
        ] + FAST_DPKG
        args += ["--essential-hook=" + hook for hook in essential]
        args += ["--customize-hook=" + hook for hook in customize]
        started = time.monotonic()
        _run(args + [SUITE, root], timeout=3600)
        log("mmdebstrap base: {:.0f} s".format(time.monotonic() - started))
        _write(os.path.join(root, "usr/local/sbin/vpi-agent"), AGENT, 0o755)
        _write(os.path.join(root, "etc/systemd/system/vpi-agent.service"), AGENT_UNIT)
        os.makedirs(os.path.join(root, "etc/systemd/system/sysinit.target.wants"), exist_ok=True)
        os.symlink(
            "/etc/systemd/system/vpi-agent.service",
            os.path.join(root, "etc/systemd/system/sysinit.target.wants/vpi-agent.service"),
        )
        _write(os.path.join(root, "etc/asound.conf"), ASOUND_CONF)
        make_disk(work, root, image + ".partial")
        os.rename(image + ".partial", image)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return image


def make_disk(work, root, image):
    """MBR with a FAT32 `bootfs` (config.txt, cmdline.txt) and an ext4 `rootfs` made from `root`."""
    used = int(_run(["du", "-s", "--block-size=1", root]).stdout.split()[0])
    root_size = (used + ROOT_EXTRA) // MIB * MIB
    boot_start = 4 * MIB
    root_start = boot_start + BOOT_SIZE
    with open(image, "wb") as f:
        f.truncate(root_start + root_size)
    table = "label: dos\nlabel-id: 0x{}\nstart={}, size={}, type=c\nstart={}, size={}, type=83\n".format(
        PARTUUID, boot_start // 512, BOOT_SIZE // 512, root_start // 512, root_size // 512
    )
    _run(["sfdisk", "-q", image], input=table.encode())
    boot = os.path.join(work, "boot.img")
    with open(boot, "wb") as f:
        f.truncate(BOOT_SIZE)
    _run(["mkfs.vfat", "-F", "32", "-n", "bootfs", boot])
    for name, text in (("config.txt", CONFIG_TXT), ("cmdline.txt", CMDLINE.format(PARTUUID))):
        path = os.path.join(work, name)
        _write(path, text)
        _run(["mcopy", "-i", boot, path, "::/" + name], env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
    rootfs = os.path.join(work, "root.img")
    with open(rootfs, "wb") as f:
        f.truncate(root_size)
    _run(["mkfs.ext4", "-q", "-L", "rootfs", "-d", root, rootfs], timeout=600)
    for offset, part in ((boot_start, boot), (root_start, rootfs)):
        _run(
            [
                "dd",
                "if=" + part,
                "of=" + image,
                "bs=4M",
                "seek={}".format(offset),
                "oflag=seek_bytes",
                "conv=notrunc,sparse",
            ],
            timeout=600,
        )
        os.unlink(part)


def partitions(image):
    import json

    table = json.loads(_run(["sfdisk", "--json", image]).stdout)["partitiontable"]
    return [(p["start"] * 512, p["size"] * 512) for p in table["partitions"]]


def extract_kernel(image, target_dir):
    """(vmlinuz, initrd) copied out of the image's root file system (/vmlinuz, /initrd.img links)."""
    offset = partitions(image)[1][0]
    device = "{}?offset={}".format(image, offset)
    listing = _run(["debugfs", "-R", "ls -p /boot", device]).stdout.decode()
    names = [line.split("/")[5] for line in listing.splitlines() if len(line.split("/")) >= 7]
    kernels = sorted(n for n in names if n.startswith("vmlinuz-"))
    if not kernels:
        raise VirtualPiError("no /boot/vmlinuz-* in the image")
    version = kernels[-1][len("vmlinuz-") :]
    found = []
    for name in ("vmlinuz-" + version, "initrd.img-" + version):
        path = os.path.join(target_dir, name)
        _run(["debugfs", "-R", "dump /boot/{} {}".format(name, path), device])
        if not os.path.getsize(path):
            raise VirtualPiError("/boot/{} is empty in the image".format(name))
        found.append(path)
    return found[0], found[1], version


class Guest:
    """qemu-system-aarch64 running an image, with the bench shell on a unix socket."""

    def __init__(self, image, workdir, netns, forwards, memory_mb=1024, cpus=2):
        self.image = image
        self.workdir = workdir
        self.netns = netns
        self.forwards = forwards  # [(proto, host_port, guest_port)]
        self.memory_mb = memory_mb
        self.cpus = cpus
        self.process = None
        self.sock = None
        self.buffer = b""
        self.console = os.path.join(workdir, "console.log")
        self.agent_path = os.path.join(workdir, "agent.sock")

    def start(self):
        kernel, initrd, _ = extract_kernel(self.image, self.workdir)
        fwd = "".join(",hostfwd={}:127.0.0.1:{}-:{}".format(p, h, g) for p, h, g in self.forwards)
        args = [
            "qemu-system-aarch64",
            "-M",
            "virt",
            "-cpu",
            "cortex-a72",
            "-smp",
            str(self.cpus),
            "-m",
            str(self.memory_mb),
            "-display",
            "none",
            "-monitor",
            "none",
            "-no-reboot",
            "-kernel",
            kernel,
            "-initrd",
            initrd,
            "-append",
            "root=PARTUUID={}-02 rootwait console=ttyAMA0 panic=-1 quiet".format(PARTUUID),
            "-drive",
            "file={},format=raw,if=none,id=disk".format(self.image),
            "-device",
            "virtio-blk-pci,drive=disk",
            "-netdev",
            "user,id=net" + fwd,
            "-device",
            # No PXE ROM (romfile=): the guest boots from -kernel, and ipxe-qemu need not be installed.
            "virtio-net-pci,netdev=net,romfile=",
            "-audiodev",
            "none,id=snd",
            "-device",
            "qemu-xhci",
            "-device",
            "usb-audio,audiodev=snd",
            "-chardev",
            "socket,id=agent,path={},server=on,wait=off".format(self.agent_path),
            "-device",
            "virtio-serial-pci",
            "-device",
            "virtconsole,chardev=agent",
            "-serial",
            "file:" + self.console,
        ]
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", self.netns] + args,
            stdin=subprocess.DEVNULL,
            stdout=open(os.path.join(self.workdir, "qemu.log"), "wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while not os.path.exists(self.agent_path):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise VirtualPiError("qemu did not start: " + self.qemu_log())
            time.sleep(0.1)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.agent_path)

    def qemu_log(self):
        try:
            with open(os.path.join(self.workdir, "qemu.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")[-2000:]
        except OSError:
            return ""

    def console_tail(self, lines=40):
        try:
            with open(self.console, "rb") as f:
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _read_until(self, marker, timeout):
        deadline = time.monotonic() + timeout
        while marker not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.process.poll() is not None:
                raise VirtualPiError(
                    "no {!r} from the guest within {:.0f} s; console:\n{}".format(marker, timeout, self.console_tail())
                )
            self.sock.settimeout(min(remaining, 1.0))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                raise VirtualPiError("the guest's console closed")
            self.buffer += data
        before, _, self.buffer = self.buffer.partition(marker)
        return before

    def wait_agent(self, timeout):
        """Seconds from qemu's start until the bench shell answers (the guest has booted to sysinit)."""
        self._read_until(b"__VPI_READY__\n", timeout)
        return time.monotonic() - self.started

    def sh(self, command, timeout=120, check=True):
        """Run a shell command as root in the guest: (exit code, output)."""
        encoded = base64.b64encode(command.encode()).decode()
        self.sock.sendall("echo {} | base64 -d | sh\n".format(encoded).encode())
        out = self._read_until(b"__VPI_DONE__ ", timeout)
        code_line = self._read_until(b"\n", 10)
        code = int(code_line.strip() or b"-1")
        text = out.decode("utf-8", "replace")
        if check and code != 0:
            raise VirtualPiError("guest command failed ({}): {}\n{}".format(code, command, text[-3000:]))
        return code, text

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.sock is not None:
            self.sock.close()
