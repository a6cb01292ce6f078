"""Ops commands end to end: `seglake status|fsck|scrub|gc|snapshot|restore|
maintenance` against a running daemon (through the admin socket) and
directly on a data dir.

What it covers: a byte corrupted in a segment -> scrub finds it, GET fails
cleanly (never wrong bytes), fsck reports it; deleted data -> gc reclaims
disk space (du before/after) while concurrent readers and writers see no
error; snapshot + restore into a fresh dir gives identical listings and
contents; maintenance mode refuses writes with a clear error and lets reads
through; the admin socket/token are 0600. Not here: keys and policies.
"""

import json
import os
import shutil
import stat
import subprocess
import threading

import pytest
from botocore.exceptions import ClientError

from conftest import seglake_bin, start_server


def cli(data, *args, check=True, timeout=120):
    r = subprocess.run([seglake_bin()] + list(args) + ["--data", data], capture_output=True,
                       text=True, stdin=subprocess.DEVNULL, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("seglake %s failed (%d): %s %s" % (" ".join(args), r.returncode,
                                                              r.stdout, r.stderr))
    return r


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def test_admin_socket_and_status(tmp_path):
    srv = start_server(tmp_path)
    try:
        for name in ("admin.sock", "admin.token"):
            st = os.stat(os.path.join(srv.data_dir, name))
            assert stat.S_IMODE(st.st_mode) == 0o600
        s3 = srv.client()
        s3.create_bucket(Bucket="stat")
        s3.put_object(Bucket="stat", Key="a", Body=os.urandom(1000))
        st = json.loads(cli(srv.data_dir, "status", "--json").stdout)
        assert st["objects"] == 1 and st["bytes"] == 1000 and st["buckets"] == 1
        assert st["oplog_head"] >= 2 and st["maintenance"] is False and "dead_bytes" in st
        human = cli(srv.data_dir, "status").stdout
        assert "objects:" in human and "dead bytes:" in human and "peers:" in human
        # a wrong token is refused by the daemon
        tok = os.path.join(srv.data_dir, "admin.token")
        good = open(tok).read()
        with open(tok, "w") as f:
            f.write("0" * 64 + "\n")
        r = cli(srv.data_dir, "status", check=False)
        assert r.returncode != 0 and "token" in r.stderr
        with open(tok, "w") as f:
            f.write(good)
    finally:
        assert srv.stop() == 0
    # socket and token are gone after a clean stop; commands open the dir directly
    assert not os.path.exists(os.path.join(srv.data_dir, "admin.sock"))
    assert json.loads(cli(srv.data_dir, "status", "--json").stdout)["objects"] == 1


def test_corruption_scrub_get_fsck(tmp_path):
    srv = start_server(tmp_path)
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="scrub")
        good = os.urandom(300000)
        bad = os.urandom(300000)
        s3.put_object(Bucket="scrub", Key="good", Body=good)
        s3.put_object(Bucket="scrub", Key="victim", Body=bad)
        r = cli(srv.data_dir, "scrub")
        assert "0 damaged chunk" in r.stdout
        # flip one byte of the victim's data inside its segment
        segdir = os.path.join(srv.data_dir, "segments")
        needle = bad[1000:1064]
        hit = None
        for name in sorted(os.listdir(segdir)):
            p = os.path.join(segdir, name)
            data = open(p, "rb").read()
            i = data.find(needle)
            if i >= 0:
                hit = (p, i + 10)
        assert hit, "object bytes not found in any segment"
        with open(hit[0], "r+b") as f:
            f.seek(hit[1])
            b = f.read(1)
            f.seek(hit[1])
            f.write(bytes([b[0] ^ 0xFF]))
        r = cli(srv.data_dir, "scrub", check=False)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "1 damaged chunk" in r.stdout and "scrub/victim" in r.stdout
        # GET fails cleanly, never with wrong bytes
        try:
            got = s3.get_object(Bucket="scrub", Key="victim")["Body"].read()
        except ClientError as e:
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        except Exception:
            pass  # a cut connection is a clean failure too
        else:
            assert got == bad, "GET returned wrong bytes for a damaged object"
            pytest.fail("GET of a damaged object succeeded")
        assert s3.get_object(Bucket="scrub", Key="good")["Body"].read() == good
        r = cli(srv.data_dir, "fsck", "--json", check=False)
        rep = json.loads(r.stdout)
        assert r.returncode == 1 and rep["damaged_versions"] >= 1 and rep["problems"] >= 1
    finally:
        assert srv.stop() == 0


