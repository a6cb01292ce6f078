"""Hostile object keys through S3, and what the FUSE mount shows for them.

What it covers: keys with `../` and `./` components, empty components,
percent escapes (`%00` refused as InvalidURI, `%2F`, `%25`), control
characters, backslashes, invalid UTF-8, 1,024-byte keys (accepted) and
1,025-byte keys (KeyTooLongError), long path components; for each, no file
appears outside the data dir or the mountpoint, the mount hides keys that
cannot be paths and shows the others inside their bucket only, names created
through the mount map back to exactly one key, and the daemon neither
crashes nor stops serving. Not here: SigV4 canonicalisation of such keys
(auth unit tests), bucket-name validation (test_s3_negative.py).
"""
import errno
import os
import subprocess
import urllib.parse
import uuid

import pytest

from conftest import start_server


def q(raw):
    """Percent-encodes raw key bytes for the request path (keeps '/')."""
    return urllib.parse.quote(raw, safe="/")


def outside_files(root, srv):
    """Files under root that are neither in the data dir, the mount nor logs."""
    out = set()
    for dp, dns, fns in os.walk(root):
        if dp.startswith(srv.data_dir) or dp.startswith(srv.mnt):
            dns[:] = []
            continue
        dns[:] = [d for d in dns if os.path.join(dp, d) not in (srv.data_dir, srv.mnt)]
        out.update(os.path.join(dp, n) for n in dns + fns if not n.endswith(".log"))
    return out


def all_files(root):
    out = set()
    for dp, dns, fns in os.walk(root):
        for n in dns + fns:
            out.add(os.path.join(dp, n))
    return out


