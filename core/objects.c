/*
 * objects.c - buckets, objects and multipart uploads over the commit queue:
 * each public call validates, then hands a prepare function to core_commit,
 * which runs it on the leader inside the batch transaction. Also the
 * streaming writer and reader and the pending-chunk map.
 */
#include "core/core_internal.h"
#include "core/maint.h"

#include <assert.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/md5.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

/* ---- pending chunk map -------------------------------------------------------- */

#define PENDING_BUCKETS 4096u

static size_t phash(const uint8_t h[32])
{
	return ((size_t)h[0] | (size_t)h[1] << 8) % PENDING_BUCKETS;
}

void core_pending_add(core *c, const uint8_t hash[32], store_loc loc)
{
	pthread_mutex_lock(&c->pmu);
	if (!c->pending)
		c->pending = calloc(PENDING_BUCKETS, sizeof(*c->pending));
	if (c->pending) {
		core_pending *p = malloc(sizeof(*p));
		if (p) {
			memcpy(p->hash, hash, 32);
			p->loc = loc;
			p->next = c->pending[phash(hash)];
			c->pending[phash(hash)] = p;
		}
	}
	pthread_mutex_unlock(&c->pmu);
}

int core_pending_get(core *c, const uint8_t hash[32], store_loc *loc)
{
	int rc = SL_ENOKEY;
	pthread_mutex_lock(&c->pmu);
	if (c->pending)
		for (core_pending *p = c->pending[phash(hash)]; p; p = p->next)
			if (memcmp(p->hash, hash, 32) == 0) {
				*loc = p->loc;
				rc = 0;
				break;
			}
	pthread_mutex_unlock(&c->pmu);
	return rc;
}

static void pending_drop(core *c, const uint8_t hash[32])
{
	if (!c->pending)
		return;
	core_pending **pp = &c->pending[phash(hash)];
	while (*pp) {
		if (memcmp((*pp)->hash, hash, 32) == 0) {
			core_pending *d = *pp;
			*pp = d->next;
			free(d);
		} else {
			pp = &(*pp)->next;
		}
	}
}

void core_pending_drop_ops(core *c, json_t *ops)
{
	size_t i, j;
	json_t *op, *e;
	pthread_mutex_lock(&c->pmu);
	json_array_foreach(ops, i, op)
	{
		if (json_is_array(json_object_get(op, "ops"))) {
			pthread_mutex_unlock(&c->pmu);
			core_pending_drop_ops(c, json_object_get(op, "ops"));
			pthread_mutex_lock(&c->pmu);
			continue;
		}
		json_array_foreach(json_object_get(op, "chunks"), j, e)
		{
			uint8_t h[32];
			json_t *hx = json_array_get(e, 0);
			if (json_is_string(hx) && sl_unhex(json_string_value(hx), h, 32) == 0)
				pending_drop(c, h);
		}
	}
	pthread_mutex_unlock(&c->pmu);
}

void core_pending_free(core *c)
{
	if (!c->pending)
		return;
	for (size_t i = 0; i < PENDING_BUCKETS; i++)
		while (c->pending[i]) {
			core_pending *p = c->pending[i];
			c->pending[i] = p->next;
			free(p);
		}
	free(c->pending);
	c->pending = NULL;
}

int core_chunk_loc(core *c, meta_conn *conn, const uint8_t hash[32], store_loc *loc, sl_err *err)
{
	sqlite3_stmt *st = meta_stmt(conn, "SELECT seg, off, len FROM chunks WHERE hash=?1", err);
	if (!st)
		return err->code;
	sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		loc->seg = (uint64_t)sqlite3_column_int64(st, 0);
		loc->off = (uint64_t)sqlite3_column_int64(st, 1);
		loc->len = (uint32_t)sqlite3_column_int64(st, 2);
		sqlite3_reset(st);
		return 0;
	}
	sqlite3_reset(st);
	if (r != SQLITE_DONE)
		return meta_fail(conn, "chunk lookup", err);
	if (core_pending_get(c, hash, loc) == 0)
		return 0;
	char hx[65];
	sl_hex(hash, 32, hx);
	return sl_err_set(err, SL_ENOKEY, "chunk %s not found", hx);
}

/* ---- buckets ---------------------------------------------------------------- */

int core_bucket_name_valid(const char *n)
{
	size_t len = n ? strlen(n) : 0;
	if (len < 3 || len > 63)
		return 0;
	if (!islower((unsigned char)n[0]) && !isdigit((unsigned char)n[0]))
		return 0;
	if (!islower((unsigned char)n[len - 1]) && !isdigit((unsigned char)n[len - 1]))
		return 0;
	int dots = 0, digits_only = 1;
	for (size_t i = 0; i < len; i++) {
		char ch = n[i];
		if (!(islower((unsigned char)ch) || isdigit((unsigned char)ch) || ch == '.' ||
		      ch == '-'))
			return 0;
		if (ch == '.') {
			dots++;
			if (n[i + 1] == '.' || n[i + 1] == '-' || (i > 0 && n[i - 1] == '-'))
				return 0;
		} else if (!isdigit((unsigned char)ch)) {
			digits_only = 0;
		}
	}
	if (dots == 3 && digits_only)
		return 0; /* looks like an IPv4 address */
	if (strncmp(n, "xn--", 4) == 0 || (len > 8 && strcmp(n + len - 8, "-s3alias") == 0))
		return 0;
	return 1;
}

typedef struct bucket_arg {
	const char *name;
	int vers;
	const char *cfg_name, *cfg_value;
} bucket_arg;

static int prep_bucket_create(core *c, meta_conn *w, core_txn *t, sl_err *err)
{
	bucket_arg *a = t->arg;
	int vers;
	if (core_bucket_versioning(w, a->name, &vers, NULL) == 0)
		return sl_err_set(err, SL_EBUCKETEXISTS, "bucket %s already exists", a->name);
	json_t *op = core_op_new(c, "bucket-create");
	json_object_set_new(op, "b", json_string(a->name));
	json_object_set_new(op, "vers", json_integer(a->vers));
	json_object_set_new(op, "ms", json_integer(HLC_MS(c->hlc.last)));
	return core_txn_apply(c, w, t, op, err);
}

int core_bucket_create(core *c, const char *name, int versioning, sl_err *err)
{
	if (!core_bucket_name_valid(name))
		return sl_err_set(err, SL_EINVAL, "invalid bucket name '%s'", name ? name : "");
	if (versioning < CORE_VERS_UNVERSIONED || versioning > CORE_VERS_DISABLED ||
	    versioning == CORE_VERS_SUSPENDED)
		return sl_err_set(err, SL_EINVAL, "invalid versioning state %d", versioning);
	bucket_arg a = { .name = name, .vers = versioning };
	return core_commit(c, prep_bucket_create, &a, err);
}

static int prep_bucket_delete(core *c, meta_conn *w, core_txn *t, sl_err *err)
{
	bucket_arg *a = t->arg;
	int vers, rc;
	if ((rc = core_bucket_versioning(w, a->name, &vers, err)) < 0)
		return rc;
	sqlite3_stmt *st = meta_stmt(w,
				     "SELECT EXISTS(SELECT 1 FROM versions WHERE bucket=?1 "
				     "AND state!=3) OR EXISTS(SELECT 1 FROM uploads WHERE "
				     "bucket=?1)",
				     err);
	if (!st)
		return err->code;
	sqlite3_bind_text(st, 1, a->name, -1, SQLITE_STATIC);
	int nonempty = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
	sqlite3_reset(st);
	if (nonempty)
		return sl_err_set(err, SL_ENOTEMPTY, "bucket %s is not empty", a->name);
	json_t *op = core_op_new(c, "bucket-delete");
	json_object_set_new(op, "b", json_string(a->name));
	return core_txn_apply(c, w, t, op, err);
}

int core_bucket_delete(core *c, const char *name, sl_err *err)
{
	bucket_arg a = { .name = name };
	return core_commit(c, prep_bucket_delete, &a, err);
}

int core_bucket_get(core *c, const char *name, core_bucket *out, sl_err *err)
{
	meta_conn *r = meta_reader(c->md);
	sqlite3_stmt *st =
		meta_stmt(r, "SELECT name, versioning, created_ms FROM buckets WHERE name=?1", err);
	int rc = 0;
	if (!st) {
		rc = err->code;
	} else {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		int s = sqlite3_step(st);
		if (s == SQLITE_ROW) {
			memset(out, 0, sizeof(*out));
			snprintf(out->name, sizeof(out->name), "%s", sqlite3_column_text(st, 0));
			out->versioning = sqlite3_column_int(st, 1);
			out->created_ms = sqlite3_column_int64(st, 2);
		} else if (s == SQLITE_DONE) {
			rc = sl_err_set(err, SL_ENOBUCKET, "no such bucket %s", name);
		} else {
			rc = meta_fail(r, "read bucket", err);
		}
		sqlite3_reset(st);
	}
	meta_reader_release(c->md, r);
	return rc;
}

int core_bucket_list(core *c, core_bucket **out, size_t *n, sl_err *err)
{
	*out = NULL;
	*n = 0;
	meta_conn *r = meta_reader(c->md);
	sqlite3_stmt *st =
		meta_stmt(r, "SELECT name, versioning, created_ms FROM buckets ORDER BY name", err);
	int rc = 0;
	size_t cap = 0;
	if (!st)
		rc = err->code;
	while (st && sqlite3_step(st) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			core_bucket *p = realloc(*out, cap * sizeof(*p));
			if (!p) {
				rc = sl_err_set(err, SL_ENOMEM, "out of memory");
				break;
			}
			*out = p;
		}
		core_bucket *b = &(*out)[(*n)++];
		memset(b, 0, sizeof(*b));
		snprintf(b->name, sizeof(b->name), "%s", sqlite3_column_text(st, 0));
		b->versioning = sqlite3_column_int(st, 1);
		b->created_ms = sqlite3_column_int64(st, 2);
	}
	if (st)
		sqlite3_reset(st);
	meta_reader_release(c->md, r);
	return rc;
}

static int prep_bucket_vers(core *c, meta_conn *w, core_txn *t, sl_err *err)
{
	bucket_arg *a = t->arg;
	int vers, rc;
	if ((rc = core_bucket_versioning(w, a->name, &vers, err)) < 0)
		return rc;
	if (vers == CORE_VERS_DISABLED)
		return sl_err_set(err, SL_ENOTSUP, "versioning is disabled for bucket %s", a->name);
	if (vers == a->vers || (vers == CORE_VERS_UNVERSIONED && a->vers == CORE_VERS_SUSPENDED))
		return 0; /* no change (suspending a never-versioned bucket changes nothing) */
	json_t *op = core_op_new(c, "bucket-versioning");
	json_object_set_new(op, "b", json_string(a->name));
	json_object_set_new(op, "vers", json_integer(a->vers));
	return core_txn_apply(c, w, t, op, err);
}

int core_bucket_set_versioning(core *c, const char *name, int state, sl_err *err)
{
	if (state != CORE_VERS_ENABLED && state != CORE_VERS_SUSPENDED)
		return sl_err_set(err, SL_EINVAL, "versioning state must be Enabled or Suspended");
	bucket_arg a = { .name = name, .vers = state };
	return core_commit(c, prep_bucket_vers, &a, err);
}

