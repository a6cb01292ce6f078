"""GET/HEAD ?partNumber=N with boto3 against `seglake serve`.

What it covers: each part of an object completed from a multipart upload
comes back alone (206, Content-Range, x-amz-mp-parts-count, the whole
object's ETag), HEAD agrees, N beyond the count is 416 InvalidPartNumber;
partNumber=1 of a plain object is the whole object and N > 1 is 416; bad
numbers and Range together with partNumber are 400; the part sizes survive
`seglake rebuild-index` (they travel in the segments' journal records).
Not here: the multipart upload itself (test_s3_multipart.py).
"""
import hashlib
import os
import subprocess

import pytest
from botocore.exceptions import ClientError

from conftest import seglake_bin, start_server

MiB = 1024 * 1024


def err(exc):
    r = exc.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"]


def upload(s3, bucket, key, parts):
    up = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    done = []
    for n, p in enumerate(parts, 1):
        e = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=n, Body=p)["ETag"]
        done.append({"PartNumber": n, "ETag": e})
    return s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up,
                                        MultipartUpload={"Parts": done})["ETag"]


def check_parts(s3, bucket, key, parts, etag):
    total = sum(len(p) for p in parts)
    off = 0
    for n, p in enumerate(parts, 1):
        g = s3.get_object(Bucket=bucket, Key=key, PartNumber=n)
        assert g["ResponseMetadata"]["HTTPStatusCode"] == 206
        body = g["Body"].read()
        assert len(body) == len(p) and hashlib.md5(body).digest() == hashlib.md5(p).digest(), n
        assert g["ContentRange"] == "bytes %d-%d/%d" % (off, off + len(p) - 1, total)
        assert g["PartsCount"] == len(parts)
        assert g["ETag"] == etag
        h = s3.head_object(Bucket=bucket, Key=key, PartNumber=n)
        assert h["ContentLength"] == len(p) and h["PartsCount"] == len(parts)
        assert h["ETag"] == etag
        off += len(p)
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket=bucket, Key=key, PartNumber=len(parts) + 1)
    assert err(ei) == (416, "InvalidPartNumber")
    with pytest.raises(ClientError) as ei:
        s3.head_object(Bucket=bucket, Key=key, PartNumber=len(parts) + 1)
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416


def test_get_and_head_by_part_number(tmp_path):
    srv = start_server(tmp_path)
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="pnum")
        # part 2 is not a multiple of the 4 MiB chunk, part 1 is exactly 8 MiB
        parts = [os.urandom(8 * MiB), os.urandom(5 * MiB + 4321), os.urandom(777)]
        etag = upload(s3, "pnum", "mp", parts)
        check_parts(s3, "pnum", "mp", parts, etag)

        # a plain object: part 1 is the whole object, there is no part 2
        s3.put_object(Bucket="pnum", Key="plain", Body=b"hello")
        g = s3.get_object(Bucket="pnum", Key="plain", PartNumber=1)
        assert g["Body"].read() == b"hello" and "PartsCount" not in g
        with pytest.raises(ClientError) as ei:
            s3.get_object(Bucket="pnum", Key="plain", PartNumber=2)
        assert err(ei) == (416, "InvalidPartNumber")

        # bad numbers, and Range with partNumber
        for q in ("partNumber=0", "partNumber=10001", "partNumber=x", "partNumber="):
            st, _, body = srv.request("GET", "/pnum/mp", query=q)
            assert st == 400 and b"<Code>InvalidArgument</Code>" in body, (q, st, body[:200])
        st, _, body = srv.request("GET", "/pnum/mp", query="partNumber=1",
                                  headers={"Range": "bytes=0-1"})
        assert st == 400 and b"<Code>InvalidRequest</Code>" in body, body[:200]

        # the sizes live in the segments too: rebuild meta.db from them alone
        assert srv.stop() == 0
        r = subprocess.run([seglake_bin(), "rebuild-index", "--data", srv.data_dir],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
        assert r.returncode == 0, r.stderr
        srv = start_server(tmp_path, data_dir=srv.data_dir)
        check_parts(srv.client(), "pnum", "mp", parts, etag)
    finally:
        rc = srv.stop()
    assert rc == 0, srv.log_tail()