@pytest.fixture
def mounted(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    srv = start_server(tmp_path, extra_args=["--quiet", "--mount", str(mnt)])
    srv.mnt = str(mnt)
    yield srv
    srv.stop()
    if os.path.ismount(str(mnt)):
        subprocess.run(["fusermount3", "-u", "-z", str(mnt)], stdin=subprocess.DEVNULL)


def test_hostile_keys_stay_inside_bucket_and_mount(mounted, tmp_path):
    srv = mounted
    s3 = srv.client()
    s3.create_bucket(Bucket="hostile")
    marker = "seglake-escape-" + uuid.uuid4().hex[:10]
    outside_before = outside_files(str(tmp_path), srv)

    # keys sent as raw bytes in the path (percent-encoded where needed)
    accepted = {
        ("../" * 8) + "tmp/" + marker: "dotdot",
        "a/../../" + marker: "inner dotdot",
        "./" + marker: "dot",
        "a//" + marker: "empty component",
        "..": "just dotdot",
        "x/" + ".." : "trailing dotdot",
        "back\\slash\\" + marker: "backslash",
        "ctl\x01\x1f\x7f" + marker: "control chars",
        "nl\n" + marker: "newline",
        "pct%2F" + marker: "literal %2F",
        "l/" + "c" * 300: "component over 255 bytes",
        "k" * 1024: "1024-byte key",
    }
    for key, why in accepted.items():
        st, _, body = srv.request("PUT", "/hostile/" + q(key), body=why.encode())
        assert st == 200, (why, st, body)
        st, _, body = srv.request("GET", "/hostile/" + q(key))
        assert st == 200 and body == why.encode(), (why, st, body)

    # invalid UTF-8 (stray bytes, an overlong '/'): refused before the body,
    # and the error document does not echo the bytes
    for bad in ("bad-%FF%FE-", "%C0%AF", "%ED%A0%80"):
        st, _, body = srv.request("PUT", "/hostile/" + bad + marker, body=b"bad utf8")
        assert st == 400 and b"<Code>InvalidURI</Code>" in body, (bad, st, body)
        body.decode("utf-8")

    # refused
    st, _, body = srv.request("PUT", "/hostile/nul%00" + marker, body=b"x")
    assert st == 400 and b"<Code>InvalidURI</Code>" in body, body
    st, _, body = srv.request("PUT", "/hostile/" + "k" * 1025, body=b"x")
    assert st == 400 and b"<Code>KeyTooLongError</Code>" in body, body
    st, _, body = srv.request("PUT", "/hostile/bad%G1", body=b"x")
    assert st == 400, body
    # a path that names another bucket through dot segments is not normalised
    st, _, body = srv.request("PUT", "/hostile/../other/" + marker, body=b"x")
    assert st == 200
    assert "other" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]

    # the S3 listing returns every key exactly as stored
    keys = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="hostile"):
        keys.update(o["Key"] for o in page.get("Contents", []))
    for key in accepted:
        assert key in keys, repr(key)

    # nothing was created outside the data dir and the mountpoint
    new = outside_files(str(tmp_path), srv) - outside_before
    assert new == set(), new
    assert not any(marker in n for n in os.listdir("/tmp"))
    assert not os.path.exists("/" + marker)

    # the mount: every entry resolves inside the bucket; keys that cannot be
    # paths are not shown; names are shown verbatim
    root = os.path.join(srv.mnt, "hostile")
    seen = all_files(root)
    for p in seen:
        assert os.path.realpath(p).startswith(os.path.realpath(root) + os.sep), p
        name = os.path.basename(p)
        assert name not in (".", "..") and "/" not in name
    top = set(os.listdir(root))
    assert marker not in top  # "./marker" and "a/../../marker" are hidden
    assert "back\\slash\\" + marker in top
    assert "ctl\x01\x1f\x7f" + marker in top
    assert "nl\n" + marker in top
    assert "pct%2F" + marker in top
    assert "k" * 1024 not in top  # a 1024-byte component cannot be a name
    assert os.listdir(os.path.join(root, "l")) == []  # its only key is hidden
    with open(os.path.join(root, "back\\slash\\" + marker), "rb") as f:
        assert f.read() == b"backslash"
    # reading every shown file works (no crash, no error other than EISDIR)
    for p in seen:
        if os.path.isfile(p):
            with open(p, "rb") as f:
                f.read()

    # names written through the mount map to exactly one key, in this bucket
    weird = "mnt-\\-%2F-\x01-" + marker
    with open(os.path.join(root, weird), "wb") as f:
        f.write(b"from the mount")
    assert s3.get_object(Bucket="hostile", Key=weird)["Body"].read() == b"from the mount"
    # a name that is not UTF-8 cannot become a key: EINVAL, nothing stored
    with pytest.raises(OSError) as ei:
        open(os.path.join(root.encode(), b"raw-\xff\xfe-" + marker.encode()), "wb").close()
    assert ei.value.errno == errno.EINVAL
    st, _, body = srv.request("GET", "/hostile", query="list-type=2&prefix=raw-")
    assert st == 200 and b"<KeyCount>0</KeyCount>" in body, body

    assert srv.alive()
    assert s3.head_bucket(Bucket="hostile")["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_mount_is_nosuid_nodev_and_s3_symlinks_stay_links(mounted):
    """Attributes come from object metadata that any writer sets, so the mount
    must not honour setuid bits or device nodes; a symlink written through S3
    is shown as a link (the daemon never follows it)."""
    srv = mounted
    opts = None
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if parts[1] == srv.mnt:
                opts = parts[3].split(",")
    assert opts and "nosuid" in opts and "nodev" in opts, opts
    s3 = srv.client()
    s3.create_bucket(Bucket="attrs")
    s3.put_object(Bucket="attrs", Key="suid", Body=b"#!/bin/sh\nid\n",
                  Metadata={"mode": str(0o104755), "uid": "0", "gid": "0"})
    s3.put_object(Bucket="attrs", Key="link", Body=b"/etc/shadow",
                  Metadata={"mode": str(0o120777)})
    p = os.path.join(srv.mnt, "attrs", "suid")
    assert os.stat(p).st_mode & 0o4000  # shown as stored ...
    link = os.path.join(srv.mnt, "attrs", "link")
    assert os.path.islink(link) and os.readlink(link) == "/etc/shadow"
    # ... but a setuid bit on this mount grants nothing (nosuid, checked above)
    assert srv.alive()
