"""Access keys and policies end to end against a real `seglake serve`.

What it covers: keys created with `seglake key create` through the admin
socket; a read-only key, a key limited to a prefix, a public-read bucket
reachable with unsigned curl, a bucket-policy deny overriding an identity
allow, a source-IP condition, malformed policies rejected with
MalformedPolicy, a replication key that cannot read data, and the
permission-gated /metrics and /v1/meta/stats endpoints.
Not here: key lifecycle and rate limits (test_auth_keys.py).
"""

import json
import subprocess
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import seglake_cli as cli, start_server






def new_key(srv, *args):
    r = cli(srv, "key", "create", "--json", *args)
    k = json.loads(r.stdout)
    return k["id"], k["secret"]


def code_of(excinfo):
    return excinfo.value.response["Error"]["Code"]


def put_policy(s3, bucket, statements):
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(
        {"Version": "2012-10-17", "Statement": statements}))


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("authpol"))
    yield s
    assert s.stop() == 0, s.log_tail()


def test_read_only_key(srv):
    root = srv.client()
    root.create_bucket(Bucket="ro-data")
    root.create_bucket(Bucket="ro-other")
    root.put_object(Bucket="ro-data", Key="a.txt", Body=b"hello")
    root.put_object(Bucket="ro-other", Key="b.txt", Body=b"other")
    kid, sec = new_key(srv, "--name", "reader", "--access", "read", "--bucket", "ro-data")
    s3 = srv.client(access_key=kid, secret_key=sec)
    assert s3.get_object(Bucket="ro-data", Key="a.txt")["Body"].read() == b"hello"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="ro-data")["Contents"]] == ["a.txt"]
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="ro-data", Key="new.txt", Body=b"x")
    assert code_of(e) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket="ro-data", Key="a.txt")
    assert code_of(e) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="ro-other", Key="b.txt")
    assert code_of(e) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket="ro-new")
    assert code_of(e) == "AccessDenied"
    # nothing changed
    assert root.get_object(Bucket="ro-data", Key="a.txt")["Body"].read() == b"hello"
    with pytest.raises(ClientError):
        root.head_object(Bucket="ro-data", Key="new.txt")


def test_prefix_key(srv):
    root = srv.client()
    root.create_bucket(Bucket="pfx-data")
    root.put_object(Bucket="pfx-data", Key="other/secret.txt", Body=b"no")
    kid, sec = new_key(srv, "--access", "readwrite", "--bucket", "pfx-data",
                       "--prefix", "team/")
    s3 = srv.client(access_key=kid, secret_key=sec)
    s3.put_object(Bucket="pfx-data", Key="team/x.txt", Body=b"mine")
    assert s3.get_object(Bucket="pfx-data", Key="team/x.txt")["Body"].read() == b"mine"
    lst = s3.list_objects_v2(Bucket="pfx-data", Prefix="team/")
    assert [o["Key"] for o in lst["Contents"]] == ["team/x.txt"]
    for call in (lambda: s3.put_object(Bucket="pfx-data", Key="other/y.txt", Body=b"x"),
                 lambda: s3.get_object(Bucket="pfx-data", Key="other/secret.txt"),
                 lambda: s3.list_objects_v2(Bucket="pfx-data", Prefix="other/"),
                 lambda: s3.list_objects_v2(Bucket="pfx-data")):
        with pytest.raises(ClientError) as e:
            call()
        assert code_of(e) == "AccessDenied"
    s3.delete_object(Bucket="pfx-data", Key="team/x.txt")


