"""Disk full under the S3 daemon and the FUSE mount.

What it covers: the data dir on a small tmpfs mounted by the test (and
unmounted in teardown, even on failure); S3 PUTs until the disk is full get
the S3 XML error InsufficientStorage (507), a FUSE write gets ENOSPC; the
daemon keeps serving reads, everything stored before reads back with the
same SHA-256, `seglake fsck` finds no problem after a restart, and writes
succeed again once space is freed. Space is freed by removing a filler file
the test placed on the same filesystem (gc reclaims only sealed segments,
and copying live chunks forward itself needs room). Not here: injected I/O
faults inside the store (tests/unit, store/io_fault.c).
"""
import errno
import hashlib
import os
import subprocess
import uuid

import pytest

from conftest import init_data_dir, seglake_bin, start_server

FS_SIZE = "40m"


def sha(b):
    return hashlib.sha256(b).hexdigest()


@pytest.fixture
def small_fs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    d = tmp_path / "smallfs"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + FS_SIZE, "tmpfs", str(d)],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        pytest.skip("cannot mount tmpfs: %s" % r.stderr)
    # space the operator can free later
    with open(d / "filler", "wb") as f:
        f.write(b"\0" * (8 << 20))
    yield d
    r = subprocess.run(["umount", str(d)], capture_output=True, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        subprocess.run(["umount", "-l", str(d)], stdin=subprocess.DEVNULL)


def unmount_fuse(mnt):
    if os.path.ismount(mnt):
        subprocess.run(["fusermount3", "-u", "-z", mnt], stdin=subprocess.DEVNULL)


def fsck_ok(data):
    r = subprocess.run([seglake_bin(), "fsck", "--data", data], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=120)
    assert r.returncode == 0 and "no problems" in r.stdout, r.stdout + r.stderr


def test_s3_put_on_full_disk(small_fs, tmp_path):
    data = init_data_dir(small_fs / "data")
    srv = start_server(tmp_path, data_dir=data, extra_args=["--quiet"])
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="full")
        sums = {}
        status = None
        for i in range(40):
            body = os.urandom(1 << 20)
            st, _, resp = srv.request("PUT", "/full/o%03d" % i, body=body)
            if st != 200:
                status = st
                break
            sums["o%03d" % i] = sha(body)
        assert status == 507, (status, resp)
        assert b"<Code>InsufficientStorage</Code>" in resp and b"disk space" in resp
        assert len(sums) >= 10
        # a multipart upload hits the same wall with the same answer
        import botocore.exceptions
        mpu = s3.create_multipart_upload(Bucket="full", Key="mp")
        with pytest.raises(botocore.exceptions.ClientError) as ei:
            for n in range(1, 6):
                s3.upload_part(Bucket="full", Key="mp", UploadId=mpu["UploadId"], PartNumber=n,
                               Body=os.urandom(5 << 20))
        assert ei.value.response["Error"]["Code"] == "InsufficientStorage", ei.value.response
        s3.abort_multipart_upload(Bucket="full", Key="mp", UploadId=mpu["UploadId"])
        # reads, listings and HEAD keep working; nothing stored is damaged
        for k, v in sums.items():
            assert sha(s3.get_object(Bucket="full", Key=k)["Body"].read()) == v, k
        listed = [o["Key"] for o in s3.list_objects_v2(Bucket="full")["Contents"]]
        assert sorted(listed) == sorted(sums)  # the failed PUT left nothing visible
        # free space: writes work again, no restart needed
        os.unlink(small_fs / "filler")
        body = os.urandom(2 << 20)
        s3.put_object(Bucket="full", Key="after", Body=body)
        sums["after"] = sha(body)
        assert sha(s3.get_object(Bucket="full", Key="after")["Body"].read()) == sums["after"]
        assert srv.stop() == 0, srv.log_tail()
        # the lake is consistent, and a restart serves the same bytes
        fsck_ok(data)
        srv = start_server(tmp_path, data_dir=data, extra_args=["--quiet"])
        s3 = srv.client()
        for k, v in sums.items():
            assert sha(s3.get_object(Bucket="full", Key=k)["Body"].read()) == v, k
    finally:
        srv.stop()


def test_fuse_write_on_full_disk(small_fs, tmp_path):
    data = init_data_dir(small_fs / "data")
    mnt = str(tmp_path / "mnt")
    os.mkdir(mnt)
    srv = start_server(tmp_path, data_dir=data, extra_args=["--quiet", "--mount", mnt])
    try:
        os.mkdir(os.path.join(mnt, "fbkt"))
        keep = os.urandom(3 << 20)
        with open(os.path.join(mnt, "fbkt", "keep.bin"), "wb") as f:
            f.write(keep)
        big = os.path.join(mnt, "fbkt", "big.bin")
        failed = None
        f = open(big, "wb")
        try:
            for _ in range(40):
                f.write(os.urandom(2 << 20))
            f.flush()
            os.fsync(f.fileno())
        except OSError as e:
            failed = e
        try:
            f.close()
        except OSError as e:
            failed = failed or e
        assert failed is not None and failed.errno == errno.ENOSPC, failed
        # reads through the mount and through S3 keep working
        with open(os.path.join(mnt, "fbkt", "keep.bin"), "rb") as f:
            assert sha(f.read()) == sha(keep)
        s3 = srv.client()
        assert sha(s3.get_object(Bucket="fbkt", Key="keep.bin")["Body"].read()) == sha(keep)
        # the failed file never became a partial object
        if os.path.exists(big):
            assert os.path.getsize(big) == 0
        # free space: a new file is written and reads back
        os.unlink(small_fs / "filler")
        again = os.urandom(2 << 20)
        p = os.path.join(mnt, "fbkt", "again-%s.bin" % uuid.uuid4().hex[:6])
        with open(p, "wb") as f:
            f.write(again)
            f.flush()
            os.fsync(f.fileno())
        with open(p, "rb") as f:
            assert sha(f.read()) == sha(again)
        assert srv.stop() == 0, srv.log_tail()
        assert not os.path.ismount(mnt)
        fsck_ok(data)
    finally:
        srv.stop()
        unmount_fuse(mnt)
