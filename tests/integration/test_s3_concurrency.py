"""Load tests against `seglake serve`: 32 concurrent clients mixing
PUT/GET/LIST/DELETE over a few overlapping keys for a bounded time (every
GET must return one complete version that some client PUT; the only
expected error is NoSuchKey), and the memory bound of streaming: a 1 GiB
PUT and GET through one connection must not raise the daemon's peak RSS
(VmHWM) by more than a few chunks. 1 GiB keeps CI time down; 5 GiB behaves
the same by construction (bodies go piecewise from MHD's buffers into a
core writer holding one 4 MiB chunk, and out of a core reader 256 KiB at a
time), so the peak does not depend on the object size."""

import hashlib
import http.client
import random
import threading
import time

from botocore.exceptions import ClientError

from conftest import sign_headers, start_server, strip_private

KEYS = ["shared/k%d" % i for i in range(6)] + ["other/x", "other/y"]
DURATION = 15


def make_body(rng, tid, seq):
    size = rng.choice([0, 100, 4096, 70_000, 1_000_000, 5_000_000])
    head = b"T%02d-S%06d|" % (tid, seq)
    return head + rng.randbytes(max(0, size - len(head)))


def test_32_concurrent_clients(s3server):
    s3 = s3server.client()
    bucket = "conc-" + str(int(time.time() * 1000))
    s3.create_bucket(Bucket=bucket)
    put_hashes = {k: set() for k in KEYS}
    lock = threading.Lock()
    failures = []
    counts = {"put": 0, "get": 0, "list": 0, "delete": 0, "nosuchkey": 0}
    stop_at = time.time() + DURATION

    def worker(tid):
        rng = random.Random(tid)
        c = s3server.client(max_pool_connections=2)
        seq = 0
        while time.time() < stop_at and not failures:
            op = rng.random()
            key = rng.choice(KEYS)
            try:
                if op < 0.35:
                    body = make_body(rng, tid, seq)
                    seq += 1
                    with lock:
                        put_hashes[key].add(hashlib.sha256(body).digest())
                    r = c.put_object(Bucket=bucket, Key=key, Body=body)
                    if r["ETag"] != '"%s"' % hashlib.md5(body).hexdigest():
                        failures.append("bad etag for put %s" % key)
                    with lock:
                        counts["put"] += 1
                elif op < 0.70:
                    try:
                        g = c.get_object(Bucket=bucket, Key=key)
                    except ClientError as e:
                        if e.response["Error"]["Code"] != "NoSuchKey":
                            raise
                        with lock:
                            counts["nosuchkey"] += 1
                        continue
                    data = g["Body"].read()
                    if len(data) != g["ContentLength"]:
                        failures.append("short body for %s" % key)
                    h = hashlib.sha256(data).digest()
                    with lock:
                        known = h in put_hashes[key]
                        counts["get"] += 1
                    if not known:
                        failures.append("GET %s returned bytes never PUT (%d bytes, head %r)"
                                        % (key, len(data), data[:12]))
                    if g["ETag"] != '"%s"' % hashlib.md5(data).hexdigest():
                        failures.append("etag/body mismatch on %s" % key)
                elif op < 0.85:
                    r = c.list_objects_v2(Bucket=bucket, Prefix="shared/")
                    keys = [o["Key"] for o in r.get("Contents", [])]
                    if keys != sorted(keys) or any(not k.startswith("shared/") for k in keys):
                        failures.append("bad listing %r" % keys)
                    with lock:
                        counts["list"] += 1
                else:
                    c.delete_object(Bucket=bucket, Key=key)
                    with lock:
                        counts["delete"] += 1
            except Exception as e:  # anything else is a failure
                failures.append("%s on %s: %r" % (["put", "get", "list", "delete"][
                    0 if op < 0.35 else 1 if op < 0.7 else 2 if op < 0.85 else 3], key, e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=DURATION + 120)
    assert not any(t.is_alive() for t in threads), "clients hung"
    assert not failures, failures[:10]
    assert counts["put"] > 50 and counts["get"] > 50, counts
    print("concurrency counts:", counts)
    # the server is healthy and consistent afterwards
    for k in KEYS:
        try:
            data = s3.get_object(Bucket=bucket, Key=k)["Body"].read()
            assert hashlib.sha256(data).digest() in put_hashes[k]
        except ClientError as e:
            assert e.response["Error"]["Code"] == "NoSuchKey"
    from conftest import empty_bucket
    empty_bucket(s3, bucket)


def _stream_put(srv, path, total, block, seed):
    h = sign_headers("PUT", path, "", {"Content-Length": str(total)}, None, srv.access_key,
                     srv.secret_key, srv.region, "%s:%d" % (srv.host, srv.port),
                     payload_hash="UNSIGNED-PAYLOAD")
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=300)
    conn.putrequest("PUT", path, skip_host=True, skip_accept_encoding=True)
    for k, v in strip_private(h).items():
        conn.putheader(k, v)
    conn.endheaders()
    rng = random.Random(seed)
    md5 = hashlib.md5()
    sent = 0
    while sent < total:
        piece = rng.randbytes(min(block, total - sent))
        md5.update(piece)
        conn.send(piece)
        sent += len(piece)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, dict((k.lower(), v) for k, v in r.getheaders()), body, md5.hexdigest()


def test_streaming_peak_rss(tmp_path):
    srv = start_server(tmp_path)
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="rss")
        s3.put_object(Bucket="rss", Key="warm", Body=b"x" * 1000)
        s3.get_object(Bucket="rss", Key="warm")["Body"].read()
        base = srv.peak_rss_kib()
        total = 1024 * 1024 * 1024
        st, h, body, md5 = _stream_put(srv, "/rss/big", total, 1024 * 1024, 7)
        assert st == 200, body
        assert h["etag"] == '"%s"' % md5
        after_put = srv.peak_rss_kib()
        g = s3.get_object(Bucket="rss", Key="big")
        m = hashlib.md5()
        n = 0
        for piece in g["Body"].iter_chunks(1024 * 1024):
            m.update(piece)
            n += len(piece)
        assert n == total and m.hexdigest() == md5
        after_get = srv.peak_rss_kib()
        print("VmHWM KiB: start %d, after 1 GiB PUT %d, after 1 GiB GET %d" % (
            base, after_put, after_get))
        # one 4 MiB chunk buffer plus MHD's connection pool and the segment
        # writer's buffers: far below the object size
        assert after_put - base < 96 * 1024, (base, after_put)
        assert after_get - base < 96 * 1024, (base, after_get)
    finally:
        assert srv.stop() == 0
