"""boto3 against `seglake serve`: buckets, objects, metadata, copy, listing
(V1/V2, delimiter, prefix, pagination, encoding-type), range GETs,
conditional requests and CORS. Not here: versioning, multipart, checksums,
other clients, negative/auth tests (their own files)."""

import datetime
import hashlib
import os
import uuid

import pytest
from botocore.exceptions import ClientError


def err_code(exc):
    return exc.value.response["Error"]["Code"]


def http_status(exc):
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


# ---- buckets -------------------------------------------------------------------

def test_bucket_lifecycle(s3server, s3):
    name = "b-" + uuid.uuid4().hex[:12]
    s3.create_bucket(Bucket=name)
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket=name)
    # us-east-1: creating a bucket you own again succeeds, as on AWS
    s3.create_bucket(Bucket=name)
    loc = s3.get_bucket_location(Bucket=name)
    assert loc["LocationConstraint"] in (None, "")
    s3.put_object(Bucket=name, Key="k", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=name)
    assert err_code(e) == "BucketNotEmpty" and http_status(e) == 409
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=name)
    assert http_status(e) == 404
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket=name)
    assert err_code(e) == "NoSuchBucket"


@pytest.mark.parametrize("name", ["ab", "UPPER", "a" * 64, "bad_name", "-lead", "192.168.1.1",
                                  "dot..dot"])
def test_invalid_bucket_names(s3server, name):
    st, h, body = s3server.request("PUT", "/" + name)
    assert st == 400 and b"<Code>InvalidBucketName</Code>" in body, body
    assert h.get("x-amz-request-id")


def test_get_missing_bucket_and_key(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="nope")
    assert err_code(e) == "NoSuchKey" and http_status(e) == 404
    assert e.value.response["ResponseMetadata"]["RequestId"]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="no-such-bucket-here", Key="k")
    assert err_code(e) == "NoSuchBucket"


# ---- objects -----------------------------------------------------------------

def test_put_get_head_delete(s3, bucket):
    data = os.urandom(100_000)
    r = s3.put_object(Bucket=bucket, Key="a/b.bin", Body=data)
    assert r["ETag"] == '"%s"' % hashlib.md5(data).hexdigest()
    g = s3.get_object(Bucket=bucket, Key="a/b.bin")
    assert g["Body"].read() == data
    assert g["ContentLength"] == len(data)
    assert g["ETag"] == r["ETag"]
    assert g["ContentType"] == "binary/octet-stream"
    h = s3.head_object(Bucket=bucket, Key="a/b.bin")
    assert h["ContentLength"] == len(data)
    assert abs((h["LastModified"] - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) < 60
    s3.delete_object(Bucket=bucket, Key="a/b.bin")
    s3.delete_object(Bucket=bucket, Key="a/b.bin")  # idempotent
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="a/b.bin")
    assert http_status(e) == 404


def test_empty_object_and_overwrite(s3, bucket):
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    g = s3.get_object(Bucket=bucket, Key="empty")
    assert g["Body"].read() == b"" and g["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'
    s3.put_object(Bucket=bucket, Key="empty", Body=b"now full")
    assert s3.get_object(Bucket=bucket, Key="empty")["Body"].read() == b"now full"


def test_metadata_roundtrip(s3, bucket):
    s3.put_object(Bucket=bucket, Key="m", Body=b"hello", ContentType="text/x-test",
                  ContentEncoding="identity", ContentDisposition='attachment; filename="x.txt"',
                  ContentLanguage="de", CacheControl="max-age=60",
                  Expires=datetime.datetime(2030, 1, 2, 3, 4, 5),
                  Metadata={"color": "blue", "Mixed-Case": "Value With Spaces"})
    h = s3.head_object(Bucket=bucket, Key="m")
    assert h["ContentType"] == "text/x-test"
    assert h["ContentEncoding"] == "identity"
    assert h["ContentDisposition"] == 'attachment; filename="x.txt"'
    assert h["ContentLanguage"] == "de"
    assert h["CacheControl"] == "max-age=60"
    assert h["Expires"].year == 2030
    assert h["Metadata"] == {"color": "blue", "mixed-case": "Value With Spaces"}
    g = s3.get_object(Bucket=bucket, Key="m", ResponseContentType="application/json",
                      ResponseCacheControl="no-cache")
    assert g["ContentType"] == "application/json" and g["CacheControl"] == "no-cache"
    assert g["Metadata"]["color"] == "blue"


def test_metadata_too_large(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="big-meta", Body=b"x", Metadata={"a": "v" * 3000})
    assert err_code(e) == "MetadataTooLarge"


def test_content_md5(s3server, s3, bucket):
    import base64
    good = base64.b64encode(hashlib.md5(b"data").digest()).decode()
    s3.put_object(Bucket=bucket, Key="md5", Body=b"data", ContentMD5=good)
    bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="md5-bad", Body=b"data", ContentMD5=bad)
    assert err_code(e) == "BadDigest"
    st, _, body = s3server.request("PUT", "/%s/md5-invalid" % bucket,
                                   headers={"Content-MD5": "not-base64!"}, body=b"data")
    assert st == 400 and b"InvalidDigest" in body
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="md5-bad")


