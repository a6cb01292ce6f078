/*
 * core_internal.h - what the files of core/ share: the core struct, the
 * commit queue and the op appliers. Not for front ends.
 */
#ifndef SL_CORE_INTERNAL_H
#define SL_CORE_INTERNAL_H

#include <jansson.h>
#include <pthread.h>

#include "common/hex.h"
#include "core/core.h"
#include "meta/hlc.h"
#include "meta/meta.h"
#include "store/store.h"

/* chunks (and chunk-sized buffers) in the background at once, process-wide */
#define CORE_ASYNC_MAX 4

struct core {
	char *dir;
	int lockfd;
	char node[17];
	uint64_t max_object;
	store *st;
	meta *md;

	/* commit queue: the head is the leader (see core_commit) */
	pthread_mutex_t qmu;
	pthread_cond_t qcv;
	struct core_txn *qhead, *qtail;
	hlc_clock hlc;	      /* used by the leader only */
	int64_t pending_head; /* oplog seq written in the open transaction */
	int64_t jseq;	      /* last journal record sequence issued */

	/* chunks appended but not yet in the chunk index (hash -> location);
	 * an entry leaves once a commit has indexed the chunk */
	pthread_mutex_t pmu;
	struct core_pending **pending;
	size_t npending_buckets;

	int maint;	      /* maintenance mode: user writes refused (atomic) */
	int ndamaged;	      /* rows in the damaged table (atomic) */
	pthread_mutex_t gcmu; /* one gc or snapshot at a time */

	/* background chunk storing (core_chunk_put_async) */
	pthread_mutex_t jmu;
	pthread_cond_t jcv;
	struct core_chunk_job *jhead, *jtail;
	pthread_t jthreads[2];
	int njthreads;
	int jstop;
	int jinflight;	/* jobs queued or running, bounded by CORE_ASYNC_MAX */
	int jreadahead; /* reader read-ahead buffers held, bounded by CORE_ASYNC_MAX */
	int jwslots;	/* writer chunk buffers in the background, bounded by CORE_WSLOTS_MAX */
	/* idle CORE_CHUNK_SIZE buffers kept for reuse (core_chunkbuf_get) */
	void *jbufs[CORE_ASYNC_MAX];
	int njbufs;

	/* oplog followers */
	pthread_mutex_t omu;
	pthread_cond_t ocv;
	int64_t oplog_head;
	unsigned wake_gen;
};

typedef struct core_txn core_txn;
/* Builds and applies the ops of one transaction on the writer connection,
 * inside a savepoint; on error everything it did is rolled back. Runs on the
 * leader's thread: it may only use t->arg. */
typedef int (*core_prepare_fn)(core *c, meta_conn *w, core_txn *t, sl_err *err);

struct core_txn {
	core_prepare_fn prepare;
	void *arg;
	json_t *ops;
	int rc;
	sl_err err;
	int done;
	core_txn *next;
};

void core_jobs_start(core *c);
void core_jobs_stop(core *c);

/* Runs a transaction through the group commit: returns once it is durable
 * (chunks and journal fsynced, SQLite committed) or failed. */
int core_commit(core *c, core_prepare_fn fn, void *arg, sl_err *err);
/* The same for the core's own housekeeping (gc, scrub, trim): allowed in
 * maintenance mode. */
int core_commit_internal(core *c, core_prepare_fn fn, void *arg, sl_err *err);
/* Applies op (live or replayed) and records it in t->ops (t may be NULL in replay). */
int core_apply(core *c, meta_conn *w, json_t *op, sl_err *err);
int core_txn_apply(core *c, meta_conn *w, core_txn *t, json_t *op, sl_err *err);
/* A string / integer member of a JSON op; NULL / 0 when absent or of
 * another type. */
