#!/usr/bin/env bash
# Installs every Debian package Seglake needs to build, run and test.
# Idempotent and non-interactive; safe to run repeatedly (needs root or sudo).
set -euo pipefail

PKGS=(
  # build
  build-essential meson ninja-build pkg-config clang
  libclang-rt-14-dev   # libFuzzer + sanitizer runtimes for clang-14 (tests/fuzz)
  libfuse3-dev libsqlite3-dev libssl-dev libmicrohttpd-dev libjansson-dev
  libexpat1-dev libcurl4-openssl-dev libgnutls28-dev   # gnutls: native TLS reload (s3d/tls.c)
  # run
  fuse3 sqlite3
  # test
  python3-pytest python3-boto3 python3-requests awscli s3cmd rclone s3fs curl
  fio git rsync tar iproute2 procps psmisc util-linux
  # bench (nginx serves the static-file GET ceiling)
  nginx-light
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
