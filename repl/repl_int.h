/*
 * repl_int.h - what the files of repl/ share: the HTTP client (libcurl,
 * requests signed with SigV4), the pull/push steps, the state listing used by
 * validate, and the service context. Not a public header: repl/ and
 * cli/repl.c include it.
 */
#ifndef SL_REPL_INT_H
#define SL_REPL_INT_H

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>

#include "repl/repl.h"

#define REPL_PAGE_DEFAULT 500
#define REPL_PAGE_MAX 1000
#define REPL_FETCH_BATCH 256		 /* chunk hashes per fetch request */
#define REPL_PUSH_BATCH_BYTES (8u << 20) /* chunk bytes per push request (held in memory) */
#define REPL_JSON_MAX (16u << 20)	 /* largest JSON request/response body */
#define REPL_LONGPOLL_MS 10000		 /* longest long poll a server grants */
#define REPL_STALL_SEC 15		 /* a request without progress this long fails */
#define REPL_CHUNK_MISSING 0xffffffffu	 /* length marker: chunk not stored here */
#ifndef REPL_RECV_BUFFER
#define REPL_RECV_BUFFER (512L * 1024) /* libcurl receive buffer for chunk streams */
#endif

/* ---- HTTP client (client.c) ------------------------------------------------ */

typedef struct repl_buf {
	char *p;
	size_t len, cap;
} repl_buf;

/* Appends len bytes (data NULL: room for them, left for the caller to fill). */
int repl_buf_add(repl_buf *b, const void *data, size_t len);
void repl_buf_free(repl_buf *b);

/* Receives response body bytes as they arrive; returns 0 to go on, -1 to abort. */
typedef int (*repl_sink_fn)(void *ctx, const char *data, size_t len);

typedef struct repl_client {
	CURL *h;	/* reused: keep-alive to the peer */
	char base[512]; /* "http://host:port", no trailing slash */
	char host[256]; /* Host header value (signed) */
	char *ak, *sk, *region;
	char *ca_file;		  /* CURLOPT_CAINFO for https peers, NULL = system store */
	const volatile int *stop; /* set: transfers abort (service shutdown) */
	repl_counters *cnt;	  /* wire byte counters, may be NULL */
	char errbuf[CURL_ERROR_SIZE];
} repl_client;

int repl_client_init(repl_client *cl, const char *url, const repl_creds *cr, sl_err *err);
void repl_client_clear(repl_client *cl);
/* One signed request. query: canonical (sorted, encoded) or NULL. body (may
 * be NULL) is sent with its SHA-256 signed. The response body goes to sink,
 * or into *resp (up to REPL_JSON_MAX) when sink is NULL. *status gets the
 * HTTP status. SL_EIO on transport failure. */
int repl_http(repl_client *cl, const char *method, const char *path, const char *query,
	      const void *body, size_t blen, repl_sink_fn sink, void *sctx, repl_buf *resp,
	      long timeout_ms, long *status, sl_err *err);
/* A request answered with JSON; non-2xx statuses become errors carrying the
 * peer's message (410 OplogTrimmed -> SL_ENOTSUP). *out owned by the caller. */
int repl_call_json(repl_client *cl, const char *method, const char *path, const char *query,
		   const void *body, size_t blen, long timeout_ms, json_t **out, sl_err *err);

/* ---- steps (sync.c) -------------------------------------------------------- */

/* What one pull step learned, for status. */
typedef struct repl_pull_state repl_pull_state;
/* Called from inside a pull step (after the page is read, after each chunk is
 * stored) so status shows a transfer while it runs. cnt may be NULL. */
typedef void (*repl_pull_progress_fn)(void *ctx, const repl_pull_state *st,
				      const repl_counters *cnt);
struct repl_pull_state {
	char node[17];	   /* the peer's node id */
	int64_t watermark; /* the peer's oplog position applied here */
	int64_t remote_head;
	int64_t lag_ms;		/* age of the oldest entry not yet applied, 0 if caught up */
	uint64_t backlog_bytes; /* logical bytes of fetched, not yet applied entries */
	uint64_t fetch_total;	/* chunks the current step lacks (0 when none) */
	uint64_t fetch_done;	/* of which verified and stored so far */
	repl_pull_progress_fn progress; /* may be NULL */
	void *progress_ctx;
};