int core_bucket_config_get(core *c, const char *bucket, const char *name, char **value, sl_err *err)
{
	*value = NULL;
	meta_conn *r = meta_reader(c->md);
	int vers;
	int rc = core_bucket_versioning(r, bucket, &vers, err);
	sqlite3_stmt *st = rc < 0 ? NULL
				  : meta_stmt(r,
					      "SELECT value FROM bucket_config WHERE bucket=?1 "
					      "AND name=?2",
					      err);
	if (rc == 0 && !st)
		rc = err->code;
	if (st) {
		sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			*value = strdup((const char *)sqlite3_column_text(st, 0));
		else
			rc = sl_err_set(err, SL_ENOKEY, "bucket %s has no %s configuration", bucket,
					name);
		sqlite3_reset(st);
	}
	meta_reader_release(c->md, r);
	return rc;
}

static int prep_bucket_config(core *c, meta_conn *w, core_txn *t, sl_err *err)
{
	bucket_arg *a = t->arg;
	int vers, rc;
	if ((rc = core_bucket_versioning(w, a->name, &vers, err)) < 0)
		return rc;
	json_t *op = core_op_new(c, "bucket-config");
	json_object_set_new(op, "b", json_string(a->name));
	json_object_set_new(op, "name", json_string(a->cfg_name));
	json_object_set_new(op, "value", a->cfg_value ? json_string(a->cfg_value) : json_null());
	return core_txn_apply(c, w, t, op, err);
}

int core_bucket_config_set(core *c, const char *bucket, const char *name, const char *value,
			   sl_err *err)
{
	if (!name || !*name)
		return sl_err_set(err, SL_EINVAL, "configuration name is empty");
	bucket_arg a = { .name = bucket, .cfg_name = name, .cfg_value = value };
	return core_commit(c, prep_bucket_config, &a, err);
}

/* ---- chunks ------------------------------------------------------------------ */

static int all_zero(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	if (len == 0)
		return 1;
	if (p[0] != 0)
		return 0;
	return memcmp(p, p + 1, len - 1) == 0;
}

static int chunk_put(core *c, const void *buf, uint32_t len, int cold, core_chunkref *ref,
		     sl_err *err)
{
	uint8_t h[32];
	if (len > CORE_CHUNK_SIZE)
		return sl_err_set(err, SL_EINVAL, "chunk of %u bytes is too large", len);
	if (all_zero(buf, len)) {
		memset(ref, 0, sizeof(*ref));
		ref->len = len;
		return 0; /* a hole */
	}
	SHA256(buf, len, h);
	return core_chunk_store(c, buf, len, h, cold, ref, err);
}

int core_chunk_put(core *c, const void *buf, uint32_t len, core_chunkref *ref, sl_err *err)
{
	return chunk_put(c, buf, len, 0, ref, err);
}

int core_chunk_put_hashed(core *c, const void *buf, uint32_t len, const uint8_t hash[32],
			  core_chunkref *ref, sl_err *err)
{
	return core_chunk_store(c, buf, len, hash, 0, ref, err);
}

int core_chunk_store(core *c, const void *buf, uint32_t len, const uint8_t hash[32], int cold,
		     core_chunkref *ref, sl_err *err)
{
	memset(ref, 0, sizeof(*ref));
	ref->len = len;
	if (all_zero(buf, len))
		return 0; /* a hole */
	memcpy(ref->hash, hash, 32);
	store_loc loc;
	meta_conn *r = meta_reader(c->md);
	int found = core_chunk_loc(c, r, ref->hash, &loc, NULL) == 0;
	meta_reader_release(c->md, r);
	if (found)
		return 0;
	int rc = store_append(c->st, SEG_REC_CHUNK | (cold ? STORE_APPEND_COLD : 0), ref->hash, buf,
			      len, &loc, NULL, err);
	if (rc == 0)
		core_pending_add(c, ref->hash, loc);
	return rc;
}

/*
 * Reads from a stored chunk. whole: the entire chunk, checked against its
 * record's CRC-32C; otherwise len bytes at off, unchecked (small FUSE reads;
 * scrub covers them). Holes read as zeros; chunks scrub found damaged fail.
 * A chunk gc moved between the index lookup and the read is looked up again.
 * doff (whole only, may be NULL): buf is aligned, with
 * STORE_DIRECT_READ_CAP(ref->len) bytes, and the chunk is read past the page
 * cache where the store can (store_read_chunk_direct); *doff gets where its
 * data starts in buf (0 when read the plain way).
 */
static int chunk_read(core *c, const core_chunkref *ref, uint32_t off, void *buf, uint32_t len,
		      int whole, size_t *doff, sl_err *err)
{
	static const uint8_t zero[32];
	if (doff)
		*doff = 0;
	if (memcmp(ref->hash, zero, 32) == 0) {
		memset(buf, 0, len);
		return 0;
	}
	if (core_chunk_damaged(c, ref->hash)) {
		char hx[65];
		sl_hex(ref->hash, 32, hx);
		return sl_err_set(err, SL_ECORRUPT, "stored chunk %s is damaged (found by scrub)",
				  hx);
	}
	int rc = 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		store_loc loc;
		meta_conn *r = meta_reader(c->md);
		rc = core_chunk_loc(c, r, ref->hash, &loc, err);
		meta_reader_release(c->md, r);
		if (rc < 0)
			return rc == SL_ENOKEY ? sl_err_set(err, SL_ECORRUPT, "%s",
							    err ? err->msg : "chunk not found")
					       : rc;
		if (!whole) {
			rc = store_read(c->st, loc.seg, loc.off + off, buf, len, err);
			if (rc == 0)
				return 0;
			continue;
		}
		if (loc.len != ref->len)
			return sl_err_set(err, SL_ECORRUPT, "chunk length differs from the index");
		rc = doff ? store_read_chunk_direct(c->st, loc, ref->hash, buf, doff, err) : 1;
		if (rc == 1)
			rc = store_read_chunk(c->st, loc, ref->hash, buf, err);
		if (rc != SL_EIO && !(rc == SL_ECORRUPT && attempt == 0))
			return rc;
	}
	return rc;
}

int core_chunk_read(core *c, const core_chunkref *ref, uint32_t off, void *buf, uint32_t len,
		    sl_err *err)
{
	if ((uint64_t)off + len > ref->len)
		return sl_err_set(err, SL_EINVAL, "read past the end of a chunk");
	return chunk_read(c, ref, off, buf, len, 0, NULL, err);
}

/* ---- puts --------------------------------------------------------------------- */

typedef struct put_arg {
	const char *bucket, *key;
	const core_chunkref *chunks;
	size_t n;
	uint64_t size;
	const char *etag;
	const char *meta;
	const core_cond *cond;
	const char *kind;
	const char *mpu_end; /* upload id to close in the same transaction */
	json_t *parts;	     /* multipart completion: the parts' sizes (borrowed), else NULL */
	core_objinfo *out;
} put_arg;

static void strip_quotes(const char *in, char *out, size_t n)
{
	size_t len = strlen(in);
	if (len >= 2 && in[0] == '"' && in[len - 1] == '"') {
		in++;
		len -= 2;
	}
	if (len >= n)
		len = n - 1;
	memcpy(out, in, len);
	out[len] = '\0';
}

/* Checks write conditions against the current (latest live) version. */
static int check_cond(meta_conn *w, const char *b, const char *k, const core_cond *cond,
		      sl_err *err)
{
	if (!cond || (!cond->if_match && !cond->if_none_match && !cond->if_version))
		return 0;
	core_objinfo cur = { 0 };
	sl_err e2;
	int64_t id = core_find_version(w, b, k, NULL, &cur, NULL, NULL, &e2);
	int exists = id > 0 && !cur.delete_marker;
	int rc = 0;
	if (id < 0 && id != SL_ENOKEY) {
		*err = e2;
		rc = (int)id;
	} else if (cond->if_match) {
		char want[80];
		strip_quotes(cond->if_match, want, sizeof(want));
		if (!exists)
			rc = sl_err_set(err, SL_ENOKEY, "If-Match: %s/%s does not exist", b, k);
		else if (strcmp(want, "*") != 0 && strcmp(want, cur.etag) != 0)
			rc = sl_err_set(err, SL_EPRECOND, "If-Match: etag is %s, not %s", cur.etag,
					want);
	}
	if (rc == 0 && cond->if_none_match && exists)
		rc = sl_err_set(err, SL_EPRECOND, "If-None-Match: %s/%s exists", b, k);
	if (rc == 0 && cond->if_version) {
		const char *have = exists ? cur.version_id : "";
		if (strcmp(have, cond->if_version) != 0)
			rc = sl_err_set(err, SL_EPRECOND, "%s/%s changed (version %s, expected %s)",
					b, k, *have ? have : "none", cond->if_version);
	}
	core_objinfo_clear(&cur);
	return rc;
}

/* Version id for a new version in a bucket with the given versioning state. */
static void new_vid(core *c, int vers, uint64_t hlc, char out[48])
{
	if (vers == CORE_VERS_ENABLED)
		snprintf(out, 48, "%016" PRIx64 "%s", hlc, c->node);
	else
		snprintf(out, 48, "%s", CORE_NULL_VERSION);
}

static json_t *put_op(core *c, meta_conn *w, const char *b, const char *k, int vers,
		      const char *kind)
{
	json_t *op = core_op_new(c, "put");
	if (core_latest_prev(w, b, k, op, NULL) < 0) {
		json_decref(op);
		return NULL;
	}
	uint64_t hlc = (uint64_t)json_integer_value(json_object_get(op, "hlc"));
	char vid[48];
	new_vid(c, vers, hlc, vid);
	json_object_set_new(op, "kind", json_string(kind));
	json_object_set_new(op, "b", json_string(b));
	json_object_set_new(op, "k", json_string(k));
	json_object_set_new(op, "v", json_string(vid));
	json_object_set_new(op, "ms", json_integer(HLC_MS(hlc)));
	return op;
}

static int fill_out(meta_conn *w, const char *b, const char *k, core_objinfo *out, sl_err *err)
{
	if (!out)
		return 0;
	int64_t id = core_find_version(w, b, k, NULL, out, NULL, NULL, err);
	if (id > 0)
		out->is_latest = 1;
	return id < 0 ? (int)id : 0;
}

static int prep_put(core *c, meta_conn *w, core_txn *t, sl_err *err)
{
	put_arg *a = t->arg;
	int vers, rc;
	if ((rc = core_bucket_versioning(w, a->bucket, &vers, err)) < 0)
		return rc;
	if ((rc = check_cond(w, a->bucket, a->key, a->cond, err)) < 0)
		return rc;
	json_t *op = put_op(c, w, a->bucket, a->key, vers, a->kind ? a->kind : "put");
	if (!op)
		return sl_err_set(err, SL_EIO, "could not read the current version");
	json_t *ch = core_chunks_json(c, w, a->chunks, a->n, err);
	json_error_t je;
	json_t *meta = a->meta ? json_loads(a->meta, 0, &je) : json_object();
	if (!ch || !meta) {
		json_decref(op);
		json_decref(ch);
		json_decref(meta);
		return ch ? sl_err_set(err, SL_EINVAL, "bad metadata JSON") : err->code;
	}
	json_object_set_new(op, "size", json_integer((json_int_t)a->size));
	json_object_set_new(op, "etag", json_string(a->etag));
	json_object_set_new(op, "meta", meta);
	json_object_set_new(op, "chunks", ch);
	if (a->parts)
		json_object_set(op, "parts", a->parts);
	if ((rc = core_txn_apply(c, w, t, op, err)) < 0)
		return rc;
	if (a->mpu_end) {
		json_t *end = core_op_new(c, "mpu-end");
		json_object_set_new(end, "id", json_string(a->mpu_end));
		if ((rc = core_txn_apply(c, w, t, end, err)) < 0)
			return rc;
	}
	return fill_out(w, a->bucket, a->key, a->out, err);
}

