"""test_fs_spill.py - random writes into more chunks than an open file may
hold dirty in memory (16): the pages past that bound go to the file's spill
(an unlinked scratch file in DATA/fs-spill) and are folded into stored chunks
on fsync/close. Checked by content (sha256 through the mount and through S3),
by what gets stored (only touched chunks), across truncate/extend, and across
a kill -9 with spilled pages (the last closed version survives, stale spill
files are removed on start).
"""
import hashlib
import os
import random

import pytest

from fsutil import Mount, close_quietly, local_init, serve_mounted, stats

MiB = 1 << 20
CHUNK = 4 * MiB


@pytest.fixture
def both(tmp_path):
    yield from serve_mounted(tmp_path, "spill", stop_timeout=60)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def write_base(path, size, seed):
    rnd = random.Random(seed)
    data = bytearray(rnd.randbytes(size))
    with open(path, "wb") as f:
        for off in range(0, size, MiB):
            f.write(data[off:off + MiB])
    return data


def random_writes(fd, ref, n, seed, chunks):
    """n writes into every one of `chunks` chunks (more than the dirty bound):
    page-aligned 4 KiB ones and unaligned ones of 1 B .. 20 KiB, some across a
    chunk boundary; ref mirrors them."""
    rnd = random.Random(seed)
    for k in range(n):
        c = k % chunks
        if k % 3 == 0:
            off = c * CHUNK + rnd.randrange(CHUNK // 4096) * 4096
            ln = 4096
        elif k % 3 == 1:
            off = c * CHUNK + rnd.randrange(CHUNK)
            ln = rnd.randrange(1, 20000)
        else:
            off = (c + 1) * CHUNK - rnd.randrange(1, 5000)  # across the boundary
            ln = rnd.randrange(1, 10000)
        off = min(off, len(ref) - 1)
        ln = min(ln, len(ref) - off)
        b = rnd.randbytes(ln)
        assert os.pwrite(fd, b, off) == ln
        ref[off:off + ln] = b


def test_random_writes_past_the_dirty_bound(both):
    srv, s3, mnt = both
    p = mnt / "spill" / "big"
    size = 24 * CHUNK + 12345  # 25 chunks, more than the 16 kept in memory
    ref = write_base(p, size, 1)
    fd = os.open(p, os.O_RDWR)
    try:
        random_writes(fd, ref, 1500, 2, 25)
        # reads through the open file see the spilled pages
        for off in (0, 4095, CHUNK - 7, 7 * CHUNK + 100, 24 * CHUNK):
            assert os.pread(fd, 9000, off) == bytes(ref[off:off + 9000])
        with open(p, "rb") as g:  # a second reader of the same open file
            assert sha(g.read()) == sha(ref)
        os.fsync(fd)  # commit while open: S3 sees it
        r = s3.get_object(Bucket="spill", Key="big")
        assert sha(r["Body"].read()) == sha(ref)
        # more writes after the commit, then close
        random_writes(fd, ref, 600, 3, 25)
    finally:
        os.close(fd)
    assert sha(p.read_bytes()) == sha(ref)
    r = s3.get_object(Bucket="spill", Key="big")
    assert r["ContentLength"] == size
    assert sha(r["Body"].read()) == sha(ref)
    # the spill directory holds no named files
    assert os.listdir(os.path.join(srv.data_dir, "fs-spill")) == []


def test_spilled_chunk_truncate_and_extend(both):
    srv, s3, mnt = both
    p = mnt / "spill" / "trunc"
    size = 20 * CHUNK
    ref = write_base(p, size, 4)
    fd = os.open(p, os.O_RDWR)
    try:
        random_writes(fd, ref, 400, 5, 20)
        # cut inside a spilled chunk, then grow: the cut bytes read as zeros
        cut = 19 * CHUNK + 5000
        os.ftruncate(fd, cut)
        del ref[cut:]
        os.ftruncate(fd, cut + 3 * 4096)
        ref += bytes(3 * 4096)
        assert os.pread(fd, 3 * 4096 + 100, cut - 100) == bytes(ref[cut - 100:])
        # a write past the end into a new chunk
        tail = os.urandom(5000)
        os.pwrite(fd, tail, len(ref) + CHUNK)
        ref += bytes(CHUNK) + tail
        random_writes(fd, ref, 200, 6, 20)
    finally:
        os.close(fd)
    assert sha(p.read_bytes()) == sha(ref)
    r = s3.get_object(Bucket="spill", Key="trunc")
    assert sha(r["Body"].read()) == sha(ref)


def test_random_writes_store_only_touched_chunks(tmp_path):
    data = tmp_path / "data"
    local_init(data)
    m = Mount(data, tmp_path / "mnt").start()
    try:
        os.mkdir(m.mnt / "bk1")
        p = m.mnt / "bk1" / "f"
        size = 48 * CHUNK
        write_base(p, size, 7)
        m.stop()
        before = stats(data)["segment"]  # bytes appended to segments
        m.start()
        fd = os.open(p, os.O_RDWR)
        rnd = random.Random(8)
        touched = set()
        for k in range(3000):  # 4 KiB writes into 30 of the 48 chunks
            c = k % 30
            touched.add(c)
            os.pwrite(fd, rnd.randbytes(4096), c * CHUNK + rnd.randrange(1024) * 4096)
        os.close(fd)
        m.stop()
        grown = stats(data)["segment"] - before
        # each touched chunk is stored once (not once per eviction)
        assert grown <= (len(touched) + 2) * CHUNK, (grown, len(touched))
        assert grown >= len(touched) * CHUNK, (grown, len(touched))
    finally:
        m.stop()


def test_kill9_with_spilled_pages_keeps_last_closed_version(tmp_path):
    data = tmp_path / "data"
    local_init(data)
    m = Mount(data, tmp_path / "mnt").start()
    try:
        os.mkdir(m.mnt / "bk1")
        p = m.mnt / "bk1" / "f"
        ref = write_base(p, 20 * CHUNK, 9)
        want = sha(ref)
        fd = os.open(p, os.O_RDWR)
        random_writes(fd, bytearray(ref), 800, 10, 20)
        assert os.listdir(data / "fs-spill") == []  # in use, yet unnamed
        m.proc.kill()  # SIGKILL with spilled pages, never committed
        m.proc.wait(timeout=30)
        close_quietly(fd)
    finally:
        m.stop()
    # a spill file a crash left under a name: removed on start
    stale = data / "fs-spill" / "spill.stale1"
    stale.write_bytes(b"x" * 8192)
    m = Mount(data, tmp_path / "mnt").start()
    try:
        assert not stale.exists()
        assert sha((m.mnt / "bk1" / "f").read_bytes()) == want
    finally:
        assert m.stop() == 0
