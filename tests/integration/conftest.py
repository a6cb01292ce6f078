"""Shared pytest harness for Seglake integration tests.

What it is: finding the `seglake` binary, creating throw-away data dirs
(`seglake init`), starting `seglake serve` on a free port with fixed test
credentials, waiting until it answers, and stopping it by pid (SIGTERM, then
SIGKILL) in teardown even when the test failed. Helpers build boto3
clients (path-style), environments for awscli/s3cmd/rclone/curl, and raw
SigV4-signed HTTP requests (including aws-chunked bodies) for tests that
need to send exactly what a client library would not.

What it is not: test cases. Other engineers reuse `start_server(tmp_path,
extra_args=[...])` (e.g. `serve --mount MNT`).

Binary: $SEGLAKE_BIN, else ../../build/cli/seglake relative to this folder.
"""

import base64
import datetime
import hashlib
import hmac
import http.client
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import uuid

import pytest

import seglake_paths

HERE = os.path.dirname(os.path.abspath(__file__))
ACCESS_KEY = "SLTESTACCESSKEY00001"
SECRET_KEY = "sl-test-secret/0123456789+abcdefghijklmnop"
REGION = "us-east-1"


def seglake_bin():
    """The binary under test ($SEGLAKE_BIN, else $SEGLAKE_BUILD/cli/seglake, else
    build/cli/seglake). Missing is an error, never a skip."""
    b = seglake_paths.seglake_bin()
    if not os.access(b, os.X_OK):
        pytest.fail("seglake binary not found at %s (build it, or set SEGLAKE_BUILD or "
                    "SEGLAKE_BIN)" % b, pytrace=False)
    return b


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI a skipped test would hide missing coverage: every skip fails
    unless its reason says the client it needs is optional."""
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and os.environ.get("CI") and not hasattr(rep, "wasxfail"):
        reason = str(rep.longrepr[-1]) if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        if "optional" not in reason:
            rep.outcome = "failed"
            rep.longrepr = "skipped in CI (CI=true), which hides coverage: " + reason


def seglake_cli(srv, *args, check=True):
    """Runs `seglake ARGS --data DIR` against a running server's data dir
    (through its admin socket). check: fail unless it exits 0."""
    r = subprocess.run([seglake_bin()] + list(args) + ["--data", srv.data_dir],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError("seglake %s failed: %s %s" % (" ".join(args), r.stdout, r.stderr))
    return r


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_data_dir(path):
    """Creates an empty lake at path with `seglake init`."""
    r = subprocess.run([seglake_bin(), "init", str(path)], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=30)
    if r.returncode != 0:
        raise RuntimeError("seglake init failed: %s %s" % (r.stdout, r.stderr))
    return str(path)


class Server:
    """A running `seglake serve` process."""

    def __init__(self, proc, port, data_dir, log_path, access_key, secret_key, region):
        self.proc = proc
        self.pid = proc.pid
        self.port = port
        self.host = "127.0.0.1"
        self.endpoint = "http://127.0.0.1:%d" % port
        self.data_dir = data_dir
        self.log_path = log_path
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region

    # ---- clients -----------------------------------------------------------
    def client(self, access_key=None, secret_key=None, **config):
        import boto3
        from botocore.config import Config
        cfg = dict(s3={"addressing_style": "path"}, signature_version="s3v4",
                   retries={"max_attempts": 1, "mode": "standard"},
                   connect_timeout=10, read_timeout=120)
        cfg.update(config)
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=self.region,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            config=Config(**cfg))

    def env(self, home=None):
        """Environment for awscli, s3cmd, rclone and curl subprocesses."""
        e = dict(os.environ)
        for k in list(e):
            if k.startswith("AWS_") or k.startswith("RCLONE_"):
                del e[k]
        e.update({
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_PAGER": "",
            "RCLONE_CONFIG": "/dev/null",
            "RCLONE_CONFIG_SL_TYPE": "s3",
            "RCLONE_CONFIG_SL_PROVIDER": "Other",
            "RCLONE_CONFIG_SL_ACCESS_KEY_ID": self.access_key,
            "RCLONE_CONFIG_SL_SECRET_ACCESS_KEY": self.secret_key,
            "RCLONE_CONFIG_SL_ENDPOINT": self.endpoint,
            "RCLONE_CONFIG_SL_REGION": self.region,
            "RCLONE_CONFIG_SL_FORCE_PATH_STYLE": "true",
        })
        if home:
            e["HOME"] = str(home)
        return e

    def aws(self, *args, check=True, input=None, timeout=300, cwd=None):
        """Runs Debian's awscli against the server."""
        cmd = ["/usr/bin/aws", "--endpoint-url", self.endpoint] + list(args)
        r = subprocess.run(cmd, capture_output=True, text=True, env=self.env(),
                           input=input, stdin=None if input is not None else subprocess.DEVNULL,
                           timeout=timeout, cwd=cwd)
        if check and r.returncode != 0:
            raise AssertionError("aws %s failed (%d): %s %s\n--- server log ---\n%s" % (
                " ".join(args), r.returncode, r.stdout, r.stderr, self.log_tail()))
        return r

    # ---- process -----------------------------------------------------------
    def alive(self):
        return self.proc.poll() is None

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log().splitlines()[-n:])

    def wait_log(self, want, timeout=10):
        """The log once want (a string, or a predicate on the log) holds,
        else None. Lines about a request are written on the daemon's threads,
        some after the client has its answer (the access log line when the
        connection is done), so a test that looks right after an effect must
        wait for the line rather than read once."""
        ok = want if callable(want) else (lambda log: want in log)
        deadline = time.time() + timeout
        while True:
            log = self.log()
            if ok(log):
                return log
            if time.time() >= deadline:
                return None
            time.sleep(0.05)

    def status(self, field):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return None

    def peak_rss_kib(self):
        return self.status("VmHWM")

    def stop(self, timeout=15):
        """SIGTERM, wait, then SIGKILL. Returns the exit status."""
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if getattr(self, "_logf", None):
            self._logf.close()
            self._logf = None
        return self.proc.returncode

    # ---- raw requests --------------------------------------------------------
    def request(self, method, path, query="", headers=None, body=b"", sign=True,
                payload_hash=None, amz_date=None, secret_key=None, access_key=None,
                timeout=60):
        """Sends one request with http.client; path and query are sent as given
        (already percent-encoded). Returns (status, headers dict lower-case, body)."""
        headers = dict(headers or {})
        if sign:
            headers = sign_headers(method, path, query, headers, body if payload_hash is None else None,
                                   access_key or self.access_key, secret_key or self.secret_key,
                                   self.region, "%s:%d" % (self.host, self.port),
                                   payload_hash=payload_hash, amz_date=amz_date)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            target = path + ("?" + query if query else "")
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            headers = strip_private(headers)  # signing material is not sent
            has_host = any(k.lower() == "host" for k in headers)
            if not has_host:
                conn.putheader("Host", "%s:%d" % (self.host, self.port))
            for k, v in headers.items():
                conn.putheader(k, v)
            if body is not None and not any(k.lower() in ("content-length", "transfer-encoding")
                                            for k in headers):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders()
            if body:
                conn.send(body)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()