static int put_check(core *c, const char *bucket, const char *key, const core_put_opts *o,
		     sl_err *err)
{
	(void)c;
	int rc = core_key_check(key, err);
	if (rc == 0 && !bucket)
		rc = sl_err_set(err, SL_EINVAL, "no bucket");
	if (rc == 0 && o)
		rc = core_meta_valid(o->meta, err);
	return rc;
}

int core_put_chunks(core *c, const char *bucket, const char *key, const core_chunkref *chunks,
		    size_t nchunks, const char *etag, const core_put_opts *opts, core_objinfo *out,
		    sl_err *err)
{
	int rc = put_check(c, bucket, key, opts, err);
	if (rc < 0)
		return rc;
	uint64_t size = 0;
	for (size_t i = 0; i < nchunks; i++) {
		if (chunks[i].len > CORE_CHUNK_SIZE)
			return sl_err_set(err, SL_EINVAL, "chunk %zu is too large", i);
		size += chunks[i].len;
	}
	char et[72];
	if (etag)
		snprintf(et, sizeof(et), "%s", etag);
	else if (nchunks == 0)
		snprintf(et, sizeof(et), "d41d8cd98f00b204e9800998ecf8427e");
	else
		core_etag_of_chunks(chunks, nchunks, et);
	put_arg a = { .bucket = bucket,
		      .key = key,
		      .chunks = chunks,
		      .n = nchunks,
		      .size = size,
		      .etag = et,
		      .meta = opts ? opts->meta : NULL,
		      .cond = opts ? &opts->cond : NULL,
		      .kind = opts ? opts->kind : NULL,
		      .out = out };
	return core_commit(c, prep_put, &a, err);
}

/* ---- streaming writer ----------------------------------------------------------- */

/*
 * A writer runs a three-stage pipeline. The caller only copies into the chunk
 * buffer it fills. Each full chunk then goes to the background twice at once:
 * a store job (SHA-256, dedupe, append) on the chunk workers, and the writer's
 * MD5 task, which digests the queued chunks strictly in order (the ETag covers
 * the object bytes in sequence). A chunk's buffer is reused once both are
 * done. At most WRITER_DEPTH chunks per writer and CORE_WSLOTS_MAX for the
 * whole process are in the background (a chunk counts until its writer takes
 * its buffer back, not just while its job runs), and store jobs also count
 * against CORE_ASYNC_MAX; with no capacity a chunk is digested and stored on
 * the caller's thread. A writer thus holds its fill buffer plus its share of
 * the process-wide slots, whatever the number of concurrent writers. Short last chunks stay on the
 * caller's thread too, which keeps small puts free of thread hand-offs.
 */
#define WRITER_DEPTH 3
#define WRITER_ASYNC_MIN (128u * 1024) /* smaller last chunks are stored inline */
#define CORE_WSLOTS_MAX (2 * CORE_ASYNC_MAX)

static int core_task_run(core *c, void (*fn)(void *), void *arg);
static void *core_chunkbuf_get(core *c);
static void core_chunkbuf_put(core *c, void *buf);
static int core_wslot_get(core *c);
static void core_wslot_put(core *c);

typedef struct writer_slot {
	uint8_t *buf;
	size_t cap; /* of buf: a short last chunk may sit in a smaller one */
	uint32_t len;
	size_t idx;	     /* chunk number in w->ch */
	core_chunk_job *job; /* the store job */
	int md5ed;	     /* under w->mu */
} writer_slot;

struct core_writer {
	core *c;
	char *bucket, *key;
	uint8_t *buf;
	size_t cap, fill;
	MD5_CTX md5; /* the MD5 task's while md5_busy, else the caller's */
	uint8_t md5_final[16];
	int md5_done;
	uint64_t size;
	core_chunkref *ch;
	size_t n, capch;
	int failed;
	/* multipart part writers */
	char upload_id[40];
	int part;
	/* background chunks, oldest at qhead; mu/cv guard md5ed and md5_busy */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	writer_slot q[WRITER_DEPTH];
	size_t qhead, qn;
	int md5_busy; /* an MD5 task is queued or running */
};

static int writer_new(core *c, const char *bucket, const char *key, core_writer **out, sl_err *err)
{
	core_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	w->c = c;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->bucket = strdup(bucket);
	w->key = strdup(key);
	MD5_Init(&w->md5);
	if (!w->bucket || !w->key) {
		core_put_abort(w);
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	}
	*out = w;
	return 0;
}

int core_put_begin(core *c, const char *bucket, const char *key, core_writer **out, sl_err *err)
{
	*out = NULL;
	if (__atomic_load_n(&c->maint, __ATOMIC_SEQ_CST))
		return sl_err_set(err, SL_EMAINT,
				  "the lake is in maintenance mode: writes are refused, reads "
				  "work");
	int rc = put_check(c, bucket, key, NULL, err);
	if (rc < 0)
		return rc;
	core_bucket b;
	if ((rc = core_bucket_get(c, bucket, &b, err)) < 0)
		return rc;
	return writer_new(c, bucket, key, out, err);
}

/* The MD5 task: digests queued chunks in order until none is left. */
static void writer_md5_task(void *arg)
{
	core_writer *w = arg;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		writer_slot *s = NULL;
		for (size_t i = 0; i < w->qn && !s; i++) {
			writer_slot *t = &w->q[(w->qhead + i) % WRITER_DEPTH];
			if (!t->md5ed)
				s = t;
		}
		if (!s)
			break;
		pthread_mutex_unlock(&w->mu);
		MD5_Update(&w->md5, s->buf, s->len);
		pthread_mutex_lock(&w->mu);
		s->md5ed = 1;
		pthread_cond_broadcast(&w->cv);
	}
	w->md5_busy = 0;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* Waits for the oldest background chunk: its ref, its MD5, its buffer back. */
static int writer_retire(core_writer *w, sl_err *err)
{
	assert(w->qn > 0);
	writer_slot *s = &w->q[w->qhead];
	int rc = core_chunk_job_wait(s->job, &w->ch[s->idx], err);
	s->job = NULL;
	pthread_mutex_lock(&w->mu);
	while (!s->md5ed)
		pthread_cond_wait(&w->cv, &w->mu);
	w->qhead = (w->qhead + 1) % WRITER_DEPTH;
	w->qn--;
	pthread_mutex_unlock(&w->mu);
	if (s->cap != CORE_CHUNK_SIZE)
		free(s->buf);
	else
		core_chunkbuf_put(w->c, s->buf);
	s->buf = NULL;
	core_wslot_put(w->c);
	return rc;
}

/* Waits for every background chunk and the MD5 task: w->md5 is the caller's
 * again. Collects all results even after a failure; returns the first. */
static int writer_drain(core_writer *w, sl_err *err)
{
	int rc = 0;
	while (w->qn > 0) {
		int r = writer_retire(w, rc < 0 ? NULL : err);
		if (r < 0 && rc == 0)
			rc = r;
	}
	pthread_mutex_lock(&w->mu);
	while (w->md5_busy)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
	return rc;
}

/* Queues the filled buffer as chunk idx; 1 if it went to the background,
 * 0 if there was no capacity (nothing changed), < 0 on error. */
static int writer_queue(core_writer *w, size_t idx, sl_err *err)
{
	if (w->qn == WRITER_DEPTH) {
		int rc = writer_retire(w, err);
		if (rc < 0)
			return rc;
	}
	if (!core_wslot_get(w->c))
		return 0;
	uint8_t *next = core_chunkbuf_get(w->c);
	/* a full chunk of an upload is not read back soon: past the page cache */
	core_chunk_job *j = next ? core_chunk_put_async_cold(w->c, w->buf, (uint32_t)w->fill)
				 : NULL;
	if (!j) {
		core_chunkbuf_put(w->c, next); /* no capacity: keep memory to one buffer */
		core_wslot_put(w->c);
		return 0;
	}
	writer_slot *s = &w->q[(w->qhead + w->qn) % WRITER_DEPTH];
	s->buf = w->buf;
	s->cap = w->cap;
	s->len = (uint32_t)w->fill;
	s->idx = idx;
	s->job = j;
	s->md5ed = 0;
	pthread_mutex_lock(&w->mu);
	w->qn++;
	int start = !w->md5_busy;
	w->md5_busy = 1;
	pthread_mutex_unlock(&w->mu);
	if (start && core_task_run(w->c, writer_md5_task, w) < 0)
		writer_md5_task(w); /* no worker: digest here, still in order */
	w->buf = next;
	w->cap = CORE_CHUNK_SIZE;
	return 1;
}

/* Stores the filled buffer as the next chunk, in the background when there is
 * capacity (see above), else on the caller's thread after the chunks before
 * it are digested. */
static int writer_flush(core_writer *w, int last, sl_err *err)
{
	if (w->fill == 0)
		return 0;
	if (w->n == w->capch) {
		size_t cap = w->capch ? w->capch * 2 : 8;
		core_chunkref *p = realloc(w->ch, cap * sizeof(*p));
		if (!p)
			return sl_err_set(err, SL_ENOMEM, "out of memory");
		w->ch = p;
		w->capch = cap;
	}
	size_t idx = w->n;
	if (w->fill == CORE_CHUNK_SIZE || (last && w->fill >= WRITER_ASYNC_MIN)) {
		int rc = writer_queue(w, idx, err);
		if (rc == 0 && w->qn > 0) { /* make room by waiting for our oldest */
			if ((rc = writer_retire(w, err)) == 0)
				rc = writer_queue(w, idx, err);
		}
		if (rc < 0)
			return rc;
		if (rc == 1) {
			w->n++;
			w->fill = 0;
			return 0;
		}
	}
	int rc = writer_drain(w, err);
	if (rc < 0)
		return rc;
	MD5_Update(&w->md5, w->buf, w->fill);
	rc = chunk_put(w->c, w->buf, (uint32_t)w->fill, 1, &w->ch[idx], err);
	if (rc < 0)
		return rc;
	w->n++;
	w->fill = 0;
	return 0;
}

int core_put_write(core_writer *w, const void *buf, size_t len, sl_err *err)
{
	if (w->failed)
		return sl_err_set(err, SL_EINVAL, "writer already failed");
	if (w->size + len > w->c->max_object) {
		w->failed = 1;
		return sl_err_set(err, SL_ETOOLARGE,
				  "object larger than the maximum of %" PRIu64 " bytes",
				  w->c->max_object);
	}
	w->size += len;
	const uint8_t *p = buf;
	while (len > 0) {
		if (w->fill == CORE_CHUNK_SIZE) {
			int rc = writer_flush(w, 0, err);
			if (rc < 0) {
				w->failed = 1;
				return rc;
			}
		}
		size_t room = CORE_CHUNK_SIZE - w->fill;
		size_t take = len < room ? len : room;
		if (w->fill + take > w->cap) {
			size_t cap = w->cap ? w->cap : 64 * 1024;
			while (cap < w->fill + take)
				cap *= 2;
			if (cap > CORE_CHUNK_SIZE)
				cap = CORE_CHUNK_SIZE;
			uint8_t *nb = realloc(w->buf, cap);
			if (!nb) {
				w->failed = 1;
				return sl_err_set(err, SL_ENOMEM, "out of memory");
			}
			w->buf = nb;
			w->cap = cap;
		}
		memcpy(w->buf + w->fill, p, take);
		w->fill += take;
		p += take;
		len -= take;
	}
	return 0;
}

uint64_t core_writer_size(const core_writer *w)
{
	return w->size;
}

/* The digest of what is written so far: the queued chunks and the bytes
 * still in the fill buffer. Waits for the MD5 task. */
