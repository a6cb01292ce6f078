"""test_fs_robust.py - unmount and crash behaviour of `seglake mount`: lazy
unmount with files open, kill -9 while a writer is busy (restart finds every
closed file intact and nothing half-written), SIGTERM with a file or a
directory still open (clean exit, nothing left behind), disk full reaching the
caller as ENOSPC without killing the mount.
"""
import hashlib
import os
import subprocess
import sys
import time

import pytest

from fsutil import Mount, close_quietly, errno, force_unmount, is_mounted, local, local_init  # noqa: F401

MiB = 1 << 20


def content(i):
    """Deterministic, distinct content of file i (1-3 MiB)."""
    seed = hashlib.sha256(b"file%d" % i).digest()
    n = MiB + (i % 3) * MiB + i
    return (seed * (n // 32 + 1))[:n]


WRITER = r"""
import hashlib, os, sys
MiB = 1 << 20
def content(i):
    seed = hashlib.sha256(b"file%d" % i).digest()
    n = MiB + (i % 3) * MiB + i
    return (seed * (n // 32 + 1))[:n]
d = sys.argv[1]
i = 0
while True:
    data = content(i)
    try:
        with open(os.path.join(d, "f%d" % i), "wb") as f:
            for off in range(0, len(data), 256 * 1024):
                f.write(data[off:off + 256 * 1024])
    except OSError:
        break
    print(i, flush=True)  # closed: committed
    i += 1
"""


def test_kill9_while_writing_keeps_closed_files(tmp_path):
    data = tmp_path / "data"
    local_init(data)
    m = Mount(data, tmp_path / "mnt").start()
    closed = []
    try:
        d = m.mnt / "bk1"
        os.mkdir(d)
        w = subprocess.Popen([sys.executable, "-c", WRITER, str(d)], stdout=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        try:
            deadline = time.time() + 30
            while len(closed) < 8 and time.time() < deadline:
                line = w.stdout.readline()
                if not line:
                    break
                closed.append(int(line))
            assert len(closed) >= 8, "writer made no progress"
            m.proc.kill()  # SIGKILL while the writer is mid-file
            m.proc.wait(timeout=30)
            out, _ = w.communicate(timeout=60)
            closed += [int(x) for x in out.split()]
        finally:
            if w.poll() is None:
                w.kill()
                w.wait()
        # the dead mount is cleared by fusermount3 -u
        assert is_mounted(m.mnt)
        subprocess.run(["fusermount3", "-u", str(m.mnt)], check=True)
        assert not is_mounted(m.mnt)
    finally:
        m.stop()
    m = Mount(data, tmp_path / "mnt").start()
    try:
        d = m.mnt / "bk1"
        for i in closed:
            assert (d / ("f%d" % i)).read_bytes() == content(i), "file %d damaged" % i
        # the file being written at the kill: absent, empty (created) or whole
        nxt = d / ("f%d" % (max(closed) + 1))
        if nxt.exists():
            got = nxt.read_bytes()
            assert got in (b"", content(max(closed) + 1)), len(got)
        names = set(os.listdir(d))
        assert names <= {"f%d" % i for i in range(max(closed) + 2)}
    finally:
        m.stop(check=True)


def test_lazy_unmount_with_open_file(tmp_path):
    data = tmp_path / "data"
    local_init(data)
    m = Mount(data, tmp_path / "mnt").start()
    try:
        os.mkdir(m.mnt / "bk1")
        f = open(m.mnt / "bk1" / "open-during-umount", "wb")
        f.write(b"before ")
        subprocess.run(["umount", "-l", str(m.mnt)], check=True)
        assert not is_mounted(m.mnt)
        f.write(b"after")
        f.close()  # the last user of the detached mount: the session ends
        assert m.proc.wait(timeout=30) == 0
    finally:
        m.stop()
    m = Mount(data, tmp_path / "mnt").start()
    try:
        assert (m.mnt / "bk1" / "open-during-umount").read_bytes() == b"before after"
    finally:
        m.stop()


def test_sigterm_with_open_dirty_file_commits_it(tmp_path):
    data = tmp_path / "data"
    local_init(data)
    m = Mount(data, tmp_path / "mnt").start()
    f = None
    try:
        os.mkdir(m.mnt / "bk1")
        f = open(m.mnt / "bk1" / "dirty", "wb")
        f.write(b"x" * 100000)
        f.flush()
        m.stop(check=True)  # SIGTERM: unmount, commit buffers, exit 0
    finally:
        if f:
            try:
                f.close()
            except OSError:
                pass  # the connection is gone
        m.stop()
    assert local(data, "stat", "bk1/dirty").stdout.count("size: 100000") == 1


def test_sigterm_with_open_directory_exits_clean(tmp_path):
    """A directory still open at SIGTERM: the kernel never sends its
    RELEASEDIR (the session ends first), so the mount frees the handle itself
    (under LeakSanitizer a handle left behind makes the exit status non-zero;
    a closed directory whose RELEASEDIR was still queued hit the same path)."""
    data = tmp_path / "data"
    local_init(data)
    m = Mount(data, tmp_path / "mnt").start()
    fd = None
    try:
        os.mkdir(m.mnt / "bk1")
        for i in range(3):
            (m.mnt / "bk1" / ("f%d" % i)).write_bytes(b"x")
        fd = os.open(m.mnt / "bk1", os.O_RDONLY | os.O_DIRECTORY)
        assert sorted(os.listdir(fd)) == ["f0", "f1", "f2"]  # a listing page is held
        m.stop(check=True)
    finally:
        close_quietly(fd)
        m.stop()


def test_enospc_reaches_caller(tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(small)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount tmpfs: " + r.stderr)
    m = None
    try:
        data = small / "data"
        local_init(data)
        m = Mount(data, tmp_path / "mnt").start()
        os.mkdir(m.mnt / "bk1")
        err = None
        try:
            with open(m.mnt / "bk1" / "huge", "wb") as f:
                block = os.urandom(MiB)
                for i in range(100):
                    f.write(block[i:] + block[:i])
        except OSError as e:
            err = e.errno
        assert err == errno.ENOSPC
        assert m.alive()
        os.unlink(m.mnt / "bk1" / "huge") if (m.mnt / "bk1" / "huge").exists() else None
        assert os.listdir(m.mnt) == ["bk1"]
    finally:
        if m:
            m.stop()
        force_unmount(small)
        subprocess.run(["umount", "-l", str(small)], capture_output=True)