def start_server(tmp_path, extra_args=(), data_dir=None, access_key=ACCESS_KEY,
                 secret_key=SECRET_KEY, region=REGION, env=None, wait=20, port=None,
                 credentials=True):
    """Starts `seglake serve` on a free port and waits until it answers.

    tmp_path: a directory for the data dir (if data_dir is None) and the log.
    extra_args: more flags, e.g. ["--mount", str(mnt)].
    credentials=False starts without --access-key/--secret-key (first-start
    key generation)."""
    tmp_path = str(tmp_path)
    if data_dir is None:
        data_dir = os.path.join(tmp_path, "data-%s" % uuid.uuid4().hex[:8])
        init_data_dir(data_dir)
    port = port or free_port()
    log_path = os.path.join(tmp_path, "seglake-%d.log" % port)
    cmd = [seglake_bin(), "serve", "--data", data_dir, "--listen", "127.0.0.1:%d" % port]
    if credentials:
        cmd += ["--access-key", access_key, "--secret-key", secret_key]
    cmd += ["--region", region] + list(extra_args)
    logf = open(log_path, "w")
    penv = dict(os.environ)
    penv.update(env or {})
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=penv)
    srv = Server(proc, port, data_dir, log_path, access_key, secret_key, region)
    srv._logf = logf
    deadline = time.time() + wait
    while time.time() < deadline:
        if proc.poll() is not None:
            logf.close()
            raise RuntimeError("seglake serve exited with %s:\n%s" % (proc.returncode, srv.log()))
        if "seglake: ready" in srv.log():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return srv
            except OSError:
                pass
        time.sleep(0.05)
    srv.stop()
    raise RuntimeError("seglake serve did not become ready:\n%s" % srv.log())