void core_writer_md5(const core_writer *w, uint8_t out[16])
{
	core_writer *mw = (core_writer *)w; /* only the lock and the wait */
	pthread_mutex_lock(&mw->mu);
	for (;;) {
		int pending = mw->md5_busy;
		for (size_t i = 0; i < mw->qn; i++)
			pending |= !mw->q[(mw->qhead + i) % WRITER_DEPTH].md5ed;
		if (!pending)
			break;
		pthread_cond_wait(&mw->cv, &mw->mu);
	}
	pthread_mutex_unlock(&mw->mu);
	MD5_CTX m = w->md5;
	if (w->fill)
		MD5_Update(&m, w->buf, w->fill);
	MD5_Final(out, &m);
}

/* Flushes the last chunk, waits for the background and finalises the MD5. */
static int writer_finish(core_writer *w, const uint8_t *content_md5, sl_err *err)
{
	if (w->failed)
		return sl_err_set(err, SL_EINVAL, "writer already failed");
	int rc = writer_flush(w, 1, err);
	int r2 = writer_drain(w, rc < 0 ? NULL : err);
	if (rc == 0)
		rc = r2;
	if (rc < 0) {
		w->failed = 1;
		return rc;
	}
	MD5_Final(w->md5_final, &w->md5);
	w->md5_done = 1;
	if (content_md5 && memcmp(content_md5, w->md5_final, 16) != 0)
		return sl_err_set(err, SL_EBADDIGEST,
				  "the Content-MD5 you specified did not match what was received");
	return 0;
}

int core_put_commit(core_writer *w, const core_put_opts *opts, core_objinfo *out, sl_err *err)
{
	int rc = core_meta_valid(opts ? opts->meta : NULL, err);
	if (rc == 0)
		rc = writer_finish(w, opts ? opts->content_md5 : NULL, err);
	if (rc == 0) {
		char et[72];
		sl_hex(w->md5_final, 16, et);
		put_arg a = { .bucket = w->bucket,
			      .key = w->key,
			      .chunks = w->ch,
			      .n = w->n,
			      .size = w->size,
			      .etag = et,
			      .meta = opts ? opts->meta : NULL,
			      .cond = opts ? &opts->cond : NULL,
			      .kind = opts ? opts->kind : NULL,
			      .out = out };
		rc = core_commit(w->c, prep_put, &a, err);
	}
	core_put_abort(w);
	return rc;
}

void core_put_abort(core_writer *w)
{
	if (!w)
		return;
	writer_drain(w, NULL); /* the workers still read its buffers */
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w->bucket);
	free(w->key);
	if (w->cap == CORE_CHUNK_SIZE)
		core_chunkbuf_put(w->c, w->buf);
	else
		free(w->buf);
	free(w->ch);
	free(w);
}

/* ---- reading -------------------------------------------------------------------- */

/*
 * A reader holds the chunk it serves from in buf. Read sequentially, it also
 * reads the next chunk ahead into pbuf on a chunk worker while the caller
 * sends the current one. The second buffer exists only while the reader holds
 * one of the CORE_ASYNC_MAX read-ahead slots, so memory stays bounded for the
 * whole process; without a slot the reader reads on the caller's thread.
 */
struct core_reader {
	core *c;
	core_chunkref *ch;
	uint64_t *offs; /* start offset of each chunk */
	size_t n;
	uint64_t size;
	ssize_t loaded; /* chunk index held in buf, -1 none */
	uint8_t *buf;
	size_t cap;
	size_t boff; /* where the loaded chunk's data starts in buf */
	/* read-ahead; mu/cv guard pf_busy, pf_rc */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint8_t *pbuf;
	size_t pcap, pboff;
	ssize_t pf_idx; /* chunk being read or held in pbuf, -1 none */
	int pf_busy;	/* a task is reading into pbuf */
	int pf_rc;
	int slot;   /* holds a background slot (and so may keep pbuf) */
	int advise; /* ask the disk for chunks ahead (POSIX_FADV_WILLNEED) */
	int direct; /* read large chunks past the page cache (store_read_chunk_direct) */
};

int core_head(core *c, const char *bucket, const char *key, const char *version_id,
	      core_objinfo *out, sl_err *err)
{
	memset(out, 0, sizeof(*out));
	meta_conn *r = meta_reader(c->md);
	int vers;
	int rc = core_bucket_versioning(r, bucket, &vers, err);
	if (rc == 0) {
		int64_t id = core_find_version(r, bucket, key, version_id, out, NULL, NULL, err);
		if (id < 0) {
			rc = (int)id;
		} else {
			out->is_latest = version_id && *version_id ? 0 : 1;
			if (!out->is_latest) {
				core_objinfo l = { 0 };
				if (core_find_version(r, bucket, key, NULL, &l, NULL, NULL, NULL) ==
				    id)
					out->is_latest = 1;
				core_objinfo_clear(&l);
			}
			if (out->state == CORE_VSTATE_TOMBSTONE) {
				out->delete_marker = 0; /* not an S3 delete marker */
				rc = sl_err_set(err, SL_ENOKEY, "no such key %s/%s", bucket, key);
			} else if (out->delete_marker && !(version_id && *version_id))
				rc = sl_err_set(err, SL_ENOKEY, "%s/%s is deleted", bucket, key);
		}
	}
	meta_reader_release(c->md, r);
	return rc;
}

int core_version_parts(core *c, const char *bucket, const char *key, const char *version_id,
		       uint64_t **sizes, size_t *n, sl_err *err)
{
	*sizes = NULL;
	*n = 0;
	meta_conn *r = meta_reader(c->md);
	int rc = 0;
	sqlite3_stmt *st = meta_stmt(r,
				     "SELECT parts FROM versions WHERE bucket=?1 AND key=?2 "
				     "AND vid=?3",
				     err);
	if (!st) {
		rc = err->code;
		goto out;
	}
	sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, version_id ? version_id : CORE_NULL_VERSION, -1, SQLITE_STATIC);
	int s = sqlite3_step(st);
	if (s == SQLITE_DONE) {
		rc = sl_err_set(err, SL_ENOVERSION, "no such version of %s/%s", bucket, key);
	} else if (s != SQLITE_ROW) {
		rc = meta_fail(r, "read parts", err);
	} else if (sqlite3_column_type(st, 0) == SQLITE_TEXT) {
		json_error_t je;
		json_t *a = json_loads((const char *)sqlite3_column_text(st, 0), 0, &je);
		size_t cnt = json_is_array(a) ? json_array_size(a) : 0;
		uint64_t *v = cnt ? calloc(cnt, sizeof(*v)) : NULL;
		if (cnt && !v)
			rc = sl_err_set(err, SL_ENOMEM, "out of memory");
		for (size_t i = 0; v && i < cnt; i++) {
			json_t *e = json_array_get(a, i);
			if (!json_is_integer(e) || json_integer_value(e) < 0) {
				rc = sl_err_set(err, SL_ECORRUPT, "bad part list of %s/%s", bucket,
						key);
				break;
			}
			v[i] = (uint64_t)json_integer_value(e);
		}
		json_decref(a);
		if (rc == 0) {
			*sizes = v;
			*n = cnt;
		} else {
			free(v);
		}
	}
	sqlite3_reset(st);
out:
	meta_reader_release(c->md, r);
	return rc;
}

int core_get_chunks(core *c, const char *bucket, const char *key, const char *version_id,
		    core_objinfo *info, core_chunkref **chunks, size_t *nchunks, sl_err *err)
{
	core_objinfo tmp = { 0 };
	core_objinfo *oi = info ? info : &tmp;
	memset(oi, 0, sizeof(*oi));
	*chunks = NULL;
	*nchunks = 0;
	meta_conn *r = meta_reader(c->md);
	int vers;
	int rc = core_bucket_versioning(r, bucket, &vers, err);
	if (rc == 0) {
		int64_t id =
			core_find_version(r, bucket, key, version_id, oi, chunks, nchunks, err);
		if (id < 0)
			rc = (int)id;
		else if (oi->delete_marker) {
			rc = sl_err_set(err, version_id && *version_id ? SL_EINVAL : SL_ENOKEY,
					"%s/%s is a delete marker", bucket, key);
			free(*chunks);
			*chunks = NULL;
			*nchunks = 0;
		}
	}
	meta_reader_release(c->md, r);
	core_objinfo_clear(&tmp);
	return rc;
}

/* A reader over chunks rd->ch[0..n): offsets, size. Frees rd on failure. */
static int reader_ready(core_reader *rd, core_reader **out, sl_err *err)
{
	rd->offs = malloc((rd->n + 1) * sizeof(*rd->offs));
	if (!rd->offs) {
		core_reader_free(rd);
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	}
	uint64_t o = 0;
	for (size_t i = 0; i < rd->n; i++) {
		rd->offs[i] = o;
		o += rd->ch[i].len;
	}
	rd->offs[rd->n] = o;
	rd->size = o;
	*out = rd;
	return 0;
}

static core_reader *reader_new(core *c)
{
	core_reader *rd = calloc(1, sizeof(*rd));
	if (!rd)
		return NULL;
	rd->c = c;
	rd->loaded = -1;
	rd->pf_idx = -1;
	pthread_mutex_init(&rd->mu, NULL);
	pthread_cond_init(&rd->cv, NULL);
	return rd;
}

int core_get_open(core *c, const char *bucket, const char *key, const char *version_id,
		  core_objinfo *info, core_reader **out, sl_err *err)
{
	*out = NULL;
	core_reader *rd = reader_new(c);
	if (!rd)
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	int rc = core_get_chunks(c, bucket, key, version_id, info, &rd->ch, &rd->n, err);
	if (rc < 0) {
		core_reader_free(rd);
		if (rc == SL_ENOKEY && info && info->delete_marker == 0) {
			/* tell the caller when the latest version is a delete marker */
			core_objinfo tmp = { 0 };
			if (core_head(c, bucket, key, version_id, &tmp, NULL) == SL_ENOKEY &&
			    tmp.delete_marker) {
				core_objinfo_clear(info);
				*info = tmp;
			} else {
				core_objinfo_clear(&tmp);
			}
		}
		return rc;
	}
	return reader_ready(rd, out, err);
}

int core_chunks_open(core *c, const core_chunkref *ch, size_t n, core_reader **out, sl_err *err)
{
	*out = NULL;
	core_reader *rd = reader_new(c);
	if (!rd || !(rd->ch = malloc((n ? n : 1) * sizeof(*ch)))) {
		core_reader_free(rd);
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	}
	memcpy(rd->ch, ch, n * sizeof(*ch));
	rd->n = n;
	/* replication: what it sends was mostly written past the page cache,
	 * and is read once. The large chunks are read the same way: filling
	 * fresh page-cache pages and copying out of them cost the sender about
	 * as much CPU as the rest of its work. */
	rd->advise = 1;
	rd->direct = 1;
	return reader_ready(rd, out, err);
}

/* Whether rd reads chunk ref past the page cache. */
static int reader_direct(const core_reader *rd, const core_chunkref *ref)
{
	return rd->direct && ref->len >= STORE_DIRECT_MIN;
}

/* Gives back a buffer of the reader's (cap bytes). */
static void reader_buf_drop(core_reader *rd, uint8_t *buf, size_t cap)
{
	if (cap == CORE_CHUNK_SIZE)
		core_chunkbuf_put(rd->c, buf);
	else
		free(buf);
}

/* Makes *buf (*cap bytes) big enough for chunk ref: for a direct read,
 * aligned and with room for the blocks around the chunk; else with pool a
 * CORE_CHUNK_SIZE buffer (the read-ahead one), without it ref->len bytes.
 * SL_ENOMEM. */
