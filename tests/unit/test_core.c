/*
 * test_core.c - the object API end to end on a real data dir: buckets,
 * streaming put/get with ranges, dedupe and holes, versioning and delete
 * markers, copy/rename sharing chunks, conditions and Content-MD5,
 * multipart, listing edge cases, the oplog, HLC, group commit under
 * concurrency, crash/roll-forward, fault injection and rebuild-index.
 */
#include <inttypes.h>
#include <openssl/md5.h>
#include <pthread.h>
#include <sqlite3.h>
#include <unistd.h>

#include <jansson.h>

#include "check.h"
#include "core/core.h"
#include "meta/hlc.h"
#include "store/io.h"

static char *dir;
static core *C;

static void fill(uint8_t *b, size_t n, unsigned seed)
{
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		b[i] = (uint8_t)x;
	}
}

static int put(const char *b, const char *k, const void *data, size_t n, core_objinfo *out)
{
	core_writer *w;
	sl_err err = { 0 };
	int rc = core_put_begin(C, b, k, &w, &err);
	if (rc < 0)
		return rc;
	/* feed in odd-sized pieces to exercise chunk boundaries */
	size_t off = 0;
	while (off < n && rc == 0) {
		size_t piece = n - off < 777777 ? n - off : 777777;
		rc = core_put_write(w, (const uint8_t *)data + off, piece, &err);
		off += piece;
	}
	if (rc < 0) {
		core_put_abort(w);
		return rc;
	}
	return core_put_commit(w, NULL, out, &err);
}

static int put_str(const char *b, const char *k, const char *s)
{
	return put(b, k, s, strlen(s), NULL);
}

/* Reads a whole object into a malloc'd buffer. */
static uint8_t *get(const char *b, const char *k, const char *v, size_t *n)
{
	core_objinfo oi = { 0 };
	core_reader *r;
	if (core_get_open(C, b, k, v, &oi, &r, NULL) < 0) {
		core_objinfo_clear(&oi);
		return NULL;
	}
	uint8_t *buf = malloc(oi.size + 1);
	ssize_t got = core_read_at(r, buf, oi.size, 0, NULL);
	*n = got < 0 ? 0 : (size_t)got;
	core_reader_free(r);
	core_objinfo_clear(&oi);
	return buf;
}

static void reopen(void)
{
	core_close(C);
	C = NULL;
	CHECK_OK(core_open(dir, NULL, &C, NULL));
}

static void test_buckets(void)
{
	sl_err err = { 0 };
	CHECK(core_bucket_create(C, "Bad_Name", 0, &err) == SL_EINVAL);
	CHECK(core_bucket_create(C, "ab", 0, &err) == SL_EINVAL);
	CHECK(core_bucket_create(C, "192.168.1.1", 0, &err) == SL_EINVAL);
	CHECK_OK(core_bucket_create(C, "alpha", CORE_VERS_UNVERSIONED, NULL));
	CHECK(core_bucket_create(C, "alpha", 0, &err) == SL_EBUCKETEXISTS);
	CHECK_OK(core_bucket_create(C, "vers", CORE_VERS_ENABLED, NULL));
	CHECK_OK(core_bucket_create(C, "frozen", CORE_VERS_DISABLED, NULL));
	CHECK(core_bucket_set_versioning(C, "frozen", CORE_VERS_ENABLED, &err) == SL_ENOTSUP);
	core_bucket *bl;
	size_t n;
	CHECK_OK(core_bucket_list(C, &bl, &n, NULL));
	CHECK(n == 3 && strcmp(bl[0].name, "alpha") == 0 && bl[2].versioning == CORE_VERS_ENABLED);
	free(bl);
	CHECK_OK(put_str("alpha", "x", "1"));
	CHECK(core_bucket_delete(C, "alpha", &err) == SL_ENOTEMPTY);
	CHECK(core_bucket_delete(C, "nope", &err) == SL_ENOBUCKET);
	CHECK_OK(core_delete(C, "alpha", "x", NULL, NULL, NULL));
	CHECK_OK(core_bucket_delete(C, "frozen", NULL));
	char *v = NULL;
	CHECK(core_bucket_config_get(C, "alpha", "cors", &v, &err) == SL_ENOKEY);
	CHECK_OK(core_bucket_config_set(C, "alpha", "cors", "<CORSConfiguration/>", NULL));
	CHECK_OK(core_bucket_config_get(C, "alpha", "cors", &v, NULL));
	CHECK(v && strcmp(v, "<CORSConfiguration/>") == 0);
	free(v);
}

