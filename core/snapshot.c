/*
 * snapshot.c - the state of a lake as a stream, and applying such a stream
 * on an empty lake (snapshot bootstrap). Not here: HTTP (repl/bootstrap.c),
 * the oplog-based replication (repl.c, apply.c).
 *
 * A snapshot is read from one SQLite read transaction, so it is the state at
 * one oplog position S (the head at that moment). It is newline-delimited
 * JSON, one record per line:
 *
 *   {"t":"header","format":1,"node":N,"head":S,"origins":{node:hlc,...}}
 *   {"t":"bucket","name","vers","ms","hlc","node","config":{name:value}}
 *   {"t":"version","b","k","v","hlc","node","dm","size","etag","ms","meta",
 *    "state","chunks":[[hex,len]|[null,len]],"parts","cur"}   (every row)
 *   {"t":"end","count":records}
 *
 * "origins" holds, per origin node, the highest HLC whose ops the state
 * contains (the source's own node included), which is what the receiver's
 * per-origin idempotence (repl_origin) needs to go on pulling after S.
 *
 * The receiver writes the rows as given (no last-writer-wins: conflict and
 * delete-marker flags and the current version come out as on the source),
 * through journalled ops so rebuild-index reproduces them:
 *   snap-begin    the lake must have no oplog; clears rows a cut earlier
 *                 bootstrap left, marks the lake "snapshot partial"
 *   snap-bucket   a bucket row and its configuration documents
 *   snap-version  a version row (chunk refs with this node's locations)
 *   snap-end      repl_origin raised to the header's origins, the peer's
 *                 watermark set to S, the oplog head advanced by one and the
 *                 horizon raised to it (a host pulling from here from 0 is
 *                 told to bootstrap, except the snapshot's source: it has
 *                 everything the snapshot holds), the partial mark dropped
 * Snapshot rows do not enter the oplog.
 */
#include "core/core_internal.h"

#include <stdlib.h>
#include <string.h>

#define SNAP_FORMAT 1

/* ---- producing ------------------------------------------------------------- */

enum { SNAP_HEADER, SNAP_BUCKETS, SNAP_VERSIONS, SNAP_TRAILER, SNAP_DONE };

struct core_snapread {
	core *c;
	meta_conn *r;
	int in_txn;
	int phase;
	sqlite3_stmt *bst, *cst, *vst;
	int64_t head;
	uint64_t count;
	char *line;
};

void core_snapread_close(core_snapread *s)
{
	if (!s)
		return;
	sqlite3_finalize(s->bst);
	sqlite3_finalize(s->cst);
	sqlite3_finalize(s->vst);
	if (s->in_txn)
		sqlite3_exec(meta_db(s->r), "COMMIT", NULL, NULL, NULL);
	if (s->r)
		meta_reader_release(s->c->md, s->r);
	free(s->line);
	free(s);
}

static int snap_prepare(core_snapread *s, const char *sql, sqlite3_stmt **st, sl_err *err)
{
	if (sqlite3_prepare_v2(meta_db(s->r), sql, -1, st, NULL) != SQLITE_OK)
		return meta_fail(s->r, "prepare snapshot", err);
	return 0;
}

