/*
 * core.c - lifecycle of a lake (init, open with recovery, close), the group
 * commit queue, rebuild-index, the oplog feed and shared helpers.
 */
#include "core/core_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/md5.h>
#include <openssl/rand.h>

#define BATCH_MAX 256

/* ---- helpers --------------------------------------------------------------- */

void core_etag_of_chunks(const core_chunkref *ch, size_t n, char out[72])
{
	MD5_CTX m;
	uint8_t d[16];
	MD5_Init(&m);
	for (size_t i = 0; i < n; i++)
		MD5_Update(&m, ch[i].hash, 32);
	MD5_Final(d, &m);
	sl_hex(d, 16, out);
	snprintf(out + 32, 40, "-%zu", n);
}

void *core_chunks_blob(const core_chunkref *ch, size_t n, size_t *len)
{
	uint8_t *b = malloc(n * 36 + 1);
	if (!b)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		uint32_t l = ch[i].len;
		for (int k = 0; k < 4; k++)
			b[i * 36 + (size_t)k] = (uint8_t)(l >> (8 * k));
		memcpy(b + i * 36 + 4, ch[i].hash, 32);
	}
	*len = n * 36;
	return b;
}

int core_chunks_from_blob(const void *blob, size_t len, core_chunkref **out, size_t *n)
{
	if (len % 36)
		return SL_ECORRUPT;
	size_t cnt = len / 36;
	core_chunkref *ch = calloc(cnt ? cnt : 1, sizeof(*ch));
	if (!ch)
		return SL_ENOMEM;
	const uint8_t *b = blob;
	for (size_t i = 0; i < cnt; i++) {
		ch[i].len = (uint32_t)b[i * 36] | (uint32_t)b[i * 36 + 1] << 8 |
			    (uint32_t)b[i * 36 + 2] << 16 | (uint32_t)b[i * 36 + 3] << 24;
		memcpy(ch[i].hash, b + i * 36 + 4, 32);
	}
	*out = ch;
	*n = cnt;
	return 0;
}

static int is_hole(const core_chunkref *r)
{
	static const uint8_t zero[32];
	return memcmp(r->hash, zero, 32) == 0;
}

json_t *core_chunks_json(core *c, meta_conn *conn, const core_chunkref *ch, size_t n, sl_err *err)
{
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		if (is_hole(&ch[i])) {
			json_array_append_new(arr, json_pack("[nI]", (json_int_t)ch[i].len));
			continue;
		}
		sqlite3_stmt *st =
			meta_stmt(conn, "SELECT seg, off FROM chunks WHERE hash=?1", err);
		if (!st) {
			json_decref(arr);
			return NULL;
		}
		sqlite3_bind_blob(st, 1, ch[i].hash, 32, SQLITE_STATIC);
		char hx[65];
		sl_hex(ch[i].hash, 32, hx);
		int64_t seg, off;
		if (sqlite3_step(st) == SQLITE_ROW) {
			seg = sqlite3_column_int64(st, 0);
			off = sqlite3_column_int64(st, 1);
			sqlite3_reset(st);
		} else {
			store_loc loc;
			sqlite3_reset(st);
			if (core_pending_get(c, ch[i].hash, &loc) < 0) {
				json_decref(arr);
				sl_err_set(err, SL_ECORRUPT, "chunk %s is not stored", hx);
				return NULL;
			}
			seg = (int64_t)loc.seg;
			off = (int64_t)loc.off;
		}
		json_array_append_new(arr, json_pack("[sIII]", hx, (json_int_t)ch[i].len,
						     (json_int_t)seg, (json_int_t)off));
	}
	return arr;
}

int core_chunks_from_json(json_t *arr, core_chunkref **out, size_t *n)
{
	if (!json_is_array(arr))
		return SL_EINVAL;
	size_t cnt = json_array_size(arr);
	core_chunkref *ch = calloc(cnt ? cnt : 1, sizeof(*ch));
	if (!ch)
		return SL_ENOMEM;
	for (size_t i = 0; i < cnt; i++) {
		json_t *e = json_array_get(arr, i);
		json_t *h = json_array_get(e, 0), *l = json_array_get(e, 1);
		if (!json_is_integer(l) || json_integer_value(l) < 0 ||
		    json_integer_value(l) > CORE_CHUNK_SIZE ||
		    (!json_is_null(h) &&
		     (!json_is_string(h) || sl_unhex(json_string_value(h), ch[i].hash, 32) < 0))) {
			free(ch);
			return SL_EINVAL;
		}
		ch[i].len = (uint32_t)json_integer_value(l);
	}
	*out = ch;
	*n = cnt;
	return 0;
}

int core_key_check(const char *key, sl_err *err)
{
	size_t n = key ? strlen(key) : 0;
	if (n == 0)
		return sl_err_set(err, SL_EINVAL, "object key is empty");
	if (n > CORE_MAX_KEY)
		return sl_err_set(err, SL_EINVAL, "object key is longer than %d bytes",
				  CORE_MAX_KEY);
	return 0;
}

