/*
 * test_store.c - segment format and segment manager: encode/decode, append
 * and read back, scan order, torn-tail recovery, corruption inside committed
 * data, fault injection (ENOSPC, short writes, failing fsync), rotation.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "common/crc32c.h"
#include "store/segment.h"
#include "store/store.h"

typedef struct scanlog {
	int chunks, journals;
	store_pos last_end;
	char last_journal[256];
} scanlog;

static int scan_cb(void *ctx, int type, const uint8_t *hash, const uint8_t *payload, store_loc loc,
		   store_pos end)
{
	(void)hash;
	(void)loc;
	scanlog *l = ctx;
	if (type == SEG_REC_CHUNK)
		l->chunks++;
	else {
		l->journals++;
		snprintf(l->last_journal, sizeof(l->last_journal), "%s", payload);
	}
	l->last_end = end;
	return 0;
}

static void chunk(store *s, const char *text, store_loc *loc)
{
	uint8_t h[32];
	SHA256((const uint8_t *)text, strlen(text), h);
	CHECK_OK(store_append(s, SEG_REC_CHUNK, h, text, (uint32_t)strlen(text), loc, NULL, NULL));
}

static void test_format(void)
{
	CHECK(sl_crc32c(0, "123456789", 9) == 0xE3069283u);
	seg_header h = { .id = 42, .created_ms = 1234 }, d;
	memcpy(h.node, "0123456789abcdef", 17);
	uint8_t b[SEG_HEADER_SIZE];
	seg_header_encode(&h, b);
	CHECK(seg_header_decode(b, sizeof(b), &d) == 0 && d.id == 42 && d.created_ms == 1234 &&
	      strcmp(d.node, h.node) == 0);
	b[20] ^= 1;
	CHECK(seg_header_decode(b, sizeof(b), &d) < 0);
	uint8_t r[SEG_REC_HEADER];
	seg_rec rr;
	seg_rec_encode(SEG_REC_JOURNAL, 10, 77, r);
	CHECK(seg_rec_decode(r, sizeof(r), &rr) == 0 && rr.payload_len == 10 &&
	      rr.payload_crc == 77 && rr.type == SEG_REC_JOURNAL);
	r[9] ^= 0x40;
	CHECK(seg_rec_decode(r, sizeof(r), &rr) < 0);
	CHECK(seg_rec_decode(r, 5, &rr) < 0);
}

static void test_append_read_scan(void)
{
	char *dir = check_tmpdir();
	store *s;
	CHECK_OK(store_open(dir, NULL, (store_pos){ 0, 0 }, &s, NULL));
	store_loc a, b, j;
	chunk(s, "hello chunk", &a);
	chunk(s, "second", &b);
	const char *js = "{\"ops\":[]}";
	CHECK_OK(store_append(s, SEG_REC_JOURNAL, NULL, js, (uint32_t)strlen(js), &j, NULL, NULL));
	CHECK_OK(store_sync(s, NULL));
	char buf[32] = { 0 };
	CHECK_OK(store_read(s, a.seg, a.off, buf, a.len, NULL));
	CHECK(memcmp(buf, "hello chunk", 11) == 0);
	CHECK_OK(store_read(s, b.seg, b.off + 2, buf, 4, NULL));
	CHECK(memcmp(buf, "cond", 4) == 0);
	scanlog l = { 0 };
	CHECK_OK(store_scan(s, (store_pos){ 0, 0 }, scan_cb, &l, NULL));
	CHECK(l.chunks == 2 && l.journals == 1 && strcmp(l.last_journal, js) == 0);
	store_close(s);
	/* reopen: continues the same open segment */
	CHECK_OK(store_open(dir, NULL, (store_pos){ 0, 0 }, &s, NULL));
	store_loc c2;
	chunk(s, "third", &c2);
	CHECK(c2.seg == a.seg);
	store_close(s);
	check_rmrf(dir);
	free(dir);
}