def test_public_read_bucket_with_unsigned_curl(srv):
    root = srv.client()
    root.create_bucket(Bucket="pub-site")
    root.put_object(Bucket="pub-site", Key="index.html", Body=b"<h1>hi</h1>")
    url = "%s/pub-site/index.html" % srv.endpoint

    def curl(*args):
        r = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}"] + list(args),
                           capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
        body, _, code = r.stdout.rpartition(b"\n")
        return int(code), body

    code, body = curl(url)
    assert code == 403 and b"AccessDenied" in body  # private until a policy says so
    put_policy(root, "pub-site", [{"Sid": "PublicRead", "Effect": "Allow", "Principal": "*",
                                   "Action": "s3:GetObject",
                                   "Resource": "arn:aws:s3:::pub-site/*"}])
    got = json.loads(root.get_bucket_policy(Bucket="pub-site")["Policy"])
    assert got["Statement"][0]["Sid"] == "PublicRead"
    code, body = curl(url)
    assert code == 200 and body == b"<h1>hi</h1>"
    # only reads were opened: no anonymous writes, listings or ListBuckets
    code, body = curl("-X", "PUT", "--data-binary", "x", "%s/pub-site/evil" % srv.endpoint)
    assert code == 403
    code, _ = curl("%s/pub-site" % srv.endpoint)
    assert code == 403
    code, _ = curl(srv.endpoint + "/")
    assert code == 403
    root.delete_bucket_policy(Bucket="pub-site")
    code, _ = curl(url)
    assert code == 403
    with pytest.raises(ClientError) as e:
        root.get_bucket_policy(Bucket="pub-site")
    assert code_of(e) == "NoSuchBucketPolicy"


def test_anonymous_list_buckets_never_allowed(srv):
    root = srv.client()
    root.create_bucket(Bucket="pub-list")
    # even a policy naming ListAllMyBuckets cannot open the service listing
    put_policy(root, "pub-list", [{"Effect": "Allow", "Principal": "*",
                                   "Action": ["s3:ListBucket", "s3:ListAllMyBuckets"],
                                   "Resource": "arn:aws:s3:::pub-list"}])
    with urllib.request.urlopen("%s/pub-list?list-type=2" % srv.endpoint) as r:
        assert r.status == 200 and b"ListBucketResult" in r.read()
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(srv.endpoint + "/")
    assert e.value.code == 403


def test_deny_overrides_allow(srv):
    root = srv.client()
    root.create_bucket(Bucket="deny-data")
    root.put_object(Bucket="deny-data", Key="keep/important", Body=b"1")
    root.put_object(Bucket="deny-data", Key="scratch/tmp", Body=b"2")
    kid, sec = new_key(srv, "--access", "all")
    s3 = srv.client(access_key=kid, secret_key=sec)
    put_policy(root, "deny-data", [{"Effect": "Deny", "Principal": {"AWS": [kid]},
                                    "Action": "s3:DeleteObject",
                                    "Resource": "arn:aws:s3:::deny-data/keep/*"}])
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket="deny-data", Key="keep/important")
    assert code_of(e) == "AccessDenied"
    s3.delete_object(Bucket="deny-data", Key="scratch/tmp")  # the allow still works elsewhere
    assert s3.get_object(Bucket="deny-data", Key="keep/important")["Body"].read() == b"1"
    # the root key is not bound by policies
    root.delete_object(Bucket="deny-data", Key="keep/important")


