/*
 * maint.c - whole-lake operations: fsck, scrub, gc, mpu-gc, snapshot,
 * restore, maintenance mode (see maint.h).
 *
 * GC safety: a chunk is dropped only if no version, part, uncommitted write
 * or untrimmed oplog entry names it. The live set is computed first; then,
 * per segment, live chunks and every journal record are copied forward, and
 * the index switch happens in a commit (serialised with every other commit)
 * that first re-checks everything committed since the live set was taken.
 * Readers that resolved a location in a segment GC then deletes re-resolve
 * once (core_chunk_read).
 */
#include "core/maint.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "core/core_internal.h"

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void throttle(uint64_t rate, uint64_t bytes, int64_t start_ms)
{
	if (!rate)
		return;
	int64_t want_ms = (int64_t)(bytes * 1000 / rate);
	int64_t el = now_ms() - start_ms;
	if (want_ms > el)
		usleep((useconds_t)((want_ms - el) * 1000));
}

static int progress(core_progress_fn fn, void *ctx, const char *phase, uint64_t done,
		    uint64_t total)
{
	return fn ? fn(ctx, phase, done, total) : 0;
}

/* ---- maintenance mode ------------------------------------------------------------- */

void core_set_maintenance(core *c, int on)
{
	__atomic_store_n(&c->maint, on ? 1 : 0, __ATOMIC_SEQ_CST);
}

int core_maintenance(core *c)
{
	return __atomic_load_n(&c->maint, __ATOMIC_SEQ_CST);
}

/* ---- damaged chunks ----------------------------------------------------------------- */

int core_chunk_damaged(core *c, const uint8_t hash[32])
{
	if (__atomic_load_n(&c->ndamaged, __ATOMIC_RELAXED) == 0)
		return 0;
	meta_conn *r = meta_reader(c->md);
	sqlite3_stmt *st = meta_stmt(r, "SELECT 1 FROM damaged WHERE hash=?1", NULL);
	int d = 0;
	if (st) {
		sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
		d = sqlite3_step(st) == SQLITE_ROW;
		sqlite3_reset(st);
	}
	meta_reader_release(c->md, r);
	return d;
}

typedef struct mark_arg {
	const uint8_t *hash;
} mark_arg;

static int prep_mark_damaged(core *c, meta_conn *w, core_txn *t, sl_err *err)
{
	(void)c;
	mark_arg *a = t->arg;
	sqlite3_stmt *st = meta_stmt(w,
				     "INSERT OR IGNORE INTO damaged(hash, found_ms) "
				     "VALUES(?1, ?2)",
				     err);
	if (!st)
		return err->code;
	sqlite3_bind_blob(st, 1, a->hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms());
	return meta_done(w, st, err);
}

/* ---- helpers over every chunk reference ---------------------------------------------- */

typedef int (*ref_fn)(void *ctx, const char *bucket, const char *key, uint64_t size,
		      const core_chunkref *ch, size_t n);

/* Calls fn for every version (not tombstones) and every multipart part. */
static int each_ref(meta_conn *r, int64_t min_id, ref_fn fn, void *ctx, sl_err *err)
{
	sqlite3_stmt *st = meta_stmt(r,
				     "SELECT bucket, key, size, chunks FROM versions "
				     "WHERE id>?1 AND state!=3",
				     err);
	if (!st)
		return err->code;
	sqlite3_bind_int64(st, 1, min_id);
	int rc = 0;
	while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
		core_chunkref *ch = NULL;
		size_t n = 0;
		if (core_chunks_from_blob(sqlite3_column_blob(st, 3),
					  (size_t)sqlite3_column_bytes(st, 3), &ch, &n) < 0) {
			rc = sl_err_set(err, SL_ECORRUPT, "bad chunk list in versions");
			break;
		}
		rc = fn(ctx, (const char *)sqlite3_column_text(st, 0),
			(const char *)sqlite3_column_text(st, 1),
			(uint64_t)sqlite3_column_int64(st, 2), ch, n);
		free(ch);
	}
	sqlite3_reset(st);
	if (rc)
		return rc;
	st = meta_stmt(r,
		       "SELECT p.upload, u.key, p.size, p.chunks FROM parts p "
		       "LEFT JOIN uploads u ON u.id=p.upload",
		       err);
	if (!st)
		return err->code;
	while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
		core_chunkref *ch = NULL;
		size_t n = 0;
		if (core_chunks_from_blob(sqlite3_column_blob(st, 3),
					  (size_t)sqlite3_column_bytes(st, 3), &ch, &n) < 0) {
			rc = sl_err_set(err, SL_ECORRUPT, "bad chunk list in parts");
			break;
		}
		rc = fn(ctx, "(upload)", (const char *)sqlite3_column_text(st, 0),
			(uint64_t)sqlite3_column_int64(st, 2), ch, n);
		free(ch);
	}
	sqlite3_reset(st);
	return rc;
}