static void test_torn_tail(void)
{
	char *dir = check_tmpdir();
	store *s;
	CHECK_OK(store_open(dir, NULL, (store_pos){ 0, 0 }, &s, NULL));
	store_loc a;
	store_pos end;
	chunk(s, "committed data", &a);
	const char *js = "{\"ops\":[1]}";
	CHECK_OK(
		store_append(s, SEG_REC_JOURNAL, NULL, js, (uint32_t)strlen(js), NULL, &end, NULL));
	CHECK_OK(store_sync(s, NULL));
	store_close(s);
	/* a torn record: a valid header promising more bytes than exist */
	char path[4300];
	snprintf(path, sizeof(path), "%s/seg-%016llx.sl", dir, (unsigned long long)a.seg);
	int fd = open(path, O_WRONLY | O_APPEND);
	uint8_t h[SEG_REC_HEADER];
	seg_rec_encode(SEG_REC_JOURNAL, 1000, 0, h);
	CHECK(write(fd, h, sizeof(h)) == (ssize_t)sizeof(h));
	CHECK(write(fd, "partial", 7) == 7);
	close(fd);
	struct stat st;
	stat(path, &st);
	CHECK((uint64_t)st.st_size == end.off + SEG_REC_HEADER + 7);
	CHECK_OK(store_open(dir, NULL, end, &s, NULL));
	stat(path, &st);
	CHECK((uint64_t)st.st_size == end.off); /* tail cut */
	scanlog l = { 0 };
	CHECK_OK(store_scan(s, (store_pos){ 0, 0 }, scan_cb, &l, NULL));
	CHECK(l.chunks == 1 && l.journals == 1);
	store_close(s);

	/* a damaged record header after the committed position is a torn tail
	 * too; before it, it is corruption of committed data and is refused */
	CHECK_OK(store_open(dir, NULL, end, &s, NULL));
	store_pos end2;
	CHECK_OK(store_append(s, SEG_REC_JOURNAL, NULL, "{\"x\":2}", 7, NULL, &end2, NULL));
	store_close(s);
	fd = open(path, O_RDWR);
	CHECK(pwrite(fd, "X", 1, (off_t)end.off) == 1);
	close(fd);
	sl_err err = { 0 };
	CHECK(store_open(dir, NULL, (store_pos){ end2.seg, end2.off }, &s, &err) == SL_ECORRUPT);
	CHECK(strstr(err.msg, "committed") != NULL);
	CHECK_OK(store_open(dir, NULL, end, &s, NULL));
	stat(path, &st);
	CHECK((uint64_t)st.st_size == end.off);
	store_close(s);
	check_rmrf(dir);
	free(dir);
}

static void test_faults(void)
{
	char *dir = check_tmpdir();
	store_io_fault_cfg cfg = { .enospc_after_bytes = 300, .eio_after_writes = -1 };
	store_io_fault *f = store_io_fault_new(&cfg);
	store_opts o = { .io = store_io_fault_io(f) };
	store *s;
	CHECK_OK(store_open(dir, &o, (store_pos){ 0, 0 }, &s, NULL));
	store_loc a;
	chunk(s, "small", &a);
	char big[512];
	memset(big, 'b', sizeof(big));
	uint8_t h[32];
	SHA256((uint8_t *)big, sizeof(big), h);
	sl_err err = { 0 };
	store_pos tail_before = store_tail(s);
	CHECK(store_append(s, SEG_REC_CHUNK, h, big, sizeof(big), NULL, NULL, &err) == SL_ENOSPC);
	store_pos tail_after = store_tail(s);
	CHECK(tail_before.off == tail_after.off); /* no partial record left */
	/* space comes back: appends work again */
	store_io_fault_cfg ok = { .enospc_after_bytes = -1,
				  .eio_after_writes = -1,
				  .short_writes = 1 };
	store_io_fault_set(f, &ok);
	CHECK_OK(store_append(s, SEG_REC_CHUNK, h, big, sizeof(big), NULL, NULL, NULL));
	/* a failing fsync reports the error and refuses further appends */
	store_io_fault_cfg bad = { .enospc_after_bytes = -1,
				   .eio_after_writes = -1,
				   .fail_fsync = 1 };
	store_io_fault_set(f, &bad);
	CHECK(store_sync(s, &err) == SL_EIO);
	CHECK(store_append(s, SEG_REC_CHUNK, h, big, sizeof(big), NULL, NULL, &err) == SL_EIO);
	store_close(s);
	store_io_fault_free(f);
	/* after a restart the data is readable with the real backend */
	CHECK_OK(store_open(dir, NULL, (store_pos){ 0, 0 }, &s, NULL));
	scanlog l = { 0 };
	CHECK_OK(store_scan(s, (store_pos){ 0, 0 }, scan_cb, &l, NULL));
	CHECK(l.chunks == 2);
	store_close(s);
	check_rmrf(dir);
	free(dir);
}

