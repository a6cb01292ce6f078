/*
 * apply.c - turns one journal op (JSON) into index changes. The same code
 * runs for live commits, roll-forward after a crash, rebuild-index and (later)
 * replicated ops, so an op must carry everything its effect depends on:
 * version id, HLC, node, chunk list with locations, metadata.
 *
 * Ops: put (kind put/copy/rename/mkdir/meta/mpu/delete for delete markers),
 * vdelete, bucket-create, bucket-delete, bucket-versioning, bucket-config,
 * mpu-create, mpu-part, mpu-end. Every op but mpu-* adds an oplog entry.
 */
#include "core/core_internal.h"

#include <string.h>

static int bad(sl_err *err, const char *what)
{
	return sl_err_set(err, SL_EINVAL, "malformed journal op: %s", what);
}

static int oplog_add(core *c, meta_conn *w, json_t *op, const char *kind, const char *bucket,
		     const char *key, const char *vid, sl_err *err)
{
	char *body = json_dumps(op, JSON_COMPACT);
	if (!body)
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	sqlite3_stmt *st = meta_stmt(w,
				     "INSERT INTO oplog(hlc, node, kind, bucket, key, vid, body) "
				     "VALUES(?1,?2,?3,?4,?5,?6,?7)",
				     err);
	if (!st) {
		free(body);
		return err->code;
	}
	sqlite3_bind_int64(st, 1, core_jint(op, "hlc"));
	const char *onode = core_jstr(op, "node");
	sqlite3_bind_text(st, 2, onode ? onode : c->node, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, bucket, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, vid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, body, -1, SQLITE_STATIC);
	int rc = meta_done(w, st, err);
	free(body);
	if (rc == 0)
		c->pending_head = sqlite3_last_insert_rowid(meta_db(w));
	return rc;
}

/* Points current(bucket,key) at the latest state-0 version unless it is a
 * delete marker (or there is none). */
static int current_fix(meta_conn *w, const char *b, const char *k, sl_err *err)
{
	sqlite3_stmt *st = meta_stmt(w,
				     "SELECT id, dm FROM versions WHERE bucket=?1 AND key=?2 "
				     "AND state IN (0,3) ORDER BY hlc DESC, node DESC LIMIT 1",
				     err);
	if (!st)
		return err->code;
	sqlite3_bind_text(st, 1, b, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, k, -1, SQLITE_STATIC);
	int64_t id = 0;
	int dm = 0;
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		id = sqlite3_column_int64(st, 0);
		dm = sqlite3_column_int(st, 1);
	} else if (r != SQLITE_DONE) {
		int rc = meta_fail(w, "find latest", err);
		sqlite3_reset(st);
		return rc;
	}
	sqlite3_reset(st);
	if (id && !dm) {
		st = meta_stmt(w,
			       "INSERT INTO current(bucket, key, vrow) VALUES(?1,?2,?3) "
			       "ON CONFLICT(bucket, key) DO UPDATE SET vrow=excluded.vrow",
			       err);
		if (!st)
			return err->code;
		sqlite3_bind_int64(st, 3, id);
	} else {
		st = meta_stmt(w, "DELETE FROM current WHERE bucket=?1 AND key=?2", err);
		if (!st)
			return err->code;
	}
	sqlite3_bind_text(st, 1, b, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, k, -1, SQLITE_STATIC);
	return meta_done(w, st, err);
}

static int bucket_exists(meta_conn *w, const char *b, sl_err *err)
{
	int vers;
	return core_bucket_versioning(w, b, &vers, err);
}