static int is_hole(const core_chunkref *r)
{
	static const uint8_t zero[32];
	return memcmp(r->hash, zero, 32) == 0;
}

/* ---- fsck ---------------------------------------------------------------------------- */

typedef struct fsck_ctx {
	core *c;
	meta_conn *r;
	core_fsck_report *rep;
	sl_err *err;
	core_progress_fn fn;
	void *pctx;
	uint64_t done, total;
	int stop;
} fsck_ctx;

static void problem(core_fsck_report *rep, const char *fmt, const char *a, const char *b)
{
	if (!rep->first_problem[0])
		snprintf(rep->first_problem, sizeof(rep->first_problem), fmt, a, b);
}

static int fsck_ref(void *ctx, const char *bucket, const char *key, uint64_t size,
		    const core_chunkref *ch, size_t n)
{
	fsck_ctx *f = ctx;
	uint64_t sum = 0;
	int damaged = 0;
	sqlite3_stmt *ins =
		meta_stmt(f->r, "INSERT OR IGNORE INTO temp.fsck_ref(hash) VALUES(?1)", f->err);
	sqlite3_stmt *has = meta_stmt(f->r, "SELECT 1 FROM chunks WHERE hash=?1", f->err);
	if (!ins || !has)
		return f->err->code;
	for (size_t i = 0; i < n; i++) {
		sum += ch[i].len;
		if (is_hole(&ch[i]))
			continue;
		f->rep->chunk_refs++;
		sqlite3_reset(has);
		sqlite3_bind_blob(has, 1, ch[i].hash, 32, SQLITE_STATIC);
		if (sqlite3_step(has) != SQLITE_ROW) {
			f->rep->missing_chunks++;
			damaged = 1;
			problem(f->rep, "%s/%s references a chunk that is not stored", bucket, key);
		}
		sqlite3_reset(has);
		sqlite3_reset(ins);
		sqlite3_bind_blob(ins, 1, ch[i].hash, 32, SQLITE_STATIC);
		sqlite3_step(ins);
		sqlite3_reset(ins);
	}
	if (sum != size) {
		f->rep->size_mismatches++;
		damaged = 1;
		problem(f->rep, "%s/%s: size differs from its chunk list", bucket, key);
	}
	f->rep->versions++;
	f->rep->damaged_versions += (uint64_t)damaged;
	if ((++f->done & 1023) == 0 && progress(f->fn, f->pctx, "references", f->done, f->total))
		return 1;
	return 0;
}

int core_fsck(core *c, core_fsck_report *rep, core_progress_fn fn, void *ctx, sl_err *err)
{
	memset(rep, 0, sizeof(*rep));
	uint64_t *ids = NULL, *sizes = NULL, open_id;
	size_t nseg;
	int rc = store_segments(c->st, &ids, &sizes, &nseg, &open_id, err);
	if (rc < 0)
		return rc;
	rep->segments = nseg;
	meta_conn *r = meta_reader(c->md);
	fsck_ctx f = { .c = c, .r = r, .rep = rep, .err = err, .fn = fn, .pctx = ctx };
	rc = meta_exec(r,
		       "CREATE TEMP TABLE IF NOT EXISTS fsck_ref(hash BLOB PRIMARY KEY) "
		       "WITHOUT ROWID; DELETE FROM temp.fsck_ref;",
		       err);
	sqlite3_stmt *st = NULL;
	if (rc == 0 && (st = meta_stmt(r, "SELECT COUNT(*) FROM versions", err))) {
		if (sqlite3_step(st) == SQLITE_ROW)
			f.total = (uint64_t)sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
	}
	if (rc == 0)
		rc = each_ref(r, 0, fsck_ref, &f, err);
	if (rc > 0)
		rc = 0; /* stopped */
	/* every indexed chunk: its record is where the index says */
	if (rc == 0)
		st = meta_stmt(r,
			       "SELECT hash, seg, off, len, hash IN (SELECT hash FROM "
			       "temp.fsck_ref) FROM chunks ORDER BY seg, off",
			       err);
	uint64_t k = 0;
	while (rc == 0 && st && sqlite3_step(st) == SQLITE_ROW) {
		const uint8_t *h = sqlite3_column_blob(st, 0);
		uint64_t seg = (uint64_t)sqlite3_column_int64(st, 1);
		uint64_t off = (uint64_t)sqlite3_column_int64(st, 2);
		uint64_t len = (uint64_t)sqlite3_column_int64(st, 3);
		int referenced = sqlite3_column_int(st, 4);
		rep->chunks++;
		if (!referenced) {
			rep->orphan_chunks++;
			rep->orphan_bytes += len;
		}
		size_t i;
		for (i = 0; i < nseg && ids[i] != seg; i++)
			;
		char hx[65];
		sl_hex(h, 32, hx);
		if (i == nseg) {
			rep->missing_segments++;
			problem(rep, "chunk %s is indexed in segment %s, which does not exist", hx,
				"");
			continue;
		}
		uint8_t head[SEG_REC_HEADER + 32];
		seg_rec rec;
		if (off < sizeof(head) || off + len > sizes[i] ||
		    store_read(c->st, seg, off - sizeof(head), head, sizeof(head), NULL) < 0 ||
		    seg_rec_decode(head, SEG_REC_HEADER, &rec) < 0 || rec.type != SEG_REC_CHUNK ||
		    rec.payload_len != len + 32 || memcmp(head + SEG_REC_HEADER, h, 32) != 0) {
			rep->bad_locations++;
			problem(rep, "chunk %s: no matching record where the index points%s", hx,
				"");
		}
		if ((++k & 4095) == 0 && progress(fn, ctx, "chunks", k, 0))
			break;
	}
	if (st)
		sqlite3_reset(st);
	meta_exec(r, "DROP TABLE IF EXISTS temp.fsck_ref", NULL);
	meta_reader_release(c->md, r);
	free(ids);
	free(sizes);
	return rc;
}

