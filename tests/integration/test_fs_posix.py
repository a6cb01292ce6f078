"""test_fs_posix.py - POSIX behaviour of `seglake mount` against a real mount:
namespace (buckets, directories, odd keys), file I/O, rename, copy, attributes,
symlinks, xattrs, refused operations with their errno, permissions. Each test
gets its own data dir and mount (fixture `lake`), torn down even on failure.
"""
import hashlib
import json
import os
import stat
import subprocess
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

from fsutil import (RENAME_EXCHANGE, RENAME_NOREPLACE, Mount, close_quietly, errno, errno_of, fallocate,
                    force_unmount, lake, local, local_init, mount_type_at, renameat2, stat_meta, stats)  # noqa: F401

MiB = 1 << 20


def test_buckets_are_directories(lake):
    root = lake.mnt
    assert os.listdir(root) == ["bk1"]
    os.mkdir(root / "bk2")
    assert sorted(os.listdir(root)) == ["bk1", "bk2"]
    assert errno_of(os.mkdir, root / "Bad_Name") == errno.EINVAL
    assert errno_of(os.mkdir, root / "ab") == errno.EINVAL  # too short for S3
    assert errno_of(os.mkdir, root / "bk2") == errno.EEXIST
    (root / "bk2" / "f").write_text("x")
    assert errno_of(os.rmdir, root / "bk2") == errno.ENOTEMPTY
    os.unlink(root / "bk2" / "f")
    os.rmdir(root / "bk2")
    assert os.listdir(root) == ["bk1"]
    assert errno_of(open, root / "file-in-root", "w") == errno.EPERM


def test_read_write_append_truncate(lake):
    p = lake.mnt / "bk1" / "f.txt"
    p.write_bytes(b"hello world")
    assert p.read_bytes() == b"hello world"
    with open(p, "ab") as f:
        f.write(b"!!")
    assert p.read_bytes() == b"hello world!!"
    # O_APPEND writes go to the end whatever the offset
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, b"?")
    os.close(fd)
    assert p.read_bytes() == b"hello world!!?"
    os.truncate(p, 5)
    assert p.read_bytes() == b"hello"
    fd = os.open(p, os.O_RDWR)
    os.ftruncate(fd, 8)
    os.pwrite(fd, b"Z", 7)
    assert os.fstat(fd).st_size == 8
    os.close(fd)
    assert p.read_bytes() == b"hello\0\0Z"
    # O_TRUNC
    fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
    os.write(fd, b"new")
    os.close(fd)
    assert p.read_bytes() == b"new"
    # read-your-writes on the same handle before close
    fd = os.open(p, os.O_RDWR)
    os.pwrite(fd, b"abcdef", 1)
    assert os.pread(fd, 10, 0) == b"nabcdef"
    os.close(fd)