@pytest.mark.parametrize("key", ["with space", "unicode-ß-日本-🙂", "plus+sign", "percent%25and%",
                                 "equals=sign", "dots/../up", "double//slash", "./dot",
                                 "trailing/", "tilde~q?x#y&z", " lead-space", "semi;colon,comma"])
def test_odd_keys(s3, bucket, key):
    s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert key in keys
    s3.copy_object(Bucket=bucket, Key=key + ".copy", CopySource={"Bucket": bucket, "Key": key})
    assert s3.get_object(Bucket=bucket, Key=key + ".copy")["Body"].read() == key.encode()
    s3.delete_object(Bucket=bucket, Key=key)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key=key)


def test_key_too_long(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k" * 1025, Body=b"x")
    assert err_code(e) == "KeyTooLongError"
    s3.put_object(Bucket=bucket, Key="k" * 1024, Body=b"x")


# ---- copy --------------------------------------------------------------------

def test_copy_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"payload", ContentType="text/plain",
                  Metadata={"a": "1"})
    r = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert r["CopyObjectResult"]["ETag"] == '"%s"' % hashlib.md5(b"payload").hexdigest()
    h = s3.head_object(Bucket=bucket, Key="dst")
    assert h["Metadata"] == {"a": "1"} and h["ContentType"] == "text/plain"
    s3.copy_object(Bucket=bucket, Key="dst2", CopySource={"Bucket": bucket, "Key": "src"},
                   MetadataDirective="REPLACE", Metadata={"b": "2"}, ContentType="x/y")
    h = s3.head_object(Bucket=bucket, Key="dst2")
    assert h["Metadata"] == {"b": "2"} and h["ContentType"] == "x/y"
    assert s3.get_object(Bucket=bucket, Key="dst2")["Body"].read() == b"payload"
    # copy onto itself without REPLACE is illegal; with REPLACE it updates metadata
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"})
    assert err_code(e) == "InvalidRequest"
    s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"},
                   MetadataDirective="REPLACE", Metadata={"c": "3"})
    assert s3.head_object(Bucket=bucket, Key="src")["Metadata"] == {"c": "3"}
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "missing"})
    assert err_code(e) == "NoSuchKey"


def test_copy_across_buckets_and_conditions(s3, bucket):
    other = "t-" + uuid.uuid4().hex[:16]
    s3.create_bucket(Bucket=other)
    try:
        etag = s3.put_object(Bucket=bucket, Key="s", Body=b"abc")["ETag"]
        s3.copy_object(Bucket=other, Key="d", CopySource={"Bucket": bucket, "Key": "s"},
                       CopySourceIfMatch=etag)
        assert s3.get_object(Bucket=other, Key="d")["Body"].read() == b"abc"
        with pytest.raises(ClientError) as e:
            s3.copy_object(Bucket=other, Key="d2", CopySource={"Bucket": bucket, "Key": "s"},
                           CopySourceIfMatch='"0123"')
        assert err_code(e) == "PreconditionFailed"
        with pytest.raises(ClientError) as e:
            s3.copy_object(Bucket=other, Key="d3", CopySource={"Bucket": bucket, "Key": "s"},
                           CopySourceIfNoneMatch=etag)
        assert err_code(e) == "PreconditionFailed"
        future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
        with pytest.raises(ClientError) as e:
            s3.copy_object(Bucket=other, Key="d4", CopySource={"Bucket": bucket, "Key": "s"},
                           CopySourceIfModifiedSince=future)
        assert err_code(e) == "PreconditionFailed"
    finally:
        from conftest import empty_bucket
        empty_bucket(s3, other)


# ---- listing -------------------------------------------------------------------

def _fill(s3, bucket, keys):
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())


