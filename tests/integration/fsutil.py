"""fsutil.py - helpers for the FUSE integration tests (test_fs_*.py): find the
seglake binary, run `seglake mount` in the foreground as a child process, wait
for the mount, and always unmount and stop the process by pid on teardown.
Not a conftest: test modules import the fixtures they use from here.
"""
import ctypes
import errno
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

import seglake_paths

ROOT = Path(__file__).resolve().parents[2]


def seglake_bin():
    """The seglake binary, found as conftest.py finds it; missing is an error."""
    b = seglake_paths.seglake_bin()
    if not os.access(b, os.X_OK):
        pytest.fail("seglake binary not found at %s (set SEGLAKE_BUILD or SEGLAKE_BIN)" % b,
                    pytrace=False)
    return b


def mount_types_at(path):
    """The types of what is mounted at path, bottom to top."""
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        return [p[2] for p in (line.split() for line in f) if len(p) > 2 and p[1] == path]


def mount_type_at(path):
    """The type of the topmost mount at path, or None."""
    kinds = mount_types_at(path)
    return kinds[-1] if kinds else None


def is_mounted(path):
    return any(k.startswith("fuse") for k in mount_types_at(path))


def close_quietly(*fds):
    """Closes descriptors into a mount that may be gone (the close then fails)."""
    for fd in fds:
        if fd is None:
            continue
        try:
            os.close(fd)
        except OSError:
            pass


def force_unmount(path):
    """Clears a mount whatever state its process is in."""
    for _ in range(3):
        if not is_mounted(path):
            return
        subprocess.run(["fusermount3", "-u", "-z", "-q", str(path)],
                       stdin=subprocess.DEVNULL, capture_output=True)
        if is_mounted(path):
            subprocess.run(["umount", "-l", str(path)],
                           stdin=subprocess.DEVNULL, capture_output=True)
        time.sleep(0.1)