def test_excl_and_errors(lake):
    d = lake.mnt / "bk1"
    fd = os.open(d / "x", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    os.close(fd)
    assert errno_of(os.open, d / "x", os.O_CREAT | os.O_EXCL | os.O_WRONLY) == errno.EEXIST
    assert errno_of(os.open, d / "missing", os.O_RDONLY) == errno.ENOENT
    assert errno_of(os.link, d / "x", d / "y") == errno.EPERM
    assert errno_of(os.mkfifo, d / "fifo") == errno.EPERM
    assert errno_of(os.mknod, d / "dev", stat.S_IFCHR | 0o600, os.makedev(1, 3)) == errno.EPERM
    os.mknod(d / "regular", stat.S_IFREG | 0o640)
    assert stat.S_IMODE(os.stat(d / "regular").st_mode) == 0o640
    os.mkdir(d / "dir")
    (d / "dir" / "f").write_text("x")
    assert errno_of(os.rmdir, d / "dir") == errno.ENOTEMPTY
    assert errno_of(os.unlink, d / "dir") == errno.EISDIR
    assert errno_of(os.rmdir, d / "x") == errno.ENOTDIR
    assert errno_of(os.mkdir, d / "x") == errno.EEXIST
    assert errno_of(os.open, d / ("n" * 256), os.O_CREAT | os.O_WRONLY) == errno.ENAMETOOLONG


def test_directories_explicit_and_implicit(lake):
    d = lake.mnt / "bk1"
    os.makedirs(d / "a" / "b" / "c")
    assert os.path.isdir(d / "a" / "b" / "c")
    (d / "a" / "b" / "c" / "f").write_text("data")
    os.unlink(d / "a" / "b" / "c" / "f")
    # a directory emptied through the mount stays
    assert os.listdir(d / "a" / "b" / "c") == []
    os.rmdir(d / "a" / "b" / "c")
    assert os.listdir(d / "a" / "b") == []
    lake.stop()
    keys = local(lake.data, "ls", "bk1", "--recursive").stdout
    assert "a/b/" in keys and "a/b/c/" not in keys


def test_odd_keys_follow_rules(tmp_path):
    data = tmp_path / "data"
    local_init(data)
    local(data, "bucket", "create", "odd")
    src = tmp_path / "v"
    src.write_text("v")
    long = "L" * 300
    keys = ["a//b", "x/./y", "x/../esc", "../up", "./dot", "both", "both/child", "ok/fine",
            long + "/z", "trail/"]
    for k in keys:
        local(data, "put", "odd/" + k, str(src))
    m = Mount(data, tmp_path / "mnt").start()
    try:
        top = sorted(os.listdir(m.mnt / "odd"))
        # 'a' (prefix a/ with an empty component below), 'x', 'both' (dir wins), 'ok', 'trail'
        assert top == ["a", "both", "ok", "trail", "x"], top
        assert os.listdir(m.mnt / "odd" / "a") == []  # "a//b" has an empty component
        assert os.listdir(m.mnt / "odd" / "x") == []  # "." and ".." are not names
        assert os.path.isdir(m.mnt / "odd" / "both")
        assert os.listdir(m.mnt / "odd" / "both") == ["child"]
        assert (m.mnt / "odd" / "ok" / "fine").read_text() == "v"
        assert os.path.isdir(m.mnt / "odd" / "trail")
        # nothing leaves the bucket: ".." resolves in the kernel, never as a key
        assert os.path.realpath(m.mnt / "odd" / "x" / "..") == str(m.mnt / "odd")
        assert m.alive()
    finally:
        assert m.stop() == 0
    # the hidden keys are untouched and still visible to S3-side listing
    out = local(data, "ls", "odd", "--recursive").stdout
    for k in keys:
        assert k in out


def test_sparse_and_fallocate(lake):
    p = lake.mnt / "bk1" / "sparse"
    with open(p, "wb") as f:
        f.seek(100 * MiB)
        f.write(b"end")
    assert os.stat(p).st_size == 100 * MiB + 3
    with open(p, "rb") as f:
        assert f.read(4096) == b"\0" * 4096
        f.seek(50 * MiB)
        assert f.read(10) == b"\0" * 10
        f.seek(100 * MiB)
        assert f.read() == b"end"
    fd = os.open(lake.mnt / "bk1" / "prealloc", os.O_CREAT | os.O_RDWR)
    fallocate(fd, 0, 0, 10 * MiB)
    assert os.fstat(fd).st_size == 10 * MiB
    assert errno_of(fallocate, fd, 0x02 | 0x01, 0, 4096) == errno.EOPNOTSUPP  # punch hole
    os.close(fd)
    assert os.stat(lake.mnt / "bk1" / "prealloc").st_size == 10 * MiB
    lake.stop()
    st = stats(lake.data)
    assert st["stored"] < 8 * MiB, st  # zero chunks are holes, never stored


def test_small_write_into_large_file_rewrites_one_chunk(lake):
    p = lake.mnt / "bk1" / "large"
    block = os.urandom(MiB)
    with open(p, "wb") as f:
        for _ in range(64):
            f.write(block)
    lake.stop()
    before = stats(lake.data)["stored"]
    lake.start()
    fd = os.open(p, os.O_WRONLY)
    os.pwrite(fd, b"X" * 4096, 30 * MiB + 123)
    os.close(fd)
    with open(p, "rb") as f:
        f.seek(30 * MiB + 123)
        assert f.read(4096) == b"X" * 4096
    lake.stop()
    after = stats(lake.data)["stored"]
    assert after - before <= 5 * MiB, (before, after)
    meta = stat_meta(lake.data, "bk1/large")
    assert meta["size"] == str(64 * MiB)


def test_unlinked_open_file_stays_readable(lake):
    p = lake.mnt / "bk1" / "gone"
    payload = os.urandom(5 * MiB + 17)
    p.write_bytes(payload)
    fd = os.open(p, os.O_RDONLY)
    os.unlink(p)
    assert not p.exists()
    assert os.pread(fd, len(payload) + 10, 0) == payload
    assert os.fstat(fd).st_size == len(payload)
    # a new file under the same name is a different file
    p.write_bytes(b"other")
    assert os.pread(fd, 5, 0) == payload[:5]
    os.close(fd)
    assert p.read_bytes() == b"other"


def test_stop_with_unlinked_and_replaced_files_open(tmp_path):
    """Files the kernel still holds but no name reaches (unlinked while open,
    renamed over while open) are freed when the mount stops with them still
    open: the sanitized build fails the stop on any leak."""
    data = tmp_path / "data"
    local_init(data)
    m = Mount(data, tmp_path / "mnt")
    fds = []
    try:
        m.start()
        d = m.mnt / "bk1"
        os.mkdir(d)
        (d / "gone").write_bytes(b"g" * 100)
        (d / "old").write_bytes(b"o" * 100)
        (d / "new").write_bytes(b"n" * 100)
        fds.append(os.open(d / "gone", os.O_RDONLY))
        fds.append(os.open(d / "old", os.O_RDONLY))
        fds.append(os.open(d / "dirty", os.O_WRONLY | os.O_CREAT))
        os.write(fds[-1], b"d" * 100)
        os.unlink(d / "gone")
        os.rename(d / "new", d / "old")
        os.unlink(d / "dirty")
        assert os.pread(fds[0], 100, 0) == b"g" * 100
        assert os.pread(fds[1], 100, 0) == b"o" * 100
        assert sorted(os.listdir(d)) == ["old"]
    finally:
        m.stop(check=True)
        close_quietly(*fds)  # the flush of "dirty" finds no daemon


def test_stop_with_open_files_leaves_a_new_mount_at_the_path_alone(tmp_path):
    """Stopping with a file open detaches the mount at once and waits a little
    for the file; a filesystem mounted at the same path in that time belongs to
    someone else. The stop must not unmount it, nor print an unmount failure."""
    data = tmp_path / "data"
    local_init(data)
    m = Mount(data, tmp_path / "mnt")
    fd = None
    other = False
    try:
        m.start()
        os.mkdir(m.mnt / "bk1")
        (m.mnt / "bk1" / "f").write_bytes(b"kept open")
        fd = os.open(m.mnt / "bk1" / "f", os.O_RDONLY)
        m.proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 10
        while mount_type_at(m.mnt) is not None and time.time() < deadline:
            time.sleep(0.02)
        assert mount_type_at(m.mnt) is None, "the stop did not detach the mount"
        # the process may already be gone (the session can end before the
        # file is closed); when it is still stopping, the tmpfs is checked
        # against its unmount, and the message check holds either way
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "seglake-test-other",
                        str(m.mnt)], check=True)
        other = True
        (m.mnt / "theirs").write_text("someone else's")
        assert m.proc.wait(timeout=30) == 0, m.diagnosis()
        assert mount_type_at(m.mnt) == "tmpfs", "the stopping mount unmounted another filesystem"
        assert (m.mnt / "theirs").read_text() == "someone else's"
        assert "failed to unmount" not in m.logtext(), m.logtext()
    finally:
        close_quietly(fd)
        for _ in range(50):
            if not other or mount_type_at(m.mnt) != "tmpfs":
                break
            subprocess.run(["umount", str(m.mnt)], capture_output=True)
        m.stop()