/* ---- scrub ----------------------------------------------------------------------------- */

typedef struct dmg_ctx {
	meta_conn *r;
	core_scrub_report *rep;
	sl_err *err;
} dmg_ctx;

static int dmg_ref(void *ctx, const char *bucket, const char *key, uint64_t size,
		   const core_chunkref *ch, size_t n)
{
	(void)size;
	dmg_ctx *d = ctx;
	sqlite3_stmt *st = meta_stmt(d->r, "SELECT 1 FROM damaged WHERE hash=?1", d->err);
	if (!st)
		return d->err->code;
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_blob(st, 1, ch[i].hash, 32, SQLITE_STATIC);
		int hit = sqlite3_step(st) == SQLITE_ROW;
		sqlite3_reset(st);
		if (hit) {
			d->rep->damaged_versions++;
			if (!d->rep->first_damaged[0])
				snprintf(d->rep->first_damaged, sizeof(d->rep->first_damaged),
					 "%s/%s", bucket, key);
			break;
		}
	}
	return 0;
}

int core_scrub(core *c, uint64_t rate, core_scrub_report *rep, core_progress_fn fn, void *ctx,
	       sl_err *err)
{
	memset(rep, 0, sizeof(*rep));
	meta_conn *r = meta_reader(c->md);
	uint64_t total = 0;
	sqlite3_stmt *st = meta_stmt(r, "SELECT COALESCE(SUM(len),0) FROM chunks", err);
	if (st && sqlite3_step(st) == SQLITE_ROW)
		total = (uint64_t)sqlite3_column_int64(st, 0);
	if (st)
		sqlite3_reset(st);
	meta_reader_release(c->md, r);
	uint8_t *buf = malloc(CORE_CHUNK_SIZE);
	if (!buf)
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	int64_t start = now_ms();
	int rc = 0;
	/* walk the index in pages (by hash) so no read transaction stays open */
	uint8_t last[32] = { 0 };
	int first = 1;
	for (;;) {
		typedef struct ent {
			uint8_t hash[32];
			uint64_t seg, off;
			uint32_t len;
		} ent;
		ent page[256];
		int np = 0;
		r = meta_reader(c->md);
		st = meta_stmt(r,
			       "SELECT hash, seg, off, len FROM chunks WHERE ?1 OR hash>?2 "
			       "ORDER BY hash LIMIT 256",
			       err);
		if (!st) {
			meta_reader_release(c->md, r);
			rc = err->code;
			break;
		}
		sqlite3_bind_int(st, 1, first);
		sqlite3_bind_blob(st, 2, last, 32, SQLITE_STATIC);
		while (np < 256 && sqlite3_step(st) == SQLITE_ROW) {
			memcpy(page[np].hash, sqlite3_column_blob(st, 0), 32);
			page[np].seg = (uint64_t)sqlite3_column_int64(st, 1);
			page[np].off = (uint64_t)sqlite3_column_int64(st, 2);
			page[np].len = (uint32_t)sqlite3_column_int64(st, 3);
			np++;
		}
		sqlite3_reset(st);
		meta_reader_release(c->md, r);
		if (np == 0)
			break;
		first = 0;
		memcpy(last, page[np - 1].hash, 32);
		for (int i = 0; i < np; i++) {
			uint8_t h[32];
			int bad = page[i].len > CORE_CHUNK_SIZE ||
				  store_read(c->st, page[i].seg, page[i].off, buf, page[i].len,
					     NULL) < 0;
			if (!bad) {
				SHA256(buf, page[i].len, h);
				bad = memcmp(h, page[i].hash, 32) != 0;
			}
			if (bad) {
				/* recheck: GC may have moved it since we read the index */
				store_loc loc;
				meta_conn *r2 = meta_reader(c->md);
				int still = core_chunk_loc(c, r2, page[i].hash, &loc, NULL) == 0 &&
					    loc.seg == page[i].seg && loc.off == page[i].off;
				meta_reader_release(c->md, r2);
				if (still) {
					mark_arg a = { page[i].hash };
					sl_err e2;
					if (core_commit(c, prep_mark_damaged, &a, &e2) == 0)
						__atomic_add_fetch(&c->ndamaged, 1,
								   __ATOMIC_RELAXED);
					rep->damaged++;
				}
			}
			rep->chunks++;
			rep->bytes += page[i].len;
			throttle(rate, rep->bytes, start);
		}
		if (progress(fn, ctx, "scrub", rep->bytes, total)) {
			rep->stopped = 1;
			break;
		}
	}
	free(buf);
	if (rc == 0 && rep->damaged) {
		r = meta_reader(c->md);
		dmg_ctx d = { r, rep, err };
		rc = each_ref(r, 0, dmg_ref, &d, err);
		meta_reader_release(c->md, r);
	}
	return rc < 0 ? rc : 0;
}

