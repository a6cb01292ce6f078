/*
 * test_repl.c - replication semantics of the core, with three lakes in one
 * process and an in-memory transport (read the source oplog after the
 * destination's watermark, ship the missing chunks, apply). Checks
 * convergence, last-writer-wins with the loser kept as a conflict, tombstones
 * against late older writes, idempotence, rings, bucket delete against a
 * concurrent write, and clock skew absorbed by the HLC.
 */
#include <inttypes.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "core/core.h"

static char *root;
static core *A, *B, *Cc;

static core *mk(const char *name)
{
	char d[4200];
	snprintf(d, sizeof(d), "%s/%s", root, name);
	core *c = NULL;
	CHECK_OK(core_init(d, NULL));
	CHECK_OK(core_open(d, NULL, &c, NULL));
	return c;
}

/* One pull of everything src has that dst has not; returns ops applied. */
static long sync1(core *src, core *dst, const char *name)
{
	int64_t after = core_peer_seq(dst, name);
	core_oplog_entry *e;
	size_t n;
	sl_err err = { 0 };
	if (core_oplog_read(src, after, 1000, &e, &n, &err) < 0)
		return -1;
	if (n == 0) {
		core_oplog_free(e, n);
		return 0;
	}
	const char **bodies = malloc(n * sizeof(*bodies));
	for (size_t i = 0; i < n; i++)
		bodies[i] = e[i].body;
	uint8_t *miss;
	size_t nm;
	long rc = core_repl_missing(dst, bodies, n, &miss, &nm, &err);
	uint8_t *buf = malloc(CORE_CHUNK_SIZE);
	for (size_t i = 0; rc == 0 && i < nm; i++) {
		core_chunkref ref;
		memcpy(ref.hash, miss + 32 * i, 32);
		uint32_t len;
		if (!core_chunk_has(src, ref.hash, &len)) {
			rc = -1;
			break;
		}
		ref.len = len;
		rc = core_chunk_read(src, &ref, 0, buf, len, &err);
		if (rc == 0)
			rc = core_chunk_ingest(dst, ref.hash, buf, len, &err);
	}
	size_t applied = 0;
	if (rc == 0)
		rc = core_repl_apply(dst, name, e[n - 1].seq, bodies, n, &applied, &err);
	if (rc < 0)
		fprintf(stderr, "sync %s: %s\n", name, err.msg);
	free(buf);
	free(miss);
	free(bodies);
	core_oplog_free(e, n);
	return rc < 0 ? rc : (long)applied;
}

static void settle(void)
{
	for (int round = 0; round < 10; round++) {
		long moved = sync1(A, B, "A") + sync1(B, A, "B");
		if (Cc)
			moved += sync1(B, Cc, "B") + sync1(Cc, B, "C") + sync1(A, Cc, "A") +
				 sync1(Cc, A, "C");
		if (moved == 0)
			return;
	}
}

static char *read_all(core *c, const char *b, const char *k, size_t *n)
{
	core_objinfo oi = { 0 };
	core_reader *r;
	*n = 0;
	if (core_get_open(c, b, k, NULL, &oi, &r, NULL) < 0) {
		core_objinfo_clear(&oi);
		return NULL;
	}
	char *buf = malloc(oi.size + 1);
	ssize_t got = core_read_at(r, buf, oi.size, 0, NULL);
	buf[got > 0 ? got : 0] = 0;
	*n = got > 0 ? (size_t)got : 0;
	core_reader_free(r);
	core_objinfo_clear(&oi);
	return buf;
}

static int put(core *c, const char *b, const char *k, const void *d, size_t n)
{
	core_writer *w;
	int rc = core_put_begin(c, b, k, &w, NULL);
	if (rc == 0)
		rc = core_put_write(w, d, n, NULL);
	if (rc == 0)
		return core_put_commit(w, NULL, NULL, NULL);
	core_put_abort(w);
	return rc;
}