def test_inode_stable_while_open(lake):
    p = lake.mnt / "bk1" / "ino"
    p.write_text("x")
    fd = os.open(p, os.O_RDONLY)
    ino = os.fstat(fd).st_ino
    for _ in range(3):
        time.sleep(0.4)
        assert os.stat(p).st_ino == ino
    os.close(fd)


def test_rename_files_and_directories(lake):
    d = lake.mnt / "bk1"
    (d / "a").write_text("A")
    (d / "b").write_text("B")
    os.rename(d / "a", d / "c")
    assert not (d / "a").exists() and (d / "c").read_text() == "A"
    os.rename(d / "c", d / "b")  # replaces atomically
    assert (d / "b").read_text() == "A" and not (d / "c").exists()
    (d / "x").write_text("X")
    assert errno_of(renameat2, d / "x", d / "b", RENAME_NOREPLACE) == errno.EEXIST
    renameat2(d / "x", d / "b", RENAME_EXCHANGE)
    assert (d / "x").read_text() == "A" and (d / "b").read_text() == "X"
    # whole directory with contents, open file inside keeps working
    os.makedirs(d / "tree" / "sub")
    for i in range(20):
        (d / "tree" / "sub" / ("f%d" % i)).write_text(str(i))
    (d / "tree" / "top").write_text("top")
    fd = os.open(d / "tree" / "sub" / "f3", os.O_RDWR)
    os.rename(d / "tree", d / "moved")
    assert not (d / "tree").exists()
    assert sorted(os.listdir(d / "moved" / "sub")) == sorted("f%d" % i for i in range(20))
    assert (d / "moved" / "top").read_text() == "top"
    os.pwrite(fd, b"33", 0)
    os.close(fd)
    assert (d / "moved" / "sub" / "f3").read_text() == "33"
    # rename over an empty directory; not over a non-empty one
    os.mkdir(d / "empty")
    os.rename(d / "moved", d / "empty")
    assert (d / "empty" / "top").read_text() == "top"
    os.makedirs(d / "full" / "x")
    assert errno_of(os.rename, d / "empty", d / "full") == errno.ENOTEMPTY
    assert errno_of(os.rename, d / "b", d / "full") == errno.EISDIR
    assert errno_of(os.rename, d / "full", d / "b") == errno.ENOTDIR
    os.mkdir(lake.mnt / "bk2")
    assert errno_of(os.rename, d / "b", lake.mnt / "bk2" / "b") == errno.EXDEV
    lake.stop()
    out = local(lake.data, "ls", "bk1", "--recursive").stdout
    assert "empty/sub/f19" in out and "moved/" not in out and "tree/" not in out