/* ---- gc ------------------------------------------------------------------------------------ */

typedef struct live_ctx {
	meta_conn *r;
	sqlite3_stmt *ins;
	sl_err *err;
} live_ctx;

static int live_add(live_ctx *l, const uint8_t *hash)
{
	sqlite3_reset(l->ins);
	sqlite3_bind_blob(l->ins, 1, hash, 32, SQLITE_STATIC);
	int r = sqlite3_step(l->ins);
	sqlite3_reset(l->ins);
	return r == SQLITE_DONE ? 0 : meta_fail(l->r, "gc live set", l->err);
}

static int live_ref(void *ctx, const char *bucket, const char *key, uint64_t size,
		    const core_chunkref *ch, size_t n)
{
	(void)bucket;
	(void)key;
	(void)size;
	live_ctx *l = ctx;
	for (size_t i = 0; i < n; i++)
		if (!is_hole(&ch[i]) && live_add(l, ch[i].hash) < 0)
			return l->err->code;
	return 0;
}

/* Adds chunks named by untrimmed oplog entries (replication may still ship them). */
static int live_oplog(live_ctx *l, int64_t after)
{
	sqlite3_stmt *st = meta_stmt(l->r,
				     "SELECT body FROM oplog WHERE seq>?1 AND "
				     "instr(body, '\"chunks\":[[')>0",
				     l->err);
	if (!st)
		return l->err->code;
	sqlite3_bind_int64(st, 1, after);
	int rc = 0;
	while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
		json_t *op = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
		size_t j;
		json_t *e;
		json_array_foreach(json_object_get(op, "chunks"), j, e)
		{
			uint8_t h[32];
			json_t *hx = json_array_get(e, 0);
			if (json_is_string(hx) && sl_unhex(json_string_value(hx), h, 32) == 0 &&
			    (rc = live_add(l, h)) < 0)
				break;
		}
		json_decref(op);
	}
	sqlite3_reset(st);
	return rc;
}

static int live_pending(core *c, live_ctx *l)
{
	int rc = 0;
	pthread_mutex_lock(&c->pmu);
	for (size_t i = 0; c->pending && i < 4096 && rc == 0; i++)
		for (struct core_pending *p = c->pending[i]; p && rc == 0; p = p->next)
			rc = live_add(l, p->hash);
	pthread_mutex_unlock(&c->pmu);
	return rc;
}

typedef struct moved {
	uint8_t hash[32];
	store_loc loc;
} moved;

typedef struct gc_seg_arg {
	uint64_t seg;
	int64_t since_id;
	moved *mv;
	size_t nmv;
	int busy; /* something new references a chunk we did not copy */
} gc_seg_arg;

typedef struct recheck_ctx {
	core *c;
	meta_conn *w;
	gc_seg_arg *a;
	sl_err *err;
} recheck_ctx;

