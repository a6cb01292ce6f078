/*
 * core.h - the object API that every front end calls (S3 daemon, FUSE mount,
 * CLI, replication). It joins store/ (segments of chunks) and meta/ (SQLite
 * index) and owns the write path:
 *
 *   writer threads hash and append chunks to the open segment, then hand a
 *   transaction (one or more ops) to the commit queue; the queue's leader
 *   batches every waiting transaction, applies them inside one SQLite
 *   transaction, appends their journal records to the segment, fsyncs it,
 *   commits SQLite and wakes the writers. So chunk data and the journal are on
 *   disk before the metadata commit that makes a version visible, and
 *   concurrent writers share both fsyncs (group commit). No sleeps.
 *
 * Segments are the source of truth: each committed transaction is also a
 * journal record in a segment, so meta.db can be rebuilt from segments
 * (core_rebuild_index) and a crash between the segment fsync and the SQLite
 * commit is rolled forward on the next open.
 *
 * Not here: HTTP, XML, FUSE inode tables, SigV4. All functions are thread-safe
 * unless stated; they return 0 or a negative SL_E* code and fill *err.
 * Strings in results are owned by the result struct and freed with its _clear.
 */
#ifndef SL_CORE_CORE_H
#define SL_CORE_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

#define CORE_CHUNK_SIZE (4u * 1024 * 1024)
#define CORE_MAX_KEY 1024
#define CORE_NULL_VERSION "null"

typedef struct core core;
struct store_io;

/* ---- lifecycle ----------------------------------------------------------- */

typedef struct core_opts {
	const struct store_io *io;  /* NULL: POSIX. Tests pass a fault injector. */
	uint64_t segment_max_bytes; /* rotate the open segment past this (0: 256 MiB) */
	unsigned segment_idle_sec;  /* seal an open segment idle this long (0: 60) */
	uint64_t max_object_size;   /* 0: 5 GiB; writers fail with SL_ETOOLARGE past it */
} core_opts;

/* Creates DIR (mode 0700) with an empty lake. SL_EEXIST if it already holds one. */
int core_init(const char *dir, sl_err *err);
/* Opens DIR: takes the exclusive lock (SL_ELOCKED with the holder's pid in the
 * message if another process has it), runs recovery (torn segment tails cut,
 * committed journal records rolled forward). opts may be NULL. */
int core_open(const char *dir, const core_opts *opts, core **out, sl_err *err);
/* Flushes, closes and releases the lock. NULL is a no-op. */
void core_close(core *c);
/* Periodic housekeeping (seal idle segment). Front ends call it about once a second. */
void core_tick(core *c);
const char *core_node_id(const core *c); /* 16 hex chars, fixed per data dir */
const char *core_dir(const core *c);

/* Drops meta.db and rebuilds it by replaying every journal record of every
 * segment in order. The data dir must not be open elsewhere. */
int core_rebuild_index(const char *dir, sl_err *err);

/* ---- buckets ------------------------------------------------------------- */

enum core_versioning {
	CORE_VERS_UNVERSIONED = 0, /* never enabled: only the "null" version */
	CORE_VERS_ENABLED = 1,
	CORE_VERS_SUSPENDED = 2,
	CORE_VERS_DISABLED = 3, /* unversioned forever: PutBucketVersioning refused */
};

typedef struct core_bucket {
	char name[64];
	int versioning;	    /* enum core_versioning */
	int64_t created_ms; /* unix ms */
} core_bucket;

/* S3 bucket name rules (3-63 chars, lowercase, digits, '.', '-', no IP form). */
int core_bucket_name_valid(const char *name);
int core_bucket_create(core *c, const char *name, int versioning, sl_err *err);
/* SL_ENOTEMPTY if any version, delete marker or multipart upload remains. */
int core_bucket_delete(core *c, const char *name, sl_err *err);
int core_bucket_get(core *c, const char *name, core_bucket *out, sl_err *err);
/* Sorted by name; *out is malloc'd, free() it. */
int core_bucket_list(core *c, core_bucket **out, size_t *n, sl_err *err);
/* SL_ENOTSUP if the bucket is CORE_VERS_DISABLED; state is ENABLED or SUSPENDED. */
int core_bucket_set_versioning(core *c, const char *name, int state, sl_err *err);
/* Named bucket configuration documents ("cors", "policy"): opaque text stored,
 * journalled and replicated. get: SL_ENOKEY if unset; *value malloc'd. value
 * NULL in set deletes it. */