static void test_rotation(void)
{
	char *dir = check_tmpdir();
	store_opts o = { .segment_max_bytes = 4096 };
	store *s;
	CHECK_OK(store_open(dir, &o, (store_pos){ 0, 0 }, &s, NULL));
	char buf[1000];
	store_loc first = { 0 }, last = { 0 };
	for (int i = 0; i < 20; i++) {
		memset(buf, 'a' + i, sizeof(buf));
		uint8_t h[32];
		SHA256((uint8_t *)buf, sizeof(buf), h);
		CHECK_OK(store_append(s, SEG_REC_CHUNK, h, buf, sizeof(buf), &last, NULL, NULL));
		if (i == 0)
			first = last;
	}
	CHECK(last.seg > first.seg);
	store_stats ss;
	store_stats_get(s, &ss);
	CHECK(ss.segments >= 5);
	char rb[1000];
	CHECK_OK(store_read(s, first.seg, first.off, rb, sizeof(rb), NULL));
	CHECK(rb[0] == 'a' && rb[999] == 'a');
	CHECK_OK(store_seal(s, NULL));
	store_close(s);
	/* every record survives a reopen; sealed segments are not appended to */
	CHECK_OK(store_open(dir, &o, (store_pos){ 0, 0 }, &s, NULL));
	scanlog l = { 0 };
	CHECK_OK(store_scan(s, (store_pos){ 0, 0 }, scan_cb, &l, NULL));
	CHECK(l.chunks == 20);
	store_loc nl;
	memset(buf, 'z', sizeof(buf));
	uint8_t h[32];
	SHA256((uint8_t *)buf, sizeof(buf), h);
	CHECK_OK(store_append(s, SEG_REC_CHUNK, h, buf, sizeof(buf), &nl, NULL, NULL));
	CHECK(nl.seg > last.seg);
	store_close(s);
	check_rmrf(dir);
	free(dir);
}

/* COLD chunk appends (O_DIRECT from an aligned copy where the filesystem can;
 * after the first, staged for the store's writer thread): the rewritten first
 * block keeps the records before it intact, the zero padding (and the space
 * allocated ahead) after the record is never read as a record (scan of the
 * open segment), is cut by seal and close, and a crash that leaves padding
 * plus a torn record is cut back to the last record on recovery. */