int core_snapread_open(core *c, core_snapread **out, sl_err *err)
{
	*out = NULL;
	core_snapread *s = calloc(1, sizeof(*s));
	if (!s)
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	s->c = c;
	s->r = meta_reader(c->md);
	int rc = meta_exec(s->r, "BEGIN", err);
	if (rc == 0) {
		s->in_txn = 1;
		/* the read transaction starts with its first read: this one */
		sqlite3_stmt *st = NULL;
		rc = snap_prepare(s,
				  "SELECT max(COALESCE((SELECT MAX(seq) FROM oplog), 0), "
				  "COALESCE((SELECT seq FROM sqlite_sequence WHERE name='oplog'), "
				  "0))",
				  &st, err);
		if (rc == 0 && sqlite3_step(st) == SQLITE_ROW)
			s->head = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	if (rc == 0)
		rc = snap_prepare(s,
				  "SELECT name, versioning, created_ms, hlc, node FROM buckets "
				  "ORDER BY name",
				  &s->bst, err);
	if (rc == 0)
		rc = snap_prepare(s,
				  "SELECT name, value FROM bucket_config WHERE bucket=?1 "
				  "ORDER BY name",
				  &s->cst, err);
	if (rc == 0)
		rc = snap_prepare(s,
				  "SELECT v.bucket, v.key, v.vid, v.hlc, v.node, v.dm, v.size, "
				  "v.etag, v.mtime_ms, v.meta, v.state, v.chunks, v.parts, "
				  "EXISTS(SELECT 1 FROM current cu WHERE cu.bucket=v.bucket AND "
				  "cu.key=v.key AND cu.vrow=v.id) "
				  "FROM versions v ORDER BY v.bucket, v.key, v.vid",
				  &s->vst, err);
	if (rc < 0) {
		core_snapread_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

int64_t core_snapread_head(const core_snapread *s)
{
	return s->head;
}

static const char *col_s(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? (const char *)t : "";
}

static json_t *snap_header(core_snapread *s, sl_err *err)
{
	json_t *orig = json_object();
	sqlite3_stmt *st = NULL;
	if (snap_prepare(s, "SELECT node, hlc FROM repl_origin", &st, err) < 0) {
		json_decref(orig);
		return NULL;
	}
	while (sqlite3_step(st) == SQLITE_ROW)
		json_object_set_new(orig, col_s(st, 0), json_integer(sqlite3_column_int64(st, 1)));
	sqlite3_finalize(st);
	/* this node's own ops: every one committed so far is at or below the
	 * clock value saved with the last commit, and every later one above it */
	int64_t own = 0;
	meta_state_get_int(s->r, "hlc", &own, NULL);
	json_object_set_new(orig, s->c->node, json_integer(own));
	return json_pack("{sssisssIso}", "t", "header", "format", SNAP_FORMAT, "node", s->c->node,
			 "head", (json_int_t)s->head, "origins", orig);
}

static json_t *snap_bucket(core_snapread *s, sl_err *err)
{
	sqlite3_stmt *st = s->bst;
	json_t *cfg = json_object();
	sqlite3_reset(s->cst);
	sqlite3_bind_text(s->cst, 1, col_s(st, 0), -1, SQLITE_TRANSIENT);
	int r;
	while ((r = sqlite3_step(s->cst)) == SQLITE_ROW)
		json_object_set_new(cfg, col_s(s->cst, 0), json_string(col_s(s->cst, 1)));
	if (r != SQLITE_DONE) {
		json_decref(cfg);
		meta_fail(s->r, "read bucket config", err);
		return NULL;
	}
	return json_pack("{sssssisIsIssso}", "t", "bucket", "name", col_s(st, 0), "vers",
			 sqlite3_column_int(st, 1), "ms", (json_int_t)sqlite3_column_int64(st, 2),
			 "hlc", (json_int_t)sqlite3_column_int64(st, 3), "node", col_s(st, 4),
			 "config", cfg);
}

static json_t *snap_version(core_snapread *s, sl_err *err)
{
	sqlite3_stmt *st = s->vst;
	core_chunkref *ch = NULL;
	size_t n = 0;
	if (core_chunks_from_blob(sqlite3_column_blob(st, 11), (size_t)sqlite3_column_bytes(st, 11),
				  &ch, &n) < 0) {
		sl_err_set(err, SL_ECORRUPT, "version %s/%s %s: bad chunk list", col_s(st, 0),
			   col_s(st, 1), col_s(st, 2));
		return NULL;
	}
	static const uint8_t zero[32];
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		if (memcmp(ch[i].hash, zero, 32) == 0) {
			json_array_append_new(arr, json_pack("[nI]", (json_int_t)ch[i].len));
		} else {
			char hx[65];
			sl_hex(ch[i].hash, 32, hx);
			json_array_append_new(arr, json_pack("[sI]", hx, (json_int_t)ch[i].len));
		}
	}
	free(ch);
	json_t *j = json_pack("{sssssssssIsssbsIsssIsssisosb}", "t", "version", "b", col_s(st, 0),
			      "k", col_s(st, 1), "v", col_s(st, 2), "hlc",
			      (json_int_t)sqlite3_column_int64(st, 3), "node", col_s(st, 4), "dm",
			      sqlite3_column_int(st, 5), "size",
			      (json_int_t)sqlite3_column_int64(st, 6), "etag", col_s(st, 7), "ms",
			      (json_int_t)sqlite3_column_int64(st, 8), "meta", col_s(st, 9),
			      "state", sqlite3_column_int(st, 10), "chunks", arr, "cur",
			      sqlite3_column_int(st, 13));
	if (j && sqlite3_column_type(st, 12) != SQLITE_NULL)
		json_object_set_new(j, "parts", json_string(col_s(st, 12)));
	return j;
}

int core_snapread_next(core_snapread *s, const char **line, size_t *len, sl_err *err)
{
	json_t *j = NULL;
	int r;
	free(s->line);
	s->line = NULL;
	*line = NULL;
	*len = 0;
	while (!j) {
		switch (s->phase) {
		case SNAP_HEADER:
			if (!(j = snap_header(s, err)))
				return err && err->code ? err->code : SL_ENOMEM;
			s->phase = SNAP_BUCKETS;
			break;
		case SNAP_BUCKETS:
			if ((r = sqlite3_step(s->bst)) == SQLITE_ROW) {
				if (!(j = snap_bucket(s, err)))
					return err && err->code ? err->code : SL_ENOMEM;
				s->count++;
			} else if (r == SQLITE_DONE) {
				s->phase = SNAP_VERSIONS;
			} else {
				return meta_fail(s->r, "read buckets", err);
			}
			break;
		case SNAP_VERSIONS:
			if ((r = sqlite3_step(s->vst)) == SQLITE_ROW) {
				if (!(j = snap_version(s, err)))
					return err && err->code ? err->code : SL_ENOMEM;
				s->count++;
			} else if (r == SQLITE_DONE) {
				s->phase = SNAP_TRAILER;
			} else {
				return meta_fail(s->r, "read versions", err);
			}
			break;
		case SNAP_TRAILER:
			j = json_pack("{sssI}", "t", "end", "count", (json_int_t)s->count);
			if (!j)
				return sl_err_set(err, SL_ENOMEM, "out of memory");
			s->phase = SNAP_DONE;
			break;
		default:
			return 0;
		}
	}
	s->line = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!s->line)
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	*len = strlen(s->line);
	s->line[*len] = '\0';
	*line = s->line;
	return 1;
}

/* ---- applying --------------------------------------------------------------- */

static int bad(sl_err *err, const char *what)
{
	return sl_err_set(err, SL_EINVAL, "malformed snapshot record: %s", what);
}

static int exec_b(meta_conn *w, const char *sql, const char *b, sl_err *err)
{
	sqlite3_stmt *st = meta_stmt(w, sql, err);
	if (!st)
		return err->code;
	if (b)
		sqlite3_bind_text(st, 1, b, -1, SQLITE_STATIC);
	return meta_done(w, st, err);
}

static int snap_begin(meta_conn *w, sl_err *err)
{
	int64_t h = core_oplog_head_db(w);
	if (h != 0)
		return sl_err_set(err, SL_ENOTEMPTY,
				  "a snapshot can only be applied to a lake with no history "
				  "(oplog head %lld)",
				  (long long)h);
	int rc = exec_b(w, "DELETE FROM current", NULL, err);
	if (rc == 0)
		rc = exec_b(w, "DELETE FROM versions", NULL, err);
	if (rc == 0)
		rc = exec_b(w, "DELETE FROM bucket_config", NULL, err);
	if (rc == 0)
		rc = exec_b(w, "DELETE FROM buckets", NULL, err);
	if (rc == 0)
		rc = meta_state_set_int(w, "snapshot_partial", 1, err);
	return rc;
}

static int snap_bucket_apply(meta_conn *w, json_t *op, sl_err *err)
{
	const char *b = core_jstr(op, "name"), *node = core_jstr(op, "node");
	json_t *cfg = json_object_get(op, "config");
	if (!b || !node || !core_bucket_name_valid(b))
		return bad(err, "bucket without a valid name/node");
	sqlite3_stmt *st = meta_stmt(w,
				     "INSERT OR REPLACE INTO buckets(name, versioning, "
				     "created_ms, hlc, node) VALUES(?1,?2,?3,?4,?5)",
				     err);
	if (!st)
		return err->code;
	sqlite3_bind_text(st, 1, b, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, (int)core_jint(op, "vers"));
	sqlite3_bind_int64(st, 3, core_jint(op, "ms"));
	sqlite3_bind_int64(st, 4, core_jint(op, "hlc"));
	sqlite3_bind_text(st, 5, node, -1, SQLITE_STATIC);
	int rc = meta_done(w, st, err);
	if (rc == 0)
		rc = exec_b(w, "DELETE FROM bucket_config WHERE bucket=?1", b, err);
	const char *name;
	json_t *v;
	json_object_foreach(cfg, name, v)
	{
		if (rc < 0)
			break;
		if (!json_is_string(v))
			return bad(err, "bucket config value is not a string");
		st = meta_stmt(w, "INSERT INTO bucket_config(bucket, name, value) VALUES(?1,?2,?3)",
			       err);
		if (!st)
			return err->code;
		sqlite3_bind_text(st, 1, b, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, json_string_value(v), -1, SQLITE_STATIC);
		rc = meta_done(w, st, err);
	}
	return rc;
}

static int snap_version_apply(core *c, meta_conn *w, json_t *op, sl_err *err)
{
	const char *b = core_jstr(op, "b"), *k = core_jstr(op, "k"), *v = core_jstr(op, "v");
	const char *node = core_jstr(op, "node");
	const char *etag = core_jstr(op, "etag"), *meta = core_jstr(op, "meta");
	const char *parts = core_jstr(op, "parts");
	if (!b || !k || !v || !node || !etag || !meta)
		return bad(err, "version without bucket/key/version/node/etag/meta");
	int vers;
	int rc = core_bucket_versioning(w, b, &vers, err);
	if (rc < 0)
		return rc;
	core_chunkref *ch = NULL;
	size_t n = 0;
	json_t *arr = json_object_get(op, "chunks");
	if (core_chunks_from_json(arr, &ch, &n) < 0)
		return bad(err, "chunk list");
	sqlite3_stmt *st = meta_stmt(
		w, "INSERT OR IGNORE INTO chunks(hash, seg, off, len) VALUES(?1,?2,?3,?4)", err);
	rc = st ? 0 : err->code;
	for (size_t i = 0; i < n && rc == 0; i++) {
		json_t *e = json_array_get(arr, i);
		if (json_array_size(e) < 4 || json_is_null(json_array_get(e, 0)))
			continue;
		sqlite3_reset(st);
		sqlite3_bind_blob(st, 1, ch[i].hash, 32, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, json_integer_value(json_array_get(e, 2)));
		sqlite3_bind_int64(st, 3, json_integer_value(json_array_get(e, 3)));
		sqlite3_bind_int64(st, 4, ch[i].len);
		rc = meta_done(w, st, err);
	}
	size_t blen = 0;
	void *blob = rc == 0 ? core_chunks_blob(ch, n, &blen) : NULL;
	free(ch);
	if (rc == 0 && !blob)
		rc = sl_err_set(err, SL_ENOMEM, "out of memory");
	if (rc == 0) {
		st = meta_stmt(w, "DELETE FROM versions WHERE bucket=?1 AND key=?2 AND vid=?3",
			       err);
		if (!st)
			rc = err->code;
	}
	if (rc == 0) {
		sqlite3_bind_text(st, 1, b, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, k, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, v, -1, SQLITE_STATIC);
		rc = meta_done(w, st, err);
	}
	if (rc == 0) {
		core_vrow row = { .bucket = b,
				  .key = k,
				  .vid = v,
				  .node = node,
				  .etag = etag,
				  .meta = meta,
				  .parts = parts,
				  .hlc = core_jint(op, "hlc"),
				  .size = core_jint(op, "size"),
				  .mtime_ms = core_jint(op, "ms"),
				  .dm = json_is_true(json_object_get(op, "dm")),
				  .state = (int)core_jint(op, "state"),
				  .chunks = blob,
				  .chunks_len = blen };
		rc = core_version_insert(w, &row, err);
	}
	free(blob);
	if (rc == 0 && json_is_true(json_object_get(op, "cur"))) {
		st = meta_stmt(w,
			       "INSERT INTO current(bucket, key, vrow) VALUES(?1,?2,?3) "
			       "ON CONFLICT(bucket, key) DO UPDATE SET vrow=excluded.vrow",
			       err);
		if (!st)
			return err->code;
		sqlite3_bind_text(st, 1, b, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, k, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, sqlite3_last_insert_rowid(meta_db(w)));
		rc = meta_done(w, st, err);
	}
	if (rc == 0)
		hlc_observe_trusted(&c->hlc, (uint64_t)core_jint(op, "hlc"));
	return rc;
}

static int snap_end(core *c, meta_conn *w, json_t *op, sl_err *err)
{
	const char *peer = core_jstr(op, "peer");
	json_t *orig = json_object_get(op, "origins");
	if (!peer || !json_is_object(orig))
		return bad(err, "end without peer/origins");
	const char *node;
	json_t *h;
	int rc = 0;
	json_object_foreach(orig, node, h)
	{
		if (!json_is_integer(h))
			return bad(err, "origin hlc is not an integer");
		if (strcmp(node, c->node) == 0)
			continue;
		sqlite3_stmt *st = meta_stmt(w,
					     "INSERT INTO repl_origin(node, hlc) VALUES(?1, ?2) "
					     "ON CONFLICT(node) DO UPDATE SET hlc=max(hlc, "
					     "excluded.hlc)",
					     err);
		if (!st)
			return err->code;
		sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, json_integer_value(h));
		if ((rc = meta_done(w, st, err)) < 0)
			return rc;
		hlc_observe_trusted(&c->hlc, (uint64_t)json_integer_value(h));
	}
	sqlite3_stmt *st = meta_stmt(w,
				     "INSERT INTO peers(peer, seq, updated_ms) VALUES(?1,?2,?3) "
				     "ON CONFLICT(peer) DO UPDATE SET seq=excluded.seq, "
				     "updated_ms=excluded.updated_ms",
				     err);
	if (!st)
		return err->code;
	sqlite3_bind_text(st, 1, peer, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, core_jint(op, "seq"));
	sqlite3_bind_int64(st, 3, core_jint(op, "ms"));
	if ((rc = meta_done(w, st, err)) < 0)
		return rc;
	/* the state came without history: move the oplog on by one position
	 * and trim there, so a host asking this one for entries from 0 is told
	 * to bootstrap instead of missing the snapshot's state */
	int64_t head = core_oplog_head_db(w);
	if (head < 0)
		return meta_fail(w, "read oplog head", err);
	head++;
	st = meta_stmt(w,
		       "INSERT OR REPLACE INTO sqlite_sequence(rowid, name, seq) VALUES("
		       "(SELECT rowid FROM sqlite_sequence WHERE name='oplog'), 'oplog', ?1)",
		       err);
	if (!st)
		return err->code;
	sqlite3_bind_int64(st, 1, head);
	if ((rc = meta_done(w, st, err)) < 0)
		return rc;
	if ((rc = meta_state_set_int(w, "oplog_horizon", head, err)) < 0)
		return rc;
	if ((rc = exec_b(w, "DELETE FROM state WHERE k='snapshot_partial'", NULL, err)) < 0)
		return rc;
	/* the source has all the snapshot holds: it alone may pull from 0 */
	if ((rc = exec_b(w, "INSERT OR REPLACE INTO state(k, v) VALUES('snapshot_source', ?1)",
			 peer, err)) < 0)
		return rc;
	if ((rc = meta_state_set_int(w, "snapshot_horizon", head, err)) < 0)
		return rc;
	if (c->pending_head < head)
		c->pending_head = head;
	return 0;
}

