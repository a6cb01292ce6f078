/*
 * fuzz_rebuild.c - libFuzzer target for journal replay from segments
 * (core_rebuild_index, then core_open's recovery): the path that rebuilds
 * meta.db from whatever journal records the segment files hold, as after a
 * lost or tampered index. Each input becomes one segment file, written with
 * the real encoders (seg_header_encode / seg_rec_encode) so every checksum is
 * right and the fuzzer works on the journal JSON and record order itself.
 *
 * Input: one record per line.
 *   "C:<hex>"  a CHUNK record holding the bytes <hex> (hash computed here)
 *   anything else: a JOURNAL record with the line as payload
 * Seeds are the records of a real lake's segment, in order, so the chunk
 * locations inside its put ops are right (make_seeds.sh).
 * SEGLAKE_FUZZ_DEBUG=1 prints each result.
 * Not here: the segment byte format (fuzz_segment.c), replicated ops
 * (fuzz_repl.c).
 */
#include <fcntl.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/err.h"
#include "core/core.h"
#include "store/segment.h"
#include "fuzz_util.h"

#define FUZZ_MAX_RECORDS 64

static struct {
	char base[512];
	char lake[600];
	char segdir[700];
} fz;

static void fuzz_cleanup(void)
{
	if (fz.base[0])
		fuzz_rmtree(fz.base);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	sl_err err = { 0 };
	if (fuzz_mkdtemp("rebuild", fz.base, sizeof(fz.base)) < 0)
		abort();
	atexit(fuzz_cleanup);
	snprintf(fz.lake, sizeof(fz.lake), "%s/lake", fz.base);
	snprintf(fz.segdir, sizeof(fz.segdir), "%s/segments", fz.lake);
	core *c = NULL;
	if (core_init(fz.lake, &err) < 0 || core_open(fz.lake, NULL, &c, &err) < 0) {
		fprintf(stderr, "fuzz_rebuild: cannot create a lake: %s\n", err.msg);
		abort();
	}
	core_close(c);
	return 0;
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static int fuzz_put(FILE *f, int type, const uint8_t *payload, uint32_t len, uint32_t crc)
{
	uint8_t h[SEG_REC_HEADER];
	seg_rec_encode(type, len, crc, h);
	return fwrite(h, 1, sizeof(h), f) == sizeof(h) && fwrite(payload, 1, len, f) == len ? 0
											    : -1;
}

/* Writes the records of the input as segment 1 of the lake. */
static int fuzz_write_segment(const fuzz_lines *l)
{
	fuzz_rmtree(fz.segdir);
	mkdir(fz.segdir, 0700);
	char path[800];
	snprintf(path, sizeof(path), "%s/seg-%016x.sl", fz.segdir, 1u);
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	seg_header hdr = { .id = 1, .created_ms = 1700000000000, .node = "fuzzfuzzfuzzfuzz" };
	uint8_t hb[SEG_HEADER_SIZE];
	seg_header_encode(&hdr, hb);
	int rc = fwrite(hb, 1, sizeof(hb), f) == sizeof(hb) ? 0 : -1;
	for (size_t i = 0; i < l->n && rc == 0; i++) {
		const char *s = l->line[i];
		size_t n = strlen(s);
		if (n >= 2 && s[0] == 'C' && s[1] == ':') {
			size_t dl = (n - 2) / 2;
			uint8_t *p = malloc(32 + dl + 1);
			if (!p)
				return fclose(f), -1;
			for (size_t k = 0; k < dl; k++) {
				int hi = hexval((unsigned char)s[2 + 2 * k]),
				    lo = hexval((unsigned char)s[3 + 2 * k]);
				p[32 + k] = (uint8_t)((hi < 0 ? 0 : hi) << 4 | (lo < 0 ? 0 : lo));
			}
			SHA256(p + 32, dl, p);
			rc = fuzz_put(f, SEG_REC_CHUNK, p, (uint32_t)(32 + dl),
				      sl_crc32c(0, p, 32 + dl));
			free(p);
		} else {
			rc = fuzz_put(f, SEG_REC_JOURNAL, (const uint8_t *)s, (uint32_t)n,
				      sl_crc32c(0, s, n));
		}
	}
	if (fclose(f) != 0)
		rc = -1;
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 64 * 1024)
		return 0;
	fuzz_lines l;
	if (fuzz_lines_split(data, size, FUZZ_MAX_RECORDS, &l) < 0)
		return 0;
	sl_err err = { 0 };
	int rc = fuzz_write_segment(&l);
	fuzz_lines_free(&l);
	if (rc < 0)
		return 0;
	rc = core_rebuild_index(fz.lake, &err);
	int orc = 1;
	if (rc == 0) {
		core *c = NULL;
		orc = core_open(fz.lake, NULL, &c, &err);
		if (orc == 0) {
			core_bucket *b = NULL;
			size_t nb = 0;
			if (core_bucket_list(c, &b, &nb, &err) == 0) {
				for (size_t i = 0; i < nb && i < 8; i++) {
					core_list_opts lo = { .max_keys = 20, .versions = 1 };
					core_list_result lr;
					memset(&lr, 0, sizeof(lr));
					if (core_list(c, b[i].name, &lo, &lr, &err) == 0)
						core_list_result_clear(&lr);
				}
				free(b);
			}
			core_stats st;
			(void)core_stats_get(c, &st, &err);
			core_close(c);
		}
	}
	if (getenv("SEGLAKE_FUZZ_DEBUG"))
		fprintf(stderr, "rebuild: rc %d open %d: %s\n", rc, orc, err.msg);
	return 0;
}