def test_copy_file_range_shares_chunks(lake):
    d = lake.mnt / "bk1"
    payload = os.urandom(32 * MiB + 5)
    (d / "src").write_bytes(payload)
    lake.stop()
    before = stats(lake.data)["stored"]
    lake.start()
    with open(d / "src", "rb") as fi, open(d / "dst", "wb") as fo:
        n = os.copy_file_range(fi.fileno(), fo.fileno(), len(payload) + 100)
        assert n == len(payload)
    assert hashlib.sha256((d / "dst").read_bytes()).digest() == hashlib.sha256(payload).digest()
    lake.stop()
    after = stats(lake.data)["stored"]
    assert after - before < 1 * MiB, (before, after)
    src_meta = stat_meta(lake.data, "bk1/src")
    dst_meta = stat_meta(lake.data, "bk1/dst")
    assert dst_meta["etag"] == src_meta["etag"] == hashlib.md5(payload).hexdigest()


def test_attributes_stored_like_s3fs(lake):
    p = lake.mnt / "bk1" / "attr"
    p.write_text("x")
    os.chmod(p, 0o640)
    os.chown(p, 1234, 5678)
    os.utime(p, ns=(1_600_000_000_000_000_000, 1_500_000_000_000_000_000))
    st = os.stat(p)
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_uid == 1234 and st.st_gid == 5678
    assert st.st_mtime_ns == 1_500_000_000_000_000_000
    os.mkdir(lake.mnt / "bk1" / "dd", 0o750)
    os.utime(lake.mnt / "bk1" / "dd", (1_400_000_000, 1_400_000_000))
    lake.stop()
    meta = json.loads(stat_meta(lake.data, "bk1/attr")["metadata"])
    assert meta["x-amz-meta-mode"] == str(stat.S_IFREG | 0o640)
    assert meta["x-amz-meta-uid"] == "1234" and meta["x-amz-meta-gid"] == "5678"
    assert meta["x-amz-meta-mtime"] == "1500000000"
    dmeta = json.loads(stat_meta(lake.data, "bk1/dd/")["metadata"])
    assert dmeta["x-amz-meta-mode"] == str(stat.S_IFDIR | 0o750)
    assert dmeta["x-amz-meta-mtime"] == "1400000000"


