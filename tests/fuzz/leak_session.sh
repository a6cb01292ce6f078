#!/usr/bin/env bash
# leak_session.sh - LeakSanitizer check of a real serve (+ mount) session:
# runs `seglake serve` from an ASan/UBSan build (default build-asan) with
# --mount, drives it with boto3 (buckets, PUT incl. aws-chunked with trailing
# checksums, multipart, range GET, listing, DeleteObjects, versioning, CORS,
# presigned GET) and with plain file operations through the mount, then
# SIGTERM; then `seglake mount` alone, likewise. Exits non-zero if the process reports a leak or any sanitizer
# error, printing the report.
#
#   bash tests/fuzz/leak_session.sh [BUILD_DIR]    (SEGLAKE_LEAK_NO_MOUNT=1: S3 only)
# Not here: the fuzz targets (run.sh).
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${1:-$ROOT/build-asan}
SL=$BUILD/cli/seglake
[ -x "$SL" ] || { echo "no $SL (meson setup $BUILD -Db_sanitize=address,undefined -Db_lundef=false)" >&2; exit 2; }
TMP=$(mktemp -d)
PID=""
cleanup() {
  [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && sleep 1
  mountpoint -q "$TMP/mnt" 2>/dev/null && fusermount3 -u "$TMP/mnt" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
mkdir -p "$TMP/mnt"
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:log_path=$TMP/asan
export UBSAN_OPTIONS=print_stacktrace=1:log_path=$TMP/ubsan
"$SL" init "$TMP/data" >/dev/null 2>&1
MOUNT=(--mount "$TMP/mnt")
[ -n "${SEGLAKE_LEAK_NO_MOUNT:-}" ] && MOUNT=()
"$SL" serve --data "$TMP/data" --listen "127.0.0.1:$PORT" --access-key leakkey \
  --secret-key leaksecret123 --quiet "${MOUNT[@]}" >"$TMP/serve.log" 2>&1 &
PID=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done

env -u AWS_CA_BUNDLE PORT="$PORT" /usr/bin/python3 - <<'PY' || { echo "leak_session: client part failed" >&2; }
import os, boto3, urllib.request
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:%s" % os.environ["PORT"],
                  aws_access_key_id="leakkey", aws_secret_access_key="leaksecret123",
                  region_name="us-east-1", config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
s3.create_bucket(Bucket="leak")
s3.put_object(Bucket="leak", Key="a/hello.txt", Body=b"hello", Metadata={"owner": "alice"})
s3.put_object(Bucket="leak", Key="big", Body=os.urandom(5 * 1024 * 1024 + 7), ChecksumAlgorithm="CRC32")
assert s3.get_object(Bucket="leak", Key="a/hello.txt")["Body"].read() == b"hello"
s3.get_object(Bucket="leak", Key="big", Range="bytes=10-20")["Body"].read()
s3.get_object(Bucket="leak", Key="big", Range="bytes=0-1,5-9")["Body"].read()
s3.head_object(Bucket="leak", Key="big")
s3.list_objects_v2(Bucket="leak", Prefix="a/", Delimiter="/")
s3.list_objects(Bucket="leak")
mpu = s3.create_multipart_upload(Bucket="leak", Key="mp")
p1 = s3.upload_part(Bucket="leak", Key="mp", UploadId=mpu["UploadId"], PartNumber=1, Body=b"x" * (5 * 1024 * 1024))
p2 = s3.upload_part(Bucket="leak", Key="mp", UploadId=mpu["UploadId"], PartNumber=2, Body=b"tail")
s3.complete_multipart_upload(Bucket="leak", Key="mp", UploadId=mpu["UploadId"], MultipartUpload={
    "Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 2, "ETag": p2["ETag"]}]})
ab = s3.create_multipart_upload(Bucket="leak", Key="aborted")
s3.abort_multipart_upload(Bucket="leak", Key="aborted", UploadId=ab["UploadId"])
s3.copy_object(Bucket="leak", Key="copy", CopySource={"Bucket": "leak", "Key": "a/hello.txt"})
s3.put_bucket_versioning(Bucket="leak", VersioningConfiguration={"Status": "Enabled"})
s3.put_object(Bucket="leak", Key="a/hello.txt", Body=b"hello v2")
s3.list_object_versions(Bucket="leak")
s3.put_bucket_cors(Bucket="leak", CORSConfiguration={"CORSRules": [
    {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}]})
s3.get_bucket_cors(Bucket="leak")
s3.delete_objects(Bucket="leak", Delete={"Objects": [{"Key": "copy"}, {"Key": "missing"}]})
url = s3.generate_presigned_url("get_object", Params={"Bucket": "leak", "Key": "mp"}, ExpiresIn=60)
urllib.request.urlopen(url).read()
try:
    s3.get_object(Bucket="leak", Key="nope")
except s3.exceptions.NoSuchKey:
    pass
print("leak_session: S3 requests done")
PY

# curl --aws-sigv4 (no x-amz-content-sha256 header: the curl upload paths)
CURL=(curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" --user "leakkey:leaksecret123")
echo "curl body" >"$TMP/c.txt"
"${CURL[@]}" -T "$TMP/c.txt" "http://127.0.0.1:$PORT/leak/curl-put" >/dev/null &&
  "${CURL[@]}" "http://127.0.0.1:$PORT/leak/curl-put" >/dev/null &&
  echo "leak_session: curl requests done" || echo "leak_session: a curl request failed" >&2

if [ ${#MOUNT[@]} -gt 0 ] && mountpoint -q "$TMP/mnt"; then
  M=$TMP/mnt
  mkdir -p "$M/leak/dir/sub" && echo "through the mount" >"$M/leak/dir/f.txt" &&
    cat "$M/leak/dir/f.txt" >/dev/null && ls -lR "$M/leak" >/dev/null &&
    mv "$M/leak/dir/f.txt" "$M/leak/dir/g.txt" && dd if=/dev/urandom of="$M/leak/r.bin" bs=64k count=20 status=none &&
    printf 'patch' | dd of="$M/leak/r.bin" bs=1 seek=1000 conv=notrunc status=none &&
    ln -s g.txt "$M/leak/dir/link" && rm "$M/leak/dir/g.txt" && echo "leak_session: mount operations done" ||
    echo "leak_session: a mount operation failed" >&2
elif [ ${#MOUNT[@]} -gt 0 ]; then
  echo "leak_session: mount did not come up (see $TMP/serve.log)" >&2
fi

kill -TERM "$PID"
wait "$PID"
rc=$?
PID=""
echo "leak_session: serve exited with $rc"
status=0
if ls "$TMP"/asan.* "$TMP"/ubsan.* >/dev/null 2>&1; then
  cat "$TMP"/asan.* "$TMP"/ubsan.* 2>/dev/null
  status=1
fi
grep -E "runtime error|LeakSanitizer|AddressSanitizer" "$TMP/serve.log" && status=1
[ "$rc" -ne 0 ] && { tail -n 20 "$TMP/serve.log"; status=1; }

# Phase 2: `seglake mount` alone (it detaches; the child's pid is in its output).
if [ -z "${SEGLAKE_LEAK_NO_MOUNT:-}" ]; then
  rm -f "$TMP"/asan.* "$TMP"/ubsan.*
  "$SL" mount "$TMP/data" "$TMP/mnt" >"$TMP/mount.log" 2>&1
  MPID=$(grep -o 'pid [0-9]*' "$TMP/mount.log" | grep -o '[0-9]*$')
  if [ -n "$MPID" ]; then
    M=$TMP/mnt
    mkdir "$M/solo" && mkdir -p "$M/solo/x/y" && cp /etc/services "$M/solo/s" &&
      cmp /etc/services "$M/solo/s" && ls -laR "$M" >/dev/null && mv "$M/solo/s" "$M/solo/x/t" &&
      printf abc | dd of="$M/solo/x/t" bs=1 seek=100 conv=notrunc status=none &&
      rm "$M/solo/x/t" && echo "leak_session: standalone mount operations done" ||
      echo "leak_session: a standalone mount operation failed" >&2
    kill -TERM "$MPID"
    for _ in $(seq 100); do kill -0 "$MPID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$MPID" 2>/dev/null && { echo "leak_session: mount pid $MPID did not exit" >&2; status=1; }
    if ls "$TMP"/asan.* "$TMP"/ubsan.* >/dev/null 2>&1; then
      cat "$TMP"/asan.* "$TMP"/ubsan.* 2>/dev/null
      status=1
    fi
  else
    echo "leak_session: seglake mount failed: $(cat "$TMP/mount.log")" >&2
    status=1
  fi
fi
[ "$status" -eq 0 ] && echo "leak_session: no leaks, no sanitizer reports"
exit "$status"
