"""Negative tests against `seglake serve`: every auth failure and bad request
must get the AWS error code and status, leave stored data untouched, and
leave the server serving: wrong secret, unknown key, skewed clock, expired
and tampered presigned URLs, anonymous access, malformed Authorization,
Expect: 100-continue rejected before the body, oversize headers, bodies
shorter or longer than Content-Length, clients that vanish mid-upload,
missing Content-Length and the object size limit."""

import datetime
import hashlib
import socket
import time
import urllib.request
import urllib.error

import pytest
from botocore.exceptions import ClientError

from conftest import sign_headers, start_server, strip_private


def err_code(exc):
    return exc.value.response["Error"]["Code"]


def raw_head(srv, method, path, headers, body_sha=None, query=""):
    """Signed request head as bytes (body sent separately by the caller)."""
    h = sign_headers(method, path, query, headers, None, srv.access_key, srv.secret_key,
                     srv.region, "%s:%d" % (srv.host, srv.port),
                     payload_hash=body_sha or "UNSIGNED-PAYLOAD")
    h = strip_private(h)
    target = path + ("?" + query if query else "")
    lines = ["%s %s HTTP/1.1" % (method, target)] + ["%s: %s" % kv for kv in h.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock, timeout=10):
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0] else 0
    hdrs = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    n = int(hdrs.get("content-length", "0"))
    while len(rest) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, hdrs, rest[:n]


def still_serving(srv):
    s3 = srv.client()
    assert "Buckets" in s3.list_buckets()


def test_wrong_secret_and_unknown_key(s3server, bucket):
    bad = s3server.client(secret_key="wrong-secret")
    with pytest.raises(ClientError) as e:
        bad.put_object(Bucket=bucket, Key="x", Body=b"x")
    assert err_code(e) == "SignatureDoesNotMatch"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    unknown = s3server.client(access_key="NOSUCHKEY0000000", secret_key="whatever")
    with pytest.raises(ClientError) as e:
        unknown.list_buckets()
    assert err_code(e) == "InvalidAccessKeyId"
    with pytest.raises(ClientError):
        s3server.client().head_object(Bucket=bucket, Key="x")


def test_skewed_clock(s3server, bucket):
    old = (datetime.datetime.utcnow() - datetime.timedelta(minutes=20)).strftime("%Y%m%dT%H%M%SZ")
    st, _, body = s3server.request("GET", "/" + bucket, amz_date=old)
    assert st == 403 and b"RequestTimeTooSkewed" in body
    new = (datetime.datetime.utcnow() + datetime.timedelta(minutes=20)).strftime("%Y%m%dT%H%M%SZ")
    st, _, body = s3server.request("GET", "/" + bucket, amz_date=new)
    assert st == 403 and b"RequestTimeTooSkewed" in body
    ok = (datetime.datetime.utcnow() - datetime.timedelta(minutes=5)).strftime("%Y%m%dT%H%M%SZ")
    st, _, _ = s3server.request("GET", "/" + bucket, amz_date=ok)
    assert st == 200


def test_presigned_urls(s3server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="p k+%", Body=b"presigned")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p k+%"},
                                    ExpiresIn=300)
    assert urllib.request.urlopen(url, timeout=10).read() == b"presigned"
    put = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "up"},
                                    ExpiresIn=300)
    req = urllib.request.Request(put, data=b"uploaded", method="PUT")
    urllib.request.urlopen(req, timeout=10).read()
    assert s3.get_object(Bucket=bucket, Key="up")["Body"].read() == b"uploaded"
    # tampered: another key with the same signature
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url.replace("p%20k", "p%20j"), timeout=10)
    assert e.value.code == 403 and b"SignatureDoesNotMatch" in e.value.read()
    short = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p k+%"},
                                      ExpiresIn=1)
    time.sleep(2.2)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(short, timeout=10)
    assert e.value.code == 403 and b"AccessDenied" in e.value.read()
    too_long = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p k+%"},
                                         ExpiresIn=8 * 24 * 3600)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(too_long, timeout=10)
    assert e.value.code in (400, 403)


