/*
 * metrics.c - the metrics registry and Prometheus text rendering (see
 * metrics.h). Series live in fixed arrays under one mutex; rendering copies
 * nothing big and reads lake gauges (core_stats_get, statvfs, replication
 * acks) at scrape time. Not here: HTTP.
 */
#include "ops/metrics.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

static const double metrics_buckets[] = { 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
					  0.5,	 1,	2.5,  5,     10,   30 };
#define NBUCKETS (sizeof(metrics_buckets) / sizeof(metrics_buckets[0]))

typedef struct series {
	char op[40];
	int status;
	uint64_t count;
} series;

typedef struct op_hist {
	char op[40];
	uint64_t buckets[NBUCKETS]; /* non-cumulative; cumulated at render */
	uint64_t count;
	double sum;
	uint64_t bytes_in, bytes_out;
} op_hist;

typedef struct named_count {
	char name[40];
	uint64_t count;
} named_count;

struct ops_metrics {
	pthread_mutex_t mu;
	series s[OPS_METRICS_MAX_SERIES];
	size_t ns;
	op_hist h[OPS_METRICS_MAX_OPS];
	size_t nh;
	named_count auth[32];
	size_t nauth;
	named_count limited[8];
	size_t nlimited;
	int64_t inflight;
	uint64_t bytes_in, bytes_out, requests, e4, e5;
	int64_t started_ms;
	/* last maintenance results */
	int have_gc, have_scrub, have_fsck;
	core_gc_report gc;
	int64_t gc_ms;
	uint64_t gc_runs;
	core_scrub_report scrub;
	int64_t scrub_ms;
	core_fsck_report fsck;
	int64_t fsck_ms;
};

static int64_t metrics_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

ops_metrics *ops_metrics_new(void)
{
	ops_metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	pthread_mutex_init(&m->mu, NULL);
	m->started_ms = metrics_now_ms();
	return m;
}

void ops_metrics_free(ops_metrics *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->mu);
	free(m);
}

/* Operation names come from our own router, but keep labels safe anyway. */
static void metrics_label(char *dst, size_t cap, const char *src)
{
	size_t o = 0;
	for (const char *p = src ? src : "unknown"; *p && o + 1 < cap; p++)
		dst[o++] = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
					   (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' ||
					   *p == '.' || *p == ':'
				   ? *p
				   : '_';
	dst[o] = '\0';
}

static void named_add(named_count *v, size_t *n, size_t cap, const char *name)
{
	char lab[40];
	metrics_label(lab, sizeof(lab), name);
	for (size_t i = 0; i < *n; i++)
		if (strcmp(v[i].name, lab) == 0) {
			v[i].count++;
			return;
		}
	if (*n < cap) {
		snprintf(v[*n].name, sizeof(v[*n].name), "%s", lab);
		v[(*n)++].count = 1;
	} else {
		v[cap - 1].count++; /* the last slot absorbs overflow */
	}
}

void ops_metrics_request(ops_metrics *m, const char *op, int status, uint64_t bytes_in,
			 uint64_t bytes_out, double seconds)
{
	if (!m)
		return;
	char lab[40];
	metrics_label(lab, sizeof(lab), op);
	pthread_mutex_lock(&m->mu);
	m->requests++;
	m->bytes_in += bytes_in;
	m->bytes_out += bytes_out;
	if (status >= 400 && status < 500)
		m->e4++;
	else if (status >= 500)
		m->e5++;
	size_t i;
	for (i = 0; i < m->ns; i++)
		if (m->s[i].status == status && strcmp(m->s[i].op, lab) == 0)
			break;
	if (i == m->ns) {
		if (m->ns < OPS_METRICS_MAX_SERIES - 1) {
			m->ns++;
		} else {
			/* the last slot is "other" */
			i = OPS_METRICS_MAX_SERIES - 1;
			if (m->ns < OPS_METRICS_MAX_SERIES)
				m->ns = OPS_METRICS_MAX_SERIES;
			snprintf(lab, sizeof(lab), "other");
			status = 0;
		}
		snprintf(m->s[i].op, sizeof(m->s[i].op), "%s", lab);
		m->s[i].status = status;
	}
	m->s[i].count++;
	metrics_label(lab, sizeof(lab), op);
	size_t h;
	for (h = 0; h < m->nh; h++)
		if (strcmp(m->h[h].op, lab) == 0)
			break;
	if (h == m->nh) {
		if (m->nh < OPS_METRICS_MAX_OPS) {
			m->nh++;
		} else {
			h = OPS_METRICS_MAX_OPS - 1;
			snprintf(lab, sizeof(lab), "other");
		}
		snprintf(m->h[h].op, sizeof(m->h[h].op), "%s", lab);
	}
	op_hist *oh = &m->h[h];
	oh->count++;
	oh->sum += seconds;
	oh->bytes_in += bytes_in;
	oh->bytes_out += bytes_out;
	for (size_t b = 0; b < NBUCKETS; b++)
		if (seconds <= metrics_buckets[b]) {
			oh->buckets[b]++;
			break;
		}
	pthread_mutex_unlock(&m->mu);
}

void ops_metrics_inflight(ops_metrics *m, int delta)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	m->inflight += delta;
	pthread_mutex_unlock(&m->mu);
}