int core_bucket_config_get(core *c, const char *bucket, const char *name, char **value,
			   sl_err *err);
int core_bucket_config_set(core *c, const char *bucket, const char *name, const char *value,
			   sl_err *err);

/* ---- object info --------------------------------------------------------- */

/* A version's state. Tombstones (deletes in unversioned buckets, kept so a
 * replicated older write cannot bring a key back) never appear in results. */
enum core_vstate {
	CORE_VSTATE_OK = 0,
	CORE_VSTATE_CONFLICT = 1, /* lost a concurrent write (last-writer-wins); kept */
	CORE_VSTATE_DAMAGED = 2,
	CORE_VSTATE_TOMBSTONE = 3,
};

typedef struct core_objinfo {
	char *bucket;
	char *key;
	char *version_id; /* "null" for the null version */
	uint64_t size;
	char etag[72];	  /* without quotes: 32 hex, or 32 hex + "-N" */
	int64_t mtime_ms; /* Last-Modified, unix ms */
	char *meta;	  /* JSON object: lowercase header name -> string value
			   * (content-type, cache-control, x-amz-meta-*, x-amz-checksum-*) */
	int delete_marker;
	int is_latest;
	int state; /* enum core_vstate */
	uint64_t hlc;
	char node[17];
} core_objinfo;

void core_objinfo_clear(core_objinfo *oi);
/* Looks up one value in oi->meta; returns a malloc'd copy or NULL. */
char *core_meta_get(const char *meta_json, const char *name);
/* The values of the top-level members names[0..n) (n <= 32) of a metadata
 * object, read without building it: bit i of *found set and out[i] a
 * NUL-terminated copy for each present one. Only the plain case is read this
 * way (string values, printable ASCII, no escapes, values shorter than
 * CORE_META_FIELD_MAX), and then the result is what jansson would give;
 * returns 0 for anything else (parse it with jansson then), 1 when read
 * (meta NULL: nothing found). */
#define CORE_META_FIELD_MAX 64
int core_meta_fields(const char *meta, const char *const *names, size_t n,
		     char (*out)[CORE_META_FIELD_MAX], unsigned *found);

/* HEAD: version_id NULL or "" means latest. Latest being a delete marker gives
 * SL_ENOKEY with out->delete_marker = 1 and out->version_id set. Asking for a
 * delete marker by version id returns 0 with out->delete_marker = 1. */
int core_head(core *c, const char *bucket, const char *key, const char *version_id,
	      core_objinfo *out, sl_err *err);
/* The part sizes of one version (version_id as core_objinfo gives it; NULL =
 * "null") if it was completed from a multipart upload: *sizes is malloc'd
 * (free()), *n parts. *n = 0 and *sizes = NULL for a version not assembled
 * from parts, or completed before part sizes were kept (schema 5). */
int core_version_parts(core *c, const char *bucket, const char *key, const char *version_id,
		       uint64_t **sizes, size_t *n, sl_err *err);

/* ---- writing ------------------------------------------------------------- */

/* Conditions checked atomically at commit time. */
typedef struct core_cond {
	const char *if_match;	   /* etag (no quotes) the current version must have, or "*" */
	const char *if_none_match; /* only "*" is meaningful for writes: key must not exist */
	const char *if_version;	   /* current version id must equal this (FUSE close-to-open) */
} core_cond;

typedef struct core_put_opts {
	const char *meta; /* JSON object of stored headers (see core_objinfo.meta); NULL = {} */
	const uint8_t *content_md5; /* 16 bytes to verify against the data, or NULL */
	core_cond cond;
	const char *kind; /* oplog kind: NULL = "put"; "mkdir", "meta", ... */
} core_put_opts;

/* A writer streams one object in: memory is bounded by one chunk buffer,
 * whatever the object size. Chunks are hashed (SHA-256), deduplicated and
 * appended to the open segment as they fill; MD5 of the whole stream is
 * computed on the way (the ETag). Nothing is visible until commit. */