def test_anonymous_and_malformed_auth(s3server, bucket):
    st, _, body = s3server.request("GET", "/" + bucket, sign=False)
    assert st == 403 and b"AccessDenied" in body
    st, _, body = s3server.request("PUT", "/%s/anon" % bucket, sign=False, body=b"x")
    assert st == 403
    st, _, body = s3server.request("GET", "/" + bucket, sign=False,
                                   headers={"Authorization": "AWS4-HMAC-SHA256 garbage",
                                            "x-amz-date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
                                            "x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    assert st == 400 and b"AuthorizationHeaderMalformed" in body or b"InvalidArgument" in body
    still_serving(s3server)


def test_expect_continue_rejected_before_body(s3server, bucket):
    head = raw_head(s3server, "PUT", "/%s/never" % bucket,
                    {"Content-Length": "10485760", "Expect": "100-continue"})
    head = head.replace(b"Signature=", b"Signature=0")  # a wrong signature
    with socket.create_connection((s3server.host, s3server.port)) as s:
        s.sendall(head)
        st, _, body = read_response(s)  # answered without sending a byte of the body
    assert st in (400, 403) and b"<Error>" in body
    # and with good credentials the server says 100 Continue and takes the body
    with socket.create_connection((s3server.host, s3server.port)) as s:
        s.sendall(raw_head(s3server, "PUT", "/%s/cont" % bucket,
                           {"Content-Length": "5", "Expect": "100-continue"}))
        s.settimeout(10)
        first = s.recv(100)
        assert first.startswith(b"HTTP/1.1 100")
        s.sendall(b"hello")
        st, _, _ = read_response(s)
    assert st == 200
    assert s3server.client().get_object(Bucket=bucket, Key="cont")["Body"].read() == b"hello"


def test_oversize_headers(s3server, bucket):
    st, _, body = s3server.request("GET", "/" + bucket, headers={"x-big": "a" * 20000})
    assert st == 400 and b"RequestHeaderSectionTooLarge" in body
    try:
        st, _, _ = s3server.request("GET", "/" + bucket, sign=False,
                                    headers={"x-huge": "a" * 2_000_000})
        assert st in (400, 413, 431)
    except (ConnectionError, OSError):
        pass  # closing the connection is an acceptable answer to 2 MB of headers
    st, _, body = s3server.request("GET", "/" + bucket + "/" + "k" * 9000)
    assert st == 400
    still_serving(s3server)


def test_short_body_then_close(s3server, s3, bucket):
    with socket.create_connection((s3server.host, s3server.port)) as s:
        s.sendall(raw_head(s3server, "PUT", "/%s/short" % bucket, {"Content-Length": "100000"}))
        s.sendall(b"x" * 50000)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(10)
        try:
            s.recv(100)
        except OSError:
            pass
    time.sleep(0.3)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="short")
    still_serving(s3server)


def test_body_longer_than_content_length(s3server, s3, bucket):
    body = b"0123456789"
    with socket.create_connection((s3server.host, s3server.port)) as s:
        s.sendall(raw_head(s3server, "PUT", "/%s/long" % bucket, {"Content-Length": "10"},
                           body_sha=hashlib.sha256(body).hexdigest()))
        s.sendall(body + b"EXTRA-BYTES-NOT-HTTP\r\n\r\n")
        st, _, _ = read_response(s)
    assert st == 200
    assert s3.get_object(Bucket=bucket, Key="long")["Body"].read() == body
    still_serving(s3server)


def test_missing_content_length(s3server, bucket):
    with socket.create_connection((s3server.host, s3server.port)) as s:
        s.sendall(raw_head(s3server, "PUT", "/%s/nolen" % bucket, {}))
        st, _, body = read_response(s)
    assert st == 411 and b"MissingContentLength" in body


def test_disconnect_mid_upload(s3server, s3, bucket):
    for i in range(3):
        with socket.create_connection((s3server.host, s3server.port)) as s:
            s.sendall(raw_head(s3server, "PUT", "/%s/gone" % bucket,
                               {"Content-Length": str(64 * 1024 * 1024)}))
            for _ in range(40):
                s.sendall(b"z" * 262144)  # 10 MiB of 64, then vanish
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s3server.wait_log(lambda log: "client-abort" in log or "read-error" in log or " error" in log)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="gone")
    assert not s3.list_object_versions(Bucket=bucket).get("Versions")
    still_serving(s3server)
    s3.put_object(Bucket=bucket, Key="gone", Body=b"after")
    assert s3.get_object(Bucket=bucket, Key="gone")["Body"].read() == b"after"


def test_object_size_limit(tmp_path):
    srv = start_server(tmp_path, extra_args=["--max-object-size", "1M"])
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="limits")
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket="limits", Key="big", Body=b"x" * (1024 * 1024 + 1))
        assert err_code(e) == "EntityTooLarge"
        s3.put_object(Bucket="limits", Key="ok", Body=b"x" * (1024 * 1024))
        with pytest.raises(ClientError):
            s3.head_object(Bucket="limits", Key="big")
    finally:
        assert srv.stop() == 0


def test_graceful_shutdown_finishes_inflight(tmp_path):
    srv = start_server(tmp_path)
    s3 = srv.client()
    s3.create_bucket(Bucket="grace")
    with socket.create_connection((srv.host, srv.port)) as s:
        s.sendall(raw_head(srv, "PUT", "/grace/slow", {"Content-Length": "6"}))
        s.sendall(b"abc")
        time.sleep(0.3)
        import os
        import signal
        os.kill(srv.pid, signal.SIGTERM)
        time.sleep(0.5)
        assert srv.alive()  # waiting for the request in flight
        s.sendall(b"def")
        st, _, _ = read_response(s)
    assert st == 200
    assert srv.stop() == 0
    srv2 = start_server(tmp_path, data_dir=srv.data_dir)
    try:
        assert srv2.client().get_object(Bucket="grace", Key="slow")["Body"].read() == b"abcdef"
    finally:
        srv2.stop()
