"""The FAT boot partition inside an image file, edited with mtools (``-i IMAGE@@OFFSET``): no mount."""

import os
import subprocess
import tempfile


class ImageToolError(Exception):
    """An external tool (mtools, debugfs) failed; the message is one line for the user."""


def _env():
    env = dict(os.environ)
    # Images made by other tools often have a geometry mtools' sanity check dislikes; it is harmless.
    env["MTOOLS_SKIP_CHECK"] = "1"
    env.pop("MTOOLSRC", None)
    return env


def _check_name(path):
    if not path.startswith("/") or any(c in path for c in '\\:*?"<>|\n\r\t'):
        raise ImageToolError("invalid path on the FAT partition: {!r}".format(path))


class FatPartition:
    """Read and write files in a FAT partition that starts `offset` bytes into `image`."""

    def __init__(self, image, offset):
        self.target = "{}@@{}".format(image, offset)

    def _run(self, args, input_bytes=None):
        try:
            return subprocess.run(args, input=input_bytes, capture_output=True, timeout=120, env=_env(), check=False)
        except FileNotFoundError as exc:
            raise ImageToolError("{} is not installed (Debian package mtools)".format(args[0])) from exc

    def exists(self, path):
        _check_name(path)
        return self._run(["mdir", "-b", "-i", self.target, "::" + path]).returncode == 0

    def read(self, path):
        """The file's bytes, or None when it does not exist."""
        if not self.exists(path):
            return None
        done = self._run(["mcopy", "-n", "-i", self.target, "::" + path, "-"])
        if done.returncode != 0:
            raise ImageToolError("mcopy could not read {}: {}".format(path, _first_line(done.stderr)))
        return done.stdout

    def write(self, path, data):
        """Create or replace the file at `path` (its directory must exist)."""
        _check_name(path)
        with tempfile.NamedTemporaryFile(prefix="sotto-fat-") as tmp:
            tmp.write(data)
            tmp.flush()
            done = self._run(["mcopy", "-o", "-n", "-i", self.target, tmp.name, "::" + path])
        if done.returncode != 0:
            raise ImageToolError("mcopy could not write {}: {}".format(path, _first_line(done.stderr)))

    def write_file(self, path, host_path):
        """Copy the host file `host_path` to `path` (for large files such as the data image)."""
        _check_name(path)
        done = self._run(["mcopy", "-o", "-n", "-i", self.target, host_path, "::" + path])
        if done.returncode != 0:
            raise ImageToolError("mcopy could not write {}: {}".format(path, _first_line(done.stderr)))

    def free_bytes(self):
        """Free space on the partition, from `minfo`'s free cluster count; None when unknown."""
        done = self._run(["mdir", "-i", self.target, "::/"])
        for line in done.stdout.decode("utf-8", "replace").splitlines():
            words = line.split()
            if line.strip().endswith("bytes free") and words:
                try:
                    return int("".join(words[: len(words) - 2]).replace(",", "").replace(" ", ""))
                except ValueError:
                    return None
        return None


def _first_line(raw):
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return "(no message)"
