/*
 * err.h - the one error convention of Seglake.
 *
 * Every fallible function returns 0 on success or a negative SL_E* code, and
 * fills an optional sl_err with the same code and a one-line message meant for
 * a human. Front ends map the code once: s3d to an S3 error, fs to an errno,
 * the CLI to a message and exit status. Nothing here allocates.
 */
#ifndef SL_COMMON_ERR_H
#define SL_COMMON_ERR_H

#include <stdarg.h>

enum sl_code {
	SL_OK = 0,
	SL_EINVAL = -1,	       /* bad argument or input */
	SL_ENOBUCKET = -2,     /* bucket does not exist */
	SL_ENOKEY = -3,	       /* key does not exist (or latest is a delete marker) */
	SL_ENOVERSION = -4,    /* version id does not exist */
	SL_EBUCKETEXISTS = -5, /* bucket already exists */
	SL_ENOTEMPTY = -6,     /* bucket (or directory) not empty */
	SL_EPRECOND = -7,      /* a write precondition failed (If-Match, If-None-Match) */
	SL_ENOUPLOAD = -8,     /* multipart upload id unknown */
	SL_EINVALPART = -9,    /* multipart part missing or etag mismatch */
	SL_EPARTORDER = -10,   /* multipart parts not ascending */
	SL_ETOOSMALL = -11,    /* multipart part below the minimum size */
	SL_ETOOLARGE = -12,    /* object over the configured maximum */
	SL_EIO = -13,	       /* I/O error from the disk */
	SL_ENOSPC = -14,       /* disk full */
	SL_ECORRUPT = -15,     /* stored bytes fail their checksum */
	SL_ELOCKED = -16,      /* data dir held by another process */
	SL_EBADDIGEST = -17,   /* Content-MD5 or checksum mismatch */
	SL_EEXIST = -18,       /* key exists (no-replace rename, conditional put) */
	SL_ENOTSUP = -19,      /* operation not supported */
	SL_ENOMEM = -20,       /* out of memory */
	SL_EMAINT = -21,       /* maintenance mode: writes refused */
	SL_EINTERNAL = -22,    /* bug or unexpected state */
	SL_EISPREFIX = -23,    /* key is a prefix of other keys (directory) */
};

typedef struct sl_err {
	int code;
	char msg[256];
} sl_err;

/* Sets err (if non-NULL) and returns code, so callers can `return sl_err_set(...)`. */
int sl_err_set(sl_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void sl_err_clear(sl_err *err);
/* Stable short name of a code ("ENOBUCKET"), for logs and CLI messages. */
const char *sl_code_name(int code);
/* Maps a code to the closest errno value (positive). */
int sl_code_errno(int code);
/* Maps an errno value from a system call to a code (ENOSPC -> SL_ENOSPC ...). */
int sl_code_from_errno(int e);

#endif
