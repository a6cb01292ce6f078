/* check_sigv4.h - CHECK_ST for the auth unit tests: compares sigv4 status
 * codes and names both on failure (builds on check.h). */
#ifndef SL_TESTS_CHECK_SIGV4_H
#define SL_TESTS_CHECK_SIGV4_H

#include "auth/sigv4.h"
#include "check.h"

#define CHECK_ST(got, want)                                                                        \
	do {                                                                                       \
		int g_ = (got), w_ = (want);                                                       \
		if (g_ == w_) {                                                                    \
			check_pass++;                                                              \
		} else {                                                                           \
			check_fail++;                                                              \
			fprintf(stderr, "FAIL %s:%d: status %s (%d), want %s (%d)\n", __FILE__,    \
				__LINE__, sigv4_status_code(g_), g_, sigv4_status_code(w_), w_);   \
		}                                                                                  \
	} while (0)

#endif
