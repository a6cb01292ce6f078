/*
 * service.c - continuous replication inside `seglake serve`: one pull worker
 * thread per --peer (long-polling the peer's oplog, backoff with jitter on
 * failure), the per-peer status shown by /v1/repl/status, the record of how
 * far each pulling peer has acknowledged (DATA/repl-acks.json) and the
 * optional oplog retention built on it. Not here: the endpoints (server.c),
 * a round's steps (sync.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "repl/repl_int.h"

#define REPL_BACKOFF_MIN_MS 250
#define REPL_BACKOFF_MAX_MS 30000
#define REPL_TRIM_EVERY_MS 2000

static void repl_log(repl *rp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void repl_log(repl *rp, const char *fmt, ...)
{
	char ts[32];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	/* one write for the whole line: the log is unbuffered stderr, and a
	 * reader (or another writer) must never see half a line */
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(rp->log, "%s repl: %s\n", ts, msg);
}

/* ---- acknowledgements and retention ---------------------------------------- */

static void repl_acks_path(repl *rp, char *out, size_t cap, const char *suffix)
{
	snprintf(out, cap, "%s/repl-acks.json%s", core_dir(rp->core), suffix);
}

static void repl_acks_load(repl *rp)
{
	char p[4200];
	repl_acks_path(rp, p, sizeof(p), "");
	json_t *j = json_load_file(p, 0, NULL);
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(j, "acks"), k, v)
	{
		if (strlen(k) != 16 || !json_is_integer(v))
			continue;
		repl_ack *a = realloc(rp->acks, (rp->nacks + 1) * sizeof(*a));
		if (!a)
			break;
		rp->acks = a;
		memset(&a[rp->nacks], 0, sizeof(*a));
		snprintf(a[rp->nacks].node, sizeof(a->node), "%s", k);
		a[rp->nacks].seq = json_integer_value(v);
		rp->nacks++;
	}
	json_decref(j);
}

/* Writes the acks atomically (tmp + fsync + rename). Caller holds no lock. */
static void repl_acks_save(repl *rp)
{
	pthread_mutex_lock(&rp->lock);
	if (!rp->acks_dirty) {
		pthread_mutex_unlock(&rp->lock);
		return;
	}
	json_t *o = json_object();
	for (size_t i = 0; i < rp->nacks; i++)
		json_object_set_new(o, rp->acks[i].node, json_integer(rp->acks[i].seq));
	rp->acks_dirty = 0;
	pthread_mutex_unlock(&rp->lock);
	json_t *j = json_pack("{so}", "acks", o);
	char p[4200], tmp[4200];
	repl_acks_path(rp, p, sizeof(p), "");
	repl_acks_path(rp, tmp, sizeof(tmp), ".tmp");
	FILE *f = fopen(tmp, "w");
	int ok = f && json_dumpf(j, f, JSON_COMPACT) == 0;
	if (f) {
		ok = fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
		ok = fclose(f) == 0 && ok;
	}
	if (ok && rename(tmp, p) != 0)
		ok = 0;
	if (!ok)
		repl_log(rp, "cannot save %s: %s", p, strerror(errno));
	json_decref(j);
}

void repl_ack_record(repl *rp, const char *node, int64_t seq)
{
	pthread_mutex_lock(&rp->lock);
	size_t i;
	for (i = 0; i < rp->nacks; i++)
		if (strcmp(rp->acks[i].node, node) == 0)
			break;
	if (i == rp->nacks) {
		repl_ack *a = realloc(rp->acks, (rp->nacks + 1) * sizeof(*a));
		if (!a) {
			pthread_mutex_unlock(&rp->lock);
			return;
		}
		rp->acks = a;
		memset(&a[i], 0, sizeof(*a));
		snprintf(a[i].node, sizeof(a[i].node), "%s", node);
		rp->nacks++;
		rp->acks_dirty = 1;
	}
	if (seq > rp->acks[i].seq) {
		rp->acks[i].seq = seq;
		rp->acks_dirty = 1;
	}
	rp->acks[i].seen_ms = repl_now_ms();
	pthread_mutex_unlock(&rp->lock);
}