void ops_metrics_auth_failure(ops_metrics *m, const char *reason)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	named_add(m->auth, &m->nauth, sizeof(m->auth) / sizeof(m->auth[0]), reason);
	pthread_mutex_unlock(&m->mu);
}

void ops_metrics_rate_limited(ops_metrics *m, const char *kind)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	named_add(m->limited, &m->nlimited, sizeof(m->limited) / sizeof(m->limited[0]), kind);
	pthread_mutex_unlock(&m->mu);
}

void ops_metrics_gc(ops_metrics *m, const core_gc_report *r, int dry_run)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	m->gc = *r;
	m->have_gc = 1;
	m->gc_ms = metrics_now_ms();
	if (!dry_run)
		m->gc_runs++;
	pthread_mutex_unlock(&m->mu);
}

void ops_metrics_scrub(ops_metrics *m, const core_scrub_report *r)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	m->scrub = *r;
	m->have_scrub = 1;
	m->scrub_ms = metrics_now_ms();
	pthread_mutex_unlock(&m->mu);
}

void ops_metrics_fsck(ops_metrics *m, const core_fsck_report *r)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	m->fsck = *r;
	m->have_fsck = 1;
	m->fsck_ms = metrics_now_ms();
	pthread_mutex_unlock(&m->mu);
}

void ops_metrics_totals_get(ops_metrics *m, ops_metrics_totals *out)
{
	memset(out, 0, sizeof(*out));
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	out->requests = m->requests;
	out->errors_4xx = m->e4;
	out->errors_5xx = m->e5;
	out->bytes_in = m->bytes_in;
	out->bytes_out = m->bytes_out;
	out->inflight = m->inflight;
	out->started_ms = m->started_ms;
	for (size_t i = 0; i < m->nauth; i++)
		out->auth_failures += m->auth[i].count;
	for (size_t i = 0; i < m->nlimited; i++)
		out->rate_limited += m->limited[i].count;
	pthread_mutex_unlock(&m->mu);
}

/* ---- rendering ----------------------------------------------------------------- */

typedef struct obuf {
	char *p;
	size_t len, cap;
	int oom;
} obuf;