def local(data, *args, check=True):
    """Runs a local seglake command (data dir not held by a process)."""
    r = subprocess.run([seglake_bin(), *args, "--data", str(data)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=120)
    if check and r.returncode != 0:
        raise AssertionError("seglake %s failed: %s%s" % (args, r.stdout, r.stderr))
    return r


def stat_meta(data, bucket_key):
    """`seglake stat` output as a dict of its 'name: value' lines."""
    out = {}
    for line in local(data, "stat", bucket_key).stdout.splitlines():
        if ": " in line:
            k, v = line.split(": ", 1)
            out[k.strip()] = v.strip()
    return out


def stats(data):
    out = {}
    for line in local(data, "stats").stdout.splitlines():
        parts = line.replace(":", " ").split()
        if len(parts) >= 2 and parts[-1].isdigit():
            out[parts[0]] = int(parts[-1])
    return out


class Mount:
    """A `seglake mount DATA MNT --foreground` child process."""

    def __init__(self, data, mnt, args=(), log=None):
        self.data = Path(data)
        self.mnt = Path(mnt)
        self.args = list(args)
        self.log = Path(log or (str(self.data) + ".mount.log"))
        self.proc = None

    def start(self, timeout=15):
        self.mnt.mkdir(parents=True, exist_ok=True)
        logf = open(self.log, "ab")
        # each process's output starts at a marker, so a failure shows its own part
        logf.write(("--- seglake mount started %s ---\n" % time.strftime("%H:%M:%S")).encode())
        logf.flush()
        self.log_off = logf.tell()
        self.proc = subprocess.Popen(
            [seglake_bin(), "mount", str(self.data), str(self.mnt), "--foreground", *self.args],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
        logf.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if is_mounted(self.mnt):
                return self
            if self.proc.poll() is not None:
                raise AssertionError("mount exited %s at start\n%s" % (
                    self.status_text(self.proc.returncode), self.diagnosis()))
            time.sleep(0.05)
        raise AssertionError("mount did not appear\n" + self.diagnosis())

    @staticmethod
    def status_text(rc):
        if rc is not None and rc < 0:
            try:
                return "on signal %s" % signal.Signals(-rc).name
            except ValueError:
                return "on signal %d" % -rc
        return "with status %s" % rc

    def logtext(self, limit=12000):
        """This process's log (stdout and stderr, sanitizer reports included):
        its start and its end when it is longer than limit."""
        try:
            with open(self.log, "rb") as f:
                f.seek(getattr(self, "log_off", 0))
                text = f.read().decode(errors="replace")
        except OSError as e:
            return "(no log: %s)" % e
        if len(text) > limit:
            text = text[:limit // 2] + "\n[... %d bytes ...]\n" % (len(text) - limit) + \
                text[-limit // 2:]
        return text

    def diagnosis(self):
        """What a failed start or stop leaves to look at: the process's log,
        whether the mountpoint is still mounted, who holds the data dir lock."""
        lines = ["mountpoint %s mounted: %s" % (self.mnt, is_mounted(self.mnt))]
        try:
            holder = (self.data / "lock").read_text().strip()
            alive = holder.isdigit() and os.path.exists("/proc/%s" % holder)
            lines.append("data dir lock last taken by pid %s (%s)" % (
                holder or "?", "alive" if alive else "gone"))
        except OSError as e:
            lines.append("data dir lock: %s" % e)
        lines.append("--- log %s (this process) ---" % self.log)
        lines.append(self.logtext())
        return "\n".join(lines)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=30, check=False):
        """Stops the process by pid and makes sure nothing stays mounted.
        Returns its exit status; check: raise, with its log, unless it is 0
        (a sanitizer report at exit makes it non-zero)."""
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self.proc.send_signal(sig)
                    rc = self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    rc = self.proc.wait(timeout=30)
            else:
                rc = self.proc.returncode
        force_unmount(self.mnt)
        if check and rc != 0:
            raise AssertionError("mount (pid %s) exited %s at stop\n%s" % (
                self.proc.pid if self.proc else "?", self.status_text(rc), self.diagnosis()))
        return rc

    def kill9(self):
        self.proc.kill()
        self.proc.wait(timeout=30)
        force_unmount(self.mnt)


@pytest.fixture
def lake(tmp_path):
    """An empty data dir, and a mount of it at tmp_path/mnt with a bucket 'bk1'.
    Yields the Mount; teardown stops it and unmounts even on failure, and
    fails (with the mount's log) unless it exits 0."""
    data = tmp_path / "data"
    local_init(data)
    m = Mount(data, tmp_path / "mnt")
    try:
        m.start()
        os.mkdir(m.mnt / "bk1")
        yield m
    finally:
        m.stop(check=True)


def local_init(data):
    r = subprocess.run([seglake_bin(), "init", str(data)], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def errno_of(fn, *a, **kw):
    """The errno an OSError-raising call fails with (None if it succeeds)."""
    try:
        fn(*a, **kw)
    except OSError as e:
        return e.errno
    return None


_libc = ctypes.CDLL(None, use_errno=True)
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2


def renameat2(src, dst, flags):
    AT_FDCWD = -100
    r = _libc.renameat2(AT_FDCWD, os.fsencode(str(src)), AT_FDCWD, os.fsencode(str(dst)),
                        ctypes.c_uint(flags))
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), str(src))


def fallocate(fd, mode, off, length):
    r = _libc.fallocate(fd, ctypes.c_int(mode), ctypes.c_long(off), ctypes.c_long(length))
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def have(cmd):
    return shutil.which(cmd) is not None


__all__ = ["seglake_bin", "is_mounted", "force_unmount", "local", "stat_meta", "stats", "Mount",
           "lake", "local_init", "errno_of", "renameat2", "fallocate", "have", "errno",
           "RENAME_NOREPLACE", "RENAME_EXCHANGE"]


def serve_mounted(tmp_path, bucket, stop_timeout=30):
    """Fixture body: `seglake serve --mount` on tmp_path/mnt with `bucket`
    created through S3; yields (server, boto3 client, mount path), then stops
    the server (which must exit 0) and makes sure the mount is gone."""
    from conftest import start_server
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    srv = start_server(tmp_path, extra_args=["--mount", str(mnt)])
    try:
        deadline = time.time() + 10
        while not is_mounted(mnt) and time.time() < deadline:
            time.sleep(0.05)
        assert is_mounted(mnt), srv.log_tail()
        s3 = srv.client()
        s3.create_bucket(Bucket=bucket)
        yield srv, s3, mnt
    finally:
        rc = srv.stop(timeout=stop_timeout)
        force_unmount(mnt)
    assert rc == 0, srv.log_tail()