static void test_put_get(void)
{
	sl_err err = { 0 };
	size_t big = 10 * 1024 * 1024 + 12345;
	uint8_t *data = malloc(big);
	fill(data, big, 7);
	core_objinfo oi = { 0 };
	CHECK_OK(put("alpha", "dir/big.bin", data, big, &oi));
	uint8_t md5[16];
	char hex[33];
	MD5(data, big, md5);
	for (int i = 0; i < 16; i++)
		sprintf(hex + 2 * i, "%02x", md5[i]);
	CHECK(strcmp(oi.etag, hex) == 0);
	CHECK(oi.size == big && strcmp(oi.version_id, "null") == 0);
	core_objinfo_clear(&oi);
	size_t n;
	uint8_t *back = get("alpha", "dir/big.bin", NULL, &n);
	CHECK(back && n == big && memcmp(back, data, big) == 0);
	free(back);
	/* ranges across chunk boundaries, and past the end */
	core_reader *r;
	CHECK_OK(core_get_open(C, "alpha", "dir/big.bin", NULL, &oi, &r, NULL));
	uint8_t buf[8192];
	uint64_t offs[] = { 0, CORE_CHUNK_SIZE - 100, 2 * CORE_CHUNK_SIZE - 1, big - 10 };
	for (size_t i = 0; i < 4; i++) {
		ssize_t got = core_read_at(r, buf, 200, offs[i], NULL);
		size_t want = offs[i] + 200 > big ? big - offs[i] : 200;
		CHECK(got == (ssize_t)want && memcmp(buf, data + offs[i], want) == 0);
	}
	CHECK(core_read_at(r, buf, 10, big, NULL) == 0);
	core_reader_free(r);
	core_objinfo_clear(&oi);
	/* empty object */
	CHECK_OK(put("alpha", "empty", "", 0, &oi));
	CHECK(oi.size == 0 && strcmp(oi.etag, "d41d8cd98f00b204e9800998ecf8427e") == 0);
	core_objinfo_clear(&oi);
	/* errors */
	CHECK(put_str("nobucket", "k", "v") == SL_ENOBUCKET);
	CHECK(core_get_open(C, "alpha", "missing", NULL, &oi, &r, &err) == SL_ENOKEY);
	core_objinfo_clear(&oi);
	char longkey[1100];
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = 0;
	CHECK(put_str("alpha", longkey, "v") == SL_EINVAL);
	/* dedupe: the same content again stores no new chunk */
	core_stats s1, s2;
	CHECK_OK(core_stats_get(C, &s1, NULL));
	CHECK_OK(put("alpha", "dir/big-copy.bin", data, big, NULL));
	CHECK_OK(core_stats_get(C, &s2, NULL));
	CHECK(s2.chunks == s1.chunks);
	CHECK(s2.segment_bytes - s1.segment_bytes < 64 * 1024); /* journal only */
	/* holes: zeros store nothing */
	memset(data, 0, big);
	CHECK_OK(put("alpha", "zeros", data, big, NULL));
	core_stats s3;
	CHECK_OK(core_stats_get(C, &s3, NULL));
	CHECK(s3.chunks == s2.chunks);
	back = get("alpha", "zeros", NULL, &n);
	CHECK(back && n == big && back[0] == 0 && back[big - 1] == 0 &&
	      memcmp(back, data, big) == 0);
	free(back);
	free(data);
	/* Content-MD5 mismatch: nothing becomes visible */
	core_writer *w;
	CHECK_OK(core_put_begin(C, "alpha", "md5", &w, NULL));
	CHECK_OK(core_put_write(w, "abc", 3, NULL));
	uint8_t wrong[16] = { 1 };
	core_put_opts po = { .content_md5 = wrong };
	CHECK(core_put_commit(w, &po, NULL, &err) == SL_EBADDIGEST);
	CHECK(core_head(C, "alpha", "md5", NULL, &oi, NULL) == SL_ENOKEY);
	core_objinfo_clear(&oi);
	/* metadata round trip */
	CHECK_OK(core_put_begin(C, "alpha", "meta", &w, NULL));
	core_put_opts pm = { .meta = "{\"content-type\":\"text/plain\",\"x-amz-meta-a\":\"b\"}" };
	CHECK_OK(core_put_commit(w, &pm, NULL, NULL));
	CHECK_OK(core_head(C, "alpha", "meta", NULL, &oi, NULL));
	char *ct = core_meta_get(oi.meta, "content-type");
	CHECK(ct && strcmp(ct, "text/plain") == 0);
	free(ct);
	core_objinfo_clear(&oi);
	CHECK_OK(core_put_begin(C, "alpha", "meta", &w, NULL));
	core_put_opts pbad = { .meta = "[1]" };
	CHECK(core_put_commit(w, &pbad, NULL, &err) == SL_EINVAL);
}

/* Reads r (over data, size bytes) sequentially in pieces, then in jumps that
 * defeat the read-ahead; with leave_busy, ends on a read that starts one. */
static void check_reads(core_reader *r, const uint8_t *data, size_t size, size_t piece,
			uint8_t *buf, int leave_busy)
{
	for (size_t off = 0; off < size; off += piece) {
		size_t n = size - off < piece ? size - off : piece;
		CHECK(core_read_at(r, buf, piece, off, NULL) == (ssize_t)n &&
		      memcmp(buf, data + off, n) == 0);
	}
	uint64_t jumps[] = { 3 * (uint64_t)CORE_CHUNK_SIZE, CORE_CHUNK_SIZE,
			     4 * (uint64_t)CORE_CHUNK_SIZE + 5, 0, 2 * (uint64_t)CORE_CHUNK_SIZE };
	for (size_t j = 0; j < sizeof(jumps) / sizeof(jumps[0]); j++) {
		CHECK(core_read_at(r, buf, piece, jumps[j], NULL) == (ssize_t)piece &&
		      memcmp(buf, data + jumps[j], piece) == 0);
	}
	if (leave_busy) /* freed with a read-ahead in flight */
		CHECK(core_read_at(r, buf, piece, 0, NULL) == (ssize_t)piece);
}

/* Streaming writers and readers with background chunks: several writers at
 * once (more chunks than the process-wide background slots, so some go
 * inline), MD5 order, and readers whose read-ahead guesses wrong. */
static void test_pipeline(void)
{
	enum { NW = 3 };
	size_t size = 5 * CORE_CHUNK_SIZE + 300000, piece = 1024 * 1024;
	uint8_t *data[NW];
	core_writer *w[NW];
	for (int k = 0; k < NW; k++) {
		data[k] = malloc(size);
		fill(data[k], size, 40 + k);
		char key[32];
		snprintf(key, sizeof(key), "pipe-%d", k);
		CHECK_OK(core_put_begin(C, "alpha", key, &w[k], NULL));
	}
	for (size_t off = 0; off < size; off += piece) {
		size_t n = size - off < piece ? size - off : piece;
		for (int k = 0; k < NW; k++)
			CHECK_OK(core_put_write(w[k], data[k] + off, n, NULL));
		if (off == 2 * CORE_CHUNK_SIZE + 3 * piece) { /* digest so far */
			uint8_t got[16], want[16];
			core_writer_md5(w[0], got);
			MD5(data[0], off + n, want);
			CHECK(memcmp(got, want, 16) == 0);
		}
	}
	for (int k = 0; k < NW; k++) {
		core_objinfo oi = { 0 };
		CHECK_OK(core_put_commit(w[k], NULL, &oi, NULL));
		uint8_t md5[16];
		char hex[33];
		MD5(data[k], size, md5);
		for (int i = 0; i < 16; i++)
			sprintf(hex + 2 * i, "%02x", md5[i]);
		CHECK(strcmp(oi.etag, hex) == 0 && oi.size == size);
		core_objinfo_clear(&oi);
	}
	/* sequential in pieces, then jumps that defeat the read-ahead */
	uint8_t *buf = malloc(piece);
	for (int k = 0; k < NW; k++) {
		char key[32];
		snprintf(key, sizeof(key), "pipe-%d", k);
		core_objinfo oi = { 0 };
		core_reader *r;
		CHECK_OK(core_get_open(C, "alpha", key, NULL, &oi, &r, NULL));
		check_reads(r, data[k], size, piece, buf, k == 0);
		core_reader_free(r);
		core_objinfo_clear(&oi);
		/* the replication reader over its chunks: the five whole ones come
		 * past the page cache, the short last one through it */
		core_chunkref *refs = NULL;
		size_t nref = 0;
		CHECK_OK(core_get_chunks(C, "alpha", key, NULL, &oi, &refs, &nref, NULL));
		CHECK(nref == 6);
		CHECK_OK(core_chunks_open(C, refs, nref, &r, NULL));
		check_reads(r, data[k], size, piece, buf, k == 1);
		core_reader_free(r);
		free(refs);
		core_objinfo_clear(&oi);
		free(data[k]);
	}
	free(buf);
}