/* Inserts chunk locations from a JSON chunk list; fills the ref array. */
static int chunks_index(meta_conn *w, json_t *arr, core_chunkref **out, size_t *n, sl_err *err)
{
	int rc = core_chunks_from_json(arr, out, n);
	if (rc < 0)
		return bad(err, "chunk list");
	sqlite3_stmt *st = meta_stmt(
		w, "INSERT OR IGNORE INTO chunks(hash, seg, off, len) VALUES(?1,?2,?3,?4)", err);
	if (!st)
		return err->code;
	for (size_t i = 0; i < *n; i++) {
		json_t *e = json_array_get(arr, i);
		if (json_array_size(e) < 4 || json_is_null(json_array_get(e, 0)))
			continue;
		sqlite3_reset(st);
		sqlite3_bind_blob(st, 1, (*out)[i].hash, 32, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, json_integer_value(json_array_get(e, 2)));
		sqlite3_bind_int64(st, 3, json_integer_value(json_array_get(e, 3)));
		sqlite3_bind_int64(st, 4, (*out)[i].len);
		if ((rc = meta_done(w, st, err)) < 0)
			return rc;
	}
	return 0;
}

/* The latest version of a key that takes part in last-writer-wins (live
 * versions, delete markers and tombstones; not conflict losers). */
typedef struct latest {
	int64_t id;
	int64_t hlc;
	char node[17];
	char vid[64];
	int dm, state;
} latest;

static int latest_get(meta_conn *w, const char *b, const char *k, latest *l, sl_err *err)
{
	memset(l, 0, sizeof(*l));
	sqlite3_stmt *st = meta_stmt(w,
				     "SELECT id, hlc, node, vid, dm, state FROM versions "
				     "WHERE bucket=?1 AND key=?2 AND state IN (0,3) "
				     "ORDER BY hlc DESC, node DESC LIMIT 1",
				     err);
	if (!st)
		return err->code;
	sqlite3_bind_text(st, 1, b, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, k, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		l->id = sqlite3_column_int64(st, 0);
		l->hlc = sqlite3_column_int64(st, 1);
		snprintf(l->node, sizeof(l->node), "%s", sqlite3_column_text(st, 2));
		snprintf(l->vid, sizeof(l->vid), "%s", sqlite3_column_text(st, 3));
		l->dm = sqlite3_column_int(st, 4);
		l->state = sqlite3_column_int(st, 5);
	}
	sqlite3_reset(st);
	if (r != SQLITE_ROW && r != SQLITE_DONE)
		return meta_fail(w, "find latest", err);
	return 0;
}

int core_latest_prev(meta_conn *w, const char *b, const char *k, json_t *op, sl_err *err)
{
	latest l;
	int rc = latest_get(w, b, k, &l, err);
	if (rc == 0 && l.id)
		json_object_set_new(op, "prev", json_pack("[Is]", (json_int_t)l.hlc, l.node));
	return rc;
}

