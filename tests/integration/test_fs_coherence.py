"""test_fs_coherence.py - the mount and the S3 daemon in one process
(`seglake serve --mount`) see the same lake: writes through the mount are
readable byte-identical through boto3 right after close (size, MD5 ETag,
Last-Modified), S3 PUTs and deletes show in the mount within 1 s (also over a
file whose pages the kernel had cached), directory renames list through S3.
"""
import datetime
import hashlib
import os
import time

import pytest

from fsutil import serve_mounted

MiB = 1 << 20


@pytest.fixture
def both(tmp_path):
    yield from serve_mounted(tmp_path, "coh", stop_timeout=30)


def wait_for(pred, timeout=1.0):
    """Polls pred until true; returns the seconds it took (None on timeout)."""
    t0 = time.time()
    while True:
        if pred():
            return time.time() - t0
        if time.time() - t0 > timeout:
            return None
        time.sleep(0.02)


def test_mount_write_reads_through_s3(both):
    srv, s3, mnt = both
    payload = os.urandom(9 * MiB + 321)
    t0 = datetime.datetime.now(datetime.timezone.utc)
    (mnt / "coh" / "dir" / "sub").mkdir(parents=True)
    with open(mnt / "coh" / "dir" / "sub" / "file.bin", "wb") as f:
        for off in range(0, len(payload), MiB):
            f.write(payload[off:off + MiB])
    r = s3.get_object(Bucket="coh", Key="dir/sub/file.bin")
    assert r["Body"].read() == payload
    assert r["ContentLength"] == len(payload)
    assert r["ETag"].strip('"') == hashlib.md5(payload).hexdigest()
    assert abs((r["LastModified"] - t0).total_seconds()) < 5
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="coh")["Contents"]]
    assert "dir/sub/file.bin" in keys and "dir/" in keys  # mkdir markers are S3-visible


def test_s3_put_and_overwrite_show_in_mount(both):
    srv, s3, mnt = both
    p = mnt / "coh" / "new.txt"
    assert not p.exists()  # the kernel now holds a negative entry
    s3.put_object(Bucket="coh", Key="new.txt", Body=b"from s3")
    assert wait_for(lambda: p.exists() and p.read_bytes() == b"from s3") is not None
    # overwrite a file whose pages the kernel has cached
    assert p.read_bytes() == b"from s3"
    s3.put_object(Bucket="coh", Key="new.txt", Body=b"second version, longer")
    assert wait_for(lambda: p.read_bytes() == b"second version, longer") is not None
    # a new key in a new directory
    s3.put_object(Bucket="coh", Key="x/y/z.txt", Body=b"deep")
    assert wait_for(lambda: (mnt / "coh" / "x" / "y" / "z.txt").exists()) is not None
    assert (mnt / "coh" / "x" / "y" / "z.txt").read_bytes() == b"deep"


def test_deletes_both_ways(both):
    srv, s3, mnt = both
    s3.put_object(Bucket="coh", Key="a.txt", Body=b"a")
    assert wait_for(lambda: (mnt / "coh" / "a.txt").exists()) is not None
    s3.delete_object(Bucket="coh", Key="a.txt")
    assert wait_for(lambda: not (mnt / "coh" / "a.txt").exists()) is not None
    (mnt / "coh" / "b.txt").write_bytes(b"b")
    assert s3.get_object(Bucket="coh", Key="b.txt")["Body"].read() == b"b"
    os.unlink(mnt / "coh" / "b.txt")
    assert "Contents" not in s3.list_objects_v2(Bucket="coh", Prefix="b.txt")


def test_directory_rename_lists_through_s3(both):
    srv, s3, mnt = both
    d = mnt / "coh" / "proj"
    (d / "src").mkdir(parents=True)
    for i in range(25):
        (d / "src" / ("m%02d.c" % i)).write_text("int x%d;\n" % i)
    os.rename(d, mnt / "coh" / "renamed")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="coh")["Contents"])
    assert not any(k.startswith("proj/") for k in keys), keys
    assert sum(k.startswith("renamed/src/m") for k in keys) == 25
    body = s3.get_object(Bucket="coh", Key="renamed/src/m07.c")["Body"].read()
    assert body == b"int x7;\n"


def test_s3_metadata_changes_show_in_mount(both):
    srv, s3, mnt = both
    s3.put_object(Bucket="coh", Key="m.txt", Body=b"m",
                  Metadata={"mode": str(0o100600), "uid": "4242", "gid": "4343",
                            "mtime": "1234567890"})
    p = mnt / "coh" / "m.txt"
    assert wait_for(lambda: p.exists()) is not None
    st = os.stat(p)
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid, int(st.st_mtime)) == \
        (0o600, 4242, 4343, 1234567890)


