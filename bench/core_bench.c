/*
 * core_bench.c - throughput benchmark of the core object API (core/core.h)
 * on a throw-away data dir: a large streaming write and a cold sequential
 * read, then many small durable puts from concurrent writer threads.
 *
 * Prints human-readable lines plus one "RESULT name value unit" line per
 * figure, which bench/run-core.sh puts next to the raw-disk ceilings. It
 * measures; it asserts no targets. It does check that what it reads back is
 * what it wrote and that dedupe did not shrink the work (every 4 MiB chunk
 * and every small object carries a unique stamp over random bytes).
 *
 * Not here: raw-disk measurements (fio/dd in run-core.sh), the S3 or FUSE
 * front ends, correctness tests (tests/unit).
 */
#include <assert.h>
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "core/core.h"

#define BENCH_MIB (1024u * 1024u)
#define BENCH_STAMP 16 /* bytes of (nonce, index) written over each piece */
#define BENCH_LARGE_BUCKET "bench-large"
#define BENCH_SMALL_BUCKET "bench-small"

/* The one context struct: options, the data dir, the random pool, results. */
typedef struct bench_ctx {
	/* options */
	const char *parent;
	uint64_t large_mib;
	unsigned small_count;
	unsigned writers;
	unsigned small_size;
	unsigned piece_kib;
	int drop_cache;
	int keep;
	/* state */
	char tmpdir[PATH_MAX - 8];
	char lakedir[PATH_MAX + 8];
	core *c;
	uint8_t *pool; /* random bytes, CORE_CHUNK_SIZE + small_size */
	size_t pool_len;
	uint64_t nonce; /* random per run, part of every stamp */
	/* small-put worker state, shared only through these fields */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int go; /* set once all workers are ready */
	unsigned ready;
} bench_ctx;

/* One small-put worker: its share of the objects and its latencies. */
typedef struct bench_worker {
	bench_ctx *ctx;
	pthread_t tid;
	unsigned id;
	unsigned first, count; /* global object indexes [first, first+count) */
	double *lat_ms;	       /* per put */
	int rc;
	sl_err err;
} bench_worker;

static double bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bench_stamp(uint8_t *p, uint64_t nonce, uint64_t index)
{
	memcpy(p, &nonce, 8);
	memcpy(p + 8, &index, 8);
}

static void bench_usage(FILE *f, const char *argv0)
{
	fprintf(f,
		"usage: %s [options]\n"
		"  --dir PARENT       create the temporary data dir under PARENT\n"
		"                     (default: $TMPDIR, else /var/tmp)\n"
		"  --large-mib N      size of the large object in MiB (default 1024; 0 skips)\n"
		"  --piece-kib N      write/read piece size in KiB, a divisor of 4096 (default "
		"1024)\n"
		"  --small-count N    number of small objects (default 10000; 0 skips)\n"
		"  --small-size N     bytes per small object (default 4096)\n"
		"  --writers N        concurrent small-put threads (default 8)\n"
		"  --no-drop-cache    do not drop the page cache before the read\n"
		"  --keep             keep the data dir (its path is printed)\n",
		argv0);
}

/* Parses an unsigned decimal in [lo, hi]; 0 on success. */
static int bench_parse_u64(const char *name, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi) {
		fprintf(stderr,
			"core_bench: %s wants a whole number in [%" PRIu64 ", %" PRIu64 "], got "
			"'%s'\n",
			name, lo, hi, s);
		return -1;
	}
	*out = v;
	return 0;
}

