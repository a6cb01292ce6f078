/*
 * limits.h - abuse limits for the S3 daemon, all with bounded memory:
 *
 *   - failed authentication per source IP and per access key: a token
 *     bucket each (burst, then N per minute). Once a bucket is empty, further
 *     FAILED requests from that IP / for that key are answered 503 SlowDown
 *     instead of 403. Requests that authenticate keep working, so a good
 *     client behind the same address is not locked out by a bad one.
 *   - in-flight requests per access key (enter/leave).
 *   - optional replay detection: a header-signed request's signature seen
 *     again within its validity window is refused (presigned URLs are meant
 *     to be reused and are not tracked).
 *   - the client address: the peer address, or, when the peer is a trusted
 *     proxy, the right-most untrusted address of X-Forwarded-For.
 *
 * Tables are fixed-size; when full the stalest entry is replaced. Thread-safe.
 * Not here: HTTP replies, logging (the caller logs a line when it refuses).
 */
#ifndef SL_OPS_LIMITS_H
#define SL_OPS_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct ops_limits_opts {
	unsigned fail_burst;	     /* failures allowed at once (0: 20) */
	unsigned fail_per_min;	     /* failures refilled per minute (0: 30) */
	unsigned inflight_per_key;   /* concurrent requests per key (0: 256) */
	size_t replay_entries;	     /* replay cache size (0: off) */
	const char *trusted_proxies; /* comma-separated CIDRs, NULL: none */
} ops_limits_opts;

typedef struct ops_limits ops_limits;

/* SL_EINVAL if trusted_proxies does not parse. */
int ops_limits_new(const ops_limits_opts *o, ops_limits **out, sl_err *err);
void ops_limits_free(ops_limits *l);

enum { OPS_LIMIT_OK = 0, OPS_LIMIT_IP = 1, OPS_LIMIT_KEY = 2 };

/* Records one failed authentication from ip for key (key may be NULL or
 * ""), now_ms a monotonic clock. Returns OPS_LIMIT_OK if the failure is
 * within the allowance, else which limit it exceeds (answer SlowDown). */
int ops_limits_auth_failed(ops_limits *l, const char *ip, const char *key, int64_t now_ms);

/* In-flight cap: 0 and counted, or -1 if key already has the maximum. */
int ops_limits_enter(ops_limits *l, const char *key);
void ops_limits_leave(ops_limits *l, const char *key);

/* Replay check for a header-signed request: 1 if this signature was seen
 * before (and its entry has not expired), else remembers it until
 * expires_ms and returns 0. Always 0 when the cache is off. */
int ops_limits_replayed(ops_limits *l, const char *signature, int64_t now_ms, int64_t expires_ms);

/* The client address into out (cap >= 64): the peer, or the right-most
 * address of xff (X-Forwarded-For, may be NULL) not in the trusted list
 * when the peer itself is trusted. */
void ops_limits_client_ip(ops_limits *l, const char *peer, const char *xff, char *out, size_t cap);

/* A list of CIDRs ("10.0.0.0/8,::1"), for other address checks (e.g.
 * /metrics open to a scraper network). */
typedef struct ops_cidrs ops_cidrs;
int ops_cidrs_parse(const char *list, ops_cidrs **out, sl_err *err);
int ops_cidrs_match(const ops_cidrs *c, const char *ip);
void ops_cidrs_free(ops_cidrs *c);

#endif
