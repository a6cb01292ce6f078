#!/usr/bin/python3
"""make_seeds.py - regenerates the seed corpora of the text-format fuzz
targets under tests/fuzz/corpus/: sigv4 (requests signed by botocore at the
targets' fixed clock), chunked (the AWS documentation examples and unsigned
bodies with trailing checksums), s3d_xml, s3d_headers and policy.

Not here: segment and repl seeds, which come from a real lake made with the
seglake CLI (make_seeds.sh). Run from anywhere with Debian's python3:
    /usr/bin/python3 tests/fuzz/make_seeds.py
"""
import base64
import datetime
import hashlib
import hmac
import os
import struct
import zlib

import botocore.auth
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
NOW = datetime.datetime(2023, 11, 14, 22, 13, 20)  # FUZZ_SIGV4_NOW = 1700000000
CREDS = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")


class _FixedClock(datetime.datetime):
    @classmethod
    def utcnow(cls):
        return NOW


botocore.auth.datetime.datetime = _FixedClock


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def as_input(req):
    """method\\npath\\nquery\\nname:value... as fuzz_sigv4 reads it."""
    url = req.url.split("://", 1)[1]
    path_q = "/" + url.split("/", 1)[1] if "/" in url else "/"
    path, _, query = path_q.partition("?")
    lines = [req.method, path, query]
    for k, v in req.headers.items():
        lines.append("%s:%s" % (k, v))
    return "\n".join(lines)


def signed(method, path, body=b"", headers=None, auth_cls=S3SigV4Auth, region="us-east-1"):
    h = {"Host": "localhost:9000"}
    h.update(headers or {})
    req = AWSRequest(method=method, url="http://localhost:9000" + path, data=body, headers=h)
    auth_cls(CREDS, "s3", region).add_auth(req)
    return as_input(req)


class _Streaming(S3SigV4Auth):
    mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"

    def payload(self, request):
        return self.mode


class _StreamingTrailer(_Streaming):
    mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"


class _UnsignedTrailer(_Streaming):
    mode = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"


def sigv4_seeds():
    write("sigv4", "get_object", signed("GET", "/photos/a/hello.txt"))
    write("sigv4", "put_object", signed("PUT", "/photos/b.txt", b"hello",
                                        {"Content-Type": "text/plain",
                                         "x-amz-meta-owner": "alice"}))
    write("sigv4", "list_v2", signed("GET", "/photos?list-type=2&prefix=a%2Fb&max-keys=10&delimiter=%2F"))
    write("sigv4", "odd_key", signed("GET", "/photos/dir/a%20b%2Bc~d%C3%A9.txt?versionId=null"))
    write("sigv4", "delete_objects", signed("POST", "/photos?delete",
                                            b"<Delete><Object><Key>a</Key></Object></Delete>",
                                            {"Content-MD5": "x"}))
    write("sigv4", "eu_region", signed("HEAD", "/photos/x", region="eu-west-1"))
    dl = {"x-amz-decoded-content-length": "66560", "Content-Encoding": "aws-chunked"}
    write("sigv4", "streaming_signed", signed("PUT", "/photos/big", headers=dl, auth_cls=_Streaming))
    tr = dict(dl, **{"x-amz-trailer": "x-amz-checksum-crc32c"})
    write("sigv4", "streaming_signed_trailer",
          signed("PUT", "/photos/big", headers=tr, auth_cls=_StreamingTrailer))
    write("sigv4", "streaming_unsigned_trailer",
          signed("PUT", "/photos/big", headers=tr, auth_cls=_UnsignedTrailer))
    # curl --aws-sigv4 style: no x-amz-content-sha256 header at all.
    write("sigv4", "curl_style", signed("PUT", "/photos/c", b"data", {"Content-Length": "4"},
                                        auth_cls=SigV4Auth))
    # Presigned URLs (GET and PUT).
    for method, name in (("GET", "presigned_get"), ("PUT", "presigned_put")):
        req = AWSRequest(method=method, url="http://localhost:9000/photos/a/hello.txt?response-content-type=text%2Fplain",
                         headers={"Host": "localhost:9000"})
        S3SigV4QueryAuth(CREDS, "s3", "us-east-1", expires=3600).add_auth(req)
        write("sigv4", name, as_input(req))
    write("sigv4", "anonymous", "GET\n/photos/a\n\nHost:localhost:9000")


# ---- aws-chunked -----------------------------------------------------------

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DATE, SCOPE = "20130524T000000Z", "20130524/us-east-1/s3/aws4_request"
SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
TSEED = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
EMPTY = hashlib.sha256(b"").hexdigest()