int core_snapshot_apply_op(core *c, meta_conn *w, json_t *op, sl_err *err)
{
	const char *what = core_jstr(op, "op");
	if (strcmp(what, "snap-begin") == 0)
		return snap_begin(w, err);
	if (strcmp(what, "snap-bucket") == 0)
		return snap_bucket_apply(w, op, err);
	if (strcmp(what, "snap-version") == 0)
		return snap_version_apply(c, w, op, err);
	if (strcmp(what, "snap-end") == 0)
		return snap_end(c, w, op, err);
	return sl_err_set(err, SL_EINVAL, "unknown journal op '%s'", what);
}

typedef struct snap_arg {
	const char *peer;
	const char *const *recs;
	size_t n;
	int64_t seq;
	const char *origins;
	int what; /* 0 begin, 1 records, 2 end */
} snap_arg;

static int prep_snap(core *c, meta_conn *w, core_txn *t, sl_err *err)
{
	snap_arg *a = t->arg;
	if (a->what == 0)
		return core_txn_apply(c, w, t, json_pack("{ss}", "op", "snap-begin"), err);
	if (a->what == 2) {
		json_t *orig = json_loads(a->origins, 0, NULL);
		if (!json_is_object(orig)) {
			json_decref(orig);
			return bad(err, "origins");
		}
		return core_txn_apply(c, w, t,
				      json_pack("{sssssIsIso}", "op", "snap-end", "peer", a->peer,
						"seq", (json_int_t)a->seq, "ms",
						(json_int_t)hlc_wall_ms(&c->hlc), "origins", orig),
				      err);
	}
	int64_t partial = 0;
	meta_state_get_int(w, "snapshot_partial", &partial, NULL);
	if (!partial)
		return sl_err_set(err, SL_EINVAL, "snapshot records without a snapshot begun");
	for (size_t i = 0; i < a->n; i++) {
		json_t *op = json_loads(a->recs[i], 0, NULL);
		const char *t2 = core_jstr(op, "t");
		int rc;
		if (!json_is_object(op) || !t2) {
			rc = bad(err, "not a JSON object with a type");
		} else if (strcmp(t2, "bucket") == 0) {
			json_object_set_new(op, "op", json_string("snap-bucket"));
			json_object_del(op, "t");
			rc = 0;
		} else if (strcmp(t2, "version") == 0) {
			json_object_set_new(op, "op", json_string("snap-version"));
			json_object_del(op, "t");
			rc = core_chunks_relocate(c, w, op, "snapshot record", err);
		} else {
			rc = sl_err_set(err, SL_EINVAL, "unexpected snapshot record '%s'", t2);
		}
		if (rc < 0) {
			json_decref(op);
			return rc;
		}
		if ((rc = core_txn_apply(c, w, t, op, err)) < 0)
			return rc;
	}
	return 0;
}