/* Versions listing of a bucket as text (keys, version ids, etags, states). */
static char *state_of(core *c, const char *b)
{
	core_list_opts o = { .versions = 1, .max_keys = 1000 };
	core_list_result r;
	char *s = calloc(1, 1 << 16);
	if (core_list(c, b, &o, &r, NULL) < 0)
		return s;
	size_t len = 0;
	for (size_t i = 0; i < r.nobjs; i++)
		len += (size_t)snprintf(s + len, (1 << 16) - len, "%s|%s|%s|%d|%d|%d\n",
					r.objs[i].key, r.objs[i].version_id, r.objs[i].etag,
					r.objs[i].state, r.objs[i].delete_marker,
					r.objs[i].is_latest);
	core_list_result_clear(&r);
	return s;
}

static void same(const char *b)
{
	char *x = state_of(A, b), *y = state_of(B, b);
	CHECK(strcmp(x, y) == 0);
	if (strcmp(x, y) != 0)
		fprintf(stderr, "A:\n%sB:\n%s", x, y);
	free(x);
	free(y);
}

static void test_basic(void)
{
	CHECK_OK(core_bucket_create(A, "docs", CORE_VERS_UNVERSIONED, NULL));
	size_t big = 9 * 1024 * 1024 + 5;
	char *d = malloc(big);
	for (size_t i = 0; i < big; i++)
		d[i] = (char)(i * 7 + i / 4096);
	CHECK_OK(put(A, "docs", "big", d, big));
	CHECK_OK(put(A, "docs", "small", "hello", 5));
	settle();
	size_t n;
	char *got = read_all(B, "docs", "big", &n);
	CHECK(got && n == big && memcmp(got, d, big) == 0);
	free(got);
	/* a rename moves no data: B stores no new chunk */
	core_stats s1, s2;
	CHECK_OK(core_stats_get(B, &s1, NULL));
	CHECK_OK(core_rename(A, "docs", "big", "moved/big", 0, NULL));
	settle();
	CHECK_OK(core_stats_get(B, &s2, NULL));
	CHECK(s2.chunks == s1.chunks && s2.segment_bytes - s1.segment_bytes < 64 * 1024);
	got = read_all(B, "docs", "moved/big", &n);
	CHECK(got && n == big);
	free(got);
	core_objinfo oi = { 0 };
	CHECK(core_head(B, "docs", "big", NULL, &oi, NULL) == SL_ENOKEY);
	core_objinfo_clear(&oi);
	/* idempotent: the same entries again change nothing */
	int64_t hb = core_oplog_head(B);
	core_oplog_entry *e;
	size_t ne;
	CHECK_OK(core_oplog_read(A, 0, 1000, &e, &ne, NULL));
	const char **bodies = malloc(ne * sizeof(*bodies));
	for (size_t i = 0; i < ne; i++)
		bodies[i] = e[i].body;
	size_t applied = 99;
	CHECK_OK(core_repl_apply(B, "A", e[ne - 1].seq, bodies, ne, &applied, NULL));
	CHECK(applied == 0 && core_oplog_head(B) == hb);
	free(bodies);
	core_oplog_free(e, ne);
	same("docs");
	free(d);
}

