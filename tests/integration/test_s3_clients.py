"""Real S3 clients against `seglake serve`, unchanged: awscli (s3 cp/sync/ls/rm,
s3api, a file big enough for multipart), s3cmd, rclone (copy/sync/check),
curl --aws-sigv4 and s3fs-fuse mounting a bucket. Keys with spaces,
unicode, '+', '%', '=', '..' and '//' go through every client.
Not here: boto3 API coverage (test_s3_basic.py and friends)."""

import filecmp
import hashlib
import json
import os
import subprocess
import time
import uuid

import pytest

from conftest import tool

ODD_NAMES = ["with space.txt", "unicode-ß-日本.txt", "plus+sign.txt", "pct%41.txt", "eq=ual.txt"]


def make_tree(root):
    os.makedirs(os.path.join(root, "sub", "deeper"), exist_ok=True)
    files = {}
    for i, name in enumerate(ODD_NAMES + ["sub/a.bin", "sub/deeper/b.bin"]):
        data = (name.encode() + b"\n") * (i + 1) + os.urandom(100 * i)
        path = os.path.join(root, name)
        with open(path, "wb") as f:
            f.write(data)
        files[name] = data
    return files


def run(cmd, env, timeout=300, check=True):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s\n%s" % (" ".join(cmd), r.returncode, r.stdout,
                                                         r.stderr))
    return r


# ---- awscli ----------------------------------------------------------------------

def test_awscli(s3server, s3, bucket, tmp_path):
    src = tmp_path / "src"
    files = make_tree(str(src))
    s3server.aws("s3", "sync", str(src), "s3://%s/tree" % bucket)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == sorted("tree/" + n for n in files)
    ls = s3server.aws("s3", "ls", "s3://%s/tree/" % bucket).stdout
    assert "with space.txt" in ls and "PRE sub/" in ls
    dst = tmp_path / "dst"
    s3server.aws("s3", "sync", "s3://%s/tree" % bucket, str(dst))
    for n, data in files.items():
        assert (dst / n).read_bytes() == data
    # odd keys through cp, including '..' and '//' in the key
    for key in ["dir/../dots.txt", "double//slash.txt", "100% sure + more=yes.txt"]:
        s3server.aws("s3", "cp", str(src / ODD_NAMES[0]), "s3://%s/%s" % (bucket, key))
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == files[ODD_NAMES[0]]
        s3server.aws("s3", "cp", "s3://%s/%s" % (bucket, key), str(tmp_path / "back"))
        assert (tmp_path / "back").read_bytes() == files[ODD_NAMES[0]]
    s3server.aws("s3", "rm", "s3://%s/tree/sub" % bucket, "--recursive")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert not any(k.startswith("tree/sub/") for k in keys)
    out = json.loads(s3server.aws("s3api", "head-object", "--bucket", bucket, "--key",
                                  "tree/" + ODD_NAMES[1]).stdout)
    assert out["ContentLength"] == len(files[ODD_NAMES[1]])
    out = json.loads(s3server.aws("s3api", "list-objects-v2", "--bucket", bucket,
                                  "--prefix", "tree/", "--delimiter", "/").stdout)
    assert {p["Prefix"] for p in out.get("CommonPrefixes", [])} == set()
    s3server.aws("s3api", "put-bucket-versioning", "--bucket", bucket,
                 "--versioning-configuration", "Status=Enabled")
    out = json.loads(s3server.aws("s3api", "get-bucket-versioning", "--bucket", bucket).stdout)
    assert out["Status"] == "Enabled"


def test_awscli_multipart(s3server, s3, bucket, tmp_path):
    big = tmp_path / "big.bin"
    data = os.urandom(40 * 1024 * 1024 + 12345)
    big.write_bytes(data)
    s3server.aws("s3", "cp", str(big), "s3://%s/big.bin" % bucket)
    h = s3.head_object(Bucket=bucket, Key="big.bin")
    assert h["ContentLength"] == len(data)
    assert "-" in h["ETag"]  # awscli used multipart (8 MiB parts)
    s3server.aws("s3", "cp", "s3://%s/big.bin" % bucket, str(tmp_path / "big.back"))
    assert hashlib.sha256((tmp_path / "big.back").read_bytes()).digest() == \
        hashlib.sha256(data).digest()