def test_defaults_for_objects_without_attributes(tmp_path):
    data = tmp_path / "data"
    local_init(data)
    local(data, "bucket", "create", "plain")
    src = tmp_path / "v"
    src.write_text("12345")
    local(data, "put", "plain/dir/obj", str(src))
    lm = stat_meta(data, "plain/dir/obj")["last-modified"]
    m = Mount(data, tmp_path / "mnt").start()
    try:
        st = os.stat(m.mnt / "plain" / "dir" / "obj")
        assert stat.S_IMODE(st.st_mode) == 0o644 and stat.S_ISREG(st.st_mode)
        assert st.st_uid == os.getuid() and st.st_gid == os.getgid()
        assert st.st_size == 5
        assert time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.st_mtime)) == lm
        dst = os.stat(m.mnt / "plain" / "dir")
        assert stat.S_ISDIR(dst.st_mode) and stat.S_IMODE(dst.st_mode) == 0o755
    finally:
        m.stop()


def test_symlinks_and_xattrs(lake):
    d = lake.mnt / "bk1"
    (d / "target").write_text("T")
    os.symlink("target", d / "ln")
    os.symlink("/somewhere/else", d / "abs")
    assert os.readlink(d / "ln") == "target"
    assert (d / "ln").read_text() == "T"
    assert stat.S_ISLNK(os.lstat(d / "abs").st_mode)
    assert errno_of(os.symlink, "x", d / "ln") == errno.EEXIST
    os.setxattr(d / "target", "user.color", b"blue")
    os.setxattr(d / "target", "user.bin", bytes(range(256)))
    assert os.getxattr(d / "target", "user.color") == b"blue"
    assert os.getxattr(d / "target", "user.bin") == bytes(range(256))
    assert sorted(os.listxattr(d / "target")) == ["user.bin", "user.color"]
    assert errno_of(os.setxattr, d / "target", "user.color", b"x", os.XATTR_CREATE) == errno.EEXIST
    assert errno_of(os.setxattr, d / "target", "user.none", b"x",
                    os.XATTR_REPLACE) == errno.ENODATA
    assert errno_of(os.getxattr, d / "target", "user.none") == errno.ENODATA
    assert errno_of(os.setxattr, d / "target", "trusted.x", b"x") in (errno.ENOTSUP, errno.EPERM)
    os.removexattr(d / "target", "user.bin")
    assert os.listxattr(d / "target") == ["user.color"]
    lake.stop()
    meta = json.loads(stat_meta(lake.data, "bk1/ln")["metadata"])
    assert int(meta["x-amz-meta-mode"]) & 0o170000 == stat.S_IFLNK
    assert local(lake.data, "get", "bk1/ln", "-").stdout == "target"
    assert "x-amz-meta-xattr" in json.loads(stat_meta(lake.data, "bk1/target")["metadata"])


