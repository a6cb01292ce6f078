"""test_fs_create.py - a file created through the mount is committed once, on
close (or fsync/flush), with its content: no empty version first. Until then
the mount alone knows the name, and the operations that need it in the core
(listing its directory, rmdir, rename) store it as an empty object first.
Checked through the mount (POSIX behaviour, errnos) and through S3 (what
exists, how many versions)."""
import errno
import os

import pytest

from fsutil import serve_mounted


@pytest.fixture
def both(tmp_path):
    yield from serve_mounted(tmp_path, "crt", stop_timeout=30)


def versions(s3, bucket, key):
    r = s3.list_object_versions(Bucket=bucket, Prefix=key)
    return [v for v in r.get("Versions", []) if v["Key"] == key] + \
        [d for d in r.get("DeleteMarkers", []) if d["Key"] == key]


def exists_s3(s3, bucket, key):
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except s3.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] in ("404", "NoSuchKey")
        return False


def test_new_file_is_one_version(both):
    srv, s3, mnt = both
    s3.put_bucket_versioning(Bucket="crt", VersioningConfiguration={"Status": "Enabled"})
    for i in range(3):
        with open(mnt / "crt" / ("f%d" % i), "wb") as f:
            f.write(b"content %d" % i)
    (mnt / "crt" / "empty").touch()
    for i in range(3):
        vs = versions(s3, "crt", "f%d" % i)
        assert len(vs) == 1, vs
        assert s3.get_object(Bucket="crt", Key="f%d" % i)["Body"].read() == b"content %d" % i
    vs = versions(s3, "crt", "empty")
    assert len(vs) == 1 and vs[0]["Size"] == 0, vs


def test_open_new_file_is_visible_in_the_mount_only(both):
    srv, s3, mnt = both
    p = mnt / "crt" / "a"
    f = open(p, "wb")
    try:
        assert p.exists() and p.stat().st_size == 0
        with pytest.raises(FileExistsError):
            os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        f.write(b"hello")
        f.flush()  # a write(2); the commit is on close
        assert p.stat().st_size == 5
        assert not exists_s3(s3, "crt", "a")
        # a second open of the same file shares its buffered content
        with open(p, "rb") as g:
            assert g.read() == b"hello"
    finally:
        f.close()
    assert s3.get_object(Bucket="crt", Key="a")["Body"].read() == b"hello"


def test_fsync_commits_a_new_file(both):
    srv, s3, mnt = both
    p = mnt / "crt" / "synced"
    with open(p, "wb") as f:
        f.write(b"durable")
        f.flush()
        os.fsync(f.fileno())
        assert s3.get_object(Bucket="crt", Key="synced")["Body"].read() == b"durable"
        f.write(b" more")
    assert s3.get_object(Bucket="crt", Key="synced")["Body"].read() == b"durable more"


def test_listing_shows_open_new_files(both):
    srv, s3, mnt = both
    d = mnt / "crt" / "dir"
    d.mkdir()
    f = open(d / "open.txt", "wb")
    try:
        f.write(b"partial")
        assert sorted(os.listdir(d)) == ["open.txt"]
        assert "dir" in os.listdir(mnt / "crt")
        # listed, so S3 sees the name too (as an empty object until close)
        assert s3.head_object(Bucket="crt", Key="dir/open.txt")["ContentLength"] == 0
    finally:
        f.close()
    assert s3.get_object(Bucket="crt", Key="dir/open.txt")["Body"].read() == b"partial"


def test_unlink_open_new_file_leaves_no_trace(both):
    srv, s3, mnt = both
    s3.put_bucket_versioning(Bucket="crt", VersioningConfiguration={"Status": "Enabled"})
    p = mnt / "crt" / "tmpfile"
    with open(p, "w+b") as f:
        os.unlink(p)
        assert not p.exists()
        f.write(b"scratch")
        f.seek(0)
        assert f.read() == b"scratch"
    assert not p.exists()
    assert versions(s3, "crt", "tmpfile") == []
    with pytest.raises(FileNotFoundError):
        os.unlink(p)


def test_rename_open_new_file(both):
    srv, s3, mnt = both
    src, dst = mnt / "crt" / "r1", mnt / "crt" / "r2"
    with open(src, "wb") as f:
        f.write(b"xyz")
        os.rename(src, dst)
        assert not src.exists() and dst.exists()
    assert dst.read_bytes() == b"xyz"
    assert not exists_s3(s3, "crt", "r1")
    assert s3.get_object(Bucket="crt", Key="r2")["Body"].read() == b"xyz"


def test_rename_directory_holding_open_new_file(both):
    srv, s3, mnt = both
    (mnt / "crt" / "d1").mkdir()
    with open(mnt / "crt" / "d1" / "x", "wb") as f:
        f.write(b"moved with its directory")
        os.rename(mnt / "crt" / "d1", mnt / "crt" / "d2")
    assert (mnt / "crt" / "d2" / "x").read_bytes() == b"moved with its directory"
    assert not (mnt / "crt" / "d1").exists()
    got = s3.get_object(Bucket="crt", Key="d2/x")["Body"].read()
    assert got == b"moved with its directory"
    assert not exists_s3(s3, "crt", "d1/x")