def test_negative_lookups_then_s3_changes_show(both):
    """Names the kernel holds as absent (negative dentries) appear within 1 s
    once S3 creates them: a file, a file in a new directory, a copy, and a
    whole new bucket at the mount root."""
    srv, s3, mnt = both
    b = mnt / "coh"
    for p in (b / "neg.txt", b / "newdir", b / "newdir" / "f.txt", b / "copy.txt",
              mnt / "newbkt"):
        assert not p.exists()
    s3.put_object(Bucket="coh", Key="neg.txt", Body=b"n1")
    assert wait_for(lambda: (b / "neg.txt").exists()) is not None
    assert (b / "neg.txt").read_bytes() == b"n1"
    s3.put_object(Bucket="coh", Key="newdir/f.txt", Body=b"nested")
    assert wait_for(lambda: (b / "newdir" / "f.txt").exists()) is not None
    assert (b / "newdir").is_dir()
    assert os.listdir(b / "newdir") == ["f.txt"]
    s3.copy_object(Bucket="coh", Key="copy.txt", CopySource={"Bucket": "coh", "Key": "neg.txt"})
    assert wait_for(lambda: (b / "copy.txt").exists()) is not None
    assert (b / "copy.txt").read_bytes() == b"n1"
    s3.create_bucket(Bucket="newbkt")
    assert wait_for(lambda: (mnt / "newbkt").is_dir()) is not None
    s3.delete_bucket(Bucket="newbkt")
    assert wait_for(lambda: not (mnt / "newbkt").exists()) is not None


def test_s3_change_right_after_mount_write_shows(both):
    """An S3 overwrite or delete of a key the mount itself just wrote is not
    mistaken for the echo of the mount's own change."""
    srv, s3, mnt = both
    p = mnt / "coh" / "mine.txt"
    p.write_bytes(b"from the mount")
    assert p.read_bytes() == b"from the mount"
    s3.put_object(Bucket="coh", Key="mine.txt", Body=b"from s3, right after")
    assert wait_for(lambda: p.read_bytes() == b"from s3, right after") is not None
    q = mnt / "coh" / "mine2.txt"
    q.write_bytes(b"x")
    assert q.stat().st_size == 1
    s3.delete_object(Bucket="coh", Key="mine2.txt")
    assert wait_for(lambda: not q.exists()) is not None


def test_listing_with_attributes(both):
    """scandir + stat (served from readdirplus where the kernel uses it) shows
    the same attributes as a plain stat: S3 metadata, mount-written files,
    a file still open for writing, directories and symlinks."""
    srv, s3, mnt = both
    s3.put_object(Bucket="coh", Key="la/a.txt", Body=b"12345",
                  Metadata={"mode": str(0o100640), "uid": "4242", "gid": "4343",
                            "mtime": "1234567890"})
    s3.put_object(Bucket="coh", Key="la/sub/x", Body=b"x")
    d = mnt / "coh" / "la"
    assert wait_for(lambda: (d / "a.txt").exists()) is not None
    (d / "b.bin").write_bytes(b"abc")
    os.symlink("a.txt", d / "ln")
    f = open(d / "c.bin", "wb")
    try:
        f.write(b"1234567")
        f.flush()
        subprocess_drop_caches()
        seen = {}
        with os.scandir(d) as it:
            for e in it:
                st = e.stat(follow_symlinks=False)
                seen[e.name] = (st.st_mode, st.st_size, st.st_uid, st.st_gid, int(st.st_mtime))
        assert set(seen) == {"a.txt", "sub", "b.bin", "ln", "c.bin"}
        assert seen["a.txt"] == (0o100640, 5, 4242, 4343, 1234567890)
        assert seen["b.bin"][:2] == (0o100000 | (seen["b.bin"][0] & 0o7777), 3)
        assert seen["c.bin"][1] == 7  # buffered, not yet committed
        assert seen["sub"][0] & 0o170000 == 0o040000
        assert seen["ln"][0] & 0o170000 == 0o120000
        for name, want in seen.items():
            st = os.stat(d / name, follow_symlinks=False)
            assert (st.st_mode, st.st_size, st.st_uid, st.st_gid, int(st.st_mtime)) == want
    finally:
        f.close()
    assert os.stat(d / "c.bin").st_size == 7


def subprocess_drop_caches():
    """Makes the kernel forget cached names so the listing fills them (root only)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("2\n")
    except OSError:
        pass