# ---- s3cmd -----------------------------------------------------------------------

def s3cmd_cfg(srv, tmp_path):
    cfg = tmp_path / "s3cfg"
    cfg.write_text("\n".join([
        "[default]",
        "access_key = %s" % srv.access_key,
        "secret_key = %s" % srv.secret_key,
        "host_base = 127.0.0.1:%d" % srv.port,
        "host_bucket = 127.0.0.1:%d" % srv.port,
        "bucket_location = us-east-1",
        "use_https = False",
        "signature_v2 = False",
        "check_ssl_certificate = False",
        "multipart_chunk_size_mb = 5",
        ""]))
    return str(cfg)


def test_s3cmd(s3server, s3, bucket, tmp_path):
    s3cmd = tool("s3cmd")
    cfg = s3cmd_cfg(s3server, tmp_path)
    env = s3server.env(home=tmp_path)
    src = tmp_path / "src"
    files = make_tree(str(src))
    base = [s3cmd, "-c", cfg, "--no-progress"]
    for name in ODD_NAMES:
        run(base + ["put", str(src / name), "s3://%s/s3cmd/%s" % (bucket, name)], env)
    out = run(base + ["ls", "s3://%s/s3cmd/" % bucket], env).stdout
    for name in ODD_NAMES:
        assert name in out
    for name in ODD_NAMES:
        dst = tmp_path / ("got-" + name)
        run(base + ["get", "s3://%s/s3cmd/%s" % (bucket, name), str(dst)], env)
        assert dst.read_bytes() == files[name]
    # multipart through s3cmd (5 MiB chunks)
    big = tmp_path / "big"
    big.write_bytes(os.urandom(12 * 1024 * 1024))
    run(base + ["put", str(big), "s3://%s/s3cmd/big" % bucket], env)
    assert s3.get_object(Bucket=bucket, Key="s3cmd/big")["Body"].read() == big.read_bytes()
    run(base + ["del", "s3://%s/s3cmd/%s" % (bucket, ODD_NAMES[0])], env)
    out = run(base + ["ls", "s3://%s/s3cmd/" % bucket], env).stdout
    assert ODD_NAMES[0] not in out
    name = "s3cmd-" + uuid.uuid4().hex[:8]
    run(base + ["mb", "s3://" + name], env)
    run(base + ["rb", "s3://" + name], env)


# ---- rclone ----------------------------------------------------------------------

def test_rclone(s3server, s3, bucket, tmp_path):
    rclone = tool("rclone")
    env = s3server.env(home=tmp_path)
    src = tmp_path / "src"
    files = make_tree(str(src))
    (src / "dots..name").write_bytes(b"dots")
    rc = [rclone, "--config", "/dev/null", "-q"]
    run(rc + ["copy", str(src), "sl:%s/rc" % bucket], env)
    run(rc + ["check", str(src), "sl:%s/rc" % bucket], env)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert "rc/" + ODD_NAMES[1] in keys and "rc/sub/deeper/b.bin" in keys
    os.remove(src / ODD_NAMES[0])
    (src / "new file").write_bytes(b"new")
    run(rc + ["sync", str(src), "sl:%s/rc" % bucket], env)
    run(rc + ["check", str(src), "sl:%s/rc" % bucket], env)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert "rc/" + ODD_NAMES[0] not in keys and "rc/new file" in keys
    dst = tmp_path / "dst"
    run(rc + ["copy", "sl:%s/rc" % bucket, str(dst)], env)
    cmp = filecmp.dircmp(str(src), str(dst))
    assert not cmp.left_only and not cmp.right_only and not cmp.diff_files
    # big enough for rclone's multipart (--s3-upload-cutoff)
    big = tmp_path / "bigdir"
    big.mkdir()
    (big / "big").write_bytes(os.urandom(11 * 1024 * 1024))
    run(rc + ["copy", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", str(big),
              "sl:%s/rcbig" % bucket], env)
    run(rc + ["check", str(big), "sl:%s/rcbig" % bucket], env)