static void test_cold_append(void)
{
	char *dir = check_tmpdir();
	store *s;
	CHECK_OK(store_open(dir, NULL, (store_pos){ 0, 0 }, &s, NULL));
	uint32_t n = (1u << 20) + 4099; /* neither length nor position block-aligned */
	uint8_t *big = malloc(n);
	for (uint32_t i = 0; i < n; i++)
		big[i] = (uint8_t)(i * 7 + (i >> 11));
	uint8_t h1[32], h2[32];
	SHA256(big, n, h1);
	const char *j1 = "{\"before\":1}", *j2 = "{\"between\":2}";
	store_loc lj1, lc1, lc2;
	store_pos end;
	CHECK_OK(
		store_append(s, SEG_REC_JOURNAL, NULL, j1, (uint32_t)strlen(j1), &lj1, NULL, NULL));
	CHECK_OK(store_append(s, SEG_REC_CHUNK | STORE_APPEND_COLD, h1, big, n, &lc1, NULL, NULL));
	CHECK_OK(
		store_append(s, SEG_REC_JOURNAL, NULL, j2, (uint32_t)strlen(j2), NULL, NULL, NULL));
	big[0] ^= 0x5a;
	SHA256(big, n, h2);
	CHECK_OK(store_append(s, SEG_REC_CHUNK | STORE_APPEND_COLD, h2, big, n, &lc2, &end, NULL));
	CHECK_OK(store_sync(s, NULL)); /* the staged write has landed */
	char path[4300];
	snprintf(path, sizeof(path), "%s/seg-%016llx.sl", dir, (unsigned long long)end.seg);
	struct stat st;
	CHECK(stat(path, &st) == 0 && (uint64_t)st.st_size >= end.off);
	int padded = (uint64_t)st.st_size > end.off;
	if (padded) {
		/* the direct path ran: what follows the record is zeros */
		uint8_t pad[STORE_IO_DIRECT_ALIGN];
		int fd = open(path, O_RDONLY);
		size_t pn = (size_t)((uint64_t)st.st_size - end.off);
		if (pn > sizeof(pad))
			pn = sizeof(pad); /* space allocated ahead reads as zeros too */
		CHECK(pread(fd, pad, pn, (off_t)end.off) == (ssize_t)pn);
		for (size_t i = 0; i < pn; i++)
			CHECK(pad[i] == 0);
		close(fd);
	} else {
		fprintf(stderr, "note: no O_DIRECT on %s, COLD appends were plain\n", dir);
	}
	/* every record reads back whole and checked */
	uint8_t *back = malloc(n);
	char jb[64] = { 0 };
	CHECK_OK(store_read(s, lj1.seg, lj1.off, jb, lj1.len, NULL));
	CHECK(strcmp(jb, j1) == 0);
	CHECK_OK(store_read_chunk(s, lc2, h2, back, NULL));
	CHECK(memcmp(back, big, n) == 0);
	big[0] ^= 0x5a;
	CHECK_OK(store_read_chunk(s, lc1, h1, back, NULL));
	CHECK(memcmp(back, big, n) == 0);
	/* a scan of the open segment stops at the tail, not at the padding */
	scanlog l = { 0 };
	CHECK_OK(store_scan(s, (store_pos){ 0, 0 }, scan_cb, &l, NULL));
	CHECK(l.chunks == 2 && l.journals == 2 && l.last_end.off == end.off);
	/* the next plain append overwrites the padding */
	store_pos end3;
	CHECK_OK(store_append(s, SEG_REC_JOURNAL, NULL, "{\"after\":3}", 11, NULL, &end3, NULL));
	CHECK_OK(store_sync(s, NULL));
	store_close(s);
	CHECK(stat(path, &st) == 0 && (uint64_t)st.st_size == end3.off); /* close cut padding */

	/* a crash after a direct append: padding, then a torn record header
	 * and part of its data; recovery cuts all of it, nothing else */
	int fd = open(path, O_WRONLY);
	uint8_t junk[STORE_IO_DIRECT_ALIGN * 2] = { 0 };
	seg_rec_encode(SEG_REC_CHUNK, n + 32, 0, junk + 100);
	memset(junk + 100 + SEG_REC_HEADER, 0xab, 2000);
	CHECK(pwrite(fd, junk, sizeof(junk), (off_t)end3.off) == (ssize_t)sizeof(junk));
	close(fd);
	CHECK_OK(store_open(dir, NULL, end3, &s, NULL));
	CHECK(stat(path, &st) == 0 && (uint64_t)st.st_size == end3.off);
	memset(&l, 0, sizeof(l));
	CHECK_OK(store_scan(s, (store_pos){ 0, 0 }, scan_cb, &l, NULL));
	CHECK(l.chunks == 2 && l.journals == 3 && l.last_end.off == end3.off);
	CHECK_OK(store_read_chunk(s, lc1, h1, back, NULL));
	/* seal after a direct append: the footer follows the last record */
	CHECK_OK(store_append(s, SEG_REC_CHUNK | STORE_APPEND_COLD, h1, big, n, NULL, &end, NULL));
	CHECK_OK(store_seal(s, NULL));
	store_close(s);
	CHECK(stat(path, &st) == 0 && (uint64_t)st.st_size > end.off &&
	      (uint64_t)st.st_size < end.off + 200); /* the footer, no padding before it */
	CHECK_OK(store_open(dir, NULL, end, &s, NULL));
	struct stat st2;
	CHECK(stat(path, &st2) == 0 && st2.st_size == st.st_size); /* nothing cut */
	memset(&l, 0, sizeof(l));
	CHECK_OK(store_scan(s, (store_pos){ 0, 0 }, scan_cb, &l, NULL));
	CHECK(l.chunks == 3 && l.journals == 3);
	store_close(s);
	free(back);
	free(big);
	check_rmrf(dir);
	free(dir);
}