int core_meta_valid(const char *meta, sl_err *err)
{
	if (!meta)
		return 0;
	json_error_t je;
	json_t *j = json_loads(meta, 0, &je);
	if (!j || !json_is_object(j)) {
		json_decref(j);
		return sl_err_set(err, SL_EINVAL, "object metadata is not a JSON object");
	}
	const char *k;
	json_t *v;
	json_object_foreach(j, k, v)
	{
		if (!json_is_string(v)) {
			json_decref(j);
			return sl_err_set(err, SL_EINVAL, "metadata value of %s is not a string",
					  k);
		}
	}
	json_decref(j);
	return 0;
}

static const char *meta_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* A string token at p ('"' ... '"') with nothing to unescape and only
 * printable ASCII inside; its text is [*s, *s + *len). Returns the byte after
 * it, or NULL when it is not that plain case. */
static const char *meta_plainStr(const char *p, const char **s, size_t *len)
{
	if (*p != '"')
		return NULL;
	const char *q = ++p;
	while (*q != '"') {
		unsigned char ch = (unsigned char)*q;
		if (ch < 0x20 || ch >= 0x7f || ch == '\\')
			return NULL; /* end of text, a control byte, UTF-8 or an escape */
		q++;
	}
	*s = p;
	*len = (size_t)(q - p);
	return q + 1;
}

int core_meta_fields(const char *meta, const char *const *names, size_t n,
		     char (*out)[CORE_META_FIELD_MAX], unsigned *found)
{
	*found = 0;
	if (!meta)
		return 1;
	size_t nl[32];
	if (n > 32)
		n = 32;
	for (size_t i = 0; i < n; i++)
		nl[i] = strlen(names[i]);
	const char *p = meta_ws(meta);
	if (*p++ != '{')
		return 0;
	p = meta_ws(p);
	if (*p == '}')
		return *meta_ws(p + 1) == '\0';
	for (;;) {
		const char *k, *v;
		size_t kl, vl;
		if (!(p = meta_plainStr(p, &k, &kl)))
			return 0;
		p = meta_ws(p);
		if (*p++ != ':')
			return 0;
		if (!(p = meta_plainStr(meta_ws(p), &v, &vl)))
			return 0; /* not a plain string value */
		for (size_t i = 0; i < n; i++) {
			if (nl[i] != kl || memcmp(names[i], k, kl) != 0)
				continue;
			if (vl >= CORE_META_FIELD_MAX)
				return 0;
			memcpy(out[i], v, vl);
			out[i][vl] = '\0';
			*found |= 1u << i; /* a repeated name: the last one wins, as in jansson */
		}
		p = meta_ws(p);
		if (*p == '}')
			return *meta_ws(p + 1) == '\0';
		if (*p++ != ',')
			return 0;
		p = meta_ws(p);
	}
}

char *core_meta_get(const char *meta_json, const char *name)
{
	if (!meta_json)
		return NULL;
	char val[1][CORE_META_FIELD_MAX];
	unsigned found;
	if (core_meta_fields(meta_json, &name, 1, val, &found))
		return found ? strdup(val[0]) : NULL;
	json_t *j = json_loads(meta_json, 0, NULL);
	if (!j)
		return NULL;
	json_t *v = json_object_get(j, name);
	char *r = json_is_string(v) ? strdup(json_string_value(v)) : NULL;
	json_decref(j);
	return r;
}

void core_objinfo_clear(core_objinfo *oi)
{
	if (!oi)
		return;
	free(oi->bucket);
	free(oi->key);
	free(oi->version_id);
	free(oi->meta);
	memset(oi, 0, sizeof(*oi));
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return strdup(t ? (const char *)t : "");
}

int core_row_objinfo(sqlite3_stmt *st, int c0, core_objinfo *oi, core_chunkref **chunks,
		     size_t *nchunks)
{
	if (oi) {
		core_objinfo_clear(oi);
		oi->bucket = col_dup(st, c0 + 1);
		oi->key = col_dup(st, c0 + 2);
		oi->version_id = col_dup(st, c0 + 3);
		oi->hlc = (uint64_t)sqlite3_column_int64(st, c0 + 4);
		snprintf(oi->node, sizeof(oi->node), "%s",
			 (const char *)sqlite3_column_text(st, c0 + 5));
		oi->delete_marker = sqlite3_column_int(st, c0 + 6);
		oi->size = (uint64_t)sqlite3_column_int64(st, c0 + 7);
		snprintf(oi->etag, sizeof(oi->etag), "%s",
			 (const char *)sqlite3_column_text(st, c0 + 8));
		oi->mtime_ms = sqlite3_column_int64(st, c0 + 9);
		oi->meta = col_dup(st, c0 + 10);
		oi->state = sqlite3_column_int(st, c0 + 11);
		if (!oi->bucket || !oi->key || !oi->version_id || !oi->meta)
			return SL_ENOMEM;
	}
	if (chunks) {
		const void *b = sqlite3_column_blob(st, c0 + 12);
		int len = sqlite3_column_bytes(st, c0 + 12);
		return core_chunks_from_blob(b, (size_t)len, chunks, nchunks);
	}
	return 0;
}

