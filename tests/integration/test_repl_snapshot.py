"""Snapshot bootstrap: a new host joins a host whose oplog was trimmed.

Host A runs with --repl-trim next to a peer B that acknowledges, so A's
oplog really is trimmed (horizon > 0) and the history form of bootstrap is
impossible. A new empty host C bootstraps from A's snapshot (GET
/v1/repl/snapshot), must then be identical to A (validate, version
listings, conflicts, metadata, CORS), keep pulling from A after the
snapshot position, and tell a host pulling from it from 0 to bootstrap.
Also: a bootstrap killed mid-way is completed by a rerun (which starts the
snapshot again, dropping what the cut run applied), a non-empty dir is
refused, and rebuild-index reproduces the bootstrapped state.
"""
import json
import os
import signal
import subprocess

import pytest

from netns import PORT, Cluster, require_root_netns, wait_for
from conftest import ACCESS_KEY, SECRET_KEY, init_data_dir, seglake_bin

pytestmark = pytest.mark.skipif(require_root_netns() is not None,
                                reason=str(require_root_netns()))


def body(h, bucket, key, **kw):
    return h.s3.get_object(Bucket=bucket, Key=key, **kw)["Body"].read()


def validate(x, *args):
    r = x.cli("repl", "validate", "--peer", x.endpoint, *args, "--chunks", check=False)
    return r.returncode, r.stdout + r.stderr


def versions(h, bucket):
    r = h.s3.list_object_versions(Bucket=bucket)
    vs = sorted((v["Key"], v["VersionId"], v["ETag"], v["Size"], v["IsLatest"])
                for v in r.get("Versions", []))
    dms = sorted((d["Key"], d["VersionId"], d["IsLatest"]) for d in r.get("DeleteMarkers", []))
    return vs, dms


def conflicts(h):
    cf = json.loads(h.cli("repl", "conflicts", "--url", h.endpoint, "--json").stdout)
    return sorted((x["bucket"], x["key"], x["vid"], x["etag"]) for x in cf["conflicts"])


def wait_trimmed(a):
    def trimmed():
        s = a.status()
        return s if s["horizon"] > 0 else None
    return wait_for(trimmed, timeout=30, interval=0.3, what="A to trim its oplog")


@pytest.fixture
def trimmed_pair(tmp_path):
    c = Cluster(tmp_path)
    try:
        a = c.add_host("a")
        b = c.add_host("b")
        c.link(a, b)
        a.start(peers=[b], extra=["--repl-trim"], mount=False)
        b.start(peers=[a], mount=False)
        yield c, a, b
    finally:
        c.close()


