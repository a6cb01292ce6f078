/*
 * accesslog.h - one JSON line per S3 request for the access log: request
 * id, client address, access key id, operation, bucket/key, status, bytes
 * in/out, duration. Query strings are logged with signatures and security
 * tokens replaced by "REDACTED"; secrets never reach this module.
 * Not here: where lines go (the daemon's log stream), metrics.
 */
#ifndef SL_OPS_ACCESSLOG_H
#define SL_OPS_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>

typedef struct ops_access {
	const char *request_id;
	const char *remote; /* client address */
	const char *key_id; /* access key id, NULL/"" = anonymous */
	const char *op;	    /* "GetObject", ... */
	const char *method;
	const char *bucket, *key;
	const char *query; /* raw query string (redacted on output) */
	int status;
	const char *error; /* S3 error code or NULL */
	uint64_t bytes_in, bytes_out;
	double duration_ms;
	const char *user_agent;
} ops_access;

/* The JSON line (no trailing newline), malloc'd; NULL on OOM. */
char *ops_access_line(const ops_access *a);

/* Copies query into out with the values of X-Amz-Signature,
 * X-Amz-Security-Token and Signature replaced by REDACTED. */
void ops_redact_query(const char *query, char *out, size_t cap);

#endif
