"""Header and body deadlines of the S3 listener (--header-timeout,
--body-timeout, --body-min-rate).

What it covers, against the real daemon on loopback: a client trickling its
header section one byte every 0.5 s (never idle long enough for
--idle-timeout) is cut after --header-timeout while other clients are served,
on a fresh and on a keep-alive connection; a PUT whose body stalls, or
arrives slower than --body-min-rate, gets 400 RequestTimeout and stores
nothing; a slow but steady upload within the limits succeeds; bad values for
the flags (flag, environment, config file) are refused with a non-zero exit.
The settings come from the flag, SEGLAKE_* environment and config file in
turn, so all three paths are exercised. Not here: the idle timeout and the
connection cap (test_robust_http.py).
"""
import os
import socket
import subprocess
import threading
import time

import pytest
from botocore.exceptions import ClientError

from conftest import free_port, init_data_dir, seglake_bin, sign_headers, start_server, strip_private

BUCKET = "slow"


@pytest.fixture
def srv(tmp_path):
    cfg = tmp_path / "serve.conf"
    cfg.write_text("# deadlines under test\nbody-timeout = 2\n")
    s = start_server(tmp_path, extra_args=["--config", str(cfg), "--body-min-rate", "1K"],
                     env={"SEGLAKE_HEADER_TIMEOUT": "2"})
    s.client().create_bucket(Bucket=BUCKET)
    yield s
    rc = s.stop()
    log = s.log()
    # a sanitizer build reports leaks and UB in the log and exits non-zero
    assert rc == 0 and "Sanitizer" not in log and "runtime error" not in log, (rc, s.log_tail())


def wait_closed(c, timeout):
    """Reads until the server closes c; returns what it sent. socket.timeout
    if it is still open after timeout seconds."""
    c.settimeout(timeout)
    out = b""
    while True:
        try:
            b = c.recv(65536)
        except ConnectionResetError:
            return out
        if not b:
            return out
        out += b


class Trickle(threading.Thread):
    """Sends data one byte every `every` seconds until done, stopped or refused."""

    def __init__(self, sock, data, every=0.5):
        super().__init__(daemon=True)
        self.sock, self.data, self.every = sock, data, every
        self.sent = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set() and self.sent < len(self.data):
            try:
                self.sock.send(self.data[self.sent:self.sent + 1])
            except OSError:
                return
            self.sent += 1
            self.stop.wait(self.every)


def slow_header(port):
    # ~80 bytes at 0.5 s each: 40 s to complete, far beyond the 2 s deadline
    return ("GET /%s/k HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Slow: %s\r\n\r\n" %
            (BUCKET, port, "z" * 24)).encode()


def test_trickled_headers_are_cut_while_others_are_served(srv):
    s3 = srv.client()
    s3.put_object(Bucket=BUCKET, Key="k", Body=b"v")
    header = slow_header(srv.port)
    c = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    t = Trickle(c, header)
    t0 = time.time()
    t.start()
    try:
        # other clients are served while the trickle goes on
        for i in range(3):
            s3.put_object(Bucket=BUCKET, Key="other-%d" % i, Body=b"x" * 1000)
            assert s3.get_object(Bucket=BUCKET, Key="k")["Body"].read() == b"v"
        try:
            got = wait_closed(c, 30)
        except socket.timeout:
            pytest.fail("a trickling client kept its connection for 30 s with --header-timeout 2")
        took = time.time() - t0
    finally:
        t.stop.set()
        t.join()
        c.close()
    assert got == b"", got[:200]  # no request, so no answer
    assert t.sent < len(header), "the header section completed: nothing was tested"
    assert took >= 1.0, "cut after %.1fs, before the deadline" % took
    assert "request headers not complete within 2s" in srv.log()
    # the daemon still serves normally afterwards
    assert s3.get_object(Bucket=BUCKET, Key="k")["Body"].read() == b"v"
    assert srv.alive()


