#!/bin/bash
# run-core.sh - runs the core benchmark next to raw-disk ceilings measured in
# the same run on the same filesystem, and prints one comparison table.
#
# Raw ceilings (fio; dd if fio is missing or --dd is given):
#   sequential write of the large size, buffered, one fsync at the end
#   sequential read of that file after dropping the page cache
#   4 KiB random writes with an fsync after each, iodepth 1, one job per writer
# then bench/core_bench (built here if needed) with the same sizes.
#
# Figures are printed, never asserted: the exit status says only whether the
# runs themselves worked. Not a test; not for CI gating.
#
# usage: bench/run-core.sh [--dir PARENT] [--large-mib N] [--small-count N]
#                          [--writers N] [--build DIR] [--dd]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
parent=${TMPDIR:-/var/tmp}
large_mib=1024
small_count=10000
writers=8
build=$repo/build-bench
use_fio=1

die() { echo "run-core.sh: $*" >&2; exit 2; }
usage() { sed -n '14,15p' "$0" | sed 's/^# //'; }

while [ $# -gt 0 ]; do
	case $1 in
	--dir) parent=${2:?--dir needs a path}; shift 2 ;;
	--large-mib) large_mib=${2:?}; shift 2 ;;
	--small-count) small_count=${2:?}; shift 2 ;;
	--writers) writers=${2:?}; shift 2 ;;
	--build) build=${2:?}; shift 2 ;;
	--dd) use_fio=0; shift ;;
	-h|--help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument '$1'" ;;
	esac
done
for v in large_mib small_count writers; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "--${v//_/-} wants a whole number, got '${!v}'"
done
if [ "$large_mib" -lt 1 ] || [ "$small_count" -lt 1 ] || [ "$writers" -lt 1 ]; then
	die "sizes and counts must be at least 1"
fi
[ -d "$parent" ] || die "no such directory: $parent"
if [ "$use_fio" = 1 ] && ! command -v fio >/dev/null; then
	echo "run-core.sh: fio not found, using dd for the raw figures" >&2
	use_fio=0
fi

# ---- build --------------------------------------------------------------------
if [ ! -f "$build/build.ninja" ]; then
	meson setup "$build" "$repo" >/dev/null
fi
if ! out=$(meson compile -C "$build" bench/core_bench 2>&1); then
	echo "$out" | tail -30 >&2
	die "build failed (meson compile -C $build bench/core_bench)"
fi
bench=$build/bench/core_bench

work=$(mktemp -d "$parent/seglake-raw.XXXXXX")
cleanup() { rm -rf -- "$work"; }
trap cleanup EXIT

dropped=yes
drop_cache() {
	sync
	if ! { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
		dropped=no
		echo "run-core.sh: WARNING: cannot drop the page cache (not root?); raw read may come from memory" >&2
	fi
}
now() { date +%s.%N; }
# calc EXPR: floating-point arithmetic
calc() { awk "BEGIN { printf \"%.1f\", $1 }"; }
# fio_get FILE (read|write) (bw_bytes|iops): one figure from fio's JSON (group reporting)
fio_get() {
	/usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["jobs"][0][sys.argv[2]][sys.argv[3]])' "$@"
}

echo "filesystem: $(stat -f -c %T "$parent") on $(df --output=source "$parent" | tail -1), dir $parent"
echo "sizes: large $large_mib MiB, small $small_count x 4 KiB, $writers writers"