int64_t core_find_version(meta_conn *conn, const char *bucket, const char *key, const char *vid,
			  core_objinfo *oi, core_chunkref **chunks, size_t *nchunks, sl_err *err)
{
	sqlite3_stmt *st;
	if (vid && *vid) {
		st = meta_stmt(conn,
			       "SELECT " CORE_VCOLS " FROM versions v WHERE v.bucket=?1 "
			       "AND v.key=?2 AND v.vid=?3",
			       err);
		if (!st)
			return err->code;
		sqlite3_bind_text(st, 3, vid, -1, SQLITE_STATIC);
	} else {
		st = meta_stmt(conn,
			       "SELECT " CORE_VCOLS " FROM versions v WHERE v.bucket=?1 "
			       "AND v.key=?2 AND v.state IN (0,3) ORDER BY v.hlc DESC, "
			       "v.node DESC LIMIT 1",
			       err);
		if (!st)
			return err->code;
	}
	sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	if (r == SQLITE_DONE) {
		sqlite3_reset(st);
		if (vid && *vid)
			return sl_err_set(err, SL_ENOVERSION, "no version %s of %s/%s", vid, bucket,
					  key);
		return sl_err_set(err, SL_ENOKEY, "no such key %s/%s", bucket, key);
	}
	if (r != SQLITE_ROW) {
		int rc = meta_fail(conn, "find version", err);
		sqlite3_reset(st);
		return rc;
	}
	int64_t id = sqlite3_column_int64(st, 0);
	int rc = core_row_objinfo(st, 0, oi, chunks, nchunks);
	sqlite3_reset(st);
	if (rc < 0)
		return sl_err_set(err, rc, "bad version row of %s/%s", bucket, key);
	return id;
}

int core_bucket_versioning(meta_conn *conn, const char *bucket, int *vers, sl_err *err)
{
	sqlite3_stmt *st = meta_stmt(conn, "SELECT versioning FROM buckets WHERE name=?1", err);
	if (!st)
		return err->code;
	sqlite3_bind_text(st, 1, bucket, -1, SQLITE_STATIC);
	int r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		*vers = sqlite3_column_int(st, 0);
		sqlite3_reset(st);
		return 0;
	}
	sqlite3_reset(st);
	if (r == SQLITE_DONE)
		return sl_err_set(err, SL_ENOBUCKET, "no such bucket %s", bucket);
	return meta_fail(conn, "read bucket", err);
}

json_t *core_op_new(core *c, const char *op)
{
	uint64_t h = hlc_tick(&c->hlc, -1);
	return json_pack("{sssIss}", "op", op, "hlc", (json_int_t)h, "node", c->node);
}

/* ---- lock, init, open ----------------------------------------------------- */

static int path_join(char *out, size_t n, const char *dir, const char *name)
{
	int w = snprintf(out, n, "%s/%s", dir, name);
	return (w < 0 || (size_t)w >= n) ? -1 : 0;
}

static int read_node_id(const char *dir, char node[17], sl_err *err)
{
	char p[4096];
	path_join(p, sizeof(p), dir, "node_id");
	FILE *f = fopen(p, "r");
	if (!f)
		return sl_err_set(err, SL_EINVAL,
				  "%s is not a seglake data dir (no node_id: run "
				  "'seglake init %s')",
				  dir, dir);
	char buf[64] = "";
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return sl_err_set(err, SL_ECORRUPT, "%s is empty", p);
	}
	fclose(f);
	buf[strcspn(buf, "\r\n")] = '\0';
	uint8_t tmp[8];
	if (sl_unhex(buf, tmp, 8) < 0)
		return sl_err_set(err, SL_ECORRUPT, "%s does not hold a node id", p);
	memcpy(node, buf, 17);
	return 0;
}

int core_init(const char *dir, sl_err *err)
{
	char p[4096];
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return sl_err_set(err, sl_code_from_errno(errno), "mkdir %s: %s", dir,
				  strerror(errno));
	if (path_join(p, sizeof(p), dir, "node_id") < 0)
		return sl_err_set(err, SL_EINVAL, "path too long");
	if (access(p, F_OK) == 0)
		return sl_err_set(err, SL_EEXIST, "%s already holds a seglake data dir", dir);
	uint8_t raw[8];
	char hex[17];
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return sl_err_set(err, SL_EINTERNAL, "no randomness for the node id");
	sl_hex(raw, 8, hex);
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp", p);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return sl_err_set(err, sl_code_from_errno(errno), "create %s: %s", tmp,
				  strerror(errno));
	char line[32];
	int n = snprintf(line, sizeof(line), "%s\n", hex);
	if (write(fd, line, (size_t)n) != n || fsync(fd) < 0) {
		int e = errno;
		close(fd);
		unlink(tmp);
		return sl_err_set(err, sl_code_from_errno(e), "write %s: %s", tmp, strerror(e));
	}
	close(fd);
	if (rename(tmp, p) < 0)
		return sl_err_set(err, sl_code_from_errno(errno), "rename %s: %s", p,
				  strerror(errno));
	core *c = NULL;
	int rc = core_open(dir, NULL, &c, err);
	core_close(c);
	return rc;
}

static int take_lock(core *c, sl_err *err)
{
	char p[4096];
	path_join(p, sizeof(p), c->dir, "lock");
	int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return sl_err_set(err, sl_code_from_errno(errno), "open %s: %s", p,
				  strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		char buf[32] = "";
		ssize_t r = pread(fd, buf, sizeof(buf) - 1, 0);
		close(fd);
		if (r > 0)
			buf[strcspn(buf, "\r\n")] = '\0';
		return sl_err_set(err, SL_ELOCKED,
				  "data dir %s is in use by a running seglake (pid %s); stop it "
				  "first or use its S3 endpoint",
				  c->dir, r > 0 ? buf : "?");
	}
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
		/* the pid is informational; the lock is what matters */
	}
	c->lockfd = fd;
	return 0;
}

