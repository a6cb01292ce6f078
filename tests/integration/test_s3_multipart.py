"""boto3 against `seglake serve`: multipart uploads - create, upload part,
upload part copy with ranges, list parts, list uploads, complete (ETag
form, part order, ETag and size checks), abort, and the error codes.
Not here: awscli's automatic multipart (test_s3_clients.py)."""

import hashlib
import os

import pytest
from botocore.exceptions import ClientError

MiB = 1024 * 1024


def err_code(exc):
    return exc.value.response["Error"]["Code"]


def mpu_etag(parts):
    return '"%s-%d"' % (hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest(),
                        len(parts))


def test_multipart_roundtrip(s3, bucket):
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB + 123), os.urandom(1000)]
    up = s3.create_multipart_upload(Bucket=bucket, Key="big", ContentType="x/big",
                                    Metadata={"m": "1"})["UploadId"]
    assert up in [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]]
    etags = []
    # upload out of order: parts may arrive in any order
    for n in (2, 1, 3):
        r = s3.upload_part(Bucket=bucket, Key="big", UploadId=up, PartNumber=n, Body=parts[n - 1])
        assert r["ETag"] == '"%s"' % hashlib.md5(parts[n - 1]).hexdigest()
    etags = [{"PartNumber": n, "ETag": '"%s"' % hashlib.md5(parts[n - 1]).hexdigest()}
             for n in (1, 2, 3)]
    lp = s3.list_parts(Bucket=bucket, Key="big", UploadId=up)
    assert [(p["PartNumber"], p["Size"]) for p in lp["Parts"]] == [
        (1, len(parts[0])), (2, len(parts[1])), (3, len(parts[2]))]
    lp = s3.list_parts(Bucket=bucket, Key="big", UploadId=up, MaxParts=2)
    assert lp["IsTruncated"] and lp["NextPartNumberMarker"] == 2
    lp = s3.list_parts(Bucket=bucket, Key="big", UploadId=up, PartNumberMarker=2)
    assert [p["PartNumber"] for p in lp["Parts"]] == [3]
    r = s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=up,
                                     MultipartUpload={"Parts": etags})
    assert r["ETag"] == mpu_etag(parts)
    g = s3.get_object(Bucket=bucket, Key="big")
    body = g["Body"].read()
    assert body == b"".join(parts)
    assert g["ContentType"] == "x/big" and g["Metadata"] == {"m": "1"}
    assert g["ETag"] == mpu_etag(parts)
    assert s3.get_object(Bucket=bucket, Key="big", Range="bytes=%d-%d" % (5 * MiB - 2, 5 * MiB + 1))[
        "Body"].read() == body[5 * MiB - 2:5 * MiB + 2]
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_multipart_errors(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="e")["UploadId"]
    small = b"s" * 1024
    e1 = s3.upload_part(Bucket=bucket, Key="e", UploadId=up, PartNumber=1, Body=small)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="e", UploadId=up, PartNumber=2, Body=small)["ETag"]
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="e", UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert err_code(e) == "EntityTooSmall"
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="e", UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]})
    assert err_code(e) == "InvalidPartOrder"
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="e", UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}]})
    assert err_code(e) == "InvalidPart"
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="e", UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 7, "ETag": e1}]})
    assert err_code(e) == "InvalidPart"
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="e", UploadId=up, PartNumber=10001, Body=b"x")
    assert err_code(e) == "InvalidArgument"
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=bucket, Key="e", UploadId="nope", PartNumber=1, Body=b"x")
    assert err_code(e) == "NoSuchUpload"
    # a single small part is fine (the last part may be small)
    r = s3.complete_multipart_upload(Bucket=bucket, Key="e", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}]})
    assert r["ETag"] == mpu_etag([small])
    assert s3.get_object(Bucket=bucket, Key="e")["Body"].read() == small
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key="e", UploadId=up)
    assert err_code(e) == "NoSuchUpload"


def test_multipart_abort(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="a")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="a", UploadId=up, PartNumber=1, Body=b"x" * 100)
    s3.abort_multipart_upload(Bucket=bucket, Key="a", UploadId=up)
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="a", UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": '"x"'}]})
    assert err_code(e) == "NoSuchUpload"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="a")


def test_upload_part_copy(s3, bucket):
    src = os.urandom(12 * MiB + 77)
    s3.put_object(Bucket=bucket, Key="src", Body=src)
    up = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    r1 = s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=up, PartNumber=1,
                             CopySource={"Bucket": bucket, "Key": "src"},
                             CopySourceRange="bytes=0-%d" % (6 * MiB - 1))
    r2 = s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=up, PartNumber=2,
                             CopySource={"Bucket": bucket, "Key": "src"},
                             CopySourceRange="bytes=%d-%d" % (6 * MiB, len(src) - 1))
    assert r1["CopyPartResult"]["ETag"] == '"%s"' % hashlib.md5(src[:6 * MiB]).hexdigest()
    with pytest.raises(ClientError) as e:
        s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=up, PartNumber=3,
                            CopySource={"Bucket": bucket, "Key": "src"},
                            CopySourceRange="bytes=0-%d" % len(src))
    assert err_code(e) == "InvalidRange"
    r = s3.complete_multipart_upload(Bucket=bucket, Key="dst", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": r1["CopyPartResult"]["ETag"]},
                  {"PartNumber": 2, "ETag": r2["CopyPartResult"]["ETag"]}]})
    assert r["ETag"] == mpu_etag([src[:6 * MiB], src[6 * MiB:]])
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == src


def test_list_multipart_uploads(s3, bucket):
    ups = {}
    for k in ["u/a", "u/b", "v"]:
        ups[k] = s3.create_multipart_upload(Bucket=bucket, Key=k)["UploadId"]
    r = s3.list_multipart_uploads(Bucket=bucket, Prefix="u/")
    assert [u["Key"] for u in r["Uploads"]] == ["u/a", "u/b"]
    r = s3.list_multipart_uploads(Bucket=bucket, MaxUploads=2)
    assert r["IsTruncated"] and len(r["Uploads"]) == 2
    r2 = s3.list_multipart_uploads(Bucket=bucket, KeyMarker=r["NextKeyMarker"],
                                   UploadIdMarker=r["NextUploadIdMarker"])
    assert [u["Key"] for u in r2["Uploads"]] == ["v"]
    # a bucket with an upload in progress is not empty
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=bucket)
    assert err_code(e) == "BucketNotEmpty"


def test_malformed_complete(s3server, s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="m")["UploadId"]
    for body in [b"", b"<CompleteMultipartUpload>", b"<CompleteMultipartUpload></CompleteMultipartUpload>",
                 b"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber><ETag>a</ETag></Part>"
                 b"</CompleteMultipartUpload>",
                 b"<CompleteMultipartUpload><Part><ETag>a</ETag></Part></CompleteMultipartUpload>"]:
        st, _, resp = s3server.request("POST", "/%s/m" % bucket, "uploadId=" + up, body=body)
        assert st == 400 and b"MalformedXML" in resp, (body, resp)