def fill(c, a, b):
    """A's state: every kind of row a snapshot must carry."""
    s3 = a.s3
    s3.create_bucket(Bucket="vbk")
    s3.put_bucket_versioning(Bucket="vbk", VersioningConfiguration={"Status": "Enabled"})
    for i in range(3):
        s3.put_object(Bucket="vbk", Key="doc", Body=b"version %d" % i)
    s3.put_object(Bucket="vbk", Key="gone", Body=b"about to be deleted")
    s3.delete_object(Bucket="vbk", Key="gone")                       # a delete marker
    s3.put_object(Bucket="vbk", Key="meta", Body=b"with metadata", ContentType="text/x-test",
                  Metadata={"colour": "blue", "mode": "0644"})
    mp = s3.create_multipart_upload(Bucket="vbk", Key="mpu")["UploadId"]
    p1 = os.urandom(5 * 1024 * 1024)
    p2 = os.urandom(300 * 1024)
    e1 = s3.upload_part(Bucket="vbk", Key="mpu", UploadId=mp, PartNumber=1, Body=p1)["ETag"]
    e2 = s3.upload_part(Bucket="vbk", Key="mpu", UploadId=mp, PartNumber=2, Body=p2)["ETag"]
    s3.complete_multipart_upload(Bucket="vbk", Key="mpu", UploadId=mp, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    s3.put_bucket_cors(Bucket="vbk", CORSConfiguration={"CORSRules": [{
        "AllowedMethods": ["GET"], "AllowedOrigins": ["https://example.org"]}]})
    s3.create_bucket(Bucket="ubk")
    for i in range(20):
        s3.put_object(Bucket="ubk", Key="dir/f%02d" % i, Body=b"unversioned %d" % i)
    s3.put_object(Bucket="ubk", Key="dir/f00", Body=b"overwritten")
    s3.delete_object(Bucket="ubk", Key="dir/f01")                    # a tombstone
    # a conflict version: concurrent writes on A and B while the link is cut
    s3.create_bucket(Bucket="race")
    s3.put_object(Bucket="race", Key="k", Body=b"base")
    wait_for(lambda: body(b, "race", "k") == b"base", what="base on B")
    c.cut(a, b)
    s3.put_object(Bucket="race", Key="k", Body=b"from A")
    b.s3.put_object(Bucket="race", Key="k", Body=b"from B!")
    c.heal(a, b)

    def same():
        return validate(a, "--peer", b.endpoint)[0] == 0
    wait_for(same, timeout=60, interval=0.3, what="A and B to converge")
    assert len(conflicts(a)) == 1, conflicts(a)
    return p1 + p2


def test_new_host_bootstraps_from_trimmed_host(trimmed_pair, tmp_path):
    cl, a, b = trimmed_pair
    mpu_data = fill(cl, a, b)
    wait_trimmed(a)

    h = cl.add_host("c")
    cl.link(a, h)
    # the history is gone: catching up from the oplog is refused, clearly
    r = a.cli("repl", "pull", "--peer", a.endpoint, "--data", h.data, check=False)
    assert r.returncode == 1 and "trimmed" in r.stderr and "re-bootstrap" in r.stderr, r.stderr
    # the snapshot form works
    r = a.cli("repl", "bootstrap", "--peer", a.endpoint, "--data", h.data)
    assert "snapshot" in r.stdout, r.stdout
    rc, out = validate(a, "--data", h.data)
    assert rc == 0, out
    # a second bootstrap into the same dir is refused
    r = a.cli("repl", "bootstrap", "--peer", a.endpoint, "--data", h.data, check=False)
    assert r.returncode == 1 and "not empty" in r.stderr, r.stderr

    h.start(peers=[a], mount=False)
    for bucket in ("vbk", "ubk", "race"):
        assert versions(h, bucket) == versions(a, bucket), bucket
    assert conflicts(h) == conflicts(a)
    assert body(h, "vbk", "mpu") == mpu_data
    hd_a = a.s3.head_object(Bucket="vbk", Key="meta")
    hd_c = h.s3.head_object(Bucket="vbk", Key="meta")
    assert hd_c["Metadata"] == hd_a["Metadata"] == {"colour": "blue", "mode": "0644"}
    assert hd_c["ContentType"] == "text/x-test"
    assert h.s3.head_object(Bucket="vbk", Key="mpu", PartNumber=2)["ContentLength"] == 300 * 1024
    assert h.s3.get_bucket_cors(Bucket="vbk")["CORSRules"] == \
        a.s3.get_bucket_cors(Bucket="vbk")["CORSRules"]
    assert h.s3.get_bucket_versioning(Bucket="vbk").get("Status") == "Enabled"
    assert body(h, "race", "k") == body(a, "race", "k") == b"from B!"

    # C keeps pulling from the snapshot position: writes on A and on B reach it
    a.s3.put_object(Bucket="vbk", Key="doc", Body=b"after the snapshot")
    b.s3.put_object(Bucket="ubk", Key="from-b", Body=b"via A")
    wait_for(lambda: body(h, "vbk", "doc") == b"after the snapshot", what="new write on C")
    wait_for(lambda: body(h, "ubk", "from-b") == b"via A", what="B's write on C")
    wait_for(lambda: validate(a, "--peer", h.endpoint)[0] == 0, timeout=30, interval=0.3,
             what="A and C to converge")
    # ... and a write on C reaches A once A pulls from C: A, the snapshot's
    # source, may read C's oplog from 0 (it has everything C started with)
    a.stop()
    a.start(peers=[b, h], extra=["--repl-trim"], mount=False)
    h.s3.put_object(Bucket="vbk", Key="from-c", Body=b"written on C")
    wait_for(lambda: body(a, "vbk", "from-c") == b"written on C", what="C's write on A")

    # C has no history before the snapshot: a host pulling from it from 0 is
    # told to bootstrap instead of silently missing the snapshot's state
    st = h.status()
    assert st["horizon"] >= 1, st
    fresh = init_data_dir(str(tmp_path / "fresh"))
    r = h.cli("repl", "pull", "--peer", h.endpoint, "--data", fresh, check=False)
    assert r.returncode == 1 and "trimmed" in r.stderr, r.stderr
    # and bootstrapping from C works the same way
    h.cli("repl", "bootstrap", "--peer", h.endpoint, "--data", fresh)
    rc, out = validate(h, "--data", fresh)
    assert rc == 0, out

    # the segments describe the bootstrapped state: rebuild-index reproduces it
    h.stop()
    h.cli("rebuild-index", "--data", h.data)
    rc, out = validate(a, "--data", h.data)
    assert rc == 0, out


def test_cut_bootstrap_is_completed_by_a_rerun(trimmed_pair):
    cl, a, b = trimmed_pair
    a.s3.create_bucket(Bucket="big")
    blobs = {"blob%d" % i: os.urandom(24 * 1024 * 1024) for i in range(8)}
    for k, v in blobs.items():
        a.s3.put_object(Bucket="big", Key=k, Body=v)
    for i in range(50):
        a.s3.put_object(Bucket="big", Key="small%02d" % i, Body=b"s%d" % i)
    wait_for(lambda: validate(a, "--peer", b.endpoint)[0] == 0, timeout=60, interval=0.3,
             what="B to catch up")
    wait_trimmed(a)

    h = cl.add_host("c")
    cl.link(a, h)
    # ~190 MiB over a 100 Mbit/s link: seconds, so the kill lands mid-way
    cl.shape(a, h, "100mbit")
    env = dict(os.environ, SEGLAKE_PEER_ACCESS_KEY=ACCESS_KEY,
               SEGLAKE_PEER_SECRET_KEY=SECRET_KEY)
    url = "http://%s:%d" % (a.link_ip[h.name], PORT)
    proc = subprocess.Popen(["nsenter", "--net=/run/netns/%s" % h.ns, seglake_bin(), "repl",
                             "bootstrap", "--peer", url, "--data", h.data],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=env)
    segs = os.path.join(h.data, "segments")

    def stored():
        n = 0
        for f in os.listdir(segs):
            try:
                n += os.path.getsize(os.path.join(segs, f))
            except FileNotFoundError:
                pass
        return n
    try:
        # past the first batch (3 blobs, 72 MiB, applied before the next is
        # fetched), well before the end
        wait_for(lambda: stored() > 100 * 1024 * 1024 or proc.poll() is not None,
                 timeout=60, interval=0.02, what="bootstrap to be under way")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, proc.returncode
    cl.unshape(a, h)
    # the cut run left part of the snapshot behind: a prefix of the objects
    listed = a.cli("ls", "big", "--data", h.data, check=False).stdout.split()
    have = [k for k in blobs if k in listed]
    assert 0 < len(have) < len(blobs), listed
    # meanwhile A changes: the rerun must not keep what the cut run applied
    a.s3.delete_object(Bucket="big", Key=have[0])
    a.s3.put_object(Bucket="big", Key="small00", Body=b"changed")
    r = a.cli("repl", "bootstrap", "--peer", a.endpoint, "--data", h.data)
    assert "snapshot" in r.stdout, r.stdout
    rc, out = validate(a, "--data", h.data)
    assert rc == 0, out
    h.start(peers=[a], mount=False)
    assert versions(h, "big") == versions(a, "big")
    for k, v in blobs.items():
        if k != have[0]:
            assert body(h, "big", k) == v
    # the journal holds both runs: rebuild-index replays them to the same state
    h.stop()
    h.cli("rebuild-index", "--data", h.data)
    rc, out = validate(a, "--data", h.data)
    assert rc == 0, out


def test_serve_on_an_empty_lake_bootstraps_by_itself(trimmed_pair):
    cl, a, b = trimmed_pair
    a.s3.create_bucket(Bucket="auto")
    a.s3.put_bucket_versioning(Bucket="auto", VersioningConfiguration={"Status": "Enabled"})
    for i in range(30):
        a.s3.put_object(Bucket="auto", Key="k%02d" % (i % 10), Body=b"v%d" % i)
    a.s3.delete_object(Bucket="auto", Key="k03")
    wait_for(lambda: validate(a, "--peer", b.endpoint)[0] == 0, timeout=60, interval=0.3,
             what="B to catch up")
    wait_trimmed(a)
    d = cl.add_host("d")
    cl.link(a, d)
    d.start(peers=[a], mount=False)
    wait_for(lambda: validate(a, "--peer", d.endpoint)[0] == 0, timeout=60, interval=0.3,
             what="D to bootstrap and converge")
    assert "bootstrapping from its snapshot" in d.log_tail(), d.log_tail()
    assert versions(d, "auto") == versions(a, "auto")
    a.s3.put_object(Bucket="auto", Key="later", Body=b"after")
    wait_for(lambda: body(d, "auto", "later") == b"after", what="a later write on D")
