/*
 * crash_writer.c - test tool for the kill -9 crash test.
 *
 *   crash_writer write DIR ROUND THREADS   writes objects until killed; after
 *       each commit returns it prints "ACK key" (so every ACK line is an
 *       acknowledged, durable object). Contents are a pure function of the
 *       key, sizes 0..9 MiB (multi-chunk objects included).
 *   crash_writer verify DIR ACKFILE        opens DIR (running recovery),
 *       checks every ACKed key reads back byte-identical and every visible
 *       key in the bucket is complete and correct (no half-written object),
 *       prints "verified N acked, M visible" and exits 0, or explains and 1.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

#define BUCKET "crash"

static core *C;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static int round_no;

static uint64_t key_seed(const char *key)
{
	uint64_t h = 1469598103934665603ull;
	for (const char *p = key; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ull;
	return h;
}

/* Deterministic content: size is encoded in the key ("...-sSIZE"). */
static void content(const char *key, uint8_t *buf, size_t n)
{
	uint64_t x = key_seed(key) | 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (uint8_t)(x >> 24);
	}
}

static size_t key_size(const char *key)
{
	const char *s = strrchr(key, 's');
	return s ? (size_t)strtoull(s + 1, NULL, 10) : 0;
}

static void *writer(void *arg)
{
	int tid = (int)(intptr_t)arg;
	uint8_t *buf = malloc(9u << 20);
	uint64_t r = (uint64_t)tid * 7919 + (uint64_t)round_no * 104729 + 1;
	for (int n = 0;; n++) {
		r = r * 6364136223846793005ull + 1442695040888963407ull;
		size_t size = (r >> 33) % 100 < 90 ? (r >> 40) % 20000 : (r >> 20) % (9u << 20);
		char key[128];
		snprintf(key, sizeof(key), "r%d/t%d/o%d-s%zu", round_no, tid, n, size);
		content(key, buf, size);
		core_writer *w;
		sl_err err = { 0 };
		int rc = core_put_begin(C, BUCKET, key, &w, &err);
		size_t off = 0;
		while (rc == 0 && off < size) {
			size_t piece = size - off < 300000 ? size - off : 300000;
			rc = core_put_write(w, buf + off, piece, &err);
			off += piece;
		}
		if (rc == 0)
			rc = core_put_commit(w, NULL, NULL, &err);
		else
			core_put_abort(w);
		if (rc < 0) {
			fprintf(stderr, "crash_writer: %s: %s\n", key, err.msg);
			exit(1);
		}
		pthread_mutex_lock(&out_mu);
		printf("ACK %s\n", key);
		fflush(stdout);
		pthread_mutex_unlock(&out_mu);
	}
	return NULL;
}

static int check_key(const char *key, uint8_t *buf, uint8_t *want, int must_exist)
{
	core_objinfo oi = { 0 };
	core_reader *r;
	sl_err err = { 0 };
	int rc = core_get_open(C, BUCKET, key, NULL, &oi, &r, &err);
	if (rc < 0) {
		core_objinfo_clear(&oi);
		if (!must_exist && rc == SL_ENOKEY)
			return 0;
		fprintf(stderr, "verify: %s: %s\n", key, err.msg);
		return -1;
	}
	size_t size = key_size(key);
	ssize_t got = oi.size == size ? core_read_at(r, buf, size, 0, &err) : -1;
	content(key, want, size);
	int ok = got == (ssize_t)size && memcmp(buf, want, size) == 0;
	if (!ok)
		fprintf(stderr, "verify: %s: size %" PRIu64 " (want %zu), content %s\n", key,
			oi.size, size, got < 0 ? err.msg : "differs");
	core_reader_free(r);
	core_objinfo_clear(&oi);
	return ok ? 0 : -1;
}

static int verify(const char *ackfile)
{
	uint8_t *buf = malloc(9u << 20), *want = malloc(9u << 20);
	FILE *f = fopen(ackfile, "r");
	if (!f) {
		perror(ackfile);
		return 1;
	}
	char line[256];
	long acked = 0, bad = 0, visible = 0;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "ACK ", 4) != 0)
			continue;
		line[strcspn(line, "\n")] = 0;
		acked++;
		if (check_key(line + 4, buf, want, 1) < 0)
			bad++;
	}
	fclose(f);
	char *marker = NULL;
	for (;;) {
		core_list_opts o = { .max_keys = 1000, .start_after = marker };
		core_list_result lr;
		sl_err err = { 0 };
		if (core_list(C, BUCKET, &o, &lr, &err) < 0) {
			fprintf(stderr, "verify: list: %s\n", err.msg);
			return 1;
		}
		for (size_t i = 0; i < lr.nobjs; i++) {
			visible++;
			if (check_key(lr.objs[i].key, buf, want, 1) < 0)
				bad++;
		}
		free(marker);
		marker = lr.next_marker ? strdup(lr.next_marker) : NULL;
		int more = lr.truncated;
		core_list_result_clear(&lr);
		if (!more)
			break;
	}
	free(marker);
	free(buf);
	free(want);
	printf("verified %ld acked, %ld visible, %ld bad\n", acked, visible, bad);
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: crash_writer write DIR ROUND THREADS | verify DIR "
				"ACKFILE\n");
		return 2;
	}
	sl_err err = { 0 };
	if (core_open(argv[2], NULL, &C, &err) < 0) {
		fprintf(stderr, "crash_writer: open: %s\n", err.msg);
		return 1;
	}
	if (!strcmp(argv[1], "verify")) {
		int rc = verify(argv[3]);
		core_close(C);
		return rc;
	}
	round_no = atoi(argv[3]);
	int threads = argc > 4 ? atoi(argv[4]) : 4;
	core_bucket b;
	if (core_bucket_get(C, BUCKET, &b, NULL) < 0 &&
	    core_bucket_create(C, BUCKET, CORE_VERS_UNVERSIONED, &err) < 0) {
		fprintf(stderr, "crash_writer: %s\n", err.msg);
		return 1;
	}
	pthread_t th[64];
	for (int i = 0; i < threads && i < 64; i++)
		pthread_create(&th[i], NULL, writer, (void *)(intptr_t)i);
	for (int i = 0; i < threads && i < 64; i++)
		pthread_join(th[i], NULL);
	return 0;
}