/*
 * Roll-forward and rebuild. Every journal record carries jseq, the commit
 * sequence of this node; meta.db remembers the last jseq it holds. Replay
 * collects the records found from a segment position, drops cancelled ones,
 * sorts them by jseq and applies those above the remembered jseq, so records
 * that GC moved to a later segment are neither lost nor applied twice.
 * Rebuild also indexes every chunk record it finds (where chunks really are
 * now, whatever the ops say).
 */
typedef struct jrec {
	int64_t jseq;
	store_loc loc;
} jrec;

typedef struct replay {
	core *c;
	int rebuild;
	store_loc *aborted;
	size_t naborted, capaborted;
	jrec *recs;
	size_t nrecs, caprecs;
	uint64_t chunks;
	unsigned batch;
	int in_txn;
	store_pos end;
	sl_err *err;
} replay;

static int replay_begin(replay *rp)
{
	if (rp->in_txn)
		return 0;
	int rc = meta_exec(meta_writer(rp->c->md), "BEGIN IMMEDIATE", rp->err);
	if (rc == 0)
		rp->in_txn = 1;
	return rc;
}

static int replay_commit(replay *rp, int64_t jseq)
{
	meta_conn *w = meta_writer(rp->c->md);
	if (!rp->in_txn)
		return 0;
	int rc = 0;
	if (jseq > 0)
		rc = meta_state_set_int(w, "jseq", jseq, rp->err);
	if (rc == 0)
		rc = meta_state_set_int(w, "hlc", (int64_t)rp->c->hlc.last, rp->err);
	if (rc == 0)
		rc = meta_exec(w, "COMMIT", rp->err);
	if (rc < 0)
		meta_exec(w, "ROLLBACK", NULL);
	rp->in_txn = 0;
	rp->batch = 0;
	return rc;
}

/* Pass 1: index chunks (rebuild), collect journal records and cancellations. */
static int collect_fn(void *ctx, int type, const uint8_t *hash, const uint8_t *payload,
		      store_loc loc, store_pos end)
{
	replay *rp = ctx;
	int rc = 0;
	rp->end = end;
	if (type == SEG_REC_CHUNK) {
		if (!rp->rebuild)
			return 0;
		if ((rc = replay_begin(rp)) < 0)
			return rc;
		meta_conn *w = meta_writer(rp->c->md);
		sqlite3_stmt *st = meta_stmt(w,
					     "INSERT OR IGNORE INTO chunks(hash, seg, off, len) "
					     "VALUES(?1,?2,?3,?4)",
					     rp->err);
		if (!st)
			return rp->err->code;
		sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (int64_t)loc.seg);
		sqlite3_bind_int64(st, 3, (int64_t)loc.off);
		sqlite3_bind_int64(st, 4, loc.len);
		if ((rc = meta_done(w, st, rp->err)) < 0)
			return rc;
		rp->chunks++;
		if (++rp->batch >= 5000)
			rc = replay_commit(rp, 0);
		return rc;
	}
	json_t *j = json_loads((const char *)payload, 0, NULL);
	json_t *a = json_object_get(j, "abort");
	json_t *q = json_object_get(j, "jseq");
	if (json_is_array(a)) {
		if (rp->naborted == rp->capaborted) {
			rp->capaborted = rp->capaborted ? rp->capaborted * 2 : 16;
			store_loc *p = realloc(rp->aborted, rp->capaborted * sizeof(*p));
			if (!p)
				rc = sl_err_set(rp->err, SL_ENOMEM, "out of memory");
			else
				rp->aborted = p;
		}
		if (rc == 0)
			rp->aborted[rp->naborted++] =
				(store_loc){ (uint64_t)json_integer_value(json_array_get(a, 0)),
					     (uint64_t)json_integer_value(json_array_get(a, 1)),
					     0 };
	} else if (json_is_integer(q)) {
		if (rp->nrecs == rp->caprecs) {
			rp->caprecs = rp->caprecs ? rp->caprecs * 2 : 256;
			jrec *p = realloc(rp->recs, rp->caprecs * sizeof(*p));
			if (!p)
				rc = sl_err_set(rp->err, SL_ENOMEM, "out of memory");
			else
				rp->recs = p;
		}
		if (rc == 0)
			rp->recs[rp->nrecs++] = (jrec){ json_integer_value(q), loc };
	}
	json_decref(j);
	return rc;
}

static int jrec_cmp(const void *x, const void *y)
{
	const jrec *a = x, *b = y;
	if (a->jseq != b->jseq)
		return a->jseq < b->jseq ? -1 : 1;
	if (a->loc.seg != b->loc.seg)
		return a->loc.seg < b->loc.seg ? -1 : 1;
	return a->loc.off < b->loc.off ? -1 : a->loc.off > b->loc.off;
}

