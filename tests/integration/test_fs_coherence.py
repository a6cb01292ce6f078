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

from conftest import start_server
from fsutil import force_unmount, is_mounted

MiB = 1 << 20


@pytest.fixture
def both(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    srv = start_server(tmp_path, extra_args=["--mount", str(mnt)])
    try:
        deadline = time.time() + 10
        while not is_mounted(mnt) and time.time() < deadline:
            time.sleep(0.05)
        assert is_mounted(mnt), srv.log_tail()
        s3 = srv.client()
        s3.create_bucket(Bucket="coh")
        yield srv, s3, mnt
    finally:
        rc = srv.stop(timeout=30)
        force_unmount(mnt)
    assert rc == 0, srv.log_tail()


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