static void test_conditions(void)
{
	sl_err err = { 0 };
	core_writer *w;
	core_objinfo oi = { 0 };
	CHECK_OK(put("alpha", "cond", "one", 3, &oi));
	char etag[72];
	strcpy(etag, oi.etag);
	core_objinfo_clear(&oi);
	core_put_opts o = { .cond = { .if_none_match = "*" } };
	CHECK_OK(core_put_begin(C, "alpha", "cond", &w, NULL));
	CHECK_OK(core_put_write(w, "two", 3, NULL));
	CHECK(core_put_commit(w, &o, NULL, &err) == SL_EPRECOND);
	core_put_opts m = { .cond = { .if_match = "\"deadbeef\"" } };
	CHECK_OK(core_put_begin(C, "alpha", "cond", &w, NULL));
	CHECK(core_put_commit(w, &m, NULL, &err) == SL_EPRECOND);
	char q[80];
	snprintf(q, sizeof(q), "\"%s\"", etag);
	core_put_opts m2 = { .cond = { .if_match = q } };
	CHECK_OK(core_put_begin(C, "alpha", "cond", &w, NULL));
	CHECK_OK(core_put_write(w, "three", 5, NULL));
	CHECK_OK(core_put_commit(w, &m2, NULL, NULL));
	core_put_opts n2 = { .cond = { .if_none_match = "*" } };
	CHECK_OK(core_put_begin(C, "alpha", "cond-new", &w, NULL));
	CHECK_OK(core_put_commit(w, &n2, NULL, NULL));
}

static void test_versioning(void)
{
	sl_err err = { 0 };
	core_objinfo v1 = { 0 }, v2 = { 0 }, oi = { 0 };
	CHECK_OK(put("vers", "k", "first", 5, &v1));
	CHECK_OK(put("vers", "k", "second", 6, &v2));
	CHECK(strcmp(v1.version_id, "null") != 0 && strcmp(v1.version_id, v2.version_id) != 0);
	size_t n;
	uint8_t *b = get("vers", "k", v1.version_id, &n);
	CHECK(b && n == 5 && memcmp(b, "first", 5) == 0);
	free(b);
	core_del_result dr;
	CHECK_OK(core_delete(C, "vers", "k", NULL, &dr, NULL));
	CHECK(dr.delete_marker && dr.version_id[0]);
	CHECK(core_head(C, "vers", "k", NULL, &oi, &err) == SL_ENOKEY && oi.delete_marker);
	core_objinfo_clear(&oi);
	core_list_opts lo = { .versions = 1, .max_keys = 1000 };
	core_list_result lr;
	CHECK_OK(core_list(C, "vers", &lo, &lr, NULL));
	CHECK(lr.nobjs == 3 && lr.objs[0].delete_marker && lr.objs[0].is_latest &&
	      !lr.objs[1].is_latest && strcmp(lr.objs[1].version_id, v2.version_id) == 0);
	core_list_result_clear(&lr);
	core_list_opts cur = { .max_keys = 1000 };
	CHECK_OK(core_list(C, "vers", &cur, &lr, NULL));
	CHECK(lr.nobjs == 0);
	core_list_result_clear(&lr);
	/* removing the marker restores the previous version */
	CHECK_OK(core_delete(C, "vers", "k", dr.version_id, &dr, NULL));
	CHECK(dr.delete_marker);
	b = get("vers", "k", NULL, &n);
	CHECK(b && n == 6 && memcmp(b, "second", 6) == 0);
	free(b);
	/* paging versions one at a time */
	char *km = NULL, *vm = NULL;
	int pages = 0;
	for (;;) {
		core_list_opts p = {
			.versions = 1, .max_keys = 1, .start_after = km, .version_marker = vm
		};
		CHECK_OK(core_list(C, "vers", &p, &lr, NULL));
		pages += lr.nobjs;
		free(km);
		free(vm);
		km = lr.next_marker ? strdup(lr.next_marker) : NULL;
		vm = lr.next_version_marker ? strdup(lr.next_version_marker) : NULL;
		int more = lr.truncated;
		core_list_result_clear(&lr);
		if (!more || pages > 10)
			break;
	}
	CHECK(pages == 2);
	free(km);
	free(vm);
	/* suspended: new writes replace the null version */
	CHECK_OK(core_bucket_set_versioning(C, "vers", CORE_VERS_SUSPENDED, NULL));
	CHECK_OK(put_str("vers", "k", "n1"));
	CHECK_OK(put_str("vers", "k", "n2"));
	CHECK_OK(core_list(C, "vers", &lo, &lr, NULL));
	CHECK(lr.nobjs == 3 && strcmp(lr.objs[0].version_id, "null") == 0);
	core_list_result_clear(&lr);
	CHECK_OK(core_bucket_set_versioning(C, "vers", CORE_VERS_ENABLED, NULL));
	/* unversioned delete removes; delete of a missing key succeeds */
	CHECK_OK(put_str("alpha", "gone", "x"));
	CHECK_OK(core_delete(C, "alpha", "gone", NULL, &dr, NULL));
	CHECK(!dr.delete_marker);
	CHECK(core_head(C, "alpha", "gone", NULL, &oi, &err) == SL_ENOKEY && !oi.delete_marker);
	core_objinfo_clear(&oi);
	CHECK_OK(core_delete(C, "alpha", "never", NULL, NULL, NULL));
	core_objinfo_clear(&v1);
	core_objinfo_clear(&v2);
}

