"""test_fs_bigdir.py - a directory of 100,000 entries (25,000 in the
sanitized pass) through the mount (`seglake serve --mount`): os.scandir
returns every name exactly once and nothing else, the mount process's
resident memory grows by a bounded amount while the kernel reads the whole
directory, and lookups of names from the listing work. The entries are
empty objects PUT through S3 by the s3bench load generator (bench/s3bench.c:
keep-alive connections, many in flight), the fastest way in that takes the
ordinary durable write path.

Timing is printed (per 10,000 entries, to show the listing stays linear) but
never asserted.
"""
import json
import os
import subprocess
import time

import pytest

import seglake_paths
from conftest import start_server
from fsutil import force_unmount, is_mounted

WRITERS = 20
# 20 x 5,000 = 100,000 entries. Under the sanitizers (the suite's second
# pass, which looks for memory errors, not for scale) 20 x 1,250 = 25,000:
# the same code paths, and 100,000 cost that pass 104 s of its 7 minutes.
PER_WRITER = 1250 if os.environ.get("SEGLAKE_SANITIZED") else 5000
RSS_GROWTH_LIMIT_KIB = 64 * 1024


def s3bench_bin():
    b = os.path.join(seglake_paths.build_dir(), "bench", "s3bench")
    if not os.access(b, os.X_OK):
        pytest.fail("s3bench not found at %s (it is built by default)" % b, pytrace=False)
    return b


@pytest.fixture
def both(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = None
    if os.environ.get("SEGLAKE_SANITIZED"):
        # ASan keeps freed blocks in a quarantine (256 MiB by default), which
        # would count as growth; a small one keeps the bound meaningful
        opts = os.environ.get("ASAN_OPTIONS", "")
        env = {"ASAN_OPTIONS": (opts + ":" if opts else "") + "quarantine_size_mb=4"}
    srv = start_server(tmp_path, extra_args=["--mount", str(mnt)], env=env)
    try:
        deadline = time.time() + 10
        while not is_mounted(mnt) and time.time() < deadline:
            time.sleep(0.05)
        assert is_mounted(mnt), srv.log_tail()
        yield srv, mnt
    finally:
        rc = srv.stop(timeout=60)
        force_unmount(mnt)
    assert rc == 0, srv.log_tail()


def status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


def test_hundred_thousand_entries(both):
    srv, mnt = both
    s3 = srv.client()
    s3.create_bucket(Bucket="big")
    # neighbours on both sides of the directory's key range, and keys inside it
    # that are no names (shown: only "sub")
    for k in ("dip/y", "dir.txt", "dir0", "dis/x", "dir/../odd", "dir//empty",
              "dir/sub/inner.txt"):
        s3.put_object(Bucket="big", Key=k, Body=b"n")
    t0 = time.time()
    r = subprocess.run([s3bench_bin(), "--op", "put", "--endpoint", srv.endpoint,
                        "--bucket", "big", "--access-key", srv.access_key,
                        "--secret-key", srv.secret_key, "--region", srv.region,
                        "--prefix", "dir/f", "--size", "0", "--concurrency", str(WRITERS),
                        "--seconds", "0", "--min-ops", str(PER_WRITER)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["errors"] == 0 and res["ops"] == WRITERS * PER_WRITER, res
    print("\npopulated %d entries in %.1f s" % (res["ops"], time.time() - t0))
    # s3bench names keys <prefix>-t<thread>-<seq>
    want = {"f-t%d-%d" % (t, s) for t in range(WRITERS) for s in range(PER_WRITER)}
    want |= {"sub"}

    d = mnt / "big" / "dir"
    assert d.is_dir()
    pid = srv.pid
    base = status_kib(pid, "VmRSS")
    with open("/proc/%d/clear_refs" % pid, "w") as f:
        f.write("5\n")  # resets VmHWM to the current RSS
    t0 = time.time()
    got, laps = [], []
    with os.scandir(d) as it:
        for e in it:
            got.append(e.name)
            if len(got) % 10000 == 0:
                laps.append(time.time() - t0)
    total = time.time() - t0
    peak = status_kib(pid, "VmHWM")
    growth = peak - base
    print("listed %d entries in %.2f s (%.0f/s); cumulative s per 10,000: %s" %
          (len(got), total, len(got) / max(total, 1e-6),
           " ".join("%.2f" % x for x in laps)))
    print("mount RSS %d KiB before, peak %d KiB during the listing (+%d KiB)" %
          (base, peak, growth))
    assert len(got) == len(set(got)), "duplicate names in the listing"
    assert set(got) == want, (sorted(set(got) - want)[:10], sorted(want - set(got))[:10])
    assert growth < RSS_GROWTH_LIMIT_KIB, growth

    # spot checks: names from the listing resolve, with the right types
    for name in ("f-t0-0", "f-t%d-%d" % (WRITERS - 1, PER_WRITER - 1), "f-t7-1234"):
        st = os.stat(d / name)
        assert st.st_size == 0 and not os.path.isdir(d / name)
    assert (d / "sub").is_dir()
    assert not (d / ("f-t0-%d" % PER_WRITER)).exists()
    # a second pass (rewinddir / a new open) sees the same directory
    assert sum(1 for _ in os.scandir(d)) == len(want)
