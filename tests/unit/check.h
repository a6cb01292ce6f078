/*
 * check.h - the minimal test harness of the C unit tests: CHECK() records a
 * failure with file:line and keeps going; check_done() prints
 * "N passed, N failed" and returns the exit status for main().
 */
#ifndef SL_TESTS_CHECK_H
#define SL_TESTS_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_pass, check_fail;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (cond) {                                                                        \
			check_pass++;                                                              \
		} else {                                                                           \
			check_fail++;                                                              \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);            \
		}                                                                                  \
	} while (0)

#define CHECK_OK(expr)                                                                             \
	do {                                                                                       \
		sl_err e_ = { 0 };                                                                 \
		(void)e_;                                                                          \
		long r_ = (long)(expr);                                                            \
		if (r_ >= 0) {                                                                     \
			check_pass++;                                                              \
		} else {                                                                           \
			check_fail++;                                                              \
			fprintf(stderr, "FAIL %s:%d: %s returned %ld\n", __FILE__, __LINE__,       \
				#expr, r_);                                                        \
		}                                                                                  \
	} while (0)

static inline int check_done(const char *name)
{
	printf("%s: %d passed, %d failed\n", name, check_pass, check_fail);
	return check_fail ? 1 : 0;
}

/* A fresh temporary directory (removed by check_rmrf). */
static inline char *check_tmpdir(void)
{
	char *t = strdup("/tmp/seglake-test-XXXXXX");
	return mkdtemp(t);
}

static inline void check_rmrf(const char *dir)
{
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: could not remove %s\n", dir);
}

#endif