static void test_conflict(void)
{
	/* both write the same key without seeing each other */
	CHECK_OK(put(A, "docs", "k", "from A", 6));
	usleep(3000); /* a later millisecond: B's write has the higher HLC */
	CHECK_OK(put(B, "docs", "k", "from B!", 7));
	settle();
	size_t na, nb;
	char *a = read_all(A, "docs", "k", &na), *b = read_all(B, "docs", "k", &nb);
	CHECK(a && b && na == nb && strcmp(a, b) == 0);
	CHECK(strcmp(b, "from B!") == 0); /* B wrote later: higher HLC wins */
	free(a);
	free(b);
	core_objinfo *cf;
	size_t ncf;
	CHECK_OK(core_conflicts(A, NULL, NULL, NULL, 100, &cf, &ncf, NULL));
	CHECK(ncf == 1 && cf[0].size == 6 && strcmp(cf[0].key, "k") == 0);
	char vid[64] = "";
	if (ncf)
		snprintf(vid, sizeof(vid), "%s", cf[0].version_id);
	for (size_t i = 0; i < ncf; i++)
		core_objinfo_clear(&cf[i]);
	free(cf);
	CHECK_OK(core_conflicts(B, "docs", NULL, NULL, 100, &cf, &ncf, NULL));
	CHECK(ncf == 1 && strcmp(cf[0].version_id, vid) == 0);
	for (size_t i = 0; i < ncf; i++)
		core_objinfo_clear(&cf[i]);
	free(cf);
	same("docs");
	/* a later sequential overwrite (after seeing the other) is no conflict */
	CHECK_OK(put(A, "docs", "k", "A again", 7));
	settle();
	CHECK_OK(core_conflicts(B, "docs", NULL, NULL, 100, &cf, &ncf, NULL));
	CHECK(ncf == 1);
	for (size_t i = 0; i < ncf; i++)
		core_objinfo_clear(&cf[i]);
	free(cf);
	same("docs");
}

static void test_tombstone(void)
{
	CHECK_OK(put(A, "docs", "t", "v1", 2));
	settle();
	/* B overwrites, A deletes later (concurrently): the delete is newer */
	CHECK_OK(put(B, "docs", "t", "v2", 2));
	usleep(2000);
	CHECK_OK(core_delete(A, "docs", "t", NULL, NULL, NULL));
	settle();
	core_objinfo oi = { 0 };
	CHECK(core_head(A, "docs", "t", NULL, &oi, NULL) == SL_ENOKEY && !oi.delete_marker);
	core_objinfo_clear(&oi);
	CHECK(core_head(B, "docs", "t", NULL, &oi, NULL) == SL_ENOKEY);
	core_objinfo_clear(&oi);
	same("docs");
	/* the losing overwrite is kept, not silently dropped */
	core_objinfo *cf;
	size_t ncf;
	CHECK_OK(core_conflicts(A, "docs", NULL, NULL, 100, &cf, &ncf, NULL));
	int found = 0;
	for (size_t i = 0; i < ncf; i++) {
		found |= strcmp(cf[i].key, "t") == 0;
		core_objinfo_clear(&cf[i]);
	}
	free(cf);
	CHECK(found);
}

static void test_bucket_delete_vs_write(void)
{
	CHECK_OK(core_bucket_create(A, "tmp", CORE_VERS_UNVERSIONED, NULL));
	settle();
	CHECK_OK(core_bucket_delete(A, "tmp", NULL));
	CHECK_OK(put(B, "tmp", "late", "x", 1)); /* concurrently, on B */
	settle();
	/* writes win over the bucket deletion: both have the bucket and the object */
	size_t n;
	char *a = read_all(A, "tmp", "late", &n);
	CHECK(a && n == 1);
	free(a);
	char *b = read_all(B, "tmp", "late", &n);
	CHECK(b && n == 1);
	free(b);
	same("tmp");
	/* an uncontested delete replicates */
	CHECK_OK(core_delete(B, "tmp", "late", NULL, NULL, NULL));
	settle();
	CHECK_OK(core_bucket_delete(B, "tmp", NULL));
	settle();
	core_bucket bk;
	CHECK(core_bucket_get(A, "tmp", &bk, NULL) == SL_ENOBUCKET);
}