# ---- curl ------------------------------------------------------------------------

def test_curl_sigv4(s3server, s3, bucket, tmp_path):
    curl = tool("curl")
    env = s3server.env()
    user = "%s:%s" % (s3server.access_key, s3server.secret_key)
    sig = "aws:amz:%s:s3" % s3server.region
    f = tmp_path / "up.txt"
    f.write_bytes(b"curl body\n")
    for key, enc in [("curl.txt", "curl.txt"), ("with space+plus.txt", "with%20space%2Bplus.txt")]:
        url = "%s/%s/%s" % (s3server.endpoint, bucket, enc)
        r = run([curl, "-sS", "-f", "--aws-sigv4", sig, "--user", user,
                 "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "-T", str(f), url], env)
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"curl body\n"
        r = run([curl, "-sS", "-f", "--aws-sigv4", sig, "--user", user,
                 "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", url], env)
        assert r.stdout == "curl body\n"
    r = run([curl, "-sS", "--aws-sigv4", sig, "--user", user, "-H",
             "x-amz-content-sha256: UNSIGNED-PAYLOAD",
             "%s/%s?list-type=2" % (s3server.endpoint, bucket)], env)
    assert "<Key>curl.txt</Key>" in r.stdout
    r = run([curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--aws-sigv4", sig, "--user",
             s3server.access_key + ":wrong", "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
             "%s/%s/curl.txt" % (s3server.endpoint, bucket)], env)
    assert r.stdout == "403"


# ---- s3fs ------------------------------------------------------------------------

def test_s3fs_mount(s3server, s3, bucket, tmp_path):
    s3fs = tool("s3fs")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    pw = tmp_path / "passwd"
    pw.write_text("%s:%s\n" % (s3server.access_key, s3server.secret_key))
    os.chmod(pw, 0o600)
    s3.put_object(Bucket=bucket, Key="pre-existing.txt", Body=b"from s3\n")
    r = subprocess.run([s3fs, bucket, str(mnt), "-o", "url=%s" % s3server.endpoint,
                        "-o", "use_path_request_style", "-o", "passwd_file=%s" % pw,
                        "-o", "endpoint=%s" % s3server.region, "-o", "sigv4",
                        "-o", "stat_cache_expire=1", "-o", "dbglevel=warn"],
                       capture_output=True, text=True, env=s3server.env(home=tmp_path),
                       stdin=subprocess.DEVNULL, timeout=60)
    if r.returncode != 0:
        pytest.fail("s3fs failed: %s %s" % (r.stdout, r.stderr))
    try:
        deadline = time.time() + 15
        while time.time() < deadline and not os.path.ismount(mnt):
            time.sleep(0.1)
        assert os.path.ismount(mnt)
        assert (mnt / "pre-existing.txt").read_bytes() == b"from s3\n"
        (mnt / "written by s3fs.txt").write_bytes(b"hello from the mount\n")
        os.mkdir(mnt / "newdir")
        (mnt / "newdir" / "inner ß.bin").write_bytes(os.urandom(300000))
        listing = sorted(os.listdir(mnt))
        assert "written by s3fs.txt" in listing and "newdir" in listing
        assert s3.get_object(Bucket=bucket, Key="written by s3fs.txt")["Body"].read() == \
            b"hello from the mount\n"
        data = (mnt / "newdir" / "inner ß.bin").read_bytes()
        assert s3.get_object(Bucket=bucket, Key="newdir/inner ß.bin")["Body"].read() == data
        h = s3.head_object(Bucket=bucket, Key="written by s3fs.txt")
        assert "mode" in h["Metadata"]  # s3fs keeps POSIX attributes as x-amz-meta-*
        os.remove(mnt / "written by s3fs.txt")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        assert "written by s3fs.txt" not in keys
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True, timeout=30)
        if os.path.ismount(mnt):
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)