void repl_tick(repl *rp)
{
	if (!rp)
		return;
	int64_t now = repl_now_ms();
	if (now - rp->last_trim_ms < REPL_TRIM_EVERY_MS)
		return;
	rp->last_trim_ms = now;
	repl_acks_save(rp);
	if (!rp->o.trim)
		return;
	/* Entries every known peer has acknowledged can go. A host that never
	 * pulled from here is unknown: it will have to bootstrap. */
	pthread_mutex_lock(&rp->lock);
	int64_t upto = -1;
	for (size_t i = 0; i < rp->nacks; i++)
		if (upto < 0 || rp->acks[i].seq < upto)
			upto = rp->acks[i].seq;
	pthread_mutex_unlock(&rp->lock);
	if (upto > core_oplog_horizon(rp->core)) {
		sl_err err = { 0 };
		if (core_oplog_trim(rp->core, upto, &err) < 0)
			repl_log(rp, "oplog trim to %" PRId64 " failed: %s", upto, err.msg);
		else
			repl_log(rp, "oplog trimmed up to %" PRId64 " (acknowledged by every peer)",
				 upto);
	}
}

/* ---- workers --------------------------------------------------------------------- */

/* Sleeps up to ms, or until repl_stop. */
static void repl_sleep(repl *rp, int64_t ms)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += ms / 1000;
	dl.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&rp->lock);
	while (!rp->stopping) {
		if (pthread_cond_timedwait(&rp->cond, &rp->lock, &dl) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&rp->lock);
}

static int64_t repl_backoff_ms(unsigned failures)
{
	int64_t base = REPL_BACKOFF_MIN_MS;
	for (unsigned i = 1; i < failures && base < REPL_BACKOFF_MAX_MS; i++)
		base *= 2;
	if (base > REPL_BACKOFF_MAX_MS)
		base = REPL_BACKOFF_MAX_MS;
	/* full jitter in [base/2, base) so peers that failed together spread out */
	uint32_t rnd = 0;
	if (RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) != 1)
		rnd = (uint32_t)time(NULL);
	return base / 2 + (int64_t)(rnd % (uint32_t)(base / 2 + 1));
}

static void repl_worker_fail(repl_worker *w, const sl_err *err)
{
	repl *rp = w->rp;
	pthread_mutex_lock(&rp->lock);
	int same = strcmp(w->last_error, err->msg) == 0;
	snprintf(w->last_error, sizeof(w->last_error), "%s", err->msg);
	w->last_error_ms = repl_now_ms();
	w->failures++;
	unsigned f = w->failures;
	pthread_mutex_unlock(&rp->lock);
	if (!same || f == 1 || f % 20 == 0)
		repl_log(rp, "peer %s: %s (attempt %u)", w->url, err->msg, f);
}

/* Publishes a pull step's progress while it runs (chunks stored so far). */
static void repl_worker_progress(void *ctx, const repl_pull_state *st, const repl_counters *cnt)
{
	repl_worker *w = ctx;
	pthread_mutex_lock(&w->rp->lock);
	w->st = *st;
	if (cnt)
		w->total = *cnt;
	pthread_mutex_unlock(&w->rp->lock);
}

/* An empty lake whose peer trimmed the history it needs (or a snapshot
 * bootstrap cut earlier): the first peer's worker applies that peer's
 * snapshot; the others wait for it. Returns 0 (then pull on) or SL_E*. */
static long repl_worker_snapshot(repl_worker *w, const repl_creds *cr, sl_err *err)
{
	repl *rp = w->rp;
	if (w != &rp->workers[0])
		return sl_err_set(err, SL_EIO, "waiting for the snapshot bootstrap from %s",
				  rp->workers[0].url);
	repl_log(rp,
		 "peer %s: this lake is empty and the peer trimmed its history (or a "
		 "bootstrap was cut): bootstrapping from its snapshot",
		 w->url);
	repl_counters c = { 0 };
	int64_t at = 0;
	int rc = repl_snapshot_bootstrap(rp->core, w->url, cr, NULL, &rp->stopping, &c, &at, err);
	if (rc == 0)
		repl_log(rp,
			 "peer %s: snapshot applied: %" PRIu64 " records, %" PRIu64 " chunks "
			 "fetched, at "
			 "its oplog "
			 "position "
			 "%" PRId64,
			 w->url, c.applied, c.chunks, at);
	return rc;
}