static int row_exec(meta_conn *w, const char *sql, int64_t id, const char *text, int state,
		    sl_err *err)
{
	sqlite3_stmt *st = meta_stmt(w, sql, err);
	if (!st)
		return err->code;
	sqlite3_bind_int64(st, 1, id);
	if (text)
		sqlite3_bind_text(st, 2, text, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(st, 3, state);
	return meta_done(w, st, err);
}

static void conflict_vid(int64_t hlc, const char *node, char out[64])
{
	snprintf(out, 64, "%016llx%s", (unsigned long long)hlc, node);
}

static int bucket_autocreate(core *c, meta_conn *w, json_t *op, const char *b, sl_err *err)
{
	/* a replicated write into a bucket deleted here: writes win over the
	 * bucket deletion, so the bucket comes back (unversioned) */
	sqlite3_stmt *st = meta_stmt(w,
				     "INSERT OR IGNORE INTO buckets(name, versioning, "
				     "created_ms, hlc, node) VALUES(?1, 0, ?2, ?3, ?4)",
				     err);
	if (!st)
		return err->code;
	sqlite3_bind_text(st, 1, b, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, core_jint(op, "ms"));
	sqlite3_bind_int64(st, 3, core_jint(op, "hlc"));
	const char *onode = core_jstr(op, "node");
	sqlite3_bind_text(st, 4, onode ? onode : c->node, -1, SQLITE_STATIC);
	return meta_done(w, st, err);
}

/*
 * A put (object, delete marker or tombstone). Last-writer-wins per key by
 * (hlc, node). "prev" names the version the writer saw as latest: if this
 * node's latest is something else, the two writes were concurrent, and the
 * loser is kept as a conflict version (a null version that loses gets the
 * version id its (hlc, node) would have had, identical on every host).
 */
int core_version_insert(meta_conn *w, const core_vrow *r, sl_err *err)
{
	sqlite3_stmt *st = meta_stmt(w,
				     "INSERT INTO versions(bucket, key, vid, hlc, node, dm, size, "
				     "etag,"
				     " mtime_ms, meta, state, chunks, parts) "
				     "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)",
				     err);
	if (!st)
		return err->code;
	sqlite3_bind_text(st, 1, r->bucket, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, r->vid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, r->hlc);
	sqlite3_bind_text(st, 5, r->node, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 6, r->dm);
	sqlite3_bind_int64(st, 7, r->size);
	sqlite3_bind_text(st, 8, r->etag, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 9, r->mtime_ms);
	sqlite3_bind_text(st, 10, r->meta, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 11, r->state);
	sqlite3_bind_blob(st, 12, r->chunks, (int)r->chunks_len, SQLITE_STATIC);
	if (r->parts)
		sqlite3_bind_text(st, 13, r->parts, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 13);
	return meta_done(w, st, err);
}

static int apply_put(core *c, meta_conn *w, json_t *op, int remote, sl_err *err)
{
	const char *b = core_jstr(op, "b"), *k = core_jstr(op, "k"), *v = core_jstr(op, "v");
	const char *node = core_jstr(op, "node");
	const char *etag = core_jstr(op, "etag"), *kind = core_jstr(op, "kind");
	if (!b || !k || !v || !node || !etag)
		return bad(err, "put without bucket/key/version/node/etag");
	int rc = bucket_exists(w, b, err);
	if (rc == SL_ENOBUCKET && remote)
		rc = bucket_autocreate(c, w, op, b, err);
	if (rc < 0)
		return rc;
	int64_t hlc = core_jint(op, "hlc");
	int dm = json_is_true(json_object_get(op, "dm"));
	int state = (int)core_jint(op, "state");
	int is_null = strcmp(v, CORE_NULL_VERSION) == 0;
	char vid[64];
	snprintf(vid, sizeof(vid), "%s", v);

	latest l;
	if ((rc = latest_get(w, b, k, &l, err)) < 0)
		return rc;
	json_t *prev = json_object_get(op, "prev");
	int concurrent = 0;
	if (l.id && json_is_array(prev)) {
		json_t *ph = json_array_get(prev, 0), *pn = json_array_get(prev, 1);
		concurrent = !(json_is_integer(ph) && json_is_string(pn) &&
			       json_integer_value(ph) == l.hlc &&
			       strcmp(json_string_value(pn), l.node) == 0);
	} else if (l.id && remote && !json_is_array(prev)) {
		concurrent = 1; /* the writer saw no version, we have one */
	}
	if (concurrent && l.hlc == hlc && strcmp(l.node, node) == 0)
		concurrent = 0; /* the same write again */
	int newer = !l.id || hlc > l.hlc || (hlc == l.hlc && strcmp(node, l.node) > 0);

	if (concurrent && !newer) {
		/* this write lost: keep it as a conflict (a losing delete is dropped) */
		if (dm || state == CORE_VSTATE_TOMBSTONE)
			goto log;
		state = CORE_VSTATE_CONFLICT;
		if (is_null)
			conflict_vid(hlc, node, vid);
	} else if (concurrent && newer && l.state != CORE_VSTATE_TOMBSTONE && !l.dm) {
		/* the local latest lost: it becomes a conflict version */
		char cv[64];
		if (strcmp(l.vid, CORE_NULL_VERSION) == 0)
			conflict_vid(l.hlc, l.node, cv);
		else
			snprintf(cv, sizeof(cv), "%s", l.vid);
		if ((rc = row_exec(w, "UPDATE versions SET vid=?2, state=?3 WHERE id=?1", l.id, cv,
				   CORE_VSTATE_CONFLICT, err)) < 0)
			return rc;
	}
	sqlite3_stmt *st;
	if (strcmp(vid, CORE_NULL_VERSION) == 0) {
		st = meta_stmt(w, "DELETE FROM versions WHERE bucket=?1 AND key=?2 AND vid='null'",
			       err);
		if (!st)
			return err->code;
		sqlite3_bind_text(st, 1, b, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, k, -1, SQLITE_STATIC);
		if ((rc = meta_done(w, st, err)) < 0)
			return rc;
	} else {
		st = meta_stmt(w, "SELECT 1 FROM versions WHERE bucket=?1 AND key=?2 AND vid=?3",
			       err);
		if (!st)
			return err->code;
		sqlite3_bind_text(st, 1, b, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, k, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, vid, -1, SQLITE_STATIC);
		int r = sqlite3_step(st);
		sqlite3_reset(st);
		if (r == SQLITE_ROW)
			return 0; /* already applied: ops are idempotent */
	}
	core_chunkref *ch = NULL;
	size_t n = 0;
	json_t *meta = json_object_get(op, "meta");
	char *meta_s = json_is_object(meta) ? json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS)
					    : strdup("{}");
	rc = chunks_index(w, json_object_get(op, "chunks"), &ch, &n, err);
	size_t blen = 0;
	void *blob = rc == 0 ? core_chunks_blob(ch, n, &blen) : NULL;
	if (rc == 0 && (!blob || !meta_s))
		rc = sl_err_set(err, SL_ENOMEM, "out of memory");
	/* multipart completion: the parts' sizes, as a JSON array */
	json_t *parts = json_object_get(op, "parts");
	char *parts_s = json_is_array(parts) ? json_dumps(parts, JSON_COMPACT) : NULL;
	if (rc == 0) {
		core_vrow row = { .bucket = b,
				  .key = k,
				  .vid = vid,
				  .node = node,
				  .etag = etag,
				  .meta = meta_s,
				  .parts = parts_s,
				  .hlc = hlc,
				  .size = core_jint(op, "size"),
				  .mtime_ms = core_jint(op, "ms"),
				  .dm = dm,
				  .state = state,
				  .chunks = blob,
				  .chunks_len = blen };
		rc = core_version_insert(w, &row, err);
	}
	free(parts_s);
	free(blob);
	free(ch);
	free(meta_s);
	if (rc == 0)
		rc = current_fix(w, b, k, err);
log:
	if (rc == 0)
		rc = oplog_add(c, w, op, kind ? kind : "put", b, k, v, err);
	return rc;
}

