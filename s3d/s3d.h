/*
 * s3d.h - the S3 HTTP daemon: serves a core over HTTP with the S3 REST API
 * (SigV4 authenticated, bodies streamed both ways) using libmicrohttpd.
 *
 * One s3d runs its own listener and connection threads (one thread per
 * connection, kept across keep-alive requests; the connection limit bounds
 * them), so the same process can also run a FUSE mount or replication.
 * Not here: argument parsing, key storage, signals (cli/serve.c does those),
 * SigV4 itself (auth/), storage (core/).
 */
#ifndef SL_S3D_S3D_H
#define SL_S3D_S3D_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/err.h"
#include "core/core.h"

struct s3d_req;

typedef struct s3d_opts {
	const char *listen;	/* "host:port", "[v6]:port", ":port"; NULL = 127.0.0.1:9000 */
	const char *region;	/* NULL = "us-east-1" */
	const char *access_key; /* the root key (required) */
	const char *secret_key;
	const char *domains; /* virtual-host base domains, comma-separated; NULL = "localhost" */
	uint64_t max_object_size;    /* 0 = 5 GiB (also passed to the core by the caller) */
	uint64_t min_part_size;	     /* 0 = 5 MiB: multipart parts but the last must reach it */
	size_t max_header_bytes;     /* 0 = 16 KiB: sum of header names+values per request */
	size_t max_url_bytes;	     /* 0 = 8 KiB: request target length */
	unsigned idle_timeout_sec;   /* 0 = 60: a connection silent this long is closed */
	unsigned header_timeout_sec; /* 0 = 30: request line + headers must arrive within this
				      * of the connection opening or the previous request ending */
	unsigned body_timeout_sec; /* 0 = 30: every window this long spent waiting for a body... */
	unsigned body_min_rate;	   /* 0 = 1024: ...must bring body_min_rate bytes/s, else
				    * 400 RequestTimeout (server.c, "connection watch") */
	unsigned max_connections;  /* 0 = 256 */
	int quiet;		   /* no per-request log lines */
	const char *tls_cert; /* PEM certificate chain: serve HTTPS (with tls_key); NULL = HTTP */
	const char *tls_key;  /* PEM private key */
	FILE *log;	      /* NULL = stderr */
	/* /v1/repl/... (replication, repl/repl.h repl_route): called once SigV4
	 * verified; NULL = those paths answer 404. */
	void (*repl_route)(void *ctx, struct s3d_req *r);
	void *repl_ctx;
	/* Access control and operations (s3d/access.c). NULL: only the root key
	 * above, allowed everything; no metrics, no limits. */
	struct keys *keys;	     /* key store (auth/keys.h): secrets, identity policies */
	struct ops_metrics *metrics; /* request metrics (ops/metrics.h), /metrics, /v1/meta/stats */
	struct ops_limits *limits;   /* failed-auth rate limits, in-flight caps (ops/limits.h) */
	const char *metrics_open_cidr; /* /metrics without authentication from these CIDRs */
} s3d_opts;

typedef struct s3d s3d;

/* Binds and starts serving. The core must outlive the daemon. */
int s3d_start(core *c, const s3d_opts *o, s3d **out, sl_err *err);
/* Re-reads tls_cert/tls_key for new handshakes (the listener and open
 * connections stay). On failure the current pair stays in use and err says
 * why. SL_EINVAL if the daemon does not serve TLS. */
int s3d_tls_reload_files(s3d *s, sl_err *err);
/* The bound TCP port (useful with port 0). */
unsigned s3d_port(const s3d *s);
/* Requests being handled right now (not idle keep-alive connections). */
int s3d_inflight(s3d *s);
/* Graceful stop: stops accepting, waits up to grace_ms for in-flight
 * requests, then closes every connection and frees s. NULL is a no-op. */
void s3d_stop(s3d *s, unsigned grace_ms);

#endif