static int apply_record(replay *rp, const jrec *r, const char *text)
{
	meta_conn *w = meta_writer(rp->c->md);
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	json_t *ops = json_object_get(j, "ops");
	size_t i;
	json_t *op;
	json_array_foreach(ops, i, op)
	{
		json_t *h = json_object_get(op, "hlc");
		if (json_is_integer(h))
			hlc_observe_trusted(&rp->c->hlc, (uint64_t)json_integer_value(h));
		meta_exec(w, "SAVEPOINT op", NULL);
		sl_err e2;
		int rc = core_apply(rp->c, w, op, &e2);
		if (rc < 0)
			meta_exec(w, "ROLLBACK TO op", NULL);
		meta_exec(w, "RELEASE op", NULL);
		if (rc < 0) /* skipped the same way on every replay; say so */
			fprintf(stderr,
				"seglake: replay: skipped op %zu of journal record %" PRId64
				" (segment %" PRIu64 " offset %" PRIu64 "): %s\n",
				i, r->jseq, r->loc.seg, r->loc.off, e2.msg);
	}
	json_decref(j);
	return 0;
}

static int do_replay(core *c, store_pos from, int rebuild, sl_err *err)
{
	replay rp = { .c = c, .rebuild = rebuild, .err = err, .end = from };
	sl_err e2;
	meta_conn *w = meta_writer(c->md);
	int64_t have = 0;
	meta_state_get_int(w, "jseq", &have, NULL);
	int rc = store_scan(c->st, from, collect_fn, &rp, &e2);
	if (rc == SL_ECORRUPT) {
		fprintf(stderr,
			"seglake: replay: %s (records after it in that segment were "
			"skipped)\n",
			e2.msg);
		rc = 0;
	} else if (rc < 0 && err && err->code == 0) {
		*err = e2;
	}
	if (rc == 0)
		rc = replay_commit(&rp, 0);
	if (rp.nrecs)
		qsort(rp.recs, rp.nrecs, sizeof(*rp.recs), jrec_cmp);
	uint64_t applied = 0;
	char *buf = NULL;
	size_t cap = 0;
	int64_t last = have;
	for (size_t i = 0; i < rp.nrecs && rc == 0; i++) {
		jrec *r = &rp.recs[i];
		int cancelled = 0;
		for (size_t k = 0; k < rp.naborted && !cancelled; k++)
			cancelled = rp.aborted[k].seg == r->loc.seg &&
				    rp.aborted[k].off == r->loc.off;
		if (cancelled || r->jseq <= last)
			continue; /* cancelled, already in the index, or a duplicate copy */
		if (cap < r->loc.len + 1) {
			free(buf);
			cap = r->loc.len + 1;
			buf = malloc(cap);
			if (!buf) {
				rc = sl_err_set(err, SL_ENOMEM, "out of memory");
				break;
			}
		}
		if ((rc = store_read(c->st, r->loc.seg, r->loc.off, buf, r->loc.len, err)) < 0)
			break;
		buf[r->loc.len] = '\0';
		if ((rc = replay_begin(&rp)) < 0)
			break;
		apply_record(&rp, r, buf);
		applied++;
		last = r->jseq;
		if (++rp.batch >= 500)
			rc = replay_commit(&rp, last);
	}
	free(buf);
	if (rc == 0 && replay_begin(&rp) == 0) {
		/* remember where the scan ended, so the next open starts there */
		meta_state_set_int(w, "jseg", (int64_t)rp.end.seg, NULL);
		meta_state_set_int(w, "joff", (int64_t)rp.end.off, NULL);
		rc = replay_commit(&rp, last);
	} else if (rp.in_txn) {
		meta_exec(w, "ROLLBACK", NULL);
	}
	c->jseq = last;
	if (rc == 0 && applied && !rebuild)
		fprintf(stderr,
			"seglake: recovery: rolled forward %" PRIu64 " committed "
			"journal record(s)\n",
			applied);
	free(rp.aborted);
	free(rp.recs);
	return rc;
}

static int open_parts(core *c, const core_opts *opts, const char *meta_path, sl_err *err)
{
	int rc = meta_open(meta_path, 8, &c->md, err);
	if (rc < 0)
		return rc;
	meta_conn *w = meta_writer(c->md);
	int64_t jseg = 0, joff = 0, h = 0;
	meta_state_get_int(w, "jseg", &jseg, NULL);
	meta_state_get_int(w, "joff", &joff, NULL);
	meta_state_get_int(w, "hlc", &h, NULL);
	hlc_init(&c->hlc, (uint64_t)h);
	char segdir[4096];
	path_join(segdir, sizeof(segdir), c->dir, "segments");
	store_opts so = { .io = opts ? opts->io : NULL,
			  .segment_max_bytes = opts ? opts->segment_max_bytes : 0,
			  .segment_idle_sec = opts ? opts->segment_idle_sec : 0,
			  .node = c->node };
	store_pos vf = { (uint64_t)jseg, (uint64_t)joff };
	if ((rc = store_open(segdir, &so, vf, &c->st, err)) < 0)
		return rc;
	return 0;
}

