/*
 * maint.h - operations on a whole lake: consistency check (fsck), re-hashing
 * every chunk (scrub), reclaiming dead space (gc), dropping abandoned
 * multipart uploads, online snapshots and restore, maintenance mode.
 *
 * All run online next to readers and writers. Long ones report progress
 * through a callback that can also stop them (return non-zero): they stop at
 * a safe point and report what they did. Not here: rendering progress bars
 * (cli/), scheduling (the daemon), HTTP.
 */
#ifndef SL_CORE_MAINT_H
#define SL_CORE_MAINT_H

#include <stdint.h>

#include "core/core.h"

/* phase: short name; done/total in the phase's unit (bytes or items). */
typedef int (*core_progress_fn)(void *ctx, const char *phase, uint64_t done, uint64_t total);

typedef struct core_fsck_report {
	uint64_t versions, chunk_refs, chunks, segments;
	uint64_t missing_chunks;	      /* versions/parts reference a chunk the index lacks */
	uint64_t damaged_versions;	      /* versions referencing a missing or bad chunk */
	uint64_t bad_locations;		      /* index points where no such chunk record is */
	uint64_t orphan_chunks, orphan_bytes; /* indexed, referenced by nothing (gc reclaims) */
	uint64_t size_mismatches;	      /* version size != sum of its chunk lengths */
	uint64_t missing_segments; /* index refers to a segment file that does not exist */
	char first_problem[512];
} core_fsck_report;
/* Checks metadata against segments. Returns 0 (problems are in the report). */
int core_fsck(core *c, core_fsck_report *r, core_progress_fn fn, void *ctx, sl_err *err);

typedef struct core_scrub_report {
	uint64_t chunks, bytes, damaged, damaged_versions;
	int stopped;
	char first_damaged[160]; /* "bucket/key" of a damaged version */
} core_scrub_report;
/* Re-reads and re-hashes every stored chunk, at most rate bytes/s (0: no
 * limit). Damaged chunks are recorded: reads of versions using them fail with
 * SL_ECORRUPT instead of returning wrong bytes. */
int core_scrub(core *c, uint64_t rate, core_scrub_report *r, core_progress_fn fn, void *ctx,
	       sl_err *err);
/* 1 if scrub found this chunk damaged. */
int core_chunk_damaged(core *c, const uint8_t hash[32]);

typedef struct core_gc_report {
	uint64_t segments, segment_bytes;
	uint64_t live_bytes, dead_bytes;    /* chunk bytes by liveness */
	uint64_t reclaim_segments;	    /* segments gc deletes or rewrites */
	uint64_t reclaim_bytes;		    /* bytes that go away */
	uint64_t moved_chunks, moved_bytes; /* live data copied forward (run only) */
	uint64_t deleted_segments;	    /* run only */
	int stopped;
} core_gc_report;
/* Plans (dry_run) or reclaims dead chunk space: sealed segments holding dead
 * chunks of at least min_dead_ratio of their size are rewritten (live chunks
 * and every journal record copied forward) and deleted. A chunk is live if a
 * version, a multipart part, an uncommitted write or an oplog entry with seq
 * above keep_oplog_after names it: pass the lowest oplog position a
 * replication peer has not acknowledged yet (core_oplog_head() when there are
 * no peers), so chunks still to be shipped stay. rate limits copying
 * (bytes/s, 0: none). */
int core_gc(core *c, int dry_run, double min_dead_ratio, uint64_t rate, int64_t keep_oplog_after,
	    core_gc_report *r, core_progress_fn fn, void *ctx, sl_err *err);

/* Aborts multipart uploads created more than older_than_ms ago. */
int core_mpu_gc(core *c, int64_t older_than_ms, uint64_t *aborted, sl_err *err);

/* Consistent online snapshot into dest (created, must not exist): meta.db
 * through SQLite's backup API, node_id, and every segment (hard links when
 * on the same filesystem, copies otherwise) plus SNAPSHOT (a list of them). */
int core_snapshot(core *c, const char *dest, core_progress_fn fn, void *ctx, sl_err *err);
/* Makes a new data dir dest from a snapshot dir (dest must not exist). */
int core_restore(const char *snapshot, const char *dest, sl_err *err);

/* Maintenance mode: writes in flight finish, new writes fail with SL_EMAINT;
 * reads go on. */
void core_set_maintenance(core *c, int on);
int core_maintenance(core *c);

#endif