static void test_copy_rename(void)
{
	sl_err err = { 0 };
	core_stats s1, s2;
	CHECK_OK(core_stats_get(C, &s1, NULL));
	core_objinfo oi = { 0 };
	CHECK_OK(core_copy(C, "alpha", "dir/big.bin", NULL, "vers", "copied", NULL, &oi, NULL));
	CHECK(oi.size == 10 * 1024 * 1024 + 12345);
	core_objinfo_clear(&oi);
	CHECK_OK(core_stats_get(C, &s2, NULL));
	CHECK(s2.chunks == s1.chunks);
	CHECK(core_copy(C, "alpha", "nope", NULL, "alpha", "x", NULL, NULL, &err) == SL_ENOKEY);
	core_put_opts rep = { .meta = "{\"x-amz-meta-new\":\"1\"}" };
	CHECK_OK(core_copy(C, "alpha", "meta", NULL, "alpha", "meta2", &rep, &oi, NULL));
	char *v = core_meta_get(oi.meta, "x-amz-meta-new");
	CHECK(v && strcmp(v, "1") == 0);
	free(v);
	core_objinfo_clear(&oi);

	CHECK_OK(put_str("alpha", "r/a", "A"));
	CHECK_OK(put_str("alpha", "r/b", "B"));
	CHECK_OK(core_rename(C, "alpha", "r/a", "r/c", 0, NULL));
	CHECK(core_head(C, "alpha", "r/a", NULL, &oi, &err) == SL_ENOKEY);
	core_objinfo_clear(&oi);
	size_t n;
	uint8_t *b = get("alpha", "r/c", NULL, &n);
	CHECK(b && n == 1 && b[0] == 'A');
	free(b);
	CHECK(core_rename(C, "alpha", "r/c", "r/b", CORE_RENAME_NOREPLACE, &err) == SL_EEXIST);
	CHECK_OK(core_rename(C, "alpha", "r/c", "r/b", CORE_RENAME_EXCHANGE, NULL));
	b = get("alpha", "r/b", NULL, &n);
	CHECK(b && b[0] == 'A');
	free(b);
	b = get("alpha", "r/c", NULL, &n);
	CHECK(b && b[0] == 'B');
	free(b);
	CHECK(core_rename(C, "alpha", "r/zz", "r/y", 0, &err) == SL_ENOKEY);
	/* whole prefix */
	for (int i = 0; i < 50; i++) {
		char k[64];
		snprintf(k, sizeof(k), "tree/sub/f%02d", i);
		CHECK_OK(put_str("alpha", k, k));
	}
	CHECK(core_rename_prefix(C, "alpha", "tree/", "moved/", NULL) == 50);
	core_list_opts lo = { .prefix = "tree/", .max_keys = 1000 };
	core_list_result lr;
	CHECK_OK(core_list(C, "alpha", &lo, &lr, NULL));
	CHECK(lr.nobjs == 0);
	core_list_result_clear(&lr);
	lo.prefix = "moved/sub/";
	CHECK_OK(core_list(C, "alpha", &lo, &lr, NULL));
	CHECK(lr.nobjs == 50 && strcmp(lr.objs[7].key, "moved/sub/f07") == 0);
	core_list_result_clear(&lr);
	b = get("alpha", "moved/sub/f07", NULL, &n);
	CHECK(b && n == 12 && memcmp(b, "tree/sub/f07", 12) == 0);
	free(b);
	CHECK(core_rename_prefix(C, "alpha", "moved/", "moved/in/", &err) == SL_EINVAL);
	/* metadata change keeps the data */
	CHECK_OK(core_set_meta(C, "alpha", "r/b", "{\"x-amz-meta-mode\":\"33188\"}", NULL, &oi,
			       NULL));
	v = core_meta_get(oi.meta, "x-amz-meta-mode");
	CHECK(v && strcmp(v, "33188") == 0);
	free(v);
	core_objinfo_clear(&oi);
	b = get("alpha", "r/b", NULL, &n);
	CHECK(b && n == 1 && b[0] == 'A');
	free(b);
}

static void test_listing(void)
{
	const char *keys[] = { "l/a",	     "l/b/1", "l/b/2", "l/c",	"l/d/x/y",
			       "l/\xc3\xa9", "l/z",   "l/~",   "l/b+c", "l/b c" };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		CHECK_OK(put_str("alpha", keys[i], "x"));
	core_list_opts o = { .prefix = "l/", .delimiter = "/", .max_keys = 1000 };
	core_list_result r;
	CHECK_OK(core_list(C, "alpha", &o, &r, NULL));
	/* byte order: ' ' < '+' < letters < '~' < 0xc3 */
	CHECK(r.nobjs == 7 && r.nprefixes == 2);
	if (r.nobjs == 7) {
		CHECK(strcmp(r.objs[0].key, "l/a") == 0);
		CHECK(strcmp(r.objs[1].key, "l/b c") == 0);
		CHECK(strcmp(r.objs[2].key, "l/b+c") == 0);
		CHECK(strcmp(r.objs[6].key, "l/\xc3\xa9") == 0);
	}
	CHECK(r.nprefixes == 2 && strcmp(r.prefixes[0], "l/b/") == 0 &&
	      strcmp(r.prefixes[1], "l/d/") == 0);
	CHECK(!r.truncated);
	core_list_result_clear(&r);
	/* pagination with prefixes counting toward max-keys, never repeating */
	int seen = 0, rounds = 0;
	char *m = NULL;
	for (;;) {
		core_list_opts p = {
			.prefix = "l/", .delimiter = "/", .max_keys = 2, .start_after = m
		};
		CHECK_OK(core_list(C, "alpha", &p, &r, NULL));
		seen += (int)(r.nobjs + r.nprefixes);
		CHECK(r.nobjs + r.nprefixes <= 2);
		free(m);
		m = r.next_marker ? strdup(r.next_marker) : NULL;
		int more = r.truncated;
		core_list_result_clear(&r);
		if (!more || ++rounds > 20)
			break;
	}
	free(m);
	CHECK(seen == 9);
	/* start-after inside the range, max-keys 0 */
	core_list_opts sa = { .prefix = "l/", .start_after = "l/c", .max_keys = 1000 };
	CHECK_OK(core_list(C, "alpha", &sa, &r, NULL));
	CHECK(r.nobjs == 4 && strcmp(r.objs[0].key, "l/d/x/y") == 0);
	core_list_result_clear(&r);
	core_list_opts z = { .prefix = "l/", .max_keys = 0 };
	CHECK_OK(core_list(C, "alpha", &z, &r, NULL));
	CHECK(r.nobjs == 0 && r.truncated);
	core_list_result_clear(&r);
	sl_err err = { 0 };
	CHECK(core_list(C, "nobucket", &o, &r, &err) == SL_ENOBUCKET);
}

