"""Robustness of the S3 listener against hostile or careless HTTP clients.

What it covers, against the real daemon on loopback: slowloris (many
connections trickling header bytes) while a normal client is served; idle
connections closed after --idle-timeout; oversize header sections, request
targets and bodies answered with 4xx (S3 XML where the daemon answers,
MHD's 431 beyond its memory pool); 10,000 concurrent idle connections capped
by --max-connections without a crash, then normal service and exit 0 on
SIGTERM; a bounded flood of tiny requests answered with 200 (or 503 SlowDown)
only. Not here: TLS (test_tls.py), disk full (test_robust_diskfull.py),
hostile keys (test_robust_keys.py).
"""
import resource
import socket
import struct
import threading
import time

import pytest

from conftest import sign_headers, start_server


def xml_code(body):
    b = body.decode(errors="replace")
    assert b.startswith("<?xml"), b[:200]
    return b.split("<Code>", 1)[1].split("</Code>", 1)[0]


def raw_request(port, data, timeout=10):
    """Sends raw bytes, returns (status, body bytes) of the first answer."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except OSError:
            pass  # the server may answer and close before reading everything
        out = b""
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            out += b
            head, sep, rest = out.partition(b"\r\n\r\n")
            if sep:
                cl = [l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if cl and len(rest) >= int(cl[0].split(b":")[1]):
                    break
        head, _, rest = out.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.") else None
        return status, rest
    finally:
        s.close()


def rst_close(s):
    """Closes with RST: no TIME_WAIT left on the loopback port range."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


@pytest.fixture
def srv(tmp_path):
    s = start_server(tmp_path, extra_args=["--quiet", "--max-object-size", "1M",
                                           "--idle-timeout", "3"])
    s.client().create_bucket(Bucket="robust")
    yield s
    s.stop()


def test_slowloris_does_not_stop_other_clients(srv):
    s3 = srv.client()
    s3.put_object(Bucket="robust", Key="k", Body=b"v")
    header = ("GET /robust/k HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Slow: %s\r\n" %
              (srv.port, "z" * 64)).encode()
    threads_before = srv.status("Threads")
    conns = []
    for _ in range(200):
        c = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        conns.append(c)
    stop = threading.Event()

    def trickle():
        i = 0
        while not stop.is_set() and i < len(header):
            for c in conns:
                try:
                    c.send(header[i:i + 1])
                except OSError:
                    pass
            i += 1
            time.sleep(0.05)
    t = threading.Thread(target=trickle)
    t.start()
    try:
        # the trickle lasts ~len(header) * 50 ms; keep a client busy all along
        worst, served, peak = 0.0, 0, 0
        while t.is_alive():
            t0 = time.time()
            assert s3.get_object(Bucket="robust", Key="k")["Body"].read() == b"v"
            worst = max(worst, time.time() - t0)
            served += 1
            peak = max(peak, srv.status("Threads") - threads_before)
            time.sleep(0.02)
        assert peak >= 150, "the slow connections were not all accepted (%d threads)" % peak
        assert served >= 50 and worst < 2.0, (served, worst)
    finally:
        stop.set()
        t.join()
        for c in conns:
            rst_close(c)
    assert srv.alive()


def test_idle_connection_closed_after_idle_timeout(srv):
    c = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        c.sendall(b"GET /robust HTTP/1.1\r\nHost: x\r\n")  # never finishes the headers
        t0 = time.time()
        try:
            data = c.recv(1024)
        except ConnectionResetError:
            data = b""
        took = time.time() - t0
        assert data == b"" or data.startswith(b"HTTP/1.1 4"), data
        assert 2.0 <= took <= 8.0, "closed after %.1fs with --idle-timeout 3" % took
    finally:
        c.close()


