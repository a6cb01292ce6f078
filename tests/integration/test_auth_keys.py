"""Access key lifecycle and abuse limits against a real `seglake serve`.

What it covers: create -> use -> disable (refused) -> enable -> rotate (old
secret refused, new one works) -> delete (InvalidAccessKeyId); the root key
of DATA/credentials migrated into the key table; meta.db (and its WAL)
inspected with sqlite3 to show no secret in clear; a burst of bad
signatures answered with 503 SlowDown (and a log line) while a good client
keeps working. Not here: policy grammar (test_auth_policies.py).
"""

import json
import os
import sqlite3
import threading

import pytest
from botocore.exceptions import ClientError

from conftest import seglake_cli as cli, start_server






def code_of(e):
    return e.value.response["Error"]["Code"]


def test_key_lifecycle_and_no_plaintext(tmp_path):
    srv = start_server(tmp_path, credentials=False)
    try:
        creds = {}
        with open(os.path.join(srv.data_dir, "credentials")) as f:
            for line in f:
                if "=" in line and not line.startswith("#"):
                    k, v = line.split("=", 1)
                    creds[k.strip()] = v.strip()
        root = srv.client(access_key=creds["access_key"], secret_key=creds["secret_key"])
        root.create_bucket(Bucket="life")
        keys = json.loads(cli(srv, "key", "list", "--json").stdout)["keys"]
        assert [k["id"] for k in keys if k["root"]] == [creds["access_key"]]
        assert all("secret" not in k for k in keys)

        r = cli(srv, "key", "create", "--name", "app1", "--access", "readwrite",
                "--bucket", "life")
        out = r.stdout
        kid = [l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("access key:")][0]
        sec = [l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("secret key:")][0]
        assert "shown only now" in out
        s3 = srv.client(access_key=kid, secret_key=sec)
        s3.put_object(Bucket="life", Key="a", Body=b"1")
        assert s3.get_object(Bucket="life", Key="a")["Body"].read() == b"1"

        shown = cli(srv, "key", "show", kid).stdout
        assert sec not in shown and "enabled" in shown
        assert sec not in cli(srv, "key", "list").stdout

        cli(srv, "key", "disable", kid)
        with pytest.raises(ClientError) as e:
            s3.get_object(Bucket="life", Key="a")
        assert code_of(e) in ("AccessDenied", "InvalidAccessKeyId")
        assert "DISABLED" in cli(srv, "key", "list").stdout
        cli(srv, "key", "enable", kid)
        assert s3.get_object(Bucket="life", Key="a")["Body"].read() == b"1"

        rot = json.loads(cli(srv, "key", "rotate", kid, "--json").stdout)
        new_sec = rot["secret"]
        assert new_sec != sec and rot["id"] == kid
        with pytest.raises(ClientError) as e:
            s3.get_object(Bucket="life", Key="a")
        assert code_of(e) == "SignatureDoesNotMatch"
        s3new = srv.client(access_key=kid, secret_key=new_sec)
        assert s3new.get_object(Bucket="life", Key="a")["Body"].read() == b"1"

        # meta.db alone reveals no secret: not in the table, not anywhere in the files
        db = os.path.join(srv.data_dir, "meta.db")
        con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
        try:
            rows = con.execute("SELECT id, secret FROM keys").fetchall()
        finally:
            con.close()
        assert {r[0] for r in rows} >= {kid, creds["access_key"]}
        for _, blob in rows:
            assert isinstance(blob, bytes)
            for s in (sec, new_sec, creds["secret_key"]):
                assert s.encode() not in blob
        for name in ("meta.db", "meta.db-wal"):
            p = os.path.join(srv.data_dir, name)
            if os.path.exists(p):
                data = open(p, "rb").read()
                for s in (sec, new_sec, creds["secret_key"]):
                    assert s.encode() not in data, name
        mk = os.path.join(srv.data_dir, "master.key")
        assert oct(os.stat(mk).st_mode & 0o777) == "0o600"

        r = cli(srv, "key", "delete", creds["access_key"], check=False)
        assert r.returncode != 0 and "root key" in r.stderr
        cli(srv, "key", "delete", kid)
        with pytest.raises(ClientError) as e:
            s3new.get_object(Bucket="life", Key="a")
        assert code_of(e) == "InvalidAccessKeyId"
        r = cli(srv, "key", "show", kid, check=False)
        assert r.returncode != 0 and "no such key" in r.stderr
    finally:
        assert srv.stop() == 0
    # the whole log, now that the daemon has stopped: no line is still to come
    assert new_sec not in srv.log()
    # keys persist across restarts and are managed directly without a daemon
    r = cli(srv, "key", "list")
    assert creds["access_key"] in r.stdout and kid not in r.stdout


def test_bad_signature_burst_gets_slowdown(tmp_path):
    srv = start_server(tmp_path, extra_args=["--auth-fail-burst", "5",
                                             "--auth-fail-per-min", "6"])
    try:
        good = srv.client()
        good.create_bucket(Bucket="burst")
        good.put_object(Bucket="burst", Key="k", Body=b"v")
        statuses = []
        good_errors = []
        stop = threading.Event()

        def good_client():
            c = srv.client()
            while not stop.is_set():
                try:
                    assert c.get_object(Bucket="burst", Key="k")["Body"].read() == b"v"
                except Exception as ex:  # any failure of the good client fails the test
                    good_errors.append(repr(ex))

        t = threading.Thread(target=good_client)
        t.start()
        try:
            for i in range(40):
                st, _, body = srv.request("GET", "/burst/k", secret_key="wrong-secret-%d" % i)
                statuses.append((st, body))
        finally:
            stop.set()
            t.join(30)
        codes = [s for s, _ in statuses]
        assert codes[:5] == [403] * 5
        assert codes.count(503) >= 30
        assert all(b"SlowDown" in b for s, b in statuses if s == 503)
        assert not good_errors, good_errors[:3]
        assert good.get_object(Bucket="burst", Key="k")["Body"].read() == b"v"
        assert '"event":"rate-limited"' in srv.log()
        st, _, body = srv.request("GET", "/metrics")
        assert st == 200 and b'seglake_rate_limited_total{limit="auth_ip"}' in body
        assert b'seglake_auth_failures_total{reason="SignatureDoesNotMatch"}' in body
    finally:
        assert srv.stop() == 0