static int reader_buf_fit(core_reader *rd, const core_chunkref *ref, int pool, uint8_t **buf,
			  size_t *cap)
{
	if (reader_direct(rd, ref)) {
		size_t need = STORE_DIRECT_READ_CAP(CORE_CHUNK_SIZE);
		if (*cap >= need)
			return 0;
		void *p = NULL;
		if (posix_memalign(&p, STORE_IO_DIRECT_ALIGN, need) != 0)
			return SL_ENOMEM;
		reader_buf_drop(rd, *buf, *cap);
		*buf = p;
		*cap = need;
		return 0;
	}
	if (*cap >= ref->len)
		return 0;
	pool = pool && ref->len <= CORE_CHUNK_SIZE;
	uint8_t *nb = pool ? core_chunkbuf_get(rd->c) : malloc(ref->len);
	if (!nb)
		return SL_ENOMEM;
	reader_buf_drop(rd, *buf, *cap);
	*buf = nb;
	*cap = pool ? CORE_CHUNK_SIZE : ref->len;
	return 0;
}

/* Reads chunk ref whole into buf (fitted by reader_buf_fit); *off gets where
 * its data starts. */
static int reader_read(core_reader *rd, const core_chunkref *ref, uint8_t *buf, size_t *off,
		       sl_err *err)
{
	*off = 0;
	return chunk_read(rd->c, ref, 0, buf, ref->len, 1, reader_direct(rd, ref) ? off : NULL,
			  err);
}

static int core_slot_get(core *c);
static void core_slot_put(core *c);

static void reader_prefetch_task(void *arg)
{
	core_reader *rd = arg;
	sl_err e = { 0 };
	int rc = reader_read(rd, &rd->ch[rd->pf_idx], rd->pbuf, &rd->pboff, &e);
	pthread_mutex_lock(&rd->mu);
	rd->pf_rc = rc;
	rd->pf_busy = 0;
	pthread_cond_broadcast(&rd->cv);
	pthread_mutex_unlock(&rd->mu);
}

/* Waits for a read-ahead in flight; pbuf is the caller's again. */
static void reader_prefetch_wait(core_reader *rd)
{
	pthread_mutex_lock(&rd->mu);
	while (rd->pf_busy)
		pthread_cond_wait(&rd->cv, &rd->mu);
	pthread_mutex_unlock(&rd->mu);
}

/* Drops the second buffer and gives its slot back. */
static void reader_prefetch_release(core_reader *rd)
{
	reader_prefetch_wait(rd);
	reader_buf_drop(rd, rd->pbuf, rd->pcap);
	rd->pbuf = NULL;
	rd->pcap = 0;
	rd->pf_idx = -1;
	if (rd->slot) {
		core_slot_put(rd->c);
		rd->slot = 0;
	}
}

/* Has the kernel start reading chunk i of rd from its segment. */
static void reader_advise(core_reader *rd, size_t i)
{
	static const uint8_t hole[32];
	if (i >= rd->n || rd->ch[i].len == 0 || memcmp(rd->ch[i].hash, hole, 32) == 0 ||
	    reader_direct(rd, &rd->ch[i]))
		return;
	store_loc loc;
	meta_conn *r = meta_reader(rd->c->md);
	int found = core_chunk_loc(rd->c, r, rd->ch[i].hash, &loc, NULL) == 0;
	meta_reader_release(rd->c->md, r);
	if (found)
		store_advise(rd->c->st, loc);
}

/* Starts reading chunk i into pbuf in the background, if a slot is free; with
 * rd->advise, the disk is asked for chunks i and i + 1 as whole requests
 * first (those read through the page cache). Only for readers that expect
 * the disk: on data in the page cache the extra index lookups and page walks
 * cost a GET about a tenth. */
static void reader_prefetch(core_reader *rd, size_t i)
{
	if (i >= rd->n || rd->ch[i].len == 0) {
		reader_prefetch_release(rd);
		return;
	}
	if (rd->advise) {
		reader_advise(rd, i);
		reader_advise(rd, i + 1);
	}
	if (!rd->slot && !(rd->slot = core_slot_get(rd->c)))
		return;
	if (reader_buf_fit(rd, &rd->ch[i], 1, &rd->pbuf, &rd->pcap) < 0) {
		reader_prefetch_release(rd);
		return;
	}
	rd->pf_idx = (ssize_t)i;
	rd->pf_busy = 1;
	if (core_task_run(rd->c, reader_prefetch_task, rd) < 0) {
		rd->pf_busy = 0;
		reader_prefetch_release(rd);
	}
}

/* Makes chunk i the one in buf. ahead: the caller reads sequentially, so
 * chunk i + 1 is read ahead. */
static int reader_load(core_reader *rd, size_t i, int ahead, sl_err *err)
{
	if ((ssize_t)i == rd->loaded)
		return 0;
	core_chunkref *ref = &rd->ch[i];
	if (rd->pf_idx >= 0) {
		reader_prefetch_wait(rd);
		if (rd->pf_idx == (ssize_t)i && rd->pf_rc == 0) {
			uint8_t *t = rd->buf;
			size_t tc = rd->cap;
			rd->buf = rd->pbuf;
			rd->cap = rd->pcap;
			rd->boff = rd->pboff;
			rd->pbuf = t;
			rd->pcap = tc;
			rd->pf_idx = -1;
			rd->loaded = (ssize_t)i;
			if (ahead)
				reader_prefetch(rd, i + 1);
			else
				reader_prefetch_release(rd);
			return 0;
		}
		rd->pf_idx = -1; /* not the chunk wanted, or failed: read it here */
	}
	rd->loaded = -1;
	if (reader_buf_fit(rd, ref, 0, &rd->buf, &rd->cap) < 0)
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	int rc = reader_read(rd, ref, rd->buf, &rd->boff, err);
	if (rc < 0)
		return rc;
	rd->loaded = (ssize_t)i;
	if (ahead)
		reader_prefetch(rd, i + 1);
	else if (rd->slot)
		reader_prefetch_release(rd);
	return 0;
}

ssize_t core_read_at(core_reader *rd, void *buf, size_t len, uint64_t off, sl_err *err)
{
	if (off >= rd->size || len == 0)
		return 0;
	if (len > rd->size - off)
		len = (size_t)(rd->size - off);
	/* binary search for the chunk holding off */
	size_t lo = 0, hi = rd->n;
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;
		if (rd->offs[mid] <= off)
			lo = mid;
		else
			hi = mid;
	}
	size_t done = 0;
	uint8_t *p = buf;
	for (size_t i = lo; i < rd->n && done < len; i++) {
		uint64_t cs = rd->offs[i], ce = rd->offs[i + 1];
		uint64_t from = off + done;
		if (from >= ce)
			continue;
		/* looks sequential: the chunk after the one held, or a read
		 * from a chunk's start that takes at least a quarter of it */
		int ahead = i + 1 < rd->n &&
			    ((rd->loaded >= 0 && (size_t)rd->loaded + 1 == i) ||
			     (from == cs && (uint64_t)(len - done) * 4 >= ce - cs));
		int rc = reader_load(rd, i, ahead, err);
		if (rc < 0)
			return rc;
		size_t take = (size_t)(ce - from);
		if (take > len - done)
			take = len - done;
		memcpy(p + done, rd->buf + rd->boff + (from - cs), take);
		done += take;
	}
	return (ssize_t)done;
}

void core_reader_free(core_reader *rd)
{
	if (!rd)
		return;
	reader_prefetch_release(rd); /* a worker may still fill pbuf */
	pthread_mutex_destroy(&rd->mu);
	pthread_cond_destroy(&rd->cv);
	free(rd->ch);
	free(rd->offs);
	reader_buf_drop(rd, rd->buf, rd->cap);
	free(rd);
}

/* ---- delete ---------------------------------------------------------------------- */

typedef struct del_arg {
	const char *bucket, *key, *vid;
	core_del_result *res;
	const char *kind;
} del_arg;

/* The S3 DeleteObject (no version id) effect, as ops appended to t. */
static int delete_latest(core *c, meta_conn *w, core_txn *t, const char *b, const char *k,
			 const char *kind, core_del_result *res, sl_err *err)
{
	int vers, rc;
	if ((rc = core_bucket_versioning(w, b, &vers, err)) < 0)
		return rc;
	int tomb = vers == CORE_VERS_UNVERSIONED || vers == CORE_VERS_DISABLED;
	if (tomb) {
		/* an unversioned delete leaves a tombstone (never listed) so that
		 * an older replicated write cannot bring the key back */
		core_objinfo cur = { 0 };
		int64_t id = core_find_version(w, b, k, NULL, &cur, NULL, NULL, NULL);
		int live = id > 0 && !cur.delete_marker;
		core_objinfo_clear(&cur);
		if (!live)
			return 0; /* nothing to delete: S3 still answers 204 */
	}
	json_t *op = put_op(c, w, b, k, vers, kind ? kind : "delete");
	if (!op)
		return sl_err_set(err, SL_EIO, "could not read the current version");
	if (tomb)
		json_object_set_new(op, "state", json_integer(CORE_VSTATE_TOMBSTONE));
	json_object_set_new(op, "dm", json_true());
	json_object_set_new(op, "size", json_integer(0));
	json_object_set_new(op, "etag", json_string(""));
	json_object_set_new(op, "meta", json_object());
	json_object_set_new(op, "chunks", json_array());
	if (res && !tomb) {
		res->delete_marker = 1;
		snprintf(res->version_id, sizeof(res->version_id), "%s",
			 json_string_value(json_object_get(op, "v")));
	}
	return core_txn_apply(c, w, t, op, err);
}

static int prep_delete(core *c, meta_conn *w, core_txn *t, sl_err *err)
{
	del_arg *a = t->arg;
	if (!a->vid || !*a->vid)
		return delete_latest(c, w, t, a->bucket, a->key, a->kind, a->res, err);
	int vers, rc;
	if ((rc = core_bucket_versioning(w, a->bucket, &vers, err)) < 0)
		return rc;
	core_objinfo oi = { 0 };
	int64_t id = core_find_version(w, a->bucket, a->key, a->vid, &oi, NULL, NULL, NULL);
	if (a->res) {
		snprintf(a->res->version_id, sizeof(a->res->version_id), "%s", a->vid);
		a->res->delete_marker = id > 0 && oi.delete_marker &&
					oi.state != CORE_VSTATE_TOMBSTONE;
	}
	core_objinfo_clear(&oi);
	if (id <= 0)
		return 0;
	json_t *op = core_op_new(c, "vdelete");
	json_object_set_new(op, "kind", json_string("vdelete"));
	json_object_set_new(op, "b", json_string(a->bucket));
	json_object_set_new(op, "k", json_string(a->key));
	json_object_set_new(op, "v", json_string(a->vid));
	return core_txn_apply(c, w, t, op, err);
}

int core_delete(core *c, const char *bucket, const char *key, const char *version_id,
		core_del_result *res, sl_err *err)
{
	int rc = core_key_check(key, err);
	if (rc < 0)
		return rc;
	char vid[64] = ""; /* version_id may point into *res */
	if (version_id && snprintf(vid, sizeof(vid), "%s", version_id) >= (int)sizeof(vid))
		return sl_err_set(err, SL_EINVAL, "version id too long");
	if (res)
		memset(res, 0, sizeof(*res));
	del_arg a = { .bucket = bucket, .key = key, .vid = vid[0] ? vid : NULL, .res = res };
	return core_commit(c, prep_delete, &a, err);
}