static inline const char *core_jstr(json_t *op, const char *k)
{
	json_t *v = json_object_get(op, k);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static inline int64_t core_jint(json_t *op, const char *k)
{
	json_t *v = json_object_get(op, k);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

/* The oplog head as the index has it (trimming keeps it: the AUTOINCREMENT
 * sequence counts), -1 if it cannot be read. */
int64_t core_oplog_head_db(meta_conn *w);
/* Replaces an op's chunk refs ([hex, len] or [hex, len, seg, off] from
 * another host) by [hex, len, seg, off] here; SL_ENOKEY if one is not
 * stored (what names the op in the message). */
int core_chunks_relocate(core *c, meta_conn *w, json_t *op, const char *what, sl_err *err);
/* One row of the versions table, as put ops and snapshot records write it
 * (strings borrowed; parts NULL for a version not assembled from parts). */
typedef struct core_vrow {
	const char *bucket, *key, *vid, *node, *etag, *meta, *parts;
	int64_t hlc, size, mtime_ms;
	int dm, state;
	const void *chunks; /* core_chunks_blob */
	size_t chunks_len;
} core_vrow;
int core_version_insert(meta_conn *w, const core_vrow *r, sl_err *err);
/* Applies a snap-* journal op (core/snapshot.c). */
int core_snapshot_apply_op(core *c, meta_conn *w, json_t *op, sl_err *err);

/* Pending chunk map (core/objects.c): 4096 hash buckets of this list. */
typedef struct core_pending {
	uint8_t hash[32];
	store_loc loc;
	struct core_pending *next;
} core_pending;

void core_pending_add(core *c, const uint8_t hash[32], store_loc loc);
int core_pending_get(core *c, const uint8_t hash[32], store_loc *loc);
void core_pending_drop_ops(core *c, json_t *ops);
void core_pending_free(core *c);
/* core_chunk_put for a caller that already has the SHA-256 of buf. */
int core_chunk_put_hashed(core *c, const void *buf, uint32_t len, const uint8_t hash[32],
			  core_chunkref *ref, sl_err *err);
/* core_chunk_put_hashed; cold: append with STORE_APPEND_COLD. */
int core_chunk_store(core *c, const void *buf, uint32_t len, const uint8_t hash[32], int cold,
		     core_chunkref *ref, sl_err *err);
/* Location of a stored chunk: index first, then the pending map. */
int core_chunk_loc(core *c, meta_conn *conn, const uint8_t hash[32], store_loc *loc, sl_err *err);

/* Sets op.prev to the (hlc, node) of the key's latest version, if any. */
int core_latest_prev(meta_conn *w, const char *b, const char *k, json_t *op, sl_err *err);

/* New op object with "op", hlc and node filled (live ops). */
json_t *core_op_new(core *c, const char *op);

/* chunk lists <-> the versions.chunks blob (u32 len + 32-byte hash each) */
void *core_chunks_blob(const core_chunkref *ch, size_t n, size_t *len);
int core_chunks_from_blob(const void *blob, size_t len, core_chunkref **out, size_t *n);
/* chunk list -> JSON [[hexhash, len, seg, off] | [null, len]] with locations */
json_t *core_chunks_json(core *c, meta_conn *conn, const core_chunkref *ch, size_t n, sl_err *err);
int core_chunks_from_json(json_t *arr, core_chunkref **out, size_t *n);

/* Row of "SELECT <CORE_VCOLS> FROM versions v" -> objinfo (+ chunks if wanted). */
#define CORE_VCOLS                                                                                 \
	"v.id, v.bucket, v.key, v.vid, v.hlc, v.node, v.dm, v.size, v.etag, v.mtime_ms, "          \
	"v.meta, v.state, v.chunks"
int core_row_objinfo(sqlite3_stmt *st, int col0, core_objinfo *oi, core_chunkref **chunks,
		     size_t *nchunks);
/* Finds a version: vid NULL = latest (any state-0 version, delete markers
 * included). Returns row id > 0, or SL_ENOKEY / SL_ENOVERSION. */
int64_t core_find_version(meta_conn *conn, const char *bucket, const char *key, const char *vid,
			  core_objinfo *oi, core_chunkref **chunks, size_t *nchunks, sl_err *err);
int core_bucket_versioning(meta_conn *conn, const char *bucket, int *vers, sl_err *err);
/* Validates a key: 1..1024 bytes, no NUL. */
int core_key_check(const char *key, sl_err *err);
/* "md5(concat of raw md5s)-N" style etag over chunk hashes (patched data). */
void core_etag_of_chunks(const core_chunkref *ch, size_t n, char out[72]);
int core_meta_valid(const char *meta, sl_err *err);

#endif