static int oplog_head_load(core *c, sl_err *err)
{
	meta_conn *w = meta_writer(c->md);
	sqlite3_stmt *dm = meta_stmt(w, "SELECT COUNT(*) FROM damaged", err);
	if (dm && sqlite3_step(dm) == SQLITE_ROW)
		c->ndamaged = sqlite3_column_int(dm, 0);
	if (dm)
		sqlite3_reset(dm);
	int64_t h = core_oplog_head_db(w);
	if (h < 0)
		return sl_err_set(err, SL_EIO, "cannot read the oplog head");
	c->oplog_head = h;
	return 0;
}

int64_t core_oplog_head_db(meta_conn *w)
{
	/* the AUTOINCREMENT sequence survives trimming, MAX(seq) would not */
	sqlite3_stmt *st = meta_stmt(w,
				     "SELECT max(COALESCE((SELECT MAX(seq) FROM oplog), 0), "
				     "COALESCE((SELECT seq FROM sqlite_sequence WHERE "
				     "name='oplog'), 0))",
				     NULL);
	int64_t h = -1;
	if (st && sqlite3_step(st) == SQLITE_ROW)
		h = sqlite3_column_int64(st, 0);
	if (st)
		sqlite3_reset(st);
	return h;
}

static core *core_alloc(const char *dir, const core_opts *opts)
{
	core *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->dir = strdup(dir);
	c->lockfd = -1;
	c->max_object = (opts && opts->max_object_size) ? opts->max_object_size : 5ull << 30;
	pthread_mutex_init(&c->qmu, NULL);
	pthread_cond_init(&c->qcv, NULL);
	pthread_mutex_init(&c->omu, NULL);
	pthread_cond_init(&c->ocv, NULL);
	pthread_mutex_init(&c->pmu, NULL);
	pthread_mutex_init(&c->gcmu, NULL);
	return c;
}

int core_open(const char *dir, const core_opts *opts, core **out, sl_err *err)
{
	*out = NULL;
	core *c = core_alloc(dir, opts);
	if (!c || !c->dir) {
		free(c);
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	}
	int rc = read_node_id(dir, c->node, err);
	if (rc == 0)
		rc = take_lock(c, err);
	char mp[4096];
	path_join(mp, sizeof(mp), dir, "meta.db");
	if (rc == 0)
		rc = open_parts(c, opts, mp, err);
	if (rc == 0) {
		int64_t jseg = 0, joff = 0;
		meta_state_get_int(meta_writer(c->md), "jseg", &jseg, NULL);
		meta_state_get_int(meta_writer(c->md), "joff", &joff, NULL);
		rc = do_replay(c, (store_pos){ (uint64_t)jseg, (uint64_t)joff }, 0, err);
	}
	if (rc == 0)
		rc = oplog_head_load(c, err);
	if (rc < 0) {
		core_close(c);
		return rc;
	}
	core_jobs_start(c);
	*out = c;
	return 0;
}

int core_rebuild_index(const char *dir, sl_err *err)
{
	core *c = core_alloc(dir, NULL);
	if (!c)
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	int rc = read_node_id(dir, c->node, err);
	if (rc == 0)
		rc = take_lock(c, err);
	char mp[4096], tmp[4200];
	path_join(mp, sizeof(mp), dir, "meta.db");
	snprintf(tmp, sizeof(tmp), "%s.rebuild", mp);
	if (rc == 0) {
		unlink(tmp);
		char w[4300];
		snprintf(w, sizeof(w), "%s-wal", tmp);
		unlink(w);
		snprintf(w, sizeof(w), "%s-shm", tmp);
		unlink(w);
		rc = open_parts(c, NULL, tmp, err);
	}
	if (rc == 0)
		rc = do_replay(c, (store_pos){ 0, 0 }, 1, err);
	if (rc == 0) {
		meta_close(c->md);
		c->md = NULL;
		/* swap in atomically; keep the old index aside for inspection */
		char old[4300];
		snprintf(old, sizeof(old), "%s.old", mp);
		if (access(mp, F_OK) == 0 && rename(mp, old) < 0)
			rc = sl_err_set(err, SL_EIO, "rename %s: %s", mp, strerror(errno));
		else {
			char wal[4300];
			snprintf(wal, sizeof(wal), "%s-wal", mp);
			unlink(wal);
			snprintf(wal, sizeof(wal), "%s-shm", mp);
			unlink(wal);
			if (rename(tmp, mp) < 0)
				rc = sl_err_set(err, SL_EIO, "rename %s: %s", tmp, strerror(errno));
		}
	}
	core_close(c);
	return rc;
}

void core_close(core *c)
{
	if (!c)
		return;
	core_wake(c);
	if (c->njthreads)
		core_jobs_stop(c);
	store_close(c->st);
	meta_close(c->md);
	if (c->lockfd >= 0)
		close(c->lockfd);
	pthread_mutex_destroy(&c->qmu);
	pthread_cond_destroy(&c->qcv);
	pthread_mutex_destroy(&c->omu);
	pthread_cond_destroy(&c->ocv);
	core_pending_free(c);
	pthread_mutex_destroy(&c->pmu);
	pthread_mutex_destroy(&c->gcmu);
	free(c->dir);
	free(c);
}

void core_tick(core *c)
{
	store_tick(c->st);
}

const char *core_node_id(const core *c)
{
	return c->node;
}

const char *core_dir(const core *c)
{
	return c->dir;
}

/* ---- group commit ----------------------------------------------------------- */