def test_list_delimiter_prefix(s3, bucket):
    keys = ["a.txt", "dir/x", "dir/y", "dir/sub/z", "dir2/w", "e"]
    _fill(s3, bucket, keys)
    r = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in r["Contents"]] == ["a.txt", "e"]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["dir/", "dir2/"]
    assert r["KeyCount"] == 4
    r = s3.list_objects_v2(Bucket=bucket, Prefix="dir/", Delimiter="/")
    assert [o["Key"] for o in r["Contents"]] == ["dir/x", "dir/y"]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["dir/sub/"]
    r = s3.list_objects(Bucket=bucket, Prefix="dir")
    assert [o["Key"] for o in r["Contents"]] == ["dir/sub/z", "dir/x", "dir/y", "dir2/w"]
    assert r["Contents"][0]["Owner"]["ID"]
    r = s3.list_objects_v2(Bucket=bucket, StartAfter="dir/x")
    assert [o["Key"] for o in r["Contents"]] == ["dir/y", "dir2/w", "e"]


def test_list_pagination_v1_v2(s3, bucket):
    keys = ["k%03d" % i for i in range(25)] + ["p/%02d" % i for i in range(5)]
    _fill(s3, bucket, keys)
    got = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                             PaginationConfig={"PageSize": 7}):
        assert page["KeyCount"] <= 7
        got += [o["Key"] for o in page.get("Contents", [])]
    assert got == sorted(keys)
    got = []
    for page in s3.get_paginator("list_objects").paginate(Bucket=bucket,
                                                          PaginationConfig={"PageSize": 4}):
        got += [o["Key"] for o in page.get("Contents", [])]
    assert got == sorted(keys)
    # delimiter pages count prefixes too
    got, prefixes = [], []
    for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Delimiter="/", PaginationConfig={"PageSize": 5}):
        got += [o["Key"] for o in page.get("Contents", [])]
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    assert got == ["k%03d" % i for i in range(25)] and prefixes == ["p/"]
    r = s3.list_objects_v2(Bucket=bucket, MaxKeys=0)
    assert r["KeyCount"] == 0 and not r.get("Contents")
    r = s3.list_objects_v2(Bucket=bucket, MaxKeys=5000)
    assert r["MaxKeys"] == 1000


def test_list_utf8_order_and_encoding(s3server, s3, bucket):
    keys = ["z", "é", "a b", "a+b", "a%b", "日本", "A", "\u00ff", "a\u0001ctl"]
    _fill(s3, bucket, keys)
    got = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert got == sorted(keys, key=lambda k: k.encode())
    # asked for explicitly, boto3 hands the encoded keys through
    import urllib.parse
    got = [urllib.parse.unquote(o["Key"])
           for o in s3.list_objects(Bucket=bucket, EncodingType="url")["Contents"]]
    assert got == sorted(keys, key=lambda k: k.encode())
    st, _, body = s3server.request("GET", "/" + bucket, "encoding-type=url&list-type=2&prefix=a")
    assert st == 200
    assert b"<Key>a%20b</Key>" in body and b"<Key>a%2Bb</Key>" in body and b"<Key>a%25b</Key>" in body
    assert b"<EncodingType>url</EncodingType>" in body
    st, _, body = s3server.request("GET", "/" + bucket, "encoding-type=bogus")
    assert st == 400 and b"InvalidArgument" in body


def test_list_bad_params(s3server, bucket):
    st, _, body = s3server.request("GET", "/" + bucket, "max-keys=-1")
    assert st == 400 and b"InvalidArgument" in body
    st, _, body = s3server.request("GET", "/" + bucket, "list-type=2&continuation-token=%21%21")
    assert st == 400 and b"InvalidArgument" in body


# ---- range -------------------------------------------------------------------