/* Returns 0 to run, 1 for --help, -1 on bad arguments. */
static int bench_parse_args(bench_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "large-mib", required_argument, NULL, 'L' },
		{ "piece-kib", required_argument, NULL, 'P' },
		{ "small-count", required_argument, NULL, 'S' },
		{ "small-size", required_argument, NULL, 'Z' },
		{ "writers", required_argument, NULL, 'W' },
		{ "no-drop-cache", no_argument, NULL, 'n' },
		{ "keep", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int o;
	uint64_t v;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'd':
			ctx->parent = optarg;
			break;
		case 'L':
			if (bench_parse_u64("--large-mib", optarg, 0, 1024 * 1024, &v) < 0)
				return -1;
			ctx->large_mib = v;
			break;
		case 'P':
			if (bench_parse_u64("--piece-kib", optarg, 1, CORE_CHUNK_SIZE / 1024, &v) <
			    0)
				return -1;
			if ((CORE_CHUNK_SIZE / 1024) % v != 0) {
				fprintf(stderr, "core_bench: --piece-kib must divide %u\n",
					CORE_CHUNK_SIZE / 1024);
				return -1;
			}
			ctx->piece_kib = (unsigned)v;
			break;
		case 'S':
			if (bench_parse_u64("--small-count", optarg, 0, 100000000, &v) < 0)
				return -1;
			ctx->small_count = (unsigned)v;
			break;
		case 'Z':
			if (bench_parse_u64("--small-size", optarg, BENCH_STAMP, CORE_CHUNK_SIZE,
					    &v) < 0)
				return -1;
			ctx->small_size = (unsigned)v;
			break;
		case 'W':
			if (bench_parse_u64("--writers", optarg, 1, 1024, &v) < 0)
				return -1;
			ctx->writers = (unsigned)v;
			break;
		case 'n':
			ctx->drop_cache = 0;
			break;
		case 'k':
			ctx->keep = 1;
			break;
		case 'h':
			bench_usage(stdout, argv[0]);
			return 1;
		default:
			bench_usage(stderr, argv[0]);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "core_bench: unexpected argument '%s'\n", argv[optind]);
		bench_usage(stderr, argv[0]);
		return -1;
	}
	if (ctx->writers > ctx->small_count && ctx->small_count > 0)
		ctx->writers = ctx->small_count;
	return 0;
}

static int bench_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	if (remove(path) < 0)
		fprintf(stderr, "core_bench: cannot remove %s: %s\n", path, strerror(errno));
	return 0;
}