/* Many threads appending COLD chunks, journal records and syncs at once to
 * small segments (so seals happen with writes staged): every chunk reads back
 * right after its append returns (a read waits for a staged write) and after
 * a reopen; a scan finds every record; sizes are neither block-aligned nor
 * equal, so records share blocks with their neighbours. */
#define CC_THREADS 4
#define CC_EACH 12
typedef struct cc_rec {
	uint8_t hash[32];
	uint32_t len, seed;
	store_loc loc;
} cc_rec;
typedef struct cc_arg {
	store *s;
	int t, fails;
	cc_rec recs[CC_EACH];
} cc_arg;

static void cc_fill(uint8_t *b, uint32_t len, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;
	for (uint32_t i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		b[i] = (uint8_t)(x >> 16);
	}
}

static void *cc_main(void *p)
{
	cc_arg *a = p;
	uint32_t max = (1u << 20) + 40000;
	uint8_t *b = malloc(max), *back = malloc(max);
	for (int i = 0; i < CC_EACH; i++) {
		cc_rec *r = &a->recs[i];
		r->seed = (uint32_t)(a->t * 1000 + i);
		r->len = (1u << 20) + 1 + (r->seed * 7919u) % 39000u;
		cc_fill(b, r->len, r->seed);
		SHA256(b, r->len, r->hash);
		if (store_append(a->s, SEG_REC_CHUNK | STORE_APPEND_COLD, r->hash, b, r->len,
				 &r->loc, NULL, NULL) != 0) {
			a->fails++;
			continue;
		}
		char j[64];
		int jn = snprintf(j, sizeof(j), "{\"t\":%d,\"i\":%d}", a->t, i);
		if (store_append(a->s, SEG_REC_JOURNAL, NULL, j, (uint32_t)jn, NULL, NULL, NULL))
			a->fails++;
		if (store_read_chunk(a->s, r->loc, r->hash, back, NULL) != 0 ||
		    memcmp(back, b, r->len) != 0)
			a->fails++;
		if (i % 5 == 4 && store_sync(a->s, NULL) != 0)
			a->fails++;
	}
	free(b);
	free(back);
	return NULL;
}

static void test_concurrent_cold_appends(void)
{
	char *dir = check_tmpdir();
	store *s;
	store_opts o = { .segment_max_bytes = 6u << 20 };
	CHECK_OK(store_open(dir, &o, (store_pos){ 0, 0 }, &s, NULL));
	cc_arg args[CC_THREADS];
	pthread_t th[CC_THREADS];
	for (int t = 0; t < CC_THREADS; t++) {
		memset(&args[t], 0, sizeof(args[t]));
		args[t].s = s;
		args[t].t = t;
		CHECK(pthread_create(&th[t], NULL, cc_main, &args[t]) == 0);
	}
	for (int t = 0; t < CC_THREADS; t++) {
		pthread_join(th[t], NULL);
		CHECK(args[t].fails == 0);
	}
	scanlog l = { 0 };
	CHECK_OK(store_scan(s, (store_pos){ 0, 0 }, scan_cb, &l, NULL));
	CHECK(l.chunks == CC_THREADS * CC_EACH && l.journals == CC_THREADS * CC_EACH);
	CHECK_OK(store_sync(s, NULL));
	store_close(s);
	CHECK_OK(store_open(dir, &o, (store_pos){ 0, 0 }, &s, NULL));
	memset(&l, 0, sizeof(l));
	CHECK_OK(store_scan(s, (store_pos){ 0, 0 }, scan_cb, &l, NULL));
	CHECK(l.chunks == CC_THREADS * CC_EACH && l.journals == CC_THREADS * CC_EACH);
	uint8_t *b = malloc((1u << 20) + 40000), *back = malloc((1u << 20) + 40000);
	for (int t = 0; t < CC_THREADS; t++)
		for (int i = 0; i < CC_EACH; i++) {
			cc_rec *r = &args[t].recs[i];
			cc_fill(b, r->len, r->seed);
			CHECK_OK(store_read_chunk(s, r->loc, r->hash, back, NULL));
			CHECK(memcmp(back, b, r->len) == 0);
		}
	free(b);
	free(back);
	store_close(s);
	check_rmrf(dir);
	free(dir);
}