typedef struct core_writer core_writer;

int core_put_begin(core *c, const char *bucket, const char *key, core_writer **out, sl_err *err);
int core_put_write(core_writer *w, const void *buf, size_t len, sl_err *err);
/* Commits the object; fills *out (may be NULL). Frees w whatever the result. */
int core_put_commit(core_writer *w, const core_put_opts *opts, core_objinfo *out, sl_err *err);
void core_put_abort(core_writer *w);
uint64_t core_writer_size(const core_writer *w);
/* The MD5 of what was written so far is final after the last write. */
void core_writer_md5(const core_writer *w, uint8_t out[16]);

/* Chunk-level building blocks for front ends that assemble objects themselves
 * (FUSE patching files in place). A chunk ref names stored content. */
typedef struct core_chunkref {
	uint8_t hash[32]; /* all zero: a hole (reads as zeros, nothing stored) */
	uint32_t len;
} core_chunkref;

/* Hashes, dedupes and appends one chunk (len <= CORE_CHUNK_SIZE); fills *ref.
 * An all-zero buffer becomes a hole without touching the disk. Not durable
 * until a commit that references it. */
int core_chunk_put(core *c, const void *buf, uint32_t len, core_chunkref *ref, sl_err *err);
/* The same in the background, so a writer can go on filling its next
 * buffer: returns a job, or NULL when the background capacity (a small fixed
 * number of chunks for the whole process, which bounds memory) is in use;
 * then call core_chunk_put. buf must stay untouched until the wait. */
typedef struct core_chunk_job core_chunk_job;
core_chunk_job *core_chunk_put_async(core *c, const void *buf, uint32_t len);
/* The same for chunks not expected to be read back soon (received from a
 * peer, a full chunk of an upload or of a file written start to end through
 * the mount): the store may write them past the page cache
 * (STORE_APPEND_COLD). */
core_chunk_job *core_chunk_put_async_cold(core *c, const void *buf, uint32_t len);
/* Waits for a job, fills *ref, frees the job; returns its result. */
int core_chunk_job_wait(core_chunk_job *j, core_chunkref *ref, sl_err *err);
/* Reads len bytes at off within a stored chunk (holes read as zeros). */
int core_chunk_read(core *c, const core_chunkref *ref, uint32_t off, void *buf, uint32_t len,
		    sl_err *err);
/* Commits a version made of the given chunks in order. etag: if NULL, the
 * multipart form over the chunks' MD5s is computed ("md5(md5s)-N"). */
int core_put_chunks(core *c, const char *bucket, const char *key, const core_chunkref *chunks,
		    size_t nchunks, const char *etag, const core_put_opts *opts, core_objinfo *out,
		    sl_err *err);
/* The chunk list of a version (latest if version_id NULL); *chunks malloc'd. */
int core_get_chunks(core *c, const char *bucket, const char *key, const char *version_id,
		    core_objinfo *info, core_chunkref **chunks, size_t *nchunks, sl_err *err);

/* ---- reading ------------------------------------------------------------- */

typedef struct core_reader core_reader;

/* Opens a version for reading (latest if version_id NULL). Fails like core_head. */
int core_get_open(core *c, const char *bucket, const char *key, const char *version_id,
		  core_objinfo *info, core_reader **out, sl_err *err);
/* Reads up to len bytes at off; returns bytes read (0 at or past EOF) or SL_E*.
 * Every chunk is read whole and checked against the CRC-32C its segment record
 * carries over its hash and data (SL_ECORRUPT on mismatch, never wrong bytes);
 * scrub re-hashes the SHA-256 of every chunk. */
/* A reader over the stored chunks ch[0..n) (copied) as if they were one
 * object: what replication sends. A missing chunk fails the read that reaches
 * it (SL_ECORRUPT), like a damaged one. It asks the disk for the chunks ahead
 * (uploads bypass the page cache, so what a peer fetches is on the disk). */
int core_chunks_open(core *c, const core_chunkref *ch, size_t n, core_reader **out, sl_err *err);
ssize_t core_read_at(core_reader *r, void *buf, size_t len, uint64_t off, sl_err *err);
void core_reader_free(core_reader *r);

