"""Replication endpoints and `seglake repl` on one machine (no namespaces).

A daemon on 127.0.0.1 plus data dirs that `seglake repl pull|push|bootstrap`
work on: one-shot rounds, bootstrap, push, oplog retention and the clear
re-bootstrap error below the horizon, SigV4 and root-key enforcement, bad
input answered with 4xx JSON, status/conflicts from a data dir, validate
finding a difference. Not here: multi-host behaviour (test_repl_hosts.py).
"""
import json
import os
import subprocess
import time

import pytest

from conftest import ACCESS_KEY, SECRET_KEY, init_data_dir, seglake_bin, start_server


def run(*args, env=None, check=True):
    e = dict(os.environ)
    e["SEGLAKE_PEER_ACCESS_KEY"] = ACCESS_KEY
    e["SEGLAKE_PEER_SECRET_KEY"] = SECRET_KEY
    e.update(env or {})
    r = subprocess.run([seglake_bin()] + list(args), capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, env=e, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError("seglake %s: %d\n%s%s" % (" ".join(args), r.returncode, r.stdout,
                                                      r.stderr))
    return r


@pytest.fixture
def srv(tmp_path):
    s = start_server(tmp_path, extra_args=["--repl-trim", "--quiet"])
    yield s
    s.stop()


def test_bootstrap_pull_push_validate(srv, tmp_path):
    s3 = srv.client()
    s3.create_bucket(Bucket="one")
    s3.put_object(Bucket="one", Key="a", Body=b"alpha" * 1000)
    s3.put_object(Bucket="one", Key="b", Body=os.urandom(5 << 20))
    local = str(tmp_path / "local")
    r = run("repl", "bootstrap", "--peer", srv.endpoint, "--data", local)
    assert "3 applied" in r.stdout and "3 chunks" in r.stdout, r.stdout
    run("repl", "validate", "--peer", srv.endpoint, "--data", local, "--chunks")
    # a second round moves nothing
    r = run("repl", "pull", "--peer", srv.endpoint, "--data", local)
    assert "0 entries" in r.stdout, r.stdout
    # a local change is pushed; the daemon applies it
    f = tmp_path / "f"
    f.write_bytes(b"made offline")
    run("put", "one/offline", str(f), "--data", local)
    r = run("repl", "push", "--peer", srv.endpoint, "--data", local)
    assert "1 applied" in r.stdout, r.stdout
    assert s3.get_object(Bucket="one", Key="offline")["Body"].read() == b"made offline"
    # a re-sent (copied) object moves no chunk data
    s3.copy_object(Bucket="one", Key="b-copy", CopySource={"Bucket": "one", "Key": "b"})
    r = run("repl", "pull", "--peer", srv.endpoint, "--data", local)
    assert "1 applied" in r.stdout and "0 chunks" in r.stdout, r.stdout
    run("repl", "validate", "--peer", srv.endpoint, "--data", local)
    # a difference is found and reported, exit 1
    run("rm", "one/a", "--data", local)
    r = run("repl", "validate", "--peer", srv.endpoint, "--data", local, check=False)
    assert r.returncode == 1 and "one/a" in r.stdout, r.stdout
    # status of the data dir: what it applied from the daemon
    st = json.loads(run("repl", "status", "--data", local, "--json").stdout)
    assert st["inbound"] and st["inbound"][0]["seq"] >= 5, st
    # bootstrap refuses a non-empty dir
    r = run("repl", "bootstrap", "--peer", srv.endpoint, "--data", local, check=False)
    assert r.returncode == 1 and "not empty" in r.stderr


def test_retention_and_rebootstrap_error(srv, tmp_path):
    s3 = srv.client()
    s3.create_bucket(Bucket="ret")
    local = str(tmp_path / "local")
    run("repl", "bootstrap", "--peer", srv.endpoint, "--data", local)
    for i in range(5):
        s3.put_object(Bucket="ret", Key="k%d" % i, Body=b"x")
    run("repl", "pull", "--peer", srv.endpoint, "--data", local)
    run("repl", "pull", "--peer", srv.endpoint, "--data", local)   # acknowledges all
    deadline = time.time() + 15
    horizon = 0
    while time.time() < deadline and horizon == 0:
        horizon = json.loads(run("repl", "status", "--url", srv.endpoint, "--json").stdout)["horizon"]
        time.sleep(0.3)
    assert horizon >= 6
    # the acknowledged peer keeps going
    s3.put_object(Bucket="ret", Key="after", Body=b"y")
    r = run("repl", "pull", "--peer", srv.endpoint, "--data", local)
    assert "1 applied" in r.stdout
    # a host below the horizon cannot catch up from the oplog: told to
    # re-bootstrap, clearly
    fresh = str(tmp_path / "fresh")
    init_data_dir(fresh)
    r = run("repl", "pull", "--peer", srv.endpoint, "--data", fresh, check=False)
    assert r.returncode == 1 and "re-bootstrap" in r.stderr and "trimmed" in r.stderr, r.stderr
    # ... and bootstrap (from the snapshot, the history being trimmed) gets it going
    r = run("repl", "bootstrap", "--peer", srv.endpoint, "--data", fresh)
    assert "snapshot" in r.stdout, r.stdout
    r = run("repl", "validate", "--peer", srv.endpoint, "--data", fresh, check=False)
    assert r.returncode == 0, r.stdout + r.stderr


def test_endpoints_authenticate_and_reject_bad_input(srv):
    st, _, body = srv.request("GET", "/v1/repl/info")
    assert st == 200 and len(json.loads(body)["node"]) == 16
    # unsigned and badly signed requests are refused
    st, _, _ = srv.request("GET", "/v1/repl/oplog", sign=False)
    assert st == 403
    st, _, _ = srv.request("GET", "/v1/repl/oplog", secret_key="wrong-secret")
    assert st == 403
    r = run("repl", "pull", "--peer", srv.endpoint, "--data", "/nonexistent-dir", check=False)
    assert r.returncode == 1
    # bad parameters and bodies: 4xx with a JSON message, daemon unharmed
    for method, path, query, body in (
            ("GET", "/v1/repl/oplog", "after=abc", b""),
            ("GET", "/v1/repl/oplog", "node=zz", b""),
            ("POST", "/v1/repl/chunks", "", b"not-a-hash\n"),
            ("POST", "/v1/repl/push/apply", "", b"{]"),
            ("POST", "/v1/repl/push/apply", "", b'{"node":"0123456789abcdef","seq":1,"entries":["{}"]}'),
            ("POST", "/v1/repl/push/chunks", "", b"\x00" * 40),
            ("GET", "/v1/repl/nothing", "", b"")):
        st, _, data = srv.request(method, path, query=query, body=body)
        assert 400 <= st < 500, (path, query, st, data)
        assert json.loads(data)["message"], data
    st, _, body = srv.request("GET", "/v1/repl/status")
    assert st == 200 and json.loads(body)["node"]
    # a chunk that does not match its hash is refused
    rec = bytes(32) + (5).to_bytes(4, "big") + b"hello"
    st, _, data = srv.request("POST", "/v1/repl/push/chunks", body=rec)
    assert st == 400 and b"hash" in data, data


def test_serve_rejects_bad_peer_url(tmp_path):
    d = str(tmp_path / "d")
    init_data_dir(d)
    r = subprocess.run([seglake_bin(), "serve", "--data", d, "--listen", "127.0.0.1:0",
                        "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY,
                        "--peer", "ftp://nowhere"], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=30)
    assert r.returncode != 0 and "http://" in r.stderr, r.stderr


def _key(srv, *args):
    """Creates a key through the running daemon's admin socket; returns (id, secret)."""
    r = subprocess.run([seglake_bin(), "key", "create"] + list(args) + ["--data", srv.data_dir],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    val = {l.split(":", 1)[0]: l.split(":", 1)[1].strip() for l in r.stdout.splitlines()
           if ":" in l}
    return val["access key"], val["secret key"]


def test_replication_key_replicates_and_data_key_does_not(srv, tmp_path):
    s3 = srv.client()
    s3.create_bucket(Bucket="scoped")
    s3.put_object(Bucket="scoped", Key="k", Body=b"replicate me")
    rk, rs = _key(srv, "--name", "peer-b", "--access", "replication")
    dk, ds = _key(srv, "--name", "app", "--access", "readwrite", "--bucket", "scoped")
    # the replication key replicates (and nothing else: test_auth_policies)
    local = str(tmp_path / "replica")
    run("repl", "bootstrap", "--peer", srv.endpoint, "--data", local,
        env={"SEGLAKE_PEER_ACCESS_KEY": rk, "SEGLAKE_PEER_SECRET_KEY": rs})
    r = run("get", "scoped/k", "-", "--data", local)
    assert r.stdout == "replicate me"
    st, _, _ = srv.request("GET", "/v1/repl/oplog", access_key=rk, secret_key=rs)
    assert st == 200
    # a data key may not read the oplog (which would reveal every bucket)
    st, _, body = srv.request("GET", "/v1/repl/oplog", access_key=dk, secret_key=ds)
    assert st == 403, body
    # ... nor the snapshot; the replication key may, unsigned requests may not
    st, _, body = srv.request("GET", "/v1/repl/snapshot", access_key=dk, secret_key=ds)
    assert st == 403, body
    st, _, body = srv.request("GET", "/v1/repl/snapshot", sign=False)
    assert st == 403, body
    st, _, body = srv.request("GET", "/v1/repl/snapshot", access_key=rk, secret_key=rs)
    assert st == 200, body
    lines = [json.loads(x) for x in body.decode().splitlines()]
    assert lines[0]["t"] == "header" and lines[0]["head"] >= 2, lines[0]
    assert lines[-1] == {"t": "end", "count": len(lines) - 2}, lines[-1]
    recs = lines[1:-1]
    assert any(x["t"] == "bucket" and x["name"] == "scoped" for x in recs), recs
    assert any(x["t"] == "version" and x["k"] == "k" and x["cur"] for x in recs), recs
    r = run("repl", "pull", "--peer", srv.endpoint, "--data", local, check=False,
            env={"SEGLAKE_PEER_ACCESS_KEY": dk, "SEGLAKE_PEER_SECRET_KEY": ds})
    assert r.returncode != 0 and "AccessDenied" in (r.stdout + r.stderr), r.stdout + r.stderr


def _chunk_records(data):
    """Complete [hash][u32 BE len][data] records of a chunk stream, in order."""
    recs, off = [], 0
    while off + 36 <= len(data):
        h, n = data[off:off + 32], int.from_bytes(data[off + 32:off + 36], "big")
        if n == 0xffffffff:
            recs.append((h, None))
            off += 36
            continue
        if off + 36 + n > len(data):
            break
        recs.append((h, data[off + 36:off + 36 + n]))
        off += 36 + n
    return recs, off


def test_chunk_stream_frames_stored_and_missing_and_stops_at_damage(srv):
    """POST /v1/repl/chunks: each stored chunk comes whole under its hash, a
    hash not stored here gets the missing length and no data, in the order
    asked; a chunk damaged on disk cuts the stream rather than being sent."""
    import hashlib
    import http.client
    s3 = srv.client()
    s3.create_bucket(Bucket="chunkstream")
    chunk = 4 << 20
    body = os.urandom(2 * chunk + 12345)
    s3.put_object(Bucket="chunkstream", Key="obj", Body=body)
    pieces = [body[i:i + chunk] for i in range(0, len(body), chunk)]
    hashes = [hashlib.sha256(p).digest() for p in pieces]
    absent = hashlib.sha256(b"not stored anywhere").digest()
    ask = [hashes[0], absent, hashes[2], hashes[1]]
    st, _, data = srv.request("POST", "/v1/repl/chunks",
                              body=b"".join(h.hex().encode() + b"\n" for h in ask))
    assert st == 200
    recs, used = _chunk_records(data)
    assert used == len(data)
    assert [h for h, _ in recs] == ask
    assert recs[1][1] is None
    assert [recs[0][1], recs[2][1], recs[3][1]] == [pieces[0], pieces[2], pieces[1]]
    # damage the middle of the second chunk in its segment
    probe = pieces[1][1000:1064]
    hit = None
    for root, _, files in os.walk(srv.data_dir):
        for f in files:
            if f.startswith("seg-") and f.endswith(".sl"):
                raw = open(os.path.join(root, f), "rb").read()
                at = raw.find(probe)
                if at >= 0:
                    hit = (os.path.join(root, f), at)
    assert hit, "chunk bytes not found in any segment under %s" % srv.data_dir
    with open(hit[0], "r+b") as f:
        f.seek(hit[1] + 10)
        b = f.read(1)
        f.seek(hit[1] + 10)
        f.write(bytes([b[0] ^ 0xff]))
    try:
        st, _, data = srv.request("POST", "/v1/repl/chunks",
                                  body=b"".join(h.hex().encode() + b"\n" for h in hashes))
        cut = False
    except (http.client.IncompleteRead, ConnectionError) as e:
        data = getattr(e, "partial", b"")
        cut = True
    recs, _ = _chunk_records(data)
    assert cut or len(recs) < 3, "the damaged chunk was sent"
    for h, d in recs:
        assert d is not None and hashlib.sha256(d).digest() == h
    assert srv.alive()