/* Is hash (a chunk in the segment being dropped) copied forward? */
static int copied(gc_seg_arg *a, const uint8_t *hash)
{
	for (size_t i = 0; i < a->nmv; i++)
		if (memcmp(a->mv[i].hash, hash, 32) == 0)
			return 1;
	return 0;
}

static int in_seg(meta_conn *w, const uint8_t *hash, uint64_t seg)
{
	sqlite3_stmt *st = meta_stmt(w, "SELECT seg FROM chunks WHERE hash=?1", NULL);
	if (!st)
		return 1;
	sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
	int r = sqlite3_step(st) == SQLITE_ROW && (uint64_t)sqlite3_column_int64(st, 0) == seg;
	sqlite3_reset(st);
	return r;
}

static int recheck_ref(void *ctx, const char *bucket, const char *key, uint64_t size,
		       const core_chunkref *ch, size_t n)
{
	(void)bucket;
	(void)key;
	(void)size;
	recheck_ctx *r = ctx;
	for (size_t i = 0; i < n && !r->a->busy; i++)
		if (!is_hole(&ch[i]) && in_seg(r->w, ch[i].hash, r->a->seg) &&
		    !copied(r->a, ch[i].hash))
			r->a->busy = 1;
	return 0;
}

static int prep_gc_seg(core *c, meta_conn *w, core_txn *t, sl_err *err)
{
	gc_seg_arg *a = t->arg;
	recheck_ctx rc_ctx = { c, w, a, err };
	/* versions committed since the live set was taken, all parts, and
	 * uncommitted writes must not lose a chunk of this segment */
	int rc = each_ref(w, a->since_id, recheck_ref, &rc_ctx, err);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&c->pmu);
	for (size_t i = 0; c->pending && i < 4096 && !a->busy; i++)
		for (struct core_pending *p = c->pending[i]; p && !a->busy; p = p->next)
			if (p->loc.seg == a->seg && !copied(a, p->hash))
				a->busy = 1;
	pthread_mutex_unlock(&c->pmu);
	if (a->busy)
		return 0;
	sqlite3_stmt *st = meta_stmt(w, "UPDATE chunks SET seg=?2, off=?3 WHERE hash=?1", err);
	if (!st)
		return err->code;
	for (size_t i = 0; i < a->nmv; i++) {
		sqlite3_reset(st);
		sqlite3_bind_blob(st, 1, a->mv[i].hash, 32, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (int64_t)a->mv[i].loc.seg);
		sqlite3_bind_int64(st, 3, (int64_t)a->mv[i].loc.off);
		if ((rc = meta_done(w, st, err)) < 0)
			return rc;
	}
	st = meta_stmt(w, "DELETE FROM chunks WHERE seg=?1", err);
	if (!st)
		return err->code;
	sqlite3_bind_int64(st, 1, (int64_t)a->seg);
	return meta_done(w, st, err);
}

typedef struct copy_ctx {
	core *c;
	meta_conn *r; /* holds temp.gc_live */
	uint64_t seg;
	moved *mv;
	size_t nmv, cap;
	uint8_t *buf;
	uint64_t rate, copied;
	int64_t start;
	core_gc_report *rep;
	sl_err *err;
} copy_ctx;

static int copy_fn(void *ctx, int type, const uint8_t *hash, const uint8_t *payload, store_loc loc,
		   store_pos end)
{
	(void)end;
	copy_ctx *x = ctx;
	if (loc.seg != x->seg)
		return 1; /* past the segment: stop */
	if (type == SEG_REC_JOURNAL) {
		/* the journal is the history rebuild-index replays: keep every record */
		return store_append(x->c->st, SEG_REC_JOURNAL, NULL, payload, loc.len, NULL, NULL,
				    x->err);
	}
	sqlite3_stmt *st = meta_stmt(x->r,
				     "SELECT 1 FROM temp.gc_live l JOIN chunks c ON "
				     "c.hash=l.hash WHERE l.hash=?1 AND c.seg=?2 AND c.off=?3",
				     x->err);
	if (!st)
		return x->err->code;
	sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)loc.seg);
	sqlite3_bind_int64(st, 3, (int64_t)loc.off);
	int live = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_reset(st);
	if (!live)
		return 0;
	int rc = store_read(x->c->st, loc.seg, loc.off, x->buf, loc.len, x->err);
	uint8_t h[32];
	if (rc == 0) {
		SHA256(x->buf, loc.len, h);
		if (memcmp(h, hash, 32) != 0)
			return sl_err_set(x->err, SL_ECORRUPT,
					  "gc: a live chunk in segment %" PRIu64 " is damaged; run "
					  "scrub",
					  loc.seg);
	}
	store_loc nl;
	if (rc == 0)
		rc = store_append(x->c->st, SEG_REC_CHUNK, hash, x->buf, loc.len, &nl, NULL,
				  x->err);
	if (rc < 0)
		return rc;
	if (x->nmv == x->cap) {
		x->cap = x->cap ? x->cap * 2 : 256;
		moved *p = realloc(x->mv, x->cap * sizeof(*p));
		if (!p)
			return sl_err_set(x->err, SL_ENOMEM, "out of memory");
		x->mv = p;
	}
	memcpy(x->mv[x->nmv].hash, hash, 32);
	x->mv[x->nmv++].loc = nl;
	x->copied += loc.len;
	x->rep->moved_chunks++;
	x->rep->moved_bytes += loc.len;
	throttle(x->rate, x->copied, x->start);
	return 0;
}