def test_range_get(s3server, s3, bucket):
    data = bytes(range(256)) * 40
    s3.put_object(Bucket=bucket, Key="r", Body=data, ContentType="text/x-r")
    g = s3.get_object(Bucket=bucket, Key="r", Range="bytes=10-19")
    assert g["Body"].read() == data[10:20]
    assert g["ContentRange"] == "bytes 10-19/%d" % len(data)
    assert g["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=10000-")["Body"].read() == data[10000:]
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=-5")["Body"].read() == data[-5:]
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=0-999999")["Body"].read() == data
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="r", Range="bytes=20000-")
    assert err_code(e) == "InvalidRange" and http_status(e) == 416
    assert e.value.response["ResponseMetadata"]["HTTPHeaders"]["content-range"] == "bytes */%d" % len(data)
    # malformed range headers are ignored (whole object), as HTTP says
    g = s3.get_object(Bucket=bucket, Key="r", Range="bytes=abc")
    assert g["Body"].read() == data and g["ResponseMetadata"]["HTTPStatusCode"] == 200
    # multi-range
    st, h, body = s3server.request("GET", "/%s/r" % bucket, headers={"Range": "bytes=0-3,100-103,-2"})
    assert st == 206
    ct = h["content-type"]
    assert ct.startswith("multipart/byteranges; boundary=")
    boundary = ct.split("boundary=")[1].encode()
    parts = [p for p in body.split(b"--" + boundary) if p.strip() not in (b"", b"--")]
    assert len(parts) == 3
    want = [(0, 3), (100, 103), (len(data) - 2, len(data) - 1)]
    for part, (a, b) in zip(parts, want):
        head, _, payload = part.partition(b"\r\n\r\n")
        assert b"Content-Range: bytes %d-%d/%d" % (a, b, len(data)) in head
        assert b"Content-Type: text/x-r" in head
        assert payload[:b - a + 1] == data[a:b + 1]
    assert int(h["content-length"]) == len(body)


# ---- conditionals --------------------------------------------------------------

def test_conditional_get(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"cond")["ETag"]
    lm = s3.head_object(Bucket=bucket, Key="c")["LastModified"]
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"cond"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"nope"')
    assert http_status(e) == 412 and err_code(e) == "PreconditionFailed"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert http_status(e) == 304
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert http_status(e) == 304
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=lm)
    assert http_status(e) == 304
    s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=lm - datetime.timedelta(hours=1))
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfUnmodifiedSince=lm - datetime.timedelta(hours=1))
    assert http_status(e) == 412
    # If-Match true wins over If-Unmodified-Since false (AWS rule)
    s3.get_object(Bucket=bucket, Key="c", IfMatch=etag,
                  IfUnmodifiedSince=lm - datetime.timedelta(hours=1))
    # If-None-Match false + If-Modified-Since true -> 304
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag,
                      IfModifiedSince=lm - datetime.timedelta(hours=1))
    assert http_status(e) == 304


def test_conditional_put(s3server, s3, bucket):
    st, _, _ = s3server.request("PUT", "/%s/cp" % bucket, headers={"If-None-Match": "*"}, body=b"1")
    assert st == 200
    st, _, body = s3server.request("PUT", "/%s/cp" % bucket, headers={"If-None-Match": "*"}, body=b"2")
    assert st == 412 and b"PreconditionFailed" in body
    etag = s3.head_object(Bucket=bucket, Key="cp")["ETag"]
    st, _, body = s3server.request("PUT", "/%s/cp" % bucket, headers={"If-Match": '"bad"'}, body=b"3")
    assert st == 412
    st, _, _ = s3server.request("PUT", "/%s/cp" % bucket, headers={"If-Match": etag}, body=b"4")
    assert st == 200
    assert s3.get_object(Bucket=bucket, Key="cp")["Body"].read() == b"4"


# ---- DeleteObjects -----------------------------------------------------------

def test_delete_objects(s3, bucket):
    _fill(s3, bucket, ["d1", "d2", "d3"])
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "d1"}, {"Key": "d2"},
                                                             {"Key": "never"}]})
    assert sorted(d["Key"] for d in r["Deleted"]) == ["d1", "d2", "never"]
    assert not r.get("Errors")
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "d3"}], "Quiet": True})
    assert not r.get("Deleted")
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_malformed_xml_bodies(s3server, bucket):
    for q, body in [("delete", b"<Delete><Object><Key>a</Key></Object>"),
                    ("delete", b"not xml at all"),
                    ("delete", b"<Delete></Delete>"),
                    ("delete", b"<Other><Object><Key>a</Key></Object></Other>"),
                    ("delete", b'<!DOCTYPE x [<!ENTITY a "b">]><Delete><Object><Key>&a;</Key></Object></Delete>')]:
        import base64
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        st, _, resp = s3server.request("POST", "/" + bucket, q, headers={"Content-MD5": md5},
                                       body=body)
        assert st == 400 and b"<Code>MalformedXML</Code>" in resp, (body, resp)
    st, _, resp = s3server.request("PUT", "/" + bucket, "versioning", body=b"<Versioning")
    assert st == 400 and b"MalformedXML" in resp
    st, _, resp = s3server.request("PUT", "/" + bucket, "cors", body=b"<CORSConfiguration/>")
    assert st == 400 and b"MalformedXML" in resp