def test_rmdir_with_open_new_file_is_enotempty(both):
    srv, s3, mnt = both
    d = mnt / "crt" / "sub"
    d.mkdir()
    with open(d / "k", "wb"):
        with pytest.raises(OSError) as e:
            os.rmdir(d)
        assert e.value.errno == errno.ENOTEMPTY
    with pytest.raises(OSError) as e:
        os.rmdir(d)
    assert e.value.errno == errno.ENOTEMPTY
    os.unlink(d / "k")
    os.rmdir(d)


def test_create_over_s3_object_and_directory(both):
    srv, s3, mnt = both
    s3.put_object(Bucket="crt", Key="old", Body=b"from s3")
    s3.put_object(Bucket="crt", Key="adir/inside", Body=b"x")
    with pytest.raises(FileExistsError):
        os.open(mnt / "crt" / "old", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    with pytest.raises(FileExistsError):
        os.open(mnt / "crt" / "adir", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    # O_CREAT without O_EXCL opens the existing file
    fd = os.open(mnt / "crt" / "old", os.O_CREAT | os.O_RDWR)
    try:
        assert os.read(fd, 100) == b"from s3"
    finally:
        os.close(fd)


def test_s3_put_while_created_file_is_open_last_close_wins(both):
    srv, s3, mnt = both
    p = mnt / "crt" / "race"
    with open(p, "wb") as f:
        f.write(b"mount")
        s3.put_object(Bucket="crt", Key="race", Body=b"s3")
    # the close committed after the PUT: last writer wins
    assert s3.get_object(Bucket="crt", Key="race")["Body"].read() == b"mount"


def test_tar_extract_is_one_version_per_file(both, tmp_path):
    """tar sets times, owner and mode through the open file before closing
    it: all of that is committed with the content, once."""
    import subprocess
    import tarfile
    srv, s3, mnt = both
    s3.put_bucket_versioning(Bucket="crt", VersioningConfiguration={"Status": "Enabled"})
    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        p = src / ("f%d" % i)
        p.write_bytes(b"data %d\n" % i)
        os.chmod(p, 0o640 + i)
        os.utime(p, (1600000000 + i, 1600000000 + i))
    arc = tmp_path / "a.tar"
    with tarfile.open(arc, "w") as t:
        t.add(src, arcname="t")
    subprocess.run(["tar", "xf", str(arc), "-C", str(mnt / "crt")], check=True)
    for i in range(5):
        key = "t/f%d" % i
        vs = versions(s3, "crt", key)
        assert len(vs) == 1, (key, vs)
        st = os.stat(mnt / "crt" / key)
        assert st.st_mode & 0o7777 == 0o640 + i
        assert int(st.st_mtime) == 1600000000 + i
        h = s3.head_object(Bucket="crt", Key=key)["Metadata"]
        assert int(h["mode"]) & 0o7777 == 0o640 + i, h
        assert int(float(h["mtime"])) == 1600000000 + i, h


def test_fsync_of_directory_stores_open_new_files(both):
    srv, s3, mnt = both
    d = mnt / "crt" / "fsd"
    d.mkdir()
    f = open(d / "n", "wb")
    try:
        f.write(b"not yet")
        assert not exists_s3(s3, "crt", "fsd/n")
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)  # the name is made durable: stored as an empty object
        finally:
            os.close(dfd)
        assert s3.head_object(Bucket="crt", Key="fsd/n")["ContentLength"] == 0
    finally:
        f.close()
    assert s3.get_object(Bucket="crt", Key="fsd/n")["Body"].read() == b"not yet"


def test_small_buffers_grow_with_the_file(both):
    """Dirty buffers start small and grow with the file (fsync between
    appends, truncate up, writes into the grown part): content and the plain
    MD5 ETag stay right through the mount and S3."""
    import hashlib
    srv, s3, mnt = both
    p = mnt / "crt" / "grow"
    want = bytearray()
    fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        for i in range(40):  # 10 bytes, fsync, then 100 KiB appends past 4 MiB
            piece = (b"%02d" % i) * (5 if i == 0 else 51200)
            os.write(fd, piece)
            want += piece
            if i in (0, 7):
                os.fsync(fd)
    finally:
        os.close(fd)
    assert p.read_bytes() == bytes(want)
    got = s3.get_object(Bucket="crt", Key="grow")
    assert got["Body"].read() == bytes(want)
    assert got["ETag"].strip('"') == hashlib.md5(want).hexdigest()

    q = mnt / "crt" / "holes"
    fd = os.open(q, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.write(fd, b"head")
        os.ftruncate(fd, 3 * 1024 * 1024 + 7)  # grows the small buffer with zeros
        os.pwrite(fd, b"Z" * 10, 700000)
        os.pwrite(fd, b"tail", 3 * 1024 * 1024 + 3)
        os.ftruncate(fd, 2 * 1024 * 1024)  # and shrinks it again
        os.pwrite(fd, b"end", 2 * 1024 * 1024 + 100)  # a hole inside the chunk
    finally:
        os.close(fd)
    exp = bytearray(2 * 1024 * 1024 + 103)
    exp[0:4] = b"head"
    exp[700000:700010] = b"Z" * 10
    exp[2 * 1024 * 1024 + 100:] = b"end"
    assert q.read_bytes() == bytes(exp)
    assert s3.get_object(Bucket="crt", Key="holes")["Body"].read() == bytes(exp)