int core_gc(core *c, int dry_run, double min_dead_ratio, uint64_t rate, int64_t keep_after,
	    core_gc_report *rep, core_progress_fn fn, void *ctx, sl_err *err)
{
	memset(rep, 0, sizeof(*rep));
	pthread_mutex_lock(&c->gcmu);
	uint64_t *ids = NULL, *sizes = NULL, open_id;
	size_t nseg = 0;
	int rc = store_segments(c->st, &ids, &sizes, &nseg, &open_id, err);
	meta_conn *r = meta_reader(c->md);
	int64_t since_id = 0;
	sqlite3_stmt *st = NULL;
	if (rc == 0 && (st = meta_stmt(r, "SELECT COALESCE(MAX(id),0) FROM versions", err))) {
		if (sqlite3_step(st) == SQLITE_ROW)
			since_id = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
	}
	if (rc == 0)
		rc = meta_exec(r,
			       "CREATE TEMP TABLE IF NOT EXISTS gc_live(hash BLOB PRIMARY KEY) "
			       "WITHOUT ROWID; DELETE FROM temp.gc_live;",
			       err);
	live_ctx l = { r, NULL, err };
	if (rc == 0 && !(l.ins = meta_stmt(r,
					   "INSERT OR IGNORE INTO temp.gc_live(hash) "
					   "VALUES(?1)",
					   err)))
		rc = err->code;
	if (rc == 0)
		rc = each_ref(r, 0, live_ref, &l, err);
	if (rc == 0)
		rc = live_oplog(&l, keep_after);
	if (rc == 0)
		rc = live_pending(c, &l);
	/* live and dead chunk bytes per segment */
	uint64_t *live = calloc(nseg + 1, sizeof(*live)), *dead = calloc(nseg + 1, sizeof(*dead));
	if (rc == 0 && (!live || !dead))
		rc = sl_err_set(err, SL_ENOMEM, "out of memory");
	if (rc == 0 && !(st = meta_stmt(r,
					"SELECT c.seg, c.len, c.hash IN (SELECT hash FROM "
					"temp.gc_live) FROM chunks c",
					err)))
		rc = err->code;
	while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
		uint64_t seg = (uint64_t)sqlite3_column_int64(st, 0);
		uint64_t len = (uint64_t)sqlite3_column_int64(st, 1);
		size_t i;
		for (i = 0; i < nseg && ids[i] != seg; i++)
			;
		if (i == nseg)
			continue;
		if (sqlite3_column_int(st, 2)) {
			live[i] += len;
			rep->live_bytes += len;
		}
	}
	if (st)
		sqlite3_reset(st);
	rep->segments = nseg;
	for (size_t i = 0; i < nseg; i++) {
		rep->segment_bytes += sizes[i];
		/* everything that is not a live chunk (dead chunks, chunk records
		 * the index never knew, records of aborted writes) is reclaimable;
		 * journal records are small and are copied forward */
		dead[i] = sizes[i] > live[i] ? sizes[i] - live[i] : 0;
		rep->dead_bytes += dead[i];
	}
	uint8_t *buf = malloc(CORE_CHUNK_SIZE);
	if (rc == 0 && !buf)
		rc = sl_err_set(err, SL_ENOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < nseg; i++) {
		if (ids[i] == open_id || sizes[i] <= SEG_HEADER_SIZE + 256)
			continue;
		double ratio = sizes[i] ? (double)dead[i] / (double)sizes[i] : 0;
		if (ratio < min_dead_ratio || dead[i] == 0)
			continue;
		rep->reclaim_segments++;
		rep->reclaim_bytes += dead[i];
		if (dry_run)
			continue;
		if (progress(fn, ctx, "gc", rep->deleted_segments, rep->reclaim_segments)) {
			rep->stopped = 1;
			break;
		}
		copy_ctx x = { .c = c,
			       .r = r,
			       .seg = ids[i],
			       .buf = buf,
			       .rate = rate,
			       .start = now_ms(),
			       .rep = rep,
			       .err = err };
		rc = store_scan(c->st, (store_pos){ ids[i], 0 }, copy_fn, &x, err);
		if (rc == 1 || rc == 0)
			rc = store_sync(c->st, err);
		gc_seg_arg a = { .seg = ids[i], .since_id = since_id, .mv = x.mv, .nmv = x.nmv };
		if (rc == 0)
			rc = core_commit_internal(c, prep_gc_seg, &a, err);
		free(x.mv);
		if (rc == 0 && !a.busy) {
			/* readers that resolved a location here just before the switch
			 * re-resolve on failure; give in-flight reads a moment anyway */
			usleep(200 * 1000);
			if (store_remove(c->st, ids[i], err) == 0)
				rep->deleted_segments++;
		}
	}
	free(buf);
	free(live);
	free(dead);
	meta_exec(r, "DROP TABLE IF EXISTS temp.gc_live", NULL);
	meta_reader_release(c->md, r);
	free(ids);
	free(sizes);
	pthread_mutex_unlock(&c->gcmu);
	return rc;
}