@pytest.fixture(scope="module")
def s3server(tmp_path_factory):
    """One server per test module (fast); tests use their own buckets."""
    d = tmp_path_factory.mktemp("s3srv")
    srv = start_server(d)
    yield srv
    rc = srv.stop()
    assert rc == 0, "server exit status %s\n%s" % (rc, srv.log_tail())


@pytest.fixture
def server(tmp_path):
    """A fresh server for one test."""
    srv = start_server(tmp_path)
    yield srv
    srv.stop()


@pytest.fixture
def s3(s3server):
    return s3server.client()


@pytest.fixture
def bucket(s3server, s3):
    """A new empty bucket; emptied and removed afterwards."""
    name = "t-" + uuid.uuid4().hex[:16]
    s3.create_bucket(Bucket=name)
    yield name
    empty_bucket(s3, name)


def empty_bucket(s3, name, delete=True):
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
            objs = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                    for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            if objs:
                s3.delete_objects(Bucket=name, Delete={"Objects": objs, "Quiet": True})
        for up in s3.list_multipart_uploads(Bucket=name).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
        if delete:
            s3.delete_bucket(Bucket=name)
    except Exception:
        pass


# ---- SigV4 signing for raw requests (independent of botocore) ----------------

def _hmac(key, msg):
    return hmac.new(key, msg.encode() if isinstance(msg, str) else msg, hashlib.sha256).digest()


def signing_key(secret, date, region, service="s3"):
    k = _hmac(("AWS4" + secret).encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def _canon_query(query):
    if not query:
        return ""
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        k = urllib.parse.quote(urllib.parse.unquote(k), safe="-_.~")
        v = urllib.parse.quote(urllib.parse.unquote(v), safe="-_.~")
        pairs.append((k, v))
    return "&".join("%s=%s" % kv for kv in sorted(pairs))


def sign_headers(method, path, query, headers, body, access_key, secret_key, region, host,
                 payload_hash=None, amz_date=None):
    """Returns headers with Host, x-amz-date, x-amz-content-sha256 and
    Authorization added (every given header is signed)."""
    now = amz_date or datetime.datetime.utcnow().strftime("%Y%m%dT%H%M%SZ")
    if payload_hash is None:
        payload_hash = hashlib.sha256(body or b"").hexdigest()
    h = dict(headers)
    if not any(k.lower() == "host" for k in h):
        h["Host"] = host
    h["x-amz-date"] = now
    h["x-amz-content-sha256"] = payload_hash
    canon = {}
    for k, v in h.items():
        canon[k.lower()] = " ".join(str(v).strip().split())
    signed = ";".join(sorted(canon))
    creq = "\n".join([method, path, _canon_query(query),
                      "".join("%s:%s\n" % (k, canon[k]) for k in sorted(canon)),
                      signed, payload_hash])
    scope = "%s/%s/s3/aws4_request" % (now[:8], region)
    sts = "\n".join(["AWS4-HMAC-SHA256", now, scope, hashlib.sha256(creq.encode()).hexdigest()])
    key = signing_key(secret_key, now[:8], region)
    sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    h["Authorization"] = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        access_key, scope, signed, sig)
    h["_seed_signature"] = sig
    h["_scope"] = scope
    h["_key"] = key
    return h


def strip_private(h):
    return {k: v for k, v in h.items() if not k.startswith("_")}