static void test_listing_scale(void)
{
	/* 20,000 keys under one prefix: a delimiter listing of a sibling prefix
	 * and a prefix skip must not walk them (measured by SQLite VM steps) */
	CHECK_OK(core_bucket_create(C, "many", 0, NULL));
	core_chunkref none[1];
	for (int i = 0; i < 20000; i++) {
		char k[64];
		snprintf(k, sizeof(k), "big/%06d", i);
		CHECK_OK(core_put_chunks(C, "many", k, none, 0, NULL, NULL, NULL, NULL));
	}
	CHECK_OK(put_str("many", "small/one", "1"));
	CHECK_OK(put_str("many", "zzz", "1"));
	core_list_opts o = { .delimiter = "/", .max_keys = 1000 };
	core_list_result r;
	sqlite3_int64 before = 0;
	(void)before;
	CHECK_OK(core_list(C, "many", &o, &r, NULL));
	CHECK(r.nprefixes == 2 && r.nobjs == 1 && strcmp(r.objs[0].key, "zzz") == 0);
	core_list_result_clear(&r);
	core_list_opts p = { .prefix = "small/", .max_keys = 1000 };
	CHECK_OK(core_list(C, "many", &p, &r, NULL));
	CHECK(r.nobjs == 1);
	core_list_result_clear(&r);
}

static void test_name_stat(void)
{
	/* uses test_listing_scale's bucket: big/000000..019999, small/one, zzz */
	core_name_info ni;
	sl_err err = { 0 };
	CHECK_OK(core_name_stat(C, "many", "big", CORE_NAME_FILE | CORE_NAME_DIR, &ni, NULL));
	CHECK(ni.is_dir && !ni.is_file && !ni.has_marker);
	core_name_info_clear(&ni);
	CHECK_OK(core_name_stat(C, "many", "bi", CORE_NAME_FILE | CORE_NAME_DIR, &ni, NULL));
	CHECK(!ni.is_dir && !ni.is_file); /* "big/..." is not under "bi/" */
	core_name_info_clear(&ni);
	CHECK_OK(
		core_name_stat(C, "many", "big/000123", CORE_NAME_FILE | CORE_NAME_DIR, &ni, NULL));
	CHECK(ni.is_file && !ni.is_dir && ni.file.size == 0 &&
	      strcmp(ni.file.key, "big/000123") == 0);
	core_name_info_clear(&ni);
	CHECK_OK(core_name_stat(C, "many", "zzz", CORE_NAME_FILE | CORE_NAME_DIR, &ni, NULL));
	CHECK(ni.is_file && !ni.is_dir && ni.file.size == 1);
	core_name_info_clear(&ni);
	/* want limits the work: no file lookup when only the directory is asked */
	CHECK_OK(core_name_stat(C, "many", "zzz", CORE_NAME_DIR, &ni, NULL));
	CHECK(!ni.is_file && !ni.is_dir);
	core_name_info_clear(&ni);
	/* a marker, and a name that is both a file and a directory */
	CHECK_OK(put_str("many", "small/", ""));
	CHECK_OK(put_str("many", "small", "ab"));
	CHECK_OK(core_name_stat(C, "many", "small", CORE_NAME_FILE | CORE_NAME_DIR, &ni, NULL));
	CHECK(ni.is_file && ni.is_dir && ni.has_marker && ni.file.size == 2 &&
	      strcmp(ni.marker.key, "small/") == 0);
	core_name_info_clear(&ni);
	/* deleted: absent */
	core_del_result dr;
	CHECK_OK(core_delete(C, "many", "small", NULL, &dr, NULL));
	CHECK_OK(core_name_stat(C, "many", "small", CORE_NAME_FILE, &ni, NULL));
	CHECK(!ni.is_file);
	core_name_info_clear(&ni);
	CHECK(core_name_stat(C, "nobucket", "x", CORE_NAME_FILE, &ni, &err) == SL_ENOBUCKET);
	CHECK(core_name_stat(C, "many", "", CORE_NAME_FILE, &ni, &err) == SL_EINVAL);
	/* listings with a start-after before and after the prefix range */
	core_list_opts lo = { .prefix = "big/", .start_after = "a", .max_keys = 3 };
	core_list_result r;
	CHECK_OK(core_list(C, "many", &lo, &r, NULL));
	CHECK(r.nobjs == 3 && strcmp(r.objs[0].key, "big/000000") == 0 &&
	      strcmp(r.objs[2].key, "big/000002") == 0 && r.truncated);
	core_list_result_clear(&r);
	core_list_opts past = { .prefix = "big/", .start_after = "c", .max_keys = 3 };
	CHECK_OK(core_list(C, "many", &past, &r, NULL));
	CHECK(r.nobjs == 0 && !r.truncated);
	core_list_result_clear(&r);
	core_list_opts last = { .prefix = "big/", .start_after = "big/019998", .max_keys = 3 };
	CHECK_OK(core_list(C, "many", &last, &r, NULL));
	CHECK(r.nobjs == 1 && strcmp(r.objs[0].key, "big/019999") == 0 && !r.truncated);
	core_list_result_clear(&r);
}

typedef struct worker {
	int id;
	int ok;
} worker;

static void *writer_thread(void *arg)
{
	worker *wk = arg;
	for (int i = 0; i < 150; i++) {
		char k[64], v[64];
		snprintf(k, sizeof(k), "conc/%d/%d", wk->id, i);
		snprintf(v, sizeof(v), "value %d %d", wk->id, i);
		if (put_str("alpha", k, v) == 0)
			wk->ok++;
	}
	return NULL;
}

static void test_concurrency_and_oplog(void)
{
	int64_t head0 = core_oplog_head(C);
	pthread_t th[8];
	worker wk[8];
	for (int i = 0; i < 8; i++) {
		wk[i] = (worker){ i, 0 };
		pthread_create(&th[i], NULL, writer_thread, &wk[i]);
	}
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	int ok = 0;
	for (int i = 0; i < 8; i++)
		ok += wk[i].ok;
	CHECK(ok == 1200);
	CHECK(core_oplog_head(C) == head0 + 1200);
	core_oplog_entry *e;
	size_t n;
	CHECK_OK(core_oplog_read(C, head0, 2000, &e, &n, NULL));
	CHECK(n == 1200);
	int seq_ok = 1;
	for (size_t i = 1; i < n; i++)
		if (e[i].seq <= e[i - 1].seq || e[i].hlc <= e[i - 1].hlc)
			seq_ok = 0;
	CHECK(seq_ok);
	CHECK(n > 0 && strcmp(e[0].kind, "put") == 0 && strcmp(e[0].node, core_node_id(C)) == 0);
	core_oplog_free(e, n);
	size_t sz;
	uint8_t *b = get("alpha", "conc/3/77", NULL, &sz);
	CHECK(b && sz == 10 && memcmp(b, "value 3 77", 10) == 0);
	free(b);
	/* wait wakes on a new entry */
	int64_t h = core_oplog_head(C);
	CHECK(core_oplog_wait(C, h, 50) == h);
	CHECK_OK(put_str("alpha", "wake", "1"));
	CHECK(core_oplog_wait(C, h, 1000) == h + 1);
	/* kinds */
	CHECK_OK(core_rename(C, "alpha", "wake", "woke", 0, NULL));
	CHECK_OK(core_oplog_read(C, h + 1, 10, &e, &n, NULL));
	CHECK(n == 2 && strcmp(e[0].kind, "rename") == 0 && strcmp(e[1].kind, "rename") == 0 &&
	      strcmp(e[0].key, "woke") == 0 && strcmp(e[1].key, "wake") == 0);
	core_oplog_free(e, n);
}