/* A staged direct write that fails in the writer thread (EIO): the sync that
 * covers it fails, later appends are refused, a read of it fails instead of
 * returning what is not there, and after a restart the chunks synced before
 * it are intact while it is gone. */
static void test_staged_write_fails(void)
{
	char *dir = check_tmpdir();
	store_io_fault_cfg cfg = { .enospc_after_bytes = -1, .eio_after_writes = -1, .direct = 1 };
	store_io_fault *f = store_io_fault_new(&cfg);
	store_opts o = { .io = store_io_fault_io(f) };
	store *s;
	CHECK_OK(store_open(dir, &o, (store_pos){ 0, 0 }, &s, NULL));
	uint32_t n = (1u << 20) + 123;
	uint8_t *b = malloc(n), *back = malloc(n);
	cc_fill(b, n, 7);
	uint8_t h[4][32];
	store_loc loc[4];
	for (int i = 0; i < 3; i++) {
		b[0] = (uint8_t)i;
		SHA256(b, n, h[i]);
		CHECK_OK(store_append(s, SEG_REC_CHUNK | STORE_APPEND_COLD, h[i], b, n, &loc[i],
				      NULL, NULL));
	}
	CHECK_OK(store_sync(s, NULL));
	store_io_fault_cfg bad = { .enospc_after_bytes = -1, .eio_after_writes = 0, .direct = 1 };
	store_io_fault_set(f, &bad);
	b[0] = 3;
	SHA256(b, n, h[3]);
	sl_err err = { 0 };
	CHECK_OK(store_append(s, SEG_REC_CHUNK | STORE_APPEND_COLD, h[3], b, n, &loc[3], NULL,
			      NULL)); /* staged: the write fails later */
	CHECK(store_sync(s, &err) == SL_EIO);
	CHECK(store_read_chunk(s, loc[3], h[3], back, &err) == SL_EIO);
	CHECK(store_append(s, SEG_REC_JOURNAL, NULL, "{}", 2, NULL, NULL, &err) == SL_EIO);
	store_close(s);
	store_io_fault_free(f);
	CHECK_OK(store_open(dir, NULL, (store_pos){ 0, 0 }, &s, NULL));
	scanlog l = { 0 };
	CHECK_OK(store_scan(s, (store_pos){ 0, 0 }, scan_cb, &l, NULL));
	CHECK(l.chunks == 3 && l.journals == 0);
	for (int i = 0; i < 3; i++) {
		b[0] = (uint8_t)i;
		CHECK_OK(store_read_chunk(s, loc[i], h[i], back, NULL));
		CHECK(memcmp(back, b, n) == 0);
	}
	store_close(s);
	free(b);
	free(back);
	check_rmrf(dir);
	free(dir);
}

/* Reads one chunk with store_read_chunk_direct into a fresh aligned buffer;
 * 1 where the store cannot read with O_DIRECT, else its result. */
static int direct_read(store *s, store_loc loc, const uint8_t h[32], const uint8_t *want,
		       sl_err *err)
{
	void *buf = NULL;
	CHECK(posix_memalign(&buf, STORE_IO_DIRECT_ALIGN, STORE_DIRECT_READ_CAP(loc.len)) == 0);
	memset(buf, 0xee, STORE_DIRECT_READ_CAP(loc.len));
	size_t off = 7;
	int rc = store_read_chunk_direct(s, loc, h, buf, &off, err);
	if (rc == 0) {
		CHECK(off + loc.len <= STORE_DIRECT_READ_CAP(loc.len));
		CHECK(memcmp((uint8_t *)buf + off, want, loc.len) == 0);
	}
	free(buf);
	return rc;
}