def test_statfs_reports_data_dir(lake):
    a = os.statvfs(lake.mnt)
    b = os.statvfs(lake.data)
    assert a.f_bsize == b.f_bsize and abs(a.f_blocks - b.f_blocks) <= 1
    assert a.f_namemax == 255


def _as_nobody(fn):
    """Runs fn in a child process as nobody; returns the errno (0 for success)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(65534)
            os.setuid(65534)
            fn()
            os._exit(0)
        except OSError as e:
            os._exit(e.errno)
        except BaseException:
            os._exit(250)
    _, status = os.waitpid(pid, 0)
    return os.WEXITSTATUS(status)


def test_permissions(tmp_path):
    # nobody must reach the mountpoint: use a world-traversable directory
    base = tempfile.mkdtemp(prefix="seglake-perm-", dir="/tmp")
    os.chmod(base, 0o755)
    data = os.path.join(base, "data")
    mnt = Path(base) / "mnt"
    local_init(data)
    try:
        _permissions(data, mnt)
    finally:
        force_unmount(mnt)
        shutil.rmtree(base, ignore_errors=True)


def _permissions(data, mnt):
    m = Mount(data, mnt).start()
    try:
        os.mkdir(mnt / "perm")
        (mnt / "perm" / "pub").write_text("p")
        # allow_other is off: another user cannot even look
        assert _as_nobody(lambda: os.stat(mnt / "perm" / "pub")) == errno.EACCES
    finally:
        m.stop()
    os.chmod(data, 0o755)  # the mount root follows the data dir's permissions
    m = Mount(data, mnt, ["--allow-other"]).start()
    try:
        (mnt / "perm" / "secret").write_text("s")
        os.chmod(mnt / "perm" / "secret", 0o600)
        os.chmod(mnt / "perm" / "pub", 0o644)
        assert _as_nobody(lambda: open(mnt / "perm" / "pub").read()) == 0
        assert _as_nobody(lambda: open(mnt / "perm" / "secret").read()) == errno.EACCES
        assert _as_nobody(lambda: open(mnt / "perm" / "pub", "a").write("x")) == errno.EACCES
        assert _as_nobody(lambda: os.mkdir(mnt / "perm" / "nope")) == errno.EACCES
    finally:
        m.stop()
    os.chmod(data, 0o700)
    m = Mount(data, mnt, ["--allow-other"]).start()
    try:
        assert _as_nobody(lambda: open(mnt / "perm" / "pub").read()) == errno.EACCES
    finally:
        m.stop()


def test_readdir_streams_large_directory(tmp_path):
    """A 12,000-entry directory lists completely with no duplicates, in a time
    that grows linearly (the listing is paged by name, not re-scanned)."""
    data = tmp_path / "data"
    local_init(data)
    m = Mount(data, tmp_path / "mnt").start()
    try:
        d = m.mnt / "bk1"
        os.mkdir(d)
        os.mkdir(d / "big")
        n = 12000
        t0 = time.time()
        for i in range(n):
            os.close(os.open(d / "big" / ("f%06d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
        t_create = time.time() - t0
        t0 = time.time()
        names = os.listdir(d / "big")
        t_list = time.time() - t0
        assert len(names) == n and len(set(names)) == n
        t0 = time.time()
        small = os.listdir(d)
        assert small == ["big"]
        assert t_list < 10, (t_create, t_list)
    finally:
        m.stop()


def test_unmount_fusermount_and_sigterm_exit_cleanly(tmp_path):
    data = tmp_path / "data"
    local_init(data)
    m = Mount(data, tmp_path / "mnt").start()
    try:
        os.mkdir(m.mnt / "bk1")
        (m.mnt / "bk1" / "f").write_text("kept")
        subprocess.run(["fusermount3", "-u", str(m.mnt)], check=True)
        assert m.proc.wait(timeout=20) == 0
    finally:
        m.stop()
    m = Mount(data, tmp_path / "mnt").start()
    rc = None
    try:
        assert (m.mnt / "bk1" / "f").read_text() == "kept"
        rc = m.stop()  # SIGTERM
    finally:
        m.stop()
    assert rc == 0