/* ---- multipart gc -----------------------------------------------------------------------------
 */

int core_mpu_gc(core *c, int64_t older_than_ms, uint64_t *aborted, sl_err *err)
{
	*aborted = 0;
	int64_t cutoff = now_ms() - older_than_ms;
	for (;;) {
		char id[40] = "", bucket[64] = "", *key = NULL;
		meta_conn *r = meta_reader(c->md);
		sqlite3_stmt *st = meta_stmt(r,
					     "SELECT id, bucket, key FROM uploads WHERE "
					     "created_ms<?1 LIMIT 1",
					     err);
		if (!st) {
			meta_reader_release(c->md, r);
			return err->code;
		}
		sqlite3_bind_int64(st, 1, cutoff);
		if (sqlite3_step(st) == SQLITE_ROW) {
			snprintf(id, sizeof(id), "%s", sqlite3_column_text(st, 0));
			snprintf(bucket, sizeof(bucket), "%s", sqlite3_column_text(st, 1));
			key = strdup((const char *)sqlite3_column_text(st, 2));
		}
		sqlite3_reset(st);
		meta_reader_release(c->md, r);
		if (!key)
			return 0;
		int rc = core_mpu_abort(c, bucket, key, id, err);
		free(key);
		if (rc < 0 && rc != SL_ENOUPLOAD)
			return rc;
		(*aborted)++;
	}
}

/* ---- snapshot and restore
 * ------------------------------------------------------------------------ */

static int copy_file(const char *from, const char *to, sl_err *err)
{
	int in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return sl_err_set(err, SL_EIO, "open %s: %s", from, strerror(errno));
	int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		close(in);
		return sl_err_set(err, sl_code_from_errno(errno), "create %s: %s", to,
				  strerror(errno));
	}
	char *buf = malloc(1 << 20);
	int rc = buf ? 0 : sl_err_set(err, SL_ENOMEM, "out of memory");
	ssize_t n;
	while (rc == 0 && (n = read(in, buf, 1 << 20)) > 0)
		if (write(out, buf, (size_t)n) != n)
			rc = sl_err_set(err, sl_code_from_errno(errno), "write %s: %s", to,
					strerror(errno));
	if (rc == 0 && fsync(out) < 0)
		rc = sl_err_set(err, SL_EIO, "fsync %s: %s", to, strerror(errno));
	free(buf);
	close(in);
	close(out);
	return rc;
}

/* Hard link, or copy across filesystems. */
static int link_or_copy(const char *from, const char *to, sl_err *err)
{
	if (link(from, to) == 0)
		return 0;
	if (errno != EXDEV && errno != EPERM && errno != EMLINK)
		return sl_err_set(err, sl_code_from_errno(errno), "link %s: %s", to,
				  strerror(errno));
	return copy_file(from, to, err);
}

