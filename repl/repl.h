/*
 * repl.h - replication between hosts over HTTP (the transport around the
 * core's replication semantics). What the rest of Seglake uses:
 *
 *   - one-shot rounds (`seglake repl pull|push`): repl_pull_once /
 *     repl_push_once move everything one host has that the other lacks;
 *   - the service inside `seglake serve`: repl_new (the /v1/repl/...
 *     endpoints, plugged into s3d through s3d_opts.repl_route), then
 *     repl_start_workers (one thread per --peer), repl_stop, repl_free.
 *
 * The wire protocol is described in repl/README.md. Not here: conflict
 * rules, idempotence, watermarks (core/, core_repl_apply), HTTP serving and
 * SigV4 verification (s3d/, auth/).
 */
#ifndef SL_REPL_REPL_H
#define SL_REPL_REPL_H

#include <stdint.h>
#include <stdio.h>

#include "common/err.h"
#include "core/core.h"

/* Credentials used to sign requests to a peer. */
typedef struct repl_creds {
	const char *access_key;
	const char *secret_key;
	const char *region;  /* NULL = "us-east-1" */
	const char *ca_file; /* PEM CA bundle to verify https:// peers (--peer-ca);
			      * NULL = the system store. Verification is always on. */
} repl_creds;

/* Loads peer credentials: from file (`access_key = ...` / `secret_key = ...`
 * lines, '#' comments) if given, else SEGLAKE_PEER_ACCESS_KEY and
 * SEGLAKE_PEER_SECRET_KEY. *ak and *sk are malloc'd. */
int repl_creds_load(const char *file, char **ak, char **sk, sl_err *err);

/* Counters of one round (or of a worker since start). */
typedef struct repl_counters {
	uint64_t entries;	    /* oplog entries received (pull) or sent (push) */
	uint64_t applied;	    /* of which applied (new to the receiver) */
	uint64_t chunks;	    /* chunks moved */
	uint64_t chunk_bytes;	    /* chunk payload bytes moved */
	uint64_t wire_in, wire_out; /* HTTP body bytes received / sent */
} repl_counters;

/* Progress callback for one-shot rounds (bootstrap on a terminal). */
typedef void (*repl_progress_fn)(void *ctx, const repl_counters *sofar, int64_t pos, int64_t head);

typedef struct repl_round_opts {
	repl_progress_fn progress; /* may be NULL */
	void *progress_ctx;
	int page; /* entries per request, 0 = 500 */
} repl_round_opts;

/* Pulls from the peer at url everything after this host's watermark for it,
 * applying as it goes, until caught up. SL_ENOTSUP with a "re-bootstrap"
 * message if the peer trimmed its oplog past our watermark. */
int repl_pull_once(core *c, const char *url, const repl_creds *cr, const repl_round_opts *o,
		   repl_counters *out, sl_err *err);
/* Pushes to the peer at url everything it has not applied from this host. */
int repl_push_once(core *c, const char *url, const repl_creds *cr, const repl_round_opts *o,
		   repl_counters *out, sl_err *err);

/* ---- the service in `seglake serve` --------------------------------------- */

typedef struct repl_opts {
	const char *const *peers; /* peer base URLs (http://host:port) */
	size_t npeers;
	repl_creds creds; /* how this host signs requests to its peers */
	int trim;	  /* trim the oplog to what every known peer acknowledged */
	FILE *log;	  /* NULL = stderr */
} repl_opts;

typedef struct repl repl;

/* The replication context: serves /v1/repl/... for the daemon. */
int repl_new(core *c, const repl_opts *o, repl **out, sl_err *err);
/* Starts one pull worker per peer. */
int repl_start_workers(repl *rp, sl_err *err);
struct s3d_req;
/* For s3d_opts.repl_route: handles a SigV4-authenticated /v1/repl/... request. */
void repl_route(void *ctx, struct s3d_req *r);
/* Once a second from the serve loop: oplog retention. */
void repl_tick(repl *rp);
/* Stops the workers and wakes long polls; the endpoints answer at once from
 * then on. Call before s3d_stop. */
void repl_stop(repl *rp);
/* After s3d_stop. NULL is a no-op. */
void repl_free(repl *rp);

#endif