def _key():
    k = ("AWS4" + SECRET).encode()
    for part in ("20130524", "us-east-1", "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def prefix(mode, trailer_idx, tseed, piece, decoded):
    """The 8-byte header fuzz_chunked reads before the body."""
    return bytes([mode, trailer_idx, tseed, piece]) + struct.pack("<I", decoded)


def signed_body(chunks, seed, trailers=None):
    key, prev, out = _key(), seed, b""
    for data in chunks + [b""]:
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", DATE, SCOPE, prev, EMPTY,
                         hashlib.sha256(data).hexdigest()])
        prev = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        out += b"%x;chunk-signature=%s\r\n%s\r\n" % (len(data), prev.encode(), data)
    if trailers is None:
        return out
    out = out[:-2]  # the final chunk is followed by the trailers
    canon = "".join("%s:%s\n" % (n, v) for n, v in trailers)
    sts = "\n".join(["AWS4-HMAC-SHA256-TRAILER", DATE, SCOPE, prev,
                     hashlib.sha256(canon.encode()).hexdigest()])
    tsig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    for n, v in trailers:
        out += ("%s:%s\r\n" % (n, v)).encode()
    out += ("x-amz-trailer-signature:%s\r\n\r\n" % tsig).encode()
    return out


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def b64u32(v):
    return base64.b64encode(struct.pack(">I", v)).decode()


def chunked_seeds():
    a64, a1 = b"a" * 65536, b"a" * 1024
    # The AWS documentation example (STREAMING-AWS4-HMAC-SHA256-PAYLOAD).
    write("chunked", "aws_example", prefix(0, 0, 0, 0, 66560) + signed_body([a64, a1], SEED))
    write("chunked", "aws_example_pieces", prefix(0, 0, 0, 200, 66560) + signed_body([a64, a1], SEED))
    # The AWS trailer example (crc32c trailer, signed).
    body = signed_body([a64, a1], TSEED,
                       [("x-amz-checksum-crc32c", b64u32(crc32c(a64 + a1)))])
    write("chunked", "aws_trailer_example", prefix(1 | 4, 2, 1, 7, 66560) + body)
    # Small signed bodies (cheap to mutate).
    write("chunked", "signed_small", prefix(0, 0, 0, 3, 5) + signed_body([b"hello"], SEED))
    write("chunked", "signed_small_trailer",
          prefix(1 | 4, 1, 0, 0, 5) +
          signed_body([b"hello"], SEED, [("x-amz-checksum-crc32", b64u32(zlib.crc32(b"hello")))]))
    # Unsigned with trailers, as modern SDKs send by default.
    for idx, name, val in (
            (1, "crc32", b64u32(zlib.crc32(b"hello world"))),
            (2, "crc32c", b64u32(crc32c(b"hello world"))),
            (4, "sha1", base64.b64encode(hashlib.sha1(b"hello world").digest()).decode()),
            (5, "sha256", base64.b64encode(hashlib.sha256(b"hello world").digest()).decode())):
        body = (b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-%s:%s\r\n\r\n"
                % (name.encode(), val.encode()))
        write("chunked", "unsigned_" + name, prefix(2 | 4, idx, 0, idx, 11) + body)
    write("chunked", "unsigned_no_trailer", prefix(2, 0, 0, 1, 0xFFFFFFFF) + b"3\r\nabc\r\n0\r\n\r\n")


# ---- S3 XML bodies and header values ---------------------------------------