static int apply_vdelete(core *c, meta_conn *w, json_t *op, sl_err *err)
{
	const char *b = core_jstr(op, "b"), *k = core_jstr(op, "k"), *v = core_jstr(op, "v");
	if (!b || !k || !v)
		return bad(err, "vdelete without bucket/key/version");
	sqlite3_stmt *st =
		meta_stmt(w, "DELETE FROM versions WHERE bucket=?1 AND key=?2 AND vid=?3", err);
	if (!st)
		return err->code;
	sqlite3_bind_text(st, 1, b, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, k, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, v, -1, SQLITE_STATIC);
	int rc = meta_done(w, st, err);
	if (rc == 0)
		rc = current_fix(w, b, k, err);
	if (rc == 0)
		rc = oplog_add(c, w, op, core_jstr(op, "kind") ? core_jstr(op, "kind") : "vdelete",
			       b, k, v, err);
	return rc;
}

static int apply_bucket(core *c, meta_conn *w, json_t *op, const char *what, int remote,
			sl_err *err)
{
	const char *b = core_jstr(op, "b");
	if (!b)
		return bad(err, "bucket op without bucket");
	sqlite3_stmt *st;
	int rc, vers;
	if (remote) {
		/* replicated bucket ops converge without failing: creating an
		 * existing bucket and deleting a bucket that still holds data here
		 * (written concurrently) change nothing; versioning and config
		 * changes apply when newer than the bucket's last change */
		int exists = core_bucket_versioning(w, b, &vers, NULL) == 0;
		int skip = 0;
		if (strcmp(what, "bucket-create") == 0)
			skip = exists;
		else if (!exists)
			skip = 1;
		else if (strcmp(what, "bucket-delete") == 0) {
			st = meta_stmt(w,
				       "SELECT EXISTS(SELECT 1 FROM versions WHERE bucket=?1 AND "
				       "state!=3) OR EXISTS(SELECT 1 FROM uploads WHERE bucket=?1)",
				       err);
			if (!st)
				return err->code;
			sqlite3_bind_text(st, 1, b, -1, SQLITE_STATIC);
			skip = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
			sqlite3_reset(st);
		} else {
			st = meta_stmt(w, "SELECT hlc FROM buckets WHERE name=?1", err);
			if (!st)
				return err->code;
			sqlite3_bind_text(st, 1, b, -1, SQLITE_STATIC);
			skip = sqlite3_step(st) == SQLITE_ROW &&
			       sqlite3_column_int64(st, 0) > core_jint(op, "hlc");
			sqlite3_reset(st);
		}
		if (skip)
			return oplog_add(c, w, op, what, b, NULL, NULL, err);
	}
	if (strcmp(what, "bucket-versioning") == 0 || strcmp(what, "bucket-config") == 0) {
		st = meta_stmt(w, "UPDATE buckets SET hlc=max(hlc, ?2) WHERE name=?1", err);
		if (!st)
			return err->code;
		sqlite3_bind_text(st, 1, b, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, core_jint(op, "hlc"));
		if ((rc = meta_done(w, st, err)) < 0)
			return rc;
	}
	if (strcmp(what, "bucket-create") == 0) {
		st = meta_stmt(w,
			       "INSERT INTO buckets(name, versioning, created_ms, hlc, node) "
			       "VALUES(?1,?2,?3,?4,?5)",
			       err);
		if (!st)
			return err->code;
		sqlite3_bind_text(st, 1, b, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, (int)core_jint(op, "vers"));
		sqlite3_bind_int64(st, 3, core_jint(op, "ms"));
		sqlite3_bind_int64(st, 4, core_jint(op, "hlc"));
		sqlite3_bind_text(st, 5, core_jstr(op, "node") ? core_jstr(op, "node") : c->node,
				  -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE) {
			sqlite3_reset(st);
			return sl_err_set(err, SL_EBUCKETEXISTS, "bucket %s already exists", b);
		}
		sqlite3_reset(st);
	} else if (strcmp(what, "bucket-delete") == 0) {
		st = meta_stmt(w, "DELETE FROM buckets WHERE name=?1", err);
		if (!st)
			return err->code;
		sqlite3_bind_text(st, 1, b, -1, SQLITE_STATIC);
		if ((rc = meta_done(w, st, err)) < 0)
			return rc;
		st = meta_stmt(w, "DELETE FROM bucket_config WHERE bucket=?1", err);
		if (!st)
			return err->code;
		sqlite3_bind_text(st, 1, b, -1, SQLITE_STATIC);
		if ((rc = meta_done(w, st, err)) < 0)
			return rc;
		/* only tombstones can remain: they go with the bucket */
		st = meta_stmt(w, "DELETE FROM versions WHERE bucket=?1", err);
		if (!st)
			return err->code;
		sqlite3_bind_text(st, 1, b, -1, SQLITE_STATIC);
		if ((rc = meta_done(w, st, err)) < 0)
			return rc;
		st = meta_stmt(w, "DELETE FROM current WHERE bucket=?1", err);
		if (!st)
			return err->code;
		sqlite3_bind_text(st, 1, b, -1, SQLITE_STATIC);
		if ((rc = meta_done(w, st, err)) < 0)
			return rc;
	} else if (strcmp(what, "bucket-versioning") == 0) {
		if ((rc = bucket_exists(w, b, err)) < 0)
			return rc;
		st = meta_stmt(w, "UPDATE buckets SET versioning=?2 WHERE name=?1", err);
		if (!st)
			return err->code;
		sqlite3_bind_text(st, 1, b, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, (int)core_jint(op, "vers"));
		if ((rc = meta_done(w, st, err)) < 0)
			return rc;
	} else { /* bucket-config */
		const char *name = core_jstr(op, "name"), *value = core_jstr(op, "value");
		if (!name)
			return bad(err, "bucket-config without name");
		if ((rc = bucket_exists(w, b, err)) < 0)
			return rc;
		if (value) {
			st = meta_stmt(w,
				       "INSERT INTO bucket_config(bucket, name, value) "
				       "VALUES(?1,?2,?3) ON CONFLICT(bucket, name) DO UPDATE "
				       "SET value=excluded.value",
				       err);
			if (!st)
				return err->code;
			sqlite3_bind_text(st, 3, value, -1, SQLITE_STATIC);
		} else {
			st = meta_stmt(w, "DELETE FROM bucket_config WHERE bucket=?1 AND name=?2",
				       err);
			if (!st)
				return err->code;
		}
		sqlite3_bind_text(st, 1, b, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
		if ((rc = meta_done(w, st, err)) < 0)
			return rc;
	}
	return oplog_add(c, w, op, what, b, NULL, NULL, err);
}

static int apply_mpu(meta_conn *w, json_t *op, const char *what, sl_err *err)
{
	const char *id = core_jstr(op, "id");
	if (!id)
		return bad(err, "mpu op without upload id");
	sqlite3_stmt *st;
	int rc;
	if (strcmp(what, "mpu-create") == 0) {
		const char *b = core_jstr(op, "b"), *k = core_jstr(op, "k");
		json_t *meta = json_object_get(op, "meta");
		if (!b || !k)
			return bad(err, "mpu-create without bucket/key");
		if ((rc = bucket_exists(w, b, err)) < 0)
			return rc;
		char *m = json_is_object(meta) ? json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS)
					       : strdup("{}");
		st = meta_stmt(w,
			       "INSERT INTO uploads(id, bucket, key, meta, created_ms) "
			       "VALUES(?1,?2,?3,?4,?5)",
			       err);
		if (!st || !m) {
			free(m);
			return st ? sl_err_set(err, SL_ENOMEM, "out of memory") : err->code;
		}
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, k, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, m, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 5, core_jint(op, "ms"));
		free(m);
		return meta_done(w, st, err);
	}
	if (strcmp(what, "mpu-part") == 0) {
		core_chunkref *ch = NULL;
		size_t n = 0, blen = 0;
		if ((rc = chunks_index(w, json_object_get(op, "chunks"), &ch, &n, err)) < 0) {
			free(ch);
			return rc;
		}
		void *blob = core_chunks_blob(ch, n, &blen);
		free(ch);
		if (!blob)
			return sl_err_set(err, SL_ENOMEM, "out of memory");
		st = meta_stmt(w,
			       "INSERT OR REPLACE INTO parts(upload, num, size, etag, mtime_ms, "
			       "chunks) VALUES(?1,?2,?3,?4,?5,?6)",
			       err);
		if (!st) {
			free(blob);
			return err->code;
		}
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, (int)core_jint(op, "num"));
		sqlite3_bind_int64(st, 3, core_jint(op, "size"));
		sqlite3_bind_text(st, 4, core_jstr(op, "etag") ? core_jstr(op, "etag") : "", -1,
				  SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, core_jint(op, "ms"));
		sqlite3_bind_blob(st, 6, blob, (int)blen, SQLITE_TRANSIENT);
		free(blob);
		return meta_done(w, st, err);
	}
	/* mpu-end: complete or abort */
	st = meta_stmt(w, "DELETE FROM parts WHERE upload=?1", err);
	if (!st)
		return err->code;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if ((rc = meta_done(w, st, err)) < 0)
		return rc;
	st = meta_stmt(w, "DELETE FROM uploads WHERE id=?1", err);
	if (!st)
		return err->code;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	return meta_done(w, st, err);
}