/* ---- deleting, copying, renaming, metadata -------------------------------- */

typedef struct core_del_result {
	int delete_marker;   /* a delete marker was created, or the deleted version was one */
	char version_id[64]; /* the marker's id, or the permanently deleted version's id */
} core_del_result;

/* version_id NULL: S3 DeleteObject semantics for the bucket's versioning state
 * (unversioned: remove the null version; enabled: add a marker; suspended: a
 * null marker replacing the null version). Deleting a missing key succeeds.
 * version_id set: permanently remove that version (SL_ENOVERSION if none... AWS
 * returns success for a missing version id, so do we: res->version_id echoes it). */
int core_delete(core *c, const char *bucket, const char *key, const char *version_id,
		core_del_result *res, sl_err *err);

/* Metadata-only copy: the new version shares the source's chunks. meta NULL
 * keeps the source's metadata (COPY directive), otherwise replaces it. */
int core_copy(core *c, const char *src_bucket, const char *src_key, const char *src_version,
	      const char *dst_bucket, const char *dst_key, const core_put_opts *opts,
	      core_objinfo *out, sl_err *err);

enum core_rename_flags {
	CORE_RENAME_NOREPLACE = 1, /* SL_EEXIST if dst exists */
	CORE_RENAME_EXCHANGE = 2,  /* swap src and dst (both must exist) */
};
/* Moves the latest version of src to dst in one transaction: dst gets a new
 * version sharing src's chunks and metadata, src gets deleted (as core_delete).
 * Journalled as per-key ops (delete + put) for last-writer-wins per key. */
int core_rename(core *c, const char *bucket, const char *src_key, const char *dst_key, int flags,
		sl_err *err);
/* Moves every key under src_prefix to dst_prefix (both ending in '/'), in one
 * transaction. Returns the number of keys moved (>= 0) or SL_E*. */
long core_rename_prefix(core *c, const char *bucket, const char *src_prefix, const char *dst_prefix,
			sl_err *err);
/* Replaces the latest version's metadata (new version sharing the chunks). */
int core_set_meta(core *c, const char *bucket, const char *key, const char *meta,
		  const core_cond *cond, core_objinfo *out, sl_err *err);

/* ---- listing ------------------------------------------------------------- */

typedef struct core_list_opts {
	const char *prefix;	    /* NULL = "" */
	const char *delimiter;	    /* NULL or "" = none */
	const char *start_after;    /* list keys strictly after this (marker / token) */
	const char *version_marker; /* versions listing: resume after this version of start_after */
	int max_keys;		    /* 0..1000; entries + prefixes count together */
	int versions;		    /* list every version and delete marker */
} core_list_opts;

typedef struct core_list_result {
	core_objinfo *objs;
	size_t nobjs;
	char **prefixes; /* CommonPrefixes, sorted, unique */
	size_t nprefixes;
	int truncated;
	char *next_marker;	   /* key (or prefix) to resume after, if truncated */
	char *next_version_marker; /* versions listing only */
} core_list_result;

/* Indexed range scans: cost follows the keys returned, not the bucket size;
 * a common prefix is skipped with one seek. Keys sort by UTF-8 bytes. */
int core_list(core *c, const char *bucket, const core_list_opts *opts, core_list_result *out,
	      sl_err *err);
void core_list_result_clear(core_list_result *r);

/* What a name is, for a file system view of a bucket: the object `key`
 * (latest version live, not a delete marker) and the directory `key` + "/"
 * (a marker object "key/" or any live key under that prefix). Two point
 * lookups on the current-version index (want chooses which), no listing. */
enum core_name_want {
	CORE_NAME_FILE = 1,
	CORE_NAME_DIR = 2,
};

typedef struct core_name_info {
	int is_file;	/* the object key exists: file filled */
	int is_dir;	/* some live key starts with key + "/" */
	int has_marker; /* the object key + "/" exists: marker filled */
	core_objinfo file;
	core_objinfo marker;
} core_name_info;

/* 0 (whatever was found, possibly nothing), SL_ENOBUCKET, or another error.
 * key is the name without the trailing "/": 1 to CORE_MAX_KEY - 1 bytes. */