static void fail_batch(core_txn *first, core_txn *last, const sl_err *e)
{
	for (core_txn *t = first;; t = t->next) {
		if (t->rc == 0) {
			t->rc = e->code;
			t->err = *e;
		}
		if (t == last)
			break;
	}
}

static void run_batch(core *c, core_txn *first, core_txn *last)
{
	meta_conn *w = meta_writer(c->md);
	sl_err e;
	sl_err_clear(&e);
	int64_t head_before = c->pending_head = c->oplog_head;
	if (meta_exec(w, "BEGIN IMMEDIATE", &e) < 0) {
		fail_batch(first, last, &e);
		return;
	}
	json_t *all = json_array();
	for (core_txn *t = first;; t = t->next) {
		t->ops = json_array();
		sl_err_clear(&t->err);
		if (meta_exec(w, "SAVEPOINT t", &t->err) == 0) {
			t->rc = t->prepare(c, w, t, &t->err);
			if (t->rc < 0) {
				meta_exec(w, "ROLLBACK TO t", NULL);
				json_decref(t->ops);
				t->ops = NULL;
			}
			meta_exec(w, "RELEASE t", NULL);
		} else {
			t->rc = t->err.code;
		}
		if (t->rc == 0)
			json_array_extend(all, t->ops);
		if (t == last)
			break;
	}
	if (json_array_size(all) == 0) {
		meta_exec(w, "COMMIT", NULL);
		json_decref(all);
		c->pending_head = head_before;
		return;
	}
	int64_t jseq = ++c->jseq; /* never reused, even if this batch fails */
	json_t *rec = json_pack("{sIso}", "jseq", (json_int_t)jseq, "ops", all);
	char *text = json_dumps(rec, JSON_COMPACT);
	store_loc loc;
	store_pos end;
	int rc = text ? store_append(c->st, SEG_REC_JOURNAL, NULL, text, (uint32_t)strlen(text),
				     &loc, &end, &e)
		      : sl_err_set(&e, SL_ENOMEM, "out of memory");
	free(text);
	if (rc == 0)
		rc = store_sync(c->st, &e);
	if (rc == 0)
		rc = meta_state_set_int(w, "jseg", (int64_t)end.seg, &e);
	if (rc == 0)
		rc = meta_state_set_int(w, "joff", (int64_t)end.off, &e);
	if (rc == 0)
		rc = meta_state_set_int(w, "hlc", (int64_t)c->hlc.last, &e);
	if (rc == 0)
		rc = meta_state_set_int(w, "jseq", jseq, &e);
	if (rc == 0) {
		rc = meta_exec(w, "COMMIT", &e);
		if (rc < 0) {
			/* the journal record is durable but the index refused it: cancel
			 * it so a roll-forward does not make it visible later */
			char ab[96];
			snprintf(ab, sizeof(ab), "{\"abort\":[%" PRIu64 ",%" PRIu64 "]}", loc.seg,
				 loc.off);
			if (store_append(c->st, SEG_REC_JOURNAL, NULL, ab, (uint32_t)strlen(ab),
					 NULL, NULL, NULL) == 0)
				store_sync(c->st, NULL);
		}
	}
	if (rc < 0) {
		meta_exec(w, "ROLLBACK", NULL);
		fail_batch(first, last, &e);
		c->pending_head = head_before;
		json_decref(rec);
		return;
	}
	core_pending_drop_ops(c, json_object_get(rec, "ops"));
	json_decref(rec);
	if (c->pending_head > head_before) {
		pthread_mutex_lock(&c->omu);
		c->oplog_head = c->pending_head;
		pthread_cond_broadcast(&c->ocv);
		pthread_mutex_unlock(&c->omu);
	}
}

int core_commit(core *c, core_prepare_fn fn, void *arg, sl_err *err)
{
	if (__atomic_load_n(&c->maint, __ATOMIC_SEQ_CST))
		return sl_err_set(err, SL_EMAINT,
				  "the lake is in maintenance mode: writes are refused, reads "
				  "work");
	return core_commit_internal(c, fn, arg, err);
}

int core_commit_internal(core *c, core_prepare_fn fn, void *arg, sl_err *err)
{
	core_txn t = { .prepare = fn, .arg = arg };
	pthread_mutex_lock(&c->qmu);
	if (c->qtail)
		c->qtail->next = &t;
	else
		c->qhead = &t;
	c->qtail = &t;
	while (!t.done && c->qhead != &t)
		pthread_cond_wait(&c->qcv, &c->qmu);
	if (!t.done) {
		/* leader: take everything queued so far */
		core_txn *last = &t;
		int n = 1;
		while (last->next && n < BATCH_MAX) {
			last = last->next;
			n++;
		}
		pthread_mutex_unlock(&c->qmu);
		run_batch(c, &t, last);
		pthread_mutex_lock(&c->qmu);
		core_txn *nx = last->next;
		for (core_txn *p = &t;;) {
			core_txn *q = p->next;
			if (p->ops) {
				json_decref(p->ops);
				p->ops = NULL;
			}
			p->done = 1;
			if (p == last)
				break;
			p = q;
		}
		c->qhead = nx;
		if (!nx)
			c->qtail = NULL;
		pthread_cond_broadcast(&c->qcv);
	}
	pthread_mutex_unlock(&c->qmu);
	if (t.rc < 0 && err)
		*err = t.err;
	return t.rc;
}

