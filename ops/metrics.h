/*
 * metrics.h - the daemon's metrics registry and its Prometheus text
 * rendering: requests by S3 operation and status, latency histograms per
 * operation, bytes in/out, in-flight requests, authentication failures,
 * rate-limited requests, the last gc and scrub results, plus gauges read at
 * render time (lake stats, disk free, replication backlog per peer).
 *
 * Memory is bounded: at most OPS_METRICS_MAX_SERIES (operation, status)
 * series; further combinations are counted under operation "other".
 * Thread-safe (one mutex; updates are a few additions).
 * Not here: HTTP serving of /metrics, permission checks (s3d/).
 */
#ifndef SL_OPS_METRICS_H
#define SL_OPS_METRICS_H

#include <stdint.h>

#include "core/core.h"
#include "core/maint.h"

#define OPS_METRICS_MAX_SERIES 512
#define OPS_METRICS_MAX_OPS 96

typedef struct ops_metrics ops_metrics;

ops_metrics *ops_metrics_new(void);
void ops_metrics_free(ops_metrics *m);

/* One finished request: operation name ("GetObject"), HTTP status, body
 * bytes received and sent, duration in seconds. */
void ops_metrics_request(ops_metrics *m, const char *op, int status, uint64_t bytes_in,
			 uint64_t bytes_out, double seconds);
/* In-flight requests (+1 when one starts, -1 when it ends). */
void ops_metrics_inflight(ops_metrics *m, int delta);
/* A failed authentication; reason is an S3 error code ("SignatureDoesNotMatch"). */
void ops_metrics_auth_failure(ops_metrics *m, const char *reason);
/* A request refused by a limit; kind is "auth_ip", "auth_key", "inflight", "replay". */
void ops_metrics_rate_limited(ops_metrics *m, const char *kind);
void ops_metrics_gc(ops_metrics *m, const core_gc_report *r, int dry_run);
void ops_metrics_scrub(ops_metrics *m, const core_scrub_report *r);
void ops_metrics_fsck(ops_metrics *m, const core_fsck_report *r);

/* The Prometheus text exposition (version 0.0.4). c (may be NULL) adds the
 * lake gauges, disk free and replication backlog. malloc'd; NULL on OOM. */
char *ops_metrics_render(ops_metrics *m, core *c);

/* Current totals, for /v1/meta/stats. */
typedef struct ops_metrics_totals {
	uint64_t requests, errors_4xx, errors_5xx, bytes_in, bytes_out;
	uint64_t auth_failures, rate_limited;
	int64_t inflight;
	int64_t started_ms;
} ops_metrics_totals;
void ops_metrics_totals_get(ops_metrics *m, ops_metrics_totals *out);

#endif