def test_trickle_on_a_keepalive_connection_is_cut(srv):
    c = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        # one complete request (anonymous: 403), the connection stays open
        c.sendall(b"GET /%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (BUCKET.encode(), srv.port))
        head = b""
        while b"</Error>" not in head:
            b = c.recv(65536)
            assert b, "the server closed the connection after one request"
            head += b
        assert head.startswith(b"HTTP/1.1 403"), head[:100]
        t = Trickle(c, slow_header(srv.port))
        t.start()
        try:
            got = wait_closed(c, 30)
        except socket.timeout:
            pytest.fail("a trickled second request kept the connection for 30 s")
        finally:
            t.stop.set()
            t.join()
        assert got == b""
        assert t.sent < len(slow_header(srv.port))
    finally:
        c.close()
    assert srv.client().head_bucket(Bucket=BUCKET)["ResponseMetadata"]["HTTPStatusCode"] == 200


def signed_put_headers(srv, key, length, payload_hash):
    h = sign_headers("PUT", "/%s/%s" % (BUCKET, key), "", {"Content-Length": str(length)}, None,
                     srv.access_key, srv.secret_key, srv.region,
                     "127.0.0.1:%d" % srv.port, payload_hash=payload_hash)
    lines = ["PUT /%s/%s HTTP/1.1" % (BUCKET, key)]
    lines += ["%s: %s" % kv for kv in strip_private(h).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer_of(data):
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.") else None
    code = body.split(b"<Code>", 1)[1].split(b"</Code>", 1)[0].decode() if b"<Code>" in body else None
    return status, code


def assert_no_key(srv, key):
    with pytest.raises(ClientError) as ei:
        srv.client().head_object(Bucket=BUCKET, Key=key)
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_stalled_body_gets_request_timeout_and_stores_nothing(srv):
    c = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        c.sendall(signed_put_headers(srv, "stalled", 1 << 20, "UNSIGNED-PAYLOAD"))
        c.sendall(b"a" * 4096)  # a first piece, then nothing
        try:
            got = wait_closed(c, 30)
        except socket.timeout:
            pytest.fail("a stalled upload kept its connection for 30 s with --body-timeout 2")
    finally:
        c.close()
    assert answer_of(got) == (400, "RequestTimeout"), got[:300]
    assert b"not read from or written to within the timeout period" in got
    assert_no_key(srv, "stalled")
    # the access log line is written when the connection is done, which can
    # be after this side saw the close
    log = srv.wait_log('"termination":"body-timeout"')
    assert log and "answered RequestTimeout" in log, srv.log_tail()
    assert srv.alive()


def test_body_slower_than_min_rate_gets_request_timeout(srv):
    # 100 bytes every 0.5 s = 200 B/s, never idle, but below --body-min-rate 1K
    body = b"b" * 64 * 1024
    c = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        c.sendall(signed_put_headers(srv, "dribble", len(body), "UNSIGNED-PAYLOAD"))
        stop = threading.Event()
        sent = [0]

        def dribble():
            while not stop.is_set() and sent[0] < len(body):
                try:
                    c.send(body[sent[0]:sent[0] + 100])
                except OSError:
                    return
                sent[0] += 100
                stop.wait(0.5)
        t = threading.Thread(target=dribble, daemon=True)
        t.start()
        try:
            got = wait_closed(c, 30)
        except socket.timeout:
            pytest.fail("a 200 B/s upload was not cut with --body-min-rate 1K")
        finally:
            stop.set()
            t.join()
    finally:
        c.close()
    assert sent[0] < len(body)
    assert answer_of(got) == (400, "RequestTimeout"), got[:300]
    assert_no_key(srv, "dribble")


def test_slow_but_steady_upload_succeeds(srv):
    # 4 KiB every 0.5 s = 8 KiB/s for ~6 s: three 2 s windows, each above 2 KiB
    import hashlib
    body = os.urandom(48 * 1024)
    c = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    try:
        c.sendall(signed_put_headers(srv, "steady", len(body), hashlib.sha256(body).hexdigest()))
        for i in range(0, len(body), 4096):
            time.sleep(0.5)
            c.sendall(body[i:i + 4096])
        data = b""
        while b"\r\n\r\n" not in data:
            b = c.recv(65536)
            assert b, "closed without an answer"
            data += b
    finally:
        c.close()
    assert data.startswith(b"HTTP/1.1 200"), data[:300]
    got = srv.client().get_object(Bucket=BUCKET, Key="steady")["Body"].read()
    assert got == body


@pytest.mark.parametrize("flag", ["header-timeout", "body-timeout", "body-min-rate"])
def test_bad_values_are_refused(tmp_path, flag):
    data = init_data_dir(tmp_path / "data")
    base = [seglake_bin(), "serve", "--data", data, "--listen", "127.0.0.1:%d" % free_port(),
            "--access-key", "AKBADVALUES0000001", "--secret-key", "secret-bad-values-0123456789"]
    env_name = "SEGLAKE_" + flag.upper().replace("-", "_")
    conf = tmp_path / "bad.conf"
    for v in ["0", "-1", "-30", "abc", "10x", "99999999999"]:
        runs = [(base + ["--" + flag, v], None),
                (base, {env_name: v})]
        conf.write_text("%s = %s\n" % (flag, v))
        runs.append((base + ["--config", str(conf)], None))
        for cmd, extra in runs:
            env = dict(os.environ)
            env.update(extra or {})
            r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                               env=env, timeout=30)
            assert r.returncode != 0, (cmd, extra, r.stdout)
            assert "bad value for --%s" % flag in r.stderr, (cmd, extra, r.stderr)
    # the help names the flags
    h = subprocess.run([seglake_bin(), "serve", "--help"], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=30)
    assert "--" + flag in h.stdout