static int origin_seen(meta_conn *w, json_t *op, sl_err *err)
{
	const char *node = core_jstr(op, "node");
	if (!node)
		return 0;
	sqlite3_stmt *st = meta_stmt(w,
				     "INSERT INTO repl_origin(node, hlc) VALUES(?1, ?2) "
				     "ON CONFLICT(node) DO UPDATE SET hlc=max(hlc, excluded.hlc)",
				     err);
	if (!st)
		return err->code;
	sqlite3_bind_text(st, 1, node, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, core_jint(op, "hlc"));
	return meta_done(w, st, err);
}

static int apply_one(core *c, meta_conn *w, json_t *op, int remote, sl_err *err);

/* A batch pulled from (or pushed by) a peer: its ops, already filtered and
 * with chunk locations of this node, and the peer's oplog position they
 * reach, recorded in the same transaction. */
static int apply_repl(core *c, meta_conn *w, json_t *op, sl_err *err)
{
	const char *peer = core_jstr(op, "peer");
	json_t *ops = json_object_get(op, "ops");
	if (!peer || !json_is_array(ops))
		return bad(err, "repl without peer/ops");
	size_t i;
	json_t *inner;
	int rc;
	json_array_foreach(ops, i, inner)
	{
		if ((rc = apply_one(c, w, inner, 1, err)) < 0)
			return rc;
	}
	sqlite3_stmt *st = meta_stmt(w,
				     "INSERT INTO peers(peer, seq, updated_ms) VALUES(?1,?2,?3) "
				     "ON CONFLICT(peer) DO UPDATE SET seq=max(seq, excluded.seq), "
				     "updated_ms=excluded.updated_ms",
				     err);
	if (!st)
		return err->code;
	sqlite3_bind_text(st, 1, peer, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, core_jint(op, "seq"));
	sqlite3_bind_int64(st, 3, core_jint(op, "ms"));
	return meta_done(w, st, err);
}