int core_name_stat(core *c, const char *bucket, const char *key, int want, core_name_info *out,
		   sl_err *err);
void core_name_info_clear(core_name_info *ni);

/* ---- multipart uploads --------------------------------------------------- */

typedef struct core_part {
	int number;
	uint64_t size;
	char etag[40];
	int64_t mtime_ms;
} core_part;

typedef struct core_upload {
	char upload_id[40];
	char *key;
	int64_t created_ms;
} core_upload;

int core_mpu_create(core *c, const char *bucket, const char *key, const char *meta,
		    char upload_id[40], sl_err *err);
/* Part data is streamed with an ordinary writer from core_mpu_part_begin and
 * committed with core_mpu_part_commit (replacing any earlier part number). */
int core_mpu_part_begin(core *c, const char *bucket, const char *key, const char *upload_id,
			int part_number, core_writer **out, sl_err *err);
int core_mpu_part_commit(core_writer *w, const uint8_t *content_md5, core_part *out, sl_err *err);
/* UploadPartCopy: the part shares chunks of the source range where chunk
 * boundaries allow and copies only the partial chunks at its ends. */
int core_mpu_part_copy(core *c, const char *bucket, const char *key, const char *upload_id,
		       int part_number, const char *src_bucket, const char *src_key,
		       const char *src_version, uint64_t off, uint64_t len, core_part *out,
		       sl_err *err);
/* Parts must ascend (SL_EPARTORDER), exist with matching etags (SL_EINVALPART),
 * all but the last >= min_part_size (SL_ETOOSMALL). Metadata-only. */
int core_mpu_complete(core *c, const char *bucket, const char *key, const char *upload_id,
		      const core_part *parts, size_t nparts, uint64_t min_part_size,
		      const core_cond *cond, core_objinfo *out, sl_err *err);
int core_mpu_abort(core *c, const char *bucket, const char *key, const char *upload_id,
		   sl_err *err);
/* Parts after part_marker, at most max; *out malloc'd. */
int core_mpu_list_parts(core *c, const char *bucket, const char *key, const char *upload_id,
			int part_marker, int max, core_part **out, size_t *n, int *truncated,
			sl_err *err);
/* Uploads in (key, upload id) order after the markers; free with core_uploads_free. */
int core_mpu_list(core *c, const char *bucket, const char *prefix, const char *key_marker,
		  const char *upload_id_marker, int max, core_upload **out, size_t *n,
		  int *truncated, sl_err *err);
void core_uploads_free(core_upload *u, size_t n);

/* ---- oplog ---------------------------------------------------------------- */

typedef struct core_oplog_entry {
	int64_t seq; /* local, strictly increasing */
	uint64_t hlc;
	char node[17]; /* origin node */
	char kind[16]; /* put, delete, copy, rename, mkdir, meta, mpu, vdelete,
			* bucket-create, bucket-delete, bucket-versioning, bucket-config */
	char *bucket;
	char *key; /* NULL for bucket ops */
	char *version_id;
	char *body; /* the op as JSON (what replication ships) */
} core_oplog_entry;

/* Entries with seq > after, at most max, in seq order; free with core_oplog_free. */
int core_oplog_read(core *c, int64_t after, int max, core_oplog_entry **out, size_t *n,
		    sl_err *err);
void core_oplog_free(core_oplog_entry *e, size_t n);
/* Highest committed seq. */
int64_t core_oplog_head(core *c);
/* Blocks until head > after or timeout_ms passes (or core_wake); returns head. */
int64_t core_oplog_wait(core *c, int64_t after, int timeout_ms);
/* Oplog retention: drops entries with seq <= upto (callers pass what every
 * peer has acknowledged). Seqs are never reused. Readers asking for entries
 * after a position below the horizon have fallen behind: they must
 * re-bootstrap. */
int core_oplog_trim(core *c, int64_t upto, sl_err *err);
/* Highest trimmed seq (0 if never trimmed). */
int64_t core_oplog_horizon(core *c);
/* Wakes every core_oplog_wait (used on shutdown). */
void core_wake(core *c);

/* ---- replication ---------------------------------------------------------- */