/* ---- copy, rename, metadata --------------------------------------------------------- */

/* Adds a put of dst sharing src's chunks (src = a version row read on w). */
static int put_from(core *c, meta_conn *w, core_txn *t, const char *db, const char *dk,
		    const core_objinfo *src, const core_chunkref *ch, size_t n, const char *meta,
		    const char *kind, sl_err *err)
{
	int vers, rc;
	if ((rc = core_bucket_versioning(w, db, &vers, err)) < 0)
		return rc;
	json_t *op = put_op(c, w, db, dk, vers, kind);
	if (!op)
		return sl_err_set(err, SL_EIO, "could not read the current version");
	json_t *chj = core_chunks_json(c, w, ch, n, err);
	json_t *mj = json_loads(meta ? meta : src->meta, 0, NULL);
	if (!chj || !mj) {
		json_decref(op);
		json_decref(chj);
		json_decref(mj);
		return chj ? sl_err_set(err, SL_EINVAL, "bad metadata JSON") : err->code;
	}
	json_object_set_new(op, "size", json_integer((json_int_t)src->size));
	json_object_set_new(op, "etag", json_string(src->etag));
	json_object_set_new(op, "meta", mj);
	json_object_set_new(op, "chunks", chj);
	return core_txn_apply(c, w, t, op, err);
}

typedef struct copy_arg {
	const char *sb, *sk, *sv, *db, *dk;
	const core_put_opts *opts;
	core_objinfo *out;
} copy_arg;

static int prep_copy(core *c, meta_conn *w, core_txn *t, sl_err *err)
{
	copy_arg *a = t->arg;
	int vers, rc;
	if ((rc = core_bucket_versioning(w, a->sb, &vers, err)) < 0)
		return rc;
	core_objinfo src = { 0 };
	core_chunkref *ch = NULL;
	size_t n = 0;
	int64_t id = core_find_version(w, a->sb, a->sk, a->sv, &src, &ch, &n, err);
	if (id < 0)
		return (int)id;
	if (src.delete_marker) {
		rc = sl_err_set(err, a->sv && *a->sv ? SL_EINVAL : SL_ENOKEY,
				"copy source %s/%s is a delete marker", a->sb, a->sk);
	} else {
		rc = check_cond(w, a->db, a->dk, a->opts ? &a->opts->cond : NULL, err);
		if (rc == 0)
			rc = put_from(c, w, t, a->db, a->dk, &src, ch, n,
				      a->opts ? a->opts->meta : NULL,
				      a->opts && a->opts->kind ? a->opts->kind : "copy", err);
		if (rc == 0)
			rc = fill_out(w, a->db, a->dk, a->out, err);
	}
	core_objinfo_clear(&src);
	free(ch);
	return rc;
}

int core_copy(core *c, const char *src_bucket, const char *src_key, const char *src_version,
	      const char *dst_bucket, const char *dst_key, const core_put_opts *opts,
	      core_objinfo *out, sl_err *err)
{
	int rc = put_check(c, dst_bucket, dst_key, opts, err);
	if (rc == 0)
		rc = core_key_check(src_key, err);
	if (rc < 0)
		return rc;
	copy_arg a = { src_bucket, src_key, src_version, dst_bucket, dst_key, opts, out };
	return core_commit(c, prep_copy, &a, err);
}

typedef struct rename_arg {
	const char *b, *src, *dst;
	int flags;
	long moved;
} rename_arg;

/* Moves the live latest version of src to dst (ops appended to t). */
static int move_key(core *c, meta_conn *w, core_txn *t, const char *b, const char *src,
		    const char *dst, int flags, sl_err *err)
{
	core_objinfo so = { 0 }, dobj = { 0 };
	core_chunkref *sch = NULL, *dch = NULL;
	size_t sn = 0, dn = 0;
	int rc = 0;
	int64_t sid = core_find_version(w, b, src, NULL, &so, &sch, &sn, err);
	if (sid < 0 || so.delete_marker) {
		rc = sid < 0 ? (int)sid : sl_err_set(err, SL_ENOKEY, "no such key %s/%s", b, src);
		goto out;
	}
	int64_t did = core_find_version(w, b, dst, NULL, &dobj, &dch, &dn, NULL);
	int dexists = did > 0 && !dobj.delete_marker;
	if ((flags & CORE_RENAME_NOREPLACE) && dexists) {
		rc = sl_err_set(err, SL_EEXIST, "%s/%s exists", b, dst);
		goto out;
	}
	if ((flags & CORE_RENAME_EXCHANGE) && !dexists) {
		rc = sl_err_set(err, SL_ENOKEY, "no such key %s/%s", b, dst);
		goto out;
	}
	if (strcmp(src, dst) == 0)
		goto out;
	rc = put_from(c, w, t, b, dst, &so, sch, sn, NULL, "rename", err);
	if (rc == 0) {
		if (flags & CORE_RENAME_EXCHANGE)
			rc = put_from(c, w, t, b, src, &dobj, dch, dn, NULL, "rename", err);
		else
			rc = delete_latest(c, w, t, b, src, "rename", NULL, err);
	}
out:
	core_objinfo_clear(&so);
	core_objinfo_clear(&dobj);
	free(sch);
	free(dch);
	return rc;
}

static int prep_rename(core *c, meta_conn *w, core_txn *t, sl_err *err)
{
	rename_arg *a = t->arg;
	int vers, rc;
	if ((rc = core_bucket_versioning(w, a->b, &vers, err)) < 0)
		return rc;
	return move_key(c, w, t, a->b, a->src, a->dst, a->flags, err);
}

int core_rename(core *c, const char *bucket, const char *src_key, const char *dst_key, int flags,
		sl_err *err)
{
	int rc = core_key_check(src_key, err);
	if (rc == 0)
		rc = core_key_check(dst_key, err);
	if (rc < 0)
		return rc;
	if ((flags & CORE_RENAME_NOREPLACE) && (flags & CORE_RENAME_EXCHANGE))
		return sl_err_set(err, SL_EINVAL, "NOREPLACE and EXCHANGE together");
	rename_arg a = { bucket, src_key, dst_key, flags, 0 };
	return core_commit(c, prep_rename, &a, err);
}

static int prep_rename_prefix(core *c, meta_conn *w, core_txn *t, sl_err *err)
{
	rename_arg *a = t->arg;
	int vers, rc;
	if ((rc = core_bucket_versioning(w, a->b, &vers, err)) < 0)
		return rc;
	size_t plen = strlen(a->src);
	sqlite3_stmt *st = meta_stmt(w,
				     "SELECT key FROM current WHERE bucket=?1 AND key>=?2 "
				     "AND substr(key, 1, ?3)=?2 ORDER BY key",
				     err);
	if (!st)
		return err->code;
	sqlite3_bind_text(st, 1, a->b, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, a->src, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)plen);
	char **keys = NULL;
	size_t n = 0, cap = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(st, 0);
		if (strncmp(k, a->src, plen) != 0)
			break;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **nk = realloc(keys, cap * sizeof(*nk));
			if (!nk) {
				rc = sl_err_set(err, SL_ENOMEM, "out of memory");
				break;
			}
			keys = nk;
		}
		keys[n++] = strdup(k);
	}
	sqlite3_reset(st);
	for (size_t i = 0; i < n && rc == 0; i++) {
		size_t dl = strlen(a->dst) + strlen(keys[i]) - plen + 1;
		char *dk = malloc(dl);
		if (!dk) {
			rc = sl_err_set(err, SL_ENOMEM, "out of memory");
			break;
		}
		snprintf(dk, dl, "%s%s", a->dst, keys[i] + plen);
		if (strlen(dk) > CORE_MAX_KEY)
			rc = sl_err_set(err, SL_EINVAL, "renamed key would exceed %d bytes",
					CORE_MAX_KEY);
		else
			rc = move_key(c, w, t, a->b, keys[i], dk, 0, err);
		free(dk);
	}
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
	a->moved = (long)n;
	return rc;
}

long core_rename_prefix(core *c, const char *bucket, const char *src_prefix, const char *dst_prefix,
			sl_err *err)
{
	size_t sl = src_prefix ? strlen(src_prefix) : 0, dl = dst_prefix ? strlen(dst_prefix) : 0;
	if (sl == 0 || dl == 0 || src_prefix[sl - 1] != '/' || dst_prefix[dl - 1] != '/')
		return sl_err_set(err, SL_EINVAL, "prefixes must be non-empty and end in '/'");
	if (strncmp(dst_prefix, src_prefix, sl) == 0)
		return sl_err_set(err, SL_EINVAL, "cannot move %s into itself", src_prefix);
	rename_arg a = { bucket, src_prefix, dst_prefix, 0, 0 };
	int rc = core_commit(c, prep_rename_prefix, &a, err);
	return rc < 0 ? rc : a.moved;
}

typedef struct meta_arg {
	const char *b, *k, *meta;
	const core_cond *cond;
	core_objinfo *out;
} meta_arg;

static int prep_set_meta(core *c, meta_conn *w, core_txn *t, sl_err *err)
{
	meta_arg *a = t->arg;
	int vers, rc;
	if ((rc = core_bucket_versioning(w, a->b, &vers, err)) < 0)
		return rc;
	if ((rc = check_cond(w, a->b, a->k, a->cond, err)) < 0)
		return rc;
	core_objinfo so = { 0 };
	core_chunkref *ch = NULL;
	size_t n = 0;
	int64_t id = core_find_version(w, a->b, a->k, NULL, &so, &ch, &n, err);
	if (id < 0 || so.delete_marker)
		rc = id < 0 ? (int)id : sl_err_set(err, SL_ENOKEY, "no such key %s/%s", a->b, a->k);
	else
		rc = put_from(c, w, t, a->b, a->k, &so, ch, n, a->meta, "meta", err);
	if (rc == 0)
		rc = fill_out(w, a->b, a->k, a->out, err);
	core_objinfo_clear(&so);
	free(ch);
	return rc;
}

int core_set_meta(core *c, const char *bucket, const char *key, const char *meta,
		  const core_cond *cond, core_objinfo *out, sl_err *err)
{
	int rc = core_key_check(key, err);
	if (rc == 0)
		rc = core_meta_valid(meta ? meta : "{}", err);
	if (rc < 0)
		return rc;
	meta_arg a = { bucket, key, meta ? meta : "{}", cond, out };
	return core_commit(c, prep_set_meta, &a, err);
}

/* ---- multipart uploads ---------------------------------------------------------------- */

typedef struct mpu_arg {
	const char *b, *k, *id, *meta;
	int num;
	core_chunkref *ch;
	size_t n;
	uint64_t size;
	const char *etag;
	const core_part *parts;
	size_t nparts;
	uint64_t min_part;
	const core_cond *cond;
	core_objinfo *out;
} mpu_arg;

static int upload_check(meta_conn *conn, const char *b, const char *k, const char *id, char **meta,
			sl_err *err)
{
	sqlite3_stmt *st =
		meta_stmt(conn, "SELECT bucket, key, meta FROM uploads WHERE id=?1", err);
	if (!st)
		return err->code;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int rc = 0;
	if (sqlite3_step(st) != SQLITE_ROW ||
	    strcmp((const char *)sqlite3_column_text(st, 0), b) != 0 ||
	    strcmp((const char *)sqlite3_column_text(st, 1), k) != 0)
		rc = sl_err_set(err, SL_ENOUPLOAD, "no such upload %s for %s/%s", id, b, k);
	else if (meta)
		*meta = strdup((const char *)sqlite3_column_text(st, 2));
	sqlite3_reset(st);
	return rc;
}

