"""The kernel's own GPIO and I2C simulators for the virtual Pi, built for the image's exact kernel.

Debian bookworm's arm64 6.1 kernel is built without CONFIG_GPIO_SIM and CONFIG_I2C_STUB (and without
CONFIG_IRQ_SIM, which gpio-sim needs for its interrupts), but it has what they stand on: GPIOLIB with
the character device (CONFIG_GPIO_CDEV), CONFIGFS_FS (m) and I2C with i2c-dev. So the simulators are
built here as out-of-tree modules from Debian's own sources for that kernel:

- the sources: drivers/gpio/gpio-sim.c (+ gpiolib.h), kernel/irq/irq_sim.c and drivers/i2c/i2c-stub.c
  from the `linux-source-6.1` package of the kernel's exact Debian version;
- the build: Kbuild against `linux-headers-<abi>` of that version, with Debian's arm64 gcc-12, all
  unpacked by mmdebstrap (extract variant: nothing is configured) and run in that root under qemu-user
  (binfmt), as `make image` runs its aarch64 steps;
- irq_sim.c is linked into gpio-sim.ko (it is not in the kernel). One line differs from the kernel's:
  it calls handle_simple_irq(irq_to_desc(n)), and irq_to_desc is not exported to modules in 6.1; the
  module calls generic_handle_irq(n), which runs the same handler (irq_sim sets handle_simple_irq as
  the flow handler of every interrupt it maps).

The .ko files are cached in CACHE/kmods-<kernel abi>-<recipe key>/ and loaded by the TEST in the guest
(insmod from a test overlay), never by the shipped image. Unsigned: the kernel has MODULE_SIG but not
MODULE_SIG_FORCE, so they load (and taint it, which the test accepts).
"""

import hashlib
import os
import shutil
import tempfile
import time

from tests.pi import virtualpi

SOURCES = {
    # path in linux-source-6.1's tarball -> name in the build directory
    "drivers/gpio/gpio-sim.c": "gpio-sim-main.c",
    "drivers/gpio/gpiolib.h": "gpiolib.h",
    "kernel/irq/irq_sim.c": "irq_sim.c",
    "drivers/i2c/i2c-stub.c": "i2c-stub.c",
}
KBUILD = """\
obj-m := gpio-sim.o i2c-stub.o
gpio-sim-y := gpio-sim-main.o irq_sim.o
"""
IRQ_SIM_FROM = "handle_simple_irq(irq_to_desc(irqnum));"
IRQ_SIM_TO = "generic_handle_irq(irqnum);"
# What the build root needs besides the headers and the source: a shell and the tools Kbuild calls.
TOOLS = (
    "gcc-12",
    "make",
    "libc6-dev",
    "dash",
    "bash",
    "coreutils",
    "sed",
    "grep",
    "gawk",
    "findutils",
    "diffutils",
    "libelf1",
    "xz-utils",
    "tar",
    "perl-base",
)
MODULES = ("gpio-sim.ko", "i2c-stub.ko")
FORMAT = "1"


def _recipe_key():
    parts = (FORMAT, KBUILD, IRQ_SIM_FROM, IRQ_SIM_TO) + TOOLS + tuple(k + "=" + v for k, v in sorted(SOURCES.items()))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def kernel_of(image):
    """(abi, Debian version) of the kernel in an image: ("6.1.0-57-arm64", "6.1.192-3")."""
    offset = virtualpi.partitions(image)[1][0]
    device = "{}?offset={}".format(image, offset)
    status = virtualpi._run(["debugfs", "-R", "cat /var/lib/dpkg/status", device]).stdout.decode()
    for stanza in status.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " ")
        name = fields.get("Package", "")
        if name.startswith("linux-image-6.") and "installed" in fields.get("Status", ""):
            return name[len("linux-image-") :], fields["Version"]
    raise virtualpi.VirtualPiError("no linux-image-6.* package installed in {}".format(image))


def build_modules(cache, image):
    """Directory holding gpio-sim.ko and i2c-stub.ko for the kernel of `image` (cached)."""
    abi, version = kernel_of(image)
    target = os.path.join(cache, "kmods-{}-{}".format(abi, _recipe_key()))
    if all(os.path.exists(os.path.join(target, name)) for name in MODULES):
        return target
    os.makedirs(cache, exist_ok=True)
    work = tempfile.mkdtemp(prefix="vpi-kmods-", dir=cache)
    try:
        root = os.path.join(work, "root")
        started = time.monotonic()
        packages = ["linux-headers-{}={}".format(abi, version), "linux-source-6.1={}".format(version)]
        virtualpi._run(
            [
                "mmdebstrap",
                "--quiet",
                "--arch=arm64",
                "--variant=extract",
                "--include=" + ",".join(packages + list(TOOLS)),
                virtualpi.SUITE,
                root,
            ],
            timeout=1200,
        )
        build = os.path.join(root, "build")
        os.makedirs(build)
        tarball = os.path.join(root, "usr/src/linux-source-6.1.tar.xz")
        members = ["linux-source-6.1/" + path for path in SOURCES]
        virtualpi._run(["tar", "-xJf", tarball, "-C", work] + members, timeout=600)
        for path, name in SOURCES.items():
            shutil.copy(os.path.join(work, "linux-source-6.1", path), os.path.join(build, name))
        irq_sim = os.path.join(build, "irq_sim.c")
        with open(irq_sim, encoding="utf-8") as f:
            text = f.read()
        if text.count(IRQ_SIM_FROM) != 1:
            raise virtualpi.VirtualPiError("irq_sim.c of {} no longer has the line this build changes".format(version))
        with open(irq_sim, "w", encoding="utf-8") as f:
            f.write(text.replace(IRQ_SIM_FROM, IRQ_SIM_TO))
        with open(os.path.join(build, "Kbuild"), "w", encoding="utf-8") as f:
            f.write(KBUILD)
        # Nothing was configured: the "awk" alternative gawk's postinst would make is missing.
        os.symlink("gawk", os.path.join(root, "usr/bin/awk"))
        virtualpi._run(
            [
                "chroot",
                root,
                "/usr/bin/make",
                "-C",
                "/usr/src/linux-headers-" + abi,
                "M=/build",
                "CC=gcc-12",
                "HOSTCC=gcc-12",
                "modules",
            ],
            timeout=1500,
        )
        partial = target + ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(partial)
        for name in MODULES:
            shutil.copy(os.path.join(build, name), os.path.join(partial, name))
        shutil.rmtree(target, ignore_errors=True)
        os.rename(partial, target)
        virtualpi.log(
            "gpio-sim and i2c-stub for {} ({}) built: {:.0f} s".format(abi, version, time.monotonic() - started)
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