def test_source_ip_condition(srv):
    root = srv.client()
    root.create_bucket(Bucket="ip-data")
    root.put_object(Bucket="ip-data", Key="k", Body=b"v")

    def pol(cidr):
        return json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::ip-data/*",
            "Condition": {"IpAddress": {"aws:SourceIp": cidr}}}]})

    kid, sec = new_key(srv, "--policy", pol("10.0.0.0/8"))
    s3 = srv.client(access_key=kid, secret_key=sec)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="ip-data", Key="k")
    assert code_of(e) == "AccessDenied"
    cli(srv, "key", "policy", kid, pol("127.0.0.0/8"))
    assert s3.get_object(Bucket="ip-data", Key="k")["Body"].read() == b"v"


def test_malformed_policies_rejected(srv):
    root = srv.client()
    root.create_bucket(Bucket="bad-pol")
    bad = [
        "not json",
        json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*",
                                   "NotAction": "s3:GetObject",
                                   "Resource": "arn:aws:s3:::bad-pol/*"}]}),
        json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*",
                                   "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bad-pol/*",
                                   "Condition": {"NumericLessThan": {"s3:max-keys": "10"}}}]}),
        json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*",
                                   "Action": "s3:GetObject",
                                   "Resource": "arn:aws:s3:::another-bucket/*"}]}),
        json.dumps({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                                   "Resource": "arn:aws:s3:::bad-pol/*"}]}),  # no Principal
        json.dumps({"Statement": [{"Effect": "Maybe", "Principal": "*",
                                   "Action": "s3:GetObject",
                                   "Resource": "arn:aws:s3:::bad-pol/*"}]}),
    ]
    for doc in bad:
        with pytest.raises(ClientError) as e:
            root.put_bucket_policy(Bucket="bad-pol", Policy=doc)
        assert code_of(e) == "MalformedPolicy", doc
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as e:
        root.get_bucket_policy(Bucket="bad-pol")
    assert code_of(e) == "NoSuchBucketPolicy"
    # identity policies are validated too
    r = cli(srv, "key", "create", "--policy", '{"Statement": {"Effect": "Allow"}}', check=False)
    assert r.returncode != 0 and "Action" in r.stderr
    with pytest.raises(ClientError) as e:
        root.put_bucket_policy(Bucket="no-such-bucket-pol", Policy=bad[1])
    assert code_of(e) in ("NoSuchBucket", "MalformedPolicy")


def test_replication_key_cannot_read(srv):
    root = srv.client()
    root.create_bucket(Bucket="repl-data")
    root.put_object(Bucket="repl-data", Key="k", Body=b"v")
    kid, sec = new_key(srv, "--access", "replication")
    s3 = srv.client(access_key=kid, secret_key=sec)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="repl-data", Key="k")
    assert code_of(e) == "AccessDenied"
    # The policy layer lets the replication key through to repl/ (whose own
    # check may still answer, in JSON); a data key is stopped by the policy
    # layer itself (S3 XML AccessDenied).
    st, _, body = srv.request("GET", "/v1/repl/info", access_key=kid, secret_key=sec)
    assert b"<Code>AccessDenied</Code>" not in body, body
    rkid, rsec = new_key(srv, "--access", "read")
    st, _, body = srv.request("GET", "/v1/repl/info", access_key=rkid, secret_key=rsec)
    assert st == 403 and b"<Code>AccessDenied</Code>" in body


def test_metrics_and_stats_are_permission_gated(srv):
    root = srv.client()
    root.create_bucket(Bucket="metrics-data")
    root.put_object(Bucket="metrics-data", Key="k", Body=b"12345")
    st, hdrs, body = srv.request("GET", "/metrics")
    assert st == 200 and hdrs["content-type"].startswith("text/plain")
    text = body.decode()
    assert 'seglake_requests_total{op="PutObject",status="200"}' in text
    assert "seglake_request_duration_seconds_bucket" in text
    assert "seglake_disk_free_bytes" in text and "seglake_objects" in text
    st, _, body = srv.request("GET", "/v1/meta/stats")
    assert st == 200
    stats = json.loads(body)
    assert stats["objects"] >= 1 and stats["requests"]["total"] >= 1
    st, _, _ = srv.request("GET", "/metrics", sign=False)
    assert st == 403
    kid, sec = new_key(srv, "--access", "read")
    st, _, _ = srv.request("GET", "/metrics", access_key=kid, secret_key=sec)
    assert st == 403
    mid, msec = new_key(srv, "--policy", json.dumps({"Statement": [{
        "Effect": "Allow", "Action": ["seglake:GetMetrics", "seglake:GetStats"],
        "Resource": "*"}]}))
    st, _, _ = srv.request("GET", "/metrics", access_key=mid, secret_key=msec)
    assert st == 200
    st, _, _ = srv.request("GET", "/v1/meta/stats", access_key=mid, secret_key=msec)
    assert st == 200
    # the access log is JSON, with key ids and no signatures; a request's
    # line is written when its connection is done, after the client has the
    # answer, so wait for the last two
    def records(log):
        return [json.loads(l) for l in log.splitlines() if l.startswith('{"time"')]

    def has(log, op):
        return any(r["op"] == op and r["key_id"] == mid for r in records(log))

    assert srv.wait_log(lambda log: has(log, "GetMetrics") and has(log, "GetStats")), \
        srv.log_tail()
    recs = records(srv.log())
    assert all("request_id" in r and "status" in r and "duration_ms" in r for r in recs)
    assert "Signature=" not in srv.log()


def test_metrics_open_to_a_cidr(tmp_path):
    s = start_server(tmp_path, extra_args=["--metrics-open-cidr", "127.0.0.0/8"])
    try:
        st, _, body = s.request("GET", "/metrics", sign=False)
        assert st == 200 and b"seglake_requests_in_flight" in body
        st, _, _ = s.request("GET", "/v1/meta/stats", sign=False)
        assert st == 403  # only /metrics is opened
    finally:
        assert s.stop() == 0