EMPTY_SHA = hashlib.sha256(b"").hexdigest()


def chunk_signature(key, amz_date, scope, prev, data):
    sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, EMPTY_SHA,
                     hashlib.sha256(data).hexdigest()])
    return hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()


def trailer_signature(key, amz_date, scope, prev, trailer_text):
    sts = "\n".join(["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, prev,
                     hashlib.sha256(trailer_text.encode()).hexdigest()])
    return hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()


def crc32_b64(data):
    import zlib
    return base64.b64encode((zlib.crc32(data) & 0xffffffff).to_bytes(4, "big")).decode()


def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_CRC32C = _crc32c_table()


def crc32c_b64(data):
    c = 0xffffffff
    for b in data:
        c = _CRC32C[(c ^ b) & 0xff] ^ (c >> 8)
    return base64.b64encode((c ^ 0xffffffff).to_bytes(4, "big")).decode()


def sha256_b64(data):
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def streaming_put(srv, path, data, chunk=64 * 1024, mode="signed", trailer=None,
                  tamper_chunk=None, trailer_value=None, extra_headers=None, query=""):
    """PUTs data as an aws-chunked body.

    mode: "signed" (STREAMING-AWS4-HMAC-SHA256-PAYLOAD), "signed-trailer"
    (...-PAYLOAD-TRAILER) or "unsigned-trailer" (STREAMING-UNSIGNED-PAYLOAD-TRAILER).
    trailer: e.g. ("x-amz-checksum-crc32", crc32_b64(data)); trailer_value overrides
    the value sent. tamper_chunk: index of a chunk whose signature is corrupted."""
    modes = {"signed": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
             "signed-trailer": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
             "unsigned-trailer": "STREAMING-UNSIGNED-PAYLOAD-TRAILER"}
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] + [b""]
    signed = mode != "unsigned-trailer"
    trailer_line = None
    if trailer:
        name, value = trailer
        if trailer_value is not None:
            value = trailer_value
        trailer_line = "%s:%s" % (name, value)

    def frame_len(n, with_sig):
        head = "%x" % n + (";chunk-signature=" + "0" * 64 if with_sig else "")
        return len(head) + 2 + n + 2

    enc_len = sum(frame_len(len(p), signed) for p in pieces)
    if trailer_line:
        enc_len -= 2  # the final chunk has no CRLF of its own before trailers
        enc_len += len(trailer_line) + 2
        if signed:
            enc_len += len("x-amz-trailer-signature:") + 64 + 2
        enc_len += 2
    headers = {"Content-Encoding": "aws-chunked",
               "x-amz-decoded-content-length": str(len(data)),
               "Content-Length": str(enc_len)}
    if trailer:
        headers["x-amz-trailer"] = trailer[0]
    headers.update(extra_headers or {})
    h = sign_headers("PUT", path, query, headers, None, srv.access_key, srv.secret_key,
                     srv.region, "%s:%d" % (srv.host, srv.port), payload_hash=modes[mode])
    key, scope, prev, date = h["_key"], h["_scope"], h["_seed_signature"], h["x-amz-date"]
    out = bytearray()
    for i, p in enumerate(pieces):
        if signed:
            sig = chunk_signature(key, date, scope, prev, p)
            prev = sig
            if tamper_chunk == i:
                sig = ("0" if sig[0] != "0" else "1") + sig[1:]
            out += ("%x;chunk-signature=%s\r\n" % (len(p), sig)).encode()
        else:
            out += ("%x\r\n" % len(p)).encode()
        out += p
        if p or not trailer_line:
            out += b"\r\n"
    if trailer_line:
        out += (trailer_line + "\r\n").encode()
        if signed:
            tsig = trailer_signature(key, date, scope, prev, trailer_line + "\n")
            out += ("x-amz-trailer-signature:%s\r\n" % tsig).encode()
        out += b"\r\n"
    assert len(out) == enc_len, (len(out), enc_len)
    return srv.request("PUT", path, query, strip_private(h), bytes(out), sign=False)


def tool(name):
    p = shutil.which(name)
    if not p:
        pytest.skip("%s not installed" % name)
    return p