static void test_versioned_and_skew(void)
{
	CHECK_OK(core_bucket_create(A, "vers", CORE_VERS_ENABLED, NULL));
	settle();
	CHECK_OK(put(A, "vers", "v", "one", 3));
	settle();
	/* B's clock is ten minutes behind, but it has seen A's write: its
	 * overwrite still orders after it */
	core_close(B);
	setenv("SEGLAKE_TEST_CLOCK_OFFSET_MS", "-600000", 1);
	char d[4200];
	snprintf(d, sizeof(d), "%s/B", root);
	CHECK_OK(core_open(d, NULL, &B, NULL));
	unsetenv("SEGLAKE_TEST_CLOCK_OFFSET_MS");
	CHECK_OK(put(B, "vers", "v", "two", 3));
	settle();
	size_t n;
	char *a = read_all(A, "vers", "v", &n);
	CHECK(a && strcmp(a, "two") == 0);
	free(a);
	same("vers");
	core_objinfo *cf;
	size_t ncf;
	CHECK_OK(core_conflicts(A, "vers", NULL, NULL, 100, &cf, &ncf, NULL));
	CHECK(ncf == 0);
	free(cf);
}

static void test_ring(void)
{
	Cc = mk("C");
	settle(); /* C catches up on the whole history */
	size_t n;
	char *x = read_all(Cc, "docs", "moved/big", &n);
	CHECK(x && n == 9 * 1024 * 1024 + 5);
	free(x);
	CHECK_OK(put(Cc, "docs", "from-c", "c", 1));
	/* ring A <- C <- B <- A: each pulls from one neighbour only */
	for (int i = 0; i < 6; i++) {
		sync1(Cc, A, "C");
		sync1(A, B, "A");
		sync1(B, Cc, "B");
	}
	int64_t ha = core_oplog_head(A), hb = core_oplog_head(B), hc = core_oplog_head(Cc);
	for (int i = 0; i < 3; i++) {
		sync1(Cc, A, "C");
		sync1(A, B, "A");
		sync1(B, Cc, "B");
	}
	CHECK(core_oplog_head(A) == ha && core_oplog_head(B) == hb && core_oplog_head(Cc) == hc);
	x = read_all(B, "docs", "from-c", &n);
	CHECK(x && n == 1);
	free(x);
	same("docs");
	/* retention: trimmed entries are gone, the horizon says so */
	int64_t h = core_oplog_head(A);
	CHECK_OK(core_oplog_trim(A, h - 2, NULL));
	CHECK(core_oplog_horizon(A) == h - 2);
	core_oplog_entry *e;
	size_t ne;
	CHECK_OK(core_oplog_read(A, 0, 1000, &e, &ne, NULL));
	CHECK(ne == 2 && e[0].seq == h - 1);
	core_oplog_free(e, ne);
	CHECK_OK(put(A, "docs", "after-trim", "z", 1));
	CHECK(core_oplog_head(A) == h + 1); /* seqs are not reused */
}

static void test_future_clock(void)
{
	/* an entry stamped far ahead of this host's clock is refused, clearly */
	char body[512];
	long long hlc = (long long)((uint64_t)(time(NULL) + 3 * 3600) * 1000) << 16;
	snprintf(body, sizeof(body),
		 "{\"op\":\"bucket-create\",\"hlc\":%lld,\"node\":\"00000000deadbeef\","
		 "\"b\":\"future\",\"vers\":0,\"ms\":1}",
		 hlc);
	const char *bodies[1] = { body };
	sl_err err = { 0 };
	int64_t head = core_oplog_head(B);
	CHECK(core_repl_apply(B, "Z", 1, bodies, 1, NULL, &err) == SL_EINVAL);
	CHECK(strstr(err.msg, "ahead") != NULL && core_oplog_head(B) == head);
	core_bucket bk;
	CHECK(core_bucket_get(B, "future", &bk, NULL) == SL_ENOBUCKET);
}

int main(void)
{
	root = check_tmpdir();
	A = mk("A");
	B = mk("B");
	test_basic();
	test_conflict();
	test_tombstone();
	test_bucket_delete_vs_write();
	test_versioned_and_skew();
	test_ring();
	test_future_clock();
	core_close(A);
	core_close(B);
	core_close(Cc);
	check_rmrf(root);
	free(root);
	return check_done("repl");
}