static void bench_cleanup(bench_ctx *ctx)
{
	if (ctx->c) {
		core_close(ctx->c);
		ctx->c = NULL;
	}
	if (!ctx->tmpdir[0])
		return;
	if (ctx->keep) {
		printf("data dir kept: %s\n", ctx->lakedir);
		return;
	}
	nftw(ctx->tmpdir, bench_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Writes back dirty pages and drops the page cache; returns 1 if dropped. */
static int bench_drop_cache(bench_ctx *ctx)
{
	sync();
	if (!ctx->drop_cache)
		return 0;
	FILE *f = fopen("/proc/sys/vm/drop_caches", "w");
	if (!f) {
		fprintf(stderr,
			"core_bench: WARNING: cannot drop the page cache (%s); the read "
			"figure may come from memory\n",
			strerror(errno));
		return 0;
	}
	int ok = fputs("3\n", f) >= 0;
	if (fclose(f) != 0)
		ok = 0;
	if (!ok)
		fprintf(stderr, "core_bench: WARNING: writing drop_caches failed; the read figure "
				"may come from memory\n");
	return ok;
}

/* The piece of the large object at off: the matching slice of the random
 * pool, stamped at its start (and at each 1 MiB inside it) with the object
 * offset in MiB, so every 4 MiB chunk is unique. Piece sizes divide the chunk
 * size, so pieces tile the pool the same way every time and the bytes of a
 * piece can be rebuilt exactly for the read check. */
static uint8_t *bench_large_piece(bench_ctx *ctx, uint64_t off, size_t len)
{
	size_t at = (size_t)(off % CORE_CHUNK_SIZE);
	assert(at + len <= ctx->pool_len);
	uint8_t *p = ctx->pool + at;
	for (size_t s = 0; s < len; s += BENCH_MIB)
		if (len - s >= BENCH_STAMP)
			bench_stamp(p + s, ctx->nonce, (off + s) / BENCH_MIB);
	return p;
}

static int bench_large_write(bench_ctx *ctx, double *mibs)
{
	sl_err err = { 0 };
	uint64_t total = ctx->large_mib * BENCH_MIB;
	size_t piece = (size_t)ctx->piece_kib * 1024;
	core_writer *w = NULL;
	core_objinfo oi = { 0 };

	double t0 = bench_now();
	int rc = core_put_begin(ctx->c, BENCH_LARGE_BUCKET, "large", &w, &err);
	for (uint64_t off = 0; rc == 0 && off < total; off += piece) {
		size_t len = total - off < piece ? (size_t)(total - off) : piece;
		rc = core_put_write(w, bench_large_piece(ctx, off, len), len, &err);
	}
	if (rc < 0) {
		core_put_abort(w);
		fprintf(stderr, "core_bench: large write: %s\n", err.msg);
		return rc;
	}
	double t_commit = bench_now();
	rc = core_put_commit(w, NULL, &oi, &err);
	double dt = bench_now() - t0;
	t_commit = bench_now() - t_commit;
	if (rc < 0) {
		fprintf(stderr, "core_bench: large commit: %s\n", err.msg);
		return rc;
	}
	if (oi.size != total) {
		fprintf(stderr, "core_bench: large object size %" PRIu64 ", expected %" PRIu64 "\n",
			oi.size, total);
		core_objinfo_clear(&oi);
		return -1;
	}
	core_objinfo_clear(&oi);
	*mibs = (double)ctx->large_mib / dt;
	printf("large write: %" PRIu64 " MiB in %.3f s (of which commit %.3f s) = %.1f MiB/s\n",
	       ctx->large_mib, dt, t_commit, *mibs);
	return 0;
}

/* Reads the large object back in pieces after dropping the page cache. The
 * figure times core_read_at only; checking the bytes is outside the clock. */
static int bench_large_read(bench_ctx *ctx, double *mibs, int *dropped)
{
	sl_err err = { 0 };
	uint64_t total = ctx->large_mib * BENCH_MIB;
	size_t piece = (size_t)ctx->piece_kib * 1024;
	core_objinfo oi = { 0 };
	core_reader *r = NULL;

	/* reopen so nothing from the write is held in the process */
	core_close(ctx->c);
	ctx->c = NULL;
	*dropped = bench_drop_cache(ctx);
	int rc = core_open(ctx->lakedir, NULL, &ctx->c, &err);
	if (rc < 0) {
		fprintf(stderr, "core_bench: reopen: %s\n", err.msg);
		return rc;
	}
	uint8_t *buf = malloc(piece);
	if (!buf) {
		fprintf(stderr, "core_bench: out of memory\n");
		return -1;
	}
	double t0 = bench_now(), in_read = 0;
	rc = core_get_open(ctx->c, BENCH_LARGE_BUCKET, "large", NULL, &oi, &r, &err);
	in_read += bench_now() - t0;
	if (rc < 0) {
		fprintf(stderr, "core_bench: large open: %s\n", err.msg);
		free(buf);
		return rc;
	}
	uint64_t off = 0, bad = 0;
	while (off < total) {
		size_t want = total - off < piece ? (size_t)(total - off) : piece;
		double t1 = bench_now();
		ssize_t got = core_read_at(r, buf, want, off, &err);
		in_read += bench_now() - t1;
		if (got < 0) {
			fprintf(stderr, "core_bench: large read at %" PRIu64 ": %s\n", off,
				err.msg);
			rc = (int)got;
			break;
		}
		if ((size_t)got != want) {
			fprintf(stderr, "core_bench: short read at %" PRIu64 ": %zd of %zu\n", off,
				got, want);
			rc = -1;
			break;
		}
		if (memcmp(buf, bench_large_piece(ctx, off, want), want) != 0)
			bad++;
		off += want;
	}
	core_reader_free(r);
	core_objinfo_clear(&oi);
	free(buf);
	if (rc < 0)
		return rc;
	if (bad) {
		fprintf(stderr,
			"core_bench: %" PRIu64 " pieces read back differ from what was "
			"written\n",
			bad);
		return -1;
	}
	*mibs = (double)ctx->large_mib / in_read;
	printf("large read:  %" PRIu64 " MiB in %.3f s (cache %s, data verified) = %.1f MiB/s\n",
	       ctx->large_mib, in_read, *dropped ? "dropped" : "NOT dropped", *mibs);
	return 0;
}

static void *bench_small_worker(void *arg)
{
	bench_worker *wk = arg;
	bench_ctx *ctx = wk->ctx;
	uint8_t *obj = malloc(ctx->small_size);
	char key[64];

	pthread_mutex_lock(&ctx->mu);
	ctx->ready++;
	pthread_cond_broadcast(&ctx->cv);
	while (!ctx->go)
		pthread_cond_wait(&ctx->cv, &ctx->mu);
	pthread_mutex_unlock(&ctx->mu);

	if (!obj) {
		wk->rc = sl_err_set(&wk->err, SL_ENOMEM, "out of memory");
		return NULL;
	}
	for (unsigned j = 0; j < wk->count; j++) {
		unsigned idx = wk->first + j;
		/* a different slice of the pool per object, plus a unique stamp */
		size_t at = ((size_t)idx * 4099u) % (ctx->pool_len - ctx->small_size);
		memcpy(obj, ctx->pool + at, ctx->small_size);
		bench_stamp(obj, ctx->nonce, 0x8000000000000000ull | idx);
		snprintf(key, sizeof(key), "w%02u/obj-%08u", wk->id, idx);

		double t0 = bench_now();
		core_writer *w;
		int rc = core_put_begin(ctx->c, BENCH_SMALL_BUCKET, key, &w, &wk->err);
		if (rc == 0) {
			rc = core_put_write(w, obj, ctx->small_size, &wk->err);
			if (rc < 0)
				core_put_abort(w);
			else
				rc = core_put_commit(w, NULL, NULL, &wk->err);
		}
		wk->lat_ms[j] = (bench_now() - t0) * 1e3;
		if (rc < 0) {
			wk->rc = rc;
			break;
		}
	}
	free(obj);
	return NULL;
}

static int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int bench_small_puts(bench_ctx *ctx, double *ops)
{
	unsigned nw = ctx->writers;
	bench_worker *wk = calloc(nw, sizeof(*wk));
	double *lat = calloc(ctx->small_count, sizeof(*lat));
	if (!wk || !lat) {
		free(wk);
		free(lat);
		fprintf(stderr, "core_bench: out of memory\n");
		return -1;
	}
	pthread_mutex_init(&ctx->mu, NULL);
	pthread_cond_init(&ctx->cv, NULL);
	ctx->go = 0;
	ctx->ready = 0;

	unsigned started = 0, next = 0;
	int rc = 0;
	for (unsigned i = 0; i < nw; i++) {
		wk[i].ctx = ctx;
		wk[i].id = i;
		wk[i].first = next;
		wk[i].count = ctx->small_count / nw + (i < ctx->small_count % nw);
		wk[i].lat_ms = lat + next;
		next += wk[i].count;
		int e = pthread_create(&wk[i].tid, NULL, bench_small_worker, &wk[i]);
		if (e) {
			fprintf(stderr, "core_bench: pthread_create: %s\n", strerror(e));
			rc = -1;
			break;
		}
		started++;
	}
	pthread_mutex_lock(&ctx->mu);
	while (ctx->ready < started)
		pthread_cond_wait(&ctx->cv, &ctx->mu);
	double t0 = bench_now();
	ctx->go = 1;
	pthread_cond_broadcast(&ctx->cv);
	pthread_mutex_unlock(&ctx->mu);
	for (unsigned i = 0; i < started; i++)
		pthread_join(wk[i].tid, NULL);
	double dt = bench_now() - t0;

	for (unsigned i = 0; i < started && rc == 0; i++)
		if (wk[i].rc < 0) {
			fprintf(stderr, "core_bench: small put (writer %u): %s\n", i,
				wk[i].err.msg);
			rc = wk[i].rc;
		}
	if (rc == 0) {
		*ops = (double)ctx->small_count / dt;
		qsort(lat, ctx->small_count, sizeof(*lat), bench_cmp_double);
		double p50 = lat[ctx->small_count / 2];
		double p99 = lat[(size_t)((double)(ctx->small_count - 1) * 0.99)];
		printf("small puts:  %u x %u B, %u writers, in %.3f s = %.0f ops/s "
		       "(%.2f MiB/s), latency p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
		       ctx->small_count, ctx->small_size, nw, dt, *ops,
		       *ops * ctx->small_size / BENCH_MIB, p50, p99, lat[ctx->small_count - 1]);
		printf("RESULT small_put_p50_ms %.3f ms\n", p50);
		printf("RESULT small_put_p99_ms %.3f ms\n", p99);
	}
	pthread_cond_destroy(&ctx->cv);
	pthread_mutex_destroy(&ctx->mu);
	free(wk);
	free(lat);
	return rc;
}

/* Checks that every object landed as its own stored bytes (no dedupe). */
static int bench_check_stats(bench_ctx *ctx)
{
	core_stats st;
	sl_err err = { 0 };
	if (core_stats_get(ctx->c, &st, &err) < 0) {
		fprintf(stderr, "core_bench: stats: %s\n", err.msg);
		return -1;
	}
	uint64_t want_chunks =
		(ctx->large_mib * BENCH_MIB + CORE_CHUNK_SIZE - 1) / CORE_CHUNK_SIZE +
		ctx->small_count;
	uint64_t want_bytes =
		ctx->large_mib * BENCH_MIB + (uint64_t)ctx->small_count * ctx->small_size;
	printf("stats: %" PRIu64 " objects, %" PRIu64 " chunks, %" PRIu64 " bytes stored, %" PRIu64
	       " segments (%" PRIu64 " bytes)\n",
	       st.objects, st.chunks, st.bytes_stored, st.segments, st.segment_bytes);
	if (st.chunks < want_chunks || st.bytes_stored < want_bytes) {
		fprintf(stderr,
			"core_bench: expected %" PRIu64 " chunks / %" PRIu64 " bytes "
			"stored: dedupe shrank the work, figures are not valid\n",
			want_chunks, want_bytes);
		return -1;
	}
	return 0;
}

static int bench_setup(bench_ctx *ctx)
{
	sl_err err = { 0 };
	int n = snprintf(ctx->tmpdir, sizeof(ctx->tmpdir), "%s/seglake-bench.XXXXXX", ctx->parent);
	if (n < 0 || (size_t)n >= sizeof(ctx->tmpdir)) {
		fprintf(stderr, "core_bench: --dir path too long\n");
		ctx->tmpdir[0] = 0;
		return -1;
	}
	if (!mkdtemp(ctx->tmpdir)) {
		fprintf(stderr, "core_bench: cannot create a temp dir under %s: %s\n", ctx->parent,
			strerror(errno));
		ctx->tmpdir[0] = 0;
		return -1;
	}
	snprintf(ctx->lakedir, sizeof(ctx->lakedir), "%s/lake", ctx->tmpdir);
	struct statfs sf;
	if (statfs(ctx->tmpdir, &sf) == 0)
		printf("data dir: %s (filesystem magic 0x%lx)\n", ctx->lakedir,
		       (unsigned long)sf.f_type);
	int rc = core_init(ctx->lakedir, &err);
	if (rc == 0)
		rc = core_open(ctx->lakedir, NULL, &ctx->c, &err);
	if (rc == 0)
		rc = core_bucket_create(ctx->c, BENCH_LARGE_BUCKET, CORE_VERS_UNVERSIONED, &err);
	if (rc == 0)
		rc = core_bucket_create(ctx->c, BENCH_SMALL_BUCKET, CORE_VERS_UNVERSIONED, &err);
	if (rc < 0) {
		fprintf(stderr, "core_bench: setting up %s: %s\n", ctx->lakedir, err.msg);
		return rc;
	}
	ctx->pool_len = CORE_CHUNK_SIZE + ctx->small_size;
	ctx->pool = malloc(ctx->pool_len);
	if (!ctx->pool || RAND_bytes(ctx->pool, (int)ctx->pool_len) != 1 ||
	    RAND_bytes((unsigned char *)&ctx->nonce, sizeof(ctx->nonce)) != 1) {
		fprintf(stderr, "core_bench: cannot make random data\n");
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	bench_ctx ctx = {
		.large_mib = 1024,
		.small_count = 10000,
		.writers = 8,
		.small_size = 4096,
		.piece_kib = 1024,
		.drop_cache = 1,
	};
	int a = bench_parse_args(&ctx, argc, argv);
	if (a != 0)
		return a > 0 ? 0 : 2;
	if (!ctx.parent) {
		const char *t = getenv("TMPDIR");
		ctx.parent = t && *t ? t : "/var/tmp";
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	int rc = bench_setup(&ctx);
	double w_mibs = 0, r_mibs = 0, ops = 0;
	int dropped = 0;
	if (rc == 0 && ctx.large_mib > 0) {
		rc = bench_large_write(&ctx, &w_mibs);
		if (rc == 0)
			rc = bench_large_read(&ctx, &r_mibs, &dropped);
		if (rc == 0) {
			printf("RESULT large_write_mibs %.1f MiB/s\n", w_mibs);
			printf("RESULT large_read_mibs %.1f MiB/s\n", r_mibs);
			printf("RESULT large_read_cache_dropped %d bool\n", dropped);
		}
	}
	if (rc == 0 && ctx.small_count > 0) {
		rc = bench_small_puts(&ctx, &ops);
		if (rc == 0)
			printf("RESULT small_put_ops %.0f ops/s\n", ops);
	}
	if (rc == 0)
		rc = bench_check_stats(&ctx);
	bench_cleanup(&ctx);
	free(ctx.pool);
	return rc == 0 ? 0 : 1;
}
