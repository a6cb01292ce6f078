/*
 * fuzz_repl.c - libFuzzer target for the core journal op applier as fed by
 * replication: fuzzed oplog bodies (JSON ops, what a peer ships) go through
 * core_repl_missing and core_repl_apply on one scratch lake opened once per
 * process. Each batch must be rejected or applied, never crash; after an
 * apply, the objects the new oplog entries name are read back (head, list,
 * first bytes) so an accepted but inconsistent op shows up as a crash too.
 *
 * Input: up to 32 lines, one op body per line. The lake holds the chunks of
 * "hello" and "world!\n" (stored at start-up), so seeds taken from a real
 * lake's oplog (see make_seeds.sh) name chunks that exist here.
 * SEGLAKE_FUZZ_DEBUG=1 prints each result.
 * Not here: the segment format (fuzz_segment.c), the HTTP replication
 * protocol.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "core/core.h"
#include "fuzz_util.h"

#define FUZZ_MAX_OPS 32

static struct {
	char dir[512];
	core *c;
} fz;

static void fuzz_cleanup(void)
{
	core_close(fz.c);
	fz.c = NULL;
	if (fz.dir[0])
		fuzz_rmtree(fz.dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	char base[512];
	sl_err err = { 0 };
	if (fuzz_mkdtemp("repl", base, sizeof(base)) < 0)
		abort();
	snprintf(fz.dir, sizeof(fz.dir), "%s", base);
	char lake[600];
	snprintf(lake, sizeof(lake), "%s/lake", base);
	if (core_init(lake, &err) < 0 || core_open(lake, NULL, &fz.c, &err) < 0) {
		fprintf(stderr, "fuzz_repl: cannot create a lake in %s: %s\n", lake, err.msg);
		abort();
	}
	atexit(fuzz_cleanup);
	static const char *const contents[] = { "hello", "world!\n" };
	for (size_t i = 0; i < 2; i++) {
		core_chunkref ref;
		if (core_chunk_put(fz.c, contents[i], (uint32_t)strlen(contents[i]), &ref, &err) <
		    0)
			abort();
	}
	return 0;
}

static void fuzz_read_back(core *c, int64_t before)
{
	core_oplog_entry *e = NULL;
	size_t n = 0;
	sl_err err = { 0 };
	if (core_oplog_read(c, before, FUZZ_MAX_OPS, &e, &n, &err) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		if (!e[i].bucket)
			continue;
		core_bucket b;
		(void)core_bucket_get(c, e[i].bucket, &b, &err);
		core_list_opts lo = { .prefix = e[i].key, .max_keys = 5, .versions = (int)(i & 1) };
		core_list_result lr;
		memset(&lr, 0, sizeof(lr));
		if (core_list(c, e[i].bucket, &lo, &lr, &err) == 0)
			core_list_result_clear(&lr);
		if (!e[i].key)
			continue;
		core_objinfo info;
		memset(&info, 0, sizeof(info));
		/* Filled also on failure (a delete marker): always cleared. */
		(void)core_head(c, e[i].bucket, e[i].key, e[i].version_id, &info, &err);
		core_objinfo_clear(&info);
		memset(&info, 0, sizeof(info));
		core_reader *r = NULL;
		if (core_get_open(c, e[i].bucket, e[i].key, e[i].version_id, &info, &r, &err) ==
		    0) {
			char buf[64];
			(void)core_read_at(r, buf, sizeof(buf), 0, &err);
			core_reader_free(r);
		}
		core_objinfo_clear(&info);
	}
	core_oplog_free(e, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 64 * 1024)
		return 0;
	fuzz_lines l;
	if (fuzz_lines_split(data, size, FUZZ_MAX_OPS, &l) < 0)
		return 0;
	const char *const *bodies = (const char *const *)l.line;
	sl_err err = { 0 };

	uint8_t *missing = NULL;
	size_t nmissing = 0;
	if (core_repl_missing(fz.c, bodies, l.n, &missing, &nmissing, &err) == 0 &&
	    nmissing > l.n * 4096)
		__builtin_trap();
	free(missing);

	int64_t before = core_oplog_head(fz.c);
	size_t applied = 0;
	memset(&err, 0, sizeof(err));
	int rc = core_repl_apply(fz.c, "fuzzpeer", (int64_t)size, bodies, l.n, &applied, &err);
	if (getenv("SEGLAKE_FUZZ_DEBUG"))
		fprintf(stderr, "repl: rc %d applied %zu: %s\n", rc, applied,
			rc < 0 ? err.msg : "");
	if (rc < 0 && applied != 0)
		__builtin_trap();
	if (rc == 0 && applied > 0)
		fuzz_read_back(fz.c, before);
	fuzz_lines_free(&l);
	return 0;
}