XMLNS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def xml_seeds():
    docs = {
        "complete_mpu": '<CompleteMultipartUpload %s><Part><PartNumber>1</PartNumber>'
                        '<ETag>"5d41402abc4b2a76b9719d911017c592"</ETag></Part><Part>'
                        '<PartNumber>2</PartNumber><ETag>"cf614f7aada88444686710f7f5cc8ba2"</ETag>'
                        '<ChecksumCRC32>NhCmhg==</ChecksumCRC32></Part></CompleteMultipartUpload>' % XMLNS,
        "delete_objects": '<?xml version="1.0" encoding="UTF-8"?>\n<Delete %s><Quiet>true</Quiet>'
                          '<Object><Key>a/hello.txt</Key></Object><Object><Key>b &amp; c.txt</Key>'
                          '<VersionId>01a205d77b6700008b5209a6424908c5</VersionId></Object></Delete>' % XMLNS,
        "versioning": '<VersioningConfiguration %s><Status>Enabled</Status>'
                      '<MfaDelete>Disabled</MfaDelete></VersioningConfiguration>' % XMLNS,
        "create_bucket": '<CreateBucketConfiguration %s><LocationConstraint>us-east-1'
                         '</LocationConstraint></CreateBucketConfiguration>' % XMLNS,
    }
    cors = ('<CORSConfiguration %s><CORSRule><ID>web</ID><AllowedOrigin>https://*.example.com'
            '</AllowedOrigin><AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod>'
            '<AllowedHeader>*</AllowedHeader><ExposeHeader>ETag</ExposeHeader>'
            '<MaxAgeSeconds>3000</MaxAgeSeconds></CORSRule><CORSRule><AllowedOrigin>*'
            '</AllowedOrigin><AllowedMethod>HEAD</AllowedMethod></CORSRule></CORSConfiguration>' % XMLNS)
    write("s3d_xml", "cors", b"\x00" + cors.encode())
    write("s3d_xml", "cors_as_xml", b"\x01" + cors.encode())
    for name, doc in docs.items():
        write("s3d_xml", name, b"\x01" + doc.encode())
        write("s3d_xml", name + "_reject", b"\x31" + doc.encode())


def header_seeds():
    vals = {
        "http_date": "Tue, 14 Nov 2023 22:13:20 GMT",
        "rfc850_date": "Tuesday, 14-Nov-23 22:13:20 GMT",
        "asctime_date": "Tue Nov 14 22:13:20 2023",
        "etag_list": '5d41402abc4b2a76b9719d911017c592\n"5d41402abc4b2a76b9719d911017c592", W/"x", *',
        "url_path": "/photos/dir/a%20b%2Bc~d%C3%A9.txt",
        "url_query": "list-type=2&prefix=a%2Fb+c&max-keys=10",
        "number": "18446744073709551615",
    }
    for name, v in vals.items():
        write("s3d_headers", name, v)


def policy_seeds():
    import json
    bucket = {  # flag byte 1: bucket policy for "photos"
        "public_read": {"Version": "2012-10-17", "Statement": [
            {"Sid": "PublicRead", "Effect": "Allow", "Principal": "*",
             "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::photos/*"}]},
        "ip_and_tls": {"Version": "2012-10-17", "Id": "x", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ["AKIAIOSFODNN7EXAMPLE", "peer"]},
             "Action": "s3:*", "Resource": ["arn:aws:s3:::photos", "arn:aws:s3:::photos/*"],
             "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]}}},
            {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::photos/*",
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]},
        "list_prefix": {"Version": "2008-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:ListBucket",
             "Resource": "arn:aws:s3:::photos",
             "Condition": {"StringLike": {"s3:prefix": ["a/*", ""]},
                           "StringEquals": {"s3:delimiter": "/"},
                           "DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}}]},
    }
    identity = {  # flag byte 0: identity policy
        "readwrite_prefix": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["s3:Get*", "s3:PutObject", "s3:ListBucket"],
             "Resource": ["arn:aws:s3:::photos/a/*", "arn:aws:s3:::photos"],
             "Condition": {"StringNotLike": {"s3:prefix": "secret/*"},
                           "NotIpAddress": {"aws:SourceIp": "192.168.0.0/16"},
                           "DateGreaterThan": {"aws:CurrentTime": "1600000000"}}}]},
        "replication": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "seglake:Replication*", "Resource": "*"}]},
    }
    for name, doc in bucket.items():
        write("policy", name, b"\x01" + json.dumps(doc).encode())
    for name, doc in identity.items():
        write("policy", name, b"\x00" + json.dumps(doc, indent=2).encode())


def meta_seeds():
    vals = {
        "fs_file": '{"content-type":"application/octet-stream","x-amz-meta-mode":"33188",'
                   '"x-amz-meta-uid":"0","x-amz-meta-gid":"0","x-amz-meta-mtime":"1795420783.418000000"}',
        "spaced": '{ "a" : "1" , "x-amz-meta-m" : "" ,"":"empty name" }',
        "escaped": '{"content-type":"text/plain; charset=\\"utf-8\\"","x-amz-meta-mode":"0644"}',
        "not_plain": '{"a":1,"b":{"c":"d"},"x-amz-meta-mode":"caf\u00e9"}',
    }
    for name, v in vals.items():
        write("meta", name, v)


if __name__ == "__main__":
    meta_seeds()
    sigv4_seeds()
    chunked_seeds()
    xml_seeds()
    header_seeds()
    policy_seeds()