static int prep_mpu_create(core *c, meta_conn *w, core_txn *t, sl_err *err)
{
	mpu_arg *a = t->arg;
	int vers, rc;
	if ((rc = core_bucket_versioning(w, a->b, &vers, err)) < 0)
		return rc;
	json_t *op = core_op_new(c, "mpu-create");
	json_t *mj = json_loads(a->meta ? a->meta : "{}", 0, NULL);
	json_object_set_new(op, "id", json_string(a->id));
	json_object_set_new(op, "b", json_string(a->b));
	json_object_set_new(op, "k", json_string(a->k));
	json_object_set_new(op, "meta", mj ? mj : json_object());
	json_object_set_new(op, "ms", json_integer(HLC_MS(c->hlc.last)));
	return core_txn_apply(c, w, t, op, err);
}

int core_mpu_create(core *c, const char *bucket, const char *key, const char *meta,
		    char upload_id[40], sl_err *err)
{
	int rc = put_check(c, bucket, key, NULL, err);
	if (rc == 0)
		rc = core_meta_valid(meta, err);
	if (rc < 0)
		return rc;
	uint8_t raw[16];
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return sl_err_set(err, SL_EINTERNAL, "no randomness");
	sl_hex(raw, 16, upload_id);
	mpu_arg a = { .b = bucket, .k = key, .id = upload_id, .meta = meta };
	return core_commit(c, prep_mpu_create, &a, err);
}

int core_mpu_part_begin(core *c, const char *bucket, const char *key, const char *upload_id,
			int part_number, core_writer **out, sl_err *err)
{
	*out = NULL;
	if (part_number < 1 || part_number > 10000)
		return sl_err_set(err, SL_EINVAL, "part number must be between 1 and 10000");
	meta_conn *r = meta_reader(c->md);
	int rc = upload_check(r, bucket, key, upload_id, NULL, err);
	meta_reader_release(c->md, r);
	if (rc < 0)
		return rc;
	if ((rc = writer_new(c, bucket, key, out, err)) < 0)
		return rc;
	snprintf((*out)->upload_id, sizeof((*out)->upload_id), "%s", upload_id);
	(*out)->part = part_number;
	return 0;
}

static int prep_mpu_part(core *c, meta_conn *w, core_txn *t, sl_err *err)
{
	mpu_arg *a = t->arg;
	int rc = upload_check(w, a->b, a->k, a->id, NULL, err);
	if (rc < 0)
		return rc;
	json_t *ch = core_chunks_json(c, w, a->ch, a->n, err);
	if (!ch)
		return err->code;
	json_t *op = core_op_new(c, "mpu-part");
	json_object_set_new(op, "id", json_string(a->id));
	json_object_set_new(op, "num", json_integer(a->num));
	json_object_set_new(op, "size", json_integer((json_int_t)a->size));
	json_object_set_new(op, "etag", json_string(a->etag));
	json_object_set_new(op, "ms", json_integer(HLC_MS(c->hlc.last)));
	json_object_set_new(op, "chunks", ch);
	return core_txn_apply(c, w, t, op, err);
}

static int part_commit(core *c, const char *b, const char *k, const char *id, int num,
		       core_chunkref *ch, size_t n, uint64_t size, const char *etag, core_part *out,
		       sl_err *err)
{
	mpu_arg a = {
		.b = b, .k = k, .id = id, .num = num, .ch = ch, .n = n, .size = size, .etag = etag
	};
	int rc = core_commit(c, prep_mpu_part, &a, err);
	if (rc == 0 && out) {
		memset(out, 0, sizeof(*out));
		out->number = num;
		out->size = size;
		snprintf(out->etag, sizeof(out->etag), "%s", etag);
	}
	return rc;
}

int core_mpu_part_commit(core_writer *w, const uint8_t *content_md5, core_part *out, sl_err *err)
{
	int rc = 0;
	if (!w->upload_id[0])
		rc = sl_err_set(err, SL_EINVAL, "not a part writer");
	if (rc == 0)
		rc = writer_finish(w, content_md5, err);
	if (rc == 0) {
		char et[40];
		sl_hex(w->md5_final, 16, et);
		rc = part_commit(w->c, w->bucket, w->key, w->upload_id, w->part, w->ch, w->n,
				 w->size, et, out, err);
	}
	core_put_abort(w);
	return rc;
}

int core_mpu_part_copy(core *c, const char *bucket, const char *key, const char *upload_id,
		       int part_number, const char *src_bucket, const char *src_key,
		       const char *src_version, uint64_t off, uint64_t len, core_part *out,
		       sl_err *err)
{
	if (part_number < 1 || part_number > 10000)
		return sl_err_set(err, SL_EINVAL, "part number must be between 1 and 10000");
	meta_conn *r = meta_reader(c->md);
	int rc = upload_check(r, bucket, key, upload_id, NULL, err);
	meta_reader_release(c->md, r);
	if (rc < 0)
		return rc;
	core_objinfo src = { 0 };
	core_chunkref *sch = NULL;
	size_t sn = 0;
	if ((rc = core_get_chunks(c, src_bucket, src_key, src_version, &src, &sch, &sn, err)) < 0)
		return rc;
	if (len == UINT64_MAX) {
		off = 0;
		len = src.size;
	}
	core_chunkref *ch = calloc(sn + 2, sizeof(*ch));
	uint8_t *buf = malloc(CORE_CHUNK_SIZE);
	size_t n = 0;
	MD5_CTX md5;
	MD5_Init(&md5);
	if (off + len > src.size || off + len < off)
		rc = sl_err_set(err, SL_EINVAL, "copy range outside the source object");
	if (rc == 0 && (!ch || !buf))
		rc = sl_err_set(err, SL_ENOMEM, "out of memory");
	uint64_t pos = 0;
	for (size_t i = 0; i < sn && rc == 0; i++) {
		uint64_t cs = pos, ce = pos + sch[i].len;
		pos = ce;
		uint64_t from = off > cs ? off : cs, to = off + len < ce ? off + len : ce;
		if (from >= to)
			continue;
		/* read it anyway: the part ETag is the MD5 of its bytes */
		rc = core_chunk_read(c, &sch[i], (uint32_t)(from - cs), buf, (uint32_t)(to - from),
				     err);
		if (rc < 0)
			break;
		MD5_Update(&md5, buf, (size_t)(to - from));
		if (from == cs && to == ce)
			ch[n++] = sch[i]; /* whole chunk: shared */
		else
			rc = core_chunk_put(c, buf, (uint32_t)(to - from), &ch[n++], err);
	}
	if (rc == 0) {
		uint8_t d[16];
		char et[40];
		MD5_Final(d, &md5);
		sl_hex(d, 16, et);
		rc = part_commit(c, bucket, key, upload_id, part_number, ch, n, len, et, out, err);
	}
	core_objinfo_clear(&src);
	free(sch);
	free(ch);
	free(buf);
	return rc;
}

static int prep_mpu_complete(core *c, meta_conn *w, core_txn *t, sl_err *err)
{
	mpu_arg *a = t->arg;
	char *meta = NULL;
	int rc = upload_check(w, a->b, a->k, a->id, &meta, err);
	if (rc < 0)
		return rc;
	if (a->nparts == 0) {
		free(meta);
		return sl_err_set(err, SL_EINVAL, "a multipart upload needs at least one part");
	}
	core_chunkref *all = NULL;
	size_t n = 0, cap = 0;
	uint64_t size = 0;
	MD5_CTX md5;
	MD5_Init(&md5);
	/* the whole list must ascend before anything else is judged (as AWS) */
	for (size_t i = 1; i < a->nparts; i++)
		if (a->parts[i].number <= a->parts[i - 1].number) {
			free(meta);
			return sl_err_set(err, SL_EPARTORDER,
					  "the list of parts was not in ascending order");
		}
	json_t *psizes = json_array(); /* kept with the version (?partNumber=N) */
	if (!psizes) {
		free(meta);
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	}
	sqlite3_stmt *st = meta_stmt(w,
				     "SELECT size, etag, chunks FROM parts WHERE upload=?1 "
				     "AND num=?2",
				     err);
	if (!st)
		rc = err->code;
	for (size_t i = 0; i < a->nparts && rc == 0; i++) {
		const core_part *p = &a->parts[i];
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, p->number);
		if (sqlite3_step(st) != SQLITE_ROW) {
			rc = sl_err_set(err, SL_EINVALPART, "part %d was not uploaded", p->number);
			break;
		}
		char want[40];
		strip_quotes(p->etag, want, sizeof(want));
		const char *have = (const char *)sqlite3_column_text(st, 1);
		uint64_t psize = (uint64_t)sqlite3_column_int64(st, 0);
		if (strcmp(want, have) != 0) {
			rc = sl_err_set(err, SL_EINVALPART, "part %d has etag %s, not %s",
					p->number, have, want);
			break;
		}
		if (i + 1 < a->nparts && psize < a->min_part) {
			rc = sl_err_set(err, SL_ETOOSMALL,
					"part %d is %" PRIu64 " bytes, below the minimum %" PRIu64,
					p->number, psize, a->min_part);
			break;
		}
		uint8_t d[16];
		sl_unhex(have, d, 16);
		MD5_Update(&md5, d, 16);
		core_chunkref *pc = NULL;
		size_t pn = 0;
		if (core_chunks_from_blob(sqlite3_column_blob(st, 2),
					  (size_t)sqlite3_column_bytes(st, 2), &pc, &pn) < 0) {
			rc = sl_err_set(err, SL_ECORRUPT, "bad part row");
			break;
		}
		if (n + pn > cap) {
			cap = (n + pn) * 2;
			core_chunkref *na = realloc(all, cap * sizeof(*na));
			if (!na) {
				free(pc);
				rc = sl_err_set(err, SL_ENOMEM, "out of memory");
				break;
			}
			all = na;
		}
		if (pn)
			memcpy(all + n, pc, pn * sizeof(*pc));
		n += pn;
		size += psize;
		free(pc);
		if (json_array_append_new(psizes, json_integer((json_int_t)psize)) != 0)
			rc = sl_err_set(err, SL_ENOMEM, "out of memory");
	}
	if (st)
		sqlite3_reset(st);
	if (rc == 0 && size > c->max_object)
		rc = sl_err_set(err, SL_ETOOLARGE, "object larger than the maximum");
	if (rc == 0) {
		uint8_t d[16];
		char et[72];
		MD5_Final(d, &md5);
		sl_hex(d, 16, et);
		snprintf(et + 32, 40, "-%zu", a->nparts);
		put_arg pa = { .bucket = a->b,
			       .key = a->k,
			       .chunks = all,
			       .n = n,
			       .size = size,
			       .etag = et,
			       .meta = meta,
			       .cond = a->cond,
			       .kind = "mpu",
			       .mpu_end = a->id,
			       .parts = psizes,
			       .out = a->out };
		core_txn sub = *t;
		sub.arg = &pa;
		rc = prep_put(c, w, &sub, err);
	}
	json_decref(psizes);
	free(all);
	free(meta);
	return rc;
}

int core_mpu_complete(core *c, const char *bucket, const char *key, const char *upload_id,
		      const core_part *parts, size_t nparts, uint64_t min_part_size,
		      const core_cond *cond, core_objinfo *out, sl_err *err)
{
	mpu_arg a = { .b = bucket,
		      .k = key,
		      .id = upload_id,
		      .parts = parts,
		      .nparts = nparts,
		      .min_part = min_part_size,
		      .cond = cond,
		      .out = out };
	return core_commit(c, prep_mpu_complete, &a, err);
}