# ---- CORS --------------------------------------------------------------------

def test_cors(s3server, s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.get_bucket_cors(Bucket=bucket)
    assert err_code(e) == "NoSuchCORSConfiguration"
    st, _, _ = s3server.request("OPTIONS", "/%s/k" % bucket, sign=False,
                                headers={"Origin": "https://app.example",
                                         "Access-Control-Request-Method": "GET"})
    assert st == 403
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [
        {"AllowedOrigins": ["https://*.example"], "AllowedMethods": ["GET", "PUT"],
         "AllowedHeaders": ["x-amz-*", "content-type"], "ExposeHeaders": ["ETag"],
         "MaxAgeSeconds": 300},
        {"AllowedOrigins": ["*"], "AllowedMethods": ["HEAD"]}]})
    rules = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert rules[0]["AllowedMethods"] == ["GET", "PUT"] and rules[0]["MaxAgeSeconds"] == 300
    st, h, _ = s3server.request("OPTIONS", "/%s/k" % bucket, sign=False,
                                headers={"Origin": "https://app.example",
                                         "Access-Control-Request-Method": "PUT",
                                         "Access-Control-Request-Headers": "x-amz-date, Content-Type"})
    assert st == 200
    assert h["access-control-allow-origin"] == "https://app.example"
    assert "PUT" in h["access-control-allow-methods"]
    assert h["access-control-max-age"] == "300"
    assert h["x-amz-request-id"]
    st, _, _ = s3server.request("OPTIONS", "/%s/k" % bucket, sign=False,
                                headers={"Origin": "https://evil.test",
                                         "Access-Control-Request-Method": "PUT"})
    assert st == 403
    st, _, _ = s3server.request("OPTIONS", "/%s/k" % bucket, sign=False,
                                headers={"Origin": "https://app.example",
                                         "Access-Control-Request-Method": "GET",
                                         "Access-Control-Request-Headers": "x-forbidden"})
    assert st == 403
    # actual request carries the headers
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    st, h, _ = s3server.request("GET", "/%s/k" % bucket, headers={"Origin": "https://app.example"})
    assert st == 200 and h["access-control-allow-origin"] == "https://app.example"
    assert h["access-control-expose-headers"] == "ETag"
    st, h, _ = s3server.request("GET", "/%s/k" % bucket, headers={"Origin": "https://evil.test"})
    assert st == 200 and "access-control-allow-origin" not in h
    st, _, body = s3server.request("PUT", "/" + bucket, "cors", body=(
        b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin>"
        b"<AllowedMethod>PATCH</AllowedMethod></CORSRule></CORSConfiguration>"))
    assert st == 400 and b"InvalidRequest" in body
    s3.delete_bucket_cors(Bucket=bucket)
    with pytest.raises(ClientError):
        s3.get_bucket_cors(Bucket=bucket)


# ---- misc --------------------------------------------------------------------

def test_request_ids_and_reserved_paths(s3server):
    st, h, body = s3server.request("GET", "/")
    assert st == 200 and b"<ListAllMyBucketsResult" in body
    assert len(h["x-amz-request-id"]) == 16 and h["x-amz-id-2"]
    st, h, body = s3server.request("GET", "/v1/not-a-service")
    assert st == 404 and b"<RequestId>" in body and h["x-amz-request-id"]
    st, _, body = s3server.request("DELETE", "/")
    assert st == 405 and b"MethodNotAllowed" in body


def test_virtual_hosted_style(s3server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="vh/key", Body=b"virtual")
    host = "%s.localhost:%d" % (bucket, s3server.port)
    st, _, body = s3server.request("GET", "/vh/key", headers={"Host": host})
    assert st == 200 and body == b"virtual"
    st, _, body = s3server.request("GET", "/", "list-type=2", headers={"Host": host})
    assert st == 200 and b"<Key>vh/key</Key>" in body


def test_unversioned_bucket_header(s3server, s3):
    name = "u-" + uuid.uuid4().hex[:12]
    st, _, _ = s3server.request("PUT", "/" + name, headers={"x-seglake-unversioned": "true"})
    assert st == 200
    try:
        with pytest.raises(ClientError) as e:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        assert err_code(e) == "InvalidBucketState"
        assert "Status" not in s3.get_bucket_versioning(Bucket=name)
    finally:
        s3.delete_bucket(Bucket=name)