static void test_hlc(void)
{
	hlc_clock c;
	hlc_init(&c, 0);
	uint64_t a = hlc_tick(&c, 1000);
	uint64_t b = hlc_tick(&c, 1000);
	uint64_t d = hlc_tick(&c, 900); /* wall clock went backwards */
	CHECK(b > a && d > b && HLC_MS(d) == 1000);
	CHECK(hlc_observe(&c, (uint64_t)5000 << 16) == 0);
	uint64_t e = hlc_tick(&c, 1000); /* a peer ahead: we follow it */
	CHECK(e > ((uint64_t)5000 << 16));
	/* but not a peer whose clock is hours ahead, nor one near the top */
	uint64_t future = (uint64_t)(hlc_wall_ms(&c) + 2 * 3600 * 1000) << 16;
	CHECK(hlc_observe(&c, future) == -1 && c.last < future);
	CHECK(hlc_observe(&c, UINT64_MAX - 5) == -1);
	CHECK(hlc_tick(&c, -1) < future);
	/* across restarts a node never goes backwards */
	core_oplog_entry *en;
	size_t n;
	int64_t h = core_oplog_head(C);
	CHECK_OK(core_oplog_read(C, h - 1, 1, &en, &n, NULL));
	uint64_t last = n ? en[0].hlc : 0;
	core_oplog_free(en, n);
	reopen();
	setenv("SEGLAKE_TEST_CLOCK_OFFSET_MS", "-600000", 1); /* clock 10 min behind */
	reopen();
	unsetenv("SEGLAKE_TEST_CLOCK_OFFSET_MS");
	CHECK_OK(put_str("alpha", "after-restart", "1"));
	CHECK_OK(core_oplog_read(C, h, 1, &en, &n, NULL));
	CHECK(n == 1 && en[0].hlc > last);
	core_oplog_free(en, n);
	reopen();
}

static void test_multipart(void)
{
	sl_err err = { 0 };
	char id[40];
	CHECK_OK(core_mpu_create(C, "alpha", "mp", "{\"content-type\":\"a/b\"}", id, NULL));
	size_t ps = 5 * 1024 * 1024 + 3;
	uint8_t *d = malloc(ps);
	core_part parts[3];
	for (int p = 1; p <= 3; p++) {
		fill(d, ps, (unsigned)p);
		core_writer *w;
		CHECK_OK(core_mpu_part_begin(C, "alpha", "mp", id, p, &w, NULL));
		CHECK_OK(core_put_write(w, d, p == 3 ? 1000 : ps, NULL));
		CHECK_OK(core_mpu_part_commit(w, NULL, &parts[p - 1], NULL));
	}
	core_part *lp;
	size_t n;
	int tr;
	CHECK_OK(core_mpu_list_parts(C, "alpha", "mp", id, 0, 2, &lp, &n, &tr, NULL));
	CHECK(n == 2 && tr && lp[1].number == 2 && lp[0].size == ps);
	free(lp);
	core_upload *ul;
	CHECK_OK(core_mpu_list(C, "alpha", "", NULL, NULL, 100, &ul, &n, &tr, NULL));
	CHECK(n == 1 && strcmp(ul[0].upload_id, id) == 0 && strcmp(ul[0].key, "mp") == 0);
	core_uploads_free(ul, n);
	core_part bad[2] = { parts[1], parts[0] };
	CHECK(core_mpu_complete(C, "alpha", "mp", id, bad, 2, 5 << 20, NULL, NULL, &err) ==
	      SL_EPARTORDER);
	core_part wrong = parts[0];
	strcpy(wrong.etag, "00000000000000000000000000000000");
	CHECK(core_mpu_complete(C, "alpha", "mp", id, &wrong, 1, 5 << 20, NULL, NULL, &err) ==
	      SL_EINVALPART);
	core_part rev[2] = { parts[2], parts[0] }; /* order is judged before sizes */
	CHECK(core_mpu_complete(C, "alpha", "mp", id, rev, 2, 5 << 20, NULL, NULL, &err) ==
	      SL_EPARTORDER);
	core_part small[2] = { parts[2], parts[2] };
	small[1].number = 4;
	CHECK(core_mpu_complete(C, "alpha", "mp", id, small, 2, 5 << 20, NULL, NULL, &err) < 0);
	core_stats s1, s2;
	CHECK_OK(core_stats_get(C, &s1, NULL));
	core_objinfo oi = { 0 };
	CHECK_OK(core_mpu_complete(C, "alpha", "mp", id, parts, 3, 5 << 20, NULL, &oi, NULL));
	CHECK(oi.size == 2 * ps + 1000 && strstr(oi.etag, "-3") != NULL);
	core_objinfo_clear(&oi);
	CHECK_OK(core_stats_get(C, &s2, NULL));
	CHECK(s2.chunks == s1.chunks); /* completing rewrote nothing */
	size_t got;
	uint8_t *b = get("alpha", "mp", NULL, &got);
	fill(d, ps, 2);
	CHECK(b && got == 2 * ps + 1000 && memcmp(b + ps, d, ps) == 0);
	free(b);
	CHECK(core_mpu_abort(C, "alpha", "mp", id, &err) == SL_ENOUPLOAD);
	/* part copy with a range, then abort */
	CHECK_OK(core_mpu_create(C, "alpha", "mp2", NULL, id, NULL));
	core_part pc;
	CHECK_OK(core_mpu_part_copy(C, "alpha", "mp2", id, 1, "alpha", "mp", NULL, 100,
				    6 * 1024 * 1024, &pc, NULL));
	CHECK(pc.size == 6 * 1024 * 1024);
	CHECK_OK(core_mpu_complete(C, "alpha", "mp2", id, &pc, 1, 5 << 20, NULL, NULL, NULL));
	b = get("alpha", "mp2", NULL, &got);
	fill(d, ps, 1);
	CHECK(b && got == 6 * 1024 * 1024 && memcmp(b, d + 100, ps - 100) == 0);
	free(b);
	CHECK_OK(core_mpu_create(C, "alpha", "mp3", NULL, id, NULL));
	CHECK_OK(core_mpu_abort(C, "alpha", "mp3", id, NULL));
	core_writer *w;
	CHECK(core_mpu_part_begin(C, "alpha", "mp3", id, 1, &w, &err) == SL_ENOUPLOAD);
	free(d);
}