/* Direct chunk reads: records at unaligned positions, written plain and with
 * O_DIRECT, in the open segment and at the unaligned end of a sealed one;
 * damage made through the page cache is seen; an io without O_DIRECT makes
 * it answer 1 and read nothing. */
static void test_direct_read(void)
{
	char *dir = check_tmpdir();
	store *s;
	CHECK_OK(store_open(dir, NULL, (store_pos){ 0, 0 }, &s, NULL));
	uint32_t n = (1u << 20) + 4099;
	uint8_t *big = malloc(n);
	for (uint32_t i = 0; i < n; i++)
		big[i] = (uint8_t)(i * 13 + (i >> 9));
	uint8_t hp[32], hc[32], hs[32];
	SHA256(big, n, hp);
	store_loc lp, lc, ls;
	store_pos end;
	CHECK_OK(store_append(s, SEG_REC_JOURNAL, NULL, "{\"j\":1}", 7, NULL, NULL, NULL));
	CHECK_OK(store_append(s, SEG_REC_CHUNK, hp, big, n, &lp, NULL, NULL)); /* plain */
	big[1] ^= 0x77;
	SHA256(big, n, hc);
	CHECK_OK(store_append(s, SEG_REC_CHUNK | STORE_APPEND_COLD, hc, big, n, &lc, NULL, NULL));
	const char *small = "a small chunk at the end";
	SHA256((const uint8_t *)small, strlen(small), hs);
	CHECK_OK(store_append(s, SEG_REC_CHUNK, hs, small, (uint32_t)strlen(small), &ls, &end,
			      NULL));
	CHECK((lp.off - SEG_REC_HEADER - 32) % STORE_IO_DIRECT_ALIGN != 0);
	CHECK_OK(store_sync(s, NULL));
	char path[4300];
	snprintf(path, sizeof(path), "%s/seg-%016llx.sl", dir, (unsigned long long)end.seg);
	const store_io *io = store_io_posix();
	int cfd = open(path, O_RDONLY);
	CHECK(cfd >= 0);
	sl_err err = { 0 };
	/* the cold one, written past the page cache */
	int rc = direct_read(s, lc, hc, big, &err);
	CHECK(rc == 0 || rc == 1);
	if (rc == 1) {
		fprintf(stderr, "note: no O_DIRECT reads on %s\n", dir);
	} else {
		/* the plain ones are in the page cache: read there where the
		 * kernel can tell (cachestat), else from the disk */
		const off_t hl = SEG_REC_HEADER + 32;
		int pc = io->cached(io, cfd, (off_t)lp.off - hl, hl + lp.len) == 1;
		int sc = io->cached(io, cfd, (off_t)ls.off - hl, hl + ls.len) == 1;
		if (!sc)
			fprintf(stderr, "note: the page cache cannot be asked here\n");
		big[1] ^= 0x77;
		CHECK(direct_read(s, lp, hp, big, NULL) == (pc ? 1 : 0));
		big[1] ^= 0x77;
		CHECK(direct_read(s, ls, hs, (const uint8_t *)small, NULL) == (sc ? 1 : 0));
		/* out of the page cache, they come from the disk */
		CHECK(posix_fadvise(cfd, 0, 0, POSIX_FADV_DONTNEED) == 0);
		CHECK(io->cached(io, cfd, (off_t)ls.off, ls.len) != 1);
		big[1] ^= 0x77;
		CHECK_OK(direct_read(s, lp, hp, big, NULL));
		big[1] ^= 0x77;
		CHECK_OK(direct_read(s, ls, hs, (const uint8_t *)small, NULL));
		/* an unaligned buffer is not read into */
		uint8_t *ub = malloc(STORE_DIRECT_READ_CAP(ls.len) + 1);
		size_t off = 0;
		CHECK(store_read_chunk_direct(s, ls, hs, ub + 1, &off, NULL) == 1);
		free(ub);
		/* the wrong hash */
		CHECK(direct_read(s, ls, hp, (const uint8_t *)small, &err) == SL_ECORRUPT);
		/* the unaligned end of a sealed segment */
		CHECK_OK(store_seal(s, NULL));
		struct stat st;
		CHECK(stat(path, &st) == 0 && (uint64_t)st.st_size % STORE_IO_DIRECT_ALIGN != 0);
		CHECK(fdatasync(cfd) == 0 && posix_fadvise(cfd, 0, 0, POSIX_FADV_DONTNEED) == 0);
		CHECK_OK(direct_read(s, ls, hs, (const uint8_t *)small, NULL));
		/* a byte changed through the page cache (only its page is there) */
		int fd = open(path, O_WRONLY);
		uint8_t x = big[100] ^ 1;
		CHECK(pwrite(fd, &x, 1, (off_t)(lc.off + 100)) == 1);
		close(fd);
		CHECK(direct_read(s, lc, hc, big, &err) == SL_ECORRUPT);
		CHECK(strstr(err.msg, "damaged") != NULL);
		uint8_t *scratch = malloc(n);
		CHECK(store_read_chunk(s, lc, hc, scratch, NULL) == SL_ECORRUPT);
		free(scratch);
		fd = open(path, O_WRONLY);
		CHECK(pwrite(fd, &big[100], 1, (off_t)(lc.off + 100)) == 1);
		close(fd);
		CHECK_OK(direct_read(s, lc, hc, big, NULL));
	}
	close(cfd);
	store_close(s);
	/* an io that refuses O_DIRECT: 1, nothing read, plain reads still work */
	store_io_fault_cfg cfg = { .enospc_after_bytes = -1, .eio_after_writes = -1, .direct = 0 };
	store_io_fault *f = store_io_fault_new(&cfg);
	store_opts o = { .io = store_io_fault_io(f) };
	CHECK_OK(store_open(dir, &o, (store_pos){ 0, 0 }, &s, NULL));
	CHECK(direct_read(s, ls, hs, (const uint8_t *)small, NULL) == 1);
	uint8_t back[64] = { 0 };
	CHECK_OK(store_read_chunk(s, ls, hs, back, NULL));
	CHECK(memcmp(back, small, strlen(small)) == 0);
	store_close(s);
	store_io_fault_free(f);
	free(big);
	check_rmrf(dir);
	free(dir);
}