/* 1 if the chunk is stored here (then *len, if given, is its length), 0 if not. */
int core_chunk_has(core *c, const uint8_t hash[32], uint32_t *len);
/* Stores a chunk received from a peer; SL_ECORRUPT if data does not hash to
 * hash. Like core_chunk_put it is durable once a commit references it. */
int core_chunk_ingest(core *c, const uint8_t hash[32], const void *data, uint32_t len, sl_err *err);
/* The chunks named by oplog bodies (core_oplog_entry.body) that are not stored
 * here, each once; *out is malloc'd, 32 bytes per hash. */
int core_repl_missing(core *c, const char *const *bodies, size_t n, uint8_t **out, size_t *nout,
		      sl_err *err);
/* Applies oplog bodies pulled from (or pushed by) peer, in the peer's order,
 * and records peer_seq (the peer's oplog position they reach) in the same
 * transaction. Ops this node already has (its own, or an origin's op at or
 * below what was applied from that origin) are skipped, so applying is
 * idempotent and rings terminate. Applied ops enter the local oplog and so are
 * forwarded to further peers. Every chunk they name must be stored here first
 * (SL_ENOKEY otherwise, nothing applied). *applied (may be NULL) counts them. */
int core_repl_apply(core *c, const char *peer, int64_t peer_seq, const char *const *bodies,
		    size_t n, size_t *applied, sl_err *err);

/* Snapshot bootstrap (core/snapshot.c; the stream format is described there).
 * Producing: one read transaction, so the records are the state at one
 * oplog position (core_snapread_head). next returns 1 with a line (no
 * newline, owned by s, valid until the next call), 0 at the end, or SL_E*.
 * Memory: one record at a time. */
typedef struct core_snapread core_snapread;
int core_snapread_open(core *c, core_snapread **out, sl_err *err);
int64_t core_snapread_head(const core_snapread *s);
int core_snapread_next(core_snapread *s, const char **line, size_t *len, sl_err *err);
void core_snapread_close(core_snapread *s);
/* Applying, on a lake without history (SL_ENOTEMPTY otherwise): begin
 * (clears what a cut earlier bootstrap left and marks the lake partial),
 * then bucket and version records in batches (one transaction each; every
 * chunk they name must be stored here, SL_ENOKEY otherwise), then finish:
 * origins (the header's JSON object) raise repl_origin, peer's watermark
 * becomes seq, the oplog horizon is raised to the head, the mark dropped.
 * Rows are written as given (no last-writer-wins) and journalled. */
int core_snapshot_begin(core *c, sl_err *err);
int core_snapshot_apply(core *c, const char *const *recs, size_t n, sl_err *err);
int core_snapshot_finish(core *c, const char *peer, int64_t seq, const char *origins, sl_err *err);
/* 1 if a snapshot bootstrap began here and did not finish. */
int core_snapshot_partial(core *c);
/* If this lake was bootstrapped from node's snapshot: the oplog horizon that
 * set (node has all the state the lake started with, so it may read the
 * oplog from 0 while the horizon has not moved past it); else 0. */
int64_t core_snapshot_source(core *c, const char *node);

typedef struct core_peer {
	char *peer;
	int64_t seq; /* the peer's oplog position applied here */
	int64_t updated_ms;
} core_peer;
/* 0 if the peer is unknown. */
int64_t core_peer_seq(core *c, const char *peer);
int core_peer_list(core *c, core_peer **out, size_t *n, sl_err *err);
void core_peers_free(core_peer *p, size_t n);
/* Conflict versions (losers of concurrent writes), by bucket and key, after
 * (after_bucket, after_key); bucket NULL = all buckets. Free each with
 * core_objinfo_clear and the array with free(). */
int core_conflicts(core *c, const char *bucket, const char *after_bucket, const char *after_key,
		   int max, core_objinfo **out, size_t *n, sl_err *err);

/* ---- stats ---------------------------------------------------------------- */

typedef struct core_stats {
	uint64_t buckets, objects, versions, bytes_logical;
	uint64_t chunks, bytes_stored, segments, segment_bytes;
	int64_t oplog_head;
} core_stats;
int core_stats_get(core *c, core_stats *out, sl_err *err);

#endif