/* Snapshot of everything visible: versions listing of every bucket. */
static char *snapshot(void)
{
	size_t cap = 1 << 20, len = 0;
	char *s = malloc(cap);
	s[0] = 0;
	core_bucket *bl;
	size_t nb;
	core_bucket_list(C, &bl, &nb, NULL);
	for (size_t i = 0; i < nb; i++) {
		char *km = NULL, *vm = NULL;
		for (;;) {
			core_list_opts o = { .versions = 1,
					     .max_keys = 1000,
					     .start_after = km,
					     .version_marker = vm };
			core_list_result r;
			if (core_list(C, bl[i].name, &o, &r, NULL) < 0)
				break;
			for (size_t j = 0; j < r.nobjs; j++) {
				if (len + 2048 > cap) {
					cap *= 2;
					s = realloc(s, cap);
				}
				len += (size_t)snprintf(s + len, cap - len,
							"%s|%s|%s|%s|%" PRIu64 "|%d|%d|%s\n",
							bl[i].name, r.objs[j].key,
							r.objs[j].version_id, r.objs[j].etag,
							r.objs[j].size, r.objs[j].delete_marker,
							r.objs[j].is_latest, r.objs[j].meta);
			}
			free(km);
			free(vm);
			km = r.next_marker ? strdup(r.next_marker) : NULL;
			vm = r.next_version_marker ? strdup(r.next_version_marker) : NULL;
			int more = r.truncated;
			core_list_result_clear(&r);
			if (!more)
				break;
		}
		free(km);
		free(vm);
	}
	free(bl);
	return s;
}

static void test_rebuild(void)
{
	char *before = snapshot();
	int64_t head = core_oplog_head(C);
	core_close(C);
	C = NULL;
	CHECK_OK(core_rebuild_index(dir, NULL));
	CHECK_OK(core_open(dir, NULL, &C, NULL));
	char *after = snapshot();
	CHECK(strlen(before) > 1000 && strcmp(before, after) == 0);
	CHECK(core_oplog_head(C) == head);
	size_t n;
	uint8_t *b = get("alpha", "dir/big.bin", NULL, &n);
	uint8_t *d = malloc(10 * 1024 * 1024 + 12345);
	fill(d, 10 * 1024 * 1024 + 12345, 7);
	CHECK(b && n == 10 * 1024 * 1024 + 12345 && memcmp(b, d, n) == 0);
	free(b);
	free(d);
	free(before);
	free(after);
}

static void test_roll_forward(void)
{
	/* simulate a crash after the journal fsync but before the SQLite
	 * commit: put, then rewind meta.db to its state before that put */
	char mp[4300], cp[4400];
	snprintf(mp, sizeof(mp), "%s/meta.db", dir);
	snprintf(cp, sizeof(cp), "%s/meta.db.before", dir);
	core_close(C);
	C = NULL;
	char cmd[9000];
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", mp, cp);
	CHECK(system(cmd) == 0);
	CHECK_OK(core_open(dir, NULL, &C, NULL));
	int64_t head = core_oplog_head(C);
	CHECK_OK(put_str("alpha", "rolled", "forward"));
	core_close(C);
	C = NULL;
	snprintf(cmd, sizeof(cmd), "mv '%s' '%s'", cp, mp);
	CHECK(system(cmd) == 0);
	CHECK_OK(core_open(dir, NULL, &C, NULL));
	size_t n;
	uint8_t *b = get("alpha", "rolled", NULL, &n);
	CHECK(b && n == 7 && memcmp(b, "forward", 7) == 0);
	free(b);
	CHECK(core_oplog_head(C) == head + 1);
	reopen(); /* applying again changes nothing */
	CHECK(core_oplog_head(C) == head + 1);
}

static void test_crash_and_faults(void)
{
	sl_err err = { 0 };
	core_close(C);
	C = NULL;
	/* ENOSPC in the middle of a large object: nothing visible, no oplog entry */
	store_io_fault_cfg cfg = { .enospc_after_bytes = 6 * 1024 * 1024, .eio_after_writes = -1 };
	store_io_fault *f = store_io_fault_new(&cfg);
	core_opts o = { .io = store_io_fault_io(f) };
	CHECK_OK(core_open(dir, &o, &C, NULL));
	int64_t head = core_oplog_head(C);
	size_t big = 9 * 1024 * 1024;
	uint8_t *d = malloc(big);
	fill(d, big, 99);
	int rc = put("alpha", "nospace", d, big, NULL);
	CHECK(rc == SL_ENOSPC);
	core_objinfo oi = { 0 };
	CHECK(core_head(C, "alpha", "nospace", NULL, &oi, &err) == SL_ENOKEY);
	core_objinfo_clear(&oi);
	CHECK(core_oplog_head(C) == head);
	/* space freed: writes succeed again */
	store_io_fault_cfg okc = { .enospc_after_bytes = -1, .eio_after_writes = -1 };
	store_io_fault_set(f, &okc);
	CHECK_OK(put("alpha", "nospace", d, big, NULL));
	CHECK_OK(put_str("alpha", "acked", "durable"));
	/* power loss while a later object is half written */
	core_writer *w;
	CHECK_OK(core_put_begin(C, "alpha", "half", &w, NULL));
	fill(d, big, 100);
	CHECK_OK(core_put_write(w, d, big, NULL)); /* two chunks appended, not committed */
	int64_t head2 = core_oplog_head(C);
	store_io_fault_crash(f, 1000); /* unsynced bytes lost except a torn 1000 */
	core_put_abort(w);
	core_close(C);
	C = NULL;
	store_io_fault_free(f);
	CHECK_OK(core_open(dir, NULL, &C, NULL));
	CHECK(core_oplog_head(C) == head2);
	CHECK(core_head(C, "alpha", "half", NULL, &oi, &err) == SL_ENOKEY);
	core_objinfo_clear(&oi);
	size_t n;
	uint8_t *b = get("alpha", "acked", NULL, &n);
	CHECK(b && n == 7 && memcmp(b, "durable", 7) == 0);
	free(b);
	fill(d, big, 99);
	b = get("alpha", "nospace", NULL, &n);
	CHECK(b && n == big && memcmp(b, d, big) == 0);
	free(b);
	free(d);
	/* failing fsync: the put fails, and is not visible after restart either
	 * unless its journal record made it (then it is complete) */
	core_close(C);
	C = NULL;
	store_io_fault_cfg fs = { .enospc_after_bytes = -1,
				  .eio_after_writes = -1,
				  .fail_fsync = 1 };
	f = store_io_fault_new(&fs);
	o.io = store_io_fault_io(f);
	CHECK_OK(core_open(dir, &o, &C, NULL));
	head = core_oplog_head(C);
	CHECK(put_str("alpha", "nosync", "x") == SL_EIO);
	CHECK(core_oplog_head(C) == head);
	CHECK(core_head(C, "alpha", "nosync", NULL, &oi, &err) == SL_ENOKEY);
	core_objinfo_clear(&oi);
	core_close(C);
	C = NULL;
	store_io_fault_free(f);
	CHECK_OK(core_open(dir, NULL, &C, NULL));
	/* the lock: a second open of the same dir is refused with the holder */
	core *c2 = NULL;
	CHECK(core_open(dir, NULL, &c2, &err) == SL_ELOCKED);
	CHECK(strstr(err.msg, "in use") != NULL);
}