static void *repl_worker_main(void *arg)
{
	repl_worker *w = arg;
	repl *rp = w->rp;
	repl_client cl;
	sl_err err = { 0 };
	repl_creds cr = { rp->ak, rp->sk, rp->region, rp->ca_file };
	if (repl_client_init(&cl, w->url, &cr, &err) < 0) {
		repl_worker_fail(w, &err);
		return NULL;
	}
	cl.stop = &rp->stopping;
	repl_counters cnt = { 0 };
	cl.cnt = &cnt;
	repl_pull_state st = { .progress = repl_worker_progress, .progress_ctx = w };
	while (!rp->stopping) {
		if (!st.node[0]) {
			json_t *info;
			if (repl_peer_info(&cl, rp->core, &info, &err) < 0) {
				repl_worker_fail(w, &err);
				repl_sleep(rp, repl_backoff_ms(w->failures));
				continue;
			}
			snprintf(st.node, sizeof(st.node), "%s",
				 json_string_value(json_object_get(info, "node")));
			st.remote_head = json_integer_value(json_object_get(info, "head"));
			json_decref(info);
			pthread_mutex_lock(&rp->lock);
			w->st = st;
			pthread_mutex_unlock(&rp->lock);
			repl_log(rp, "peer %s is node %s", w->url, st.node);
		}
		long n;
		if (core_snapshot_partial(rp->core)) {
			n = repl_worker_snapshot(w, &cr, &err);
		} else {
			n = repl_pull_step(&cl, rp->core, REPL_PAGE_DEFAULT, REPL_LONGPOLL_MS, &st,
					   &cnt, &err);
			if (n == SL_ENOTSUP && core_oplog_head(rp->core) == 0)
				n = repl_worker_snapshot(w, &cr, &err); /* trimmed; empty here */
		}
		if (rp->stopping)
			break;
		if (n < 0) {
			if (err.code == SL_EINVAL)
				st.node[0] = '\0'; /* identity changed: look it up again */
			pthread_mutex_lock(&rp->lock);
			w->st = st;
			w->total = cnt;
			pthread_mutex_unlock(&rp->lock);
			repl_worker_fail(w, &err);
			repl_sleep(rp, repl_backoff_ms(w->failures));
			continue;
		}
		pthread_mutex_lock(&rp->lock);
		w->st = st;
		w->total = cnt;
		w->last_ok_ms = repl_now_ms();
		if (w->failures)
			w->last_error[0] = '\0';
		unsigned had = w->failures;
		w->failures = 0;
		pthread_mutex_unlock(&rp->lock);
		if (had)
			repl_log(rp, "peer %s: reachable again", w->url);
	}
	repl_client_clear(&cl);
	return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------- */

int repl_new(core *c, const repl_opts *o, repl **out, sl_err *err)
{
	*out = NULL;
	repl *rp = calloc(1, sizeof(*rp));
	if (!rp)
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	rp->core = c;
	rp->o = *o;
	rp->log = o->log ? o->log : stderr;
	rp->started_ms = repl_now_ms();
	rp->last_trim_ms = rp->started_ms;
	pthread_mutex_init(&rp->lock, NULL);
	pthread_cond_init(&rp->cond, NULL);
	if (o->creds.access_key)
		rp->ak = strdup(o->creds.access_key);
	if (o->creds.secret_key)
		rp->sk = strdup(o->creds.secret_key);
	rp->region = strdup(o->creds.region && *o->creds.region ? o->creds.region : "us-east-1");
	if (o->creds.ca_file && *o->creds.ca_file && !(rp->ca_file = strdup(o->creds.ca_file))) {
		repl_free(rp);
		return sl_err_set(err, SL_ENOMEM, "out of memory");
	}
	rp->o.peers = NULL;
	if (o->npeers) {
		rp->workers = calloc(o->npeers, sizeof(*rp->workers));
		if (!rp->workers) {
			repl_free(rp);
			return sl_err_set(err, SL_ENOMEM, "out of memory");
		}
		rp->nworkers = o->npeers;
		for (size_t i = 0; i < o->npeers; i++) {
			rp->workers[i].rp = rp;
			rp->workers[i].url = strdup(o->peers[i]);
			repl_client probe;
			repl_creds cr = { rp->ak, rp->sk, rp->region, rp->ca_file };
			int rc = repl_client_init(&probe, o->peers[i], &cr, err);
			repl_client_clear(&probe);
			if (rc < 0 || !rp->workers[i].url) {
				repl_free(rp);
				return rc < 0 ? rc : sl_err_set(err, SL_ENOMEM, "out of memory");
			}
		}
	}
	repl_acks_load(rp);
	*out = rp;
	return 0;
}

int repl_start_workers(repl *rp, sl_err *err)
{
	for (size_t i = 0; i < rp->nworkers; i++) {
		int e = pthread_create(&rp->workers[i].th, NULL, repl_worker_main, &rp->workers[i]);
		if (e != 0)
			return sl_err_set(err, SL_EINTERNAL, "cannot start a worker: %s",
					  strerror(e));
		rp->workers[i].started = 1;
		repl_log(rp, "replicating from %s", rp->workers[i].url);
	}
	return 0;
}

void repl_stop(repl *rp)
{
	if (!rp)
		return;
	pthread_mutex_lock(&rp->lock);
	rp->stopping = 1;
	pthread_cond_broadcast(&rp->cond);
	pthread_mutex_unlock(&rp->lock);
	core_wake(rp->core);
	for (size_t i = 0; i < rp->nworkers; i++) {
		if (rp->workers[i].started)
			pthread_join(rp->workers[i].th, NULL);
		rp->workers[i].started = 0;
	}
	rp->acks_dirty = 1;
	repl_acks_save(rp);
}

void repl_free(repl *rp)
{
	if (!rp)
		return;
	for (size_t i = 0; i < rp->nworkers; i++)
		free(rp->workers[i].url);
	free(rp->workers);
	free(rp->acks);
	free(rp->ak);
	if (rp->sk) {
		memset(rp->sk, 0, strlen(rp->sk));
		free(rp->sk);
	}
	free(rp->region);
	free(rp->ca_file);
	pthread_cond_destroy(&rp->cond);
	pthread_mutex_destroy(&rp->lock);
	free(rp);
	curl_global_cleanup();
}

/* ---- status ---------------------------------------------------------------------- */

json_t *repl_status_json(repl *rp)
{
	core *c = rp->core;
	int64_t now = repl_now_ms();
	json_t *workers = json_array();
	pthread_mutex_lock(&rp->lock);
	for (size_t i = 0; i < rp->nworkers; i++) {
		repl_worker *w = &rp->workers[i];
		int64_t lag_entries = w->st.remote_head - w->st.watermark;
		json_t *o = json_pack(
			"{sssssIsIsIsfsIsssIsIsIsIsIsisbsIsI}", "url", w->url, "node", w->st.node,
			"watermark", (json_int_t)w->st.watermark, "remote_head",
			(json_int_t)w->st.remote_head, "lag_entries",
			(json_int_t)(lag_entries > 0 ? lag_entries : 0), "lag_seconds",
			(double)w->st.lag_ms / 1000.0, "backlog_bytes",
			(json_int_t)w->st.backlog_bytes, "last_error", w->last_error,
			"last_error_ms", (json_int_t)w->last_error_ms, "last_ok_ms",
			(json_int_t)w->last_ok_ms, "entries", (json_int_t)w->total.entries,
			"applied", (json_int_t)w->total.applied, "chunk_bytes",
			(json_int_t)w->total.chunk_bytes, "failures", (int)w->failures, "connected",
			w->last_ok_ms > 0 && w->failures == 0, "fetch_done",
			(json_int_t)w->st.fetch_done, "fetch_total", (json_int_t)w->st.fetch_total);
		json_array_append_new(workers, o);
	}
	json_t *acks = json_array();
	for (size_t i = 0; i < rp->nacks; i++)
		json_array_append_new(acks, json_pack("{sssIsI}", "node", rp->acks[i].node, "seq",
						      (json_int_t)rp->acks[i].seq, "seen_ms",
						      (json_int_t)rp->acks[i].seen_ms));
	pthread_mutex_unlock(&rp->lock);
	json_t *inbound = json_array();
	core_peer *p = NULL;
	size_t n = 0;
	if (core_peer_list(c, &p, &n, NULL) == 0) {
		for (size_t i = 0; i < n; i++)
			json_array_append_new(inbound,
					      json_pack("{sssIsI}", "node", p[i].peer, "seq",
							(json_int_t)p[i].seq, "updated_ms",
							(json_int_t)p[i].updated_ms));
		core_peers_free(p, n);
	}
	return json_pack("{sssIsIsIsosososb}", "node", core_node_id(c), "head",
			 (json_int_t)core_oplog_head(c), "horizon",
			 (json_int_t)core_oplog_horizon(c), "now_ms", (json_int_t)now, "workers",
			 workers, "inbound", inbound, "acks", acks, "trim", rp->o.trim);
}