def test_oversize_headers_urls_and_bodies_get_4xx(srv):
    # header section over --max-header-bytes (16 KiB): S3 XML 400
    st, _, body = srv.request("GET", "/robust", headers={"x-big": "a" * 20000})
    assert st == 400 and xml_code(body) == "RequestHeaderSectionTooLarge"
    # very many header lines: past MHD's per-connection pool it answers 431
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(5000))
    st, body = raw_request(srv.port, b"GET /robust HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert st in (400, 431), (st, body[:200])
    # request target over --max-url-bytes (8 KiB): S3 XML 400
    st, _, body = srv.request("GET", "/robust/" + "k" * 9000)
    assert st == 400 and xml_code(body) == "InvalidURI"
    st, body = raw_request(srv.port, b"GET /robust/" + b"k" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert st in (400, 414, 431), (st, body[:200])
    # body over --max-object-size (1M here): refused from Content-Length
    big = b"x" * (2 << 20)
    h = sign_headers("PUT", "/robust/big", "", {"Content-Length": str(len(big))}, big,
                     srv.access_key, srv.secret_key, srv.region, "127.0.0.1:%d" % srv.port)
    head = "PUT /robust/big HTTP/1.1\r\n" + "".join("%s: %s\r\n" % kv for kv in h.items())
    st, body = raw_request(srv.port, head.encode() + b"\r\n" + big)
    assert st == 400 and xml_code(body) == "EntityTooLarge"
    # ... before any body byte with Expect: 100-continue
    st, body = raw_request(srv.port, b"PUT /robust/big HTTP/1.1\r\nHost: x\r\n"
                           b"Content-Length: 2097152\r\nExpect: 100-continue\r\n\r\n")
    assert st == 403 or st == 400, (st, body)  # unsigned: refused before the body either way
    st, _, body = srv.request("PUT", "/robust/big", headers={"Expect": "100-continue",
                                                             "Content-Length": str(2 << 20)},
                              body=None)
    assert st == 400 and xml_code(body) == "EntityTooLarge"
    # an aws-chunked body declaring a decoded length over the limit
    st, _, body = srv.request("PUT", "/robust/big2", headers={
        "x-amz-decoded-content-length": str(5 << 20),
        "Content-Encoding": "aws-chunked"}, body=b"0\r\n\r\n",
        payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    assert st == 400 and xml_code(body) == "EntityTooLarge", body
    s3 = srv.client()
    names = [o["Key"] for o in s3.list_objects_v2(Bucket="robust").get("Contents", [])]
    assert "big" not in names and "big2" not in names
    assert srv.alive()


def test_10000_idle_connections_are_capped(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 12000
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard) if hard != resource.RLIM_INFINITY
                                                     else want, hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < want:
        pytest.skip("cannot raise RLIMIT_NOFILE to %d" % want)
    srv = start_server(tmp_path, extra_args=["--quiet", "--max-connections", "100",
                                             "--idle-timeout", "30"])
    socks = []
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="many")
        s3.put_object(Bucket="many", Key="k", Body=b"still here")
        threads_before = srv.status("Threads")
        refused = 0
        for _ in range(10000):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect_ex(("127.0.0.1", srv.port))
            except OSError:
                refused += 1
                s.close()
                continue
            socks.append(s)
        time.sleep(1.5)
        assert srv.alive(), srv.log_tail()
        threads = srv.status("Threads")
        # one thread per accepted connection, never more than the cap
        assert threads <= threads_before + 100 + 8, (threads_before, threads)
        fds = len(__import__("os").listdir("/proc/%d/fd" % srv.pid))
        assert fds < 100 + 200, fds
        for s in socks:
            rst_close(s)
        socks = []
        # normal service afterwards (the cap frees as connections go)
        deadline = time.time() + 10
        while True:
            try:
                assert s3.get_object(Bucket="many", Key="k")["Body"].read() == b"still here"
                break
            except AssertionError:
                raise
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        assert srv.stop() == 0, srv.log_tail()
    finally:
        for s in socks:
            rst_close(s)
        srv.stop()


def test_flood_of_tiny_requests_degrades_gracefully(srv):
    s3 = srv.client()
    s3.put_object(Bucket="robust", Key="tiny", Body=b"t")
    statuses = {}
    lock = threading.Lock()
    budget = {"left": 6000}
    deadline = time.time() + 8

    def worker(keepalive):
        import http.client
        conn = None
        while time.time() < deadline:
            with lock:
                if budget["left"] <= 0:
                    return
                budget["left"] -= 1
            try:
                if conn is None or not keepalive:
                    if conn:
                        conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
                # unsigned: the cheapest request an attacker can send (403)
                conn.request("HEAD", "/robust/tiny")
                r = conn.getresponse()
                r.read()
                st = r.status
            except (OSError, http.client.HTTPException) as e:
                st = type(e).__name__
                conn = None
            with lock:
                statuses[st] = statuses.get(st, 0) + 1
        if conn:
            conn.close()
    ts = [threading.Thread(target=worker, args=(i % 2 == 0,)) for i in range(16)]
    for t in ts:
        t.start()
    # a legitimate client keeps being served during the flood
    served = 0
    while any(t.is_alive() for t in ts):
        assert s3.head_object(Bucket="robust", Key="tiny")["ContentLength"] == 1
        served += 1
    for t in ts:
        t.join()
    total = sum(statuses.values())
    assert total >= 1000, statuses
    assert set(statuses) <= {403, 503}, statuses
    assert served >= 1
    assert srv.alive()