static void out(obuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(obuf *b, const char *fmt, ...)
{
	if (b->oom)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = 1;
			return;
		}
		if (b->p && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t nc = (b->cap ? b->cap * 2 : 16384) + (size_t)n;
		char *np = realloc(b->p, nc);
		if (!np) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
}

static void head(obuf *b, const char *name, const char *type, const char *help)
{
	out(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metrics_render_lake(obuf *b, core *c)
{
	core_stats st;
	if (core_stats_get(c, &st, NULL) == 0) {
		head(b, "seglake_buckets", "gauge", "Buckets.");
		out(b, "seglake_buckets %" PRIu64 "\n", st.buckets);
		head(b, "seglake_objects", "gauge",
		     "Objects (latest versions that are not delete markers).");
		out(b, "seglake_objects %" PRIu64 "\n", st.objects);
		head(b, "seglake_versions", "gauge", "Stored versions.");
		out(b, "seglake_versions %" PRIu64 "\n", st.versions);
		head(b, "seglake_logical_bytes", "gauge", "Logical bytes of all versions.");
		out(b, "seglake_logical_bytes %" PRIu64 "\n", st.bytes_logical);
		head(b, "seglake_stored_bytes", "gauge", "Bytes of unique chunks stored.");
		out(b, "seglake_stored_bytes %" PRIu64 "\n", st.bytes_stored);
		head(b, "seglake_segments", "gauge", "Segment files.");
		out(b, "seglake_segments %" PRIu64 "\n", st.segments);
		head(b, "seglake_segment_bytes", "gauge", "Bytes in segment files.");
		out(b, "seglake_segment_bytes %" PRIu64 "\n", st.segment_bytes);
	}
	int64_t headseq = core_oplog_head(c);
	head(b, "seglake_oplog_head", "gauge", "Highest committed oplog sequence.");
	out(b, "seglake_oplog_head %" PRId64 "\n", headseq);
	head(b, "seglake_oplog_entries", "gauge", "Oplog entries kept (head minus horizon).");
	out(b, "seglake_oplog_entries %" PRId64 "\n", headseq - core_oplog_horizon(c));
	head(b, "seglake_maintenance", "gauge", "1 while maintenance mode refuses writes.");
	out(b, "seglake_maintenance %d\n", core_maintenance(c) ? 1 : 0);
	struct statvfs vfs;
	if (statvfs(core_dir(c), &vfs) == 0) {
		head(b, "seglake_disk_free_bytes", "gauge",
		     "Free bytes on the data dir's filesystem.");
		out(b, "seglake_disk_free_bytes %llu\n",
		    (unsigned long long)vfs.f_bavail * (unsigned long long)vfs.f_frsize);
		head(b, "seglake_disk_size_bytes", "gauge", "Size of the data dir's filesystem.");
		out(b, "seglake_disk_size_bytes %llu\n",
		    (unsigned long long)vfs.f_blocks * (unsigned long long)vfs.f_frsize);
	}
	/* Replication: inbound watermarks (what we applied from each peer) and
	 * outbound backlog (our entries each pulling peer has not acknowledged). */
	core_peer *p = NULL;
	size_t n = 0;
	if (core_peer_list(c, &p, &n, NULL) == 0 && n) {
		int64_t now = metrics_now_ms();
		head(b, "seglake_repl_peer_applied_seq", "gauge",
		     "Peer oplog position applied here (pull watermark).");
		for (size_t i = 0; i < n; i++)
			out(b, "seglake_repl_peer_applied_seq{peer=\"%.64s\"} %" PRId64 "\n",
			    p[i].peer, p[i].seq);
		head(b, "seglake_repl_peer_last_apply_age_seconds", "gauge",
		     "Seconds since entries from the peer were last applied.");
		for (size_t i = 0; i < n; i++)
			out(b, "seglake_repl_peer_last_apply_age_seconds{peer=\"%.64s\"} %.3f\n",
			    p[i].peer,
			    p[i].updated_ms ? (double)(now - p[i].updated_ms) / 1000.0 : -1.0);
	}
	core_peers_free(p, n);
	char path[4200];
	snprintf(path, sizeof(path), "%s/repl-acks.json", core_dir(c));
	json_t *j = json_load_file(path, 0, NULL);
	json_t *acks = json_object_get(j, "acks");
	if (json_object_size(acks)) {
		head(b, "seglake_repl_backlog_entries", "gauge",
		     "Local oplog entries a pulling peer has not acknowledged yet.");
		const char *k;
		json_t *v;
		json_object_foreach(acks, k, v)
		{
			char lab[40];
			metrics_label(lab, sizeof(lab), k);
			int64_t lag = headseq - (int64_t)json_integer_value(v);
			out(b, "seglake_repl_backlog_entries{peer=\"%s\"} %" PRId64 "\n", lab,
			    lag > 0 ? lag : 0);
		}
	}
	json_decref(j);
}

char *ops_metrics_render(ops_metrics *m, core *c)
{
	obuf b = { 0 };
	if (m) {
		pthread_mutex_lock(&m->mu);
		head(&b, "seglake_requests_total", "counter",
		     "S3 requests by operation and status.");
		for (size_t i = 0; i < m->ns; i++)
			out(&b, "seglake_requests_total{op=\"%s\",status=\"%d\"} %" PRIu64 "\n",
			    m->s[i].op, m->s[i].status, m->s[i].count);
		head(&b, "seglake_request_duration_seconds", "histogram",
		     "S3 request latency by operation.");
		for (size_t i = 0; i < m->nh; i++) {
			uint64_t cum = 0;
			for (size_t k = 0; k < NBUCKETS; k++) {
				cum += m->h[i].buckets[k];
				out(&b,
				    "seglake_request_duration_seconds_bucket{op=\"%s\",le=\"%g\"} "
				    "%" PRIu64 "\n",
				    m->h[i].op, metrics_buckets[k], cum);
			}
			out(&b,
			    "seglake_request_duration_seconds_bucket{op=\"%s\",le=\"+Inf\"} "
			    "%" PRIu64 "\n",
			    m->h[i].op, m->h[i].count);
			out(&b, "seglake_request_duration_seconds_sum{op=\"%s\"} %.6f\n",
			    m->h[i].op, m->h[i].sum);
			out(&b, "seglake_request_duration_seconds_count{op=\"%s\"} %" PRIu64 "\n",
			    m->h[i].op, m->h[i].count);
		}
		head(&b, "seglake_received_bytes_total", "counter", "Request body bytes received.");
		for (size_t i = 0; i < m->nh; i++)
			out(&b, "seglake_received_bytes_total{op=\"%s\"} %" PRIu64 "\n", m->h[i].op,
			    m->h[i].bytes_in);
		head(&b, "seglake_sent_bytes_total", "counter", "Response body bytes sent.");
		for (size_t i = 0; i < m->nh; i++)
			out(&b, "seglake_sent_bytes_total{op=\"%s\"} %" PRIu64 "\n", m->h[i].op,
			    m->h[i].bytes_out);
		head(&b, "seglake_requests_in_flight", "gauge", "Requests being handled.");
		out(&b, "seglake_requests_in_flight %" PRId64 "\n", m->inflight);
		head(&b, "seglake_auth_failures_total", "counter",
		     "Failed authentications by reason.");
		for (size_t i = 0; i < m->nauth; i++)
			out(&b, "seglake_auth_failures_total{reason=\"%s\"} %" PRIu64 "\n",
			    m->auth[i].name, m->auth[i].count);
		head(&b, "seglake_rate_limited_total", "counter",
		     "Requests refused by a limit (SlowDown), by limit.");
		for (size_t i = 0; i < m->nlimited; i++)
			out(&b, "seglake_rate_limited_total{limit=\"%s\"} %" PRIu64 "\n",
			    m->limited[i].name, m->limited[i].count);
		head(&b, "seglake_uptime_seconds", "gauge", "Seconds since the daemon started.");
		out(&b, "seglake_uptime_seconds %.3f\n",
		    (double)(metrics_now_ms() - m->started_ms) / 1000.0);
		if (m->have_gc) {
			head(&b, "seglake_gc_runs_total", "counter", "Completed gc runs.");
			out(&b, "seglake_gc_runs_total %" PRIu64 "\n", m->gc_runs);
			head(&b, "seglake_gc_last_timestamp_seconds", "gauge",
			     "Time of the last gc (plan or run).");
			out(&b, "seglake_gc_last_timestamp_seconds %.3f\n",
			    (double)m->gc_ms / 1000.0);
			head(&b, "seglake_gc_dead_bytes", "gauge",
			     "Dead chunk bytes at the last gc.");
			out(&b, "seglake_gc_dead_bytes %" PRIu64 "\n", m->gc.dead_bytes);
			head(&b, "seglake_gc_reclaimed_bytes", "gauge",
			     "Bytes the last gc reclaimed (or would).");
			out(&b, "seglake_gc_reclaimed_bytes %" PRIu64 "\n", m->gc.reclaim_bytes);
			head(&b, "seglake_gc_deleted_segments", "gauge",
			     "Segments the last gc run deleted.");
			out(&b, "seglake_gc_deleted_segments %" PRIu64 "\n",
			    m->gc.deleted_segments);
		}
		if (m->have_scrub) {
			head(&b, "seglake_scrub_last_timestamp_seconds", "gauge",
			     "Time of the last scrub.");
			out(&b, "seglake_scrub_last_timestamp_seconds %.3f\n",
			    (double)m->scrub_ms / 1000.0);
			head(&b, "seglake_scrub_checked_bytes", "gauge",
			     "Bytes the last scrub re-hashed.");
			out(&b, "seglake_scrub_checked_bytes %" PRIu64 "\n", m->scrub.bytes);
			head(&b, "seglake_scrub_damaged_chunks", "gauge",
			     "Damaged chunks the last scrub found.");
			out(&b, "seglake_scrub_damaged_chunks %" PRIu64 "\n", m->scrub.damaged);
			head(&b, "seglake_scrub_damaged_versions", "gauge",
			     "Versions using damaged chunks at the last scrub.");
			out(&b, "seglake_scrub_damaged_versions %" PRIu64 "\n",
			    m->scrub.damaged_versions);
		}
		if (m->have_fsck) {
			head(&b, "seglake_fsck_problems", "gauge", "Problems the last fsck found.");
			out(&b, "seglake_fsck_problems %" PRIu64 "\n",
			    m->fsck.missing_chunks + m->fsck.damaged_versions +
				    m->fsck.bad_locations + m->fsck.size_mismatches +
				    m->fsck.missing_segments);
		}
		pthread_mutex_unlock(&m->mu);
	}
	if (c)
		metrics_render_lake(&b, c);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	if (!b.p)
		return strdup("");
	return b.p;
}
