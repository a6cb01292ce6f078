"""Checksums and streaming bodies against `seglake serve`: x-amz-checksum-*
headers (boto3 and raw), aws-chunked uploads in all three streaming SigV4
modes with trailing checksums, tampered chunk signatures, wrong trailers,
payload-hash mismatches, and the checksum coming back with
x-amz-checksum-mode: ENABLED. Also a modern SDK (newer boto3, if one is
installed outside Debian) with its default trailer checksums."""

import base64
import hashlib
import os
import shutil
import subprocess

import pytest
from botocore.exceptions import ClientError

from conftest import crc32_b64, crc32c_b64, sha256_b64, streaming_put


def crc64nvme_b64(data):
    poly = 0x9A6C9329AC4BC9B5
    crc = 0xFFFFFFFFFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
    return base64.b64encode((crc ^ 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")).decode()


def sha1_b64(data):
    return base64.b64encode(hashlib.sha1(data).digest()).decode()


ALGOS = {"crc32": crc32_b64, "crc32c": crc32c_b64, "crc64nvme": crc64nvme_b64,
         "sha1": sha1_b64, "sha256": sha256_b64}


@pytest.mark.parametrize("algo", ["CRC32", "SHA1", "SHA256"])
def test_boto3_checksum_header(s3, bucket, algo):
    data = os.urandom(3000)
    r = s3.put_object(Bucket=bucket, Key="c", Body=data, ChecksumAlgorithm=algo)
    want = ALGOS[algo.lower()](data)
    assert r["Checksum" + algo] == want
    h = s3.head_object(Bucket=bucket, Key="c", ChecksumMode="ENABLED")
    assert h["Checksum" + algo] == want
    h = s3.head_object(Bucket=bucket, Key="c")
    assert "Checksum" + algo not in h
    g = s3.get_object(Bucket=bucket, Key="c", ChecksumMode="ENABLED")
    assert g["Body"].read() == data


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_raw_checksum_header(s3server, s3, bucket, algo):
    data = b"checksum me " * 100
    good = ALGOS[algo](data)
    st, h, body = s3server.request("PUT", "/%s/%s" % (bucket, algo),
                                   headers={"x-amz-checksum-" + algo: good}, body=data)
    assert st == 200, body
    assert h["x-amz-checksum-" + algo] == good
    bad = ALGOS[algo](data + b"x")
    st, _, body = s3server.request("PUT", "/%s/%s-bad" % (bucket, algo),
                                   headers={"x-amz-checksum-" + algo: bad}, body=data)
    assert st == 400 and b"<Code>BadDigest</Code>" in body
    st, _, body = s3server.request("PUT", "/%s/%s-bad" % (bucket, algo),
                                   headers={"x-amz-checksum-" + algo: "###"}, body=data)
    assert st == 400 and b"InvalidRequest" in body
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key=algo + "-bad")
    st, h, _ = s3server.request("HEAD", "/%s/%s" % (bucket, algo),
                                headers={"x-amz-checksum-mode": "ENABLED"})
    assert st == 200 and h["x-amz-checksum-" + algo] == good


def test_streaming_signed(s3server, s3, bucket):
    data = os.urandom(300_000)
    st, _, body = streaming_put(s3server, "/%s/s" % bucket, data, chunk=65536)
    assert st == 200, body
    assert s3.get_object(Bucket=bucket, Key="s")["Body"].read() == data
    h = s3.head_object(Bucket=bucket, Key="s")
    assert h["ContentLength"] == len(data)
    assert h.get("ContentEncoding") in (None, "")  # aws-chunked is not stored


def test_streaming_tampered_chunk(s3server, s3, bucket):
    data = os.urandom(200_000)
    st, _, body = streaming_put(s3server, "/%s/t" % bucket, data, chunk=65536, tamper_chunk=1)
    assert st == 403 and b"SignatureDoesNotMatch" in body
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="t")
    # the last (empty) chunk signature is checked too
    st, _, body = streaming_put(s3server, "/%s/t" % bucket, data, chunk=65536, tamper_chunk=4)
    assert st == 403
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="t")