def test_gc_reclaims_space_under_load(tmp_path):
    srv = start_server(tmp_path)
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="gcdata")
        keep = {}
        for i in range(4):
            keep["keep/%d" % i] = os.urandom(512 * 1024)
            s3.put_object(Bucket="gcdata", Key="keep/%d" % i, Body=keep["keep/%d" % i])
        for i in range(24):
            s3.put_object(Bucket="gcdata", Key="junk/%d" % i, Body=os.urandom(1024 * 1024))
        # A snapshot seals the open segment (gc only rewrites sealed ones);
        # the snapshot itself is dropped so it holds no links to them.
        snap = str(tmp_path / "seal-snap")
        cli(srv.data_dir, "snapshot", snap)
        shutil.rmtree(snap)
        for i in range(24):
            s3.delete_object(Bucket="gcdata", Key="junk/%d" % i)
        plan = json.loads(cli(srv.data_dir, "gc", "plan", "--json").stdout)
        assert plan["dry_run"] and plan["reclaim_bytes"] >= 20 * 1024 * 1024
        before = du(srv.data_dir)

        errors = []
        stop = threading.Event()

        def reader():
            c = srv.client()
            while not stop.is_set():
                for k, v in keep.items():
                    try:
                        if c.get_object(Bucket="gcdata", Key=k)["Body"].read() != v:
                            errors.append("wrong bytes for %s" % k)
                    except Exception as e:
                        errors.append("read %s: %r" % (k, e))

        written = {}

        def writer():
            c = srv.client()
            n = 0
            while not stop.is_set():
                body = os.urandom(64 * 1024)
                k = "new/%d" % n
                try:
                    c.put_object(Bucket="gcdata", Key=k, Body=body)
                    written[k] = body
                except Exception as e:
                    errors.append("write %s: %r" % (k, e))
                n += 1

        threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
        for t in threads:
            t.start()
        try:
            r = cli(srv.data_dir, "gc", "run", "--json")
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        res = json.loads(r.stdout)
        assert res["deleted_segments"] >= 1 and res["reclaim_bytes"] >= 20 * 1024 * 1024
        assert not errors, errors[:5]
        after = du(srv.data_dir)
        assert before - after >= 16 * 1024 * 1024, (before, after)
        c = srv.client()
        for k, v in list(keep.items()) + list(written.items()):
            assert c.get_object(Bucket="gcdata", Key=k)["Body"].read() == v
        assert json.loads(cli(srv.data_dir, "fsck", "--json").stdout)["problems"] == 0
    finally:
        assert srv.stop() == 0


def listing(s3, bucket):
    out = {}
    for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        out[o["Key"]] = (o["Size"], o["ETag"])
    return out


def test_snapshot_and_restore(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    srv = start_server(tmp_path / "a")
    snap = str(tmp_path / "snap")
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="snap")
        bodies = {"k%d" % i: os.urandom(50000 + i) for i in range(20)}
        for k, v in bodies.items():
            s3.put_object(Bucket="snap", Key=k, Body=v)
        before = listing(s3, "snap")
        r = cli(srv.data_dir, "snapshot", snap)
        assert "snapshot: written to" in r.stdout
        # changes after the snapshot are not in it
        s3.put_object(Bucket="snap", Key="later", Body=b"x")
    finally:
        assert srv.stop() == 0
    dest = str(tmp_path / "restored")
    r = subprocess.run([seglake_bin(), "restore", snap, dest], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=120)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([seglake_bin(), "restore", snap, dest], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=120)
    assert r.returncode != 0  # never over an existing dir
    srv2 = start_server(tmp_path / "b", data_dir=dest)
    try:
        s3 = srv2.client()
        assert listing(s3, "snap") == before
        for k, v in bodies.items():
            assert s3.get_object(Bucket="snap", Key=k)["Body"].read() == v
        assert json.loads(cli(dest, "fsck", "--json").stdout)["problems"] == 0
    finally:
        assert srv2.stop() == 0


def test_maintenance_mode(tmp_path):
    srv = start_server(tmp_path)
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="maint")
        s3.put_object(Bucket="maint", Key="k", Body=b"before")
        r = cli(srv.data_dir, "maintenance", "on")
        assert "on" in r.stdout
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket="maint", Key="k2", Body=b"x")
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        msg = e.value.response["Error"].get("Message", "")
        assert "maintenance" in msg.lower(), msg
        with pytest.raises(ClientError):
            s3.delete_object(Bucket="maint", Key="k")
        assert s3.get_object(Bucket="maint", Key="k")["Body"].read() == b"before"
        assert [o["Key"] for o in s3.list_objects_v2(Bucket="maint")["Contents"]] == ["k"]
        assert json.loads(cli(srv.data_dir, "status", "--json").stdout)["maintenance"] is True
        cli(srv.data_dir, "maintenance", "off")
        s3.put_object(Bucket="maint", Key="k2", Body=b"after")
        assert s3.get_object(Bucket="maint", Key="k2")["Body"].read() == b"after"
    finally:
        assert srv.stop() == 0
    r = cli(srv.data_dir, "maintenance", "on", check=False)
    assert r.returncode != 0 and "daemon" in r.stderr


def test_bad_arguments(tmp_path):
    d = str(tmp_path / "d")
    subprocess.run([seglake_bin(), "init", d], check=True, capture_output=True)
    for args in (["gc"], ["gc", "sweep"], ["gc", "run", "--min-dead", "2"],
                 ["scrub", "--rate", "fast"], ["mpu-gc", "--older-than", "3 weeks"],
                 ["key", "frobnicate"], ["snapshot"], ["maintenance", "maybe"]):
        r = cli(d, *args, check=False)
        assert r.returncode == 2, args
        assert r.stderr
    r = cli(d, "mpu-gc", "--older-than", "1h")
    assert "aborted 0" in r.stdout