/* The posix io's page-cache question (cachestat): a file just written is in
 * the page cache, then not once dropped from it, then one page of it is. */
static void test_io_cached(void)
{
	char *dir = check_tmpdir();
	char path[4200];
	snprintf(path, sizeof(path), "%s/f", dir);
	size_t len = 3 * (1u << 20) + 5000;
	uint8_t *data = malloc(len);
	memset(data, 'c', len);
	int fd = open(path, O_CREAT | O_RDWR, 0600);
	CHECK(fd >= 0 && write(fd, data, len) == (ssize_t)len);
	const store_io *io = store_io_posix();
	int c = io->cached(io, fd, 4096, (off_t)len - 4096);
	CHECK(c == 1 || c == -ENOSYS || c == -EPERM);
	if (c == 1) {
		CHECK(fdatasync(fd) == 0 && posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0);
		CHECK(io->cached(io, fd, 4096, (off_t)len - 4096) == 0);
		char one; /* one page, without read-ahead */
		CHECK(posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM) == 0);
		CHECK(pread(fd, &one, 1, 8192) == 1);
		CHECK(io->cached(io, fd, 8192, 1) == 1 && io->cached(io, fd, 8000, 200) == 0);
		CHECK(io->cached(io, fd, 0, (off_t)len) == 0);
	} else {
		fprintf(stderr, "note: this kernel cannot tell what is in the page cache\n");
	}
	CHECK(io->cached(io, fd, 0, 0) == -EINVAL);
	close(fd);
	free(data);
	check_rmrf(dir);
	free(dir);
}

int main(void)
{
	test_format();
	test_append_read_scan();
	test_torn_tail();
	test_faults();
	test_rotation();
	test_cold_append();
	test_concurrent_cold_appends();
	test_staged_write_fails();
	test_direct_read();
	test_io_cached();
	return check_done("store");
}