int core_snapshot_begin(core *c, sl_err *err)
{
	snap_arg a = { .what = 0 };
	return core_commit(c, prep_snap, &a, err);
}

int core_snapshot_apply(core *c, const char *const *recs, size_t n, sl_err *err)
{
	snap_arg a = { .recs = recs, .n = n, .what = 1 };
	return n ? core_commit(c, prep_snap, &a, err) : 0;
}

int core_snapshot_finish(core *c, const char *peer, int64_t seq, const char *origins, sl_err *err)
{
	if (!peer || !origins)
		return sl_err_set(err, SL_EINVAL, "no peer or origins");
	snap_arg a = { .peer = peer, .seq = seq, .origins = origins, .what = 2 };
	return core_commit(c, prep_snap, &a, err);
}

int64_t core_snapshot_source(core *c, const char *node)
{
	meta_conn *r = meta_reader(c->md);
	sqlite3_stmt *st = meta_stmt(r, "SELECT v FROM state WHERE k='snapshot_source'", NULL);
	int yes = 0;
	int64_t h = 0;
	if (st) {
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_TEXT)
			yes = strcmp((const char *)sqlite3_column_text(st, 0), node) == 0;
		sqlite3_reset(st);
	}
	if (yes)
		meta_state_get_int(r, "snapshot_horizon", &h, NULL);
	meta_reader_release(c->md, r);
	return h;
}

int core_snapshot_partial(core *c)
{
	meta_conn *r = meta_reader(c->md);
	int64_t v = 0;
	meta_state_get_int(r, "snapshot_partial", &v, NULL);
	meta_reader_release(c->md, r);
	return v != 0;
}