int core_txn_apply(core *c, meta_conn *w, core_txn *t, json_t *op, sl_err *err)
{
	int rc = core_apply(c, w, op, err);
	if (rc == 0 && t)
		json_array_append(t->ops, op);
	json_decref(op);
	return rc;
}

/* ---- oplog feed ------------------------------------------------------------- */

int core_oplog_read(core *c, int64_t after, int max, core_oplog_entry **out, size_t *n, sl_err *err)
{
	*out = NULL;
	*n = 0;
	if (max <= 0)
		max = 1000;
	meta_conn *r = meta_reader(c->md);
	sqlite3_stmt *st = meta_stmt(r,
				     "SELECT seq, hlc, node, kind, bucket, key, vid, body "
				     "FROM oplog WHERE seq > ?1 ORDER BY seq LIMIT ?2",
				     err);
	if (!st) {
		meta_reader_release(c->md, r);
		return err->code;
	}
	sqlite3_bind_int64(st, 1, after);
	sqlite3_bind_int(st, 2, max);
	core_oplog_entry *e = calloc((size_t)max, sizeof(*e));
	size_t k = 0;
	int rc = 0;
	while (e && sqlite3_step(st) == SQLITE_ROW) {
		e[k].seq = sqlite3_column_int64(st, 0);
		e[k].hlc = (uint64_t)sqlite3_column_int64(st, 1);
		snprintf(e[k].node, sizeof(e[k].node), "%s", sqlite3_column_text(st, 2));
		snprintf(e[k].kind, sizeof(e[k].kind), "%s", sqlite3_column_text(st, 3));
		e[k].bucket = sqlite3_column_type(st, 4) == SQLITE_NULL ? NULL : col_dup(st, 4);
		e[k].key = sqlite3_column_type(st, 5) == SQLITE_NULL ? NULL : col_dup(st, 5);
		e[k].version_id = sqlite3_column_type(st, 6) == SQLITE_NULL ? NULL : col_dup(st, 6);
		e[k].body = col_dup(st, 7);
		k++;
	}
	sqlite3_reset(st);
	meta_reader_release(c->md, r);
	if (!e)
		rc = sl_err_set(err, SL_ENOMEM, "out of memory");
	*out = e;
	*n = k;
	return rc;
}

void core_oplog_free(core_oplog_entry *e, size_t n)
{
	if (!e)
		return;
	for (size_t i = 0; i < n; i++) {
		free(e[i].bucket);
		free(e[i].key);
		free(e[i].version_id);
		free(e[i].body);
	}
	free(e);
}

int64_t core_oplog_head(core *c)
{
	pthread_mutex_lock(&c->omu);
	int64_t h = c->oplog_head;
	pthread_mutex_unlock(&c->omu);
	return h;
}

int64_t core_oplog_wait(core *c, int64_t after, int timeout_ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&c->omu);
	unsigned gen = c->wake_gen;
	while (c->oplog_head <= after && gen == c->wake_gen)
		if (pthread_cond_timedwait(&c->ocv, &c->omu, &ts) == ETIMEDOUT)
			break;
	int64_t h = c->oplog_head;
	pthread_mutex_unlock(&c->omu);
	return h;
}

void core_wake(core *c)
{
	pthread_mutex_lock(&c->omu);
	c->wake_gen++;
	pthread_cond_broadcast(&c->ocv);
	pthread_mutex_unlock(&c->omu);
}

int core_stats_get(core *c, core_stats *out, sl_err *err)
{
	memset(out, 0, sizeof(*out));
	meta_conn *r = meta_reader(c->md);
	static const char *q = "SELECT (SELECT COUNT(*) FROM buckets), (SELECT COUNT(*) FROM "
			       "current),"
			       " (SELECT COUNT(*) FROM versions),"
			       " (SELECT COALESCE(SUM(v.size),0) FROM current cu JOIN versions v "
			       "ON v.id=cu.vrow),"
			       " (SELECT COUNT(*) FROM chunks), (SELECT COALESCE(SUM(len),0) FROM "
			       "chunks)";
	sqlite3_stmt *st = meta_stmt(r, q, err);
	int rc = 0;
	if (!st)
		rc = err->code;
	else if (sqlite3_step(st) == SQLITE_ROW) {
		out->buckets = (uint64_t)sqlite3_column_int64(st, 0);
		out->objects = (uint64_t)sqlite3_column_int64(st, 1);
		out->versions = (uint64_t)sqlite3_column_int64(st, 2);
		out->bytes_logical = (uint64_t)sqlite3_column_int64(st, 3);
		out->chunks = (uint64_t)sqlite3_column_int64(st, 4);
		out->bytes_stored = (uint64_t)sqlite3_column_int64(st, 5);
		sqlite3_reset(st);
	} else {
		rc = meta_fail(r, "stats", err);
		sqlite3_reset(st);
	}
	meta_reader_release(c->md, r);
	store_stats ss;
	store_stats_get(c->st, &ss);
	out->segments = ss.segments;
	out->segment_bytes = ss.bytes;
	out->oplog_head = core_oplog_head(c);
	return rc;
}