static int prep_mpu_abort(core *c, meta_conn *w, core_txn *t, sl_err *err)
{
	mpu_arg *a = t->arg;
	int rc = upload_check(w, a->b, a->k, a->id, NULL, err);
	if (rc < 0)
		return rc;
	json_t *op = core_op_new(c, "mpu-end");
	json_object_set_new(op, "id", json_string(a->id));
	return core_txn_apply(c, w, t, op, err);
}

int core_mpu_abort(core *c, const char *bucket, const char *key, const char *upload_id, sl_err *err)
{
	mpu_arg a = { .b = bucket, .k = key, .id = upload_id };
	return core_commit(c, prep_mpu_abort, &a, err);
}

int core_mpu_list_parts(core *c, const char *bucket, const char *key, const char *upload_id,
			int part_marker, int max, core_part **out, size_t *n, int *truncated,
			sl_err *err)
{
	*out = NULL;
	*n = 0;
	*truncated = 0;
	if (max <= 0 || max > 1000)
		max = 1000;
	meta_conn *r = meta_reader(c->md);
	int rc = upload_check(r, bucket, key, upload_id, NULL, err);
	sqlite3_stmt *st = NULL;
	if (rc == 0) {
		st = meta_stmt(r,
			       "SELECT num, size, etag, mtime_ms FROM parts WHERE upload=?1 "
			       "AND num>?2 ORDER BY num LIMIT ?3",
			       err);
		if (!st)
			rc = err->code;
	}
	core_part *p = rc == 0 ? calloc((size_t)max + 1, sizeof(*p)) : NULL;
	if (rc == 0 && !p)
		rc = sl_err_set(err, SL_ENOMEM, "out of memory");
	if (rc == 0) {
		sqlite3_bind_text(st, 1, upload_id, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, part_marker);
		sqlite3_bind_int(st, 3, max + 1);
		size_t k = 0;
		while (sqlite3_step(st) == SQLITE_ROW) {
			if (k == (size_t)max) {
				*truncated = 1;
				break;
			}
			p[k].number = sqlite3_column_int(st, 0);
			p[k].size = (uint64_t)sqlite3_column_int64(st, 1);
			snprintf(p[k].etag, sizeof(p[k].etag), "%s", sqlite3_column_text(st, 2));
			p[k].mtime_ms = sqlite3_column_int64(st, 3);
			k++;
		}
		sqlite3_reset(st);
		*out = p;
		*n = k;
	}
	meta_reader_release(c->md, r);
	return rc;
}

int core_mpu_list(core *c, const char *bucket, const char *prefix, const char *key_marker,
		  const char *upload_id_marker, int max, core_upload **out, size_t *n,
		  int *truncated, sl_err *err)
{
	*out = NULL;
	*n = 0;
	*truncated = 0;
	if (max <= 0 || max > 1000)
		max = 1000;
	meta_conn *r = meta_reader(c->md);
	int vers;
	int rc = core_bucket_versioning(r, bucket, &vers, err);
	sqlite3_stmt *st = NULL;
	if (rc == 0) {
		st = meta_stmt(r,
			       "SELECT id, key, created_ms FROM uploads WHERE bucket=?1 "
			       "AND substr(key, 1, length(?2))=?2 AND (key>?3 OR (key=?3 AND "
			       "id>?4)) ORDER BY key, id LIMIT ?5",
			       err);
		if (!st)
			rc = err->code;
	}
	core_upload *u = rc == 0 ? calloc((size_t)max + 1, sizeof(*u)) : NULL;
	if (rc == 0 && !u)
		rc = sl_err_set(err, SL_ENOMEM, "out of memory");
	if (rc == 0) {
		sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, prefix ? prefix : "", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, key_marker ? key_marker : "", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, upload_id_marker ? upload_id_marker : "", -1,
				  SQLITE_STATIC);
		sqlite3_bind_int(st, 5, max + 1);
		size_t k = 0;
		while (sqlite3_step(st) == SQLITE_ROW) {
			if (k == (size_t)max) {
				*truncated = 1;
				break;
			}
			snprintf(u[k].upload_id, sizeof(u[k].upload_id), "%s",
				 sqlite3_column_text(st, 0));
			u[k].key = strdup((const char *)sqlite3_column_text(st, 1));
			u[k].created_ms = sqlite3_column_int64(st, 2);
			k++;
		}
		sqlite3_reset(st);
		*out = u;
		*n = k;
	}
	meta_reader_release(c->md, r);
	return rc;
}

void core_uploads_free(core_upload *u, size_t n)
{
	if (!u)
		return;
	for (size_t i = 0; i < n; i++)
		free(u[i].key);
	free(u);
}

/* ---- background chunk storing ------------------------------------------------------ */

struct core_chunk_job {
	core *c;
	void (*task)(void *); /* a core_task_run task: run, then freed */
	void *arg;
	const void *buf;
	uint32_t len;
	int cold; /* STORE_APPEND_COLD */
	core_chunkref ref;
	int rc;
	sl_err err;
	int done;
	struct core_chunk_job *next;
};

static void *job_worker(void *arg)
{
	core *c = arg;
	pthread_mutex_lock(&c->jmu);
	for (;;) {
		while (!c->jhead && !c->jstop)
			pthread_cond_wait(&c->jcv, &c->jmu);
		if (!c->jhead)
			break;
		core_chunk_job *j = c->jhead;
		c->jhead = j->next;
		if (!c->jhead)
			c->jtail = NULL;
		pthread_mutex_unlock(&c->jmu);
		if (j->task) {
			j->task(j->arg);
			free(j);
			pthread_mutex_lock(&c->jmu);
			continue;
		}
		sl_err_clear(&j->err);
		j->rc = chunk_put(c, j->buf, j->len, j->cold, &j->ref, &j->err);
		pthread_mutex_lock(&c->jmu);
		j->done = 1;
		pthread_cond_broadcast(&c->jcv);
	}
	pthread_mutex_unlock(&c->jmu);
	return NULL;
}

void core_jobs_start(core *c)
{
	pthread_mutex_init(&c->jmu, NULL);
	pthread_cond_init(&c->jcv, NULL);
	for (int i = 0; i < 2; i++)
		if (pthread_create(&c->jthreads[i], NULL, job_worker, c) == 0)
			c->njthreads++;
}

void core_jobs_stop(core *c)
{
	pthread_mutex_lock(&c->jmu);
	c->jstop = 1;
	pthread_cond_broadcast(&c->jcv);
	pthread_mutex_unlock(&c->jmu);
	for (int i = 0; i < c->njthreads; i++)
		pthread_join(c->jthreads[i], NULL);
	c->njthreads = 0;
	while (c->njbufs > 0)
		free(c->jbufs[--c->njbufs]);
	pthread_mutex_destroy(&c->jmu);
	pthread_cond_destroy(&c->jcv);
}

/* Appends j to the workers' queue and wakes them; caller holds jmu. */
static void job_enqueue_locked(core *c, core_chunk_job *j)
{
	if (c->jtail)
		c->jtail->next = j;
	else
		c->jhead = j;
	c->jtail = j;
	pthread_cond_broadcast(&c->jcv);
}

static core_chunk_job *chunk_put_async(core *c, const void *buf, uint32_t len, int cold)
{
	if (c->njthreads == 0)
		return NULL;
	core_chunk_job *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	pthread_mutex_lock(&c->jmu);
	if (c->jinflight >= CORE_ASYNC_MAX || c->jstop) {
		pthread_mutex_unlock(&c->jmu);
		free(j);
		return NULL;
	}
	c->jinflight++;
	j->c = c;
	j->buf = buf;
	j->len = len;
	j->cold = cold;
	job_enqueue_locked(c, j);
	pthread_mutex_unlock(&c->jmu);
	return j;
}

core_chunk_job *core_chunk_put_async(core *c, const void *buf, uint32_t len)
{
	return chunk_put_async(c, buf, len, 0);
}

core_chunk_job *core_chunk_put_async_cold(core *c, const void *buf, uint32_t len)
{
	return chunk_put_async(c, buf, len, 1);
}

/* A CORE_CHUNK_SIZE buffer, from the idle ones when there is one: reusing
 * them spares the page faults of fresh memory for every object. */
static void *core_chunkbuf_get(core *c)
{
	void *b = NULL;
	pthread_mutex_lock(&c->jmu);
	if (c->njbufs > 0)
		b = c->jbufs[--c->njbufs];
	pthread_mutex_unlock(&c->jmu);
	return b ? b : malloc(CORE_CHUNK_SIZE);
}

/* Gives a CORE_CHUNK_SIZE buffer back; at most CORE_ASYNC_MAX stay idle. */
static void core_chunkbuf_put(core *c, void *buf)
{
	if (!buf)
		return;
	pthread_mutex_lock(&c->jmu);
	if (c->njthreads > 0 && !c->jstop && c->njbufs < CORE_ASYNC_MAX) {
		c->jbufs[c->njbufs++] = buf;
		buf = NULL;
	}
	pthread_mutex_unlock(&c->jmu);
	free(buf);
}

/* Takes one of max slots counted by *n (under jmu); 1 if taken, 0 if none
 * is free or the workers are stopping. */
static int core_slot_take(core *c, int *n, int max)
{
	int got = 0;
	pthread_mutex_lock(&c->jmu);
	if (c->njthreads > 0 && *n < max && !c->jstop) {
		(*n)++;
		got = 1;
	}
	pthread_mutex_unlock(&c->jmu);
	return got;
}

static void core_slot_drop(core *c, int *n)
{
	pthread_mutex_lock(&c->jmu);
	(*n)--;
	pthread_mutex_unlock(&c->jmu);
}

/* The CORE_ASYNC_MAX read-ahead slots (a second chunk buffer for a reader;
 * kept apart from the store jobs' slots, so slow downloads never hold up
 * writers). */
static int core_slot_get(core *c)
{
	return core_slot_take(c, &c->jreadahead, CORE_ASYNC_MAX);
}

static void core_slot_put(core *c)
{
	core_slot_drop(c, &c->jreadahead);
}

/* The CORE_WSLOTS_MAX writer background slots. */
static int core_wslot_get(core *c)
{
	return core_slot_take(c, &c->jwslots, CORE_WSLOTS_MAX);
}

static void core_wslot_put(core *c)
{
	core_slot_drop(c, &c->jwslots);
}

/* Runs fn(arg) on a chunk worker, after the jobs queued before it; not
 * counted against CORE_ASYNC_MAX (tasks hold no buffers of their own).
 * Returns -1 when there is no worker. */
static int core_task_run(core *c, void (*fn)(void *), void *arg)
{
	if (c->njthreads == 0)
		return -1;
	core_chunk_job *j = calloc(1, sizeof(*j));
	if (!j)
		return -1;
	j->c = c;
	j->task = fn;
	j->arg = arg;
	pthread_mutex_lock(&c->jmu);
	if (c->jstop) {
		pthread_mutex_unlock(&c->jmu);
		free(j);
		return -1;
	}
	job_enqueue_locked(c, j);
	pthread_mutex_unlock(&c->jmu);
	return 0;
}

int core_chunk_job_wait(core_chunk_job *j, core_chunkref *ref, sl_err *err)
{
	core *c = j->c;
	pthread_mutex_lock(&c->jmu);
	while (!j->done)
		pthread_cond_wait(&c->jcv, &c->jmu);
	c->jinflight--;
	pthread_mutex_unlock(&c->jmu);
	int rc = j->rc;
	if (rc == 0 && ref)
		*ref = j->ref;
	if (rc < 0 && err)
		*err = j->err;
	free(j);
	return rc;
}