/* Reads the peer's info (node id, head, horizon, what it applied from us). */
int repl_peer_info(repl_client *cl, core *c, json_t **out, sl_err *err);
/* One pull page: entries after our watermark (long-polling up to wait_ms if
 * there are none), missing chunks fetched, entries applied. Returns the number
 * of entries received (0: caught up) or SL_E*. st->node must be set. */
long repl_pull_step(repl_client *cl, core *c, int page, int wait_ms, repl_pull_state *st,
		    repl_counters *cnt, sl_err *err);

/* Fetches chunks by hash (32 bytes each) and stores each verified; st may be
 * NULL. Memory: a few chunk buffers whatever n. */
int repl_fetch_chunks(repl_client *cl, core *c, const uint8_t *hashes, size_t n, repl_counters *cnt,
		      repl_pull_state *st, sl_err *err);

/* ---- snapshot bootstrap (bootstrap.c) --------------------------------------- */

struct s3d_req;
/* GET /v1/repl/snapshot: the state as newline-delimited JSON (core/snapshot.c). */
void repl_srv_snapshot(struct repl *rp, struct s3d_req *r);
/* Applies the peer's snapshot on this lake (no history: SL_ENOTEMPTY
 * otherwise): receives the stream into an unlinked file in the data dir,
 * checks header and trailer, then fetches chunks and applies records in
 * batches. progress gets (records applied, records). stop (may be NULL):
 * set, the transfer ends (SL_EIO). *seq: the peer's oplog position the
 * snapshot is at (the watermark set here). A cut run leaves the lake marked
 * partial (core_snapshot_partial); the next run starts over. */
int repl_snapshot_bootstrap(core *c, const char *url, const repl_creds *cr,
			    const repl_round_opts *o, const volatile int *stop, repl_counters *out,
			    int64_t *seq, sl_err *err);

/* ---- state listing (state.c), for validate -------------------------------- */

/* {"buckets":[{"name","versioning"}]} */
int repl_state_buckets(core *c, json_t **out, sl_err *err);
/* {"versions":[{"key","vid","etag","size","dm","state","latest"[,"chunks"]}],
 *  "next_key","next_vid"} (next_* only if truncated). */
int repl_state_versions(core *c, const char *bucket, const char *after_key, const char *after_vid,
			int max, int chunks, json_t **out, sl_err *err);
/* {"conflicts":[{"bucket","key","vid","etag","size","hlc","node","mtime_ms"}]} */
int repl_state_conflicts(core *c, const char *bucket, int max, json_t **out, sl_err *err);

/* ---- service (service.c) --------------------------------------------------- */

typedef struct repl_worker {
	struct repl *rp;
	char *url;
	pthread_t th;
	int started;
	/* protected by rp->lock */
	repl_pull_state st;
	repl_counters total;
	char last_error[256];
	int64_t last_error_ms, last_ok_ms;
	unsigned failures;
} repl_worker;

typedef struct repl_ack {
	char node[17];
	int64_t seq; /* the peer asked for entries after this: it has them all */
	int64_t seen_ms;
} repl_ack;

struct repl {
	core *core;
	repl_opts o;
	char *ak, *sk, *region;
	char *ca_file; /* --peer-ca, NULL = system store */
	FILE *log;
	volatile int stopping;
	pthread_mutex_t lock; /* protects everything below and workers' status */
	pthread_cond_t cond;  /* backoff sleeps; broadcast on stop */
	repl_worker *workers;
	size_t nworkers;
	repl_ack *acks;
	size_t nacks;
	int acks_dirty;
	int64_t last_trim_ms;
	int64_t started_ms;
};

/* Records that peer node has every entry up to seq (an oplog request). */
void repl_ack_record(struct repl *rp, const char *node, int64_t seq);
/* {"node",...,"workers":[...],"inbound":[...],"acks":[...]} */
json_t *repl_status_json(struct repl *rp);

int64_t repl_now_ms(void);

#endif
