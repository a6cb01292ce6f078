"""boto3 against `seglake serve`: bucket versioning (Enabled/Suspended), version
ids on put/delete, delete markers, ?versionId on GET/HEAD/DELETE/copy source,
null versions in suspended buckets and ListObjectVersions with markers,
prefix, delimiter, max-keys and encoding-type. Not here: other features."""

import pytest
from botocore.exceptions import ClientError


def err_code(exc):
    return exc.value.response["Error"]["Code"]


def http_status(exc):
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def enable(s3, bucket, status="Enabled"):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})


def test_versioning_config(s3, bucket):
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    enable(s3, bucket)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    enable(s3, bucket, "Suspended")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    with pytest.raises(ClientError) as e:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Bogus"})
    assert http_status(e) == 400


def test_versions_and_delete_markers(s3, bucket):
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"two")["VersionId"]
    assert v1 and v2 and v1 != v2 and "null" not in (v1, v2)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"two"
    g = s3.get_object(Bucket=bucket, Key="k", VersionId=v1)
    assert g["Body"].read() == b"one" and g["VersionId"] == v1
    assert s3.head_object(Bucket=bucket, Key="k", VersionId=v1)["ContentLength"] == 3
    d = s3.delete_object(Bucket=bucket, Key="k")
    assert d["DeleteMarker"] is True
    dm = d["VersionId"]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="k")
    assert err_code(e) == "NoSuchKey"
    hdrs = e.value.response["ResponseMetadata"]["HTTPHeaders"]
    assert hdrs["x-amz-delete-marker"] == "true" and hdrs["x-amz-version-id"] == dm
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="k", VersionId=dm)
    assert http_status(e) == 405
    # older versions stay readable
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=v2)["Body"].read() == b"two"
    r = s3.list_object_versions(Bucket=bucket)
    assert [(v["VersionId"], v["IsLatest"]) for v in r["Versions"]] == [(v2, False), (v1, False)]
    assert [(m["VersionId"], m["IsLatest"]) for m in r["DeleteMarkers"]] == [(dm, True)]
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    # removing the marker brings the key back
    d = s3.delete_object(Bucket=bucket, Key="k", VersionId=dm)
    assert d["DeleteMarker"] is True and d["VersionId"] == dm
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"two"
    # permanently deleting a version
    s3.delete_object(Bucket=bucket, Key="k", VersionId=v2)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"one"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="k", VersionId=v2)
    assert err_code(e) == "NoSuchVersion"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="k", VersionId="no-such-version-id")
    assert http_status(e) in (400, 404)


def test_copy_from_version(s3, bucket):
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="src", Body=b"first")["VersionId"]
    s3.put_object(Bucket=bucket, Key="src", Body=b"second")
    r = s3.copy_object(Bucket=bucket, Key="dst",
                       CopySource={"Bucket": bucket, "Key": "src", "VersionId": v1})
    assert r["CopySourceVersionId"] == v1 and r["VersionId"]
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"first"


def test_suspended_null_versions(s3, bucket):
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")["VersionId"]
    enable(s3, bucket, "Suspended")
    r = s3.put_object(Bucket=bucket, Key="k", Body=b"n1")
    assert r.get("VersionId", "null") == "null"
    s3.put_object(Bucket=bucket, Key="k", Body=b"n2")  # replaces the null version
    vs = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert [v["VersionId"] for v in vs] == ["null", v1]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"n2"
    d = s3.delete_object(Bucket=bucket, Key="k")
    assert d["DeleteMarker"] is True and d.get("VersionId", "null") == "null"
    r = s3.list_object_versions(Bucket=bucket)
    assert [v["VersionId"] for v in r["Versions"]] == [v1]
    assert [m["VersionId"] for m in r["DeleteMarkers"]] == ["null"]


def test_list_versions_pagination(s3, bucket):
    enable(s3, bucket)
    expect = []
    for k in ["a", "b/x", "b/y", "c"]:
        for i in range(3):
            expect.append((k, s3.put_object(Bucket=bucket, Key=k, Body=b"%d" % i)["VersionId"]))
    s3.delete_object(Bucket=bucket, Key="c")
    seen = []
    for page in s3.get_paginator("list_object_versions").paginate(
            Bucket=bucket, PaginationConfig={"PageSize": 4}):
        entries = page.get("Versions", []) + page.get("DeleteMarkers", [])
        assert len(entries) <= 4
        seen += [(v["Key"], v["VersionId"]) for v in page.get("Versions", [])]
    assert sorted(seen) == sorted(expect)
    assert len(seen) == len(set(seen))
    r = s3.list_object_versions(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["b/"]
    assert {v["Key"] for v in r["Versions"]} == {"a", "c"}
    r = s3.list_object_versions(Bucket=bucket, Prefix="b/", MaxKeys=2)
    assert r["IsTruncated"] and r["NextKeyMarker"] and r["NextVersionIdMarker"]
    r2 = s3.list_object_versions(Bucket=bucket, Prefix="b/", KeyMarker=r["NextKeyMarker"],
                                 VersionIdMarker=r["NextVersionIdMarker"])
    got = [(v["Key"], v["VersionId"]) for v in r["Versions"] + r2["Versions"]]
    assert sorted(got) == sorted(e for e in expect if e[0].startswith("b/"))
    r = s3.list_object_versions(Bucket=bucket, Prefix="a", EncodingType="url")
    assert r["Versions"][0]["Key"] == "a"


def test_delete_objects_versioned(s3, bucket):
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="x", Body=b"1")["VersionId"]
    s3.put_object(Bucket=bucket, Key="y", Body=b"1")
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "x", "VersionId": v1},
                                                             {"Key": "y"}]})
    by = {d["Key"]: d for d in r["Deleted"]}
    assert by["x"]["VersionId"] == v1
    assert by["y"]["DeleteMarker"] is True and by["y"]["DeleteMarkerVersionId"]
    r = s3.list_object_versions(Bucket=bucket)
    assert [v["Key"] for v in r.get("Versions", [])] == ["y"]
    assert [m["Key"] for m in r["DeleteMarkers"]] == ["y"]