@pytest.mark.parametrize("mode", ["signed-trailer", "unsigned-trailer"])
@pytest.mark.parametrize("algo", ["crc32", "crc32c", "crc64nvme", "sha256"])
def test_streaming_trailer(s3server, s3, bucket, mode, algo):
    data = os.urandom(20_000)
    name = "x-amz-checksum-" + algo
    good = ALGOS[algo](data)
    key = "tr-%s-%s" % (mode, algo)
    st, h, body = streaming_put(s3server, "/%s/%s" % (bucket, key), data, chunk=8192,
                                mode=mode, trailer=(name, good))
    assert st == 200, body
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data
    st, h, _ = s3server.request("HEAD", "/%s/%s" % (bucket, key),
                                headers={"x-amz-checksum-mode": "ENABLED"})
    assert h[name] == good
    st, _, body = streaming_put(s3server, "/%s/%s-bad" % (bucket, key), data, chunk=8192,
                                mode=mode, trailer=(name, good), trailer_value=ALGOS[algo](b"other"))
    assert st == 400 and b"BadDigest" in body, body
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key=key + "-bad")


def test_payload_hash_mismatch(s3server, s3, bucket):
    st, _, body = s3server.request("PUT", "/%s/h" % bucket, body=b"real body",
                                   payload_hash=hashlib.sha256(b"other body").hexdigest())
    assert st == 400 and b"XAmzContentSHA256Mismatch" in body
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="h")
    st, _, body = s3server.request("PUT", "/%s/u" % bucket, body=b"unsigned",
                                   payload_hash="UNSIGNED-PAYLOAD")
    assert st == 200, body
    assert s3.get_object(Bucket=bucket, Key="u")["Body"].read() == b"unsigned"


def test_multipart_part_checksum(s3server, s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    data = os.urandom(1000)
    st, h, body = s3server.request("PUT", "/%s/mp" % bucket, "partNumber=1&uploadId=" + up,
                                   headers={"x-amz-checksum-crc32": crc32_b64(data)}, body=data)
    assert st == 200 and h["x-amz-checksum-crc32"] == crc32_b64(data)
    st, _, body = s3server.request("PUT", "/%s/mp" % bucket, "partNumber=2&uploadId=" + up,
                                   headers={"x-amz-checksum-crc32": crc32_b64(b"zz")}, body=data)
    assert st == 400 and b"BadDigest" in body
    st, _, body = streaming_put(s3server, "/%s/mp" % bucket, data, chunk=300,
                                mode="unsigned-trailer", query="partNumber=3&uploadId=" + up,
                                trailer=("x-amz-checksum-crc32", crc32_b64(data)))
    assert st == 200, body
    parts = s3.list_parts(Bucket=bucket, Key="mp", UploadId=up)["Parts"]
    assert [p["PartNumber"] for p in parts] == [1, 3]
    s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=up)


def _modern_python():
    """A python3 with a boto3 new enough to send default trailer checksums."""
    for cand in [os.environ.get("SEGLAKE_MODERN_PYTHON"), shutil.which("python3")]:
        if not cand or os.path.realpath(cand) == os.path.realpath("/usr/bin/python3"):
            continue
        r = subprocess.run([cand, "-c", "import botocore; print(botocore.__version__)"],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if r.returncode == 0:
            major, minor = (int(x) for x in r.stdout.strip().split(".")[:2])
            if (major, minor) >= (1, 36):
                return cand
    return None


def test_modern_sdk_default_checksums(s3server, bucket, tmp_path):
    py = _modern_python()
    if not py:
        pytest.skip("optional client: no boto3 >= 1.36 outside Debian's python")
    script = tmp_path / "modern.py"
    script.write_text(r'''
import os, sys, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3],
                  config=Config(s3={"addressing_style": "path"}))
b = sys.argv[4]
data = os.urandom(9 * 1024 * 1024)
open(sys.argv[5], "wb").write(data)
s3.put_object(Bucket=b, Key="modern-put", Body=data)
s3.upload_file(sys.argv[5], b, "modern-upload")       # multipart, trailers per part
assert s3.get_object(Bucket=b, Key="modern-put")["Body"].read() == data
assert s3.get_object(Bucket=b, Key="modern-upload")["Body"].read() == data
h = s3.head_object(Bucket=b, Key="modern-put", ChecksumMode="ENABLED")
print("CHECKSUMS", sorted(k for k in h if k.startswith("Checksum")))
''')
    env = dict(os.environ)
    env.pop("AWS_CA_BUNDLE", None)
    r = subprocess.run([py, str(script), s3server.endpoint, s3server.access_key,
                        s3server.secret_key, bucket, str(tmp_path / "data.bin")],
                       capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr + s3server.log_tail()
    assert "Checksum" in r.stdout