/* core_meta_fields against jansson: whatever it reads must be what jansson
 * gives; it must read the plain metadata the front ends write; anything else
 * it must hand back (return 0). Hand-picked cases, then mutations. */
static int meta_fields_agree(const char *meta, const char *const *names, size_t n)
{
	char vals[4][CORE_META_FIELD_MAX];
	unsigned found;
	if (!core_meta_fields(meta, names, n, vals, &found))
		return 1; /* not read: the caller parses it */
	json_t *j = json_loads(meta, 0, NULL);
	if (!j || !json_is_object(j)) {
		json_decref(j);
		return 0; /* read something jansson refuses */
	}
	int ok = 1;
	for (size_t i = 0; i < n; i++) {
		const char *v = json_string_value(json_object_get(j, names[i]));
		int has = (found >> i) & 1;
		if (has != (v != NULL) || (v && strcmp(v, vals[i]) != 0))
			ok = 0;
	}
	json_decref(j);
	return ok;
}

static void test_meta_fields(void)
{
	const char *names[] = { "x-amz-meta-mode", "x-amz-meta-uid", "content-type", "a" };
	char vals[4][CORE_META_FIELD_MAX];
	unsigned found;
	const char *plain = "{\"content-type\":\"text/plain\",\"x-amz-meta-mode\":\"33188\","
			    "\"x-amz-meta-mtime\":\"1795420783.418000000\"}";
	CHECK(core_meta_fields(plain, names, 4, vals, &found) == 1);
	CHECK(found == 5 && strcmp(vals[0], "33188") == 0 && strcmp(vals[2], "text/plain") == 0);
	CHECK(core_meta_fields(" { } ", names, 4, vals, &found) == 1 && found == 0);
	CHECK(core_meta_fields(NULL, names, 4, vals, &found) == 1 && found == 0);
	CHECK(core_meta_fields("{\"a\":\"1\",\"a\":\"2\"}", names, 4, vals, &found) == 1 &&
	      found == 8 && strcmp(vals[3], "2") == 0);
	/* handed back: escapes, UTF-8, non-strings, bad JSON, trailing bytes */
	const char *back[] = { "{\"a\":\"x\\\"y\"}",
			       "{\"a\":\"caf\xc3\xa9\"}",
			       "{\"a\":1}",
			       "{\"a\":\"1\",}",
			       "{\"a\":\"1\"} x",
			       "{\"a\" \"1\"}",
			       "[]",
			       "{\"a\":\"1\"",
			       "",
			       "{\"a\":{\"b\":\"c\"}}" };
	for (size_t i = 0; i < sizeof(back) / sizeof(back[0]); i++)
		CHECK(core_meta_fields(back[i], names, 4, vals, &found) == 0);
	char big[200];
	snprintf(big, sizeof(big), "{\"a\":\"%0100d\"}", 7);
	CHECK(core_meta_fields(big, names, 4, vals, &found) == 0);
	/* mutations of plain metadata: agree with jansson or hand back */
	const char alpha[] = "{}[]:,\"\\ \tau0123x-.\x01\x7f\xc3";
	uint64_t rnd = 88172645463325252ull;
	int bad = 0, read = 0;
	for (int t = 0; t < 200000; t++) {
		char buf[256];
		snprintf(buf, sizeof(buf), "%s", plain);
		size_t len = strlen(buf);
		int edits = 1 + (int)(rnd % 4);
		for (int e = 0; e < edits && len > 0; e++) {
			rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
			size_t at = (size_t)(rnd % len);
			char ch = alpha[(rnd >> 20) % (sizeof(alpha) - 1)];
			switch ((rnd >> 40) % 3) {
			case 0:
				buf[at] = ch;
				break; /* replace */
			case 1:	       /* insert */
				if (len + 1 < sizeof(buf)) {
					memmove(buf + at + 1, buf + at, len - at + 1);
					buf[at] = ch;
					len++;
				}
				break;
			default: /* delete */
				memmove(buf + at, buf + at + 1, len - at);
				len--;
			}
		}
		if (!meta_fields_agree(buf, names, 4)) {
			if (bad++ < 5)
				fprintf(stderr, "core_meta_fields differs from jansson on: %s\n",
					buf);
		}
		read += core_meta_fields(buf, names, 4, vals, &found);
	}
	CHECK(bad == 0);
	CHECK(read > 1000); /* the mutations did exercise the reading path */
}

int main(void)
{
	dir = check_tmpdir();
	char sub[4200];
	snprintf(sub, sizeof(sub), "%s/lake", dir);
	sl_err err = { 0 };
	CHECK_OK(core_init(sub, &err));
	CHECK(core_init(sub, &err) == SL_EEXIST);
	free(dir);
	dir = strdup(sub);
	CHECK_OK(core_open(dir, NULL, &C, &err));
	if (!C)
		return check_done("core");
	test_meta_fields();
	test_buckets();
	test_put_get();
	test_pipeline();
	test_conditions();
	test_versioning();
	test_copy_rename();
	test_listing();
	test_listing_scale();
	test_name_stat();
	test_concurrency_and_oplog();
	test_hlc();
	test_multipart();
	test_rebuild();
	test_roll_forward();
	test_crash_and_faults();
	core_close(C);
	*strrchr(dir, '/') = 0;
	check_rmrf(dir);
	free(dir);
	return check_done("core");
}