# ---- raw ceilings -------------------------------------------------------------
seqfile=$work/seq.dat
if [ "$use_fio" = 1 ]; then
	raw_tool="fio $(fio --version)"
	common=(--ioengine=psync --direct=0 --output-format=json --group_reporting)
	# fio counts the end fsync in the job's runtime, so its bandwidth is write+fsync
	fio --name=seqwrite --filename="$seqfile" --rw=write --bs=1m --size="${large_mib}m" \
		--end_fsync=1 "${common[@]}" >"$work/w.json"
	raw_write=$(calc "$(fio_get "$work/w.json" write bw_bytes) / 1048576")
	echo "raw seq write + end fsync: $raw_write MiB/s"
	drop_cache
	fio --name=seqread --filename="$seqfile" --rw=read --bs=1m --size="${large_mib}m" \
		"${common[@]}" >"$work/r.json"
	raw_read=$(calc "$(fio_get "$work/r.json" read bw_bytes) / 1048576")
	echo "raw seq read: $raw_read MiB/s (cache dropped: $dropped)"
	rm -f "$seqfile"
	fio --name=randfsync --directory="$work" --rw=randwrite --bs=4k --fsync=1 --iodepth=1 \
		--numjobs="$writers" --size=32m --runtime=10 "${common[@]}" >"$work/s.json"
	raw_small=$(calc "$(fio_get "$work/s.json" write iops)")
	raw_small_how="fio randwrite 4k, fsync each, ${writers} jobs"
	echo "raw 4 KiB writes with fsync: $raw_small IOPS ($raw_small_how)"
else
	raw_tool="dd"
	t0=$(now)
	dd if=/dev/zero of="$seqfile" bs=1M count="$large_mib" conv=fsync status=none
	t1=$(now)
	raw_write=$(calc "$large_mib / ($t1 - $t0)")
	echo "raw seq write: $raw_write MiB/s (dd conv=fsync)"
	drop_cache
	t0=$(now)
	dd if="$seqfile" of=/dev/null bs=1M status=none
	t1=$(now)
	raw_read=$(calc "$large_mib / ($t1 - $t0)")
	echo "raw seq read: $raw_read MiB/s (cache dropped: $dropped)"
	rm -f "$seqfile"
	per=$(( (small_count + writers - 1) / writers ))
	[ "$per" -gt 2000 ] && per=2000
	t0=$(now)
	pids=()
	for i in $(seq 1 "$writers"); do
		dd if=/dev/zero of="$work/small.$i" bs=4k count="$per" oflag=dsync status=none &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p"; done
	t1=$(now)
	raw_small=$(calc "$writers * $per / ($t1 - $t0)")
	raw_small_how="dd 4k oflag=dsync, sequential, ${writers} processes"
	echo "raw 4 KiB writes with sync: $raw_small ops/s ($raw_small_how)"
fi

# ---- seglake --------------------------------------------------------------------
echo "---- $bench --dir $parent --large-mib $large_mib --small-count $small_count --writers $writers"
"$bench" --dir "$parent" --large-mib "$large_mib" --small-count "$small_count" \
	--writers "$writers" | tee "$work/core.out"
result() { awk -v k="$1" '$1 == "RESULT" && $2 == k { print $3 }' "$work/core.out"; }
sl_write=$(result large_write_mibs)
sl_read=$(result large_read_mibs)
sl_small=$(result small_put_ops)
sl_dropped=$(result large_read_cache_dropped)
if [ -z "$sl_write" ] || [ -z "$sl_read" ] || [ -z "$sl_small" ]; then
	die "core_bench gave no results"
fi

# ---- table ---------------------------------------------------------------------------
row() { # metric seglake raw unit target_kind target_value
	local ratio met target
	ratio=$(awk -v a="$2" -v b="$3" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')
	if [ "$5" = ratio ]; then
		target=">= $6 x raw"
		met=$(awk -v r="$ratio" -v t="$6" 'BEGIN { print ((r + 0 >= t + 0) ? "yes" : "no") }')
	else
		target=">= $6 $4"
		met=$(awk -v a="$2" -v t="$6" 'BEGIN { print ((a + 0 >= t + 0) ? "yes" : "no") }')
	fi
	printf '%-22s %12s %12s %7s  %-16s %s\n' "$1 ($4)" "$2" "$3" "$ratio" "$target" "$met"
}
echo
echo "raw: $raw_tool; same filesystem as the data dir; page cache dropped before reads: raw $dropped, seglake $([ "$sl_dropped" = 1 ] && echo yes || echo no)"
printf '%-22s %12s %12s %7s  %-16s %s\n' metric seglake raw ratio target met
row "large write" "$sl_write" "$raw_write" MiB/s ratio 0.70
row "large read" "$sl_read" "$raw_read" MiB/s ratio 0.80
row "small puts" "$sl_small" "$raw_small" ops/s abs 2000
echo "(small-put raw = $raw_small_how; its ratio is for reference, the target is absolute)"
