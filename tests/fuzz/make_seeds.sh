#!/usr/bin/env bash
# make_seeds.sh - regenerates every seed corpus under tests/fuzz/corpus/:
# the text-format ones through make_seeds.py, and the segment and repl seeds
# from a real lake made with the seglake CLI (a small bucket/object history;
# its segment files become segment and rebuild seeds, its oplog bodies repl
# seeds).
#
#   bash tests/fuzz/make_seeds.sh [SEGLAKE_BINARY]   (default: build-fuzz/cli/seglake)
# Not here: running the fuzzers (run.sh).
set -euo pipefail
cd "$(dirname "$0")"
HERE=$PWD
SL=${1:-$HERE/../../build-fuzz/cli/seglake}
/usr/bin/python3 "$HERE/make_seeds.py"

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export SEGLAKE_DATA=$TMP/lake ASAN_OPTIONS=detect_leaks=0
"$SL" init "$SEGLAKE_DATA" >/dev/null
"$SL" bucket create photos --versioning enabled >/dev/null
"$SL" bucket create docs >/dev/null
printf 'hello' | "$SL" put photos/a/hello.txt - --content-type text/plain --meta owner=alice >/dev/null
printf 'hello' | "$SL" put photos/b.txt - >/dev/null
printf 'world!\n' | "$SL" put docs/readme.md - >/dev/null
"$SL" rm photos/b.txt >/dev/null
printf '' | "$SL" put docs/dir/ - >/dev/null
"$SL" rm docs/readme.md >/dev/null

C=$HERE/corpus
mkdir -p "$C/segment" "$C/repl"
rm -f "$C"/segment/lake_* "$C"/repl/lake_*
for f in "$SEGLAKE_DATA"/segments/seg-*.sl; do
  n=$(basename "$f" .sl)
  { printf '\000'; cat "$f"; } >"$C/segment/lake_$n"          # as is
  { printf '\003'; cat "$f"; } >"$C/segment/lake_${n}_fixup"  # checksums recomputed
done
# rebuild seeds: the same segments as records, one per line (fuzz_rebuild.c)
rm -f "$C"/rebuild/lake_*
mkdir -p "$C/rebuild"
for f in "$SEGLAKE_DATA"/segments/seg-*.sl; do
  /usr/bin/python3 - "$f" "$C/rebuild/lake_$(basename "$f" .sl)" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
pos, out = 64, []
while pos + 24 <= len(b):
    typ, ln = b[pos + 4], struct.unpack("<I", b[pos + 8:pos + 12])[0]
    p = b[pos + 24:pos + 24 + ln]
    out.append(b"C:" + p[32:].hex().encode() if typ == 1 else p)
    pos += 24 + ln
open(sys.argv[2], "wb").write(b"\n".join(out))
PY
done
i=0
sqlite3 "$SEGLAKE_DATA/meta.db" "SELECT body FROM oplog ORDER BY seq" | while IFS= read -r body; do
  i=$((i + 1))
  printf '%s' "$body" >"$C/repl/lake_op$i"
done
sqlite3 "$SEGLAKE_DATA/meta.db" "SELECT body FROM oplog ORDER BY seq" >"$C/repl/lake_batch"
echo "seeds: $(find "$C" -type f | wc -l) files under $C"