static int apply_one(core *c, meta_conn *w, json_t *op, int remote, sl_err *err)
{
	const char *what = core_jstr(op, "op");
	int rc;
	if (!what)
		return bad(err, "no op name");
	if (strcmp(what, "repl") == 0)
		return remote ? bad(err, "nested repl") : apply_repl(c, w, op, err);
	if (strcmp(what, "put") == 0)
		rc = apply_put(c, w, op, remote, err);
	else if (strcmp(what, "vdelete") == 0)
		rc = apply_vdelete(c, w, op, err);
	else if (strcmp(what, "bucket-create") == 0 || strcmp(what, "bucket-delete") == 0 ||
		 strcmp(what, "bucket-versioning") == 0 || strcmp(what, "bucket-config") == 0)
		rc = apply_bucket(c, w, op, what, remote, err);
	else if (!remote && (strcmp(what, "mpu-create") == 0 || strcmp(what, "mpu-part") == 0 ||
			     strcmp(what, "mpu-end") == 0))
		return apply_mpu(w, op, what, err);
	else if (!remote && strncmp(what, "snap-", 5) == 0)
		return core_snapshot_apply_op(c, w, op, err); /* snapshot bootstrap */
	else
		return sl_err_set(err, SL_EINVAL, "unknown journal op '%s'", what);
	if (rc == 0)
		rc = origin_seen(w, op, err);
	return rc;
}

int core_apply(core *c, meta_conn *w, json_t *op, sl_err *err)
{
	return apply_one(c, w, op, 0, err);
}
