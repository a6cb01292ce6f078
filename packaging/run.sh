#!/usr/bin/env bash
# Installs dependencies, builds Seglake and runs it on its embedded defaults:
# a data dir ./data (SQLite + local segments), the S3 API on 127.0.0.1:9000
# and the lake mounted at ./mnt. Ctrl-C (SIGINT) stops it cleanly.
#
#   SEGLAKE_LISTEN=127.0.0.1:9100 bash packaging/run.sh    another port
#   SEGLAKE_NO_MOUNT=1 bash packaging/run.sh               S3 only
set -euo pipefail
cd "$(dirname "$0")/.."

bash packaging/install-deps.sh
[ -f build/build.ninja ] || meson setup build
meson compile -C build

BIN=build/cli/seglake
DATA=${SEGLAKE_DATA:-$PWD/data}
MNT=${SEGLAKE_MOUNT:-$PWD/mnt}
LISTEN=${SEGLAKE_LISTEN:-127.0.0.1:9000}

[ -f "$DATA/node_id" ] || "$BIN" init "$DATA"

args=(serve --data "$DATA" --listen "$LISTEN")
if [ -z "${SEGLAKE_NO_MOUNT:-}" ]; then
  mkdir -p "$MNT"
  # a mount left behind by a killed process is cleared first
  if grep -qs " $MNT fuse" /proc/mounts; then fusermount3 -u "$MNT" || umount -l "$MNT"; fi
  args+=(--mount "$MNT")
fi
exec "$BIN" "${args[@]}"