static int backup_db(sqlite3 *src, const char *path, sl_err *err)
{
	sqlite3 *dst = NULL;
	if (sqlite3_open_v2(path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		sqlite3_close(dst);
		return sl_err_set(err, SL_EIO, "create %s", path);
	}
	sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
	int r = b ? sqlite3_backup_step(b, -1) : SQLITE_ERROR;
	if (b)
		sqlite3_backup_finish(b);
	int rc = r == SQLITE_DONE
			 ? 0
			 : sl_err_set(err, SL_EIO, "backup of meta.db: %s", sqlite3_errmsg(dst));
	sqlite3_close(dst);
	return rc;
}

int core_snapshot(core *c, const char *dest, core_progress_fn fn, void *ctx, sl_err *err)
{
	if (mkdir(dest, 0700) < 0)
		return sl_err_set(err, sl_code_from_errno(errno), "mkdir %s: %s", dest,
				  strerror(errno));
	char p[4300], q[4400];
	snprintf(p, sizeof(p), "%s/segments", dest);
	if (mkdir(p, 0700) < 0)
		return sl_err_set(err, SL_EIO, "mkdir %s: %s", p, strerror(errno));
	pthread_mutex_lock(&c->gcmu); /* gc must not delete a segment under us */
	/* 1. the index, consistent as of one moment */
	meta_conn *r = meta_reader(c->md);
	snprintf(p, sizeof(p), "%s/meta.db", dest);
	int rc = backup_db(meta_db(r), p, err);
	meta_reader_release(c->md, r);
	/* 2. seal, so every record the index refers to is in a sealed segment */
	if (rc == 0)
		rc = store_seal(c->st, err);
	uint64_t *ids = NULL, *sizes = NULL, open_id;
	size_t n = 0;
	if (rc == 0)
		rc = store_segments(c->st, &ids, &sizes, &n, &open_id, err);
	FILE *list = NULL;
	if (rc == 0) {
		snprintf(p, sizeof(p), "%s/SNAPSHOT", dest);
		list = fopen(p, "w");
		if (!list)
			rc = sl_err_set(err, SL_EIO, "create %s: %s", p, strerror(errno));
	}
	if (list)
		fprintf(list, "seglake snapshot\nnode %s\ncreated_ms %" PRId64 "\n", c->node,
			now_ms());
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (ids[i] == open_id)
			continue; /* opened after the seal: holds nothing the index knows */
		store_segment_path(c->st, ids[i], p, sizeof(p));
		snprintf(q, sizeof(q), "%s/segments/%s", dest, strrchr(p, '/') + 1);
		rc = link_or_copy(p, q, err);
		fprintf(list, "segment %s %" PRIu64 "\n", strrchr(p, '/') + 1, sizes[i]);
		if (progress(fn, ctx, "snapshot", i + 1, n))
			rc = sl_err_set(err, SL_EINVAL, "snapshot interrupted");
	}
	pthread_mutex_unlock(&c->gcmu);
	if (list && fclose(list) != 0 && rc == 0)
		rc = sl_err_set(err, SL_EIO, "write SNAPSHOT");
	snprintf(p, sizeof(p), "%s/node_id", c->dir);
	snprintf(q, sizeof(q), "%s/node_id", dest);
	if (rc == 0)
		rc = copy_file(p, q, err);
	free(ids);
	free(sizes);
	return rc;
}

int core_restore(const char *snap, const char *dest, sl_err *err)
{
	char p[4300], q[4400];
	snprintf(p, sizeof(p), "%s/SNAPSHOT", snap);
	if (access(p, R_OK) < 0)
		return sl_err_set(err, SL_EINVAL, "%s is not a seglake snapshot (no SNAPSHOT file)",
				  snap);
	if (mkdir(dest, 0700) < 0)
		return sl_err_set(err, sl_code_from_errno(errno), "mkdir %s: %s", dest,
				  strerror(errno));
	snprintf(q, sizeof(q), "%s/segments", dest);
	if (mkdir(q, 0700) < 0)
		return sl_err_set(err, SL_EIO, "mkdir %s: %s", q, strerror(errno));
	const char *files[] = { "meta.db", "node_id" };
	int rc = 0;
	for (int i = 0; i < 2 && rc == 0; i++) {
		snprintf(p, sizeof(p), "%s/%s", snap, files[i]);
		snprintf(q, sizeof(q), "%s/%s", dest, files[i]);
		rc = copy_file(p, q, err);
	}
	FILE *list = NULL;
	if (rc == 0) {
		snprintf(p, sizeof(p), "%s/SNAPSHOT", snap);
		list = fopen(p, "r");
	}
	char line[512];
	while (rc == 0 && list && fgets(line, sizeof(line), list)) {
		char name[256];
		if (sscanf(line, "segment %255s", name) != 1)
			continue;
		if (strchr(name, '/') || strncmp(name, "seg-", 4) != 0) {
			rc = sl_err_set(err, SL_EINVAL, "bad segment name in SNAPSHOT: %s", name);
			break;
		}
		snprintf(p, sizeof(p), "%s/segments/%s", snap, name);
		snprintf(q, sizeof(q), "%s/segments/%s", dest, name);
		rc = copy_file(p, q, err);
	}
	if (list)
		fclose(list);
	if (rc == 0) {
		core *c = NULL;
		rc = core_open(dest, NULL, &c, err); /* recovery checks what we restored */
		core_close(c);
	}
	return rc;
}
